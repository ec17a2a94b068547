//! Conversation and ticket detail: messages in order with edits and deletions applied, internal
//! notes marked, participants, links, tags, status and rating — and per-viewer visibility: a
//! customer never sees internal notes, internal conversations, or conversations and tickets
//! that are not theirs.
//!
//! Messages and ticket entries are written as their events arrive (one statement each); the
//! conversation and ticket rows are kept in memory for the batch and written once.

use crate::feed::{Envelope, Event};
use crate::keys::{actor_key, agent_key, customer_key, participant_key};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::Actor;
use parley_domain::conversation::{ConversationEvent, ConversationKind, Visibility};
use parley_domain::ticket::{ReceiptStatus, TicketEvent, TicketStatus};
use serde::Serialize;
use std::collections::HashMap;

pub const NAME: &str = "detail";

pub struct Detail;

const TABLES: &[&str] = &[
    "conversations",
    "participants",
    "messages",
    "links",
    "tickets",
    "entries",
];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}conversations (
        conversation_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        queue TEXT,
        subject TEXT NOT NULL,
        status TEXT NOT NULL,
        assignee TEXT,
        pinned_by TEXT,
        started_by TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        last_activity_at BIGINT NOT NULL,
        message_seq BIGINT NOT NULL,
        rating_score BIGINT,
        rating_comment TEXT,
        origin TEXT
    )",
    "CREATE TABLE {p}participants (
        conversation_id TEXT NOT NULL,
        participant TEXT NOT NULL,
        following BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, participant)
    ){clustered}",
    "CREATE TABLE {p}messages (
        conversation_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        visibility TEXT NOT NULL,
        attachments TEXT NOT NULL,
        mentions TEXT NOT NULL,
        quote_of TEXT,
        sent_at BIGINT NOT NULL,
        edited_at BIGINT,
        deleted_at BIGINT,
        PRIMARY KEY (conversation_id, seq)
    )",
    "CREATE UNIQUE INDEX {p}messages_id ON {p}messages (message_id, conversation_id)",
    "CREATE TABLE {p}links (
        conversation_id TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        linked_at BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, ticket_id)
    ){clustered}",
    "CREATE TABLE {p}tickets (
        ticket_id TEXT PRIMARY KEY,
        ticket_type TEXT NOT NULL,
        title TEXT NOT NULL,
        description TEXT NOT NULL,
        priority TEXT NOT NULL,
        status TEXT NOT NULL,
        requester TEXT,
        assignee TEXT,
        followers TEXT NOT NULL,
        tags TEXT NOT NULL,
        source TEXT NOT NULL,
        channel_info TEXT,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        entry_seq BIGINT NOT NULL
    )",
    "CREATE TABLE {p}entries (
        ticket_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        entry_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        body TEXT NOT NULL,
        visibility TEXT NOT NULL,
        attachments TEXT NOT NULL,
        at BIGINT NOT NULL,
        delivery TEXT,
        failure TEXT,
        PRIMARY KEY (ticket_id, seq)
    )",
    "CREATE INDEX {p}entries_id ON {p}entries (entry_id, ticket_id)",
];

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] = &["CREATE INDEX {p}links_ticket ON {p}links (ticket_id)"];

impl Projection for Detail {
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
    fn wants(&self, stream: &str, _event_type: &str) -> bool {
        stream.starts_with("conversation-") || stream.starts_with("ticket-")
    }
    fn query_indexes(&self, _dialect: Dialect) -> Vec<&'static str> {
        QUERY_INDEXES.to_vec()
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        let mut batch = Batch {
            t,
            sql: Statements::new(t),
            conversations: HashMap::new(),
            tickets: HashMap::new(),
            authors: Default::default(),
        };
        // Ids are written out on the stack: most events need their stream's id only as text.
        let mut buf = uuid::Uuid::encode_buffer();
        for envelope in events {
            match &envelope.event {
                Event::Conversation(id, event) => {
                    batch.conversation(tx, id.0.hyphenated().encode_lower(&mut buf), event)?
                }
                Event::Ticket(id, event) => {
                    batch.ticket(tx, id.0.hyphenated().encode_lower(&mut buf), event)?
                }
                _ => {}
            }
        }
        batch.flush(tx)
    }
}

