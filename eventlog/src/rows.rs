//! Turning stored rows into envelopes, with every check in one place for all backends.

use crate::error::LogError;
use crate::model::{
    AppendResult, Metadata, Position, RecordedEvent, StreamId, StreamVersion, Timestamp,
};
use uuid::Uuid;

/// `SELECT <the envelope's columns> FROM events <tail>`: every read of either backend selects
/// the columns of an [`Envelope`] in this order.
macro_rules! select_events {
    ($tail:literal) => {
        concat!(
            "SELECT position, stream_id, version, event_id, event_type, schema_version, ",
            "recorded_at, metadata, payload FROM events ",
            $tail
        )
    };
}
pub(crate) use select_events;

/// The raw columns of one stored event, as any backend reads them.
pub(crate) struct Envelope {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    /// `None` if the stored bytes are not a UUID.
    pub event_id: Option<Uuid>,
    pub event_type: String,
    pub schema_version: i64,
    pub recorded_at: i64,
    pub metadata: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Checks a stored row and builds its [`RecordedEvent`]. A row that does not have the shape
/// the log writes is `Corrupt`, never a panic.
pub(crate) fn envelope(row: Envelope) -> Result<RecordedEvent, LogError> {
    let corrupt = |reason: String| LogError::Corrupt {
        position: Position(row.position.max(0) as u64),
        reason,
    };
    Ok(RecordedEvent {
        position: Position(
            u64::try_from(row.position).map_err(|_| corrupt("negative position".into()))?,
        ),
        version: StreamVersion(
            u64::try_from(row.version).map_err(|_| corrupt("negative stream version".into()))?,
        ),
        event_id: row
            .event_id
            .ok_or_else(|| corrupt("event id is not a UUID".into()))?,
        schema_version: u16::try_from(row.schema_version).map_err(|_| {
            corrupt(format!(
                "schema version {} out of range",
                row.schema_version
            ))
        })?,
        recorded_at: Timestamp(row.recorded_at),
        // An empty map (0x80) is the common case; it needs no decoder.
        metadata: if row.metadata.is_empty() || row.metadata == [0x80] {
            Metadata::default()
        } else {
            rmp_serde::from_slice(&row.metadata).map_err(|e| corrupt(format!("metadata: {e}")))?
        },
        stream_id: row.stream_id,
        event_type: row.event_type,
        payload: row.payload,
    })
}

/// Converts a count or version from the database's signed integers.
pub(crate) fn unsigned(value: i64, what: &str) -> Result<u64, LogError> {
    u64::try_from(value).map_err(|_| LogError::Corrupt {
        position: Position::START,
        reason: format!("negative {what}: {value}"),
    })
}

/// Converts to the database's signed integers; values past `i64::MAX` cannot be stored.
pub(crate) fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The result of one stored append from its events' (stream, version, position), in version
/// order; `None` for no rows.
pub(crate) fn append_of(
    rows: Vec<(String, i64, i64)>,
) -> Result<Option<(StreamId, AppendResult)>, LogError> {
    let Some((stream, _, _)) = rows.first() else {
        return Ok(None);
    };
    let stream = StreamId::new(stream.clone())?;
    let mut result = AppendResult {
        stream_version: StreamVersion::NONE,
        positions: Vec::with_capacity(rows.len()),
        replayed: true,
    };
    for (_, version, position) in rows {
        result.stream_version = StreamVersion(unsigned(version, "version")?);
        result
            .positions
            .push(Position(unsigned(position, "position")?));
    }
    Ok(Some((stream, result)))
}
