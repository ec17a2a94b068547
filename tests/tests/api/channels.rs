//! Channel accounts and the platforms' own webhooks, end to end: an admin connects an account
//! of each platform (pointed at a local stand-in of the platform's API), the platform's
//! recorded webhook arrives signed, a ticket opens for the customer, an agent replies and the
//! dispatcher sends it through the account; refusals, retries and receipts; bad signatures,
//! malformed and oversized bodies, and redeliveries.

use crate::helpers::{Backend, TestApp, expect, problem, spawn_app_with};
use crate::live::EventStream;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parley_channels::Platform;
use parley_channels::standin::{Behaviour, StandIn};
use serde_json::{Value, json};
use sha2::Sha256;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../channels/tests/fixtures");

/// The platform ids the recorded webhooks name.
fn platform_ids(platform: Platform) -> Value {
    match platform {
        Platform::Whatsapp => json!({"phone_number_id": "106540352242922",
                                     "display_phone_number": "15550783881"}),
        Platform::Messenger => json!({"page_id": "112233445566778"}),
        Platform::Line => json!({"channel_id": "2005123456",
                                 "bot_user_id": "U0123456789abcdef0123456789abcdef"}),
        Platform::Wechat => json!({"app_id": "wx5823bf96d3bd56c7",
                                   "original_id": "gh_3ad31b2a7d66"}),
        Platform::X => json!({"user_id": "1460389447283253248"}),
    }
}

fn secret(platform: Platform, name: &str) -> String {
    format!("{}-{name}-s3cr3t", platform.name())
}

fn secrets(platform: Platform) -> Value {
    let mut map = serde_json::Map::new();
    for (name, required) in platform.secret_names() {
        if *required {
            map.insert((*name).to_owned(), secret(platform, name).into());
        }
    }
    Value::Object(map)
}

/// A recorded webhook body, its times moved to now (so the reply windows are open).
fn fixture(path: &str) -> String {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{path}"))
        .unwrap_or_else(|error| panic!("{path}: {error}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    let (secs, millis) = (now.as_secs().to_string(), now.as_millis().to_string());
    // Ten digits between 2015 and 2033 are seconds; thirteen are milliseconds.
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_number = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit());
        if !starts_number {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let end = (i..bytes.len())
            .find(|&j| !bytes[j].is_ascii_digit())
            .unwrap_or(bytes.len());
        let digits = &text[i..end];
        let replaced = match digits.len() {
            10 if ("1420000000".."2000000000").contains(&digits) => secs.as_str(),
            13 if ("1420000000000".."2000000000000").contains(&digits) => millis.as_str(),
            _ => digits,
        };
        out.extend_from_slice(replaced.as_bytes());
        i = end;
    }
    String::from_utf8(out).expect("the fixture is UTF-8")
}

fn hmac_sha256(key: &str, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key fits");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook request as the platform signs it: its headers and query string.
fn signed(platform: Platform, body: &str) -> (Vec<(&'static str, String)>, String) {
    match platform {
        Platform::Whatsapp | Platform::Messenger => (
            vec![(
                "x-hub-signature-256",
                format!(
                    "sha256={}",
                    hex(&hmac_sha256(
                        &secret(platform, "app_secret"),
                        body.as_bytes()
                    ))
                ),
            )],
            String::new(),
        ),
        Platform::Line => (
            vec![(
                "x-line-signature",
                base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
                    &secret(platform, "channel_secret"),
                    body.as_bytes(),
                )),
            )],
            String::new(),
        ),
        Platform::Wechat => (Vec::new(), wechat_query(&secret(platform, "token"))),
        Platform::X => (
            vec![(
                "x-twitter-webhooks-signature",
                format!(
                    "sha256={}",
                    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
                        &secret(platform, "consumer_secret"),
                        body.as_bytes()
                    ))
                ),
            )],
            String::new(),
        ),
    }
}

/// WeChat's signature: SHA-1 of the sorted token, timestamp and nonce.
fn wechat_query(token: &str) -> String {
    use sha1::Digest as _;
    let (timestamp, nonce) = ("1719580000", "740158935");
    let mut parts = [token, timestamp, nonce];
    parts.sort();
    let signature = hex(&sha1::Sha1::digest(parts.concat().as_bytes()));
    format!("?signature={signature}&timestamp={timestamp}&nonce={nonce}")
}

async fn post_hook(
    app: &TestApp,
    hook: &str,
    headers: &[(&str, String)],
    query: &str,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{hook}{query}", app.address))
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    request.send().await.expect("the server answers")
}

