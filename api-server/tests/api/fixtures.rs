//! Bulk SQL fixtures for scenarios that need thousands of users (also used by the
//! benchmarks): rows are inserted directly, without password hashing, on MySQL or SQLite.

// Shared with the benchmarks through `#[path]`: each binary uses a part of it.
#![allow(dead_code)]

use sns_api::db::sql::placeholders;
use sns_api::db::{AsConn, query};

/// Rows per multi-row insert (SQLite allows 32,766 bound values per statement).
const CHUNK: usize = 1000;

/// Inserts `count` users named `<prefix>_<n>`, returning their ids in order.
pub async fn insert_users(conn: &mut impl AsConn, prefix: &str, count: usize) -> Vec<u64> {
    let now = sns_api::db::now();
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(CHUNK) {
        let names: Vec<String> = chunk.iter().map(|i| format!("{prefix}_{i}")).collect();
        let sql = format!(
            "INSERT INTO users (username, email, password_hash, created_at, last_active_at) \
             VALUES {}",
            placeholders(names.len(), "(?, ?, '!', ?, ?)")
        );
        let mut insert = query(sqlx::AssertSqlSafe(sql));
        for name in &names {
            insert = insert
                .bind(name)
                .bind(format!("{name}@example.com"))
                .bind(now)
                .bind(now);
        }
        insert.execute(&mut *conn).await.expect("inserting users");
        // Read the ids back: MySQL reports the first id of a multi-row insert, SQLite the last.
        let sql = format!(
            "SELECT id FROM users WHERE username IN ({}) ORDER BY id",
            placeholders(names.len(), "?")
        );
        let rows: Vec<(u64,)> = query(sqlx::AssertSqlSafe(sql))
            .bind_all(&names)
            .fetch_all(&mut *conn)
            .await
            .expect("reading user ids");
        ids.extend(rows.into_iter().map(|(id,)| id));
    }
    ids
}

/// Makes each of `followers` follow `followee`, counters included.
pub async fn insert_follows(conn: &mut impl AsConn, followers: &[u64], followee: u64) {
    let now = sns_api::db::now();
    for chunk in followers.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO follows (follower_id, followee_id, created_at) VALUES {}",
            placeholders(chunk.len(), "(?, ?, ?)")
        );
        let mut insert = query(sqlx::AssertSqlSafe(sql));
        for follower in chunk {
            insert = insert.bind(follower).bind(followee).bind(now);
        }
        insert.execute(&mut *conn).await.expect("inserting follows");
        let sql = format!(
            "UPDATE users SET following_count = following_count + 1 WHERE id IN ({})",
            placeholders(chunk.len(), "?")
        );
        query(sqlx::AssertSqlSafe(sql))
            .bind_all(chunk)
            .execute(&mut *conn)
            .await
            .expect("counting followees");
    }
    query("UPDATE users SET follower_count = follower_count + ? WHERE id = ?")
        .bind(followers.len() as u64)
        .bind(followee)
        .execute(&mut *conn)
        .await
        .expect("counting followers");
}

/// Inserts `count` posts by `author` directly, returning their ids, oldest first.
pub async fn insert_posts(conn: &mut impl AsConn, author: u64, count: usize) -> Vec<u64> {
    let now = sns_api::db::now();
    let mut ids = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(CHUNK) {
        let (before,): (Option<u64>,) = query("SELECT MAX(id) FROM posts")
            .fetch_one(&mut *conn)
            .await
            .expect("reading the last post id");
        let sql = format!(
            "INSERT INTO posts (author_id, content, created_at) VALUES {}",
            placeholders(chunk.len(), "(?, ?, ?)")
        );
        let mut insert = query(sqlx::AssertSqlSafe(sql));
        for i in chunk {
            insert = insert
                .bind(author)
                .bind(format!("post number {i} with a little text in it"))
                .bind(now);
        }
        insert.execute(&mut *conn).await.expect("inserting posts");
        let rows: Vec<(u64,)> =
            query("SELECT id FROM posts WHERE author_id = ? AND id > ? ORDER BY id LIMIT ?")
                .bind(author)
                .bind(before.unwrap_or(0))
                .bind(chunk.len() as u64)
                .fetch_all(&mut *conn)
                .await
                .expect("reading post ids");
        ids.extend(rows.into_iter().map(|(id,)| id));
    }
    query("UPDATE users SET post_count = post_count + ? WHERE id = ?")
        .bind(count as u64)
        .bind(author)
        .execute(&mut *conn)
        .await
        .expect("counting posts");
    ids
}
