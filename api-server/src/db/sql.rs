//! One SQL surface over the two databases the API runs on: MySQL/MariaDB (production) and
//! SQLite (the embedded default). Stores write their SQL once, bind values once, and run it on
//! whichever database the deployment chose.
//!
//! The SQL is written for both: `?` placeholders, `CASE` instead of `IF()`, `OR`-ed equalities
//! instead of row-value lists. What cannot be written for both is rewritten for SQLite in one
//! place ([`sqlite_dialect`]): `INSERT IGNORE` becomes `INSERT OR IGNORE`, and row locks
//! (`FOR UPDATE [SKIP LOCKED]`) are dropped because SQLite transactions here take the
//! database's write lock up front (`BEGIN IMMEDIATE`), which serialises writers already.
//!
//! Values are bound as [`Arg`]s: ids are unsigned in MySQL and signed 64-bit integers in
//! SQLite (saturating, so a `u64::MAX` "no cursor" bound stays the largest value), and
//! timestamps are written to SQLite as fixed-width RFC 3339 text so that comparing them as
//! text compares them in time.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlArguments, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    Arguments, AssertSqlSafe, FromRow, MySql, MySqlConnection, MySqlPool, SqlSafeStr, SqlStr,
    Sqlite, SqliteConnection, SqlitePool, Transaction,
};

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB (directly or through ProxySQL).
    MySql,
    /// A SQLite file (the embedded default).
    Sqlite,
}

/// A connection pool on either database. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Pool {
    /// MySQL or MariaDB.
    MySql(MySqlPool),
    /// SQLite.
    Sqlite(SqlitePool),
}

impl Backend {
    /// The database's name, as logs and `/readyz` show it.
    pub fn name(self) -> &'static str {
        match self {
            Self::MySql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
}

impl Pool {
    /// Which database this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Self::MySql(_) => Backend::MySql,
            Self::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Starts a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes could fail half-way when another
    /// writer got in between, and SQLite has no row locks to prevent that.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(Tx(match self {
            Self::MySql(pool) => TxInner::MySql(pool.begin().await?),
            Self::Sqlite(pool) => TxInner::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        }))
    }

    /// Takes a connection from the pool.
    pub async fn acquire(&self) -> sqlx::Result<PooledConn> {
        Ok(match self {
            Self::MySql(pool) => PooledConn::MySql(pool.acquire().await?),
            Self::Sqlite(pool) => PooledConn::Sqlite(pool.acquire().await?),
        })
    }

    /// Connections open now.
    pub fn size(&self) -> u32 {
        match self {
            Self::MySql(pool) => pool.size(),
            Self::Sqlite(pool) => pool.size(),
        }
    }

    /// Connections open and idle now.
    pub fn num_idle(&self) -> usize {
        match self {
            Self::MySql(pool) => pool.num_idle(),
            Self::Sqlite(pool) => pool.num_idle(),
        }
    }
}

/// A transaction on either database; dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx(TxInner);

#[derive(Debug)]
enum TxInner {
    MySql(Transaction<'static, MySql>),
    Sqlite(Transaction<'static, Sqlite>),
}

impl Tx {
    /// The transaction's connection, for store functions that run several statements.
    pub fn conn(&mut self) -> Conn<'_> {
        match &mut self.0 {
            TxInner::MySql(tx) => Conn::MySql(&mut *tx),
            TxInner::Sqlite(tx) => Conn::Sqlite(&mut *tx),
        }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> sqlx::Result<()> {
        match self.0 {
            TxInner::MySql(tx) => tx.commit().await,
            TxInner::Sqlite(tx) => tx.commit().await,
        }
    }
}

/// A connection taken from a pool, returned to it when dropped.
#[derive(Debug)]
pub enum PooledConn {
    /// MySQL or MariaDB.
    MySql(PoolConnection<MySql>),
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
}

impl PooledConn {
    /// The connection, for store functions that run several statements.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Self::MySql(conn) => Conn::MySql(&mut *conn),
            Self::Sqlite(conn) => Conn::Sqlite(&mut *conn),
        }
    }
}

