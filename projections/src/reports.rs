//! Reports: what the support team did, per day, channel, agent and queue, over a range of days.
//!
//! # Figures
//!
//! Only customer conversations count (internal conversations between agents are left out).
//!
//! - **new conversations**: conversations started in the range (by the day they started);
//! - **closed**, **reopened**, **spam**: `ConversationClosed`, `ConversationReopened` and
//!   `ConversationMarkedSpam` events in the range;
//! - **transfers**: `ConversationTransferred`, `ConversationQueueChanged`,
//!   `ConversationTakenOver` and `ConversationReturnedToQueue` events in the range;
//! - **first response time**: from the start of a conversation to the first public message of
//!   an agent, for conversations whose first response was in the range; median and p90;
//! - **resolution time**: from the start of a conversation to its last close, for
//!   conversations resolved in the range (closed, and not reopened since); median and p90. A
//!   reopened conversation leaves the figures of the day it was closed and comes back on the day
//!   it is closed again;
//! - **messages per conversation**: the average number of public messages from customers and
//!   agents (not internal notes, not automations) of the conversations resolved in the range;
//! - **ratings**: the number and the average score of `ConversationRated` events in the range.
//!
//! Conversations marked as spam are left out of the durations and of messages per
//! conversation. Medians and p90s are nearest-rank: the smallest value that at least half
//! (nine tenths) of the values do not exceed. Durations are whole seconds.
//!
//! A day is the UTC date of the event's `at` (for a duration, of the event that ends it).
//!
//! # Which channel, queue and agent
//!
//! A conversation's *agent* is its assignee or, while nobody is assigned (returned to the
//! queue, moved to another queue, the assignee removed), the last agent who was assigned; a
//! conversation never assigned has no agent. Its *queue* is the queue it is in (none if it was
//! started without one).
//!
//! - Event figures (closed, reopened, spam, transfers, ratings) belong to the conversation's
//!   channel, queue and agent as they were just before the event: a transfer counts for the
//!   agent and the queue the conversation left; a reopen counts for the agent who had closed it.
//! - New conversations, resolution time and messages per conversation belong to the
//!   conversation's queue and agent as they are now: for a closed conversation, who had it
//!   when it was closed.
//! - First response time belongs to the agent who sent the first response (and to the
//!   conversation's current queue).
//!
//! Rows for a missing agent or queue have `group: None`.
//!
//! # Social tickets
//!
//! Tickets carrying the `messaging_support` tag, per day and channel (the channel of the
//! ticket's latest channel info, else of its social source): **new** counts them on the day they were
//! created, **solved** on the day they were last moved to `solved`, while they are solved or
//! closed. A ticket whose tag is removed leaves every social figure, and comes back if the tag
//! is added again.
//!
//! # Rules
//!
//! With the report rule `business_hours_only`, first response and resolution times count only
//! the time inside the help desk's business hours
//! ([`business_seconds`](parley_domain::helpdesk::business_seconds)). Each generation of tables
//! follows the rules the `helpdesk-main` stream held when the generation was created (its
//! latest `BusinessHoursSet` and `ReportRulesChanged`), stored in its `rules` table: every
//! figure of a generation is measured the same way. `BusinessHoursSet` and `ReportRulesChanged`
//! events appended later do not change the figures being served. `parley rebuild reports`
//! recomputes all of history under the current rules into a new generation while the old
//! figures keep serving, then swaps them. A generation created without rules (the very first
//! one, before any rebuild) counts wall-clock time.
//!
//! # Tables
//!
//! - `rules`: the generation's rules (one row; none for the default rules: wall-clock time);
//! - `conversations`: one row of facts per customer conversation (channel, queue, agent,
//!   status, start, first response and its responder, resolution, messages), indexed by the
//!   day each figure falls on; medians and p90s are computed from them at query time;
//! - `counts`: event counters per (day, channel, queue, agent), maintained from events;
//! - `tickets`: per ticket, its channel, whether it is social, its creation and solve days;
//! - `social`: new and solved social tickets per (day, channel), maintained from the
//!   differences of the tickets' rows.
//!
//! Each batch loads every conversation and ticket it touches once, applies their events in
//! memory, and writes each changed row and each counter once. Events no figure depends on are
//! skipped before anything is loaded.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::Actor;
use parley_domain::Timestamp;
use parley_domain::conversation::{ConversationEvent, ConversationKind, Visibility};
use parley_domain::helpdesk::{BusinessHours, HELP_DESK_ID, HelpDeskEvent, business_seconds};
use parley_domain::ticket::{MESSAGING_SUPPORT_TAG, TicketEvent, TicketSource, TicketStatus};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

pub const NAME: &str = "reports";

/// The help desk's stream, whose rules a generation follows (`helpdesk-<HELP_DESK_ID>`).
pub const RULES_STREAM: &str = "helpdesk-main";

/// Whether an event of `stream` changes the rules that generations created from now on follow
/// (see the module's documentation): the figures being served follow it only once reports are
/// rebuilt.
pub fn changes_rules(stream: &str, event_type: &str) -> bool {
    stream == RULES_STREAM && matches!(event_type, "BusinessHoursSet" | "ReportRulesChanged")
}

/// The longest range a report covers, in days.
pub const MAX_REPORT_DAYS: i64 = 731;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Status names in the `conversations` table.
const OPEN: &str = "open";
const CLOSED: &str = "closed";
const SPAM: &str = "spam";

