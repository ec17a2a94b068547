//! The PostgreSQL backend, for several processes sharing one database.
//!
//! Appends run through the same group-commit writer as SQLite, one per process. Each batch
//! transaction first takes a transaction-level advisory lock, held until after its commit is
//! visible, so global positions become visible strictly in order across all processes (the
//! proof is in `docs/adr/0002-gap-free-global-reads.md`). Other processes learn of appends by
//! `LISTEN`/`NOTIFY`.

use crate::batch::{self, AppendRequest, Appender, BatchStore, StoredId};
use crate::error::LogError;
use crate::model::{
    AppendResult, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
};
use crate::rows::{self, Envelope, select_events, signed, unsigned};
use crate::{EventLog, LogOptions, MAX_READ_BATCH};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

fn read_envelope(row: &sqlx::postgres::PgRow) -> Result<RecordedEvent, LogError> {
    rows::envelope(Envelope {
        position: row.try_get(0)?,
        stream_id: row.try_get(1)?,
        version: row.try_get(2)?,
        event_id: Some(row.try_get(3)?),
        event_type: row.try_get(4)?,
        schema_version: i64::from(row.try_get::<i32, _>(5)?),
        recorded_at: row.try_get(6)?,
        metadata: row.try_get(7)?,
        payload: row.try_get(8)?,
    })
}

/// The channel on which every committed append batch is announced, with its last position.
pub const NOTIFY_CHANNEL: &str = "parley_events";

