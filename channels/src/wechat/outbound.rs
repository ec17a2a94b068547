//! Sending through a WeChat Official Account's customer service API
//! (`POST /cgi-bin/message/custom/send`), with an access token fetched from `/cgi-bin/token`
//! and cached ([`TokenCache`]); files that came with a message through `/cgi-bin/media/get`.
//!
//! WeChat takes customer service messages within 48 hours of the customer's last message, at
//! most 5 of them; both limits are checked here before calling, and WeChat's own refusal
//! (`45015`, `45047`) ends the same. WeChat answers HTTP 200 for its refusals too: what
//! happened is in `errcode`.
//!
//! Files go out as links in the text: WeChat sends an image only by a media id, after the file
//! is uploaded to it (`/cgi-bin/media/upload`), which Parley does not do.

use crate::http::{self, Answer, Client};
use crate::{Account, Downloaded, MediaError, OutboundMessage, Platform, Secrets, SendOutcome};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long after the customer's last message WeChat takes customer service messages.
pub const WINDOW: Duration = Duration::from_secs(48 * 3600);
/// How many customer service messages WeChat takes per customer message.
pub const MAX_REPLIES: u32 = 5;
/// A cached token is replaced this long before WeChat says it expires.
pub const TOKEN_MARGIN: Duration = Duration::from_secs(5 * 60);

/// `errcode`s saying the access token is not (or no longer) valid: the token is fetched again
/// and the call made once more.
const TOKEN_ERRCODES: &[i64] = &[40001, 40014, 42001];
/// `errcode`s worth retrying: system busy (-1), API quota reached (45009), too frequent
/// (45011).
const TRANSIENT_ERRCODES: &[i64] = &[-1, 45009, 45011];

/// The access tokens of WeChat accounts, by API base and app id, each until shortly before it
/// expires. One fetch at a time per account: concurrent sends wait for it instead of each
/// fetching (a fetch replaces the token the others hold).
#[derive(Default)]
pub struct TokenCache {
    accounts: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One account's token and until when it is used, behind the lock its fetch holds.
type Slot = tokio::sync::Mutex<Option<(String, Instant)>>;

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let accounts = self.accounts.lock().map(|a| a.len()).unwrap_or(0);
        f.debug_struct("TokenCache")
            .field("accounts", &accounts)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        accounts.entry(key.to_owned()).or_default().clone()
    }

    /// The account's access token: the cached one while it is fresh, otherwise a new one from
    /// `GET /cgi-bin/token`. A failure to get one is the send's outcome.
    pub async fn token(
        &self,
        client: &Client,
        account: &Account,
        secrets: &Secrets,
    ) -> Result<String, SendOutcome> {
        let app_id = account.id("app_id");
        let slot = self.slot(&key(account));
        let mut cached = slot.lock().await;
        if let Some((token, fresh_until)) = cached.as_ref()
            && Instant::now() < *fresh_until
        {
            return Ok(token.clone());
        }
        let Some(app_secret) = secrets.get("app_secret") else {
            return Err(http::not_configured("app_secret"));
        };
        let request = client
            .http
            .get(format!("{}/cgi-bin/token", account.api_base))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", app_id),
                ("secret", app_secret),
            ]);
        let answer = http::call(request).await?;
        let body = answer.json().unwrap_or_default();
        let Some(token) = body.get("access_token").and_then(Value::as_str) else {
            // No clock here: only a `Retry-After` in seconds is read.
            let retry_after = answer
                .header("retry-after")
                .and_then(|value| value.trim().parse().ok())
                .map(Duration::from_secs);
            return Err(failure(&answer, retry_after));
        };
        let lifetime = Duration::from_secs(
            body.get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(7200),
        );
        let fresh_for = lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2));
        *cached = Some((token.to_owned(), Instant::now() + fresh_for));
        Ok(token.to_owned())
    }

    /// Forgets the account's token if it is still `stale` (another send may have replaced it
    /// already).
    pub async fn invalidate(&self, account: &Account, stale: &str) {
        let slot = self.slot(&key(account));
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|(token, _)| token == stale) {
            *cached = None;
        }
    }
}

/// The cache key of an account: its API base and app id.
fn key(account: &Account) -> String {
    format!("{} {}", account.api_base, account.id("app_id"))
}

