//! The embedded default backend: one SQLite file in WAL mode.
//!
//! sqlx applies the migrations (the same tool as for PostgreSQL); the hot paths then talk to
//! SQLite through rusqlite, on blocking threads: one writer connection, owned by the
//! group-commit task, does every append; a small pool of read-only connections serves reads
//! concurrently (WAL readers never block the writer). See `docs/adr/0004-sqlite-access.md`.

use crate::batch::{self, AppendRequest, Appender, BatchStore, StoredId};
use crate::error::LogError;
use crate::model::{
    AppendResult, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};
use crate::rows::{self, Envelope, select_events, signed, unsigned};
use crate::{Durability, EventLog, LogOptions, MAX_READ_BATCH};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The SQLite event log. Cheap to share behind an `Arc`.
pub struct SqliteLog {
    readers: Arc<Readers>,
    appender: Appender,
    /// The writer task owns the sender: once it ends, subscribers learn the log is closed.
    head: watch::Receiver<Position>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteLog {
    /// Opens (creating if missing) the database at `url` (`sqlite:path` or `sqlite://path`),
    /// applies migrations and starts the writer.
    pub async fn open(url: &str, options: LogOptions) -> Result<Self, LogError> {
        let sqlx_options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10));
        let path = sqlx_options.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path == Path::new(":memory:") {
            return Err(LogError::UnsupportedUrl(format!(
                "{url} (an in-memory SQLite log cannot be shared by its connections)"
            )));
        }
        // A first run creates the file, and the directories it is to live in.
        create_parent_dirs(&path).map_err(|e| LogError::Storage(sqlx::Error::Io(e)))?;
        let mut migrator = sqlx_options.connect().await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&mut migrator)
            .await?;
        sqlx::Connection::close(migrator).await?;

        let writer_path = path.clone();
        let durability = options.durability;
        let state =
            tokio::task::spawn_blocking(move || WriterState::open(&writer_path, durability))
                .await
                .map_err(|_| LogError::Closed)??;
        let readers = Arc::new(Readers::open(&path, options.pool_size.max(1) as usize).await?);
        let head = readers
            .run(|conn| {
                let head: Option<i64> =
                    conn.query_row("SELECT MAX(position) FROM events", [], |r| r.get(0))?;
                Ok(Position(unsigned(head.unwrap_or(0), "position")?))
            })
            .await?;
        let (head_tx, head) = watch::channel(head);

        let (queue, requests) = mpsc::channel(4096);
        let writer = tokio::spawn(batch::run_writer(
            SqliteStore { state: Some(state) },
            requests,
            Arc::new(head_tx),
            options.max_batch_events,
            options.group_commit,
        ));
        Ok(SqliteLog {
            readers,
            appender: Appender::new(queue, &options),
            head,
            writer: Mutex::new(Some(writer)),
        })
    }
}

fn read_envelope(row: &rusqlite::Row<'_>) -> Result<RecordedEvent, LogError> {
    let event_id: Vec<u8> = row.get(3)?;
    rows::envelope(Envelope {
        position: row.get(0)?,
        stream_id: row.get(1)?,
        version: row.get(2)?,
        event_id: Uuid::from_slice(&event_id).ok(),
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        recorded_at: row.get(6)?,
        metadata: row.get(7)?,
        payload: row.get(8)?,
    })
}

