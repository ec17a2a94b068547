//! Reading WhatsApp Cloud API webhooks, and Meta's verification, which Messenger shares.

use crate::verify::{
    Encoding, Json, TimeUnit, check_body_hmac, location_text, malformed, parse_json, secret_eq,
};
use crate::{
    Account, Challenge, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource,
    Profile, Receipt, ReceiptStatus, Secrets,
};

/// Answers Meta's subscription check: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
/// is answered with the challenge when the token is the account's `verify_token`.
pub fn verify_subscription(req: &HookRequest, secrets: &Secrets) -> Result<Challenge, HookError> {
    let mode = req
        .query("hub.mode")
        .ok_or_else(|| malformed("hub.mode", "missing"))?;
    let token = req
        .query("hub.verify_token")
        .ok_or_else(|| malformed("hub.verify_token", "missing"))?;
    let challenge = req
        .query("hub.challenge")
        .ok_or_else(|| malformed("hub.challenge", "missing"))?;
    let expected = secrets.require("verify_token")?;
    // Both checks run whatever the mode says, so the answer's timing tells nothing of the token.
    let token_matches = secret_eq(token, expected);
    if mode != "subscribe" || !token_matches {
        return Err(HookError::VerificationRefused);
    }
    Ok(Challenge {
        content_type: "text/plain",
        body: challenge.to_owned(),
    })
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body under the app secret>`.
pub fn verify(req: &HookRequest, secrets: &Secrets) -> Result<(), HookError> {
    let app_secret = secrets.require("app_secret")?;
    check_body_hmac(
        req.header("x-hub-signature-256"),
        "sha256=",
        Encoding::Hex,
        app_secret,
        &req.body,
    )
}

/// The messages and delivery statuses of a `whatsapp_business_account` webhook that are for
/// this account's phone number.
pub fn parse(account: &Account, req: &HookRequest) -> Result<Vec<Incoming>, HookError> {
    let body = parse_json(&req.body)?;
    let root = Json::root(&body);
    let object = root.at("object").str()?;
    if object != "whatsapp_business_account" {
        return Err(malformed("object", "not \"whatsapp_business_account\""));
    }
    let phone_number_id = account.id("phone_number_id");
    let mut out = Vec::new();
    for entry in root.at("entry").required_items()? {
        for change in entry.object()?.at("changes").items()? {
            let change = change.object()?;
            // Other fields (template reviews, account updates) carry other shapes.
            if change
                .at("field")
                .opt_str()?
                .is_some_and(|field| field != "messages")
            {
                continue;
            }
            let value = change.at("value").object()?;
            let metadata = value.at("metadata").object()?;
            if metadata.at("phone_number_id").id()? != phone_number_id {
                continue;
            }
            let contacts = read_contacts(&value)?;
            for message in value.at("messages").items()? {
                out.push(Incoming::Message(read_message(
                    &message.object()?,
                    &contacts,
                )?));
            }
            for status in value.at("statuses").items()? {
                if let Some(receipt) = read_status(&status.object()?)? {
                    out.push(Incoming::Receipt(receipt));
                }
            }
        }
    }
    Ok(out)
}

/// A sender as `contacts[]` names them: `wa_id` and `profile.name`.
struct Contact {
    wa_id: String,
    name: Option<String>,
}

fn read_contacts(value: &Json) -> Result<Vec<Contact>, HookError> {
    value
        .at("contacts")
        .items()?
        .iter()
        .map(|contact| {
            let contact = contact.object()?;
            Ok(Contact {
                wa_id: contact.at("wa_id").id()?,
                name: contact
                    .at("profile")
                    .at("name")
                    .opt_str()?
                    .map(str::to_owned),
            })
        })
        .collect()
}

/// The sender's profile: the contact whose `wa_id` is the message's `from`, else the only
/// contact the value names (`from` and `wa_id` can differ in a country's number format; the
/// `wa_id` is what replies go to), else `from` alone.
fn profile(from: &str, contacts: &[Contact]) -> Profile {
    let contact = contacts
        .iter()
        .find(|contact| contact.wa_id == from)
        .or(match contacts {
            [only] => Some(only),
            _ => None,
        });
    let user_id = contact.map_or(from, |contact| contact.wa_id.as_str());
    Profile {
        user_id: user_id.to_owned(),
        name: contact.and_then(|contact| contact.name.clone()),
        phone: Some(user_id.to_owned()),
        ..Profile::default()
    }
}

fn read_message(message: &Json, contacts: &[Contact]) -> Result<InboundMessage, HookError> {
    let from = message.at("from").id()?;
    let id = message.at("id").str()?;
    let at_micros = message.at("timestamp").micros(TimeUnit::Seconds)?;
    let kind = message.at("type").str()?;
    let mut media = Vec::new();
    let text = match kind {
        "text" => message.at("text").object()?.at("body").str()?.to_owned(),
        "image" | "video" | "audio" | "document" | "sticker" => {
            let part = message.at(kind).object()?;
            let media_kind = if kind == "document" { "file" } else { kind };
            media.push(MediaRef {
                kind: media_kind.to_owned(),
                source: MediaSource::WhatsappMedia(part.at("id").id()?),
                name: if kind == "document" {
                    part.at("filename").opt_str()?.map(str::to_owned)
                } else {
                    None
                },
                content_type: part.at("mime_type").opt_str()?.map(str::to_owned),
            });
            part.at("caption").opt_str()?.unwrap_or_default().to_owned()
        }
        "location" => location_text(&message.at("location").object()?, ["name", "address"])?,
        "contacts" => contacts_text(&message.at("contacts").required_items()?)?,
        "interactive" => interactive_text(&message.at("interactive").object()?)?,
        "button" => message.at("button").object()?.at("text").str()?.to_owned(),
        other => format!("[unsupported message type: {other}]"),
    };
    Ok(InboundMessage {
        platform_message_id: id.to_owned(),
        from: profile(&from, contacts),
        at_micros,
        text,
        media,
        reply_token: None,
        kind: kind.to_owned(),
    })
}

/// One line per contact card: `👤 name: phone, phone`.
fn contacts_text(cards: &[Json]) -> Result<String, HookError> {
    let mut lines = Vec::new();
    for card in cards {
        let card = card.object()?;
        let name = card.at("name").opt_object()?;
        let name = match name {
            Some(name) => match name.at("formatted_name").opt_str()? {
                Some(formatted) => formatted.to_owned(),
                None => {
                    let mut parts = Vec::new();
                    for key in ["first_name", "last_name"] {
                        if let Some(part) = name.at(key).opt_str()? {
                            parts.push(part);
                        }
                    }
                    parts.join(" ")
                }
            },
            None => String::new(),
        };
        let mut phones = Vec::new();
        for phone in card.at("phones").items()? {
            if let Some(number) = phone.object()?.at("phone").opt_str()? {
                phones.push(number.to_owned());
            }
        }
        let line = match (name.is_empty(), phones.is_empty()) {
            (_, true) => format!("👤 {name}"),
            (true, false) => format!("👤 {}", phones.join(", ")),
            (false, false) => format!("👤 {name}: {}", phones.join(", ")),
        };
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

/// A button or list reply: the title the person tapped.
fn interactive_text(interactive: &Json) -> Result<String, HookError> {
    let kind = interactive.at("type").str()?;
    match kind {
        "button_reply" | "list_reply" => {
            Ok(interactive.at(kind).object()?.at("title").str()?.to_owned())
        }
        other => Ok(format!("[unsupported message type: interactive {other}]")),
    }
}

/// A status of a message the account sent; `None` for kinds Parley does not track
/// (`deleted`, `warning`, a voice message `played`).
fn read_status(status: &Json) -> Result<Option<Receipt>, HookError> {
    let id = status.at("id").str()?;
    let at_micros = status.at("timestamp").micros(TimeUnit::Seconds)?;
    let recipient = status.at("recipient_id").opt_id()?.unwrap_or_default();
    let status_value = match status.at("status").str()? {
        "sent" => ReceiptStatus::Sent,
        "delivered" => ReceiptStatus::Delivered,
        "read" => ReceiptStatus::Read,
        "failed" => failure(status)?,
        _ => return Ok(None),
    };
    Ok(Some(Receipt {
        platform_message_id: id.to_owned(),
        status: status_value,
        at_micros,
        recipient,
    }))
}

/// `errors[0]`: its code, and its message (or title) with the details when they add to it.
fn failure(status: &Json) -> Result<ReceiptStatus, HookError> {
    let errors = status.at("errors").items()?;
    let Some(error) = errors.first() else {
        return Ok(ReceiptStatus::Failed {
            code: String::new(),
            text: String::new(),
        });
    };
    let error = error.object()?;
    let code = error.at("code").opt_id()?.unwrap_or_default();
    let title = error.at("title").opt_str()?;
    let message = error.at("message").opt_str()?;
    let details = error.at("error_data").at("details").opt_str()?;
    let mut text = message.or(title).unwrap_or_default().to_owned();
    if let Some(details) = details.filter(|details| !details.is_empty() && *details != text) {
        if text.is_empty() {
            text = details.to_owned();
        } else {
            text = format!("{text}: {details}");
        }
    }
    Ok(ReceiptStatus::Failed { code, text })
}
