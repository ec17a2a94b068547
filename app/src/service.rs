//! The application service: how a command becomes events in the log.
//!
//! Load the aggregate's stream, fold it (`evolve`), `decide`, append the new events with the
//! stream's version as the expected version. If another writer appended in between, the append
//! is refused with a conflict and the whole cycle runs again on the fresher state, a bounded
//! number of times: the winner is already committed, so each round at least one writer wins.
//! Inside one process, commands on the same stream take turns, so conflicts come only from
//! other processes. Domain
//! rejections are answered at once: they are decisions, not accidents.
//!
//! Recently used aggregates are kept in memory (bounded), with the version they were folded
//! to. A command on a cached aggregate decides without reading the log; the expected version
//! still guards its append, so a stale entry (another process appended) costs a conflict and
//! a fresh read, never a wrong result. A rejection or a no-op decided on cached state is
//! checked again on fresh state before it is answered.

use crate::ids::EventIds;
use parley_domain::{Aggregate, DomainError};
use parley_eventlog::codec::CodecError;
use parley_eventlog::{
    EventLog, ExpectedVersion, LogError, Metadata, NewEvent, Position, StreamId, StreamVersion,
};
use std::any::Any;
use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Arc, Mutex};

/// Attempts before a command gives up on a stream that keeps changing under it.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 50;

/// Why a command did not produce events.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The domain refused the command (HTTP 409 or 422, see `DomainError::is_conflict`).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The stream kept changing; every attempt met a newer version (HTTP 409).
    #[error("the stream kept changing under the command; gave up after {attempts} attempts")]
    Contention { attempts: u32 },
    /// Following a customer's merges led nowhere within a bound (HTTP 500: stored merges
    /// form a loop).
    #[error("the merges of customer {customer} do not end")]
    MergeChain {
        customer: parley_domain::ids::CustomerId,
    },
    /// The client asked (`If-Match`) for a version the stream is no longer, or not yet, at
    /// (HTTP 409 with the current version).
    #[error("the stream is at version {current}, not {expected}")]
    VersionMismatch {
        expected: StreamVersion,
        current: StreamVersion,
    },
    /// A stored event could not be decoded (HTTP 500).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The log failed (HTTP 503 for storage, 4xx for bad input such as an invalid stream id).
    #[error(transparent)]
    Log(#[from] LogError),
}

/// What an accepted command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The stream's version after the command.
    pub stream_version: StreamVersion,
    /// The global position of the command's last event (or of the stream's last event if the
    /// command changed nothing): a read model that has reached it shows the command's effect.
    pub position: Position,
    /// How many events the command appended.
    pub events: usize,
    /// The command had already been appended by an earlier attempt of the same request (same
    /// `Idempotency-Key`): this is what that attempt did, and nothing was appended now. A
    /// handler whose answer holds something only the first attempt knew (a new token's
    /// secret) must not answer as if it had just acted.
    pub replayed: bool,
}

impl Executed {
    /// A command that changed nothing: the stream as it is.
    pub fn unchanged(stream_version: StreamVersion, position: Position) -> Executed {
        Executed {
            stream_version,
            position,
            events: 0,
            replayed: false,
        }
    }
}

/// Events read per page when loading an aggregate: most streams fit in one small read.
const LOAD_PAGE: usize = 64;

/// How many aggregates the service keeps in memory by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 20_000;

/// Runs commands against the log.
#[derive(Clone)]
pub struct CommandService {
    log: Arc<dyn EventLog>,
    max_attempts: u32,
    cache: Arc<Cache>,
    turns: Arc<Turns>,
}

/// Commands on one stream take turns inside a process: they would only conflict with each
/// other. Conflicts then come from other processes alone, and a retry on fresh state is all
/// they need.
#[derive(Default)]
struct Turns {
    streams: Mutex<HashMap<StreamId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    async fn take(&self, stream: &StreamId) -> Turn<'_> {
        let lock = match self.streams.lock() {
            Ok(mut streams) => streams.entry(stream.clone()).or_default().clone(),
            // A poisoned map only loses the serialisation; conflicts still keep it correct.
            Err(_) => Arc::default(),
        };
        let guard = lock.clone().lock_owned().await;
        Turn {
            turns: self,
            stream: stream.clone(),
            lock,
            _guard: guard,
        }
    }
}

