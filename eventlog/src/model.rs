//! The vocabulary of the log: stream ids, versions, positions, envelopes.

use crate::error::LogError;
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Longest stream id accepted, in bytes.
pub const MAX_STREAM_ID_BYTES: usize = 200;
/// Longest event type name accepted, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 100;

/// The name of one stream, e.g. `conversation-0193…`. Permanent once written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

impl StreamId {
    /// Validates a stream id: 1 to [`MAX_STREAM_ID_BYTES`] bytes, no control characters.
    pub fn new(id: impl Into<String>) -> Result<Self, LogError> {
        let id = id.into();
        check_name(&id, MAX_STREAM_ID_BYTES)
            .map_err(|reason| LogError::InvalidStreamId { reason })?;
        Ok(StreamId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for StreamId {
    type Error = LogError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        StreamId::new(value)
    }
}

pub(crate) fn check_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("is {} bytes long, the limit is {max}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// A place in the global log. Positions start at 1 and are never reused;
/// `Position::START` (0) is "before the first event".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How many events a stream holds. Its first event has version 1; 0 means "no stream".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    pub const NONE: StreamVersion = StreamVersion(0);
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The optimistic-concurrency condition of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (`Exact(StreamVersion::NONE)` is `NoStream`).
    Exact(StreamVersion),
}

impl ExpectedVersion {
    pub(crate) fn admits(self, current: StreamVersion) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == StreamVersion::NONE,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// Microseconds since the Unix epoch, UTC. The log stamps every event with it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    pub kind: ActorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Agent,
    Customer,
    Integration,
    System,
}

/// Context carried by every event, for audits: who, through which channel and request, and
/// which event or request caused it. Stored as MessagePack with named fields, so fields can be
/// added later without rewriting history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The API token the request was made with (its id, never its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// An event on its way into the log. The payload is already encoded (see [`crate::codec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Chosen by the caller; retrying an append with the same ids is harmless.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub payload: Vec<u8>,
    pub metadata: Metadata,
}

/// An event as stored, with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: String,
    pub version: StreamVersion,
    pub position: Position,
    pub event_type: String,
    pub schema_version: u16,
    pub recorded_at: Timestamp,
    pub metadata: Metadata,
    pub payload: Vec<u8>,
}

/// What a successful append reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append (the version of its last event).
    pub stream_version: StreamVersion,
    /// The global position of each appended event, in the order given.
    pub positions: Vec<Position>,
    /// Nothing was written: these events were stored by an earlier append with the same event
    /// ids (a retry), and this is its result.
    pub replayed: bool,
}

impl AppendResult {
    /// The position of the last event of the append; a reader that has reached it has seen
    /// the whole append.
    pub fn last_position(&self) -> Position {
        self.positions.last().copied().unwrap_or_default()
    }
}

/// A point in the past to read a stream at, for audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Events at or before this global position.
    Position(Position),
    /// Events recorded at or before this time.
    Time(Timestamp),
}