/// The PostgreSQL event log. Cheap to share behind an `Arc`.
pub struct PostgresLog {
    pool: PgPool,
    appender: Appender,
    /// The writer and listener tasks own the sender: once they end, subscribers learn the log
    /// is closed.
    head: watch::Receiver<Position>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl PostgresLog {
    /// The advisory lock key that serialises append transactions (ASCII "parley").
    pub const APPEND_LOCK_KEY: i64 = 0x7061_726c_6579;

    /// Connects to `url`, applies migrations, starts the writer and the notification listener.
    pub async fn open(url: &str, options: LogOptions) -> Result<Self, LogError> {
        // A writer that stalls inside its batch must not hold the append lock for long: its
        // session is ended after 60 s idle in a transaction, and waits for the lock give up
        // after 30 s (the batch then fails and its callers may retry).
        let connect = PgConnectOptions::from_str(url)?.options([
            ("idle_in_transaction_session_timeout", "60000"),
            ("lock_timeout", "30000"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_size.max(2))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect)
            .await?;
        Self::with_pool(pool, options).await
    }

    /// Uses an existing pool (which must allow at least two connections).
    pub async fn with_pool(pool: PgPool, options: LogOptions) -> Result<Self, LogError> {
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&pool)
            .await?;
        let (head_tx, head) = watch::channel(Position(unsigned(head.unwrap_or(0), "position")?));
        let head_tx = Arc::new(head_tx);

        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        let listen = tokio::spawn(follow_notifications(
            listener,
            pool.clone(),
            head_tx.clone(),
        ));

        let (queue, requests) = mpsc::channel(4096);
        let store = PgStore { pool: pool.clone() };
        let writer = tokio::spawn(batch::run_writer(
            store,
            requests,
            head_tx,
            options.max_batch_events,
            options.group_commit,
        ));
        Ok(PostgresLog {
            pool,
            appender: Appender::new(queue, &options),
            head,
            tasks: Mutex::new(vec![writer, listen]),
        })
    }

    /// The connection pool, for callers that keep their own tables in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Moves the head watch forward on every notification from any process; after an interruption
/// it re-reads the head, so nothing appended meanwhile goes unannounced.
async fn follow_notifications(
    listener: PgListener,
    pool: PgPool,
    head: Arc<watch::Sender<Position>>,
) {
    let advance = |to: Position| {
        head.send_if_modified(|h| {
            let moved = to > *h;
            if moved {
                *h = to;
            }
            moved
        });
    };
    let resync = || async {
        let read = sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(position) FROM events")
            .fetch_one(&pool)
            .await;
        match read {
            Ok(position) => {
                advance(Position(position.unwrap_or(0).max(0) as u64));
                true
            }
            Err(_) => false,
        }
    };
    follow_channel(
        listener,
        pool.clone(),
        |payload| {
            if let Ok(position) = payload.parse::<u64>() {
                advance(Position(position));
            }
        },
        resync,
    )
    .await;
}

/// Follows a `LISTEN`ing connection until `pool` closes: `on_payload` runs for every
/// notification. After an interruption (notifications may have been missed) it reconnects,
/// listens again, and only then runs `resync` (which re-reads whatever the notifications
/// announce and says whether it could). While the server is unreachable it retries with a
/// back-off of 50 ms doubling to 5 s: nothing can announce that the server is back, and without
/// the pause a down server would make this task spin.
pub async fn follow_channel<R, F>(
    mut listener: PgListener,
    pool: PgPool,
    on_payload: impl Fn(&str),
    resync: R,
) where
    R: Fn() -> F,
    F: std::future::Future<Output = bool>,
{
    let mut backoff = Duration::from_millis(50);
    let mut resyncing = false;
    loop {
        if resyncing {
            // Any statement through the listener reconnects it and re-issues LISTEN.
            let reconnected = sqlx::query("SELECT 1").execute(&mut listener).await.is_ok();
            if reconnected && resync().await {
                resyncing = false;
                backoff = Duration::from_millis(50);
            } else if pool.is_closed() {
                return;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        match listener.try_recv().await {
            Ok(Some(notification)) => on_payload(notification.payload()),
            // The connection was lost and re-established: catch up on what was missed.
            Ok(None) => resyncing = true,
            Err(error) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(%error, "notifications interrupted; reconnecting");
                resyncing = true;
            }
        }
    }
}

#[async_trait]
impl EventLog for PostgresLog {
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
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT e.stream_id, e.version, e.position FROM events AS e \
               JOIN (SELECT stream_id, version - append_index AS first, append_size \
                       FROM events WHERE event_id = $1) AS f \
                 ON e.stream_id = f.stream_id AND e.version >= f.first \
                AND e.version < f.first + f.append_size \
              ORDER BY e.version",
        )
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        rows::append_of(rows)
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<StreamVersion, LogError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM events WHERE stream_id = $1")
                .bind(stream.as_str())
                .fetch_one(&self.pool)
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
            "WHERE stream_id = $1 AND version > $2 ORDER BY version LIMIT $3"
        ))
        .bind(stream.as_str())
        .bind(signed(after.0))
        .bind(limit.min(MAX_READ_BATCH) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_envelope).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let rows = sqlx::query(select_events!(
            "WHERE position > $1 ORDER BY position LIMIT $2"
        ))
        .bind(signed(after.0))
        .bind(limit.min(MAX_READ_BATCH) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_envelope).collect()
    }

    async fn read_all_bounded(
        &self,
        after: Position,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        // The page is cut on the server: rows past the budget are never sent (their payloads'
        // sizes come from their TOAST headers, without reading them).
        let rows = sqlx::query(concat!(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, ",
            "recorded_at, metadata, payload FROM (",
            "SELECT *, SUM(octet_length(payload)) OVER (ORDER BY position) ",
            "- octet_length(payload) AS before FROM (",
            "SELECT * FROM events WHERE position > $1 ORDER BY position LIMIT $2) AS page",
            ") AS sized WHERE before < $3 ORDER BY position"
        ))
        .bind(signed(after.0))
        .bind(limit.min(MAX_READ_BATCH) as i64)
        .bind(i64::try_from(max_bytes).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(read_envelope).collect()
    }

    async fn head(&self) -> Result<Position, LogError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(position) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(Position(unsigned(head.unwrap_or(0), "position")?))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.head.clone()
    }

    async fn close(&self) {
        self.appender.close();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        let mut tasks = tasks.into_iter();
        if let Some(writer) = tasks.next() {
            let _ = writer.await;
        }
        for task in tasks {
            task.abort();
        }
        self.pool.close().await;
    }
}

/// The writer's side: one transaction per batch, under the append lock.
struct PgStore {
    pool: PgPool,
}