/// A stream's turn; the map entry goes when the last waiter is done with it.
struct Turn<'a> {
    turns: &'a Turns,
    stream: StreamId,
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.turns.streams.lock()
            // Held by the map, this turn and its guard: nobody else waits.
            && Arc::strong_count(&self.lock) <= 3
        {
            streams.remove(&self.stream);
        }
    }
}

/// Aggregates as last folded, by stream. States are shared, not copied: a long conversation's
/// state holds every message, and copying it for each command cost more than deciding.
struct Cache {
    capacity: usize,
    entries: Mutex<HashMap<StreamId, Cached>>,
}

struct Cached {
    state: Arc<dyn Any + Send + Sync>,
    version: StreamVersion,
    position: Position,
}

impl Cache {
    fn get<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &StreamId,
    ) -> Option<(Arc<A>, StreamVersion, Position)> {
        let entries = self.entries.lock().ok()?;
        let cached = entries.get(stream)?;
        let state = cached.state.clone().downcast::<A>().ok()?;
        Some((state, cached.version, cached.position))
    }

    fn put<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &StreamId,
        state: Arc<A>,
        version: StreamVersion,
        position: Position,
    ) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // A load that read the stream before a command appended to it may finish after that
            // command cached the newer state: keep the newer one.
            if entries.get(stream).is_some_and(|c| c.version > version) {
                return;
            }
            if entries.len() >= self.capacity && !entries.contains_key(stream) {
                // Forget an arbitrary entry: it is re-read from the log when needed.
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
            entries.insert(
                stream.clone(),
                Cached {
                    state,
                    version,
                    position,
                },
            );
        }
    }

    fn forget(&self, stream: &StreamId) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(stream);
        }
    }
}

