//! Replies and downloads through each platform's adapter, against the stand-in of the
//! platforms' APIs (`parley_channels::standin`).

use parley_channels::http::Client;
use parley_channels::standin::{Behaviour, StandIn};
use parley_channels::{
    MediaError, MediaSource, OutboundFile, OutboundMessage, Platform, SendOutcome,
};
use serde_json::json;
use std::time::{Duration, Instant};

mod common;
use common::media;

/// 2027-01-15T08:00:00Z.
const NOW: i64 = 1_799_999_200_000_000;
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A reply to `to`, who last wrote `ago` microseconds before now.
fn reply(to: &str, text: &str, ago: i64) -> OutboundMessage {
    OutboundMessage {
        to: to.to_owned(),
        text: text.to_owned(),
        files: Vec::new(),
        reply_token: None,
        last_inbound_micros: Some(NOW - ago),
        replies_since_inbound: 0,
        now_micros: NOW,
        retry_key: None,
    }
}

fn file(url: &str, name: &str, content_type: &str) -> OutboundFile {
    OutboundFile {
        url: url.to_owned(),
        name: name.to_owned(),
        content_type: content_type.to_owned(),
        size: 1024,
    }
}

async fn send(standin: &StandIn, platform: Platform, message: &OutboundMessage) -> SendOutcome {
    send_with(&Client::new(), standin, platform, message).await
}

async fn send_with(
    client: &Client,
    standin: &StandIn,
    platform: Platform,
    message: &OutboundMessage,
) -> SendOutcome {
    let account = standin.account(platform);
    let secrets = standin.secrets(platform);
    parley_channels::send(client, &account, &secrets, message).await
}

fn sent_id(outcome: &SendOutcome) -> &str {
    match outcome {
        SendOutcome::Sent {
            platform_message_id,
        } => platform_message_id,
        other => panic!("expected Sent, got {other:?}"),
    }
}

fn refused(code: &str, text: &str) -> SendOutcome {
    SendOutcome::Refused {
        code: code.to_owned(),
        text: text.to_owned(),
    }
}

/// The recipient each platform's test customer has.
fn customer(platform: Platform) -> &'static str {
    match platform {
        Platform::Whatsapp => "15551234567",
        Platform::Messenger => "6783410012345678",
        Platform::Line => "U4af4980629a1b2c3d4e5f60718293a4b",
        Platform::Wechat => "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        Platform::X => "1392840022411313152",
    }
}

// ---------------------------------------------------------------------------------------------
// WhatsApp.

#[tokio::test]
async fn whatsapp_files_follow_the_text_each_as_a_message() {
    let standin = StandIn::start();
    let mut message = reply("15551234567", "Your invoice", HOUR);
    message.files = vec![
        file("https://files.example/a.png", "a.png", "image/png"),
        file(
            "https://files.example/i.pdf",
            "invoice.pdf",
            "application/pdf",
        ),
    ];
    let outcome = send(&standin, Platform::Whatsapp, &message).await;
    let sent = standin.sent();
    assert_eq!(sent.len(), 3);
    assert_eq!(Some(sent_id(&outcome)), sent[0].message_id.as_deref());
    assert_eq!(sent[1].body["type"], "image");
    assert_eq!(
        sent[1].body["image"],
        json!({ "link": "https://files.example/a.png" })
    );
    assert_eq!(
        sent[2].body["document"],
        json!({ "link": "https://files.example/i.pdf", "filename": "invoice.pdf" })
    );
}

#[tokio::test]
async fn a_download_larger_than_the_limit_is_permanent() {
    let standin = StandIn::start();
    standin.put_media("big", vec![7u8; 4096], "application/octet-stream");
    let account = standin.account(Platform::Whatsapp);
    let secrets = standin.secrets(Platform::Whatsapp);
    let client = Client::new().with_max_download_bytes(1000);
    let source = media("file", MediaSource::WhatsappMedia("big".into()));
    let outcome = parley_channels::download(&client, &account, &secrets, &source).await;
    assert!(
        matches!(outcome, Err(MediaError::Permanent(_))),
        "{outcome:?}"
    );

    let url = media(
        "file",
        MediaSource::Url(format!("{}/files/big", standin.base_url())),
    );
    let messenger = standin.account(Platform::Messenger);
    let outcome = parley_channels::download(&client, &messenger, &secrets, &url).await;
    assert!(
        matches!(outcome, Err(MediaError::Permanent(_))),
        "{outcome:?}"
    );
    let outcome = parley_channels::download(&Client::new(), &messenger, &secrets, &url).await;
    assert_eq!(outcome.map(|d| d.bytes.len()), Ok(4096));
}

