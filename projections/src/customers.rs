//! Customers: every conversation and ticket of a customer across channels (after a merge, the
//! merged customers' too), customers found by a channel identity (a social phone number,
//! a LINE id, an e-mail address...; per channel account, when met through one), what each
//! channel account's platform told about them, and customers found by the beginning of a name,
//! an address or a handle.
//!
//! A merged customer keeps its own rows and points at its survivor; history and lookups follow
//! those pointers when asked, so an unmerge is one column set back to NULL. Search terms are
//! the exception: they are kept under the survivor alone (see [`search`]), rewritten from the
//! rows at the end of each batch for every customer it touched.

use crate::feed::{Envelope, Event};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, Row, StoreError, Tx, Value};
use parley_domain::conversation::{Channel, ConversationEvent, ConversationKind, Visibility};
use parley_domain::customer::{ChannelIdentity, CustomerEvent};
use parley_domain::ticket::TicketEvent;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

pub const NAME: &str = "customers";

pub struct Customers;

const TABLES: &[&str] = &["customers", "identities", "items", "social", "terms"];

const SCHEMA: &[&str] = &[
    "CREATE TABLE {p}customers (
        customer_id TEXT PRIMARY KEY,
        name TEXT,
        email TEXT,
        merged_into TEXT,
        created_at BIGINT NOT NULL
    )",
    // `account` is '' for identities met without a channel account.
    "CREATE TABLE {p}identities (
        channel TEXT NOT NULL,
        value TEXT NOT NULL,
        account TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        PRIMARY KEY (channel, value, account)
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
    // Rewriting a customer's search terms follows merges and reads identities: `apply` uses
    // these two.
    "CREATE INDEX {p}customers_merged ON {p}customers (merged_into)",
    "CREATE INDEX {p}identities_customer ON {p}identities (customer_id)",
    "CREATE TABLE {p}social (
        customer_id TEXT NOT NULL,
        account TEXT NOT NULL,
        channel TEXT NOT NULL,
        user_id TEXT NOT NULL,
        name TEXT,
        phone TEXT,
        username TEXT,
        locale TEXT,
        at BIGINT NOT NULL,
        PRIMARY KEY (customer_id, account)
    ){clustered}",
];

/// What a customer is found by ([`search`]): lower-case terms under the customer that answers
/// for them (a survivor, never a merged customer). A prefix is one range of the primary key,
/// so terms must sort by code point: SQLite's default (binary) order does, PostgreSQL's
/// database collation may not, hence `COLLATE "C"` there.
const TERMS_SQLITE: &str = "CREATE TABLE {p}terms (
        term TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        PRIMARY KEY (term, customer_id)
    ){clustered}";
const TERMS_POSTGRES: &str = "CREATE TABLE {p}terms (
        term TEXT COLLATE \"C\" NOT NULL,
        customer_id TEXT NOT NULL,
        PRIMARY KEY (term, customer_id)
    )";
/// Rewriting a customer's terms reads them by customer; a search asks whether a customer has a
/// smaller matching term than the row it is at.
const TERMS_CUSTOMER: &str = "CREATE INDEX {p}terms_customer ON {p}terms (customer_id, term)";

/// Indexes only queries use (built once a rebuild has filled the tables).
const QUERY_INDEXES: &[&str] =
    &["CREATE INDEX {p}items_activity ON {p}items (customer_id, last_activity_at DESC)"];

