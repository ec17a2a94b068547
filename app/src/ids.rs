//! The ids a request mints: for new records (a message, a conversation, a ticket, a token) and
//! for the events its commands append.
//!
//! A request sent with an `Idempotency-Key` mints every id from the key (ADR 10): the handler
//! runs inside [`IdSource::scope`], and each id is drawn from a seed of the caller's scope, the
//! key and when the key was first claimed. A retry of that request (after a crash, on any node)
//! draws the very same ids in the same places, so the log, which stores an event id once,
//! recognises what the first attempt already appended ([`parley_eventlog::EventLog::find_append`])
//! and the retry acts no second time. Ids keep the UUIDv7 layout, timed at the first claim, so
//! they still sort by time.
//!
//! Draws are counted per kind (`"message"`, or a stream's name for the events of a command on
//! it), not in one sequence: a retry that takes another branch (a conversation the first attempt
//! created now exists) still meets the same ids for the same kinds.
//!
//! Outside such a scope ids are fresh UUIDv7s.

use parley_eventlog::StreamId;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

tokio::task_local! {
    static SOURCE: Arc<IdSource>;
}

/// Where the ids of one keyed request come from.
#[derive(Debug)]
pub struct IdSource {
    seed: [u8; 32],
    /// The first claim's time, in milliseconds since the epoch: the ids' UUIDv7 timestamp.
    millis: u64,
    /// How many ids of each kind were drawn so far.
    drawn: Mutex<HashMap<String, u32>>,
}

impl IdSource {
    /// The ids of the request claimed at `claimed_at_micros` under `key` in `scope`.
    pub fn new(scope: &str, key: &str, claimed_at_micros: i64) -> IdSource {
        let mut hasher = Sha256::new();
        for part in [scope.as_bytes(), key.as_bytes()] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        hasher.update(claimed_at_micros.to_be_bytes());
        IdSource {
            seed: hasher.finalize().into(),
            millis: u64::try_from(claimed_at_micros / 1000).unwrap_or_default(),
            drawn: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` with this source: the ids it mints come from here.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        SOURCE.scope(Arc::new(self), work).await
    }

    /// The id the next draw of `kind` would give, without drawing it.
    fn peek(&self, kind: &str) -> Uuid {
        let n = self
            .drawn
            .lock()
            .map(|drawn| drawn.get(kind).copied().unwrap_or(0) + 1)
            .unwrap_or(0);
        derive(
            &self.seed,
            self.millis,
            &[kind.as_bytes(), &n.to_be_bytes()],
        )
    }

    /// The next id of `kind`.
    fn draw(&self, kind: &str) -> Uuid {
        let n = match self.drawn.lock() {
            Ok(mut drawn) => {
                let count = drawn.entry(kind.to_owned()).or_default();
                *count += 1;
                *count
            }
            // Only a panic while counting poisons it; the count is then lost for this request.
            Err(_) => 0,
        };
        derive(
            &self.seed,
            self.millis,
            &[kind.as_bytes(), &n.to_be_bytes()],
        )
    }
}

/// A UUIDv7 at `millis` whose other bits come from SHA-256 of the seed and `parts`.
fn derive(seed: &[u8], millis: u64, parts: &[&[u8]]) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(seed);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bits = [0u8; 10];
    bits.copy_from_slice(&digest[..10]);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid()
}

/// A new id for a record of `kind` (e.g. `"message"`): derived under an `Idempotency-Key`,
/// fresh otherwise.
pub fn new_id(kind: &str) -> Uuid {
    SOURCE
        .try_with(|source| source.draw(kind))
        .unwrap_or_else(|_| Uuid::now_v7())
}

/// The ids of the events one command appends to a stream.
#[derive(Debug, Clone, Copy)]
pub enum EventIds {
    /// Derived from the request's key: a retry appends the same ids.
    Derived { command: Uuid, millis: u64 },
    /// Fresh for every event.
    Fresh,
}

impl EventIds {
    /// The ids for the next command of this request on `stream`.
    pub fn for_command(stream: &StreamId) -> EventIds {
        SOURCE
            .try_with(|source| EventIds::Derived {
                command: source.draw(stream.as_str()),
                millis: source.millis,
            })
            .unwrap_or(EventIds::Fresh)
    }

    /// The ids the next command of this request on `stream` will take, without taking them:
    /// to ask whether an earlier attempt of the request already appended it.
    pub fn peek(stream: &StreamId) -> EventIds {
        SOURCE
            .try_with(|source| EventIds::Derived {
                command: source.peek(stream.as_str()),
                millis: source.millis,
            })
            .unwrap_or(EventIds::Fresh)
    }

    /// The id of the command's event at `index` (from 0).
    pub fn event(&self, index: usize) -> Uuid {
        match self {
            EventIds::Derived { command, millis } => derive(
                command.as_bytes(),
                *millis,
                &[&(index as u64).to_be_bytes()],
            ),
            EventIds::Fresh => Uuid::now_v7(),
        }
    }

    /// The id by which the log tells whether this command was already appended.
    pub fn first(&self) -> Option<Uuid> {
        match self {
            EventIds::Derived { .. } => Some(self.event(0)),
            EventIds::Fresh => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(name: &str) -> StreamId {
        StreamId::new(name).unwrap()
    }

    #[tokio::test]
    async fn a_retry_of_a_keyed_request_mints_the_same_ids() {
        let draw = || async {
            let conversation = stream("conversation-1");
            (
                new_id("message"),
                new_id("message"),
                EventIds::for_command(&conversation).event(0),
                EventIds::for_command(&conversation).event(1),
            )
        };
        let first = IdSource::new("scope", "key-1", 1_700_000_000_000_000)
            .scope(draw())
            .await;
        let retry = IdSource::new("scope", "key-1", 1_700_000_000_000_000)
            .scope(draw())
            .await;
        assert_eq!(first, retry);
        assert_ne!(first.0, first.1, "each draw of a kind is new");
        assert_ne!(first.2, first.3, "each command's events are new");
        assert_eq!(first.0.get_version_num(), 7);
        let other_key = IdSource::new("scope", "key-2", 1_700_000_000_000_000)
            .scope(draw())
            .await;
        let other_scope = IdSource::new("scope-2", "key-1", 1_700_000_000_000_000)
            .scope(draw())
            .await;
        assert_ne!(first.0, other_key.0);
        assert_ne!(first.0, other_scope.0);
    }

    #[tokio::test]
    async fn a_branch_not_taken_on_retry_does_not_shift_other_kinds() {
        let source = || IdSource::new("scope", "key", 1_700_000_000_000_000);
        let first = source()
            .scope(async {
                let _conversation = new_id("conversation");
                new_id("message")
            })
            .await;
        let retry = source().scope(async { new_id("message") }).await;
        assert_eq!(first, retry);
    }

    #[test]
    fn outside_a_keyed_request_ids_are_fresh() {
        assert_ne!(new_id("message"), new_id("message"));
        assert!(
            EventIds::for_command(&stream("conversation-1"))
                .first()
                .is_none()
        );
    }
}
