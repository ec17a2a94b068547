//! Reactions: parts of the server that follow the log from a durable checkpoint and act on
//! what they read (docs/adr/0012).
//!
//! A [`Reaction`] names the events it wants and reacts to each, either by issuing commands
//! through the [`CommandService`](crate::service::CommandService) or by performing an effect
//! outside (sending a reply through a platform) and recording its outcome as an event. The
//! [`Reactions`] runner feeds every reaction:
//!
//! - from its checkpoint (a row per reaction in a side store beside the read models), in pages
//!   of the log bounded in events and bytes; the checkpoint moves once the whole page is
//!   handled, so a crash replays at most the page it was in;
//! - events with the same [`Reaction::partition`] (by default, the stream) one after another
//!   in log order; different partitions at once, up to [`CONCURRENCY`];
//! - only while this process leads the read models (on PostgreSQL, the holder of the leader
//!   lock; on SQLite, always): another process takes over from the checkpoint when it dies;
//! - inside an [`IdSource`] seeded by the reaction's name and the event's id, so that every id
//!   a reaction mints, and every event id its commands append, is derived from the event that
//!   caused it: handling the same event again after a crash appends nothing new (the service
//!   finds the first attempt's append, ADR 10);
//! - with metadata naming the cause ([`Cause::metadata`]): `causation_id` is the event reacted
//!   to, `correlation_id` the request that began the chain.
//!
//! A reaction's error is [`ReactionError::Retry`] (a lost connection, a busy database: the
//! event is handled again after a back-off, holding its partition) or [`ReactionError::Skip`]
//! (it can never succeed: logged, counted, and passed).

use crate::ids::IdSource;
use futures::StreamExt;
use parley_eventlog::{Actor, ActorKind, EventLog, LogError, Metadata, Position, RecordedEvent};
use parley_projections::feed::{self, Envelope};
use parley_projections::{ReadModels, Store, StoreError, ViewError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Most events read per page.
pub const PAGE_EVENTS: usize = 500;
/// Most payload bytes read per page.
pub const PAGE_BYTES: usize = 1024 * 1024;
/// Most partitions handled at once, per reaction.
pub const CONCURRENCY: usize = 256;
/// First pause before an event is handled again after [`ReactionError::Retry`]; it doubles up
/// to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

const STORE_NAME: &str = "reactions";
const SCHEMA: &[&str] = &["CREATE TABLE IF NOT EXISTS parley_reactions (
        name TEXT PRIMARY KEY,
        position BIGINT NOT NULL
    )"];

/// Why a reaction did not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum ReactionError {
    /// Worth trying again: the event is handled again after a back-off.
    #[error("{0}")]
    Retry(String),
    /// Can never succeed: logged, counted, and passed.
    #[error("{0}")]
    Skip(String),
}

impl From<crate::service::ServiceError> for ReactionError {
    fn from(error: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError as S;
        match error {
            // The log or the database: try again.
            S::Log(
                LogError::Storage(_)
                | LogError::Sqlite(_)
                | LogError::BatchFailed(_)
                | LogError::Conflict { .. }
                | LogError::Closed,
            )
            | S::Contention { .. } => ReactionError::Retry(error.to_string()),
            other => ReactionError::Skip(other.to_string()),
        }
    }
}

impl From<crate::channels::DirectoryError> for ReactionError {
    fn from(error: crate::channels::DirectoryError) -> Self {
        match error {
            crate::channels::DirectoryError::Service(error) => error.into(),
            crate::channels::DirectoryError::Store(error) => error.into(),
        }
    }
}

impl From<LogError> for ReactionError {
    fn from(error: LogError) -> Self {
        crate::service::ServiceError::from(error).into()
    }
}

impl From<StoreError> for ReactionError {
    fn from(error: StoreError) -> Self {
        ReactionError::Retry(error.to_string())
    }
}

impl From<ViewError> for ReactionError {
    fn from(error: ViewError) -> Self {
        ReactionError::Retry(error.to_string())
    }
}

/// The event a reaction handles.
#[derive(Debug, Clone)]
pub struct Cause {
    pub event_id: Uuid,
    pub stream: String,
    pub event_type: String,
    pub envelope: Envelope,
}

impl Cause {
    /// The metadata of the events a reaction appends because of this one: acted by the system,
    /// caused by this event, in the chain of the request that began it (its correlation id, or
    /// this event's id when it began the chain), with its channel and request id.
    pub fn metadata(&self, reaction: &str) -> Metadata {
        let source = &self.envelope.metadata;
        Metadata {
            actor: Some(Actor {
                id: format!("reaction:{reaction}"),
                kind: ActorKind::System,
            }),
            causation_id: Some(self.event_id),
            correlation_id: Some(source.correlation_id.unwrap_or(self.event_id)),
            channel: source.channel.clone(),
            request_id: source.request_id.clone(),
            token_id: None,
        }
    }