/// A borrowed connection (plain or inside a transaction) on either database.
#[derive(Debug)]
pub enum Conn<'c> {
    /// MySQL or MariaDB.
    MySql(&'c mut MySqlConnection),
    /// SQLite.
    Sqlite(&'c mut SqliteConnection),
}

/// Where one statement runs: a pool (any free connection) or one connection.
pub enum Target<'e> {
    /// Any connection of a MySQL pool.
    MySqlPool(&'e MySqlPool),
    /// One MySQL connection.
    MySql(&'e mut MySqlConnection),
    /// Any connection of a SQLite pool.
    SqlitePool(&'e SqlitePool),
    /// One SQLite connection.
    Sqlite(&'e mut SqliteConnection),
}

/// Something a statement can run on: `&Pool`, or `&mut` any [`AsConn`].
pub trait Executor<'e>: Send {
    /// Where the statement goes.
    fn target(self) -> Target<'e>;
}

impl<'e> Executor<'e> for &'e Pool {
    fn target(self) -> Target<'e> {
        match self {
            Pool::MySql(pool) => Target::MySqlPool(pool),
            Pool::Sqlite(pool) => Target::SqlitePool(pool),
        }
    }
}

/// A connection that runs statements one after another: a transaction ([`Tx`]), a pooled
/// connection ([`PooledConn`]) or a borrowed one ([`Conn`]). Store functions that run several
/// statements take `&mut impl AsConn`.
pub trait AsConn: Send {
    /// The underlying connection.
    fn as_conn(&mut self) -> Conn<'_>;
}

impl AsConn for Tx {
    fn as_conn(&mut self) -> Conn<'_> {
        self.conn()
    }
}

impl AsConn for PooledConn {
    fn as_conn(&mut self) -> Conn<'_> {
        self.conn()
    }
}

impl AsConn for Conn<'_> {
    fn as_conn(&mut self) -> Conn<'_> {
        match self {
            Self::MySql(conn) => Conn::MySql(conn),
            Self::Sqlite(conn) => Conn::Sqlite(conn),
        }
    }
}

impl AsConn for MySqlConnection {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::MySql(self)
    }
}

impl AsConn for SqliteConnection {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::Sqlite(self)
    }
}

impl<'e, C: AsConn> Executor<'e> for &'e mut C {
    fn target(self) -> Target<'e> {
        match self.as_conn() {
            Conn::MySql(conn) => Target::MySql(conn),
            Conn::Sqlite(conn) => Target::Sqlite(conn),
        }
    }
}

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// SQL NULL.
    Null,
    /// An id, count or limit.
    U64(u64),
    /// A signed integer.
    I64(i64),
    /// A flag.
    Bool(bool),
    /// Text.
    Text(String),
    /// A point in time (UTC).
    Time(DateTime<Utc>),
}

impl From<u64> for Arg {
    fn from(value: u64) -> Self {
        Self::U64(value)
    }
}

impl From<&u64> for Arg {
    fn from(value: &u64) -> Self {
        Self::U64(*value)
    }
}

impl From<u32> for Arg {
    fn from(value: u32) -> Self {
        Self::U64(value.into())
    }
}

impl From<u8> for Arg {
    fn from(value: u8) -> Self {
        Self::U64(value.into())
    }
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::I64(value)
    }
}

impl From<bool> for Arg {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<&String> for Arg {
    fn from(value: &String) -> Self {
        Self::Text(value.clone())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<DateTime<Utc>> for Arg {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(value)
    }
}

impl<T: Into<Arg>> From<Option<T>> for Arg {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
    last_insert_id: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    /// The id an `AUTO_INCREMENT` / `INTEGER PRIMARY KEY` column got on insert.
    pub fn last_insert_id(&self) -> u64 {
        self.last_insert_id
    }
}

/// A row type both databases can decode (every `#[derive(FromRow)]` struct and tuple whose
/// fields decode on both).
pub trait Row:
    for<'r> FromRow<'r, MySqlRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

impl<T> Row for T where
    T: for<'r> FromRow<'r, MySqlRow> + for<'r> FromRow<'r, SqliteRow> + Send + Unpin
{
}

/// A statement and its bound values.
#[derive(Debug, Clone)]
pub struct Query {
    sql: SqlStr,
    args: Vec<Arg>,
}

/// A statement to bind values to and run.
pub fn query(sql: impl SqlSafeStr) -> Query {
    Query {
        sql: sql.into_sql_str(),
        args: Vec::new(),
    }
}

impl Query {
    /// Binds the next `?`.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Arg>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Binds the next `?`s, one per value (an `IN (...)` list, say).
    #[must_use]
    pub fn bind_all<V: Into<Arg>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    /// Runs a statement that returns no rows.
    pub async fn execute<'e>(self, executor: impl Executor<'e>) -> sqlx::Result<Done> {
        match executor.target() {
            Target::MySqlPool(pool) => self.mysql()?.execute(pool).await.map(mysql_done),
            Target::MySql(conn) => self.mysql()?.execute(conn).await.map(mysql_done),
            Target::SqlitePool(pool) => self.sqlite()?.execute(pool).await.map(sqlite_done),
            Target::Sqlite(conn) => self.sqlite()?.execute(conn).await.map(sqlite_done),
        }
    }

