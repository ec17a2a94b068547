//! Where each stored file is attached: one row per (file, stream, message) for every event that
//! carries an attachment with a `file_id` (a conversation's message, a ticket's comment, a
//! customer's message on a ticket). The API lets a caller fetch a file it did not upload only
//! if it may see one of these: the row says which conversation or ticket to ask about, and
//! whether everyone in it sees the message (`public`) or staff only (an internal note).
//!
//! A deleted message's files are no longer attached to it (its rows go, as its attachments
//! leave the conversation's detail).

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::conversation::{Attachment, ConversationEvent, Visibility};
use parley_domain::ids::{ConversationId, TicketId};
use parley_domain::ticket::TicketEvent;
use uuid::Uuid;

pub const NAME: &str = "files";

pub struct Files;

const TABLES: &[&str] = &["attachments"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}attachments (
        file_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        item TEXT NOT NULL,
        public BIGINT NOT NULL,
        PRIMARY KEY (file_id, stream, item)
    ){clustered}",
    // A deleted message's rows are found by its stream and id.
    "CREATE INDEX {p}attachments_item ON {p}attachments (stream, item)",
];

impl Projection for Files {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }
    fn schema(&self, _dialect: Dialect) -> Vec<&'static str> {
        SCHEMA.to_vec()
    }
    fn wants(&self, stream: &str, event_type: &str) -> bool {
        (stream.starts_with("conversation-")
            && matches!(event_type, "MessageSent" | "MessageDeleted"))
            || (stream.starts_with("ticket-")
                && matches!(event_type, "TicketCommented" | "CustomerMessageReceived"))
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        let insert = t.sql(
            "INSERT INTO {p}attachments (file_id, stream, item, public) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        );
        let attach = |tx: &mut dyn Tx,
                      stream: &str,
                      item: Uuid,
                      public: bool,
                      attachments: &[Attachment]|
         -> Result<(), StoreError> {
            for file_id in attachments.iter().filter_map(|a| a.file_id) {
                tx.execute(
                    &insert,
                    &[file_id.into(), stream.into(), item.into(), public.into()],
                )?;
            }
            Ok(())
        };
        for envelope in events {
            match &envelope.event {
                Event::Conversation(id, ConversationEvent::MessageSent(e)) => {
                    let public = e.visibility == Visibility::Public;
                    let stream = conversation_stream(*id);
                    attach(tx, &stream, e.message_id.0, public, &e.attachments)?;
                }
                Event::Conversation(id, ConversationEvent::MessageDeleted(e)) => {
                    tx.execute(
                        &t.sql("DELETE FROM {p}attachments WHERE stream = $1 AND item = $2"),
                        &[conversation_stream(*id).into(), e.message_id.0.into()],
                    )?;
                }
                Event::Ticket(id, TicketEvent::TicketCommented(e)) => {
                    let public = e.visibility == Visibility::Public;
                    let stream = ticket_stream(*id);
                    attach(tx, &stream, e.comment_id, public, &e.attachments)?;
                }
                Event::Ticket(id, TicketEvent::CustomerMessageReceived(e)) => {
                    let stream = ticket_stream(*id);
                    attach(tx, &stream, e.message_id, true, &e.attachments)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn conversation_stream(id: ConversationId) -> String {
    format!("conversation-{}", id.0)
}

fn ticket_stream(id: TicketId) -> String {
    format!("ticket-{}", id.0)
}

/// What a file is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A message of a conversation; `public` unless it is an internal note.
    Conversation { id: ConversationId, public: bool },
    /// A comment or a customer's message on a ticket; `public` unless an internal comment.
    Ticket { id: TicketId, public: bool },
}

fn holder(row: &Row) -> Result<Holder, StoreError> {
    let stream = row.text(0)?;
    let public = row.bool(1)?;
    let id = |prefix: &str| {
        stream
            .strip_prefix(prefix)
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    if let Some(id) = id("conversation-") {
        Ok(Holder::Conversation {
            id: ConversationId(id),
            public,
        })
    } else if let Some(id) = id("ticket-") {
        Ok(Holder::Ticket {
            id: TicketId(id),
            public,
        })
    } else {
        Err(StoreError::Corrupt(NAME, format!("stream {stream:?}")))
    }
}

/// Where file `file_id` is attached: at most `limit` conversations and tickets, each once
/// (public when any of its messages attaching it is), in the order of their streams' names.
pub fn holders(
    tx: &mut dyn Tx,
    t: &Tables,
    file_id: Uuid,
    limit: usize,
) -> Result<Vec<Holder>, StoreError> {
    tx.query(
        &t.sql(
            "SELECT stream, MAX(public) FROM {p}attachments WHERE file_id = $1
             GROUP BY stream ORDER BY stream LIMIT $2",
        ),
        &[file_id.into(), Value::Int(Some(limit as i64))],
    )?
    .iter()
    .map(holder)
    .collect()
}
