//! The inbound half of every platform adapter, read through the crate's dispatch functions:
//! recorded webhook bodies signed here over their exact bytes, what they parse to, and every way
//! a body or a signature can be wrong.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use parley_channels::{
    Account, Challenge, HookError, HookRequest, InboundMessage, Incoming, MediaRef, MediaSource,
    Platform, Profile, Receipt, ReceiptStatus, Secrets, parse, verify, verify_subscription,
};
use sha1::{Digest, Sha1};
use sha2::Sha256;

mod common;
use common::media;

const WA_USER: &str = "16505551234";
const PSID: &str = "6945819215522014";
const LINE_USER: &str = "U4af4980629b8e2f3c6a1d5e7f9b0c2d4";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";
const X_CUSTOMER: &str = "3001969357";
const X_ACCOUNT: &str = "1460389447283253248";

const WECHAT_TIMESTAMP: &str = "1719580400";
const WECHAT_NONCE: &str = "1320562132";

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|error| panic!("{full}: {error}"))
}

fn account(platform: Platform) -> Account {
    let ids: &[(&str, &str)] = match platform {
        Platform::Whatsapp => &[
            ("phone_number_id", "106540352242922"),
            ("display_phone_number", "15550783881"),
        ],
        Platform::Messenger => &[("page_id", "112233445566778")],
        Platform::Line => &[
            ("channel_id", "2005123456"),
            ("bot_user_id", "U0123456789abcdef0123456789abcdef"),
        ],
        Platform::Wechat => &[
            ("app_id", "wx5823bf96d3bd56c7"),
            ("original_id", "gh_3ad31b2a7d66"),
        ],
        Platform::X => &[("user_id", X_ACCOUNT)],
    };
    Account {
        platform,
        ids: pairs(ids),
        api_base: platform.default_api_base().to_owned(),
    }
}

fn secrets(platform: Platform) -> Secrets {
    let named: &[(&str, &str)] = match platform {
        Platform::Whatsapp | Platform::Messenger => &[
            ("app_secret", "6f1c2d3e4a5b69788796a5b4c3d2e1f0"),
            ("access_token", "EAAGm0PX4ZCpsBAKZCZBZCqWZBZC7t1kQ"),
            ("verify_token", "parley-verify-7Qm2"),
        ],
        Platform::Line => &[
            ("channel_secret", "8c5ad9f1e2b34c67d8e9f0a1b2c3d4e5"),
            ("access_token", "Xq7bW1eL0yR4tN9mK2jH5gF8dS3aP6oI"),
        ],
        Platform::Wechat => &[
            ("token", "parleytoken"),
            ("app_secret", "c4e1a9b7d2f3e5a6b8c9d0e1f2a3b4c5"),
            (
                "encoding_aes_key",
                "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR",
            ),
        ],
        Platform::X => &[
            ("consumer_secret", "Vt3nQ8xK1mB6zR0yW4pL7sD2fH9jC5aE"),
            ("access_token", "1460389447283253248-aBcDeFgHiJkLmNoP"),
        ],
    };
    Secrets(pairs(named))
}