#[tokio::test]
async fn a_missing_token_is_refused_without_calling() {
    let standin = StandIn::start();
    let account = standin.account(Platform::Whatsapp);
    let secrets = parley_channels::Secrets::default();
    let outcome = parley_channels::send(
        &Client::new(),
        &account,
        &secrets,
        &reply("15551234567", "Hi", HOUR),
    )
    .await;
    assert_eq!(
        outcome,
        refused("not_configured", "the account has no access_token set")
    );
    assert_eq!(standin.total_attempts(), 0);
}

// ---------------------------------------------------------------------------------------------
// Every platform alike.

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let standin = StandIn::start();
    for platform in Platform::ALL {
        let to = customer(platform);
        standin.script(
            to,
            vec![
                Behaviour::ServerError,
                Behaviour::TooManyRequests {
                    retry_after_secs: 7,
                },
                Behaviour::Accept,
            ],
        );
        let message = reply(to, "Are you there?", HOUR);
        let outcome = send(&standin, platform, &message).await;
        assert!(
            matches!(
                outcome,
                SendOutcome::Transient {
                    retry_after: None,
                    ..
                }
            ),
            "{platform:?}: {outcome:?}"
        );
        let outcome = send(&standin, platform, &message).await;
        assert!(
            matches!(
                outcome,
                SendOutcome::Transient { retry_after: Some(wait), .. } if wait == Duration::from_secs(7)
            ),
            "{platform:?}: {outcome:?}"
        );
        let outcome = send(&standin, platform, &message).await;
        assert!(
            matches!(outcome, SendOutcome::Sent { .. }),
            "{platform:?}: {outcome:?}"
        );
        assert_eq!(standin.attempts(to), 3, "{platform:?}");
    }
}

#[tokio::test]
async fn a_platform_that_hangs_is_transient_within_the_timeout() {
    let standin = StandIn::start();
    let client = Client::with_timeout(Duration::from_millis(300));
    for platform in Platform::ALL {
        let to = customer(platform);
        standin.script(to, vec![Behaviour::Hang]);
        let started = Instant::now();
        let outcome = send_with(&client, &standin, platform, &reply(to, "Hello?", HOUR)).await;
        assert!(
            matches!(&outcome, SendOutcome::Transient { code, .. } if code == "timeout"),
            "{platform:?}: {outcome:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{platform:?}");
    }
}

#[tokio::test]
async fn error_texts_hold_no_secret() {
    let standin = StandIn::start();
    let client = Client::with_timeout(Duration::from_millis(200));
    let to = customer(Platform::Wechat);
    standin.script(to, vec![Behaviour::Hang]);
    let outcome = send_with(&client, &standin, Platform::Wechat, &reply(to, "Hi", HOUR)).await;
    let text = format!("{outcome:?}");
    assert!(!text.contains("standin-token"), "{text}");
    assert!(!text.contains("access_token="), "{text}");

    // Nothing listens there any more: a connection error, said without the URL.
    let account = standin.account(Platform::Wechat);
    let secrets = standin.secrets(Platform::Wechat);
    drop(standin);
    let outcome = parley_channels::send(&client, &account, &secrets, &reply(to, "Hi", HOUR)).await;
    let text = format!("{outcome:?}");
    assert!(matches!(outcome, SendOutcome::Transient { .. }), "{text}");
    assert!(!text.contains("standin-"), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

/// 3 cases: a reply goes out as the platform's message, with the access token as a bearer
/// token, and the outcome names it by the platform's id (WhatsApp's `wamid`, Messenger's `m_`,
/// X's direct message event id; X takes files as links in the text).
#[tokio::test]
async fn a_reply_is_sent_and_named_by_the_platforms_id() {
    let standin = StandIn::start();
    let with_file = |mut message: OutboundMessage| {
        message.files = vec![file("https://files.example/s.png", "s.png", "image/png")];
        message
    };
    // The platform, the reply, the body it goes out as, and whether an id is the platform's.
    type Case = (
        Platform,
        OutboundMessage,
        serde_json::Value,
        fn(&str) -> bool,
    );
    let cases: [Case; 3] = [
        (
            Platform::Whatsapp,
            reply("15551234567", "Hello!", HOUR),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "15551234567",
                "type": "text",
                "text": { "body": "Hello!" },
            }),
            |id| id.starts_with("wamid."),
        ),
        // Within a day of the customer's message, a standard response.
        (
            Platform::Messenger,
            reply(customer(Platform::Messenger), "Hi there", HOUR),
            json!({
                "recipient": { "id": customer(Platform::Messenger) },
                "messaging_type": "RESPONSE",
                "message": { "text": "Hi there" },
            }),
            |id| id.starts_with("m_"),
        ),
        (
            Platform::X,
            with_file(reply(customer(Platform::X), "We're on it", 3 * DAY)),
            json!({ "text": "We're on it\nhttps://files.example/s.png" }),
            |id| id.bytes().all(|b| b.is_ascii_digit()),
        ),
    ];
    for (platform, message, body, platforms_id) in cases {
        standin.clear();
        let outcome = send(&standin, platform, &message).await;
        let sent = standin.sent();
        assert_eq!(sent.len(), 1, "{platform:?}");
        assert!(sent[0].accepted, "{platform:?}");
        assert_eq!(sent[0].platform, platform);
        assert_eq!(sent[0].recipient, message.to, "{platform:?}");
        assert_eq!(Some(sent_id(&outcome)), sent[0].message_id.as_deref());
        assert!(platforms_id(sent_id(&outcome)), "{platform:?}: {outcome:?}");
        assert_eq!(sent[0].body, body, "{platform:?}");
        assert_eq!(
            sent[0].authorization.as_deref(),
            Some("Bearer standin-access_token"),
            "{platform:?}"
        );
    }
}

