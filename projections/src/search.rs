//! Full-text search over conversation messages, by keyword and date range, scoped to what the
//! searcher may see: SQLite FTS5 (`unicode61` tokenizer) or PostgreSQL `tsvector` through a GIN
//! expression index (the `simple` configuration: no stemming, any language).
//!
//! Edits replace a message's words; deleted messages leave the index. The SQLite index keeps
//! no copy of the text (detail has it).

use crate::feed::{Envelope, Event};
use crate::keys::{agent_key, customer_key, participant_key};
use crate::runner::{Projection, Tables};
use crate::store::{Dialect, StoreError, Tx, Value};
use parley_domain::Actor;
use parley_domain::conversation::{ConversationEvent, ConversationKind, Visibility};
use serde::Serialize;
use uuid::Uuid;

pub const NAME: &str = "search";

pub struct Search;

const TABLES: &[&str] = &["conversations", "participants", "messages", "text"];

const COMMON: &[&str] = &[
    "CREATE TABLE {p}conversations (
        conversation_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL
    )",
    "CREATE TABLE {p}participants (
        participant TEXT NOT NULL,
        conversation_id TEXT NOT NULL,
        PRIMARY KEY (participant, conversation_id)
    ){clustered}",
];

const SQLITE: &[&str] = &[
    "CREATE TABLE {p}messages (
        doc BIGINT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        visibility TEXT NOT NULL,
        sent_at BIGINT NOT NULL
    ){clustered}",
    "CREATE UNIQUE INDEX {p}messages_id ON {p}messages (message_id, conversation_id)",
    // Contentless: the index keeps words, not a second copy of every message (detail has the
    // text; queries need only the matching rows), and removes a document without reading it.
    "CREATE VIRTUAL TABLE {p}text USING fts5(
        body,
        tokenize = 'unicode61 remove_diacritics 0',
        content = '',
        contentless_delete = 1
    )",
    // New terms wait in memory until a commit or this many bytes (FTS5's default is 1 MiB):
    // a rebuild's transaction of 20,000 events then writes one segment, not several.
    "INSERT INTO {p}text ({p}text, rank) VALUES ('hashsize', 8388608)",
];

const POSTGRES: &[&str] = &[
    "CREATE TABLE {p}messages (
        doc BIGINT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        visibility TEXT NOT NULL,
        sent_at BIGINT NOT NULL,
        terms TEXT NOT NULL
    )",
    "CREATE UNIQUE INDEX {p}messages_id ON {p}messages (message_id, conversation_id)",
    // Keeps the table list the same on both backends.
    "CREATE TABLE {p}text (unused BIGINT)",
];

/// The full-text index, built once a rebuild has filled the table (PostgreSQL; FTS5 indexes
/// as it goes).
const POSTGRES_QUERY_INDEXES: &[&str] =
    &["CREATE INDEX {p}messages_tsv ON {p}messages USING GIN (to_tsvector('simple', terms))"];

