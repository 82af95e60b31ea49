//! Bulk SQL fixtures for scenarios that need thousands of users (also used by the
//! benchmarks): rows are inserted directly, without password hashing.

// Shared with the benchmarks through `#[path]`: each binary uses a part of it.
#![allow(dead_code)]

use sqlx::MySqlConnection;

/// Inserts `count` users named `<prefix>_<n>`, returning their ids.
pub async fn insert_users(conn: &mut MySqlConnection, prefix: &str, count: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut builder = sqlx::QueryBuilder::new(
            "INSERT INTO users (username, email, password_hash, created_at, last_active_at) ",
        );
        builder.push_values(chunk, |mut row, i| {
            let name = format!("{prefix}_{i}");
            row.push_bind(name.clone())
                .push_bind(format!("{name}@example.com"))
                .push_bind("!")
                .push("UTC_TIMESTAMP(6)")
                .push("UTC_TIMESTAMP(6)");
        });
        let first = builder
            .build()
            .execute(&mut *conn)
            .await
            .expect("inserting users")
            .last_insert_id();
        // One multi-row insert takes consecutive ids from the first.
        ids.extend((0..chunk.len() as u64).map(|offset| first + offset));
    }
    ids
}

/// Makes each of `followers` follow `followee`, counters included.
pub async fn insert_follows(conn: &mut MySqlConnection, followers: &[u64], followee: u64) {
    for chunk in followers.chunks(1000) {
        let mut builder =
            sqlx::QueryBuilder::new("INSERT INTO follows (follower_id, followee_id, created_at) ");
        builder.push_values(chunk, |mut row, follower| {
            row.push_bind(*follower)
                .push_bind(followee)
                .push("UTC_TIMESTAMP(6)");
        });
        builder
            .build()
            .execute(&mut *conn)
            .await
            .expect("inserting follows");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE users SET following_count = following_count + 1 WHERE id IN ({})",
            chunk
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )))
        .execute(&mut *conn)
        .await
        .expect("counting followees");
    }
    sqlx::query("UPDATE users SET follower_count = follower_count + ? WHERE id = ?")
        .bind(followers.len() as u64)
        .bind(followee)
        .execute(&mut *conn)
        .await
        .expect("counting followers");
}

/// Inserts `count` posts by `author` directly, returning their ids, oldest first.
pub async fn insert_posts(conn: &mut MySqlConnection, author: u64, count: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
        let mut builder =
            sqlx::QueryBuilder::new("INSERT INTO posts (author_id, content, created_at) ");
        builder.push_values(chunk, |mut row, i| {
            row.push_bind(author)
                .push_bind(format!("post number {i} with a little text in it"))
                .push("UTC_TIMESTAMP(6)");
        });
        let first = builder
            .build()
            .execute(&mut *conn)
            .await
            .expect("inserting posts")
            .last_insert_id();
        ids.extend((0..chunk.len() as u64).map(|offset| first + offset));
    }
    sqlx::query("UPDATE users SET post_count = post_count + ? WHERE id = ?")
        .bind(count as u64)
        .bind(author)
        .execute(&mut *conn)
        .await
        .expect("counting posts");
    ids
}
