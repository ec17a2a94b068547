//! A stand-in for the five platforms' APIs, on one local port, for tests and benchmarks
//! (feature `standin`).
//!
//! ```text
//! let standin = StandIn::start();                       // inside a tokio runtime
//! let account = standin.account(Platform::Whatsapp);    // api_base = standin.base_url()
//! let secrets = standin.secrets(Platform::Whatsapp);
//! standin.script("15551234567", vec![Behaviour::ServerError, Behaviour::Accept]);
//! let outcome = parley_channels::send(&client, &account, &secrets, &message).await;
//! assert_eq!(standin.attempts("15551234567"), 1);
//! ```
//!
//! Routes, relative to [`StandIn::base_url`] (which stands for every platform's `api_base`):
//!
//! | Route | Platform |
//! |---|---|
//! | `POST /{phone_number_id}/messages` (body with `messaging_product`) | WhatsApp send |
//! | `POST /{page_id}/messages` (any other body) | Messenger send |
//! | `GET /{media_id}` | WhatsApp media: `{"url": "{base}/files/{media_id}", "mime_type"}` |
//! | `POST /v2/bot/message/reply`, `POST /v2/bot/message/push` | LINE send |
//! | `GET /v2/bot/message/{id}/content` | LINE content |
//! | `GET /cgi-bin/token` | WeChat access token |
//! | `POST /cgi-bin/message/custom/send` | WeChat send |
//! | `GET /cgi-bin/media/get` | WeChat media |
//! | `POST /2/dm_conversations/with/{id}/messages` | X send |
//! | `GET /files/{name}` | a file's bytes, for plain URLs |
//!
//! Sends: each send to a recipient (the customer's id; for LINE's reply API, the reply token)
//! takes the next of its scripted [`Behaviour`]s, the last one repeating; unscripted ones are
//! accepted. Every send is recorded ([`StandIn::sent`]) and counted ([`StandIn::attempts`]),
//! including those refused for a missing or unknown token; those do not take a behaviour.
//! Accepted sends get ids in each platform's shape (`wamid.…`, `m_…`, numeric for LINE and X;
//! WeChat's answer names none, as WeChat's does not). Answers, refusals and errors have each
//! platform's shape and status: Graph's `{"error":{…}}`, LINE's `{"message"}`, WeChat's
//! `{"errcode","errmsg"}` (HTTP 200 for its refusals, as WeChat does), X's
//! `{"title","detail","status"}`.
//!
//! Media: [`StandIn::put_media`] puts a file under an id. Unknown ids are answered as each
//! platform does: Graph 404 (`code` 100), LINE 404, WeChat `errcode` 40007, and a plain 404
//! on `/files/…`.
//!
//! LINE's push API keeps the `X-Line-Retry-Key`s it accepted: a push with one of them again
//! is answered 409 with what was sent then, as LINE does.
//!
//! Tokens: the Graph, LINE and X routes want an `Authorization` header (Graph also takes an
//! `access_token` query parameter), any value; WeChat's want an `access_token` the stand-in
//! issued at `/cgi-bin/token` and has not expired ([`StandIn::expire_tokens`]).
//!
//! It is made to be fast: one short lock per request, no logging. [`StandIn::set_recording`]
//! turns the record of bodies off for long benchmarks (counters are always kept).

use crate::{Account, Platform, Secrets};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

/// How the stand-in answers one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts it and names it.
    Accept,
    /// The platform's own refusal: its window error (WhatsApp 400 `131047`, Messenger 400
    /// `(#10)`, WeChat `45015`, X 403), LINE 400 `Invalid reply token` on the reply API and
    /// 400 `Failed to send messages` on the push API.
    Refuse,
    /// 500, in the platform's shape.
    ServerError,
    /// 429 with `Retry-After`, in the platform's shape.
    TooManyRequests { retry_after_secs: u64 },
    /// Never answers: the request stays open until the client gives up.
    Hang,
}

