//! Group commit, written once for every SQL backend.
//!
//! Callers hand their appends to one writer task per process. The writer drains whatever is
//! queued (up to a cap), decides each append against the stream heads and stored event ids it
//! reads inside one transaction ([`plan`]), writes the accepted events and commits once. Each
//! caller keeps its own concurrency check: a conflict fails that caller alone, never the batch.

use crate::error::LogError;
use crate::model::{AppendResult, ExpectedVersion, Position, StreamId, StreamVersion, Timestamp};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

/// One event ready for storage: validated, metadata already encoded.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    pub metadata: Vec<u8>,
    pub payload: Vec<u8>,
}

/// One caller's append.
#[derive(Debug)]
pub(crate) struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<EncodedEvent>,
}

/// An append waiting in the writer's queue, with the way back to its caller.
#[derive(Debug)]
pub(crate) struct Queued {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<AppendResult, LogError>>,
}

/// Where an event id is already stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredId {
    pub stream: String,
    pub version: u64,
    pub position: u64,
    /// Where the event stood in its append, and how many events that append carried.
    pub index: u64,
    pub size: u64,
}

/// A row to insert: event `event` of request `request`, at stream version `version`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub request: usize,
    pub event: usize,
    pub version: u64,
}

/// What the writer does with one request of a batch.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Insert its events (rows `rows` of the plan); the stream ends at `version`.
    Write {
        rows: std::ops::Range<usize>,
        version: u64,
    },
    /// Answered without writing: an error, or the original result of an earlier append.
    Done(Result<AppendResult, LogError>),
    /// A retry of request `index` of the same batch: it gets that request's result.
    SameAs(usize),
}

impl Decision {
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, Decision::Done(Err(LogError::Conflict { .. })))
    }
}

/// Decides every request of a batch, in arrival order, against the stream heads (as stored
/// before the batch; 0 for a new stream) and the event ids already stored. Pure: no IO, so it
/// is tested on its own.
pub(crate) fn plan(
    requests: &[AppendRequest],
    stored_head: impl Fn(&str) -> u64,
    stored_ids: &HashMap<Uuid, StoredId>,
) -> (Vec<Row>, Vec<Decision>) {
    let mut heads: HashMap<&str, u64> = HashMap::new();
    let mut batch_ids: HashMap<Uuid, usize> = HashMap::new();
    let mut rows = Vec::new();
    let mut decisions = Vec::with_capacity(requests.len());

    for (index, request) in requests.iter().enumerate() {
        let stream = request.stream.as_str();
        let duplicate = |event_id: Uuid, stream: &str| {
            Decision::Done(Err(LogError::DuplicateEventId {
                event_id,
                stream: stream.to_owned(),
            }))
        };

        // Idempotency: a retry of an append stored earlier, or queued earlier in this batch.
        let first = request.events[0].event_id;
        if let Some(&earlier) = batch_ids.get(&first) {
            let same = requests[earlier].stream == request.stream
                && requests[earlier].events.len() == request.events.len()
                && requests[earlier]
                    .events
                    .iter()
                    .zip(&request.events)
                    .all(|(a, b)| a.event_id == b.event_id);
            decisions.push(if same {
                Decision::SameAs(earlier)
            } else {
                duplicate(first, requests[earlier].stream.as_str())
            });
            continue;
        }
        if let Some(original) = stored_ids.get(&first) {
            decisions.push(match original_result(request, stored_ids) {
                Some(result) => Decision::Done(Ok(result)),
                None => duplicate(first, &original.stream),
            });
            continue;
        }
        if let Some(event) = request
            .events
            .iter()
            .find(|e| batch_ids.contains_key(&e.event_id) || stored_ids.contains_key(&e.event_id))
        {
            let holder = stored_ids
                .get(&event.event_id)
                .map(|s| s.stream.clone())
                .or_else(|| {
                    batch_ids
                        .get(&event.event_id)
                        .map(|&i| requests[i].stream.to_string())
                })
                .unwrap_or_default();
            decisions.push(duplicate(event.event_id, &holder));
            continue;
        }

        // Optimistic concurrency, against the head as this batch has moved it so far.
        let current = heads
            .get(stream)
            .copied()
            .unwrap_or_else(|| stored_head(stream));
        if !request.expected.admits(StreamVersion(current)) {
            decisions.push(Decision::Done(Err(LogError::Conflict {
                stream: stream.to_owned(),
                expected: request.expected.to_string(),
                current: StreamVersion(current),
            })));
            continue;
        }
        let start = rows.len();
        for (event, _) in request.events.iter().enumerate() {
            rows.push(Row {
                request: index,
                event,
                version: current + 1 + event as u64,
            });
        }
        let version = current + request.events.len() as u64;
        heads.insert(stream, version);
        for event in &request.events {
            batch_ids.insert(event.event_id, index);
        }
        decisions.push(Decision::Write {
            rows: start..rows.len(),
            version,
        });
    }
    (rows, decisions)
}

