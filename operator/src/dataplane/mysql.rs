//! MySQL (MariaDB) replication as the servers report it: which server is writable
//! (`@@read_only = 0`), and each replica's threads, lag and GTID position.
//!
//! MariaDB answers `SHOW ALL SLAVES STATUS` (one row per replication source; columns
//! `Slave_IO_Running`, `Seconds_Behind_Master`, `Gtid_Slave_Pos`, ...); MySQL 8 answers
//! `SHOW REPLICA STATUS` (`Replica_IO_Running`, `Seconds_Behind_Source`,
//! `Executed_Gtid_Set`, ...). The flavour is taken from `VERSION()`, and columns are looked
//! up under both names.
//!
//! The queries go through the text protocol (`raw_sql`): MariaDB does not prepare every
//! `SHOW` statement.

use std::time::Duration;

use futures::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use sqlx::mysql::{MySqlConnectOptions, MySqlRow};
use sqlx::{Connection, MySqlConnection, Row};

use super::plane::bounded;
use super::{DataPlaneError, PlaneFuture};

/// One MySQL server: its pod name (for messages) and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MysqlServer {
    /// Pod name, or any label for messages.
    pub name: String,
    /// IP address or host name.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl MysqlServer {
    /// `host:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The account the operator reads replication state with.
#[derive(Clone, Debug)]
pub struct MysqlLogin {
    /// User name.
    pub user: String,
    /// Password.
    pub password: SecretString,
}

/// One replica's replication threads, as `SHOW ALL SLAVES STATUS` reports them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The IO thread (receiving the primary's binlog) says `Yes`.
    pub is_io_running: bool,
    /// The SQL thread (applying it) says `Yes`.
    pub is_sql_running: bool,
    /// `Seconds_Behind_Master`; `None` (NULL) while a thread is stopped.
    pub seconds_behind: Option<u64>,
    /// GTID position applied (`Gtid_Slave_Pos`, or `Executed_Gtid_Set` on MySQL).
    pub gtid_position: String,
    /// `Master_Host:Master_Port` it replicates from.
    pub source: String,
    /// `Last_IO_Error` or `Last_SQL_Error`, when one is set.
    pub last_error: Option<String>,
}

/// One replica's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaHealth {
    /// Replication is configured; how its threads are doing.
    Configured {
        /// Pod name.
        name: String,
        /// The threads.
        status: ReplicaStatus,
    },
    /// The server answers but replicates from nobody.
    NotConfigured {
        /// Pod name.
        name: String,
    },
    /// The server did not answer.
    Unreachable {
        /// Pod name.
        name: String,
        /// Why.
        error: String,
    },
}

/// The primary and its replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationHealth {
    /// `Err` holds why the primary could not be read.
    pub primary: Result<PrimaryStatus, String>,
    /// One entry per replica asked, in order.
    pub replicas: Vec<ReplicaHealth>,
}

/// What the primary says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryStatus {
    /// `@@read_only` is set (a primary should take writes).
    pub is_read_only: bool,
    /// `@@gtid_binlog_pos` (MariaDB) or `@@gtid_executed` (MySQL).
    pub gtid_position: String,
    /// Whether commits wait for a replica's acknowledgement now
    /// (`Rpl_semi_sync_master_status`; `None` where the server does not say).
    pub is_semisync_waiting: Option<bool>,
}

/// One reason replication is not healthy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationProblem {
    /// One word for a condition's reason, e.g. `ReplicaNotReplicating`.
    pub reason: &'static str,
    /// One sentence naming the server and what is wrong.
    pub message: String,
}