impl Projection for Search {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> i64 {
        // 2: both backends index the same words (see `words`), accents included.
        // 3: the SQLite index keeps no copy of the text (contentless FTS5).
        3
    }
    fn tables(&self) -> &'static [&'static str] {
        TABLES
    }
    fn schema(&self, dialect: Dialect) -> Vec<&'static str> {
        let own = match dialect {
            Dialect::Sqlite => SQLITE,
            Dialect::Postgres => POSTGRES,
        };
        COMMON.iter().chain(own).copied().collect()
    }
    fn wants(&self, stream: &str, _event_type: &str) -> bool {
        stream.starts_with("conversation-")
    }
    fn query_indexes(&self, dialect: Dialect) -> Vec<&'static str> {
        match dialect {
            Dialect::Sqlite => Vec::new(),
            Dialect::Postgres => POSTGRES_QUERY_INDEXES.to_vec(),
        }
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        let sqlite = tx.dialect() == Dialect::Sqlite;
        let s = Statements::new(t, sqlite);
        // `"<conversation> <participant>"` already recorded in this batch.
        let mut authors = std::collections::HashSet::new();
        let mut text = TextWrites::default();
        // Ids are written out on the stack, not allocated for every event.
        let (mut id_buf, mut message_buf) = (Uuid::encode_buffer(), Uuid::encode_buffer());
        for envelope in events {
            let Event::Conversation(id, event) = &envelope.event else {
                continue;
            };
            let id: &str = id.0.hyphenated().encode_lower(&mut id_buf);
            match event {
                ConversationEvent::ConversationStarted(e) => {
                    let kind = match e.kind {
                        ConversationKind::Customer => "customer",
                        ConversationKind::Internal => "internal",
                    };
                    tx.execute(
                        &s.conversation,
                        &[id.into(), kind.into(), e.subject.as_str().into()],
                    )?;
                    let people = e
                        .customers
                        .iter()
                        .map(|c| customer_key(*c))
                        .chain(e.members.iter().map(|a| agent_key(*a)))
                        .chain(match e.started_by {
                            Actor::Agent(a) => Some(agent_key(a)),
                            _ => None,
                        });
                    for who in people {
                        tx.execute(&s.participant, &[who.into(), id.into()])?;
                    }
                }
                ConversationEvent::MessageSent(e) => {
                    let visibility = match e.visibility {
                        Visibility::Public => "public",
                        Visibility::Internal => "internal",
                    };
                    // The event's position is a unique document number for the index.
                    let doc = envelope.position;
                    let mut params: Vec<Value> = vec![
                        doc.into(),
                        id.into(),
                        (&*e.message_id.0.hyphenated().encode_lower(&mut message_buf)).into(),
                        visibility.into(),
                        e.at.0.into(),
                    ];
                    if !sqlite {
                        params.push(terms(&e.body).into());
                    }
                    if tx.execute(&s.message, &params)? > 0 && sqlite {
                        text.add(doc, &e.body);
                    }
                    if let Actor::Agent(a) = e.author
                        && authors.insert(format!("{id} agent:{a}"))
                    {
                        tx.execute(&s.participant, &[agent_key(a).into(), id.into()])?;
                    }
                }
                ConversationEvent::MessageEdited(e) => {
                    let key = [id.into(), e.message_id.to_string().into()];
                    if sqlite {
                        if let Some(row) = tx.query_opt(&s.doc_of, &key)? {
                            text.edit(row.i64(0)?, &e.body);
                        }
                    } else {
                        tx.execute(
                            &s.edit,
                            &[key[0].clone(), key[1].clone(), terms(&e.body).into()],
                        )?;
                    }
                }
                ConversationEvent::MessageDeleted(e) => {
                    let key = [id.into(), e.message_id.to_string().into()];
                    if sqlite && let Some(row) = tx.query_opt(&s.doc_of, &key)? {
                        text.delete(row.i64(0)?);
                    }
                    tx.execute(&s.delete, &key)?;
                }
                ConversationEvent::ParticipantInvited(e) => {
                    tx.execute(&s.participant, &[agent_key(e.agent).into(), id.into()])?;
                }
                ConversationEvent::ConversationAssigned(e) => {
                    tx.execute(&s.participant, &[agent_key(e.agent).into(), id.into()])?;
                }
                ConversationEvent::ConversationTransferred(e) => {
                    tx.execute(&s.participant, &[agent_key(e.to).into(), id.into()])?;
                }
                ConversationEvent::ConversationTakenOver(e) => {
                    tx.execute(&s.participant, &[agent_key(e.to).into(), id.into()])?;
                }
                ConversationEvent::ParticipantRemoved(e) => {
                    let who = participant_key(&e.participant);
                    authors.remove(&format!("{id} {who}"));
                    tx.execute(&s.remove_participant, &[who.into(), id.into()])?;
                }
                _ => {}
            }
        }
        text.write(tx, &s)
    }
}

/// What a batch does to one document of the FTS5 index (texts borrowed from its events).
enum TextWrite<'e> {
    /// A message sent in this batch (its final text, if edited since).
    Add(&'e str),
    /// A message indexed before this batch, edited: its old terms out, these in.
    Replace(&'e str),
    /// A message indexed before this batch, deleted.
    Remove,
}

/// A batch's FTS5 writes, made at its end in document order. FTS5 keeps new terms in memory
/// only while documents arrive in ascending order; a delete or an out-of-order document
/// flushes them into a new segment first, and segments must later be merged. Writing in order
/// (a document removed and re-added in place) keeps one segment per transaction.
#[derive(Default)]
struct TextWrites<'e>(std::collections::BTreeMap<i64, TextWrite<'e>>);

impl<'e> TextWrites<'e> {
    fn add(&mut self, doc: i64, body: &'e str) {
        self.0.insert(doc, TextWrite::Add(body));
    }

