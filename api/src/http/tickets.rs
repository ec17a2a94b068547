//! Tickets and tasks, `/api/v1/tickets`: creating and editing them, their status flow,
//! assignee, followers, comments, tags and channel info; and social messaging: messages from
//! WhatsApp, LINE, WeChat, Facebook and Twitter (`POST /api/v1/social/messages`) become social
//! tickets of a customer created on first contact, and replies go out through the account that
//! received the message, with their delivery reported back by the channel's integration.
//! Reading tickets is served by the views (`GET /api/v1/tickets/{ticket_id}`).
//!
//! Who may act: staff (admins, agents, integrations); widget visitors are refused. Following
//! needs a token that acts as an agent (one follows for oneself).
//!
//! Every command on an existing ticket takes `If-Match: <stream version>` (409 with
//! `current_version` when the ticket moved on) and answers a [`CommandReply`]. `PUT` and
//! `DELETE` are idempotent: asking for what is already so (a status the ticket has, a tag it
//! carries or lacks, an assignee it has...) answers 200 with `events: 0`.

use super::conversations::{AttachmentDto, PriorityDto, TicketTypeDto, VisibilityDto};
use super::extract::{IfMatch, Json, Path};
use super::{AppState, CommandReply, auth::Caller, now};
use crate::problem::Problem;
use crate::service::{CommandService, Executed, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use parley_domain::conversation::Channel;
use parley_domain::customer::{ChannelIdentity, Customer};
use parley_domain::ids::{AgentId, CustomerId, TicketId};
use parley_domain::ticket::{
    ChannelInfo, CreateTicket, Priority, ReplyState, Ticket, TicketCommand, TicketSource,
    TicketStatus, TicketType, title_from_message,
};
use parley_domain::{Aggregate, DomainError, Timestamp};
use parley_eventlog::{Metadata, StreamId, StreamVersion};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(new_ticket))
        .routes(routes!(edit_ticket))
        .routes(routes!(change_ticket_status))
        .routes(routes!(assign_ticket, unassign_ticket))
        .routes(routes!(follow_ticket, unfollow_ticket))
        .routes(routes!(comment_ticket))
        .routes(routes!(tag_ticket, untag_ticket))
        .routes(routes!(set_ticket_channel_info, clear_ticket_channel_info))
        .routes(routes!(request_ticket_reply))
        .routes(routes!(ticket_reply_delivered))
        .routes(routes!(ticket_reply_failed))
        .routes(routes!(receive_social_message))
}

/// Namespace of the ids derived from a channel's own message ids (a fixed random UUID).
const SOCIAL_NAMESPACE: Uuid = Uuid::from_u128(0x1c9e_52a4_7d03_4f8b_b6e1_93a0_5c2f_d847);
/// How far in the future a channel's `sent_at` may be (clocks differ a little).
const MAX_CLOCK_SKEW_SECS: i64 = 5 * 60;
/// The earliest `sent_at` accepted: 2000-01-01, so that seconds sent for microseconds are
/// refused instead of dating a message to 1970.
const EARLIEST_SENT_AT: Timestamp = Timestamp::from_secs(946_684_800);

// ---------------------------------------------------------------------------------------------
// DTOs.

/// A ticket created through the API.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketRequest {
    /// Chosen by the client to make retries safe (a retry answers 409: it exists); generated
    /// when absent.
    #[serde(default)]
    pub ticket_id: Option<Uuid>,
    /// `ticket` (the default) or `task`.
    #[serde(default)]
    pub ticket_type: TicketTypeDto,
    /// 1 to 200 characters.
    pub title: String,
    /// Up to 50,000 characters.
    #[serde(default)]
    pub description: String,
    /// `normal` by default.
    #[serde(default)]
    pub priority: PriorityDto,
    /// The customer who asked (a customer merged into another stands for the survivor).
    #[serde(default)]
    pub requester: Option<Uuid>,
    /// Tags (compared in lower case; no blanks inside a tag).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The social messaging account replies go out through, if any.
    #[serde(default)]
    pub channel_info: Option<ChannelInfoDto>,
}