    /// Runs a query and decodes every row.
    pub async fn fetch_all<'e, R: Row>(self, executor: impl Executor<'e>) -> sqlx::Result<Vec<R>> {
        match executor.target() {
            Target::MySqlPool(pool) => self.mysql_as::<R>()?.fetch_all(pool).await,
            Target::MySql(conn) => self.mysql_as::<R>()?.fetch_all(conn).await,
            Target::SqlitePool(pool) => self.sqlite_as::<R>()?.fetch_all(pool).await,
            Target::Sqlite(conn) => self.sqlite_as::<R>()?.fetch_all(conn).await,
        }
    }

    /// Runs a query and decodes its first row, if any.
    pub async fn fetch_optional<'e, R: Row>(
        self,
        executor: impl Executor<'e>,
    ) -> sqlx::Result<Option<R>> {
        match executor.target() {
            Target::MySqlPool(pool) => self.mysql_as::<R>()?.fetch_optional(pool).await,
            Target::MySql(conn) => self.mysql_as::<R>()?.fetch_optional(conn).await,
            Target::SqlitePool(pool) => self.sqlite_as::<R>()?.fetch_optional(pool).await,
            Target::Sqlite(conn) => self.sqlite_as::<R>()?.fetch_optional(conn).await,
        }
    }

    /// Runs a query that returns exactly one row and decodes it.
    pub async fn fetch_one<'e, R: Row>(self, executor: impl Executor<'e>) -> sqlx::Result<R> {
        self.fetch_optional(executor)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    fn mysql(self) -> sqlx::Result<sqlx::query::Query<'static, MySql, MySqlArguments>> {
        Ok(sqlx::query_with(self.sql, mysql_arguments(self.args)?))
    }

    fn mysql_as<R: Row>(
        self,
    ) -> sqlx::Result<sqlx::query::QueryAs<'static, MySql, R, MySqlArguments>> {
        Ok(sqlx::query_as_with(self.sql, mysql_arguments(self.args)?))
    }

    fn sqlite(self) -> sqlx::Result<sqlx::query::Query<'static, Sqlite, SqliteArguments>> {
        Ok(sqlx::query_with(
            sqlite_sql(&self.sql),
            sqlite_arguments(self.args)?,
        ))
    }

    fn sqlite_as<R: Row>(
        self,
    ) -> sqlx::Result<sqlx::query::QueryAs<'static, Sqlite, R, SqliteArguments>> {
        Ok(sqlx::query_as_with(
            sqlite_sql(&self.sql),
            sqlite_arguments(self.args)?,
        ))
    }
}

