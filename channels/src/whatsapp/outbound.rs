//! Sending through WhatsApp Cloud API: `POST /{phone_number_id}/messages` with the access
//! token as a bearer token, one message for the text and one for each file; and media through
//! `GET /{media-id}`, which answers where the file is.
//!
//! WhatsApp takes free-form replies only within 24 hours of the customer's last message (a
//! "customer service window"); later ones need a template, which Parley does not send. The
//! window is checked here before calling, and WhatsApp's own refusal (`131047`) ends the same.

use crate::http::{self, Client, GraphError};
use crate::{
    Account, Downloaded, MediaError, OutboundFile, OutboundMessage, Platform, Secrets, SendOutcome,
};
use serde_json::{Value, json};
use std::time::Duration;

/// How long after the customer's last message WhatsApp takes a free-form reply.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Graph error codes worth retrying: API unknown and service (1, 2), app and account rate
/// limits (4, 80007), WhatsApp's throughput and pair rate limits (130429, 131056), and its
/// temporary failures (131000 something went wrong, 131016 service unavailable).
const TRANSIENT_CODES: &[i64] = &[1, 2, 4, 80007, 130429, 131000, 131016, 131056];

/// Replies go to `POST /{phone_number_id}/messages`; the answer names the message at
/// `messages[0].id`, and an error's code is written as WhatsApp writes it (`131047`).
const GRAPH: http::GraphSend = http::GraphSend {
    platform: Platform::Whatsapp,
    sender_id: "phone_number_id",
    message_id: "/messages/0/id",
    transient_codes: TRANSIENT_CODES,
    code_text: |code| code.to_string(),
};

/// Sends a reply: its text first, then each file as a message of its own (image, video, audio
/// or document, by the file's type, linked by its URL). The outcome names the first message.
pub async fn send(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    if !http::within_window(message.last_inbound_micros, message.now_micros, WINDOW) {
        return SendOutcome::Refused {
            code: "131047".to_owned(),
            text: "Re-engagement message: more than 24 hours have passed since the customer \
                   last replied"
                .to_owned(),
        };
    }
    http::graph_send(client, account, secrets, message, GRAPH, bodies(message)).await
}

/// The messages a reply is sent as, in order.
fn bodies(message: &OutboundMessage) -> Vec<Value> {
    let mut bodies = Vec::with_capacity(1 + message.files.len());
    if !message.text.is_empty() {
        bodies.push(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
            "type": "text",
            "text": { "body": message.text },
        }));
    }
    for file in &message.files {
        let kind = media_kind(file);
        let mut media = json!({ "link": file.url });
        if kind == "document" && !file.name.is_empty() {
            media["filename"] = json!(file.name);
        }
        bodies.push(json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to,
            "type": kind,
            kind: media,
        }));
    }
    bodies
}

/// The message type WhatsApp plays a file as: it shows JPEG and PNG images, MP4 and 3GPP
/// videos and any audio; everything else goes as a document.
fn media_kind(file: &OutboundFile) -> &'static str {
    let content_type = file.content_type.to_ascii_lowercase();
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence {
        "image/jpeg" | "image/png" => "image",
        "video/mp4" | "video/3gpp" => "video",
        _ if essence.starts_with("audio/") => "audio",
        _ => "document",
    }
}

/// Fetches a file that came with a message by its media id: `GET /{media-id}` answers its URL
/// and type, and the URL is fetched with the same bearer token.
pub async fn download(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    media_id: &str,
) -> Result<Downloaded, MediaError> {
    let token = http::download_token(secrets)?;
    let url = format!("{}/{}", account.api_base, http::segment(media_id));
    let answer = http::call(client.http.get(url).bearer_auth(token))
        .await
        .map_err(http::media_failure)?;
    if !answer.status.is_success() {
        let mut text = format!("WhatsApp answered {} for the media id", answer.status);
        if let Some(error) = GraphError::read(&answer).filter(|e| !e.text.is_empty()) {
            text = format!("{text}: {}", http::clip(&error.text));
        }
        return Err(http::media_status_failure(answer.status, text));
    }
    let metadata = answer.json().unwrap_or_default();
    let Some(file_url) = metadata.get("url").and_then(Value::as_str) else {
        return Err(MediaError::Permanent(
            "WhatsApp answered no URL for the media id".to_owned(),
        ));
    };
    let request = client.http.get(file_url).bearer_auth(token);
    let mut downloaded = http::fetch(client, request, client.max_download_bytes).await?;
    if let Some(mime_type) = metadata.get("mime_type").and_then(Value::as_str) {
        downloaded.content_type = Some(mime_type.to_owned());
    }
    Ok(downloaded)
}