pub struct Reports;

const TABLES: &[&str] = &["rules", "conversations", "counts", "tickets", "social"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}rules (
        id BIGINT PRIMARY KEY,
        business_hours_only BIGINT NOT NULL,
        schedule TEXT
    )",
    "CREATE TABLE {p}conversations (
        conversation_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        queue TEXT NOT NULL,
        agent TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        start_day BIGINT NOT NULL,
        responder TEXT NOT NULL,
        first_response_at BIGINT,
        response_day BIGINT,
        first_response_secs BIGINT,
        resolved_at BIGINT,
        resolved_day BIGINT,
        resolution_secs BIGINT,
        messages BIGINT NOT NULL
    )",
    "CREATE TABLE {p}counts (
        day BIGINT NOT NULL,
        channel TEXT NOT NULL,
        queue TEXT NOT NULL,
        agent TEXT NOT NULL,
        closed BIGINT NOT NULL,
        reopened BIGINT NOT NULL,
        spam BIGINT NOT NULL,
        transfers BIGINT NOT NULL,
        rating_sum BIGINT NOT NULL,
        ratings BIGINT NOT NULL,
        PRIMARY KEY (day, channel, queue, agent)
    ){clustered}",
    "CREATE TABLE {p}tickets (
        ticket_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        social BIGINT NOT NULL,
        created_day BIGINT NOT NULL,
        solved_day BIGINT
    )",
    "CREATE TABLE {p}social (
        day BIGINT NOT NULL,
        channel TEXT NOT NULL,
        created BIGINT NOT NULL,
        solved BIGINT NOT NULL,
        PRIMARY KEY (day, channel)
    ){clustered}",
];

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] = &[
    "CREATE INDEX {p}conversations_started ON {p}conversations (start_day)",
    "CREATE INDEX {p}conversations_responded ON {p}conversations (response_day)",
    "CREATE INDEX {p}conversations_resolved ON {p}conversations (resolved_day)",
];

impl Projection for Reports {
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
    fn seed_streams(&self) -> &'static [&'static str] {
        &[RULES_STREAM]
    }
    fn seed(
        &self,
        tx: &mut dyn Tx,
        tables: &Tables,
        events: &[Envelope],
    ) -> Result<(), StoreError> {
        let mut rules = ReportRules::default();
        for envelope in events {
            if let Event::HelpDesk(id, event) = &envelope.event
                && id == HELP_DESK_ID
            {
                match event {
                    HelpDeskEvent::BusinessHoursSet(e) => {
                        rules.business_hours = Some(e.schedule.clone());
                    }
                    HelpDeskEvent::ReportRulesChanged(e) => {
                        rules.business_hours_only = e.business_hours_only;
                    }
                    _ => {}
                }
            }
        }
        if rules == ReportRules::default() {
            // No row: wall-clock time, as in a generation created without rules.
            return Ok(());
        }
        let schedule = rules
            .business_hours
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(NAME, format!("cannot encode the schedule: {e}")))?;
        tx.execute(
            &tables.sql(
                "INSERT INTO {p}rules (id, business_hours_only, schedule) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET business_hours_only = excluded.business_hours_only,
                    schedule = excluded.schedule",
            ),
            &[rules.business_hours_only.into(), schedule.into()],
        )?;
        Ok(())
    }
    fn wants(&self, stream: &str, _event_type: &str) -> bool {
        !stream.starts_with("customer-")
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
            rules: None,
            conversations: HashMap::new(),
            counts: HashMap::new(),
            tickets: HashMap::new(),
        };
        for envelope in events {
            match &envelope.event {
                Event::Conversation(id, event) if counts_for_reports(event) => {
                    batch.conversation(tx, id.0, event)?;
                }
                Event::Ticket(id, event) if counts_for_social(event) => {
                    batch.ticket(tx, id.0, event)?;
                }
                _ => {}
            }
        }
        batch.flush(tx)
    }
}

/// Whether a conversation event can change any figure (the others are skipped unread).
fn counts_for_reports(event: &ConversationEvent) -> bool {
    use ConversationEvent as E;
    match event {
        E::MessageSent(e) => e.visibility == Visibility::Public && e.author != Actor::System,
        E::ConversationStarted(_)
        | E::ConversationClosed(_)
        | E::ConversationReopened(_)
        | E::ConversationMarkedSpam(_)
        | E::ConversationAssigned(_)
        | E::ConversationTransferred(_)
        | E::ConversationQueueChanged(_)
        | E::ConversationReturnedToQueue(_)
        | E::ConversationTakenOver(_)
        | E::ConversationRated(_) => true,
        E::MessageEdited(_)
        | E::MessageDeleted(_)
        | E::ConversationRead(_)
        | E::MessageMarkedUnread(_)
        | E::ConversationRenamed(_)
        | E::ParticipantInvited(_)
        | E::ParticipantRemoved(_)
        | E::ConversationFollowed(_)
        | E::ConversationUnfollowed(_)
        | E::ConversationPinned(_)
        | E::ConversationUnpinned(_)
        | E::RatingRequested(_)
        | E::TicketLinked(_)
        | E::TicketUnlinked(_)
        | E::ConversationBranched(_) => false,
    }
}

