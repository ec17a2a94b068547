//! Customers: every conversation and ticket of a customer across channels (after a merge, the
//! merged customers' too), and customers found by a channel identity (a social phone number,
//! a LINE id, an e-mail address...).
//!
//! A merged customer keeps its own rows and points at its survivor; history and lookups follow
//! those pointers when asked, so an unmerge is one column set back to NULL.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::conversation::{Channel, ConversationEvent, ConversationKind, Visibility};
use parley_domain::customer::{ChannelIdentity, CustomerEvent};
use parley_domain::ticket::TicketEvent;
use serde::Serialize;
use std::collections::HashMap;

pub const NAME: &str = "customers";

pub struct Customers;

const TABLES: &[&str] = &["customers", "identities", "items"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}customers (
        customer_id TEXT PRIMARY KEY,
        name TEXT,
        email TEXT,
        merged_into TEXT,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE {p}identities (
        channel TEXT NOT NULL,
        value TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        PRIMARY KEY (channel, value)
    ){clustered}",
    "CREATE TABLE {p}items (
        customer_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        item_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at BIGINT NOT NULL,
        last_activity_at BIGINT NOT NULL,
        PRIMARY KEY (customer_id, kind, item_id)
    ){clustered}",
    "CREATE INDEX {p}items_item ON {p}items (item_id)",
];

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] = &[
    "CREATE INDEX {p}customers_merged ON {p}customers (merged_into)",
    "CREATE INDEX {p}identities_customer ON {p}identities (customer_id)",
    "CREATE INDEX {p}items_activity ON {p}items (customer_id, last_activity_at DESC)",
];

