//! SQL of the `users` table.

use crate::db::{Executor, query};
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::model::{UpdateProfileRequest, UserProfile};

/// A profile row, with whether the viewer follows the user.
#[derive(Debug, FromRow)]
struct ProfileRow {
    id: u64,
    username: String,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    created_at: DateTime<Utc>,
    post_count: u64,
    follower_count: u64,
    following_count: u64,
    following: i64,
}

impl From<ProfileRow> for UserProfile {
    fn from(row: ProfileRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            display_name: row.display_name,
            bio: row.bio,
            avatar_url: row.avatar_url,
            created_at: row.created_at,
            post_count: row.post_count,
            follower_count: row.follower_count,
            following_count: row.following_count,
            following: row.following != 0,
        }
    }
}

// `?` 1 is the viewer (0 when anonymous: no user has id 0).
const PROFILE_COLUMNS: &str = "SELECT u.id, u.username, u.display_name, u.bio, u.avatar_url, \
     u.created_at, u.post_count, u.follower_count, u.following_count, \
     EXISTS(SELECT 1 FROM follows f WHERE f.follower_id = ? AND f.followee_id = u.id) AS following \
     FROM users u";

/// Inserts a new account and returns its id.
pub async fn insert_user(
    conn: impl Executor<'_>,
    username: &str,
    email: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let result = query(
        "INSERT INTO users (username, email, password_hash, created_at, last_active_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(username)
    .bind(fold_email(email))
    .bind(password_hash)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.last_insert_id())
}

/// Finds a profile by id, as `viewer` sees it.
pub async fn find_profile_by_id(
    conn: impl Executor<'_>,
    id: u64,
    viewer: Option<u64>,
) -> sqlx::Result<Option<UserProfile>> {
    let sql = format!("{PROFILE_COLUMNS} WHERE u.id = ?");
    let row: Option<ProfileRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(viewer.unwrap_or(0))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Into::into))
}

/// Finds a profile by username, as `viewer` sees it.
pub async fn find_profile_by_username(
    conn: impl Executor<'_>,
    username: &str,
    viewer: Option<u64>,
) -> sqlx::Result<Option<UserProfile>> {
    let sql = format!("{PROFILE_COLUMNS} WHERE u.username = ?");
    let row: Option<ProfileRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(viewer.unwrap_or(0))
        .bind(username)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(Into::into))
}

/// Lists profiles whose username or display name starts with `prefix`, by id after `after`.
pub async fn search_profiles(
    conn: impl Executor<'_>,
    prefix: &str,
    after: u64,
    limit: u32,
    viewer: Option<u64>,
) -> sqlx::Result<Vec<UserProfile>> {
    let pattern = format!("{}%", escape_like(prefix));
    let sql = format!(
        "{PROFILE_COLUMNS} WHERE (u.username LIKE ? ESCAPE '!' OR u.display_name LIKE ? ESCAPE '!') \
         AND u.id > ? \
         ORDER BY u.id LIMIT ?"
    );
    let rows: Vec<ProfileRow> = query(sqlx::AssertSqlSafe(sql))
        .bind(viewer.unwrap_or(0))
        .bind(&pattern)
        .bind(&pattern)
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// An email address as stored and looked up: lowercased (Unicode), so addresses that differ
/// only in case are one address on every database (SQLite's NOCASE folds ASCII only).
fn fold_email(email: &str) -> String {
    email.to_lowercase()
}

/// Escapes `LIKE` wildcards so a prefix matches literally (`_` is common in usernames). The
/// escape character is `!` (`ESCAPE '!'`): a backslash is written differently in MySQL's and
/// SQLite's string literals.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped
}

/// The id and password hash of the account whose username or email is `login`.
pub async fn find_credentials(
    conn: impl Executor<'_>,
    login: &str,
) -> sqlx::Result<Option<(u64, String)>> {
    query("SELECT id, password_hash FROM users WHERE username = ? OR email = ? LIMIT 1")
        .bind(login)
        .bind(fold_email(login))
        .fetch_optional(conn)
        .await
}

/// Applies the present fields of a profile update; an empty string stores NULL.
pub async fn update_profile(
    conn: impl Executor<'_>,
    id: u64,
    update: &UpdateProfileRequest,
) -> sqlx::Result<()> {
    // Each column keeps its value unless the field was sent (flag = 1).
    query(
        "UPDATE users SET \
           display_name = CASE WHEN ? THEN NULLIF(?, '') ELSE display_name END, \
           bio = CASE WHEN ? THEN NULLIF(?, '') ELSE bio END, \
           avatar_url = CASE WHEN ? THEN NULLIF(?, '') ELSE avatar_url END \
         WHERE id = ?",
    )
    .bind(update.display_name.is_some())
    .bind(update.display_name.as_deref().unwrap_or(""))
    .bind(update.bio.is_some())
    .bind(update.bio.as_deref().unwrap_or(""))
    .bind(update.avatar_url.is_some())
    .bind(update.avatar_url.as_deref().unwrap_or(""))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records that the user was active now (feeds skip users inactive for days).
pub async fn touch_last_active(
    conn: impl Executor<'_>,
    id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE users SET last_active_at = ? WHERE id = ?")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether a user with this id exists.
pub async fn user_exists(conn: impl Executor<'_>, id: u64) -> sqlx::Result<bool> {
    let found: Option<(u64,)> = query("SELECT id FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like("a_b%c!\\"), "a!_b!%c!!\\");
    }
}
