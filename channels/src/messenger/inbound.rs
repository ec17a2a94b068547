//! Reading Messenger webhooks. Verification is Meta's, the same as WhatsApp's.

use crate::verify::{Json, TimeUnit, malformed, parse_json};
use crate::{
    Account, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource, Profile,
    Receipt, ReceiptStatus,
};

pub use crate::whatsapp::{verify, verify_subscription};

/// The sticker ids Messenger gives the thumbs-up ("like") button, in its three sizes.
const LIKE_STICKERS: [&str; 3] = ["369239263222822", "369239343222814", "369239383222810"];

/// The messages and deliveries of a `page` webhook that are addressed to this account's page.
///
/// Echoes (`is_echo`, the page's own messages) are left out, and so are `read` events:
/// Messenger tells a read only as a watermark (everything sent before it was read), with no
/// message ids, and a receipt needs one. Postbacks, reactions and the rest are left out too.
pub fn parse(account: &Account, req: &HookRequest) -> Result<Vec<Incoming>, HookError> {
    let body = parse_json(&req.body)?;
    let root = Json::root(&body);
    if root.at("object").str()? != "page" {
        return Err(malformed("object", "not \"page\""));
    }
    let page_id = account.id("page_id");
    let mut out = Vec::new();
    for entry in root.at("entry").required_items()? {
        // Entries of other subscriptions (`changes`, `standby`) have no `messaging`.
        for event in entry.object()?.at("messaging").items()? {
            let event = event.object()?;
            if event.at("recipient").object()?.at("id").id()? != page_id {
                continue;
            }
            let sender = event.at("sender").object()?.at("id").id()?;
            if let Some(message) = event.at("message").opt_object()? {
                if message.at("is_echo").opt_bool()? == Some(true) {
                    continue;
                }
                let at_micros = event.at("timestamp").micros(TimeUnit::Millis)?;
                out.push(Incoming::Message(read_message(
                    &message, sender, at_micros,
                )?));
            } else if let Some(delivery) = event.at("delivery").opt_object()? {
                let at_micros = delivery.at("watermark").micros(TimeUnit::Millis)?;
                for mid in delivery.at("mids").items()? {
                    out.push(Incoming::Receipt(Receipt {
                        platform_message_id: mid.str()?.to_owned(),
                        status: ReceiptStatus::Delivered,
                        at_micros,
                        recipient: sender.clone(),
                    }));
                }
            }
        }
    }
    Ok(out)
}

fn read_message(
    message: &Json,
    sender: String,
    at_micros: i64,
) -> Result<InboundMessage, HookError> {
    let mid = message.at("mid").str()?;
    let mut lines: Vec<String> = Vec::new();
    if let Some(text) = message.at("text").opt_str()? {
        lines.push(text.to_owned());
    }
    let mut media = Vec::new();
    let mut kind = if lines.is_empty() {
        None
    } else {
        Some("text".to_owned())
    };
    let sticker = message.at("sticker_id").opt_id()?;
    if let Some(sticker) = &sticker {
        kind = Some("sticker".to_owned());
        lines.push(if LIKE_STICKERS.contains(&sticker.as_str()) {
            "👍".to_owned()
        } else {
            "[sticker]".to_owned()
        });
    }
    for attachment in message.at("attachments").items()? {
        let attachment = attachment.object()?;
        let attachment_kind = attachment.at("type").str()?;
        kind.get_or_insert_with(|| attachment_kind.to_owned());
        let payload = attachment.at("payload");
        match attachment_kind {
            "image" | "video" | "audio" | "file" => {
                let url = payload.object()?.at("url").str()?;
                let media_kind = if sticker.is_some() {
                    "sticker"
                } else {
                    attachment_kind
                };
                media.push(MediaRef {
                    kind: media_kind.to_owned(),
                    source: MediaSource::Url(url.to_owned()),
                    name: None,
                    content_type: None,
                });
            }
            "location" => {
                let coordinates = payload.object()?.at("coordinates").object()?;
                let latitude = coordinates.at("lat").f64()?;
                let longitude = coordinates.at("long").f64()?;
                let line = match attachment.at("title").opt_str()? {
                    Some(title) if !title.is_empty() => {
                        format!("📍 {title}, {latitude}, {longitude}")
                    }
                    _ => format!("📍 {latitude}, {longitude}"),
                };
                lines.push(line);
            }
            "fallback" => {
                // A shared link Messenger could not render: its title and URL.
                let title = attachment.at("title").opt_str()?.unwrap_or_default();
                let url = attachment.at("url").opt_str()?.unwrap_or_default();
                let line = [title, url]
                    .into_iter()
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                lines.push(line);
            }
            other => lines.push(format!("[unsupported attachment type: {other}]")),
        }
    }
    Ok(InboundMessage {
        platform_message_id: mid.to_owned(),
        from: Profile {
            user_id: sender,
            ..Profile::default()
        },
        at_micros,
        text: lines.join("\n"),
        media,
        reply_token: None,
        kind: kind.unwrap_or_else(|| "text".to_owned()),
    })
}
