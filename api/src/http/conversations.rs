//! Conversations and their messages, `/api/v1/conversations`: starting one, writing (replies
//! and internal notes), editing and deleting messages, read marks, closing, reopening,
//! renaming, spam, assignment, transfers, queues, taking over, passing back, participants,
//! following, pins ("lock as mine"), linked tickets, and the two workflows that start from a
//! conversation: a ticket or task created from it, a new conversation started from one of its
//! messages. Reading conversations is served by the views (`GET /api/v1/conversations/{id}`).
//!
//! Who may act: staff only (admins, agents, integrations), and only on a conversation they may
//! see ([`visible_conversation`]): an internal conversation only its participating agents, a
//! customer conversation the callers who see the "from customers" section and the agents taking
//! part in it. Anyone else is answered 404, exactly as for a conversation that does not exist,
//! and before any other check, so that no answer tells that it exists. Actions about oneself
//! (read marks, following, pins, taking over, passing back to the queue) need a token that acts
//! as an agent; every other command is recorded under the caller's actor.
//!
//! Every command takes `If-Match: <stream version>` (409 with `current_version` when the
//! conversation moved on) and answers a [`CommandReply`]; the workflows answer a
//! [`WorkflowReply`], which names both streams they wrote.

use super::extract::{IfMatch, Json, Path};
use super::{AppState, CommandReply, auth::Caller, now};
use crate::problem::Problem;
use crate::service::{CommandService, Executed, ServiceError};
use crate::workflows::TicketFromConversation;
use axum::extract::State;
use axum::http::StatusCode;
use parley_domain::conversation::{
    Attachment, Channel, Conversation, ConversationCommand, ConversationKind, Participant,
    SendMessage, Start, TicketDraft, Visibility,
};
use parley_domain::customer::Customer;
use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId, QueueId, TicketId};
use parley_domain::ticket::{Priority, Ticket, TicketType};
use parley_domain::{Actor, Aggregate, DomainError, Timestamp};
use parley_eventlog::{Position, StreamId, StreamVersion};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(rename))
        .routes(routes!(send))
        .routes(routes!(edit_message, delete_message))
        .routes(routes!(mark_read))
        .routes(routes!(mark_unread))
        .routes(routes!(close))
        .routes(routes!(reopen))
        .routes(routes!(mark_spam))
        .routes(routes!(assign))
        .routes(routes!(transfer))
        .routes(routes!(change_queue))
        .routes(routes!(return_to_queue))
        .routes(routes!(take_over))
        .routes(routes!(invite, remove_participant))
        .routes(routes!(follow, unfollow))
        .routes(routes!(pin, unpin))
        .routes(routes!(link_ticket, unlink_ticket))
        .routes(routes!(create_ticket))
        .routes(routes!(start_from_message))
}

/// Most customers, members or mentions one request may name.
const MAX_PEOPLE: usize = 100;

// ---------------------------------------------------------------------------------------------
// DTOs.

/// What a conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KindDto {
    /// One or more customers, plus internal members.
    Customer,
    /// Agents only: no customer can ever join.
    Internal,
}

impl From<KindDto> for ConversationKind {
    fn from(dto: KindDto) -> ConversationKind {
        match dto {
            KindDto::Customer => ConversationKind::Customer,
            KindDto::Internal => ConversationKind::Internal,
        }
    }
}

/// Where a conversation takes place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelDto {
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

impl From<ChannelDto> for Channel {
    fn from(dto: ChannelDto) -> Channel {
        match dto {
            ChannelDto::Widget => Channel::Widget,
            ChannelDto::Email => Channel::Email,
            ChannelDto::Api => Channel::Api,
            ChannelDto::Whatsapp => Channel::Whatsapp,
            ChannelDto::Line => Channel::Line,
            ChannelDto::Wechat => Channel::Wechat,
            ChannelDto::Facebook => Channel::Facebook,
            ChannelDto::Twitter => Channel::Twitter,
            ChannelDto::Internal => Channel::Internal,
        }
    }
}

/// Who sees a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisibilityDto {
    /// Everyone in the conversation, customers included.
    #[default]
    Public,
    /// An internal note ("silent mode"): never shown to customers.
    Internal,
}

impl From<VisibilityDto> for Visibility {
    fn from(dto: VisibilityDto) -> Visibility {
        match dto {
            VisibilityDto::Public => Visibility::Public,
            VisibilityDto::Internal => Visibility::Internal,
        }
    }
}

/// A ticket, or a task (work for the team).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketTypeDto {
    #[default]
    Ticket,
    Task,
}

