//! The customer widget, `/widget/v1`: a visitor gets a token on first contact, learns whether
//! the help desk is online, starts conversations, writes, reads and rates them.
//!
//! A visitor token stands for one customer. It reaches only that customer's own conversations,
//! and only what is public in them: internal notes, internal conversations, assignees, tickets
//! and followers never appear. A conversation the visitor may not see answers 404, exactly as
//! one that does not exist, and every command checks ownership before anything else (so neither
//! a validation error nor a version conflict tells that someone else's conversation exists).
//!
//! Abuse: `POST /widget/v1/visitors` is public. Its input is validated by the domain (name
//! length, e-mail syntax), the visitor id is always chosen by the server (a client can never
//! claim an existing customer), the body size is bounded, every visitor created is logged, and
//! creations are rate-limited per client address (behind a reverse proxy, the proxy's: give it
//! a limit of its own).

use super::conversations::FileRef;
use super::extract::{ClientAddr, IfMatch, Json, Path, Query};
use super::{AppState, CommandReply, DetailParams, auth::Caller};
use crate::problem::Problem;
use crate::service::{CommandService, Executed, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use parley_domain::access::Role;
use parley_domain::conversation::{
    Channel, Conversation, ConversationCommand, ConversationKind, MAX_SUBJECT_CHARS, MessageState,
    Participant, SendMessage, Start, Visibility,
};
use parley_domain::customer::ChannelIdentity;
use parley_domain::helpdesk::{HELP_DESK_ID, HelpDesk};
use parley_domain::ids::{ConversationId, CustomerId, MessageId};
use parley_domain::{Actor, Aggregate, DomainError};
use parley_eventlog::{ActorKind, Metadata, Position, StreamId, StreamVersion};
use parley_projections::customers;
use parley_projections::detail::{self, ConversationView, MessageView, Viewer};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_visitor))
        .routes(routes!(status))
        .routes(routes!(start, list))
        .routes(routes!(show))
        .routes(routes!(reply))
        .routes(routes!(mark_read))
        .routes(routes!(rate))
}

/// Longest subject derived from a first message, in characters.
const DERIVED_SUBJECT_CHARS: usize = 80;
/// Conversations listed per page when the client does not say.
const DEFAULT_PAGE: usize = 20;
/// Most conversations listed per page.
const MAX_PAGE: usize = 100;

// ---------------------------------------------------------------------------------------------
// DTOs.

/// A new widget visitor; both details are optional and can be asked for later in the chat.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVisitor {
    /// Up to 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// An ASCII e-mail address (addresses with accented characters are refused).
    #[serde(default)]
    pub email: Option<String>,
}

/// A visitor created: the customer it is and its token, shown only now.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewVisitorToken {
    pub customer_id: Uuid,
    /// Send it as `Authorization: Bearer <token>` on the other `/widget/v1` routes.
    pub token: String,
    pub token_id: Uuid,
    /// Global log position of the token's issue (use it as `?position=` on reads).
    pub position: u64,
}

/// What the widget tells visitors now.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetStatus {
    /// Whether the help desk is online.
    pub online: bool,
    /// The online or offline message the help desk set.
    pub message: String,
}

/// A conversation started by a visitor, with its first message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WidgetNewConversation)]
pub struct NewConversation {
    /// Chosen by the client to make retries safe; generated when absent.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    /// The first message's id; by default derived from a client-chosen `conversation_id` (so a
    /// retry never writes it twice), else generated.
    #[serde(default)]
    pub message_id: Option<Uuid>,
    /// Up to 200 characters; by default the beginning of the first message.
    #[serde(default)]
    pub subject: Option<String>,
    /// The first message (1 to 20,000 characters).
    pub body: String,
    /// Files the visitor uploaded (`POST /widget/v1/files`), at most 20.
    #[serde(default)]
    pub attachments: Vec<FileRef>,
}

/// A visitor's message.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WidgetNewMessage)]
pub struct NewMessage {
    /// Chosen by the client to make retries safe; generated when absent.
    #[serde(default)]
    pub message_id: Option<Uuid>,
    /// Up to 20,000 characters; empty only when files are attached.
    #[serde(default)]
    pub body: String,
    /// A message of the conversation this one quotes.
    #[serde(default)]
    pub quote_of: Option<Uuid>,
    /// Files the visitor uploaded (`POST /widget/v1/files`), at most 20.
    #[serde(default)]
    pub attachments: Vec<FileRef>,
}

