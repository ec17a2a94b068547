//! Where read models live: one SQL dialect subset, two backends.
//!
//! Read-model code is synchronous and runs on a blocking thread (a short read on SQLite: on
//! the calling task's thread, [`Store::read_short`]) inside one transaction ([`Tx`]): the
//! runner applies a batch of events and moves the checkpoint in the same
//! transaction. SQL is written once with `$1`-style placeholders and portable types
//! (`TEXT`, `BIGINT`, `DOUBLE PRECISION`); only full-text search differs per [`Dialect`].
//!
//! - SQLite: one file per projection (so projections write in parallel, and never contend with
//!   the log's writer), reached through rusqlite: one writer connection and a few readers.
//! - PostgreSQL: the log's database, through sqlx; the blocking thread drives the async driver
//!   with the runtime's handle.

use rusqlite::{CachedStatement, Connection, OpenFlags};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column, Row as _, TypeInfo};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;

/// A read-model storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read-model database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("read-model database: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("read-model column {column}: {reason}")]
    Column { column: usize, reason: String },
    #[error("read-model storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("read-model storage task ended: {0}")]
    Task(String),
    #[error("read model {0}: {1}")]
    Corrupt(&'static str, String),
}

/// Which SQL a statement must be written in, where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A parameter or a column value. Nulls are typed, because PostgreSQL infers parameter types.
/// Text parameters may borrow (`&str` converts without a copy); column values own their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<Cow<'a, str>>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(Some(v as i64))
    }
}
impl From<f64> for Value<'_> {
    fn from(v: f64) -> Self {
        Value::Real(Some(v))
    }
}
impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Some(Cow::Owned(v)))
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Some(Cow::Borrowed(v)))
    }
}
impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<Option<String>> for Value<'_> {
    fn from(v: Option<String>) -> Self {
        Value::Text(v.map(Cow::Owned))
    }
}
impl From<uuid::Uuid> for Value<'_> {
    fn from(v: uuid::Uuid) -> Self {
        Value::Text(Some(Cow::Owned(v.to_string())))
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value<'static>>);

fn unexpected_null(column: usize) -> StoreError {
    StoreError::Column {
        column,
        reason: "unexpected NULL".into(),
    }
}

impl Row {
    fn column(&self, i: usize) -> Result<&Value<'static>, StoreError> {
        self.0.get(i).ok_or_else(|| StoreError::Column {
            column: i,
            reason: "no such column".into(),
        })
    }

    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.column(i)? {
            Value::Int(v) => Ok(*v),
            Value::Real(Some(v)) => Ok(Some(*v as i64)),
            Value::Real(None) | Value::Text(None) => Ok(None),
            Value::Text(Some(t)) => Err(StoreError::Column {
                column: i,
                reason: format!("expected an integer, found text {t:?}"),
            }),
        }
    }

    pub fn i64(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_i64(i)?.ok_or_else(|| unexpected_null(i))
    }

    pub fn opt_f64(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.column(i)? {
            Value::Int(v) => Ok(v.map(|v| v as f64)),
            Value::Real(v) => Ok(*v),
            Value::Text(None) => Ok(None),
            Value::Text(Some(t)) => Err(StoreError::Column {
                column: i,
                reason: format!("expected a number, found text {t:?}"),
            }),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.column(i)? {
            Value::Text(v) => Ok(v.as_deref().map(str::to_owned)),
            Value::Int(None) | Value::Real(None) => Ok(None),
            other => Err(StoreError::Column {
                column: i,
                reason: format!("expected text, found {other:?}"),
            }),
        }
    }

    pub fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?.ok_or_else(|| unexpected_null(i))
    }

    /// [`Row::opt_text`], moving the text out of the row instead of copying it (the column
    /// reads as NULL afterwards): for rows turned into owned values once.
    pub fn take_opt_text(&mut self, i: usize) -> Result<Option<String>, StoreError> {
        match self.0.get_mut(i) {
            Some(Value::Text(v)) => Ok(v.take().map(Cow::into_owned)),
            _ => self.opt_text(i),
        }
    }

    /// [`Row::text`], moving the text out of the row (see [`Row::take_opt_text`]).
    pub fn take_text(&mut self, i: usize) -> Result<String, StoreError> {
        self.take_opt_text(i)?.ok_or_else(|| unexpected_null(i))
    }

    pub fn bool(&self, i: usize) -> Result<bool, StoreError> {
        Ok(self.i64(i)? != 0)
    }

    pub fn uuid(&self, i: usize) -> Result<uuid::Uuid, StoreError> {
        let text = self.text(i)?;
        uuid::Uuid::parse_str(&text).map_err(|e| StoreError::Column {
            column: i,
            reason: format!("{text:?} is not a UUID: {e}"),
        })
    }
}