fn secret(platform: Platform, name: &str) -> String {
    secrets(platform).get(name).unwrap_or_default().to_owned()
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sha1_sorted(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    hex(&Sha1::digest(parts.concat().as_bytes()))
}

/// `(name, value)` pairs, owned, in whatever collection the caller wants.
fn pairs<C: FromIterator<(String, String)>>(items: &[(&str, &str)]) -> C {
    items
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// The request the platform would send with `body`, signed its way.
fn signed(platform: Platform, body: Vec<u8>) -> HookRequest {
    let mut request = HookRequest {
        body,
        ..HookRequest::default()
    };
    match platform {
        Platform::Whatsapp | Platform::Messenger => {
            let tag = hmac_sha256(&secret(platform, "app_secret"), &request.body);
            request.headers = pairs(&[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &format!("sha256={}", hex(&tag))),
            ]);
        }
        Platform::Line => {
            let tag = hmac_sha256(&secret(platform, "channel_secret"), &request.body);
            request.headers = pairs(&[
                ("content-type", "application/json; charset=utf-8"),
                ("x-line-signature", &BASE64.encode(tag)),
            ]);
        }
        Platform::Wechat => {
            let token = secret(platform, "token");
            let signature = sha1_sorted(&[&token, WECHAT_TIMESTAMP, WECHAT_NONCE]);
            request.query = pairs(&[
                ("signature", &signature),
                ("timestamp", WECHAT_TIMESTAMP),
                ("nonce", WECHAT_NONCE),
                ("openid", OPENID),
            ]);
        }
        Platform::X => {
            let tag = hmac_sha256(&secret(platform, "consumer_secret"), &request.body);
            request.headers = pairs(&[(
                "x-twitter-webhooks-signature",
                &format!("sha256={}", BASE64.encode(tag)),
            )]);
        }
    }
    request
}

/// A recorded body, signed, verified and parsed.
fn read(platform: Platform, path: &str) -> Vec<Incoming> {
    read_body(platform, fixture(path))
}

fn read_body(platform: Platform, body: Vec<u8>) -> Vec<Incoming> {
    let request = signed(platform, body);
    let secrets = secrets(platform);
    verify(platform, &request, &secrets).expect("the signature verifies");
    parse(&account(platform), &secrets, &request).expect("the body parses")
}

fn parse_body(platform: Platform, body: Vec<u8>) -> Result<Vec<Incoming>, HookError> {
    let request = signed(platform, body);
    parse(&account(platform), &secrets(platform), &request)
}

/// A fixture with one JSON value changed.
fn edited(path: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value =
        serde_json::from_slice(&fixture(path)).expect("the fixture is JSON");
    edit(&mut value);
    serde_json::to_vec(&value).expect("JSON serialises")
}

fn only_message(items: Vec<Incoming>) -> InboundMessage {
    match <[Incoming; 1]>::try_from(items) {
        Ok([Incoming::Message(message)]) => message,
        other => panic!("expected one message, got {other:?}"),
    }
}

fn only_receipt(items: Vec<Incoming>) -> Receipt {
    match <[Incoming; 1]>::try_from(items) {
        Ok([Incoming::Receipt(receipt)]) => receipt,
        other => panic!("expected one receipt, got {other:?}"),
    }
}

fn malformed(text: &str) -> HookError {
    HookError::Malformed(text.to_owned())
}

/// The platform a fixture is recorded from: its folder.
fn platform_of(path: &str) -> Platform {
    path.split('/')
        .next()
        .and_then(Platform::from_name)
        .unwrap_or_else(|| panic!("{path}: no platform's folder"))
}

/// The customer who writes in each platform's recorded bodies.
fn sender(platform: Platform) -> Profile {
    let customer = |user_id: &str| Profile {
        user_id: user_id.to_owned(),
        ..Profile::default()
    };
    match platform {
        Platform::Whatsapp => Profile {
            name: Some("Sheena Nelson".to_owned()),
            phone: Some(WA_USER.to_owned()),
            ..customer(WA_USER)
        },
        Platform::Messenger => customer(PSID),
        Platform::Line => customer(LINE_USER),
        Platform::Wechat => customer(OPENID),
        Platform::X => Profile {
            name: Some("Jordan Mills".to_owned()),
            username: Some("jordanmills".to_owned()),
            ..customer(X_CUSTOMER)
        },
    }
}

/// A request in WeChat's safe mode: `request` with `encrypt_type=aes` and `msg_signature`.
fn safe_mode(mut request: HookRequest, msg_signature: String) -> HookRequest {
    request
        .query
        .push(("encrypt_type".to_owned(), "aes".to_owned()));
    request
        .query
        .push(("msg_signature".to_owned(), msg_signature));
    request
}

/// The signature checks every platform that signs its bodies passes: a wrong signature, none,
/// and a body changed by one byte after signing are all refused.
fn assert_signatures_are_checked(platform: Platform, path: &str, header: &str) {
    let secrets = secrets(platform);
    let good = signed(platform, fixture(path));
    assert_eq!(verify(platform, &good, &secrets), Ok(()));

    let mut wrong = good.clone();
    for (name, value) in &mut wrong.headers {
        if name == header {
            let other = signed(platform, b"{}".to_vec());
            *value = other.header(header).expect("signed").to_owned();
        }
    }
    assert_eq!(
        verify(platform, &wrong, &secrets),
        Err(HookError::BadSignature)
    );

    let mut missing = good.clone();
    missing.headers.retain(|(name, _)| name != header);
    assert_eq!(
        verify(platform, &missing, &secrets),
        Err(HookError::BadSignature)
    );

    let mut changed = good.clone();
    let last = changed.body.len() - 2;
    changed.body[last] ^= 0x01;
    assert_eq!(
        verify(platform, &changed, &secrets),
        Err(HookError::BadSignature)
    );

    let mut garbled = good.clone();
    for (name, value) in &mut garbled.headers {
        if name == header {
            *value = format!("{value}!");
        }
    }
    assert_eq!(
        verify(platform, &garbled, &secrets),
        Err(HookError::BadSignature)
    );
}

/// RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
const RFC4231_KEY: &str = "Jefe";
const RFC4231_DATA: &str = "what do ya want for nothing?";
const RFC4231_HEX: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
const RFC4231_BASE64: &str = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";

#[test]
fn the_test_hmac_matches_rfc_4231_test_case_2() {
    let tag = hmac_sha256(RFC4231_KEY, RFC4231_DATA.as_bytes());
    assert_eq!(hex(&tag), RFC4231_HEX);
    assert_eq!(BASE64.encode(&tag), RFC4231_BASE64);
}

// ---------------------------------------------------------------------------------------------
// Every platform alike: each check over each platform's cases.

/// 5 cases: each platform's text message, read whole.
#[test]
fn a_text_message_names_its_sender_time_and_text() {
    let cases = [
        (
            "whatsapp/text.json",
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUVBNjQ4MDk0RjI5NDg4QzE1NQA=",
            1_749_416_383_000_000,
            "Hi, my order #8802 hasn't arrived yet",
            None,
        ),
        // Messenger names its sender by PSID.
        (
            "messenger/text.json",
            "m_rA1MUp3Uq4Yn4PCZ2cqsGV8QjUuW3f5Pmp0OJhfHuMvFMoOVK3dDvhjVDnT2sY4SnKh7tTnbxG4jIZRO1Q0sLw",
            1_719_579_998_562_000,
            "Hi, my order hasn't arrived",
            None,
        ),
        // LINE's carries its reply token.
        (
            "line/text.json",
            "514265723390574673",
            1_719_580_000_123_000,
            "こんにちは、注文が届いていません",
            Some("38ef843bde154d9b91c21320ffd17a0f"),
        ),
        // WeChat's names its openid and msgid.
        (
            "wechat/text.xml",
            "24611375372931712",
            1_719_580_000_000_000,
            "你好，我的订单还没到",
            None,
        ),
        // X's names its sender from the users map.
        (
            "x/message_create.json",
            "1803391528418205696",
            1_718_803_000_123_000,
            "Hi! Has my refund been processed?",
            None,
        ),
    ];
    for (path, id, at_micros, text, reply_token) in cases {
        assert_eq!(
            only_message(read(platform_of(path), path)),
            InboundMessage {
                platform_message_id: id.to_owned(),
                from: sender(platform_of(path)),
                at_micros,
                text: text.to_owned(),
                media: vec![],
                reply_token: reply_token.map(str::to_owned),
                kind: "text".to_owned(),
            },
            "{path}"
        );
    }
}

/// 12 cases: a message with a file reads as its kind, its text (a caption, the recognised
/// speech) and the file: a media id the platform keeps, or a URL.
#[test]
fn a_file_is_its_media_with_its_kind_and_text() {
    let typed = |content_type: &str, media: MediaRef| MediaRef {
        content_type: Some(content_type.to_owned()),
        ..media
    };
    let named = |name: &str, media: MediaRef| MediaRef {
        name: Some(name.to_owned()),
        ..media
    };
    let whatsapp = |kind: &str, id: &str| media(kind, MediaSource::WhatsappMedia(id.to_owned()));
    let line = |kind: &str, id: &str| media(kind, MediaSource::LineContent(id.to_owned()));
    let wechat = |kind: &str, id: &str| media(kind, MediaSource::WechatMedia(id.to_owned()));
    let url = |kind: &str, url: &str| media(kind, MediaSource::Url(url.to_owned()));
    let cases = [
        (
            "whatsapp/image.json",
            "image",
            "This is the box I got",
            typed("image/jpeg", whatsapp("image", "1003383421387256")),
        ),
        (
            "whatsapp/video.json",
            "video",
            "",
            typed("video/mp4", whatsapp("video", "1216519516329738")),
        ),
        (
            "whatsapp/audio.json",
            "audio",
            "",
            typed(
                "audio/ogg; codecs=opus",
                whatsapp("audio", "1165433841498733"),
            ),
        ),
        (
            "whatsapp/sticker.json",
            "sticker",
            "",
            typed("image/webp", whatsapp("sticker", "1052347106293716")),
        ),
        (
            "whatsapp/document.json",
            "document",
            "The invoice",
            named(
                "invoice-8802.pdf",
                typed("application/pdf", whatsapp("file", "1436815200489466")),
            ),
        ),
        // LINE's are fetched from the content API by the message's id.
        (
            "line/image.json",
            "image",
            "",
            line("image", "514265762741273097"),
        ),
        // An image from an external provider is its original URL.
        (
            "line/image_external.json",
            "image",
            "",
            url("image", "https://example.com/photos/original.jpg"),
        ),
        (
            "line/file.json",
            "file",
            "",
            named("invoice-8802.pdf", line("file", "514265845390512345")),
        ),
        (
            "wechat/image.xml",
            "image",
            "",
            wechat(
                "image",
                "8tVG0ciovvuzBgNZ1Se8rpkNCWcAL-dOL27XKsl9RbaM0wm4pDqW7bgHv43A0rrE",
            ),
        ),
        // A voice message is audio, with the recognised text.
        (
            "wechat/voice.xml",
            "voice",
            "我想查一下物流",
            typed(
                "audio/amr",
                wechat(
                    "audio",
                    "AXKrtbz4Dy5jWc0NfH_3JlHvEHxU8xkQd6nNqpvxZ8HHF3pYtCzmA8fA2ReV7Cb9",
                ),
            ),
        ),
        (
            "wechat/video.xml",
            "video",
            "",
            wechat(
                "video",
                "mUhK6tdeYmqg4yHBhiiRi3z5Z3P0MnPkW0GZ_Sp4LjDqnNs1Vb6zRyB_n0tCbFf2",
            ),
        ),
        // X's photo is its HTTPS URL, and its link leaves the text.
        (
            "x/message_media.json",
            "image",
            "Here's the receipt",
            url(
                "image",
                "https://ton.twitter.com/1.1/ton/data/dm/1803391999887766554/1803391980011223040/qP3sT9uV.jpg",
            ),
        ),
    ];
    for (path, kind, text, file) in cases {
        let message = only_message(read(platform_of(path), path));
        assert_eq!(message.kind, kind, "{path}");
        assert_eq!(message.text, text, "{path}");
        assert_eq!(message.from, sender(platform_of(path)), "{path}");
        assert_eq!(message.media, vec![file], "{path}");
    }
    // Their ids and times are read as a text message's are.
    let image = only_message(read(Platform::Whatsapp, "whatsapp/image.json"));
    assert_eq!(image.at_micros, 1_749_416_420_000_000);
    let image = only_message(read(Platform::Wechat, "wechat/image.xml"));
    assert_eq!(image.platform_message_id, "24611375979188432");
}

/// 8 cases: a message of another kind reads as a line of text, with no file.
#[test]
fn other_kinds_read_as_text() {
    let cases = [
        // A location: its name, address and coordinates.
        (
            "whatsapp/location.json",
            "location",
            "📍 Philz Coffee, 101 Forest Ave, Palo Alto, CA 94301, 37.44216251373291, -122.16153621673584",
        ),
        // Shared contacts: names and phones.
        (
            "whatsapp/contacts.json",
            "contacts",
            "👤 Barbara Johnson: +1 (940) 555-1234, +1 (650) 555-1234",
        ),
        // A button reply: the title tapped.
        ("whatsapp/interactive.json", "interactive", "Track my order"),
        // An unknown type is kept as an unsupported message, not an error.
        (
            "whatsapp/reaction.json",
            "reaction",
            "[unsupported message type: reaction]",
        ),
        ("line/sticker.json", "sticker", "[sticker]"),
        // A location: its title, address and coordinates.
        (
            "line/location.json",
            "location",
            "📍 LINE Corporation, 1-6-1 Yotsuya, Shinjuku-ku, Tokyo, 160-0004, Japan, 35.687574, 139.72922",
        ),
        // A location: its label and coordinates.
        (
            "wechat/location.xml",
            "location",
            "📍 广东省广州市天河区天河路208号, 23.134521, 113.358803",
        ),
        // A link: its title, description and URL.
        (
            "wechat/link.xml",
            "link",
            "🔗 退货政策\n30天无理由退货说明\nhttps://mp.weixin.qq.com/s/3kQ8nXcV2bL7mR1tYz9wPA",
        ),
    ];
    for (path, kind, text) in cases {
        let message = only_message(read(platform_of(path), path));
        assert_eq!(message.kind, kind, "{path}");
        assert_eq!(message.text, text, "{path}");
        assert_eq!(message.from, sender(platform_of(path)), "{path}");
        assert!(message.media.is_empty(), "{path}");
    }
}

/// 4 cases: following and unfollowing (LINE), subscribing and unsubscribing (WeChat) are
/// follows, with the platform's event id (WeChat's: the sender and the second).
#[test]
fn a_follow_and_an_unfollow_are_follows_of_the_sender() {
    let cases = [
        (
            "line/follow.json",
            true,
            1_719_579_900_000_000,
            "01J1JX3Q8R9S0T1V2W3X4Y5Z6A".to_owned(),
        ),
        (
            "line/unfollow.json",
            false,
            1_719_590_000_000_000,
            "01J1K6ZK2M3N4P5Q6R7S8T9V0W".to_owned(),
        ),
        (
            "wechat/subscribe.xml",
            true,
            1_719_579_900_000_000,
            format!("{OPENID}1719579900"),
        ),
        (
            "wechat/unsubscribe.xml",
            false,
            1_719_590_000_000_000,
            format!("{OPENID}1719590000"),
        ),
    ];
    for (path, followed, at_micros, event_id) in cases {
        assert_eq!(
            read(platform_of(path), path),
            vec![Incoming::Follow {
                user: sender(platform_of(path)),
                followed,
                at_micros,
                event_id: Some(event_id),
            }],
            "{path}"
        );
    }
}

/// 15 cases: a body for another account, the account's own messages, and kinds Parley does
/// not use say nothing.
#[test]
fn what_is_not_for_the_account_is_left_out() {
    let cases = [
        (
            "a WhatsApp value for another phone number",
            Platform::Whatsapp,
            edited("whatsapp/text.json", |value| {
                value["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] =
                    "109999999999999".into();
            }),
        ),
        (
            "a WhatsApp change of another field",
            Platform::Whatsapp,
            br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"event":"APPROVED","message_template_id":1234,"message_template_name":"order_update","message_template_language":"en_US","reason":"NONE"},"field":"message_template_status_update"}]}]}"#.to_vec(),
        ),
        (
            "the Messenger page's own echo",
            Platform::Messenger,
            fixture("messenger/echo.json"),
        ),
        (
            "a Messenger echo from the customer to the page (is_echo alone leaves it out)",
            Platform::Messenger,
            edited("messenger/echo.json", |value| {
                let event = &mut value["entry"][0]["messaging"][0];
                event["sender"]["id"] = PSID.into();
                event["recipient"]["id"] = "112233445566778".into();
            }),
        ),
        (
            "a Messenger read watermark (it names no message)",
            Platform::Messenger,
            fixture("messenger/read.json"),
        ),
        (
            "a Messenger event for another page",
            Platform::Messenger,
            edited("messenger/text.json", |value| {
                value["entry"][0]["messaging"][0]["recipient"]["id"] = "998877665544332".into();
            }),
        ),
        (
            "the LINE console's verify button (no events)",
            Platform::Line,
            fixture("line/verify_empty.json"),
        ),
        (
            "a LINE group message without a user id",
            Platform::Line,
            fixture("line/group_without_user.json"),
        ),
        (
            "a LINE body for another bot",
            Platform::Line,
            edited("line/text.json", |value| {
                value["destination"] = "Uffffffffffffffffffffffffffffffff".into();
            }),
        ),
        (
            "a WeChat event other than a subscription",
            Platform::Wechat,
            fixture("wechat/menu_click.xml"),
        ),
        (
            "a WeChat message for another official account",
            Platform::Wechat,
            String::from_utf8(fixture("wechat/text.xml"))
                .expect("UTF-8")
                .replace("gh_3ad31b2a7d66", "gh_000000000000")
                .into_bytes(),
        ),
        (
            "the X account's own message",
            Platform::X,
            fixture("x/own_message.json"),
        ),
        (
            "an X body for another subscribed user",
            Platform::X,
            edited("x/message_create.json", |value| {
                value["for_user_id"] = "44196397".into();
            }),
        ),
        (
            "X typing",
            Platform::X,
            br#"{"for_user_id":"1460389447283253248","direct_message_indicate_typing_events":[{"created_timestamp":"1718803300000","sender_id":"3001969357","target":{"recipient_id":"1460389447283253248"}}],"users":{}}"#.to_vec(),
        ),
        (
            "an X favourite",
            Platform::X,
            br#"{"for_user_id":"1460389447283253248","favorite_events":[{"id":"a7ba59eab0bfcba386f7acedac279542","created_at":"Mon Mar 26 16:33:26 +0000 2018","timestamp_ms":1522082006140}]}"#.to_vec(),
        ),
    ];
    for (what, platform, body) in cases {
        assert_eq!(read_body(platform, body), vec![], "{what}");
    }
}