/// Whether a ticket event can change a social figure.
fn counts_for_social(event: &TicketEvent) -> bool {
    use TicketEvent as E;
    match event {
        E::TicketCreated(_) | E::TicketStatusChanged(_) | E::TicketChannelInfoSet(_) => true,
        E::TicketTagAdded(e) => e.tag == MESSAGING_SUPPORT_TAG,
        E::TicketTagRemoved(e) => e.tag == MESSAGING_SUPPORT_TAG,
        E::TicketTitleChanged(_)
        | E::TicketDescriptionChanged(_)
        | E::TicketPriorityChanged(_)
        | E::TicketTypeChanged(_)
        | E::TicketAssigned(_)
        | E::TicketUnassigned(_)
        | E::TicketFollowed(_)
        | E::TicketUnfollowed(_)
        | E::TicketCommented(_)
        | E::CustomerMessageReceived(_)
        | E::OutboundReplyRequested(_)
        | E::OutboundReplyDelivered(_)
        | E::OutboundReplyFailed(_)
        | E::OutboundReplyReceipt(_) => false,
    }
}

fn day_of(at: i64) -> i64 {
    at.div_euclid(MICROS_PER_DAY)
}

// ---------------------------------------------------------------------------------------------
// Rules.

/// How a generation measures durations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportRules {
    /// Count first response and resolution times inside the business hours only.
    pub business_hours_only: bool,
    /// The help desk's schedule when the generation was created, if one was set.
    pub business_hours: Option<BusinessHours>,
}

impl ReportRules {
    /// Seconds from `from` to `to` (microseconds since the epoch) as the rules count them:
    /// inside the business hours with `business_hours_only` and a schedule, wall-clock time
    /// otherwise; never negative.
    pub fn duration_secs(&self, from: i64, to: i64) -> i64 {
        match (&self.business_hours, self.business_hours_only) {
            (Some(schedule), true) => business_seconds(schedule, Timestamp(from), Timestamp(to)),
            _ => (to.saturating_sub(from) / 1_000_000).max(0),
        }
    }
}

/// The rules the serving generation follows.
pub fn rules(tx: &mut dyn Tx, t: &Tables) -> Result<ReportRules, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql("SELECT business_hours_only, schedule FROM {p}rules WHERE id = 1"),
        &[],
    )?
    else {
        return Ok(ReportRules::default());
    };
    let business_hours = row
        .opt_text(1)?
        .map(|json| serde_json::from_str::<BusinessHours>(&json))
        .transpose()
        .map_err(|e| StoreError::Corrupt(NAME, format!("unreadable schedule: {e}")))?;
    Ok(ReportRules {
        business_hours_only: row.bool(0)?,
        business_hours,
    })
}

// ---------------------------------------------------------------------------------------------
// Applying events.

/// One customer conversation's facts. Empty strings stand for "none".
#[derive(Debug, Clone, PartialEq)]
struct Conv {
    channel: String,
    queue: String,
    agent: String,
    status: &'static str,
    started_at: i64,
    responder: String,
    first_response_at: Option<i64>,
    first_response_secs: Option<i64>,
    resolved_at: Option<i64>,
    resolution_secs: Option<i64>,
    messages: i64,
}

struct ConvSlot {
    before: Option<Conv>,
    /// `None` for a conversation the reports leave out (internal, or never seen started).
    conv: Option<Conv>,
}

#[derive(Debug, Clone, PartialEq)]
struct Ticket {
    channel: String,
    social: bool,
    created_day: i64,
    solved_day: Option<i64>,
}

struct TicketSlot {
    before: Option<Ticket>,
    ticket: Option<Ticket>,
}

/// Changes of one counters row.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    closed: i64,
    reopened: i64,
    spam: i64,
    transfers: i64,
    rating_sum: i64,
    ratings: i64,
}

type CountKey = (i64, String, String, String);

struct Batch<'t> {
    tables: &'t Tables,
    /// Read once, when a batch first measures a duration.
    rules: Option<ReportRules>,
    conversations: HashMap<Uuid, ConvSlot>,
    counts: HashMap<CountKey, Counters>,
    tickets: HashMap<Uuid, TicketSlot>,
}

fn static_status(status: &str) -> &'static str {
    match status {
        CLOSED => CLOSED,
        SPAM => SPAM,
        _ => OPEN,
    }
}

fn read_conv(row: &Row) -> Result<Conv, StoreError> {
    Ok(Conv {
        channel: row.text(0)?,
        queue: row.text(1)?,
        agent: row.text(2)?,
        status: static_status(&row.text(3)?),
        started_at: row.i64(4)?,
        responder: row.text(5)?,
        first_response_at: row.opt_i64(6)?,
        first_response_secs: row.opt_i64(7)?,
        resolved_at: row.opt_i64(8)?,
        resolution_secs: row.opt_i64(9)?,
        messages: row.i64(10)?,
    })
}

