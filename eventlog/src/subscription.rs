//! Catch-up then live reading of the global log, written once over [`EventLog`].

use crate::error::LogError;
use crate::model::{Position, RecordedEvent};
use crate::{EventLog, MAX_READ_BATCH};
use std::sync::Arc;
use tokio::sync::watch;

/// Reads the global log from a position: first everything already stored, in batches, then
/// each new append as it is committed. It waits on the log's head watch (an in-process signal,
/// fed by `LISTEN`/`NOTIFY` on PostgreSQL), never on a timer.
pub struct Subscription {
    log: Arc<dyn EventLog>,
    after: Position,
    batch: usize,
    /// Each batch ends once its payloads reach this many bytes.
    max_bytes: usize,
    head: watch::Receiver<Position>,
}

impl Subscription {
    /// Starts after `after` (`Position::START` for the whole log), reading up to `batch`
    /// events at a time.
    pub fn new(log: Arc<dyn EventLog>, after: Position, batch: usize) -> Self {
        let head = log.watch_head();
        Subscription {
            log,
            after,
            batch: batch.clamp(1, MAX_READ_BATCH),
            max_bytes: usize::MAX,
            head,
        }
    }

    /// Ends each batch once its payloads reach `max_bytes` (a batch holds one event at least).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// The position of the last event returned (or the starting position).
    pub fn position(&self) -> Position {
        self.after
    }

    /// The next non-empty batch of events, in position order, waiting for appends if the
    /// subscriber has caught up. Fails with `Closed` once the log has shut down.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, LogError> {
        loop {
            let known = *self.head.borrow_and_update();
            if known > self.after {
                let events = if self.max_bytes == usize::MAX {
                    self.log.read_all(self.after, self.batch).await?
                } else {
                    self.log
                        .read_all_bounded(self.after, self.batch, self.max_bytes)
                        .await?
                };
                if let Some(last) = events.last() {
                    self.after = last.position;
                    return Ok(events);
                }
            }
            self.head.changed().await.map_err(|_| LogError::Closed)?;
        }
    }
}