/// 5 cases: each platform that signs its bodies (WeChat signs its query: `mod wechat`), and
/// LINE's empty body too.
#[test]
fn a_wrong_missing_garbled_or_stale_signature_is_refused() {
    for (path, header) in [
        ("whatsapp/text.json", "x-hub-signature-256"),
        ("messenger/text.json", "x-hub-signature-256"),
        ("line/text.json", "x-line-signature"),
        ("line/verify_empty.json", "x-line-signature"),
        ("x/message_create.json", "x-twitter-webhooks-signature"),
    ] {
        assert_signatures_are_checked(platform_of(path), path, header);
    }
}

/// 3 cases: a JSON platform's body that is not JSON.
#[test]
fn a_body_that_is_not_json_is_malformed() {
    for (platform, body) in [
        (
            Platform::Whatsapp,
            &b"{\"object\": \"whatsapp_business_account\", "[..],
        ),
        (Platform::Line, b"events"),
        (Platform::X, b"{\"for_user_id\":"),
    ] {
        let error = parse_body(platform, body.to_vec());
        assert!(
            matches!(&error, Err(HookError::Malformed(text)) if text.starts_with("body: not JSON")),
            "{platform:?}: {error:?}"
        );
    }
}

/// 19 cases: a body missing a field, or with one of the wrong type, is malformed at that
/// field's path, not a panic.
#[test]
fn malformed_bodies_name_the_field_at_fault() {
    let wechat = |path: &str, from: &str, to: &str| {
        String::from_utf8(fixture(path))
            .expect("UTF-8")
            .replace(from, to)
            .into_bytes()
    };
    let cases = [
        (
            Platform::Whatsapp,
            edited("whatsapp/text.json", |value| {
                value["object"] = "page".into()
            }),
            "object: not \"whatsapp_business_account\"",
        ),
        (
            Platform::Messenger,
            edited("messenger/text.json", |value| {
                if let Some(message) = value["entry"][0]["messaging"][0]["message"].as_object_mut()
                {
                    message.remove("mid");
                }
            }),
            "entry[0].messaging[0].message.mid: missing",
        ),
        (
            Platform::Messenger,
            edited("messenger/text.json", |value| {
                if let Some(event) = value["entry"][0]["messaging"][0].as_object_mut() {
                    event.remove("sender");
                }
            }),
            "entry[0].messaging[0].sender: missing",
        ),
        (
            Platform::Messenger,
            edited("messenger/text.json", |value| {
                value["entry"][0]["messaging"][0]["message"]["text"] = serde_json::json!({"t": 1});
            }),
            "entry[0].messaging[0].message.text: expected a string",
        ),
        (
            Platform::Messenger,
            edited("messenger/attachment.json", |value| {
                value["entry"][0]["messaging"][0]["message"]["attachments"][1]["payload"] =
                    "https://example.com".into();
            }),
            "entry[0].messaging[0].message.attachments[1].payload: expected an object",
        ),
        (
            Platform::Messenger,
            edited("messenger/text.json", |value| value["entry"] = 3.into()),
            "entry: expected an array",
        ),
        (
            Platform::Messenger,
            edited("messenger/text.json", |value| {
                value["object"] = "instagram".into()
            }),
            "object: not \"page\"",
        ),
        (Platform::Line, b"[]".to_vec(), "body: expected an object"),
        (
            Platform::Line,
            br#"{"destination":"U0123456789abcdef0123456789abcdef"}"#.to_vec(),
            "events: missing",
        ),
        (
            Platform::Line,
            edited("line/text.json", |value| {
                value["events"][0]["timestamp"] = "yesterday".into();
            }),
            "events[0].timestamp: expected a whole number",
        ),
        (
            Platform::Line,
            edited("line/file.json", |value| {
                value["events"][0]["message"]["fileName"] = 42.into();
            }),
            "events[0].message.fileName: expected a string",
        ),
        (
            Platform::Line,
            edited("line/text.json", |value| {
                value["events"][0]["source"] = serde_json::Value::Bool(false);
            }),
            "events[0].source: expected an object",
        ),
        (
            Platform::Wechat,
            wechat("wechat/text.xml", "<MsgId>24611375372931712</MsgId>\n", ""),
            "xml.MsgId: missing",
        ),
        (
            Platform::Wechat,
            wechat(
                "wechat/text.xml",
                "<CreateTime>1719580000</CreateTime>",
                "<CreateTime>soon</CreateTime>",
            ),
            "xml.CreateTime: expected a whole number",
        ),
        (
            Platform::Wechat,
            wechat("wechat/location.xml", "23.134521", "north"),
            "xml.Location_X: expected a number",
        ),
        (Platform::X, b"{}".to_vec(), "for_user_id: missing"),
        (
            Platform::X,
            edited("x/message_create.json", |value| {
                value["direct_message_events"][0]["created_timestamp"] = serde_json::json!([]);
            }),
            "direct_message_events[0].created_timestamp: expected a whole number",
        ),
        (
            Platform::X,
            edited("x/message_create.json", |value| {
                if let Some(create) =
                    value["direct_message_events"][0]["message_create"].as_object_mut()
                {
                    create.remove("sender_id");
                }
            }),
            "direct_message_events[0].message_create.sender_id: missing",
        ),
        (
            Platform::X,
            edited("x/message_create.json", |value| {
                value["users"][X_CUSTOMER]["name"] = 5.into();
            }),
            "users.3001969357.name: expected a string",
        ),
    ];
    for (platform, body, error) in cases {
        assert_eq!(
            parse_body(platform, body),
            Err(malformed(error)),
            "{platform:?}"
        );
    }
}

