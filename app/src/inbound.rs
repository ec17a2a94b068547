//! The inbound reaction: a social message a webhook recorded on its contact becomes a
//! customer's message on a ticket.
//!
//! For each `SocialMessageReceived` (in log order per contact):
//! 1. the customer met through the account (created on first contact, one per account;
//!    after merges, the survivor), with what the platform told of them kept on the customer;
//! 2. the files that came with it fetched from the platform into the file store (tried
//!    [`MEDIA_ATTEMPTS`] times; a file that cannot be fetched stays on the message as an
//!    attachment saying why, so the message is never lost);
//! 3. the ticket that was the contact's current one when the message came continued, when it
//!    is New, Open or Pending (a Pending one reopens); else a new social ticket opened from this
//!    message (tagged with the channel and `messaging_support`, its channel info naming the
//!    account), recorded on the contact (`SocialMessageRouted`) before it is created, which
//!    becomes the contact's current one;
//! 4. the message recorded on that ticket.
//!
//! Every id it mints, and every event id it appends, is derived from the message's event
//! (ADR 12): handled again after a crash, it appends nothing new, and it takes the way its
//! first attempt took instead of deciding again on a state an agent may have changed since: a
//! ticket it opened is on the contact; a ticket it continued is the one current when the
//! message came (later messages' openings do not count), and the log tells that it wrote there
//! (`CommandService::acted_before`) even if an agent solved it since.

use crate::channels::{Connected, Directory};
use crate::files::FileStore;
use crate::reactions::{Cause, Reaction, ReactionError};
use crate::service::{CommandService, ServiceError};
use parley_channels::{MediaRef, MediaSource, Platform};
use parley_domain::contact::{Contact, ContactCommand, ContactEvent, SocialMessageReceived};
use parley_domain::conversation::Attachment;
use parley_domain::customer::{ChannelIdentity, Customer, CustomerCommand};
use parley_domain::ids::{CustomerId, TicketId};
use parley_domain::ticket::{
    ChannelInfo, CreateTicket, Priority, Ticket, TicketCommand, TicketSource, TicketStatus,
    TicketType, title_from_message,
};
use parley_domain::{Actor, DomainError, Timestamp};
use parley_eventlog::{Metadata, StreamId};
use parley_projections::Event;
use std::sync::Arc;
use std::time::Duration;

pub const NAME: &str = "inbound";
/// How many times a file is fetched before the message keeps it as unavailable.
pub const MEDIA_ATTEMPTS: u32 = 3;
/// The pause before the second fetch of a file; it doubles.
const MEDIA_RETRY_FIRST: Duration = Duration::from_millis(500);

pub struct Inbound {
    pub service: CommandService,
    pub directory: Arc<Directory>,
    pub files: Arc<FileStore>,
    pub client: parley_channels::http::Client,
    /// Files fetched at once (each is held in memory until stored, up to the download limit).
    pub downloads: Arc<tokio::sync::Semaphore>,
}

/// How many files the inbound reaction fetches at once.
pub const DOWNLOADS_AT_ONCE: usize = 4;

