//! Sending through Messenger's Send API: `POST /{page_id}/messages` with the page access token
//! as a bearer token (never in the URL), one message for the text and one for each file.
//!
//! Messenger takes standard replies within 24 hours of the customer's last message
//! (`messaging_type: RESPONSE`); up to 7 days, a person may still answer with the
//! `HUMAN_AGENT` tag; later, nothing. The windows are checked here before calling; Messenger's
//! own refusal (`(#10)`) ends the same. Files that came with a customer's message are plain
//! URLs ([`crate::http::download_url`]).

use crate::http::{self, Client};
use crate::{OutboundFile, OutboundMessage, Platform, Secrets, SendOutcome};
use serde_json::{Value, json};
use std::time::Duration;

/// How long after the customer's last message Messenger takes a standard reply.
pub const STANDARD_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long after the customer's last message a person may answer with the `HUMAN_AGENT` tag.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// Graph error codes worth retrying: API unknown and service (1, 2), app, user, page and
/// custom rate limits (4, 17, 32, 341, 613), and a temporary send failure (1200).
const TRANSIENT_CODES: &[i64] = &[1, 2, 4, 17, 32, 341, 613, 1200];

/// Replies go to `POST /{page_id}/messages`; the answer names the message at `message_id`,
/// and an error's code is written as Messenger writes it (`(#10)`, `(#551)`, `(#190)`).
const GRAPH: http::GraphSend = http::GraphSend {
    platform: Platform::Messenger,
    sender_id: "page_id",
    message_id: "/message_id",
    transient_codes: TRANSIENT_CODES,
    code_text: |code| format!("(#{code})"),
};

/// Sends a reply: its text first, then each file as an attachment message (image, video,
/// audio or file, by the file's type, linked by its URL). The outcome names the first message.
pub async fn send(
    client: &Client,
    account: &crate::Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    let (last, now) = (message.last_inbound_micros, message.now_micros);
    let human_agent = if http::within_window(last, now, STANDARD_WINDOW) {
        false
    } else if http::within_window(last, now, HUMAN_AGENT_WINDOW) {
        true
    } else {
        return SendOutcome::Refused {
            code: "(#10)".to_owned(),
            text: "Messenger accepts replies only within 7 days of the customer's last message \
                   (HUMAN_AGENT tag)"
                .to_owned(),
        };
    };
    let bodies = bodies(message, human_agent);
    http::graph_send(client, account, secrets, message, GRAPH, bodies).await
}

/// The messages a reply is sent as, in order.
fn bodies(message: &OutboundMessage, human_agent: bool) -> Vec<Value> {
    let mut contents = Vec::with_capacity(1 + message.files.len());
    if !message.text.is_empty() {
        contents.push(json!({ "text": message.text }));
    }
    for file in &message.files {
        contents.push(json!({
            "attachment": {
                "type": attachment_type(file),
                "payload": { "url": file.url, "is_reusable": false },
            },
        }));
    }
    contents
        .into_iter()
        .map(|content| {
            let mut body = json!({
                "recipient": { "id": message.to },
                "messaging_type": "RESPONSE",
                "message": content,
            });
            if human_agent {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
            body
        })
        .collect()
}

/// The attachment type Messenger plays a file as.
fn attachment_type(file: &OutboundFile) -> &'static str {
    let content_type = file.content_type.to_ascii_lowercase();
    if content_type.starts_with("image/") {
        "image"
    } else if content_type.starts_with("video/") {
        "video"
    } else if content_type.starts_with("audio/") {
        "audio"
    } else {
        "file"
    }
}