mod whatsapp {
    use super::*;

    const P: Platform = Platform::Whatsapp;

    #[test]
    fn a_delivered_status_is_a_receipt() {
        let receipt = only_receipt(read(P, "whatsapp/status_delivered.json"));
        assert_eq!(
            receipt,
            Receipt {
                platform_message_id: "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI1RjQ3MEQ5NkE2RjcxRDM4NDgA"
                    .to_owned(),
                status: ReceiptStatus::Delivered,
                at_micros: 1_749_416_800_000_000,
                recipient: WA_USER.to_owned(),
            }
        );
    }

    #[test]
    fn a_failed_status_carries_the_error_code_and_text() {
        let receipt = only_receipt(read(P, "whatsapp/status_failed.json"));
        assert_eq!(
            receipt.status,
            ReceiptStatus::Failed {
                code: "131047".to_owned(),
                text: "Re-engagement message: Message failed to send because more than 24 hours \
                       have passed since the customer last replied to this number."
                    .to_owned(),
            }
        );
        assert_eq!(receipt.recipient, WA_USER);
        assert_eq!(receipt.at_micros, 1_749_503_200_000_000);
    }

    #[test]
    fn sent_and_read_statuses_are_receipts_and_other_statuses_are_left_out() {
        for (status, expected) in [
            ("sent", Some(ReceiptStatus::Sent)),
            ("read", Some(ReceiptStatus::Read)),
            ("deleted", None),
        ] {
            let body = edited("whatsapp/status_delivered.json", |value| {
                value["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = status.into();
            });
            let items = read_body(P, body);
            let statuses: Vec<ReceiptStatus> = items
                .into_iter()
                .filter_map(|item| match item {
                    Incoming::Receipt(receipt) => Some(receipt.status),
                    _ => None,
                })
                .collect();
            assert_eq!(
                statuses,
                expected.into_iter().collect::<Vec<_>>(),
                "{status}"
            );
        }
    }

    #[test]
    fn the_subscription_check_answers_the_challenge_for_the_right_token() {
        let secrets = secrets(P);
        let check = |mode: &str, token: &str| HookRequest {
            query: pairs(&[
                ("hub.mode", mode),
                ("hub.verify_token", token),
                ("hub.challenge", "1158201444"),
            ]),
            ..HookRequest::default()
        };
        for platform in [Platform::Whatsapp, Platform::Messenger] {
            assert_eq!(
                verify_subscription(
                    platform,
                    &check("subscribe", "parley-verify-7Qm2"),
                    &secrets
                ),
                Ok(Challenge {
                    content_type: "text/plain",
                    body: "1158201444".to_owned(),
                })
            );
            assert_eq!(
                verify_subscription(
                    platform,
                    &check("subscribe", "parley-verify-7Qm3"),
                    &secrets
                ),
                Err(HookError::VerificationRefused)
            );
            assert_eq!(
                verify_subscription(
                    platform,
                    &check("unsubscribe", "parley-verify-7Qm2"),
                    &secrets
                ),
                Err(HookError::VerificationRefused)
            );
        }
    }

    #[test]
    fn a_subscription_check_without_its_parameters_is_malformed() {
        let request = HookRequest {
            query: pairs(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", "parley-verify-7Qm2"),
            ]),
            ..HookRequest::default()
        };
        assert_eq!(
            verify_subscription(P, &request, &secrets(P)),
            Err(malformed("hub.challenge: missing"))
        );
    }