/// One send the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub platform: Platform,
    /// The customer's id; for LINE's reply API, the reply token.
    pub recipient: String,
    /// What it says: its text, or a file's URL (LINE: each message's, one a line).
    pub text: String,
    /// The JSON body as it came.
    pub body: Value,
    /// The `Authorization` header (WeChat: the `access_token` query parameter; Graph: the
    /// `access_token` one when there is no header).
    pub authorization: Option<String>,
    pub accepted: bool,
    /// The id it was given, when accepted (WeChat's answer names none).
    pub message_id: Option<String>,
}

/// One file fetched from the stand-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub path: String,
    pub authorization: Option<String>,
}

/// The stand-in server. Dropping it stops it accepting connections; open ones end when their
/// client closes them.
pub struct StandIn {
    state: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl std::fmt::Debug for StandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandIn")
            .field("base_url", &self.state.base_url)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// Listens on `127.0.0.1` on a free port and serves on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime, or when no local port can be bound.
    pub fn start() -> StandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| {
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .unwrap_or_else(|err| panic!("the stand-in cannot listen: {err}"));
        let listener = tokio::net::TcpListener::from_std(listener)
            .unwrap_or_else(|err| panic!("the stand-in cannot listen: {err}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|err| panic!("the stand-in has no address: {err}"));
        let state = Arc::new(Shared {
            base_url: format!("http://{address}"),
            recording: AtomicBool::new(true),
            next_id: AtomicU64::new(1),
            token_requests: AtomicU64::new(0),
            sends: Mutex::default(),
            media: RwLock::default(),
            tokens: RwLock::default(),
            fetched: Mutex::default(),
        });
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            // Ends only when the task is aborted or the listener fails.
            let _ = axum::serve(listener, app).await;
        });
        StandIn { state, server }
    }

    /// `http://127.0.0.1:{port}`: every platform's `api_base`.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// An account of `platform` at the stand-in, with made-up ids.
    pub fn account(&self, platform: Platform) -> Account {
        let ids: &[(&str, &str)] = match platform {
            Platform::Whatsapp => &[
                ("phone_number_id", "106540352242922"),
                ("display_phone_number", "15550783881"),
            ],
            Platform::Messenger => &[("page_id", "104836462283547")],
            Platform::Line => &[
                ("channel_id", "1657389400"),
                ("bot_user_id", "U9b3a6f1c0d2e4f5a6b7c8d9e0f1a2b3c"),
            ],
            Platform::Wechat => &[
                ("app_id", "wx8a1b2c3d4e5f6a7b"),
                ("original_id", "gh_3b4c5d6e7f80"),
            ],
            Platform::X => &[("user_id", "1488208400917450752")],
        };
        Account {
            platform,
            ids: ids
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            api_base: self.state.base_url.clone(),
        }
    }

    /// Every secret `platform`'s accounts keep, each set to `standin-{name}`.
    pub fn secrets(&self, platform: Platform) -> Secrets {
        Secrets(
            platform
                .secret_names()
                .iter()
                .map(|(name, _)| (name.to_string(), format!("standin-{name}")))
                .collect(),
        )
    }

    /// How the next sends to `recipient` are answered, one behaviour each, the last repeating
    /// (an empty list is [`Behaviour::Accept`]). Replaces any earlier script.
    pub fn script(&self, recipient: &str, behaviours: Vec<Behaviour>) {
        let mut sends = self.state.sends();
        sends.scripts.insert(
            recipient.to_owned(),
            Script {
                behaviours,
                next: 0,
            },
        );
    }

    /// Every send received, in order (while recording).
    pub fn sent(&self) -> Vec<Sent> {
        self.state.sends().sent.clone()
    }

    /// How many sends to `recipient` were received.
    pub fn attempts(&self, recipient: &str) -> u64 {
        self.state
            .sends()
            .attempts
            .get(recipient)
            .copied()
            .unwrap_or(0)
    }

