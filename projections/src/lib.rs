//! Everything people look at, derived from the log.
//!
//! Parts:
//! - [`events`]: the domain's events as the log stores them (type name, MessagePack payload
//!   with named fields), both ways; used by the application service and every read model;
//! - [`audit`]: any stream's full history (who, when, through which channel and request) and
//!   an aggregate's state as of a global position or a time, read straight from the log.
//!
//! Invariant: the log is the only source of truth; everything here can be rebuilt from it.

pub mod audit;
pub mod events;
