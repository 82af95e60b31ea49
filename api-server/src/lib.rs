//! sns-api: the sns-platform HTTP API.
//!
//! ```text
//! request ─► TraceLayer ─► CatchPanic ─► timeout ─► body limit ─► metrics ─► JSON 404/405
//!         ─► feature router (users, auth, follows, posts, comments, ops)
//!         ─► handler (extract → call store → respond) ─► store (sqlx; Db::writer / Db::reader)
//! ```
//!
//! Module map: `config` (flags/env), `startup` (App::build, serve), `state` (AppState),
//! `db` (read/write split, migrations), `error` (ApiError → JSON contract), `metrics`,
//! `telemetry`, `openapi`, `http` (router, auth, extractors, paging, middleware), and one
//! folder per feature.

pub mod auth;
pub mod comments;
pub mod config;
pub mod db;
pub mod error;
pub mod feed;
pub mod follows;
pub mod http;
pub mod kv;
pub mod likes;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod posts;
pub mod ratelimit;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod uploads;
pub mod users;
