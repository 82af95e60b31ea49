//! HTTP tests of the API against real MariaDB (one database per test, run in parallel).

mod comments;
mod errors;
mod follows;
mod helpers;
mod openapi;
mod ownership;
mod posts;
mod read_split;
mod users;
