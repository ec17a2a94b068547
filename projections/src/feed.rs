//! The log's events as read models see them: decoded once per batch into the domain's
//! families, by stream prefix.

use crate::events::from_recorded;
use parley_domain::access::{TokenEvent, TokenId};
use parley_domain::channel::{ChannelEvent, ChannelId};
use parley_domain::contact::{ContactEvent, ContactId};
use parley_domain::conversation::ConversationEvent;
use parley_domain::customer::CustomerEvent;
use parley_domain::helpdesk::HelpDeskEvent;
use parley_domain::ids::{ConversationId, CustomerId, TicketId};
use parley_domain::ticket::TicketEvent;
use parley_eventlog::codec::CodecError;
use parley_eventlog::{Metadata, RecordedEvent};
use uuid::Uuid;

/// One decoded event with what read models need of its envelope.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Global position in the log.
    pub position: i64,
    pub recorded_at: i64,
    pub metadata: Metadata,
    pub event: Event,
}

/// A domain event, with the id of the aggregate whose stream holds it.
#[derive(Debug, Clone)]
pub enum Event {
    Conversation(ConversationId, ConversationEvent),
    Ticket(TicketId, TicketEvent),
    Customer(CustomerId, CustomerEvent),
    HelpDesk(String, HelpDeskEvent),
    Token(TokenId, TokenEvent),
    Channel(ChannelId, ChannelEvent),
    Contact(ContactId, ContactEvent),
    /// A stream no read model knows (kept so positions stay contiguous).
    Other,
}

/// A stored event the read models cannot understand.
#[derive(Debug, thiserror::Error)]
#[error("event at position {position} in stream {stream}: {reason}")]
pub struct FeedError {
    pub position: u64,
    pub stream: String,
    pub reason: String,
}

fn id_of(stream: &str, prefix: &str) -> Option<Uuid> {
    stream
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// Decodes one stored event.
pub fn decode(recorded: &RecordedEvent) -> Result<Envelope, FeedError> {
    let fail = |reason: String| FeedError {
        position: recorded.position.0,
        stream: recorded.stream_id.clone(),
        reason,
    };
    let codec = |e: CodecError| fail(e.to_string());
    let stream = recorded.stream_id.as_str();
    let event = if let Some(id) = id_of(stream, "conversation") {
        Event::Conversation(ConversationId(id), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = id_of(stream, "ticket") {
        Event::Ticket(TicketId(id), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = id_of(stream, "customer") {
        Event::Customer(CustomerId(id), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = stream.strip_prefix("helpdesk-") {
        Event::HelpDesk(id.to_owned(), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = id_of(stream, "token") {
        Event::Token(TokenId(id), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = id_of(stream, "channel") {
        Event::Channel(ChannelId(id), from_recorded(recorded).map_err(codec)?)
    } else if let Some(id) = id_of(stream, "contact") {
        Event::Contact(ContactId(id), from_recorded(recorded).map_err(codec)?)
    } else {
        Event::Other
    };
    let position =
        i64::try_from(recorded.position.0).map_err(|_| fail("position beyond i64".to_owned()))?;
    Ok(Envelope {
        position,
        recorded_at: recorded.recorded_at.as_micros(),
        metadata: recorded.metadata.clone(),
        event,
    })
}

/// Decodes the events `wanted(stream, event_type)` accepts; the others stay in place, as
/// [`Event::Other`], so positions are still seen in order.
pub fn decode_wanted(
    batch: &[RecordedEvent],
    wanted: impl Fn(&str, &str) -> bool,
) -> Result<Vec<Envelope>, FeedError> {
    batch
        .iter()
        .map(|recorded| {
            if wanted(&recorded.stream_id, &recorded.event_type) {
                decode(recorded)
            } else {
                Ok(Envelope {
                    position: i64::try_from(recorded.position.0).unwrap_or(i64::MAX),
                    recorded_at: recorded.recorded_at.as_micros(),
                    metadata: Metadata::default(),
                    event: Event::Other,
                })
            }
        })
        .collect()
}

/// Decodes a batch, in order.
pub fn decode_all(batch: &[RecordedEvent]) -> Result<Vec<Envelope>, FeedError> {
    batch.iter().map(decode).collect()
}
