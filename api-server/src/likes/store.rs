//! SQL of `post_likes` (the truth about likes) and `like_count_pending` (posts whose
//! `posts.like_count` waits for a recount).

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
        mark_pending(tx, post_id, now).await?;
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
        mark_pending(tx, post_id, now).await?;
    }
    Ok(deleted)
}

async fn mark_pending(
    tx: &mut MySqlConnection,
    post_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    // Insert-if-absent: on a popular post the row usually exists, and a duplicate only takes
    // a shared lock, so concurrent likers never wait for each other.
    sqlx::query("INSERT IGNORE INTO like_count_pending (post_id, marked_at) VALUES (?, ?)")
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
    let rows: Vec<(u64, String, Option<String>)> = sqlx::query_as(
        "SELECT u.id, u.username, u.avatar_url FROM post_likes l JOIN users u ON u.id = l.user_id \
         WHERE l.post_id = ? AND l.user_id < ? ORDER BY l.user_id DESC LIMIT ?",
    )
    .bind(post_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, username, avatar_url)| UserSummary {
            id,
            username,
            avatar_url,
        })
        .collect())
}

/// Posts waiting for a recount, oldest mark first.
pub async fn list_pending_posts(
    conn: impl MySqlExecutor<'_>,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> =
        sqlx::query_as("SELECT post_id FROM like_count_pending ORDER BY marked_at LIMIT ?")
            .bind(limit)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Clears a post's mark, then sets its count to the number of like rows. A like committed
/// after the clear marks the post again, so no change can slip between the two.
pub async fn recount_likes(conn: &mut MySqlConnection, post_id: u64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM like_count_pending WHERE post_id = ?")
        .bind(post_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE posts SET like_count = (SELECT COUNT(*) FROM post_likes WHERE post_id = ?) \
         WHERE id = ?",
    )
    .bind(post_id)
    .bind(post_id)
    .execute(&mut *conn)
    .await?;
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
