//! Sending through LINE's Messaging API with the channel access token as a bearer token: the
//! reply API while the customer's reply token is fresh (free of charge, single use), the push
//! API otherwise (counted against the account's monthly quota). Files that came with a
//! message are fetched from the content API.
//!
//! LINE has no reply window: a push reaches anyone who has the account as a friend.

use crate::http::{self, Answer, Client};
use crate::{Account, Downloaded, MediaError, OutboundMessage, Platform, Secrets, SendOutcome};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// How long after its message a reply token is still used. LINE keeps them valid for about a
/// minute; the margin covers the time the reply takes to be written and sent.
pub const REPLY_TOKEN_FRESH: Duration = Duration::from_secs(50);

/// The most messages one reply or push call takes.
const MAX_MESSAGES: usize = 5;

/// The default API host; files are on its data host.
const API_HOST: &str = "https://api.line.me";
const DATA_HOST: &str = "https://api-data.line.me";

/// Sends a reply: through the reply API when the reply token is fresh (and through the push
/// API if LINE says it is not valid after all), through the push API otherwise, with
/// `X-Line-Retry-Key` when the message has a retry key. The outcome names the first message
/// (`sentMessages[0].id`), or the request (`x-line-request-id`) when LINE does not say.
pub async fn send(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    let Some(token) = secrets.get("access_token") else {
        return http::not_configured("access_token");
    };
    let messages = messages(message);
    if messages.is_empty() {
        return http::nothing_to_send();
    }
    let fresh = message.reply_token.as_ref().filter(|(_, at_micros)| {
        let age = message.now_micros.saturating_sub(*at_micros);
        (0..REPLY_TOKEN_FRESH.as_micros() as i64).contains(&age)
    });
    if let Some((reply_token, _)) = fresh {
        let request = client
            .http
            .post(format!("{}/v2/bot/message/reply", account.api_base))
            .bearer_auth(token)
            .json(&json!({ "replyToken": reply_token, "messages": messages }));
        match http::call(request).await {
            Ok(answer) if invalid_reply_token(&answer) => {}
            Ok(answer) => return outcome(&answer, message),
            Err(outcome) => return outcome,
        }
    }
    let mut request = client
        .http
        .post(format!("{}/v2/bot/message/push", account.api_base))
        .bearer_auth(token)
        .json(&json!({ "to": message.to, "messages": messages }));
    if let Some(key) = &message.retry_key {
        request = request.header("X-Line-Retry-Key", key);
    }
    match http::call(request).await {
        Ok(answer) => outcome(&answer, message),
        Err(outcome) => outcome,
    }
}

/// The message objects a reply is sent as: its text, then each file (images and videos shown,
/// other files as a link in a text message). Past five, the rest are links in one last text.
fn messages(message: &OutboundMessage) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut links = Vec::new();
    if !message.text.is_empty() {
        messages.push(json!({ "type": "text", "text": message.text }));
    }
    for file in &message.files {
        let content_type = file.content_type.to_ascii_lowercase();
        let kind = if content_type.starts_with("image/") {
            "image"
        } else if content_type.starts_with("video/") {
            "video"
        } else {
            links.push(link(&file.name, &file.url));
            continue;
        };
        messages.push(json!({
            "type": kind,
            "originalContentUrl": file.url,
            // LINE shows this before the file is opened; the file itself stands for it.
            "previewImageUrl": file.url,
        }));
    }
    // Links go after the shown files, in one message, and take the room of any past the limit.
    while messages.len() + usize::from(!links.is_empty()) > MAX_MESSAGES {
        let Some(extra) = messages.pop() else { break };
        let url = extra
            .get("originalContentUrl")
            .and_then(Value::as_str)
            .unwrap_or("");
        links.insert(0, url.to_owned());
    }
    if !links.is_empty() {
        messages.push(json!({ "type": "text", "text": links.join("\n") }));
    }
    messages
}

fn link(name: &str, url: &str) -> String {
    if name.is_empty() {
        url.to_owned()
    } else {
        format!("{name}: {url}")
    }
}

/// LINE refuses a reply token it no longer honours with 400 `Invalid reply token`.
fn invalid_reply_token(answer: &Answer) -> bool {
    answer.status == StatusCode::BAD_REQUEST
        && error_message(answer).is_some_and(|m| m.eq_ignore_ascii_case("Invalid reply token"))
}

/// LINE's error text: `message`, then each of `details` as `property: message`.
fn error_message(answer: &Answer) -> Option<String> {
    let body = answer.json()?;
    let mut text = body.get("message")?.as_str()?.to_owned();
    for detail in body
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let property = detail.get("property").and_then(Value::as_str);
        let message = detail.get("message").and_then(Value::as_str);
        match (property, message) {
            (Some(property), Some(message)) => text.push_str(&format!("; {property}: {message}")),
            (None, Some(message)) => text.push_str(&format!("; {message}")),
            _ => {}
        }
    }
    Some(text)
}

fn outcome(answer: &Answer, message: &OutboundMessage) -> SendOutcome {
    // 409: a push with this retry key was accepted before; it names what it sent.
    if answer.status.is_success() || answer.status == StatusCode::CONFLICT {
        let id = answer
            .json()
            .and_then(|body| body.pointer("/sentMessages/0/id").map(id_text))
            .or_else(|| {
                answer
                    .header("x-line-accepted-request-id")
                    .map(str::to_owned)
            })
            .or_else(|| answer.header("x-line-request-id").map(str::to_owned));
        if answer.status.is_success() || id.is_some() {
            return SendOutcome::Sent {
                platform_message_id: id.unwrap_or_else(|| {
                    http::fallback_id(Platform::Line, &message.to, message.now_micros)
                }),
            };
        }
    }
    let text = error_message(answer).unwrap_or_else(|| http::body_text(answer));
    let code = answer.status.as_u16().to_string();
    // 429 is also how LINE says the month's quota of pushes is used up: no retry helps.
    if answer.status == StatusCode::TOO_MANY_REQUESTS && text.contains("monthly limit") {
        return SendOutcome::Refused {
            code,
            text: http::clip(&text),
        };
    }
    http::by_status(
        answer.status,
        code,
        &text,
        answer.retry_after(message.now_micros),
    )
}

/// LINE's message ids are numeric strings; a number is taken too.
fn id_text(id: &Value) -> String {
    match id {
        Value::String(id) => id.clone(),
        other => other.to_string(),
    }
}

/// Fetches a file that came with a message, by the message's id:
/// `GET /v2/bot/message/{id}/content` with the bearer token. LINE serves files from its data
/// host (`api-data.line.me`): an account on the default API host fetches from there; any other
/// `api_base` (a stand-in, a proxy) stands for both hosts.
pub async fn download(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    message_id: &str,
) -> Result<Downloaded, MediaError> {
    let token = http::download_token(secrets)?;
    let base = if account.api_base.trim_end_matches('/') == API_HOST {
        DATA_HOST
    } else {
        account.api_base.as_str()
    };
    let url = format!(
        "{base}/v2/bot/message/{}/content",
        http::segment(message_id)
    );
    let request = client.http.get(url).bearer_auth(token);
    http::fetch(client, request, client.max_download_bytes).await
}