/// Marks the conversation read up to a message.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WidgetReadThrough)]
pub struct ReadThrough {
    /// Everything up to and including this message is read; by default, the latest message.
    #[serde(default)]
    pub through: Option<Uuid>,
}

/// A visitor's rating of a finished conversation (once).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRating {
    /// 1 to 5.
    pub score: u8,
    /// Up to 2,000 characters.
    #[serde(default)]
    pub comment: Option<String>,
}

/// One of the visitor's conversations, in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub conversation_id: String,
    pub channel: String,
    pub subject: String,
    /// `open`, `closed` or `spam`.
    pub status: String,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// The latest public message or status change; internal notes never count. Microseconds
    /// since the Unix epoch.
    pub last_activity_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPage {
    /// Latest activity first.
    pub conversations: Vec<ConversationSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Wait until the list reflects this log position (a command's `position`).
    pub position: Option<u64>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most this many conversations (1..=100, default 20).
    pub limit: Option<usize>,
}

/// A conversation as its customer sees it: public messages only.
#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetConversation {
    pub conversation_id: String,
    pub channel: String,
    pub subject: String,
    /// `open`, `closed` or `spam`.
    pub status: String,
    /// Microseconds since the Unix epoch.
    pub started_at: i64,
    /// The latest public message (sent, edited or deleted), else the start; internal notes
    /// never count. Microseconds since the Unix epoch.
    pub last_activity_at: i64,
    pub rating: Option<WidgetRating>,
    /// Oldest first: at most `limit` (default 200) from the cursor on.
    pub messages: Vec<WidgetMessage>,
    /// Pass as `cursor` for the messages after these; absent when there are none.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetRating {
    pub score: i64,
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WidgetMessage {
    pub message_id: String,
    /// `agent:<id>`, `customer:<id>` or `system`.
    pub author: String,
    /// Empty once deleted.
    pub body: String,
    /// Files attached: name, content type, size and storage reference of each; for a file
    /// stored in Parley also its `file_id` (fetch it with `GET /widget/v1/files/{file_id}`)
    /// and `sha256`.
    #[schema(value_type = Vec<Object>)]
    pub attachments: serde_json::Value,
    pub quote_of: Option<String>,
    /// Microseconds since the Unix epoch.
    pub sent_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl From<ConversationView> for WidgetConversation {
    /// Only what a customer may see, whatever the read model adds one day.
    fn from(view: ConversationView) -> WidgetConversation {
        let last_public = view.last_public_activity_at;
        WidgetConversation {
            conversation_id: view.conversation_id,
            channel: view.channel,
            subject: view.subject,
            status: view.status,
            started_at: view.started_at,
            last_activity_at: last_public.unwrap_or(view.started_at).max(view.started_at),
            rating: view.rating.map(|r| WidgetRating {
                score: r.score,
                comment: r.comment,
            }),
            messages: view
                .messages
                .into_iter()
                .filter(|m| m.visibility == "public")
                .map(WidgetMessage::from)
                .collect(),
            next_cursor: view.next_cursor,
        }
    }
}

impl From<MessageView> for WidgetMessage {
    fn from(m: MessageView) -> WidgetMessage {
        WidgetMessage {
            message_id: m.message_id,
            author: m.author,
            body: m.body,
            attachments: m.attachments,
            quote_of: m.quote_of,
            sent_at: m.sent_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What a visitor may see.

/// Whether `customer` takes part in `conversation` (a customer conversation that has started).
pub(super) fn is_own(conversation: &Conversation, customer: CustomerId) -> bool {
    conversation.kind == Some(ConversationKind::Customer)
        && conversation.customers.contains(&customer)
}

fn no_such_conversation() -> Problem {
    Problem::not_found("no such conversation")
}

/// A visitor's own conversation as the log has it now, or 404.
struct Own {
    stream: StreamId,
    conversation: Arc<Conversation>,
    version: StreamVersion,
    position: Position,
}

async fn own_conversation(
    state: &AppState,
    customer: CustomerId,
    id: ConversationId,
) -> Result<Own, Problem> {
    let stream = CommandService::stream::<Conversation>(id)?;
    let (conversation, version, position) = state.service.load::<Conversation>(&stream).await?;
    if !is_own(&conversation, customer) {
        return Err(no_such_conversation());
    }
    Ok(Own {
        stream,
        conversation,
        version,
        position,
    })
}

/// A refusal as a visitor may learn it: what says the conversation is not theirs is a 404.
fn as_visitor(error: ServiceError) -> Problem {
    match error {
        ServiceError::Domain(
            DomainError::ConversationNotFound
            | DomainError::CustomerNotAParticipant(_)
            | DomainError::CustomerInInternalConversation,
        ) => no_such_conversation(),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Creates a visitor (a new customer, reached through the widget) and its token. Public: the
/// widget calls it on a visitor's first contact. The visitor id is chosen by the server.
#[utoipa::path(post, path = "/widget/v1/visitors", tag = "widget",
    operation_id = "widget_create_visitor", security(()),
    request_body = NewVisitor,
    responses((status = 201, body = NewVisitorToken), (status = 400, body = Problem),
              (status = 422, body = Problem), (status = 429, body = Problem),
              (status = 503, body = Problem)))]
async fn create_visitor(
    State(state): State<AppState>,
    ClientAddr(from): ClientAddr,
    Json(request): Json<NewVisitor>,
) -> Result<impl axum::response::IntoResponse, Problem> {
    // No token to limit: the address is (every visitor behind one proxy shares it).
    state.auth.check_address(from)?;
    let identity = ChannelIdentity {
        channel: Channel::Widget,
        value: crate::ids::new_id("visitor").to_string(),
        account: None,
    };
    let metadata = Metadata {
        actor: Some(parley_eventlog::Actor {
            id: CustomerId::for_identity(&identity).to_string(),
            kind: ActorKind::Customer,
        }),
        channel: Some(Channel::Widget.name().to_owned()),
        request_id: crate::problem::request_id().filter(|r| !r.is_empty()),
        ..Metadata::default()
    };
    let at = super::now();
    let customer = state
        .service
        .first_contact(identity, request.name, request.email, at, &metadata)
        .await?;
    let (token_id, secret, issued) = super::tokens::mint(
        &state,
        Role::Visitor { customer },
        "widget visitor",
        Actor::System,
        &metadata,
    )
    .await?;
    tracing::info!(%customer, %token_id, "widget visitor created");
    Ok((
        StatusCode::CREATED,
        super::tokens::NO_STORE,
        Json(NewVisitorToken {
            customer_id: customer.0,
            token: secret,
            token_id: token_id.0,
            position: issued.position.0,
        }),
    ))
}

/// Whether the help desk is online, and the message the widget shows visitors. Public.
#[utoipa::path(get, path = "/widget/v1/status", tag = "widget",
    operation_id = "widget_status", security(()),
    responses((status = 200, body = WidgetStatus), (status = 503, body = Problem)))]
async fn status(State(state): State<AppState>) -> Result<Json<WidgetStatus>, Problem> {
    let stream = CommandService::stream::<HelpDesk>(HELP_DESK_ID)?;
    let (desk, _, _) = state.service.load::<HelpDesk>(&stream).await?;
    Ok(Json(WidgetStatus {
        online: desk.online,
        message: desk.visitor_message().to_owned(),
    }))
}

/// The beginning of a message's first line, as a subject.
fn subject_from(body: &str) -> String {
    let first_line = body.trim().lines().next().unwrap_or_default().trim();
    first_line
        .chars()
        .take(DERIVED_SUBJECT_CHARS.min(MAX_SUBJECT_CHARS))
        .collect()
}

/// What a retried step found already done: the stream as it is.
async fn as_it_is(state: &AppState, stream: &StreamId) -> Result<Executed, Problem> {
    let (_, stream_version, position) = state.service.load::<Conversation>(stream).await?;
    Ok(Executed::unchanged(stream_version, position))
}

/// Starts a conversation with the help desk (channel `widget`) with its first message. With
/// client-chosen ids, a retry completes what an interrupted attempt started.
#[utoipa::path(post, path = "/widget/v1/conversations", tag = "widget",
    operation_id = "widget_start_conversation",
    request_body = NewConversation,
    responses((status = 201, body = CommandReply, description = "`id` is the conversation's"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<NewConversation>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    let customer = caller.require_visitor()?;
    let conversation_id = ConversationId(
        request
            .conversation_id
            .unwrap_or_else(|| crate::ids::new_id("conversation")),
    );
    // Derived from a client-chosen conversation id when not given: a retry names the same
    // first message (as on `POST /api/v1/conversations`).
    let message_id = request.message_id.map(MessageId).unwrap_or_else(|| {
        super::conversations::first_message_id(conversation_id, request.conversation_id.is_some())
    });
    let attachments = super::files::uploads(&state, &caller, request.attachments).await?;
    let at = super::now();
    let start = Start {
        conversation_id,
        kind: ConversationKind::Customer,
        channel: Channel::Widget,
        queue: None,
        subject: request
            .subject
            .unwrap_or_else(|| subject_from(&request.body)),
        started_by: Actor::Customer(customer),
        customers: vec![customer],
        members: vec![],
        origin: None,
        at,
    };
    let first = SendMessage {
        message_id,
        author: Actor::Customer(customer),
        body: request.body,
        visibility: Visibility::Public,
        attachments,
        mentions: vec![],
        quote_of: None,
        at,
    };
    // Both steps are decided on a blank conversation first: an invalid first message starts
    // nothing.
    let blank = Conversation::default();
    let started = blank.decide(ConversationCommand::Start(start.clone()))?;
    started
        .iter()
        .fold(blank, Conversation::evolve)
        .decide(ConversationCommand::SendMessage(first.clone()))?;

    let stream = CommandService::stream::<Conversation>(conversation_id)?;
    let metadata = caller.metadata();
    let started = match state
        .service
        .execute::<Conversation>(&stream, ConversationCommand::Start(start), &metadata)
        .await
    {
        Err(ServiceError::Domain(DomainError::ConversationExists)) => {
            // A retry resumes the visitor's own conversation; anyone else's id is taken.
            match own_conversation(&state, customer, conversation_id).await {
                Err(problem) if problem.status == StatusCode::NOT_FOUND.as_u16() => {
                    return Err(Problem::conflict("a conversation with this id exists"));
                }
                other => other?,
            };
            0
        }
        other => other?.events,
    };
    let sent = match state
        .service
        .execute::<Conversation>(&stream, ConversationCommand::SendMessage(first), &metadata)
        .await
    {
        Err(ServiceError::Domain(DomainError::MessageExists(_))) if started == 0 => {
            as_it_is(&state, &stream).await?
        }
        other => other.map_err(as_visitor)?,
    };
    let executed = Executed {
        events: started + sent.events,
        ..sent
    };
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(conversation_id, &executed)),
    ))
}

/// The visitor's own conversations, latest activity first.
#[utoipa::path(get, path = "/widget/v1/conversations", tag = "widget",
    operation_id = "widget_list_conversations", params(ListParams),
    responses((status = 200, body = ConversationPage), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<ConversationPage>, Problem> {
    let customer = caller.require_visitor()?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let after = params
        .cursor
        .as_deref()
        .map(super::parse_time_id_cursor)
        .transpose()?;
    state.caught_up(customers::NAME, params.position).await?;
    let me = customer.to_string();
    // The visitor's own conversations (not those of customers merged into it), newest activity
    // first, ties by id descending, from the cursor on.
    let query = customers::HistoryQuery {
        after,
        conversations_only: true,
        own_only: true,
        limit: limit + 1,
        ..Default::default()
    };
    let items = state
        .models
        .query(customers::NAME, move |tx, t| {
            customers::history(tx, t, &me, &query)
        })
        .await?;
    let mut conversations = items
        .into_iter()
        .map(|item| ConversationSummary {
            conversation_id: item.id,
            channel: item.channel,
            subject: item.title,
            status: item.status,
            started_at: item.started_at,
            last_activity_at: item.last_activity_at,
        })
        .collect::<Vec<_>>();
    let next_cursor = super::next_page(&mut conversations, limit, |last| {
        super::time_key_cursor(last.last_activity_at, &last.conversation_id)
    });
    Ok(Json(ConversationPage {
        conversations,
        next_cursor,
    }))
}

/// One of the visitor's conversations with its public messages. Internal notes, internal
/// conversations and other customers' conversations are never shown (404).
#[utoipa::path(get, path = "/widget/v1/conversations/{conversation_id}", tag = "widget",
    operation_id = "widget_show_conversation",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"), DetailParams),
    responses((status = 200, body = WidgetConversation), (status = 400, body = Problem),
              (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 503, body = Problem)))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(params): Query<DetailParams>,
) -> Result<Json<WidgetConversation>, Problem> {
    let customer = caller.require_visitor()?;
    let page = params.page()?;
    state.caught_up(detail::NAME, params.position).await?;
    let key = id.to_string();
    let view = state
        .models
        .query(detail::NAME, move |tx, t| {
            detail::conversation(tx, t, &key, Viewer::Customer(customer.0), page)
        })
        .await?
        .ok_or_else(no_such_conversation)?;
    Ok(Json(view.into()))
}

