//! The embedded default backend: one SQLite file in WAL mode.
//!
//! One writer connection, owned by the group-commit task, does every append; a pool of
//! read-only connections serves reads concurrently (WAL readers never block the writer).

use crate::batch::{self, AppendRequest, Appender, BatchStore, StoredId};
use crate::error::LogError;
use crate::model::{
    AppendResult, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};
use crate::rows::{self, select_events, signed, unsigned};
use crate::{Durability, EventLog, LogOptions, MAX_READ_BATCH};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The SQLite event log. Cheap to share behind an `Arc`.
pub struct SqliteLog {
    readers: SqlitePool,
    appender: Appender,
    head: Arc<watch::Sender<Position>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl SqliteLog {
    /// Opens (creating if missing) the database at `url` (`sqlite:path` or `sqlite://path`),
    /// applies migrations and starts the writer.
    pub async fn open(url: &str, options: LogOptions) -> Result<Self, LogError> {
        let base = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.durability {
                Durability::Full => SqliteSynchronous::Full,
                Durability::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            // Bounds the WAL file left after a checkpoint resets it.
            .pragma("journal_size_limit", "67108864");
        let mut writer = base
            .clone()
            .create_if_missing(true)
            .statement_cache_capacity(512)
            // Fewer, larger checkpoints: pages dirtied again and again are copied back once.
            .pragma("wal_autocheckpoint", "10000")
            .pragma("cache_size", "-65536")
            .connect()
            .await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&mut writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .connect_with(base.clone().read_only(true))
            .await?;

        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&readers)
            .await?;
        let last_recorded_at: Option<i64> =
            sqlx::query_scalar("SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1")
                .fetch_optional(&readers)
                .await?;
        let head = Arc::new(watch::channel(Position(unsigned(head.unwrap_or(0), "position")?)).0);

        let (queue, requests) = mpsc::channel(4096);
        let store = SqliteStore {
            conn: writer,
            last_recorded_at: last_recorded_at.unwrap_or(0),
            streams: HashMap::new(),
            data_version: 0,
            inserts: HashMap::new(),
        };
        let writer = tokio::spawn(batch::run_writer(
            store,
            requests,
            head.clone(),
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

    async fn stream_version(&self, stream: &StreamId) -> Result<StreamVersion, LogError> {
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version) FROM events \
                 WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?)",
        )
        .bind(stream.as_str())
        .fetch_one(&self.readers)
        .await?;
        Ok(StreamVersion(unsigned(version.unwrap_or(0), "version")?))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        after: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = sqlx::query(select_events!(
            "WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?) \
             AND version > ? ORDER BY version LIMIT ?"
        ))
        .bind(stream.as_str())
        .bind(signed(after.0))
        .bind(limit.min(MAX_READ_BATCH) as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(rows::decode).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = sqlx::query(select_events!(
            "WHERE position > ? ORDER BY position LIMIT ?"
        ))
        .bind(signed(after.0))
        .bind(limit.min(MAX_READ_BATCH) as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(rows::decode).collect()
    }

    async fn head(&self) -> Result<Position, LogError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.readers)
            .await?;
        Ok(Position(unsigned(head.unwrap_or(0), "position")?))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.subscribe()
    }

    async fn close(&self) {
        self.appender.close();
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        self.readers.close().await;
    }
}

/// The writer's connection and what it remembers between batches.
struct SqliteStore {
    conn: SqliteConnection,
    last_recorded_at: i64,
    /// Streams as of the last commit: key and head version. Valid while no other connection
    /// has written the file, which `PRAGMA data_version` tells at the start of every batch.
    streams: HashMap<String, Head>,
    data_version: i64,
    /// INSERT statements by number of rows.
    inserts: HashMap<usize, Arc<str>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Head {
    /// `None` until the stream has a row in `streams`.
    key: Option<i64>,
    version: u64,
}

/// Streams are forgotten wholesale past this many; they are re-read on demand.
const MAX_CACHED_STREAMS: usize = 100_000;

/// Key and current version of each stream named in a JSON array (streams never written are
/// absent). `MAX` on one stream key is answered from the index without scanning the stream.
const SELECT_HEADS: &str = "SELECT s.stream_id, s.stream_key, \
            (SELECT MAX(version) FROM events AS e WHERE e.stream_key = s.stream_key) \
       FROM json_each(?1) AS j JOIN streams AS s ON s.stream_id = j.value";

/// Registers the streams named in a JSON array.
const INSERT_STREAMS: &str = "INSERT INTO streams (stream_id) SELECT value FROM json_each(?1) RETURNING stream_id, stream_key";

/// Where each event id of a JSON array of hex ids is already stored.
const SELECT_STORED_IDS: &str = "SELECT e.event_id, e.stream_id, e.version, e.position \
     FROM json_each(?1) AS j JOIN events AS e ON e.event_id = unhex(j.value)";

/// Most rows in one INSERT statement (9 parameters each, far below SQLite's limit).
const MAX_ROWS_PER_INSERT: usize = 256;

impl SqliteStore {
    /// `INSERT … VALUES (…), …` for `n` rows; event ids already stored are skipped, which
    /// shows as fewer rows affected than sent.
    fn insert_statement(&mut self, n: usize) -> AssertSqlSafe<Arc<str>> {
        let sql = self.inserts.entry(n).or_insert_with(|| {
            let values = vec!["(?,?,?,?,?,?,?,?,?)"; n].join(",");
            Arc::from(format!(
                "INSERT INTO events (stream_key, stream_id, version, event_id, event_type, \
                 schema_version, recorded_at, metadata, payload) VALUES {values} \
                 ON CONFLICT (event_id) DO NOTHING"
            ))
        });
        AssertSqlSafe(sql.clone())
    }

