//! The platforms' own webhooks, `/hooks/{platform}/{channel_id}`: public routes, trusted only
//! through the platform's signature over the raw body (checked before anything is parsed).
//!
//! - `GET` answers the platform's subscription check (Meta's `hub.challenge`, WeChat's
//!   `echostr`, X's CRC); a wrong verify token answers 403.
//! - `POST` checks the signature (401, counted in `parley_webhooks_refused_total`, nothing
//!   appended), parses the body (400 when it is not what the platform sends; 413 beyond the
//!   body limit) and records what it says: each message once on its contact's stream (its
//!   event id derived from the platform's message id, so a redelivery appends nothing),
//!   follows on the contact, delivery receipts on the reply's ticket. It answers 200 only once
//!   all of it is durably appended, so a 200 is never lost; anything else makes the platform
//!   deliver again. The inbound reaction then turns each message into a ticket's message.

use super::AppState;
use super::extract::Path;
use crate::ids::IdSource;
use crate::problem::Problem;
use crate::service::{CommandService, ServiceError};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_app::channels::Connected;
use parley_channels::{
    HookError, HookRequest, InboundMessage, Incoming, MediaSource, Platform, Profile, Receipt,
    ReceiptStatus as PlatformReceipt,
};
use parley_domain::channel::ChannelId;
use parley_domain::contact::{
    Contact, ContactCommand, ContactId, SocialContactFollowed, SocialMedia, SocialMessageReceived,
    SocialProfile,
};
use parley_domain::ticket::{ReceiptStatus, Ticket, TicketCommand};
use parley_domain::{DomainError, Timestamp};
use parley_eventlog::{Actor, ActorKind, Metadata};
use parley_projections::channels as accounts;
use serde::Deserialize;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(subscribe, deliver))
}

/// How long a receipt waits for the read model to know the reply it names.
const RECEIPT_WAIT: Duration = Duration::from_secs(2);
/// Longest profile field kept, in characters: a customer's name is at most 200.
const MAX_PROFILE_CHARS: usize = 200;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct HookPath {
    /// `whatsapp`, `messenger`, `line`, `wechat` or `x`.
    pub platform: String,
    pub channel_id: Uuid,
}

/// The account a hook's path names, if it is connected on that platform.
async fn account(state: &AppState, path: &HookPath) -> Result<std::sync::Arc<Connected>, Problem> {
    let unknown = || Problem::not_found("no such channel account");
    let platform = Platform::from_name(&path.platform).ok_or_else(unknown)?;
    let connected = state
        .channels
        .get(ChannelId(path.channel_id))
        .await?
        .ok_or_else(unknown)?;
    if connected.account.platform != platform {
        return Err(unknown());
    }
    Ok(connected)
}

fn request(query: Option<String>, headers: &HeaderMap, body: Vec<u8>) -> HookRequest {
    let query = query
        .as_deref()
        .map(form_urlencoded_pairs)
        .unwrap_or_default();
    let headers = headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|value| (name.as_str().to_owned(), value.to_owned()))
        })
        .collect();
    HookRequest {
        query,
        headers,
        body,
    }
}

/// `a=1&b=x%20y` as decoded pairs (`+` is a space, as forms encode it).
fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn refused(platform: &str, reason: &'static str) {
    metrics::counter!("parley_webhooks_refused_total", "platform" => platform.to_owned(), "reason" => reason)
        .increment(1);
}

fn hook_problem(platform: Platform, error: HookError) -> Problem {
    match error {
        HookError::BadSignature => {
            refused(platform.name(), "signature");
            Problem::unauthorized("the webhook's signature is missing or does not match")
        }
        HookError::VerificationRefused => {
            refused(platform.name(), "verification");
            Problem::forbidden("the verification request does not match this account")
        }
        HookError::Malformed(reason) => {
            refused(platform.name(), "malformed");
            Problem::bad_request(format!("malformed webhook body: {reason}"))
        }
        HookError::NotConfigured(name) => {
            refused(platform.name(), "not-configured");
            Problem::conflict(format!("the account has no {name} set"))
        }
    }
}