/// A ticket's attributes that can be changed in place; every field present is one change,
/// applied in this order.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketEdit {
    /// 1 to 200 characters.
    #[serde(default)]
    pub title: Option<String>,
    /// Up to 50,000 characters.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<PriorityDto>,
    #[serde(default)]
    pub ticket_type: Option<TicketTypeDto>,
}

/// A ticket's status: new → open → pending → solved → closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TicketStatusDto {
    New,
    Open,
    Pending,
    Solved,
    /// Final: a closed ticket changes no more.
    Closed,
}

impl From<TicketStatusDto> for TicketStatus {
    fn from(dto: TicketStatusDto) -> TicketStatus {
        match dto {
            TicketStatusDto::New => TicketStatus::New,
            TicketStatusDto::Open => TicketStatus::Open,
            TicketStatusDto::Pending => TicketStatus::Pending,
            TicketStatusDto::Solved => TicketStatus::Solved,
            TicketStatusDto::Closed => TicketStatus::Closed,
        }
    }
}

/// The status a ticket moves to. Allowed: new → open, pending, solved; open → pending,
/// solved; pending → open, solved; solved → open, closed. Anything else is a 409.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketStatusChange {
    pub status: TicketStatusDto,
}

/// The agent a ticket is assigned to (assigning a new ticket opens it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketAssignment {
    pub agent: Uuid,
}

/// A comment on a ticket.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketComment {
    /// Chosen by the client to make retries safe (a retry is answered as done, with
    /// `events: 0`); generated when absent.
    #[serde(default)]
    pub comment_id: Option<Uuid>,
    /// Up to 50,000 characters; empty only when files are attached.
    #[serde(default)]
    pub body: String,
    /// `public` or `internal` (never shown to customers). Required: who reads it is never
    /// left to a default.
    pub visibility: VisibilityDto,
    /// Files: uploads (`{"file_id": ...}`, the caller's own) or references.
    #[serde(default)]
    pub attachments: Vec<AttachmentDto>,
}

/// A social messaging channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SocialChannelDto {
    Whatsapp,
    Line,
    Wechat,
    Facebook,
    Twitter,
}

impl From<SocialChannelDto> for Channel {
    fn from(dto: SocialChannelDto) -> Channel {
        match dto {
            SocialChannelDto::Whatsapp => Channel::Whatsapp,
            SocialChannelDto::Line => Channel::Line,
            SocialChannelDto::Wechat => Channel::Wechat,
            SocialChannelDto::Facebook => Channel::Facebook,
            SocialChannelDto::Twitter => Channel::Twitter,
        }
    }
}

/// Which account of which social channel a ticket talks through.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInfoDto {
    pub channel: SocialChannelDto,
    /// The help desk's account that received the message (replies go out through it); 1 to
    /// 200 characters.
    pub account_id: String,
    /// The customer's handle on that channel (phone number, LINE id...); 1 to 200 characters.
    pub customer_handle: String,
}

impl From<ChannelInfoDto> for ChannelInfo {
    fn from(dto: ChannelInfoDto) -> ChannelInfo {
        ChannelInfo {
            channel: dto.channel.into(),
            account_id: dto.account_id,
            customer_handle: dto.customer_handle,
        }
    }
}

/// A reply to the customer, sent through the ticket's channel account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicketReply {
    /// Chosen by the client to make retries safe (a retry answers 409: it exists); generated
    /// when absent.
    #[serde(default)]
    pub reply_id: Option<Uuid>,
    /// Up to 50,000 characters; empty only when files are attached.
    #[serde(default)]
    pub body: String,
    /// Files sent with the reply (the caller's uploads, `{"file_id": ...}`, at most 10): the
    /// platform fetches each through a signed link under the server's public URL.
    #[serde(default)]
    pub attachments: Vec<AttachmentDto>,
}

/// Where a reply stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryDto {
    /// Requested; the channel has not reported yet.
    Pending,
    Delivered,
    /// Refused by the channel (or before it: WhatsApp replies more than 24 hours after the
    /// customer's last message). The reason is in the ticket's entries.
    Failed,
}

impl From<ReplyState> for DeliveryDto {
    fn from(state: ReplyState) -> DeliveryDto {
        match state {
            ReplyState::Pending => DeliveryDto::Pending,
            ReplyState::Delivered => DeliveryDto::Delivered,
            ReplyState::Failed => DeliveryDto::Failed,
        }
    }
}