fn read_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, LogError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut events = Vec::with_capacity(64);
    while let Some(row) = rows.next()? {
        events.push(read_envelope(row)?);
    }
    Ok(events)
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, LogError> {
        self.appender.append(stream, expected, events).await
    }

    async fn find_append(
        &self,
        event_id: Uuid,
    ) -> Result<Option<(StreamId, AppendResult)>, LogError> {
        self.readers
            .run_small(move |conn| {
                let mut rows = conn.prepare_cached(
                    "SELECT e.stream_id, e.version, e.position FROM events AS e \
                       JOIN (SELECT stream_key, version - append_index AS first, append_size \
                               FROM events WHERE event_id = ?1) AS f \
                         ON e.stream_key = f.stream_key AND e.version >= f.first \
                        AND e.version < f.first + f.append_size \
                      ORDER BY e.version",
                )?;
                let rows = rows
                    .query_map([event_id.as_bytes()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<Result<Vec<(String, i64, i64)>, _>>()?;
                rows::append_of(rows)
            })
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<StreamVersion, LogError> {
        self.readers
            .run_small(|conn| {
                let version: Option<i64> = conn
                    .prepare_cached(
                        "SELECT MAX(version) FROM events \
                         WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1)",
                    )?
                    .query_row([stream.as_str()], |r| r.get(0))?;
                Ok(StreamVersion(unsigned(version.unwrap_or(0), "version")?))
            })
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        const SQL: &str = select_events!(
            "WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1) \
             AND version > ?2 ORDER BY version LIMIT ?3"
        );
        let limit = limit.min(MAX_READ_BATCH);
        if limit <= SMALL_READ {
            return self
                .readers
                .run_small(|conn| {
                    read_events(
                        conn,
                        SQL,
                        params![stream.as_str(), signed(after.0), limit as i64],
                    )
                })
                .await;
        }
        let stream = stream.to_string();
        self.readers
            .run(move |conn| read_events(conn, SQL, params![stream, signed(after.0), limit as i64]))
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        self.read_all_bounded(after, limit, usize::MAX).await
    }

    async fn read_all_bounded(
        &self,
        after: Position,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let limit = limit.min(MAX_READ_BATCH) as i64;
        self.readers
            .run(move |conn| {
                let mut statement = conn.prepare_cached(select_events!(
                    "WHERE position > ?1 ORDER BY position LIMIT ?2"
                ))?;
                let mut rows = statement.query(params![signed(after.0), limit])?;
                let (mut events, mut bytes) = (Vec::new(), 0);
                while bytes < max_bytes
                    && let Some(row) = rows.next()?
                {
                    let event = read_envelope(row)?;
                    bytes += event.payload.len();
                    events.push(event);
                }
                Ok(events)
            })
            .await
    }

    async fn head(&self) -> Result<Position, LogError> {
        self.readers
            .run_small(|conn| {
                let head: Option<i64> = conn
                    .prepare_cached("SELECT MAX(position) FROM events")?
                    .query_row([], |r| r.get(0))?;
                Ok(Position(unsigned(head.unwrap_or(0), "position")?))
            })
            .await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.clone()
    }

    async fn close(&self) {
        self.appender.close();
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
    }
}

/// Reads of at most this many events run on the calling task's thread.
const SMALL_READ: usize = 64;

/// Read-only connections, each used by one blocking task at a time.
struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    async fn open(path: &Path, size: usize) -> Result<Readers, LogError> {
        let path = path.to_path_buf();
        let connections = tokio::task::spawn_blocking(move || {
            (0..size)
                .map(|_| {
                    let conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    conn.busy_timeout(Duration::from_secs(10))?;
                    Ok(conn)
                })
                .collect::<Result<Vec<_>, LogError>>()
        })
        .await
        .map_err(|_| LogError::Closed)??;
        Ok(Readers {
            idle: Mutex::new(connections),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs a small `read` (one row, or a few) on an idle connection right here, on the calling
    /// task's thread: cheaper than handing it to a blocking thread and back, and short
    /// enough (tens of microseconds) not to hold up other tasks.
    async fn run_small<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let _permit = self.permits.acquire().await.map_err(|_| LogError::Closed)?;
        let conn = self
            .idle
            .lock()
            .map_err(|_| LogError::Closed)?
            .pop()
            .ok_or(LogError::Closed)?;
        let lease = Lease {
            readers: self,
            conn: Some(conn),
        };
        read(lease.conn.as_ref().ok_or(LogError::Closed)?)
    }

    /// Runs `read` on an idle connection, on a blocking thread. The permit travels with the
    /// connection, so a caller that stops waiting cannot let another read find the pool empty.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| LogError::Closed)?;
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = readers
                .idle
                .lock()
                .map_err(|_| LogError::Closed)?
                .pop()
                .ok_or(LogError::Closed)?;
            // Put back even if `read` panics.
            let lease = Lease {
                readers: &readers,
                conn: Some(conn),
            };
            read(lease.conn.as_ref().ok_or(LogError::Closed)?)
        })
        .await
        .map_err(|_| LogError::Closed)?
    }
}

