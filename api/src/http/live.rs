//! The log, live and paged: Server-Sent Events of what each caller may see
//! (`GET /api/v1/stream` for staff, `GET /widget/v1/conversations/{id}/stream` for a visitor's
//! own conversation) and the global event feed for integrations (`GET /api/v1/events`).
//!
//! Every event is shown in one JSON shape, [`FeedEvent`]. Its `position` is its global log
//! position and the SSE `id:` of the event, so a client reconnecting with `Last-Event-ID`
//! resumes exactly after the last event it received (events it may not see are skipped again).
//! Without `Last-Event-ID` a stream starts with the events appended after it connected.
//!
//! Who sees what on the staff stream: internal conversations only their participants;
//! customer conversations the callers who see "from customers" (support agents, admins,
//! integrations) and the agents taking part in or following them; customer records the callers
//! who see "from customers"; tickets and the help desk every staff caller (as their read routes
//! do); token events nobody, ever. A stream
//! keeps a small cache of the conversations it has met (their participants, from the events it
//! sees, loaded from the log for older ones), and ends as soon as its token's revocation reaches
//! the log ([`super::streams::Revocations`]; on every node).
//!
//! Each stream follows the log on its own: the whole log ([`Subscription`]) for a staff stream,
//! one conversation's stream for a visitor's or a staff stream with `?conversation=` (which never
//! reads the rest of the log). Fine for the agents of a help desk and widget visitors of a
//! conversation; a shared fan-out is the next step for many thousands.
//!
//! Memory: a stream reads the log only when its client has taken what it read before, in pages
//! sized to about [`PAGE_BYTES`] of stored events, and turns one event at a time into an SSE
//! frame. A client that never reads holds one page and the connection's write buffer; the
//! connection is closed once nothing could be sent to it for the send timeout
//! (`crate::server`). Streams per token, and per address for widget visitors, are limited
//! ([`super::streams::StreamLimits`], 429 beyond).

use super::extract::{ClientAddr, Json, Path, Query};
use super::streams::StreamSlot;
use super::{AppState, auth::Caller, widget};
use crate::problem::Problem;
use crate::service::CommandService;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::StreamExt;
use parley_domain::access::{Role, TokenId};
use parley_domain::conversation::{Conversation, ConversationEvent, ConversationKind, Visibility};
use parley_domain::ids::{ConversationId, CustomerId};
use parley_domain::{Aggregate, DomainEvent};
use parley_eventlog::{
    ActorKind, EventLog, LogError, Position, RecordedEvent, StreamId, StreamVersion, Subscription,
};
use parley_projections::access;
use parley_projections::feed::{self, Envelope, Event};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stream))
        .routes(routes!(widget_stream))
        .routes(routes!(events))
}

/// How often a live stream checks that its token still works (and at most how long a revoked
/// token keeps receiving events).
const TOKEN_RECHECK: Duration = Duration::from_secs(30);
/// Events a live stream following the whole log reads at a time, at most.
const LIVE_BATCH: usize = 500;
/// Conversations a live stream remembers; it forgets them all beyond, and loads them again.
const KNOWN_CONVERSATIONS: usize = 4_096;
/// Events per feed page when the client does not say.
const DEFAULT_FEED_PAGE: usize = 100;
/// Most events per feed page.
const MAX_FEED_PAGE: usize = 1_000;

// ---------------------------------------------------------------------------------------------
// The event JSON, shared by the streams and the feed.

/// One event of the log, as streams and the feed show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedEvent {
    /// Global log position: the SSE `id:`, and what `after` and `Last-Event-ID` take.
    pub position: u64,
    /// The stream holding it, e.g. `conversation-<id>`.
    pub stream: String,
    /// The event's permanent type name, e.g. `MessageSent` (see docs/events.md).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the log recorded it, in microseconds since the Unix epoch.
    pub recorded_at: i64,
    /// The event's fields, as docs/events.md lists them.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub metadata: FeedMetadata,
}

/// Who caused an event, and through which client.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedMetadata {
    pub actor: Option<FeedActor>,
    /// `api`, `widget`, `cli`...
    pub channel: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedActor {
    /// An agent's or customer's id, or the token's id for integrations.
    pub id: String,
    /// `agent`, `customer`, `integration` or `system`.
    #[schema(value_type = String)]
    pub kind: ActorKind,
}

