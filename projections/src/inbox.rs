//! The agent inbox: per agent, "my conversations" (started, assigned, following, took part,
//! invited) and the shared "from customers" section (every customer conversation; the API
//! shows it to support agents only). Filters: status (open, closed, spam), unassigned, pinned,
//! channel, queue, waiting for a first response, unread. Newest activity first, with a cursor.
//!
//! Each batch loads the conversations it touches once, applies their events in memory, then
//! writes each conversation's row, its members' rows (which carry copies of the filter and sort
//! columns, so a page is one index range) and the change of every count. Counts per agent and
//! section are maintained from these differences; no request ever counts rows.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::Actor;
use parley_domain::conversation::{ConversationEvent, ConversationKind, Participant, Visibility};
use std::collections::{BTreeMap, HashMap};

pub const NAME: &str = "inbox";

/// The scope of the shared "from customers" section in the counts table.
const FROM_CUSTOMERS: &str = "*";

const CREATED: i64 = 1;
const ASSIGNED: i64 = 2;
const FOLLOWING: i64 = 4;
const TOOK_PART: i64 = 8;
const INVITED: i64 = 16;

/// Characters of the last message kept for the list.
const PREVIEW_CHARS: usize = 140;

pub struct Inbox;

const TABLES: &[&str] = &["conversations", "members", "messages", "counts"];

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
        awaiting BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        last_activity_at BIGINT NOT NULL,
        message_seq BIGINT NOT NULL,
        preview TEXT NOT NULL
    )",
    "CREATE TABLE {p}members (
        agent_id TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        reasons BIGINT NOT NULL,
        unread BIGINT NOT NULL,
        read_seq BIGINT NOT NULL,
        status TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        queue TEXT,
        assigned BIGINT NOT NULL,
        pinned BIGINT NOT NULL,
        awaiting BIGINT NOT NULL,
        last_activity_at BIGINT NOT NULL,
        PRIMARY KEY (agent_id, conversation_id)
    ){clustered}",
    "CREATE INDEX {p}members_conversation ON {p}members (conversation_id)",
    "CREATE TABLE {p}messages (
        conversation_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        author TEXT,
        deleted BIGINT NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    ){clustered}",
    "CREATE TABLE {p}counts (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (scope, key)
    ){clustered}",
];

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] = &[
    "CREATE INDEX {p}conversations_section ON {p}conversations
        (kind, status, last_activity_at DESC, conversation_id DESC)",
    "CREATE INDEX {p}conversations_activity ON {p}conversations
        (kind, last_activity_at DESC, conversation_id DESC)",
    "CREATE INDEX {p}members_status ON {p}members
        (agent_id, status, last_activity_at DESC, conversation_id DESC)",
    "CREATE INDEX {p}members_activity ON {p}members
        (agent_id, last_activity_at DESC, conversation_id DESC)",
];

impl Projection for Inbox {
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
        stream.starts_with("conversation-")
    }
    fn query_indexes(&self, _dialect: Dialect) -> Vec<&'static str> {
        QUERY_INDEXES.to_vec()
    }
    fn apply(
        &self,
        tx: &mut dyn Tx,
        tables: &Tables,
        events: &[Envelope],
    ) -> Result<(), StoreError> {
        let mut batch = Batch {
            tables,
            slots: HashMap::new(),
        };
        let mut buf = uuid::Uuid::encode_buffer();
        for envelope in events {
            if let Event::Conversation(id, event) = &envelope.event {
                batch.apply(tx, id.0.hyphenated().encode_lower(&mut buf), event)?;
            }
        }
        batch.flush(tx)
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Conv {
    kind: &'static str,
    channel: String,
    queue: Option<String>,
    subject: String,
    status: &'static str,
    assignee: Option<String>,
    pinned_by: Option<String>,
    awaiting: bool,
    started_at: i64,
    last_activity_at: i64,
    message_seq: i64,
    preview: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Member {
    reasons: i64,
    unread: i64,
    read_seq: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Msg {
    seq: i64,
    message_id: String,
    author: Option<String>,
    deleted: bool,
}

struct Slot {
    before: Option<(Conv, BTreeMap<String, Member>)>,
    conv: Option<Conv>,
    members: BTreeMap<String, Member>,
    /// Every message, once something needed them (loaded at most once per batch).
    messages: Option<Vec<Msg>>,
    /// Sequence numbers of messages added or changed in this batch.
    dirty_messages: Vec<i64>,
    new_messages: Vec<Msg>,
}

struct Batch<'t> {
    tables: &'t Tables,
    slots: HashMap<String, Slot>,
}

fn status_name(closed: bool, spam: bool) -> &'static str {
    match (spam, closed) {
        (true, _) => "spam",
        (false, true) => "closed",
        (false, false) => "open",
    }
}

fn static_status(status: &str) -> &'static str {
    match status {
        "closed" => "closed",
        "spam" => "spam",
        _ => "open",
    }
}

