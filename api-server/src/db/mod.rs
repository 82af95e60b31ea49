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
//!
//! The database is MySQL/MariaDB or, for the embedded default, a SQLite file (chosen by the
//! URL's scheme); `sql.rs` gives both one SQL surface. SQLite has no replicas: its one
//! "replica" is a read pool on the same file (WAL lets reads run beside the one writer).

pub mod sql;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use sql::{AsConn, Backend, Conn, Executor, Pool, PooledConn, Tx, query};

use crate::config::DatabaseConfig;

/// The MySQL migrations of `api-server/migrations/mysql`, embedded in the binary.
pub static MYSQL_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

/// The SQLite migrations of `api-server/migrations/sqlite` (the same schema), embedded.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The writer pool and the reader pools, cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    writer: Pool,
    readers: Arc<Readers>,
    writer_moves: Arc<WriterMoves>,
}

/// When the writer last refused a write as read-only, or a connection to it broke: a
/// switchover or failover moved the primary, and every writer connection opened before then
/// may lead to the old one.
///
/// The address the writer pool dials (the primary Service, or ProxySQL) follows the new
/// primary within a second or two, but an open connection stays with the server it was
/// opened to; such connections are closed when next taken from the pool instead of failing
/// one write each.
#[derive(Debug)]
pub struct WriterMoves {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last move seen (0: none).
    last_ms: AtomicU64,
}

impl WriterMoves {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Notes that the writer refused a write as read-only (now).
    fn record(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Whether a connection opened `age` ago predates the last move.
    fn predates_last_move(&self, age: Duration) -> bool {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last == 0 {
            return false;
        }
        let since_move = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(last - 1));
        age > since_move
    }
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
    pool: Pool,
    /// Milliseconds since `Readers::epoch` before which this replica is skipped (0 = healthy).
    dead_until_ms: AtomicU64,
}

