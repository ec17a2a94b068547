//! Contacts: a person as one channel account meets them on its platform (a WhatsApp number
//! writing to one business number, a LINE user following one bot). One stream per contact:
//! `contact-<id>`, the id derived from the account and the person's platform id
//! ([`ContactId::of`]).
//!
//! A contact's stream is where a platform's webhook lands: each message the person sends is
//! recorded here as it arrived, once (its event id is derived from the platform's message id,
//! so a redelivery appends nothing), before anything else happens. The inbound reaction then
//! records here each ticket a message opens, before it writes to it. A replay reads back where
//! the first attempt went: the ticket it opened, or the one that was current when the message
//! came ([`Contact::ticket_for`]), whatever later messages opened since.

use crate::channel::ChannelId;
use crate::ids::TicketId;
use crate::rules::check_text;
use crate::{Aggregate, DomainError, Timestamp, event_family};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest message text kept, in characters (the longest any platform sends is 20,000).
pub const MAX_TEXT_CHARS: usize = 50_000;
/// The most files one message carries.
pub const MAX_MEDIA: usize = 32;

/// How many of the latest routing decisions a contact keeps (a replay concerns the last page
/// of the log at most).
pub const ROUTES_KEPT: usize = 256;

/// Namespace of contact ids (a fixed random UUID).
const CONTACT_NAMESPACE: Uuid = Uuid::from_u128(0x2f0b_8d61_4c3a_4e97_a5d2_7e18_90c4_b356);

/// Identifies a contact; its stream is `contact-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactId(pub Uuid);

impl std::fmt::Display for ContactId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ContactId {
    /// The contact `user_id` is on `channel`: the same pair always names the same stream.
    pub fn of(channel: ChannelId, user_id: &str) -> ContactId {
        ContactId(Uuid::new_v5(
            &CONTACT_NAMESPACE,
            format!("{channel}:{user_id}").as_bytes(),
        ))
    }
}

