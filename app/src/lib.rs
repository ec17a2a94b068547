//! Parley's application layer: what turns a request into events in the log, below any
//! transport (HTTP today; the reactions that follow the log next).
//!
//! Parts:
//! - [`service`]: the command service: load (or take from the cache) an aggregate, decide,
//!   append with the expected version, retry on conflicts; a command of a keyed request that
//!   an earlier attempt already appended is answered, not decided again;
//! - [`workflows`]: actions that touch two aggregates (a ticket from a conversation, a
//!   conversation from a message, customers on first contact, merges);
//! - [`ids`]: the ids a request mints, derived from its `Idempotency-Key` when it has one;
//! - [`files`]: the file store: uploads' records, and their content addressed by SHA-256
//!   (a folder beside the log on SQLite, chunks in the database on PostgreSQL).
//!
//! Invariant: nothing here knows HTTP; errors are [`service::ServiceError`] and
//! [`files::FileError`], which the API maps to problems in one place.

pub mod channels;
pub mod dispatcher;
pub mod files;
pub mod ids;
pub mod inbound;
pub mod reactions;
pub mod service;
pub mod workflows;

/// The histogram every command is timed into (by aggregate), from its start to its append.
pub const APPEND_DURATION: &str = "parley_append_duration_seconds";

/// Times one command into [`APPEND_DURATION`] when dropped: started at the top of
/// `CommandService::execute_guarded`, it covers every way out.
#[must_use = "the command is timed until this is dropped"]
pub(crate) struct AppendTimer {
    aggregate: &'static str,
    started: std::time::Instant,
}

impl AppendTimer {
    pub(crate) fn start(aggregate: &'static str) -> AppendTimer {
        AppendTimer {
            aggregate,
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for AppendTimer {
    fn drop(&mut self) {
        metrics::histogram!(APPEND_DURATION, "aggregate" => self.aggregate)
            .record(self.started.elapsed().as_secs_f64());
    }
}
