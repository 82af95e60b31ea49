//! SQL of `posts`, `post_idempotency_keys` and the post counter on `users`.

use crate::db::sql::placeholders;
use crate::db::{AsConn, Executor, query};
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use std::collections::HashMap;

use super::model::{MediaView, PostView};
use crate::uploads::service::VerifiedMedia;
use crate::users::model::UserSummary;

#[derive(Debug, FromRow)]
struct PostRow {
    id: u64,
    author_id: u64,
    username: String,
    avatar_url: Option<String>,
    content: String,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    like_count: u64,
    comment_count: u64,
}

impl From<PostRow> for PostView {
    fn from(row: PostRow) -> Self {
        Self {
            id: row.id,
            author: UserSummary {
                id: row.author_id,
                username: row.username,
                avatar_url: row.avatar_url,
            },
            content: row.content,
            media: Vec::new(),
            created_at: row.created_at,
            edited_at: row.edited_at,
            like_count: row.like_count,
            comment_count: row.comment_count,
            liked_by_me: false,
        }
    }
}

const POST_VIEW_SELECT: &str = "SELECT p.id, p.author_id, u.username, u.avatar_url, p.content, \
     p.created_at, p.edited_at, p.like_count, p.comment_count \
     FROM posts p JOIN users u ON u.id = p.author_id";

/// Inserts a post and counts it on its author; returns the new id.
pub async fn insert_post(
    tx: &mut impl AsConn,
    author_id: u64,
    content: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    // The author row is locked (X) before the insert takes its foreign-key lock (S) on it:
    // the other order deadlocks two concurrent posts by one author.
    query("UPDATE users SET post_count = post_count + 1 WHERE id = ?")
        .bind(author_id)
        .execute(&mut *tx)
        .await?;
    let id = query("INSERT INTO posts (author_id, content, created_at) VALUES (?, ?, ?)")
        .bind(author_id)
        .bind(content)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .last_insert_id();
    Ok(id)
}

/// Finds a live (not deleted) post, media included.
pub async fn find_post_view(conn: &mut impl AsConn, id: u64) -> sqlx::Result<Option<PostView>> {
    let sql = format!("{POST_VIEW_SELECT} WHERE p.id = ? AND p.deleted_at IS NULL");
    let row: Option<PostRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let mut posts: Vec<PostView> = row.into_iter().map(Into::into).collect();
    load_media(conn, &mut posts).await?;
    Ok(posts.pop())
}

/// Live posts among `ids`, media included, in no particular order.
pub async fn find_post_views(conn: &mut impl AsConn, ids: &[u64]) -> sqlx::Result<Vec<PostView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{POST_VIEW_SELECT} WHERE p.id IN ({}) AND p.deleted_at IS NULL",
        placeholders(ids.len(), "?")
    );
    let mut posts: Vec<PostView> = query(sqlx::AssertSqlSafe(sql))
        .bind_all(ids)
        .fetch_all::<PostRow>(&mut *conn)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    load_media(conn, &mut posts).await?;
    Ok(posts)
}

/// Fills each post's media from `post_media`, in display order (URLs are signed later).
async fn load_media(conn: &mut impl AsConn, posts: &mut [PostView]) -> sqlx::Result<()> {
    if posts.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT post_id, object_key, content_type, size FROM post_media \
         WHERE post_id IN ({}) ORDER BY post_id, position",
        placeholders(posts.len(), "?")
    );
    let rows: Vec<(u64, String, String, u64)> = query(sqlx::AssertSqlSafe(sql))
        .bind_all(posts.iter().map(|post| post.id))
        .fetch_all(conn)
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let index: HashMap<u64, usize> = posts
        .iter()
        .enumerate()
        .map(|(position, post)| (post.id, position))
        .collect();
    for (post_id, key, content_type, size) in rows {
        if let Some(&position) = index.get(&post_id) {
            posts[position].media.push(MediaView {
                key,
                url: String::new(),
                content_type,
                size,
            });
        }
    }
    Ok(())
}