/// Streams whose events are never shown: tokens (roles and secrets' digests).
fn never_shown(stream: &str) -> bool {
    stream.starts_with("token-")
}

/// The JSON of a domain event's fields.
pub(crate) fn fields<E: DomainEvent>(event: &E) -> Result<serde_json::Value, serde_json::Error> {
    event.serialize_payload(serde_json::value::Serializer)
}

/// The shown form of one decoded event; `None` for what is never shown (token events, streams
/// the domain does not know).
fn feed_event(recorded: &RecordedEvent, envelope: &Envelope) -> Result<Option<FeedEvent>, Problem> {
    let data = match &envelope.event {
        Event::Conversation(_, event) => fields(event),
        Event::Ticket(_, event) => fields(event),
        Event::Customer(_, event) => fields(event),
        Event::HelpDesk(_, event) => fields(event),
        // Accounts' events name which secrets changed, never their values.
        Event::Channel(_, event) => fields(event),
        Event::Contact(_, event) => fields(event),
        Event::Token(..) | Event::Other => return Ok(None),
    }
    .map_err(|e| Problem::internal(&e))?;
    let metadata = &recorded.metadata;
    Ok(Some(FeedEvent {
        position: recorded.position.0,
        stream: recorded.stream_id.clone(),
        event_type: recorded.event_type.clone(),
        recorded_at: recorded.recorded_at.as_micros(),
        data,
        metadata: FeedMetadata {
            actor: metadata.actor.as_ref().map(|actor| FeedActor {
                id: actor.id.clone(),
                kind: actor.kind,
            }),
            channel: metadata.channel.clone(),
        },
    }))
}

fn decode(recorded: &RecordedEvent) -> Result<Envelope, Problem> {
    feed::decode(recorded).map_err(|e| Problem::internal(&e))
}

// ---------------------------------------------------------------------------------------------
// Conversations as a stream has met them.

/// Conversations' states as of the last event a stream has seen of each: enough to know who
/// takes part in them when the next event arrives.
struct Known {
    conversations: HashMap<ConversationId, (Conversation, Position)>,
    /// Keep the messages (their visibility), or only who takes part.
    with_messages: bool,
}

impl Known {
    fn new(with_messages: bool) -> Known {
        Known {
            conversations: HashMap::new(),
            with_messages,
        }
    }

    /// The conversation as the log has it now, loaded if it is not known yet.
    async fn load(
        &mut self,
        service: &CommandService,
        id: ConversationId,
    ) -> Result<&Conversation, Problem> {
        if !self.conversations.contains_key(&id) && self.conversations.len() >= KNOWN_CONVERSATIONS
        {
            self.conversations.clear();
        }
        let (conversation, _) = match self.conversations.entry(id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => {
                let stream = CommandService::stream::<Conversation>(id)?;
                let (conversation, _, position) = service.load::<Conversation>(&stream).await?;
                let mut conversation = Arc::unwrap_or_clone(conversation);
                trim(&mut conversation, self.with_messages);
                slot.insert((conversation, position))
            }
        };
        Ok(conversation)
    }

    /// The conversation just after `event`, at `position` (a state loaded later than that
    /// already holds it).
    async fn after(
        &mut self,
        service: &CommandService,
        id: ConversationId,
        position: Position,
        event: &ConversationEvent,
    ) -> Result<&Conversation, Problem> {
        if let Some((conversation, at)) = self.conversations.get_mut(&id)
            && *at < position
        {
            *conversation = std::mem::take(conversation).evolve(event);
            trim(conversation, self.with_messages);
            *at = position;
        }
        self.load(service, id).await
    }
}