/// What requesting a reply answers: the command's reply (`id` is the reply's) and where the
/// reply stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketReplyAnswer {
    #[serde(flatten)]
    pub reply: CommandReply,
    pub delivery: DeliveryDto,
}

/// Why the channel did not deliver a reply.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyFailure {
    /// 1 to 2,000 characters.
    pub reason: String,
}

/// A message a customer sent through a social messaging channel, as its integration relays it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundSocialMessage {
    pub channel: SocialChannelDto,
    /// The help desk's account that received it (replies go out through it).
    pub account_id: String,
    /// The customer's handle on the channel (phone number, LINE or WeChat id, Facebook id,
    /// Twitter handle): the customer is created on first contact through it.
    pub customer_handle: String,
    /// The customer's display name, kept when the customer is first met.
    #[serde(default)]
    pub customer_name: Option<String>,
    /// The channel's own id of the message: a redelivery with the same id is answered as done.
    /// Without it, use an `Idempotency-Key` to retry safely.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Up to 50,000 characters; empty only when files are attached.
    #[serde(default)]
    pub body: String,
    /// Files: uploads (`{"file_id": ...}`, the caller's own) or references.
    #[serde(default)]
    pub attachments: Vec<AttachmentDto>,
    /// When the customer sent it, microseconds since the Unix epoch, as the channel reports;
    /// now by default. Not in the future. WhatsApp accepts replies for 24 hours after it.
    #[serde(default)]
    pub sent_at: Option<i64>,
    /// The social ticket this message continues; without it a new social ticket is created.
    #[serde(default)]
    pub ticket_id: Option<Uuid>,
    /// The title of a new ticket; by default the beginning of the message.
    #[serde(default)]
    pub title: Option<String>,
}

/// What receiving a social message answers: the command's reply (`id` is the ticket's), the
/// customer it came from (after merges, the survivor) and the message's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundSocialAnswer {
    #[serde(flatten)]
    pub reply: CommandReply,
    pub customer_id: Uuid,
    pub message_id: Uuid,
}

/// The ticket a route acts on.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketPath {
    /// The ticket's id.
    pub ticket_id: Uuid,
}

/// A tag of a ticket.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketTagPath {
    /// The ticket's id.
    pub ticket_id: Uuid,
    /// The tag (compared in lower case).
    pub tag: String,
}

/// A reply of a ticket.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketReplyPath {
    /// The ticket's id.
    pub ticket_id: Uuid,
    /// The reply's id.
    pub reply_id: Uuid,
}

/// The optional precondition of a command on an existing stream.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct StreamPrecondition {
    /// The stream version the client decided on: the command is refused with 409 (and
    /// `current_version`) if the stream is at another version.
    #[param(rename = "If-Match")]
    pub if_match: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// Shared steps (also used by the customer and help-desk routes).

/// Refusals that say the stream is already as the command asks: idempotent `PUT` and `DELETE`
/// answer them as done.
pub(super) fn already_so(error: &DomainError) -> bool {
    matches!(
        error,
        DomainError::NoChange
            | DomainError::AlreadyAssignedTo(_)
            | DomainError::Unassigned
            | DomainError::AlreadyFollowing(_)
            | DomainError::NotFollowing(_)
            | DomainError::TagPresent(_)
            | DomainError::TagAbsent(_)
    )
}

/// Runs `command` on `stream` as `caller`, if the stream is at `if_version` (when given). A
/// refusal that says the stream is already as asked ([`already_so`]) is answered as done, with
/// no events.
pub(super) async fn settle<A>(
    state: &AppState,
    caller: &Caller,
    stream: &StreamId,
    command: A::Command,
    if_version: Option<StreamVersion>,
) -> Result<Executed, Problem>
where
    A: Aggregate + Send + Sync + 'static,
    A::Command: Clone,
{
    match state
        .service
        .execute_if::<A>(stream, command, &caller.metadata(), if_version)
        .await
    {
        Err(ServiceError::Domain(error)) if already_so(&error) => {
            let (_, stream_version, position) = state.service.load::<A>(stream).await?;
            Ok(Executed::unchanged(stream_version, position))
        }
        other => Ok(other?),
    }
}

