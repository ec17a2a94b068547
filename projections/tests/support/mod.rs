//! A log and its read models, on either backend, fed by the real runner.
#![allow(dead_code)]

use parley_domain::DomainEvent;
use parley_domain::Timestamp;
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId, QueueId, TicketId};
use parley_eventlog::scratch::ScratchDatabase;
use parley_eventlog::{EventLog, ExpectedVersion, LogOptions, Metadata, StreamId};
use parley_projections::workload::{Append, Workload};
use parley_projections::{Projection, ReadModels, StoreError, Tables, Tx};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct World {
    pub log: Arc<dyn EventLog>,
    pub models: ReadModels,
    pub url: String,
    runner: tokio::task::JoinHandle<()>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

impl World {
    /// `None` only when PostgreSQL is unreachable outside CI.
    pub async fn new(backend: Backend, projections: Vec<Arc<dyn Projection>>) -> Option<World> {
        let (url, dir, db) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("log.db").display());
                (url, Some(dir), None)
            }
            Backend::Postgres => {
                let db = parley_eventlog::testing::postgres_database().await?;
                (db.url.clone(), None, Some(db))
            }
        };
        let log = parley_eventlog::open(&url, LogOptions::default())
            .await
            .unwrap();
        let models = ReadModels::open(log.clone(), &url, projections)
            .await
            .unwrap();
        let runner = tokio::spawn({
            let models = models.clone();
            async move {
                let _ = models.run().await;
            }
        });
        Some(World {
            log,
            models,
            url,
            runner,
            _dir: dir,
            _db: db,
        })
    }

    /// Appends `events` to `stream`; returns the position of the last one.
    pub async fn append<E: DomainEvent>(&self, stream: String, events: Vec<E>) -> u64 {
        let stream = StreamId::new(stream).unwrap();
        let events = events
            .iter()
            .map(|e| {
                parley_projections::events::to_new_event(Uuid::now_v7(), e, Metadata::default())
                    .unwrap()
            })
            .collect();
        self.log
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap()
            .last_position()
            .0
    }

    pub async fn conversation<E: Into<parley_domain::conversation::ConversationEvent>>(
        &self,
        id: ConversationId,
        events: Vec<E>,
    ) -> u64 {
        let events: Vec<_> = events.into_iter().map(Into::into).collect();
        self.append(format!("conversation-{id}"), events).await
    }

    pub async fn ticket<E: Into<parley_domain::ticket::TicketEvent>>(
        &self,
        id: TicketId,
        events: Vec<E>,
    ) -> u64 {
        let events: Vec<_> = events.into_iter().map(Into::into).collect();
        self.append(format!("ticket-{id}"), events).await
    }

    pub async fn customer<E: Into<parley_domain::customer::CustomerEvent>>(
        &self,
        id: CustomerId,
        events: Vec<E>,
    ) -> u64 {
        let events: Vec<_> = events.into_iter().map(Into::into).collect();
        self.append(format!("customer-{id}"), events).await
    }

    /// Waits until every projection has applied the whole log.
    pub async fn settle(&self) {
        let head = self.log.head().await.unwrap().0;
        for name in self.models.names() {
            self.models
                .wait_for(name, head, Duration::from_secs(30))
                .await
                .unwrap();
        }
    }

    pub async fn query<T: Send + 'static>(
        &self,
        name: &str,
        work: impl Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> T {
        self.settle().await;
        self.models.query(name, work).await.unwrap()
    }
}

impl World {
    /// Stops this world's runner, as when its process stops.
    pub async fn stop_runner(&mut self) {
        self.runner.abort();
        let _ = (&mut self.runner).await;
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.runner.abort();
    }
}

/// [`Append::append_as_an_operator`], which must succeed.
pub async fn append_as_an_operator(
    log: &dyn EventLog,
    models: &ReadModels,
    append: Append,
) -> bool {
    append.append_as_an_operator(log, models).await.unwrap()
}

/// Appends `workload` until at least `events` events are written, each append as
/// [`append_as_an_operator`] does; the log's head.
pub async fn append_workload(
    log: &dyn EventLog,
    models: &ReadModels,
    workload: &mut Workload,
    events: u64,
) -> u64 {
    let mut written = 0;
    while written < events {
        let append = workload.next_append();
        written += append.events.len() as u64;
        append_as_an_operator(log, models, append).await;
    }
    log.head().await.unwrap().0
}

/// Fails with the first differing rows when two dumps of a read model differ.
pub fn assert_same_rows(what: &str, left: (&str, &[String]), right: (&str, &[String])) {
    let only_left: Vec<_> = left
        .1
        .iter()
        .filter(|l| !right.1.contains(l))
        .take(5)
        .collect();
    let only_right: Vec<_> = right
        .1
        .iter()
        .filter(|l| !left.1.contains(l))
        .take(5)
        .collect();
    assert!(
        only_left.is_empty() && only_right.is_empty() && left.1.len() == right.1.len(),
        "{what}: {} differs from {}\nonly {}: {only_left:#?}\nonly {}: {only_right:#?}",
        left.0,
        right.0,
        left.0,
        right.0
    );
}

pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_780_000_000 + secs)
}
pub fn agent(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(0xA000 + n))
}
pub fn customer(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(0xC000 + n))
}
pub fn conversation(n: u128) -> ConversationId {
    ConversationId(Uuid::from_u128(0xD000 + n))
}
pub fn message(n: u128) -> MessageId {
    MessageId(Uuid::from_u128(0xE000 + n))
}
pub fn ticket(n: u128) -> TicketId {
    TicketId(Uuid::from_u128(0xF000 + n))
}
pub fn queue(n: u128) -> QueueId {
    QueueId(Uuid::from_u128(0xB000 + n))
}

/// Runs an async test body once per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:path;)+) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $body(super::support::Backend::Sqlite).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $body(super::support::Backend::Postgres).await;
            })+
        }
    };
}
