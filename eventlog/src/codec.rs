//! Event payload encoding: MessagePack with named fields, and upcasters for old schema versions.
//!
//! Named fields (maps, not arrays) mean that adding an optional field with `#[serde(default)]`
//! keeps every stored event readable without a new schema version. A change that old payloads
//! cannot satisfy gets a new schema version and an [`Upcaster`] from the previous one.

use crate::model::{Metadata, NewEvent, RecordedEvent};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use uuid::Uuid;

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stored event type is not known to the reader.
    #[error("unknown event type `{event_type}`")]
    UnknownEventType { event_type: String },

    /// The stored schema version is newer than the reader knows, or no upcaster leads from it
    /// to the current version.
    #[error(
        "event type `{event_type}` has schema version {found}, this build reads up to {current}"
    )]
    UnsupportedSchemaVersion {
        event_type: String,
        found: u16,
        current: u16,
    },

    #[error("cannot encode `{event_type}`: {reason}")]
    Encode { event_type: String, reason: String },

    #[error("cannot decode `{event_type}` v{schema_version}: {reason}")]
    Decode {
        event_type: String,
        schema_version: u16,
        reason: String,
    },
}

/// A family of events that can be stored in the log, typically one enum per aggregate.
pub trait EventCodec: Sized {
    /// The permanent type name stored with this event.
    fn event_type(&self) -> &'static str;

    /// The current schema version of `event_type`, or `None` if the type is unknown.
    fn current_schema_version(event_type: &str) -> Option<u16>;

    /// Encodes the payload at its current schema version.
    fn encode_payload(&self) -> Result<Vec<u8>, CodecError>;

    /// Decodes a payload of `event_type` at its current schema version.
    fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Self, CodecError>;
}

/// Encodes a value as MessagePack with named fields.
pub fn to_msgpack<T: Serialize>(event_type: &str, value: &T) -> Result<Vec<u8>, CodecError> {
    rmp_serde::to_vec_named(value).map_err(|e| CodecError::Encode {
        event_type: event_type.to_owned(),
        reason: e.to_string(),
    })
}

/// Decodes MessagePack written by [`to_msgpack`] (or by an older version of the same type).
pub fn from_msgpack<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    payload: &[u8],
) -> Result<T, CodecError> {
    rmp_serde::from_slice(payload).map_err(|e| CodecError::Decode {
        event_type: event_type.to_owned(),
        schema_version,
        reason: e.to_string(),
    })
}

/// Builds a [`NewEvent`] from a typed event.
pub fn new_event<E: EventCodec>(
    event_id: Uuid,
    event: &E,
    metadata: Metadata,
) -> Result<NewEvent, CodecError> {
    let event_type = event.event_type();
    let schema_version =
        E::current_schema_version(event_type).ok_or_else(|| CodecError::UnknownEventType {
            event_type: event_type.to_owned(),
        })?;
    Ok(NewEvent {
        event_id,
        event_type: event_type.to_owned(),
        schema_version,
        payload: event.encode_payload()?,
        metadata,
    })
}

/// Turns a payload of one schema version into the next one.
pub type Upcaster = Box<dyn Fn(rmpv::Value) -> Result<rmpv::Value, String> + Send + Sync>;

