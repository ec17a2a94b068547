//! Conversations: a customer's chat (web widget, social messaging, e-mail, API) or an internal
//! conversation between agents. One stream per conversation: `conversation-<id>`.
//!
//! Rules, briefly: customers never see or join internal conversations and never write internal
//! notes; a customer message reopens a closed conversation, but one marked as spam stays spam;
//! agents cannot write on closed or spam conversations; only the author edits or deletes a
//! message (the original stays in the log); finishing a customer conversation requests a
//! rating once, marking it as spam does not; a pin ("lock as mine") keeps the conversation with
//! its agent: nobody else takes it over, transfers it or passes it back while it holds.

use crate::ids::{AgentId, ConversationId, CustomerId, MessageId, QueueId, TicketId};
use crate::rules::{check_text, invalid};
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Longest subject, in characters.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 20_000;
/// Most attachments on one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// Longest rating comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationKind {
    /// One or more customers, plus internal members.
    Customer,
    /// Agents only; no customer can ever join.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Widget,
    Email,
    Api,
    Whatsapp,
    Line,
    Wechat,
    Facebook,
    Twitter,
    /// Internal conversations between agents.
    Internal,
}

impl Channel {
    /// The name events and read models use (`whatsapp`, `widget`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Widget => "widget",
            Channel::Email => "email",
            Channel::Api => "api",
            Channel::Whatsapp => "whatsapp",
            Channel::Line => "line",
            Channel::Wechat => "wechat",
            Channel::Facebook => "facebook",
            Channel::Twitter => "twitter",
            Channel::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Seen by everyone in the conversation, customers included.
    Public,
    /// An internal note ("silent mode"): never shown to customers.
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    /// Where the file is stored (the log keeps only the reference): `file:<id>` for a file in
    /// Parley's own file store.
    pub storage_ref: String,
    /// The file in Parley's file store (content-addressed), when it is stored there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<uuid::Uuid>,
    /// SHA-256 of the content, hex, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why the file could not be fetched from the platform it arrived through (the message is
    /// kept, with this attachment showing what is missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Someone who can read a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Participant {
    Agent(AgentId),
    Customer(CustomerId),
}

/// The message a conversation was started from, in another conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
}

