//! The dispatcher: the outbox of replies to the social platforms (ADR 12).
//!
//! An agent's reply on a social ticket is first an event, `OutboundReplyRequested` (the
//! intent). The dispatcher follows those events and, for each reply still pending whose
//! ticket talks through a connected channel account, sends it through that account's platform
//! and appends the outcome: `OutboundReplyDelivered` with the platform's message id, or
//! `OutboundReplyFailed` with the platform's error code and text.
//!
//! - Transient failures (a timeout, a connection error, a 5xx, a 429) are tried again after a
//!   back-off with jitter (1 s doubling, at most 60 s, or the platform's `Retry-After` up to
//!   [`MAX_RETRY_AFTER`]), [`MAX_ATTEMPTS`] sends in all; then the reply fails with the last
//!   error. A refusal (the platform's window, a bad recipient, a bad token) fails at once.
//! - At least once: a send whose outcome was not appended before a crash is sent again when
//!   the reaction replays its page (the checkpoint moves after the outcome is appended). LINE
//!   sends take a retry key derived from the reply id, so LINE drops such a repeat; the other
//!   platforms offer no idempotency key, so there the customer may receive it twice.
//! - Replies on tickets whose account is not connected (integrations that report deliveries
//!   through the API, `POST /api/v1/social/messages`) are left to those integrations.
//! - Replies of one ticket go out one after another, in the order they were requested.

use crate::channels::Directory;
use crate::reactions::{Cause, Reaction, ReactionError};
use crate::service::{CommandService, ServiceError};
use parley_channels::{OutboundFile, OutboundMessage, SendOutcome};
use parley_domain::DomainError;
use parley_domain::channel::ChannelId;
use parley_domain::ticket::{ReplyState, Ticket, TicketCommand, TicketEvent};
use parley_eventlog::Metadata;
use parley_projections::Event;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "dispatcher";
/// How many sends a reply gets before it fails with the last transient error.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first pause between two sends of a reply; it doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` waited for; a platform asking for more fails the reply.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub struct Dispatcher {
    pub service: CommandService,
    pub directory: Arc<Directory>,
    pub client: parley_channels::http::Client,
    /// The first pause between two sends (tests shorten it).
    pub first_backoff: Duration,
    /// The server's address as the platforms reach it: a reply's files are linked under it.
    pub public_url: Option<String>,
}

/// How long a reply's file links stay good: platforms fetch a file when the reply is sent,
/// some again when the customer opens it.
pub const FILE_LINK_SECS: i64 = 7 * 24 * 60 * 60;

/// Why a reply's files cannot be linked (the reply fails with it).
enum Unlinkable {
    NoPublicUrl,
    NoUrl(String),
}

impl Dispatcher {
    /// Links the platform can fetch a reply's files from: a stored file by a signed link under
    /// the public URL, a file stored elsewhere by its own `https://` reference.
    async fn links(
        &self,
        attachments: &[parley_domain::conversation::Attachment],
    ) -> Result<Result<Vec<OutboundFile>, Unlinkable>, ReactionError> {
        let mut files = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let url = match attachment.file_id {
                Some(file_id) => {
                    let Some(base) = &self.public_url else {
                        return Ok(Err(Unlinkable::NoPublicUrl));
                    };
                    let expires = crate::inbound::now().0 / 1_000_000 + FILE_LINK_SECS;
                    let signature = self.directory.file_links().await?.sign(file_id, expires);
                    format!(
                        "{}/public/files/{file_id}?expires={expires}&signature={signature}",
                        base.trim_end_matches('/')
                    )
                }
                None if attachment.storage_ref.starts_with("https://") => {
                    attachment.storage_ref.clone()
                }
                None => return Ok(Err(Unlinkable::NoUrl(attachment.name.clone()))),
            };
            files.push(OutboundFile {
                url,
                name: attachment.name.clone(),
                content_type: attachment.content_type.clone(),
                size: attachment.size,
            });
        }
        Ok(Ok(files))
    }
}