/// Drops what a stream does not need of a conversation: its messages, unless `with_messages`.
fn trim(conversation: &mut Conversation, with_messages: bool) {
    if !with_messages {
        conversation.messages.clear();
        conversation.read_through.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Who sees what on a stream.

/// What a stream does with one event.
enum Verdict {
    Show,
    Skip,
    /// The caller may no longer see what the stream follows: it ends.
    End,
}

/// Which events one live stream shows.
trait Audience: Send + Sync + 'static {
    /// Whether events of `stream` may concern this audience (checked before decoding).
    fn follows(&self, stream: &str) -> bool;

    /// What to do with one event of a followed stream.
    fn admit(
        &mut self,
        service: &CommandService,
        position: Position,
        envelope: &Envelope,
    ) -> impl Future<Output = Result<Verdict, Problem>> + Send;
}

/// Admins, agents and integrations on `/api/v1/stream`.
struct Staff {
    caller: Caller,
    /// Only this stream's events: a conversation's, with `?conversation=`.
    only: Option<String>,
    known: Known,
}

/// Whether a staff caller may see a conversation's events.
fn staff_sees(caller: &Caller, conversation: &Conversation) -> bool {
    let agent = caller.agent();
    let member = agent.is_some_and(|a| conversation.members.contains(&a));
    match conversation.kind {
        Some(ConversationKind::Internal) => member,
        Some(ConversationKind::Customer) => {
            member
                || caller.sees_from_customers()
                || agent.is_some_and(|a| conversation.followers.contains(&a))
        }
        None => false,
    }
}

impl Audience for Staff {
    fn follows(&self, stream: &str) -> bool {
        match &self.only {
            Some(only) => stream == only,
            None => !never_shown(stream),
        }
    }

    async fn admit(
        &mut self,
        service: &CommandService,
        position: Position,
        envelope: &Envelope,
    ) -> Result<Verdict, Problem> {
        Ok(match &envelope.event {
            Event::Conversation(id, event) => {
                let conversation = self.known.after(service, *id, position, event).await?;
                match (staff_sees(&self.caller, conversation), &self.only) {
                    (true, _) => Verdict::Show,
                    (false, None) => Verdict::Skip,
                    (false, Some(_)) => Verdict::End,
                }
            }
            // Customer records, like their read routes, are for customer support only.
            Event::Customer(..) if !self.caller.sees_from_customers() => Verdict::Skip,
            Event::Ticket(..) | Event::Customer(..) | Event::HelpDesk(..) => Verdict::Show,
            // Accounts are admins' settings; a contact's messages show as its ticket's.
            Event::Token(..) | Event::Channel(..) | Event::Contact(..) | Event::Other => {
                Verdict::Skip
            }
        })
    }
}

/// A widget visitor on their own conversation's stream: its public messages and its closing
/// and reopening, nothing else.
struct Visitor {
    customer: CustomerId,
    stream: String,
    known: Known,
}

impl Audience for Visitor {
    fn follows(&self, stream: &str) -> bool {
        stream == self.stream
    }

    async fn admit(
        &mut self,
        service: &CommandService,
        position: Position,
        envelope: &Envelope,
    ) -> Result<Verdict, Problem> {
        let Event::Conversation(id, event) = &envelope.event else {
            return Ok(Verdict::Skip);
        };
        let conversation = self.known.after(service, *id, position, event).await?;
        if !widget::is_own(conversation, self.customer) {
            return Ok(Verdict::End);
        }
        let public = |message| {
            conversation
                .messages
                .get(message)
                .is_some_and(|m| m.visibility == Visibility::Public)
        };
        use ConversationEvent as E;
        Ok(match event {
            E::MessageSent(e) if e.visibility == Visibility::Public => Verdict::Show,
            E::MessageEdited(e) if public(&e.message_id) => Verdict::Show,
            E::MessageDeleted(e) if public(&e.message_id) => Verdict::Show,
            E::ConversationClosed(_) | E::ConversationReopened(_) => Verdict::Show,
            _ => Verdict::Skip,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Following the log.

/// Where a live stream reads: the whole log, or one stream of it (a conversation's, for a
/// visitor or a staff stream with `?conversation=`), which never reads the rest.
enum Source {
    All(Subscription),
    One(StreamFeed),
}

impl Source {
    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, LogError> {
        match self {
            Source::All(feed) => feed.next_batch().await,
            Source::One(feed) => feed.next_batch().await,
        }
    }
}

/// One stream of the log, from a global position on: what it already holds, then each new
/// event as the log's head passes it.
struct StreamFeed {
    log: Arc<dyn EventLog>,
    stream: StreamId,
    /// The stream's version read up to.
    version: StreamVersion,
    /// Events at or before this position were sent (or skipped) already.
    after: Position,
    head: watch::Receiver<Position>,
}

impl StreamFeed {
    /// Follows `stream` after position `after`; `known` is a version of the stream and the
    /// position of its event, as loaded when the stream was opened: when it is not past
    /// `after`, the stream's events up to it need not be read again.
    fn new(
        log: Arc<dyn EventLog>,
        stream: StreamId,
        after: Position,
        known: (StreamVersion, Position),
    ) -> StreamFeed {
        let (known_version, known_position) = known;
        StreamFeed {
            head: log.watch_head(),
            log,
            stream,
            version: if known_position <= after {
                known_version
            } else {
                StreamVersion::NONE
            },
            after,
        }
    }

    async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, LogError> {
        let limit = STREAM_PAGE;
        loop {
            let known = *self.head.borrow_and_update();
            if known > self.after {
                // Once the head is at `known`, every event up to it is visible: what the stream
                // holds beyond `version` is complete up to there.
                let mut events = self
                    .log
                    .read_stream(&self.stream, self.version, limit)
                    .await?;
                if let Some(last) = events.last() {
                    self.version = last.version;
                }
                let read_to_end = events.len() < limit;
                events.retain(|e| e.position > self.after);
                if let Some(last) = events.last() {
                    self.after = last.position;
                }
                if read_to_end {
                    self.after = self.after.max(known);
                }
                if !events.is_empty() {
                    return Ok(events);
                }
                if !read_to_end {
                    continue;
                }
            }
            self.head.changed().await.map_err(|_| LogError::Closed)?;
        }
    }
}

/// The payload bytes a live stream following the whole log reads at once, at most (a page
/// holds up to [`LIVE_BATCH`] events, and ends once its payloads reach this).
const PAGE_BYTES: usize = 16 * 1024;
/// The events a stream following one conversation reads at once: a few, since each may be
/// large (a message holds up to 20,000 characters, 80 KB).
const STREAM_PAGE: usize = 4;

/// One live stream's state between two SSE events. It reads the log only when the client has
/// taken what was read before: the response body asks for the next event only when the
/// connection could send the last one, so a client that does not read holds one page of
/// stored events ([`PAGE_BYTES`]) and the connection's write buffer, never more.
struct Live<A> {
    state: AppState,
    token_id: TokenId,
    source: Source,
    audience: A,
    /// Read from the log, not yet looked at.
    page: VecDeque<RecordedEvent>,
    /// Revocations as they are applied; `None` once the server stops telling them.
    revoked: Option<broadcast::Receiver<TokenId>>,
    checked: Instant,
    ended: bool,
    _slot: StreamSlot,
}

impl<A: Audience> Live<A> {
    /// The next event to send; `None` ends the stream (the client may reconnect with
    /// `Last-Event-ID`).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if self.ended || self.was_revoked().await {
                return None;
            }
            if let Some(recorded) = self.page.pop_front() {
                match self.show(&recorded).await {
                    Ok(Some(event)) => return Some(event),
                    Ok(None) => continue,
                    Err(problem) => {
                        tracing::warn!(detail = %problem.detail, "a live stream ends");
                        return None;
                    }
                }
            }
            if self.checked.elapsed() >= TOKEN_RECHECK {
                if !self.token_works().await {
                    return None;
                }
                self.checked = Instant::now();
            }
            let (revoked, source) = (&mut self.revoked, &mut self.source);
            let told = async {
                match revoked.as_mut() {
                    Some(revoked) => revoked.recv().await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::time::timeout(TOKEN_RECHECK, source.next_batch());
            let woken = tokio::select! {
                told = told => Ok(told),
                read = read => Err(read),
            };
            match woken {
                Ok(Ok(token)) if token == self.token_id => return None,
                Ok(Ok(_)) => {}
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    if !self.token_works().await {
                        return None;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => self.revoked = None,
                // Quiet: time to check the token again.
                Err(Err(_)) => {}
                Err(Ok(Err(error))) => {
                    tracing::warn!(%error, "a live stream ends: the log cannot be read");
                    return None;
                }
                Err(Ok(Ok(batch))) => self.page = batch.into(),
            }
        }
    }

    /// Whether the stream's token was revoked (as told so far).
    async fn was_revoked(&mut self) -> bool {
        let Some(revoked) = self.revoked.as_mut() else {
            return false;
        };
        loop {
            match revoked.try_recv() {
                Ok(token) if token == self.token_id => return true,
                Ok(_) => {}
                Err(broadcast::error::TryRecvError::Empty) => return false,
                Err(broadcast::error::TryRecvError::Closed) => {
                    self.revoked = None;
                    return false;
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    return !self.token_works().await;
                }
            }
        }
    }

    /// The SSE event for one stored event, if the audience may see it.
    async fn show(&mut self, recorded: &RecordedEvent) -> Result<Option<SseEvent>, Problem> {
        if !self.audience.follows(&recorded.stream_id) {
            return Ok(None);
        }
        let envelope = decode(recorded)?;
        match self
            .audience
            .admit(&self.state.service, recorded.position, &envelope)
            .await?
        {
            Verdict::Show => {}
            Verdict::Skip => return Ok(None),
            Verdict::End => {
                self.ended = true;
                return Ok(None);
            }
        }
        let Some(shown) = feed_event(recorded, &envelope)? else {
            return Ok(None);
        };
        SseEvent::default()
            .id(shown.position.to_string())
            .json_data(&shown)
            .map(Some)
            .map_err(|e| Problem::internal(&e))
    }

    async fn token_works(&self) -> bool {
        let id = self.token_id.to_string();
        let found = self
            .state
            .models
            .query(access::NAME, move |tx, t| access::by_id(tx, t, &id))
            .await;
        match found {
            Ok(Some(view)) => view.revoked_at.is_none(),
            Ok(None) => false,
            // The read model is unreachable: keep streaming; the log itself is still read.
            Err(error) => {
                tracing::warn!(%error, "a live stream cannot check its token");
                true
            }
        }
    }
}

/// An SSE response following the log after `after` for `audience`: the whole log, or only
/// one stream when the audience follows one (with its version and position as last loaded).
fn live(
    state: AppState,
    token_id: TokenId,
    after: Position,
    only: Option<(StreamId, StreamVersion, Position)>,
    audience: impl Audience,
    slot: StreamSlot,
) -> impl IntoResponse {
    let source = match only {
        Some((stream, version, position)) => Source::One(StreamFeed::new(
            state.log.clone(),
            stream,
            after,
            (version, position),
        )),
        None => Source::All(
            Subscription::new(state.log.clone(), after, LIVE_BATCH).with_max_bytes(PAGE_BYTES),
        ),
    };
    let live = Live {
        revoked: Some(state.revocations.subscribe()),
        source,
        state,
        token_id,
        audience,
        page: VecDeque::new(),
        checked: Instant::now(),
        ended: false,
        _slot: slot,
    };
    let mut stopping = live.state.stopping.clone();
    let keep_alive = live.state.settings.stream_keep_alive;
    let events = futures::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok::<_, Infallible>(event), live))
    })
    // The server is shutting down: end the stream (the client resumes elsewhere).
    .take_until(async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive).text("keep-alive"))
}