/// 5 cases: a reply past the platform's window (WhatsApp 24 hours, Messenger 7 days, WeChat
/// 48 hours), to a customer who never wrote, or past WeChat's 5 replies, is refused before
/// any call.
#[tokio::test]
async fn a_reply_past_the_platforms_limits_is_refused_without_calling() {
    let standin = StandIn::start();
    let whatsapp = refused(
        "131047",
        "Re-engagement message: more than 24 hours have passed since the customer last replied",
    );
    let wechat = refused(
        "45015",
        "WeChat accepts at most 5 replies within 48 hours of the customer's last message",
    );
    let openid = customer(Platform::Wechat);
    let cases = [
        (
            Platform::Whatsapp,
            reply("15551234567", "Late", DAY + MINUTE),
            whatsapp.clone(),
        ),
        (
            Platform::Whatsapp,
            OutboundMessage {
                last_inbound_micros: None,
                ..reply("15551234567", "Hi", 0)
            },
            whatsapp,
        ),
        (
            Platform::Messenger,
            reply(customer(Platform::Messenger), "Hi", 8 * DAY),
            refused(
                "(#10)",
                "Messenger accepts replies only within 7 days of the customer's last message \
                 (HUMAN_AGENT tag)",
            ),
        ),
        (
            Platform::Wechat,
            OutboundMessage {
                replies_since_inbound: 5,
                ..reply(openid, "Sixth", HOUR)
            },
            wechat.clone(),
        ),
        (
            Platform::Wechat,
            reply(openid, "Late", 48 * HOUR + MINUTE),
            wechat,
        ),
    ];
    for (platform, message, outcome) in cases {
        assert_eq!(send(&standin, platform, &message).await, outcome);
    }
    assert_eq!(standin.total_attempts(), 0);
    assert_eq!(standin.token_requests(), 0);
}

/// 4 cases: the platform's own refusal (its window error; X's when the person takes no direct
/// messages) is refused, with the platform's code and text.
#[tokio::test]
async fn the_platforms_own_refusal_is_refused() {
    let standin = StandIn::start();
    for (platform, code, text) in [
        (
            Platform::Whatsapp,
            "131047",
            "(#131047) Re-engagement message: Message failed to send because more than 24 hours \
             have passed since the customer last replied to this number.",
        ),
        (
            Platform::Messenger,
            "(#10)",
            "(#10) This message is sent outside of allowed window.",
        ),
        (
            Platform::Wechat,
            "45015",
            "response out of time limit or subscription is canceled",
        ),
        (
            Platform::X,
            "403",
            "You are not permitted to send Direct Messages to this user.",
        ),
    ] {
        let to = customer(platform);
        standin.script(to, vec![Behaviour::Refuse]);
        let outcome = send(&standin, platform, &reply(to, "Hi", HOUR)).await;
        assert_eq!(outcome, refused(code, text));
        assert_eq!(standin.attempts(to), 1, "{platform:?}");
    }
}