    #[test]
    fn a_subscription_check_for_an_account_without_a_verify_token_is_not_configured() {
        let request = HookRequest {
            query: pairs(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", ""),
                ("hub.challenge", "1158201444"),
            ]),
            ..HookRequest::default()
        };
        assert_eq!(
            verify_subscription(P, &request, &Secrets::default()),
            Err(HookError::NotConfigured("verify_token"))
        );
    }

    #[test]
    fn a_signature_without_its_sha256_prefix_is_refused() {
        let mut without_prefix = signed(P, fixture("whatsapp/text.json"));
        for (name, value) in &mut without_prefix.headers {
            if name == "x-hub-signature-256" {
                *value = value.trim_start_matches("sha256=").to_owned();
            }
        }
        assert_eq!(
            verify(P, &without_prefix, &secrets(P)),
            Err(HookError::BadSignature)
        );
    }

    #[test]
    fn the_signature_header_name_is_matched_in_any_case() {
        let mut request = signed(P, fixture("whatsapp/text.json"));
        for (name, _) in &mut request.headers {
            if name == "x-hub-signature-256" {
                *name = "X-Hub-Signature-256".to_owned();
            }
        }
        assert_eq!(verify(P, &request, &secrets(P)), Ok(()));
    }

    #[test]
    fn an_account_without_an_app_secret_cannot_verify() {
        let request = signed(P, fixture("whatsapp/text.json"));
        assert_eq!(
            verify(P, &request, &Secrets::default()),
            Err(HookError::NotConfigured("app_secret"))
        );
    }

    #[test]
    fn a_message_without_a_sender_or_an_id_is_malformed_at_that_path() {
        for field in ["from", "id", "timestamp", "type"] {
            let body = edited("whatsapp/text.json", |value| {
                if let Some(message) =
                    value["entry"][0]["changes"][0]["value"]["messages"][0].as_object_mut()
                {
                    message.remove(field);
                }
            });
            assert_eq!(
                parse_body(P, body),
                Err(malformed(&format!(
                    "entry[0].changes[0].value.messages[0].{field}: missing"
                )))
            );
        }
    }

    #[test]
    fn fields_of_the_wrong_type_are_malformed_not_a_panic() {
        let cases: [(&str, serde_json::Value, &str); 5] = [
            (
                "timestamp",
                serde_json::json!({"s": 1}),
                "timestamp: expected a whole number",
            ),
            (
                "timestamp",
                "yesterday".into(),
                "timestamp: expected a whole number",
            ),
            ("id", serde_json::json!([1]), "id: expected a string"),
            ("text", "hello".into(), "text: expected an object"),
            ("type", serde_json::json!(7), "type: expected a string"),
        ];
        for (field, wrong, error) in cases {
            let body = edited("whatsapp/text.json", |value| {
                value["entry"][0]["changes"][0]["value"]["messages"][0][field] = wrong;
            });
            assert_eq!(
                parse_body(P, body),
                Err(malformed(&format!(
                    "entry[0].changes[0].value.messages[0].{error}"
                )))
            );
        }
        let body = edited("whatsapp/text.json", |value| {
            value["entry"][0]["changes"][0]["value"]["messages"] = "many".into();
        });
        assert_eq!(
            parse_body(P, body),
            Err(malformed(
                "entry[0].changes[0].value.messages: expected an array"
            ))
        );
        let body = edited("whatsapp/location.json", |value| {
            value["entry"][0]["changes"][0]["value"]["messages"][0]["location"]["latitude"] =
                serde_json::Value::Bool(true);
        });
        assert_eq!(
            parse_body(P, body),
            Err(malformed(
                "entry[0].changes[0].value.messages[0].location.latitude: expected a number"
            ))
        );
    }
}

