//! `Idempotency-Key` on POST requests: a client that retries a command after a timeout or a
//! dropped connection gets the first answer again instead of acting twice.
//!
//! - Keys are scoped to the caller (the digest of its `Authorization` header; the key alone for
//!   requests without one) and bound to the request they first came with (method, path and
//!   body, digested): the same key with another request is refused with 422.
//! - The first answer is stored (status, content type, body) and replayed with
//!   `Idempotent-Replayed: true`; nothing is appended again. A successful answer marked
//!   `Cache-Control: no-store` holds a secret shown only once (a new token's, a new visitor's):
//!   it is not stored, but its key is kept as used, and a retry is answered 409
//!   `idempotency-answer-withheld`, acting nothing again.
//! - What makes this hold across crashes (ADR 10): the request runs inside an
//!   [`IdSource`](crate::ids::IdSource) seeded by its scope, key and the moment the key was
//!   first claimed, so every id it mints and every event id it appends is derived from the key.
//!   A request whose answer was never recorded (its node crashed between appending and
//!   recording, or it answered 5xx, 429 or 401, which are not stored) is simply run again by
//!   the retry, from the same seed: each command the first attempt already appended is found
//!   in the log by its first event id and answered as it was, so nothing acts twice and the
//!   retry needs no marker to lapse.
//! - A retry while the first request is still being handled on the same node gets 409 (retry
//!   a moment later). A retry on another node runs beside it: both draw the same ids, and the
//!   log keeps one of each append.
//! - Records are shared by all nodes ([`IdempotencyStore`]: beside the read models on SQLite,
//!   in the log's database on PostgreSQL) and kept for [`RETENTION`], in-flight markers too
//!   (they hold the seed's time). Expired records are swept lazily, at most once per
//!   [`SWEEP_EVERY`] per process.
//! - Once claimed, a request runs to its end even if the client goes away, so that its answer
//!   is there for the retry.
//! - A file upload (`POST /api/v1/files`, `/widget/v1/files`) is not read here: its body
//!   streams to the file store. It is fingerprinted by its method, path and query and the
//!   headers announcing the file (`Content-Length`, `Content-Disposition`); its file id is
//!   derived from the key like any other, so a run again finds the first attempt's record (422
//!   if that holds another file); and a replay reads the retry's body through SHA-256 (nothing
//!   kept) and answers 422 unless it is the file first answered.

use super::AppState;
use crate::ids::IdSource;
use crate::problem::{Problem, REQUEST_ID};
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parley_projections::{ReadModels, Store, StoreError, Tx, Value, ViewError};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The request header carrying the client's key.
pub const KEY_HEADER: &str = "idempotency-key";
/// The response header marking a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted (400 beyond).
pub const MAX_KEY_LEN: usize = 255;
/// How long an answer is replayed for.
pub const RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// How often a process sweeps expired records away.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The store's file name on SQLite (`<views dir>/idempotency.db`).
const STORE_NAME: &str = "idempotency";

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS parley_idempotency (
        scope TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        at BIGINT NOT NULL,
        status BIGINT,
        content_type TEXT,
        body TEXT,
        PRIMARY KEY (scope, idempotency_key)
    )",
    "CREATE INDEX IF NOT EXISTS parley_idempotency_at ON parley_idempotency (at)",
];

/// Durable records of the requests sent with an `Idempotency-Key`, shared by all nodes.
///
/// One row per (scope, key): the request's fingerprint, `at` (when it was claimed, then when
/// it was answered; microseconds since the epoch) and, once answered, the answer. A row without
/// a status is a request in flight.
pub struct IdempotencyStore {
    store: Store,
    /// When this process last swept expired rows (microseconds since the epoch).
    swept_at: AtomicI64,
    /// The (scope, key) of the requests this process is handling now.
    handling: Mutex<HashSet<(String, String)>>,
}

/// A key this process handles; it lets go of it when dropped.
struct Handling {
    records: Arc<IdempotencyStore>,
    id: (String, String),
}

impl Drop for Handling {
    fn drop(&mut self) {
        if let Ok(mut handling) = self.records.handling.lock() {
            handling.remove(&self.id);
        }
    }
}

