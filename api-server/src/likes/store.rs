//! SQL of `post_likes` (the truth about likes) and `like_events` (changes not yet folded
//! into `posts.like_count`).

use crate::db::fetch_ids_in;
use chrono::{DateTime, Utc};
use sqlx::{MySqlConnection, MySqlExecutor};

use crate::users::model::UserSummary;

/// Of `post_ids`, those that exist and are not deleted.
pub async fn list_live_posts(
    conn: &mut MySqlConnection,
    post_ids: &[u64],
) -> sqlx::Result<Vec<u64>> {
    fetch_ids_in(
        conn,
        "SELECT id FROM posts WHERE id IN ({ids}) AND deleted_at IS NULL",
        &[],
        post_ids,
        &[],
    )
    .await
}

/// Of `(post_id, user_id)` pairs, those that are likes, locked until the transaction ends
/// (another API replica storing the same pairs waits instead of double-counting).
pub async fn lock_existing_likes(
    conn: &mut MySqlConnection,
    pairs: &[(u64, u64)],
) -> sqlx::Result<Vec<(u64, u64)>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let tuples = vec!["(?, ?)"; pairs.len()].join(",");
    let sql = format!(
        "SELECT post_id, user_id FROM post_likes WHERE (post_id, user_id) IN ({tuples}) FOR UPDATE"
    );
    let mut query = sqlx::query_as::<_, (u64, u64)>(sqlx::AssertSqlSafe(sql));
    for (post_id, user_id) in pairs {
        query = query.bind(post_id).bind(user_id);
    }
    query.fetch_all(&mut *conn).await
}

/// Inserts likes (pairs known to be absent; a duplicate is ignored all the same).
pub async fn insert_likes(
    conn: &mut MySqlConnection,
    pairs: &[(u64, u64)],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let mut builder =
        sqlx::QueryBuilder::new("INSERT IGNORE INTO post_likes (post_id, user_id, created_at) ");
    builder.push_values(pairs, |mut row, (post_id, user_id)| {
        row.push_bind(*post_id).push_bind(*user_id).push_bind(now);
    });
    builder.build().execute(&mut *conn).await?;
    Ok(())
}

/// Deletes likes.
pub async fn delete_likes(conn: &mut MySqlConnection, pairs: &[(u64, u64)]) -> sqlx::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let tuples = vec!["(?, ?)"; pairs.len()].join(",");
    let sql = format!("DELETE FROM post_likes WHERE (post_id, user_id) IN ({tuples})");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (post_id, user_id) in pairs {
        query = query.bind(post_id).bind(user_id);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Appends one like event per post whose likes changed.
pub async fn append_events(
    conn: &mut MySqlConnection,
    post_ids: &[u64],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if post_ids.is_empty() {
        return Ok(());
    }
    let mut builder = sqlx::QueryBuilder::new("INSERT INTO like_events (post_id, created_at) ");
    builder.push_values(post_ids, |mut row, post_id| {
        row.push_bind(*post_id).push_bind(now);
    });
    builder.build().execute(&mut *conn).await?;
    Ok(())
}

/// Of `post_ids`, those `user_id` likes.
pub async fn list_liked_among(
    conn: impl MySqlExecutor<'_>,
    user_id: u64,
    post_ids: &[u64],
) -> sqlx::Result<Vec<u64>> {
    fetch_ids_in(
        conn,
        "SELECT post_id FROM post_likes WHERE user_id = ? AND post_id IN ({ids})",
        &[user_id],
        post_ids,
        &[],
    )
    .await
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