fn visibility(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Internal => "internal",
    }
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A list as JSON; most messages carry no attachments or mentions, and `[]` needs no encoder.
fn json_list<T: Serialize>(items: &[T]) -> Value<'static> {
    if items.is_empty() {
        "[]".into()
    } else {
        json(&items).into()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct ConvRow {
    kind: String,
    channel: String,
    queue: Option<String>,
    subject: String,
    status: String,
    assignee: Option<String>,
    pinned_by: Option<String>,
    started_by: String,
    started_at: i64,
    last_activity_at: i64,
    message_seq: i64,
    rating_score: Option<i64>,
    rating_comment: Option<String>,
    origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct TicketRow {
    ticket_type: String,
    title: String,
    description: String,
    priority: String,
    status: String,
    requester: Option<String>,
    assignee: Option<String>,
    followers: Vec<String>,
    tags: Vec<String>,
    source: String,
    channel_info: Option<String>,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    entry_seq: i64,
}

struct Statements {
    insert_message: String,
    edit_message: String,
    delete_message: String,
    /// Adds a participant, or leaves one already there as it is (a no-op writes nothing).
    add_participant: String,
    /// Adds a participant or sets whether they follow.
    set_participant: String,
    remove_participant: String,
    unfollow: String,
    link: String,
    unlink: String,
    insert_entry: String,
    entry_delivery: String,
    load_conversation: String,
    load_ticket: String,
}

impl Statements {
    fn new(t: &Tables) -> Self {
        Statements {
            load_conversation: t.sql(&format!(
                "SELECT {CONV_COLUMNS} FROM {{p}}conversations WHERE conversation_id = $1"
            )),
            load_ticket: t.sql(&format!(
                "SELECT {TICKET_COLUMNS} FROM {{p}}tickets WHERE ticket_id = $1"
            )),
            insert_message: t.sql(
                "INSERT INTO {p}messages (conversation_id, seq, message_id, author, body,
                    visibility, attachments, mentions, quote_of, sent_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (conversation_id, seq) DO NOTHING",
            ),
            edit_message: t.sql(
                "UPDATE {p}messages SET body = $3, edited_at = $4
                 WHERE conversation_id = $1 AND message_id = $2",
            ),
            delete_message: t.sql(
                "UPDATE {p}messages SET deleted_at = $3
                 WHERE conversation_id = $1 AND message_id = $2",
            ),
            add_participant: t.sql(
                "INSERT INTO {p}participants (conversation_id, participant, following)
                 VALUES ($1, $2, 0) ON CONFLICT (conversation_id, participant) DO NOTHING",
            ),
            set_participant: t.sql(
                "INSERT INTO {p}participants (conversation_id, participant, following)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (conversation_id, participant) DO UPDATE SET following = $3",
            ),
            remove_participant: t
                .sql("DELETE FROM {p}participants WHERE conversation_id = $1 AND participant = $2"),
            unfollow: t.sql(
                "UPDATE {p}participants SET following = 0
                 WHERE conversation_id = $1 AND participant = $2",
            ),
            link: t.sql(
                "INSERT INTO {p}links (conversation_id, ticket_id, linked_at) VALUES ($1, $2, $3)
                 ON CONFLICT (conversation_id, ticket_id) DO NOTHING",
            ),
            unlink: t.sql("DELETE FROM {p}links WHERE conversation_id = $1 AND ticket_id = $2"),
            insert_entry: t.sql(
                "INSERT INTO {p}entries (ticket_id, seq, entry_id, kind, author, body, visibility,
                    attachments, at, delivery)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (ticket_id, seq) DO NOTHING",
            ),
            entry_delivery: t.sql(
                "UPDATE {p}entries SET delivery = $3, failure = $4
                 WHERE ticket_id = $1 AND entry_id = $2",
            ),
        }
    }
}

struct Batch<'t> {
    t: &'t Tables,
    sql: Statements,
    /// Each touched conversation: as loaded (if it existed) and as now.
    conversations: HashMap<String, (Option<ConvRow>, Option<ConvRow>)>,
    tickets: HashMap<String, (Option<TicketRow>, Option<TicketRow>)>,
    /// `"<conversation> <participant>"` already recorded as a participant in this batch.
    authors: std::collections::HashSet<String>,
}

/// The columns `read_conv` reads, in order.
const CONV_COLUMNS: &str = "kind, channel, queue, subject, status, assignee, pinned_by, started_by,
    started_at, last_activity_at, message_seq, rating_score, rating_comment, origin";
/// The columns `read_ticket` reads, in order.
const TICKET_COLUMNS: &str = "ticket_type, title, description, priority, status, requester,
    assignee, followers, tags, source, channel_info, created_by, created_at, updated_at, entry_seq";

/// A row loaded at most once per batch, kept as stored (to skip writing it back unchanged) and
/// as changed so far.
fn load_once<'m, R: Clone>(
    rows: &'m mut HashMap<String, (Option<R>, Option<R>)>,
    tx: &mut dyn Tx,
    sql: &str,
    id: &str,
    read: fn(&Row) -> Result<R, StoreError>,
) -> Result<&'m mut Option<R>, StoreError> {
    if !rows.contains_key(id) {
        let row = tx
            .query_opt(sql, &[id.into()])?
            .map(|r| read(&r))
            .transpose()?;
        rows.insert(id.to_owned(), (row.clone(), row));
    }
    Ok(&mut rows.get_mut(id).expect("inserted above").1)
}

