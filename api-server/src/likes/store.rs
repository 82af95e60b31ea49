//! SQL of `post_likes` (the truth about likes) and `like_events` (changes not yet folded
//! into `posts.like_count`).

use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

use crate::users::model::UserSummary;

/// Adds a like if absent and marks the post for a recount; returns whether it was added.
pub async fn insert_like(
    tx: &mut MySqlConnection,
    post_id: u64,
    user_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT IGNORE INTO post_likes (post_id, user_id, created_at) VALUES (?, ?, ?)",
    )
    .bind(post_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        append_event(tx, post_id, now).await?;
    }
    Ok(inserted)
}

/// Removes a like if present and marks the post for a recount; returns whether it existed.
pub async fn delete_like(
    tx: &mut MySqlConnection,
    post_id: u64,
    user_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let deleted = sqlx::query("DELETE FROM post_likes WHERE post_id = ? AND user_id = ?")
        .bind(post_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if deleted {
        append_event(tx, post_id, now).await?;
    }
    Ok(deleted)
}

async fn append_event(
    tx: &mut MySqlConnection,
    post_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO like_events (post_id, created_at) VALUES (?, ?)")
        .bind(post_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Of `post_ids`, those `user_id` likes.
pub async fn list_liked_among(
    conn: impl MySqlExecutor<'_>,
    user_id: u64,
    post_ids: &[u64],
) -> sqlx::Result<Vec<u64>> {
    if post_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; post_ids.len()].join(",");
    let sql =
        format!("SELECT post_id FROM post_likes WHERE user_id = ? AND post_id IN ({placeholders})");
    let mut query = sqlx::query_as::<_, (u64,)>(sqlx::AssertSqlSafe(sql)).bind(user_id);
    for id in post_ids {
        query = query.bind(id);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// Users who like a post, with ids below `before`, highest first.
pub async fn list_likers(
    conn: impl MySqlExecutor<'_>,
    post_id: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<UserSummary>> {
    sqlx::query_as(
        "SELECT u.id, u.username, u.avatar_url FROM post_likes l JOIN users u ON u.id = l.user_id \
         WHERE l.post_id = ? AND l.user_id < ? ORDER BY l.user_id DESC LIMIT ?",
    )
    .bind(post_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The oldest committed like events: `(event id, post id)`.
pub async fn list_like_events(
    conn: impl MySqlExecutor<'_>,
    limit: u32,
) -> sqlx::Result<Vec<(u64, u64)>> {
    sqlx::query_as("SELECT id, post_id FROM like_events ORDER BY id LIMIT ?")
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Sets a post's count to the number of its like rows.
pub async fn recount_likes(conn: impl MySqlExecutor<'_>, post_id: u64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE posts SET like_count = (SELECT COUNT(*) FROM post_likes WHERE post_id = ?) \
         WHERE id = ?",
    )
    .bind(post_id)
    .bind(post_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the events a flush has folded in (exactly those: an event committed meanwhile,
/// even with a lower id, stays for the next flush).
pub async fn delete_like_events(conn: impl MySqlExecutor<'_>, ids: &[u64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let placeholders = vec!["?"; ids.len()].join(",");
    let sql = format!("DELETE FROM like_events WHERE id IN ({placeholders})");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    query.execute(conn).await?;
    Ok(())
}

/// A post's stored like count, if the post is live.
pub async fn find_like_count(
    conn: impl MySqlExecutor<'_>,
    post_id: u64,
) -> sqlx::Result<Option<u64>> {
    let row: Option<(u64,)> =
        sqlx::query_as("SELECT like_count FROM posts WHERE id = ? AND deleted_at IS NULL")
            .bind(post_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(count,)| count))
}
