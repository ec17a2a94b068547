//! The HTTP surface: `/api/v1` for agents, admins and integrations, `/widget/v1` for customers,
//! live streams, the event feed, `/health`, `/ready`, `/metrics` and the OpenAPI document.
//!
//! Each module owns its routes and documents them with `#[utoipa::path]`; [`router`] merges
//! them, so `GET /api/v1/openapi.json` is generated from the same code that serves.
//!
//! Habits every route keeps:
//! - every error is a [`Problem`] (problem+json), extractors included ([`extract`]);
//! - every route but the public ones takes a [`auth::Caller`] and checks its role first;
//! - commands answer the stream's new version and the global position
//!   ([`CommandReply`]); reads take `?position=` and wait until the read model has applied it
//!   (read-your-writes, [`AppState::caught_up`]);
//! - lists are paged by opaque cursors.

pub mod auth;
pub mod channels;
pub mod conversations;
pub mod customers;
pub mod extract;
pub mod files;
pub mod helpdesk;
pub mod hooks;
pub mod idempotency;
pub mod live;
pub mod ops;
pub mod streams;
pub mod tickets;
pub mod tokens;
pub mod views;
pub mod widget;

use crate::problem::{Problem, REQUEST_ID};
use crate::service::{CommandService, Executed};
use auth::Authenticator;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use parley_eventlog::EventLog;
use parley_projections::ReadModels;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// What every handler can reach. Axum clones the state several times per request, so it is
/// one shared pointer to [`Shared`] rather than a dozen.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub log: Arc<dyn EventLog>,
    pub models: ReadModels,
    pub service: CommandService,
    pub auth: Authenticator,
    pub settings: Settings,
    /// The `Idempotency-Key` records shared by all nodes.
    pub idempotency: Arc<idempotency::IdempotencyStore>,
    /// Uploaded files: their records and content-addressed bytes.
    pub files: Arc<crate::files::FileStore>,
    /// Open live streams per token (and per visitors' address).
    pub streams: Arc<streams::StreamLimits>,
    /// Token revocations, told to every open stream.
    pub revocations: streams::Revocations,
    /// What follows the log and acts: the inbound messages' reaction, the dispatcher.
    pub reactions: parley_app::reactions::Reactions,
    /// Connected channel accounts and their secrets.
    pub channels: Arc<parley_app::channels::Directory>,
    /// The platforms' APIs, as the webhooks' side needs them (the dispatcher has its own).
    pub platforms: parley_channels::http::Client,
    /// Turns `true` when the server begins to shut down: endless responses (live streams) end
    /// then, so that graceful shutdown does not wait for them forever.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

/// HTTP settings, from the server's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest request body accepted, in bytes (413 beyond); file uploads have their own
    /// limit (`FileStore::max_bytes`).
    pub body_limit: usize,
    /// Longest a read waits for `?position=` before answering 503 `lagging`.
    pub read_wait: Duration,
    /// How often a quiet live stream sends a keep-alive comment.
    pub stream_keep_alive: Duration,
    /// The server's address as the platforms reach it (`https://desk.example.com`), for the
    /// webhook URLs shown to admins; without it, they are paths.
    pub public_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            body_limit: 1024 * 1024,
            read_wait: Duration::from_secs(5),
            stream_keep_alive: Duration::from_secs(15),
            public_url: None,
        }
    }
}

impl AppState {
    /// Waits until read model `name` has applied the log up to `position` (when given), so a
    /// client that sends the position of its last command reads its own writes.
    pub async fn caught_up(&self, name: &str, position: Option<u64>) -> Result<(), Problem> {
        if let Some(position) = position {
            if position > self.models.position(name)? {
                // Only positions the log has reached can be waited for.
                let head = self.log.head().await?;
                if position > head.0 {
                    return Err(Problem::invalid(format!(
                        "position {position} is beyond the log's head ({})",
                        head.0
                    )));
                }
            }
            self.models
                .wait_for(name, position, self.settings.read_wait)
                .await?;
        }
        Ok(())
    }
}

/// A conversation's or ticket's detail: which of its messages (or entries) to answer, and
/// `?position=` as on every read.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetailParams {
    /// Wait (a few seconds at most) until the read model reflects this log position, e.g.
    /// the `position` a command answered.
    pub position: Option<u64>,
    /// At most this many messages or entries, oldest first (1..=1000, default 200).
    pub limit: Option<usize>,
    /// From a previous answer's `next_cursor`: the messages or entries after those.
    pub cursor: Option<String>,
}

