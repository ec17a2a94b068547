//! Every refused action, precisely. The API answers `409 Conflict` for rules about the current
//! state (`is_conflict`) and `422 Unprocessable Entity` for invalid input.

use crate::ids::{AgentId, CustomerId, MessageId, TicketId};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    // Input that can never be valid (422).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    // Rules about the current state (409).
    #[error("the conversation does not exist")]
    ConversationNotFound,
    #[error("the conversation already exists")]
    ConversationExists,
    #[error("message {0} does not exist in this conversation")]
    MessageNotFound(MessageId),
    #[error("message {0} already exists")]
    MessageExists(MessageId),
    #[error("the conversation is closed")]
    ConversationClosed,
    #[error("the conversation is already open")]
    ConversationAlreadyOpen,
    #[error("the conversation is marked as spam")]
    ConversationIsSpam,
    #[error("customers can never join an internal conversation")]
    CustomerInInternalConversation,
    #[error("agent {0} is not a participant of this conversation")]
    NotAParticipant(AgentId),
    #[error("customer {0} is not a participant of this conversation")]
    CustomerNotAParticipant(CustomerId),
    #[error("agent {0} already takes part in this conversation")]
    AlreadyAParticipant(AgentId),
    #[error("only the author can edit or delete message {0}")]
    NotTheAuthor(MessageId),
    #[error("message {0} is deleted")]
    MessageDeleted(MessageId),
    #[error("the conversation is already assigned to agent {0}")]
    AlreadyAssignedTo(AgentId),
    #[error("the conversation is assigned to agent {0}")]
    AssignedToAnother(AgentId),
    #[error("the conversation is not assigned to anyone")]
    Unassigned,
    #[error("the conversation is pinned by agent {0}")]
    PinnedBy(AgentId),
    #[error("the conversation is not pinned")]
    NotPinned,
    #[error("agent {0} already follows this conversation")]
    AlreadyFollowing(AgentId),
    #[error("agent {0} does not follow this conversation")]
    NotFollowing(AgentId),
    #[error("no rating was requested for this conversation")]
    RatingNotRequested,
    #[error("the conversation is already rated")]
    AlreadyRated,
    #[error("ticket {0} is already linked")]
    TicketAlreadyLinked(TicketId),
    #[error("ticket {0} is not linked")]
    TicketNotLinked(TicketId),
    #[error("the conversation is already in that queue")]
    AlreadyInQueue,
    #[error("nothing changes")]
    NoChange,

    #[error("the ticket does not exist")]
    TicketNotFound,
    #[error("the ticket already exists")]
    TicketExists,
    #[error("the ticket is closed")]
    TicketClosed,
    #[error("a ticket cannot go from {from} to {to}")]
    InvalidTransition {
        from: &'static str,
        to: &'static str,
    },
    #[error("the ticket already carries the tag `{0}`")]
    TagPresent(String),
    #[error("the ticket does not carry the tag `{0}`")]
    TagAbsent(String),
    #[error("the ticket has no messaging channel to reply through")]
    NoReplyChannel,
    #[error("reply {0} is unknown or already settled")]
    ReplyNotPending(uuid::Uuid),
    #[error("reply {0} already exists")]
    ReplyExists(uuid::Uuid),

    #[error("the customer does not exist")]
    CustomerNotFound,
    #[error("the customer already exists")]
    CustomerExists,
    #[error("the customer was merged into customer {0}")]
    CustomerMerged(CustomerId),
    #[error("a customer cannot be merged into itself")]
    MergeIntoSelf,
    #[error("customer {0} was not merged into this one")]
    NotMergedHere(CustomerId),
    #[error("the identity is already known for this customer")]
    IdentityKnown,

    #[error("the token does not exist")]
    TokenNotFound,

    #[error("the channel account does not exist")]
    ChannelNotFound,
    #[error("the channel account already exists")]
    ChannelExists,
    #[error("the contact does not exist")]
    ContactNotFound,
    #[error("the token already exists")]
    TokenExists,
}

impl DomainError {
    /// `true` for rules about the current state (HTTP 409), `false` for invalid input (422).
    pub fn is_conflict(&self) -> bool {
        !matches!(self, DomainError::Invalid { .. })
    }

    /// `true` when the thing acted on does not exist (HTTP 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            DomainError::ConversationNotFound
                | DomainError::TicketNotFound
                | DomainError::CustomerNotFound
                | DomainError::TokenNotFound
                | DomainError::ChannelNotFound
                | DomainError::ContactNotFound
        )
    }
}