/// A request this process is handling under a key: new, or run again after an attempt whose
/// answer was never recorded.
#[derive(Debug, Clone)]
struct Claimed {
    scope: String,
    key: String,
    /// When the key was first claimed (microseconds since the epoch): the seed's time.
    at: i64,
}

/// A stored answer.
#[derive(Debug, Clone)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

/// What a key's record says about a request.
#[derive(Debug)]
enum Claim {
    /// First time: this process handles it.
    Claimed(Claimed),
    /// Answered before: replay.
    Answered(Answer),
    /// Claimed earlier at this time and never answered: run again, from the same seed.
    Unanswered(i64),
    /// Being handled by this process.
    InFlight,
    /// The key came with another request.
    OtherRequest,
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

fn now_micros() -> i64 {
    parley_eventlog::Timestamp::now().as_micros()
}

impl IdempotencyStore {
    /// Opens (creating if needed) the records beside the read models opened from `url`.
    pub async fn open(models: &ReadModels, url: &str) -> Result<IdempotencyStore, ViewError> {
        Ok(IdempotencyStore {
            store: models.side_store(url, STORE_NAME, SCHEMA).await?,
            swept_at: AtomicI64::new(0),
            handling: Mutex::new(HashSet::new()),
        })
    }

    /// Claims `key` for a request, or says what an earlier request with it became.
    async fn claim(
        &self,
        scope: String,
        key: String,
        fingerprint: String,
    ) -> Result<Claim, StoreError> {
        let now = now_micros();
        let last = self.swept_at.load(Ordering::Relaxed);
        let sweep = now.saturating_sub(last) >= micros(SWEEP_EVERY)
            && self
                .swept_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        let (scope_value, key_value) = (scope.clone().into(), key.clone().into());
        let found = self
            .store
            .write(move |tx| {
                if sweep {
                    sweep_expired(tx, now)?;
                }
                claim(tx, scope_value, key_value, &fingerprint, now)
            })
            .await?;
        Ok(match found {
            None => Claim::Claimed(Claimed {
                scope,
                key,
                at: now,
            }),
            Some(Claim::Unanswered(at)) => Claim::Claimed(Claimed { scope, key, at }),
            Some(found) => found,
        })
    }

    /// Marks `(scope, key)` as handled by this process, unless it already is.
    fn handle(self: &Arc<Self>, scope: &str, key: &str) -> Option<Handling> {
        let id = (scope.to_owned(), key.to_owned());
        let mut handling = self.handling.lock().ok()?;
        handling.insert(id.clone()).then(|| Handling {
            records: self.clone(),
            id,
        })
    }

    /// Stores the answer of a claimed request.
    async fn answer(&self, claimed: Claimed, answer: Answer) -> Result<(), StoreError> {
        self.store
            .write(move |tx| {
                tx.execute(
                    "UPDATE parley_idempotency SET status = $4, content_type = $5, body = $6, at = $7
                     WHERE scope = $1 AND idempotency_key = $2 AND at = $3 AND status IS NULL",
                    &[
                        claimed.scope.into(),
                        claimed.key.into(),
                        claimed.at.into(),
                        i64::from(answer.status.as_u16()).into(),
                        answer.content_type.into(),
                        answer.body.into(),
                        now_micros().into(),
                    ],
                )
                .map(drop)
            })
            .await
    }
}

/// Inserts the in-flight marker of a request with this fingerprint at `now` (`None`), or says
/// what the live record of an earlier request with the same key became.
fn claim(
    tx: &mut dyn Tx,
    scope: Value,
    key: Value,
    fingerprint: &str,
    now: i64,
) -> Result<Option<Claim>, StoreError> {
    // Twice at most: a concurrent claim may win the insert (PostgreSQL), then its row decides.
    for _ in 0..2 {
        let found = tx.query_opt(
            "SELECT fingerprint, at, status, content_type, body FROM parley_idempotency
             WHERE scope = $1 AND idempotency_key = $2",
            &[scope.clone(), key.clone()],
        )?;
        if let Some(row) = found {
            let at = row.i64(1)?;
            let status = row.opt_i64(2)?;
            if at >= now.saturating_sub(micros(RETENTION)) {
                if row.text(0)? != fingerprint {
                    return Ok(Some(Claim::OtherRequest));
                }
                let Some(status) = status else {
                    return Ok(Some(Claim::Unanswered(at)));
                };
                let status = u16::try_from(status)
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or_else(|| {
                        StoreError::Corrupt(STORE_NAME, format!("stored status {status}"))
                    })?;
                return Ok(Some(Claim::Answered(Answer {
                    status,
                    content_type: row.opt_text(3)?,
                    body: row.opt_text(4)?.unwrap_or_default(),
                })));
            }
            // Expired: the key is free again.
            tx.execute(
                "DELETE FROM parley_idempotency
                 WHERE scope = $1 AND idempotency_key = $2 AND at = $3",
                &[scope.clone(), key.clone(), at.into()],
            )?;
        }
        let inserted = tx.execute(
            "INSERT INTO parley_idempotency (scope, idempotency_key, fingerprint, at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (scope, idempotency_key) DO NOTHING",
            &[scope.clone(), key.clone(), fingerprint.into(), now.into()],
        )?;
        if inserted == 1 {
            return Ok(None);
        }
    }
    Ok(Some(Claim::InFlight))
}

/// Deletes records (answers and in-flight markers) older than [`RETENTION`].
fn sweep_expired(tx: &mut dyn Tx, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM parley_idempotency WHERE at < $1",
        &[now.saturating_sub(micros(RETENTION)).into()],
    )
    .map(drop)
}