/// One transaction on a read-model database.
pub trait Tx {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;

    fn query_opt(&mut self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// A read-model database.
#[derive(Clone)]
pub enum Store {
    Sqlite(Arc<SqliteStore>),
    Postgres(PgPool),
}

impl Store {
    pub fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `work` in one write transaction (committed if it returns `Ok`). `work` may fail
    /// with the caller's own error type, which storage errors convert into.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.transaction(true, work).await
    }

    /// Runs `work` in one read-only transaction (a consistent snapshot on SQLite).
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        self.transaction(false, work).await
    }

    /// [`Store::read`] for a read known to be short (a bounded page of one index range, tens
    /// of microseconds): on SQLite, with a reader connection idle, it runs right here on the
    /// calling task's thread, which is cheaper than handing it to a blocking thread and back
    /// (as the log's small reads do). Otherwise, and on PostgreSQL, it is [`Store::read`].
    pub async fn read_short<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        match self {
            Store::Sqlite(sqlite) => match sqlite.idle_reader() {
                Some(conn) => sqlite.read_on(conn, work),
                // Opening a connection is not short: that goes to a blocking thread.
                None => self.transaction(false, work).await,
            },
            Store::Postgres(_) => self.transaction(false, work).await,
        }
    }

    /// [`Store::write`] on `lane`'s thread instead of a blocking thread of the runtime.
    pub async fn write_on<T, E, F>(&self, lane: &Lane, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        let handle = Handle::current();
        let name = lane.name.clone();
        let (done, answer) = tokio::sync::oneshot::channel();
        lane.run(Box::new(move || {
            // sqlx needs the runtime's context on this thread too: a PostgreSQL connection
            // returned to its pool is handed back by a task it spawns.
            let _runtime = handle.enter();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.transaction_here(&handle, true, work)
            }))
            .unwrap_or_else(|panic| {
                Err(StoreError::Task(format!(
                    "{name} panicked in a transaction: {}",
                    panic_message(&*panic)
                ))
                .into())
            });
            let _ = done.send(result);
        }))?;
        answer
            .await
            .map_err(|_| StoreError::Task(format!("{} stopped in a transaction", lane.name)))?
    }

    async fn transaction<T, E, F>(&self, write: bool, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&mut dyn Tx) -> Result<T, E> + Send + 'static,
    {
        let store = self.clone();
        let handle = Handle::current();
        tokio::task::spawn_blocking(move || store.transaction_here(&handle, write, work))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// One transaction on this thread, which may block.
    fn transaction_here<T, E, F>(&self, handle: &Handle, write: bool, work: F) -> Result<T, E>
    where
        E: From<StoreError>,
        F: FnOnce(&mut dyn Tx) -> Result<T, E>,
    {
        match self {
            Store::Sqlite(sqlite) => sqlite.transaction(write, work),
            Store::Postgres(pool) => pg_transaction(handle, pool, write, work),
        }
    }
}