fn agent_of(actor: &Actor) -> Option<String> {
    match actor {
        Actor::Agent(agent) => Some(agent.to_string()),
        _ => None,
    }
}

fn preview(body: &str) -> String {
    body.chars().take(PREVIEW_CHARS).collect()
}

impl Batch<'_> {
    fn slot(&mut self, tx: &mut dyn Tx, id: &str) -> Result<&mut Slot, StoreError> {
        if !self.slots.contains_key(id) {
            let conv = tx
                .query_opt(
                    &self.tables.sql(
                        "SELECT kind, channel, queue, subject, status, assignee, pinned_by,
                         awaiting, started_at, last_activity_at, message_seq, preview
                         FROM {p}conversations WHERE conversation_id = $1",
                    ),
                    &[id.into()],
                )?
                .map(|row| read_conv(&row))
                .transpose()?;
            let mut members = BTreeMap::new();
            if conv.is_some() {
                for row in tx.query(
                    &self.tables.sql(
                        "SELECT agent_id, reasons, unread, read_seq FROM {p}members
                         WHERE conversation_id = $1",
                    ),
                    &[id.into()],
                )? {
                    members.insert(
                        row.text(0)?,
                        Member {
                            reasons: row.i64(1)?,
                            unread: row.i64(2)?,
                            read_seq: row.i64(3)?,
                        },
                    );
                }
            }
            let slot = Slot {
                before: conv.clone().map(|c| (c, members.clone())),
                conv,
                members,
                messages: None,
                dirty_messages: Vec::new(),
                new_messages: Vec::new(),
            };
            self.slots.insert(id.to_owned(), slot);
        }
        Ok(self.slots.get_mut(id).expect("inserted above"))
    }

    fn messages<'s>(
        tables: &Tables,
        tx: &mut dyn Tx,
        id: &str,
        slot: &'s mut Slot,
    ) -> Result<&'s mut Vec<Msg>, StoreError> {
        if slot.messages.is_none() {
            let mut loaded = Vec::new();
            for row in tx.query(
                &tables.sql(
                    "SELECT seq, message_id, author, deleted FROM {p}messages
                     WHERE conversation_id = $1 ORDER BY seq",
                ),
                &[id.into()],
            )? {
                loaded.push(Msg {
                    seq: row.i64(0)?,
                    message_id: row.text(1)?,
                    author: row.opt_text(2)?,
                    deleted: row.bool(3)?,
                });
            }
            loaded.extend(slot.new_messages.iter().cloned());
            slot.messages = Some(loaded);
        }
        Ok(slot.messages.as_mut().expect("loaded above"))
    }

    fn apply(
        &mut self,
        tx: &mut dyn Tx,
        id: &str,
        event: &ConversationEvent,
    ) -> Result<(), StoreError> {
        use ConversationEvent as E;
        let tables = self.tables;
        let slot = self.slot(tx, id)?;
        if let E::ConversationStarted(e) = event {
            let customer = e.kind == ConversationKind::Customer;
            slot.conv = Some(Conv {
                kind: if customer { "customer" } else { "internal" },
                channel: e.channel.name().to_owned(),
                queue: e.queue.map(|q| q.to_string()),
                subject: e.subject.clone(),
                status: "open",
                assignee: None,
                pinned_by: None,
                awaiting: customer,
                started_at: e.at.0,
                last_activity_at: e.at.0,
                message_seq: 0,
                preview: String::new(),
            });
            if let Some(agent) = agent_of(&e.started_by) {
                add_reason(&mut slot.members, &agent, CREATED);
            }
            for agent in &e.members {
                add_reason(&mut slot.members, &agent.to_string(), INVITED);
            }
            // A new member's unread count starts from the messages already there (none yet).
            slot.messages.get_or_insert_with(Vec::new);
            return Ok(());
        }
        let Some(conv) = slot.conv.as_mut() else {
            // Events of a conversation whose start this read model never saw: nothing to show.
            return Ok(());
        };
        match event {
            E::ConversationStarted(_) => {}
            E::MessageSent(e) => {
                conv.message_seq += 1;
                conv.last_activity_at = e.at.0;
                conv.preview = preview(&e.body);
                let author = agent_of(&e.author);
                if author.is_some() && e.visibility == Visibility::Public {
                    conv.awaiting = false;
                }
                let msg = Msg {
                    seq: conv.message_seq,
                    message_id: e.message_id.to_string(),
                    author: author.clone(),
                    deleted: false,
                };
                for (agent, member) in slot.members.iter_mut() {
                    if Some(agent) != author.as_ref() {
                        member.unread += 1;
                    }
                }
                if let Some(agent) = &author {
                    if !slot.members.contains_key(agent) {
                        // Joins with everything before read; their own message is not unread.
                        let seq = conv.message_seq;
                        slot.members.insert(
                            agent.clone(),
                            Member {
                                reasons: 0,
                                unread: 0,
                                read_seq: seq,
                            },
                        );
                    }
                    add_reason(&mut slot.members, agent, TOOK_PART);
                }
                slot.dirty_messages.push(msg.seq);
                if let Some(messages) = slot.messages.as_mut() {
                    messages.push(msg.clone());
                }
                slot.new_messages.push(msg);
            }
            E::MessageDeleted(e) => {
                let target = e.message_id.to_string();
                let messages = Self::messages(tables, tx, id, slot)?;
                if let Some(msg) = messages
                    .iter_mut()
                    .find(|m| m.message_id == target && !m.deleted)
                {
                    msg.deleted = true;
                    let (seq, author) = (msg.seq, msg.author.clone());
                    slot.dirty_messages.push(seq);
                    for (agent, member) in slot.members.iter_mut() {
                        if member.read_seq < seq && Some(agent) != author.as_ref() {
                            member.unread = (member.unread - 1).max(0);
                        }
                    }
                }
            }
            E::ConversationRead(e) => {
                if let Participant::Agent(agent) = e.reader {
                    let through = e.through.to_string();
                    let messages = Self::messages(tables, tx, id, slot)?;
                    if let Some(seq) = messages
                        .iter()
                        .find(|m| m.message_id == through)
                        .map(|m| m.seq)
                    {
                        recount(slot, &agent.to_string(), seq);
                    }
                }
            }
            E::MessageMarkedUnread(e) => {
                if let Participant::Agent(agent) = e.reader {
                    let target = e.message_id.to_string();
                    let messages = Self::messages(tables, tx, id, slot)?;
                    if let Some(seq) = messages
                        .iter()
                        .find(|m| m.message_id == target)
                        .map(|m| m.seq)
                    {
                        recount(slot, &agent.to_string(), seq - 1);
                    }
                }
            }
            E::ConversationClosed(_) => conv.status = status_name(true, false),
            E::ConversationReopened(_) => conv.status = status_name(false, false),
            E::ConversationMarkedSpam(_) => conv.status = status_name(true, true),
            E::ConversationRenamed(e) => conv.subject = e.subject.clone(),
            E::ConversationAssigned(e) => {
                assign(tables, tx, id, slot, Some(e.agent.to_string()))?;
            }
            E::ConversationTransferred(e) => {
                assign(tables, tx, id, slot, Some(e.to.to_string()))?;
            }
            E::ConversationTakenOver(e) => {
                assign(tables, tx, id, slot, Some(e.to.to_string()))?;
            }
            E::ConversationReturnedToQueue(_) => assign(tables, tx, id, slot, None)?,
            E::ConversationQueueChanged(e) => {
                conv.queue = Some(e.to.to_string());
                assign(tables, tx, id, slot, None)?;
            }
            E::ParticipantInvited(e) => {
                join(tables, tx, id, slot, &e.agent.to_string(), INVITED)?;
            }
            E::ParticipantRemoved(e) => {
                if let Participant::Agent(agent) = e.participant {
                    let agent = agent.to_string();
                    slot.members.remove(&agent);
                    if let Some(conv) = slot.conv.as_mut() {
                        if conv.assignee.as_ref() == Some(&agent) {
                            conv.assignee = None;
                        }
                        if conv.pinned_by.as_ref() == Some(&agent) {
                            conv.pinned_by = None;
                        }
                    }
                }
            }
            E::ConversationFollowed(e) => {
                join(tables, tx, id, slot, &e.agent.to_string(), FOLLOWING)?;
            }
            E::ConversationUnfollowed(e) => {
                remove_reason(&mut slot.members, &e.agent.to_string(), FOLLOWING);
            }
            E::ConversationPinned(e) => conv.pinned_by = Some(e.agent.to_string()),
            E::ConversationUnpinned(_) => conv.pinned_by = None,
            E::MessageEdited(_)
            | E::RatingRequested(_)
            | E::ConversationRated(_)
            | E::TicketLinked(_)
            | E::TicketUnlinked(_)
            | E::ConversationBranched(_) => {}
        }
        Ok(())
    }

    fn flush(self, tx: &mut dyn Tx) -> Result<(), StoreError> {
        let t = self.tables;
        let mut deltas: HashMap<(String, &'static str), i64> = HashMap::new();
        let upsert_conv = t.sql(
            "INSERT INTO {p}conversations (conversation_id, kind, channel, queue, subject, status,
                assignee, pinned_by, awaiting, started_at, last_activity_at, message_seq, preview)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (conversation_id) DO UPDATE SET queue = excluded.queue,
                subject = excluded.subject, status = excluded.status,
                assignee = excluded.assignee, pinned_by = excluded.pinned_by,
                awaiting = excluded.awaiting, last_activity_at = excluded.last_activity_at,
                message_seq = excluded.message_seq, preview = excluded.preview",
        );
        let upsert_member = t.sql(
            "INSERT INTO {p}members (agent_id, conversation_id, reasons, unread, read_seq, status,
                channel, queue, assigned, pinned, awaiting, last_activity_at, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (agent_id, conversation_id) DO UPDATE SET reasons = excluded.reasons,
                unread = excluded.unread, read_seq = excluded.read_seq, status = excluded.status,
                queue = excluded.queue, assigned = excluded.assigned, pinned = excluded.pinned,
                awaiting = excluded.awaiting, last_activity_at = excluded.last_activity_at",
        );
        let delete_member =
            t.sql("DELETE FROM {p}members WHERE agent_id = $1 AND conversation_id = $2");
        let upsert_message = t.sql(
            "INSERT INTO {p}messages (conversation_id, seq, message_id, author, deleted)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (conversation_id, seq) DO UPDATE SET deleted = excluded.deleted",
        );
        for (id, slot) in self.slots {
            let Some(conv) = &slot.conv else { continue };
            if let Some((old, old_members)) = &slot.before {
                if old == conv && old_members == &slot.members && slot.dirty_messages.is_empty() {
                    continue;
                }
                for key in contributions(old, old_members) {
                    *deltas.entry(key).or_default() -= 1;
                }
                for agent in old_members.keys() {
                    if !slot.members.contains_key(agent) {
                        tx.execute(&delete_member, &[agent.as_str().into(), id.as_str().into()])?;
                    }
                }
            }
            for key in contributions(conv, &slot.members) {
                *deltas.entry(key).or_default() += 1;
            }
            tx.execute(
                &upsert_conv,
                &[
                    id.as_str().into(),
                    conv.kind.into(),
                    conv.channel.as_str().into(),
                    conv.queue.clone().into(),
                    conv.subject.as_str().into(),
                    conv.status.into(),
                    conv.assignee.clone().into(),
                    conv.pinned_by.clone().into(),
                    conv.awaiting.into(),
                    conv.started_at.into(),
                    conv.last_activity_at.into(),
                    conv.message_seq.into(),
                    conv.preview.as_str().into(),
                ],
            )?;
            for (agent, member) in &slot.members {
                tx.execute(
                    &upsert_member,
                    &[
                        agent.as_str().into(),
                        id.as_str().into(),
                        member.reasons.into(),
                        member.unread.into(),
                        member.read_seq.into(),
                        conv.status.into(),
                        conv.channel.as_str().into(),
                        conv.queue.clone().into(),
                        conv.assignee.is_some().into(),
                        (conv.pinned_by.as_ref() == Some(agent)).into(),
                        conv.awaiting.into(),
                        conv.last_activity_at.into(),
                        conv.kind.into(),
                    ],
                )?;
            }
            let all = slot.messages.as_ref().unwrap_or(&slot.new_messages);
            for seq in &slot.dirty_messages {
                if let Some(msg) = all.iter().find(|m| m.seq == *seq) {
                    tx.execute(
                        &upsert_message,
                        &[
                            id.as_str().into(),
                            msg.seq.into(),
                            msg.message_id.as_str().into(),
                            msg.author.clone().into(),
                            msg.deleted.into(),
                        ],
                    )?;
                }
            }
        }
        crate::runner::add_counts(tx, t, deltas)
    }
}