/// The middleware: POST requests with an `Idempotency-Key` are answered at most once.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(KEY_HEADER).cloned() else {
        return next.run(request).await;
    };
    match handle(state, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn handle(
    state: AppState,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let key = valid_key(&key).map_err(|why| Problem::bad_request(why).into_response())?;
    let scope = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| super::auth::digest(&String::from_utf8_lossy(value.as_bytes())))
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let upload = super::files::is_upload(&parts.method, parts.uri.path());
    let (fingerprint, body) = if upload {
        // A file streams to the file store, never held here: the request is told by what
        // announces the file, and a replay checks the file's digest (see `replay_upload`).
        let announced = [header::CONTENT_LENGTH, header::CONTENT_DISPOSITION]
            .map(|name| parts.headers.get(name).map_or(&[][..], |v| v.as_bytes()))
            .join(&b'\n');
        (fingerprint(&parts.method, &parts.uri, &announced), body)
    } else {
        // The body is read whole (within the body limit) to fingerprint the request.
        let mut probe = Request::new(body);
        *probe.extensions_mut() = parts.extensions.clone();
        let body = Bytes::from_request(probe, &()).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    "the request body is larger than the server accepts",
                )
            } else {
                Problem::bad_request(rejection.body_text())
            }
            .into_response()
        })?;
        (
            fingerprint(&parts.method, &parts.uri, &body),
            Body::from(body),
        )
    };
    let records = state.idempotency.clone();
    let in_flight = || {
        Problem {
            retry_after: Some(1),
            ..Problem::new(
                StatusCode::CONFLICT,
                "idempotency-in-flight",
                "a request with this Idempotency-Key is still being handled; retry shortly",
            )
        }
        .into_response()
    };
    let handling = records.handle(&scope, &key).ok_or_else(in_flight)?;
    let claim = records
        .claim(scope, key, fingerprint)
        .await
        .map_err(|error| Problem::from(error).into_response())?;
    let claimed = match claim {
        Claim::Claimed(claimed) => claimed,
        Claim::Answered(answer) if upload => return Ok(replay_upload(answer, body).await),
        Claim::Answered(answer) => return Ok(replay(answer)),
        Claim::InFlight | Claim::Unanswered(_) => return Err(in_flight()),
        Claim::OtherRequest => return Err(key_reused().into_response()),
    };
    let request = Request::from_parts(parts, body);
    // Runs on its own task: the request completes, and its answer is recorded, even if the
    // client disconnects meanwhile.
    let request_id = crate::problem::request_id().unwrap_or_default();
    let ids = IdSource::new(&claimed.scope, &claimed.key, claimed.at);
    let task = tokio::spawn(REQUEST_ID.scope(
        request_id,
        ids.scope(async move {
            let response = next.run(request).await;
            let answered = record(&records, claimed, response).await;
            drop(handling);
            answered
        }),
    ));
    // A panic leaves the key unanswered: a retry runs the request again from the same seed.
    task.await
        .map_err(|error| Problem::internal(&error).into_response())
}

