//! HTTP tests of the API against real MariaDB and Redis (one database and one key prefix per
//! test, all run in parallel).

// Scenario functions shared by the standalone and cluster variants are not `#[test]`s
// themselves, so clippy's allowance for tests does not reach them; the whole binary is tests.
#![allow(clippy::unwrap_used)]

/// Runs each named scenario `fn(RedisBackend)` as two tests: on the standalone Redis and on
/// the 6-node cluster.
macro_rules! on_both_redis {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::RedisBackend::Standalone).await;
            })*
        }
        mod cluster {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::RedisBackend::Cluster).await;
            })*
        }
    };
}

/// Runs each named scenario `fn(UploadStore)` as two tests: on the S3 server and on a local
/// directory served by the API.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod s3 {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::UploadStore::S3).await;
            })*
        }
        mod local_dir {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::UploadStore::LocalDir).await;
            })*
        }
    };
}

mod comments;
mod errors;
mod feeds;
mod fixtures;
mod follows;
mod helpers;
mod likes;
mod local_uploads;
mod openapi;
mod ownership;
mod posts;
mod rate_limits;
mod read_split;
mod uploads;
mod users;
