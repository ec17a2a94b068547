//! `parley bench webhooks`: a platform's webhooks into the real server, and replies out
//! through the dispatcher, against a local stand-in of the platform's API.
//!
//! The server runs in a process of its own (as in `bench http`); the stand-in runs in this one.
//! An admin connects an account of `--platform` whose API is the stand-in.
//!
//! 1. **Webhooks.** `--writers` keep-alive connections (default 64) post `--events` signed
//!    webhooks, each a new text message from one of 2,000 customers: the first of each
//!    customer opens a ticket, the others continue it. The bodies and signatures are made
//!    before the phase. Reports webhooks per second and the answers' latencies; and, from a
//!    support agent's live stream open through the phase, the latency from a webhook's send to
//!    the frame showing its message on the ticket (after the inbound reaction has handled it).
//! 2. **Replies.** The server is restarted with the dispatcher paused, agents request
//!    `--replies` replies on those tickets, and the server is restarted with it running: the
//!    time until the dispatcher has handled them all (sent each to the stand-in and appended its
//!    outcome) gives replies per second.

use crate::bench::{
    BenchArgs, BenchError, Store, backend_name, cpu_secs_of, percentile_ms, round2,
};
use crate::bench_http::{
    Agent, Call, Server, expect, header_error, http_error, phase, start_server, support_agent,
};
use axum::http::{HeaderName, HeaderValue};
use hmac::{Hmac, Mac};
use hyper::body::Bytes;
use parley_channels::Platform;
use parley_channels::standin::StandIn;
use serde_json::{Value, json};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Customers writing in: the first message of each opens a ticket.
const CUSTOMERS: u64 = 2_000;
/// Webhooks of the light phase, from [`LIGHT_CONNECTIONS`] connections.
const LIGHT_WEBHOOKS: u64 = 2_000;
const LIGHT_CONNECTIONS: u64 = 4;
/// The longest the inbound reaction or the dispatcher may take to finish after a phase.
const SETTLE_WITHIN: Duration = Duration::from_secs(600);

/// The account's platform ids and secrets.
fn account(platform: Platform) -> Value {
    let ids = match platform {
        Platform::Whatsapp => json!({"phone_number_id": "106540352242922"}),
        Platform::Messenger => json!({"page_id": "112233445566778"}),
        Platform::Line => json!({"channel_id": "2005123456",
                                 "bot_user_id": "U0123456789abcdef0123456789abcdef"}),
        Platform::Wechat => json!({"app_id": "wx5823bf96d3bd56c7",
                                   "original_id": "gh_3ad31b2a7d66"}),
        Platform::X => json!({"user_id": "1460389447283253248"}),
    };
    let secrets: serde_json::Map<String, Value> = platform
        .secret_names()
        .iter()
        .map(|(name, _)| ((*name).to_owned(), format!("bench-{name}").into()))
        .collect();
    json!({"platform": platform.name(), "name": "bench", "platform_ids": ids, "secrets": secrets})
}