impl Batch<'_> {
    fn rules(&mut self, tx: &mut dyn Tx) -> Result<&ReportRules, StoreError> {
        if self.rules.is_none() {
            self.rules = Some(rules(tx, self.tables)?);
        }
        Ok(self.rules.as_ref().expect("read above"))
    }

    fn conversation(
        &mut self,
        tx: &mut dyn Tx,
        id: Uuid,
        event: &ConversationEvent,
    ) -> Result<(), StoreError> {
        use ConversationEvent as E;
        if !self.conversations.contains_key(&id) {
            // A conversation's first event is its start: nothing to load then.
            let before = if matches!(event, E::ConversationStarted(_)) {
                None
            } else {
                tx.query_opt(
                    &self.tables.sql(
                        "SELECT channel, queue, agent, status, started_at, responder,
                         first_response_at, first_response_secs, resolved_at, resolution_secs,
                         messages FROM {p}conversations WHERE conversation_id = $1",
                    ),
                    &[id.into()],
                )?
                .map(|row| read_conv(&row))
                .transpose()?
            };
            let conv = before.clone();
            self.conversations.insert(id, ConvSlot { before, conv });
        }
        // Durations need the rules; read them before borrowing the slot.
        if matches!(event, E::MessageSent(_) | E::ConversationClosed(_)) {
            self.rules(tx)?;
        }
        let rules = self.rules.as_ref();
        let slot = self.conversations.get_mut(&id).expect("inserted above");
        if let E::ConversationStarted(e) = event {
            if slot.conv.is_none() && e.kind == ConversationKind::Customer {
                slot.conv = Some(Conv {
                    channel: e.channel.name().to_owned(),
                    queue: e.queue.map(|q| q.to_string()).unwrap_or_default(),
                    agent: String::new(),
                    status: OPEN,
                    started_at: e.at.0,
                    responder: String::new(),
                    first_response_at: None,
                    first_response_secs: None,
                    resolved_at: None,
                    resolution_secs: None,
                    messages: 0,
                });
            }
            return Ok(());
        }
        let Some(conv) = slot.conv.as_mut() else {
            return Ok(());
        };
        let duration = |from: i64, to: i64| rules.map_or(0, |r| r.duration_secs(from, to));
        // Event figures go to the conversation as it was just before the event.
        let mut count = |at: Timestamp, conv: &Conv, change: &dyn Fn(&mut Counters)| {
            let key = (
                day_of(at.0),
                conv.channel.clone(),
                conv.queue.clone(),
                conv.agent.clone(),
            );
            change(self.counts.entry(key).or_default());
        };
        match event {
            E::MessageSent(e) => {
                conv.messages += 1;
                if let Actor::Agent(agent) = e.author
                    && conv.first_response_at.is_none()
                {
                    conv.first_response_at = Some(e.at.0);
                    conv.first_response_secs = Some(duration(conv.started_at, e.at.0));
                    conv.responder = agent.to_string();
                }
            }
            E::ConversationClosed(e) => {
                count(e.at, conv, &|c| c.closed += 1);
                conv.status = CLOSED;
                conv.resolved_at = Some(e.at.0);
                conv.resolution_secs = Some(duration(conv.started_at, e.at.0));
            }
            E::ConversationReopened(e) => {
                count(e.at, conv, &|c| c.reopened += 1);
                conv.status = OPEN;
                conv.resolved_at = None;
                conv.resolution_secs = None;
            }
            E::ConversationMarkedSpam(e) => {
                count(e.at, conv, &|c| c.spam += 1);
                conv.status = SPAM;
                conv.resolved_at = None;
                conv.resolution_secs = None;
            }
            E::ConversationAssigned(e) => conv.agent = e.agent.to_string(),
            E::ConversationTransferred(e) => {
                count(e.at, conv, &|c| c.transfers += 1);
                conv.agent = e.to.to_string();
            }
            E::ConversationTakenOver(e) => {
                count(e.at, conv, &|c| c.transfers += 1);
                conv.agent = e.to.to_string();
            }
            E::ConversationQueueChanged(e) => {
                count(e.at, conv, &|c| c.transfers += 1);
                conv.queue = e.to.to_string();
            }
            E::ConversationReturnedToQueue(e) => count(e.at, conv, &|c| c.transfers += 1),
            E::ConversationRated(e) => {
                let score = i64::from(e.score);
                count(e.at, conv, &|c| {
                    c.rating_sum += score;
                    c.ratings += 1;
                });
            }
            _ => {}
        }
        Ok(())
    }

    fn ticket(&mut self, tx: &mut dyn Tx, id: Uuid, event: &TicketEvent) -> Result<(), StoreError> {
        use TicketEvent as E;
        if !self.tickets.contains_key(&id) {
            let before = if matches!(event, E::TicketCreated(_)) {
                None
            } else {
                tx.query_opt(
                    &self.tables.sql(
                        "SELECT channel, social, created_day, solved_day FROM {p}tickets
                         WHERE ticket_id = $1",
                    ),
                    &[id.into()],
                )?
                .map(|row| -> Result<Ticket, StoreError> {
                    Ok(Ticket {
                        channel: row.text(0)?,
                        social: row.bool(1)?,
                        created_day: row.i64(2)?,
                        solved_day: row.opt_i64(3)?,
                    })
                })
                .transpose()?
            };
            let ticket = before.clone();
            self.tickets.insert(id, TicketSlot { before, ticket });
        }
        let slot = self.tickets.get_mut(&id).expect("inserted above");
        if let E::TicketCreated(e) = event {
            if slot.ticket.is_none() {
                let channel = match (&e.channel_info, &e.source) {
                    (Some(info), _) => info.channel.name(),
                    (None, TicketSource::Social { channel }) => channel.name(),
                    (None, _) => "",
                };
                slot.ticket = Some(Ticket {
                    channel: channel.to_owned(),
                    social: e.tags.iter().any(|t| t == MESSAGING_SUPPORT_TAG),
                    created_day: day_of(e.at.0),
                    solved_day: None,
                });
            }
            return Ok(());
        }
        let Some(ticket) = slot.ticket.as_mut() else {
            return Ok(());
        };
        match event {
            E::TicketStatusChanged(e) => match e.to {
                TicketStatus::Solved => ticket.solved_day = Some(day_of(e.at.0)),
                TicketStatus::Closed => {
                    ticket.solved_day.get_or_insert(day_of(e.at.0));
                }
                TicketStatus::New | TicketStatus::Open | TicketStatus::Pending => {
                    ticket.solved_day = None;
                }
            },
            E::TicketTagAdded(_) => ticket.social = true,
            E::TicketTagRemoved(_) => ticket.social = false,
            E::TicketChannelInfoSet(e) => {
                if let Some(info) = &e.channel_info {
                    ticket.channel = info.channel.name().to_owned();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(self, tx: &mut dyn Tx) -> Result<(), StoreError> {
        let t = self.tables;
        if !self.conversations.is_empty() {
            let upsert = t.sql(
                "INSERT INTO {p}conversations (conversation_id, channel, queue, agent, status,
                    started_at, start_day, responder, first_response_at, response_day,
                    first_response_secs, resolved_at, resolved_day, resolution_secs, messages)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (conversation_id) DO UPDATE SET queue = excluded.queue,
                    agent = excluded.agent, status = excluded.status,
                    responder = excluded.responder, first_response_at = excluded.first_response_at,
                    response_day = excluded.response_day,
                    first_response_secs = excluded.first_response_secs,
                    resolved_at = excluded.resolved_at, resolved_day = excluded.resolved_day,
                    resolution_secs = excluded.resolution_secs, messages = excluded.messages",
            );
            for (id, slot) in &self.conversations {
                let Some(conv) = &slot.conv else { continue };
                if slot.before.as_ref() == Some(conv) {
                    continue;
                }
                tx.execute(
                    &upsert,
                    &[
                        (*id).into(),
                        conv.channel.as_str().into(),
                        conv.queue.as_str().into(),
                        conv.agent.as_str().into(),
                        conv.status.into(),
                        conv.started_at.into(),
                        day_of(conv.started_at).into(),
                        conv.responder.as_str().into(),
                        conv.first_response_at.into(),
                        conv.first_response_at.map(day_of).into(),
                        conv.first_response_secs.into(),
                        conv.resolved_at.into(),
                        conv.resolved_at.map(day_of).into(),
                        conv.resolution_secs.into(),
                        conv.messages.into(),
                    ],
                )?;
            }
        }
        if !self.counts.is_empty() {
            let add = t.sql(
                "INSERT INTO {p}counts (day, channel, queue, agent, closed, reopened, spam,
                    transfers, rating_sum, ratings)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (day, channel, queue, agent) DO UPDATE SET
                    closed = {p}counts.closed + excluded.closed,
                    reopened = {p}counts.reopened + excluded.reopened,
                    spam = {p}counts.spam + excluded.spam,
                    transfers = {p}counts.transfers + excluded.transfers,
                    rating_sum = {p}counts.rating_sum + excluded.rating_sum,
                    ratings = {p}counts.ratings + excluded.ratings",
            );
            for ((day, channel, queue, agent), c) in self.counts {
                tx.execute(
                    &add,
                    &[
                        day.into(),
                        channel.into(),
                        queue.into(),
                        agent.into(),
                        c.closed.into(),
                        c.reopened.into(),
                        c.spam.into(),
                        c.transfers.into(),
                        c.rating_sum.into(),
                        c.ratings.into(),
                    ],
                )?;
            }
        }
        if !self.tickets.is_empty() {
            let upsert = t.sql(
                "INSERT INTO {p}tickets (ticket_id, channel, social, created_day, solved_day)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (ticket_id) DO UPDATE SET channel = excluded.channel,
                    social = excluded.social, solved_day = excluded.solved_day",
            );
            // (day, channel) → (new, solved) changes.
            let mut deltas: HashMap<(i64, &str), (i64, i64)> = HashMap::new();
            for (id, slot) in &self.tickets {
                let Some(ticket) = &slot.ticket else { continue };
                if slot.before.as_ref() == Some(ticket) {
                    continue;
                }
                for (ticket, sign) in [(slot.before.as_ref(), -1), (Some(ticket), 1)] {
                    let Some(ticket) = ticket.filter(|t| t.social) else {
                        continue;
                    };
                    deltas
                        .entry((ticket.created_day, ticket.channel.as_str()))
                        .or_default()
                        .0 += sign;
                    if let Some(day) = ticket.solved_day {
                        deltas.entry((day, ticket.channel.as_str())).or_default().1 += sign;
                    }
                }
                tx.execute(
                    &upsert,
                    &[
                        (*id).into(),
                        ticket.channel.as_str().into(),
                        ticket.social.into(),
                        ticket.created_day.into(),
                        ticket.solved_day.into(),
                    ],
                )?;
            }
            let add = t.sql(
                "INSERT INTO {p}social (day, channel, created, solved) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (day, channel) DO UPDATE SET
                    created = {p}social.created + excluded.created,
                    solved = {p}social.solved + excluded.solved",
            );
            // A row back to zero goes, so the rows never depend on where batches ended.
            let drop_empty = t.sql(
                "DELETE FROM {p}social WHERE day = $1 AND channel = $2 AND created = 0
                 AND solved = 0",
            );
            for ((day, channel), (created, solved)) in deltas {
                if created != 0 || solved != 0 {
                    tx.execute(
                        &add,
                        &[day.into(), channel.into(), created.into(), solved.into()],
                    )?;
                }
                if created < 0 || solved < 0 {
                    tx.execute(&drop_empty, &[day.into(), channel.into()])?;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Days.

/// A UTC calendar day, written `YYYY-MM-DD` (years 0000 to 9999).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i64);

/// Why a report query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadReportQuery {
    #[error("{0:?} is not a day written YYYY-MM-DD")]
    BadDay(String),
    #[error("the range ends ({to}) before it starts ({from})")]
    Reversed { from: Day, to: Day },
    #[error("the range covers {days} days, the limit is {max}")]
    TooLong { days: i64, max: i64 },
}

impl Day {
    /// The day of an instant (UTC).
    pub fn of(at: Timestamp) -> Day {
        Day(day_of(at.0))
    }

    /// The day `days` days after 1970-01-01.
    pub fn from_days_since_epoch(days: i64) -> Day {
        Day(days)
    }

    pub fn days_since_epoch(self) -> i64 {
        self.0
    }

    /// Parses `YYYY-MM-DD`, refusing anything else (and dates that do not exist).
    pub fn parse(text: &str) -> Result<Day, BadReportQuery> {
        let bad = || BadReportQuery::BadDay(text.to_owned());
        let bytes = text.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shaped {
            return Err(bad());
        }
        let number =
            |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect("ASCII digits") };
        let (year, month, day) = (number(0..4), number(5..7), number(8..10));
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
            return Err(bad());
        }
        let days = days_from_civil(year, month, day);
        // A day past the end of its month comes back as another date.
        if civil_from_days(days) != (year, month, day) {
            return Err(bad());
        }
        Ok(Day(days))
    }
}

impl FromStr for Day {
    type Err = BadReportQuery;
    fn from_str(text: &str) -> Result<Day, BadReportQuery> {
        Day::parse(text)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day counted from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn check_range(from: &str, to: &str) -> Result<(Day, Day), BadReportQuery> {
    let (from, to) = (Day::parse(from)?, Day::parse(to)?);
    if to < from {
        return Err(BadReportQuery::Reversed { from, to });
    }
    let days = to.0 - from.0 + 1;
    if days > MAX_REPORT_DAYS {
        return Err(BadReportQuery::TooLong {
            days,
            max: MAX_REPORT_DAYS,
        });
    }
    Ok((from, to))
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// What the rows of a report stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// One row per day of the range, empty days included.
    Day,
    Channel,
    Agent,
    Queue,
}

/// A report's range, grouping and filters. Build it with [`ReportQuery::new`], which validates
/// the range, then set the filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// First day of the range (inclusive).
    pub from_day: Day,
    /// Last day of the range (inclusive).
    pub to_day: Day,
    pub group_by: GroupBy,
    /// Only this channel (`widget`, `whatsapp`, ...).
    pub channel: Option<String>,
    /// Only this agent's figures (an agent id), as "Which channel, queue and agent" assigns
    /// them.
    pub agent: Option<String>,
    /// Only this queue (a queue id).
    pub queue: Option<String>,
}

impl ReportQuery {
    /// A query over `from_day..=to_day`, both `YYYY-MM-DD`, at most [`MAX_REPORT_DAYS`] days.
    pub fn new(from_day: &str, to_day: &str, group_by: GroupBy) -> Result<Self, BadReportQuery> {
        let (from_day, to_day) = check_range(from_day, to_day)?;
        Ok(ReportQuery {
            from_day,
            to_day,
            group_by,
            channel: None,
            agent: None,
            queue: None,
        })
    }
}

/// Median and p90 of a set of durations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Durations {
    /// How many durations were measured.
    pub count: i64,
    pub median_secs: Option<i64>,
    pub p90_secs: Option<i64>,
}

impl Durations {
    /// Nearest-rank median and p90 of `values`.
    pub fn of(mut values: Vec<i64>) -> Durations {
        values.sort_unstable();
        let n = values.len();
        let rank = |numerator: usize| {
            // ceil(n · numerator / 10): the nearest rank, 1-based.
            let rank = (n * numerator).div_ceil(10);
            values.get(rank.max(1) - 1).copied()
        };
        Durations {
            count: n as i64,
            median_secs: rank(5),
            p90_secs: rank(9),
        }
    }
}

/// One row of a report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ReportRow {
    /// The day (`YYYY-MM-DD`), channel, agent id or queue id of the row; `None` for figures
    /// with no agent or no queue.
    pub group: Option<String>,
    pub new_conversations: i64,
    pub closed: i64,
    pub reopened: i64,
    pub spam: i64,
    pub transfers: i64,
    pub first_response: Durations,
    pub resolution: Durations,
    /// Average public messages of the conversations resolved in the range.
    pub messages_per_conversation: Option<f64>,
    /// Average score (1–5) of the ratings given in the range.
    pub rating_average: Option<f64>,
    pub ratings: i64,
}

/// Adds the query's filters to `clauses`; `agent_column` is the column the agent filter reads.
fn filter<'a>(
    q: &'a ReportQuery,
    agent_column: &str,
    clauses: &mut Vec<String>,
    params: &mut Vec<Value<'a>>,
) {
    for (column, wanted) in [
        ("channel", &q.channel),
        (agent_column, &q.agent),
        ("queue", &q.queue),
    ] {
        if let Some(wanted) = wanted {
            params.push(wanted.as_str().into());
            clauses.push(format!("{column} = ${}", params.len()));
        }
    }
}

/// The rows of `sql_template` (`{key}` its group column, `{where}` its conditions on the days
/// `day_column` of the range and the filters).
fn grouped(
    tx: &mut dyn Tx,
    t: &Tables,
    q: &ReportQuery,
    day_column: &str,
    agent_column: &str,
    extra: &str,
    sql_template: &str,
) -> Result<Vec<(Option<String>, Row)>, StoreError> {
    let mut params: Vec<Value> = vec![q.from_day.0.into(), q.to_day.0.into()];
    let mut clauses = vec![format!("{day_column} BETWEEN $1 AND $2")];
    if !extra.is_empty() {
        clauses.push(extra.to_owned());
    }
    filter(q, agent_column, &mut clauses, &mut params);
    let key = match q.group_by {
        GroupBy::Day => day_column,
        GroupBy::Channel => "channel",
        GroupBy::Agent => agent_column,
        GroupBy::Queue => "queue",
    };
    let sql = sql_template
        .replace("{key}", key)
        .replace("{where}", &clauses.join(" AND "));
    let rows = tx.query(&t.sql(&sql), &params)?;
    rows.into_iter()
        .map(|row| {
            let group = match q.group_by {
                GroupBy::Day => Some(Day(row.i64(0)?).to_string()),
                _ => Some(row.text(0)?).filter(|g| !g.is_empty()),
            };
            Ok((group, row))
        })
        .collect()
}

fn row_of(rows: &mut BTreeMap<Option<String>, ReportRow>, group: Option<String>) -> &mut ReportRow {
    rows.entry(group.clone()).or_insert_with(|| ReportRow {
        group,
        ..ReportRow::default()
    })
}

/// The report: one row per group with any figure (per day of the range with
/// [`GroupBy::Day`]), ordered by group (`None` first). A reversed range has no rows.
pub fn report(tx: &mut dyn Tx, t: &Tables, q: &ReportQuery) -> Result<Vec<ReportRow>, StoreError> {
    let mut rows: BTreeMap<Option<String>, ReportRow> = BTreeMap::new();
    if q.to_day < q.from_day {
        return Ok(Vec::new());
    }
    if q.group_by == GroupBy::Day {
        for day in q.from_day.0..=q.to_day.0 {
            row_of(&mut rows, Some(Day(day).to_string()));
        }
    }

    for (group, row) in grouped(
        tx,
        t,
        q,
        "day",
        "agent",
        "",
        "SELECT {key}, CAST(SUM(closed) AS BIGINT), CAST(SUM(reopened) AS BIGINT),
            CAST(SUM(spam) AS BIGINT), CAST(SUM(transfers) AS BIGINT),
            CAST(SUM(rating_sum) AS BIGINT), CAST(SUM(ratings) AS BIGINT)
         FROM {p}counts WHERE {where} GROUP BY {key}",
    )? {
        let out = row_of(&mut rows, group);
        out.closed += row.i64(1)?;
        out.reopened += row.i64(2)?;
        out.spam += row.i64(3)?;
        out.transfers += row.i64(4)?;
        let (sum, ratings) = (row.i64(5)?, row.i64(6)?);
        out.ratings = ratings;
        out.rating_average = (ratings > 0).then(|| sum as f64 / ratings as f64);
    }

    for (group, row) in grouped(
        tx,
        t,
        q,
        "start_day",
        "agent",
        "",
        "SELECT {key}, CAST(COUNT(*) AS BIGINT) FROM {p}conversations
         WHERE {where} GROUP BY {key}",
    )? {
        row_of(&mut rows, group).new_conversations += row.i64(1)?;
    }

    let mut responses: BTreeMap<Option<String>, Vec<i64>> = BTreeMap::new();
    for (group, row) in grouped(
        tx,
        t,
        q,
        "response_day",
        "responder",
        "status <> 'spam'",
        "SELECT {key}, first_response_secs FROM {p}conversations WHERE {where}",
    )? {
        responses.entry(group).or_default().push(row.i64(1)?);
    }
    for (group, values) in responses {
        row_of(&mut rows, group).first_response = Durations::of(values);
    }

    let mut resolutions: BTreeMap<Option<String>, (Vec<i64>, i64)> = BTreeMap::new();
    for (group, row) in grouped(
        tx,
        t,
        q,
        "resolved_day",
        "agent",
        "status = 'closed'",
        "SELECT {key}, resolution_secs, messages FROM {p}conversations WHERE {where}",
    )? {
        let entry = resolutions.entry(group).or_default();
        entry.0.push(row.i64(1)?);
        entry.1 += row.i64(2)?;
    }
    for (group, (values, messages)) in resolutions {
        let out = row_of(&mut rows, group);
        out.messages_per_conversation = Some(messages as f64 / values.len() as f64);
        out.resolution = Durations::of(values);
    }

    Ok(rows.into_values().collect())
}

/// A social report's range and channel filter. Build it with [`SocialQuery::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialQuery {
    pub from_day: Day,
    pub to_day: Day,
    pub channel: Option<String>,
}

