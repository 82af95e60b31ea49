//! SQL of `comments` and the comment counter on `posts`.

use crate::db::{AsConn, Executor, query};
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::model::CommentView;
use crate::users::model::UserSummary;

#[derive(Debug, FromRow)]
struct CommentRow {
    id: u64,
    post_id: u64,
    author_id: u64,
    username: String,
    avatar_url: Option<String>,
    content: String,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
}

impl From<CommentRow> for CommentView {
    fn from(row: CommentRow) -> Self {
        Self {
            id: row.id,
            post_id: row.post_id,
            author: UserSummary {
                id: row.author_id,
                username: row.username,
                avatar_url: row.avatar_url,
            },
            content: row.content,
            created_at: row.created_at,
            edited_at: row.edited_at,
        }
    }
}

// Comments of deleted posts are hidden with their post.
const COMMENT_VIEW_SELECT: &str = "SELECT c.id, c.post_id, c.author_id, u.username, u.avatar_url, \
     c.content, c.created_at, c.edited_at \
     FROM comments c JOIN users u ON u.id = c.author_id \
     JOIN posts p ON p.id = c.post_id AND p.deleted_at IS NULL";

/// Inserts a comment and counts it on its post; returns the new id.
pub async fn insert_comment(
    tx: &mut impl AsConn,
    post_id: u64,
    author_id: u64,
    content: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let id =
        query("INSERT INTO comments (post_id, author_id, content, created_at) VALUES (?, ?, ?, ?)")
            .bind(post_id)
            .bind(author_id)
            .bind(content)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .last_insert_id();
    query("UPDATE posts SET comment_count = comment_count + 1 WHERE id = ?")
        .bind(post_id)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// Finds a comment on a live post.
pub async fn find_comment_view(
    conn: impl Executor<'_>,
    id: u64,
) -> sqlx::Result<Option<CommentView>> {
    let sql = format!("{COMMENT_VIEW_SELECT} WHERE c.id = ?");
    let row: Option<CommentRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Into::into))
}

/// A post's comments with ids above `after`, oldest first.
pub async fn list_post_comments(
    conn: impl Executor<'_>,
    post_id: u64,
    after: u64,
    limit: u32,
) -> sqlx::Result<Vec<CommentView>> {
    let sql =
        format!("{COMMENT_VIEW_SELECT} WHERE c.post_id = ? AND c.id > ? ORDER BY c.id ASC LIMIT ?");
    let rows: Vec<CommentRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(post_id)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Who may act on a comment: its author and its post's author.
#[derive(Debug, Clone, Copy, FromRow)]
pub struct CommentOwners {
    /// The comment's post.
    pub post_id: u64,
    /// Who wrote the comment.
    pub comment_author_id: u64,
    /// Who wrote the post.
    pub post_author_id: u64,
}

/// The owners of a comment on a live post, locking the comment until the transaction ends.
pub async fn lock_comment_owners(
    tx: &mut impl AsConn,
    id: u64,
) -> sqlx::Result<Option<CommentOwners>> {
    query(
        "SELECT c.post_id, c.author_id AS comment_author_id, p.author_id AS post_author_id \
         FROM comments c JOIN posts p ON p.id = c.post_id AND p.deleted_at IS NULL \
         WHERE c.id = ? FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await
}

/// Replaces a comment's text and marks it edited.
pub async fn update_comment_content(
    conn: impl Executor<'_>,
    id: u64,
    content: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE comments SET content = ?, edited_at = ? WHERE id = ?")
        .bind(content)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes a comment and uncounts it on its post.
pub async fn delete_comment(tx: &mut impl AsConn, id: u64, post_id: u64) -> sqlx::Result<()> {
    let deleted = query("DELETE FROM comments WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 1 {
        query(
            "UPDATE posts SET comment_count = comment_count - 1 WHERE id = ? AND comment_count > 0",
        )
        .bind(post_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