impl From<TicketTypeDto> for TicketType {
    fn from(dto: TicketTypeDto) -> TicketType {
        match dto {
            TicketTypeDto::Ticket => TicketType::Ticket,
            TicketTypeDto::Task => TicketType::Task,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityDto {
    Low,
    #[default]
    Normal,
    High,
    Urgent,
}

impl From<PriorityDto> for Priority {
    fn from(dto: PriorityDto) -> Priority {
        match dto {
            PriorityDto::Low => Priority::Low,
            PriorityDto::Normal => Priority::Normal,
            PriorityDto::High => Priority::High,
            PriorityDto::Urgent => Priority::Urgent,
        }
    }
}

/// A file attached to a message: one uploaded with `POST /api/v1/files`, by its id (the caller's
/// own uploads only), or a reference to a file stored elsewhere.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AttachmentDto {
    Upload(FileRef),
    Reference(AttachmentReference),
}

/// A file uploaded with `POST /api/v1/files` (or, by a visitor, `POST /widget/v1/files`): its
/// name, type, size and digest are the upload's.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// The id the upload answered.
    pub file_id: Uuid,
}

/// A file stored outside Parley; the log keeps this reference.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentReference {
    /// 1 to 255 characters.
    pub name: String,
    pub content_type: String,
    /// In bytes.
    pub size: u64,
    /// Where the file is stored (1 to 1,024 characters).
    pub storage_ref: String,
}

impl From<AttachmentReference> for Attachment {
    fn from(dto: AttachmentReference) -> Attachment {
        Attachment {
            name: dto.name,
            content_type: dto.content_type,
            size: dto.size,
            storage_ref: dto.storage_ref,
            file_id: None,
            sha256: None,
            unavailable: None,
        }
    }
}

/// A message: a reply everyone in the conversation sees, or an internal note.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// Chosen by the client to make retries safe (a retry answers 409: it exists); generated
    /// when absent.
    #[serde(default)]
    pub message_id: Option<Uuid>,
    /// Up to 20,000 characters; empty only when files are attached.
    #[serde(default)]
    pub body: String,
    /// `public` (the default) or `internal`: a note customers never see ("silent mode").
    #[serde(default)]
    pub visibility: VisibilityDto,
    /// At most 20 files: uploads (`{"file_id": ...}`) or references.
    #[serde(default)]
    pub attachments: Vec<AttachmentDto>,
    /// Agents mentioned (at most 100).
    #[serde(default)]
    pub mentions: Vec<Uuid>,
    /// A message of this conversation the new one quotes (a public message cannot quote an
    /// internal note).
    #[serde(default)]
    pub quote_of: Option<Uuid>,
}

impl NewMessage {
    /// The domain command, with `default_id` when the client chose no id, and `attachments`
    /// (this message's, resolved by `files::attachments`).
    fn into_command(
        self,
        default_id: MessageId,
        author: Actor,
        at: Timestamp,
        attachments: Vec<Attachment>,
    ) -> Result<SendMessage, DomainError> {
        if self.mentions.len() > MAX_PEOPLE {
            return Err(DomainError::Invalid {
                field: "mentions",
                reason: format!("at most {MAX_PEOPLE} per message"),
            });
        }
        Ok(SendMessage {
            message_id: self.message_id.map_or(default_id, MessageId),
            author,
            body: self.body,
            visibility: self.visibility.into(),
            attachments,
            mentions: distinct(self.mentions, AgentId),
            quote_of: self.quote_of.map(MessageId),
            at,
        })
    }
}

/// A new conversation: with customers, or internal between agents.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// Chosen by the client to make retries safe (a retry completes what an interrupted
    /// attempt started); generated when absent.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    pub kind: KindDto,
    /// By default `api` for a customer conversation, `internal` for an internal one (the only
    /// channel an internal conversation can have).
    #[serde(default)]
    pub channel: Option<ChannelDto>,
    /// The queue it waits in for an agent.
    #[serde(default)]
    pub queue: Option<Uuid>,
    /// Up to 200 characters.
    #[serde(default)]
    pub subject: String,
    /// Existing customers (a customer conversation needs one at least; an internal one has
    /// none). At most 100.
    #[serde(default)]
    pub customers: Vec<Uuid>,
    /// Agents taking part besides the caller (an internal conversation needs two agents at
    /// least, the caller included). At most 100.
    #[serde(default)]
    pub members: Vec<Uuid>,
    /// A first message, written by the caller. Its id defaults to one derived from the
    /// conversation's, so a retried start never writes it twice.
    #[serde(default)]
    pub message: Option<NewMessage>,
}