/// A thread of its own that runs one store's live-feeding transactions, one after another, at
/// a lower scheduling priority (nice 10, on Linux): commands and reads take the processor
/// first, and a read model applies its events mostly with what they leave (ADR 8). Started on
/// first use; it ends when the lane is dropped.
pub struct Lane {
    name: String,
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Lane {
    /// A lane whose thread is called `name`.
    pub fn new(name: impl Into<String>) -> Lane {
        Lane {
            name: name.into(),
            jobs: Mutex::new(None),
        }
    }

    /// Waits until the jobs handed to this lane so far have run (at once if it never started).
    pub async fn drained(&self) {
        let (done, ran) = tokio::sync::oneshot::channel::<()>();
        let queued = {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.as_ref().is_some_and(|sender| {
                sender
                    .send(Box::new(move || {
                        let _ = done.send(());
                    }))
                    .is_ok()
            })
        };
        if queued {
            // An error means the thread is gone, and so are its jobs.
            let _ = ran.await;
        }
    }

    fn run(&self, job: Job) -> Result<(), StoreError> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        // Not started yet, or its thread is gone: start one and hand it the job.
        let job = match jobs.as_ref() {
            Some(sender) => match sender.send(job) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || {
                lower_priority();
                while let Ok(job) = receiver.recv() {
                    // A job answers its own panic as an error (its transaction rolled back);
                    // this is the last resort, and the thread goes on with the next.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        sender
            .send(job)
            .map_err(|_| StoreError::Task(format!("{} did not start", self.name)))?;
        *jobs = Some(sender);
        Ok(())
    }
}

/// The text a panic was raised with, when it was a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Lowers the calling thread's scheduling priority (a nice value is per thread on Linux).
/// Raising it back needs a privilege the server does not ask for: only a thread of its own is
/// lowered.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its integer arguments; the gettid system call has no
    // preconditions.
    unsafe {
        /// About a tenth of a normal thread's share of a busy processor: commands go first, and
        /// a read model still keeps moving under overload, where a reader waiting for a
        /// position (`?position=`) waits on it. Nice 19 (a seventieth) did no better for the
        /// commands' latency in `parley bench http`.
        const NICENESS: libc::c_int = 10;
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, thread, NICENESS) != 0 {
            tracing::debug!("could not lower a live writer's priority");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite

/// One SQLite file: a writer connection and a few reader connections (WAL mode).
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

const SQLITE_READERS_KEPT: usize = 4;

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        parley_eventlog::create_parent_dirs(path)?;
        let writer = Connection::open(path)?;
        writer.busy_timeout(Duration::from_secs(30))?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        // Read models are rebuilt from the log: a lost last transaction is replayed on restart.
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        writer.pragma_update(None, "cache_size", -16384)?;
        // Checkpoint less often (every 32 MiB of WAL): pages rewritten by successive batches
        // reach the database file once per checkpoint, not once per batch.
        writer.pragma_update(None, "wal_autocheckpoint", 8192)?;
        writer.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        writer.set_prepared_statement_cache_capacity(256);
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    fn idle_reader(&self) -> Option<Connection> {
        self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn reader(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle_reader() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.set_prepared_statement_cache_capacity(128);
        Ok(conn)
    }

    fn transaction<T, E: From<StoreError>>(
        &self,
        write: bool,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        if write {
            let conn = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            run_sqlite(&conn, "BEGIN IMMEDIATE", work)
        } else {
            self.read_on(self.reader()?, work)
        }
    }

    /// A read transaction on reader `conn`, which is then kept for the next read (up to
    /// [`SQLITE_READERS_KEPT`] of them).
    fn read_on<T, E: From<StoreError>>(
        &self,
        conn: Connection,
        work: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = run_sqlite(&conn, "BEGIN", work);
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < SQLITE_READERS_KEPT {
            readers.push(conn);
        }
        result
    }
}

fn run_sqlite<T, E: From<StoreError>>(
    conn: &Connection,
    begin: &str,
    work: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
) -> Result<T, E> {
    // Cached like every other statement: `execute_batch` would parse it on every call.
    conn.prepare_cached(begin)
        .and_then(|mut s| s.execute([]))
        .map_err(StoreError::from)?;
    // Whatever ends this function, by an error or by a panic in `work`, a transaction that did
    // not commit is rolled back, so the connection is never left inside one.
    let _open = RollbackUnlessDone(conn);
    // The transaction's statements go back to the connection's cache before it ends.
    let value = work(&mut SqliteTx {
        conn,
        statements: Vec::new(),
    })?;
    conn.prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map_err(StoreError::from)?;
    Ok(value)
}

/// Rolls back the connection's open transaction, if any, when dropped.
struct RollbackUnlessDone<'c>(&'c Connection);

impl Drop for RollbackUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

struct SqliteTx<'c> {
    conn: &'c Connection,
    /// The statements this transaction has run, with their text. A rebuild's transaction runs
    /// a few dozen statements many thousands of times; finding one here by its text costs a
    /// few length comparisons and one `memcmp`, where rusqlite's cache would trim, hash, copy
    /// and reinsert the text on every run.
    statements: Vec<(String, CachedStatement<'c>)>,
}

impl<'c> SqliteTx<'c> {
    fn statement(&mut self, sql: &str) -> Result<&mut CachedStatement<'c>, StoreError> {
        let found = match self.statements.iter().position(|(text, _)| text == sql) {
            Some(found) => found,
            None => {
                let statement = self.conn.prepare_cached(&sqlite_sql(sql))?;
                self.statements.push((sql.to_owned(), statement));
                self.statements.len() - 1
            }
        };
        Ok(&mut self.statements[found].1)
    }
}

/// `$1` placeholders as SQLite's numbered `?1`.
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Value::Real(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Real(*v)),
            Value::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Int(None) | Value::Real(None) | Value::Text(None) => {
                ToSqlOutput::Borrowed(ValueRef::Null)
            }
        })
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(statement.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let statement = self.statement(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Int(None),
                    ValueRef::Integer(v) => Value::Int(Some(v)),
                    ValueRef::Real(v) => Value::Real(Some(v)),
                    ValueRef::Text(t) => {
                        Value::Text(Some(Cow::Owned(match std::str::from_utf8(t) {
                            Ok(text) => text.to_owned(),
                            Err(_) => String::from_utf8_lossy(t).into_owned(),
                        })))
                    }
                    ValueRef::Blob(_) => {
                        return Err(StoreError::Column {
                            column: i,
                            reason: "unexpected BLOB".into(),
                        });
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

fn pg_transaction<T, E: From<StoreError>>(
    handle: &Handle,
    pool: &PgPool,
    write: bool,
    work: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
) -> Result<T, E> {
    let mut tx = PgTx {
        handle,
        tx: handle.block_on(pool.begin()).map_err(StoreError::from)?,
    };
    if !write {
        // Every statement of a read sees the same snapshot, as on SQLite.
        tx.execute(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
            &[],
        )?;
    }
    let value = work(&mut tx)?;
    handle.block_on(tx.tx.commit()).map_err(StoreError::from)?;
    Ok(value)
}

struct PgTx<'h> {
    handle: &'h Handle,
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

fn bind(
    sql: &str,
    params: &[Value],
) -> sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments> {
    // Statements are the read models' own text; values always travel as parameters.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for param in params {
        query = match param {
            Value::Int(v) => query.bind(*v),
            Value::Real(v) => query.bind(*v),
            // PostgreSQL text cannot hold NUL; an old event carrying one must not stop a read
            // model (new ones are refused by the domain).
            Value::Text(v) => query.bind(v.as_ref().map(|t| t.replace('\0', "\u{FFFD}"))),
        };
    }
    query
}

fn pg_value(row: &PgRow, i: usize) -> Result<Value<'static>, StoreError> {
    let column = &row.columns()[i];
    Ok(match column.type_info().name() {
        "INT8" => Value::Int(row.try_get(i)?),
        "INT4" => Value::Int(row.try_get::<Option<i32>, _>(i)?.map(i64::from)),
        "INT2" => Value::Int(row.try_get::<Option<i16>, _>(i)?.map(i64::from)),
        "BOOL" => Value::Int(row.try_get::<Option<bool>, _>(i)?.map(i64::from)),
        "FLOAT8" => Value::Real(row.try_get(i)?),
        "FLOAT4" => Value::Real(row.try_get::<Option<f32>, _>(i)?.map(f64::from)),
        "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => {
            Value::Text(row.try_get::<Option<String>, _>(i)?.map(Cow::Owned))
        }
        other => {
            return Err(StoreError::Column {
                column: i,
                reason: format!("unsupported PostgreSQL type {other} (cast it in the query)"),
            });
        }
    })
}