impl ReplicationHealth {
    /// Why replication is not healthy, one entry per server; empty when it is. With
    /// `semisync`, a primary whose commits no longer wait for a replica is one.
    pub fn problems(
        &self,
        primary: &str,
        max_lag: Duration,
        semisync: bool,
    ) -> Vec<ReplicationProblem> {
        let mut problems = Vec::new();
        let mut problem = |reason, message| problems.push(ReplicationProblem { reason, message });
        match &self.primary {
            Err(error) => problem(
                "PrimaryUnreachable",
                format!("primary {primary} does not answer: {error}"),
            ),
            Ok(status) if status.is_read_only => {
                problem("PrimaryReadOnly", format!("primary {primary} is read-only"));
            }
            Ok(status) if semisync && status.is_semisync_waiting == Some(false) => problem(
                "SemisyncOff",
                format!(
                    "primary {primary} commits without waiting for a replica: no replica \
                     acknowledged within the semi-sync timeout, so a failover now could lose \
                     acknowledged writes"
                ),
            ),
            Ok(_) => {}
        }
        for replica in &self.replicas {
            match replica {
                ReplicaHealth::Unreachable { name, error } => {
                    problem(
                        "ReplicaUnreachable",
                        format!("{name} does not answer: {error}"),
                    );
                }
                ReplicaHealth::NotConfigured { name } => problem(
                    "ReplicaNotReplicating",
                    format!("{name} is not replicating: no source configured"),
                ),
                ReplicaHealth::Configured { name, status } => {
                    let error = status
                        .last_error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    if !status.is_io_running {
                        problem(
                            "ReplicaNotReplicating",
                            format!("{name} is not replicating: IO thread stopped{error}"),
                        );
                    } else if !status.is_sql_running {
                        problem(
                            "ReplicaNotReplicating",
                            format!("{name} is not replicating: SQL thread stopped{error}"),
                        );
                    } else if status
                        .seconds_behind
                        .is_some_and(|lag| lag > max_lag.as_secs())
                    {
                        // No number of seconds here: it changes on every look, and the
                        // message is copied into conditions, which must not churn.
                        problem(
                            "ReplicationLag",
                            format!(
                                "{name} is more than {} s behind the primary",
                                max_lag.as_secs()
                            ),
                        );
                    }
                }
            }
        }
        problems
    }
}

/// The semi-sync settings a server should run with (`spec.mysql.durability`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// Commits wait for a replica (primary side), and a replica acknowledges (replica side).
    pub semisync: bool,
    /// How long a commit waits for a replica, in milliseconds.
    pub timeout_ms: u64,
}

/// The MySQL operations the reconciler needs.
pub trait MysqlReplication: Send + Sync {
    /// Reads the primary's GTID position and every replica's threads; a server that does
    /// not answer is reported, not fatal.
    fn replication_health<'a>(
        &'a self,
        login: &'a MysqlLogin,
        primary: &'a MysqlServer,
        replicas: &'a [MysqlServer],
    ) -> PlaneFuture<'a, ReplicationHealth>;

    /// Makes `server` refuse writes (`SET GLOBAL read_only = 1`): a former primary still
    /// running after a failover must not take writes beside the new one.
    fn fence<'a>(&'a self, login: &'a MysqlLogin, server: &'a MysqlServer) -> PlaneFuture<'a, ()>;

    /// Brings `server`'s running semi-sync settings to `durability` (they are read from
    /// the configuration file only at start); true when something changed.
    fn apply_durability<'a>(
        &'a self,
        login: &'a MysqlLogin,
        server: &'a MysqlServer,
        durability: &'a Durability,
    ) -> PlaneFuture<'a, bool>;

    /// The name of the one server with `read_only = 0` among those that answer; `None` when
    /// there is none; an error when there are two (the operator never picks between them).
    fn primary_of<'a>(
        &'a self,
        login: &'a MysqlLogin,
        servers: &'a [MysqlServer],
    ) -> PlaneFuture<'a, Option<String>>;

    /// The copies `donor` (a server's clone donor: its host and the clone port) is sending
    /// to new servers.
    fn clone_progress<'a>(&'a self, donor: &'a MysqlServer) -> PlaneFuture<'a, Vec<CloneProgress>>;

    /// The binary logs of `donor`'s server (its clone donor: `BINLOGS`), after closing the
    /// one being written when `flush`. `password` is the replication account's.
    fn binlogs<'a>(
        &'a self,
        donor: &'a MysqlServer,
        password: &'a str,
        flush: bool,
    ) -> PlaneFuture<'a, BinlogListing>;

    /// The bytes of one closed binary log of `donor`'s server (`BINLOG`); each read is the
    /// caller's to bound.
    fn open_binlog<'a>(
        &'a self,
        donor: &'a MysqlServer,
        password: &'a str,
        name: &'a str,
    ) -> PlaneFuture<'a, BinlogReader>;
}

