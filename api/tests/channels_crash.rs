//! Channel traffic survives a SIGKILL of the real `parley serve` process (issue 17), on both
//! backends:
//!
//! - inbound: 32 clients post signed WhatsApp webhooks for 50 customers; the server dies
//!   mid-load and restarts on the same database; every webhook not answered 200 is delivered
//!   again (as Meta does), and some that were answered too (Meta's duplicate redeliveries).
//!   Three times. Then every message is recorded once on its contact and, once the inbound
//!   reaction has caught up, is on exactly one ticket, its customer's: none lost, none twice.
//! - outbound: agents ask for 300 replies on 40 WhatsApp tickets; the platform (the stand-in,
//!   behind a slow link) accepts most, fails some once before accepting them and refuses a few;
//!   the server dies while replies are being sent and restarts. Every reply then ends delivered
//!   or failed exactly once, and the only replies the platform accepted twice are those whose
//!   outcome was not yet in the log at the kill (at least once: ADR 12): at most one per
//!   ticket, and never more than the dispatcher sends at once.

use hmac::{Hmac, Mac};
use parley_channels::standin::{Behaviour, StandIn};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

mod process;
use process::ServerProcess as Server;

const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "crash-app-secret";

/// Inbound: clients posting at once, customers writing, webhooks answered before the kill.
const CLIENTS: usize = 32;
const CUSTOMERS: usize = 50;
const ANSWERED_BEFORE_KILL: usize = 400;
/// Inbound: how many times the server is killed under load.
const ROUNDS: usize = 3;
/// Inbound: every how many answered webhooks one is delivered again after the restart.
const REDELIVER_EVERY: usize = 8;

/// Outbound: tickets (one customer each), replies asked for, concurrent agents asking.
const TICKETS: usize = 40;
const REPLIES: usize = 300;
const AGENTS: usize = 8;
/// Sends the platform has received when the server is killed.
const SENDS_BEFORE_KILL: u64 = 100;
/// How long each answer of the platform takes to reach the server.
const PLATFORM_LATENCY: Duration = Duration::from_millis(100);
/// Customers whose replies the platform refuses (its window error), and customers whose
/// every other send fails with a 500 (each reply retried once).
const REFUSED: std::ops::Range<usize> = 0..4;
const FLAKY: std::ops::Range<usize> = 4..12;

/// How long a condition is waited for before the test fails.
const DEADLINE: Duration = Duration::from_secs(60);
/// How often `/health` and the event feed are looked at while waiting for a reaction. Neither
/// offers a notification to wait on, so the waits poll, on this short interval, up to
/// [`DEADLINE`].
const POLL: Duration = Duration::from_millis(20);

async fn start(url: &str, admin: &str) -> Server {
    Server::start(
        url,
        Some(admin),
        &["--rate-limit", "0", "--dispatch-backoff-ms", "50"],
    )
    .await
}

fn customer(n: usize) -> String {
    format!("1650555{n:04}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// One WhatsApp message webhook, as Meta signs and sends it (and sends again, byte for byte).
#[derive(Debug, Clone)]
struct Webhook {
    /// The platform's message id (`messages[0].id`), unique per webhook.
    message_id: String,
    /// The customer's WhatsApp id.
    customer: String,
    /// What the customer wrote, unique per webhook.
    text: String,
    body: String,
    signature: String,
}

impl Webhook {
    fn new(message_id: String, customer: String, text: String) -> Webhook {
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "15550783881",
                            "phone_number_id": PHONE_NUMBER_ID,
                        },
                        "contacts": [{
                            "profile": {"name": format!("Customer {customer}")},
                            "wa_id": customer,
                        }],
                        "messages": [{
                            "from": customer,
                            "id": message_id,
                            "timestamp": now_secs().to_string(),
                            "type": "text",
                            "text": {"body": text},
                        }],
                    },
                    "field": "messages",
                }],
            }],
        })
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key fits");
        mac.update(body.as_bytes());
        let digest: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Webhook {
            message_id,
            customer,
            text,
            body,
            signature: format!("sha256={digest}"),
        }
    }

    /// Posts it; the status, or `None` when no answer came.
    async fn post(&self, client: &reqwest::Client, base: &str, hook: &str) -> Option<u16> {
        let response = client
            .post(format!("{base}{hook}"))
            .header("x-hub-signature-256", &self.signature)
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        // The answer counts once its body is read in full.
        response.bytes().await.ok()?;
        Some(status)
    }
}

