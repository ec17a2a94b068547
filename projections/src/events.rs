//! The domain's events as the log stores them: the event type name is the variant's name, the
//! payload is MessagePack with named fields, at schema version 1.

use crate::feed::Event;
use parley_domain::access::Token;
use parley_domain::channel::ChannelAccount;
use parley_domain::contact::Contact;
use parley_domain::conversation::Conversation;
use parley_domain::customer::Customer;
use parley_domain::helpdesk::HelpDesk;
use parley_domain::ticket::Ticket;
use parley_domain::{Aggregate, DomainEvent};
use parley_eventlog::codec::{self, CodecError, EventCodec};
use parley_eventlog::{Metadata, NewEvent, RecordedEvent};
use uuid::Uuid;

/// The schema version every domain event is written at today.
pub const SCHEMA_VERSION: u16 = 1;

/// Every family of events, by the prefix of its streams, with its type names.
pub fn families() -> [(&'static str, &'static [&'static str]); 7] {
    // Stops compiling when the read models' events gain a family, so that it is listed here too.
    let _every_family_is_listed = |event: &Event| match event {
        Event::Conversation(..)
        | Event::Ticket(..)
        | Event::Customer(..)
        | Event::HelpDesk(..)
        | Event::Token(..)
        | Event::Channel(..)
        | Event::Contact(..)
        | Event::Other => {}
    };
    fn family<A: Aggregate>() -> (&'static str, &'static [&'static str]) {
        (A::STREAM_PREFIX, A::Event::event_types())
    }
    [
        family::<Conversation>(),
        family::<Ticket>(),
        family::<Customer>(),
        family::<HelpDesk>(),
        family::<Token>(),
        family::<ChannelAccount>(),
        family::<Contact>(),
    ]
}

/// A domain event ready to append.
pub fn to_new_event<E: DomainEvent>(
    event_id: Uuid,
    event: &E,
    metadata: Metadata,
) -> Result<NewEvent, CodecError> {
    codec::new_event(event_id, &StoredRef(event), metadata)
}

/// The domain event a stored one holds; a type outside `E`'s family is `UnknownEventType`.
pub fn from_recorded<E: DomainEvent>(recorded: &RecordedEvent) -> Result<E, CodecError> {
    codec::decode::<Stored<E>>(recorded).map(|Stored(event)| event)
}

struct Stored<E>(E);
struct StoredRef<'a, E>(&'a E);

fn known<E: DomainEvent>(event_type: &str) -> Option<u16> {
    E::event_types()
        .contains(&event_type)
        .then_some(SCHEMA_VERSION)
}

fn encode<E: DomainEvent>(event: &E) -> Result<Vec<u8>, CodecError> {
    let mut bytes = Vec::new();
    event
        .serialize_payload(&mut rmp_serde::Serializer::new(&mut bytes).with_struct_map())
        .map_err(|e| CodecError::Encode {
            event_type: event.event_type().to_owned(),
            reason: e.to_string(),
        })?;
    Ok(bytes)
}

impl<E: DomainEvent> EventCodec for StoredRef<'_, E> {
    fn event_type(&self) -> &'static str {
        self.0.event_type()
    }
    fn current_schema_version(event_type: &str) -> Option<u16> {
        known::<E>(event_type)
    }
    fn encode_payload(&self) -> Result<Vec<u8>, CodecError> {
        encode(self.0)
    }
    fn decode_payload(event_type: &str, _payload: &[u8]) -> Result<Self, CodecError> {
        // Only ever used to encode.
        Err(CodecError::UnknownEventType {
            event_type: event_type.to_owned(),
        })
    }
}

impl<E: DomainEvent> EventCodec for Stored<E> {
    fn event_type(&self) -> &'static str {
        self.0.event_type()
    }
    fn current_schema_version(event_type: &str) -> Option<u16> {
        known::<E>(event_type)
    }
    fn encode_payload(&self) -> Result<Vec<u8>, CodecError> {
        encode(&self.0)
    }
    fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Self, CodecError> {
        // Read from the slice itself: strings are copied once, into the event, not first
        // into a scratch buffer.
        let mut decoder = rmp_serde::Deserializer::from_read_ref(payload);
        match E::deserialize_payload(event_type, &mut decoder) {
            Some(Ok(event)) => Ok(Stored(event)),
            Some(Err(error)) => Err(CodecError::Decode {
                event_type: event_type.to_owned(),
                schema_version: SCHEMA_VERSION,
                reason: error.to_string(),
            }),
            None => Err(CodecError::UnknownEventType {
                event_type: event_type.to_owned(),
            }),
        }
    }
}
