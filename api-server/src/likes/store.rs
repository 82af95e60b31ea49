//! SQL of `post_likes` (the truth about likes) and `like_events` (changes not yet folded
//! into `posts.like_count`).

use crate::db::fetch_ids_in;
use crate::db::sql::placeholders;
use crate::db::{AsConn, Executor, query};
use chrono::{DateTime, Utc};

use crate::users::model::UserSummary;

/// Of `post_ids`, those that exist and are not deleted.
pub async fn list_live_posts(conn: &mut impl AsConn, post_ids: &[u64]) -> sqlx::Result<Vec<u64>> {
    fetch_ids_in(
        conn,
        "SELECT id FROM posts WHERE id IN ({ids}) AND deleted_at IS NULL",
        &[],
        post_ids,
        &[],
    )
    .await
}

/// `(post_id = ? AND user_id = ?) OR ...` for `count` pairs: the primary key's ranges, in a
/// form both databases accept (SQLite takes row values only against a subquery).
fn pair_condition(count: usize) -> String {
    vec!["(post_id = ? AND user_id = ?)"; count].join(" OR ")
}

/// Of `(post_id, user_id)` pairs, those that are likes, locked until the transaction ends
/// (another API replica storing the same pairs waits instead of double-counting).
pub async fn lock_existing_likes(
    conn: &mut impl AsConn,
    pairs: &[(u64, u64)],
) -> sqlx::Result<Vec<(u64, u64)>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT post_id, user_id FROM post_likes WHERE {} FOR UPDATE",
        pair_condition(pairs.len())
    );
    let mut statement = query(sqlx::AssertSqlSafe(sql));
    for (post_id, user_id) in pairs {
        statement = statement.bind(post_id).bind(user_id);
    }
    statement.fetch_all(&mut *conn).await
}

/// Inserts likes (pairs known to be absent; a duplicate is ignored all the same).
pub async fn insert_likes(
    conn: &mut impl AsConn,
    pairs: &[(u64, u64)],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT IGNORE INTO post_likes (post_id, user_id, created_at) VALUES {}",
        placeholders(pairs.len(), "(?, ?, ?)")
    );
    let mut statement = query(sqlx::AssertSqlSafe(sql));
    for (post_id, user_id) in pairs {
        statement = statement.bind(post_id).bind(user_id).bind(now);
    }
    statement.execute(&mut *conn).await?;
    Ok(())
}

/// Deletes likes.
pub async fn delete_likes(conn: &mut impl AsConn, pairs: &[(u64, u64)]) -> sqlx::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM post_likes WHERE {}",
        pair_condition(pairs.len())
    );
    let mut statement = query(sqlx::AssertSqlSafe(sql));
    for (post_id, user_id) in pairs {
        statement = statement.bind(post_id).bind(user_id);
    }
    statement.execute(&mut *conn).await?;
    Ok(())
}

/// Appends one like event per post whose likes changed.
pub async fn append_events(
    conn: &mut impl AsConn,
    post_ids: &[u64],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    if post_ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO like_events (post_id, created_at) VALUES {}",
        placeholders(post_ids.len(), "(?, ?)")
    );
    let mut statement = query(sqlx::AssertSqlSafe(sql));
    for post_id in post_ids {
        statement = statement.bind(post_id).bind(now);
    }
    statement.execute(&mut *conn).await?;
    Ok(())
}

/// Of `post_ids`, those `user_id` likes.
pub async fn list_liked_among(
    conn: impl Executor<'_>,
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
    conn: impl Executor<'_>,
    post_id: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<UserSummary>> {
    query(
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
    conn: impl Executor<'_>,
    limit: u32,
) -> sqlx::Result<Vec<(u64, u64)>> {
    query("SELECT id, post_id FROM like_events ORDER BY id LIMIT ?")
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// Sets a post's count to the number of its like rows.
pub async fn recount_likes(conn: impl Executor<'_>, post_id: u64) -> sqlx::Result<()> {
    query(
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
pub async fn delete_like_events(conn: impl Executor<'_>, ids: &[u64]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM like_events WHERE id IN ({})",
        placeholders(ids.len(), "?")
    );
    query(sqlx::AssertSqlSafe(sql))
        .bind_all(ids)
        .execute(conn)
        .await?;
    Ok(())
}