impl Tx for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let result = self
            .handle
            .block_on(bind(sql, params).execute(&mut *self.tx))?;
        Ok(result.rows_affected())
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let rows = self
            .handle
            .block_on(bind(sql, params).fetch_all(&mut *self.tx))?;
        rows.iter()
            .map(|row| (0..row.columns().len()).map(|i| pg_value(row, i)).collect())
            .map(|values: Result<Vec<Value<'static>>, StoreError>| values.map(Row))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_sqlite_parameters() {
        assert_eq!(sqlite_sql("SELECT $1, $2, $1"), "SELECT ?1, ?2, ?1");
        assert_eq!(sqlite_sql("SELECT 1"), "SELECT 1");
    }

    #[test]
    fn taking_text_moves_it_out_and_checks_the_type_as_reading_does() {
        let mut row = Row(vec!["a".into(), Value::Text(None), 1.into()]);
        assert_eq!(row.take_text(0).unwrap(), "a");
        assert!(matches!(
            row.take_text(0),
            Err(StoreError::Column { column: 0, .. })
        ));
        assert_eq!(row.take_opt_text(1).unwrap(), None);
        assert!(matches!(
            row.take_opt_text(2),
            Err(StoreError::Column { column: 2, .. })
        ));
        assert!(matches!(
            row.take_opt_text(3),
            Err(StoreError::Column { column: 3, .. })
        ));
    }

    #[tokio::test]
    async fn a_short_read_answers_like_a_read_with_or_without_an_idle_reader() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(&dir.path().join("v.db")).unwrap());
        let store = Store::Sqlite(sqlite.clone());
        store
            .write(|tx| -> Result<_, StoreError> {
                tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY)", &[])?;
                tx.execute("INSERT INTO t VALUES ($1)", &["a".into()])
            })
            .await
            .unwrap();
        let read = |tx: &mut dyn Tx| tx.query("SELECT k FROM t", &[]);
        // No reader is open yet: a blocking thread opens one, and keeps it.
        assert!(sqlite.readers.lock().unwrap().is_empty());
        let first = store.read_short(read).await.unwrap();
        assert_eq!(sqlite.readers.lock().unwrap().len(), 1);
        // Now one is idle: the read runs here, on it, and gives it back.
        let second = store.read_short(read).await.unwrap();
        assert_eq!(sqlite.readers.lock().unwrap().len(), 1);
        assert_eq!(first, vec![Row(vec!["a".into()])]);
        assert_eq!(second, first);
        assert_eq!(store.read(read).await.unwrap(), first);
    }

    #[tokio::test]
    async fn sqlite_transactions_commit_or_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Sqlite(Arc::new(
            SqliteStore::open(&dir.path().join("v.db")).unwrap(),
        ));
        store
            .write(|tx| -> Result<_, StoreError> {
                tx.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT)", &[])?;
                tx.execute("INSERT INTO t VALUES ($1, $2)", &["a".into(), 1.into()])?;
                Ok(())
            })
            .await
            .unwrap();
        let failed = store
            .write(|tx| -> Result<(), StoreError> {
                tx.execute("INSERT INTO t VALUES ($1, $2)", &["b".into(), 2.into()])?;
                Err::<(), _>(StoreError::Corrupt("test", "abort".into()))
            })
            .await;
        assert!(failed.is_err());
        let rows = store
            .read(|tx| -> Result<_, StoreError> { tx.query("SELECT k, n FROM t ORDER BY k", &[]) })
            .await
            .unwrap();
        assert_eq!(rows, vec![Row(vec!["a".into(), 1.into()])]);
    }
}
