//! The post cache: one JSON body per post (`post:{id}`), look-aside on read, written through
//! on edit, removed on delete, with a TTL. Counts and `liked_by_me` are not part of the
//! cached body (they are filled per request), so a like never invalidates it.

use redis::{Value, cmd};

use super::model::PostView;
use crate::kv::{Batch, Kv};
use crate::likes;

/// Cached bodies of `post_ids` (`None` for a miss) and their pending like deltas, in order,
/// in one round trip (one MGET on a standalone server, see [`Kv::get_many`]).
pub async fn get_posts_and_deltas(
    kv: &Kv,
    post_ids: &[u64],
) -> redis::RedisResult<(Vec<Option<PostView>>, Vec<i64>)> {
    let keys: Vec<String> = post_ids
        .iter()
        .map(|id| kv.keys().post(*id))
        .chain(post_ids.iter().map(|id| kv.keys().like_delta(*id)))
        .collect();
    let mut values = kv.get_many(&keys).await?;
    let deltas = likes::cache::parse_deltas(values.split_off(post_ids.len()));
    let posts = values
        .into_iter()
        .map(|value| match value {
            Value::BulkString(bytes) => serde_json::from_slice(&bytes).ok(),
            _ => None,
        })
        .collect();
    Ok((posts, deltas))
}

/// Stores post bodies with a TTL, in one round trip.
pub async fn put_posts(kv: &Kv, posts: &[PostView], ttl_secs: u64) -> redis::RedisResult<()> {
    if posts.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for post in posts {
        let Ok(body) = serde_json::to_vec(post) else {
            continue;
        };
        let key = kv.keys().post(post.id);
        let mut set = cmd("SET");
        set.arg(&key).arg(body).arg("EX").arg(ttl_secs.max(1));
        batch.add(key, set);
    }
    crate::feed::cache::first_error(kv.run(batch).await?)
}

/// Removes a post's cached body.
pub async fn remove_post(kv: &Kv, post_id: u64) -> redis::RedisResult<()> {
    let mut del = cmd("DEL");
    del.arg(kv.keys().post(post_id));
    kv.query::<i64>(&del).await.map(drop)
}
