//! HTTP tests of the API against real MariaDB and Redis, and against the embedded default
//! (one database and one key prefix per test, all run in parallel).

// Scenario functions shared by the standalone and cluster variants are not `#[test]`s
// themselves, so clippy's allowance for tests does not reach them; the whole binary is tests.
#![allow(clippy::unwrap_used)]

/// Runs each named scenario `fn(Backend)` as three tests: on MariaDB with the standalone
/// Redis, with the 6-node cluster, and on the embedded default (SQLite, in-process store).
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod standalone {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Standalone).await;
            })*
        }
        mod cluster {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Cluster).await;
            })*
        }
        mod embedded {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Embedded).await;
            })*
        }
    };
}

/// Runs each named scenario `fn(Backend)` as two tests: on MariaDB and on the embedded
/// default (SQLite, in-process store, upload directory).
macro_rules! on_mysql_and_embedded {
    ($($name:ident),* $(,)?) => {
        mod mysql {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::MySql).await;
            })*
        }
        mod embedded {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::helpers::Backend::Embedded).await;
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