/// A binary log being read from a clone donor.
pub type BinlogReader = Box<dyn tokio::io::AsyncRead + Send + Unpin>;

/// A server's binary logs, as its clone donor lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinlogListing {
    /// `@@gtid_binlog_pos`: the last transaction of each domain in its binary log.
    pub position: String,
    /// The closed logs (name, bytes), oldest first; the one being written is not among them.
    pub closed: Vec<(String, u64)>,
}

/// Reads a donor's answer to `BINLOGS`: a `gtid <position>` line, then `log <name> <bytes>`
/// lines. An answer without the `gtid` line is a refusal (a wrong password).
pub fn parse_binlog_listing(answer: &str) -> Option<BinlogListing> {
    let mut listing = BinlogListing::default();
    let mut answered = false;
    for line in answer.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("gtid") => {
                answered = true;
                listing.position = fields.next().unwrap_or_default().to_owned();
            }
            Some("log") => {
                if let (Some(name), Some(Ok(bytes))) =
                    (fields.next(), fields.next().map(str::parse))
                {
                    listing.closed.push((name.to_owned(), bytes));
                }
            }
            _ => {}
        }
    }
    answered.then_some(listing)
}

/// A copy a clone donor is sending to a new server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneProgress {
    /// The pod receiving it.
    pub receiver: String,
    /// Bytes sent so far.
    pub sent_bytes: u64,
    /// The donor's data, about what the whole copy holds.
    pub total_bytes: u64,
}

/// Reads a donor's answer to `PROGRESS`: one `<receiver> <bytes sent> <bytes of data>` line
/// per copy; anything else is skipped.
pub fn parse_clone_progress(answer: &str) -> Vec<CloneProgress> {
    answer
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let receiver = fields.next()?.to_owned();
            let sent_bytes = fields.next()?.parse().ok()?;
            let total_bytes = fields.next()?.parse().ok()?;
            Some(CloneProgress {
                receiver,
                sent_bytes,
                total_bytes,
            })
        })
        .collect()
}

/// The real client: one short-lived connection per server and call.
pub struct MysqlClient {
    timeout: Duration,
}