/// Sends a reply as one text message, its files as links after the text. WeChat's answer
/// names no message (`{"errcode":0,"errmsg":"ok"}`): the outcome's id is its `msgid` when it
/// has one, otherwise `wechat:{openid}:{now_micros}`.
pub async fn send(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    message: &OutboundMessage,
) -> SendOutcome {
    let open = http::within_window(message.last_inbound_micros, message.now_micros, WINDOW);
    if !open || message.replies_since_inbound >= MAX_REPLIES {
        return SendOutcome::Refused {
            code: "45015".to_owned(),
            text: "WeChat accepts at most 5 replies within 48 hours of the customer's last \
                   message"
                .to_owned(),
        };
    }
    let content = content(message);
    if content.is_empty() {
        return http::nothing_to_send();
    }
    let body = json!({
        "touser": message.to,
        "msgtype": "text",
        "text": { "content": content },
    });
    let url = format!("{}/cgi-bin/message/custom/send", account.api_base);
    let mut refreshed = false;
    loop {
        let token = match client.tokens.token(client, account, secrets).await {
            Ok(token) => token,
            Err(outcome) => return outcome,
        };
        let request = client
            .http
            .post(&url)
            .query(&[("access_token", token.as_str())])
            .json(&body);
        let answer = match http::call(request).await {
            Ok(answer) => answer,
            Err(outcome) => return outcome,
        };
        if !answer.status.is_success() {
            return failure(&answer, answer.retry_after(message.now_micros));
        }
        let reply = answer.json().unwrap_or_default();
        let errcode = reply.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if errcode == 0 {
            let id = reply.get("msgid").map(|id| match id {
                Value::String(id) => id.clone(),
                other => other.to_string(),
            });
            return SendOutcome::Sent {
                platform_message_id: id.unwrap_or_else(|| {
                    http::fallback_id(Platform::Wechat, &message.to, message.now_micros)
                }),
            };
        }
        if TOKEN_ERRCODES.contains(&errcode) && !refreshed {
            client.tokens.invalidate(account, &token).await;
            refreshed = true;
            continue;
        }
        return failure(&answer, answer.retry_after(message.now_micros));
    }
}

/// The text of a reply and its files' links, one a line.
fn content(message: &OutboundMessage) -> String {
    let mut lines = Vec::with_capacity(1 + message.files.len());
    if !message.text.is_empty() {
        lines.push(message.text.clone());
    }
    for file in &message.files {
        lines.push(if file.name.is_empty() {
            file.url.clone()
        } else {
            format!("{}: {}", file.name, file.url)
        });
    }
    lines.join("\n")
}

/// What a WeChat answer that is not a success says: by `errcode` when it has one (a token
/// still refused after a fresh one was fetched is worth retrying later), by HTTP status
/// otherwise.
fn failure(answer: &Answer, retry_after: Option<Duration>) -> SendOutcome {
    let reply = answer.json().unwrap_or_default();
    let Some(errcode) = reply.get("errcode").and_then(Value::as_i64) else {
        let code = answer.status.as_u16().to_string();
        return http::by_status(answer.status, code, &http::body_text(answer), retry_after);
    };
    let text = reply
        .get("errmsg")
        .and_then(Value::as_str)
        .map(http::clip)
        .unwrap_or_else(|| http::body_text(answer));
    let transient = TRANSIENT_ERRCODES.contains(&errcode)
        || TOKEN_ERRCODES.contains(&errcode)
        || http::is_transient_status(answer.status);
    http::failed(transient, errcode.to_string(), text, retry_after)
}

/// Fetches a file that came with a message by its media id: `GET /cgi-bin/media/get` with the
/// access token. WeChat answers the file, or JSON: an `errcode` (the token is fetched again once
/// when it is the token's fault), or, for a video, its `video_url`, which is then fetched.
pub async fn download(
    client: &Client,
    account: &Account,
    secrets: &Secrets,
    media_id: &str,
) -> Result<Downloaded, MediaError> {
    let url = format!("{}/cgi-bin/media/get", account.api_base);
    let mut refreshed = false;
    loop {
        let token = client
            .tokens
            .token(client, account, secrets)
            .await
            .map_err(http::media_failure)?;
        let request = client
            .http
            .get(&url)
            .query(&[("access_token", token.as_str()), ("media_id", media_id)]);
        let downloaded = http::fetch(client, request, client.max_download_bytes).await?;
        let Some(reply) = json_reply(&downloaded) else {
            return Ok(downloaded);
        };
        if let Some(video_url) = reply.get("video_url").and_then(Value::as_str) {
            let request = client.http.get(video_url);
            return http::fetch(client, request, client.max_download_bytes).await;
        }
        let errcode = reply.get("errcode").and_then(Value::as_i64).unwrap_or(0);
        if TOKEN_ERRCODES.contains(&errcode) && !refreshed {
            client.tokens.invalidate(account, &token).await;
            refreshed = true;
            continue;
        }
        let errmsg = reply.get("errmsg").and_then(Value::as_str).unwrap_or("");
        let text = http::clip(&format!("WeChat refused the file: {errcode} {errmsg}"));
        return Err(
            if TRANSIENT_ERRCODES.contains(&errcode) || TOKEN_ERRCODES.contains(&errcode) {
                MediaError::Transient(text)
            } else {
                MediaError::Permanent(text)
            },
        );
    }
}

/// The JSON WeChat answers instead of a file, if it did.
fn json_reply(downloaded: &Downloaded) -> Option<Value> {
    let content_type = downloaded.content_type.as_deref().unwrap_or("");
    let textual = content_type.starts_with("application/json") || content_type.starts_with("text/");
    let looks_json = downloaded.bytes.first() == Some(&b'{');
    if !(textual || looks_json) || downloaded.bytes.len() > http::MAX_ANSWER_BYTES {
        return None;
    }
    let reply: Value = serde_json::from_slice(&downloaded.bytes).ok()?;
    (reply.get("errcode").is_some() || reply.get("video_url").is_some()).then_some(reply)
}