/// Upcasters by (event type, from version). Reading a stored event of version `v` below the
/// current one applies the upcasters `v → v+1 → … → current` before decoding.
#[derive(Default)]
pub struct Upcasters {
    steps: HashMap<(String, u16), Upcaster>,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` of `event_type`.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: u16,
        step: impl Fn(rmpv::Value) -> Result<rmpv::Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), Box::new(step));
        self
    }

    /// Decodes a stored event into its typed form, upcasting old schema versions.
    pub fn decode<E: EventCodec>(&self, event: &RecordedEvent) -> Result<E, CodecError> {
        decode_with(
            self,
            &event.event_type,
            event.schema_version,
            &event.payload,
        )
    }
}

/// Decodes a stored event into its typed form when no upcasters are registered.
pub fn decode<E: EventCodec>(event: &RecordedEvent) -> Result<E, CodecError> {
    decode_with(
        &Upcasters::default(),
        &event.event_type,
        event.schema_version,
        &event.payload,
    )
}

fn decode_with<E: EventCodec>(
    upcasters: &Upcasters,
    event_type: &str,
    found: u16,
    payload: &[u8],
) -> Result<E, CodecError> {
    let current =
        E::current_schema_version(event_type).ok_or_else(|| CodecError::UnknownEventType {
            event_type: event_type.to_owned(),
        })?;
    if found == current {
        return E::decode_payload(event_type, payload);
    }
    let unsupported = || CodecError::UnsupportedSchemaVersion {
        event_type: event_type.to_owned(),
        found,
        current,
    };
    if found > current {
        return Err(unsupported());
    }
    let mut value: rmpv::Value = from_msgpack(event_type, found, payload)?;
    for version in found..current {
        let step = upcasters
            .steps
            .get(&(event_type.to_owned(), version))
            .ok_or_else(unsupported)?;
        value = step(value).map_err(|reason| CodecError::Decode {
            event_type: event_type.to_owned(),
            schema_version: version,
            reason,
        })?;
    }
    let bytes = to_msgpack(event_type, &value)?;
    E::decode_payload(event_type, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct RenamedV2 {
        title: String,
        #[serde(default)]
        note: Option<String>,
    }

    #[derive(Debug, PartialEq)]
    enum Sample {
        Renamed(RenamedV2),
    }

    impl EventCodec for Sample {
        fn event_type(&self) -> &'static str {
            "Renamed"
        }
        fn current_schema_version(event_type: &str) -> Option<u16> {
            (event_type == "Renamed").then_some(2)
        }
        fn encode_payload(&self) -> Result<Vec<u8>, CodecError> {
            let Sample::Renamed(p) = self;
            to_msgpack("Renamed", p)
        }
        fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Self, CodecError> {
            match event_type {
                "Renamed" => Ok(Sample::Renamed(from_msgpack(event_type, 2, payload)?)),
                other => Err(CodecError::UnknownEventType {
                    event_type: other.to_owned(),
                }),
            }
        }
    }

    fn recorded(event_type: &str, schema_version: u16, payload: Vec<u8>) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::nil(),
            stream_id: "s".into(),
            version: crate::StreamVersion(1),
            position: crate::Position(1),
            event_type: event_type.into(),
            schema_version,
            recorded_at: crate::Timestamp(0),
            metadata: Metadata::default(),
            payload,
        }
    }

    #[test]
    fn an_old_schema_version_is_upcast_before_decoding() {
        #[derive(Serialize)]
        struct RenamedV1 {
            name: String,
        }
        let v1 = to_msgpack(
            "Renamed",
            &RenamedV1 {
                name: "Billing".into(),
            },
        )
        .unwrap();
        let upcasters = Upcasters::new().register("Renamed", 1, |value| {
            let rmpv::Value::Map(fields) = value else {
                return Err("expected a map".into());
            };
            let fields = fields
                .into_iter()
                .map(|(k, v)| match k.as_str() {
                    Some("name") => (rmpv::Value::from("title"), v),
                    _ => (k, v),
                })
                .collect();
            Ok(rmpv::Value::Map(fields))
        });
        let decoded: Sample = upcasters.decode(&recorded("Renamed", 1, v1)).unwrap();
        assert_eq!(
            decoded,
            Sample::Renamed(RenamedV2 {
                title: "Billing".into(),
                note: None
            })
        );
    }

    #[test]
    fn an_added_optional_field_keeps_old_payloads_readable() {
        #[derive(Serialize)]
        struct Old {
            title: String,
        }
        let old = to_msgpack("Renamed", &Old { title: "A".into() }).unwrap();
        let decoded: Sample = decode(&recorded("Renamed", 2, old)).unwrap();
        assert_eq!(
            decoded,
            Sample::Renamed(RenamedV2 {
                title: "A".into(),
                note: None
            })
        );
    }

    #[test]
    fn unknown_types_and_future_versions_are_typed_errors() {
        let payload = to_msgpack(
            "Renamed",
            &RenamedV2 {
                title: "A".into(),
                note: None,
            },
        )
        .unwrap();
        let err = decode::<Sample>(&recorded("Exploded", 1, payload.clone())).unwrap_err();
        assert!(
            matches!(err, CodecError::UnknownEventType { ref event_type } if event_type == "Exploded")
        );
        let err = decode::<Sample>(&recorded("Renamed", 3, payload.clone())).unwrap_err();
        assert!(matches!(
            err,
            CodecError::UnsupportedSchemaVersion {
                found: 3,
                current: 2,
                ..
            }
        ));
        let err = decode::<Sample>(&recorded("Renamed", 1, payload)).unwrap_err();
        assert!(matches!(
            err,
            CodecError::UnsupportedSchemaVersion { found: 1, .. }
        ));
    }

    #[test]
    fn a_malformed_payload_is_a_decode_error_not_a_panic() {
        let err = decode::<Sample>(&recorded("Renamed", 2, vec![0xc1, 0xff, 0x00])).unwrap_err();
        assert!(matches!(err, CodecError::Decode { .. }));
    }
}