    /// One attempt at the batch, in a transaction it opens. With `check_ids` off it assumes
    /// no event id is stored yet and returns `None` if the insert finds one (the caller then
    /// rolls back and tries again with `check_ids` on).
    async fn attempt(
        &mut self,
        requests: &[AppendRequest],
        check_ids: bool,
    ) -> Result<Option<Vec<Result<AppendResult, LogError>>>, LogError> {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        let data_version: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await?;
        if data_version != self.data_version || self.streams.len() > MAX_CACHED_STREAMS {
            // Another connection wrote the file: what we remember may be stale.
            self.streams.clear();
            self.data_version = data_version;
        }
        let mut missing: Vec<&str> = requests
            .iter()
            .map(|r| r.stream.as_str())
            .filter(|s| !self.streams.contains_key(*s))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            for stream in &missing {
                self.streams.insert((*stream).to_owned(), Head::default());
            }
            let rows = sqlx::query(SELECT_HEADS)
                .bind(json(&missing)?)
                .fetch_all(&mut self.conn)
                .await?;
            for row in rows {
                let version: Option<i64> = row.try_get(2)?;
                self.streams.insert(
                    row.try_get(0)?,
                    Head {
                        key: Some(row.try_get(1)?),
                        version: unsigned(version.unwrap_or(0), "version")?,
                    },
                );
            }
        }

        let streams = &self.streams;
        let head = |s: &str| streams.get(s).map_or(0, |h| h.version);
        let (mut planned, mut decisions) = batch::plan(requests, head, &HashMap::new());
        // A conflict may be a retry of a stored append: look the ids up before answering.
        if check_ids || decisions.iter().any(batch::Decision::is_conflict) {
            let stored = self.stored_ids(requests).await?;
            let streams = &self.streams;
            let head = |s: &str| streams.get(s).map_or(0, |h| h.version);
            (planned, decisions) = batch::plan(requests, head, &stored);
        }