/// A message's new text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageEdit {
    /// 1 to 20,000 characters.
    pub body: String,
}

/// Marks the conversation read up to a message.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadThrough {
    /// Everything up to and including this message is read; by default the latest message.
    #[serde(default)]
    pub through: Option<Uuid>,
}

/// The conversation's attributes that can be changed in place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationPatch {
    /// The new subject: 1 to 200 characters.
    pub subject: String,
}

/// An agent to assign the conversation to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub agent: Uuid,
}

/// An agent to transfer the conversation to.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transfer {
    pub to: Uuid,
}

/// The queue the conversation moves to (it leaves its assignee).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueChange {
    pub queue: Uuid,
}

/// A pin ("lock as mine"): the conversation stays with the caller, and closes automatically no
/// earlier than `auto_close_at`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The new auto-close deadline, microseconds since the Unix epoch: in the future, and later
    /// than the current deadline.
    pub auto_close_at: i64,
}

/// A ticket or task created from the conversation; what is not given is prefilled from it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// Chosen by the client to make retries safe (a retry completes an interrupted attempt);
    /// generated when absent.
    #[serde(default)]
    pub ticket_id: Option<Uuid>,
    /// The message it is created from, if any.
    #[serde(default)]
    pub message_id: Option<Uuid>,
    /// `ticket` (the default) or `task`.
    #[serde(default)]
    pub ticket_type: TicketTypeDto,
    /// `normal` by default.
    #[serde(default)]
    pub priority: PriorityDto,
    /// By default the conversation's subject.
    #[serde(default)]
    pub title: Option<String>,
    /// By default a line about the conversation.
    #[serde(default)]
    pub description: Option<String>,
    /// By default the conversation's first customer.
    #[serde(default)]
    pub requester: Option<Uuid>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A new conversation started from a message (same customers, channel and queue).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBranch {
    /// Chosen by the client to make retries safe (a retry completes an interrupted attempt);
    /// generated when absent.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
}

/// What a workflow answers: it created something (a ticket, a conversation) and recorded it on
/// this conversation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WorkflowReply {
    /// The id of what was created.
    pub id: String,
    /// The version of what was created (use it in `If-Match` on it).
    pub stream_version: u64,
    /// This conversation's version after it recorded what was created.
    pub conversation_version: u64,
    /// The global log position of the workflow's last event (use it as `?position=` on reads
    /// to see both steps).
    pub position: u64,
    /// Events the workflow appended, both streams together (0 when a retry found it done).
    pub events: usize,
}

impl WorkflowReply {
    fn new(id: impl ToString, created: &Executed, recorded: &Executed) -> WorkflowReply {
        WorkflowReply {
            id: id.to_string(),
            stream_version: created.stream_version.0,
            conversation_version: recorded.stream_version.0,
            position: created.position.0.max(recorded.position.0),
            events: created.events + recorded.events,
        }
    }
}

/// The conversation a route acts on.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversationPath {
    /// The conversation's id.
    pub conversation_id: Uuid,
}

/// A message of a conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    /// The conversation's id.
    pub conversation_id: Uuid,
    /// The message's id.
    pub message_id: Uuid,
}

/// Someone taking part in a conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ParticipantPath {
    /// The conversation's id.
    pub conversation_id: Uuid,
    /// An agent's id (invited or removed), or a customer's (removed; a customer conversation
    /// keeps one customer at least).
    pub participant_id: Uuid,
}

/// A ticket linked to a conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketPath {
    /// The conversation's id.
    pub conversation_id: Uuid,
    /// The ticket's id.
    pub ticket_id: Uuid,
}

/// The optional precondition of every command on an existing conversation.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct Precondition {
    /// The conversation's stream version the client decided on: the command is refused with
    /// 409 (and `current_version`) if the conversation is at another version.
    #[param(rename = "If-Match")]
    pub if_match: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Who may see what.

/// A conversation as the log has it now, loaded for a caller who may see it.
pub(crate) struct VisibleConversation {
    pub stream: StreamId,
    pub conversation: Arc<Conversation>,
    pub version: StreamVersion,
    pub position: Position,
}

/// Whether `caller` may see (and act on) `conversation` through the `/api` routes: an internal
/// conversation only its participating agents; a customer conversation the callers who see the
/// "from customers" section, and the agents taking part in it (assigned, member, follower).
/// A conversation that has not started is nobody's. Widget visitors see none here.
pub(crate) fn may_see(caller: &Caller, conversation: &Conversation) -> bool {
    let agent = caller.agent();
    let member = agent.is_some_and(|agent| conversation.members.contains(&agent));
    match conversation.kind {
        None => false,
        Some(ConversationKind::Internal) => member,
        Some(ConversationKind::Customer) => {
            caller.sees_from_customers()
                || member
                || agent.is_some_and(|agent| {
                    conversation.assignee == Some(agent) || conversation.followers.contains(&agent)
                })
        }
    }
}

