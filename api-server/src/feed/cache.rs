//! Feeds in Redis: one sorted set per user, member = score = post id, plus one marker member
//! `floor:<id>` scored `+inf` that says the set holds *every* feed post with id >= `<id>`.
//!
//! A set without its marker is not a feed (it is missing, or a rebuild is half-written), so
//! fan-out never creates one: the insert script adds only to a feed that exists, ignores ids
//! below its floor, trims to the cap and raises the floor to the lowest id it kept. Reads
//! serve from Redis only above the floor; below it they continue in MySQL (no gap can hide
//! inside a cache that was trimmed or partly rebuilt).

use std::sync::{Arc, LazyLock};

use redis::{Value, cmd};

use crate::kv::{Batch, Kv, LuaScript};

/// Member prefix of the completeness marker.
const FLOOR_PREFIX: &str = "floor:";

/// Adds post ids (ARGV[2..]) to an existing feed, trimming it to ARGV[1] entries.
static FEED_INSERT: LazyLock<Arc<LuaScript>> = LazyLock::new(|| {
    Arc::new(LuaScript::new(
        r"
local marker = redis.call('ZRANGEBYSCORE', KEYS[1], '+inf', '+inf')
if #marker == 0 then return 0 end
local floor = tonumber(string.sub(marker[1], 7))
local added = 0
for i = 2, #ARGV do
  if tonumber(ARGV[i]) >= floor then
    added = added + redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
  end
end
local excess = redis.call('ZCARD', KEYS[1]) - 1 - tonumber(ARGV[1])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  local lowest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  redis.call('ZREM', KEYS[1], marker[1])
  redis.call('ZADD', KEYS[1], '+inf', 'floor:' .. lowest)
end
return added
",
    ))
});

/// A slice of a user's Redis feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedSlice {
    /// No usable feed: rebuild it, read MySQL meanwhile.
    Missing,
    /// Ids below the cursor, newest first, all >= `floor`; the feed is complete down to `floor`.
    Present { floor: u64, ids: Vec<u64> },
}

/// Adds `post_id` to each feed of `user_ids` that exists (one pipeline per master).
pub fn add_fanout_commands(batch: &mut Batch, kv: &Kv, user_ids: &[u64], post_id: u64, cap: u32) {
    for user_id in user_ids {
        batch.add_script(&FEED_INSERT, &kv.keys().feed(*user_id), (cap, post_id));
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
