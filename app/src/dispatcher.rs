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
use parley_channels::{OutboundMessage, SendOutcome};
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
        let mut attempts = 0;
        let mut pause = self.first_backoff;
        let outcome = loop {
            let message = OutboundMessage {
                to: requested.channel_info.customer_handle.clone(),
                text: requested.body.clone(),
                files: Vec::new(),
                reply_token: ticket
                    .reply_token
                    .as_ref()
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
        match self
            .service
            .execute::<Ticket>(&stream, command, &metadata)
            .await
        {
            // Reported meanwhile by someone else: theirs stands.
            Ok(_) | Err(ServiceError::Domain(DomainError::ReplyNotPending(_))) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }
}

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