    /// How many sends were received in all.
    pub fn total_attempts(&self) -> u64 {
        self.state.sends().total
    }

    /// Forgets what was sent and the counts (scripts stay).
    pub fn clear(&self) {
        let mut sends = self.state.sends();
        sends.sent.clear();
        sends.attempts.clear();
        sends.total = 0;
        lock(&self.state.fetched).clear();
    }

    /// Whether sends' bodies and fetches are recorded (on at the start). Counters are kept
    /// either way.
    pub fn set_recording(&self, on: bool) {
        self.state.recording.store(on, Ordering::Relaxed);
    }

    /// A file: WhatsApp's `/{media_id}` answers its URL, LINE's content and WeChat's media
    /// routes serve it by that id, and `/files/{media_id}` serves it to anyone.
    pub fn put_media(&self, media_id: &str, bytes: impl Into<Bytes>, content_type: &str) {
        let media = Media {
            bytes: bytes.into(),
            content_type: content_type.to_owned(),
        };
        self.state
            .media
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(media_id.to_owned(), media);
    }

    /// The files' bytes served (`/files/…`, LINE's content, WeChat's media), in order, while
    /// recording.
    pub fn fetched(&self) -> Vec<Fetched> {
        lock(&self.state.fetched).clone()
    }

    /// How many WeChat access tokens were asked for.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::Relaxed)
    }

    /// Makes every WeChat access token issued so far invalid (`errcode` 40001 on use).
    pub fn expire_tokens(&self) {
        self.state
            .tokens
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

struct Shared {
    base_url: String,
    recording: AtomicBool,
    next_id: AtomicU64,
    token_requests: AtomicU64,
    sends: Mutex<Sends>,
    media: RwLock<HashMap<String, Media>>,
    /// WeChat access tokens issued and not expired.
    tokens: RwLock<HashSet<String>>,
    fetched: Mutex<Vec<Fetched>>,
}

#[derive(Default)]
struct Sends {
    scripts: HashMap<String, Script>,
    /// LINE pushes' retry keys, with the answer each was accepted with.
    retry_keys: HashMap<String, Value>,
    attempts: HashMap<String, u64>,
    total: u64,
    sent: Vec<Sent>,
}

struct Script {
    behaviours: Vec<Behaviour>,
    next: usize,
}

struct Media {
    bytes: Bytes,
    content_type: String,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn sends(&self) -> MutexGuard<'_, Sends> {
        lock(&self.sends)
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn media(&self, id: &str) -> Option<(Bytes, String)> {
        let media = self.media.read().unwrap_or_else(PoisonError::into_inner);
        media
            .get(id)
            .map(|m| (m.bytes.clone(), m.content_type.clone()))
    }

    fn record_fetch(&self, path: String, headers: &HeaderMap) {
        if self.recording.load(Ordering::Relaxed) {
            lock(&self.fetched).push(Fetched {
                path,
                authorization: authorization(headers),
            });
        }
    }

    fn wechat_token_valid(&self, token: &str) -> bool {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(token)
    }
}

fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/{account}/messages", post(graph_send))
        .route("/{media_id}", get(whatsapp_media))
        .route("/files/{name}", get(file))
        .route("/v2/bot/message/reply", post(line_reply))
        .route("/v2/bot/message/push", post(line_push))
        .route("/v2/bot/message/{id}/content", get(line_content))
        .route("/cgi-bin/token", get(wechat_token))
        .route("/cgi-bin/message/custom/send", post(wechat_send))
        .route("/cgi-bin/media/get", get(wechat_media))
        .route("/2/dm_conversations/with/{id}/messages", post(x_send))
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Sends.

/// Which send API a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Whatsapp,
    Messenger,
    LineReply,
    LinePush,
    Wechat,
    X,
}

impl Api {
    fn platform(self) -> Platform {
        match self {
            Api::Whatsapp => Platform::Whatsapp,
            Api::Messenger => Platform::Messenger,
            Api::LineReply | Api::LinePush => Platform::Line,
            Api::Wechat => Platform::Wechat,
            Api::X => Platform::X,
        }
    }
}