/// What the platform told about the person ("social messaging info").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialProfile {
    /// The person's id on the platform (WhatsApp `wa_id`, Messenger PSID, LINE user id, WeChat
    /// OpenID, X user id).
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A file that came with a message, as the platform named it (fetched afterwards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialMedia {
    /// `image`, `video`, `audio`, `file`, `sticker`.
    pub kind: String,
    /// How to fetch it: `whatsapp_media`, `line_content`, `wechat_media` or `url`.
    pub source: String,
    /// The media id or URL.
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialMessageReceived {
    pub contact_id: ContactId,
    pub channel_id: ChannelId,
    /// The platform's id of the message.
    pub platform_message_id: String,
    pub profile: SocialProfile,
    /// `text`, `image`, `location`, ...
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub media: Vec<SocialMedia>,
    /// LINE: the token a reply can use for about a minute.
    #[serde(default)]
    pub reply_token: Option<String>,
    /// When the person sent it (the platform's clock).
    pub sent_at: Timestamp,
    /// When Parley received it.
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialContactFollowed {
    pub contact_id: ContactId,
    pub channel_id: ChannelId,
    pub profile: SocialProfile,
    /// `false`: the person unfollowed (blocked the account, unsubscribed).
    pub followed: bool,
    pub at: Timestamp,
}

/// Where a message goes: the ticket it continues, or the one it opens (which its later
/// messages then continue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialMessageRouted {
    pub platform_message_id: String,
    pub ticket_id: TicketId,
    pub opens_ticket: bool,
    pub at: Timestamp,
}

event_family! {
    /// Everything a platform tells about one contact, and where their messages go.
    pub enum ContactEvent {
        SocialMessageReceived,
        SocialContactFollowed,
        SocialMessageRouted,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ContactCommand {
    Receive(SocialMessageReceived),
    Follow(SocialContactFollowed),
    /// Sends a message to a ticket; the same decision again is a no-op.
    Route {
        platform_message_id: String,
        ticket_id: TicketId,
        opens_ticket: bool,
        at: Timestamp,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub id: Option<ContactId>,
    pub channel_id: Option<ChannelId>,
    pub profile: SocialProfile,
    /// The ticket the contact's messages continue, and the message that opened it.
    pub ticket: Option<(TicketId, String)>,
    /// The latest routing decisions (at most [`ROUTES_KEPT`]): message, ticket, whether it
    /// opened the ticket.
    pub routes: std::collections::VecDeque<(String, TicketId, bool)>,
    /// The latest messages received (at most [`ROUTES_KEPT`]) and their order (1, 2, ...).
    pub received: std::collections::VecDeque<(String, u64)>,
    /// The tickets messages opened (at most [`ROUTES_KEPT`]), by the order of the message that
    /// opened each.
    pub openings: std::collections::VecDeque<(u64, TicketId)>,
    pub following: Option<bool>,
    pub messages: u64,
}

impl Contact {
    /// The ticket that was the contact's current one when `platform_message_id` came: the one
    /// opened by the latest message up to it (later messages' openings do not count). Replays
    /// read it to find the ticket a message continued, whatever opened since.
    pub fn ticket_for(&self, platform_message_id: &str) -> Option<TicketId> {
        let order = self
            .received
            .iter()
            .rev()
            .find(|(message, _)| message == platform_message_id)
            .map_or(u64::MAX, |(_, order)| *order);
        self.openings
            .iter()
            .rev()
            .find(|(opened_at, _)| *opened_at <= order)
            .map(|(_, ticket)| *ticket)
            .or(self.ticket.as_ref().map(|(ticket, _)| *ticket))
    }

    /// Where a message was sent, if it was (among the latest [`ROUTES_KEPT`]): the ticket and
    /// whether it opened it.
    pub fn route(&self, platform_message_id: &str) -> Option<(TicketId, bool)> {
        self.routes
            .iter()
            .rev()
            .find(|(message, _, _)| message == platform_message_id)
            .map(|(_, ticket, opens)| (*ticket, *opens))
    }
}

fn check_profile(profile: &SocialProfile) -> Result<(), DomainError> {
    check_text("profile.user_id", &profile.user_id, 256, false)?;
    for value in [
        &profile.name,
        &profile.phone,
        &profile.username,
        &profile.locale,
    ]
    .into_iter()
    .flatten()
    {
        check_text("profile", value, 256, true)?;
    }
    Ok(())
}

impl Aggregate for Contact {
    type Command = ContactCommand;
    type Event = ContactEvent;
    const STREAM_PREFIX: &'static str = "contact";

    fn decide(&self, command: ContactCommand) -> Result<Vec<ContactEvent>, DomainError> {
        match command {
            ContactCommand::Receive(message) => {
                check_profile(&message.profile)?;
                check_text(
                    "platform_message_id",
                    &message.platform_message_id,
                    256,
                    false,
                )?;
                check_text("text", &message.text, MAX_TEXT_CHARS, true)?;
                if message.media.len() > MAX_MEDIA {
                    return Err(crate::rules::invalid(
                        "media",
                        format!("at most {MAX_MEDIA} files per message"),
                    ));
                }
                Ok(vec![message.into()])
            }
            ContactCommand::Follow(follow) => {
                check_profile(&follow.profile)?;
                if self.following == Some(follow.followed) {
                    return Ok(vec![]);
                }
                Ok(vec![follow.into()])
            }
            ContactCommand::Route {
                platform_message_id,
                ticket_id,
                opens_ticket,
                at,
            } => {
                if self.id.is_none() {
                    return Err(DomainError::ContactNotFound);
                }
                if self.route(&platform_message_id) == Some((ticket_id, opens_ticket)) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    SocialMessageRouted {
                        platform_message_id,
                        ticket_id,
                        opens_ticket,
                        at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(mut self, event: &ContactEvent) -> Self {
        match event {
            ContactEvent::SocialMessageReceived(e) => {
                self.id = Some(e.contact_id);
                self.channel_id = Some(e.channel_id);
                self.profile = e.profile.clone();
                self.messages += 1;
                self.received
                    .push_back((e.platform_message_id.clone(), self.messages));
                while self.received.len() > ROUTES_KEPT {
                    self.received.pop_front();
                }
            }
            ContactEvent::SocialContactFollowed(e) => {
                self.id = Some(e.contact_id);
                self.channel_id = Some(e.channel_id);
                self.profile = e.profile.clone();
                self.following = Some(e.followed);
            }
            ContactEvent::SocialMessageRouted(e) => {
                if e.opens_ticket {
                    self.ticket = Some((e.ticket_id, e.platform_message_id.clone()));
                    let order = self
                        .received
                        .iter()
                        .rev()
                        .find(|(message, _)| *message == e.platform_message_id)
                        .map_or(self.messages, |(_, order)| *order);
                    self.openings.push_back((order, e.ticket_id));
                    while self.openings.len() > ROUTES_KEPT {
                        self.openings.pop_front();
                    }
                }
                self.routes
                    .retain(|(message, _, _)| *message != e.platform_message_id);
                self.routes
                    .push_back((e.platform_message_id.clone(), e.ticket_id, e.opens_ticket));
                while self.routes.len() > ROUTES_KEPT {
                    self.routes.pop_front();
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::given;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn received(text: &str) -> SocialMessageReceived {
        let channel_id = ChannelId(Uuid::from_u128(7));
        SocialMessageReceived {
            contact_id: ContactId::of(channel_id, "15551234567"),
            channel_id,
            platform_message_id: "wamid.1".into(),
            profile: SocialProfile {
                user_id: "15551234567".into(),
                name: Some("Ana".into()),
                ..SocialProfile::default()
            },
            kind: "text".into(),
            text: text.into(),
            media: vec![],
            reply_token: None,
            sent_at: T0,
            at: T0,
        }
    }

    #[test]
    fn a_contact_is_named_by_its_account_and_platform_id() {
        let a = ChannelId(Uuid::from_u128(1));
        let b = ChannelId(Uuid::from_u128(2));
        assert_eq!(ContactId::of(a, "x"), ContactId::of(a, "x"));
        assert_ne!(ContactId::of(a, "x"), ContactId::of(b, "x"));
    }

    #[test]
    fn a_message_is_recorded_as_it_arrived() {
        let state = given::<Contact>([])
            .when(ContactCommand::Receive(received("hello")))
            .then([received("hello").into()]);
        assert_eq!(state.profile.name.as_deref(), Some("Ana"));
    }

    #[test]
    fn a_message_with_a_control_character_is_refused() {
        given::<Contact>([])
            .when(ContactCommand::Receive(received("a\u{0}b")))
            .then_err(crate::rules::invalid(
                "text",
                "must not contain control characters (other than line breaks and tabs)",
            ));
    }

    #[test]
    fn a_message_belongs_to_the_ticket_current_when_it_came_not_to_a_later_one() {
        let message = |id: &str| {
            let mut m = received("hi");
            m.platform_message_id = id.into();
            ContactEvent::from(m)
        };
        let opened = |id: &str, ticket: u128| {
            ContactEvent::from(SocialMessageRouted {
                platform_message_id: id.into(),
                ticket_id: TicketId(Uuid::from_u128(ticket)),
                opens_ticket: true,
                at: T0,
            })
        };
        // m1 opens T1; m2 comes and continues it; m3 comes (before m2's route would be known)
        // and opens T2.
        let contact = Contact::replay(&[
            message("m1"),
            opened("m1", 1),
            message("m2"),
            message("m3"),
            opened("m3", 2),
        ]);
        let ticket = |n| Some(TicketId(Uuid::from_u128(n)));
        assert_eq!(contact.ticket_for("m1"), ticket(1));
        assert_eq!(contact.ticket_for("m2"), ticket(1));
        assert_eq!(contact.ticket_for("m3"), ticket(2));
        // A message it never met goes to the current one.
        assert_eq!(contact.ticket_for("m9"), ticket(2));
    }

    #[test]
    fn a_message_is_routed_once_and_an_opening_makes_its_ticket_current() {
        let route = |ticket: u128, opens: bool| ContactCommand::Route {
            platform_message_id: "wamid.1".into(),
            ticket_id: TicketId(Uuid::from_u128(ticket)),
            opens_ticket: opens,
            at: T0,
        };
        let routed = SocialMessageRouted {
            platform_message_id: "wamid.1".into(),
            ticket_id: TicketId(Uuid::from_u128(9)),
            opens_ticket: true,
            at: T0,
        };
        let state = given::<Contact>([received("hi").into()])
            .when(route(9, true))
            .then([routed.clone().into()]);
        assert_eq!(
            state.ticket,
            Some((TicketId(Uuid::from_u128(9)), "wamid.1".into()))
        );
        assert_eq!(
            state.route("wamid.1"),
            Some((TicketId(Uuid::from_u128(9)), true))
        );
        given::<Contact>([received("hi").into(), routed.clone().into()])
            .when(route(9, true))
            .then(Vec::<ContactEvent>::new());
        // Sent elsewhere after all (the ticket closed meanwhile): the later decision stands.
        let state = given::<Contact>([received("hi").into(), routed.into()])
            .when(route(10, true))
            .then_accepted();
        assert_eq!(
            state.route("wamid.1"),
            Some((TicketId(Uuid::from_u128(10)), true))
        );
        given::<Contact>([])
            .when(route(9, true))
            .then_err(DomainError::ContactNotFound);
    }
}