/// Writes in one of the visitor's conversations. Writing in a closed conversation reopens it
/// (one marked as spam stays spam).
#[utoipa::path(post, path = "/widget/v1/conversations/{conversation_id}/messages", tag = "widget",
    operation_id = "widget_send_message",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"),
           ("If-Match" = Option<u64>, Header, description = "The stream version the client saw")),
    request_body = NewMessage,
    responses((status = 201, body = CommandReply, description = "`id` is the message's"),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(id): Path<Uuid>,
    Json(request): Json<NewMessage>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    let customer = caller.require_visitor()?;
    let own = own_conversation(&state, customer, ConversationId(id)).await?;
    let attachments = super::files::uploads(&state, &caller, request.attachments).await?;
    let message_id = MessageId(
        request
            .message_id
            .unwrap_or_else(|| crate::ids::new_id("message")),
    );
    let executed = state
        .service
        .execute_if::<Conversation>(
            &own.stream,
            ConversationCommand::SendMessage(SendMessage {
                message_id,
                author: Actor::Customer(customer),
                body: request.body,
                visibility: Visibility::Public,
                attachments,
                mentions: vec![],
                quote_of: request.quote_of.map(MessageId),
                at: super::now(),
            }),
            &caller.metadata(),
            if_match,
        )
        .await
        .map_err(as_visitor)?;
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(message_id, &executed)),
    ))
}

