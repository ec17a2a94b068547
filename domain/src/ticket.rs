//! Tickets and tasks: work items that can carry and link conversations. One stream per
//! ticket: `ticket-<id>`.
//!
//! Status moves New → Open → Pending → Solved → Closed:
//!
//! | from | allowed to |
//! |---|---|
//! | New | Open, Pending, Solved |
//! | Open | Pending, Solved |
//! | Pending | Open, Solved |
//! | Solved | Open, Closed |
//! | Closed | — (final: a closed ticket changes no more) |
//!
//! Assigning a New ticket opens it. Social tickets carry a channel tag, the `messaging_support`
//! tag and a channel-info field; replies go out through the account that received the message,
//! and a WhatsApp reply more than 24 hours after the customer's last inbound message fails
//! with a `OutboundReplyFailed` event.

use crate::conversation::{Attachment, Channel, Visibility};
use crate::ids::{AgentId, ConversationId, CustomerId, MessageId, TicketId};
use crate::rules::{check_text, invalid};
use crate::{Actor, Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 50_000;
pub const MAX_TAG_CHARS: usize = 64;
/// The most files one reply carries.
pub const MAX_REPLY_FILES: usize = 10;
/// The tag every social messaging ticket carries.
pub const MESSAGING_SUPPORT_TAG: &str = "messaging_support";
/// How long after the customer's last message WhatsApp accepts a reply.
pub const WHATSAPP_WINDOW_SECS: i64 = 24 * 60 * 60;
/// How long after the customer's last message Messenger accepts a reply tagged `HUMAN_AGENT`
/// (within the first 24 hours no tag is needed).
pub const MESSENGER_HUMAN_AGENT_WINDOW_SECS: i64 = 7 * 24 * 60 * 60;
/// How long after the customer's last message WeChat accepts customer-service messages.
pub const WECHAT_WINDOW_SECS: i64 = 48 * 60 * 60;
/// How many customer-service messages WeChat accepts per message of the customer.
pub const WECHAT_REPLIES_PER_MESSAGE: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketType {
    Ticket,
    Task,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatus {
    #[default]
    New,
    Open,
    Pending,
    Solved,
    Closed,
}

impl TicketStatus {
    pub fn name(self) -> &'static str {
        match self {
            TicketStatus::New => "new",
            TicketStatus::Open => "open",
            TicketStatus::Pending => "pending",
            TicketStatus::Solved => "solved",
            TicketStatus::Closed => "closed",
        }
    }

    /// The transitions of the table in this module's documentation.
    pub fn may_become(self, to: TicketStatus) -> bool {
        use TicketStatus::*;
        matches!(
            (self, to),
            (New, Open | Pending | Solved)
                | (Open, Pending | Solved)
                | (Pending, Open | Solved)
                | (Solved, Open | Closed)
        )
    }
}

/// Where a ticket came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TicketSource {
    /// Created by an agent or an integration through the API.
    Api,
    /// Created from a conversation (optionally from one of its messages).
    Conversation {
        conversation_id: ConversationId,
        #[serde(default)]
        message_id: Option<MessageId>,
    },
    /// A message from a social messaging channel.
    Social { channel: Channel },
}

/// Which account of which social channel a ticket talks through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub channel: Channel,
    /// The help desk's account that received the message (replies go out through it).
    pub account_id: String,
    /// The customer's handle on that channel (phone number, LINE id, ...).
    pub customer_handle: String,
}