/// A send as received.
struct Request {
    api: Api,
    recipient: String,
    text: String,
    body: Value,
    authorization: Option<String>,
    /// The answer when the token is missing or unknown.
    unauthorized: Option<Response>,
    /// LINE's `X-Line-Retry-Key`.
    retry_key: Option<String>,
}

/// Counts and records a send: the behaviour it takes and the body of its acceptance, or the
/// answer to a send refused before it takes one (its token is refused; LINE: its retry key
/// was accepted before).
fn record(state: &Shared, request: Request) -> Result<(Behaviour, Value), Response> {
    let Request {
        api,
        recipient,
        text,
        body,
        authorization,
        unauthorized,
        retry_key,
    } = request;
    let mut sends = state.sends();
    sends.total += 1;
    match sends.attempts.get_mut(&recipient) {
        Some(attempts) => *attempts += 1,
        None => {
            sends.attempts.insert(recipient.clone(), 1);
        }
    }
    let accepted_before = retry_key
        .as_ref()
        .and_then(|key| sends.retry_keys.get(key))
        .cloned();
    let taken = match (unauthorized, accepted_before) {
        (Some(unauthorized), _) => Err(unauthorized),
        (None, Some(accepted_before)) => Err(line_conflict(accepted_before)),
        (None, None) => Ok(sends
            .scripts
            .get_mut(&recipient)
            .and_then(Script::take)
            .unwrap_or(Behaviour::Accept)),
    };
    let accepted = matches!(taken, Ok(Behaviour::Accept));
    // LINE names each message of a call.
    let count = match api {
        Api::LineReply | Api::LinePush => {
            body.get("messages")
                .and_then(Value::as_array)
                .map_or(1, |messages| messages.len().max(1)) as u64
        }
        _ => 1,
    };
    let first = accepted.then(|| state.next_id.fetch_add(count, Ordering::Relaxed));
    let accepted_body = first.map(|first| accepted_body(api, &recipient, first, count));
    if let (Some(key), Some(accepted_body)) = (retry_key, &accepted_body) {
        sends.retry_keys.insert(key, accepted_body.clone());
    }
    if state.recording.load(Ordering::Relaxed) {
        sends.sent.push(Sent {
            platform: api.platform(),
            recipient,
            text,
            body,
            authorization,
            accepted,
            message_id: first.and_then(|first| message_id(api, first)),
        });
    }
    taken.map(|behaviour| (behaviour, accepted_body.unwrap_or_default()))
}

/// LINE's answer to a push whose retry key it accepted before: 409, naming what it sent then.
fn line_conflict(accepted_before: Value) -> Response {
    let mut body = json!({ "message": "The retry key is already accepted" });
    if let Some(sent) = accepted_before.get("sentMessages") {
        body["sentMessages"] = sent.clone();
    }
    answer(StatusCode::CONFLICT, body)
}

/// Counts and records a send, and answers it by its recipient's script.
async fn handle(state: &Shared, request: Request) -> Response {
    let api = request.api;
    let (behaviour, accepted_body) = match record(state, request) {
        Ok(taken) => taken,
        Err(unauthorized) => return unauthorized,
    };
    match behaviour {
        Behaviour::Accept => {
            let status = match api {
                Api::X => StatusCode::CREATED,
                _ => StatusCode::OK,
            };
            let mut response = answer(status, accepted_body);
            if matches!(api, Api::LineReply | Api::LinePush) {
                let request_id = format!("{:032x}", state.id());
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert("x-line-request-id", value);
                }
            }
            response
        }
        Behaviour::Refuse => refusal(api),
        Behaviour::ServerError => server_error(api),
        Behaviour::TooManyRequests { retry_after_secs } => {
            let mut response = too_many_requests(api);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            response
        }
        Behaviour::Hang => std::future::pending().await,
    }
}

