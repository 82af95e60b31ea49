//! Feeds in Redis: one sorted set per user, member = score = post id, plus one marker member
//! `floor:<id>` scored `+inf` that says the set holds *every* feed post with id >= `<id>`.
//!
//! A set without its marker is not a feed (it is missing, or a rebuild is half-written), so
//! fan-out never creates one: the insert script adds only to a feed that exists, ignores ids
//! below its floor, trims to the cap and raises the floor to the lowest id it kept. Reads
//! serve from Redis only above the floor; below it they continue in MySQL (no gap can hide
//! inside a cache that was trimmed or partly rebuilt).
//!
//! The in-process store (embedded default) cannot run Lua: the insert script carries a Rust
//! body that makes the same calls in the same order, tested below on the cases the Lua
//! handles.

use std::sync::{Arc, LazyLock};

use redis::{ServerError, Value, cmd};

use crate::kv::memory::{Keyspace, error_reply};
use crate::kv::{Batch, Kv, LuaScript};

/// Member prefix of the completeness marker.
const FLOOR_PREFIX: &str = "floor:";

/// Adds post ids (ARGV[2..]) to each existing feed among KEYS, trimming it to ARGV[1]
/// entries; returns how many ids were added in all. One call serves many feeds (a fan-out
/// page), so the per-call cost of a script is paid once per page, not once per follower.
static FEED_INSERT: LazyLock<Arc<LuaScript>> = LazyLock::new(|| {
    Arc::new(LuaScript::new(
        r"
local added = 0
for k = 1, #KEYS do
  local key = KEYS[k]
  local marker = redis.call('ZRANGEBYSCORE', key, '+inf', '+inf')
  if #marker > 0 then
    local floor = tonumber(string.sub(marker[1], 7))
    for i = 2, #ARGV do
      if tonumber(ARGV[i]) >= floor then
        added = added + redis.call('ZADD', key, ARGV[i], ARGV[i])
      end
    end
    local excess = redis.call('ZCARD', key) - 1 - tonumber(ARGV[1])
    if excess > 0 then
      redis.call('ZREMRANGEBYRANK', key, 0, excess - 1)
      local lowest = redis.call('ZRANGE', key, 0, 0)[1]
      redis.call('ZREM', key, marker[1])
      redis.call('ZADD', key, '+inf', 'floor:' .. lowest)
    end
  end
end
return added
",
        feed_insert_in_process,
    ))
});

/// FEED_INSERT for the in-process store: the Lua's steps in order, one [`Keyspace::call`] per
/// `redis.call`, with Lua's numbers (ids, floor and cap compared as doubles) and its errors
/// (a nil compared or concatenated aborts the script). Errors carry Redis's codes; their
/// messages leave out the Lua line and script hash Redis appends.
fn feed_insert_in_process(keyspace: &mut Keyspace, keys: &[&[u8]], args: &[&[u8]]) -> Value {
    let mut added = 0;
    for key in keys {
        match feed_insert(keyspace, key, args) {
            Ok(count) => added += count,
            Err(error) => return Value::ServerError(error),
        }
    }
    Value::Int(added)
}

/// One key's part of FEED_INSERT: how many ids it added.
fn feed_insert(keyspace: &mut Keyspace, key: &[u8], args: &[&[u8]]) -> Result<i64, ServerError> {
    let markers = members(keyspace.call(&[b"ZRANGEBYSCORE", key, b"+inf", b"+inf"])?);
    let Some(marker) = markers.into_iter().next() else {
        return Ok(0);
    };
    // string.sub(marker[1], 7): the bytes after `floor:`.
    let floor = lua_number(marker.get(FLOOR_PREFIX.len()..).unwrap_or_default());
    let mut added = 0;
    for id in args.iter().skip(1) {
        let (Some(id_number), Some(floor)) = (lua_number(id), floor) else {
            return Err(error_reply(
                "ERR user_script: attempt to compare nil with number",
            ));
        };
        if id_number >= floor {
            added += integer(&keyspace.call(&[b"ZADD", key, id, id])?);
        }
    }
    let cap = args
        .first()
        .and_then(|cap| lua_number(cap))
        .ok_or_else(|| {
            error_reply("ERR user_script: attempt to perform arithmetic on a nil value")
        })?;
    let excess = integer(&keyspace.call(&[b"ZCARD", key])?) as f64 - 1.0 - cap;
    if excess > 0.0 {
        let last_rank = lua_format(excess - 1.0);
        keyspace.call(&[b"ZREMRANGEBYRANK", key, b"0", last_rank.as_bytes()])?;
        let lowest = members(keyspace.call(&[b"ZRANGE", key, b"0", b"0"])?)
            .into_iter()
            .next()
            .ok_or_else(|| error_reply("ERR user_script: attempt to concatenate a nil value"))?;
        keyspace.call(&[b"ZREM", key, &marker])?;
        let new_marker = [FLOOR_PREFIX.as_bytes(), &lowest].concat();
        keyspace.call(&[b"ZADD", key, b"+inf", &new_marker])?;
    }
    Ok(added)
}