fn read_conv(row: &Row) -> Result<Conv, StoreError> {
    Ok(Conv {
        kind: if row.text(0)? == "internal" {
            "internal"
        } else {
            "customer"
        },
        channel: row.text(1)?,
        queue: row.opt_text(2)?,
        subject: row.text(3)?,
        status: static_status(&row.text(4)?),
        assignee: row.opt_text(5)?,
        pinned_by: row.opt_text(6)?,
        awaiting: row.bool(7)?,
        started_at: row.i64(8)?,
        last_activity_at: row.i64(9)?,
        message_seq: row.i64(10)?,
        preview: row.text(11)?,
    })
}

fn add_reason(members: &mut BTreeMap<String, Member>, agent: &str, reason: i64) {
    members
        .entry(agent.to_owned())
        .or_insert(Member {
            reasons: 0,
            unread: 0,
            read_seq: 0,
        })
        .reasons |= reason;
}

fn remove_reason(members: &mut BTreeMap<String, Member>, agent: &str, reason: i64) {
    if let Some(member) = members.get_mut(agent) {
        member.reasons &= !reason;
        if member.reasons == 0 {
            members.remove(agent);
        }
    }
}

/// Adds `reason` for `agent`; an agent new to the conversation has all its messages unread.
fn join(
    tables: &Tables,
    tx: &mut dyn Tx,
    id: &str,
    slot: &mut Slot,
    agent: &str,
    reason: i64,
) -> Result<(), StoreError> {
    if !slot.members.contains_key(agent) {
        let messages = Batch::messages(tables, tx, id, slot)?;
        let unread = messages
            .iter()
            .filter(|m| !m.deleted && m.author.as_deref() != Some(agent))
            .count() as i64;
        slot.members.insert(
            agent.to_owned(),
            Member {
                reasons: 0,
                unread,
                read_seq: 0,
            },
        );
    }
    add_reason(&mut slot.members, agent, reason);
    Ok(())
}

