//! HTTP tests of the API against real MariaDB and Redis, and against the embedded default
//! (one database and one key prefix per test, all run in parallel).

// Scenario functions shared by the standalone and cluster variants are not `#[test]`s
// themselves, so clippy's allowance for tests does not reach them; the whole binary is tests.
#![allow(clippy::unwrap_used)]

/// Runs each scenario named in `(...)` once per `module => argument` pair, as the test
/// `module::scenario` calling `scenario(argument)`.
macro_rules! scenarios {
    ([$($module:ident => $argument:expr),+ $(,)?], $names:tt) => {
        $(scenarios!(@module $module, $argument, $names);)+
    };
    (@module $module:ident, $argument:expr, ($($name:ident),* $(,)?)) => {
        mod $module {
            $(#[tokio::test]
            async fn $name() {
                super::$name($argument).await;
            })*
        }
    };
}

/// Runs each named scenario `fn(Backend)` as three tests: on MariaDB with the standalone
/// Redis, with the 6-node cluster, and on the embedded default (SQLite, in-process store).
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        scenarios!([
            standalone => crate::helpers::Backend::Standalone,
            cluster => crate::helpers::Backend::Cluster,
            embedded => crate::helpers::Backend::Embedded,
        ], ($($name),*));
    };
}

/// Runs each named scenario `fn(Backend)` as two tests: on MariaDB and on the embedded
/// default (SQLite, in-process store, upload directory).
macro_rules! on_mysql_and_embedded {
    ($($name:ident),* $(,)?) => {
        scenarios!([
            mysql => crate::helpers::Backend::MySql,
            embedded => crate::helpers::Backend::Embedded,
        ], ($($name),*));
    };
}

/// Runs each named scenario `fn(UploadStore)` as two tests: on the test S3 server and on a
/// local upload directory.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        scenarios!([
            s3 => crate::helpers::UploadStore::S3,
            local_dir => crate::helpers::UploadStore::LocalDir,
        ], ($($name),*));
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