mod messenger {
    use super::*;

    const P: Platform = Platform::Messenger;

    #[test]
    fn attachments_are_urls_of_their_kind() {
        let message = only_message(read(P, "messenger/attachment.json"));
        assert_eq!(message.kind, "image");
        assert_eq!(message.text, "");
        assert_eq!(message.from, sender(P));
        assert_eq!(message.media.len(), 2);
        assert_eq!(message.media[0].kind, "image");
        assert!(matches!(
            &message.media[0].source,
            MediaSource::Url(url) if url.starts_with("https://scontent.xx.fbcdn.net/v/t1.15752-9/449214337")
        ));
        assert_eq!(message.media[1].kind, "file");
        assert!(matches!(
            &message.media[1].source,
            MediaSource::Url(url) if url.contains("/invoice-8802.pdf?")
        ));
    }

    #[test]
    fn the_like_button_reads_as_a_thumbs_up_sticker() {
        let message = only_message(read(P, "messenger/like.json"));
        assert_eq!(message.kind, "sticker");
        assert_eq!(message.text, "👍");
        assert_eq!(message.media.len(), 1);
        assert_eq!(message.media[0].kind, "sticker");
    }

    #[test]
    fn a_location_attachment_reads_as_coordinates() {
        let body = br#"{"object":"page","entry":[{"id":"112233445566778","time":1719580200000,"messaging":[{"sender":{"id":"6945819215522014"},"recipient":{"id":"112233445566778"},"timestamp":1719580199000,"message":{"mid":"m_loc","attachments":[{"title":"Pinned Location","url":"https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps","type":"location","payload":{"coordinates":{"lat":48.8584,"long":2.2945}}}]}}]}]}"#;
        let message = only_message(read_body(P, body.to_vec()));
        assert_eq!(message.kind, "location");
        assert_eq!(message.text, "📍 Pinned Location, 48.8584, 2.2945");
    }

    #[test]
    fn a_delivery_is_a_receipt_for_each_mid_at_the_watermark() {
        let receipt = only_receipt(read(P, "messenger/delivery.json"));
        assert_eq!(
            receipt,
            Receipt {
                platform_message_id: "m_Ec4oT2mH3oS7Qh8r2xVzQv3bQbD0sV7m9wJ7Jk5K8dY2aR4uC1pN6eF3gH0iJ2kL4mN6oP8qR0sT2uV4wX6yZ".to_owned(),
                status: ReceiptStatus::Delivered,
                at_micros: 1_719_580_102_517_000,
                recipient: PSID.to_owned(),
            }
        );
    }
}

mod line {
    use super::*;

    const P: Platform = Platform::Line;

    #[test]
    fn line_has_no_subscription_check() {
        assert_eq!(
            verify_subscription(P, &HookRequest::default(), &secrets(P)),
            Err(HookError::VerificationRefused)
        );
    }
}

mod wechat {
    use super::*;
    use aes::Aes256;
    use cbc::cipher::block_padding::NoPadding;
    use cbc::cipher::{BlockEncryptMut, KeyIvInit};

    const P: Platform = Platform::Wechat;

    fn subscription_check(signature: &str) -> HookRequest {
        HookRequest {
            query: pairs(&[
                ("signature", signature),
                ("timestamp", WECHAT_TIMESTAMP),
                ("nonce", WECHAT_NONCE),
                ("echostr", "5837397520521790292"),
            ]),
            ..HookRequest::default()
        }
    }

    #[test]
    fn the_subscription_check_answers_echostr_for_a_known_signature() {
        // SHA-1 of "1320562132" + "1719580400" + "parleytoken", computed independently.
        let known = "89ecdd928a52637e492135b5e6d8a89518ae6584";
        assert_eq!(
            sha1_sorted(&["parleytoken", WECHAT_TIMESTAMP, WECHAT_NONCE]),
            known
        );
        assert_eq!(
            verify_subscription(P, &subscription_check(known), &secrets(P)),
            Ok(Challenge {
                content_type: "text/plain",
                body: "5837397520521790292".to_owned(),
            })
        );
        assert_eq!(
            verify_subscription(P, &subscription_check(&known.to_uppercase()), &secrets(P)),
            Ok(Challenge {
                content_type: "text/plain",
                body: "5837397520521790292".to_owned(),
            })
        );
    }

    #[test]
    fn the_subscription_check_refuses_a_wrong_signature() {
        let wrong = "89ecdd928a52637e492135b5e6d8a89518ae6585";
        assert_eq!(
            verify_subscription(P, &subscription_check(wrong), &secrets(P)),
            Err(HookError::VerificationRefused)
        );
        assert_eq!(
            verify_subscription(P, &subscription_check("not hex"), &secrets(P)),
            Err(HookError::VerificationRefused)
        );
        let mut missing = subscription_check(wrong);
        missing.query.retain(|(name, _)| name != "echostr");
        assert_eq!(
            verify_subscription(P, &missing, &secrets(P)),
            Err(malformed("echostr: missing"))
        );
    }

    #[test]
    fn a_post_is_checked_against_its_query_signature() {
        let secrets = secrets(P);
        let good = signed(P, fixture("wechat/text.xml"));
        assert_eq!(verify(P, &good, &secrets), Ok(()));

        let mut wrong = good.clone();
        for (name, value) in &mut wrong.query {
            if name == "nonce" {
                *value = "1320562133".to_owned();
            }
        }
        assert_eq!(verify(P, &wrong, &secrets), Err(HookError::BadSignature));

        for dropped in ["signature", "timestamp", "nonce"] {
            let mut missing = good.clone();
            missing.query.retain(|(name, _)| name != dropped);
            assert_eq!(
                verify(P, &missing, &secrets),
                Err(HookError::BadSignature),
                "{dropped}"
            );
        }
        assert_eq!(
            verify(P, &good, &Secrets::default()),
            Err(HookError::NotConfigured("token"))
        );
    }