fn assign(
    tables: &Tables,
    tx: &mut dyn Tx,
    id: &str,
    slot: &mut Slot,
    to: Option<String>,
) -> Result<(), StoreError> {
    let previous = slot.conv.as_mut().and_then(|conv| conv.assignee.take());
    if let Some(previous) = previous {
        remove_reason(&mut slot.members, &previous, ASSIGNED);
    }
    if let Some(agent) = &to {
        join(tables, tx, id, slot, agent, ASSIGNED)?;
    }
    if let Some(conv) = slot.conv.as_mut() {
        conv.assignee = to;
    }
    Ok(())
}

/// `agent` has read everything up to `read_seq`: its unread count is recounted.
fn recount(slot: &mut Slot, agent: &str, read_seq: i64) {
    let Some(messages) = &slot.messages else {
        return;
    };
    if let Some(member) = slot.members.get_mut(agent) {
        member.read_seq = read_seq;
        member.unread = messages
            .iter()
            .filter(|m| m.seq > read_seq && !m.deleted && m.author.as_deref() != Some(agent))
            .count() as i64;
    }
}

/// The counters a conversation adds to, for its members and the "from customers" section.
fn contributions(conv: &Conv, members: &BTreeMap<String, Member>) -> Vec<(String, &'static str)> {
    let mut keys = Vec::new();
    let open = conv.status == "open";
    let mut push = |scope: &str, pinned: bool, unread: bool| {
        keys.push((scope.to_owned(), "all"));
        keys.push((scope.to_owned(), status_key(conv.status)));
        if open && conv.assignee.is_none() && conv.kind == "customer" {
            keys.push((scope.to_owned(), "unassigned"));
        }
        if open && conv.awaiting {
            keys.push((scope.to_owned(), "awaiting"));
        }
        if pinned {
            keys.push((scope.to_owned(), "pinned"));
        }
        if unread {
            keys.push((scope.to_owned(), "unread"));
        }
    };
    for (agent, member) in members {
        push(
            agent,
            conv.pinned_by.as_ref() == Some(agent),
            member.unread > 0,
        );
    }
    if conv.kind == "customer" {
        push(FROM_CUSTOMERS, conv.pinned_by.is_some(), false);
    }
    keys
}