/// The members of a range reply.
fn members(reply: Value) -> Vec<Vec<u8>> {
    match reply {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::BulkString(bytes) => Some(bytes),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// An integer reply as a Lua number.
fn integer(reply: &Value) -> i64 {
    match reply {
        Value::Int(n) => *n,
        _ => 0,
    }
}

/// Lua 5.1's `tonumber` of a string: a decimal or hex number, spaces around allowed.
fn lua_number(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?.trim_ascii();
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    text.parse().ok()
}

/// A Lua number as `redis.call` sends it (`%.14g`; whole numbers without a fraction).
fn lua_format(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e14 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// A slice of a user's Redis feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSlice {
    /// No usable feed: rebuild it, read MySQL meanwhile.
    Missing,
    /// Ids below the cursor, newest first, all >= `floor`; the feed is complete down to `floor`.
    Present { floor: u64, ids: Vec<u64> },
}

/// Feeds one call of the insert script addresses at most: enough to spread the call's cost
/// over many feeds, few enough that a call holds Redis (one thread) for about a millisecond
/// at most (feeds at the cap, whose trim makes seven calls each).
const FEEDS_PER_CALL: usize = 100;

/// Adds `post_id` to each feed of `user_ids` that exists: one script call per 100 feeds on a
/// standalone server, per feed on a cluster (see `Kv::multi_key_groups`); one pipeline per
/// master.
pub fn add_fanout_commands(batch: &mut Batch, kv: &Kv, user_ids: &[u64], post_id: u64, cap: u32) {
    let keys = user_ids.iter().map(|user_id| kv.keys().feed(*user_id));
    for group in kv.multi_key_groups(keys) {
        for keys in group.chunks(FEEDS_PER_CALL) {
            batch.add_script_on_keys(&FEED_INSERT, keys, (cap, post_id));
        }
    }
}

/// Whether Redis holds a feed for `user_id`.
pub async fn feed_exists(kv: &Kv, user_id: u64) -> redis::RedisResult<bool> {
    let mut exists = cmd("EXISTS");
    exists.arg(kv.keys().feed(user_id));
    kv.query::<i64>(&exists).await.map(|count| count > 0)
}

/// Adds `post_ids` to one user's feed if it exists (follow backfill, rebuild catch-up).
pub async fn insert_ids(
    kv: &Kv,
    user_id: u64,
    post_ids: &[u64],
    cap: u32,
) -> redis::RedisResult<()> {
    if post_ids.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    batch.add_script(&FEED_INSERT, &kv.keys().feed(user_id), (cap, post_ids));
    first_error(kv.run(batch).await?)
}

/// Removes `post_ids` from one user's feed (unfollow, deleted posts).
pub async fn remove_ids(kv: &Kv, user_id: u64, post_ids: &[u64]) -> redis::RedisResult<()> {
    if post_ids.is_empty() {
        return Ok(());
    }
    let mut zrem = cmd("ZREM");
    zrem.arg(kv.keys().feed(user_id)).arg(post_ids);
    kv.query::<i64>(&zrem).await.map(drop)
}

/// Reads up to `count` ids below `before` (exclusive; `None` = from the top) and refreshes
/// the feed's TTL, in one round trip.
pub async fn read_slice(
    kv: &Kv,
    user_id: u64,
    before: Option<u64>,
    count: u32,
    ttl_secs: u64,
) -> redis::RedisResult<FeedSlice> {
    let key = kv.keys().feed(user_id);
    let max = before.map_or_else(|| "(+inf".to_owned(), |id| format!("({id}"));
    let mut batch = Batch::new();
    let mut marker = cmd("ZRANGEBYSCORE");
    marker.arg(&key).arg("+inf").arg("+inf");
    let mut range = cmd("ZREVRANGEBYSCORE");
    range
        .arg(&key)
        .arg(max)
        .arg("-inf")
        .arg("LIMIT")
        .arg(0)
        .arg(count);
    let mut expire = cmd("EXPIRE");
    expire.arg(&key).arg(ttl_secs);
    batch
        .add(key.clone(), marker)
        .add(key.clone(), range)
        .add(key, expire);
    let replies = kv.run(batch).await?;
    let floor = match replies.first() {
        Some(value) => parse_floor(value)?,
        None => None,
    };
    let Some(floor) = floor else {
        return Ok(FeedSlice::Missing);
    };
    let ids: Vec<u64> = match replies.get(1) {
        Some(value) => redis::from_redis_value::<Vec<String>>(value.clone())?
            .iter()
            .filter_map(|member| member.parse().ok())
            .filter(|id| *id >= floor)
            .collect(),
        None => Vec::new(),
    };
    Ok(FeedSlice::Present { floor, ids })
}

/// Replaces a user's feed with `ids` (newest first), complete down to `floor`. The marker is
/// written last, so a reader never takes a half-written feed for a complete one.
pub async fn write_feed(
    kv: &Kv,
    user_id: u64,
    ids: &[u64],
    floor: u64,
    ttl_secs: u64,
) -> redis::RedisResult<()> {
    let key = kv.keys().feed(user_id);
    let mut batch = Batch::new();
    let mut del = cmd("DEL");
    del.arg(&key);
    batch.add(key.clone(), del);
    for chunk in ids.chunks(500) {
        let mut zadd = cmd("ZADD");
        zadd.arg(&key);
        for id in chunk {
            zadd.arg(id).arg(id);
        }
        batch.add(key.clone(), zadd);
    }
    let mut marker = cmd("ZADD");
    marker
        .arg(&key)
        .arg("+inf")
        .arg(format!("{FLOOR_PREFIX}{floor}"));
    let mut expire = cmd("EXPIRE");
    expire.arg(&key).arg(ttl_secs);
    batch.add(key.clone(), marker).add(key, expire);
    first_error(kv.run(batch).await?)
}

/// Drops a user's feed (it is rebuilt on the next read).
pub async fn delete_feed(kv: &Kv, user_id: u64) -> redis::RedisResult<()> {
    let mut del = cmd("DEL");
    del.arg(kv.keys().feed(user_id));
    kv.query::<i64>(&del).await.map(drop)
}

fn parse_floor(value: &Value) -> redis::RedisResult<Option<u64>> {
    let members: Vec<String> = redis::from_redis_value(value.clone())?;
    Ok(members
        .iter()
        .find_map(|member| member.strip_prefix(FLOOR_PREFIX)?.parse().ok()))
}

/// Turns the first per-command error of a batch into the batch's error.
pub fn first_error(replies: Vec<Value>) -> redis::RedisResult<()> {
    for reply in replies {
        if let Value::ServerError(error) = reply {
            return Err(error.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Config;
    use crate::kv::memory::MemoryStore;

    fn store() -> MemoryStore {
        MemoryStore::new(100)
    }

    fn command(store: &MemoryStore, line: &str) -> Value {
        let mut words = line.split_whitespace();
        let mut command = cmd(words.next().expect("a command"));
        for word in words {
            command.arg(word);
        }
        store.execute(&command)
    }

    async fn insert(store: &MemoryStore, key: &str, cap: u32, ids: &[u64]) -> Value {
        let mut batch = Batch::new();
        batch.add_script(&FEED_INSERT, key, (cap, ids));
        store.run(batch).await.remove(0)
    }

    fn feed(store: &MemoryStore, key: &str) -> Vec<String> {
        members(command(store, &format!("ZRANGE {key} 0 -1")))
            .into_iter()
            .map(|member| String::from_utf8(member).expect("utf-8"))
            .collect()
    }

    // Each case was run with the Lua source on redis-server 7.0.15 (EVAL); the replies and
    // the resulting sets are the ones Redis gave.

    #[tokio::test]
    async fn without_a_marker_nothing_is_added() {
        let store = store();
        command(&store, "ZADD f 5 5");
        assert_eq!(insert(&store, "f", 10, &[7]).await, Value::Int(0));
        assert_eq!(feed(&store, "f"), ["5"]);
        assert_eq!(insert(&store, "missing", 10, &[7]).await, Value::Int(0));
        assert_eq!(command(&store, "EXISTS missing"), Value::Int(0));
    }

    #[tokio::test]
    async fn ids_below_the_floor_are_ignored() {
        let store = store();
        command(&store, "ZADD f 100 100 150 150 +inf floor:100");
        assert_eq!(
            insert(&store, "f", 10, &[50, 120, 150]).await,
            Value::Int(1)
        );
        assert_eq!(feed(&store, "f"), ["100", "120", "150", "floor:100"]);
    }

    #[tokio::test]
    async fn trimming_to_the_cap_raises_the_floor_to_the_lowest_kept_id() {
        let store = store();
        command(&store, "ZADD f 100 100 110 110 120 120 +inf floor:100");
        assert_eq!(insert(&store, "f", 3, &[130, 140]).await, Value::Int(2));
        assert_eq!(feed(&store, "f"), ["120", "130", "140", "floor:120"]);

        command(&store, "ZADD g +inf floor:10");
        assert_eq!(
            insert(&store, "g", 2, &[9, 10, 11, 12, 13]).await,
            Value::Int(4)
        );
        assert_eq!(feed(&store, "g"), ["12", "13", "floor:12"]);
    }

    #[tokio::test]
    async fn one_call_inserts_into_each_existing_feed_as_if_alone() {
        let store = store();
        command(&store, "ZADD f 100 100 110 110 +inf floor:100");
        command(&store, "ZADD g +inf floor:100");
        command(&store, "ZADD h +inf floor:200");
        let mut batch = Batch::new();
        batch.add_script_on_keys(&FEED_INSERT, &["f", "missing", "g", "h"], (2, 150));
        assert_eq!(store.run(batch).await.remove(0), Value::Int(2));
        assert_eq!(feed(&store, "f"), ["110", "150", "floor:110"]);
        assert_eq!(feed(&store, "g"), ["150", "floor:100"]);
        assert_eq!(feed(&store, "h"), ["floor:200"]);
        assert_eq!(command(&store, "EXISTS missing"), Value::Int(0));
    }

    #[tokio::test]
    async fn a_zero_cap_keeps_only_a_marker_as_the_lua_does() {
        let store = store();
        command(&store, "ZADD f 1 1 2 2 +inf floor:1");
        assert_eq!(insert(&store, "f", 0, &[3]).await, Value::Int(1));
        assert_eq!(feed(&store, "f"), ["floor:floor:1"]);
    }

    #[tokio::test]
    async fn a_key_of_another_type_is_wrongtype() {
        let store = store();
        command(&store, "SET s x");
        let Value::ServerError(error) = insert(&store, "s", 10, &[1]).await else {
            panic!("expected an error");
        };
        assert_eq!(error.code(), "WRONGTYPE");
    }

    #[tokio::test]
    async fn feeds_written_and_read_through_the_module_behave_as_on_redis() {
        let config = Config::try_parse_from(["sns-api"]).expect("defaults are valid");
        let kv = Kv::in_process(&config.redis);
        write_feed(&kv, 1, &[30, 20, 10], 10, 60)
            .await
            .expect("written");
        insert_ids(&kv, 1, &[40, 5], 3).await.expect("inserted");
        let slice = read_slice(&kv, 1, None, 10, 60).await.expect("read");
        assert_eq!(
            slice,
            FeedSlice::Present {
                floor: 20,
                ids: vec![40, 30, 20]
            }
        );
        let older = read_slice(&kv, 1, Some(30), 10, 60).await.expect("read");
        assert_eq!(
            older,
            FeedSlice::Present {
                floor: 20,
                ids: vec![20]
            }
        );
        remove_ids(&kv, 1, &[30]).await.expect("removed");
        assert!(feed_exists(&kv, 1).await.expect("checked"));
        delete_feed(&kv, 1).await.expect("deleted");
        assert_eq!(
            read_slice(&kv, 1, None, 10, 60).await.expect("read"),
            FeedSlice::Missing
        );
    }
}