fn key_reused() -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency-key-reused",
        "this Idempotency-Key was used with a different request (method, path or body)",
    )
}

/// The stored answer of an upload, replayed once the retry's body is found to be the same
/// file: its digest, read as it streams and not kept, must be the answered `sha256` (422
/// otherwise). An answer without a digest (a refusal) is replayed as it is.
async fn replay_upload(answer: Answer, body: Body) -> Response {
    let answered = serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|stored| {
            let sha256 = stored.get("sha256")?.as_str()?.to_owned();
            Some((sha256, stored.get("size")?.as_u64()?))
        });
    let Some((sha256, size)) = answered else {
        return replay(answer);
    };
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    let mut pieces = body.into_data_stream();
    while let Some(piece) = futures::StreamExt::next(&mut pieces).await {
        let Ok(piece) = piece else {
            return Problem::bad_request("the upload ended before the file did").into_response();
        };
        read += piece.len() as u64;
        if read > size {
            return key_reused().into_response();
        }
        hasher.update(&piece);
    }
    if super::auth::hex(&hasher.finalize()) == sha256 {
        replay(answer)
    } else {
        key_reused().into_response()
    }
}

/// Checks a key: visible ASCII, 1 to [`MAX_KEY_LEN`] characters. Refusals say why.
fn valid_key(key: &HeaderValue) -> Result<String, String> {
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or("Idempotency-Key must be printable ASCII without spaces")?;
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "Idempotency-Key must be at most {MAX_KEY_LEN} characters"
        ));
    }
    Ok(key.to_owned())
}

/// What makes two requests the same: method, path with query, and body.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(uri.path_and_query().map_or("", |p| p.as_str()).as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    super::auth::hex(&hasher.finalize())
}

/// What becomes of a claimed key once its request is answered.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The answer is stored and replayed to retries.
    Kept,
    /// The request acted, but its answer must not be stored (`Cache-Control: no-store`: it
    /// holds a secret shown only once): retries are told so, and act nothing again.
    Withheld,
    /// The request may not have acted, and may succeed later: its answer is not stored, and a
    /// retry runs it again (from the same seed, so what it did act on is not done twice).
    Unanswered,
}

fn outcome(response: &Response) -> Outcome {
    let status = response.status();
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
    {
        return Outcome::Unanswered;
    }
    let no_store = response
        .headers()
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"));
    match (no_store, status.is_success()) {
        (false, _) => Outcome::Kept,
        (true, true) => Outcome::Withheld,
        (true, false) => Outcome::Unanswered,
    }
}

/// The content type a withheld answer is recorded under (never sent: see [`replay`]).
const WITHHELD: &str = "parley/withheld";

/// Stores the answer of a claimed request (or releases the key), and returns the answer.
async fn record(records: &IdempotencyStore, claimed: Claimed, response: Response) -> Response {
    match outcome(&response) {
        Outcome::Kept => {}
        Outcome::Withheld => {
            let answer = Answer {
                status: response.status(),
                content_type: Some(WITHHELD.to_owned()),
                body: String::new(),
            };
            if let Err(error) = records.answer(claimed, answer).await {
                // A retry runs the request again, finds its token issued and says so.
                tracing::warn!(%error, "cannot record a withheld idempotent answer");
            }
            return response;
        }
        // The key's marker stays: a retry runs the request again from the same seed.
        Outcome::Unanswered => return response,
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(error) => return Problem::internal(&error).into_response(),
    };
    let stored = match std::str::from_utf8(&bytes) {
        Ok(text) => {
            let answer = Answer {
                status: parts.status,
                content_type: parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
                body: text.to_owned(),
            };
            records.answer(claimed, answer).await
        }
        // Answers are JSON; one that is not text is not replayed, but run again.
        Err(_) => Ok(()),
    };
    if let Err(error) = stored {
        // A retry runs the request again, and finds what it appended.
        tracing::warn!(%error, "cannot store the answer of an idempotent request");
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The answer to a retry of a request whose first answer held a secret shown only once.
pub fn withheld() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "idempotency-answer-withheld",
        "the request first sent with this Idempotency-Key succeeded, and nothing was done \
         again; its answer held a secret, which is shown only once and is not kept",
    )
}