// ---------------------------------------------------------------------------------------------
// Events.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketCreated {
    pub ticket_id: TicketId,
    pub ticket_type: TicketType,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub priority: Priority,
    #[serde(default)]
    pub requester: Option<CustomerId>,
    pub source: TicketSource,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub channel_info: Option<ChannelInfo>,
    pub created_by: Actor,
    pub at: Timestamp,
    /// LINE: the reply token of the message that opened the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketTitleChanged {
    pub title: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketDescriptionChanged {
    pub description: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketPriorityChanged {
    pub priority: Priority,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketTypeChanged {
    pub ticket_type: TicketType,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketStatusChanged {
    pub from: TicketStatus,
    pub to: TicketStatus,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketAssigned {
    pub agent: AgentId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketUnassigned {
    pub agent: AgentId,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketFollowed {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketUnfollowed {
    pub agent: AgentId,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketCommented {
    pub comment_id: Uuid,
    pub author: Actor,
    pub body: String,
    pub visibility: Visibility,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketTagAdded {
    pub tag: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketTagRemoved {
    pub tag: String,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketChannelInfoSet {
    pub channel_info: Option<ChannelInfo>,
    pub by: Actor,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerMessageReceived {
    pub message_id: Uuid,
    pub body: String,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    pub at: Timestamp,
    /// LINE: the token a reply to this message can use for about a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundReplyRequested {
    pub reply_id: Uuid,
    pub body: String,
    /// The account the reply goes out through: the one that received the conversation.
    pub channel_info: ChannelInfo,
    pub by: Actor,
    pub at: Timestamp,
    /// Files sent with it (linked for the platform to fetch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundReplyDelivered {
    pub reply_id: Uuid,
    pub at: Timestamp,
    /// The id the platform gave the reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// How many sends it took (0: reported by an integration).
    #[serde(default)]
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundReplyFailed {
    pub reply_id: Uuid,
    pub reason: String,
    pub at: Timestamp,
    /// The platform's error code (`131047`, `(#10)`, `45015`...), or Parley's own for a window
    /// it checked before sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// How many sends were tried (0: refused before sending, or reported by an integration).
    #[serde(default)]
    pub attempts: u32,
}

/// What the platform reported of a reply after accepting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

impl ReceiptStatus {
    pub fn name(self) -> &'static str {
        match self {
            ReceiptStatus::Sent => "sent",
            ReceiptStatus::Delivered => "delivered",
            ReceiptStatus::Read => "read",
            ReceiptStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundReplyReceipt {
    pub reply_id: Uuid,
    pub status: ReceiptStatus,
    /// For `failed`: the platform's error code and text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub at: Timestamp,
}

event_family! {
    /// Everything that happens to a ticket.
    pub enum TicketEvent {
        TicketCreated,
        TicketTitleChanged,
        TicketDescriptionChanged,
        TicketPriorityChanged,
        TicketTypeChanged,
        TicketStatusChanged,
        TicketAssigned,
        TicketUnassigned,
        TicketFollowed,
        TicketUnfollowed,
        TicketCommented,
        TicketTagAdded,
        TicketTagRemoved,
        TicketChannelInfoSet,
        CustomerMessageReceived,
        OutboundReplyRequested,
        OutboundReplyDelivered,
        OutboundReplyFailed,
        OutboundReplyReceipt,
    }
}

// ---------------------------------------------------------------------------------------------
// Commands.

#[derive(Debug, Clone, PartialEq)]
pub struct CreateTicket {
    pub ticket_id: TicketId,
    pub ticket_type: TicketType,
    pub title: String,
    pub description: String,
    pub priority: Priority,
    pub requester: Option<CustomerId>,
    pub source: TicketSource,
    pub tags: Vec<String>,
    pub channel_info: Option<ChannelInfo>,
    pub created_by: Actor,
    pub at: Timestamp,
    /// LINE: the reply token of the message that opens the ticket.
    pub reply_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TicketCommand {
    Create(CreateTicket),
    ChangeTitle {
        title: String,
        by: Actor,
        at: Timestamp,
    },
    ChangeDescription {
        description: String,
        by: Actor,
        at: Timestamp,
    },
    ChangePriority {
        priority: Priority,
        by: Actor,
        at: Timestamp,
    },
    ChangeType {
        ticket_type: TicketType,
        by: Actor,
        at: Timestamp,
    },
    ChangeStatus {
        to: TicketStatus,
        by: Actor,
        at: Timestamp,
    },
    Assign {
        agent: AgentId,
        by: Actor,
        at: Timestamp,
    },
    Unassign {
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
    Comment {
        comment_id: Uuid,
        author: Actor,
        body: String,
        visibility: Visibility,
        attachments: Vec<Attachment>,
        at: Timestamp,
    },
    AddTag {
        tag: String,
        by: Actor,
        at: Timestamp,
    },
    RemoveTag {
        tag: String,
        by: Actor,
        at: Timestamp,
    },
    SetChannelInfo {
        channel_info: Option<ChannelInfo>,
        by: Actor,
        at: Timestamp,
    },
    ReceiveCustomerMessage {
        message_id: Uuid,
        body: String,
        attachments: Vec<Attachment>,
        reply_token: Option<String>,
        at: Timestamp,
    },
    RequestReply {
        reply_id: Uuid,
        body: String,
        attachments: Vec<Attachment>,
        by: Actor,
        at: Timestamp,
    },
    MarkReplyDelivered {
        reply_id: Uuid,
        platform_message_id: Option<String>,
        attempts: u32,
        at: Timestamp,
    },
    MarkReplyFailed {
        reply_id: Uuid,
        reason: String,
        code: Option<String>,
        attempts: u32,
        at: Timestamp,
    },
    /// The platform's later news of a delivered reply (a receipt).
    RecordReceipt {
        reply_id: Uuid,
        status: ReceiptStatus,
        code: Option<String>,
        text: Option<String>,
        at: Timestamp,
    },
}

// ---------------------------------------------------------------------------------------------
// State.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyState {
    Pending,
    Delivered,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ticket {
    pub id: Option<TicketId>,
    pub ticket_type: Option<TicketType>,
    pub title: String,
    pub description: String,
    pub priority: Option<Priority>,
    pub status: TicketStatus,
    pub requester: Option<CustomerId>,
    pub assignee: Option<AgentId>,
    pub followers: BTreeSet<AgentId>,
    pub tags: BTreeSet<String>,
    pub channel_info: Option<ChannelInfo>,
    pub last_customer_message_at: Option<Timestamp>,
    /// Replies requested since the customer's last message (WeChat allows five).
    pub replies_since_customer: u32,
    /// LINE: the last message's reply token and when it came.
    pub reply_token: Option<(String, Timestamp)>,
    pub replies: BTreeMap<Uuid, ReplyState>,
    /// The last receipt of each reply that had one.
    pub receipts: BTreeMap<Uuid, ReceiptStatus>,
    pub comments: usize,
    pub source: Option<TicketSource>,
    /// Ids of comments and inbound messages already recorded: a redelivered webhook or a
    /// retried comment is answered as done, not recorded twice.
    pub seen: BTreeSet<Uuid>,
}

impl Ticket {
    /// The platform's window a reply requested at `at` falls outside of, as Parley's code
    /// (the platform's own, so that both read alike) and reason; `None` when it may be sent.
    pub fn closed_window(
        &self,
        channel: Channel,
        at: Timestamp,
    ) -> Option<(&'static str, &'static str)> {
        let since = |secs: i64| match self.last_customer_message_at {
            Some(last) => at > last.plus_secs(secs),
            None => true,
        };
        match channel {
            Channel::Whatsapp if since(WHATSAPP_WINDOW_SECS) => Some((
                "131047",
                "WhatsApp accepts replies only within 24 hours of the customer's last message",
            )),
            Channel::Facebook if since(MESSENGER_HUMAN_AGENT_WINDOW_SECS) => Some((
                "(#10)",
                "Messenger accepts replies only within 7 days of the customer's last message",
            )),
            Channel::Wechat if since(WECHAT_WINDOW_SECS) => Some((
                "45015",
                "WeChat accepts replies only within 48 hours of the customer's last message",
            )),
            // This reply would be one more than the five allowed.
            Channel::Wechat if self.replies_since_customer >= WECHAT_REPLIES_PER_MESSAGE => Some((
                "45015",
                "WeChat accepts at most 5 replies to each message of the customer",
            )),
            _ => None,
        }
    }

    /// Carries the social tags: it shows in the social views and the notifier.
    pub fn is_social(&self) -> bool {
        self.tags.contains(MESSAGING_SUPPORT_TAG)
    }

    fn exists(&self) -> Result<(), DomainError> {
        if self.id.is_none() {
            return Err(DomainError::TicketNotFound);
        }
        if self.status == TicketStatus::Closed {
            return Err(DomainError::TicketClosed);
        }
        Ok(())
    }
}

/// Tags are compared in lower case, without surrounding blanks; inner blanks are refused.
pub fn normalize_tag(tag: &str) -> Result<String, DomainError> {
    let tag = tag.trim().to_lowercase();
    check_text("tag", &tag, MAX_TAG_CHARS, false)?;
    if tag.chars().any(char::is_whitespace) {
        return Err(invalid("tag", "must not contain blanks"));
    }
    Ok(tag)
}

/// Longest title derived from a message, in characters.
pub const DERIVED_TITLE_CHARS: usize = 80;

/// A ticket's title from the message that opens it: its first line, at most
/// [`DERIVED_TITLE_CHARS`] characters; else (a message of files alone) `otherwise`, at most
/// [`MAX_TITLE_CHARS`].
pub fn title_from_message(body: &str, otherwise: impl FnOnce() -> String) -> String {
    let first_line: String = body
        .trim()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .chars()
        .take(DERIVED_TITLE_CHARS.min(MAX_TITLE_CHARS))
        .collect();
    if first_line.is_empty() {
        otherwise().trim().chars().take(MAX_TITLE_CHARS).collect()
    } else {
        first_line
    }
}

/// The tag a social channel gives its tickets, e.g. `whatsapp`.
pub fn channel_tag(channel: Channel) -> &'static str {
    channel.name()
}

impl Aggregate for Ticket {
    type Command = TicketCommand;
    type Event = TicketEvent;
    const STREAM_PREFIX: &'static str = "ticket";

    fn decide(&self, command: TicketCommand) -> Result<Vec<TicketEvent>, DomainError> {
        use TicketCommand as C;
        if let C::Create(create) = command {
            return self.create(create);
        }
        if self.id.is_none() {
            return Err(DomainError::TicketNotFound);
        }
        // Delivery reports of replies sent earlier still arrive after a ticket is closed;
        // everything else needs a ticket that is not closed.
        if !matches!(
            command,
            C::MarkReplyDelivered { .. } | C::MarkReplyFailed { .. } | C::RecordReceipt { .. }
        ) {
            self.exists()?;
        }
        match command {
            C::Create(_) => Err(DomainError::TicketExists),
            C::ChangeTitle { title, by, at } => {
                check_text("title", &title, MAX_TITLE_CHARS, false)?;
                if title == self.title {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![TicketTitleChanged { title, by, at }.into()])
            }
            C::ChangeDescription {
                description,
                by,
                at,
            } => {
                check_text("description", &description, MAX_DESCRIPTION_CHARS, true)?;
                if description == self.description {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    TicketDescriptionChanged {
                        description,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::ChangePriority { priority, by, at } => {
                if Some(priority) == self.priority {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![TicketPriorityChanged { priority, by, at }.into()])
            }
            C::ChangeType {
                ticket_type,
                by,
                at,
            } => {
                if Some(ticket_type) == self.ticket_type {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    TicketTypeChanged {
                        ticket_type,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::ChangeStatus { to, by, at } => {
                if to == self.status {
                    return Err(DomainError::NoChange);
                }
                if !self.status.may_become(to) {
                    return Err(DomainError::InvalidTransition {
                        from: self.status.name(),
                        to: to.name(),
                    });
                }
                Ok(vec![
                    TicketStatusChanged {
                        from: self.status,
                        to,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::Assign { agent, by, at } => {
                if self.assignee == Some(agent) {
                    return Err(DomainError::AlreadyAssignedTo(agent));
                }
                let mut events = vec![TicketAssigned { agent, by, at }.into()];
                if self.status == TicketStatus::New {
                    events.push(
                        TicketStatusChanged {
                            from: TicketStatus::New,
                            to: TicketStatus::Open,
                            by,
                            at,
                        }
                        .into(),
                    );
                }
                Ok(events)
            }
            C::Unassign { by, at } => {
                let agent = self.assignee.ok_or(DomainError::Unassigned)?;
                Ok(vec![TicketUnassigned { agent, by, at }.into()])
            }
            C::Follow { agent, at } => {
                if self.followers.contains(&agent) {
                    return Err(DomainError::AlreadyFollowing(agent));
                }
                Ok(vec![TicketFollowed { agent, at }.into()])
            }
            C::Unfollow { agent, at } => {
                if !self.followers.contains(&agent) {
                    return Err(DomainError::NotFollowing(agent));
                }
                Ok(vec![TicketUnfollowed { agent, at }.into()])
            }
            C::Comment {
                comment_id,
                author,
                body,
                visibility,
                attachments,
                at,
            } => {
                if !self.new_content(comment_id, &body, &attachments)? {
                    return Ok(vec![]);
                }
                if matches!(author, Actor::Customer(_)) && visibility == Visibility::Internal {
                    return Err(invalid(
                        "visibility",
                        "customers cannot write internal comments",
                    ));
                }
                Ok(vec![
                    TicketCommented {
                        comment_id,
                        author,
                        body,
                        visibility,
                        attachments,
                        at,
                    }
                    .into(),
                ])
            }
            C::AddTag { tag, by, at } => {
                let tag = normalize_tag(&tag)?;
                if self.tags.contains(&tag) {
                    return Err(DomainError::TagPresent(tag));
                }
                Ok(vec![TicketTagAdded { tag, by, at }.into()])
            }
            C::RemoveTag { tag, by, at } => {
                let tag = normalize_tag(&tag)?;
                if !self.tags.contains(&tag) {
                    return Err(DomainError::TagAbsent(tag));
                }
                Ok(vec![TicketTagRemoved { tag, by, at }.into()])
            }
            C::SetChannelInfo {
                channel_info,
                by,
                at,
            } => {
                if let Some(info) = &channel_info {
                    check_channel_info(info)?;
                }
                if channel_info == self.channel_info {
                    return Err(DomainError::NoChange);
                }
                Ok(vec![
                    TicketChannelInfoSet {
                        channel_info,
                        by,
                        at,
                    }
                    .into(),
                ])
            }
            C::ReceiveCustomerMessage {
                message_id,
                body,
                attachments,
                reply_token,
                at,
            } => {
                if let Some(token) = &reply_token {
                    check_text("reply_token", token, 512, false)?;
                }
                if !self.new_content(message_id, &body, &attachments)? {
                    return Ok(vec![]);
                }
                let mut events = Vec::new();
                // A customer writing again reopens a ticket that was waiting or solved.
                if matches!(self.status, TicketStatus::Pending | TicketStatus::Solved) {
                    events.push(
                        TicketStatusChanged {
                            from: self.status,
                            to: TicketStatus::Open,
                            by: Actor::System,
                            at,
                        }
                        .into(),
                    );
                }
                events.push(
                    CustomerMessageReceived {
                        message_id,
                        body,
                        attachments,
                        at,
                        reply_token,
                    }
                    .into(),
                );
                Ok(events)
            }
            C::RequestReply {
                reply_id,
                body,
                attachments,
                by,
                at,
            } => {
                // A reply of files alone has no text.
                check_text(
                    "body",
                    &body,
                    MAX_DESCRIPTION_CHARS,
                    !attachments.is_empty(),
                )?;
                if attachments.len() > MAX_REPLY_FILES {
                    return Err(invalid(
                        "attachments",
                        format!("at most {MAX_REPLY_FILES} files per reply"),
                    ));
                }
                let channel_info = self
                    .channel_info
                    .clone()
                    .ok_or(DomainError::NoReplyChannel)?;
                if self.replies.contains_key(&reply_id) {
                    return Err(DomainError::ReplyExists(reply_id));
                }
                let closed_window = self.closed_window(channel_info.channel, at);
                let requested = OutboundReplyRequested {
                    reply_id,
                    body,
                    channel_info,
                    by,
                    at,
                    attachments,
                }
                .into();
                if let Some((code, reason)) = closed_window {
                    return Ok(vec![
                        requested,
                        OutboundReplyFailed {
                            reply_id,
                            reason: reason.into(),
                            at,
                            code: Some(code.into()),
                            attempts: 0,
                        }
                        .into(),
                    ]);
                }
                Ok(vec![requested])
            }
            C::MarkReplyDelivered {
                reply_id,
                platform_message_id,
                attempts,
                at,
            } => {
                self.pending_reply(reply_id)?;
                if let Some(id) = &platform_message_id {
                    check_text("platform_message_id", id, 512, false)?;
                }
                Ok(vec![
                    OutboundReplyDelivered {
                        reply_id,
                        at,
                        platform_message_id,
                        attempts,
                    }
                    .into(),
                ])
            }
            C::MarkReplyFailed {
                reply_id,
                reason,
                code,
                attempts,
                at,
            } => {
                self.pending_reply(reply_id)?;
                check_text("reason", &reason, 2_000, false)?;
                if let Some(code) = &code {
                    check_text("code", code, 64, false)?;
                }
                Ok(vec![
                    OutboundReplyFailed {
                        reply_id,
                        reason,
                        at,
                        code,
                        attempts,
                    }
                    .into(),
                ])
            }
            C::RecordReceipt {
                reply_id,
                status,
                code,
                text,
                at,
            } => {
                if !self.replies.contains_key(&reply_id) {
                    return Err(DomainError::ReplyNotPending(reply_id));
                }
                for value in [&code, &text].into_iter().flatten() {
                    check_text("receipt", value, 2_000, true)?;
                }
                // Receipts come in any order and more than once: only news is recorded, and
                // a read reply is not "delivered" again.
                let rank = |status: ReceiptStatus| match status {
                    ReceiptStatus::Sent => 0,
                    ReceiptStatus::Delivered => 1,
                    ReceiptStatus::Read => 2,
                    ReceiptStatus::Failed => 3,
                };
                if self
                    .receipts
                    .get(&reply_id)
                    .is_some_and(|last| rank(*last) >= rank(status))
                {
                    return Ok(vec![]);
                }
                Ok(vec![
                    OutboundReplyReceipt {
                        reply_id,
                        status,
                        code,
                        text,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(mut self, event: &TicketEvent) -> Self {
        use TicketEvent as E;
        match event {
            E::TicketCreated(e) => {
                self.id = Some(e.ticket_id);
                self.source = Some(e.source.clone());
                self.ticket_type = Some(e.ticket_type);
                self.title = e.title.clone();
                self.description = e.description.clone();
                self.priority = Some(e.priority);
                self.requester = e.requester;
                self.tags = e.tags.iter().cloned().collect();
                self.channel_info = e.channel_info.clone();
                if matches!(e.source, TicketSource::Social { .. }) {
                    self.last_customer_message_at = Some(e.at);
                }
                self.reply_token = e.reply_token.clone().map(|token| (token, e.at));
            }
            E::TicketTitleChanged(e) => self.title = e.title.clone(),
            E::TicketDescriptionChanged(e) => self.description = e.description.clone(),
            E::TicketPriorityChanged(e) => self.priority = Some(e.priority),
            E::TicketTypeChanged(e) => self.ticket_type = Some(e.ticket_type),
            E::TicketStatusChanged(e) => self.status = e.to,
            E::TicketAssigned(e) => self.assignee = Some(e.agent),
            E::TicketUnassigned(_) => self.assignee = None,
            E::TicketFollowed(e) => {
                self.followers.insert(e.agent);
            }
            E::TicketUnfollowed(e) => {
                self.followers.remove(&e.agent);
            }
            E::TicketCommented(e) => {
                self.comments += 1;
                self.seen.insert(e.comment_id);
            }
            E::TicketTagAdded(e) => {
                self.tags.insert(e.tag.clone());
            }
            E::TicketTagRemoved(e) => {
                self.tags.remove(&e.tag);
            }
            E::TicketChannelInfoSet(e) => self.channel_info = e.channel_info.clone(),
            E::CustomerMessageReceived(e) => {
                // Late deliveries of older messages never shrink the reply window.
                if self
                    .last_customer_message_at
                    .is_none_or(|last| e.at >= last)
                {
                    self.replies_since_customer = 0;
                    if let Some(token) = &e.reply_token {
                        self.reply_token = Some((token.clone(), e.at));
                    }
                }
                self.last_customer_message_at = self.last_customer_message_at.max(Some(e.at));
                self.seen.insert(e.message_id);
            }
            E::OutboundReplyRequested(e) => {
                self.replies.insert(e.reply_id, ReplyState::Pending);
                self.replies_since_customer = self.replies_since_customer.saturating_add(1);
            }
            E::OutboundReplyReceipt(e) => {
                self.receipts.insert(e.reply_id, e.status);
                if e.status == ReceiptStatus::Failed {
                    self.replies.insert(e.reply_id, ReplyState::Failed);
                }
            }
            E::OutboundReplyDelivered(e) => {
                self.replies.insert(e.reply_id, ReplyState::Delivered);
                // A LINE reply token is good for one reply.
                self.reply_token = None;
            }
            E::OutboundReplyFailed(e) => {
                self.replies.insert(e.reply_id, ReplyState::Failed);
            }
        }
        self
    }
}

fn check_channel_info(info: &ChannelInfo) -> Result<(), DomainError> {
    check_text("channel_info.account_id", &info.account_id, 200, false)?;
    check_text(
        "channel_info.customer_handle",
        &info.customer_handle,
        200,
        false,
    )
}

impl Ticket {
    fn create(&self, create: CreateTicket) -> Result<Vec<TicketEvent>, DomainError> {
        if self.id.is_some() {
            return Err(DomainError::TicketExists);
        }
        check_text("title", &create.title, MAX_TITLE_CHARS, false)?;
        check_text(
            "description",
            &create.description,
            MAX_DESCRIPTION_CHARS,
            true,
        )?;
        let mut tags = BTreeSet::new();
        for tag in &create.tags {
            tags.insert(normalize_tag(tag)?);
        }
        if let Some(info) = &create.channel_info {
            check_channel_info(info)?;
        }
        if let Some(token) = &create.reply_token {
            check_text("reply_token", token, 512, false)?;
        }
        // A social ticket carries its channel's tag and `messaging_support`, and its channel.
        if let TicketSource::Social { channel } = create.source {
            let info = create
                .channel_info
                .as_ref()
                .ok_or_else(|| invalid("channel_info", "a social ticket needs its channel info"))?;
            if info.channel != channel {
                return Err(invalid(
                    "channel_info",
                    "must name the channel the message came from",
                ));
            }
            tags.insert(channel_tag(channel).to_owned());
            tags.insert(MESSAGING_SUPPORT_TAG.to_owned());
        }
        Ok(vec![
            TicketCreated {
                ticket_id: create.ticket_id,
                ticket_type: create.ticket_type,
                title: create.title,
                description: create.description,
                priority: create.priority,
                requester: create.requester,
                source: create.source,
                tags: tags.into_iter().collect(),
                channel_info: create.channel_info,
                created_by: create.created_by,
                at: create.at,
                reply_token: create.reply_token,
            }
            .into(),
        ])
    }

    /// Checks a comment's or an inbound message's body; `false` if its id was recorded
    /// already (a retry or a redelivery, answered as done).
    fn new_content(
        &self,
        id: Uuid,
        body: &str,
        attachments: &[Attachment],
    ) -> Result<bool, DomainError> {
        if self.seen.contains(&id) {
            return Ok(false);
        }
        check_text("body", body, MAX_DESCRIPTION_CHARS, !attachments.is_empty())?;
        Ok(true)
    }

    fn pending_reply(&self, reply_id: Uuid) -> Result<(), DomainError> {
        match self.replies.get(&reply_id) {
            Some(ReplyState::Pending) => Ok(()),
            _ => Err(DomainError::ReplyNotPending(reply_id)),
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
