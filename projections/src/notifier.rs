//! The social notifier: the messaging-support tickets an agent is told about. Two tabs, "assigned
//! to me" (the agent's tickets that are new or open) and "unassigned" (every status); two views,
//! "your social messaging tickets" (everything assigned to the agent) and "unassigned social
//! messaging tickets" (the unassigned tab); and an attention flag, raised while some unassigned
//! ticket is new. Only tickets carrying the `messaging_support` tag take part: removing the tag
//! takes a ticket out of every tab, view and count, adding it back brings it back. Newest
//! customer activity first, with a cursor.
//!
//! Every ticket has a row, social or not, so that a tag added later finds the ticket's state.
//! Each batch loads the tickets it touches once, applies their events in memory, then writes each
//! changed ticket's row and the change of every count. Counts per agent and for the unassigned
//! tab are maintained from these differences; no request ever counts rows. Events that change
//! nothing shown here (comments, descriptions, outbound replies, other tags...) are skipped unread.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::conversation::Channel;
use parley_domain::ticket::{
    MESSAGING_SUPPORT_TAG, TicketCreated, TicketEvent, TicketSource, TicketStatus, channel_tag,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use uuid::Uuid;

pub const NAME: &str = "notifier";

/// Tickets per page when the caller names no limit.
pub const PAGE_SIZE: usize = 20;
/// The largest page a caller may ask for.
pub const MAX_PAGE_SIZE: usize = 100;

/// The scope of the unassigned tab in the counts table.
const UNASSIGNED_SCOPE: &str = "*";

/// Count keys: per agent, its "assigned to me" tab and all its social tickets; for the
/// unassigned scope, the tab and its new tickets (the attention flag).
const ASSIGNED_TO_ME: &str = "assigned_to_me";
const YOURS: &str = "yours";
const UNASSIGNED: &str = "unassigned";
const UNASSIGNED_NEW: &str = "unassigned_new";

/// The channels whose name, as a tag, tells a social ticket's channel.
const SOCIAL_CHANNELS: [Channel; 5] = [
    Channel::Whatsapp,
    Channel::Line,
    Channel::Wechat,
    Channel::Facebook,
    Channel::Twitter,
];

const STATUSES: [TicketStatus; 5] = [
    TicketStatus::New,
    TicketStatus::Open,
    TicketStatus::Pending,
    TicketStatus::Solved,
    TicketStatus::Closed,
];

pub struct Notifier;

const TABLES: &[&str] = &["tickets", "counts"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}tickets (
        ticket_id TEXT PRIMARY KEY,
        social BIGINT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        active BIGINT NOT NULL,
        assignee TEXT,
        requester TEXT,
        info_channel TEXT,
        source_channel TEXT,
        channel_tags TEXT NOT NULL,
        replies BIGINT NOT NULL,
        created_at BIGINT NOT NULL,
        last_activity_at BIGINT NOT NULL
    )",
    "CREATE TABLE {p}counts (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        n BIGINT NOT NULL,
        PRIMARY KEY (scope, key)
    ){clustered}",
];

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] = &[
    // One partial index per kind of page, each read in order (no sort): tickets without the
    // tag cost no index upkeep. "Unassigned" has an index of its own because PostgreSQL does
    // not read an index in order under `assignee IS NULL`.
    "CREATE INDEX {p}tickets_assigned ON {p}tickets
        (assignee, last_activity_at DESC, ticket_id DESC)
        WHERE social = 1 AND assignee IS NOT NULL",
    "CREATE INDEX {p}tickets_active ON {p}tickets
        (assignee, last_activity_at DESC, ticket_id DESC)
        WHERE social = 1 AND active = 1 AND assignee IS NOT NULL",
    "CREATE INDEX {p}tickets_unassigned ON {p}tickets
        (last_activity_at DESC, ticket_id DESC)
        WHERE social = 1 AND assignee IS NULL",
];

impl Projection for Notifier {
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
        stream.starts_with("ticket-")
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
        for envelope in events {
            if let Event::Ticket(id, event) = &envelope.event
                && shown(event)
            {
                batch.apply(tx, id.0, event)?;
            }
        }
        batch.flush(tx)
    }
}