/// Where a stream starts: after `Last-Event-ID` if the client sends it, else at the log's head.
async fn resume_point(state: &AppState, headers: &HeaderMap) -> Result<Position, Problem> {
    let head = state.log.head().await?;
    let Some(value) = headers.get("last-event-id") else {
        return Ok(head);
    };
    let after = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            Problem::bad_request("Last-Event-ID must be the position of an event: a whole number")
        })?;
    if after > head.0 {
        return Err(Problem::bad_request(format!(
            "Last-Event-ID {after} is beyond the log's last position ({head})"
        )));
    }
    Ok(Position(after))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// One Server-Sent Events frame as a client's parser reads it (the HTML standard's fields; this
/// server sends `id` and `data` on every event and names none, so `event` is `message`).
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Only documents the frames; they are written by axum's `Sse`.
pub struct SseFrame {
    /// The event's log position.
    pub id: String,
    /// `message`.
    pub event: Option<String>,
    /// The event as a `FeedEvent` JSON object.
    #[schema(content_media_type = "application/json")]
    pub data: String,
    pub retry: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only this conversation's events (404 if the caller may not see it).
    pub conversation: Option<Uuid>,
}

/// Server-Sent Events of everything the token may see, as it happens. Each event's `id:` is its
/// log position and its `data:` a `FeedEvent`; reconnect with `Last-Event-ID` to resume after
/// the last event received. Comments keep an idle connection alive.
#[utoipa::path(get, path = "/api/v1/stream", tag = "live",
    operation_id = "live_stream",
    params(StreamParams,
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position")),
    responses((status = 200, content_type = "text/event-stream", body = SseFrame,
               description = "An endless stream of SSE frames (the schema is one frame's): \
                              `id:` the event's position, `data:` the event as a `FeedEvent` \
                              JSON object"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 429, body = Problem, description = "The token (or the visitors' address) holds the most open streams allowed")))]
