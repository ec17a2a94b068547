//! Parley's event log: every action is an event appended here; everything else is derived.
//!
//! Parts:
//! - [`EventLog`], the trait every backend implements (append with optimistic concurrency and
//!   idempotent retries, stream and global reads, time travel, a head watch for subscribers);
//! - [`SqliteLog`], the embedded default, and [`PostgresLog`], for several processes sharing a
//!   database; both funnel appends through one group-commit writer per process (`batch`);
//! - [`Subscription`], catch-up then live reading of the global log, written once over the trait;
//! - [`codec`], MessagePack payloads with named fields and upcasters for old schema versions;
//! - [`open`], which picks a backend from a database URL.
//!
//! The trait speaks of streams, versions and positions only, never of SQL, so that a clustered
//! backend (KurrentDB) can be added without touching callers.

mod batch;
pub mod codec;
mod error;
mod model;
mod postgres;
mod rows;
pub mod scratch;
mod sqlite;
mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

pub use codec::{CodecError, EventCodec, Upcasters};
pub use error::LogError;
pub use model::{
    Actor, ActorKind, AppendResult, AsOf, ExpectedVersion, MAX_EVENT_TYPE_BYTES,
    MAX_STREAM_ID_BYTES, Metadata, NewEvent, Position, RecordedEvent, StreamId, StreamVersion,
    Timestamp,
};
pub use postgres::{PostgresLog, follow_channel};
pub use sqlite::{SqliteLog, create_parent_dirs};
pub use subscription::Subscription;

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::watch;
use uuid::Uuid;

/// How many events one page of a read returns at most, whatever the caller asks.
pub const MAX_READ_BATCH: usize = 10_000;

/// The durable, append-only log of every event.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `events` to `stream` if its version satisfies `expected`, atomically: all of them
    /// or none. Appending events whose ids are already stored in this stream by one earlier
    /// append (a retry) returns that append's result and writes nothing.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, LogError>;

    /// The append that stored the event with this id, as it was answered then: its stream, and
    /// its result (every event's position, the stream's version after it). `None` if no event
    /// has this id. A caller that derives its event ids from a request learns with it whether
    /// that request already acted, and what it did.
    async fn find_append(
        &self,
        event_id: Uuid,
    ) -> Result<Option<(StreamId, AppendResult)>, LogError>;

    /// The stream's current version (`StreamVersion::NONE` if it has no events).
    async fn stream_version(&self, stream: &StreamId) -> Result<StreamVersion, LogError>;

    /// Up to `limit` events of `stream` with a version above `after`, in version order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        after: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError>;

    /// Up to `limit` events of the whole log with a position above `after`, in position order.
    /// Gap-free: once an event at position `p` has been returned, no event below `p` can appear
    /// later, so a reader that checkpoints the last position it handled never skips one.
    async fn read_all(&self, after: Position, limit: usize)
    -> Result<Vec<RecordedEvent>, LogError>;

    /// Like [`EventLog::read_all`], but the page also ends once the payloads read reach
    /// `max_bytes` (it holds at least one event): a reader that keeps a page in memory, and may
    /// meet events of up to a megabyte, keeps a bounded amount whatever the events are.
    async fn read_all_bounded(
        &self,
        after: Position,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        let mut events = self.read_all(after, limit).await?;
        events.truncate(bounded_len(
            events.iter().map(|e| e.payload.len()),
            max_bytes,
        ));
        Ok(events)
    }

    /// The position of the last event in the log (`Position::START` if empty).
    async fn head(&self) -> Result<Position, LogError>;

    /// A watch of the head position, updated after every append this process commits and (on
    /// backends shared between processes) every append another process commits.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// The events of `stream` as they were at `as_of`: an audit's view of the past.
    async fn read_stream_as_of(
        &self,
        stream: &StreamId,
        as_of: AsOf,
        after: StreamVersion,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        // Versions grow with positions and `recorded_at` never decreases along positions,
        // so the past of a stream is a prefix of it.
        let mut events = self.read_stream(stream, after, limit).await?;
        events.retain(|e| match as_of {
            AsOf::Position(p) => e.position <= p,
            AsOf::Time(t) => e.recorded_at <= t,
        });
        Ok(events)
    }

    /// Stops the writer after the appends already queued. Further appends fail with `Closed`.
    async fn close(&self);
}

/// How many of the events whose payloads are `sizes` (in order) fit in `max_bytes`: those
/// before the one that reaches it, and that one too (so at least one).
pub(crate) fn bounded_len(sizes: impl Iterator<Item = usize>, max_bytes: usize) -> usize {
    let mut total = 0;
    let mut count = 0;
    for size in sizes {
        count += 1;
        total += size;
        if total >= max_bytes {
            break;
        }
    }
    count
}

/// Durability of a commit on SQLite (`PRAGMA synchronous`). PostgreSQL follows its own
/// `synchronous_commit` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every acknowledged append survives a power loss (`synchronous=FULL`). The default.
    #[default]
    Full,
    /// Acknowledged appends survive a process crash but the last ones may be lost on power
    /// loss (`synchronous=NORMAL`).
    Normal,
}

impl std::str::FromStr for Durability {
    type Err = String;

    /// `full` or `normal`, as in SQLite's `PRAGMA synchronous`.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(format!("durability is `full` or `normal`, not `{other}`")),
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        })
    }
}

/// Tunables of a log; the defaults suit a production server.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Largest payload of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Most events one append may carry.
    pub max_events_per_append: usize,
    /// Most events one group-commit transaction carries.
    pub max_batch_events: usize,
    /// Merge concurrent appends into one transaction. Off gives one transaction per append
    /// (the naive baseline of the benchmarks).
    pub group_commit: bool,
    pub durability: Durability,
    /// Connections for reads (SQLite) or for everything (PostgreSQL).
    pub pool_size: u32,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_payload_bytes: 1024 * 1024,
            max_events_per_append: 1000,
            max_batch_events: 2048,
            group_commit: true,
            durability: Durability::Full,
            pool_size: 8,
        }
    }
}

/// Opens the log a URL names: `sqlite:<path>` (created if missing) or `postgres://…`.
/// Migrations are applied before this returns.
pub async fn open(url: &str, options: LogOptions) -> Result<Arc<dyn EventLog>, LogError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteLog::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresLog::open(url, options).await?))
    } else {
        Err(LogError::UnsupportedUrl(url.to_owned()))
    }
}
