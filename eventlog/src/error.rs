//! The one error type of the event log.
//!
//! Each variant says how an HTTP client should eventually see it; the API maps these in one place.

use crate::model::{Position, StreamVersion};
use uuid::Uuid;

/// Everything that can go wrong when talking to the log.
///
/// Variants fall in three layers: bad input from the caller (`Invalid*`, `PayloadTooLarge`,
/// `EmptyAppend`), concurrency outcomes (`Conflict`, `DuplicateEventId`) and storage or codec
/// failures (`Storage`, `Codec`, `Closed`, `Corrupt`).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The stream's current version is not the one the caller expected.
    /// HTTP: 409 Conflict, with `current` as the stream's version.
    #[error("stream `{stream}` is at version {current}, expected {expected}")]
    Conflict {
        stream: String,
        expected: String,
        current: StreamVersion,
    },

    /// An event id is already stored, in another stream or as part of a different append.
    /// HTTP: 409 Conflict.
    #[error(
        "event id {event_id} is already stored in stream `{stream}` as part of a different append"
    )]
    DuplicateEventId { event_id: Uuid, stream: String },

    /// One append carries the same event id twice. HTTP: 422.
    #[error("event id {event_id} appears more than once in one append")]
    RepeatedEventId { event_id: Uuid },

    /// The stream id is empty, too long or contains control characters. HTTP: 422.
    #[error("invalid stream id: {reason}")]
    InvalidStreamId { reason: String },

    /// The event type name is empty, too long or contains control characters. HTTP: 422.
    #[error("invalid event type: {reason}")]
    InvalidEventType { reason: String },

    /// An append must carry at least one event. HTTP: 422.
    #[error("an append must carry at least one event")]
    EmptyAppend,

    /// An append carries more events than allowed in one append. HTTP: 413.
    #[error("an append may carry at most {limit} events, got {actual}")]
    TooManyEvents { limit: usize, actual: usize },

    /// An event's payload is over the configured limit. HTTP: 413 Payload Too Large.
    #[error("event payload is {actual} bytes, the limit is {limit} bytes")]
    PayloadTooLarge { limit: usize, actual: usize },

    /// Encoding or decoding an event failed (unknown event type, unsupported schema version,
    /// malformed payload). HTTP: 500 when it comes from storage, 422 when from a client.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),

    /// A row read from storage does not have the shape the log writes. HTTP: 500.
    #[error("corrupt row at position {position}: {reason}")]
    Corrupt { position: Position, reason: String },

    /// The database failed or could not be reached. HTTP: 503 (retryable).
    #[error("storage failure: {0}")]
    Storage(#[from] sqlx::Error),

    /// The embedded SQLite database failed. HTTP: 503 (retryable).
    #[error("storage failure: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// Applying the schema migrations failed. HTTP: 503.
    #[error("migration failure: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),

    /// The database URL is not one the log understands. Configuration error at start-up.
    #[error("unsupported database url `{0}`: expected sqlite:… or postgres://…")]
    UnsupportedUrl(String),

    /// The transaction that carried this append (with others, by group commit) failed. Almost
    /// always nothing was written; if the connection broke during the commit itself it may
    /// have been. Retrying with the same event ids is safe either way. HTTP: 503.
    #[error("the append may not have been written (retry with the same event ids): {0}")]
    BatchFailed(std::sync::Arc<LogError>),

    /// The log's writer has stopped (the process is shutting down). HTTP: 503.
    #[error("the event log is shut down")]
    Closed,
}

impl LogError {
    /// Whether retrying the same call later may succeed without changing it.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            LogError::Storage(_)
                | LogError::Sqlite(_)
                | LogError::Closed
                | LogError::BatchFailed(_)
        )
    }
}