fn ticket_stream(id: Uuid) -> Result<StreamId, Problem> {
    Ok(CommandService::stream::<Ticket>(TicketId(id))?)
}

/// The common shape of a command on an existing ticket: staff only, under `If-Match`,
/// answering the ticket's id.
async fn act(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    IfMatch(if_match): IfMatch,
    command: TicketCommand,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let executed = settle::<Ticket>(state, caller, &ticket_stream(id)?, command, if_match).await?;
    Ok(Json(CommandReply::new(id, &executed)))
}

/// The customer `id` stands for now: itself, or the customer it was merged into (followed to
/// the end); 422 when there is no such customer.
async fn current_customer(
    state: &AppState,
    field: &str,
    id: CustomerId,
) -> Result<CustomerId, Problem> {
    /// Merges are never chained deeper than this in practice; a longer chain is a loop.
    const MAX_HOPS: usize = 16;
    let mut current = id;
    for _ in 0..MAX_HOPS {
        let stream = CommandService::stream::<Customer>(current)?;
        let (customer, _, _) = state.service.load::<Customer>(&stream).await?;
        match (customer.id, customer.merged_into) {
            (None, _) => {
                return Err(Problem::invalid(format!(
                    "{field}: customer {id} does not exist"
                )));
            }
            (Some(_), Some(survivor)) => current = survivor,
            (Some(_), None) => return Ok(current),
        }
    }
    Err(ServiceError::MergeChain { customer: id }.into())
}

// ---------------------------------------------------------------------------------------------
// Tickets.

/// Creates a ticket or task (source `api`). Any staff member.
#[utoipa::path(post, path = "/api/v1/tickets", tag = "tickets",
    request_body = CreateTicketRequest,
    responses((status = 201, body = CommandReply, description = "`id` is the ticket's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn new_ticket(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateTicketRequest>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let ticket_id = request
        .ticket_id
        .unwrap_or_else(|| crate::ids::new_id("ticket"));
    let requester = match request.requester {
        Some(id) => Some(current_customer(&state, "requester", CustomerId(id)).await?),
        None => None,
    };
    let command = TicketCommand::Create(CreateTicket {
        reply_token: None,
        ticket_id: TicketId(ticket_id),
        ticket_type: request.ticket_type.into(),
        title: request.title,
        description: request.description,
        priority: request.priority.into(),
        requester,
        source: TicketSource::Api,
        tags: request.tags,
        channel_info: request.channel_info.map(ChannelInfo::from),
        created_by: caller.actor(),
        at: now(),
    });
    let executed = state
        .service
        .execute::<Ticket>(&ticket_stream(ticket_id)?, command, &caller.metadata())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(ticket_id, &executed)),
    ))
}

