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
            .pragma("mmap_size", "268435456");
        let mut writer = base.clone().create_if_missing(true).connect().await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&mut writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.pool_size.max(1))
            .connect_with(base.read_only(true))
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
            statements: HashMap::new(),
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
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM events WHERE stream_id = ?")
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
            "WHERE stream_id = ? AND version > ? ORDER BY version LIMIT ?"
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

/// Largest number of rows in one multi-row statement.
const CHUNK: usize = 128;

/// The writer's connection and state.
struct SqliteStore {
    conn: SqliteConnection,
    last_recorded_at: i64,
    /// Statements with `n` placeholders, built once per (kind, n); `n` is a power of two.
    statements: HashMap<(Statement, usize), Arc<str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Statement {
    Heads,
    StoredIds,
    Insert,
}

impl SqliteStore {
    fn statement(&mut self, kind: Statement, n: usize) -> AssertSqlSafe<Arc<str>> {
        let sql = self.statements.entry((kind, n)).or_insert_with(|| {
            let list = |group: &str| vec![group; n].join(",");
            Arc::from(match kind {
                Statement::Heads => format!(
                    "SELECT stream_id, MAX(version) FROM events WHERE stream_id IN ({}) GROUP BY stream_id",
                    list("?")
                ),
                Statement::StoredIds => format!(
                    "SELECT event_id, stream_id, version, position FROM events WHERE event_id IN ({})",
                    list("?")
                ),
                Statement::Insert => format!(
                    "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, \
                     recorded_at, metadata, payload) VALUES {} RETURNING event_id, position",
                    list("(?,?,?,?,?,?,?,?)")
                ),
            })
        });
        AssertSqlSafe(sql.clone())
    }

    async fn write(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        let mut streams: Vec<&str> = requests.iter().map(|r| r.stream.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut heads = HashMap::with_capacity(streams.len());
        for chunk in streams.chunks(CHUNK) {
            let n = chunk.len().next_power_of_two();
            let mut query = sqlx::query(self.statement(Statement::Heads, n));
            for i in 0..n {
                query = query.bind(chunk[i.min(chunk.len() - 1)].to_owned());
            }
            for row in query.fetch_all(&mut self.conn).await? {
                let version: i64 = row.try_get(1)?;
                heads.insert(row.try_get::<String, _>(0)?, unsigned(version, "version")?);
            }
        }

        let ids: Vec<Uuid> = requests
            .iter()
            .flat_map(|r| r.events.iter().map(|e| e.event_id))
            .collect();
        let mut stored = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let n = chunk.len().next_power_of_two();
            let mut query = sqlx::query(self.statement(Statement::StoredIds, n));
            for i in 0..n {
                query = query.bind(chunk[i.min(chunk.len() - 1)]);
            }
            for row in query.fetch_all(&mut self.conn).await? {
                stored.insert(
                    row.try_get::<Uuid, _>(0)?,
                    StoredId {
                        stream: row.try_get(1)?,
                        version: unsigned(row.try_get(2)?, "version")?,
                        position: unsigned(row.try_get(3)?, "position")?,
                    },
                );
            }
        }

        let (planned, decisions) = batch::plan(requests, &heads, &stored);
        let recorded_at = batch::batch_timestamp(&mut self.last_recorded_at);
        let mut positions = HashMap::with_capacity(planned.len());
        let mut rest = &planned[..];
        while !rest.is_empty() {
            // Power-of-two chunks keep the number of distinct statements small.
            let n = if rest.len() >= CHUNK {
                CHUNK
            } else {
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut query = sqlx::query(self.statement(Statement::Insert, n));
            for row in chunk {
                let request = &requests[row.request];
                let event = &request.events[row.event];
                query = query
                    .bind(request.stream.as_str().to_owned())
                    .bind(signed(row.version))
                    .bind(event.event_id)
                    .bind(event.event_type.clone())
                    .bind(i32::from(event.schema_version))
                    .bind(recorded_at)
                    .bind(event.metadata.clone())
                    .bind(event.payload.clone());
            }
            for row in query.fetch_all(&mut self.conn).await? {
                positions.insert(
                    row.try_get::<Uuid, _>(0)?,
                    unsigned(row.try_get(1)?, "position")?,
                );
            }
        }
        batch::results(requests, &planned, decisions, &positions)
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn commit_batch(
        &mut self,
        requests: &[AppendRequest],
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut self.conn)
            .await?;
        let written = self.write(requests).await;
        let committed = match written {
            Ok(results) => sqlx::query("COMMIT")
                .execute(&mut self.conn)
                .await
                .map(|_| results)
                .map_err(LogError::from),
            Err(error) => Err(error),
        };
        if committed.is_err() {
            // Nothing of the batch may survive; a failed rollback leaves nothing either,
            // since the transaction was never committed.
            let _ = sqlx::query("ROLLBACK").execute(&mut self.conn).await;
        }
        committed
    }
}
