//! The HTTP client the adapters share, and how a platform's answer is classified.
//!
//! Every call to a platform goes through [`call`]: it sends, reads at most
//! [`MAX_ANSWER_BYTES`] of the answer and turns a failure to get one into
//! [`SendOutcome::Transient`]. The adapters read what the platform said and classify it with
//! [`by_status`]; [`retry_after`] reads the `Retry-After` header in both of its forms. A message
//! whose answer names it at one place goes through [`send_one`]; the Meta Graph API's
//! (WhatsApp's, Messenger's) through [`graph_send`]. Files are fetched through [`fetch`], chunk
//! by chunk, never past [`Client::max_download_bytes`].
//!
//! Invariant: no text made here holds a URL (a URL can carry a token) or a secret.

use crate::{
    Account, Downloaded, MediaError, MediaRef, MediaSource, OutboundMessage, Platform, Secrets,
    SendOutcome,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::borrow::Cow;
use std::time::Duration;

/// How long one call to a platform may take before it counts as a transient failure.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long fetching one file may take, its body included.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest file fetched from a platform.
pub const MAX_DOWNLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// The most of a platform's answer to a call that is read (answers and error bodies are
/// small; past this the rest is dropped).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest platform text kept in an outcome's `text`.
const MAX_TEXT_CHARS: usize = 500;

/// The client every adapter sends through: one connection pool, and the access tokens that
/// platforms hand out for a while (WeChat's, cached until they expire).
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub tokens: std::sync::Arc<crate::wechat::TokenCache>,
    /// How long fetching one file may take.
    pub download_timeout: Duration,
    /// The largest file fetched; a larger one is [`MediaError::Permanent`].
    pub max_download_bytes: u64,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    pub fn new() -> Client {
        Client {
            download_timeout: DOWNLOAD_TIMEOUT,
            ..Client::with_timeout(CALL_TIMEOUT)
        }
    }

    /// A client whose calls and downloads each give up after `timeout`.
    pub fn with_timeout(timeout: Duration) -> Client {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Client {
            http,
            tokens: Default::default(),
            download_timeout: timeout,
            max_download_bytes: MAX_DOWNLOAD_BYTES,
        }
    }

    /// The same client, fetching files of at most `bytes`.
    pub fn with_max_download_bytes(mut self, bytes: u64) -> Client {
        self.max_download_bytes = bytes;
        self
    }
}

/// A platform's answer to a call: its status, its headers, and the first
/// [`MAX_ANSWER_BYTES`] of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// A header's value, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// How long the platform asked to wait (`Retry-After`), `now_micros` being now.
    pub fn retry_after(&self, now_micros: i64) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|value| retry_after(value, now_micros))
    }
}

/// Sends a request and reads the answer. A request that gets no answer (a timeout, a refused
/// connection, a connection cut mid-answer) is `Err(Transient)`.
pub async fn call(request: reqwest::RequestBuilder) -> Result<Answer, SendOutcome> {
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response, MAX_ANSWER_BYTES)
        .await
        .map_err(transport_failure)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Reads at most `limit` bytes of a body, chunk by chunk; the rest is not read.
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// A request that got no answer, as an outcome worth retrying. The text names what failed,
/// never the URL.
pub fn transport_failure(err: reqwest::Error) -> SendOutcome {
    let (code, text) = transport_text(err);
    SendOutcome::Transient {
        code: code.to_owned(),
        text,
        retry_after: None,
    }
}

fn transport_text(err: reqwest::Error) -> (&'static str, String) {
    if err.is_timeout() {
        return ("timeout", "the platform did not answer in time".to_owned());
    }
    let code = if err.is_connect() {
        "connect"
    } else {
        "network"
    };
    // The URL can carry a token (WeChat's): it is dropped before the error is said.
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    (code, clip(&text))
}

/// How a platform's refusal or failure ends, by its HTTP status: 408, 429 and 5xx are worth
/// retrying (after `retry_after` when the platform said), anything else is refused for good.
pub fn by_status(
    status: StatusCode,
    code: String,
    text: &str,
    retry_after: Option<Duration>,
) -> SendOutcome {
    failed(is_transient_status(status), code, clip(text), retry_after)
}

/// A call that did not succeed: worth retrying when `transient` (after `retry_after` when the
/// platform said), refused for good otherwise.
pub fn failed(
    transient: bool,
    code: String,
    text: String,
    retry_after: Option<Duration>,
) -> SendOutcome {
    if transient {
        SendOutcome::Transient {
            code,
            text,
            retry_after,
        }
    } else {
        SendOutcome::Refused { code, text }
    }
}

/// 408, 429 and 5xx: the platform may answer otherwise later.
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