/// The result of the earlier append that stored exactly these events in this stream, if any.
fn original_result(
    request: &AppendRequest,
    stored_ids: &HashMap<Uuid, StoredId>,
) -> Option<AppendResult> {
    let mut positions = Vec::with_capacity(request.events.len());
    let mut expected_version = None;
    let mut last_version = 0;
    let size = request.events.len() as u64;
    for (index, event) in request.events.iter().enumerate() {
        let stored = stored_ids.get(&event.event_id)?;
        // The very same append: same stream, same events in the same places, no more.
        if stored.stream != request.stream.as_str()
            || stored.index != index as u64
            || stored.size != size
        {
            return None;
        }
        if let Some(v) = expected_version
            && stored.version != v
        {
            return None;
        }
        expected_version = Some(stored.version + 1);
        last_version = stored.version;
        positions.push(Position(stored.position));
    }
    Some(AppendResult {
        stream_version: StreamVersion(last_version),
        positions,
        replayed: true,
    })
}

/// A backend's half of group commit: run one batch in one transaction.
#[async_trait]
pub(crate) trait BatchStore: Send + 'static {
    /// Reads heads and stored ids, writes the planned rows and commits, all in one transaction.
    /// Returns one result per request, or an error that fails the whole batch (nothing written).
    async fn commit_batch(
        &mut self,
        requests: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendResult, LogError>>, LogError>;
}

/// Turns a plan and the positions the database assigned into one result per request.
pub(crate) fn results(
    requests: &[AppendRequest],
    rows: &[Row],
    decisions: Vec<Decision>,
    positions: &HashMap<Uuid, u64>,
) -> Result<Vec<Result<AppendResult, LogError>>, LogError> {
    let mut out: Vec<Result<AppendResult, LogError>> = Vec::with_capacity(decisions.len());
    for decision in decisions {
        let result = match decision {
            Decision::Done(result) => result,
            Decision::SameAs(earlier) => match &out[earlier] {
                Ok(result) => Ok(AppendResult {
                    replayed: true,
                    ..result.clone()
                }),
                // Only written requests are retried within a batch, and those succeed.
                Err(_) => Err(LogError::Corrupt {
                    position: Position::START,
                    reason: "a retried append pointed at a failed one".into(),
                }),
            },
            Decision::Write {
                rows: range,
                version,
            } => {
                let mut list = Vec::with_capacity(range.len());
                for row in &rows[range] {
                    let id = requests[row.request].events[row.event].event_id;
                    let position = positions.get(&id).ok_or_else(|| LogError::Corrupt {
                        position: Position::START,
                        reason: format!("the database returned no position for event {id}"),
                    })?;
                    list.push(Position(*position));
                }
                Ok(AppendResult {
                    stream_version: StreamVersion(version),
                    positions: list,
                    replayed: false,
                })
            }
        };
        out.push(result);
    }
    Ok(out)
}

