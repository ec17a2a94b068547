//! Decoding stored rows into envelopes, written once for both SQL backends.

use crate::error::LogError;
use crate::model::{Metadata, Position, RecordedEvent, StreamVersion, Timestamp};
use sqlx::{ColumnIndex, Database, Decode, Row, Type};
use uuid::Uuid;

/// `SELECT <the envelope's columns> FROM events <tail>`: every read selects the columns in the
/// order [`decode`] expects.
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

/// Turns one row (selected with [`select_events!`]) into a [`RecordedEvent`]. A row that does not
/// have the shape the log writes is `Corrupt`, never a panic.
pub(crate) fn decode<'r, R>(row: &'r R) -> Result<RecordedEvent, LogError>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Uuid: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    R::Database: Database,
{
    let position: i64 = row.try_get(0)?;
    let corrupt = |reason: String| LogError::Corrupt {
        position: Position(position.max(0) as u64),
        reason,
    };
    let version: i64 = row.try_get(2)?;
    let schema_version: i32 = row.try_get(5)?;
    let metadata: Vec<u8> = row.try_get(7)?;
    Ok(RecordedEvent {
        position: Position(
            u64::try_from(position).map_err(|_| corrupt("negative position".into()))?,
        ),
        stream_id: row.try_get(1)?,
        version: StreamVersion(
            u64::try_from(version).map_err(|_| corrupt("negative stream version".into()))?,
        ),
        event_id: row.try_get(3)?,
        event_type: row.try_get(4)?,
        schema_version: u16::try_from(schema_version)
            .map_err(|_| corrupt(format!("schema version {schema_version} out of range")))?,
        recorded_at: Timestamp(row.try_get(6)?),
        metadata: if metadata.is_empty() {
            Metadata::default()
        } else {
            rmp_serde::from_slice(&metadata).map_err(|e| corrupt(format!("metadata: {e}")))?
        },
        payload: row.try_get(8)?,
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
