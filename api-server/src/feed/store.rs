//! SQL of the feed pipeline: the fan-out outbox, follower pages, and feeds read from MySQL
//! (the source Redis feeds are rebuilt from, and the fallback when they cannot be used).

use super::jobs::FeedJob;
use crate::db::fetch_ids_in;
use crate::db::{Executor, Pool, query};
use chrono::{DateTime, Utc};

/// A claimed outbox job.
#[derive(Debug, Clone, Copy)]
pub struct OutboxJob {
    /// Outbox row id.
    pub id: u64,
    /// What to do.
    pub job: FeedJob,
    /// Times the job was claimed before (this claim included).
    pub attempts: u32,
    /// When it was recorded (for a fan-out, when its post was committed).
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: u64,
    kind: String,
    post_id: Option<u64>,
    author_id: Option<u64>,
    user_id: Option<u64>,
    attempts: u32,
    created_at: DateTime<Utc>,
}

impl OutboxRow {
    fn job(&self) -> Option<FeedJob> {
        match (
            self.kind.as_str(),
            self.post_id,
            self.author_id,
            self.user_id,
        ) {
            ("fanout", Some(post_id), Some(author_id), _) => {
                Some(FeedJob::FanOut { post_id, author_id })
            }
            ("rebuild", _, _, Some(user_id)) => Some(FeedJob::RebuildFeed { user_id }),
            _ => None,
        }
    }
}

