//! SQL of the `follows` table and the follow counters on `users`.

use crate::db::{AsConn, Executor, query};
use chrono::{DateTime, Utc};

use crate::users::model::UserSummary;

/// Adds the follow if absent, keeping both counters exact; returns whether it was added.
pub async fn insert_follow(
    tx: &mut impl AsConn,
    follower_id: u64,
    followee_id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<bool> {
    lock_users(tx, follower_id, followee_id).await?;
    let inserted =
        query("INSERT IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)")
            .bind(follower_id)
            .bind(followee_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    if inserted {
        adjust_counters(tx, follower_id, followee_id, "+ 1").await?;
    }
    Ok(inserted)
}

/// Removes the follow if present, keeping both counters exact; returns whether it existed.
pub async fn delete_follow(
    tx: &mut impl AsConn,
    follower_id: u64,
    followee_id: u64,
) -> sqlx::Result<bool> {
    lock_users(tx, follower_id, followee_id).await?;
    let deleted = query("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?")
        .bind(follower_id)
        .bind(followee_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if deleted {
        adjust_counters(tx, follower_id, followee_id, "- 1").await?;
    }
    Ok(deleted)
}

/// Locks both user rows (X, in id order) before the follow row is touched: the insert's
/// foreign-key checks take shared locks on them, and upgrading those to update the counters
/// deadlocks two concurrent follows of one user.
async fn lock_users(tx: &mut impl AsConn, a: u64, b: u64) -> sqlx::Result<()> {
    query("SELECT id FROM users WHERE id IN (?, ?) ORDER BY id FOR UPDATE")
        .bind(a)
        .bind(b)
        .fetch_all::<(u64,)>(&mut *tx)
        .await?;
    Ok(())
}

async fn adjust_counters(
    tx: &mut impl AsConn,
    follower_id: u64,
    followee_id: u64,
    delta: &'static str,
) -> sqlx::Result<()> {
    for id in [follower_id, followee_id] {
        let column = if id == follower_id {
            "following_count"
        } else {
            "follower_count"
        };
        let sql = format!("UPDATE users SET {column} = {column} {delta} WHERE id = ?");
        query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The follower count of a user, if the user exists.
pub async fn find_follower_count(
    conn: impl Executor<'_>,
    user_id: u64,
) -> sqlx::Result<Option<u64>> {
    let row: Option<(u64,)> = query("SELECT follower_count FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(count,)| count))
}

/// Followers of `user_id` with ids below `before`, highest id first.
pub async fn list_followers(
    conn: impl Executor<'_>,
    user_id: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<UserSummary>> {
    query(
        "SELECT u.id, u.username, u.avatar_url FROM follows f JOIN users u ON u.id = f.follower_id \
         WHERE f.followee_id = ? AND f.follower_id < ? ORDER BY f.follower_id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Users `user_id` follows with ids below `before`, highest id first.
pub async fn list_following(
    conn: impl Executor<'_>,
    user_id: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<UserSummary>> {
    query(
        "SELECT u.id, u.username, u.avatar_url FROM follows f JOIN users u ON u.id = f.followee_id \
         WHERE f.follower_id = ? AND f.followee_id < ? ORDER BY f.followee_id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}