/// 4 cases: a file that came with a message is downloaded (WhatsApp's in two steps: its URL,
/// then the file; X's at a plain URL with the bearer token), and one the platform does not have
/// is refused for good.
#[tokio::test]
async fn a_file_is_downloaded_and_a_missing_one_is_permanent() {
    let standin = StandIn::start();
    let url = |name: &str| MediaSource::Url(format!("{}/files/{name}", standin.base_url()));
    let bearer = Some("Bearer standin-access_token".to_owned());
    let cases = [
        (
            Platform::Whatsapp,
            ("1037543291543636", &b"\x89PNG fake image"[..], "image/png"),
            MediaSource::WhatsappMedia("1037543291543636".into()),
            MediaSource::WhatsappMedia("404404".into()),
            ("/files/1037543291543636", bearer.clone()),
        ),
        (
            Platform::Line,
            ("325708", b"video bytes", "video/mp4"),
            MediaSource::LineContent("325708".into()),
            MediaSource::LineContent("1".into()),
            ("/v2/bot/message/325708/content", bearer.clone()),
        ),
        // WeChat's token goes in the query.
        (
            Platform::Wechat,
            ("MEDIA_ID_1", b"voice bytes", "audio/amr"),
            MediaSource::WechatMedia("MEDIA_ID_1".into()),
            MediaSource::WechatMedia("nope".into()),
            ("/cgi-bin/media/get?media_id=MEDIA_ID_1", None),
        ),
        (
            Platform::X,
            ("dm-photo.jpg", b"jpeg", "image/jpeg"),
            url("dm-photo.jpg"),
            url("gone.jpg"),
            ("/files/dm-photo.jpg", bearer),
        ),
    ];
    for (platform, (id, bytes, content_type), source, missing, (path, authorization)) in cases {
        standin.clear();
        standin.put_media(id, bytes.to_vec(), content_type);
        let account = standin.account(platform);
        let secrets = standin.secrets(platform);
        let client = Client::new();
        let downloaded =
            parley_channels::download(&client, &account, &secrets, &media("file", source))
                .await
                .expect("the file downloads");
        assert_eq!(downloaded.bytes, bytes, "{platform:?}");
        assert_eq!(downloaded.content_type.as_deref(), Some(content_type));
        let fetched = standin.fetched();
        assert_eq!(fetched.len(), 1, "{platform:?}");
        assert_eq!(fetched[0].path, path);
        assert_eq!(fetched[0].authorization, authorization, "{platform:?}");
        let missing =
            parley_channels::download(&client, &account, &secrets, &media("file", missing)).await;
        assert!(
            matches!(missing, Err(MediaError::Permanent(_))),
            "{platform:?}: {missing:?}"
        );
    }
    // WeChat's two downloads through one client took one token.
    assert_eq!(standin.token_requests(), 1);
}

// ---------------------------------------------------------------------------------------------
// Messenger.

#[tokio::test]
async fn messenger_reply_within_a_week_is_tagged_human_agent() {
    let standin = StandIn::start();
    let psid = customer(Platform::Messenger);
    let mut message = reply(psid, "Sorry for the wait", 3 * DAY);
    message.files = vec![file("https://files.example/a.mp4", "a.mp4", "video/mp4")];
    let outcome = send(&standin, Platform::Messenger, &message).await;
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    let sent = standin.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body,
        json!({
            "recipient": { "id": psid },
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": { "text": "Sorry for the wait" },
        })
    );
    assert_eq!(
        sent[1].body["message"],
        json!({
            "attachment": {
                "type": "video",
                "payload": { "url": "https://files.example/a.mp4", "is_reusable": false },
            }
        })
    );
}

// ---------------------------------------------------------------------------------------------
// LINE.

#[tokio::test]
async fn line_fresh_reply_token_goes_through_the_reply_api() {
    let standin = StandIn::start();
    let user = customer(Platform::Line);
    let mut message = reply(user, "Thanks!", 10_000_000);
    message.reply_token = Some(("nHuyWiB7yP5Zw52FIkcQobQuGDXCTA".into(), NOW - 10_000_000));
    message.files = vec![file("https://files.example/p.jpg", "p.jpg", "image/jpeg")];
    let outcome = send(&standin, Platform::Line, &message).await;
    let sent = standin.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].recipient, "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA");
    assert_eq!(Some(sent_id(&outcome)), sent[0].message_id.as_deref());
    assert!(sent_id(&outcome).bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        sent[0].body,
        json!({
            "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
            "messages": [
                { "type": "text", "text": "Thanks!" },
                {
                    "type": "image",
                    "originalContentUrl": "https://files.example/p.jpg",
                    "previewImageUrl": "https://files.example/p.jpg",
                },
            ],
        })
    );
    assert_eq!(
        sent[0].authorization.as_deref(),
        Some("Bearer standin-access_token")
    );
}