async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<impl IntoResponse, Problem> {
    caller.require_staff()?;
    let after = resume_point(&state, &headers).await?;
    let token_id = caller.token_id;
    let slot = state.streams.open(token_id, None)?;
    let mut audience = Staff {
        caller,
        only: None,
        known: Known::new(false),
    };
    let mut only = None;
    if let Some(id) = params.conversation.map(ConversationId) {
        let conversation = audience.known.load(&state.service, id).await?;
        if !staff_sees(&audience.caller, conversation) {
            return Err(Problem::not_found("no such conversation"));
        }
        let stream = CommandService::stream::<Conversation>(id)?;
        let (_, version, position) = state.service.load::<Conversation>(&stream).await?;
        audience.only = Some(stream.to_string());
        only = Some((stream, version, position));
    }
    Ok(live(state, token_id, after, only, audience, slot))
}

/// Server-Sent Events of one of the visitor's own conversations: its public messages (sent,
/// edited, deleted) and its closing and reopening; never internal notes or anything else.
/// Resumable with `Last-Event-ID` like `/api/v1/stream`.
#[utoipa::path(get, path = "/widget/v1/conversations/{conversation_id}/stream", tag = "widget",
    operation_id = "widget_conversation_stream",
    params(("conversation_id" = Uuid, Path, description = "The conversation's id"),
           ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position")),
    responses((status = 200, content_type = "text/event-stream", body = SseFrame,
               description = "An endless stream of SSE frames (the schema is one frame's): \
                              `id:` the event's position, `data:` the event as a `FeedEvent` \
                              JSON object"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 429, body = Problem, description = "The token (or the visitors' address) holds the most open streams allowed")))]