impl MysqlClient {
    /// A client whose connections and queries time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self { timeout }
    }

    async fn connect(
        &self,
        login: &MysqlLogin,
        server: &MysqlServer,
    ) -> Result<MySqlConnection, DataPlaneError> {
        let options = MySqlConnectOptions::new()
            .host(&server.host)
            .port(server.port)
            .username(&login.user)
            .password(login.password.expose_secret());
        bounded(
            || format!("connecting to mysql {}", server.address()),
            self.timeout,
            async {
                MySqlConnection::connect_with(&options)
                    .await
                    .map_err(mysql_error(server))
            },
        )
        .await
    }

    async fn query(
        &self,
        conn: &mut MySqlConnection,
        server: &MysqlServer,
        sql: &'static str,
    ) -> Result<Vec<MySqlRow>, DataPlaneError> {
        bounded(
            || format!("{sql} on mysql {}", server.address()),
            self.timeout,
            async {
                sqlx::raw_sql(sql)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(mysql_error(server))
            },
        )
        .await
    }

    /// Runs a statement built at run time from values the operator controls (numbers,
    /// fixed words), never from input.
    async fn execute_built(
        &self,
        conn: &mut MySqlConnection,
        server: &MysqlServer,
        sql: String,
    ) -> Result<(), DataPlaneError> {
        bounded(
            || format!("{sql} on mysql {}", server.address()),
            self.timeout,
            async {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                    .execute(&mut *conn)
                    .await
                    .map(drop)
                    .map_err(mysql_error(server))
            },
        )
        .await
    }

    async fn is_mariadb(
        &self,
        conn: &mut MySqlConnection,
        server: &MysqlServer,
    ) -> Result<bool, DataPlaneError> {
        let rows = self.query(conn, server, "SELECT VERSION()").await?;
        Ok(rows
            .first()
            .and_then(|row| text(row, 0))
            .is_some_and(|version| version.contains("MariaDB")))
    }

    async fn read_primary(
        &self,
        login: &MysqlLogin,
        server: &MysqlServer,
    ) -> Result<PrimaryStatus, DataPlaneError> {
        let mut conn = self.connect(login, server).await?;
        let sql = if self.is_mariadb(&mut conn, server).await? {
            "SELECT @@read_only, @@gtid_binlog_pos, (SELECT VARIABLE_VALUE FROM \
             information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'RPL_SEMI_SYNC_MASTER_STATUS')"
        } else {
            "SELECT @@read_only, @@gtid_executed, NULL"
        };
        let rows = self.query(&mut conn, server, sql).await?;
        let row = rows.first();
        Ok(PrimaryStatus {
            is_read_only: row.and_then(|r| text(r, 0)).is_none_or(|v| v != "0"),
            gtid_position: row.and_then(|r| text(r, 1)).unwrap_or_default(),
            is_semisync_waiting: row.and_then(|r| text(r, 2)).map(|v| v == "ON"),
        })
    }

    async fn read_replica(
        &self,
        login: &MysqlLogin,
        server: &MysqlServer,
    ) -> Result<Option<ReplicaStatus>, DataPlaneError> {
        let mut conn = self.connect(login, server).await?;
        let sql = if self.is_mariadb(&mut conn, server).await? {
            "SHOW ALL SLAVES STATUS"
        } else {
            "SHOW REPLICA STATUS"
        };
        let rows = self.query(&mut conn, server, sql).await?;
        Ok(rows.first().map(replica_status))
    }

    async fn apply_durability_now(
        &self,
        login: &MysqlLogin,
        server: &MysqlServer,
        durability: &Durability,
    ) -> Result<bool, DataPlaneError> {
        let mut conn = self.connect(login, server).await?;
        if !self.is_mariadb(&mut conn, server).await? {
            return Ok(false);
        }
        let rows = self
            .query(
                &mut conn,
                server,
                "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled, \
                 @@rpl_semi_sync_master_timeout, @@rpl_semi_sync_master_wait_point, \
                 @@rpl_semi_sync_master_wait_no_slave",
            )
            .await?;
        let row = rows.first();
        let field = |i| row.and_then(|r| text(r, i)).unwrap_or_default();
        let on = |v: String| v == "1" || v == "ON";
        let (master, slave, timeout, wait_point) = (on(field(0)), on(field(1)), field(2), field(3));
        let mut statements = Vec::new();
        if durability.semisync {
            // As in sns.cnf (mysql.rs, `durability_settings`).
            if on(field(4)) {
                statements.push("SET GLOBAL rpl_semi_sync_master_wait_no_slave = OFF".to_owned());
            }
            if wait_point != "AFTER_SYNC" {
                statements
                    .push("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC".to_owned());
            }
            if timeout != durability.timeout_ms.to_string() {
                statements.push(format!(
                    "SET GLOBAL rpl_semi_sync_master_timeout = {}",
                    durability.timeout_ms
                ));
            }
        }
        let flag = if durability.semisync { "ON" } else { "OFF" };
        if master != durability.semisync {
            statements.push(format!("SET GLOBAL rpl_semi_sync_master_enabled = {flag}"));
        }
        let replica_side_changes = slave != durability.semisync;
        if replica_side_changes {
            statements.push(format!("SET GLOBAL rpl_semi_sync_slave_enabled = {flag}"));
        }
        let changed = !statements.is_empty();
        for statement in statements {
            self.execute_built(&mut conn, server, statement).await?;
        }
        // A replica announces itself as semi-sync when its IO thread connects: reconnect it.
        if replica_side_changes && self.read_replica(login, server).await?.is_some() {
            for statement in ["STOP SLAVE IO_THREAD", "START SLAVE IO_THREAD"] {
                self.query(&mut conn, server, statement).await?;
            }
        }
        Ok(changed)
    }

    async fn read_only(
        &self,
        login: &MysqlLogin,
        server: &MysqlServer,
    ) -> Result<bool, DataPlaneError> {
        let mut conn = self.connect(login, server).await?;
        let rows = self.query(&mut conn, server, "SELECT @@read_only").await?;
        Ok(rows
            .first()
            .and_then(|r| text(r, 0))
            .is_none_or(|v| v != "0"))
    }
}