impl Batch<'_> {
    fn conv_row(&mut self, tx: &mut dyn Tx, id: &str) -> Result<&mut Option<ConvRow>, StoreError> {
        let sql = &self.sql.load_conversation;
        load_once(&mut self.conversations, tx, sql, id, read_conv)
    }

    fn ticket_row(
        &mut self,
        tx: &mut dyn Tx,
        id: &str,
    ) -> Result<&mut Option<TicketRow>, StoreError> {
        let sql = &self.sql.load_ticket;
        load_once(&mut self.tickets, tx, sql, id, read_ticket)
    }

    fn conversation(
        &mut self,
        tx: &mut dyn Tx,
        id: &str,
        event: &ConversationEvent,
    ) -> Result<(), StoreError> {
        use ConversationEvent as E;
        // `following`: `None` leaves the flag of a participant already there as it is.
        let participant =
            |tx: &mut dyn Tx, sql: &Statements, who: String, following: Option<bool>| {
                match following {
                    None => tx.execute(&sql.add_participant, &[id.into(), who.into()]),
                    Some(following) => tx.execute(
                        &sql.set_participant,
                        &[id.into(), who.into(), following.into()],
                    ),
                }
            };
        if let E::ConversationStarted(e) = event {
            *self.conv_row(tx, id)? = Some(ConvRow {
                kind: match e.kind {
                    ConversationKind::Customer => "customer".into(),
                    ConversationKind::Internal => "internal".into(),
                },
                channel: e.channel.name().into(),
                queue: e.queue.map(|q| q.to_string()),
                subject: e.subject.clone(),
                status: "open".into(),
                assignee: None,
                pinned_by: None,
                started_by: actor_key(&e.started_by),
                started_at: e.at.0,
                last_activity_at: e.at.0,
                message_seq: 0,
                rating_score: None,
                rating_comment: None,
                origin: e.origin.map(|o| json(&o)),
            });
            if let Actor::Agent(agent) = e.started_by {
                participant(tx, &self.sql, agent_key(agent), Some(false))?;
            }
            for c in &e.customers {
                participant(tx, &self.sql, customer_key(*c), Some(false))?;
            }
            for a in &e.members {
                participant(tx, &self.sql, agent_key(*a), Some(false))?;
            }
            return Ok(());
        }
        if self.conv_row(tx, id)?.is_none() {
            // Events of a conversation whose start this read model never saw.
            return Ok(());
        }
        let sql = &self.sql;
        let Some(conv) = self
            .conversations
            .get_mut(id)
            .and_then(|(_, now)| now.as_mut())
        else {
            return Ok(());
        };
        match event {
            E::ConversationStarted(_) => {}
            E::MessageSent(e) => {
                conv.message_seq += 1;
                conv.last_activity_at = e.at.0;
                let mut buf = uuid::Uuid::encode_buffer();
                tx.execute(
                    &sql.insert_message,
                    &[
                        id.into(),
                        conv.message_seq.into(),
                        (&*e.message_id.0.hyphenated().encode_lower(&mut buf)).into(),
                        actor_key(&e.author).into(),
                        e.body.as_str().into(),
                        visibility(e.visibility).into(),
                        json_list(&e.attachments),
                        json_list(&e.mentions),
                        e.quote_of.map(|q| q.to_string()).into(),
                        e.at.0.into(),
                    ],
                )?;
                let author = actor_key(&e.author);
                if !matches!(e.author, Actor::System)
                    && self.authors.insert(format!("{id} {author}"))
                {
                    participant(tx, sql, author, None)?;
                }
            }
            E::MessageEdited(e) => {
                tx.execute(
                    &sql.edit_message,
                    &[
                        id.into(),
                        e.message_id.to_string().into(),
                        e.body.as_str().into(),
                        e.at.0.into(),
                    ],
                )?;
            }
            E::MessageDeleted(e) => {
                tx.execute(
                    &sql.delete_message,
                    &[id.into(), e.message_id.to_string().into(), e.at.0.into()],
                )?;
            }
            E::ConversationRead(_) | E::MessageMarkedUnread(_) | E::RatingRequested(_) => {}
            E::ConversationClosed(_) => conv.status = "closed".into(),
            E::ConversationReopened(_) => conv.status = "open".into(),
            E::ConversationMarkedSpam(_) => conv.status = "spam".into(),
            E::ConversationRenamed(e) => conv.subject = e.subject.clone(),
            E::ConversationAssigned(e) => {
                conv.assignee = Some(e.agent.to_string());
                participant(tx, sql, agent_key(e.agent), None)?;
            }
            E::ConversationTransferred(e) => {
                conv.assignee = Some(e.to.to_string());
                participant(tx, sql, agent_key(e.to), None)?;
            }
            E::ConversationTakenOver(e) => {
                conv.assignee = Some(e.to.to_string());
                participant(tx, sql, agent_key(e.to), None)?;
            }
            E::ConversationReturnedToQueue(_) => conv.assignee = None,
            E::ConversationQueueChanged(e) => {
                conv.queue = Some(e.to.to_string());
                conv.assignee = None;
            }
            E::ParticipantInvited(e) => {
                participant(tx, sql, agent_key(e.agent), None)?;
            }
            E::ParticipantRemoved(e) => {
                let who = participant_key(&e.participant);
                self.authors.remove(&format!("{id} {who}"));
                if conv.assignee.as_deref().map(agent_key).as_ref() == Some(&who) {
                    conv.assignee = None;
                }
                tx.execute(&sql.remove_participant, &[id.into(), who.into()])?;
            }
            E::ConversationFollowed(e) => {
                participant(tx, sql, agent_key(e.agent), Some(true))?;
            }
            E::ConversationUnfollowed(e) => {
                // Only clears the flag: unfollowing never makes anyone a participant again.
                tx.execute(&sql.unfollow, &[id.into(), agent_key(e.agent).into()])?;
            }
            E::ConversationPinned(e) => conv.pinned_by = Some(e.agent.to_string()),
            E::ConversationUnpinned(_) => conv.pinned_by = None,
            E::ConversationRated(e) => {
                conv.rating_score = Some(i64::from(e.score));
                conv.rating_comment = e.comment.clone();
            }
            E::TicketLinked(e) => {
                tx.execute(
                    &sql.link,
                    &[id.into(), e.ticket_id.to_string().into(), e.at.0.into()],
                )?;
            }
            E::TicketUnlinked(e) => {
                tx.execute(&sql.unlink, &[id.into(), e.ticket_id.to_string().into()])?;
            }
            E::ConversationBranched(_) => {}
        }
        Ok(())
    }

    fn ticket(&mut self, tx: &mut dyn Tx, id: &str, event: &TicketEvent) -> Result<(), StoreError> {
        use TicketEvent as E;
        if let E::TicketCreated(e) = event {
            *self.ticket_row(tx, id)? = Some(TicketRow {
                ticket_type: json(&e.ticket_type).trim_matches('"').to_owned(),
                title: e.title.clone(),
                description: e.description.clone(),
                priority: json(&e.priority).trim_matches('"').to_owned(),
                status: TicketStatus::New.name().into(),
                requester: e.requester.map(|r| r.to_string()),
                assignee: None,
                followers: vec![],
                tags: e.tags.clone(),
                source: json(&e.source),
                channel_info: e.channel_info.as_ref().map(json),
                created_by: actor_key(&e.created_by),
                created_at: e.at.0,
                updated_at: e.at.0,
                entry_seq: 0,
            });
            if let parley_domain::ticket::TicketSource::Conversation {
                conversation_id, ..
            } = &e.source
            {
                tx.execute(
                    &self.sql.link,
                    &[conversation_id.to_string().into(), id.into(), e.at.0.into()],
                )?;
            }
            return Ok(());
        }
        if self.ticket_row(tx, id)?.is_none() {
            return Ok(());
        }
        let sql = &self.sql;
        let Some(ticket) = self.tickets.get_mut(id).and_then(|(_, now)| now.as_mut()) else {
            return Ok(());
        };
        let entry = |tx: &mut dyn Tx,
                     ticket: &mut TicketRow,
                     entry_id: String,
                     kind: &str,
                     author: String,
                     body: &str,
                     vis: &str,
                     attachments: String,
                     at: i64,
                     delivery: Value|
         -> Result<(), StoreError> {
            ticket.entry_seq += 1;
            ticket.updated_at = at;
            tx.execute(
                &sql.insert_entry,
                &[
                    id.into(),
                    ticket.entry_seq.into(),
                    entry_id.into(),
                    kind.into(),
                    author.into(),
                    body.into(),
                    vis.into(),
                    attachments.into(),
                    at.into(),
                    delivery,
                ],
            )?;
            Ok(())
        };
        match event {
            E::TicketCreated(_) => {}
            E::TicketTitleChanged(e) => ticket.title = e.title.clone(),
            E::TicketDescriptionChanged(e) => ticket.description = e.description.clone(),
            E::TicketPriorityChanged(e) => {
                ticket.priority = json(&e.priority).trim_matches('"').to_owned()
            }
            E::TicketTypeChanged(e) => {
                ticket.ticket_type = json(&e.ticket_type).trim_matches('"').to_owned()
            }
            E::TicketStatusChanged(e) => ticket.status = e.to.name().into(),
            E::TicketAssigned(e) => ticket.assignee = Some(e.agent.to_string()),
            E::TicketUnassigned(_) => ticket.assignee = None,
            E::TicketFollowed(e) => {
                let agent = e.agent.to_string();
                if !ticket.followers.contains(&agent) {
                    ticket.followers.push(agent);
                }
            }
            E::TicketUnfollowed(e) => {
                let agent = e.agent.to_string();
                ticket.followers.retain(|f| *f != agent);
            }
            E::TicketTagAdded(e) => {
                if !ticket.tags.contains(&e.tag) {
                    ticket.tags.push(e.tag.clone());
                }
            }
            E::TicketTagRemoved(e) => ticket.tags.retain(|t| *t != e.tag),
            E::TicketChannelInfoSet(e) => ticket.channel_info = e.channel_info.as_ref().map(json),
            E::TicketCommented(e) => entry(
                tx,
                ticket,
                e.comment_id.to_string(),
                "comment",
                actor_key(&e.author),
                &e.body,
                visibility(e.visibility),
                json(&e.attachments),
                e.at.0,
                Value::Text(None),
            )?,
            E::CustomerMessageReceived(e) => {
                let author = ticket
                    .requester
                    .as_ref()
                    .map_or_else(|| "customer".to_owned(), customer_key);
                entry(
                    tx,
                    ticket,
                    e.message_id.to_string(),
                    "customer_message",
                    author,
                    &e.body,
                    "public",
                    json(&e.attachments),
                    e.at.0,
                    Value::Text(None),
                )?
            }
            E::OutboundReplyRequested(e) => entry(
                tx,
                ticket,
                e.reply_id.to_string(),
                "reply",
                actor_key(&e.by),
                &e.body,
                "public",
                "[]".to_owned(),
                e.at.0,
                "requested".into(),
            )?,
            E::OutboundReplyDelivered(e) => {
                tx.execute(
                    &sql.entry_delivery,
                    &[
                        id.into(),
                        e.reply_id.to_string().into(),
                        "delivered".into(),
                        Value::Text(None),
                    ],
                )?;
            }
            E::OutboundReplyFailed(e) => {
                tx.execute(
                    &sql.entry_delivery,
                    &[
                        id.into(),
                        e.reply_id.to_string().into(),
                        "failed".into(),
                        e.reason.as_str().into(),
                    ],
                )?;
            }
            // A platform's later news: a read reply shows as read, one it gave up on as
            // failed with its error; "sent" and "delivered" add nothing to "delivered".
            E::OutboundReplyReceipt(e) => {
                let reason = match (&e.code, &e.text) {
                    (Some(code), Some(text)) => Some(format!("{text} ({code})")),
                    (Some(code), None) => Some(code.clone()),
                    (None, text) => text.clone(),
                };
                let delivery = match e.status {
                    ReceiptStatus::Read => Some("read"),
                    ReceiptStatus::Failed => Some("failed"),
                    ReceiptStatus::Sent | ReceiptStatus::Delivered => None,
                };
                if let Some(delivery) = delivery {
                    tx.execute(
                        &sql.entry_delivery,
                        &[
                            id.into(),
                            e.reply_id.to_string().into(),
                            delivery.into(),
                            reason.into(),
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn flush(self, tx: &mut dyn Tx) -> Result<(), StoreError> {
        let upsert_conv = self.t.sql(
            "INSERT INTO {p}conversations (conversation_id, kind, channel, queue, subject, status,
                assignee, pinned_by, started_by, started_at, last_activity_at, message_seq,
                rating_score, rating_comment, origin)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (conversation_id) DO UPDATE SET queue = excluded.queue,
                subject = excluded.subject, status = excluded.status, assignee = excluded.assignee,
                pinned_by = excluded.pinned_by, last_activity_at = excluded.last_activity_at,
                message_seq = excluded.message_seq, rating_score = excluded.rating_score,
                rating_comment = excluded.rating_comment",
        );
        for (id, (before, now)) in self.conversations {
            let Some(c) = now.filter(|now| before.as_ref() != Some(now)) else {
                continue;
            };
            tx.execute(
                &upsert_conv,
                &[
                    id.into(),
                    c.kind.into(),
                    c.channel.into(),
                    c.queue.into(),
                    c.subject.into(),
                    c.status.into(),
                    c.assignee.into(),
                    c.pinned_by.into(),
                    c.started_by.into(),
                    c.started_at.into(),
                    c.last_activity_at.into(),
                    c.message_seq.into(),
                    c.rating_score.into(),
                    c.rating_comment.into(),
                    c.origin.into(),
                ],
            )?;
        }
        let upsert_ticket = self.t.sql(
            "INSERT INTO {p}tickets (ticket_id, ticket_type, title, description, priority, status,
                requester, assignee, followers, tags, source, channel_info, created_by, created_at,
                updated_at, entry_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (ticket_id) DO UPDATE SET ticket_type = excluded.ticket_type,
                title = excluded.title, description = excluded.description,
                priority = excluded.priority, status = excluded.status,
                assignee = excluded.assignee, followers = excluded.followers,
                tags = excluded.tags, channel_info = excluded.channel_info,
                updated_at = excluded.updated_at, entry_seq = excluded.entry_seq",
        );
        for (id, (before, now)) in self.tickets {
            let Some(t) = now.filter(|now| before.as_ref() != Some(now)) else {
                continue;
            };
            tx.execute(
                &upsert_ticket,
                &[
                    id.into(),
                    t.ticket_type.into(),
                    t.title.into(),
                    t.description.into(),
                    t.priority.into(),
                    t.status.into(),
                    t.requester.into(),
                    t.assignee.into(),
                    json(&t.followers).into(),
                    json(&t.tags).into(),
                    t.source.into(),
                    t.channel_info.into(),
                    t.created_by.into(),
                    t.created_at.into(),
                    t.updated_at.into(),
                    t.entry_seq.into(),
                ],
            )?;
        }
        Ok(())
    }
}

fn read_conv(r: &Row) -> Result<ConvRow, StoreError> {
    Ok(ConvRow {
        kind: r.text(0)?,
        channel: r.text(1)?,
        queue: r.opt_text(2)?,
        subject: r.text(3)?,
        status: r.text(4)?,
        assignee: r.opt_text(5)?,
        pinned_by: r.opt_text(6)?,
        started_by: r.text(7)?,
        started_at: r.i64(8)?,
        last_activity_at: r.i64(9)?,
        message_seq: r.i64(10)?,
        rating_score: r.opt_i64(11)?,
        rating_comment: r.opt_text(12)?,
        origin: r.opt_text(13)?,
    })
}

fn list(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(NAME, e.to_string()))
}

fn read_ticket(r: &Row) -> Result<TicketRow, StoreError> {
    Ok(TicketRow {
        ticket_type: r.text(0)?,
        title: r.text(1)?,
        description: r.text(2)?,
        priority: r.text(3)?,
        status: r.text(4)?,
        requester: r.opt_text(5)?,
        assignee: r.opt_text(6)?,
        followers: list(&r.text(7)?)?,
        tags: list(&r.text(8)?)?,
        source: r.text(9)?,
        channel_info: r.opt_text(10)?,
        created_by: r.text(11)?,
        created_at: r.i64(12)?,
        updated_at: r.i64(13)?,
        entry_seq: r.i64(14)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Who is looking: what they may see differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Agents see every customer conversation and ticket, internal notes included, and the
    /// internal conversations they take part in.
    Agent(uuid::Uuid),
    /// Customers see only their own conversations and tickets, and only what is public.
    Customer(uuid::Uuid),
}

impl Viewer {
    fn key(&self) -> String {
        match self {
            Viewer::Agent(id) => agent_key(id),
            Viewer::Customer(id) => customer_key(id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub message_id: String,
    pub author: String,
    /// Empty once deleted.
    pub body: String,
    pub visibility: String,
    pub attachments: serde_json::Value,
    pub mentions: serde_json::Value,
    pub quote_of: Option<String>,
    /// Microseconds since the Unix epoch.
    pub sent_at: i64,
    /// Microseconds since the Unix epoch.
    pub edited_at: Option<i64>,
    /// Microseconds since the Unix epoch.
    pub deleted_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ParticipantView {
    pub participant: String,
    pub following: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    pub conversation_id: String,
    pub kind: String,
    pub channel: String,
    pub queue: Option<String>,
    pub subject: String,
    pub status: String,
    pub assignee: Option<String>,
    pub pinned_by: Option<String>,
    pub started_by: String,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// Microseconds since the Unix epoch.
    pub last_activity_at: i64,
    pub rating: Option<Rating>,
    pub origin: Option<serde_json::Value>,
    pub participants: Vec<ParticipantView>,
    pub tickets: Vec<String>,
    /// Oldest first: the page of messages asked for (see [`Page`]).
    pub messages: Vec<MessageView>,
    /// Pass as `cursor` for the messages after these; absent when there are none.
    pub next_cursor: Option<String>,
    /// The latest public message's sending, edit or deletion, over the whole conversation
    /// (for customers, who never see internal notes); answered to customer viewers only.
    #[serde(skip)]
    pub last_public_activity_at: Option<i64>,
}

/// Which stretch of a conversation's messages, or of a ticket's entries, to answer: those after
/// `after` (a sequence number, from a previous answer's cursor), oldest first, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: usize,
}

/// Messages or entries answered when the caller names no limit.
pub const DEFAULT_PAGE: usize = 200;
/// The most messages or entries one answer holds.
pub const MAX_PAGE: usize = 1000;

impl Default for Page {
    fn default() -> Self {
        Page {
            after: None,
            limit: DEFAULT_PAGE,
        }
    }
}

impl Page {
    /// Reads a cursor this module gave (`None` for anything else).
    pub fn parse_cursor(cursor: &str) -> Option<i64> {
        cursor.parse().ok().filter(|seq| *seq >= 0)
    }

    /// The parameters bound after the stream's id and the viewer flag: after, limit + 1.
    fn bounds(&self) -> [Value<'static>; 2] {
        [
            self.after.unwrap_or(-1).into(),
            (self.limit.clamp(1, MAX_PAGE) as i64 + 1).into(),
        ]
    }

    /// Cuts `rows` (with their sequence numbers) to the page, with the cursor of the next.
    fn cut<T>(&self, mut rows: Vec<(i64, T)>) -> (Vec<T>, Option<String>) {
        let limit = self.limit.clamp(1, MAX_PAGE);
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|(seq, _)| seq.to_string())
        } else {
            None
        };
        (rows.into_iter().map(|(_, row)| row).collect(), next)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rating {
    pub score: i64,
    pub comment: Option<String>,
}

/// A conversation as `viewer` may see it; `None` when it does not exist or is not theirs to see.
pub fn conversation(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
    viewer: Viewer,
    page: Page,
) -> Result<Option<ConversationView>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql(&format!(
            "SELECT {CONV_COLUMNS} FROM {{p}}conversations WHERE conversation_id = $1"
        )),
        &[id.into()],
    )?
    else {
        return Ok(None);
    };
    let c = read_conv(&row)?;
    let participants: Vec<ParticipantView> = tx
        .query(
            &t.sql(
                "SELECT participant, following FROM {p}participants
                 WHERE conversation_id = $1 ORDER BY participant",
            ),
            &[id.into()],
        )?
        .iter()
        .map(|r| {
            Ok(ParticipantView {
                participant: r.text(0)?,
                following: r.bool(1)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let me = viewer.key();
    let member = participants.iter().any(|p| p.participant == me);
    let allowed = match viewer {
        Viewer::Agent(_) => c.kind == "customer" || member,
        Viewer::Customer(_) => c.kind == "customer" && member,
    };
    if !allowed {
        return Ok(None);
    }
    let customer = matches!(viewer, Viewer::Customer(_));
    let [after, limit] = page.bounds();
    let rows = tx
        .query(
            &t.sql(
                "SELECT message_id, author, body, visibility, attachments, mentions, quote_of,
                 sent_at, edited_at, deleted_at, seq FROM {p}messages
                 WHERE conversation_id = $1 AND ($2 = 0 OR visibility = 'public') AND seq > $3
                 ORDER BY seq LIMIT $4",
            ),
            &[id.into(), customer.into(), after, limit],
        )?
        .iter()
        .map(|r| {
            let deleted_at = r.opt_i64(9)?;
            let parse = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::Null);
            Ok((
                r.i64(10)?,
                MessageView {
                    message_id: r.text(0)?,
                    author: r.text(1)?,
                    body: if deleted_at.is_some() {
                        String::new()
                    } else {
                        r.text(2)?
                    },
                    visibility: r.text(3)?,
                    attachments: if deleted_at.is_some() {
                        serde_json::Value::Array(vec![])
                    } else {
                        parse(r.text(4)?)
                    },
                    mentions: parse(r.text(5)?),
                    quote_of: r.opt_text(6)?,
                    sent_at: r.i64(7)?,
                    edited_at: r.opt_i64(8)?,
                    deleted_at,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let (messages, next_cursor) = page.cut(rows);
    let last_public_activity_at = if customer {
        tx.query_opt(
            &t.sql(
                "SELECT MAX(sent_at), MAX(edited_at), MAX(deleted_at) FROM {p}messages
                 WHERE conversation_id = $1 AND visibility = 'public'",
            ),
            &[id.into()],
        )?
        .map(|r| -> Result<Option<i64>, StoreError> {
            Ok([r.opt_i64(0)?, r.opt_i64(1)?, r.opt_i64(2)?]
                .into_iter()
                .flatten()
                .max())
        })
        .transpose()?
        .flatten()
    } else {
        None
    };
    let tickets = tx
        .query(
            &t.sql("SELECT ticket_id FROM {p}links WHERE conversation_id = $1 ORDER BY linked_at, ticket_id"),
            &[id.into()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    Ok(Some(ConversationView {
        conversation_id: id.to_owned(),
        kind: c.kind,
        channel: c.channel,
        queue: c.queue,
        subject: c.subject,
        status: c.status,
        assignee: c.assignee,
        pinned_by: c.pinned_by,
        started_by: c.started_by,
        started_at: c.started_at,
        last_activity_at: c.last_activity_at,
        rating: c.rating_score.map(|score| Rating {
            score,
            comment: c.rating_comment,
        }),
        // Linked tickets and the conversation this one came from may be internal: agents only.
        origin: c
            .origin
            .filter(|_| !customer)
            .and_then(|o| serde_json::from_str(&o).ok()),
        participants: if customer {
            // Customers see who they talk to, not who follows.
            participants
                .into_iter()
                .map(|p| ParticipantView {
                    following: false,
                    ..p
                })
                .collect()
        } else {
            participants
        },
        tickets: if customer { vec![] } else { tickets },
        messages,
        next_cursor,
        last_public_activity_at,
    }))
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub entry_id: String,
    /// `comment`, `customer_message` or `reply`.
    pub kind: String,
    pub author: String,
    pub body: String,
    pub visibility: String,
    pub attachments: serde_json::Value,
    /// Microseconds since the Unix epoch.
    pub at: i64,
    /// For replies: `requested`, `delivered` or `failed`.
    pub delivery: Option<String>,
    pub failure: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub ticket_id: String,
    pub ticket_type: String,
    pub title: String,
    pub description: String,
    pub priority: String,
    pub status: String,
    pub requester: Option<String>,
    pub assignee: Option<String>,
    pub followers: Vec<String>,
    pub tags: Vec<String>,
    pub source: serde_json::Value,
    pub channel_info: Option<serde_json::Value>,
    pub created_by: String,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    /// Microseconds since the Unix epoch.
    pub updated_at: i64,
    pub conversations: Vec<String>,
    /// Oldest first: the page of entries asked for (see [`Page`]).
    pub entries: Vec<EntryView>,
    /// Pass as `cursor` for the entries after these; absent when there are none.
    pub next_cursor: Option<String>,
}

/// A ticket as `viewer` may see it; `None` when it does not exist or is not theirs to see.
pub fn ticket(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
    viewer: Viewer,
    page: Page,
) -> Result<Option<TicketView>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql(&format!(
            "SELECT {TICKET_COLUMNS} FROM {{p}}tickets WHERE ticket_id = $1"
        )),
        &[id.into()],
    )?
    else {
        return Ok(None);
    };
    let ticket = read_ticket(&row)?;
    let customer = match viewer {
        Viewer::Agent(_) => false,
        Viewer::Customer(me) => {
            if ticket.requester.as_deref() != Some(me.to_string().as_str()) {
                return Ok(None);
            }
            true
        }
    };
    let [after, limit] = page.bounds();
    let rows = tx
        .query(
            &t.sql(
                "SELECT entry_id, kind, author, body, visibility, attachments, at, delivery,
                 failure, seq FROM {p}entries
                 WHERE ticket_id = $1 AND ($2 = 0 OR visibility = 'public') AND seq > $3
                 ORDER BY seq LIMIT $4",
            ),
            &[id.into(), customer.into(), after, limit],
        )?
        .iter()
        .map(|r| {
            Ok((
                r.i64(9)?,
                EntryView {
                    entry_id: r.text(0)?,
                    kind: r.text(1)?,
                    author: r.text(2)?,
                    body: r.text(3)?,
                    visibility: r.text(4)?,
                    attachments: serde_json::from_str(&r.text(5)?)
                        .unwrap_or(serde_json::Value::Null),
                    at: r.i64(6)?,
                    delivery: r.opt_text(7)?,
                    failure: if customer { None } else { r.opt_text(8)? },
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let (entries, next_cursor) = page.cut(rows);
    let conversations = tx
        .query(
            &t.sql("SELECT conversation_id FROM {p}links WHERE ticket_id = $1 ORDER BY linked_at, conversation_id"),
            &[id.into()],
        )?
        .iter()
        .map(|r| r.text(0))
        .collect::<Result<_, _>>()?;
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    Ok(Some(TicketView {
        ticket_id: id.to_owned(),
        ticket_type: ticket.ticket_type,
        title: ticket.title,
        description: ticket.description,
        priority: ticket.priority,
        status: ticket.status,
        requester: ticket.requester,
        assignee: ticket.assignee,
        followers: if customer { vec![] } else { ticket.followers },
        tags: if customer { vec![] } else { ticket.tags },
        source: parse(&ticket.source),
        channel_info: ticket.channel_info.as_deref().map(parse),
        created_by: ticket.created_by,
        created_at: ticket.created_at,
        updated_at: ticket.updated_at,
        conversations,
        entries,
        next_cursor,
    }))
}