/// A reader connection on loan; dropping it returns the connection to the pool.
struct Lease<'a> {
    readers: &'a Readers,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.readers.idle.lock()) {
            idle.push(conn);
        }
    }
}

/// The writer's side of group commit: its connection travels to a blocking thread per batch.
struct SqliteStore {
    state: Option<WriterState>,
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn commit_batch(
        &mut self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        let mut state = self.state.take().ok_or(LogError::Closed)?;
        let (state, results) = tokio::task::spawn_blocking(move || {
            let results = state.commit(&requests);
            (state, results)
        })
        .await
        .map_err(|_| LogError::Closed)?;
        self.state = Some(state);
        results
    }
}

/// The writer connection and what it remembers between batches.
struct WriterState {
    conn: Connection,
    path: PathBuf,
    durability: Durability,
    last_recorded_at: i64,
    /// Streams as of the last commit: key and head version. Valid while no other connection
    /// has written the file, which `PRAGMA data_version` tells at the start of every batch.
    streams: HashMap<String, Head>,
    data_version: i64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Head {
    /// `None` until the stream has a row in `streams`.
    key: Option<i64>,
    version: u64,
}

/// The `recorded_at` of the last stored event (0 for an empty log).
fn last_recorded_at(conn: &Connection) -> Result<i64, LogError> {
    let last: Option<i64> = conn
        .query_row(
            "SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(last.unwrap_or(0))
}

/// Streams are forgotten wholesale past this many; they are re-read on demand.
const MAX_CACHED_STREAMS: usize = 100_000;

impl WriterState {
    fn open(path: &PathBuf, durability: Durability) -> Result<WriterState, LogError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch(match durability {
            Durability::Full => "PRAGMA synchronous = FULL;",
            Durability::Normal => "PRAGMA synchronous = NORMAL;",
        })?;
        // Fewer, larger checkpoints: pages dirtied again and again are copied back once; the
        // WAL file is cut back to 64 MiB after each reset.
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 10000; \
             PRAGMA journal_size_limit = 67108864; \
             PRAGMA cache_size = -65536;",
        )?;
        Ok(WriterState {
            last_recorded_at: last_recorded_at(&conn)?,
            conn,
            path: path.clone(),
            durability,
            streams: HashMap::new(),
            data_version: 0,
        })
    }

    /// Commits one batch. The fast path assumes no event id is stored yet and lets the insert
    /// tell otherwise; a batch that meets a stored id goes again, checking every id first.
    fn commit(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        let results = match self.transaction(requests, false)? {
            Some(results) => results,
            None => self
                .transaction(requests, true)?
                .ok_or_else(|| LogError::Corrupt {
                    position: Position::START,
                    reason: "an event id planned as new was already stored".into(),
                })?,
        };
        for (request, result) in requests.iter().zip(&results) {
            if let Ok(result) = result
                && let Some(head) = self.streams.get_mut(request.stream.as_str())
            {
                head.version = head.version.max(result.stream_version.0);
            }
        }
        Ok(results)
    }