impl DetailParams {
    /// The stretch of messages or entries asked for; 400 for a bad limit or cursor.
    pub fn page(&self) -> Result<parley_projections::detail::Page, Problem> {
        use parley_projections::detail::{DEFAULT_PAGE, MAX_PAGE, Page};
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Problem::bad_request(format!(
                "limit must be between 1 and {MAX_PAGE}"
            )));
        }
        let after = match self.cursor.as_deref() {
            Some(cursor) => Some(
                Page::parse_cursor(cursor)
                    .ok_or_else(|| Problem::bad_request("cursor is not one this server gave"))?,
            ),
            None => None,
        };
        Ok(Page { after, limit })
    }
}

/// `?position=<global position>` on reads: answer only once the read model has applied it.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AtLeast {
    /// Wait (a few seconds at most) until the read model reflects this log position, e.g.
    /// the `position` a command answered.
    pub position: Option<u64>,
}

/// What an accepted command answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandReply {
    /// The id of what the command created or acted on.
    pub id: String,
    /// The stream's version after the command (use it in `If-Match`).
    pub stream_version: u64,
    /// The global log position of the command's last event (use it as `?position=` on
    /// reads to see the command's effect).
    pub position: u64,
    /// Events the command appended (0 when it changed nothing).
    pub events: usize,
}

impl CommandReply {
    pub fn new(id: impl ToString, executed: &Executed) -> CommandReply {
        CommandReply {
            id: id.to_string(),
            stream_version: executed.stream_version.0,
            position: executed.position.0,
            events: executed.events,
        }
    }
}

/// Cuts `items` (read with one more than `limit`) to the page, and answers the cursor of the
/// next page (`cursor_of` its last item) when there is one.
pub(crate) fn next_page<T>(
    items: &mut Vec<T>,
    limit: usize,
    cursor_of: impl Fn(&T) -> String,
) -> Option<String> {
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    }
}

/// A cursor of a list ordered by (time, key): `<microseconds>.<key>`.
pub(crate) fn time_key_cursor(at: i64, key: impl std::fmt::Display) -> String {
    format!("{at}.{key}")
}

/// Reads a [`time_key_cursor`] whose key is a `K`; 400 for anything else.
pub(crate) fn parse_time_key_cursor<K: std::str::FromStr>(
    cursor: &str,
) -> Result<(i64, K), Problem> {
    let bad = || Problem::bad_request("cursor is not one this server gave");
    let (at, key) = cursor.split_once('.').ok_or_else(bad)?;
    Ok((
        at.parse().map_err(|_| bad())?,
        key.parse().map_err(|_| bad())?,
    ))
}

/// Reads a [`time_key_cursor`] whose key is a UUID, as its text.
pub(crate) fn parse_time_id_cursor(cursor: &str) -> Result<(i64, String), Problem> {
    let (at, id) = parse_time_key_cursor::<uuid::Uuid>(cursor)?;
    Ok((at, id.to_string()))
}

/// The current time as the domain takes it (the domain reads no clock).
pub fn now() -> parley_domain::Timestamp {
    parley_domain::Timestamp(parley_eventlog::Timestamp::now().as_micros())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parley",
        description = "Event-sourced customer conversations and tickets. Errors are RFC 9457 \
                       problem+json; commands answer the stream version and global position."
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem, CommandReply))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Every documented route, with its OpenAPI description.
fn documented() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(conversations::routes())
        .merge(tickets::routes())
        .merge(channels::routes())
        .merge(hooks::routes())
        .merge(customers::routes())
        .merge(helpdesk::routes())
        .merge(tokens::routes())
        .merge(views::routes())
        .merge(widget::routes())
        .merge(files::routes())
        .merge(live::routes())
        .merge(ops::routes())
}

/// The OpenAPI 3.1 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = documented().into_openapi();
    idempotency::document(&mut api);
    api
}

/// The whole HTTP surface, without a listener: tests can drive it in-process.
pub fn router(state: AppState) -> Router {
    let (routes, mut api) = documented().split_for_parts();
    idempotency::document(&mut api);
    let api = Arc::new(api);
    let body_limit = state.settings.body_limit;
    // Installed before the first request, so that every request is counted.
    ops::recorder();
    routes
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let api = api.clone();
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this resource does not answer that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(axum::middleware::from_fn(ops::track_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(request_id))
        .with_state(state)
}

/// Gives every request an id (the client's `x-request-id` if it is sane, else a new UUID),
/// visible to handlers and problems through [`REQUEST_ID`] and echoed in the response.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let mut response = REQUEST_ID.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