impl Script {
    /// The next behaviour; the last one repeats.
    fn take(&mut self) -> Option<Behaviour> {
        let behaviour = self
            .behaviours
            .get(self.next)
            .or_else(|| self.behaviours.last())
            .cloned();
        self.next = (self.next + 1).min(self.behaviours.len());
        behaviour
    }
}

/// The id an accepted send is given, in the platform's shape.
fn message_id(api: Api, n: u64) -> Option<String> {
    match api {
        Api::Whatsapp => Some(format!("wamid.HBgLMTU1NTA{n:020}")),
        Api::Messenger => Some(format!("m_{n:022}")),
        Api::LineReply | Api::LinePush => Some(line_id(n)),
        Api::Wechat => None,
        Api::X => Some((1_700_000_000_000_000_000u64 + n).to_string()),
    }
}

fn line_id(n: u64) -> String {
    (500_000_000_000_000_000u64 + n).to_string()
}

/// What the platform answers an accepted send.
fn accepted_body(api: Api, recipient: &str, first: u64, count: u64) -> Value {
    let id = message_id(api, first);
    match api {
        Api::Whatsapp => json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": recipient, "wa_id": recipient }],
            "messages": [{ "id": id }],
        }),
        Api::Messenger => json!({ "recipient_id": recipient, "message_id": id }),
        Api::LineReply | Api::LinePush => {
            let sent: Vec<Value> = (0..count)
                .map(|i| json!({ "id": line_id(first + i), "quoteToken": format!("q{}", first + i) }))
                .collect();
            json!({ "sentMessages": sent })
        }
        Api::Wechat => json!({ "errcode": 0, "errmsg": "ok" }),
        Api::X => json!({
            "data": {
                "dm_conversation_id": format!("{}-1488208400917450752", recipient),
                "dm_event_id": id,
            }
        }),
    }
}

fn answer(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

fn graph_error(status: StatusCode, code: i64, message: &str, transient: bool) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AStandInTraceId0000000",
    });
    if transient {
        error["is_transient"] = json!(true);
    }
    answer(status, json!({ "error": error }))
}

fn line_error(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "message": message }))
}

fn wechat_error(status: StatusCode, errcode: i64, errmsg: &str) -> Response {
    answer(status, json!({ "errcode": errcode, "errmsg": errmsg }))
}

fn x_error(status: StatusCode, title: &str, detail: &str) -> Response {
    answer(
        status,
        json!({ "title": title, "detail": detail, "type": "about:blank", "status": status.as_u16() }),
    )
}

fn refusal(api: Api) -> Response {
    match api {
        Api::Whatsapp => {
            let mut response = json!({
                "error": {
                    "message": "(#131047) Re-engagement message",
                    "type": "OAuthException",
                    "code": 131047,
                    "error_data": {
                        "messaging_product": "whatsapp",
                        "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
                    },
                    "fbtrace_id": "AStandInTraceId0000000",
                }
            });
            response["error"]["error_subcode"] = json!(2494010);
            answer(StatusCode::BAD_REQUEST, response)
        }
        Api::Messenger => {
            let mut response = json!({
                "error": {
                    "message": "(#10) This message is sent outside of allowed window.",
                    "type": "OAuthException",
                    "code": 10,
                    "fbtrace_id": "AStandInTraceId0000000",
                }
            });
            response["error"]["error_subcode"] = json!(2018278);
            answer(StatusCode::BAD_REQUEST, response)
        }
        Api::LineReply => line_error(StatusCode::BAD_REQUEST, "Invalid reply token"),
        Api::LinePush => line_error(StatusCode::BAD_REQUEST, "Failed to send messages"),
        Api::Wechat => wechat_error(
            StatusCode::OK,
            45015,
            "response out of time limit or subscription is canceled",
        ),
        Api::X => x_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not permitted to send Direct Messages to this user.",
        ),
    }
}