/// Answers a platform's subscription check: Meta's `hub.challenge` (with the verify token),
/// WeChat's `echostr` (with the token's signature), X's CRC `response_token`. LINE has none.
#[utoipa::path(get, path = "/hooks/{platform}/{channel_id}", tag = "hooks", security(()),
    operation_id = "hook_verify",
    params(HookPath),
    responses((status = 200, description = "The challenge, as the platform expects it"),
              (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn subscribe(
    State(state): State<AppState>,
    Path(path): Path<HookPath>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let connected = account(&state, &path).await?;
    let platform = connected.account.platform;
    let hook = request(query, &headers, Vec::new());
    let challenge = parley_channels::verify_subscription(platform, &hook, &connected.secrets)
        .map_err(|error| hook_problem(platform, error))?;
    Ok((
        [(header::CONTENT_TYPE, challenge.content_type)],
        challenge.body,
    )
        .into_response())
}

/// Receives a platform's webhook. 200 once everything it says is durably recorded; 401 for a
/// signature that is missing or wrong; 400 for a body the platform would not send; 413 beyond
/// the body limit; 404 for an unknown account. Redeliveries append nothing.
#[utoipa::path(post, path = "/hooks/{platform}/{channel_id}", tag = "hooks", security(()),
    operation_id = "hook_receive",
    params(HookPath), request_body(content = String, description = "The platform's webhook body"),
    responses((status = 200, description = "Recorded"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 503, body = Problem)))]
async fn deliver(
    State(state): State<AppState>,
    Path(path): Path<HookPath>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let connected = account(&state, &path).await?;
    let platform = connected.account.platform;
    let limit = state.settings.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|error| {
        let too_large = error
            .into_inner()
            .downcast_ref::<http_body_util::LengthLimitError>()
            .is_some();
        if too_large {
            refused(platform.name(), "too-large");
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                format!("the webhook body is larger than {limit} bytes"),
            )
        } else {
            // The platform stopped sending: it delivers again, as for any answer but 200.
            Problem::bad_request("the webhook body could not be read to its end")
        }
    })?;
    let hook = request(query, &headers, body.to_vec());
    parley_channels::verify(platform, &hook, &connected.secrets)
        .map_err(|error| hook_problem(platform, error))?;
    let incoming = parley_channels::parse(&connected.account, &connected.secrets, &hook)
        .map_err(|error| hook_problem(platform, error))?;
    metrics::counter!("parley_webhooks_received_total", "platform" => platform.name()).increment(1);
    let recorder = Recorder {
        state: &state,
        connected: &connected,
        metadata: Metadata {
            actor: Some(Actor {
                id: format!("channel:{}", connected.id),
                kind: ActorKind::System,
            }),
            channel: Some(connected.channel.name().to_owned()),
            request_id: crate::problem::request_id(),
            ..Metadata::default()
        },
    };
    // Each item on its own stream: recorded at once, as the log's group commit batches them.
    let recorded =
        futures::future::join_all(incoming.into_iter().map(|item| recorder.record(item))).await;
    for outcome in recorded {
        outcome?;
    }
    Ok(match platform {
        // WeChat reads "success" as "nothing to answer now".
        Platform::Wechat => ([(header::CONTENT_TYPE, "text/plain")], "success").into_response(),
        _ => StatusCode::OK.into_response(),
    })
}

/// Records what one webhook says.
struct Recorder<'a> {
    state: &'a AppState,
    connected: &'a Connected,
    metadata: Metadata,
}