    fn edit(&mut self, doc: i64, body: &'e str) {
        match self.0.get_mut(&doc) {
            Some(TextWrite::Add(text) | TextWrite::Replace(text)) => *text = body,
            Some(TextWrite::Remove) => {}
            None => {
                self.0.insert(doc, TextWrite::Replace(body));
            }
        }
    }

    fn delete(&mut self, doc: i64) {
        if let Some(TextWrite::Add(_)) = self.0.get(&doc) {
            self.0.remove(&doc);
        } else {
            self.0.insert(doc, TextWrite::Remove);
        }
    }

    fn write(self, tx: &mut dyn Tx, s: &Statements) -> Result<(), StoreError> {
        for (doc, write) in self.0 {
            if matches!(write, TextWrite::Replace(_) | TextWrite::Remove) {
                tx.execute(&s.text_delete, &[doc.into()])?;
            }
            if let TextWrite::Add(body) | TextWrite::Replace(body) = write {
                tx.execute(&s.text, &[doc.into(), body.into()])?;
            }
        }
        Ok(())
    }
}

struct Statements {
    conversation: String,
    participant: String,
    remove_participant: String,
    message: String,
    text: String,
    text_delete: String,
    doc_of: String,
    edit: String,
    delete: String,
}

impl Statements {
    fn new(t: &Tables, sqlite: bool) -> Self {
        Statements {
            conversation: t.sql(
                "INSERT INTO {p}conversations (conversation_id, kind, subject) VALUES ($1, $2, $3)
                 ON CONFLICT (conversation_id) DO NOTHING",
            ),
            participant: t.sql(
                "INSERT INTO {p}participants (participant, conversation_id) VALUES ($1, $2)
                 ON CONFLICT (participant, conversation_id) DO NOTHING",
            ),
            remove_participant: t
                .sql("DELETE FROM {p}participants WHERE participant = $1 AND conversation_id = $2"),
            message: t.sql(if sqlite {
                "INSERT INTO {p}messages (doc, conversation_id, message_id, visibility, sent_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            } else {
                "INSERT INTO {p}messages (doc, conversation_id, message_id, visibility, sent_at, terms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            }),
            text: t.sql("INSERT INTO {p}text (rowid, body) VALUES ($1, $2)"),
            text_delete: t.sql("DELETE FROM {p}text WHERE rowid = $1"),
            doc_of: t.sql(
                "SELECT doc FROM {p}messages WHERE conversation_id = $1 AND message_id = $2",
            ),
            edit: t.sql(
                "UPDATE {p}messages SET terms = $3 WHERE conversation_id = $1 AND message_id = $2",
            ),
            delete: t.sql("DELETE FROM {p}messages WHERE conversation_id = $1 AND message_id = $2"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Who searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Searcher {
    /// Agents find messages of every customer conversation, internal notes included, and of
    /// the internal conversations they take part in.
    Agent(uuid::Uuid),
    /// Customers find public messages of their own conversations.
    Customer(uuid::Uuid),
}

/// What to look for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Keywords; every one must match.
    pub keywords: String,
    /// Sent at or after (microseconds).
    pub from: Option<i64>,
    /// Sent before (microseconds).
    pub to: Option<i64>,
    /// Only conversations of these customers (a customer's history, merged ones included).
    pub customers: Vec<String>,
    /// Only messages older than this `(sent_at, doc)` key: the key of the last hit of the
    /// previous page ([`Hit::key`]).
    pub before: Option<(i64, i64)>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = SearchHit)]
pub struct Hit {
    pub conversation_id: String,
    pub message_id: String,
    pub subject: String,
    pub visibility: String,
    /// Microseconds since the Unix epoch.
    pub sent_at: i64,
    /// The message's place in the index, for paging.
    #[serde(skip)]
    #[schema(ignore)]
    pub doc: i64,
}

impl Hit {
    /// Where the next page starts: pass it as [`SearchQuery::before`].
    pub fn key(&self) -> (i64, i64) {
        (self.sent_at, self.doc)
    }
}

/// Bad search input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SearchError {
    #[error("keywords must contain at least one letter or digit")]
    NoKeywords,
    #[error("keywords are limited to 20 words and 500 characters")]
    TooLong,
}

/// A message body as the PostgreSQL index sees it: the same words `words` makes of keywords
/// (SQLite's `unicode61` tokenizer splits the same way), so both backends find the same
/// messages; e-mail addresses and URLs are split into their words.
fn terms(body: &str) -> String {
    split_words(body).collect::<Vec<_>>().join(" ")
}

/// Runs of letters and digits, in lower case.
fn split_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}

/// Keywords as words: letters and digits only, so no input is ever parsed as query syntax.
pub fn words(keywords: &str) -> Result<Vec<String>, SearchError> {
    if keywords.chars().count() > 500 {
        return Err(SearchError::TooLong);
    }
    let words: Vec<String> = split_words(keywords).collect();
    match words.len() {
        0 => Err(SearchError::NoKeywords),
        n if n > 20 => Err(SearchError::TooLong),
        _ => Ok(words),
    }
}

/// Messages matching every keyword, newest first, that `searcher` may see. The keywords must
/// have passed [`words`].
pub fn search<'a>(
    tx: &mut dyn Tx,
    t: &Tables,
    searcher: &'a Searcher,
    query: &'a SearchQuery,
    words: &'a [String],
) -> Result<Vec<Hit>, StoreError> {
    let mut params: Vec<Value> = Vec::new();
    let mut push = |v: Value<'a>| {
        params.push(v);
        format!("${}", params.len())
    };
    let (from, matching) = match tx.dialect() {
        Dialect::Sqlite => {
            // Each word as a quoted FTS5 string: "a" "b" means a AND b.
            let expr = words
                .iter()
                .map(|w| format!("\"{w}\""))
                .collect::<Vec<_>>()
                .join(" ");
            let p = push(expr.into());
            (
                "{p}text JOIN {p}messages m ON m.doc = {p}text.rowid".to_owned(),
                format!("{{p}}text MATCH {p}"),
            )
        }
        Dialect::Postgres => {
            let p = push(words.join(" ").into());
            (
                "{p}messages m".to_owned(),
                format!("to_tsvector('simple', m.terms) @@ plainto_tsquery('simple', {p})"),
            )
        }
    };
    let mut clauses = vec![matching];
    if let Some(from) = query.from {
        let p = push(from.into());
        clauses.push(format!("m.sent_at >= {p}"));
    }
    if let Some(to) = query.to {
        let p = push(to.into());
        clauses.push(format!("m.sent_at < {p}"));
    }
    if let Some((sent_at, doc)) = query.before {
        let (a, b) = (push(sent_at.into()), push(doc.into()));
        clauses.push(format!(
            "(m.sent_at < {a} OR (m.sent_at = {a} AND m.doc < {b}))"
        ));
    }
    match searcher {
        Searcher::Agent(agent) => {
            let p = push(agent_key(agent).into());
            clauses.push(format!(
                "(c.kind = 'customer' OR EXISTS (SELECT 1 FROM {{p}}participants s
                   WHERE s.participant = {p} AND s.conversation_id = m.conversation_id))"
            ));
        }
        Searcher::Customer(customer) => {
            let p = push(customer_key(customer).into());
            clauses.push(format!(
                "c.kind = 'customer' AND m.visibility = 'public' AND EXISTS (SELECT 1 FROM
                 {{p}}participants s WHERE s.participant = {p} AND s.conversation_id = m.conversation_id)"
            ));
        }
    }
    if !query.customers.is_empty() {
        let list = query
            .customers
            .iter()
            .map(|c| push(customer_key(c).into()))
            .collect::<Vec<_>>()
            .join(", ");
        clauses.push(format!(
            "EXISTS (SELECT 1 FROM {{p}}participants o WHERE o.participant IN ({list})
             AND o.conversation_id = m.conversation_id)"
        ));
    }
    let limit = query.limit.clamp(1, 200);
    let sql = format!(
        "SELECT m.conversation_id, m.message_id, c.subject, m.visibility, m.sent_at, m.doc
         FROM {from} JOIN {{p}}conversations c ON c.conversation_id = m.conversation_id
         WHERE {} ORDER BY m.sent_at DESC, m.doc DESC LIMIT {limit}",
        clauses.join(" AND ")
    );
    tx.query(&t.sql(&sql), &params)?
        .iter()
        .map(|r| {
            Ok(Hit {
                conversation_id: r.text(0)?,
                message_id: r.text(1)?,
                subject: r.text(2)?,
                visibility: r.text(3)?,
                sent_at: r.i64(4)?,
                doc: r.i64(5)?,
            })
        })
        .collect()
}