/// Whether `event` can change anything the notifier shows.
fn shown(event: &TicketEvent) -> bool {
    use TicketEvent as E;
    match event {
        E::TicketCreated(_)
        | E::TicketTitleChanged(_)
        | E::TicketStatusChanged(_)
        | E::TicketAssigned(_)
        | E::TicketUnassigned(_)
        | E::TicketChannelInfoSet(_)
        | E::CustomerMessageReceived(_) => true,
        E::TicketTagAdded(e) => tracked_tag(&e.tag),
        E::TicketTagRemoved(e) => tracked_tag(&e.tag),
        E::TicketDescriptionChanged(_)
        | E::TicketPriorityChanged(_)
        | E::TicketTypeChanged(_)
        | E::TicketFollowed(_)
        | E::TicketUnfollowed(_)
        | E::TicketCommented(_)
        | E::OutboundReplyRequested(_)
        | E::OutboundReplyDelivered(_)
        | E::OutboundReplyFailed(_)
        | E::OutboundReplyReceipt(_) => false,
    }
}

fn tracked_tag(tag: &str) -> bool {
    tag == MESSAGING_SUPPORT_TAG || channel_of_tag(tag).is_some()
}

/// The social channel a tag names, if it names one.
fn channel_of_tag(tag: &str) -> Option<&'static str> {
    SOCIAL_CHANNELS
        .into_iter()
        .map(channel_tag)
        .find(|name| *name == tag)
}

fn static_status(status: &str) -> Result<&'static str, StoreError> {
    STATUSES
        .into_iter()
        .map(TicketStatus::name)
        .find(|name| *name == status)
        .ok_or_else(|| StoreError::Corrupt(NAME, format!("unknown ticket status {status:?}")))
}

/// In the "assigned to me" tab while assigned: new or open.
fn is_active(status: &str) -> bool {
    status == TicketStatus::New.name() || status == TicketStatus::Open.name()
}

#[derive(Debug, Clone, PartialEq)]
struct Ticket {
    social: bool,
    title: String,
    status: &'static str,
    assignee: Option<String>,
    requester: Option<String>,
    /// From the ticket's channel info, the first choice for its channel.
    info_channel: Option<String>,
    /// From a social source.
    source_channel: Option<String>,
    /// Social channel tags present, in the order they were added.
    channel_tags: Vec<String>,
    /// Customer messages received after the one the ticket was created from.
    replies: i64,
    created_at: i64,
    /// The last customer message, or the creation time.
    last_activity_at: i64,
}

impl Ticket {
    fn created(e: &TicketCreated) -> Ticket {
        let mut channel_tags: Vec<String> = Vec::new();
        for tag in &e.tags {
            if channel_of_tag(tag).is_some() && !channel_tags.contains(tag) {
                channel_tags.push(tag.clone());
            }
        }
        Ticket {
            social: e.tags.iter().any(|t| t == MESSAGING_SUPPORT_TAG),
            title: e.title.clone(),
            status: TicketStatus::New.name(),
            assignee: None,
            requester: e.requester.map(|c| c.to_string()),
            info_channel: e.channel_info.as_ref().map(|i| i.channel.name().to_owned()),
            source_channel: match &e.source {
                TicketSource::Social { channel } => Some(channel.name().to_owned()),
                TicketSource::Api | TicketSource::Conversation { .. } => None,
            },
            channel_tags,
            replies: 0,
            created_at: e.at.0,
            last_activity_at: e.at.0,
        }
    }

    fn channel(&self) -> Option<String> {
        self.info_channel
            .clone()
            .or_else(|| self.source_channel.clone())
            .or_else(|| self.channel_tags.first().cloned())
    }
}

struct Slot {
    before: Option<Ticket>,
    ticket: Option<Ticket>,
}

struct Batch<'t> {
    tables: &'t Tables,
    slots: HashMap<Uuid, Slot>,
}

const TICKET_COLUMNS: &str = "social, title, status, assignee, requester, info_channel,
    source_channel, channel_tags, replies, created_at, last_activity_at";