/// The `k`-th webhook: its body and the headers that sign it (WeChat signs the query string).
fn webhook(
    platform: Platform,
    k: u64,
    now_secs: u64,
) -> (String, Vec<(&'static str, String)>, String) {
    let customer = k % CUSTOMERS;
    let text = format!("bench message {k}");
    let now_ms = now_secs * 1000;
    let body = match platform {
        Platform::Whatsapp => json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": format!("Customer {customer}")}, "wa_id": format!("1555{customer:07}")}],
                "messages": [{"from": format!("1555{customer:07}"), "id": format!("wamid.bench.{k}"),
                    "timestamp": now_secs.to_string(), "type": "text", "text": {"body": text}}]}}]}]})
        .to_string(),
        Platform::Messenger => json!({"object": "page", "entry": [{"id": "112233445566778", "time": now_ms,
            "messaging": [{"sender": {"id": format!("69{customer:08}")}, "recipient": {"id": "112233445566778"},
                "timestamp": now_ms, "message": {"mid": format!("m_bench_{k}"), "text": text}}]}]})
        .to_string(),
        Platform::Line => json!({"destination": "U0123456789abcdef0123456789abcdef", "events": [{
            "type": "message", "mode": "active", "timestamp": now_ms, "webhookEventId": format!("bench{k}"),
            "source": {"type": "user", "userId": format!("U{customer:032x}")},
            "message": {"type": "text", "id": format!("{}", 500_000_000_000u64 + k), "text": text}}]})
        .to_string(),
        Platform::Wechat => format!(
            "<xml><ToUserName><![CDATA[gh_3ad31b2a7d66]]></ToUserName><FromUserName><![CDATA[o{customer:027}]]></FromUserName>\
             <CreateTime>{now_secs}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>\
             <MsgId>{}</MsgId></xml>",
            24_000_000_000_000_000u64 + k
        ),
        Platform::X => json!({"for_user_id": "1460389447283253248", "direct_message_events": [{
            "type": "message_create", "id": format!("{}", 1_800_000_000_000_000_000u64 + k),
            "created_timestamp": now_ms.to_string(),
            "message_create": {"target": {"recipient_id": "1460389447283253248"},
                "sender_id": format!("{}", 3_000_000_000u64 + customer), "message_data": {"text": text}}}],
            "users": {}})
        .to_string(),
    };
    let mac = |secret: &str| {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
        mac.update(body.as_bytes());
        mac.finalize().into_bytes()
    };
    use base64::Engine as _;
    let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (headers, query) = match platform {
        Platform::Whatsapp | Platform::Messenger => (
            vec![(
                "x-hub-signature-256",
                format!(
                    "sha256={}",
                    crate::http::auth::hex(&mac("bench-app_secret"))
                ),
            )],
            String::new(),
        ),
        Platform::Line => (
            vec![("x-line-signature", base64(&mac("bench-channel_secret")))],
            String::new(),
        ),
        Platform::X => (
            vec![(
                "x-twitter-webhooks-signature",
                format!("sha256={}", base64(&mac("bench-consumer_secret"))),
            )],
            String::new(),
        ),
        Platform::Wechat => {
            use sha1::Digest as _;
            let (timestamp, nonce) = (now_secs.to_string(), "1");
            let mut parts = ["bench-token", timestamp.as_str(), nonce];
            parts.sort();
            let signature = crate::http::auth::hex(&sha1::Sha1::digest(parts.concat().as_bytes()));
            (
                Vec::new(),
                format!("?signature={signature}&timestamp={timestamp}&nonce={nonce}"),
            )
        }
    };
    (body, headers, query)
}