impl Projection for Customers {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i64 {
        // 2: internal notes no longer count as an item's activity.
        // 3: a change of details that leaves out the name or the e-mail address clears it.
        // 4: identities per channel account, social profiles, search terms.
        4
    }
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }
    fn schema(&self, dialect: Dialect) -> Vec<&'static str> {
        let mut schema = SCHEMA.to_vec();
        schema.push(match dialect {
            Dialect::Sqlite => TERMS_SQLITE,
            Dialect::Postgres => TERMS_POSTGRES,
        });
        schema.push(TERMS_CUSTOMER);
        schema
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
        // Customers whose search terms may have changed, rewritten once at the end.
        let mut retermed: BTreeSet<String> = BTreeSet::new();
        let new_item = t.sql(
            "INSERT INTO {p}items (customer_id, kind, item_id, channel, title, status,
                started_at, last_activity_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (customer_id, kind, item_id) DO NOTHING",
        );
        for envelope in events {
            match &envelope.event {
                Event::Customer(id, event) => {
                    customer(tx, t, &id.to_string(), event, &mut retermed)?
                }
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
        rewrite_terms(tx, t, &retermed)
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

/// An identity's key columns: channel, value and account ('' for none), normalised.
fn identity_params(identity: &ChannelIdentity) -> [Value<'_>; 3] {
    let identity = identity.normalized();
    [
        identity.channel.name().into(),
        identity.value.into(),
        identity.account.unwrap_or_default().into(),
    ]
}

fn customer(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
    event: &CustomerEvent,
    retermed: &mut BTreeSet<String>,
) -> Result<(), StoreError> {
    let add_identity = |tx: &mut dyn Tx, identity: &ChannelIdentity| {
        let [channel, value, account] = identity_params(identity);
        tx.execute(
            &t.sql(
                "INSERT INTO {p}identities (channel, value, account, customer_id)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (channel, value, account) DO NOTHING",
            ),
            &[channel, value, account, id.into()],
        )
    };
    // The survivor's side of a merge changes nothing here (the merged customer's own event
    // does).
    if !matches!(
        event,
        CustomerEvent::CustomerAbsorbed(_) | CustomerEvent::CustomerReleased(_)
    ) {
        retermed.insert(id.to_owned());
    }
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
            retermed.insert(e.survivor.to_string());
            tx.execute(
                &t.sql("UPDATE {p}customers SET merged_into = $2 WHERE customer_id = $1"),
                &[id.into(), e.survivor.to_string().into()],
            )?;
        }
        CustomerEvent::CustomerUnmerged(e) => {
            retermed.insert(e.survivor.to_string());
            tx.execute(
                &t.sql("UPDATE {p}customers SET merged_into = NULL WHERE customer_id = $1"),
                &[id.into()],
            )?;
        }
        // The survivor's side of a merge: the merged customer's own event says it all.
        CustomerEvent::CustomerAbsorbed(_) | CustomerEvent::CustomerReleased(_) => {}
        // The latest profile of each account replaces the one before.
        CustomerEvent::CustomerSocialProfileRecorded(e) => {
            let profile = &e.profile;
            let text = |text: &Option<String>| text.as_deref().map(storable).into();
            tx.execute(
                &t.sql(
                    "INSERT INTO {p}social (customer_id, account, channel, user_id, name, phone,
                        username, locale, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     ON CONFLICT (customer_id, account) DO UPDATE SET channel = excluded.channel,
                        user_id = excluded.user_id, name = excluded.name, phone = excluded.phone,
                        username = excluded.username, locale = excluded.locale, at = excluded.at",
                ),
                &[
                    id.into(),
                    storable(&e.account).into(),
                    e.channel.name().into(),
                    storable(&profile.user_id).into(),
                    text(&profile.name),
                    text(&profile.phone),
                    text(&profile.username),
                    text(&profile.locale),
                    e.at.0.into(),
                ],
            )?;
        }
    }
    Ok(())
}

/// A platform's text as stored: without NUL characters, which PostgreSQL's text cannot hold
/// (the platforms' profiles are not checked by the domain, and a read model that cannot store
/// an event stops), the same on both backends.
fn storable(text: &str) -> String {
    text.replace('\0', "")
}

// ---------------------------------------------------------------------------------------------
// Search terms.

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;

/// Longest term kept, in characters: terms are cut there (a B-tree entry has a size limit).
/// A query of [`MAX_QUERY_CHARS`] is at most twice as long in lower case, so a cut term
/// still starts with every query that its whole text starts with.
const MAX_TERM_CHARS: usize = 2 * MAX_QUERY_CHARS;

