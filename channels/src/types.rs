//! What every platform module speaks: the account, its secrets, a webhook request, what a
//! webhook says, and a reply to send.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A social platform with a built-in adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Whatsapp,
    Messenger,
    Line,
    Wechat,
    X,
}

impl Platform {
    pub const ALL: [Platform; 5] = [
        Platform::Whatsapp,
        Platform::Messenger,
        Platform::Line,
        Platform::Wechat,
        Platform::X,
    ];

    /// The name in routes (`/hooks/{platform}/{channel_id}`) and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Whatsapp => "whatsapp",
            Platform::Messenger => "messenger",
            Platform::Line => "line",
            Platform::Wechat => "wechat",
            Platform::X => "x",
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The platform's API that replies and media downloads go to, unless an account names
    /// another (a stand-in, a staging proxy).
    pub fn default_api_base(self) -> &'static str {
        match self {
            Platform::Whatsapp | Platform::Messenger => "https://graph.facebook.com/v21.0",
            Platform::Line => "https://api.line.me",
            Platform::Wechat => "https://api.weixin.qq.com",
            Platform::X => "https://api.x.com",
        }
    }

    /// The secrets an account of this platform keeps, and whether each is required.
    pub fn secret_names(self) -> &'static [(&'static str, bool)] {
        match self {
            Platform::Whatsapp | Platform::Messenger => &[
                ("app_secret", true),
                ("access_token", true),
                ("verify_token", true),
            ],
            Platform::Line => &[("channel_secret", true), ("access_token", true)],
            Platform::Wechat => &[
                ("token", true),
                ("app_secret", true),
                ("encoding_aes_key", false),
            ],
            Platform::X => &[("consumer_secret", true), ("access_token", true)],
        }
    }

    /// The platform's account ids an account of this platform records, and whether each is
    /// required.
    pub fn id_names(self) -> &'static [(&'static str, bool)] {
        match self {
            Platform::Whatsapp => &[("phone_number_id", true), ("display_phone_number", false)],
            Platform::Messenger => &[("page_id", true)],
            Platform::Line => &[("channel_id", true), ("bot_user_id", true)],
            Platform::Wechat => &[("app_id", true), ("original_id", true)],
            Platform::X => &[("user_id", true)],
        }
    }
}

/// One connected account as the adapters need it: which platform, the platform's ids for it
/// (`phone_number_id`, `page_id`, `channel_id`, `bot_user_id`, `app_id`, `original_id`,
/// `user_id`, see [`Platform::id_names`]) and where its API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub platform: Platform,
    pub ids: BTreeMap<String, String>,
    /// Without a trailing slash, e.g. `https://graph.facebook.com/v21.0`.
    pub api_base: String,
}