impl Batch<'_> {
    fn slot(&mut self, tx: &mut dyn Tx, id: Uuid) -> Result<&mut Slot, StoreError> {
        if !self.slots.contains_key(&id) {
            let ticket = tx
                .query_opt(
                    &self.tables.sql(&format!(
                        "SELECT {TICKET_COLUMNS} FROM {{p}}tickets WHERE ticket_id = $1"
                    )),
                    &[id.into()],
                )?
                .map(|row| read_ticket(&row, 0))
                .transpose()?;
            self.slots.insert(
                id,
                Slot {
                    before: ticket.clone(),
                    ticket,
                },
            );
        }
        Ok(self.slots.get_mut(&id).expect("inserted above"))
    }

    fn apply(&mut self, tx: &mut dyn Tx, id: Uuid, event: &TicketEvent) -> Result<(), StoreError> {
        use TicketEvent as E;
        if let E::TicketCreated(e) = event {
            // A stream starts with its one creation, so the ticket has no row yet: nothing to
            // load (which keeps rebuilds to one statement per new ticket).
            self.slots
                .entry(id)
                .or_insert(Slot {
                    before: None,
                    ticket: None,
                })
                .ticket = Some(Ticket::created(e));
            return Ok(());
        }
        let slot = self.slot(tx, id)?;
        let Some(ticket) = slot.ticket.as_mut() else {
            // Events of a ticket whose creation this read model never saw: nothing to show.
            return Ok(());
        };
        match event {
            E::TicketTitleChanged(e) => ticket.title = e.title.clone(),
            E::TicketStatusChanged(e) => ticket.status = e.to.name(),
            E::TicketAssigned(e) => ticket.assignee = Some(e.agent.to_string()),
            E::TicketUnassigned(_) => ticket.assignee = None,
            E::TicketChannelInfoSet(e) => {
                ticket.info_channel = e.channel_info.as_ref().map(|i| i.channel.name().to_owned());
            }
            E::CustomerMessageReceived(e) => {
                ticket.replies += 1;
                // Late deliveries of older messages never move the ticket back.
                ticket.last_activity_at = ticket.last_activity_at.max(e.at.0);
            }
            E::TicketTagAdded(e) => {
                if e.tag == MESSAGING_SUPPORT_TAG {
                    ticket.social = true;
                } else if !ticket.channel_tags.contains(&e.tag) {
                    ticket.channel_tags.push(e.tag.clone());
                }
            }
            E::TicketTagRemoved(e) => {
                if e.tag == MESSAGING_SUPPORT_TAG {
                    ticket.social = false;
                } else {
                    ticket.channel_tags.retain(|t| *t != e.tag);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flush(self, tx: &mut dyn Tx) -> Result<(), StoreError> {
        let t = self.tables;
        let mut deltas: HashMap<(String, &'static str), i64> = HashMap::new();
        let upsert = t.sql(
            "INSERT INTO {p}tickets (ticket_id, social, title, status, active, assignee, requester,
                info_channel, source_channel, channel_tags, replies, created_at, last_activity_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (ticket_id) DO UPDATE SET social = excluded.social,
                title = excluded.title, status = excluded.status, active = excluded.active,
                assignee = excluded.assignee, requester = excluded.requester,
                info_channel = excluded.info_channel, channel_tags = excluded.channel_tags,
                replies = excluded.replies, last_activity_at = excluded.last_activity_at",
        );
        for (id, slot) in self.slots {
            let Some(ticket) = &slot.ticket else { continue };
            if let Some(old) = &slot.before {
                if old == ticket {
                    continue;
                }
                contributions(old, |scope, key| {
                    *deltas.entry((scope.to_owned(), key)).or_default() -= 1;
                });
            }
            contributions(ticket, |scope, key| {
                *deltas.entry((scope.to_owned(), key)).or_default() += 1;
            });
            tx.execute(
                &upsert,
                &[
                    id.into(),
                    ticket.social.into(),
                    ticket.title.as_str().into(),
                    ticket.status.into(),
                    is_active(ticket.status).into(),
                    ticket.assignee.clone().into(),
                    ticket.requester.clone().into(),
                    ticket.info_channel.clone().into(),
                    ticket.source_channel.clone().into(),
                    ticket.channel_tags.join(" ").into(),
                    ticket.replies.into(),
                    ticket.created_at.into(),
                    ticket.last_activity_at.into(),
                ],
            )?;
        }
        crate::runner::add_counts(tx, t, deltas)
    }
}

/// Reads the columns of [`TICKET_COLUMNS`], in that order, from column `at` on.
fn read_ticket(row: &Row, at: usize) -> Result<Ticket, StoreError> {
    Ok(Ticket {
        social: row.bool(at)?,
        title: row.text(at + 1)?,
        status: static_status(&row.text(at + 2)?)?,
        assignee: row.opt_text(at + 3)?,
        requester: row.opt_text(at + 4)?,
        info_channel: row.opt_text(at + 5)?,
        source_channel: row.opt_text(at + 6)?,
        channel_tags: row
            .text(at + 7)?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        replies: row.i64(at + 8)?,
        created_at: row.i64(at + 9)?,
        last_activity_at: row.i64(at + 10)?,
    })
}

/// The counters a ticket adds one to, as `(scope, key)`: none unless it carries the tag.
fn contributions(ticket: &Ticket, mut count: impl FnMut(&str, &'static str)) {
    if !ticket.social {
        return;
    }
    match &ticket.assignee {
        Some(agent) => {
            count(agent, YOURS);
            if is_active(ticket.status) {
                count(agent, ASSIGNED_TO_ME);
            }
        }
        None => {
            count(UNASSIGNED_SCOPE, UNASSIGNED);
            if ticket.status == TicketStatus::New.name() {
                count(UNASSIGNED_SCOPE, UNASSIGNED_NEW);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// What the customer last did, for the line under a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum CustomerStatus {
    /// The only customer message is the one the ticket was created from.
    #[serde(rename = "started")]
    StartedNewChat,
    /// The customer wrote again after the ticket was created.
    #[serde(rename = "replied")]
    Replied,
}

impl CustomerStatus {
    /// Stable name for the API: `started` or `replied`.
    pub fn name(self) -> &'static str {
        match self {
            CustomerStatus::StartedNewChat => "started",
            CustomerStatus::Replied => "replied",
        }
    }

    /// The line shown under the customer's name.
    pub fn text(self) -> &'static str {
        match self {
            CustomerStatus::StartedNewChat => "started a new chat",
            CustomerStatus::Replied => "replied to the conversation",
        }
    }
}

/// One ticket of a notifier page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct NotifierItem {
    pub ticket_id: String,
    pub title: String,
    /// `new`, `open`, `pending`, `solved` or `closed`.
    pub status: String,
    pub assignee: Option<String>,
    pub requester: Option<String>,
    /// From the channel info, else the social source, else a channel tag.
    pub channel: Option<String>,
    pub customer_status: CustomerStatus,
    /// The customer's last message (or the ticket's creation), in microseconds.
    pub last_activity_at: i64,
}

/// A page of tickets, newest customer activity first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = NotifierPage)]
pub struct Page {
    pub items: Vec<NotifierItem>,
    /// Pass back (through [`parse_cursor`]) for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page starts: after this ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_activity_at: i64,
    pub ticket_id: String,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.last_activity_at, self.ticket_id)
    }
}

/// A malformed cursor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cursor {0:?} is not one this notifier returned")]
pub struct BadCursor(pub String);

/// Decodes a page's `next_cursor`: `"<last_activity_at>.<ticket_id>"`.
pub fn parse_cursor(cursor: &str) -> Result<Cursor, BadCursor> {
    let bad = || BadCursor(cursor.to_owned());
    let (at, id) = cursor.split_once('.').ok_or_else(bad)?;
    let last_activity_at = at.parse::<i64>().map_err(|_| bad())?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    Ok(Cursor {
        last_activity_at,
        ticket_id: id.to_string(),
    })
}

/// The tab "assigned to me": `agent`'s social tickets that are new or open.
pub fn assigned_to_me(
    tx: &mut dyn Tx,
    t: &Tables,
    agent: &str,
    cursor: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<Page, StoreError> {
    page(
        tx,
        t,
        "active = 1 AND assignee = $1",
        vec![agent.into()],
        cursor,
        limit,
    )
}

/// The tab "unassigned", also the view "unassigned social messaging tickets": social tickets
/// assigned to nobody, whatever their status.
pub fn unassigned(
    tx: &mut dyn Tx,
    t: &Tables,
    cursor: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<Page, StoreError> {
    page(tx, t, "assignee IS NULL", Vec::new(), cursor, limit)
}

/// The view "your social messaging tickets": every social ticket assigned to `agent`, whatever
/// its status.
pub fn your_tickets(
    tx: &mut dyn Tx,
    t: &Tables,
    agent: &str,
    cursor: Option<&Cursor>,
    limit: Option<usize>,
) -> Result<Page, StoreError> {
    page(tx, t, "assignee = $1", vec![agent.into()], cursor, limit)
}

/// One page of social tickets matching `filter`; `limit` defaults to [`PAGE_SIZE`] and is
/// clamped to 1..=[`MAX_PAGE_SIZE`].
fn page<'a>(
    tx: &mut dyn Tx,
    t: &Tables,
    filter: &str,
    mut params: Vec<Value<'a>>,
    cursor: Option<&'a Cursor>,
    limit: Option<usize>,
) -> Result<Page, StoreError> {
    let limit = limit.unwrap_or(PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
    let mut after = String::new();
    if let Some(cursor) = cursor {
        params.push(cursor.last_activity_at.into());
        params.push(cursor.ticket_id.as_str().into());
        let (a, i) = (params.len() - 1, params.len());
        // The first bound lets PostgreSQL start the index scan at the cursor.
        after = format!(
            " AND last_activity_at <= ${a}
              AND (last_activity_at < ${a} OR (last_activity_at = ${a} AND ticket_id < ${i}))"
        );
    }
    let sql = format!(
        "SELECT ticket_id, {TICKET_COLUMNS} FROM {{p}}tickets
         WHERE social = 1 AND {filter}{after}
         ORDER BY last_activity_at DESC, ticket_id DESC
         LIMIT {}",
        limit + 1
    );
    let rows = tx.query(&t.sql(&sql), &params)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let ticket_id = row.text(0)?;
        let ticket = read_ticket(&row, 1)?;
        items.push(NotifierItem {
            ticket_id,
            channel: ticket.channel(),
            customer_status: if ticket.replies > 0 {
                CustomerStatus::Replied
            } else {
                CustomerStatus::StartedNewChat
            },
            title: ticket.title,
            status: ticket.status.to_owned(),
            assignee: ticket.assignee,
            requester: ticket.requester,
            last_activity_at: ticket.last_activity_at,
        });
    }
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| {
            Cursor {
                last_activity_at: last.last_activity_at,
                ticket_id: last.ticket_id.clone(),
            }
            .to_string()
        })
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// The notifier's badge numbers for one agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[schema(as = NotifierSummary)]
pub struct Summary {
    /// The "assigned to me" tab: new or open social tickets assigned to the agent.
    pub assigned_to_me: i64,
    /// The "unassigned" tab.
    pub unassigned: i64,
    /// "Your social messaging tickets": every social ticket assigned to the agent.
    pub your_tickets: i64,
    /// The red dot: some unassigned social ticket is new.
    pub attention: bool,
}

/// The maintained counts for `agent`, read in one statement.
pub fn summary(tx: &mut dyn Tx, t: &Tables, agent: &str) -> Result<Summary, StoreError> {
    let mut out = Summary::default();
    for row in tx.query(
        &t.sql("SELECT scope, key, n FROM {p}counts WHERE scope = $1 OR scope = $2"),
        &[agent.into(), UNASSIGNED_SCOPE.into()],
    )? {
        let (scope, key, n) = (row.text(0)?, row.text(1)?, row.i64(2)?);
        match (scope == UNASSIGNED_SCOPE, key.as_str()) {
            (false, ASSIGNED_TO_ME) => out.assigned_to_me = n,
            (false, YOURS) => out.your_tickets = n,
            (true, UNASSIGNED) => out.unassigned = n,
            (true, UNASSIGNED_NEW) => out.attention = n > 0,
            _ => {}
        }
    }
    Ok(out)
}

/// The counts recomputed by scanning, for tests that check the maintained ones.
pub fn counts_by_scanning(
    tx: &mut dyn Tx,
    t: &Tables,
) -> Result<BTreeMap<(String, String), i64>, StoreError> {
    let mut out = BTreeMap::new();
    for row in tx.query(
        &t.sql(&format!("SELECT {TICKET_COLUMNS} FROM {{p}}tickets")),
        &[],
    )? {
        contributions(&read_ticket(&row, 0)?, |scope, key| {
            *out.entry((scope.to_owned(), key.to_owned())).or_default() += 1;
        });
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