impl CommandService {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self::with_cache_capacity(log, DEFAULT_CACHE_CAPACITY)
    }

    /// A service keeping at most `capacity` aggregates in memory (0: read every time).
    pub fn with_cache_capacity(log: Arc<dyn EventLog>, capacity: usize) -> Self {
        CommandService {
            log,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            cache: Arc::new(Cache {
                capacity,
                entries: Mutex::new(HashMap::new()),
            }),
            turns: Arc::default(),
        }
    }

    /// The stream of aggregate `A` with this id: `<prefix>-<id>`.
    pub fn stream<A: Aggregate>(id: impl Display) -> Result<StreamId, LogError> {
        StreamId::new(format!("{}-{id}", A::STREAM_PREFIX))
    }

    /// Loads the aggregate: its state, version and the position of its last event. A cached
    /// state is answered when the stream's version (one indexed read) shows it is current;
    /// otherwise the stream is read and folded.
    pub async fn load<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &StreamId,
    ) -> Result<(Arc<A>, StreamVersion, Position), ServiceError> {
        if let Some(cached) = self.cache.get::<A>(stream)
            && self.log.stream_version(stream).await? == cached.1
        {
            return Ok(cached);
        }
        self.read_fresh::<A>(stream).await
    }

    /// Reads and folds the whole stream, and caches what it found.
    async fn read_fresh<A: Aggregate + Send + Sync + 'static>(
        &self,
        stream: &StreamId,
    ) -> Result<(Arc<A>, StreamVersion, Position), ServiceError> {
        let (state, version, position) = self.read::<A>(stream).await?;
        let state = Arc::new(state);
        if version != StreamVersion::NONE {
            self.cache.put(stream, state.clone(), version, position);
        }
        Ok((state, version, position))
    }

    /// Reads and folds the whole stream, ignoring the cache.
    async fn read<A: Aggregate>(
        &self,
        stream: &StreamId,
    ) -> Result<(A, StreamVersion, Position), ServiceError> {
        let mut state = A::default();
        let mut version = StreamVersion::NONE;
        let mut position = Position::START;
        loop {
            let page = self.log.read_stream(stream, version, LOAD_PAGE).await?;
            let Some(last) = page.last() else { break };
            version = last.version;
            position = last.position;
            for recorded in &page {
                let event = parley_projections::events::from_recorded::<A::Event>(recorded)?;
                state = state.evolve(&event);
            }
            if page.len() < LOAD_PAGE {
                break;
            }
        }
        Ok((state, version, position))
    }

    /// Whether an earlier attempt of this request (same `Idempotency-Key`) already appended the
    /// next command it will run on `stream`: a handler that checks the state before its first
    /// command skips those checks then, since the state already holds what it did. Always
    /// `false` outside a keyed request.
    pub async fn acted_before(&self, stream: &StreamId) -> Result<bool, ServiceError> {
        Ok(self
            .appended_before(stream, &EventIds::peek(stream))
            .await?
            .is_some())
    }

    /// What an earlier attempt of this request appended for this command, if it did: only
    /// commands of a keyed request have ids to look for (see [`crate::ids`]).
    async fn appended_before(
        &self,
        stream: &StreamId,
        ids: &EventIds,
    ) -> Result<Option<Executed>, ServiceError> {
        let Some(first) = ids.first() else {
            return Ok(None);
        };
        let Some((found_in, result)) = self.log.find_append(first).await? else {
            return Ok(None);
        };
        if &found_in != stream {
            // Derived ids are unique to their stream; anything else is not this command's.
            return Err(LogError::DuplicateEventId {
                event_id: first,
                stream: found_in.to_string(),
            }
            .into());
        }
        Ok(Some(Executed {
            stream_version: result.stream_version,
            position: result.last_position(),
            events: result.positions.len(),
            replayed: true,
        }))
    }

    /// Decides `command` against the current state of `stream` and appends its events.
    pub async fn execute<A>(
        &self,
        stream: &StreamId,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<Executed, ServiceError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Command: Clone,
    {
        self.execute_if::<A>(stream, command, metadata, None).await
    }

    /// Like [`CommandService::execute`], but with `if_version` the command is refused with
    /// [`ServiceError::VersionMismatch`] unless the stream is at exactly that version (HTTP
    /// `If-Match`): the client decided on what it saw, and nothing else may have happened since.
    pub async fn execute_if<A>(
        &self,
        stream: &StreamId,
        command: A::Command,
        metadata: &Metadata,
        if_version: Option<StreamVersion>,
    ) -> Result<Executed, ServiceError>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Command: Clone,
    {
        self.execute_guarded::<A, ServiceError>(stream, command, metadata, if_version, |_| Ok(()))
            .await
    }

    /// Like [`CommandService::execute_if`], but first `guard` must accept the state the command
    /// is decided on (who may act on it, what must exist in it), before `if_version` is
    /// compared: a state it refuses answers its error. Like a refusal, a guard's refusal of a
    /// cached state is checked again on the state read from the log; a state it accepted is
    /// the one the command's append expects, so it never acts on a stale one.
    pub async fn execute_guarded<A, E>(
        &self,
        stream: &StreamId,
        command: A::Command,
        metadata: &Metadata,
        if_version: Option<StreamVersion>,
        guard: impl Fn(&A) -> Result<(), E>,
    ) -> Result<Executed, E>
    where
        A: Aggregate + Send + Sync + 'static,
        A::Command: Clone,
        E: From<ServiceError>,
    {
        let _timer = crate::AppendTimer::start(A::STREAM_PREFIX);
        let _turn = self.turns.take(stream).await;
        let ids = EventIds::for_command(stream);
        if let Some(done) = self.appended_before(stream, &ids).await? {
            return Ok(done);
        }
        let mut fresh = false;
        for _ in 0..self.max_attempts {
            let cached = if fresh {
                None
            } else {
                self.cache.get::<A>(stream)
            };
            let from_cache = cached.is_some();
            let (state, version, position) = match cached {
                Some(cached) => cached,
                None => self.read_fresh::<A>(stream).await?,
            };
            if let Err(refused) = guard(&state) {
                if from_cache {
                    fresh = true;
                    continue;
                }
                // The same request on another node may have acted meanwhile.
                if let Some(done) = self.appended_before(stream, &ids).await? {
                    return Ok(done);
                }
                return Err(refused);
            }
            if let Some(expected) = if_version.filter(|expected| *expected != version) {
                if from_cache {
                    // The cached version may be stale: only the log's answers.
                    fresh = true;
                    continue;
                }
                if let Some(done) = self.appended_before(stream, &ids).await? {
                    return Ok(done);
                }
                return Err(ServiceError::VersionMismatch {
                    expected,
                    current: version,
                }
                .into());
            }
            let events = match state.decide(command.clone()) {
                Ok(events) if !events.is_empty() => events,
                // Refusals and no-ops are answered only on state read from the log.
                _ if from_cache => {
                    fresh = true;
                    continue;
                }
                decided => {
                    if let Some(done) = self.appended_before(stream, &ids).await? {
                        return Ok(done);
                    }
                    return match decided {
                        Ok(_) => Ok(Executed::unchanged(version, position)),
                        Err(error) => Err(ServiceError::from(error).into()),
                    };
                }
            };
            let count = events.len();
            let new_events = events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    parley_projections::events::to_new_event(
                        ids.event(index),
                        event,
                        metadata.clone(),
                    )
                })
                .collect::<Result<Vec<NewEvent>, _>>()
                .map_err(ServiceError::from)?;
            let expected = match version {
                StreamVersion::NONE => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v),
            };
            match self.log.append(stream, expected, new_events).await {
                // The log stored these ids before (the same request, retried on another node
                // at the same moment) and answered that append: its events may have been
                // decided on other state, so the state here is not cached.
                Ok(result) if result.replayed => {
                    self.cache.forget(stream);
                    return Ok(Executed {
                        stream_version: result.stream_version,
                        position: result.last_position(),
                        events: result.positions.len(),
                        replayed: true,
                    });
                }
                Ok(result) => {
                    // Without the cache's reference the state is this command's alone (unless
                    // a reader holds it for a moment): it is evolved in place, not copied.
                    self.cache.forget(stream);
                    let state = events.iter().fold(Arc::unwrap_or_clone(state), A::evolve);
                    let position = result.last_position();
                    self.cache
                        .put(stream, Arc::new(state), result.stream_version, position);
                    return Ok(Executed {
                        stream_version: result.stream_version,
                        position,
                        events: count,
                        replayed: false,
                    });
                }
                // Another writer got there first and is already committed: deciding again
                // on fresh state is all a retry needs, no pause.
                Err(LogError::Conflict { .. }) => {
                    self.cache.forget(stream);
                    fresh = true;
                }
                // The same request, retried on another node, appended this command first
                // (with other events, decided on older state): that is what it did.
                Err(error @ LogError::DuplicateEventId { .. }) => {
                    self.cache.forget(stream);
                    return match self.appended_before(stream, &ids).await? {
                        Some(done) => Ok(done),
                        None => Err(ServiceError::from(error).into()),
                    };
                }
                Err(error) => {
                    self.cache.forget(stream);
                    return Err(ServiceError::from(error).into());
                }
            }
        }
        Err(ServiceError::Contention {
            attempts: self.max_attempts,
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_domain::conversation::Conversation;

    #[test]
    fn a_late_load_never_replaces_a_newer_cached_state() {
        let cache = Cache {
            capacity: 8,
            entries: Mutex::new(HashMap::new()),
        };
        let stream = StreamId::new("conversation-1".to_owned()).unwrap();
        let state = Arc::new(Conversation::default());
        cache.put(&stream, state.clone(), StreamVersion(5), Position(50));
        // A load that read the stream at version 4 finishes after the command that wrote 5.
        cache.put(&stream, state.clone(), StreamVersion(4), Position(40));
        let (_, version, position) = cache.get::<Conversation>(&stream).unwrap();
        assert_eq!((version, position), (StreamVersion(5), Position(50)));
        cache.put(&stream, state, StreamVersion(6), Position(60));
        let (_, version, _) = cache.get::<Conversation>(&stream).unwrap();
        assert_eq!(version, StreamVersion(6));
    }
}