/// What phone numbers are written with besides digits, left out of a number's compact term.
const PHONE_PUNCTUATION: [char; 6] = [' ', '-', '+', '.', '(', ')'];

/// `text` as terms and queries are compared: lower case, runs of blanks and control characters
/// one space, trimmed, at most [`MAX_TERM_CHARS`].
fn fold(text: &str) -> String {
    let words = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty());
    let mut folded = String::new();
    for word in words {
        if !folded.is_empty() {
            folded.push(' ');
        }
        folded.extend(word.chars().flat_map(char::to_lowercase));
    }
    match folded.char_indices().nth(MAX_TERM_CHARS) {
        Some((cut, _)) => folded[..cut].to_owned(),
        None => folded,
    }
}

/// `term` without phone punctuation, when that gives a number (it starts with a digit) other
/// than the term: "+1 555-0100" is found by "1555" too.
fn compact(term: &str) -> Option<String> {
    let compact: String = term
        .chars()
        .filter(|c| !PHONE_PUNCTUATION.contains(c))
        .collect();
    (compact != term && compact.starts_with(|c: char| c.is_ascii_digit())).then_some(compact)
}

/// The terms one customer is found by.
#[derive(Default)]
struct Terms(BTreeSet<String>);

impl Terms {
    /// `text` as one term (and its compact form).
    fn whole(&mut self, text: &str) {
        let term = fold(text);
        if term.is_empty() {
            return;
        }
        if let Some(compact) = compact(&term) {
            self.0.insert(compact);
        }
        self.0.insert(term);
    }

    /// Each word of `text`, and the whole of it.
    fn words(&mut self, text: &str) {
        for word in text.split_whitespace() {
            self.whole(word);
        }
        self.whole(text);
    }
}

/// The terms `id` should be found by: its own name, e-mail address, identities and social
/// profiles, and those of every customer merged into it. None for a merged customer (its
/// survivor answers for it) or one never created.
fn terms_of(tx: &mut dyn Tx, t: &Tables, id: &str) -> Result<BTreeSet<String>, StoreError> {
    let details = t.sql("SELECT name, email, merged_into FROM {p}customers WHERE customer_id = $1");
    match tx.query_opt(&details, &[id.into()])? {
        Some(row) if row.opt_text(2)?.is_none() => {}
        _ => return Ok(BTreeSet::new()),
    }
    let mut terms = Terms::default();
    for member in merged_set(tx, t, id)? {
        let member = member.as_str();
        if let Some(row) = tx.query_opt(&details, &[member.into()])? {
            if let Some(name) = row.opt_text(0)? {
                terms.words(&name);
            }
            if let Some(email) = row.opt_text(1)? {
                terms.whole(&email);
            }
        }
        for row in tx.query(
            &t.sql("SELECT value FROM {p}identities WHERE customer_id = $1"),
            &[member.into()],
        )? {
            terms.whole(&row.text(0)?);
        }
        for row in tx.query(
            &t.sql("SELECT user_id, name, phone, username FROM {p}social WHERE customer_id = $1"),
            &[member.into()],
        )? {
            terms.whole(&row.text(0)?);
            if let Some(name) = row.opt_text(1)? {
                terms.words(&name);
            }
            if let Some(phone) = row.opt_text(2)? {
                terms.whole(&phone);
            }
            if let Some(username) = row.opt_text(3)? {
                // "@ana" is found by "ana" too.
                terms.whole(username.trim_start_matches('@'));
                terms.whole(&username);
            }
        }
    }
    Ok(terms.0)
}