#[async_trait::async_trait]
impl Reaction for Dispatcher {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, stream: &str, event_type: &str) -> bool {
        stream.starts_with("ticket-") && event_type == "OutboundReplyRequested"
    }

    async fn react(&self, cause: &Cause) -> Result<(), ReactionError> {
        let Event::Ticket(ticket_id, TicketEvent::OutboundReplyRequested(requested)) =
            &cause.envelope.event
        else {
            return Ok(());
        };
        let reply_id = requested.reply_id;
        let stream = CommandService::stream::<Ticket>(ticket_id)?;
        let (ticket, _, _) = self.service.load::<Ticket>(&stream).await?;
        // Settled already: refused at once (a window), reported, or sent before a crash.
        if ticket.replies.get(&reply_id) != Some(&ReplyState::Pending) {
            return Ok(());
        }
        let Ok(channel_id) = requested.channel_info.account_id.parse() else {
            return Ok(());
        };
        let Some(connected) = self.directory.get(ChannelId(channel_id)).await? else {
            return Ok(());
        };
        let platform = connected.account.platform.name();
        let metadata = Metadata {
            channel: Some(connected.channel.name().to_owned()),
            ..cause.metadata(NAME)
        };
        let files = match self.links(&requested.attachments).await? {
            Ok(files) => files,
            Err(unlinkable) => {
                let reason = match unlinkable {
                    Unlinkable::NoPublicUrl => "the reply's files need the server's public URL \
                        (parley serve --public-url) for the platform to fetch them"
                        .to_owned(),
                    Unlinkable::NoUrl(name) => format!(
                        "file {name} is stored outside Parley without an https:// address the platform could fetch"
                    ),
                };
                let command = TicketCommand::MarkReplyFailed {
                    reply_id,
                    reason,
                    code: Some("unlinkable-file".into()),
                    attempts: 0,
                    at: crate::inbound::now(),
                };
                return match self
                    .service
                    .execute::<Ticket>(&stream, command, &metadata)
                    .await
                {
                    Ok(_) | Err(ServiceError::Domain(DomainError::ReplyNotPending(_))) => Ok(()),
                    Err(error) => Err(error.into()),
                };
            }
        };
        let mut attempts = 0;
        let mut pause = self.first_backoff;
        let outcome = loop {
            let message = OutboundMessage {
                to: requested.channel_info.customer_handle.clone(),
                text: requested.body.clone(),
                files: files.clone(),
                // A reply token is good for one use: only the first send may spend it; a send
                // again goes by push, whose retry key LINE drops a repeat of.
                reply_token: ticket
                    .reply_token
                    .as_ref()
                    .filter(|_| attempts == 0)
                    .map(|(token, at)| (token.clone(), at.0)),
                last_inbound_micros: ticket.last_customer_message_at.map(|at| at.0),
                // The ticket counts this reply too.
                replies_since_inbound: ticket.replies_since_customer.saturating_sub(1),
                now_micros: crate::inbound::now().0,
                retry_key: Some(reply_id.to_string()),
            };
            attempts += 1;
            let outcome = parley_channels::send(
                &self.client,
                &connected.account,
                &connected.secrets,
                &message,
            )
            .await;
            metrics::counter!("parley_dispatch_sends_total", "platform" => platform, "outcome" => match &outcome {
                SendOutcome::Sent { .. } => "sent",
                SendOutcome::Refused { .. } => "refused",
                SendOutcome::Transient { .. } => "transient",
            })
            .increment(1);
            match outcome {
                SendOutcome::Transient {
                    retry_after, code, ..
                } if attempts < MAX_ATTEMPTS
                    && retry_after.is_none_or(|wait| wait <= MAX_RETRY_AFTER) =>
                {
                    let wait = retry_after.unwrap_or_else(|| jittered(pause));
                    tracing::info!(%reply_id, platform, %code, attempts, retry_in = ?wait, "a reply will be sent again");
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
                other => break other,
            }
        };
        let now = crate::inbound::now();
        let command = match outcome {
            SendOutcome::Sent {
                platform_message_id,
            } => TicketCommand::MarkReplyDelivered {
                reply_id,
                platform_message_id: Some(clip(&platform_message_id, 512)),
                attempts,
                at: now,
            },
            SendOutcome::Refused { code, text } | SendOutcome::Transient { code, text, .. } => {
                TicketCommand::MarkReplyFailed {
                    reply_id,
                    reason: clip(
                        if text.trim().is_empty() {
                            "the platform refused the reply"
                        } else {
                            &text
                        },
                        2_000,
                    ),
                    code: Some(clip(&code, 64)).filter(|code| !code.trim().is_empty()),
                    attempts,
                    at: now,
                }
            }
        };
        // The send happened: only its record is tried again (a failure here must not send the
        // reply a second time), until it is in the log or can never be.
        let mut pause = RECORD_RETRY_FIRST;
        loop {
            match self
                .service
                .execute::<Ticket>(&stream, command.clone(), &metadata)
                .await
            {
                // Reported meanwhile by someone else: theirs stands.
                Ok(_) | Err(ServiceError::Domain(DomainError::ReplyNotPending(_))) => return Ok(()),
                Err(error) => match ReactionError::from(error) {
                    ReactionError::Retry(reason) => {
                        tracing::warn!(%reply_id, %reason, retry_in = ?pause, "a sent reply's outcome is not recorded yet");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(crate::reactions::RETRY_MAX);
                    }
                    skip => return Err(skip),
                },
            }
        }
    }
}

/// The first pause before a sent reply's outcome is appended again after the log failed.
const RECORD_RETRY_FIRST: Duration = Duration::from_millis(100);

/// At most `max` characters of `text`, without control characters (a platform's text is not
/// trusted to be clean).
fn clip(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .take(max)
        .collect()
}

/// `pause` give or take a quarter, so that replies failing together are not sent again
/// together.
fn jittered(pause: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let quarter = pause.as_millis() as u64 / 4;
    if quarter == 0 {
        return pause;
    }
    let offset = random % (2 * quarter + 1);
    Duration::from_millis(pause.as_millis() as u64 - quarter + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..1_000 {
            let wait = jittered(Duration::from_millis(1_000));
            assert!(wait >= Duration::from_millis(750) && wait <= Duration::from_millis(1_250));
        }
    }

    #[test]
    fn a_platforms_text_is_clipped_and_cleaned() {
        assert_eq!(clip("a\u{0}b\nc", 10), "ab\nc");
        assert_eq!(clip("abcdef", 3), "abc");
    }
}