async fn widget_stream(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(from): ClientAddr,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, Problem> {
    let customer = caller.require_visitor()?;
    let after = resume_point(&state, &headers).await?;
    let id = ConversationId(id);
    let stream = CommandService::stream::<Conversation>(id)?;
    let mut audience = Visitor {
        customer,
        stream: stream.to_string(),
        known: Known::new(true),
    };
    if !widget::is_own(audience.known.load(&state.service, id).await?, customer) {
        return Err(Problem::not_found("no such conversation"));
    }
    let slot = state.streams.open(caller.token_id, from)?;
    let (_, version, position) = state.service.load::<Conversation>(&stream).await?;
    let only = Some((stream, version, position));
    Ok(live(state, caller.token_id, after, only, audience, slot))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// Events after this position (0, the default, is the log's beginning): a page's
    /// `next_after`.
    pub after: Option<u64>,
    /// At most this many events read (1..=1000, default 100).
    pub limit: Option<usize>,
}

/// A page of the global feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    /// In position order. Token events are left out, so a page may hold fewer than `limit`.
    pub events: Vec<FeedEvent>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// Whether the log held more events than this page when it was read.
    pub has_more: bool,
}

/// The whole log, paged by position, for integrations and admins: every event of
/// conversations (internal ones included), tickets, customers and the help desk, in the
/// `FeedEvent` shape of the streams. Token events are never shown.
#[utoipa::path(get, path = "/api/v1/events", tag = "live",
    operation_id = "event_feed", params(FeedParams),
    responses((status = 200, body = FeedPage), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 503, body = Problem)))]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<FeedParams>,
) -> Result<Json<FeedPage>, Problem> {
    if !(caller.is_admin() || caller.role == Role::Integration) {
        return Err(Problem::forbidden(
            "the event feed is for integration and admin tokens",
        ));
    }
    let limit = params.limit.unwrap_or(DEFAULT_FEED_PAGE);
    if !(1..=MAX_FEED_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_FEED_PAGE}"
        )));
    }
    let after = Position(params.after.unwrap_or(0));
    let batch = state.log.read_all(after, limit).await?;
    let head = state.log.head().await?;
    let next_after = batch.last().map_or(after, |last| last.position);
    let mut events = Vec::with_capacity(batch.len());
    for recorded in batch.iter().filter(|r| !never_shown(&r.stream_id)) {
        if let Some(shown) = feed_event(recorded, &decode(recorded)?)? {
            events.push(shown);
        }
    }
    Ok(Json(FeedPage {
        events,
        next_after: next_after.0,
        has_more: next_after < head,
    }))
}
