//! An in-process store with Redis's semantics, for the embedded default (one process, no
//! Redis server): `Kv::in_process` runs every command of the feed, post-cache, like and
//! rate-limit code on it, unchanged.
//!
//! ```text
//! Kv::query / Kv::run ──► MemoryStore::execute(&Cmd) ──lock──► Keyspace::dispatch
//!                                                               ├─ strings.rs      GET SET INCR…
//!                                                               ├─ sorted_sets.rs  ZADD ZRANGE…
//!                                                               └─ commands.rs     DEL EXPIRE TTL
//!                                                                                  PING EVALSHA
//! ```
//!
//! Replies are the `redis::Value`s a Redis 7.0 server sends over RESP2 (checked against
//! redis-server 7.0.15), errors included (WRONGTYPE, syntax, NOSCRIPT, OOM). Lua is not
//! interpreted: a [`LuaScript`](crate::kv::LuaScript) carries an equivalent Rust body
//! ([`InProcessScript`]) that EVALSHA runs. Memory is bounded by a number of keys; past it,
//! keys with a TTL are evicted least recently used first, and writes that would add a key
//! fail with OOM when none is left, as Redis does with `maxmemory-policy volatile-lru`.

mod commands;
mod keyspace;
mod protocol;
mod sorted_sets;
mod store;
mod strings;
mod zset;

pub use keyspace::{InProcessScript, Keyspace};
pub use protocol::error_reply;
pub use store::MemoryStore;
