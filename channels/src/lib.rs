//! The social platforms as Parley meets them: one module per platform, each knowing how the
//! platform proves a webhook is its own (`verify`), what its webhook bodies say (`parse`), and
//! how a reply goes out through its API (`send`, `download`). Nothing here touches the log or
//! the domain: the application layer (`parley-app`) turns what [`parse`] answers into commands,
//! and a reply's outcome ([`SendOutcome`]) into events.
//!
//! - [`whatsapp`] — WhatsApp Cloud API (Meta Graph API).
//! - [`messenger`] — Facebook Messenger (Meta Graph API).
//! - [`line`] — LINE Messaging API.
//! - [`wechat`] — WeChat Official Account.
//! - [`x`] — X (Twitter) Account Activity API and direct messages.
//! - [`http`] — the shared HTTP client and how a platform's answer is classified.
//! - `standin` — a local stand-in of the five platforms' APIs (feature `standin`).
//!
//! Invariant: signatures are checked on the raw bytes of the body, before it is parsed, with a
//! constant-time comparison.
//!
//! Invariant: nothing a platform sends is unwrapped: a body that does not parse is
//! [`HookError::Malformed`], whatever it holds.
//!
//! Invariant: secrets are never logged and never part of an error's text.

pub mod http;
pub mod line;
pub mod messenger;
#[cfg(feature = "standin")]
pub mod standin;
pub mod wechat;
pub mod whatsapp;
pub mod x;

mod types;
mod verify;

pub use types::*;

/// What to answer a platform's subscription check (a `GET` on the webhook URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub content_type: &'static str,
    pub body: String,
}

/// Answers a platform's subscription check: Meta's `hub.challenge`, WeChat's `echostr`, X's
/// CRC `response_token`. LINE has none (its console sends a signed `POST` with no events).
pub fn verify_subscription(
    platform: Platform,
    request: &HookRequest,
    secrets: &Secrets,
) -> Result<Challenge, HookError> {
    match platform {
        Platform::Whatsapp | Platform::Messenger => whatsapp::verify_subscription(request, secrets),
        Platform::Line => Err(HookError::VerificationRefused),
        Platform::Wechat => wechat::verify_subscription(request, secrets),
        Platform::X => x::verify_subscription(request, secrets),
    }
}

/// Checks that a webhook `POST` comes from the platform: its signature over the raw body.
pub fn verify(
    platform: Platform,
    request: &HookRequest,
    secrets: &Secrets,
) -> Result<(), HookError> {
    match platform {
        Platform::Whatsapp | Platform::Messenger => whatsapp::verify(request, secrets),
        Platform::Line => line::verify(request, secrets),
        Platform::Wechat => wechat::verify(request, secrets),
        Platform::X => x::verify(request, secrets),
    }
}

/// What a verified webhook body says, in the order it says it. Events the account itself
/// caused (echoes of its own messages) and kinds Parley does not use are left out.
pub fn parse(
    account: &Account,
    secrets: &Secrets,
    request: &HookRequest,
) -> Result<Vec<Incoming>, HookError> {
    match account.platform {
        Platform::Whatsapp => whatsapp::parse(account, request),
        Platform::Messenger => messenger::parse(account, request),
        Platform::Line => line::parse(account, request),
        Platform::Wechat => wechat::parse(account, secrets, request),
        Platform::X => x::parse(account, request),
    }
}

/// Sends a reply through the account. Never panics and never returns an error: every way it
/// can end is a [`SendOutcome`].
pub async fn send(
    client: &http::Client,
    account: &Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    match account.platform {
        Platform::Whatsapp => whatsapp::send(client, account, secrets, message).await,
        Platform::Messenger => messenger::send(client, account, secrets, message).await,
        Platform::Line => line::send(client, account, secrets, message).await,
        Platform::Wechat => wechat::send(client, account, secrets, message).await,
        Platform::X => x::send(client, account, secrets, message).await,
    }
}

/// Fetches a file that came with a message: one the platform keeps by its id through the
/// platform's API, a plain URL as it is.
pub async fn download(
    client: &http::Client,
    account: &Account,
    secrets: &Secrets,
    media: &MediaRef,
) -> Result<Downloaded, MediaError> {
    let not_its = |what: &str| Err(MediaError::Permanent(format!("the file is not {what}")));
    match (account.platform, &media.source) {
        (Platform::Whatsapp, MediaSource::WhatsappMedia(id)) => {
            whatsapp::download(client, account, secrets, id).await
        }
        (Platform::Line, MediaSource::LineContent(id)) => {
            line::download(client, account, secrets, id).await
        }
        (Platform::Wechat, MediaSource::WechatMedia(id)) => {
            wechat::download(client, account, secrets, id).await
        }
        // X's media want the account's token: it goes to X's own hosts (or the account's API
        // base), never to a host a webhook named.
        (Platform::X, MediaSource::Url(url)) if http::is_platform_host(url, &account.api_base) => {
            http::download_url(client, secrets, media).await
        }
        // Any other plain URL (Messenger's CDN links, WeChat's `PicUrl`, LINE's external
        // content) is fetched as it is, without the account's secrets.
        (_, MediaSource::Url(_)) | (Platform::Messenger | Platform::X, _) => {
            http::download_url(client, &Secrets::default(), media).await
        }
        (Platform::Whatsapp, _) => not_its("a WhatsApp media id"),
        (Platform::Line, _) => not_its("a LINE message's content"),
        (Platform::Wechat, _) => not_its("a WeChat media id"),
    }
}
