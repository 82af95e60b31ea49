//! HTTP tests of the API against real MariaDB and Redis (one database and one key prefix per
//! test, all run in parallel).

// Scenario functions shared by the standalone and cluster variants are not `#[test]`s
// themselves, so clippy's allowance for tests does not reach them; the whole binary is tests.
#![allow(clippy::unwrap_used)]

mod comments;
mod errors;
mod feeds;
mod fixtures;
mod follows;
mod helpers;
mod likes;
mod openapi;
mod ownership;
mod posts;
mod rate_limits;
mod read_split;
mod users;