/// The conversation `id` if `caller` may see it ([`may_see`]); 404 otherwise, exactly as for
/// a conversation that does not exist.
pub(crate) async fn visible_conversation(
    state: &AppState,
    caller: &Caller,
    id: ConversationId,
) -> Result<VisibleConversation, Problem> {
    let stream = CommandService::stream::<Conversation>(id)?;
    let (conversation, version, position) = state.service.load::<Conversation>(&stream).await?;
    if !may_see(caller, &conversation) {
        return Err(no_such_conversation());
    }
    Ok(VisibleConversation {
        stream,
        conversation,
        version,
        position,
    })
}

impl VisibleConversation {
    /// Runs `command` on this conversation, as `caller`, if it is at `if_match` (when given).
    /// Who may see it is checked again on the state the command is decided on: the caller may
    /// have been removed since this conversation was read.
    async fn execute(
        &self,
        state: &AppState,
        caller: &Caller,
        IfMatch(if_match): IfMatch,
        command: ConversationCommand,
    ) -> Result<Executed, Problem> {
        state
            .service
            .execute_guarded::<Conversation, Problem>(
                &self.stream,
                command,
                &caller.metadata(),
                if_match,
                |conversation| seen_by(caller, conversation),
            )
            .await
    }

    /// The answer for a command that changes nothing: the conversation as it is.
    fn unchanged(&self) -> Executed {
        Executed::unchanged(self.version, self.position)
    }

    /// The message `id` of this conversation (deleted ones included: the domain answers what
    /// may be done with those).
    fn message(&self, id: Uuid) -> Option<MessageId> {
        let id = MessageId(id);
        self.conversation.messages.contains_key(&id).then_some(id)
    }
}

/// [`may_see`] as a guard: 404 for a conversation `caller` may not see.
fn seen_by(caller: &Caller, conversation: &Conversation) -> Result<(), Problem> {
    if may_see(caller, conversation) {
        Ok(())
    } else {
        Err(no_such_conversation())
    }
}

fn no_such_conversation() -> Problem {
    Problem::not_found("no such conversation")
}

fn no_such_message() -> Problem {
    Problem::not_found("no such message in this conversation")
}

/// Staff only: the conversation `id`, if the caller may see it.
async fn target(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<VisibleConversation, Problem> {
    caller.require_staff()?;
    visible_conversation(state, caller, ConversationId(id)).await
}

/// For the workflows, which write two streams: the conversation, refused at once unless it is
/// at `if_match` (when given).
async fn target_at(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    IfMatch(if_match): IfMatch,
) -> Result<VisibleConversation, Problem> {
    let target = target(state, caller, id).await?;
    match if_match {
        Some(expected) if expected != target.version => Err(ServiceError::VersionMismatch {
            expected,
            current: target.version,
        }
        .into()),
        _ => Ok(target),
    }
}

/// The common shape of a command: staff only, on a conversation the caller may see, under
/// `If-Match`.
async fn act(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    if_match: IfMatch,
    command: ConversationCommand,
) -> Result<Executed, Problem> {
    act_if(state, caller, id, if_match, command, |_| Ok(())).await
}

/// Like [`act`], for a command on a message of the conversation (404 when it holds none with
/// that id).
async fn act_on_message(
    state: &AppState,
    caller: &Caller,
    path: &MessagePath,
    if_match: IfMatch,
    command: impl FnOnce(MessageId) -> ConversationCommand,
) -> Result<Executed, Problem> {
    let message_id = MessageId(path.message_id);
    let has_message = |conversation: &Conversation| {
        if conversation.messages.contains_key(&message_id) {
            Ok(())
        } else {
            Err(no_such_message())
        }
    };
    act_if(
        state,
        caller,
        path.conversation_id,
        if_match,
        command(message_id),
        has_message,
    )
    .await
}

/// [`act`] when `also` accepts the conversation too. Who may see it, and `also`, are checked
/// on the very state the command is decided on (see `CommandService::execute_guarded`), so
/// that a command needs no read of its own before it runs.
async fn act_if(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    IfMatch(if_match): IfMatch,
    command: ConversationCommand,
    also: impl Fn(&Conversation) -> Result<(), Problem>,
) -> Result<Executed, Problem> {
    caller.require_staff()?;
    let stream = CommandService::stream::<Conversation>(ConversationId(id))?;
    let visible = |conversation: &Conversation| {
        seen_by(caller, conversation)?;
        also(conversation)
    };
    state
        .service
        .execute_guarded::<Conversation, Problem>(
            &stream,
            command,
            &caller.metadata(),
            if_match,
            visible,
        )
        .await
}

/// The ids in `ids`, each once, in the order first given.
fn distinct<T>(ids: Vec<Uuid>, id: impl Fn(Uuid) -> T) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|uuid| seen.insert(*uuid))
        .map(id)
        .collect()
}

