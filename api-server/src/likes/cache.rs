//! Like-count deltas in Redis: likes and unlikes since the last recount, added to
//! `posts.like_count` when a post is shown, so counts move at once without a write to the
//! post's row per like. Losing them loses no like (the rows are in MySQL): the count is
//! only stale until the next recount.

use redis::cmd;

use crate::kv::{Batch, Kv};

/// Seconds a delta lives; far longer than any flush interval, so only abandoned ones expire.
const DELTA_TTL_SECS: u64 = 3600;

/// Adds each `(post_id, delta)` to that post's pending count, all in one round trip (the
/// like writer calls this inside its transaction, so it must not wait per post).
pub async fn add_deltas(kv: &Kv, deltas: &[(u64, i64)]) -> redis::RedisResult<()> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for (post_id, delta) in deltas {
        let key = kv.keys().like_delta(*post_id);
        let mut incr = cmd("INCRBY");
        incr.arg(&key).arg(*delta);
        let mut expire = cmd("EXPIRE");
        expire.arg(&key).arg(DELTA_TTL_SECS);
        batch.add(key.clone(), incr).add(key, expire);
    }
    crate::feed::cache::first_error(kv.run(batch).await?)
}

/// Pending deltas of `post_ids`, in order (0 when none), in one round trip.
pub async fn get_deltas(kv: &Kv, post_ids: &[u64]) -> redis::RedisResult<Vec<i64>> {
    let keys: Vec<String> = post_ids
        .iter()
        .map(|id| kv.keys().like_delta(*id))
        .collect();
    Ok(parse_deltas(kv.get_many(&keys).await?))
}

/// Reads delta values (0 when a post has no delta).
pub fn parse_deltas(replies: Vec<redis::Value>) -> Vec<i64> {
    replies
        .into_iter()
        .map(|reply| {
            redis::from_redis_value::<Option<i64>>(reply)
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .collect()
}

/// Drops a post's delta once its count has been recounted.
pub async fn clear_delta(kv: &Kv, post_id: u64) -> redis::RedisResult<()> {
    let mut del = cmd("DEL");
    del.arg(kv.keys().like_delta(post_id));
    kv.query::<i64>(&del).await.map(drop)
}