fn mysql_arguments(args: Vec<Arg>) -> sqlx::Result<MySqlArguments> {
    let mut arguments = MySqlArguments::default();
    for arg in args {
        match arg {
            Arg::Null => arguments.add(None::<i64>),
            Arg::U64(value) => arguments.add(value),
            Arg::I64(value) => arguments.add(value),
            Arg::Bool(value) => arguments.add(value),
            Arg::Text(value) => arguments.add(value),
            // As DATETIME (naive UTC, the columns' type): sqlx sends a `DateTime<Utc>` as
            // TIMESTAMP, which MySQL turns into NULL past 2038.
            Arg::Time(value) => arguments.add(value.naive_utc()),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

fn sqlite_arguments(args: Vec<Arg>) -> sqlx::Result<SqliteArguments> {
    let mut arguments = SqliteArguments::default();
    for arg in args {
        match sqlite_value(arg) {
            SqliteValue::Null => arguments.add(None::<i64>),
            SqliteValue::Integer(value) => arguments.add(value),
            SqliteValue::Text(value) => arguments.add(value),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

fn mysql_done(result: sqlx::mysql::MySqlQueryResult) -> Done {
    Done {
        rows_affected: result.rows_affected(),
        last_insert_id: result.last_insert_id(),
    }
}

fn sqlite_done(result: sqlx::sqlite::SqliteQueryResult) -> Done {
    Done {
        rows_affected: result.rows_affected(),
        last_insert_id: u64::try_from(result.last_insert_rowid()).unwrap_or(0),
    }
}

/// The storage classes SQLite keeps our values in.
enum SqliteValue {
    Null,
    Integer(i64),
    Text(String),
}

fn sqlite_value(arg: Arg) -> SqliteValue {
    match arg {
        Arg::Null => SqliteValue::Null,
        // Ids stay far below 2^63; saturating keeps "below u64::MAX" meaning "below anything".
        Arg::U64(value) => SqliteValue::Integer(i64::try_from(value).unwrap_or(i64::MAX)),
        Arg::I64(value) => SqliteValue::Integer(value),
        Arg::Bool(value) => SqliteValue::Integer(i64::from(value)),
        Arg::Text(value) => SqliteValue::Text(value),
        Arg::Time(value) => SqliteValue::Text(sqlite_time(value)),
    }
}

/// Fixed-width RFC 3339 in UTC (`2026-01-02T03:04:05.000006+00:00`): text comparison is
/// time comparison, and sqlx reads it back as a `DateTime<Utc>`.
pub fn sqlite_time(value: DateTime<Utc>) -> String {
    value.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

fn sqlite_sql(sql: &SqlStr) -> AssertSqlSafe<String> {
    AssertSqlSafe(sqlite_dialect(sql.as_str()).into_owned())
}

/// Rewrites the MySQL-only parts of a statement for SQLite (see the module docs).
pub fn sqlite_dialect(sql: &str) -> Cow<'_, str> {
    if !sql.contains("INSERT IGNORE") && !sql.contains(" FOR UPDATE") {
        return Cow::Borrowed(sql);
    }
    Cow::Owned(
        sql.replace("INSERT IGNORE", "INSERT OR IGNORE")
            .replace(" FOR UPDATE SKIP LOCKED", "")
            .replace(" FOR UPDATE", ""),
    )
}

/// `count` placeholders separated by commas, for `IN (...)` lists and multi-row inserts.
pub fn placeholders(count: usize, each: &str) -> String {
    vec![each; count].join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_dialect_rewrites_only_what_sqlite_lacks() {
        assert_eq!(
            sqlite_dialect("INSERT IGNORE INTO follows (a) VALUES (?)"),
            "INSERT OR IGNORE INTO follows (a) VALUES (?)"
        );
        assert_eq!(
            sqlite_dialect("SELECT id FROM t WHERE a <= ? LIMIT ? FOR UPDATE SKIP LOCKED"),
            "SELECT id FROM t WHERE a <= ? LIMIT ?"
        );
        assert_eq!(
            sqlite_dialect("SELECT id FROM users WHERE id IN (?, ?) ORDER BY id FOR UPDATE"),
            "SELECT id FROM users WHERE id IN (?, ?) ORDER BY id"
        );
        assert!(matches!(
            sqlite_dialect("SELECT 1 FROM posts"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn sqlite_times_sort_as_text_in_time_order() {
        let base = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .map(|time| time.with_timezone(&Utc))
            .unwrap_or_default();
        let times = [
            base,
            base + chrono::Duration::microseconds(6),
            base + chrono::Duration::milliseconds(120),
            base + chrono::Duration::seconds(1),
        ];
        let texts: Vec<String> = times.iter().copied().map(sqlite_time).collect();
        assert_eq!(texts[0], "2026-01-02T03:04:05.000000+00:00");
        assert!(texts.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn unsigned_ids_saturate_in_sqlite() {
        assert!(matches!(
            sqlite_value(Arg::U64(u64::MAX)),
            SqliteValue::Integer(i64::MAX)
        ));
        assert!(matches!(
            sqlite_value(Arg::U64(42)),
            SqliteValue::Integer(42)
        ));
    }
}
