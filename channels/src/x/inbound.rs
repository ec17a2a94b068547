//! Reading X Account Activity API webhooks.

use crate::verify::{
    Encoding, Json, TimeUnit, base64_encode, check_body_hmac, hmac_sha256, malformed, parse_json,
};
use crate::{
    Account, Challenge, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource,
    Profile, Secrets,
};

/// Answers X's challenge-response check (CRC): `GET ?crc_token=…` is answered with
/// `{"response_token":"sha256=<base64 HMAC-SHA256 of the token under the consumer secret>"}`.
pub fn verify_subscription(req: &HookRequest, secrets: &Secrets) -> Result<Challenge, HookError> {
    let crc_token = req
        .query("crc_token")
        .ok_or_else(|| malformed("crc_token", "missing"))?;
    let consumer_secret = secrets.require("consumer_secret")?;
    let tag = hmac_sha256(consumer_secret.as_bytes(), crc_token.as_bytes());
    let body = serde_json::json!({ "response_token": format!("sha256={}", base64_encode(&tag)) });
    Ok(Challenge {
        content_type: "application/json",
        body: body.to_string(),
    })
}

/// Checks `X-Twitter-Webhooks-Signature: sha256=<base64 HMAC-SHA256 of the body under the
/// consumer secret>`.
pub fn verify(req: &HookRequest, secrets: &Secrets) -> Result<(), HookError> {
    let consumer_secret = secrets.require("consumer_secret")?;
    check_body_hmac(
        req.header("x-twitter-webhooks-signature"),
        "sha256=",
        Encoding::Base64,
        consumer_secret,
        &req.body,
    )
}

/// The direct messages people sent to this account. A body for another subscribed user
/// (`for_user_id`) says nothing to this one; the account's own messages and every other kind of
/// activity (posts, follows, typing, read receipts) are left out.
pub fn parse(account: &Account, req: &HookRequest) -> Result<Vec<Incoming>, HookError> {
    let body = parse_json(&req.body)?;
    let root = Json::root(&body).object()?;
    let own_id = account.id("user_id");
    if root.at("for_user_id").id()? != own_id {
        return Ok(Vec::new());
    }
    let users = root.at("users").opt_object()?;
    let mut out = Vec::new();
    for event in root.at("direct_message_events").items()? {
        let event = event.object()?;
        if event.at("type").str()? != "message_create" {
            continue;
        }
        let create = event.at("message_create").object()?;
        let sender = create.at("sender_id").id()?;
        if sender == own_id {
            continue;
        }
        let id = event.at("id").id()?;
        let at_micros = event.at("created_timestamp").micros(TimeUnit::Millis)?;
        let data = create.at("message_data").object()?;
        let mut text = data.at("text").opt_str()?.unwrap_or_default().to_owned();
        let mut media = Vec::new();
        if let Some(attachment) = data.at("attachment").opt_object()?
            && let Some(item) = attachment.at("media").opt_object()?
        {
            let file = read_media(&item)?;
            // The text ends with the media's t.co link, which says nothing once the file is here.
            if let Some(link) = item.at("url").opt_str()?.filter(|link| !link.is_empty())
                && let Some(rest) = text.trim_end().strip_suffix(link)
            {
                text = rest.trim_end().to_owned();
            }
            media.push(file);
        }
        let kind = media
            .first()
            .map_or("text", |file| file.kind.as_str())
            .to_owned();
        out.push(Incoming::Message(InboundMessage {
            platform_message_id: id,
            from: profile(users.as_ref(), &sender)?,
            at_micros,
            text,
            media,
            reply_token: None,
            kind,
        }));
    }
    Ok(out)
}

/// The sender as the body's `users` map tells them: `name` and `screen_name`.
fn profile(users: Option<&Json>, sender: &str) -> Result<Profile, HookError> {
    let mut profile = Profile {
        user_id: sender.to_owned(),
        ..Profile::default()
    };
    if let Some(user) = users.map(|users| users.at(sender))
        && let Some(user) = user.opt_object()?
    {
        profile.name = user.at("name").opt_str()?.map(str::to_owned);
        profile.username = user.at("screen_name").opt_str()?.map(str::to_owned);
    }
    Ok(profile)
}

/// A photo is fetched from `media_url_https`; a video or GIF from its best MP4 variant (its
/// `media_url_https` is only a still), or the still when no variant is given.
fn read_media(item: &Json) -> Result<MediaRef, HookError> {
    let still = item.at("media_url_https").str()?;
    let kind = match item.at("type").opt_str()? {
        Some("video" | "animated_gif") => "video",
        _ => "image",
    };
    let mut best: Option<(i64, &str, Option<&str>)> = None;
    if kind == "video" {
        for variant in item.at("video_info").at("variants").items()? {
            let variant = variant.object()?;
            let content_type = variant.at("content_type").opt_str()?;
            if content_type != Some("video/mp4") {
                continue;
            }
            let bitrate = variant.at("bitrate").value().as_i64().unwrap_or_default();
            let url = variant.at("url").str()?;
            if best.is_none_or(|(best_rate, _, _)| bitrate > best_rate) {
                best = Some((bitrate, url, content_type));
            }
        }
    }
    let (url, content_type) =
        best.map_or((still, None), |(_, url, content_type)| (url, content_type));
    Ok(MediaRef {
        kind: kind.to_owned(),
        source: MediaSource::Url(url.to_owned()),
        name: None,
        content_type: content_type.map(str::to_owned),
    })
}