/// The timestamp for a batch: now, but never earlier than the last stored event, so that
/// `recorded_at` never decreases along the global order (time travel relies on it).
pub(crate) fn batch_timestamp(last: &mut i64) -> i64 {
    let now = Timestamp::now().as_micros().max(*last);
    *last = now;
    now
}

/// How many times the writer yields to let callers join a batch before closing it.
const MAX_YIELD_ROUNDS: u32 = 4;

/// Runs the writer until every sender is gone. `max_events` caps one batch; with
/// `group_commit` off each append gets its own transaction (the naive baseline).
pub(crate) async fn run_writer<S: BatchStore>(
    mut store: S,
    mut queue: mpsc::Receiver<Queued>,
    head: Arc<watch::Sender<Position>>,
    max_events: usize,
    group_commit: bool,
) {
    while let Some(first) = queue.recv().await {
        let mut events = first.request.events.len();
        let mut batch = vec![first];
        // Let the callers just answered queue their next appends before the batch closes, so
        // that concurrent callers share one transaction instead of alternating between two.
        // Yielding (not sleeping) lets every runnable task go first; it stops as soon as a
        // round brings nothing new.
        let mut rounds = 0;
        while group_commit && events < max_events {
            match queue.try_recv() {
                Ok(next) => {
                    events += next.request.events.len();
                    batch.push(next);
                }
                Err(_) if rounds < MAX_YIELD_ROUNDS => {
                    rounds += 1;
                    tokio::task::yield_now().await;
                    if queue.is_empty() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|q| (q.request, q.reply)).unzip();
        match store.commit_batch(requests).await {
            Ok(results) => {
                let last = results
                    .iter()
                    .filter_map(|r| r.as_ref().ok())
                    .map(AppendResult::last_position)
                    .max();
                if let Some(last) = last {
                    head.send_if_modified(|h| {
                        let moved = last > *h;
                        if moved {
                            *h = last;
                        }
                        moved
                    });
                }
                for (reply, result) in replies.into_iter().zip(results) {
                    // A caller that gave up waiting is not an error of the log.
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, appends = replies.len(), "append batch failed; nothing of it was written");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(LogError::BatchFailed(error.clone())));
                }
            }
        }
    }
}

/// The callers' side of the writer: validates and encodes an append, queues it, awaits the
/// result. Validation happens here, in the caller's task, so a bad append never reaches a
/// transaction shared with others.
pub(crate) struct Appender {
    queue: std::sync::Mutex<Option<mpsc::Sender<Queued>>>,
    max_payload_bytes: usize,
    max_events_per_append: usize,
}

impl Appender {
    pub fn new(queue: mpsc::Sender<Queued>, options: &crate::LogOptions) -> Self {
        Appender {
            queue: std::sync::Mutex::new(Some(queue)),
            max_payload_bytes: options.max_payload_bytes,
            max_events_per_append: options.max_events_per_append,
        }
    }