/// Brings the terms of `changed` customers, and of the survivors answering for them, to what
/// their rows now say. Done once per batch, from the rows as the batch left them, so the terms
/// never depend on where batches ended.
fn rewrite_terms(
    tx: &mut dyn Tx,
    t: &Tables,
    changed: &BTreeSet<String>,
) -> Result<(), StoreError> {
    let mut owners = changed.clone();
    for id in changed {
        if let Some(survivor) = survivor(tx, t, id)? {
            owners.insert(survivor);
        }
    }
    let (held, remove, add) = (
        t.sql("SELECT term FROM {p}terms WHERE customer_id = $1"),
        t.sql("DELETE FROM {p}terms WHERE term = $1 AND customer_id = $2"),
        t.sql("INSERT INTO {p}terms (term, customer_id) VALUES ($1, $2)"),
    );
    for owner in &owners {
        let wanted = terms_of(tx, t, owner)?;
        let mut had = BTreeSet::new();
        for row in tx.query(&held, &[owner.as_str().into()])? {
            had.insert(row.text(0)?);
        }
        for term in had.difference(&wanted) {
            tx.execute(&remove, &[term.as_str().into(), owner.as_str().into()])?;
        }
        for term in wanted.difference(&had) {
            tx.execute(&add, &[term.as_str().into(), owner.as_str().into()])?;
        }
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
    /// What the platforms of the channel accounts the customer wrote to told about them, one
    /// profile per account (the customers' merged into this one included).
    pub social: Vec<SocialProfileView>,
    /// Customers merged into this one (directly or through others).
    pub merged: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IdentityView {
    pub channel: String,
    pub value: String,
    /// The channel account (`channel-<id>`) the identity was met through, if any: the same
    /// number writing to two accounts is two identities (two customers until merged).
    pub account: Option<String>,
}

/// What a channel account's platform told about the customer ("social messaging info"), as
/// last recorded.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SocialProfileView {
    /// The channel account (`channel-<id>`) the customer wrote to.
    pub account: String,
    pub channel: String,
    /// The customer's id on the platform (WhatsApp `wa_id`, Messenger PSID, LINE user id...).
    pub user_id: String,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub username: Option<String>,
    pub locale: Option<String>,
    /// When it was recorded, in microseconds since the Unix epoch.
    pub recorded_at: i64,
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

/// One customer with its identities and social profiles (its merged customers' included).
pub fn customer_view(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
) -> Result<Option<CustomerView>, StoreError> {
    let Some((summary, set)) = summary(tx, t, id)? else {
        return Ok(None);
    };
    Ok(Some(CustomerView {
        customer_id: summary.customer_id,
        name: summary.name,
        email: summary.email,
        merged_into: summary.merged_into,
        identities: summary.identities,
        social: summary.social,
        merged: set.into_iter().skip(1).collect(),
    }))
}

/// `id`'s summary, and its [`merged_set`].
fn summary(
    tx: &mut dyn Tx,
    t: &Tables,
    id: &str,
) -> Result<Option<(CustomerSummary, Vec<String>)>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql("SELECT name, email, merged_into FROM {p}customers WHERE customer_id = $1"),
        &[id.into()],
    )?
    else {
        return Ok(None);
    };
    let set = merged_set(tx, t, id)?;
    let mut identities = Vec::new();
    let mut social = Vec::new();
    for c in &set {
        for r in tx.query(
            &t.sql(
                "SELECT channel, value, account FROM {p}identities WHERE customer_id = $1
                 ORDER BY channel, value, account",
            ),
            &[c.as_str().into()],
        )? {
            let account = r.text(2)?;
            identities.push(IdentityView {
                channel: r.text(0)?,
                value: r.text(1)?,
                account: (!account.is_empty()).then_some(account),
            });
        }
        for r in tx.query(
            &t.sql(
                "SELECT account, channel, user_id, name, phone, username, locale, at
                 FROM {p}social WHERE customer_id = $1 ORDER BY account",
            ),
            &[c.as_str().into()],
        )? {
            social.push(SocialProfileView {
                account: r.text(0)?,
                channel: r.text(1)?,
                user_id: r.text(2)?,
                name: r.opt_text(3)?,
                phone: r.opt_text(4)?,
                username: r.opt_text(5)?,
                locale: r.opt_text(6)?,
                recorded_at: r.i64(7)?,
            });
        }
    }
    let summary = CustomerSummary {
        customer_id: id.to_owned(),
        name: row.opt_text(0)?,
        email: row.opt_text(1)?,
        merged_into: row.opt_text(2)?,
        identities,
        social,
    };
    Ok(Some((summary, set)))
}

