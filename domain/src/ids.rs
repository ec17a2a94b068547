//! Typed identifiers: a conversation id cannot be passed where an agent id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

macro_rules! id_type {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }
    )+};
}

id_type!(
    /// An internal user of the help desk.
    AgentId,
    /// An end user.
    CustomerId,
    /// A conversation; its stream is `conversation-<id>`.
    ConversationId,
    /// A message inside a conversation.
    MessageId,
    /// A ticket or task; its stream is `ticket-<id>`.
    TicketId,
    /// A queue of agents.
    QueueId,
);