    fn transaction(
        &mut self,
        requests: &[AppendRequest],
        check_ids: bool,
    ) -> Result<Option<Vec<Result<AppendResult, LogError>>>, LogError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = match self.attempt(requests, check_ids) {
            Ok(Some(results)) => match self.conn.execute_batch("COMMIT") {
                Ok(()) => Ok(Some(results)),
                Err(error) => Err(LogError::from(error)),
            },
            other => other,
        };
        if !matches!(outcome, Ok(Some(_))) {
            // Nothing of the attempt survives: roll back (a failed rollback leaves nothing
            // either, the transaction never committed) and forget what it cached.
            let _ = self.conn.execute_batch("ROLLBACK");
            self.streams.clear();
            if !self.conn.is_autocommit() {
                // Still inside a transaction: start over on a fresh connection rather than
                // keep the write lock and fail every later batch.
                *self = WriterState::open(&self.path, self.durability)?;
            }
        }
        outcome
    }

    fn attempt(
        &mut self,
        requests: &[AppendRequest],
        check_ids: bool,
    ) -> Result<Option<Vec<Result<AppendResult, LogError>>>, LogError> {
        let data_version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if data_version != self.data_version || self.streams.len() > MAX_CACHED_STREAMS {
            // Another connection wrote the file: what we remember may be stale.
            self.streams.clear();
            self.data_version = data_version;
            self.last_recorded_at = self.last_recorded_at.max(last_recorded_at(&self.conn)?);
        }
        for request in requests {
            let stream = request.stream.as_str();
            if !self.streams.contains_key(stream) {
                let head = self.read_head(stream)?;
                self.streams.insert(stream.to_owned(), head);
            }
        }

        let streams = &self.streams;
        let head = |s: &str| streams.get(s).map_or(0, |h| h.version);
        let (mut planned, mut decisions) = batch::plan(requests, head, &HashMap::new());
        // A conflict may be a retry of a stored append: look the ids up before answering.
        if check_ids || decisions.iter().any(batch::Decision::is_conflict) {
            let stored = self.stored_ids(requests)?;
            let streams = &self.streams;
            let head = |s: &str| streams.get(s).map_or(0, |h| h.version);
            (planned, decisions) = batch::plan(requests, head, &stored);
        }

        let recorded_at = batch::batch_timestamp(&mut self.last_recorded_at);
        let mut positions = HashMap::with_capacity(planned.len());
        let mut register = self
            .conn
            .prepare_cached("INSERT INTO streams (stream_id) VALUES (?1)")?;
        let mut insert = self.conn.prepare_cached(
            "INSERT INTO events (stream_key, stream_id, version, event_id, event_type, \
             schema_version, recorded_at, metadata, payload, append_index, append_size) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (event_id) DO NOTHING",
        )?;
        for row in &planned {
            let request = &requests[row.request];
            let event = &request.events[row.event];
            let stream = request.stream.as_str();
            let head = self.streams.entry(stream.to_owned()).or_default();
            let key = match head.key {
                Some(key) => key,
                None => {
                    register.execute([stream])?;
                    let key = self.conn.last_insert_rowid();
                    head.key = Some(key);
                    key
                }
            };
            let inserted = insert.execute(params![
                key,
                stream,
                signed(row.version),
                event.event_id.as_bytes(),
                event.event_type,
                event.schema_version,
                recorded_at,
                event.metadata,
                event.payload,
                row.event as i64,
                request.events.len() as i64,
            ])?;
            if inserted == 0 {
                return Ok(None);
            }
            positions.insert(
                event.event_id,
                unsigned(self.conn.last_insert_rowid(), "position")?,
            );
        }
        batch::results(requests, &planned, decisions, &positions).map(Some)
    }

    /// A stream's key and current version, as stored.
    fn read_head(&self, stream: &str) -> Result<Head, LogError> {
        let found: Option<(i64, Option<i64>)> = self
            .conn
            .prepare_cached(
                "SELECT s.stream_key, \
                        (SELECT MAX(version) FROM events AS e WHERE e.stream_key = s.stream_key) \
                   FROM streams AS s WHERE s.stream_id = ?1",
            )?
            .query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(match found {
            Some((key, version)) => Head {
                key: Some(key),
                version: unsigned(version.unwrap_or(0), "version")?,
            },
            None => Head::default(),
        })
    }

    /// Where the event ids of the batch are already stored.
    fn stored_ids(&self, requests: &[AppendRequest]) -> Result<HashMap<Uuid, StoredId>, LogError> {
        let mut lookup = self.conn.prepare_cached(
            "SELECT stream_id, version, position, append_index, append_size \
             FROM events WHERE event_id = ?1",
        )?;
        let mut stored = HashMap::new();
        for event in requests.iter().flat_map(|r| &r.events) {
            let found: Option<(String, i64, i64, i64, i64)> = lookup
                .query_row([event.event_id.as_bytes()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            if let Some((stream, version, position, index, size)) = found {
                stored.insert(
                    event.event_id,
                    StoredId {
                        stream,
                        version: unsigned(version, "version")?,
                        position: unsigned(position, "position")?,
                        index: unsigned(index, "append index")?,
                        size: unsigned(size, "append size")?,
                    },
                );
            }
        }
        Ok(stored)
    }
}

/// Creates the directories a database file is to live in (the log's, and the read models'
/// beside it); the error names the directory.
pub fn create_parent_dirs(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::create_dir_all(parent).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot create {}: {e}", parent.display()))
        }),
        None => Ok(()),
    }
}