async fn post(client: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let body: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// Connects a WhatsApp account whose API is at `api_base`; its webhook path.
async fn connect(client: &reqwest::Client, base: &str, admin: &str, api_base: &str) -> String {
    let created = post(
        client,
        base,
        admin,
        "/api/v1/channels",
        json!({
            "platform": "whatsapp",
            "name": "WhatsApp support",
            "platform_ids": {
                "phone_number_id": PHONE_NUMBER_ID,
                "display_phone_number": "15550783881",
            },
            "api_base": api_base,
            "secrets": {
                "app_secret": APP_SECRET,
                "access_token": "crash-access-token",
                "verify_token": "crash-verify-token",
            },
        }),
    )
    .await;
    created["channel"]["webhook_url"]
        .as_str()
        .expect("a webhook path")
        .to_owned()
}

async fn health(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("the server answers")
        .json()
        .await
        .expect("a JSON answer")
}

/// Waits until the reaction `name` has handled the log up to `position` (as `/health` tells).
async fn reaction_reaches(client: &reqwest::Client, base: &str, name: &str, position: u64) {
    let started = Instant::now();
    loop {
        let health = health(client, base).await;
        if health["reactions"][name]
            .as_u64()
            .is_some_and(|at| at >= position)
        {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the {name} reaction did not reach {position}: {health}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The log's events as the integration feed shows them, read on from where it stopped.
#[derive(Default)]
struct Feed {
    after: u64,
    events: Vec<Value>,
}

impl Feed {
    async fn read_on(&mut self, client: &reqwest::Client, base: &str, admin: &str) {
        loop {
            let page: Value = client
                .get(format!(
                    "{base}/api/v1/events?after={}&limit=1000",
                    self.after
                ))
                .bearer_auth(admin)
                .send()
                .await
                .expect("the server answers")
                .json()
                .await
                .expect("a JSON page");
            let events = page["events"].as_array().expect("events");
            self.events.extend(events.iter().cloned());
            self.after = page["next_after"].as_u64().expect("next_after");
            if !page["has_more"].as_bool().expect("has_more") {
                return;
            }
        }
    }

    fn of_type<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["type"] == event_type)
    }

    /// Each WhatsApp ticket's customer, by the ticket's stream.
    fn tickets(&self) -> HashMap<String, String> {
        self.of_type("TicketCreated")
            .map(|e| {
                let stream = e["stream"].as_str().expect("a stream").to_owned();
                let handle = e["data"]["channel_info"]["customer_handle"]
                    .as_str()
                    .expect("a social ticket names its customer")
                    .to_owned();
                (stream, handle)
            })
            .collect()
    }
}

/// The log's head, read from the database itself while no server runs.
async fn head_of(url: &str) -> u64 {
    let log = parley_eventlog::open(url, parley_eventlog::LogOptions::default())
        .await
        .expect("the log opens");
    let head = log.head().await.expect("a head").0;
    log.close().await;
    head
}

// ---------------------------------------------------------------------------------------------
// Inbound

async fn webhooks_survive_a_sigkill(url: &str) {
    let started = Instant::now();
    let admin = format!("parley_crash_admin_{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let standin = StandIn::start();
    let mut server = start(url, &admin).await;
    let hook = connect(&client, &server.base, &admin, standin.base_url()).await;

    let mut answered: Vec<Webhook> = Vec::new();
    // The log's head at each kill, and the webhooks in doubt then.
    let mut kills: Vec<(u64, Vec<String>)> = Vec::new();
    let mut redelivered = 0;
    for round in 0..ROUNDS {
        let answered_count = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(Notify::new());
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (client, base, hook) = (client.clone(), server.base.clone(), hook.clone());
            let (answered_count, enough) = (answered_count.clone(), enough.clone());
            clients.push(tokio::spawn(async move {
                // Posts until the server stops answering; returns what was answered 200 and
                // the one webhook in doubt.
                let mut answered = Vec::new();
                for n in 0.. {
                    let who = customer((c * 7 + n * 3 + round) % CUSTOMERS);
                    let webhook = Webhook::new(
                        format!("wamid.crash-r{round}-c{c}-n{n}"),
                        who.clone(),
                        format!("Message r{round}-c{c}-n{n} from {who}: where is my order?"),
                    );
                    match webhook.post(&client, &base, &hook).await {
                        Some(200) => {
                            answered.push(webhook);
                            if answered_count.fetch_add(1, Ordering::Relaxed) + 1
                                == ANSWERED_BEFORE_KILL
                            {
                                enough.notify_one();
                            }
                        }
                        Some(status) => panic!("{}: {status}", webhook.message_id),
                        None => return (answered, webhook),
                    }
                }
                unreachable!("a client posts until the server dies")
            }));
        }
        tokio::time::timeout(DEADLINE, enough.notified())
            .await
            .expect("the webhooks are answered");
        server.kill().await;
        let first = answered.len();
        let mut in_doubt = Vec::new();
        for client in clients {
            let (done, doubt) = client.await.expect("a client ends");
            answered.extend(done);
            in_doubt.push(doubt);
        }
        let head_at_kill = head_of(url).await;

        server = start(url, &admin).await;
        // Meta delivers again every webhook it got no 200 for, and now and then one it did.
        for webhook in &in_doubt {
            assert_eq!(
                webhook.post(&client, &server.base, &hook).await,
                Some(200),
                "{}",
                webhook.message_id
            );
        }
        for webhook in answered[first..].iter().step_by(REDELIVER_EVERY) {
            assert_eq!(
                webhook.post(&client, &server.base, &hook).await,
                Some(200),
                "{}",
                webhook.message_id
            );
            redelivered += 1;
        }
        kills.push((
            head_at_kill,
            in_doubt.iter().map(|w| w.message_id.clone()).collect(),
        ));
        answered.extend(in_doubt);
    }
    let posted: HashMap<&str, &Webhook> = answered
        .iter()
        .map(|w| (w.message_id.as_str(), w))
        .collect();
    assert_eq!(posted.len(), answered.len(), "message ids are unique");

    // Every message is recorded on its contact once.
    let recorded_to = health(&client, &server.base).await["log_head"]
        .as_u64()
        .expect("a head");
    let mut feed = Feed::default();
    feed.read_on(&client, &server.base, &admin).await;
    let mut received: HashMap<&str, usize> = HashMap::new();
    for event in feed.of_type("SocialMessageReceived") {
        let id = event["data"]["platform_message_id"]
            .as_str()
            .expect("a platform id");
        let webhook = posted
            .get(id)
            .unwrap_or_else(|| panic!("a message nobody sent: {event}"));
        assert_eq!(event["data"]["text"], webhook.text.as_str());
        assert_eq!(
            event["data"]["profile"]["user_id"],
            webhook.customer.as_str()
        );
        *received.entry(webhook.message_id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded twice: {twice:?}");
    let lost: Vec<_> = posted
        .keys()
        .filter(|id| !received.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "answered 200 and lost: {lost:?}");
    // Webhooks in doubt at a kill that the server had recorded (their redelivery appended
    // nothing).
    let recorded_unanswered: usize = kills
        .iter()
        .map(|(head_at_kill, in_doubt)| {
            feed.of_type("SocialMessageReceived")
                .filter(|e| e["position"].as_u64().is_some_and(|at| at <= *head_at_kill))
                .filter(|e| {
                    e["data"]["platform_message_id"]
                        .as_str()
                        .is_some_and(|id| in_doubt.iter().any(|d| d == id))
                })
                .count()
        })
        .sum();

    // Once the inbound reaction has handled all of them, each is on one ticket, its
    // customer's: the ticket's description or a message on it.
    reaction_reaches(&client, &server.base, "inbound", recorded_to).await;
    feed.read_on(&client, &server.base, &admin).await;
    let tickets = feed.tickets();
    let by_text: HashMap<&str, &Webhook> = answered.iter().map(|w| (w.text.as_str(), w)).collect();
    let mut on_tickets: HashMap<&str, usize> = HashMap::new();
    let mut place = |stream: &str, text: &str| {
        let webhook = by_text
            .get(text)
            .unwrap_or_else(|| panic!("a ticket message nobody sent: {text:?}"));
        assert_eq!(
            tickets.get(stream),
            Some(&webhook.customer),
            "{} is on another customer's ticket",
            webhook.message_id
        );
        *on_tickets.entry(webhook.message_id.as_str()).or_default() += 1;
    };
    for event in feed.of_type("TicketCreated") {
        place(
            event["stream"].as_str().expect("a stream"),
            event["data"]["description"]
                .as_str()
                .expect("a description"),
        );
    }
    for event in feed.of_type("CustomerMessageReceived") {
        place(
            event["stream"].as_str().expect("a stream"),
            event["data"]["body"].as_str().expect("a body"),
        );
    }
    let twice: Vec<_> = on_tickets.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "on tickets twice: {twice:?}");
    // How far the inbound reaction had come at each kill.
    let on_tickets_at_kills: Vec<usize> = kills
        .iter()
        .map(|(head_at_kill, _)| {
            feed.of_type("TicketCreated")
                .chain(feed.of_type("CustomerMessageReceived"))
                .filter(|e| e["position"].as_u64().is_some_and(|at| at <= *head_at_kill))
                .count()
        })
        .collect();
    let lost: Vec<_> = posted
        .keys()
        .filter(|id| !on_tickets.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "never on a ticket: {lost:?}");
    // Nothing closed a ticket, so each customer has one.
    let customers: HashSet<&String> = tickets.values().collect();
    assert_eq!(
        customers.len(),
        tickets.len(),
        "a customer with two open tickets"
    );
    assert_eq!(
        customers.len(),
        answered
            .iter()
            .map(|w| &w.customer)
            .collect::<HashSet<_>>()
            .len()
    );

    eprintln!(
        "inbound crash ({url}): {ROUNDS} kills, {} webhooks answered 200, {} in doubt at a \
         kill and redelivered ({recorded_unanswered} of them recorded before it), \
         {redelivered} answered ones redelivered, messages on tickets at the kills: \
         {on_tickets_at_kills:?}, {} tickets, {:.1?}",
        posted.len(),
        ROUNDS * CLIENTS,
        tickets.len(),
        started.elapsed()
    );
    server.kill().await;
}

// ---------------------------------------------------------------------------------------------
// Outbound

/// The platform's API as the server reaches it: the stand-in behind a slow link. Every answer
/// reaches the server [`PLATFORM_LATENCY`] after the stand-in gave it, so that sends the
/// platform has accepted are still in flight when the server dies; and nothing goes through
/// before [`SlowLink::open`].
struct SlowLink {
    base: String,
    open: watch::Sender<bool>,
}

impl SlowLink {
    async fn start(upstream: &str) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let (open, gate) = watch::channel(false);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, mut gate) = (upstream.clone(), gate.clone());
                tokio::spawn(async move {
                    if gate.wait_for(|open| *open).await.is_err() {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let requests = async {
                        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                        let _ = to_server.shutdown().await;
                    };
                    let answers = async {
                        let mut buffer = vec![0; 16 * 1024];
                        while let Ok(n @ 1..) = from_server.read(&mut buffer).await {
                            tokio::time::sleep(PLATFORM_LATENCY).await;
                            if to_client.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_client.shutdown().await;
                    };
                    tokio::join!(requests, answers);
                });
            }
        });
        SlowLink { base, open }
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

/// A reply an agent asked for.
#[derive(Debug)]
struct Reply {
    text: String,
    customer: usize,
}

async fn replies_survive_a_sigkill(url: &str) {
    let started = Instant::now();
    let admin = format!("parley_crash_admin_{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let standin = StandIn::start();
    let link = SlowLink::start(standin.base_url()).await;
    let server = start(url, &admin).await;
    let hook = connect(&client, &server.base, &admin, &link.base).await;

    // A ticket per customer, opened by their first message.
    for n in 0..TICKETS {
        let who = customer(n);
        let webhook = Webhook::new(
            format!("wamid.first-{n}"),
            who.clone(),
            format!("Hello from {who}"),
        );
        assert_eq!(webhook.post(&client, &server.base, &hook).await, Some(200));
    }
    let head = health(&client, &server.base).await["log_head"]
        .as_u64()
        .expect("a head");
    reaction_reaches(&client, &server.base, "inbound", head).await;
    let mut feed = Feed::default();
    feed.read_on(&client, &server.base, &admin).await;
    let by_customer: HashMap<String, String> = feed
        .tickets()
        .into_iter()
        .map(|(stream, handle)| (handle, stream.trim_start_matches("ticket-").to_owned()))
        .collect();
    assert_eq!(by_customer.len(), TICKETS);
    let tickets: Vec<String> = (0..TICKETS)
        .map(|n| by_customer[&customer(n)].clone())
        .collect();

    // How the platform answers each customer's sends.
    for n in REFUSED {
        standin.script(&customer(n), vec![Behaviour::Refuse]);
    }
    for n in FLAKY {
        // Every send of a reply fails once with a 500 and is accepted the second time.
        let script = (0..=REPLIES / TICKETS)
            .flat_map(|_| [Behaviour::ServerError, Behaviour::Accept])
            .collect();
        standin.script(&customer(n), script);
    }

    // The agents ask for every reply; the platform answers nothing meanwhile.
    let mut agents = Vec::new();
    for n in 0..AGENTS {
        let minted = post(
            &client,
            &server.base,
            &admin,
            "/api/v1/tokens",
            json!({"role": "agent", "agent": uuid::Uuid::now_v7(), "support": true,
                   "label": format!("agent {n}")}),
        )
        .await;
        agents.push(minted["secret"].as_str().expect("a secret").to_owned());
    }
    let mut asking = Vec::new();
    for (a, agent) in agents.into_iter().enumerate() {
        let (client, base, tickets) = (client.clone(), server.base.clone(), tickets.clone());
        asking.push(tokio::spawn(async move {
            let mut asked = Vec::new();
            for n in (a..REPLIES).step_by(AGENTS) {
                let customer = n % TICKETS;
                let text = format!("Reply {n} to customer {customer}");
                let answer = post(
                    &client,
                    &base,
                    &agent,
                    &format!("/api/v1/tickets/{}/replies", tickets[customer]),
                    json!({"body": text}),
                )
                .await;
                assert_eq!(answer["delivery"], "pending", "{answer}");
                let id = answer["id"].as_str().expect("a reply id").to_owned();
                asked.push((id, Reply { text, customer }));
            }
            asked
        }));
    }
    let mut replies: HashMap<String, Reply> = HashMap::new();
    for agent in asking {
        replies.extend(agent.await.expect("an agent ends"));
    }
    assert_eq!(replies.len(), REPLIES);

    // The platform answers; the server dies while replies are being sent.
    link.open();
    let waiting = Instant::now();
    // The stand-in tells no one of a send: looked at every 2 ms (a fraction of a send's
    // latency), so that the kill comes close to the count.
    while standin.total_attempts() < SENDS_BEFORE_KILL {
        assert!(waiting.elapsed() < DEADLINE, "the platform got no sends");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().await;
    let sends_at_kill = standin.total_attempts();
    let head_at_kill = head_of(url).await;

    let server = start(url, &admin).await;
    // Every reply ends delivered or failed...
    let waiting = Instant::now();
    loop {
        feed.read_on(&client, &server.base, &admin).await;
        let settled: HashSet<&str> = feed
            .of_type("OutboundReplyDelivered")
            .chain(feed.of_type("OutboundReplyFailed"))
            .filter_map(|e| e["data"]["reply_id"].as_str())
            .collect();
        if replies.keys().all(|id| settled.contains(id.as_str())) {
            break;
        }
        assert!(
            waiting.elapsed() < DEADLINE,
            "{} of {REPLIES} replies settled",
            settled.len()
        );
        tokio::time::sleep(POLL).await;
    }
    // ...and, once the dispatcher has handled the whole log, no send is left in flight.
    let head = health(&client, &server.base).await["log_head"]
        .as_u64()
        .expect("a head");
    reaction_reaches(&client, &server.base, "dispatcher", head).await;
    feed.read_on(&client, &server.base, &admin).await;

    let sent = standin.sent();
    let accepted: HashMap<&str, &str> = sent
        .iter()
        .filter(|s| s.accepted)
        .filter_map(|s| Some((s.message_id.as_deref()?, s.text.as_str())))
        .collect();
    let mut accepted_by_text: HashMap<&str, usize> = HashMap::new();
    for send in sent.iter().filter(|s| s.accepted) {
        *accepted_by_text.entry(send.text.as_str()).or_default() += 1;
    }

    // Each reply's outcome, once; before the kill or after.
    let mut outcomes: HashMap<&str, Vec<&Value>> = HashMap::new();
    for event in feed
        .of_type("OutboundReplyDelivered")
        .chain(feed.of_type("OutboundReplyFailed"))
    {
        let id = event["data"]["reply_id"].as_str().expect("a reply id");
        assert!(replies.contains_key(id), "an outcome of no reply: {event}");
        outcomes.entry(id).or_default().push(event);
    }
    let mut settled_before_kill = 0;
    let mut duplicates = Vec::new();
    for (id, reply) in &replies {
        let outcome = match outcomes.get(id.as_str()).map(Vec::as_slice) {
            Some([outcome]) => *outcome,
            other => panic!("reply {id} ({}) has outcomes {other:?}", reply.text),
        };
        let before_kill = outcome["position"].as_u64().expect("a position") <= head_at_kill;
        settled_before_kill += usize::from(before_kill);
        let times_accepted = accepted_by_text
            .get(reply.text.as_str())
            .copied()
            .unwrap_or(0);
        if REFUSED.contains(&reply.customer) {
            assert_eq!(outcome["type"], "OutboundReplyFailed", "{outcome}");
            assert_eq!(outcome["data"]["code"], "131047", "{outcome}");
            assert_eq!(times_accepted, 0, "{}", reply.text);
            continue;
        }
        assert_eq!(outcome["type"], "OutboundReplyDelivered", "{outcome}");
        let platform_id = outcome["data"]["platform_message_id"]
            .as_str()
            .expect("the platform's id");
        assert_eq!(
            accepted.get(platform_id),
            Some(&reply.text.as_str()),
            "{platform_id} is not an id the platform gave {}",
            reply.text
        );
        match times_accepted {
            1 => {}
            2 => {
                assert!(
                    !before_kill,
                    "{} was sent again though its outcome was in the log before the kill",
                    reply.text
                );
                duplicates.push((reply.customer, reply.text.as_str()));
            }
            n => panic!("{} accepted {n} times", reply.text),
        }
    }
    assert!(
        settled_before_kill < REPLIES,
        "the kill came after every reply was settled"
    );
    assert!(
        duplicates.len() <= parley_app::reactions::CONCURRENCY,
        "{} replies sent twice: more than the dispatcher sends at once",
        duplicates.len()
    );
    // A ticket's replies go out one after another: one at most was in flight.
    let mut per_ticket: HashMap<usize, Vec<&str>> = HashMap::new();
    for (customer, text) in &duplicates {
        per_ticket.entry(*customer).or_default().push(text);
    }
    let crowded: Vec<_> = per_ticket
        .values()
        .filter(|texts| texts.len() > 1)
        .collect();
    assert!(crowded.is_empty(), "sent twice on one ticket: {crowded:?}");
    // The platform got nothing but these replies.
    let texts: HashSet<&str> = replies.values().map(|r| r.text.as_str()).collect();
    let strangers: Vec<_> = sent
        .iter()
        .filter(|s| !texts.contains(s.text.as_str()))
        .collect();
    assert!(strangers.is_empty(), "sends of no reply: {strangers:?}");
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for outcomes in outcomes.values() {
        *by_type
            .entry(outcomes[0]["type"].as_str().unwrap_or_default())
            .or_default() += 1;
    }

    eprintln!(
        "outbound crash ({url}): {REPLIES} replies on {TICKETS} tickets, {sends_at_kill} sends \
         and {settled_before_kill} outcomes before the kill, {} sends in all, outcomes \
         {by_type:?}, {} replies the platform accepted twice (in flight at the kill), {:.1?}",
        standin.total_attempts(),
        duplicates.len(),
        started.elapsed()
    );
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_recorded_once_across_a_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    webhooks_survive_a_sigkill(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_recorded_once_across_a_sigkill_on_postgres() {
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    webhooks_survive_a_sigkill(&db.url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_settle_once_across_a_sigkill_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    replies_survive_a_sigkill(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_settle_once_across_a_sigkill_on_postgres() {
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    replies_survive_a_sigkill(&db.url).await;
}