        // Streams written for the first time get their key.
        let mut new: Vec<&str> = planned
            .iter()
            .map(|row| requests[row.request].stream.as_str())
            .filter(|s| self.streams.get(*s).is_none_or(|h| h.key.is_none()))
            .collect();
        new.sort_unstable();
        new.dedup();
        if !new.is_empty() {
            for row in sqlx::query(INSERT_STREAMS)
                .bind(json(&new)?)
                .fetch_all(&mut self.conn)
                .await?
            {
                let head = self.streams.entry(row.try_get(0)?).or_default();
                head.key = Some(row.try_get(1)?);
            }
        }

        let recorded_at = batch::batch_timestamp(&mut self.last_recorded_at);
        let mut positions = HashMap::with_capacity(planned.len());
        for chunk in planned.chunks(MAX_ROWS_PER_INSERT) {
            let mut query = sqlx::query(self.insert_statement(chunk.len()));
            for row in chunk {
                let request = &requests[row.request];
                let event = &request.events[row.event];
                let key = self
                    .streams
                    .get(request.stream.as_str())
                    .and_then(|h| h.key)
                    .ok_or_else(|| LogError::Corrupt {
                        position: Position::START,
                        reason: format!("stream `{}` has no key", request.stream),
                    })?;
                query = query
                    .bind(key)
                    .bind(request.stream.as_str())
                    .bind(signed(row.version))
                    .bind(event.event_id)
                    .bind(event.event_type.as_str())
                    .bind(i32::from(event.schema_version))
                    .bind(recorded_at)
                    .bind(event.metadata.as_slice())
                    .bind(event.payload.as_slice());
            }
            let done = query.execute(&mut self.conn).await?;
            if done.rows_affected() != chunk.len() as u64 {
                return Ok(None);
            }
            // AUTOINCREMENT gives the rows of one statement consecutive positions, in order.
            let last = unsigned(done.last_insert_rowid(), "position")?;
            let first = last + 1 - chunk.len() as u64;
            for (i, row) in chunk.iter().enumerate() {
                let id = requests[row.request].events[row.event].event_id;
                positions.insert(id, first + i as u64);
            }
        }
        batch::results(requests, &planned, decisions, &positions).map(Some)
    }

    /// Where the event ids of the batch are already stored.
    async fn stored_ids(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<HashMap<Uuid, StoredId>, LogError> {
        let ids: Vec<String> = requests
            .iter()
            .flat_map(|r| r.events.iter().map(|e| hex(e.event_id.as_bytes())))
            .collect();
        let mut stored = HashMap::new();
        for row in sqlx::query(SELECT_STORED_IDS)
            .bind(json(&ids)?)
            .fetch_all(&mut self.conn)
            .await?
        {
            stored.insert(
                row.try_get::<Uuid, _>(0)?,
                StoredId {
                    stream: row.try_get(1)?,
                    version: unsigned(row.try_get(2)?, "version")?,
                    position: unsigned(row.try_get(3)?, "position")?,
                },
            );
        }
        Ok(stored)
    }

    async fn transaction(
        &mut self,
        requests: &[AppendRequest],
        check_ids: bool,
    ) -> Result<Option<Vec<Result<AppendResult, LogError>>>, LogError> {
        let attempt = self.attempt(requests, check_ids).await;
        let outcome = match attempt {
            Ok(Some(results)) => match sqlx::query("COMMIT").execute(&mut self.conn).await {
                Ok(_) => Ok(Some(results)),
                Err(error) => Err(LogError::from(error)),
            },
            other => other,
        };
        if !matches!(outcome, Ok(Some(_))) {
            // Nothing of the attempt survives: roll back (a failed rollback leaves nothing
            // either, the transaction never committed) and forget what it cached.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
            self.streams.clear();
        }
        outcome
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, LogError> {
    serde_json::to_string(value).map_err(|e| LogError::Corrupt {
        position: Position::START,
        reason: format!("cannot encode a batch: {e}"),
    })
}

/// Lower-case hexadecimal, as SQLite's `unhex()` reads it.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn commit_batch(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        // Fast path first; a batch with a retried event id goes again, checking every id.
        let results = match self.transaction(requests, false).await? {
            Some(results) => results,
            None => self
                .transaction(requests, true)
                .await?
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
}