// ---------------------------------------------------------------------------------------------
// Events. Names and fields are permanent (docs/events.md).

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationStarted {
    pub conversation_id: ConversationId,
    pub kind: ConversationKind,
    pub channel: Channel,
    #[serde(default)]
    pub queue: Option<QueueId>,
    pub subject: String,
    pub started_by: Actor,
    #[serde(default)]
    pub customers: Vec<CustomerId>,
    #[serde(default)]
    pub members: Vec<AgentId>,
    #[serde(default)]
    pub origin: Option<Origin>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: MessageId,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub mentions: Vec<AgentId>,
    #[serde(default)]
    pub quote_of: Option<MessageId>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub message_id: MessageId,
    pub body: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub message_id: MessageId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRead {
    pub reader: Participant,
    /// Everything up to and including this message is read.
    pub through: MessageId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageMarkedUnread {
    pub reader: Participant,
    pub message_id: MessageId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationClosed {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationReopened {
    pub by: Actor,
    /// `true` when a customer's message reopened it.
    pub automatically: bool,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRenamed {
    pub subject: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationMarkedSpam {
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationAssigned {
    pub agent: AgentId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationTransferred {
    pub from: Option<AgentId>,
    pub to: AgentId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationQueueChanged {
    pub from: Option<QueueId>,
    pub to: QueueId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationReturnedToQueue {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationTakenOver {
    pub from: AgentId,
    pub to: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantInvited {
    pub agent: AgentId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantRemoved {
    pub participant: Participant,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationFollowed {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationUnfollowed {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationPinned {
    pub agent: AgentId,
    /// The auto-close deadline, moved later by the pin.
    pub auto_close_at: Timestamp,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationUnpinned {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatingRequested {
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRated {
    pub customer: CustomerId,
    pub score: u8,
    #[serde(default)]
    pub comment: Option<String>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketLinked {
    pub ticket_id: TicketId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketUnlinked {
    pub ticket_id: TicketId,
    pub by: Actor,
    pub at: Timestamp,
}

/// A new conversation was started from one of this conversation's messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationBranched {
    pub message_id: MessageId,
    pub new_conversation_id: ConversationId,
    pub by: Actor,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to a conversation.
    pub enum ConversationEvent {
        ConversationStarted,
        MessageSent,
        MessageEdited,
        MessageDeleted,
        ConversationRead,
        MessageMarkedUnread,
        ConversationClosed,
        ConversationReopened,
        ConversationRenamed,
        ConversationMarkedSpam,
        ConversationAssigned,
        ConversationTransferred,
        ConversationQueueChanged,
        ConversationReturnedToQueue,
        ConversationTakenOver,
        ParticipantInvited,
        ParticipantRemoved,
        ConversationFollowed,
        ConversationUnfollowed,
        ConversationPinned,
        ConversationUnpinned,
        RatingRequested,
        ConversationRated,
        TicketLinked,
        TicketUnlinked,
        ConversationBranched,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub conversation_id: ConversationId,
    pub kind: ConversationKind,
    pub channel: Channel,
    pub queue: Option<QueueId>,
    pub subject: String,
    pub started_by: Actor,
    pub customers: Vec<CustomerId>,
    pub members: Vec<AgentId>,
    pub origin: Option<Origin>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SendMessage {
    pub message_id: MessageId,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
    pub attachments: Vec<Attachment>,
    pub mentions: Vec<AgentId>,
    pub quote_of: Option<MessageId>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConversationCommand {
    Start(Start),
    SendMessage(SendMessage),
    EditMessage {
        message_id: MessageId,
        body: String,
        by: Actor,
        at: Timestamp,
    },
    DeleteMessage {
        message_id: MessageId,
        by: Actor,
        at: Timestamp,
    },
    MarkRead {
        reader: Participant,
        through: MessageId,
        at: Timestamp,
    },
    MarkUnread {
        reader: Participant,
        message_id: MessageId,
        at: Timestamp,
    },
    Close {
        by: Actor,
        at: Timestamp,
    },
    Reopen {
        by: Actor,
        at: Timestamp,
    },
    Rename {
        subject: String,
        by: Actor,
        at: Timestamp,
    },
    MarkSpam {
        by: Actor,
        at: Timestamp,
    },
    Assign {
        agent: AgentId,
        by: Actor,
        at: Timestamp,
    },
    Transfer {
        to: AgentId,
        by: Actor,
        at: Timestamp,
    },
    ChangeQueue {
        queue: QueueId,
        by: Actor,
        at: Timestamp,
    },
    ReturnToQueue {
        agent: AgentId,
        at: Timestamp,
    },
    TakeOver {
        agent: AgentId,
        at: Timestamp,
    },
    Invite {
        agent: AgentId,
        by: Actor,
        at: Timestamp,
    },
    RemoveParticipant {
        participant: Participant,
        by: Actor,
        at: Timestamp,
    },
    Follow {
        agent: AgentId,
        at: Timestamp,
    },
    Unfollow {
        agent: AgentId,
        at: Timestamp,
    },
    Pin {
        agent: AgentId,
        auto_close_at: Timestamp,
        at: Timestamp,
    },
    Unpin {
        agent: AgentId,
        at: Timestamp,
    },
    Rate {
        customer: CustomerId,
        score: u8,
        comment: Option<String>,
        at: Timestamp,
    },
    LinkTicket {
        ticket_id: TicketId,
        by: Actor,
        at: Timestamp,
    },
    UnlinkTicket {
        ticket_id: TicketId,
        by: Actor,
        at: Timestamp,
    },
    /// Records that `new_conversation_id` was started from `message_id`.
    RecordBranch {
        message_id: MessageId,
        new_conversation_id: ConversationId,
        by: Actor,
        at: Timestamp,
    },
}

// ---------------------------------------------------------------------------------------------
// State.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    #[default]
    New,
    Open,
    Closed,
    Spam,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    /// 1 for the first message of the conversation, and so on.
    pub seq: u64,
    pub author: Actor,
    pub visibility: Visibility,
    pub deleted: bool,
}

/// A conversation as its events leave it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub id: Option<ConversationId>,
    pub kind: Option<ConversationKind>,
    pub channel: Option<Channel>,
    pub queue: Option<QueueId>,
    pub subject: String,
    pub status: Status,
    pub customers: BTreeSet<CustomerId>,
    /// Agents taking part: started, invited, wrote, were assigned.
    pub members: BTreeSet<AgentId>,
    pub followers: BTreeSet<AgentId>,
    pub assignee: Option<AgentId>,
    pub pinned_by: Option<AgentId>,
    pub auto_close_at: Option<Timestamp>,
    pub awaiting_first_response: bool,
    pub messages: BTreeMap<MessageId, MessageState>,
    /// Per reader, the sequence number of the last message read.
    pub read_through: BTreeMap<Participant, u64>,
    pub rating_requested: bool,
    pub rating: Option<u8>,
    pub tickets: BTreeSet<TicketId>,
    /// Conversations started from this one's messages.
    pub branches: BTreeSet<ConversationId>,
    /// The message this conversation was started from, if any.
    pub origin: Option<Origin>,
}

impl Conversation {
    /// Messages `reader` has not read (their own and deleted ones aside; internal notes
    /// never count for customers).
    pub fn unread_count(&self, reader: Participant) -> usize {
        let through = self.read_through.get(&reader).copied().unwrap_or(0);
        self.messages
            .values()
            .filter(|m| m.seq > through && !m.deleted && !is_author(reader, m.author))
            .filter(|m| {
                !(matches!(reader, Participant::Customer(_))
                    && m.visibility == Visibility::Internal)
            })
            .count()
    }

    fn is_participant(&self, who: Participant) -> bool {
        match who {
            Participant::Agent(agent) => self.members.contains(&agent),
            Participant::Customer(customer) => self.customers.contains(&customer),
        }
    }
}

/// What a ticket created from a conversation starts with; every field can be overridden.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketDraft {
    pub title: Option<String>,
    pub description: Option<String>,
    pub requester: Option<CustomerId>,
}

impl Conversation {
    /// A ticket's details prefilled from this conversation: its subject as the title, its
    /// public messages' count and channel in the description, its first customer as requester.
    /// Fields of `edits` replace the prefilled ones.
    pub fn ticket_draft(&self, edits: TicketDraft) -> TicketDraft {
        let public = self
            .messages
            .values()
            .filter(|m| m.visibility == Visibility::Public && !m.deleted)
            .count();
        let title = if self.subject.trim().is_empty() {
            "Conversation follow-up".to_owned()
        } else {
            self.subject.clone()
        };
        TicketDraft {
            title: Some(edits.title.unwrap_or(title)),
            description: Some(edits.description.unwrap_or_else(|| {
                format!("Created from a conversation with {public} public message(s).")
            })),
            requester: edits
                .requester
                .or_else(|| self.customers.iter().next().copied()),
        }
    }
}

fn is_author(reader: Participant, author: Actor) -> bool {
    match (reader, author) {
        (Participant::Agent(a), Actor::Agent(b)) => a == b,
        (Participant::Customer(a), Actor::Customer(b)) => a == b,
        _ => false,
    }
}

impl Aggregate for Conversation {
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    const STREAM_PREFIX: &'static str = "conversation";

    fn decide(&self, command: ConversationCommand) -> Result<Vec<ConversationEvent>, DomainError> {
        use ConversationCommand as C;
        if let C::Start(start) = command {
            return self.start(start);
        }
        if self.status == Status::New {
            return Err(DomainError::ConversationNotFound);
        }
        match command {
            C::Start(_) => Err(DomainError::ConversationExists),
            C::SendMessage(send) => self.send_message(send),
            C::EditMessage {
                message_id,
                body,
                by,
                at,
            } => {
                self.own_message(message_id, by)?;
                check_text("body", &body, MAX_BODY_CHARS, false)?;
                Ok(vec![
                    MessageEdited {
                        message_id,
                        body,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::DeleteMessage { message_id, by, at } => {
                self.own_message(message_id, by)?;
                Ok(vec![MessageDeleted { message_id, by, at }.into()])
            }
            C::MarkRead {
                reader,
                through,
                at,
            } => {
                self.reader(reader)?;
                let seq = self.message(through)?.seq;
                if self.read_through.get(&reader).copied().unwrap_or(0) >= seq {
                    return Ok(vec![]);
                }
                Ok(vec![
                    ConversationRead {
                        reader,
                        through,
                        at,
                    }
                    .into(),
                ])
            }
            C::MarkUnread {
                reader,
                message_id,
                at,
            } => {
                self.reader(reader)?;
                let seq = self.message(message_id)?.seq;
                if self.read_through.get(&reader).copied().unwrap_or(0) < seq {
                    return Ok(vec![]);
                }
                Ok(vec![
                    MessageMarkedUnread {
                        reader,
                        message_id,
                        at,
                    }
                    .into(),
                ])
            }
            C::Close { by, at } => {
                self.open()?;
                let mut events = vec![ConversationClosed { by, at }.into()];
                if self.kind == Some(ConversationKind::Customer) && !self.rating_requested {
                    events.push(RatingRequested { at }.into());
                }
                Ok(events)
            }
            C::Reopen { by, at } => match self.status {
                Status::Closed => Ok(vec![
                    ConversationReopened {
                        by,
                        automatically: false,
                        at,
                    }
                    .into(),
                ]),
                Status::Spam => Err(DomainError::ConversationIsSpam),
                _ => Err(DomainError::ConversationAlreadyOpen),
            },
            C::Rename { subject, by, at } => {
                check_text("subject", &subject, MAX_SUBJECT_CHARS, false)?;
                if subject == self.subject {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![ConversationRenamed { subject, by, at }.into()])
            }
            C::MarkSpam { by, at } => {
                self.customer_conversation("mark as spam")?;
                if self.status == Status::Spam {
                    return Err(DomainError::ConversationIsSpam);
                }
                Ok(vec![ConversationMarkedSpam { by, at }.into()])
            }
            C::Assign { agent, by, at } => {
                self.assignable()?;
                if self.assignee == Some(agent) {
                    return Err(DomainError::AlreadyAssignedTo(agent));
                }
                self.not_pinned_by_other(by)?;
                Ok(vec![ConversationAssigned { agent, by, at }.into()])
            }
            C::Transfer { to, by, at } => {
                self.assignable()?;
                if self.assignee == Some(to) {
                    return Err(DomainError::AlreadyAssignedTo(to));
                }
                self.not_pinned_by_other(by)?;
                let mut events = vec![
                    ConversationTransferred {
                        from: self.assignee,
                        to,
                        by,
                        at,
                    }
                    .into(),
                ];
                // The pinner hands the conversation on: the pin does not outlive that.
                events.extend(self.pin_released(at));
                Ok(events)
            }
            C::ChangeQueue { queue, by, at } => {
                self.assignable()?;
                if self.queue == Some(queue) {
                    return Err(DomainError::AlreadyInQueue);
                }
                self.not_pinned_by_other(by)?;
                let mut events = vec![
                    ConversationQueueChanged {
                        from: self.queue,
                        to: queue,
                        by,
                        at,
                    }
                    .into(),
                ];
                events.extend(self.pin_released(at));
                Ok(events)
            }
            C::ReturnToQueue { agent, at } => {
                self.assignable()?;
                match self.assignee {
                    None => return Err(DomainError::Unassigned),
                    Some(current) if current != agent => {
                        return Err(DomainError::AssignedToAnother(current));
                    }
                    Some(_) => {}
                }
                if let Some(pinner) = self.pinned_by {
                    return Err(DomainError::PinnedBy(pinner));
                }
                Ok(vec![ConversationReturnedToQueue { agent, at }.into()])
            }
            C::TakeOver { agent, at } => {
                self.assignable()?;
                let from = self.assignee.ok_or(DomainError::Unassigned)?;
                if from == agent {
                    return Err(DomainError::AlreadyAssignedTo(agent));
                }
                self.not_pinned_by_other(Actor::Agent(agent))?;
                Ok(vec![
                    ConversationTakenOver {
                        from,
                        to: agent,
                        at,
                    }
                    .into(),
                ])
            }
            C::Invite { agent, by, at } => {
                self.writable_by_agents()?;
                if self.kind == Some(ConversationKind::Internal) {
                    match by {
                        Actor::Agent(inviter) if self.members.contains(&inviter) => {}
                        Actor::Agent(inviter) => return Err(DomainError::NotAParticipant(inviter)),
                        _ => return Err(DomainError::CustomerInInternalConversation),
                    }
                }
                if self.members.contains(&agent) {
                    return Err(DomainError::AlreadyAParticipant(agent));
                }
                Ok(vec![ParticipantInvited { agent, by, at }.into()])
            }
            C::RemoveParticipant {
                participant,
                by,
                at,
            } => {
                if !self.is_participant(participant) {
                    return Err(match participant {
                        Participant::Agent(agent) => DomainError::NotAParticipant(agent),
                        Participant::Customer(customer) => {
                            DomainError::CustomerNotAParticipant(customer)
                        }
                    });
                }
                if matches!(participant, Participant::Customer(_)) && self.customers.len() == 1 {
                    return Err(invalid(
                        "participant",
                        "a customer conversation keeps at least one customer",
                    ));
                }
                let mut events = vec![
                    ParticipantRemoved {
                        participant,
                        by,
                        at,
                    }
                    .into(),
                ];
                if let Participant::Agent(agent) = participant
                    && self.pinned_by == Some(agent)
                {
                    events.extend(self.pin_released(at));
                }
                Ok(events)
            }
            C::Follow { agent, at } => {
                if self.followers.contains(&agent) {
                    return Err(DomainError::AlreadyFollowing(agent));
                }
                self.agent_may_see(agent)?;
                Ok(vec![ConversationFollowed { agent, at }.into()])
            }
            C::Unfollow { agent, at } => {
                if !self.followers.contains(&agent) {
                    return Err(DomainError::NotFollowing(agent));
                }
                Ok(vec![ConversationUnfollowed { agent, at }.into()])
            }
            C::Pin {
                agent,
                auto_close_at,
                at,
            } => {
                self.assignable()?;
                match (self.pinned_by, self.assignee) {
                    (Some(pinner), _) if pinner != agent => {
                        return Err(DomainError::PinnedBy(pinner));
                    }
                    (Some(_), _) => return Err(DomainError::NoChange),
                    (None, Some(current)) if current != agent => {
                        return Err(DomainError::AssignedToAnother(current));
                    }
                    _ => {}
                }
                if auto_close_at <= at
                    || self
                        .auto_close_at
                        .is_some_and(|deadline| auto_close_at <= deadline)
                {
                    return Err(invalid(
                        "auto_close_at",
                        "a pin moves the auto-close deadline later",
                    ));
                }
                let mut events = Vec::new();
                if self.assignee.is_none() {
                    events.push(
                        ConversationAssigned {
                            agent,
                            by: Actor::Agent(agent),
                            at,
                        }
                        .into(),
                    );
                }
                events.push(
                    ConversationPinned {
                        agent,
                        auto_close_at,
                        at,
                    }
                    .into(),
                );
                Ok(events)
            }
            C::Unpin { agent, at } => match self.pinned_by {
                None => Err(DomainError::NotPinned),
                Some(pinner) if pinner != agent => Err(DomainError::PinnedBy(pinner)),
                Some(_) => Ok(vec![ConversationUnpinned { agent, at }.into()]),
            },
            C::Rate {
                customer,
                score,
                comment,
                at,
            } => {
                if !self.customers.contains(&customer) {
                    return Err(DomainError::CustomerNotAParticipant(customer));
                }
                if !(1..=5).contains(&score) {
                    return Err(invalid("score", "must be from 1 to 5"));
                }
                if let Some(comment) = &comment {
                    check_text("comment", comment, MAX_COMMENT_CHARS, true)?;
                }
                if self.rating.is_some() {
                    return Err(DomainError::AlreadyRated);
                }
                // A rating is for a finished conversation: not one marked as spam, not one
                // the customer has reopened since.
                match self.status {
                    Status::Spam => return Err(DomainError::ConversationIsSpam),
                    Status::Closed if self.rating_requested => {}
                    _ => return Err(DomainError::RatingNotRequested),
                }
                Ok(vec![
                    ConversationRated {
                        customer,
                        score,
                        comment,
                        at,
                    }
                    .into(),
                ])
            }
            C::LinkTicket { ticket_id, by, at } => {
                self.customer_conversation("link a ticket")?;
                if self.tickets.contains(&ticket_id) {
                    return Err(DomainError::TicketAlreadyLinked(ticket_id));
                }
                Ok(vec![TicketLinked { ticket_id, by, at }.into()])
            }
            C::UnlinkTicket { ticket_id, by, at } => {
                if !self.tickets.contains(&ticket_id) {
                    return Err(DomainError::TicketNotLinked(ticket_id));
                }
                Ok(vec![TicketUnlinked { ticket_id, by, at }.into()])
            }
            C::RecordBranch {
                message_id,
                new_conversation_id,
                by,
                at,
            } => {
                if self.message(message_id)?.deleted {
                    return Err(DomainError::MessageDeleted(message_id));
                }
                if self.branches.contains(&new_conversation_id) {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    ConversationBranched {
                        message_id,
                        new_conversation_id,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(mut self, event: &ConversationEvent) -> Self {
        use ConversationEvent as E;
        match event {
            E::ConversationStarted(e) => {
                self.id = Some(e.conversation_id);
                self.origin = e.origin;
                self.kind = Some(e.kind);
                self.channel = Some(e.channel);
                self.queue = e.queue;
                self.subject = e.subject.clone();
                self.status = Status::Open;
                self.customers = e.customers.iter().copied().collect();
                self.members = e.members.iter().copied().collect();
                if let Actor::Agent(agent) = e.started_by {
                    self.members.insert(agent);
                }
                self.awaiting_first_response = e.kind == ConversationKind::Customer;
            }
            E::MessageSent(e) => {
                let seq = self.messages.len() as u64 + 1;
                self.messages.insert(
                    e.message_id,
                    MessageState {
                        seq,
                        author: e.author,
                        visibility: e.visibility,
                        deleted: false,
                    },
                );
                match e.author {
                    Actor::Agent(agent) => {
                        self.members.insert(agent);
                        self.read_through.insert(Participant::Agent(agent), seq);
                        if e.visibility == Visibility::Public {
                            self.awaiting_first_response = false;
                        }
                    }
                    Actor::Customer(customer) => {
                        self.read_through
                            .insert(Participant::Customer(customer), seq);
                    }
                    Actor::System => {}
                }
            }
            E::MessageEdited(_) => {}
            E::MessageDeleted(e) => {
                if let Some(message) = self.messages.get_mut(&e.message_id) {
                    message.deleted = true;
                }
            }
            E::ConversationRead(e) => {
                if let Some(seq) = self.messages.get(&e.through).map(|m| m.seq) {
                    let read = self.read_through.entry(e.reader).or_default();
                    *read = (*read).max(seq);
                }
            }
            E::MessageMarkedUnread(e) => {
                if let Some(seq) = self.messages.get(&e.message_id).map(|m| m.seq) {
                    self.read_through.insert(e.reader, seq.saturating_sub(1));
                }
            }
            E::ConversationClosed(_) => self.status = Status::Closed,
            E::ConversationReopened(_) => self.status = Status::Open,
            E::ConversationRenamed(e) => self.subject = e.subject.clone(),
            E::ConversationMarkedSpam(_) => self.status = Status::Spam,
            E::ConversationAssigned(e) => {
                self.assignee = Some(e.agent);
                self.members.insert(e.agent);
            }
            E::ConversationTransferred(e) => {
                self.assignee = Some(e.to);
                self.members.insert(e.to);
            }
            E::ConversationQueueChanged(e) => {
                self.queue = Some(e.to);
                self.assignee = None;
            }
            E::ConversationReturnedToQueue(_) => self.assignee = None,
            E::ConversationTakenOver(e) => {
                self.assignee = Some(e.to);
                self.members.insert(e.to);
            }
            E::ParticipantInvited(e) => {
                self.members.insert(e.agent);
            }
            E::ParticipantRemoved(e) => match e.participant {
                Participant::Agent(agent) => {
                    // Removed means gone: no longer assigned, and no longer following (which
                    // would still let an agent without the support flag see a customer
                    // conversation it was taken out of).
                    self.members.remove(&agent);
                    self.followers.remove(&agent);
                    if self.assignee == Some(agent) {
                        self.assignee = None;
                    }
                }
                Participant::Customer(customer) => {
                    self.customers.remove(&customer);
                }
            },
            E::ConversationFollowed(e) => {
                self.followers.insert(e.agent);
            }
            E::ConversationUnfollowed(e) => {
                self.followers.remove(&e.agent);
            }
            E::ConversationPinned(e) => {
                self.pinned_by = Some(e.agent);
                self.auto_close_at = Some(e.auto_close_at);
            }
            E::ConversationUnpinned(_) => self.pinned_by = None,
            E::RatingRequested(_) => self.rating_requested = true,
            E::ConversationRated(e) => self.rating = Some(e.score),
            E::TicketLinked(e) => {
                self.tickets.insert(e.ticket_id);
            }
            E::TicketUnlinked(e) => {
                self.tickets.remove(&e.ticket_id);
            }
            E::ConversationBranched(e) => {
                self.branches.insert(e.new_conversation_id);
            }
        }
        self
    }
}

impl Conversation {
    fn start(&self, start: Start) -> Result<Vec<ConversationEvent>, DomainError> {
        if self.status != Status::New {
            return Err(DomainError::ConversationExists);
        }
        check_text("subject", &start.subject, MAX_SUBJECT_CHARS, true)?;
        match start.kind {
            ConversationKind::Internal => {
                if !start.customers.is_empty() || matches!(start.started_by, Actor::Customer(_)) {
                    return Err(DomainError::CustomerInInternalConversation);
                }
                let mut agents: BTreeSet<AgentId> = start.members.iter().copied().collect();
                if let Actor::Agent(starter) = start.started_by {
                    agents.insert(starter);
                }
                if agents.len() < 2 {
                    return Err(invalid(
                        "members",
                        "an internal conversation needs two agents or more",
                    ));
                }
            }
            ConversationKind::Customer => {
                if start.customers.is_empty() {
                    return Err(invalid(
                        "customers",
                        "a customer conversation needs a customer",
                    ));
                }
                if let Actor::Customer(customer) = start.started_by
                    && !start.customers.contains(&customer)
                {
                    return Err(DomainError::CustomerNotAParticipant(customer));
                }
            }
        }
        Ok(vec![
            ConversationStarted {
                conversation_id: start.conversation_id,
                kind: start.kind,
                channel: start.channel,
                queue: start.queue,
                subject: start.subject,
                started_by: start.started_by,
                customers: start.customers,
                members: start.members,
                origin: start.origin,
                at: start.at,
            }
            .into(),
        ])
    }

    fn send_message(&self, send: SendMessage) -> Result<Vec<ConversationEvent>, DomainError> {
        if self.messages.contains_key(&send.message_id) {
            return Err(DomainError::MessageExists(send.message_id));
        }
        check_text(
            "body",
            &send.body,
            MAX_BODY_CHARS,
            !send.attachments.is_empty(),
        )?;
        if send.attachments.len() > MAX_ATTACHMENTS {
            return Err(invalid(
                "attachments",
                format!("at most {MAX_ATTACHMENTS} per message"),
            ));
        }
        for attachment in &send.attachments {
            check_text("attachments.name", &attachment.name, 255, false)?;
            check_text(
                "attachments.storage_ref",
                &attachment.storage_ref,
                1024,
                false,
            )?;
        }
        if let Some(quoted) = send.quote_of {
            let message = self.message(quoted)?;
            if message.visibility == Visibility::Internal {
                // A customer never learns that an internal note exists.
                if matches!(send.author, Actor::Customer(_)) {
                    return Err(DomainError::MessageNotFound(quoted));
                }
                if send.visibility == Visibility::Public {
                    return Err(invalid(
                        "quote_of",
                        "a public message cannot quote an internal note",
                    ));
                }
            }
            if message.deleted {
                return Err(DomainError::MessageDeleted(quoted));
            }
        }
        let mut events = Vec::new();
        match send.author {
            Actor::Customer(customer) => {
                if self.kind == Some(ConversationKind::Internal) {
                    return Err(DomainError::CustomerInInternalConversation);
                }
                if !self.customers.contains(&customer) {
                    return Err(DomainError::CustomerNotAParticipant(customer));
                }
                if send.visibility == Visibility::Internal {
                    return Err(invalid(
                        "visibility",
                        "customers cannot write internal notes",
                    ));
                }
                // A customer writing again reopens a finished conversation; spam stays spam.
                if self.status == Status::Closed {
                    events.push(
                        ConversationReopened {
                            by: send.author,
                            automatically: true,
                            at: send.at,
                        }
                        .into(),
                    );
                }
            }
            Actor::Agent(agent) => {
                self.writable_by_agents()?;
                if self.kind == Some(ConversationKind::Internal) && !self.members.contains(&agent) {
                    return Err(DomainError::NotAParticipant(agent));
                }
            }
            Actor::System => self.writable_by_agents()?,
        }
        events.push(
            MessageSent {
                message_id: send.message_id,
                author: send.author,
                body: send.body,
                visibility: send.visibility,
                attachments: send.attachments,
                mentions: send.mentions,
                quote_of: send.quote_of,
                at: send.at,
            }
            .into(),
        );
        Ok(events)
    }

    fn message(&self, id: MessageId) -> Result<&MessageState, DomainError> {
        self.messages
            .get(&id)
            .ok_or(DomainError::MessageNotFound(id))
    }

    fn own_message(&self, id: MessageId, by: Actor) -> Result<(), DomainError> {
        let message = self.message(id)?;
        if message.deleted {
            return Err(DomainError::MessageDeleted(id));
        }
        if !matches!(by, Actor::Agent(_)) {
            return Err(invalid("by", "only agents edit or delete messages"));
        }
        if message.author != by {
            return Err(DomainError::NotTheAuthor(id));
        }
        Ok(())
    }

    fn reader(&self, reader: Participant) -> Result<(), DomainError> {
        if self.is_participant(reader) {
            return Ok(());
        }
        Err(match reader {
            Participant::Agent(agent) if self.kind == Some(ConversationKind::Internal) => {
                DomainError::NotAParticipant(agent)
            }
            // Any agent may read a customer conversation (and so becomes a reader of it).
            Participant::Agent(_) => return Ok(()),
            Participant::Customer(customer) => DomainError::CustomerNotAParticipant(customer),
        })
    }

    fn open(&self) -> Result<(), DomainError> {
        match self.status {
            Status::Open => Ok(()),
            Status::Closed => Err(DomainError::ConversationClosed),
            Status::Spam => Err(DomainError::ConversationIsSpam),
            Status::New => Err(DomainError::ConversationNotFound),
        }
    }

    fn writable_by_agents(&self) -> Result<(), DomainError> {
        self.open()
    }

    fn customer_conversation(&self, action: &str) -> Result<(), DomainError> {
        if self.kind == Some(ConversationKind::Internal) {
            return Err(invalid(
                "conversation",
                format!("cannot {action} an internal conversation"),
            ));
        }
        Ok(())
    }

    /// Assignment, transfer, queues and pins exist for open customer conversations only.
    fn assignable(&self) -> Result<(), DomainError> {
        self.customer_conversation("assign")?;
        self.open()
    }

    /// `ConversationUnpinned` if a pin holds: for actions that end the pinner's hold.
    fn pin_released(&self, at: Timestamp) -> Option<ConversationEvent> {
        self.pinned_by
            .map(|agent| ConversationUnpinned { agent, at }.into())
    }

    fn not_pinned_by_other(&self, by: Actor) -> Result<(), DomainError> {
        match self.pinned_by {
            Some(pinner) if by != Actor::Agent(pinner) => Err(DomainError::PinnedBy(pinner)),
            _ => Ok(()),
        }
    }

    fn agent_may_see(&self, agent: AgentId) -> Result<(), DomainError> {
        if self.kind == Some(ConversationKind::Internal) && !self.members.contains(&agent) {
            return Err(DomainError::NotAParticipant(agent));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