impl Projection for Customers {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i64 {
        // 2: internal notes no longer count as an item's activity.
        // 3: a change of details that leaves out the name or the e-mail address clears it.
        3
    }
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }
    fn schema(&self, _dialect: Dialect) -> Vec<&'static str> {
        SCHEMA.to_vec()
    }
    fn wants(&self, stream: &str, event_type: &str) -> bool {
        if stream.starts_with("customer-") {
            return true;
        }
        matches!(
            event_type,
            "ConversationStarted"
                | "MessageSent"
                | "ConversationClosed"
                | "ConversationReopened"
                | "ConversationMarkedSpam"
                | "ConversationRenamed"
                | "TicketCreated"
                | "TicketStatusChanged"
                | "TicketTitleChanged"
                | "CustomerMessageReceived"
                | "TicketCommented"
        )
    }
    fn query_indexes(&self, _dialect: Dialect) -> Vec<&'static str> {
        QUERY_INDEXES.to_vec()
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        // Changes to existing items, merged per item and written once.
        let mut changes: HashMap<String, Change> = HashMap::new();
        let new_item = t.sql(
            "INSERT INTO {p}items (customer_id, kind, item_id, channel, title, status,
                started_at, last_activity_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (customer_id, kind, item_id) DO NOTHING",
        );
        for envelope in events {
            match &envelope.event {
                Event::Customer(id, event) => customer(tx, t, &id.to_string(), event)?,
                Event::Conversation(id, event) => {
                    let id = id.to_string();
                    match event {
                        ConversationEvent::ConversationStarted(e)
                            if e.kind == ConversationKind::Customer =>
                        {
                            for c in &e.customers {
                                tx.execute(
                                    &new_item,
                                    &[
                                        c.to_string().into(),
                                        "conversation".into(),
                                        id.as_str().into(),
                                        e.channel.name().into(),
                                        e.subject.as_str().into(),
                                        "open".into(),
                                        e.at.0.into(),
                                    ],
                                )?;
                            }
                        }
                        // Internal notes are not activity a customer could see.
                        ConversationEvent::MessageSent(e) if e.visibility == Visibility::Public => {
                            changes.entry(id).or_default().activity = Some(e.at.0)
                        }
                        ConversationEvent::ConversationClosed(e) => {
                            changes.entry(id).or_default().set("closed", e.at.0)
                        }
                        ConversationEvent::ConversationReopened(e) => {
                            changes.entry(id).or_default().set("open", e.at.0)
                        }
                        ConversationEvent::ConversationMarkedSpam(e) => {
                            changes.entry(id).or_default().set("spam", e.at.0)
                        }
                        ConversationEvent::ConversationRenamed(e) => {
                            changes.entry(id).or_default().title = Some(e.subject.clone())
                        }
                        _ => {}
                    }
                }
                Event::Ticket(id, event) => {
                    let id = id.to_string();
                    match event {
                        TicketEvent::TicketCreated(e) => {
                            if let Some(requester) = e.requester {
                                let channel = match (&e.channel_info, &e.source) {
                                    (Some(info), _) => info.channel,
                                    (
                                        None,
                                        parley_domain::ticket::TicketSource::Social { channel },
                                    ) => *channel,
                                    _ => Channel::Api,
                                };
                                tx.execute(
                                    &new_item,
                                    &[
                                        requester.to_string().into(),
                                        "ticket".into(),
                                        id.as_str().into(),
                                        channel.name().into(),
                                        e.title.as_str().into(),
                                        "new".into(),
                                        e.at.0.into(),
                                    ],
                                )?;
                            }
                        }
                        TicketEvent::TicketStatusChanged(e) => {
                            changes.entry(id).or_default().set(e.to.name(), e.at.0)
                        }
                        TicketEvent::TicketTitleChanged(e) => {
                            changes.entry(id).or_default().title = Some(e.title.clone())
                        }
                        TicketEvent::CustomerMessageReceived(e) => {
                            changes.entry(id).or_default().activity = Some(e.at.0)
                        }
                        TicketEvent::TicketCommented(e) => {
                            changes.entry(id).or_default().activity = Some(e.at.0)
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        let update = t.sql(
            "UPDATE {p}items SET status = COALESCE($2, status), title = COALESCE($3, title),
                last_activity_at = COALESCE($4, last_activity_at) WHERE item_id = $1",
        );
        for (item, change) in changes {
            tx.execute(
                &update,
                &[
                    item.into(),
                    change.status.map(str::to_owned).into(),
                    change.title.into(),
                    change.activity.into(),
                ],
            )?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Change {
    status: Option<&'static str>,
    title: Option<String>,
    activity: Option<i64>,
}

impl Change {
    fn set(&mut self, status: &'static str, at: i64) {
        self.status = Some(status);
        self.activity = Some(at);
    }
}

fn identity_params(identity: &ChannelIdentity) -> [Value<'_>; 2] {
    let identity = identity.normalized();
    [identity.channel.name().into(), identity.value.into()]
}

fn customer(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
    event: &CustomerEvent,
) -> Result<(), StoreError> {
    let add_identity = |tx: &mut dyn Tx, identity: &ChannelIdentity| {
        let [channel, value] = identity_params(identity);
        tx.execute(
            &t.sql(
                "INSERT INTO {p}identities (channel, value, customer_id) VALUES ($1, $2, $3)
                 ON CONFLICT (channel, value) DO NOTHING",
            ),
            &[channel, value, id.into()],
        )
    };
    match event {
        CustomerEvent::CustomerCreated(e) => {
            tx.execute(
                &t.sql(
                    "INSERT INTO {p}customers (customer_id, name, email, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (customer_id) DO NOTHING",
                ),
                &[
                    id.into(),
                    e.name.clone().into(),
                    e.email.clone().into(),
                    e.at.0.into(),
                ],
            )?;
            add_identity(tx, &e.identity)?;
        }
        CustomerEvent::CustomerIdentityAdded(e) => {
            add_identity(tx, &e.identity)?;
        }
        // The event holds the details as they now are: a name or address left out was cleared.
        CustomerEvent::CustomerDetailsChanged(e) => {
            tx.execute(
                &t.sql("UPDATE {p}customers SET name = $2, email = $3 WHERE customer_id = $1"),
                &[id.into(), e.name.clone().into(), e.email.clone().into()],
            )?;
        }
        CustomerEvent::CustomerMergedInto(e) => {
            tx.execute(
                &t.sql("UPDATE {p}customers SET merged_into = $2 WHERE customer_id = $1"),
                &[id.into(), e.survivor.to_string().into()],
            )?;
        }
        CustomerEvent::CustomerUnmerged(_) => {
            tx.execute(
                &t.sql("UPDATE {p}customers SET merged_into = NULL WHERE customer_id = $1"),
                &[id.into()],
            )?;
        }
        // The survivor's side of a merge: the merged customer's own event says it all.
        CustomerEvent::CustomerAbsorbed(_) | CustomerEvent::CustomerReleased(_) => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Most history items returned at once.
pub const MAX_HISTORY: usize = 500;

/// Longest chain of merges followed (a merge into a customer that was itself merged).
const MAX_MERGE_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CustomerView {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The customer this one was merged into, if any.
    pub merged_into: Option<String>,
    pub identities: Vec<IdentityView>,
    /// Customers merged into this one (directly or through others).
    pub merged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub channel: String,
    pub value: String,
}

/// The customer a merged customer now stands for (itself if not merged).
pub fn survivor(tx: &mut dyn Tx, t: &Tables, id: &str) -> Result<Option<String>, StoreError> {
    let mut current = id.to_owned();
    for _ in 0..MAX_MERGE_DEPTH {
        let Some(row) = tx.query_opt(
            &t.sql("SELECT merged_into FROM {p}customers WHERE customer_id = $1"),
            &[current.as_str().into()],
        )?
        else {
            return Ok(None);
        };
        match row.opt_text(0)? {
            Some(next) => current = next,
            None => return Ok(Some(current)),
        }
    }
    Ok(Some(current))
}

/// `id` and every customer merged into it, directly or through others.
pub fn merged_set(tx: &mut dyn Tx, t: &Tables, id: &str) -> Result<Vec<String>, StoreError> {
    let mut all = vec![id.to_owned()];
    let mut frontier = vec![id.to_owned()];
    for _ in 0..MAX_MERGE_DEPTH {
        let mut next = Vec::new();
        for c in &frontier {
            for row in tx.query(
                &t.sql("SELECT customer_id FROM {p}customers WHERE merged_into = $1"),
                &[c.as_str().into()],
            )? {
                let merged = row.text(0)?;
                if !all.contains(&merged) {
                    all.push(merged.clone());
                    next.push(merged);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        frontier = next;
    }
    Ok(all)
}

/// One customer with its identities (its merged customers' included).
pub fn customer_view(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
) -> Result<Option<CustomerView>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql("SELECT name, email, merged_into FROM {p}customers WHERE customer_id = $1"),
        &[id.into()],
    )?
    else {
        return Ok(None);
    };
    let set = merged_set(tx, t, id)?;
    let mut identities = Vec::new();
    for c in &set {
        for r in tx.query(
            &t.sql("SELECT channel, value FROM {p}identities WHERE customer_id = $1 ORDER BY channel, value"),
            &[c.as_str().into()],
        )? {
            identities.push(IdentityView {
                channel: r.text(0)?,
                value: r.text(1)?,
            });
        }
    }
    Ok(Some(CustomerView {
        customer_id: id.to_owned(),
        name: row.opt_text(0)?,
        email: row.opt_text(1)?,
        merged_into: row.opt_text(2)?,
        identities,
        merged: set.into_iter().skip(1).collect(),
    }))
}

/// The customer a channel identity belongs to now (following merges); the identity is
/// normalised as the domain does (lower-case e-mail, phone numbers without punctuation).
pub fn find_by_identity(
    tx: &mut dyn Tx,
    t: &Tables,
    identity: &ChannelIdentity,
) -> Result<Option<String>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql("SELECT customer_id FROM {p}identities WHERE channel = $1 AND value = $2"),
        &identity_params(identity),
    )?
    else {
        return Ok(None);
    };
    survivor(tx, t, &row.text(0)?)
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// `conversation` or `ticket`.
    pub kind: String,
    pub id: String,
    /// The customer it belongs to (a merged customer's items show their own id).
    pub customer_id: String,
    pub channel: String,
    pub title: String,
    pub status: String,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// Microseconds since the Unix epoch.
    pub last_activity_at: i64,
}

/// Which of a customer's conversations and tickets to list, and how many.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Only items with activity at or after this time (microseconds since the epoch).
    pub from: Option<i64>,
    /// Only items started before this time (microseconds since the epoch).
    pub to: Option<i64>,
    /// Only items after this one in the history's order, `(last_activity_at, id)`: where the
    /// previous page ended.
    pub after: Option<(i64, String)>,
    /// Conversations only (no tickets).
    pub conversations_only: bool,
    /// The customer's own items only, not those of customers merged into it.
    pub own_only: bool,
    /// At most this many (clamped to 1..=[`MAX_HISTORY`] + 1: a page of the most items, and
    /// one more to tell whether another page follows).
    pub limit: usize,
}

/// The conversations and tickets of `id` (and, unless `own_only`, of the customers merged into
/// it) that `query` names, newest activity first, ties by id descending: each customer's items
/// are one range of its activity index, from the cursor on.
pub fn history(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
    query: &HistoryQuery,
) -> Result<Vec<HistoryItem>, StoreError> {
    let limit = query.limit.clamp(1, MAX_HISTORY + 1);
    let mut sql = String::from(
        "SELECT kind, item_id, channel, title, status, started_at, last_activity_at
         FROM {p}items WHERE customer_id = $1
         AND last_activity_at >= $2 AND started_at < $3",
    );
    if query.after.is_some() {
        // The first term lets the index seek to the cursor.
        sql.push_str(" AND last_activity_at <= $5 AND (last_activity_at < $5 OR item_id < $6)");
    }
    if query.conversations_only {
        sql.push_str(" AND kind = 'conversation'");
    }
    sql.push_str(" ORDER BY last_activity_at DESC, item_id DESC LIMIT $4");
    let sql = t.sql(&sql);
    let customers = if query.own_only {
        vec![id.to_owned()]
    } else {
        merged_set(tx, t, id)?
    };
    let mut items = Vec::new();
    for c in customers {
        let mut params: Vec<Value> = vec![
            c.as_str().into(),
            query.from.unwrap_or(i64::MIN).into(),
            query.to.unwrap_or(i64::MAX).into(),
            (limit as i64).into(),
        ];
        if let Some((at, item)) = &query.after {
            params.push((*at).into());
            params.push(item.as_str().into());
        }
        for r in tx.query(&sql, &params)? {
            items.push(history_item(&r, c.clone())?);
        }
    }
    sort_history(&mut items);
    items.truncate(limit);
    Ok(items)
}

/// The conversations among `ids` that belong to one of `customers` (a customer and those merged
/// into it: [`merged_set`]), in the history's order.
pub fn history_conversations(
    tx: &mut dyn Tx,
    t: &Tables,
    customers: &[String],
    ids: &[String],
) -> Result<Vec<HistoryItem>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // One statement for all of them (a round trip each would add up on PostgreSQL).
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
    let sql = t.sql(&format!(
        "SELECT kind, item_id, channel, title, status, started_at, last_activity_at, customer_id
         FROM {{p}}items WHERE item_id IN ({}) AND kind = 'conversation'",
        placeholders.join(", ")
    ));
    let params: Vec<Value> = ids.iter().map(|item| item.as_str().into()).collect();
    let mut items = Vec::new();
    for r in tx.query(&sql, &params)? {
        let customer_id = r.text(7)?;
        if customers.contains(&customer_id) {
            items.push(history_item(&r, customer_id)?);
        }
    }
    sort_history(&mut items);
    Ok(items)
}

/// A history item of `customer_id` from a row of `kind, item_id, channel, title, status,
/// started_at, last_activity_at`.
fn history_item(r: &Row, customer_id: String) -> Result<HistoryItem, StoreError> {
    Ok(HistoryItem {
        kind: r.text(0)?,
        id: r.text(1)?,
        customer_id,
        channel: r.text(2)?,
        title: r.text(3)?,
        status: r.text(4)?,
        started_at: r.i64(5)?,
        last_activity_at: r.i64(6)?,
    })
}

/// Newest activity first, ties by id descending.
fn sort_history(items: &mut [HistoryItem]) {
    items.sort_by(|a, b| {
        b.last_activity_at
            .cmp(&a.last_activity_at)
            .then_with(|| b.id.cmp(&a.id))
    });
}