    #[test]
    fn malformed_xml_is_malformed() {
        for body in [
            &b"<xml><ToUserName>gh_3ad31b2a7d66</ToUserName>"[..],
            b"not xml at all",
            b"<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY e \"boom\">]><xml><Content>&e;</Content></xml>",
            b"<message><MsgType>text</MsgType></message>",
            b"\xff\xfe<xml/>",
        ] {
            assert!(
                matches!(parse_body(P, body.to_vec()), Err(HookError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    const AES_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    const APP_ID: &str = "wx5823bf96d3bd56c7";

    fn encrypted_text(body: &str) -> String {
        let start = body.find("<Encrypt><![CDATA[").expect("an Encrypt element") + 18;
        let end = body[start..].find("]]>").expect("its end") + start;
        body[start..end].to_owned()
    }

    /// The request WeChat sends in safe mode for `body` (the outer `<xml>` with `Encrypt`).
    fn safe_request(body: String) -> HookRequest {
        let msg_signature = sha1_sorted(&[
            "parleytoken",
            WECHAT_TIMESTAMP,
            WECHAT_NONCE,
            &encrypted_text(&body),
        ]);
        safe_mode(signed(P, body.into_bytes()), msg_signature)
    }

    /// Safe mode's scheme, written out: 16 random bytes, the length, the XML and the AppID,
    /// padded to 32 bytes and encrypted with AES-256-CBC.
    fn encrypt(xml: &[u8], app_id: &str) -> String {
        let key = lenient_key();
        let mut plain = b"0123456789abcdef".to_vec();
        plain.extend_from_slice(&u32::try_from(xml.len()).expect("small").to_be_bytes());
        plain.extend_from_slice(xml);
        plain.extend_from_slice(app_id.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(u8::try_from(pad).expect("small"), pad));
        let ciphertext = cbc::Encryptor::<Aes256>::new_from_slices(&key, &key[..16])
            .expect("a 32-byte key")
            .encrypt_padded_vec_mut::<NoPadding>(&plain);
        BASE64.encode(ciphertext)
    }

    /// The key: the 43 characters and "=" decoded, allowing the last character's spare bits.
    fn lenient_key() -> Vec<u8> {
        use base64::alphabet;
        use base64::engine::{GeneralPurpose, GeneralPurposeConfig};
        let engine = GeneralPurpose::new(
            &alphabet::STANDARD,
            GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let key = engine.decode(format!("{AES_KEY}=")).expect("a valid key");
        assert_eq!(key.len(), 32);
        key
    }

    fn envelope(encrypted: &str) -> String {
        format!(
            "<xml>\n    <ToUserName><![CDATA[gh_3ad31b2a7d66]]></ToUserName>\n    <Encrypt><![CDATA[{encrypted}]]></Encrypt>\n</xml>\n"
        )
    }

    #[test]
    fn safe_mode_decrypts_a_body_encrypted_elsewhere() {
        // Made with another implementation of the scheme (Python's `cryptography`).
        let body = String::from_utf8(fixture("wechat/safe_text.xml")).expect("UTF-8");
        let request = safe_request(body);
        let secrets = secrets(P);
        assert_eq!(verify(P, &request, &secrets), Ok(()));
        let message = only_message(parse(&account(P), &secrets, &request).expect("decrypts"));
        assert_eq!(message, only_message(read(P, "wechat/text.xml")));
    }

    #[test]
    fn safe_mode_round_trips_every_fixture() {
        let secrets = secrets(P);
        for path in [
            "wechat/text.xml",
            "wechat/image.xml",
            "wechat/voice.xml",
            "wechat/subscribe.xml",
        ] {
            let request = safe_request(envelope(&encrypt(&fixture(path), APP_ID)));
            assert_eq!(verify(P, &request, &secrets), Ok(()), "{path}");
            assert_eq!(
                parse(&account(P), &secrets, &request),
                Ok(read(P, path)),
                "{path}"
            );
        }
    }

    #[test]
    fn safe_mode_refuses_a_changed_body_or_a_missing_message_signature() {
        let secrets = secrets(P);
        let body = String::from_utf8(fixture("wechat/safe_text.xml")).expect("UTF-8");
        let good = safe_request(body.clone());

        let mut changed = good.clone();
        let at = changed
            .body
            .iter()
            .position(|byte| *byte == b'+')
            .expect("a '+'");
        changed.body[at] = b'/';
        assert_eq!(verify(P, &changed, &secrets), Err(HookError::BadSignature));

        let mut missing = good.clone();
        missing.query.retain(|(name, _)| name != "msg_signature");
        assert_eq!(verify(P, &missing, &secrets), Err(HookError::BadSignature));

        let mut wrong = good;
        for (name, value) in &mut wrong.query {
            if name == "msg_signature" {
                *value = sha1_sorted(&["parleytoken", WECHAT_TIMESTAMP, WECHAT_NONCE, "x"]);
            }
        }
        assert_eq!(verify(P, &wrong, &secrets), Err(HookError::BadSignature));
    }

    #[test]
    fn safe_mode_refuses_a_body_for_another_app() {
        let request = safe_request(envelope(&encrypt(
            &fixture("wechat/text.xml"),
            "wx0000000000000000",
        )));
        assert_eq!(
            parse(&account(P), &secrets(P), &request),
            Err(malformed("Encrypt: the AppID is not this account's"))
        );
    }

    #[test]
    fn safe_mode_refuses_ciphertext_that_is_not_whole_blocks_or_not_base64() {
        let secrets = secrets(P);
        for encrypted in ["AAAA", "not base64!", "", "AAAAAAAAAAAAAAAAAAAAAA=="] {
            let request = safe_request(envelope(encrypted));
            assert!(
                matches!(
                    parse(&account(P), &secrets, &request),
                    Err(HookError::Malformed(_))
                ),
                "{encrypted:?}"
            );
        }
    }

    #[test]
    fn safe_mode_needs_the_encoding_aes_key() {
        let request =
            safe_request(String::from_utf8(fixture("wechat/safe_text.xml")).expect("UTF-8"));
        let mut without_key = secrets(P);
        without_key.0.remove("encoding_aes_key");
        assert_eq!(
            parse(&account(P), &without_key, &request),
            Err(HookError::NotConfigured("encoding_aes_key"))
        );
    }
}

mod x {
    use super::*;

    const P: Platform = Platform::X;

    #[test]
    fn the_crc_check_answers_a_known_response_token() {
        let request = HookRequest {
            query: pairs(&[("crc_token", RFC4231_DATA)]),
            ..HookRequest::default()
        };
        let secrets = Secrets(
            [("consumer_secret".to_owned(), RFC4231_KEY.to_owned())]
                .into_iter()
                .collect(),
        );
        assert_eq!(
            verify_subscription(P, &request, &secrets),
            Ok(Challenge {
                content_type: "application/json",
                body: format!("{{\"response_token\":\"sha256={RFC4231_BASE64}\"}}"),
            })
        );
    }

    #[test]
    fn the_crc_check_signs_with_the_accounts_consumer_secret() {
        let request = HookRequest {
            query: pairs(&[("crc_token", "yi9TAhAPtbqMCv5ig7ZWqbSv4CNsMhQ+C3ORBoelGs8=")]),
            ..HookRequest::default()
        };
        let expected = BASE64.encode(hmac_sha256(
            &secret(P, "consumer_secret"),
            b"yi9TAhAPtbqMCv5ig7ZWqbSv4CNsMhQ+C3ORBoelGs8=",
        ));
        let challenge = verify_subscription(P, &request, &secrets(P)).expect("answers");
        let body: serde_json::Value = serde_json::from_str(&challenge.body).expect("JSON");
        assert_eq!(body["response_token"], format!("sha256={expected}"));
        assert_eq!(
            verify_subscription(P, &HookRequest::default(), &secrets(P)),
            Err(malformed("crc_token: missing"))
        );
    }

    #[test]
    fn a_video_is_its_best_mp4_variant() {
        let body = edited("x/message_media.json", |value| {
            let media = &mut value["direct_message_events"][0]["message_create"]["message_data"]["attachment"]
                ["media"];
            media["type"] = "video".into();
            media["video_info"] = serde_json::json!({
                "aspect_ratio": [9, 16],
                "duration_millis": 10_000,
                "variants": [
                    {"bitrate": 632_000, "content_type": "video/mp4", "url": "https://video.twimg.com/dm_video/1/vid/320x568/low.mp4"},
                    {"content_type": "application/x-mpegURL", "url": "https://video.twimg.com/dm_video/1/pl/list.m3u8"},
                    {"bitrate": 2_176_000, "content_type": "video/mp4", "url": "https://video.twimg.com/dm_video/1/vid/720x1280/high.mp4"}
                ]
            });
        });
        let message = only_message(read_body(P, body));
        assert_eq!(message.kind, "video");
        assert_eq!(
            message.media,
            vec![MediaRef {
                content_type: Some("video/mp4".to_owned()),
                ..media(
                    "video",
                    MediaSource::Url(
                        "https://video.twimg.com/dm_video/1/vid/720x1280/high.mp4".to_owned()
                    )
                )
            }]
        );
    }
}

/// Every recorded body, cut short and mutated a thousand ways, through `verify` and `parse`:
/// each answers, none panics, and no error's text holds a secret.
mod fuzz {
    use super::*;

    fn fixtures(platform: Platform) -> Vec<(String, Vec<u8>)> {
        let dir = format!(
            "{}/tests/fixtures/{}",
            env!("CARGO_MANIFEST_DIR"),
            platform.name()
        );
        let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{dir}: {error}"))
            .map(|entry| {
                let path = entry.expect("a directory entry").path();
                let bytes = std::fs::read(&path).expect("readable");
                (path.display().to_string(), bytes)
            })
            .collect();
        found.sort();
        assert!(!found.is_empty(), "{dir} has fixtures");
        found
    }

    /// Version `n` of `body`: the first 500 cut it at evenly spaced lengths, the rest change one
    /// to three bytes to bytes that matter to JSON and XML.
    fn version(body: &[u8], n: usize) -> Vec<u8> {
        if n < 500 {
            return body[..body.len() * n / 500].to_vec();
        }
        const NASTY: &[u8] = b"\"{}[]<>/:,0-9.eE\\!&;]\x00\xff\xc3 tfn";
        let mut state = (n as u64)
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut mutated = body.to_vec();
        for _ in 0..(1 + n % 3) {
            let at = next() % mutated.len();
            mutated[at] = NASTY[next() % NASTY.len()];
        }
        mutated
    }

    fn assert_no_secret(platform: Platform, result: Result<(), HookError>) {
        if let Err(error) = result {
            let text = error.to_string();
            for value in secrets(platform).0.values() {
                assert!(!text.contains(value.as_str()), "{text}");
            }
        }
    }

    fn shake(platform: Platform, request_for: impl Fn(Vec<u8>) -> HookRequest, body: &[u8]) {
        let account = account(platform);
        let secrets = secrets(platform);
        for n in 0..1000 {
            let request = request_for(version(body, n));
            assert_no_secret(platform, verify(platform, &request, &secrets));
            assert_no_secret(platform, parse(&account, &secrets, &request).map(|_| ()));
        }
    }

    #[test]
    fn every_parser_survives_a_thousand_broken_versions_of_every_fixture() {
        for platform in Platform::ALL {
            for (path, body) in fixtures(platform) {
                let done = std::panic::catch_unwind(|| {
                    shake(platform, |body| signed(platform, body), &body);
                });
                assert!(done.is_ok(), "{path} made a parser panic");
            }
        }
    }

    #[test]
    fn safe_mode_survives_a_thousand_broken_versions_of_its_envelope() {
        let body = fixture("wechat/safe_text.xml");
        shake(
            Platform::Wechat,
            |body| safe_mode(signed(Platform::Wechat, body), "0".repeat(40)),
            &body,
        );
    }

    #[test]
    fn safe_mode_survives_a_thousand_broken_ciphertexts_that_pass_the_signature() {
        // The message signature is recomputed for each version, so each reaches decryption.
        let body = String::from_utf8(fixture("wechat/safe_text.xml")).expect("UTF-8");
        let start = body.find("<![CDATA[ph").expect("the Encrypt text") + 9;
        let end = body[start..].find("]]>").expect("its end") + start;
        let encrypted = body.as_bytes()[start..end].to_vec();
        let account = account(Platform::Wechat);
        let secrets = secrets(Platform::Wechat);
        for n in 0..1000 {
            let broken = String::from_utf8_lossy(&version(&encrypted, n)).replace("]]>", "");
            let request = {
                let envelope = format!("{}{}{}", &body[..start], broken, &body[end..]);
                let msg_signature =
                    sha1_sorted(&["parleytoken", WECHAT_TIMESTAMP, WECHAT_NONCE, &broken]);
                safe_mode(
                    signed(Platform::Wechat, envelope.into_bytes()),
                    msg_signature,
                )
            };
            assert_no_secret(
                Platform::Wechat,
                verify(Platform::Wechat, &request, &secrets),
            );
            assert_no_secret(
                Platform::Wechat,
                parse(&account, &secrets, &request).map(|_| ()),
            );
        }
    }
}