/// Replaces a post's media with `media`, in order.
pub async fn replace_media(
    tx: &mut impl AsConn,
    post_id: u64,
    media: &[VerifiedMedia],
) -> sqlx::Result<()> {
    query("DELETE FROM post_media WHERE post_id = ?")
        .bind(post_id)
        .execute(&mut *tx)
        .await?;
    for (position, item) in media.iter().enumerate() {
        query(
            "INSERT INTO post_media (post_id, position, object_key, content_type, size) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(post_id)
        .bind(u8::try_from(position).unwrap_or(u8::MAX))
        .bind(&item.key)
        .bind(&item.content_type)
        .bind(item.size)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// The keys among `keys` that some live post shows.
pub async fn attached_keys(conn: impl Executor<'_>, keys: &[&str]) -> sqlx::Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT DISTINCT m.object_key FROM post_media m JOIN posts p ON p.id = m.post_id \
         WHERE m.object_key IN ({}) AND p.deleted_at IS NULL",
        placeholders(keys.len(), "?")
    );
    Ok(query(sqlx::AssertSqlSafe(sql))
        .bind_all(keys.iter().copied())
        .fetch_all::<(String,)>(conn)
        .await?
        .into_iter()
        .map(|(key,)| key)
        .collect())
}

/// Like and comment counts of the live posts among `ids`.
pub async fn find_post_counts(
    conn: impl Executor<'_>,
    ids: &[u64],
) -> sqlx::Result<Vec<(u64, u64, u64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, like_count, comment_count FROM posts WHERE id IN ({}) \
         AND deleted_at IS NULL",
        placeholders(ids.len(), "?")
    );
    query(sqlx::AssertSqlSafe(sql))
        .bind_all(ids)
        .fetch_all(conn)
        .await
}

/// What one reader sees of a live post beside its body: fresh counts, whether the viewer
/// likes it, and whether the viewer is or follows its author.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct PostState {
    /// The post.
    pub id: u64,
    /// Likes folded into the row so far.
    pub like_count: u64,
    /// Comments.
    pub comment_count: u64,
    /// 1 when the viewer likes the post.
    pub liked: i64,
    /// 1 when the viewer wrote the post or follows its author.
    pub followed: i64,
}

/// The [`PostState`]s of the live posts among `ids` for `viewer` (0 for nobody), in one
/// round trip. Both flags are outer joins on primary keys (at most one row each), which
/// MariaDB runs as index lookups; the same flags as `EXISTS` in the select list ran as
/// dependent subqueries and cost it several times more.
pub async fn find_post_states(
    conn: impl Executor<'_>,
    ids: &[u64],
    viewer: u64,
) -> sqlx::Result<Vec<PostState>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT p.id, p.like_count, p.comment_count, \
           CAST(l.user_id IS NOT NULL AS SIGNED) AS liked, \
           CAST(p.author_id = ? OR f.follower_id IS NOT NULL AS SIGNED) AS followed \
         FROM posts p \
         LEFT JOIN post_likes l ON l.post_id = p.id AND l.user_id = ? \
         LEFT JOIN follows f ON f.follower_id = ? AND f.followee_id = p.author_id \
         WHERE p.id IN ({}) AND p.deleted_at IS NULL",
        placeholders(ids.len(), "?")
    );
    query(sqlx::AssertSqlSafe(sql))
        .bind_all([viewer; 3])
        .bind_all(ids)
        .fetch_all(conn)
        .await
}

/// An author's live posts with ids below `before`, newest first.
pub async fn list_author_posts(
    conn: &mut impl AsConn,
    author_id: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<PostView>> {
    let sql = format!(
        "{POST_VIEW_SELECT} WHERE p.author_id = ? AND p.id < ? AND p.deleted_at IS NULL \
         ORDER BY p.id DESC LIMIT ?"
    );
    let rows: Vec<PostRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(author_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut posts: Vec<PostView> = rows.into_iter().map(Into::into).collect();
    load_media(conn, &mut posts).await?;
    Ok(posts)
}

/// The author of a live post, locking the row until the transaction ends.
pub async fn lock_post_author(tx: &mut impl AsConn, id: u64) -> sqlx::Result<Option<u64>> {
    let row: Option<(u64,)> =
        query("SELECT author_id FROM posts WHERE id = ? AND deleted_at IS NULL FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.map(|(author,)| author))
}

/// The author of a live post.
pub async fn find_post_author(conn: impl Executor<'_>, id: u64) -> sqlx::Result<Option<u64>> {
    let row: Option<(u64,)> =
        query("SELECT author_id FROM posts WHERE id = ? AND deleted_at IS NULL")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(author,)| author))
}

/// Replaces a post's text and marks it edited.
pub async fn update_post_content(
    conn: impl Executor<'_>,
    id: u64,
    content: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE posts SET content = ?, edited_at = ? WHERE id = ?")
        .bind(content)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a post edited without touching its text (its media changed).
pub async fn mark_edited(conn: impl Executor<'_>, id: u64, now: DateTime<Utc>) -> sqlx::Result<()> {
    query("UPDATE posts SET edited_at = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a post deleted and uncounts it on its author.
pub async fn soft_delete_post(
    tx: &mut impl AsConn,
    id: u64,
    author_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE posts SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    query("UPDATE users SET post_count = post_count - 1 WHERE id = ? AND post_count > 0")
        .bind(author_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The post and request fingerprint a user's Idempotency-Key already stands for.
pub async fn find_idempotent_post(
    conn: impl Executor<'_>,
    user_id: u64,
    key: &str,
) -> sqlx::Result<Option<(u64, String)>> {
    query(
        "SELECT post_id, request_fingerprint FROM post_idempotency_keys \
         WHERE user_id = ? AND idempotency_key = ?",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// Records which post a user's Idempotency-Key created (fails on a duplicate key).
pub async fn insert_idempotency_key(
    tx: &mut impl AsConn,
    user_id: u64,
    key: &str,
    fingerprint: &str,
    post_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query(
        "INSERT INTO post_idempotency_keys \
         (user_id, idempotency_key, request_fingerprint, post_id, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(key)
    .bind(fingerprint)
    .bind(post_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