/// Follows a support agent's live stream: when each webhook's message showed on its ticket
/// (microseconds since `epoch`), each ticket opened, and how many messages and replies'
/// outcomes it showed (watched, so that a phase's end is waited for, not polled).
struct Watcher {
    shown_us: Arc<Vec<AtomicU64>>,
    shown: watch::Receiver<u64>,
    outcomes: watch::Receiver<u64>,
    tickets: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    async fn start(
        server: &Server,
        token: &str,
        events: u64,
        epoch: Instant,
        after: Option<u64>,
    ) -> Result<Watcher, BenchError> {
        let shown_us: Arc<Vec<AtomicU64>> =
            Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
        let (shown, shown_seen) = watch::channel(0u64);
        let (outcomes, outcomes_seen) = watch::channel(0u64);
        let tickets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut request = reqwest::Client::new()
            .get(format!("{}/api/v1/stream", server.base))
            .bearer_auth(token);
        if let Some(after) = after {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let mut response = request.send().await.map_err(http_error)?;
        if !response.status().is_success() {
            return Err(BenchError::Invalid(format!(
                "the live stream: {}",
                response.status()
            )));
        }
        let task = {
            let (shown_us, tickets) = (shown_us.clone(), tickets.clone());
            tokio::spawn(async move {
                let mut buffer = String::new();
                while let Ok(Some(chunk)) = response.chunk().await {
                    let at = epoch.elapsed().as_micros() as u64;
                    buffer.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(end) = buffer.find("\n\n") {
                        let frame: String = buffer.drain(..end + 2).collect();
                        let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) else {
                            continue;
                        };
                        let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                            continue;
                        };
                        let text = match event["type"].as_str() {
                            Some("TicketCreated") => {
                                if let (Ok(mut tickets), Some(stream)) =
                                    (tickets.lock(), event["stream"].as_str())
                                {
                                    tickets.push(stream.trim_start_matches("ticket-").to_owned());
                                }
                                &event["data"]["description"]
                            }
                            Some("CustomerMessageReceived") => &event["data"]["body"],
                            Some("OutboundReplyDelivered" | "OutboundReplyFailed") => {
                                outcomes.send_modify(|n| *n += 1);
                                continue;
                            }
                            _ => continue,
                        };
                        let k = text
                            .as_str()
                            .and_then(|t| t.strip_prefix("bench message "))
                            .and_then(|k| k.parse::<usize>().ok());
                        if let Some(slot) = k.and_then(|k| shown_us.get(k)) {
                            slot.store(at, Ordering::Relaxed);
                            shown.send_modify(|n| *n += 1);
                        }
                    }
                }
            })
        };
        Ok(Watcher {
            shown_us,
            shown: shown_seen,
            outcomes: outcomes_seen,
            tickets,
            task,
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits until the live stream has shown `count` of what `seen` counts (at most
/// [`SETTLE_WITHIN`]); how long that took.
async fn settle(
    what: &str,
    seen: &watch::Receiver<u64>,
    count: u64,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let mut seen = seen.clone();
    let reached = tokio::time::timeout(SETTLE_WITHIN, seen.wait_for(|n| *n >= count)).await;
    match reached {
        Ok(Ok(_)) => Ok(started.elapsed()),
        _ => Err(BenchError::Invalid(format!(
            "{what} did not finish within {SETTLE_WITHIN:?}"
        ))),
    }
}

async fn health(server: &Server, client: &reqwest::Client) -> Result<Value, BenchError> {
    expect(
        client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .map_err(http_error)?,
        "reading /health",
    )
    .await
}

async fn stop(mut server: Server) -> Result<(), BenchError> {
    server.child.start_kill()?;
    server.child.wait().await?;
    Ok(())
}

pub(crate) async fn webhooks(args: &BenchArgs) -> Result<Value, BenchError> {
    let platform = Platform::from_name(&args.platform).ok_or_else(|| {
        BenchError::Invalid(format!("--platform {}: not a platform", args.platform))
    })?;
    let standin = StandIn::start();
    standin.set_recording(false);
    let store = Store::fresh(args).await?;
    let server = start_server(store.url(), &[]).await?;
    let client = reqwest::Client::new();
    let mut connect = account(platform);
    connect["api_base"] = standin.base_url().into();
    let created = expect(
        client
            .post(format!("{}/api/v1/channels", server.base))
            .bearer_auth(&server.admin)
            .json(&connect)
            .send()
            .await
            .map_err(http_error)?,
        "connecting the account",
    )
    .await?;
    let hook = created["channel"]["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let agent = support_agent(&server, &client, "watcher").await?;

    // The webhooks, made and signed before the phase.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let connections = args.writers;
    let events = args.events.div_ceil(connections) * connections;
    let total = events + LIGHT_WEBHOOKS;
    let mut calls = Vec::with_capacity(total as usize);
    for k in 0..total {
        let (body, headers, query) = webhook(platform, k, now_secs);
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                Ok((
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).map_err(header_error)?,
                ))
            })
            .collect::<Result<Vec<_>, BenchError>>()?;
        calls.push((format!("{hook}{query}"), Bytes::from(body), headers));
    }
    let calls = Arc::new(calls);
    let epoch = Instant::now();
    let sent_us: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let watcher = Watcher::start(&server, &agent, total, epoch, None).await?;
    let per_connection = events / connections;
    let agents: Vec<Agent> = (0..connections)
        .map(|i| Agent {
            token: agent.clone(),
            conversations: vec![i.to_string()],
        })
        .collect();
    let pid = server
        .child
        .id()
        .map(|pid| pid.to_string())
        .unwrap_or_default();
    let (cpu_before, client_before) = (cpu_secs_of(&pid), cpu_secs_of("self"));
    let posting = async |agents: &[Agent], first: u64, per_connection: u64, requests: u64| {
        let (calls, sent_us) = (calls.clone(), sent_us.clone());
        phase(&server, agents, requests, move |agent, n| {
            let i: u64 = agent.conversations[0].parse().unwrap_or_default();
            let k = (first + i * per_connection + n) as usize;
            let (path, body, headers) = &calls[k.min(calls.len() - 1)];
            sent_us[k.min(calls.len() - 1)]
                .store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
            Call {
                method: hyper::Method::POST,
                path: path.clone(),
                body: body.clone(),
                headers: headers.clone(),
            }
        })
        .await
    };
    let posted = posting(&agents, 0, per_connection, events).await?;
    let (cpu_after, client_after) = (cpu_secs_of(&pid), cpu_secs_of("self"));
    let failures = posted.failures;
    let answered = events - failures;
    let on_tickets = settle("the inbound reaction", &watcher.shown, answered).await?;
    // The same path under a light load: a few connections, one webhook at a time each.
    let light = posting(
        &agents[..LIGHT_CONNECTIONS as usize],
        events,
        LIGHT_WEBHOOKS / LIGHT_CONNECTIONS,
        LIGHT_WEBHOOKS,
    )
    .await?;
    let light_answered = answered + LIGHT_WEBHOOKS - light.failures;
    settle("the inbound reaction", &watcher.shown, light_answered).await?;
    let latencies = |range: std::ops::Range<u64>| -> Vec<u64> {
        range
            .filter_map(|k| {
                let k = k as usize;
                let sent = sent_us[k].load(Ordering::Relaxed);
                let shown = watcher.shown_us[k].load(Ordering::Relaxed);
                (sent > 0 && shown >= sent).then_some(shown - sent)
            })
            .collect()
    };
    let mut shown_latencies = latencies(0..events);
    let mut light_latencies = latencies(events..total);
    let tickets = watcher
        .tickets
        .lock()
        .map(|t| t.clone())
        .unwrap_or_default();
    drop(watcher);
    let mut report = json!({
        "benchmark": "webhooks",
        "backend": backend_name(args.backend),
        "platform": platform.name(),
        "connections": connections,
        "customers": CUSTOMERS.min(events),
        "tickets": tickets.len(),
    });
    let webhook_report = posted.report(
        "webhook",
        cpu_after - cpu_before,
        client_after - client_before,
    );
    for (key, value) in webhook_report.as_object().into_iter().flatten() {
        report[key] = value.clone();
    }
    report["webhook_to_stream_p50_ms"] = json!(percentile_ms(&mut shown_latencies, 50.0));
    report["webhook_to_stream_p99_ms"] = json!(percentile_ms(&mut shown_latencies, 99.0));
    report["all_on_tickets_after_secs"] = json!(round2(on_tickets.as_secs_f64()));
    report["light_webhooks_per_sec"] =
        json!((LIGHT_WEBHOOKS as f64 / light.elapsed.as_secs_f64()).round());
    report["light_webhook_to_stream_p50_ms"] = json!(percentile_ms(&mut light_latencies, 50.0));
    report["light_webhook_to_stream_p99_ms"] = json!(percentile_ms(&mut light_latencies, 99.0));

    // Replies: queued with the dispatcher paused, then dispatched alone.
    stop(server).await?;
    let server = start_server(store.url(), &["--pause-reactions", "dispatcher"]).await?;
    let replies = args.replies.max(1);
    let reply_agents: Vec<Agent> = {
        let mut agents = Vec::new();
        for n in 0..connections {
            let token = support_agent(&server, &client, &format!("bench {n}")).await?;
            agents.push(Agent {
                token,
                conversations: tickets.clone(),
            });
        }
        agents
    };
    if tickets.is_empty() {
        return Err(BenchError::Invalid("no ticket was opened".into()));
    }
    let reply = Bytes::from(json!({"body": "Thanks, your parcel left this morning."}).to_string());
    let requested = phase(&server, &reply_agents, replies, move |agent, n| {
        let ticket = &agent.conversations
            [(n as usize * 7919 + agent.token.len()) % agent.conversations.len()];
        Call {
            method: hyper::Method::POST,
            path: format!("/api/v1/tickets/{ticket}/replies"),
            body: reply.clone(),
            headers: Vec::new(),
        }
    })
    .await?;
    let requested_ok = requested.latencies_us.len() as u64;
    let head = health(&server, &client).await?["log_head"]
        .as_u64()
        .unwrap_or_default();
    stop(server).await?;
    let attempts_before = standin.total_attempts();
    let server = start_server(store.url(), &[]).await?;
    let pid = server
        .child
        .id()
        .map(|pid| pid.to_string())
        .unwrap_or_default();
    let cpu_before = cpu_secs_of(&pid);
    // Every reply's outcome, from the head before the restart on.
    let outcomes = Watcher::start(&server, &agent, 0, Instant::now(), Some(head)).await?;
    let dispatched = settle("the dispatcher", &outcomes.outcomes, requested_ok).await?;
    let cpu = cpu_secs_of(&pid) - cpu_before;
    let sends = standin.total_attempts() - attempts_before;
    report["replies_requested"] = json!(requested_ok);
    report["replies_sent"] = json!(sends);
    report["replies_dispatched_per_sec"] =
        json!((requested_ok as f64 / dispatched.as_secs_f64()).round());
    report["dispatch_server_cpu_us"] = json!((cpu * 1e6 / requested_ok.max(1) as f64).round());
    stop(server).await?;
    Ok(report)
}