/// Connects an account of `platform` whose API is the stand-in; its webhook path.
async fn connect(app: &TestApp, standin: &StandIn, platform: Platform) -> (String, String) {
    let created = app
        .post_as(
            &app.admin,
            "/api/v1/channels",
            &json!({
                "platform": platform.name(),
                "name": format!("{} support", platform.name()),
                "platform_ids": platform_ids(platform),
                "api_base": standin.base_url(),
                "secrets": secrets(platform),
            }),
        )
        .await;
    let created = expect(created, 201).await;
    let text = created.to_string();
    for (name, _) in platform.secret_names() {
        assert!(
            !text.contains(&secret(platform, name)),
            "a secret's value is never answered"
        );
    }
    let channel = &created["channel"];
    let id = channel["channel_id"].as_str().expect("an id").to_owned();
    // A path, or a URL under the server's public address when it has one.
    let path = format!("/hooks/{}/{id}", platform.name());
    let url = channel["webhook_url"].as_str().unwrap_or_default();
    assert!(url.ends_with(&path), "{url}");
    (id, path)
}

/// Reads the agent's stream until an event of `event_type` (for which `matches` holds).
async fn until(
    stream: &mut EventStream,
    event_type: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let event = stream.next().await;
        if event["type"] == event_type && matches(&event) {
            return event;
        }
    }
}

async fn ticket_events(app: &TestApp, agent: &str, stream: &str) -> Vec<Value> {
    let id = stream.trim_start_matches("ticket-");
    let page = expect(
        app.get_as(agent, &format!("/api/v1/tickets/{id}/events"))
            .await,
        200,
    )
    .await;
    page["events"].as_array().cloned().unwrap_or_default()
}

fn count(events: &[Value], event_type: &str) -> usize {
    events
        .iter()
        .filter(|e| e["type"] == event_type || e["event_type"] == event_type)
        .count()
}

async fn serve(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |config| config.dispatch_backoff_ms = 20).await
}