    /// When the event was recorded, microseconds since the epoch.
    pub fn recorded_at(&self) -> i64 {
        self.envelope.recorded_at
    }
}

/// Something that follows the log and acts.
#[async_trait::async_trait]
pub trait Reaction: Send + Sync + 'static {
    /// Permanent: the checkpoint and the derived ids are keyed by it.
    fn name(&self) -> &'static str;

    /// Whether the event (by its stream and type, before decoding) is one to react to.
    fn wants(&self, stream: &str, event_type: &str) -> bool;

    /// Events with the same key are handled one after another, in log order.
    fn partition(&self, cause: &Cause) -> String {
        cause.stream.clone()
    }

    /// Handles one event. Runs inside the event's [`IdSource`]: ids it mints are derived.
    async fn react(&self, cause: &Cause) -> Result<(), ReactionError>;
}

struct Entry {
    reaction: Arc<dyn Reaction>,
    position: watch::Sender<u64>,
}

/// Runs the reactions.
#[derive(Clone)]
pub struct Reactions {
    log: Arc<dyn EventLog>,
    store: Store,
    entries: Arc<Vec<Entry>>,
}

impl Reactions {
    /// The reactions, with their checkpoints beside the read models opened from `url`.
    pub async fn open(
        log: Arc<dyn EventLog>,
        models: &ReadModels,
        url: &str,
        reactions: Vec<Arc<dyn Reaction>>,
    ) -> Result<Reactions, ViewError> {
        let store = models.side_store(url, STORE_NAME, SCHEMA).await?;
        let entries = reactions
            .into_iter()
            .map(|reaction| Entry {
                reaction,
                position: watch::Sender::new(0),
            })
            .collect();
        Ok(Reactions {
            log,
            store,
            entries: Arc::new(entries),
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.reaction.name()).collect()
    }

    /// The position up to which `name` has handled the log, as it moves (0 before it starts).
    pub fn position(&self, name: &str) -> Option<watch::Receiver<u64>> {
        self.entries
            .iter()
            .find(|e| e.reaction.name() == name)
            .map(|e| e.position.subscribe())
    }

    /// Waits until every reaction has handled the log up to `position`, or `timeout` passes.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let all = async {
            for entry in self.entries.iter() {
                let mut watch = entry.position.subscribe();
                if watch.wait_for(|at| *at >= position).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout(timeout, all).await.unwrap_or(false)
    }

    /// Runs every reaction while `leading` says this process leads; stops them when it stops
    /// leading, and starts them again (from their checkpoints) when it leads again. Returns
    /// when the log closes.
    pub async fn run(self, mut leading: watch::Receiver<bool>) {
        loop {
            let closed = leading.wait_for(|leads| *leads).await.is_err();
            if closed {
                return;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for entry in self.entries.iter() {
                let runner = self.clone();
                let reaction = entry.reaction.clone();
                tasks.spawn(async move { runner.keep_running(reaction).await });
            }
            tokio::select! {
                closed = async { leading.wait_for(|leads| !*leads).await.is_err() } => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    if closed {
                        return;
                    }
                    tracing::info!("stopped the reactions: this process no longer leads");
                }
                _ = async { while tasks.join_next().await.is_some() {} } => return,
            }
        }
    }

    /// Runs one reaction until the log closes, starting it again after a failure.
    async fn keep_running(&self, reaction: Arc<dyn Reaction>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.follow(&reaction).await {
                Ok(()) | Err(ViewError::Log(LogError::Closed)) => return,
                Err(error) => {
                    tracing::error!(reaction = reaction.name(), %error, retry_in = ?backoff, "a reaction failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    async fn checkpoint(&self, name: &'static str) -> Result<u64, StoreError> {
        self.store
            .read(move |tx| {
                let row = tx.query_opt(
                    "SELECT position FROM parley_reactions WHERE name = $1",
                    &[name.into()],
                )?;
                match row {
                    Some(row) => Ok(u64::try_from(row.i64(0)?).unwrap_or(0)),
                    None => Ok(0),
                }
            })
            .await
    }

    async fn save(&self, name: &'static str, position: u64) -> Result<(), StoreError> {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        self.store
            .write(move |tx| {
                // Never backwards: a process that lost leadership late must not undo a newer
                // checkpoint.
                tx.execute(
                    "INSERT INTO parley_reactions (name, position) VALUES ($1, $2)
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position
                     WHERE parley_reactions.position < excluded.position",
                    &[name.into(), position.into()],
                )?;
                Ok(())
            })
            .await
    }

    async fn follow(&self, reaction: &Arc<dyn Reaction>) -> Result<(), ViewError> {
        let name = reaction.name();
        let entry = self
            .entries
            .iter()
            .find(|e| e.reaction.name() == name)
            .ok_or_else(|| ViewError::Log(LogError::Closed))?;
        let mut position = self.checkpoint(name).await?;
        entry.position.send_replace(position);
        let mut head = self.log.watch_head();
        loop {
            let page = self
                .log
                .read_all_bounded(Position(position), PAGE_EVENTS, PAGE_BYTES)
                .await?;
            let Some(last) = page.last().map(|e| e.position.0) else {
                // Caught up: wait for the head to move past what was read.
                if head.wait_for(|at| at.0 > position).await.is_err() {
                    return Ok(());
                }
                continue;
            };
            self.handle_page(reaction, page).await;
            self.save(name, last).await?;
            position = last;
            entry.position.send_replace(position);
            metrics::gauge!("parley_reaction_position", "reaction" => name).set(position as f64);
        }
    }

    /// Handles the wanted events of a page: partitions at once, each in log order.
    async fn handle_page(&self, reaction: &Arc<dyn Reaction>, page: Vec<RecordedEvent>) {
        let name = reaction.name();
        let mut partitions: Vec<(String, Vec<Cause>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for recorded in page {
            if !reaction.wants(&recorded.stream_id, &recorded.event_type) {
                continue;
            }
            let envelope = match feed::decode(&recorded) {
                Ok(envelope) => envelope,
                Err(error) => {
                    // Stored events are checked as they are written; one that cannot be read
                    // is reported and passed, not retried forever.
                    tracing::error!(reaction = name, %error, "a reaction cannot read an event");
                    metrics::counter!("parley_reaction_skipped_total", "reaction" => name)
                        .increment(1);
                    continue;
                }
            };
            let cause = Cause {
                event_id: recorded.event_id,
                stream: recorded.stream_id,
                event_type: recorded.event_type,
                envelope,
            };
            let key = reaction.partition(&cause);
            match index.get(&key) {
                Some(&i) => partitions[i].1.push(cause),
                None => {
                    index.insert(key.clone(), partitions.len());
                    partitions.push((key, vec![cause]));
                }
            }
        }
        futures::stream::iter(partitions)
            .for_each_concurrent(CONCURRENCY, |(_, causes)| async move {
                for cause in causes {
                    handle(reaction.as_ref(), &cause).await;
                }
            })
            .await;
    }
}

/// What the runner turns a stored event into for a reaction (`None` for an event it cannot
/// decode).
pub fn cause(recorded: RecordedEvent) -> Option<Cause> {
    let envelope = feed::decode(&recorded).ok()?;
    Some(Cause {
        event_id: recorded.event_id,
        stream: recorded.stream_id,
        event_type: recorded.event_type,
        envelope,
    })
}

/// Handles one event once, as the runner does each time it meets it (a replay after a crash
/// meets it again): inside the event's [`IdSource`].
pub async fn react_once(reaction: &dyn Reaction, cause: &Cause) -> Result<(), ReactionError> {
    IdSource::new(
        &format!("reaction:{}", reaction.name()),
        &cause.event_id.to_string(),
        cause.recorded_at(),
    )
    .scope(reaction.react(cause))
    .await
}

/// Handles one event until it succeeds or is skipped.
async fn handle(reaction: &dyn Reaction, cause: &Cause) {
    let name = reaction.name();
    let mut backoff = RETRY_FIRST;
    loop {
        match react_once(reaction, cause).await {
            Ok(()) => {
                metrics::counter!("parley_reaction_handled_total", "reaction" => name).increment(1);
                return;
            }
            Err(ReactionError::Skip(reason)) => {
                tracing::warn!(reaction = name, event = %cause.event_id, stream = %cause.stream, %reason, "a reaction passed an event it cannot handle");
                metrics::counter!("parley_reaction_skipped_total", "reaction" => name).increment(1);
                return;
            }
            Err(ReactionError::Retry(reason)) => {
                tracing::warn!(reaction = name, event = %cause.event_id, %reason, retry_in = ?backoff, "a reaction will try an event again");
                metrics::counter!("parley_reaction_retries_total", "reaction" => name).increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}