impl MysqlClient {
    /// Connects to `donor` and sends one request line.
    async fn ask_donor(
        donor: &MysqlServer,
        request: &str,
    ) -> Result<tokio::net::TcpStream, DataPlaneError> {
        use tokio::io::AsyncWriteExt;
        let error = |source| DataPlaneError::Donor {
            donor: donor.address(),
            source,
        };
        let mut stream = tokio::net::TcpStream::connect((donor.host.as_str(), donor.port))
            .await
            .map_err(error)?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(error)?;
        Ok(stream)
    }
}

impl MysqlReplication for MysqlClient {
    fn binlogs<'a>(
        &'a self,
        donor: &'a MysqlServer,
        password: &'a str,
        flush: bool,
    ) -> PlaneFuture<'a, BinlogListing> {
        let address = donor.address();
        let ask = async move {
            use tokio::io::AsyncReadExt;
            let request = format!("BINLOGS {password} {}", u8::from(flush));
            let stream = Self::ask_donor(donor, &request).await?;
            let mut answer = Vec::new();
            stream
                .take(4 * 1024 * 1024)
                .read_to_end(&mut answer)
                .await
                .map_err(|source| DataPlaneError::Donor {
                    donor: donor.address(),
                    source,
                })?;
            parse_binlog_listing(&String::from_utf8_lossy(&answer)).ok_or_else(|| {
                DataPlaneError::Topology(format!(
                    "{}'s clone donor refused to list its binary logs (replication password?)",
                    donor.name
                ))
            })
        };
        bounded(
            move || format!("asking {address} for its binary logs"),
            self.timeout,
            ask,
        )
        .boxed()
    }

    fn open_binlog<'a>(
        &'a self,
        donor: &'a MysqlServer,
        password: &'a str,
        name: &'a str,
    ) -> PlaneFuture<'a, BinlogReader> {
        let address = donor.address();
        let open = async move {
            let stream = Self::ask_donor(donor, &format!("BINLOG {password} {name}")).await?;
            Ok(Box::new(stream) as BinlogReader)
        };
        bounded(
            move || format!("connecting to {address}"),
            self.timeout,
            open,
        )
        .boxed()
    }

    fn clone_progress<'a>(&'a self, donor: &'a MysqlServer) -> PlaneFuture<'a, Vec<CloneProgress>> {
        let address = donor.address();
        let ask = async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let error = |source| DataPlaneError::Donor {
                donor: donor.address(),
                source,
            };
            let mut stream = tokio::net::TcpStream::connect((donor.host.as_str(), donor.port))
                .await
                .map_err(error)?;
            stream.write_all(b"PROGRESS\n").await.map_err(error)?;
            // A few lines at most: more is not a donor's answer.
            let mut answer = Vec::new();
            (&mut stream)
                .take(64 * 1024)
                .read_to_end(&mut answer)
                .await
                .map_err(error)?;
            Ok(parse_clone_progress(&String::from_utf8_lossy(&answer)))
        };
        bounded(
            move || format!("asking {address} for its copies"),
            self.timeout,
            ask,
        )
        .boxed()
    }

    fn fence<'a>(&'a self, login: &'a MysqlLogin, server: &'a MysqlServer) -> PlaneFuture<'a, ()> {
        async move {
            let mut conn = self.connect(login, server).await?;
            self.query(&mut conn, server, "SET GLOBAL read_only = 1")
                .await
                .map(drop)
        }
        .boxed()
    }

    fn apply_durability<'a>(
        &'a self,
        login: &'a MysqlLogin,
        server: &'a MysqlServer,
        durability: &'a Durability,
    ) -> PlaneFuture<'a, bool> {
        self.apply_durability_now(login, server, durability).boxed()
    }

    fn replication_health<'a>(
        &'a self,
        login: &'a MysqlLogin,
        primary: &'a MysqlServer,
        replicas: &'a [MysqlServer],
    ) -> PlaneFuture<'a, ReplicationHealth> {
        async move {
            let (primary, replicas) = futures::join!(
                self.read_primary(login, primary),
                futures::future::join_all(replicas.iter().map(|server| async move {
                    match self.read_replica(login, server).await {
                        Ok(Some(status)) => ReplicaHealth::Configured {
                            name: server.name.clone(),
                            status,
                        },
                        Ok(None) => ReplicaHealth::NotConfigured {
                            name: server.name.clone(),
                        },
                        Err(error) => ReplicaHealth::Unreachable {
                            name: server.name.clone(),
                            error: error.to_string(),
                        },
                    }
                }))
            );
            Ok(ReplicationHealth {
                primary: primary.map_err(|e| e.to_string()),
                replicas,
            })
        }
        .boxed()
    }

    fn primary_of<'a>(
        &'a self,
        login: &'a MysqlLogin,
        servers: &'a [MysqlServer],
    ) -> PlaneFuture<'a, Option<String>> {
        async move {
            let answers = futures::future::join_all(
                servers
                    .iter()
                    .map(|server| async move { (server, self.read_only(login, server).await) }),
            )
            .await;
            let writable: Vec<&str> = answers
                .iter()
                .filter(|(_, read_only)| matches!(read_only, Ok(false)))
                .map(|(server, _)| server.name.as_str())
                .collect();
            match writable.as_slice() {
                [] => Ok(None),
                [one] => Ok(Some((*one).to_owned())),
                many => Err(DataPlaneError::Topology(format!(
                    "more than one writable MySQL server: {}",
                    many.join(", ")
                ))),
            }
        }
        .boxed()
    }
}