/// The channel of a new conversation of `kind`, from what the client asked.
fn channel_for(kind: ConversationKind, asked: Option<ChannelDto>) -> Result<Channel, DomainError> {
    let invalid = |reason: &str| DomainError::Invalid {
        field: "channel",
        reason: reason.to_owned(),
    };
    match (kind, asked.map(Channel::from)) {
        (ConversationKind::Internal, None | Some(Channel::Internal)) => Ok(Channel::Internal),
        (ConversationKind::Internal, Some(_)) => {
            Err(invalid("an internal conversation's channel is `internal`"))
        }
        (ConversationKind::Customer, Some(Channel::Internal)) => {
            Err(invalid("`internal` is for internal conversations"))
        }
        (ConversationKind::Customer, asked) => Ok(asked.unwrap_or(Channel::Api)),
    }
}

/// 422 unless every customer exists and was not merged into another.
async fn check_customers(state: &AppState, customers: &[CustomerId]) -> Result<(), Problem> {
    for &customer in customers {
        let stream = CommandService::stream::<Customer>(customer)?;
        let (found, _, _) = state.service.load::<Customer>(&stream).await?;
        match (found.id, found.merged_into) {
            (None, _) => {
                return Err(Problem::invalid(format!(
                    "customers: customer {customer} does not exist"
                )));
            }
            (Some(_), Some(survivor)) => {
                return Err(Problem::invalid(format!(
                    "customers: customer {customer} was merged into customer {survivor}"
                )));
            }
            (Some(_), None) => {}
        }
    }
    Ok(())
}

/// The id of a new conversation's first message when the client chose none: derived from a
/// client-chosen conversation id (a retry names the same message), else new.
pub(super) fn first_message_id(conversation_id: ConversationId, client_chosen: bool) -> MessageId {
    if client_chosen {
        MessageId(Uuid::new_v5(&conversation_id.0, b"first-message"))
    } else {
        MessageId(crate::ids::new_id("message"))
    }
}

// ---------------------------------------------------------------------------------------------
// Starting and writing.

/// Starts a conversation, with a first message if given: with customers (who must exist), or
/// internal between agents. The caller takes part in it. With a client-chosen id, a retry
/// completes what an interrupted attempt started.
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations",
    request_body = NewConversation,
    responses((status = 201, body = CommandReply, description = "`id` is the conversation's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<NewConversation>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let kind = ConversationKind::from(request.kind);
    let channel = channel_for(kind, request.channel)?;
    if request.customers.len() > MAX_PEOPLE || request.members.len() > MAX_PEOPLE {
        return Err(Problem::invalid(format!(
            "customers, members: at most {MAX_PEOPLE} each"
        )));
    }
    if kind == ConversationKind::Internal && !request.customers.is_empty() {
        return Err(Problem::invalid(
            "customers: an internal conversation has no customers",
        ));
    }
    let conversation_id = ConversationId(
        request
            .conversation_id
            .unwrap_or_else(|| crate::ids::new_id("conversation")),
    );
    let at = now();
    let by = caller.actor();
    let start = Start {
        conversation_id,
        kind,
        channel,
        queue: request.queue.map(QueueId),
        subject: request.subject,
        started_by: by,
        customers: distinct(request.customers, CustomerId),
        members: distinct(request.members, AgentId),
        origin: None,
        at,
    };
    let first = match request.message {
        Some(mut message) => {
            let default_id = first_message_id(conversation_id, request.conversation_id.is_some());
            let attachments = super::files::attachments(
                &state,
                &caller,
                std::mem::take(&mut message.attachments),
            )
            .await?;
            Some(message.into_command(default_id, by, at, attachments)?)
        }
        None => None,
    };
    // Both steps are decided on a blank conversation first: an invalid first message starts
    // nothing.
    let blank = Conversation::default();
    let started = blank.decide(ConversationCommand::Start(start.clone()))?;
    if let Some(first) = &first {
        started
            .iter()
            .fold(blank, Conversation::evolve)
            .decide(ConversationCommand::SendMessage(first.clone()))?;
    }
    let stream = CommandService::stream::<Conversation>(conversation_id)?;
    // A retry whose first attempt started the conversation already: its customers were
    // checked then (one may have been merged since).
    if !state.service.acted_before(&stream).await? {
        check_customers(&state, &start.customers).await?;
    }

    let metadata = caller.metadata();
    let (started, resumed) = match state
        .service
        .execute::<Conversation>(&stream, ConversationCommand::Start(start), &metadata)
        .await
    {
        // A retry resumes a conversation the caller sees, of the same kind and channel; any
        // other holder of the id is a conflict.
        Err(ServiceError::Domain(DomainError::ConversationExists)) => {
            let taken = || Problem::conflict("a conversation with this id exists");
            let existing = visible_conversation(&state, &caller, conversation_id)
                .await
                .map_err(|problem| match problem.status {
                    404 => taken(),
                    _ => problem,
                })?;
            if existing.conversation.kind != Some(kind)
                || existing.conversation.channel != Some(channel)
            {
                return Err(taken());
            }
            (existing.unchanged(), true)
        }
        other => (other?, false),
    };
    let executed = match first {
        None => started,
        Some(first) => match state
            .service
            .execute::<Conversation>(&stream, ConversationCommand::SendMessage(first), &metadata)
            .await
        {
            Err(ServiceError::Domain(DomainError::MessageExists(_))) if resumed => {
                visible_conversation(&state, &caller, conversation_id)
                    .await?
                    .unchanged()
            }
            other => {
                let sent = other?;
                Executed {
                    events: started.events + sent.events,
                    ..sent
                }
            }
        },
    };
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(conversation_id, &executed)),
    ))
}

