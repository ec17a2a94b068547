//! Sending through X's direct messages API (v2):
//! `POST /2/dm_conversations/with/{participant_id}/messages` with the account's OAuth 2.0
//! user access token as a bearer token. Files go out as links in the text (X sends a file only
//! by a media id, after it is uploaded to it, which Parley does not do). Files that came with
//! a message are plain URLs ([`crate::http::download_url`]).
//!
//! X has no reply window; whether a person takes direct messages is their setting, and X
//! refuses with 403 when they do not.

use crate::http::{self, Answer, Client};
use crate::{OutboundMessage, Platform, Secrets, SendOutcome};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Sends a reply as one direct message. The outcome names it by its `dm_event_id`.
pub async fn send(
    client: &Client,
    account: &crate::Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    let Some(token) = secrets.get("access_token") else {
        return http::not_configured("access_token");
    };
    let text = text(message);
    if text.is_empty() {
        return http::nothing_to_send();
    }
    let url = format!(
        "{}/2/dm_conversations/with/{}/messages",
        account.api_base,
        http::segment(&message.to)
    );
    let request = client
        .http
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "text": text }));
    http::send_one(
        request,
        Platform::X,
        message,
        "/data/dm_event_id",
        |answer| failure(answer, message.now_micros),
    )
    .await
}

/// The text of a reply and its files' links, one a line.
fn text(message: &OutboundMessage) -> String {
    let mut lines = Vec::with_capacity(1 + message.files.len());
    if !message.text.is_empty() {
        lines.push(message.text.clone());
    }
    lines.extend(message.files.iter().map(|file| file.url.clone()));
    lines.join("\n")
}

/// X's errors: `{"title","detail","type","status"}`, or `{"errors":[{"message"}]}`. A 429
/// waits for `Retry-After`, or else until `x-rate-limit-reset` (epoch seconds).
fn failure(answer: &Answer, now_micros: i64) -> SendOutcome {
    let body = answer.json().unwrap_or_default();
    let text = ["/detail", "/errors/0/detail", "/errors/0/message", "/title"]
        .into_iter()
        .find_map(|pointer| body.pointer(pointer).and_then(Value::as_str))
        .filter(|text| !text.is_empty())
        .map(http::clip)
        .unwrap_or_else(|| http::body_text(answer));
    let mut retry_after = answer.retry_after(now_micros);
    if retry_after.is_none() && answer.status == StatusCode::TOO_MANY_REQUESTS {
        retry_after = answer
            .header("x-rate-limit-reset")
            .and_then(|reset| reset.trim().parse::<i64>().ok())
            .map(|reset| http::until_epoch_seconds(reset, now_micros));
    }
    http::by_status(
        answer.status,
        answer.status.as_u16().to_string(),
        &text,
        retry_after,
    )
}