fn status_key(status: &str) -> &'static str {
    match status {
        "closed" => "closed",
        "spam" => "spam",
        _ => "open",
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Which part of the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Conversations the agent started, is assigned to, follows, took part in or was invited to.
    Mine,
    /// Every customer conversation (shown to support agents only).
    FromCustomers,
}

/// Filters of an inbox page; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `open`, `closed` or `spam`.
    pub status: Option<String>,
    /// Open and assigned to nobody.
    pub unassigned: bool,
    /// Pinned ("locked as mine"): by this agent in "mine", by anyone in "from customers".
    pub pinned: bool,
    /// Open and waiting for an agent's first public response.
    pub awaiting: bool,
    /// With messages this agent has not read ("mine" only).
    pub unread: bool,
    pub channel: Option<String>,
    pub queue: Option<String>,
}

impl Filter {
    /// Whether a page under this filter reads one range of its section's index, so that a
    /// bounded page is a short read: status and the cursor are in the indexes; the other
    /// filters are checked row by row, and a rare match can take a long walk.
    pub fn reads_one_index_range(&self) -> bool {
        !self.unassigned
            && !self.pinned
            && !self.awaiting
            && !self.unread
            && self.channel.is_none()
            && self.queue.is_none()
    }
}

/// One line of an inbox page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    pub conversation_id: String,
    pub kind: String,
    pub channel: String,
    pub queue: Option<String>,
    pub subject: String,
    pub status: String,
    pub assignee: Option<String>,
    pub pinned_by: Option<String>,
    pub awaiting_first_response: bool,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// Microseconds since the Unix epoch.
    pub last_activity_at: i64,
    pub preview: String,
    /// Messages this agent has not read (0 where the agent is not a member).
    pub unread: i64,
}