/// Changes a ticket's title, description, priority or type: each field present is one change
/// (fields that already have the value change nothing). Every change is checked before any is
/// made; `If-Match` applies to the first.
#[utoipa::path(patch, path = "/api/v1/tickets/{ticket_id}", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = TicketEdit,
    responses((status = 200, body = CommandReply, description = "After the last change; \
                `events` counts them all"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn edit_ticket(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(edit): Json<TicketEdit>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let (by, at) = (caller.actor(), now());
    let commands: Vec<TicketCommand> = [
        edit.title
            .map(|title| TicketCommand::ChangeTitle { title, by, at }),
        edit.description
            .map(|description| TicketCommand::ChangeDescription {
                description,
                by,
                at,
            }),
        edit.priority.map(|priority| TicketCommand::ChangePriority {
            priority: priority.into(),
            by,
            at,
        }),
        edit.ticket_type
            .map(|ticket_type| TicketCommand::ChangeType {
                ticket_type: ticket_type.into(),
                by,
                at,
            }),
    ]
    .into_iter()
    .flatten()
    .collect();
    if commands.is_empty() {
        return Err(Problem::invalid(
            "nothing to change: give title, description, priority or ticket_type",
        ));
    }
    let stream = ticket_stream(ticket_id)?;
    // Every change is decided first, so that an invalid one leaves the ticket untouched.
    let (ticket, _, _) = state.service.load::<Ticket>(&stream).await?;
    let mut ticket = Arc::unwrap_or_clone(ticket);
    for command in &commands {
        match ticket.decide(command.clone()) {
            Ok(events) => ticket = events.iter().fold(ticket, Ticket::evolve),
            Err(error) if already_so(&error) => {}
            Err(error) => return Err(error.into()),
        }
    }
    let mut if_version = if_match;
    let mut events = 0;
    let mut last = None;
    for command in commands {
        let executed = settle::<Ticket>(&state, &caller, &stream, command, if_version).await?;
        if_version = None;
        events += executed.events;
        last = Some(executed);
    }
    let last = last.ok_or_else(|| Problem::internal(&"a ticket edit ran no command"))?;
    Ok(Json(CommandReply::new(
        ticket_id,
        &Executed { events, ..last },
    )))
}

/// Moves a ticket to another status (see [`TicketStatusChange`] for the allowed moves).
#[utoipa::path(put, path = "/api/v1/tickets/{ticket_id}/status", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = TicketStatusChange,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn change_ticket_status(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(change): Json<TicketStatusChange>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::ChangeStatus {
        to: change.status.into(),
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Assigns a ticket to an agent; a new ticket opens.
#[utoipa::path(put, path = "/api/v1/tickets/{ticket_id}/assignee", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = TicketAssignment,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn assign_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(assignment): Json<TicketAssignment>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::Assign {
        agent: AgentId(assignment.agent),
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Leaves a ticket unassigned.
#[utoipa::path(delete, path = "/api/v1/tickets/{ticket_id}/assignee", tag = "tickets",
    params(TicketPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn unassign_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::Unassign {
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// The calling agent follows a ticket (it shows in their "my conversations").
#[utoipa::path(put, path = "/api/v1/tickets/{ticket_id}/follow", tag = "tickets",
    params(TicketPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn follow_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let command = TicketCommand::Follow { agent, at: now() };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// The calling agent stops following a ticket.
#[utoipa::path(delete, path = "/api/v1/tickets/{ticket_id}/follow", tag = "tickets",
    params(TicketPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn unfollow_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let agent = caller.require_agent()?;
    let command = TicketCommand::Unfollow { agent, at: now() };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Comments on a ticket, publicly or internally.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/comments", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = NewTicketComment,
    responses((status = 201, body = CommandReply, description = "`id` is the comment's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn comment_ticket(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(comment): Json<NewTicketComment>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let comment_id = comment
        .comment_id
        .unwrap_or_else(|| crate::ids::new_id("comment"));
    let attachments = super::files::attachments(&state, &caller, comment.attachments).await?;
    let command = TicketCommand::Comment {
        comment_id,
        author: caller.actor(),
        body: comment.body,
        visibility: comment.visibility.into(),
        attachments,
        at: now(),
    };
    let executed = state
        .service
        .execute_if::<Ticket>(
            &ticket_stream(ticket_id)?,
            command,
            &caller.metadata(),
            if_match,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(comment_id, &executed)),
    ))
}

/// Adds a tag to a ticket. Adding `messaging_support` and a channel's tag makes a ticket
/// social (it shows in the social views and the notifier).
#[utoipa::path(put, path = "/api/v1/tickets/{ticket_id}/tags/{tag}", tag = "tickets",
    params(TicketTagPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn tag_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketTagPath { ticket_id, tag }): Path<TicketTagPath>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::AddTag {
        tag,
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Removes a tag from a ticket. Removing `messaging_support` (or the channel's tag) drops a
/// social ticket from the social views and the notifier, and changes reports.
#[utoipa::path(delete, path = "/api/v1/tickets/{ticket_id}/tags/{tag}", tag = "tickets",
    params(TicketTagPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn untag_ticket(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketTagPath { ticket_id, tag }): Path<TicketTagPath>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::RemoveTag {
        tag,
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Sets the social messaging account a ticket's replies go out through.
#[utoipa::path(put, path = "/api/v1/tickets/{ticket_id}/channel-info", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = ChannelInfoDto,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn set_ticket_channel_info(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(info): Json<ChannelInfoDto>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::SetChannelInfo {
        channel_info: Some(info.into()),
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

/// Clears a ticket's channel info: no reply can go out until it is set again.
#[utoipa::path(delete, path = "/api/v1/tickets/{ticket_id}/channel-info", tag = "tickets",
    params(TicketPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn clear_ticket_channel_info(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::SetChannelInfo {
        channel_info: None,
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, ticket_id, if_match, command).await
}

// ---------------------------------------------------------------------------------------------
// Social messaging.

/// Replies to the customer through the account that received the ticket's message (its
/// channel info; 409 without one). A WhatsApp reply more than 24 hours after the customer's
/// last message fails at once: the failure is an event of the ticket, and the answer says
/// `failed`. Otherwise the reply is `pending` until the integration reports its delivery.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/replies", tag = "tickets",
    params(TicketPath, StreamPrecondition), request_body = NewTicketReply,
    responses((status = 201, body = TicketReplyAnswer, description = "`id` is the reply's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn request_ticket_reply(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(TicketPath { ticket_id }): Path<TicketPath>,
    Json(reply): Json<NewTicketReply>,
) -> Result<(StatusCode, Json<TicketReplyAnswer>), Problem> {
    caller.require_staff()?;
    let reply_id = reply
        .reply_id
        .unwrap_or_else(|| crate::ids::new_id("reply"));
    let stream = ticket_stream(ticket_id)?;
    let attachments = super::files::attachments(&state, &caller, reply.attachments).await?;
    let command = TicketCommand::RequestReply {
        attachments,
        reply_id,
        body: reply.body,
        by: caller.actor(),
        at: now(),
    };
    let executed = state
        .service
        .execute_if::<Ticket>(&stream, command, &caller.metadata(), if_match)
        .await?;
    let (ticket, _, _) = state.service.load::<Ticket>(&stream).await?;
    let delivery = ticket
        .replies
        .get(&reply_id)
        .copied()
        .map_or(DeliveryDto::Pending, DeliveryDto::from);
    Ok((
        StatusCode::CREATED,
        Json(TicketReplyAnswer {
            reply: CommandReply::new(reply_id, &executed),
            delivery,
        }),
    ))
}

/// Settles a pending reply with the channel's report; 404 for a reply the ticket never had,
/// 409 for one already settled.
async fn settle_reply(
    state: &AppState,
    caller: &Caller,
    path: TicketReplyPath,
    IfMatch(if_match): IfMatch,
    command: TicketCommand,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let stream = ticket_stream(path.ticket_id)?;
    match state
        .service
        .execute_if::<Ticket>(&stream, command, &caller.metadata(), if_match)
        .await
    {
        Ok(executed) => Ok(Json(CommandReply::new(path.reply_id, &executed))),
        Err(ServiceError::Domain(DomainError::ReplyNotPending(_))) => {
            let (ticket, _, _) = state.service.load::<Ticket>(&stream).await?;
            if ticket.replies.contains_key(&path.reply_id) {
                Err(DomainError::ReplyNotPending(path.reply_id).into())
            } else {
                Err(Problem::not_found("no such reply on this ticket"))
            }
        }
        Err(error) => Err(error.into()),
    }
}

/// The channel delivered a reply (reported by its integration).
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/replies/{reply_id}/delivered",
    tag = "tickets", params(TicketReplyPath, StreamPrecondition),
    responses((status = 200, body = CommandReply, description = "`id` is the reply's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn ticket_reply_delivered(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<TicketReplyPath>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::MarkReplyDelivered {
        attempts: 0,
        platform_message_id: None,
        reply_id: path.reply_id,
        at: now(),
    };
    settle_reply(&state, &caller, path, if_match, command).await
}

/// The channel refused or lost a reply (reported by its integration); the failure is an event
/// of the ticket.
#[utoipa::path(post, path = "/api/v1/tickets/{ticket_id}/replies/{reply_id}/failed",
    tag = "tickets", params(TicketReplyPath, StreamPrecondition), request_body = ReplyFailure,
    responses((status = 200, body = CommandReply, description = "`id` is the reply's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn ticket_reply_failed(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(path): Path<TicketReplyPath>,
    Json(failure): Json<ReplyFailure>,
) -> Result<Json<CommandReply>, Problem> {
    let command = TicketCommand::MarkReplyFailed {
        attempts: 0,
        code: None,
        reply_id: path.reply_id,
        reason: failure.reason,
        at: now(),
    };
    settle_reply(&state, &caller, path, if_match, command).await
}

/// When a social message was sent: the channel's `sent_at`, checked, or now.
fn sent_at(sent_at: Option<i64>) -> Result<Timestamp, Problem> {
    let now = now();
    let Some(at) = sent_at.map(Timestamp) else {
        return Ok(now);
    };
    if at < EARLIEST_SENT_AT {
        return Err(Problem::invalid(
            "sent_at: must be microseconds since the Unix epoch, after 2000-01-01",
        ));
    }
    if at > now.plus_secs(MAX_CLOCK_SKEW_SECS) {
        return Err(Problem::invalid("sent_at: must not be in the future"));
    }
    Ok(at)
}

/// A new social ticket's title: the one given, else the message's first line, else the
/// channel and the customer's handle.
fn social_title(given: Option<String>, body: &str, channel: Channel, handle: &str) -> String {
    given.unwrap_or_else(|| {
        title_from_message(body, || {
            format!("{} message from {}", channel.name(), handle.trim())
        })
    })
}

/// Receives a customer's message from a social messaging channel (its integration relays it).
/// The customer is created on first contact through the channel handle (one customer per
/// channel account; merged customers answer as the survivor). Without `ticket_id`, a new social
/// ticket is created (201), tagged `messaging_support` and with the channel's tag, its channel
/// info naming the receiving account; with it, the message continues that ticket (200; a
/// pending or solved ticket reopens). A message redelivered with the same `external_id` is
/// answered as done.
///
/// The first message of a new ticket is its description; files attached to it are recorded as
/// a customer message of the ticket.
#[utoipa::path(post, path = "/api/v1/social/messages", tag = "tickets",
    request_body = InboundSocialMessage,
    responses((status = 201, body = InboundSocialAnswer, description = "A new social ticket"),
              (status = 200, body = InboundSocialAnswer, description = "The message continues \
                the ticket (or was received already)"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn receive_social_message(
    State(state): State<AppState>,
    caller: Caller,
    Json(message): Json<InboundSocialMessage>,
) -> Result<(StatusCode, Json<InboundSocialAnswer>), Problem> {
    caller.require_staff()?;
    let channel = Channel::from(message.channel);
    let at = sent_at(message.sent_at)?;
    // The channel's message id names the message (and a new ticket), so redeliveries match.
    let message_id = match &message.external_id {
        Some(external) => Uuid::new_v5(
            &SOCIAL_NAMESPACE,
            format!("{}:{}:{external}", channel.name(), message.account_id).as_bytes(),
        ),
        None => crate::ids::new_id("message"),
    };
    let attachments = super::files::attachments(&state, &caller, message.attachments).await?;
    let inbound = Inbound {
        state: &state,
        metadata: Metadata {
            channel: Some(channel.name().to_owned()),
            ..caller.metadata()
        },
        info: ChannelInfo {
            channel,
            account_id: message.account_id,
            customer_handle: message.customer_handle,
        },
        customer_name: message.customer_name,
        received: TicketCommand::ReceiveCustomerMessage {
            reply_token: None,
            message_id,
            body: message.body.clone(),
            attachments,
            at,
        },
        at,
    };
    let (status, ticket_id, executed, customer) = match message.ticket_id {
        Some(ticket_id) => {
            let (executed, customer) = inbound.continue_ticket(ticket_id).await?;
            (StatusCode::OK, ticket_id, executed, customer)
        }
        None => {
            let ticket_id = match message.external_id {
                Some(_) => Uuid::new_v5(&SOCIAL_NAMESPACE, message_id.as_bytes()),
                None => crate::ids::new_id("ticket"),
            };
            let title = social_title(
                message.title,
                &message.body,
                channel,
                &inbound.info.customer_handle,
            );
            let create = CreateTicket {
                reply_token: None,
                ticket_id: TicketId(ticket_id),
                ticket_type: TicketType::Ticket,
                title,
                description: message.body,
                priority: Priority::Normal,
                requester: None,
                source: TicketSource::Social { channel },
                tags: Vec::new(),
                channel_info: Some(inbound.info.clone()),
                created_by: caller.actor(),
                at,
            };
            let (status, executed, customer) = inbound.open_ticket(create).await?;
            (status, ticket_id, executed, customer)
        }
    };
    Ok((
        status,
        Json(InboundSocialAnswer {
            reply: CommandReply::new(ticket_id, &executed),
            customer_id: customer.0,
            message_id,
        }),
    ))
}

/// One social message being received.
struct Inbound<'a> {
    state: &'a AppState,
    /// The caller's, with the social channel as the channel.
    metadata: Metadata,
    /// The channel, the receiving account and the customer's handle.
    info: ChannelInfo,
    customer_name: Option<String>,
    /// The message, as a ticket records a customer's message.
    received: TicketCommand,
    /// When the customer sent it.
    at: Timestamp,
}

impl Inbound<'_> {
    fn identity(&self) -> ChannelIdentity {
        ChannelIdentity {
            channel: self.info.channel,
            value: self.info.customer_handle.clone(),
            account: None,
        }
        .normalized()
    }

    fn has_attachments(&self) -> bool {
        matches!(&self.received, TicketCommand::ReceiveCustomerMessage { attachments, .. }
            if !attachments.is_empty())
    }

    /// The customer behind the channel identity, created on first contact (after merges, the
    /// survivor).
    async fn customer(&self) -> Result<CustomerId, Problem> {
        Ok(self
            .state
            .service
            .first_contact(
                self.identity(),
                self.customer_name.clone(),
                None,
                self.at,
                &self.metadata,
            )
            .await?)
    }

    /// Records the message on a ticket (a redelivery records nothing).
    async fn record(&self, stream: &StreamId) -> Result<Executed, Problem> {
        Ok(self
            .state
            .service
            .execute::<Ticket>(stream, self.received.clone(), &self.metadata)
            .await?)
    }

    /// Continues an existing social ticket of the same customer and account (a pending or
    /// solved ticket reopens).
    async fn continue_ticket(&self, ticket_id: Uuid) -> Result<(Executed, CustomerId), Problem> {
        let stream = ticket_stream(ticket_id)?;
        let (ticket, _, _) = self.state.service.load::<Ticket>(&stream).await?;
        if ticket.id.is_none() {
            return Err(DomainError::TicketNotFound.into());
        }
        let same_conversation = ticket.channel_info.as_ref().is_some_and(|known| {
            let known_identity = ChannelIdentity {
                channel: known.channel,
                value: known.customer_handle.clone(),
                account: None,
            };
            known.account_id == self.info.account_id
                && known_identity.normalized() == self.identity()
        });
        if !same_conversation {
            return Err(Problem::conflict(
                "the ticket talks with another customer or through another account",
            ));
        }
        // Checked before the customer is met, so an invalid message creates nothing.
        ticket.decide(self.received.clone())?;
        let customer = self.customer().await?;
        Ok((self.record(&stream).await?, customer))
    }

    /// Creates a social ticket from its first message, which is its description (files
    /// attached to it are recorded as a customer message). A redelivery finds the ticket
    /// created from this very message and completes what is missing.
    async fn open_ticket(
        &self,
        mut create: CreateTicket,
    ) -> Result<(StatusCode, Executed, CustomerId), Problem> {
        // Checked before the customer is met, so an invalid message creates nothing.
        let blank = Ticket::default();
        let created = blank.decide(TicketCommand::Create(create.clone()))?;
        created
            .iter()
            .fold(blank, Ticket::evolve)
            .decide(self.received.clone())?;
        let customer = self.customer().await?;
        create.requester = Some(customer);
        let stream = ticket_stream(create.ticket_id.0)?;
        let source = create.source.clone();
        let (status, created) = match self
            .state
            .service
            .execute::<Ticket>(&stream, TicketCommand::Create(create), &self.metadata)
            .await
        {
            Err(ServiceError::Domain(DomainError::TicketExists)) => {
                let (ticket, stream_version, position) =
                    self.state.service.load::<Ticket>(&stream).await?;
                if ticket.source != Some(source) {
                    return Err(DomainError::TicketExists.into());
                }
                let found = Executed::unchanged(stream_version, position);
                (StatusCode::OK, found)
            }
            other => (StatusCode::CREATED, other?),
        };
        if !self.has_attachments() {
            return Ok((status, created, customer));
        }
        let recorded = self.record(&stream).await?;
        let executed = Executed {
            events: created.events + recorded.events,
            ..recorded
        };
        Ok((status, executed, customer))
    }
}
