//! Reading LINE Messaging API webhooks.

use crate::verify::{Encoding, Json, TimeUnit, check_body_hmac, location_text, parse_json};
use crate::{
    Account, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource, Profile,
    Secrets,
};

/// Checks `X-Line-Signature: <base64 HMAC-SHA256 of the body under the channel secret>`.
pub fn verify(req: &HookRequest, secrets: &Secrets) -> Result<(), HookError> {
    let channel_secret = secrets.require("channel_secret")?;
    check_body_hmac(
        req.header("x-line-signature"),
        "",
        Encoding::Base64,
        channel_secret,
        &req.body,
    )
}

/// The messages, follows and unfollows of a webhook body. A body for another bot
/// (`destination`) says nothing to this account; an empty `events` (the console's "Verify"
/// button) says nothing at all. Events from a group or a room without a `userId` are left out,
/// and so are the other event kinds (postbacks, joins, unsends...).
pub fn parse(account: &Account, req: &HookRequest) -> Result<Vec<Incoming>, HookError> {
    let body = parse_json(&req.body)?;
    let root = Json::root(&body).object()?;
    let events = root.at("events").required_items()?;
    let bot_user_id = account.id("bot_user_id");
    if let Some(destination) = root.at("destination").opt_str()?
        && !bot_user_id.is_empty()
        && destination != bot_user_id
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for event in events {
        let event = event.object()?;
        let kind = event.at("type").str()?;
        if !matches!(kind, "message" | "follow" | "unfollow") {
            continue;
        }
        let source = event.at("source").object()?;
        let Some(user_id) = source.at("userId").opt_str()? else {
            continue;
        };
        let from = Profile {
            user_id: user_id.to_owned(),
            ..Profile::default()
        };
        let at_micros = event.at("timestamp").micros(TimeUnit::Millis)?;
        match kind {
            "message" => {
                let message = event.at("message").object()?;
                let reply_token = event.at("replyToken").opt_str()?.map(str::to_owned);
                out.push(Incoming::Message(read_message(
                    &message,
                    from,
                    at_micros,
                    reply_token,
                )?));
            }
            _ => out.push(Incoming::Follow {
                user: from,
                followed: kind == "follow",
                at_micros,
                event_id: event.at("webhookEventId").opt_str()?.map(str::to_owned),
            }),
        }
    }
    Ok(out)
}

fn read_message(
    message: &Json,
    from: Profile,
    at_micros: i64,
    reply_token: Option<String>,
) -> Result<InboundMessage, HookError> {
    let id = message.at("id").id()?;
    let kind = message.at("type").str()?;
    let mut text = String::new();
    let mut media = Vec::new();
    match kind {
        "text" => text = message.at("text").str()?.to_owned(),
        "image" | "video" | "audio" | "file" => {
            media.push(MediaRef {
                kind: kind.to_owned(),
                source: content_source(message, &id)?,
                name: if kind == "file" {
                    Some(message.at("fileName").str()?.to_owned())
                } else {
                    None
                },
                content_type: None,
            });
        }
        "sticker" => {
            // The sticker's image is not on the content API; its ids stay with the platform.
            message.at("packageId").id()?;
            message.at("stickerId").id()?;
            text = "[sticker]".to_owned();
        }
        "location" => text = location_text(message, ["title", "address"])?,
        other => text = format!("[unsupported message type: {other}]"),
    }
    Ok(InboundMessage {
        platform_message_id: id,
        from,
        at_micros,
        text,
        media,
        reply_token,
        kind: kind.to_owned(),
    })
}

/// Where a file is: LINE's content API by the message id, unless the sender's app
/// (`contentProvider.type: "external"`) gave a URL of its own.
fn content_source(message: &Json, id: &str) -> Result<MediaSource, HookError> {
    if let Some(provider) = message.at("contentProvider").opt_object()?
        && provider.at("type").opt_str()? == Some("external")
    {
        let url = provider.at("originalContentUrl").str()?;
        return Ok(MediaSource::Url(url.to_owned()));
    }
    Ok(MediaSource::LineContent(id.to_owned()))
}