/// A WhatsApp customer writes, the ticket opens, redeliveries change nothing, the agent's
/// replies go out (refused, retried, delivered) and receipts come back.
async fn a_whatsapp_conversation_round_trip(backend: Backend) {
    let Some(app) = serve(backend).await else {
        return;
    };
    let standin = StandIn::start();
    let platform = Platform::Whatsapp;
    let (channel_id, hook) = connect(&app, &standin, platform).await;
    let (_, agent) = app.support_agent().await;

    // Meta's subscription check.
    let verify = |token: &str| {
        format!("{hook}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444")
    };
    let wrong = app
        .client
        .get(format!("{}{}", app.address, verify("nope")))
        .send()
        .await
        .expect("answers");
    problem(wrong, 403, "forbidden").await;
    let right = app
        .client
        .get(format!(
            "{}{}",
            app.address,
            verify(&secret(platform, "verify_token"))
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(right.status(), 200);
    assert_eq!(right.text().await.expect("a body"), "1158201444");

    let mut stream = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    let body = fixture("whatsapp/text.json");
    let (headers, query) = signed(platform, &body);

    // Refused without a valid signature, or with a body that is not Meta's; nothing recorded.
    let forged = post_hook(
        &app,
        &hook,
        &[("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))],
        "",
        &body,
    )
    .await;
    problem(forged, 401, "unauthorized").await;
    let unsigned = post_hook(&app, &hook, &[], "", &body).await;
    problem(unsigned, 401, "unauthorized").await;
    let garbage = "{\"object\": 5}";
    let (garbage_headers, _) = signed(platform, garbage);
    problem(
        post_hook(&app, &hook, &garbage_headers, "", garbage).await,
        400,
        "bad-request",
    )
    .await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let (huge_headers, _) = signed(platform, &huge);
    let oversized = post_hook(&app, &hook, &huge_headers, "", &huge).await;
    assert_eq!(oversized.status(), 413);
    let other = format!("/hooks/whatsapp/{}", uuid::Uuid::new_v4());
    problem(
        post_hook(&app, &other, &headers, "", &body).await,
        404,
        "not-found",
    )
    .await;

    // The real one: answered once recorded; the ticket opens for the customer.
    assert_eq!(
        post_hook(&app, &hook, &headers, &query, &body)
            .await
            .status(),
        200
    );
    let created = until(&mut stream, "TicketCreated", |_| true).await;
    let ticket = created["stream"].as_str().expect("a stream").to_owned();
    let data = &created["data"];
    assert_eq!(data["description"], "Hi, my order #8802 hasn't arrived yet");
    assert_eq!(data["channel_info"]["account_id"], channel_id.as_str());
    assert_eq!(data["channel_info"]["customer_handle"], "16505551234");
    assert_eq!(data["source"]["channel"], "whatsapp");
    // A redelivery of the same message, and a second message, continue it.
    assert_eq!(
        post_hook(&app, &hook, &headers, &query, &body)
            .await
            .status(),
        200
    );
    let second = body
        .replace(
            "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQUVBNjQ4MDk0RjI5NDg4QzE1NQA=",
            "wamid.second",
        )
        .replace("hasn't arrived yet", "is late");
    let (second_headers, _) = signed(platform, &second);
    for _ in 0..2 {
        assert_eq!(
            post_hook(&app, &hook, &second_headers, "", &second)
                .await
                .status(),
            200
        );
    }
    let continued = until(&mut stream, "CustomerMessageReceived", |e| {
        e["stream"] == ticket.as_str()
    })
    .await;
    assert_eq!(continued["data"]["body"], "Hi, my order #8802 is late");

    // A photo: fetched from WhatsApp (media id, then its URL, with the token) into the file
    // store, and attached to the customer's message; agents download it from Parley.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    standin.put_media("1003383421387256", png.to_vec(), "image/jpeg");
    let photo = fixture("whatsapp/image.json");
    let (photo_headers, _) = signed(platform, &photo);
    assert_eq!(
        post_hook(&app, &hook, &photo_headers, "", &photo)
            .await
            .status(),
        200
    );
    let with_photo = until(&mut stream, "CustomerMessageReceived", |e| {
        e["stream"] == ticket.as_str() && e["data"]["body"] == "This is the box I got"
    })
    .await;
    let attachment = &with_photo["data"]["attachments"][0];
    assert_eq!(
        attachment["content_type"], "image/png",
        "sniffed, not the platform's claim"
    );
    let file_id = attachment["file_id"].as_str().expect("stored in Parley");
    let file = app
        .get_as(
            &agent,
            &format!(
                "/api/v1/files/{file_id}?position={}",
                with_photo["position"]
            ),
        )
        .await;
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.bytes().await.expect("the bytes").as_ref(),
        png.as_slice()
    );
    // A photo WhatsApp no longer has: the message stays, its attachment says why.
    let lost = photo
        .replace("1003383421387256", "999999")
        .replace("QUIyNTc4NzlFQ0M5QjAwRjVGQQA=", "lost")
        .replace("This is the box I got", "And this one");
    let (lost_headers, _) = signed(platform, &lost);
    assert_eq!(
        post_hook(&app, &hook, &lost_headers, "", &lost)
            .await
            .status(),
        200
    );
    let kept = until(&mut stream, "CustomerMessageReceived", |e| {
        e["stream"] == ticket.as_str() && e["data"]["body"] == "And this one"
    })
    .await;
    let unavailable = &kept["data"]["attachments"][0];
    assert!(unavailable["file_id"].is_null());
    assert!(
        unavailable["unavailable"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "{unavailable}"
    );

    // The agent replies: the dispatcher sends it through the account.
    let ticket_id = ticket.trim_start_matches("ticket-").to_owned();
    let reply = |text: &str| {
        let app = &app;
        let agent = agent.clone();
        let path = format!("/api/v1/tickets/{ticket_id}/replies");
        let text = text.to_owned();
        async move {
            expect(
                app.post_as(&agent, &path, &json!({"body": text})).await,
                201,
            )
            .await
        }
    };
    let first = reply("It ships tomorrow").await;
    assert_eq!(first["delivery"], "pending");
    let delivered = until(&mut stream, "OutboundReplyDelivered", |e| {
        e["data"]["reply_id"] == first["id"]
    })
    .await;
    let wamid = delivered["data"]["platform_message_id"]
        .as_str()
        .expect("the platform's id")
        .to_owned();
    assert_eq!(delivered["data"]["attempts"], 1);
    let sent = standin.sent();
    let send = sent
        .iter()
        .find(|s| s.message_id.as_deref() == Some(wamid.as_str()))
        .expect("the stand-in got it");
    assert_eq!(send.recipient, "16505551234");
    assert_eq!(send.text, "It ships tomorrow");
    assert_eq!(
        send.authorization.as_deref(),
        Some(format!("Bearer {}", secret(platform, "access_token")).as_str())
    );

    // A receipt: read.
    let read = fixture("whatsapp/status_delivered.json").replace("\"delivered\"", "\"read\"");
    let read = replace_status_id(&read, &wamid);
    let (read_headers, _) = signed(platform, &read);
    assert_eq!(
        post_hook(&app, &hook, &read_headers, "", &read)
            .await
            .status(),
        200
    );
    let receipt = until(&mut stream, "OutboundReplyReceipt", |_| true).await;
    assert_eq!(receipt["data"]["status"], "read");

    // The platform refuses (its own window error): the reply fails with its code.
    standin.script("16505551234", vec![Behaviour::Refuse]);
    let refused = reply("Are you there?").await;
    let failed = until(&mut stream, "OutboundReplyFailed", |e| {
        e["data"]["reply_id"] == refused["id"]
    })
    .await;
    assert_eq!(failed["data"]["code"], "131047");
    assert_eq!(failed["data"]["attempts"], 1);

    // Passing failures are sent again: a 500, then a 429 with Retry-After, then accepted.
    standin.script(
        "16505551234",
        vec![
            Behaviour::ServerError,
            Behaviour::TooManyRequests {
                retry_after_secs: 1,
            },
            Behaviour::Accept,
        ],
    );
    let retried = reply("Sorry for the wait").await;
    let delivered = until(&mut stream, "OutboundReplyDelivered", |e| {
        e["data"]["reply_id"] == retried["id"]
    })
    .await;
    assert_eq!(delivered["data"]["attempts"], 3);
    // Failing every time: failed after five sends, with the last error.
    standin.script("16505551234", vec![Behaviour::ServerError]);
    let doomed = reply("One more try").await;
    let failed = until(&mut stream, "OutboundReplyFailed", |e| {
        e["data"]["reply_id"] == doomed["id"]
    })
    .await;
    assert_eq!(failed["data"]["attempts"], 5);

    // The ticket's events tell the story, with the dispatcher's outcome caused by the request.
    let events = ticket_events(&app, &agent, &ticket).await;
    assert_eq!(
        count(&events, "CustomerMessageReceived"),
        3,
        "the second message and two photos: redeliveries append nothing"
    );
    let requested = events
        .iter()
        .find(|e| {
            e["event_type"] == "OutboundReplyRequested" && e["data"]["reply_id"] == first["id"]
        })
        .expect("the request");
    let outcome = events
        .iter()
        .find(|e| {
            e["event_type"] == "OutboundReplyDelivered" && e["data"]["reply_id"] == first["id"]
        })
        .expect("the outcome");
    assert_eq!(outcome["causation_id"], requested["event_id"]);
    assert_eq!(outcome["actor"]["id"], "reaction:dispatcher");
    assert_eq!(outcome["request_id"], requested["request_id"]);
    assert!(outcome["correlation_id"].is_string());
    assert_eq!(outcome["data"]["platform_message_id"], wamid.as_str());
}

/// The platform's id of a reply in a recorded status webhook replaced by `id`.
fn replace_status_id(body: &str, id: &str) -> String {
    let mut value: Value = serde_json::from_str(body).expect("JSON");
    value["entry"][0]["changes"][0]["value"]["statuses"][0]["id"] = id.into();
    value.to_string()
}

/// Every other platform: its check (where it has one), its recorded text message opening a
/// ticket, and a reply sent through its API.
async fn every_platform_opens_tickets_and_sends_replies(backend: Backend) {
    let Some(app) = serve(backend).await else {
        return;
    };
    let standin = StandIn::start();
    let (_, agent) = app.support_agent().await;
    let mut stream = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    for (platform, path, customer) in [
        (
            Platform::Messenger,
            "messenger/text.json",
            "6945819215522014",
        ),
        (
            Platform::Line,
            "line/text.json",
            "U4af4980629b8e2f3c6a1d5e7f9b0c2d4",
        ),
        (
            Platform::Wechat,
            "wechat/text.xml",
            "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        ),
        (Platform::X, "x/message_create.json", "3001969357"),
    ] {
        let (channel_id, hook) = connect(&app, &standin, platform).await;
        let body = fixture(path);
        let (headers, query) = signed(platform, &body);
        let answered = post_hook(&app, &hook, &headers, &query, &body).await;
        assert_eq!(answered.status(), 200, "{}", platform.name());
        if platform == Platform::Wechat {
            assert_eq!(answered.text().await.expect("a body"), "success");
        }
        let created = until(&mut stream, "TicketCreated", |e| {
            e["data"]["channel_info"]["account_id"] == channel_id.as_str()
        })
        .await;
        assert_eq!(created["data"]["channel_info"]["customer_handle"], customer);
        let ticket_id = created["stream"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("ticket-")
            .to_owned();
        let reply = expect(
            app.post_as(
                &agent,
                &format!("/api/v1/tickets/{ticket_id}/replies"),
                &json!({"body": "On it"}),
            )
            .await,
            201,
        )
        .await;
        let delivered = until(&mut stream, "OutboundReplyDelivered", |e| {
            e["data"]["reply_id"] == reply["id"]
        })
        .await;
        assert!(
            delivered["data"]["platform_message_id"].is_string(),
            "{}",
            platform.name()
        );
        let sent = standin.sent();
        let send = sent
            .iter()
            .rev()
            .find(|s| s.platform == platform)
            .expect("the stand-in got it");
        assert_eq!(send.text, "On it", "{}", platform.name());
        if platform == Platform::Line {
            // The message's reply token was fresh: the reply API took it.
            assert_eq!(send.recipient, "38ef843bde154d9b91c21320ffd17a0f");
        } else {
            assert_eq!(send.recipient, customer, "{}", platform.name());
        }
    }
    // X's CRC check and WeChat's echo answer with the account's secrets.
    let (_, hook) = connect(&app, &standin, Platform::X).await;
    let crc = app
        .client
        .get(format!("{}{hook}?crc_token=challenge-1", app.address))
        .send()
        .await
        .expect("answers");
    let crc = expect(crc, 200).await;
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        &secret(Platform::X, "consumer_secret"),
        b"challenge-1",
    ));
    assert_eq!(crc["response_token"], format!("sha256={expected}"));
    let (_, hook) = connect(&app, &standin, Platform::Wechat).await;
    let echo = app
        .client
        .get(format!(
            "{}{hook}{}&echostr=hello-wechat",
            app.address,
            wechat_query(&secret(Platform::Wechat, "token"))
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(echo.text().await.expect("a body"), "hello-wechat");
}

/// Admins manage accounts: listed and read without secrets, changed, secrets rotated (a
/// signature with the old secret is refused at once), removed (its hook answers 404).
async fn admins_manage_channel_accounts(backend: Backend) {
    let Some(app) = serve(backend).await else {
        return;
    };
    let standin = StandIn::start();
    let platform = Platform::Line;
    let (id, hook) = connect(&app, &standin, platform).await;
    let (_, agent) = app.support_agent().await;
    problem(
        app.get_as(&agent, "/api/v1/channels").await,
        403,
        "forbidden",
    )
    .await;
    // Refused: a missing secret, an unknown one, an unknown platform id.
    for (body, detail) in [
        (
            json!({"platform": "line", "name": "x", "platform_ids": platform_ids(platform), "secrets": {"channel_secret": "a"}}),
            "secrets.access_token",
        ),
        (
            json!({"platform": "line", "name": "x", "platform_ids": platform_ids(platform), "secrets": {"channel_secret": "a", "access_token": "b", "app_secret": "c"}}),
            "secrets.app_secret",
        ),
        (
            json!({"platform": "line", "name": "x", "platform_ids": {"page_id": "1"}, "secrets": {}}),
            "platform_ids.page_id",
        ),
    ] {
        let refused = problem(
            app.post_as(&app.admin, "/api/v1/channels", &body).await,
            422,
            "validation",
        )
        .await;
        assert!(
            refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(detail),
            "{refused}"
        );
    }
    // Read once the read model has applied everything so far (the account's creation).
    let health = expect(app.get("/health").await, 200).await;
    let list = app
        .get_as(
            &app.admin,
            &format!("/api/v1/channels?position={}", health["log_head"]),
        )
        .await;
    let list = expect(list, 200).await;
    assert_eq!(list["channels"][0]["channel_id"], id.as_str());
    assert_eq!(list["channels"][0]["secrets"]["channel_secret"], true);

    // Rotating the channel secret: webhooks signed with the old one are refused from now on.
    let body = fixture("line/follow.json");
    let (old_headers, _) = signed(platform, &body);
    let changed = app
        .send_as(
            reqwest::Method::PATCH,
            &app.admin,
            &format!("/api/v1/channels/{id}"),
            &json!({"name": "LINE desk", "secrets": {"channel_secret": "rotated-secret"}}),
        )
        .await;
    let changed = expect(changed, 200).await;
    assert_eq!(changed["channel"]["name"], "LINE desk");
    problem(
        post_hook(&app, &hook, &old_headers, "", &body).await,
        401,
        "unauthorized",
    )
    .await;
    let new_signature = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256("rotated-secret", body.as_bytes()));
    let accepted = post_hook(
        &app,
        &hook,
        &[("x-line-signature", new_signature.clone())],
        "",
        &body,
    )
    .await;
    assert_eq!(accepted.status(), 200);
    // A required secret cannot be cleared.
    let cleared = app
        .send_as(
            reqwest::Method::PATCH,
            &app.admin,
            &format!("/api/v1/channels/{id}"),
            &json!({"secrets": {"access_token": null}}),
        )
        .await;
    problem(cleared, 422, "validation").await;

    let removed = app
        .send_as(
            reqwest::Method::DELETE,
            &app.admin,
            &format!("/api/v1/channels/{id}"),
            &json!(null),
        )
        .await;
    let removed = expect(removed, 200).await;
    problem(
        post_hook(
            &app,
            &hook,
            &[("x-line-signature", new_signature)],
            "",
            &body,
        )
        .await,
        404,
        "not-found",
    )
    .await;
    let gone = app
        .get_as(
            &app.admin,
            &format!("/api/v1/channels/{id}?position={}", removed["position"]),
        )
        .await;
    problem(gone, 404, "not-found").await;
}

/// A reply with a file: the platform gets a signed link under the server's public URL and
/// fetches the file through it; a link this server did not sign is refused.
async fn a_reply_carries_files_by_signed_link(backend: Backend) {
    // The public URL must be known before the server binds: a free port is chosen first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let Some(app) = spawn_app_with(backend, |config| {
        config.bind = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        config.public_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await
    else {
        return;
    };
    let standin = StandIn::start();
    let platform = Platform::Whatsapp;
    let (_, hook) = connect(&app, &standin, platform).await;
    let (_, agent) = app.support_agent().await;
    let mut stream = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    let body = fixture("whatsapp/text.json");
    let (headers, _) = signed(platform, &body);
    assert_eq!(
        post_hook(&app, &hook, &headers, "", &body).await.status(),
        200
    );
    let created = until(&mut stream, "TicketCreated", |_| true).await;
    let ticket_id = created["stream"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("ticket-")
        .to_owned();

    let label = b"%PDF-1.4\n% the shipping label\n".to_vec();
    let uploaded = app
        .client
        .post(format!("{}/api/v1/files?name=label.pdf", app.address))
        .bearer_auth(&agent)
        .body(label.clone())
        .send()
        .await
        .expect("answers");
    let uploaded = expect(uploaded, 201).await;
    let reply = app
        .post_as(
            &agent,
            &format!("/api/v1/tickets/{ticket_id}/replies"),
            &json!({"body": "Here is your label", "attachments": [{"file_id": uploaded["id"]}]}),
        )
        .await;
    let reply = expect(reply, 201).await;
    until(&mut stream, "OutboundReplyDelivered", |e| {
        e["data"]["reply_id"] == reply["id"]
    })
    .await;
    let sent = standin.sent();
    let link = sent
        .iter()
        .find_map(|send| {
            let text = send.body.to_string();
            let start = text.find("http://127.0.0.1")?;
            let end = text[start..].find('"')? + start;
            Some(text[start..end].to_owned())
        })
        .expect("the file went out as a link");
    assert!(link.contains("/public/files/"), "{link}");
    let fetched = reqwest::get(&link).await.expect("answers");
    assert_eq!(fetched.status(), 200);
    assert_eq!(
        fetched.bytes().await.expect("bytes").as_ref(),
        label.as_slice()
    );
    let forged = link.replace("signature=", "signature=00");
    problem(
        reqwest::get(&forged).await.expect("answers"),
        404,
        "not-found",
    )
    .await;
}

on_both_backends! {
    a_whatsapp_conversation_round_trip => whatsapp_round_trip_on_sqlite, whatsapp_round_trip_on_postgres;
    every_platform_opens_tickets_and_sends_replies => every_platform_on_sqlite, every_platform_on_postgres;
    admins_manage_channel_accounts => channel_accounts_on_sqlite, channel_accounts_on_postgres;
    a_reply_carries_files_by_signed_link => reply_files_on_sqlite, reply_files_on_postgres;
}