impl Recorder<'_> {
    async fn record(&self, item: Incoming) -> Result<(), Problem> {
        match item {
            Incoming::Message(message) => self.message(message).await,
            Incoming::Follow {
                user,
                followed,
                at_micros,
                event_id,
            } => self.follow(user, followed, at_micros, event_id).await,
            Incoming::Receipt(receipt) => self.receipt(receipt).await,
        }
    }

    /// The ids of what a platform's item appends, derived from the item's own id: a
    /// redelivery draws the same ones, and the service finds them in the log.
    fn ids(&self, key: &str, at_micros: i64) -> IdSource {
        IdSource::new(&format!("hook:{}", self.connected.id), key, at_micros)
    }

    fn contact(&self, user_id: &str) -> Result<(ContactId, parley_eventlog::StreamId), Problem> {
        let id = ContactId::of(self.connected.id, user_id);
        Ok((id, CommandService::stream::<Contact>(id)?))
    }

    async fn message(&self, message: InboundMessage) -> Result<(), Problem> {
        if message.from.user_id.trim().is_empty() {
            return Err(Problem::bad_request(
                "malformed webhook body: a message has no sender",
            ));
        }
        let (contact_id, stream) = self.contact(&message.from.user_id)?;
        let at = now();
        let received = SocialMessageReceived {
            contact_id,
            channel_id: self.connected.id,
            platform_message_id: clip(&message.platform_message_id, 256),
            profile: profile(&message.from),
            kind: clip(&message.kind, 64),
            text: clip(&message.text, parley_domain::contact::MAX_TEXT_CHARS),
            media: message
                .media
                .iter()
                .take(parley_domain::contact::MAX_MEDIA)
                .map(media)
                .collect(),
            reply_token: message
                .reply_token
                .map(|token| clip(&token, 512))
                .filter(|token| !token.trim().is_empty()),
            sent_at: sent_at(message.at_micros, at),
            at,
        };
        let key = format!("message:{}", message.platform_message_id);
        let executed = self
            .ids(&key, message.at_micros)
            .scope(self.state.service.execute::<Contact>(
                &stream,
                ContactCommand::Receive(received),
                &self.metadata,
            ))
            .await;
        match executed {
            Ok(_) => Ok(()),
            Err(ServiceError::Domain(error @ DomainError::Invalid { .. })) => Err(
                Problem::bad_request(format!("malformed webhook body: {error}")),
            ),
            Err(error) => Err(error.into()),
        }
    }

    async fn follow(
        &self,
        user: Profile,
        followed: bool,
        at_micros: i64,
        event_id: Option<String>,
    ) -> Result<(), Problem> {
        if user.user_id.trim().is_empty() {
            return Ok(());
        }
        let (contact_id, stream) = self.contact(&user.user_id)?;
        let at = now();
        let key = format!(
            "follow:{}",
            event_id.unwrap_or_else(|| format!("{}:{followed}:{at_micros}", user.user_id))
        );
        let command = ContactCommand::Follow(SocialContactFollowed {
            contact_id,
            channel_id: self.connected.id,
            profile: profile(&user),
            followed,
            at: sent_at(at_micros, at),
        });
        self.ids(&key, at_micros)
            .scope(
                self.state
                    .service
                    .execute::<Contact>(&stream, command, &self.metadata),
            )
            .await?;
        Ok(())
    }

    /// A receipt of a reply the dispatcher sent: found by the platform's id of it.
    async fn receipt(&self, receipt: Receipt) -> Result<(), Problem> {
        if receipt.platform_message_id.is_empty() {
            return Ok(());
        }
        let Some((ticket_id, reply_id)) = self.sent(&receipt.platform_message_id).await? else {
            // A reply sent by another system, or one whose outcome is not recorded yet (a
            // receipt can overtake the send's own answer): nothing to attach it to. A failure
            // must not be lost: the platform is asked to deliver it again later.
            metrics::counter!("parley_webhook_receipts_unmatched_total", "platform" => self.connected.account.platform.name()).increment(1);
            if matches!(receipt.status, PlatformReceipt::Failed { .. }) {
                return Err(Problem::unavailable(
                    "the reply this failure is about is not recorded yet; deliver it again",
                    5,
                ));
            }
            return Ok(());
        };
        let (status, code, text) = match receipt.status {
            PlatformReceipt::Sent => (ReceiptStatus::Sent, None, None),
            PlatformReceipt::Delivered => (ReceiptStatus::Delivered, None, None),
            PlatformReceipt::Read => (ReceiptStatus::Read, None, None),
            PlatformReceipt::Failed { code, text } => (
                ReceiptStatus::Failed,
                Some(clip(&code, 64)),
                Some(clip(&text, 2_000)),
            ),
        };
        let stream = CommandService::stream::<Ticket>(ticket_id)?;
        let at = now();
        let key = format!("receipt:{}:{}", receipt.platform_message_id, status.name());
        let command = TicketCommand::RecordReceipt {
            reply_id,
            status,
            code,
            text,
            at: sent_at(receipt.at_micros, at),
        };
        self.ids(&key, receipt.at_micros)
            .scope(
                self.state
                    .service
                    .execute::<Ticket>(&stream, command, &self.metadata),
            )
            .await?;
        Ok(())
    }

    async fn sent(&self, platform_id: &str) -> Result<Option<(Uuid, Uuid)>, Problem> {
        let lookup = |id: String| {
            self.state
                .models
                .query(accounts::NAME, move |tx, t| accounts::sent(tx, t, &id))
        };
        if let Some(found) = lookup(platform_id.to_owned()).await? {
            return Ok(Some(found));
        }
        // The outcome may be in the log and not yet in the read model.
        let head = self.state.log.head().await?;
        if self
            .state
            .models
            .wait_for(accounts::NAME, head.0, RECEIPT_WAIT)
            .await
            .is_err()
        {
            return Ok(None);
        }
        Ok(lookup(platform_id.to_owned()).await?)
    }
}