fn server_error(api: Api) -> Response {
    let status = StatusCode::INTERNAL_SERVER_ERROR;
    match api {
        Api::Whatsapp | Api::Messenger => graph_error(
            status,
            2,
            "An unexpected error has occurred. Please retry your request later.",
            true,
        ),
        Api::LineReply | Api::LinePush => line_error(status, "An internal server error occurred"),
        Api::Wechat => wechat_error(status, -1, "system error"),
        Api::X => x_error(status, "Internal Server Error", "Internal Server Error"),
    }
}

fn too_many_requests(api: Api) -> Response {
    let status = StatusCode::TOO_MANY_REQUESTS;
    match api {
        Api::Whatsapp => graph_error(status, 130429, "(#130429) Rate limit hit", false),
        Api::Messenger => graph_error(
            status,
            613,
            "(#613) Calls to this api have exceeded the rate limit.",
            false,
        ),
        Api::LineReply | Api::LinePush => line_error(
            status,
            "The API rate limit has been exceeded. Try again later.",
        ),
        Api::Wechat => wechat_error(status, 45009, "reach max api daily quota limit"),
        Api::X => x_error(status, "Too Many Requests", "Too Many Requests"),
    }
}

/// The `Authorization` header, as text.
fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn parse(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn str_at<'a>(body: &'a Value, pointer: &str) -> &'a str {
    body.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

