//! Parley's domain: what support teams do, as pure code.
//!
//! Parts:
//! - [`Aggregate`]: `decide(&State, Command) -> Result<Vec<Event>, DomainError>` and
//!   `evolve(State, &Event) -> State`; no IO, no clock, no randomness — time, ids and the
//!   acting user arrive in the command;
//! - [`DomainEvent`]: every event's permanent type name, for the log's codec;
//! - [`conversation`]: conversations and their messages (one stream per conversation);
//! - [`ticket`]: tickets and tasks, their status flow, tags and outbound social replies;
//! - [`customer`]: customers, their channel identities and reversible merges;
//! - [`helpdesk`]: the online/offline switch and the widget's messages;
//! - [`channel`]: the help desk's accounts on the social platforms (secrets kept elsewhere);
//! - [`contact`]: a person as one channel account meets them, where webhooks land;
//! - [`access`]: API tokens and their roles (only the secret's digest is stored);
//! - [`ids`]: typed identifiers; [`DomainError`]: every rejected action, precisely.
//!
//! Stream and event names are permanent; `docs/events.md` lists them.

pub mod access;
pub mod channel;
pub mod contact;
pub mod conversation;
pub mod customer;
mod error;
#[cfg(test)]
mod harness;
pub mod helpdesk;
pub mod ids;
mod rules;
pub mod ticket;

pub use error::DomainError;

use serde::{Deserialize, Serialize};

/// A consistency boundary: its state is a left fold of its events.
pub trait Aggregate: Default + Clone {
    type Command;
    type Event: DomainEvent;

    /// The prefix of this aggregate's stream names, e.g. `conversation`.
    const STREAM_PREFIX: &'static str;

    /// The events a command causes, or why it is refused. Never mutates.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, DomainError>;

    /// The state after one more event. Total: it never fails, whatever the event.
    fn evolve(self, event: &Self::Event) -> Self;

    /// Folds events from the initial state.
    fn replay<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self
    where
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

/// An event as the log stores it: a permanent type name and a serde payload (the variant's
/// fields). Adding an optional field with `#[serde(default)]` keeps old events readable.
pub trait DomainEvent: Sized + Clone + std::fmt::Debug {
    /// The permanent type name of this event.
    fn event_type(&self) -> &'static str;
    /// Every type name of this family, for the codec.
    fn event_types() -> &'static [&'static str];
    /// Serialises the payload with `serializer`-agnostic serde (the log uses MessagePack).
    fn serialize_payload<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    /// Deserialises the payload of `event_type`; `None` if the type is not of this family.
    fn deserialize_payload<'de, D: serde::Deserializer<'de>>(
        event_type: &str,
        deserializer: D,
    ) -> Option<Result<Self, D::Error>>;
}

/// Microseconds since the Unix epoch, UTC, as given by the caller (the domain reads no clock).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const fn from_secs(secs: i64) -> Timestamp {
        Timestamp(secs * 1_000_000)
    }

    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
}

/// Who acts: an agent of the help desk, a customer, or the system itself (automations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Actor {
    Agent(ids::AgentId),
    Customer(ids::CustomerId),
    System,
}

/// Declares an event family: an enum whose variants each wrap a payload struct of the same
/// name, with `DomainEvent` implemented from the variant names (the permanent type names).
#[macro_export]
macro_rules! event_family {
    ($(#[$meta:meta])* pub enum $family:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $family {
            $($variant($variant)),+
        }

        impl $crate::DomainEvent for $family {
            fn event_type(&self) -> &'static str {
                match self {
                    $($family::$variant(_) => stringify!($variant)),+
                }
            }

            fn event_types() -> &'static [&'static str] {
                &[$(stringify!($variant)),+]
            }

            fn serialize_payload<S: serde::Serializer>(
                &self,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                match self {
                    $($family::$variant(payload) => serde::Serialize::serialize(payload, serializer)),+
                }
            }

            fn deserialize_payload<'de, D: serde::Deserializer<'de>>(
                event_type: &str,
                deserializer: D,
            ) -> Option<Result<Self, D::Error>> {
                match event_type {
                    $(stringify!($variant) => Some(
                        <$variant as serde::Deserialize>::deserialize(deserializer).map($family::$variant),
                    ),)+
                    _ => None,
                }
            }
        }

        $(
            impl From<$variant> for $family {
                fn from(payload: $variant) -> Self {
                    $family::$variant(payload)
                }
            }
        )+
    };
}