fn mysql_error(server: &MysqlServer) -> impl Fn(sqlx::Error) -> DataPlaneError + '_ {
    move |source| DataPlaneError::Mysql {
        server: server.address(),
        source,
    }
}

fn replica_status(row: &MySqlRow) -> ReplicaStatus {
    let field = |names: &[&str]| names.iter().find_map(|name| text(row, *name));
    let is_yes = |names: &[&str]| field(names).is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    let error = [
        field(&["Last_IO_Error"]),
        field(&["Last_SQL_Error"]),
        field(&["Last_Error"]),
    ]
    .into_iter()
    .flatten()
    .find(|e| !e.is_empty());
    ReplicaStatus {
        is_io_running: is_yes(&["Slave_IO_Running", "Replica_IO_Running"]),
        is_sql_running: is_yes(&["Slave_SQL_Running", "Replica_SQL_Running"]),
        seconds_behind: field(&["Seconds_Behind_Master", "Seconds_Behind_Source"])
            .and_then(|v| v.parse().ok()),
        gtid_position: field(&["Gtid_Slave_Pos", "Executed_Gtid_Set", "Gtid_IO_Pos"])
            .unwrap_or_default(),
        source: format!(
            "{}:{}",
            field(&["Master_Host", "Source_Host"]).unwrap_or_default(),
            field(&["Master_Port", "Source_Port"]).unwrap_or_default()
        ),
        last_error: error,
    }
}