/// A stored answer, marked as replayed; for a withheld one, the problem that says so.
fn replay(answer: Answer) -> Response {
    let mut response = if answer.content_type.as_deref() == Some(WITHHELD) {
        withheld().into_response()
    } else {
        (answer.status, answer.body).into_response()
    };
    let headers = response.headers_mut();
    match answer.content_type.as_deref() {
        // The problem's own content type.
        Some(WITHHELD) => {}
        Some(content_type) => match HeaderValue::from_str(content_type) {
            Ok(value) => {
                headers.insert(header::CONTENT_TYPE, value);
            }
            Err(_) => {
                headers.remove(header::CONTENT_TYPE);
            }
        },
        None => {
            headers.remove(header::CONTENT_TYPE);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// Documents the optional `Idempotency-Key` header on every POST operation of `api`.
pub fn document(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    let parameter = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the first answer to this key (per token) is replayed for 24 h \
             with `Idempotent-Replayed: true`; the same key with another request is refused \
             (422), and a retry while the first is in flight gets 409.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_KEY_LEN))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    let problem = |description: &str| {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        utoipa::openapi::RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for item in api.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            post.parameters
                .get_or_insert_with(Vec::new)
                .push(parameter.clone());
            // What the key itself may be answered with, on every POST.
            for (status, description) in [
                ("400", "A malformed request or Idempotency-Key"),
                (
                    "409",
                    "A request with this Idempotency-Key is still in flight, or its answer \
                         held a secret that is shown only once",
                ),
                ("422", "This Idempotency-Key was used with another request"),
            ] {
                post.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_printable_ascii() {
        assert!(valid_key(&HeaderValue::from_static("retry-7f3a")).is_ok());
        assert!(valid_key(&HeaderValue::from_static("")).is_err());
        assert!(valid_key(&HeaderValue::from_static("a b")).is_err());
        let long = "k".repeat(MAX_KEY_LEN + 1);
        assert!(valid_key(&HeaderValue::from_str(&long).unwrap()).is_err());
        let longest = "k".repeat(MAX_KEY_LEN);
        assert!(valid_key(&HeaderValue::from_str(&longest).unwrap()).is_ok());
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let uri: axum::http::Uri = "/api/v1/tickets".parse().unwrap();
        let other: axum::http::Uri = "/api/v1/tickets?x=1".parse().unwrap();
        let base = fingerprint(&Method::POST, &uri, b"{}");
        assert_eq!(base, fingerprint(&Method::POST, &uri, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, &uri, b"{ }"));
        assert_ne!(base, fingerprint(&Method::PUT, &uri, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, &other, b"{}"));
    }

    #[test]
    fn answers_that_may_not_have_acted_are_left_unanswered_and_secrets_withheld() {
        let answer = |status: StatusCode| status.into_response();
        assert_eq!(outcome(&answer(StatusCode::CREATED)), Outcome::Kept);
        assert_eq!(
            outcome(&answer(StatusCode::UNPROCESSABLE_ENTITY)),
            Outcome::Kept
        );
        assert_eq!(outcome(&answer(StatusCode::CONFLICT)), Outcome::Kept);
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::UNAUTHORIZED,
        ] {
            assert_eq!(outcome(&answer(status)), Outcome::Unanswered, "{status}");
        }
        let no_store = |status| (status, [(header::CACHE_CONTROL, "private, No-Store")]);
        assert_eq!(
            outcome(&no_store(StatusCode::CREATED).into_response()),
            Outcome::Withheld
        );
        assert_eq!(
            outcome(&no_store(StatusCode::FORBIDDEN).into_response()),
            Outcome::Unanswered
        );
    }

    #[test]
    fn a_withheld_answer_replays_as_a_problem_without_the_secret() {
        let replayed = replay(Answer {
            status: StatusCode::CREATED,
            content_type: Some(WITHHELD.to_owned()),
            body: String::new(),
        });
        assert_eq!(replayed.status(), StatusCode::CONFLICT);
        assert_eq!(
            replayed.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(replayed.headers()[REPLAYED_HEADER], "true");
    }
}