impl Account {
    /// One of the platform's ids for this account ("" when not recorded).
    pub fn id(&self, name: &str) -> &str {
        self.ids.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// An account's secrets by name (see [`Platform::secret_names`]). `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(pub BTreeMap<String, String>);

impl Secrets {
    /// The secret called `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The secret called `name`, or [`HookError::NotConfigured`].
    pub fn require(&self, name: &'static str) -> Result<&str, HookError> {
        self.get(name).ok_or(HookError::NotConfigured(name))
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A webhook request as it arrived: the query string's pairs (decoded), the headers (names in
/// lower case) and the raw body.
#[derive(Debug, Clone, Default)]
pub struct HookRequest {
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HookRequest {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A header by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Why a webhook was refused. The API answers 401 for `BadSignature`, 403 for
/// `VerificationRefused`, 400 for `Malformed`, 409 for `NotConfigured`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The signature is missing or does not match the body.
    #[error("the webhook's signature is missing or does not match")]
    BadSignature,
    /// A subscription check (a `GET`) named the wrong verify token or signature.
    #[error("the verification request does not match this account")]
    VerificationRefused,
    /// The body is not what the platform sends; the text says what is wrong (no secret in it).
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// The account lacks a secret this needs.
    #[error("the account has no {0} set")]
    NotConfigured(&'static str),
}

/// What a webhook said, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Message(InboundMessage),
    Receipt(Receipt),
    /// The user followed (LINE: added as a friend; WeChat: subscribed) or unfollowed the account.
    Follow {
        user: Profile,
        followed: bool,
        at_micros: i64,
        /// The platform's id of this event, for deduplication, when it has one.
        event_id: Option<String>,
    },
}

/// What the platform told about the person who wrote: their id on the platform and whatever
/// else it sent. Only `user_id` is always there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// WhatsApp: the `wa_id` (a phone number); Messenger: the page-scoped id (PSID); LINE: the
    /// user id; WeChat: the OpenID; X: the user id.
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A phone number, when the platform tells it (WhatsApp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A message a person sent to the account.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The platform's id of the message (WhatsApp `wamid…`, Messenger `mid`, LINE message id
    /// or `webhookEventId`, WeChat `MsgId`, X event id): redeliveries carry the same one.
    pub platform_message_id: String,
    pub from: Profile,
    /// When the person sent it, microseconds since the Unix epoch (the platform's clock).
    pub at_micros: i64,
    /// The text; for a location, contacts, a sticker or a link, a readable rendering of it
    /// (e.g. `📍 Eiffel Tower, 48.8584, 2.2945`). Empty when only media came.
    pub text: String,
    pub media: Vec<MediaRef>,
    /// LINE: the reply token and nothing else has one.
    pub reply_token: Option<String>,
    /// The kind the platform gave (`text`, `image`, `location`, ...).
    pub kind: String,
}

/// A file that came with a message, still at the platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRef {
    /// `image`, `video`, `audio`, `file`, `sticker`.
    pub kind: String,
    pub source: MediaSource,
    /// The file's name when the platform tells it (a WhatsApp document, a LINE file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The type the platform claims (checked again when the file is stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Where to fetch a file from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum MediaSource {
    /// WhatsApp: the media id (`GET /{media-id}` answers a URL, fetched with the token).
    WhatsappMedia(String),
    /// LINE: the message id (`GET /v2/bot/message/{id}/content` on the data API).
    LineContent(String),
    /// WeChat: the media id (`GET /cgi-bin/media/get`).
    WechatMedia(String),
    /// A URL the platform gave (Messenger, X, WeChat's `PicUrl`).
    Url(String),
}

/// The platform's news of a reply sent earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The id the platform gave the reply when it accepted it.
    pub platform_message_id: String,
    pub status: ReceiptStatus,
    pub at_micros: i64,
    /// The customer it was sent to.
    pub recipient: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptStatus {
    Sent,
    Delivered,
    Read,
    /// The platform gave up on it after accepting it (WhatsApp `failed` statuses).
    Failed {
        code: String,
        text: String,
    },
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The customer's id on the platform ([`Profile::user_id`]).
    pub to: String,
    pub text: String,
    /// Files, each linked by a URL the platform can fetch (see `docs/channels.md`).
    pub files: Vec<OutboundFile>,
    /// LINE: the reply token of the customer's last message, and when it came (microseconds).
    pub reply_token: Option<(String, i64)>,
    /// When the customer last wrote (microseconds), for the platforms' windows.
    pub last_inbound_micros: Option<i64>,
    /// How many replies went out since the customer last wrote (WeChat allows 5).
    pub replies_since_inbound: u32,
    /// Now, microseconds (the adapters read no clock).
    pub now_micros: i64,
    /// The same for every attempt at one reply, so that a retry the platform already accepted
    /// is not sent twice. LINE's push API takes it as `X-Line-Retry-Key` and wants a UUID.
    pub retry_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundFile {
    pub url: String,
    pub name: String,
    pub content_type: String,
    /// Bytes, for platforms that want the file uploaded (WeChat, X).
    pub size: u64,
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The platform accepted it and named it.
    Sent { platform_message_id: String },
    /// The platform refused it for good (the window closed, a bad recipient, a bad token): not
    /// retried. `code` is the platform's (`131047`, `(#10)`, `45015`...).
    Refused { code: String, text: String },
    /// Worth trying again: a timeout, a connection error, a 5xx, a 429 (with its
    /// `Retry-After`).
    Transient {
        code: String,
        text: String,
        retry_after: Option<Duration>,
    },
}

/// A file fetched from a platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub bytes: Vec<u8>,
    /// What the platform said it is (sniffed again by the store).
    pub content_type: Option<String>,
}

/// Why a file could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// Worth trying again (timeout, 5xx, 429).
    #[error("{0}")]
    Transient(String),
    /// Will not work (404, expired, refused, too large).
    #[error("{0}")]
    Permanent(String),
}
