//! Everything people look at, derived from the log.
//!
//! Parts:
//! - [`events`]: the domain's events as the log stores them (type name, MessagePack payload
//!   with named fields), both ways; used by the application service and every read model;
//! - [`audit`]: any stream's full history (who, when, through which channel and request) and
//!   an aggregate's state as of a global position or a time, read straight from the log;
//! - read models, each a [`Projection`] with its query functions: [`inbox`], [`notifier`],
//!   [`detail`], [`customers`], [`search`], [`reports`], [`access`] (API tokens), [`channels`]
//!   (channel accounts, and the replies platforms accepted, by their ids) and [`files`]
//!   (where stored files are attached);
//! - [`store`]: where read models live (SQLite files or PostgreSQL), one SQL for both;
//! - [`feed`]: stored events decoded for read models;
//! - [`runner`]: feeds read models exactly once, rebuilds them into shadow tables and swaps.
//!
//! Invariant: the log is the only source of truth; everything here can be rebuilt from it.

pub mod access;
pub mod audit;
pub mod channels;
pub mod customers;
pub mod detail;
pub mod events;
pub mod feed;
pub mod files;
pub mod inbox;
pub mod keys;
pub mod notifier;
pub mod reports;
pub mod runner;
pub mod search;
pub mod store;
pub mod workload;

use std::sync::Arc;

pub use feed::{Envelope, Event};
pub use runner::{
    LiveFeedReads, Progress, Projection, ReadModels, Rebuilt, Registration, Tables, ViewError,
};
pub use store::{Dialect, Row, Store, StoreError, Tx, Value};

/// Every read model, in the order the runner starts them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(inbox::Inbox),
        Arc::new(notifier::Notifier),
        Arc::new(detail::Detail),
        Arc::new(customers::Customers),
        Arc::new(search::Search),
        Arc::new(reports::Reports),
        Arc::new(access::Access),
        Arc::new(channels::Channels),
        Arc::new(files::Files),
    ]
}