impl Db {
    /// Opens lazily-connecting pools for the writer and each reader.
    ///
    /// Pools connect on first use, so the API starts (and reports not-ready) while MySQL is down.
    pub fn connect(config: &DatabaseConfig) -> anyhow::Result<Self> {
        let url = config.database_url.expose_secret();
        if url.starts_with("sqlite:") {
            anyhow::ensure!(
                config.database_reader_urls.is_empty(),
                "reader URLs need a MySQL database (SQLite has no replicas)"
            );
            let (writer, reader) = sqlite_pools(url, config)?;
            let replicas = vec![Replica {
                pool: reader,
                dead_until_ms: AtomicU64::new(0),
            }];
            return Ok(Self::from_pools(
                writer,
                replicas,
                config.database_reader_retry_after,
                Arc::new(WriterMoves::new()),
            ));
        }
        let writer_moves = Arc::new(WriterMoves::new());
        let writer = lazy_pool(
            &config.database_url,
            config,
            config.database_acquire_timeout,
            Some(writer_moves.clone()),
        )?;
        // A dead replica must cost a request little: fail over to the next one quickly.
        let reader_timeout = config.database_acquire_timeout.min(READER_ACQUIRE_TIMEOUT);
        let replicas = config
            .database_reader_urls
            .iter()
            .map(|url| {
                Ok(Replica {
                    pool: lazy_pool(url, config, reader_timeout, None)?,
                    dead_until_ms: AtomicU64::new(0),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::from_pools(
            writer,
            replicas,
            config.database_reader_retry_after,
            writer_moves,
        ))
    }

    fn from_pools(
        writer: Pool,
        replicas: Vec<Replica>,
        retry_after: Duration,
        writer_moves: Arc<WriterMoves>,
    ) -> Self {
        Self {
            writer,
            writer_moves,
            readers: Arc::new(Readers {
                replicas,
                next: AtomicUsize::new(0),
                retry_after,
                epoch: Instant::now(),
            }),
        }
    }

    /// The writer pool, for statements that change data and for reads that must see them.
    pub fn writer(&self) -> &Pool {
        &self.writer
    }

    /// Notes that the writer refused a write as read-only, or that a connection broke: the
    /// writer connections open now are closed when next taken, and new ones reach wherever
    /// the primary is now.
    pub fn writer_moved(&self) {
        self.writer_moves.record();
    }

    /// Which database the API runs on.
    pub fn backend(&self) -> Backend {
        self.writer.backend()
    }

    /// A connection for reads that may lag the writer slightly.
    pub async fn reader(&self) -> Result<PooledConn, sqlx::Error> {
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
        match &self.writer {
            Pool::MySql(pool) => MYSQL_MIGRATOR.run(pool).await,
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await,
        }
        .context("applying database migrations")
    }

    /// Waits until the writer answers, for at most `wait`: at start-up the database may
    /// still be starting beside the API (a new cluster), and a process that exited instead
    /// would be restarted with a growing back-off, coming up later than the database.
    pub async fn wait_for_writer(&self, wait: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + wait;
        let mut last_log: Option<Instant> = None;
        loop {
            match self.ping_writer().await {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() < deadline => {
                    if last_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                        tracing::warn!(%error, "waiting for the database writer to answer");
                        last_log = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => {
                    return Err(anyhow::Error::new(error).context(format!(
                        "the database writer did not answer within {wait:?}"
                    )));
                }
            }
        }
    }

    /// Checks that the writer answers.
    pub async fn ping_writer(&self) -> Result<(), sqlx::Error> {
        query("SELECT 1").execute(&self.writer).await.map(drop)
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
/// A pooled MySQL connection idle longer than this is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// A lazily connecting MySQL pool; the writer's (`writer_moves`) drops connections opened
/// before the primary last moved.
fn lazy_pool(
    url: &SecretString,
    config: &DatabaseConfig,
    acquire_timeout: Duration,
    writer_moves: Option<Arc<WriterMoves>>,
) -> anyhow::Result<Pool> {
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
    Ok(Pool::MySql(
        MySqlPoolOptions::new()
            .max_connections(config.database_max_connections)
            .min_connections(0)
            .acquire_timeout(acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            // sqlx pings every connection it hands out, a round trip before each query. A
            // connection back from use moments ago (sqlx pings it on release too) is taken
            // as good; only one idle for a while, which the server or a failover may have
            // dropped meanwhile, is checked. The price: right after a failover, a connection
            // used in the last second fails its next query once (503, then closed).
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let stale = writer_moves
                    .as_ref()
                    .is_some_and(|moves| moves.predates_last_move(meta.age));
                Box::pin(async move {
                    if stale {
                        return Ok(false);
                    }
                    if meta.idle_for > PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(options),
    ))
}

/// Connections to a SQLite file: a writer pool of one connection, so writers queue in order
/// for it (SQLite lets one write at a time; several writer connections would only spin on
/// the file lock, holding pool slots meanwhile), and a pool for reads, which WAL runs beside
/// the writer.
fn sqlite_pools(url: &str, config: &DatabaseConfig) -> anyhow::Result<(Pool, Pool)> {
    let options = SqliteConnectOptions::from_str(url)
        .context("parsing the SQLite database URL")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL loses no committed transaction on a process crash (only on power
        // loss), and spares an fsync per commit.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let file = database_file(&options)
        .context("a SQLite database must be a file (sqlite://path/sns.db), not in memory")?;
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating the database directory {}", parent.display()))?;
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(config.database_acquire_timeout)
        .connect_lazy_with(options.clone());
    let reader = SqlitePoolOptions::new()
        // SQLite runs each connection on a thread of its own; a few serve the reads of a
        // process on a couple of cores.
        .max_connections(config.database_max_connections.min(SQLITE_MAX_READERS))
        .min_connections(0)
        .acquire_timeout(config.database_acquire_timeout)
        .connect_lazy_with(options);
    Ok((Pool::Sqlite(writer), Pool::Sqlite(reader)))
}

/// The file of a `sqlite:` database URL (`None` for other URLs or in-memory databases).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let options = SqliteConnectOptions::from_str(url).ok()?;
    database_file(&options).map(std::path::Path::to_path_buf)
}

/// The file a SQLite database lives in; `None` in memory (sqlx names in-memory databases
/// `file:sqlx-in-memory-*`: each connection would see a database of its own, gone with its
/// last connection).
fn database_file(options: &SqliteConnectOptions) -> Option<&std::path::Path> {
    let file = options.get_filename();
    let in_memory = file.as_os_str().is_empty()
        || file == std::path::Path::new(":memory:")
        || file.to_string_lossy().starts_with("file:sqlx-in-memory");
    (!in_memory).then_some(file)
}

/// How long a SQLite writer waits for the database lock before its request fails.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Most connections the SQLite read pool opens.
const SQLITE_MAX_READERS: u32 = 8;

/// Runs a query that returns one id column, where `{ids}` in `sql` stands for one `?` per
/// entry of `ids`; `leading` values are bound before the list and `trailing` ones after it.
/// An empty `ids` returns nothing without asking MySQL (`IN ()` is not valid SQL).
pub async fn fetch_ids_in(
    conn: impl Executor<'_>,
    sql: &str,
    leading: &[u64],
    ids: &[u64],
    trailing: &[u64],
) -> Result<Vec<u64>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = sql.replace("{ids}", &sql::placeholders(ids.len(), "?"));
    Ok(query(sqlx::AssertSqlSafe(sql))
        .bind_all(leading.iter().chain(ids).chain(trailing))
        .fetch_all::<(u64,)>(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect())
}

/// The current time at the precision the database stores (MySQL's `DATETIME(6)`, the
/// microseconds of `sql::sqlite_time`), so a value written and read back compares equal.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_opened_before_the_primary_moved_are_stale() {
        let moves = WriterMoves::new();
        assert!(
            !moves.predates_last_move(Duration::from_secs(3600)),
            "no move yet"
        );
        std::thread::sleep(Duration::from_millis(20));
        moves.record();
        assert!(moves.predates_last_move(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !moves.predates_last_move(Duration::from_millis(5)),
            "opened after the move"
        );
    }
}