async fn graph_send(
    State(state): State<Arc<Shared>>,
    Path(_account): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse(&body);
    let authorization = authorization(&headers).or_else(|| query.get("access_token").cloned());
    let unauthorized = authorization.is_none().then(|| {
        graph_error(
            StatusCode::UNAUTHORIZED,
            104,
            "An access token is required to request this resource.",
            false,
        )
    });
    let request = if body.get("messaging_product").is_some() {
        let kind = str_at(&body, "/type");
        let text = if kind == "text" {
            str_at(&body, "/text/body")
        } else {
            body.get(kind)
                .and_then(|media| media.get("link"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        Request {
            api: Api::Whatsapp,
            recipient: str_at(&body, "/to").to_owned(),
            text: text.to_owned(),
            body,
            authorization,
            unauthorized,
            retry_key: None,
        }
    } else {
        let text = body
            .pointer("/message/text")
            .or_else(|| body.pointer("/message/attachment/payload/url"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Request {
            api: Api::Messenger,
            recipient: str_at(&body, "/recipient/id").to_owned(),
            text,
            body,
            authorization,
            unauthorized,
            retry_key: None,
        }
    };
    handle(&state, request).await
}

fn line_request(api: Api, recipient_pointer: &str, headers: &HeaderMap, body: Bytes) -> Request {
    let body = parse(&body);
    let text = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|message| {
            message
                .get("text")
                .or_else(|| message.get("originalContentUrl"))
                .and_then(Value::as_str)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let authorization = authorization(headers);
    let unauthorized = authorization.is_none().then(|| {
        line_error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        )
    });
    Request {
        api,
        recipient: str_at(&body, recipient_pointer).to_owned(),
        text,
        body,
        authorization,
        unauthorized,
        retry_key: (api == Api::LinePush)
            .then(|| {
                headers
                    .get("x-line-retry-key")?
                    .to_str()
                    .ok()
                    .map(str::to_owned)
            })
            .flatten(),
    }
}

async fn line_reply(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = line_request(Api::LineReply, "/replyToken", &headers, body);
    handle(&state, request).await
}

async fn line_push(State(state): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = line_request(Api::LinePush, "/to", &headers, body);
    handle(&state, request).await
}

async fn wechat_send(
    State(state): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let body = parse(&body);
    let token = query.get("access_token").cloned();
    let unauthorized = match &token {
        None => Some(wechat_error(StatusCode::OK, 41001, "access_token missing")),
        Some(token) if !state.wechat_token_valid(token) => Some(wechat_error(
            StatusCode::OK,
            40001,
            "invalid credential, access_token is invalid or not latest",
        )),
        Some(_) => None,
    };
    let request = Request {
        api: Api::Wechat,
        recipient: str_at(&body, "/touser").to_owned(),
        text: str_at(&body, "/text/content").to_owned(),
        body,
        authorization: token,
        unauthorized,
        retry_key: None,
    };
    handle(&state, request).await
}

async fn x_send(
    State(state): State<Arc<Shared>>,
    Path(participant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse(&body);
    let authorization = authorization(&headers);
    let unauthorized = authorization
        .is_none()
        .then(|| x_error(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"));
    let request = Request {
        api: Api::X,
        recipient: participant,
        text: str_at(&body, "/text").to_owned(),
        body,
        authorization,
        unauthorized,
        retry_key: None,
    };
    handle(&state, request).await
}

// ---------------------------------------------------------------------------------------------
// Tokens and media.

async fn wechat_token(
    State(state): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    state.token_requests.fetch_add(1, Ordering::Relaxed);
    let present = |name: &str| query.get(name).is_some_and(|value| !value.is_empty());
    if query.get("grant_type").map(String::as_str) != Some("client_credential") {
        return wechat_error(StatusCode::OK, 40002, "invalid grant_type");
    }
    if !present("appid") {
        return wechat_error(StatusCode::OK, 41002, "appid missing");
    }
    if !present("secret") {
        return wechat_error(StatusCode::OK, 41004, "appsecret missing");
    }
    let token = format!("standin-token-{:016x}", state.id());
    state
        .tokens
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone());
    answer(
        StatusCode::OK,
        json!({ "access_token": token, "expires_in": 7200 }),
    )
}

fn bytes(bytes: Bytes, content_type: &str) -> Response {
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
}

async fn whatsapp_media(
    State(state): State<Arc<Shared>>,
    Path(media_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if authorization(&headers).is_none() {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            104,
            "An access token is required to request this resource.",
            false,
        );
    }
    let Some((bytes, content_type)) = state.media(&media_id) else {
        let mut response = json!({
            "error": {
                "message": format!("Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
                "type": "GraphMethodException",
                "code": 100,
                "fbtrace_id": "AStandInTraceId0000000",
            }
        });
        response["error"]["error_subcode"] = json!(33);
        return answer(StatusCode::NOT_FOUND, response);
    };
    answer(
        StatusCode::OK,
        json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/files/{media_id}", state.base_url),
            "mime_type": content_type,
            "file_size": bytes.len(),
            "id": media_id,
        }),
    )
}

async fn file(
    State(state): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.record_fetch(format!("/files/{name}"), &headers);
    match state.media(&name) {
        Some((body, content_type)) => bytes(body, &content_type),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn line_content(
    State(state): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    state.record_fetch(format!("/v2/bot/message/{id}/content"), &headers);
    if authorization(&headers).is_none() {
        return line_error(
            StatusCode::UNAUTHORIZED,
            "Authentication failed. Confirm that the access token in the authorization header is valid.",
        );
    }
    match state.media(&id) {
        Some((body, content_type)) => bytes(body, &content_type),
        None => line_error(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn wechat_media(
    State(state): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let media_id = query.get("media_id").cloned().unwrap_or_default();
    state.record_fetch(format!("/cgi-bin/media/get?media_id={media_id}"), &headers);
    match query.get("access_token") {
        None => return wechat_error(StatusCode::OK, 41001, "access_token missing"),
        Some(token) if !state.wechat_token_valid(token) => {
            return wechat_error(
                StatusCode::OK,
                40001,
                "invalid credential, access_token is invalid or not latest",
            );
        }
        Some(_) => {}
    }
    match state.media(&media_id) {
        Some((body, content_type)) => {
            let mut response = bytes(body, &content_type);
            let disposition = format!("attachment; filename=\"{media_id}\"");
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_DISPOSITION, value);
            }
            response
        }
        None => wechat_error(StatusCode::OK, 40007, "invalid media_id"),
    }
}