/// The customer a channel identity belongs to now (following merges); the identity is
/// normalised as the domain does (lower-case e-mail, phone numbers without punctuation). An
/// identity met through a channel account is that account's alone: the same value without the
/// account, or with another, is another identity.
pub fn find_by_identity(
    tx: &mut dyn Tx,
    t: &Tables,
    identity: &ChannelIdentity,
) -> Result<Option<String>, StoreError> {
    let Some(row) = tx.query_opt(
        &t.sql(
            "SELECT customer_id FROM {p}identities
             WHERE channel = $1 AND value = $2 AND account = $3",
        ),
        &identity_params(identity),
    )?
    else {
        return Ok(None);
    };
    survivor(tx, t, &row.text(0)?)
}

/// A customer as a search finds it: its details, identities and social profiles (its merged
/// customers' included).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CustomerSummary {
    pub customer_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The customer this one was merged into, if any (a search answers survivors, so none).
    pub merged_into: Option<String>,
    pub identities: Vec<IdentityView>,
    pub social: Vec<SocialProfileView>,
}

/// A page of customers found, in the order of the text that matched.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CustomerPage {
    pub items: Vec<CustomerSummary>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A search query that cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadQuery {
    #[error("must hold 1 to {MAX_QUERY_CHARS} characters (not only blanks)")]
    Length,
    #[error("must not contain control characters")]
    Control,
}

/// `q` as [`search`] takes it: in lower case, runs of blanks one space; a phone number (digits
/// and `+ - . ( )` or spaces only) without its punctuation.
pub fn search_key(q: &str) -> Result<String, BadQuery> {
    if q.trim().is_empty() || q.chars().count() > MAX_QUERY_CHARS {
        return Err(BadQuery::Length);
    }
    if q.chars().any(char::is_control) {
        return Err(BadQuery::Control);
    }
    let key = fold(q);
    let phone = key
        .chars()
        .all(|c| c.is_ascii_digit() || PHONE_PUNCTUATION.contains(&c));
    Ok(match compact(&key) {
        Some(number) if phone => number,
        _ => key,
    })
}

/// The first text after every text that starts with `prefix` (in code point order, which is
/// SQLite's binary order and PostgreSQL's "C"); `None` when nothing sorts after them.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A search cursor: where the last page ended, `(term, customer_id)`.
pub type SearchCursor = (String, String);

/// Encodes a [`SearchCursor`] as `"<customer_id>.<term in hexadecimal>"`.
fn search_cursor((term, id): &SearchCursor) -> String {
    let mut cursor = format!("{id}.");
    for byte in term.as_bytes() {
        cursor.push_str(&format!("{byte:02x}"));
    }
    cursor
}

/// A malformed search cursor.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cursor {0:?} is not one this search returned")]
pub struct BadSearchCursor(pub String);

/// Decodes a cursor a [`search`] page returned.
pub fn parse_search_cursor(cursor: &str) -> Result<SearchCursor, BadSearchCursor> {
    let bad = || BadSearchCursor(cursor.to_owned());
    let (id, hex) = cursor.split_once('.').ok_or_else(bad)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| bad())?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let term = String::from_utf8(bytes).map_err(|_| bad())?;
    Ok((term, id.to_string()))
}

/// Most customers on one search page.
pub const MAX_SEARCH_PAGE: usize = 100;