/// A page of the inbox, newest activity first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = InboxPage)]
pub struct Page {
    pub items: Vec<InboxItem>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A malformed cursor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cursor {0:?} is not one this inbox returned")]
pub struct BadCursor(pub String);

/// Decodes `"<last_activity_at>.<conversation_id>"`.
pub fn parse_cursor(cursor: &str) -> Result<(i64, String), BadCursor> {
    let bad = || BadCursor(cursor.to_owned());
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    let at = at.parse::<i64>().map_err(|_| bad())?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}

/// One page of `agent`'s inbox section. `limit` is clamped to 1..=100.
pub fn page<'a>(
    tx: &mut dyn Tx,
    t: &Tables,
    agent: &'a str,
    section: Section,
    filter: &'a Filter,
    cursor: Option<&'a (i64, String)>,
    limit: usize,
) -> Result<Page, StoreError> {
    let limit = limit.clamp(1, 100);
    let mut params: Vec<Value> = Vec::new();
    let mut clauses: Vec<String> = Vec::new();
    let param = |params: &mut Vec<Value<'a>>, v: Value<'a>| {
        params.push(v);
        format!("${}", params.len())
    };
    // `s` is the section's rows, `c` the conversations' (in "from customers" the same rows,
    // and `m` the agent's membership, if any).
    let mut member_join = String::new();
    let from = match section {
        Section::Mine => {
            let a = param(&mut params, agent.into());
            clauses.push(format!("s.agent_id = {a}"));
            "{p}members s JOIN {p}conversations c ON c.conversation_id = s.conversation_id"
        }
        Section::FromCustomers => {
            clauses.push("s.kind = 'customer'".into());
            // The agent's own unread count where it is a member: a key lookup per row of the
            // page, after the section's index has chosen the rows.
            let a = param(&mut params, agent.into());
            member_join = format!(
                " LEFT JOIN {{p}}members m ON m.agent_id = {a} AND m.conversation_id = s.conversation_id"
            );
            "{p}conversations s"
        }
    };
    if let Some(status) = &filter.status {
        let s = param(&mut params, status.as_str().into());
        clauses.push(format!("s.status = {s}"));
    }
    if filter.unassigned {
        clauses.push(match section {
            Section::Mine => "s.status = 'open' AND s.assigned = 0 AND s.kind = 'customer'".into(),
            Section::FromCustomers => "s.status = 'open' AND s.assignee IS NULL".into(),
        });
    }
    if filter.pinned {
        clauses.push(match section {
            Section::Mine => "s.pinned = 1".into(),
            Section::FromCustomers => "s.pinned_by IS NOT NULL".into(),
        });
    }
    if filter.awaiting {
        clauses.push("s.status = 'open' AND s.awaiting = 1".into());
    }
    if filter.unread && section == Section::Mine {
        clauses.push("s.unread > 0".into());
    }
    if let Some(channel) = &filter.channel {
        let c = param(&mut params, channel.as_str().into());
        clauses.push(format!("s.channel = {c}"));
    }
    if let Some(queue) = &filter.queue {
        let q = param(&mut params, queue.as_str().into());
        clauses.push(format!("s.queue = {q}"));
    }
    if let Some((at, id)) = cursor {
        let a = param(&mut params, (*at).into());
        let i = param(&mut params, id.as_str().into());
        // The first term lets the index seek to the cursor instead of walking to it.
        clauses.push(format!(
            "s.last_activity_at <= {a} AND \
             (s.last_activity_at < {a} OR (s.last_activity_at = {a} AND s.conversation_id < {i}))"
        ));
    }
    let (c, unread) = match section {
        Section::Mine => ("c", "s.unread"),
        Section::FromCustomers => ("s", "COALESCE(m.unread, 0)"),
    };
    let sql = format!(
        "SELECT {c}.conversation_id, {c}.kind, {c}.channel, {c}.queue, {c}.subject, {c}.status,
                {c}.assignee, {c}.pinned_by, {c}.awaiting, {c}.started_at, {c}.last_activity_at,
                {c}.preview, {unread}
         FROM {from}{member_join}
         WHERE {}
         ORDER BY s.last_activity_at DESC, s.conversation_id DESC
         LIMIT {}",
        clauses.join(" AND "),
        limit + 1
    );
    let rows = tx.query(&t.sql(&sql), &params)?;
    let mut items = Vec::with_capacity(rows.len());
    for mut row in rows {
        items.push(InboxItem {
            conversation_id: row.take_text(0)?,
            kind: row.take_text(1)?,
            channel: row.take_text(2)?,
            queue: row.take_opt_text(3)?,
            subject: row.take_text(4)?,
            status: row.take_text(5)?,
            assignee: row.take_opt_text(6)?,
            pinned_by: row.take_opt_text(7)?,
            awaiting_first_response: row.bool(8)?,
            started_at: row.i64(9)?,
            last_activity_at: row.i64(10)?,
            preview: row.take_text(11)?,
            unread: row.i64(12)?,
        });
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items
            .last()
            .map(|last| format!("{}.{}", last.last_activity_at, last.conversation_id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The maintained counts of one section for `agent`: `all`, `open`, `closed`, `spam`,
/// `unassigned`, `awaiting`, `pinned` and (in "mine") `unread` conversations.
pub fn counts(
    tx: &mut dyn Tx,
    t: &Tables,
    agent: &str,
    section: Section,
) -> Result<BTreeMap<String, i64>, StoreError> {
    let scope = match section {
        Section::Mine => agent,
        Section::FromCustomers => FROM_CUSTOMERS,
    };
    let mut out: BTreeMap<String, i64> = [
        "all",
        "open",
        "closed",
        "spam",
        "unassigned",
        "awaiting",
        "pinned",
        "unread",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), 0))
    .collect();
    for row in tx.query(
        &t.sql("SELECT key, n FROM {p}counts WHERE scope = $1"),
        &[scope.into()],
    )? {
        out.insert(row.text(0)?, row.i64(1)?);
    }
    Ok(out)
}

/// The counts recomputed by scanning, for tests that check the maintained ones.
pub fn counts_by_scanning(
    tx: &mut dyn Tx,
    t: &Tables,
) -> Result<BTreeMap<(String, String), i64>, StoreError> {
    let mut out = BTreeMap::new();
    let convs = tx.query(
        &t.sql(
            "SELECT conversation_id, kind, channel, queue, subject, status, assignee, pinned_by,
             awaiting, started_at, last_activity_at, message_seq, preview FROM {p}conversations",
        ),
        &[],
    )?;
    for row in convs {
        let id = row.text(0)?;
        let conv = read_conv(&Row(row.0[1..].to_vec()))?;
        let mut members = BTreeMap::new();
        for m in tx.query(
            &t.sql("SELECT agent_id, reasons, unread, read_seq FROM {p}members WHERE conversation_id = $1"),
            &[id.as_str().into()],
        )? {
            members.insert(
                m.text(0)?,
                Member {
                    reasons: m.i64(1)?,
                    unread: m.i64(2)?,
                    read_seq: m.i64(3)?,
                },
            );
        }
        for (scope, key) in contributions(&conv, &members) {
            *out.entry((scope, key.to_owned())).or_default() += 1;
        }
    }
    Ok(out)
}

/// The maintained counts, every scope, non-zero only.
pub fn all_counts(
    tx: &mut dyn Tx,
    t: &Tables,
) -> Result<BTreeMap<(String, String), i64>, StoreError> {
    let mut out = BTreeMap::new();
    for row in tx.query(
        &t.sql("SELECT scope, key, n FROM {p}counts WHERE n <> 0"),
        &[],
    )? {
        out.insert((row.text(0)?, row.text(1)?), row.i64(2)?);
    }
    Ok(out)
}