#[tokio::test]
async fn line_stale_reply_token_goes_through_the_push_api() {
    let standin = StandIn::start();
    let user = customer(Platform::Line);
    let mut message = reply(user, "Back to you", 2 * MINUTE);
    message.reply_token = Some(("staletoken".into(), NOW - 2 * MINUTE));
    let outcome = send(&standin, Platform::Line, &message).await;
    let sent = standin.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(Some(sent_id(&outcome)), sent[0].message_id.as_deref());
    assert_eq!(
        sent[0].body,
        json!({ "to": user, "messages": [{ "type": "text", "text": "Back to you" }] })
    );
}

#[tokio::test]
async fn line_invalid_reply_token_falls_back_to_push() {
    let standin = StandIn::start();
    let user = customer(Platform::Line);
    standin.script("usedtoken", vec![Behaviour::Refuse]);
    let mut message = reply(user, "Hi", 5_000_000);
    message.reply_token = Some(("usedtoken".into(), NOW - 5_000_000));
    let outcome = send(&standin, Platform::Line, &message).await;
    let sent = standin.sent();
    assert_eq!(sent.len(), 2);
    assert!(!sent[0].accepted);
    assert_eq!(sent[1].recipient, user);
    assert_eq!(Some(sent_id(&outcome)), sent[1].message_id.as_deref());
}

#[tokio::test]
async fn line_push_refusal_is_refused_and_a_retry_key_is_honoured() {
    let standin = StandIn::start();
    let user = customer(Platform::Line);
    standin.script(user, vec![Behaviour::Refuse, Behaviour::Accept]);
    let mut message = reply(user, "Hi", HOUR);
    let outcome = send(&standin, Platform::Line, &message).await;
    assert_eq!(outcome, refused("400", "Failed to send messages"));

    // LINE answers a push it already took under this key with 409 and what it sent then.
    message.retry_key = Some("123e4567-e89b-12d3-a456-426614174000".into());
    let first = send(&standin, Platform::Line, &message).await;
    let again = send(&standin, Platform::Line, &message).await;
    assert_eq!(sent_id(&first), sent_id(&again));
    let sent = standin.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent[1].accepted && !sent[2].accepted);
}

// ---------------------------------------------------------------------------------------------
// WeChat.

#[tokio::test]
async fn wechat_reply_is_sent_with_one_cached_token() {
    let standin = StandIn::start();
    let client = Client::new();
    let openid = customer(Platform::Wechat);
    let mut message = reply(openid, "您好", HOUR);
    message.files = vec![file(
        "https://files.example/m.pdf",
        "menu.pdf",
        "application/pdf",
    )];
    let first = send_with(&client, &standin, Platform::Wechat, &message).await;
    assert_eq!(sent_id(&first), format!("wechat:{openid}:{NOW}"));
    message.replies_since_inbound = 1;
    let second = send_with(&client, &standin, Platform::Wechat, &message).await;
    assert!(matches!(second, SendOutcome::Sent { .. }), "{second:?}");
    assert_eq!(standin.token_requests(), 1);
    let sent = standin.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].body,
        json!({
            "touser": openid,
            "msgtype": "text",
            "text": { "content": "您好\nmenu.pdf: https://files.example/m.pdf" },
        })
    );
    assert!(
        sent[0]
            .authorization
            .as_deref()
            .is_some_and(|token| token.starts_with("standin-token-"))
    );
    assert_eq!(sent[0].authorization, sent[1].authorization);
}

#[tokio::test]
async fn wechat_token_is_fetched_again_when_it_expired() {
    let standin = StandIn::start();
    let client = Client::new();
    let openid = customer(Platform::Wechat);
    let message = reply(openid, "One", HOUR);
    assert!(matches!(
        send_with(&client, &standin, Platform::Wechat, &message).await,
        SendOutcome::Sent { .. }
    ));
    standin.expire_tokens();
    let outcome = send_with(&client, &standin, Platform::Wechat, &message).await;
    assert!(matches!(outcome, SendOutcome::Sent { .. }), "{outcome:?}");
    assert_eq!(standin.token_requests(), 2);
    let sent = standin.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent[0].accepted && !sent[1].accepted && sent[2].accepted);
    assert_eq!(sent[0].authorization, sent[1].authorization);
    assert_ne!(sent[1].authorization, sent[2].authorization);
}
