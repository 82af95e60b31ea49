//! The read/write split: every store call states its intent by taking a connection from
//! [`Db::writer`] or [`Db::reader`] (the Rust analogue of `@Transactional(readOnly = true)`).
//!
//! ```text
//! reader() ──► next healthy replica (round-robin) ──► acquire ok ──► use it
//!                      │ acquire fails                    
//!                      └► mark dead for `retry_after`, try the next one
//!              no healthy replica left ─────────────────► the writer
//! ```
//! Behind ProxySQL there are no reader URLs and the same code sends everything to one pool.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool};

use crate::config::DatabaseConfig;

/// The migrations of `api-server/migrations`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A pooled connection to MySQL.
pub type DbConn = PoolConnection<MySql>;

/// The writer pool and the reader pools, cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    writer: MySqlPool,
    readers: Arc<Readers>,
}

#[derive(Debug)]
struct Readers {
    replicas: Vec<Replica>,
    next: AtomicUsize,
    retry_after: Duration,
    epoch: Instant,
}

#[derive(Debug)]
struct Replica {
    pool: MySqlPool,
    /// Milliseconds since `Readers::epoch` before which this replica is skipped (0 = healthy).
    dead_until_ms: AtomicU64,
}

impl Db {
    /// Opens lazily-connecting pools for the writer and each reader.
    ///
    /// Pools connect on first use, so the API starts (and reports not-ready) while MySQL is down.
    pub fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let writer = lazy_pool(
            &config.database_url,
            config,
            config.database_acquire_timeout,
        )?;
        // A dead replica must cost a request little: fail over to the next one quickly.
        let reader_timeout = config.database_acquire_timeout.min(READER_ACQUIRE_TIMEOUT);
        let replicas = config
            .database_reader_urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    pool: lazy_pool(url, config, reader_timeout)?,
                    dead_until_ms: AtomicU64::new(0),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::from_pools(
            writer,
            replicas,
            config.database_reader_retry_after,
        ))
    }

    fn from_pools(writer: MySqlPool, replicas: Vec<Replica>, retry_after: Duration) -> Self {
        Self {
            writer,
            readers: Arc::new(Readers {
                replicas,
                next: AtomicUsize::new(0),
                retry_after,
                epoch: Instant::now(),
            }),
        }
    }

    /// The writer pool, for statements that change data and for reads that must see them.
    pub fn writer(&self) -> &MySqlPool {
        &self.writer
    }

    /// A connection for reads that may lag the writer slightly.
    pub async fn reader(&self) -> Result<DbConn, sqlx::Error> {
        let readers = &self.readers;
        let count = readers.replicas.len();
        if count > 0 {
            let start = readers.next.fetch_add(1, Ordering::Relaxed);
            for offset in 0..count {
                let replica = &readers.replicas[(start + offset) % count];
                let now_ms = readers.elapsed_ms();
                if replica.dead_until_ms.load(Ordering::Relaxed) > now_ms {
                    continue;
                }
                match replica.pool.acquire().await {
                    Ok(conn) => {
                        replica.dead_until_ms.store(0, Ordering::Relaxed);
                        return Ok(conn);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "database reader unavailable; skipping it for a while");
                        let until = readers.elapsed_ms() + readers.retry_after.as_millis() as u64;
                        replica.dead_until_ms.store(until, Ordering::Relaxed);
                    }
                }
            }
        }
        self.writer.acquire().await
    }

    /// Applies pending migrations on the writer.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR
            .run(&self.writer)
            .await
            .context("applying database migrations")
    }

    /// Checks that the writer answers.
    pub async fn ping_writer(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.writer)
            .await
            .map(drop)
    }

    /// Pool gauges for `/metrics`: (pool name, open connections, idle connections).
    pub fn pool_usage(&self) -> Vec<(String, u32, usize)> {
        let mut usage = vec![(
            "writer".to_owned(),
            self.writer.size(),
            self.writer.num_idle(),
        )];
        for (index, replica) in self.readers.replicas.iter().enumerate() {
            usage.push((
                format!("reader{index}"),
                replica.pool.size(),
                replica.pool.num_idle(),
            ));
        }
        usage
    }
}

impl Readers {
    fn elapsed_ms(&self) -> u64 {
        // Offset by one so that 0 always means "healthy".
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

const READER_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(750);

fn lazy_pool(
    url: &SecretString,
    config: &DatabaseConfig,
    acquire_timeout: Duration,
) -> anyhow::Result<MySqlPool> {
    let options = MySqlConnectOptions::from_str(url.expose_secret())
        .context("parsing a database URL")?
        .charset("utf8mb4")
        // Timestamps are written and read as UTC whatever the server's zone.
        .timezone(Some(String::from("+00:00")))
        // No `SET sql_mode=(SELECT CONCAT(...))` on connect: ProxySQL cannot parse it and pins
        // such a session to one hostgroup, which would send every read to the writer. Our SQL
        // uses neither `||` nor engine names, so those modes change nothing for it.
        .pipes_as_concat(false)
        .no_engine_substitution(false);
    Ok(MySqlPoolOptions::new()
        .max_connections(config.database_max_connections)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(Some(Duration::from_secs(300)))
        .connect_lazy_with(options))
}

/// Runs a query that returns one id column, where `{ids}` in `sql` stands for one `?` per
/// entry of `ids`; `leading` values are bound before the list and `trailing` ones after it.
/// An empty `ids` returns nothing without asking MySQL (`IN ()` is not valid SQL).
pub async fn fetch_ids_in(
    conn: impl sqlx::MySqlExecutor<'_>,
    sql: &str,
    leading: &[u64],
    ids: &[u64],
    trailing: &[u64],
) -> Result<Vec<u64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = sql.replace("{ids}", &vec!["?"; ids.len()].join(","));
    let mut query = sqlx::query_as::<_, (u64,)>(sqlx::AssertSqlSafe(sql));
    for value in leading.iter().chain(ids).chain(trailing) {
        query = query.bind(value);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// The current time at the precision MySQL stores (`DATETIME(6)`), so a value written and
/// read back compares equal.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}