    pub async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<crate::NewEvent>,
    ) -> Result<AppendResult, LogError> {
        let events = self.encode(events)?;
        let sender = self
            .queue
            .lock()
            .map_err(|_| LogError::Closed)?
            .clone()
            .ok_or(LogError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(Queued {
                request: AppendRequest {
                    stream: stream.clone(),
                    expected,
                    events,
                },
                reply,
            })
            .await
            .map_err(|_| LogError::Closed)?;
        answer.await.map_err(|_| LogError::Closed)?
    }

    fn encode(&self, events: Vec<crate::NewEvent>) -> Result<Vec<EncodedEvent>, LogError> {
        if events.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        if events.len() > self.max_events_per_append {
            return Err(LogError::TooManyEvents {
                limit: self.max_events_per_append,
                actual: events.len(),
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            crate::model::check_name(&event.event_type, crate::MAX_EVENT_TYPE_BYTES)
                .map_err(|reason| LogError::InvalidEventType { reason })?;
            if event.payload.len() > self.max_payload_bytes {
                return Err(LogError::PayloadTooLarge {
                    limit: self.max_payload_bytes,
                    actual: event.payload.len(),
                });
            }
            if !seen.insert(event.event_id) {
                return Err(LogError::RepeatedEventId {
                    event_id: event.event_id,
                });
            }
            let metadata = crate::codec::to_msgpack("metadata", &event.metadata)?;
            encoded.push(EncodedEvent {
                event_id: event.event_id,
                event_type: event.event_type,
                schema_version: event.schema_version,
                metadata,
                payload: event.payload,
            });
        }
        Ok(encoded)
    }

    /// Stops accepting appends; the writer finishes what is queued, then ends.
    pub fn close(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stream: &str, expected: ExpectedVersion, ids: &[u128]) -> AppendRequest {
        AppendRequest {
            stream: StreamId::new(stream).unwrap(),
            expected,
            events: ids
                .iter()
                .map(|&id| EncodedEvent {
                    event_id: Uuid::from_u128(id),
                    event_type: "T".into(),
                    schema_version: 1,
                    metadata: vec![],
                    payload: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn a_conflict_fails_only_its_own_append() {
        let requests = vec![
            request("a", ExpectedVersion::NoStream, &[1]),
            request("a", ExpectedVersion::NoStream, &[2]),
            request("a", ExpectedVersion::Exact(StreamVersion(1)), &[3, 4]),
        ];
        let (rows, decisions) = plan(&requests, |_| 0, &HashMap::new());
        assert_eq!(rows.len(), 3);
        assert!(matches!(decisions[0], Decision::Write { version: 1, .. }));
        assert!(matches!(
            decisions[1],
            Decision::Done(Err(LogError::Conflict {
                current: StreamVersion(1),
                ..
            }))
        ));
        assert!(matches!(decisions[2], Decision::Write { version: 3, .. }));
    }

    #[test]
    fn a_retry_in_the_same_batch_gets_the_first_result() {
        let requests = vec![
            request("a", ExpectedVersion::NoStream, &[1, 2]),
            request("a", ExpectedVersion::NoStream, &[1, 2]),
            request("b", ExpectedVersion::Any, &[2]),
        ];
        let (rows, decisions) = plan(&requests, |_| 0, &HashMap::new());
        assert_eq!(rows.len(), 2);
        assert!(matches!(decisions[1], Decision::SameAs(0)));
        assert!(matches!(
            decisions[2],
            Decision::Done(Err(LogError::DuplicateEventId { .. }))
        ));
    }

    #[test]
    fn a_retry_of_a_stored_append_returns_the_original_result() {
        let stored: HashMap<Uuid, StoredId> = [(1, 4, 40), (2, 5, 41)]
            .into_iter()
            .map(|(id, version, position)| {
                (
                    Uuid::from_u128(id),
                    StoredId {
                        stream: "a".into(),
                        version,
                        position,
                        index: version - 4,
                        size: 2,
                    },
                )
            })
            .collect();
        let heads = HashMap::from([("a".to_string(), 9)]);
        let requests = vec![
            request("a", ExpectedVersion::Exact(StreamVersion(3)), &[1, 2]),
            request("a", ExpectedVersion::Any, &[2, 1]),
            request("b", ExpectedVersion::Any, &[1, 2]),
        ];
        let (rows, decisions) = plan(&requests, |s| heads.get(s).copied().unwrap_or(0), &stored);
        assert!(rows.is_empty());
        match &decisions[0] {
            Decision::Done(Ok(result)) => {
                assert_eq!(result.stream_version, StreamVersion(5));
                assert_eq!(result.positions, vec![Position(40), Position(41)]);
            }
            other => panic!("expected the original result, got {other:?}"),
        }
        assert!(matches!(
            decisions[1],
            Decision::Done(Err(LogError::DuplicateEventId { .. }))
        ));
        assert!(matches!(
            decisions[2],
            Decision::Done(Err(LogError::DuplicateEventId { .. }))
        ));
    }
}