/// A platform's text cut to a few hundred characters.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// What an answer's body says when it is not what the adapter expected: its first words.
pub fn body_text(answer: &Answer) -> String {
    let text = String::from_utf8_lossy(&answer.body);
    let text = text.trim();
    if text.is_empty() {
        format!("the platform answered {}", answer.status)
    } else {
        clip(text)
    }
}

/// A `Retry-After` value as a wait from `now_micros`: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`, and the obsolete RFC 850 and asctime forms). A date in
/// the past is no wait.
pub fn retry_after(value: &str, now_micros: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = http_date(value)?;
    Some(until_epoch_seconds(at, now_micros))
}

/// The wait from `now_micros` until `epoch_seconds` (none when it is past).
pub fn until_epoch_seconds(epoch_seconds: i64, now_micros: i64) -> Duration {
    let wait_micros = epoch_seconds
        .saturating_mul(1_000_000)
        .saturating_sub(now_micros);
    Duration::from_micros(u64::try_from(wait_micros).unwrap_or(0))
}

/// Seconds since the Unix epoch of an HTTP-date in any of its three forms (RFC 9110 §5.6.7).
fn http_date(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`.
        [_, date, time, "GMT"] => {
            let mut fields = date.split('-');
            let (day, month, year) = (fields.next()?, fields.next()?, fields.next()?);
            let year = year.parse::<i64>().ok()?;
            // Two-digit years: RFC 9110 reads ones more than 50 years ahead as past.
            let year = if year < 70 { 2000 + year } else { 1900 + year };
            (day, month, year, *time)
        }
        // asctime: `Sun Nov  6 08:49:37 1994`.
        [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
        _ => return None,
    };
    let day = day.parse::<i64>().ok().filter(|d| (1..=31).contains(d))?;
    let month = match month {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let mut clock = time.split(':').map(|field| field.parse::<i64>().ok());
    let (hour, minute, second) = (clock.next()??, clock.next()??, clock.next()??);
    if clock.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a date in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// A path segment with everything but unreserved characters percent-encoded, so an id never
/// changes the path it is put in.
pub fn segment(id: &str) -> Cow<'_, str> {
    let unreserved =
        |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
    if id.bytes().all(unreserved) && id != "." && id != ".." {
        return Cow::Borrowed(id);
    }
    let mut encoded = String::with_capacity(id.len() * 3);
    for byte in id.bytes() {
        if unreserved(byte) && byte != b'.' {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    Cow::Owned(encoded)
}

/// The outcome when the account lacks a secret the call needs.
pub fn not_configured(name: &'static str) -> SendOutcome {
    SendOutcome::Refused {
        code: "not_configured".to_owned(),
        text: crate::HookError::NotConfigured(name).to_string(),
    }
}

/// Whether a customer who last wrote at `last_inbound_micros` can still be answered at
/// `now_micros` under a window of `window`. One who never wrote cannot.
pub fn within_window(last_inbound_micros: Option<i64>, now_micros: i64, window: Duration) -> bool {
    let window = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
    last_inbound_micros.is_some_and(|last| now_micros.saturating_sub(last) <= window)
}

/// The id of a reply the platform accepted without naming it: `{platform}:{to}:{now_micros}`.
pub fn fallback_id(platform: Platform, to: &str, now_micros: i64) -> String {
    format!("{}:{to}:{now_micros}", platform.name())
}

/// Sends one message of a reply: a success is [`SendOutcome::Sent`], named by the string at
/// `id_pointer` in the answer or else by [`fallback_id`]; any other answer is what `failure`
/// makes of it.
pub async fn send_one(
    request: reqwest::RequestBuilder,
    platform: Platform,
    message: &OutboundMessage,
    id_pointer: &str,
    failure: impl FnOnce(&Answer) -> SendOutcome,
) -> SendOutcome {
    let answer = match call(request).await {
        Ok(answer) => answer,
        Err(outcome) => return outcome,
    };
    if !answer.status.is_success() {
        return failure(&answer);
    }
    let id = answer
        .json()
        .and_then(|body| body.pointer(id_pointer)?.as_str().map(str::to_owned));
    SendOutcome::Sent {
        platform_message_id: id
            .unwrap_or_else(|| fallback_id(platform, &message.to, message.now_micros)),
    }
}

/// The outcome of a reply the platform takes as several messages (its text, then each file),
/// sent in order: the first message's id when the first is accepted. A message after the first
/// that fails ends the sending and is logged, not returned: retrying the whole reply would send
/// what was accepted twice.
pub async fn send_in_parts<T, F, Fut>(
    platform: Platform,
    parts: Vec<T>,
    mut send_one: F,
) -> SendOutcome
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = SendOutcome>,
{
    let total = parts.len();
    let mut first = None;
    for (index, part) in parts.into_iter().enumerate() {
        match send_one(part).await {
            SendOutcome::Sent {
                platform_message_id,
            } => {
                first.get_or_insert(platform_message_id);
            }
            failure => match first {
                None => return failure,
                Some(platform_message_id) => {
                    tracing::warn!(
                        platform = platform.name(),
                        part = index + 1,
                        parts = total,
                        outcome = ?failure,
                        "a reply's later message was not sent"
                    );
                    return SendOutcome::Sent {
                        platform_message_id,
                    };
                }
            },
        }
    }
    match first {
        Some(platform_message_id) => SendOutcome::Sent {
            platform_message_id,
        },
        None => nothing_to_send(),
    }
}

/// The outcome of a reply with no text and no files.
pub fn nothing_to_send() -> SendOutcome {
    SendOutcome::Refused {
        code: "empty".to_owned(),
        text: "the reply has no text and no files".to_owned(),
    }
}

/// A Meta Graph API error body: `{"error":{"message","type","code","error_subcode",
/// "error_data":{"details"},"is_transient","fbtrace_id"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GraphError {
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    /// `message`, and `error_data.details` when there is one.
    pub text: String,
    pub is_transient: bool,
}

impl GraphError {
    pub fn read(answer: &Answer) -> Option<GraphError> {
        let body = answer.json()?;
        let error = body.get("error")?;
        let message = error.get("message").and_then(|m| m.as_str()).unwrap_or("");
        let details = error
            .pointer("/error_data/details")
            .and_then(|d| d.as_str())
            .filter(|d| !d.is_empty() && *d != message);
        let text = match details {
            Some(details) if !message.is_empty() => format!("{message}: {details}"),
            Some(details) => details.to_owned(),
            None => message.to_owned(),
        };
        Some(GraphError {
            code: error.get("code").and_then(|c| c.as_i64()),
            subcode: error.get("error_subcode").and_then(|c| c.as_i64()),
            text,
            is_transient: error.get("is_transient").and_then(|t| t.as_bool()) == Some(true),
        })
    }
}

/// How a Graph API call that was not a success ends: 408, 429, 5xx, `is_transient` and the
/// `transient_codes` (rate limits, temporary failures) are worth retrying; anything else is
/// refused with the error's code written by `code_text` (WhatsApp `131047`, Messenger `(#10)`).
pub fn graph_failure(
    answer: &Answer,
    now_micros: i64,
    transient_codes: &[i64],
    code_text: fn(i64) -> String,
) -> SendOutcome {
    let retry_after = answer.retry_after(now_micros);
    let Some(error) = GraphError::read(answer) else {
        return by_status(
            answer.status,
            answer.status.as_u16().to_string(),
            &body_text(answer),
            retry_after,
        );
    };
    let code = error
        .code
        .map(code_text)
        .unwrap_or_else(|| answer.status.as_u16().to_string());
    let text = if error.text.is_empty() {
        body_text(answer)
    } else {
        clip(&error.text)
    };
    let transient = error.is_transient
        || error.code.is_some_and(|c| transient_codes.contains(&c))
        || is_transient_status(answer.status);
    failed(transient, code, text, retry_after)
}

/// How a platform's Graph API (WhatsApp's, Messenger's) takes replies.
#[derive(Debug, Clone, Copy)]
pub struct GraphSend {
    pub platform: Platform,
    /// The account id replies are posted under: `POST /{id}/messages`.
    pub sender_id: &'static str,
    /// Where the answer names the message it took (a JSON pointer).
    pub message_id: &'static str,
    /// The error codes worth retrying ([`graph_failure`]).
    pub transient_codes: &'static [i64],
    /// How the platform writes an error code ([`graph_failure`]).
    pub code_text: fn(i64) -> String,
}

/// Sends a reply through a Graph API with the access token as a bearer token, one message a
/// body, in order ([`send_in_parts`]).
pub async fn graph_send(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    message: &OutboundMessage,
    graph: GraphSend,
    bodies: Vec<Value>,
) -> SendOutcome {
    let Some(token) = secrets.get("access_token") else {
        return not_configured("access_token");
    };
    let url = format!(
        "{}/{}/messages",
        account.api_base,
        segment(account.id(graph.sender_id))
    );
    send_in_parts(graph.platform, bodies, |body| {
        let request = client.http.post(&url).bearer_auth(token).json(&body);
        send_one(
            request,
            graph.platform,
            message,
            graph.message_id,
            |answer| {
                graph_failure(
                    answer,
                    message.now_micros,
                    graph.transient_codes,
                    graph.code_text,
                )
            },
        )
    })
    .await
}

/// A send's outcome that got no file, as a download's error: refused for good is permanent.
pub fn media_failure(outcome: SendOutcome) -> MediaError {
    match outcome {
        SendOutcome::Transient { text, .. } => MediaError::Transient(text),
        SendOutcome::Refused { text, .. } => MediaError::Permanent(text),
        SendOutcome::Sent { .. } => MediaError::Permanent("the platform sent no file".to_owned()),
    }
}

/// The access token a download is sent with; an account without one cannot fetch.
pub fn download_token(secrets: &Secrets) -> Result<&str, MediaError> {
    secrets.get("access_token").ok_or_else(|| {
        MediaError::Permanent(crate::HookError::NotConfigured("access_token").to_string())
    })
}

/// A download refused by its HTTP status, `text` saying what: 408, 429 and 5xx are
/// transient.
pub fn media_status_failure(status: StatusCode, text: String) -> MediaError {
    if is_transient_status(status) {
        MediaError::Transient(text)
    } else {
        MediaError::Permanent(text)
    }
}

/// X's hosts that serve direct messages' media.
const X_MEDIA_HOSTS: &[&str] = &["ton.twitter.com", "api.x.com", "api.twitter.com"];

/// Whether `url` is on one of X's media hosts or on the account's own API host (a stand-in).
pub fn is_platform_host(url: &str, api_base: &str) -> bool {
    let host = |url: &str| {
        reqwest::Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
    };
    match host(url) {
        Some(found) => {
            X_MEDIA_HOSTS.contains(&found.as_str()) || host(api_base).as_deref() == Some(&found)
        }
        None => false,
    }
}

/// Fetches a file a platform gave as a plain URL (Messenger, X, WeChat's `PicUrl`). When the
/// account has an `access_token` it is sent as a bearer token (X's media URLs want it); it is
/// not sent on to another host if the URL redirects.
pub async fn download_url(
    client: &Client,
    secrets: &Secrets,
    media: &MediaRef,
) -> Result<Downloaded, MediaError> {
    let MediaSource::Url(url) = &media.source else {
        return Err(MediaError::Permanent(
            "the file is not at a plain URL".to_owned(),
        ));
    };
    let mut request = client.http.get(url.as_str());
    if let Some(token) = secrets.get("access_token") {
        request = request.bearer_auth(token);
    }
    fetch(client, request, client.max_download_bytes).await
}

/// Fetches a file: at most `limit` bytes (a larger one is refused before its body is read when
/// the platform says its length, and as soon as it passes the limit otherwise). 401, 403, 404,
/// 410 and other 4xx are [`MediaError::Permanent`]; 408, 429, 5xx, timeouts and cut
/// connections are [`MediaError::Transient`].
pub async fn fetch(
    client: &Client,
    request: reqwest::RequestBuilder,
    limit: u64,
) -> Result<Downloaded, MediaError> {
    let mut response = request
        .timeout(client.download_timeout)
        .send()
        .await
        .map_err(media_transport_failure)?;
    let status = response.status();
    if !status.is_success() {
        return Err(media_status_failure(
            status,
            format!("the platform answered {status} for the file"),
        ));
    }
    let too_large = || MediaError::Permanent(format!("the file is larger than {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(too_large());
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(media_transport_failure)? {
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Downloaded {
        bytes,
        content_type,
    })
}

/// A download that got no (whole) answer: worth trying again.
pub fn media_transport_failure(err: reqwest::Error) -> MediaError {
    MediaError::Transient(transport_text(err).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        // 1994-11-06T08:49:37Z.
        let at = 784_111_777_i64 * 1_000_000;
        assert_eq!(retry_after("7", at), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:37 GMT", at),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Sunday, 06-Nov-94 08:49:47 GMT", at),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun Nov  6 08:49:38 1994", at),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", at),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", at), None);
        assert_eq!(retry_after("-3", at), None);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("wamid.HBgL_12-3"), "wamid.HBgL_12-3");
        assert_eq!(segment("../token"), "%2E%2E%2Ftoken");
        assert_eq!(segment("a b?c"), "a%20b%3Fc");
    }

    #[test]
    fn texts_are_clipped() {
        let long = "é".repeat(600);
        assert_eq!(clip(&long).chars().count(), MAX_TEXT_CHARS + 1);
        assert_eq!(clip("short"), "short");
    }
}

#[cfg(test)]
mod host_tests {
    use super::is_platform_host;

    #[test]
    fn the_token_goes_to_x_or_the_accounts_own_api_only() {
        let base = "http://127.0.0.1:4000";
        assert!(is_platform_host(
            "https://ton.twitter.com/1.1/ton/data/dm/1/2/a.jpg",
            base
        ));
        assert!(is_platform_host("http://127.0.0.1:4000/files/a", base));
        assert!(!is_platform_host("https://attacker.example/a.jpg", base));
        assert!(!is_platform_host(
            "https://ton.twitter.com.attacker.example/a",
            base
        ));
        assert!(!is_platform_host("not a url", base));
    }
}