/// Writes in the conversation as the caller: a reply everyone in it sees, or an internal note
/// (`visibility: internal`, "silent mode") customers never see. Agents cannot write in closed
/// conversations or in ones marked as spam (409); in an internal conversation only its members.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/messages",
    tag = "conversations", params(ConversationPath, Precondition), request_body = NewMessage,
    responses((status = 201, body = CommandReply, description = "`id` is the message's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn send(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(mut request): Json<NewMessage>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let message_id = request
        .message_id
        .map_or_else(|| MessageId(crate::ids::new_id("message")), MessageId);
    let attachments =
        super::files::attachments(&state, &caller, std::mem::take(&mut request.attachments))
            .await?;
    let command = request.into_command(message_id, caller.actor(), now(), attachments)?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::SendMessage(command),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(message_id, &executed)),
    ))
}

/// Edits one of the caller's own messages (only its author may; the original stays in the
/// history).
#[utoipa::path(patch, path = "/api/v1/conversations/{conversation_id}/messages/{message_id}",
    tag = "conversations", params(MessagePath, Precondition), request_body = MessageEdit,
    responses((status = 200, body = CommandReply, description = "`id` is the message's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<MessagePath>,
    Json(request): Json<MessageEdit>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act_on_message(&state, &caller, &path, if_match, |message_id| {
        ConversationCommand::EditMessage {
            message_id,
            body: request.body,
            by,
            at: now(),
        }
    })
    .await?;
    Ok(Json(CommandReply::new(path.message_id, &executed)))
}

/// Deletes one of the caller's own messages (only its author may; the history keeps it).
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/messages/{message_id}",
    tag = "conversations", params(MessagePath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the message's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<MessagePath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act_on_message(&state, &caller, &path, if_match, |message_id| {
        ConversationCommand::DeleteMessage {
            message_id,
            by,
            at: now(),
        }
    })
    .await?;
    Ok(Json(CommandReply::new(path.message_id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Read marks (the calling agent's own).

/// Marks the conversation read by the calling agent, up to a message (by default the latest).
/// Marking read what is already read changes nothing (`events: 0`).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/read",
    tag = "conversations", params(ConversationPath, Precondition), request_body = ReadThrough,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<ReadThrough>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let id = path.conversation_id;
    let target = target(&state, &caller, id).await?;
    let through = match request.through {
        Some(through) => target.message(through).ok_or_else(no_such_message)?,
        None => match target
            .conversation
            .messages
            .iter()
            .max_by_key(|(_, message)| message.seq)
        {
            Some((latest, _)) => *latest,
            // Nothing to read yet.
            None => return Ok(Json(CommandReply::new(id, &target.unchanged()))),
        },
    };
    let executed = target
        .execute(
            &state,
            &caller,
            if_match,
            ConversationCommand::MarkRead {
                reader: Participant::Agent(agent),
                through,
                at: now(),
            },
        )
        .await?;
    Ok(Json(CommandReply::new(id, &executed)))
}

/// Marks a message, and the ones after it, unread for the calling agent.
#[utoipa::path(post,
    path = "/api/v1/conversations/{conversation_id}/messages/{message_id}/unread",
    tag = "conversations", params(MessagePath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the message's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn mark_unread(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<MessagePath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act_on_message(&state, &caller, &path, if_match, |message_id| {
        ConversationCommand::MarkUnread {
            reader: Participant::Agent(agent),
            message_id,
            at: now(),
        }
    })
    .await?;
    Ok(Json(CommandReply::new(path.message_id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Status and subject.

/// Finishes the conversation; a customer conversation asks its customers for a rating (once).
/// A customer writing again reopens it.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/close",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn close(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Close { by, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Reopens a closed conversation (one marked as spam stays spam).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/reopen",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Reopen { by, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Renames the conversation (its subject).
#[utoipa::path(patch, path = "/api/v1/conversations/{conversation_id}", tag = "conversations",
    params(ConversationPath, Precondition), request_body = ConversationPatch,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn rename(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<ConversationPatch>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Rename {
            subject: request.subject,
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Marks a customer conversation as spam: it ends, without a rating request, and a customer
/// writing again does not reopen it.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/spam",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn mark_spam(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::MarkSpam { by, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Who handles it: assignment, transfers, queues (open customer conversations only).

/// Assigns an open customer conversation to an agent (not while another agent's pin holds).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/assign",
    tag = "conversations", params(ConversationPath, Precondition), request_body = Assignment,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<Assignment>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Assign {
            agent: AgentId(request.agent),
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Transfers an open customer conversation to a specific agent (not while another agent's pin
/// holds; the pinner's own transfer ends the pin).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/transfer",
    tag = "conversations", params(ConversationPath, Precondition), request_body = Transfer,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<Transfer>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Transfer {
            to: AgentId(request.to),
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Moves an open customer conversation to another queue (channel of agents); it leaves its
/// assignee.
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/queue",
    tag = "conversations", params(ConversationPath, Precondition), request_body = QueueChange,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn change_queue(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<QueueChange>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::ChangeQueue {
            queue: QueueId(request.queue),
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Passes a conversation assigned to the calling agent back to its queue, for other agents.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/return-to-queue",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn return_to_queue(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::ReturnToQueue { agent, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// The calling agent takes over a conversation assigned to another agent (not while that
/// agent's pin holds).
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/take-over",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn take_over(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::TakeOver { agent, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Participants, followers, pins.

/// Invites an agent into the conversation (into an internal one, only its members may).
#[utoipa::path(put,
    path = "/api/v1/conversations/{conversation_id}/participants/{participant_id}",
    tag = "conversations", params(ParticipantPath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the agent's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ParticipantPath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Invite {
            agent: AgentId(path.participant_id),
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.participant_id, &executed)))
}

/// Removes an agent, or a customer (a customer conversation keeps one at least), from the
/// conversation. An agent removed loses its assignment and pin.
#[utoipa::path(delete,
    path = "/api/v1/conversations/{conversation_id}/participants/{participant_id}",
    tag = "conversations", params(ParticipantPath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the participant's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn remove_participant(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ParticipantPath>,
) -> Result<Json<CommandReply>, Problem> {
    let target = target(&state, &caller, path.conversation_id).await?;
    let customer = CustomerId(path.participant_id);
    let participant = if target.conversation.customers.contains(&customer) {
        Participant::Customer(customer)
    } else {
        Participant::Agent(AgentId(path.participant_id))
    };
    let command = ConversationCommand::RemoveParticipant {
        participant,
        by: caller.actor(),
        at: now(),
    };
    let executed = target.execute(&state, &caller, if_match, command).await?;
    Ok(Json(CommandReply::new(path.participant_id, &executed)))
}

/// The calling agent follows the conversation (gets its messages).
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/follow",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Follow { agent, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// The calling agent stops following the conversation.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/follow",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn unfollow(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Unfollow { agent, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Pins an open customer conversation to the calling agent ("lock as mine"): it is assigned to
/// them if it was unassigned, nobody else takes it over, transfers it or passes it back while
/// the pin holds, and its auto-close deadline moves later.
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/pin",
    tag = "conversations", params(ConversationPath, Precondition), request_body = PinRequest,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn pin(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<PinRequest>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Pin {
            agent,
            auto_close_at: Timestamp(request.auto_close_at),
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

/// Ends the calling agent's pin.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/pin",
    tag = "conversations", params(ConversationPath, Precondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn unpin(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::Unpin { agent, at: now() },
    )
    .await?;
    Ok(Json(CommandReply::new(path.conversation_id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Tickets and branches.

/// Links an existing ticket to a customer conversation.
#[utoipa::path(put, path = "/api/v1/conversations/{conversation_id}/tickets/{ticket_id}",
    tag = "conversations", params(TicketPath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the ticket's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn link_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let target = target(&state, &caller, path.conversation_id).await?;
    let ticket_id = TicketId(path.ticket_id);
    let (ticket, _, _) = state
        .service
        .load::<Ticket>(&CommandService::stream::<Ticket>(ticket_id)?)
        .await?;
    if ticket.id.is_none() {
        return Err(Problem::not_found("no such ticket"));
    }
    let executed = target
        .execute(
            &state,
            &caller,
            if_match,
            ConversationCommand::LinkTicket {
                ticket_id,
                by: caller.actor(),
                at: now(),
            },
        )
        .await?;
    Ok(Json(CommandReply::new(ticket_id, &executed)))
}

/// Unlinks a ticket from the conversation.
#[utoipa::path(delete, path = "/api/v1/conversations/{conversation_id}/tickets/{ticket_id}",
    tag = "conversations", params(TicketPath, Precondition),
    responses((status = 200, body = CommandReply, description = "`id` is the ticket's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn unlink_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let by = caller.actor();
    let executed = act(
        &state,
        &caller,
        path.conversation_id,
        if_match,
        ConversationCommand::UnlinkTicket {
            ticket_id: TicketId(path.ticket_id),
            by,
            at: now(),
        },
    )
    .await?;
    Ok(Json(CommandReply::new(path.ticket_id, &executed)))
}

/// Creates a ticket or task from a customer conversation (optionally from one of its
/// messages), prefilled from it (subject as title, first customer as requester; every field
/// can be given instead), and links it to the conversation. With a client-chosen ticket id, a
/// retry completes an interrupted attempt. `If-Match` applies to the conversation.
#[utoipa::path(post, path = "/api/v1/conversations/{conversation_id}/tickets",
    tag = "conversations", params(ConversationPath, Precondition), request_body = NewTicket,
    responses((status = 201, body = WorkflowReply, description = "`id` is the ticket's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<ConversationPath>,
    Json(request): Json<NewTicket>,
) -> Result<(StatusCode, Json<WorkflowReply>), Problem> {
    let conversation_id = ConversationId(path.conversation_id);
    let target = target_at(&state, &caller, path.conversation_id, if_match).await?;
    let message_id = match request.message_id {
        Some(message) => Some(target.message(message).ok_or_else(no_such_message)?),
        None => None,
    };
    let ticket_id = TicketId(
        request
            .ticket_id
            .unwrap_or_else(|| crate::ids::new_id("ticket")),
    );
    let (created, linked) = state
        .service
        .create_ticket_from_conversation(
            TicketFromConversation {
                conversation_id,
                message_id,
                ticket_id,
                ticket_type: request.ticket_type.into(),
                priority: request.priority.into(),
                edits: TicketDraft {
                    title: request.title,
                    description: request.description,
                    requester: request.requester.map(CustomerId),
                },
                tags: request.tags,
                by: caller.actor(),
                at: now(),
            },
            &caller.metadata(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkflowReply::new(ticket_id, &created, &linked)),
    ))
}

/// Starts a new conversation from a message of this one: same customers (or, for an internal
/// conversation, same members), channel and queue, subject "Re: …"; both conversations record
/// the link. An internal note cannot start a conversation customers see. With a client-chosen
/// id, a retry completes an interrupted attempt. `If-Match` applies to this conversation.
#[utoipa::path(post,
    path = "/api/v1/conversations/{conversation_id}/messages/{message_id}/conversations",
    tag = "conversations", params(MessagePath, Precondition), request_body = NewBranch,
    responses((status = 201, body = WorkflowReply,
               description = "`id` is the new conversation's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn start_from_message(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<MessagePath>,
    Json(request): Json<NewBranch>,
) -> Result<(StatusCode, Json<WorkflowReply>), Problem> {
    let origin = ConversationId(path.conversation_id);
    let target = target_at(&state, &caller, path.conversation_id, if_match).await?;
    let message_id = target
        .message(path.message_id)
        .ok_or_else(no_such_message)?;
    let new_id = ConversationId(
        request
            .conversation_id
            .unwrap_or_else(|| crate::ids::new_id("conversation")),
    );
    let (started, branched) = state
        .service
        .start_conversation_from_message(
            origin,
            message_id,
            new_id,
            caller.actor(),
            now(),
            &caller.metadata(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkflowReply::new(new_id, &started, &branched)),
    ))
}