impl SocialQuery {
    /// A query over `from_day..=to_day`, both `YYYY-MM-DD`, at most [`MAX_REPORT_DAYS`] days.
    pub fn new(from_day: &str, to_day: &str) -> Result<Self, BadReportQuery> {
        let (from_day, to_day) = check_range(from_day, to_day)?;
        Ok(SocialQuery {
            from_day,
            to_day,
            channel: None,
        })
    }
}

/// Social tickets of one day and channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SocialRow {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `None` for social tickets without a channel.
    pub channel: Option<String>,
    pub new_tickets: i64,
    pub solved: i64,
}

/// New and solved social tickets per day and channel, for the days and channels with any;
/// ordered by day, then channel.
pub fn social_report(
    tx: &mut dyn Tx,
    t: &Tables,
    q: &SocialQuery,
) -> Result<Vec<SocialRow>, StoreError> {
    let mut params: Vec<Value> = vec![q.from_day.0.into(), q.to_day.0.into()];
    let mut sql = String::from(
        "SELECT day, channel, created, solved FROM {p}social
         WHERE day BETWEEN $1 AND $2 AND (created <> 0 OR solved <> 0)",
    );
    if let Some(channel) = &q.channel {
        params.push(channel.as_str().into());
        sql.push_str(" AND channel = $3");
    }
    sql.push_str(" ORDER BY day, channel");
    tx.query(&t.sql(&sql), &params)?
        .into_iter()
        .map(|row| {
            Ok(SocialRow {
                day: Day(row.i64(0)?).to_string(),
                channel: Some(row.text(1)?).filter(|c| !c.is_empty()),
                new_tickets: row.i64(2)?,
                solved: row.i64(3)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_stream_is_the_help_desks() {
        assert_eq!(RULES_STREAM, format!("helpdesk-{HELP_DESK_ID}"));
    }

    #[test]
    fn the_rules_change_with_the_events_the_seed_reads() {
        use parley_domain::DomainEvent;
        let changing: Vec<_> = HelpDeskEvent::event_types()
            .iter()
            .filter(|t| changes_rules(RULES_STREAM, t))
            .collect();
        assert_eq!(changing, [&"BusinessHoursSet", &"ReportRulesChanged"]);
        assert!(!changes_rules("helpdesk-other", "BusinessHoursSet"));
    }

    #[test]
    fn days_parse_and_print_as_iso_dates() {
        for (text, days) in [
            ("1970-01-01", 0),
            ("1969-12-31", -1),
            ("2000-02-29", 11_016),
            ("2026-05-28", 20_601),
            ("0000-03-01", -719_468),
        ] {
            let day = Day::parse(text).unwrap();
            assert_eq!(day.days_since_epoch(), days, "{text}");
            assert_eq!(day.to_string(), text);
        }
        for bad in [
            "2026-5-28",
            "2026-05-28T00:00",
            "26-05-28",
            "2026/05/28",
            "2026-13-01",
            "2026-00-10",
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-04-00",
            "+026-04-01",
            "２０２６-04-01",
            "",
        ] {
            assert_eq!(
                Day::parse(bad),
                Err(BadReportQuery::BadDay(bad.into())),
                "{bad}"
            );
        }
        // Every day from 0000-01-01 to 9999-12-31 (a sample of them) prints and parses back.
        for days in (-719_528..=2_932_896).step_by(7) {
            let day = Day(days);
            assert_eq!(Day::parse(&day.to_string()), Ok(day));
        }
    }

    #[test]
    fn ranges_are_checked() {
        assert!(ReportQuery::new("2026-05-28", "2026-05-28", GroupBy::Day).is_ok());
        assert_eq!(
            ReportQuery::new("2026-05-28", "2026-05-27", GroupBy::Day),
            Err(BadReportQuery::Reversed {
                from: Day(20_601),
                to: Day(20_600)
            })
        );
        assert_eq!(
            SocialQuery::new("2024-01-01", "2026-01-01"),
            Err(BadReportQuery::TooLong {
                days: 732,
                max: MAX_REPORT_DAYS
            })
        );
        assert!(SocialQuery::new("2024-01-01", "2025-12-31").is_ok());
    }

    #[test]
    fn medians_and_p90s_are_nearest_rank() {
        assert_eq!(Durations::of(vec![]), Durations::default());
        assert_eq!(
            Durations::of(vec![7]),
            Durations {
                count: 1,
                median_secs: Some(7),
                p90_secs: Some(7)
            }
        );
        assert_eq!(
            Durations::of(vec![20, 10]),
            Durations {
                count: 2,
                median_secs: Some(10),
                p90_secs: Some(20)
            }
        );
        let values: Vec<i64> = (1..=10).rev().collect();
        assert_eq!(
            Durations::of(values),
            Durations {
                count: 10,
                median_secs: Some(5),
                p90_secs: Some(9)
            }
        );
        let values: Vec<i64> = (1..=11).collect();
        assert_eq!(
            Durations::of(values),
            Durations {
                count: 11,
                median_secs: Some(6),
                p90_secs: Some(10)
            }
        );
    }
}