/// Marks one of the visitor's conversations read, up to a message (by default the latest).
#[utoipa::path(post, path = "/widget/v1/conversations/{conversation_id}/read", tag = "widget",
    operation_id = "widget_mark_read",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"),
           ("If-Match" = Option<u64>, Header, description = "The stream version the client saw")),
    request_body = ReadThrough,
    responses((status = 200, body = CommandReply), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(id): Path<Uuid>,
    Json(request): Json<ReadThrough>,
) -> Result<Json<CommandReply>, Problem> {
    let customer = caller.require_visitor()?;
    let own = own_conversation(&state, customer, ConversationId(id)).await?;
    let public = |m: &&MessageState| m.visibility == Visibility::Public;
    let through = match request.through.map(MessageId) {
        // Internal notes are answered as what does not exist.
        Some(through) => own
            .conversation
            .messages
            .get(&through)
            .filter(public)
            .map(|_| through)
            .ok_or_else(|| Problem::not_found("no such message in this conversation"))?,
        None => match own
            .conversation
            .messages
            .iter()
            .filter(|(_, m)| public(m))
            .max_by_key(|(_, m)| m.seq)
        {
            Some((latest, _)) => *latest,
            // Nothing to read yet.
            None => {
                let unchanged = Executed::unchanged(own.version, own.position);
                return Ok(Json(CommandReply::new(id, &unchanged)));
            }
        },
    };
    let executed = state
        .service
        .execute_if::<Conversation>(
            &own.stream,
            ConversationCommand::MarkRead {
                reader: Participant::Customer(customer),
                through,
                at: super::now(),
            },
            &caller.metadata(),
            if_match,
        )
        .await
        .map_err(as_visitor)?;
    Ok(Json(CommandReply::new(id, &executed)))
}

/// Rates one of the visitor's finished conversations (once, after it was closed).
#[utoipa::path(post, path = "/widget/v1/conversations/{conversation_id}/rating", tag = "widget",
    operation_id = "widget_rate_conversation",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"),
           ("If-Match" = Option<u64>, Header, description = "The stream version the client saw")),
    request_body = NewRating,
    responses((status = 200, body = CommandReply), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn rate(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(id): Path<Uuid>,
    Json(request): Json<NewRating>,
) -> Result<Json<CommandReply>, Problem> {
    let customer = caller.require_visitor()?;
    let own = own_conversation(&state, customer, ConversationId(id)).await?;
    let executed = state
        .service
        .execute_if::<Conversation>(
            &own.stream,
            ConversationCommand::Rate {
                customer,
                score: request.score,
                comment: request.comment,
                at: super::now(),
            },
            &caller.metadata(),
            if_match,
        )
        .await
        .map_err(as_visitor)?;
    Ok(Json(CommandReply::new(id, &executed)))
}