/// Records a job, available to workers from `available_at` (in the caller's transaction
/// when it must commit with the change that caused it, as a post's fan-out does).
pub async fn insert_outbox_job(
    conn: impl Executor<'_>,
    job: FeedJob,
    now: DateTime<Utc>,
    available_at: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let (kind, post_id, author_id, user_id) = match job {
        FeedJob::FanOut { post_id, author_id } => ("fanout", Some(post_id), Some(author_id), None),
        FeedJob::RebuildFeed { user_id } => ("rebuild", None, None, Some(user_id)),
    };
    let result = query(
        "INSERT INTO feed_outbox (kind, post_id, author_id, user_id, available_at, created_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(kind)
    .bind(post_id)
    .bind(author_id)
    .bind(user_id)
    .bind(available_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.last_insert_id())
}

/// Claims up to `limit` available jobs for `lease` (other workers skip them meanwhile).
pub async fn claim_outbox_jobs(
    pool: &Pool,
    limit: u32,
    now: DateTime<Utc>,
    lease: chrono::Duration,
) -> sqlx::Result<Vec<OutboxJob>> {
    let mut tx = pool.begin().await?;
    // SKIP LOCKED: API replicas polling together split the jobs instead of queueing.
    let rows: Vec<OutboxRow> = query(
        "SELECT id, kind, post_id, author_id, user_id, attempts, created_at FROM feed_outbox \
         WHERE available_at <= ? ORDER BY available_at, id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut tx)
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(job) = row.job() else {
            // Written by a newer version that knows a kind this one does not: leave it to
            // that version (it stays available).
            tracing::warn!(
                id = row.id,
                kind = row.kind,
                "outbox job of an unknown kind; skipped"
            );
            continue;
        };
        query("UPDATE feed_outbox SET available_at = ?, attempts = attempts + 1 WHERE id = ?")
            .bind(now + lease)
            .bind(row.id)
            .execute(&mut tx)
            .await?;
        jobs.push(OutboxJob {
            id: row.id,
            job,
            attempts: row.attempts + 1,
            created_at: row.created_at,
        });
    }
    tx.commit().await?;
    Ok(jobs)
}

/// Removes a finished job.
pub async fn delete_outbox_job(conn: impl Executor<'_>, id: u64) -> sqlx::Result<()> {
    query("DELETE FROM feed_outbox WHERE id = ?")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Puts a failed job back, available again at `available_at`.
pub async fn postpone_outbox_job(
    conn: impl Executor<'_>,
    id: u64,
    available_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE feed_outbox SET available_at = ? WHERE id = ?")
        .bind(available_at)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Parks a job that failed every retry: workers no longer see it until it is unparked.
pub async fn park_outbox_job(
    conn: impl Executor<'_>,
    id: u64,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    query("UPDATE feed_outbox SET available_at = ?, parked_at = ?, attempts = 0 WHERE id = ?")
        .bind(parked_until())
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The `available_at` of a parked job: later than any claim will look.
fn parked_until() -> DateTime<Utc> {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Makes a parked job available to workers again at `available_at`; returns whether it was
/// still parked (another process may have unparked it first).
pub async fn unpark_outbox_job(
    conn: impl Executor<'_>,
    id: u64,
    available_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let result = query(
        "UPDATE feed_outbox SET available_at = ?, parked_at = NULL \
         WHERE id = ? AND parked_at IS NOT NULL",
    )
    .bind(available_at)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// The oldest parked jobs, up to `limit` (those no process holds in memory any more).
pub async fn list_parked_outbox_jobs(
    conn: impl Executor<'_>,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> = query(
        "SELECT id FROM feed_outbox WHERE parked_at IS NOT NULL ORDER BY parked_at, id LIMIT ?",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Jobs in the outbox, and how many of them are parked.
pub async fn count_outbox_jobs(conn: impl Executor<'_>) -> sqlx::Result<(u64, u64)> {
    let (total, parked): (i64, i64) = query(
        "SELECT COUNT(*), CAST(COALESCE(SUM(parked_at IS NOT NULL), 0) AS SIGNED) FROM feed_outbox",
    )
    .fetch_one(conn)
    .await?;
    Ok((
        u64::try_from(total).unwrap_or(0),
        u64::try_from(parked).unwrap_or(0),
    ))
}

/// Follower count of an author and whether their post is still live.
pub async fn find_fanout_subject(
    conn: impl Executor<'_>,
    post_id: u64,
) -> sqlx::Result<Option<(u64, u64)>> {
    query(
        "SELECT p.author_id, u.follower_count FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.id = ? AND p.deleted_at IS NULL",
    )
    .bind(post_id)
    .fetch_optional(conn)
    .await
}

/// One page of an author's followers active since `active_since`, by id after `after`.
pub async fn list_active_follower_ids(
    conn: impl Executor<'_>,
    author_id: u64,
    after: u64,
    active_since: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> = query(
        "SELECT f.follower_id FROM follows f JOIN users u ON u.id = f.follower_id \
         WHERE f.followee_id = ? AND f.follower_id > ? AND u.last_active_at >= ? \
         ORDER BY f.follower_id LIMIT ?",
    )
    .bind(author_id)
    .bind(after)
    .bind(active_since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Ids of live posts by `user_id` and everyone they follow, below `before` and above
/// `after`, newest first: the feed as MySQL knows it.
pub async fn list_feed_ids(
    conn: impl Executor<'_>,
    user_id: u64,
    after: u64,
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    // Two index range scans (posts_author per followee, and the user's own) merged by id.
    let rows: Vec<(u64,)> = query(
        "SELECT id FROM ( \
           SELECT p.id FROM follows f JOIN posts p ON p.author_id = f.followee_id \
           WHERE f.follower_id = ? AND p.id > ? AND p.id < ? AND p.deleted_at IS NULL \
           UNION ALL \
           SELECT p.id FROM posts p \
           WHERE p.author_id = ? AND p.id > ? AND p.id < ? AND p.deleted_at IS NULL \
         ) feed ORDER BY id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(after)
    .bind(before)
    .bind(user_id)
    .bind(after)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Ids of the newest live feed posts of `user_id` written since `since` (a rebuild's source).
pub async fn list_recent_feed_ids(
    conn: impl Executor<'_>,
    user_id: u64,
    since: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> = query(
        "SELECT id FROM ( \
           SELECT p.id FROM follows f JOIN posts p ON p.author_id = f.followee_id \
           WHERE f.follower_id = ? AND p.created_at >= ? AND p.deleted_at IS NULL \
           UNION ALL \
           SELECT p.id FROM posts p \
           WHERE p.author_id = ? AND p.created_at >= ? AND p.deleted_at IS NULL \
         ) feed ORDER BY id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(since)
    .bind(user_id)
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// The highest post id so far (0 when there is none).
pub async fn find_max_post_id(conn: impl Executor<'_>) -> sqlx::Result<u64> {
    let (max,): (Option<u64>,) = query("SELECT MAX(id) FROM posts").fetch_one(conn).await?;
    Ok(max.unwrap_or(0))
}

/// Records activity; returns when the user was active before, if that was before `stale`
/// (the update is skipped otherwise, so reads do not write on every request).
pub async fn touch_activity(
    pool: &Pool,
    user_id: u64,
    now: DateTime<Utc>,
    stale: DateTime<Utc>,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    let Some(last) = find_last_active(pool, user_id).await? else {
        return Ok(None);
    };
    if last >= stale {
        return Ok(None);
    }
    query("UPDATE users SET last_active_at = ? WHERE id = ?")
        .bind(now)
        .bind(user_id)
        .execute(pool)
        .await?;
    Ok(Some(last))
}

/// The authors `user_id` follows who have more than `big_author_followers` followers.
pub async fn list_big_followees(
    conn: impl Executor<'_>,
    user_id: u64,
    big_author_followers: u64,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> = query(
        "SELECT f.followee_id FROM follows f JOIN users a ON a.id = f.followee_id \
         WHERE f.follower_id = ? AND a.follower_count > ?",
    )
    .bind(user_id)
    .bind(big_author_followers)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Ids of live posts by `author_ids` below `before`, newest first.
pub async fn list_authors_post_ids(
    conn: impl Executor<'_>,
    author_ids: &[u64],
    before: u64,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    fetch_ids_in(
        conn,
        "SELECT id FROM posts WHERE author_id IN ({ids}) AND id < ? AND deleted_at IS NULL \
         ORDER BY id DESC LIMIT ?",
        &[],
        author_ids,
        &[before, u64::from(limit)],
    )
    .await
}

/// Ids of an author's live posts newer than `since`, newest first (follow backfill and
/// unfollow removal).
pub async fn list_recent_author_post_ids(
    conn: impl Executor<'_>,
    author_id: u64,
    since: DateTime<Utc>,
    limit: u32,
) -> sqlx::Result<Vec<u64>> {
    let rows: Vec<(u64,)> = query(
        "SELECT id FROM posts WHERE author_id = ? AND created_at >= ? AND deleted_at IS NULL \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(author_id)
    .bind(since)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// When the user was last active.
pub async fn find_last_active(
    conn: impl Executor<'_>,
    user_id: u64,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    let row: Option<(DateTime<Utc>,)> = query("SELECT last_active_at FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(at,)| at))
}