#[async_trait::async_trait]
impl Reaction for Inbound {
    fn name(&self) -> &'static str {
        NAME
    }

    fn wants(&self, stream: &str, event_type: &str) -> bool {
        stream.starts_with("contact-") && event_type == "SocialMessageReceived"
    }

    async fn react(&self, cause: &Cause) -> Result<(), ReactionError> {
        let Event::Contact(contact_id, ContactEvent::SocialMessageReceived(message)) =
            &cause.envelope.event
        else {
            return Ok(());
        };
        let Some(connected) = self.directory.get(message.channel_id).await? else {
            return Err(ReactionError::Skip(format!(
                "channel account {} is unknown or removed",
                message.channel_id
            )));
        };
        let metadata = Metadata {
            channel: Some(connected.channel.name().to_owned()),
            ..cause.metadata(NAME)
        };
        let customer = self.customer(&connected, message, &metadata).await?;
        let attachments = self.fetch_media(&connected, message).await;
        let contact_stream = CommandService::stream::<Contact>(contact_id)?;
        // Empty text without files (a kind the platform sent nothing readable for) still says
        // that something came.
        let body = if message.text.trim().is_empty() && attachments.is_empty() {
            format!("[{}]", message.kind)
        } else {
            message.text.clone()
        };
        let received = TicketCommand::ReceiveCustomerMessage {
            message_id: crate::ids::new_id("message"),
            body,
            attachments: attachments.clone(),
            reply_token: message.reply_token.clone(),
            at: message.sent_at,
        };
        let (mut ticket_id, mut opens) = self.route(&contact_stream, message, &metadata).await?;
        if !opens {
            let stream = CommandService::stream::<Ticket>(ticket_id)?;
            match self
                .service
                .execute::<Ticket>(&stream, received.clone(), &metadata)
                .await
            {
                Ok(_) => return Ok(()),
                // Closed since it was chosen: a new ticket takes the message, and the new
                // decision is recorded before it is acted on.
                Err(ServiceError::Domain(DomainError::TicketClosed)) => {
                    ticket_id = TicketId(crate::ids::new_id("ticket"));
                    opens = true;
                    self.record_route(&contact_stream, message, ticket_id, opens, &metadata)
                        .await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        self.open_ticket(
            ticket_id,
            &connected,
            message,
            customer,
            attachments,
            received,
            &metadata,
        )
        .await?;
        Ok(())
    }
}

impl Inbound {
    /// Where the message goes: the ticket that was the contact's current one when it came, if
    /// that ticket still takes messages (New, Open or Pending) or the first attempt already
    /// wrote the message there; else a new ticket, recorded on the contact before it is
    /// created. A replay takes the way its first attempt took.
    async fn route(
        &self,
        contact_stream: &parley_eventlog::StreamId,
        message: &SocialMessageReceived,
        metadata: &Metadata,
    ) -> Result<(TicketId, bool), ReactionError> {
        let (contact, _, _) = self.service.load::<Contact>(contact_stream).await?;
        if let Some((ticket_id, true)) = contact.route(&message.platform_message_id) {
            return Ok((ticket_id, true));
        }
        if let Some(ticket_id) = contact.ticket_for(&message.platform_message_id) {
            let stream = CommandService::stream::<Ticket>(ticket_id)?;
            let (ticket, _, _) = self.service.load::<Ticket>(&stream).await?;
            let open = ticket.id.is_some()
                && matches!(
                    ticket.status,
                    TicketStatus::New | TicketStatus::Open | TicketStatus::Pending
                );
            if open || self.service.acted_before(&stream).await? {
                return Ok((ticket_id, false));
            }
        }
        let ticket_id = TicketId(crate::ids::new_id("ticket"));
        self.record_route(contact_stream, message, ticket_id, true, metadata)
            .await?;
        Ok((ticket_id, true))
    }

    async fn record_route(
        &self,
        contact_stream: &parley_eventlog::StreamId,
        message: &SocialMessageReceived,
        ticket_id: TicketId,
        opens_ticket: bool,
        metadata: &Metadata,
    ) -> Result<(), ReactionError> {
        self.service
            .execute::<Contact>(
                contact_stream,
                ContactCommand::Route {
                    platform_message_id: message.platform_message_id.clone(),
                    ticket_id,
                    opens_ticket,
                    at: message.at,
                },
                metadata,
            )
            .await?;
        Ok(())
    }

    /// The customer met through the account, with the platform's profile kept on them.
    async fn customer(
        &self,
        connected: &Connected,
        message: &SocialMessageReceived,
        metadata: &Metadata,
    ) -> Result<CustomerId, ReactionError> {
        let identity = ChannelIdentity {
            channel: connected.channel,
            value: message.profile.user_id.clone(),
            account: Some(connected.id.to_string()),
        };
        // A returning customer (the usual case) is read from the cache: no command is decided
        // (a refused creation would be checked again on the stream read from the log).
        let first_met = CustomerId::for_identity(&identity);
        let (known, _, _) = self
            .service
            .load::<Customer>(&CommandService::stream::<Customer>(first_met)?)
            .await?;
        let customer = match (known.id, known.merged_into) {
            (Some(id), None) => id,
            _ => {
                let met = |name: Option<String>| {
                    self.service
                        .first_contact(identity.clone(), name, None, message.at, metadata)
                };
                match met(message.profile.name.clone()).await {
                    // A name the customer record refuses never keeps the message out.
                    Err(ServiceError::Domain(DomainError::Invalid { .. })) => met(None).await?,
                    other => other?,
                }
            }
        };
        let same_profile = |state: &Customer| {
            state.social.get(&connected.id.to_string())
                == Some(&(connected.channel, message.profile.clone()))
        };
        if customer == first_met && same_profile(&known) {
            return Ok(customer);
        }
        let recorded = self
            .service
            .execute::<Customer>(
                &CommandService::stream::<Customer>(customer)?,
                CustomerCommand::RecordSocialProfile {
                    account: connected.id.to_string(),
                    channel: connected.channel,
                    profile: message.profile.clone(),
                    at: message.at,
                },
                metadata,
            )
            .await;
        match recorded {
            // An invalid profile field never keeps the message from its ticket.
            Ok(_) | Err(ServiceError::Domain(DomainError::Invalid { .. })) => Ok(customer),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens the social ticket this message starts: its first message is the description;
    /// its files are recorded as a customer message.
    #[allow(clippy::too_many_arguments)]
    async fn open_ticket(
        &self,
        ticket_id: TicketId,
        connected: &Connected,
        message: &SocialMessageReceived,
        customer: CustomerId,
        attachments: Vec<Attachment>,
        received: TicketCommand,
        metadata: &Metadata,
    ) -> Result<(), ReactionError> {
        let stream = CommandService::stream::<Ticket>(ticket_id)?;
        let create = CreateTicket {
            ticket_id,
            ticket_type: TicketType::Ticket,
            title: title(message, connected),
            description: message.text.clone(),
            priority: Priority::Normal,
            requester: Some(customer),
            source: TicketSource::Social {
                channel: connected.channel,
            },
            tags: Vec::new(),
            channel_info: Some(ChannelInfo {
                channel: connected.channel,
                account_id: connected.id.to_string(),
                customer_handle: message.profile.user_id.clone(),
            }),
            created_by: Actor::System,
            at: message.sent_at,
            reply_token: message.reply_token.clone(),
        };
        match self
            .service
            .execute::<Ticket>(&stream, TicketCommand::Create(create), metadata)
            .await
        {
            Ok(_) | Err(ServiceError::Domain(DomainError::TicketExists)) => {}
            Err(error) => return Err(error.into()),
        }
        // The description holds the text; files need a message of their own.
        if !attachments.is_empty() {
            let received = match received {
                TicketCommand::ReceiveCustomerMessage {
                    message_id,
                    attachments,
                    reply_token,
                    at,
                    ..
                } => TicketCommand::ReceiveCustomerMessage {
                    message_id,
                    body: String::new(),
                    attachments,
                    reply_token,
                    at,
                },
                other => other,
            };
            self.service
                .execute::<Ticket>(&stream, received, metadata)
                .await?;
        }
        Ok(())
    }

    /// The message's files, fetched into the file store; one that cannot be fetched is an
    /// attachment saying why.
    async fn fetch_media(
        &self,
        connected: &Connected,
        message: &SocialMessageReceived,
    ) -> Vec<Attachment> {
        let mut attachments = Vec::with_capacity(message.media.len());
        for (n, media) in message.media.iter().enumerate() {
            let name = media.name.clone().unwrap_or_else(|| {
                format!("{}-{}-{}", connected.channel.name(), media.kind, n + 1)
            });
            let Some(reference) = media_ref(media) else {
                attachments.push(unavailable(&name, media, "unknown media source"));
                continue;
            };
            // Bounded: each fetch holds its file in memory until it is stored.
            let Ok(_permit) = self.downloads.acquire().await else {
                attachments.push(unavailable(&name, media, "the server is stopping"));
                continue;
            };
            let mut pause = MEDIA_RETRY_FIRST;
            let mut attempt = 1;
            let fetched = loop {
                match parley_channels::download(
                    &self.client,
                    &connected.account,
                    &connected.secrets,
                    &reference,
                )
                .await
                {
                    Err(parley_channels::MediaError::Transient(reason))
                        if attempt < MEDIA_ATTEMPTS =>
                    {
                        tracing::warn!(%reason, attempt, "fetching a message's file failed; trying again");
                        tokio::time::sleep(pause).await;
                        pause *= 2;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            let attachment = match fetched {
                Ok(file) => match self
                    .files
                    .store_bytes(
                        &file.bytes,
                        &name,
                        file.content_type
                            .as_deref()
                            .or(media.content_type.as_deref()),
                        &format!("channel:{}", connected.id),
                    )
                    .await
                {
                    Ok(stored) => stored.attachment(),
                    Err(error) => unavailable(&name, media, &format!("not stored: {error}")),
                },
                Err(error) => {
                    metrics::counter!("parley_media_unavailable_total", "platform" => connected.account.platform.name()).increment(1);
                    unavailable(&name, media, &error.to_string())
                }
            };
            attachments.push(attachment);
        }
        attachments
    }
}

fn media_ref(media: &parley_domain::contact::SocialMedia) -> Option<MediaRef> {
    let source = match media.source.as_str() {
        "whatsapp_media" => MediaSource::WhatsappMedia(media.reference.clone()),
        "line_content" => MediaSource::LineContent(media.reference.clone()),
        "wechat_media" => MediaSource::WechatMedia(media.reference.clone()),
        "url" => MediaSource::Url(media.reference.clone()),
        _ => return None,
    };
    Some(MediaRef {
        kind: media.kind.clone(),
        source,
        name: media.name.clone(),
        content_type: media.content_type.clone(),
    })
}

/// An attachment for a file that could not be fetched, with the reason.
fn unavailable(
    name: &str,
    media: &parley_domain::contact::SocialMedia,
    reason: &str,
) -> Attachment {
    let name: String = name.chars().take(255).collect();
    Attachment {
        name,
        content_type: media
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
        size: 0,
        storage_ref: "unavailable".into(),
        file_id: None,
        sha256: None,
        unavailable: Some(reason.chars().take(500).collect()),
    }
}

/// A new ticket's title: the message's first line, else the kind of message and who sent it.
fn title(message: &SocialMessageReceived, connected: &Connected) -> String {
    title_from_message(&message.text, || {
        let who = message
            .profile
            .name
            .as_deref()
            .unwrap_or(&message.profile.user_id);
        format!(
            "{} {} from {who}",
            platform_label(connected.account.platform),
            message.kind
        )
    })
}

fn platform_label(platform: Platform) -> &'static str {
    match platform {
        Platform::Whatsapp => "WhatsApp",
        Platform::Messenger => "Messenger",
        Platform::Line => "LINE",
        Platform::Wechat => "WeChat",
        Platform::X => "X",
    }
}

/// The stream of a contact.
pub fn contact_stream(id: parley_domain::contact::ContactId) -> Result<StreamId, ServiceError> {
    Ok(CommandService::stream::<Contact>(id)?)
}

/// When Parley received a webhook's message (now), as the domain's timestamp.
pub fn now() -> Timestamp {
    Timestamp(parley_eventlog::Timestamp::now().as_micros())
}