/// Customers whose name (any word of it, or the whole), e-mail address, identity value, or
/// social profile (platform user id, name, phone number, username) starts with `key` (a
/// [`search_key`]), in the order of the first of their terms that does (then by id), after
/// `after`. A merged customer is found as its survivor, once.
///
/// One range of the terms' primary key, from the cursor on: a customer is answered at its
/// smallest matching term only (one probe of its own terms tells), so it appears once over all
/// pages. `limit` is clamped to 1..=[`MAX_SEARCH_PAGE`].
pub fn search(
    tx: &mut dyn Tx,
    t: &Tables,
    key: &str,
    after: Option<&SearchCursor>,
    limit: usize,
) -> Result<CustomerPage, StoreError> {
    let limit = limit.clamp(1, MAX_SEARCH_PAGE);
    let end = prefix_end(key);
    let mut params: Vec<Value> = vec![key.into(), ((limit + 1) as i64).into()];
    let mut sql = String::from("SELECT f.term, f.customer_id FROM {p}terms f WHERE f.term >= $1");
    if let Some(end) = &end {
        params.push(end.as_str().into());
        sql.push_str(&format!(" AND f.term < ${}", params.len()));
    }
    if let Some((term, id)) = after {
        params.push(term.as_str().into());
        let term = params.len();
        params.push(id.as_str().into());
        let id = params.len();
        // The first term lets the index seek to the cursor.
        sql.push_str(&format!(
            " AND f.term >= ${term} AND (f.term > ${term} OR f.customer_id > ${id})"
        ));
    }
    sql.push_str(
        " AND NOT EXISTS (SELECT 1 FROM {p}terms g WHERE g.customer_id = f.customer_id
             AND g.term >= $1 AND g.term < f.term)
         ORDER BY f.term, f.customer_id LIMIT $2",
    );
    let mut found = tx.query(&t.sql(&sql), &params)?;
    let more = found.len() > limit;
    found.truncate(limit);
    let mut items = Vec::with_capacity(found.len());
    let mut last = None;
    for row in found {
        let (term, id) = (row.text(0)?, row.text(1)?);
        // Terms are written in the transaction that writes the rows they come from.
        if let Some((summary, _)) = summary(tx, t, &id)? {
            items.push(summary);
        }
        last = Some((term, id));
    }
    Ok(CustomerPage {
        items,
        next_cursor: last.filter(|_| more).as_ref().map(search_cursor),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_number_is_a_term_with_and_without_its_punctuation() {
        let mut terms = Terms::default();
        terms.whole("+55 (11) 91234-0001");
        terms.words("Ana  María\tSouza");
        let terms: Vec<_> = terms.0.into_iter().collect();
        assert_eq!(
            terms,
            [
                "+55 (11) 91234-0001",
                "5511912340001",
                "ana",
                "ana maría souza",
                "maría",
                "souza"
            ]
        );
    }

    #[test]
    fn a_query_is_folded_as_terms_are_and_a_number_loses_its_punctuation() {
        assert_eq!(search_key("  Ana   M ").as_deref(), Ok("ana m"));
        assert_eq!(search_key("+55 11-9").as_deref(), Ok("55119"));
        assert_eq!(search_key("ana.souza@").as_deref(), Ok("ana.souza@"));
        assert_eq!(search_key("-").as_deref(), Ok("-"));
        assert_eq!(search_key(""), Err(BadQuery::Length));
        assert_eq!(search_key(" \t"), Err(BadQuery::Length));
        assert_eq!(search_key("a\u{0}"), Err(BadQuery::Control));
        assert_eq!(search_key(&"é".repeat(101)), Err(BadQuery::Length));
        assert!(search_key(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn a_prefix_ends_before_the_first_text_that_does_not_start_with_it() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
    }

    #[test]
    fn long_terms_are_cut_where_no_query_reaches() {
        let long = "x".repeat(3 * MAX_TERM_CHARS);
        assert_eq!(fold(&long).chars().count(), MAX_TERM_CHARS);
        // The longest query, lower-cased, still fits in a cut term.
        let key = search_key(&"\u{130}".repeat(MAX_QUERY_CHARS)).unwrap();
        assert!(key.chars().count() <= MAX_TERM_CHARS);
    }

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = (
            "ana.souza@example.com é".to_owned(),
            uuid::Uuid::from_u128(7).to_string(),
        );
        assert_eq!(parse_search_cursor(&search_cursor(&cursor)), Ok(cursor));
        for bad in [
            "",
            "x.61",
            "00000000-0000-0000-0000-000000000007.6",
            "00000000-0000-0000-0000-000000000007.ff",
        ] {
            assert!(parse_search_cursor(bad).is_err(), "{bad}");
        }
    }
}