/// A column (by name or position) as text, whatever type the server declared for it (`SHOW`
/// output mixes VARCHAR, binary strings and BIGINT); NULL and a missing column are `None`.
fn text<I: sqlx::ColumnIndex<MySqlRow> + Copy>(row: &MySqlRow, column: I) -> Option<String> {
    row.try_get::<Option<String>, _>(column)
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<u64>, _>(column)
                .ok()
                .flatten()
                .map(|v| v.to_string())
        })
        .or_else(|| {
            row.try_get::<Option<i64>, _>(column)
                .ok()
                .flatten()
                .map(|v| v.to_string())
        })
        .or_else(|| {
            row.try_get::<Option<Vec<u8>>, _>(column)
                .ok()
                .flatten()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_donors_progress_lines_are_read_and_noise_skipped() {
        let answer = "db-mysql-3 1048576 4194304\ngarbage\ndb-mysql-4 0 4194304\n";
        assert_eq!(
            parse_clone_progress(answer),
            vec![
                CloneProgress {
                    receiver: "db-mysql-3".into(),
                    sent_bytes: 1_048_576,
                    total_bytes: 4_194_304
                },
                CloneProgress {
                    receiver: "db-mysql-4".into(),
                    sent_bytes: 0,
                    total_bytes: 4_194_304
                },
            ]
        );
        assert!(parse_clone_progress("").is_empty());
    }

    fn configured(name: &str, io: bool, sql: bool, lag: Option<u64>) -> ReplicaHealth {
        ReplicaHealth::Configured {
            name: name.into(),
            status: ReplicaStatus {
                is_io_running: io,
                is_sql_running: sql,
                seconds_behind: lag,
                gtid_position: "0-1-5".into(),
                source: "10.0.0.1:3306".into(),
                last_error: None,
            },
        }
    }

    #[test]
    fn problems_name_the_replica_and_why() {
        let health = ReplicationHealth {
            primary: Ok(PrimaryStatus {
                is_read_only: false,
                gtid_position: "0-1-5".into(),
                is_semisync_waiting: Some(true),
            }),
            replicas: vec![
                configured("db-1", true, true, Some(0)),
                configured("db-2", true, false, None),
                configured("db-3", true, true, Some(90)),
                ReplicaHealth::NotConfigured {
                    name: "db-4".into(),
                },
            ],
        };
        let problems: Vec<_> = health
            .problems("db-0", Duration::from_secs(30), true)
            .into_iter()
            .map(|p| (p.reason, p.message))
            .collect();
        assert_eq!(
            problems,
            vec![
                (
                    "ReplicaNotReplicating",
                    "db-2 is not replicating: SQL thread stopped".to_owned()
                ),
                (
                    "ReplicationLag",
                    "db-3 is more than 30 s behind the primary".to_owned()
                ),
                (
                    "ReplicaNotReplicating",
                    "db-4 is not replicating: no source configured".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_read_only_primary_is_a_problem() {
        let health = ReplicationHealth {
            primary: Ok(PrimaryStatus {
                is_read_only: true,
                gtid_position: String::new(),
                is_semisync_waiting: None,
            }),
            replicas: vec![],
        };
        let problems = health.problems("db-0", Duration::from_secs(30), true);
        assert_eq!(problems[0].reason, "PrimaryReadOnly");
        assert_eq!(problems[0].message, "primary db-0 is read-only");
    }

    #[test]
    fn a_primary_that_fell_back_to_async_is_a_problem_only_where_semisync_is_asked() {
        let health = ReplicationHealth {
            primary: Ok(PrimaryStatus {
                is_read_only: false,
                gtid_position: String::new(),
                is_semisync_waiting: Some(false),
            }),
            replicas: vec![],
        };
        let problems = health.problems("db-0", Duration::from_secs(30), true);
        assert_eq!(problems[0].reason, "SemisyncOff");
        assert!(
            health
                .problems("db-0", Duration::from_secs(30), false)
                .is_empty()
        );
    }
}
