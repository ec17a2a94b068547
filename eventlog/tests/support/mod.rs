//! The backends the contract suite runs against, and small helpers.
#![allow(dead_code)]

use parley_eventlog::scratch::ScratchDatabase;
use parley_eventlog::{EventLog, LogOptions, Metadata, NewEvent, StreamId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

/// A log on a fresh database, with whatever keeps that database alive.
pub struct Backend {
    pub url: String,
    pub log: Arc<dyn EventLog>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

impl Backend {
    pub async fn sqlite() -> Backend {
        Self::sqlite_with(LogOptions::default()).await
    }

    pub async fn sqlite_with(options: LogOptions) -> Backend {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let log = parley_eventlog::open(&url, options)
            .await
            .expect("sqlite log opens");
        Backend {
            url,
            log,
            _dir: Some(dir),
            _db: None,
        }
    }

    /// `None` when PostgreSQL is unreachable outside CI (the skip is announced loudly).
    pub async fn postgres() -> Option<Backend> {
        Self::postgres_with(LogOptions::default()).await
    }

    pub async fn postgres_with(options: LogOptions) -> Option<Backend> {
        let db = parley_eventlog::testing::postgres_database().await?;
        let url = db.url.clone();
        let options = LogOptions {
            pool_size: 6,
            ..options
        };
        let log = parley_eventlog::open(&url, options)
            .await
            .expect("postgres log opens");
        Some(Backend {
            url,
            log,
            _dir: None,
            _db: Some(db),
        })
    }
}

/// The payload every test event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counted {
    pub n: u64,
    #[serde(default)]
    pub of: u64,
}

pub fn stream(name: &str) -> StreamId {
    StreamId::new(name).expect("valid stream id")
}

pub fn event(n: u64) -> NewEvent {
    event_of(n, 0, Metadata::default())
}

pub fn event_of(n: u64, of: u64, metadata: Metadata) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "Counted".into(),
        schema_version: 1,
        payload: rmp_serde::to_vec_named(&Counted { n, of }).expect("encodes"),
        metadata,
    }
}