#[async_trait]
impl BatchStore for PgStore {
    async fn commit_batch(
        &mut self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
        let requests = &requests[..];
        // The lock argument (ADR 0002) needs each statement to see what committed before it:
        // READ COMMITTED, whatever the server's default isolation.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PostgresLog::APPEND_LOCK_KEY)
            .execute(&mut *tx)
            .await?;

        let mut streams: Vec<String> = requests.iter().map(|r| r.stream.to_string()).collect();
        streams.sort_unstable();
        streams.dedup();
        let ids: Vec<Uuid> = requests
            .iter()
            .flat_map(|r| r.events.iter().map(|e| e.event_id))
            .collect();

        // Heads, stored ids and the last timestamp in one round trip. Each head is an index
        // probe (`ORDER BY version DESC LIMIT 1`), whatever the stream's length or the plan.
        let rows = sqlx::query(
            "SELECT 0 AS kind, s AS stream_id, \
                    (SELECT version FROM events WHERE stream_id = s ORDER BY version DESC LIMIT 1) AS version, \
                    NULL::uuid AS event_id, 0::bigint AS position, \
                    0 AS append_index, 0 AS append_size \
               FROM unnest($1::text[]) AS s \
             UNION ALL \
             SELECT 1, e.stream_id, e.version, e.event_id, e.position, e.append_index, e.append_size \
               FROM unnest($2::uuid[]) AS i \
               JOIN LATERAL (SELECT * FROM events WHERE event_id = i) AS e ON true \
             UNION ALL \
             (SELECT 2, '', recorded_at, NULL, position, 0, 0 FROM events ORDER BY position DESC LIMIT 1)",
        )
        .bind(&streams)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut heads = HashMap::new();
        let mut stored = HashMap::new();
        let mut last_recorded_at = 0;
        for row in rows {
            let kind: i32 = row.try_get(0)?;
            let value: i64 = row.try_get::<Option<i64>, _>(2)?.unwrap_or(0);
            match kind {
                0 => {
                    heads.insert(row.try_get::<String, _>(1)?, unsigned(value, "version")?);
                }
                1 => {
                    stored.insert(
                        row.try_get::<Uuid, _>(3)?,
                        StoredId {
                            stream: row.try_get(1)?,
                            version: unsigned(value, "version")?,
                            position: unsigned(row.try_get(4)?, "position")?,
                            index: unsigned(i64::from(row.try_get::<i32, _>(5)?), "append index")?,
                            size: unsigned(i64::from(row.try_get::<i32, _>(6)?), "append size")?,
                        },
                    );
                }
                _ => last_recorded_at = value,
            }
        }

        let (planned, decisions) =
            batch::plan(requests, |s| heads.get(s).copied().unwrap_or(0), &stored);
        let recorded_at = batch::batch_timestamp(&mut last_recorded_at);
        let mut positions = HashMap::with_capacity(planned.len());
        if !planned.is_empty() {
            let n = planned.len();
            let (mut stream_ids, mut versions, mut event_ids, mut types) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut schemas, mut metadata, mut payloads) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut indexes, mut sizes) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for row in &planned {
                let request = &requests[row.request];
                let event = &request.events[row.event];
                stream_ids.push(request.stream.as_str());
                versions.push(signed(row.version));
                event_ids.push(event.event_id);
                types.push(event.event_type.as_str());
                schemas.push(i32::from(event.schema_version));
                metadata.push(event.metadata.as_slice());
                payloads.push(event.payload.as_slice());
                indexes.push(i32::try_from(row.event).unwrap_or(i32::MAX));
                sizes.push(i32::try_from(request.events.len()).unwrap_or(i32::MAX));
            }
            // Insert and announce in one round trip; the announcement is delivered to
            // listeners when (and only if) the transaction commits.
            let inserted = sqlx::query(
                "WITH inserted AS ( \
                   INSERT INTO events (stream_id, version, event_id, event_type, schema_version, \
                                       recorded_at, metadata, payload, append_index, append_size) \
                   SELECT s, v, i, t, sv, $8, m, p, ai, az \
                     FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], \
                                 $6::bytea[], $7::bytea[], $10::int[], $11::int[]) \
                          WITH ORDINALITY AS x(s, v, i, t, sv, m, p, ai, az, n) \
                    ORDER BY n \
                   RETURNING event_id, position), \
                 announced AS ( \
                   SELECT pg_notify($9, max(position)::text) FROM inserted) \
                 SELECT event_id, position FROM inserted, announced",
            )
            .bind(&stream_ids)
            .bind(&versions)
            .bind(&event_ids)
            .bind(&types)
            .bind(&schemas)
            .bind(&metadata)
            .bind(&payloads)
            .bind(recorded_at)
            .bind(NOTIFY_CHANNEL)
            .bind(&indexes)
            .bind(&sizes)
            .fetch_all(&mut *tx)
            .await?;
            for row in inserted {
                let position = unsigned(row.try_get(1)?, "position")?;
                positions.insert(row.try_get::<Uuid, _>(0)?, position);
            }
        }
        let results = batch::results(requests, &planned, decisions, &positions)?;
        tx.commit().await?;
        Ok(results)
    }
}