/// When Parley received it.
fn now() -> Timestamp {
    Timestamp(parley_eventlog::Timestamp::now().as_micros())
}

/// The platform's time of an item, unless it is missing or absurd (before 2000, or more than
/// a day ahead): then when Parley received it.
fn sent_at(platform_micros: i64, now: Timestamp) -> Timestamp {
    const YEAR_2000: i64 = 946_684_800_000_000;
    if platform_micros < YEAR_2000 || platform_micros > now.plus_secs(86_400).0 {
        now
    } else {
        Timestamp(platform_micros)
    }
}

/// A platform's text as the log keeps it: without control characters other than line breaks
/// and tabs, at most `max` characters.
fn clip(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .take(max)
        .collect()
}

fn profile(from: &Profile) -> SocialProfile {
    let field = |value: &Option<String>| {
        value
            .as_deref()
            .map(|v| clip(v, MAX_PROFILE_CHARS))
            .filter(|v| !v.trim().is_empty())
    };
    SocialProfile {
        user_id: clip(&from.user_id, MAX_PROFILE_CHARS),
        name: field(&from.name),
        phone: field(&from.phone),
        username: field(&from.username),
        locale: field(&from.locale),
    }
}

fn media(media: &parley_channels::MediaRef) -> SocialMedia {
    let (source, reference) = match &media.source {
        MediaSource::WhatsappMedia(id) => ("whatsapp_media", id),
        MediaSource::LineContent(id) => ("line_content", id),
        MediaSource::WechatMedia(id) => ("wechat_media", id),
        MediaSource::Url(url) => ("url", url),
    };
    SocialMedia {
        kind: clip(&media.kind, 32),
        source: source.into(),
        reference: clip(reference, 2_048),
        name: media.name.as_deref().map(|n| clip(n, 255)),
        content_type: media.content_type.as_deref().map(|t| clip(t, 255)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_string_is_decoded_as_forms_encode_it() {
        assert_eq!(
            form_urlencoded_pairs("hub.mode=subscribe&hub.verify_token=a%20b+c&x=%zz&empty"),
            vec![
                ("hub.mode".to_owned(), "subscribe".to_owned()),
                ("hub.verify_token".to_owned(), "a b c".to_owned()),
                ("x".to_owned(), "%zz".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn an_absurd_platform_time_is_replaced_by_now() {
        let now = Timestamp::from_secs(1_800_000_000);
        assert_eq!(sent_at(0, now), now);
        assert_eq!(sent_at(now.plus_secs(2 * 86_400).0, now), now);
        let earlier = Timestamp::from_secs(1_799_999_000);
        assert_eq!(sent_at(earlier.0, now), earlier);
    }
}
