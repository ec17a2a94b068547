//! Live streams (Server-Sent Events) and the event feed: who sees which events, and resuming
//! exactly where a client left off.

use crate::helpers::{Backend, TestApp, expect, spawn_app};
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for one streamed event.
const EVENT_WITHIN: Duration = Duration::from_secs(10);

/// An open Server-Sent Events response, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Opens `path` as `token`, resuming after `last_event_id` if given.
    pub async fn open(app: &TestApp, token: &str, path: &str, last_event_id: Option<u64>) -> Self {
        let mut request = app
            .client
            .get(format!("{}{path}", app.address))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("the server answers");
        assert_eq!(response.status(), 200, "opening {path}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's data (keep-alive comments skipped); its SSE id is its position.
    pub async fn next(&mut self) -> Value {
        tokio::time::timeout(EVENT_WITHIN, self.read())
            .await
            .expect("an event arrives in time")
    }

    /// Waits until the server ends the stream, failing if an event arrives first.
    pub async fn ends(&mut self, within: Duration) {
        let end = async {
            loop {
                match self.response.chunk().await {
                    Ok(Some(chunk)) => {
                        let text = String::from_utf8_lossy(&chunk);
                        assert!(
                            !text.contains("data:"),
                            "an event arrived before the stream ended: {text}"
                        );
                    }
                    Ok(None) | Err(_) => return,
                }
            }
        };
        tokio::time::timeout(within, end)
            .await
            .expect("the stream ends in time");
    }

    async fn read(&mut self) -> Value {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|line| line.strip_prefix(name))
                        .map(|value| value.strip_prefix(' ').unwrap_or(value))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let data = field("data:");
                if data.is_empty() {
                    continue;
                }
                let event: Value = serde_json::from_str(&data).expect("JSON data");
                assert_eq!(
                    field("id:"),
                    event["position"].to_string(),
                    "the SSE id is the position"
                );
                return event;
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

/// Starts a widget conversation as `token`; its id and the position of its first message.
pub(crate) async fn start_chat(app: &TestApp, token: &str, body: &str) -> (String, u64) {
    let response = app
        .post_as(token, "/widget/v1/conversations", &json!({"body": body}))
        .await;
    assert_eq!(response.status(), 201);
    let reply: Value = response.json().await.unwrap();
    (
        reply["id"].as_str().unwrap().to_owned(),
        reply["position"].as_u64().unwrap(),
    )
}

/// A visitor's message in conversation `id`; its position.
pub(crate) async fn visitor_writes(app: &TestApp, token: &str, id: &str, body: &str) -> u64 {
    let response = app
        .post_as(
            token,
            &format!("/widget/v1/conversations/{id}/messages"),
            &json!({"body": body}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let reply: Value = response.json().await.unwrap();
    reply["position"].as_u64().unwrap()
}

async fn the_stream_resumes_after_last_event_id(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, visitor, _) = app.widget_visitor().await;
    let (id, first) = start_chat(&app, &visitor, "Hello").await;
    let second = visitor_writes(&app, &visitor, &id, "Anyone there?").await;

    // Resuming after the conversation's start: exactly the events after it, then live ones.
    let mut stream = EventStream::open(&app, &app.admin, "/api/v1/stream", Some(first - 1)).await;
    let event = stream.next().await;
    assert_eq!(event["position"], first);
    assert_eq!(event["type"], "MessageSent");
    assert_eq!(event["stream"], format!("conversation-{id}"));
    assert_eq!(event["data"]["body"], "Hello");
    assert_eq!(event["data"]["visibility"], "public");
    assert_eq!(event["metadata"]["channel"], "widget");
    assert_eq!(event["metadata"]["actor"]["kind"], "customer");
    assert_eq!(event["metadata"]["actor"]["id"], customer.as_str());
    assert!(event["recorded_at"].as_i64().unwrap() > 0);
    assert_eq!(stream.next().await["position"], second);
    let third = visitor_writes(&app, &visitor, &id, "Hello?").await;
    assert_eq!(stream.next().await["position"], third);

    // Without Last-Event-ID, only what happens after connecting.
    let mut fresh = EventStream::open(&app, &app.admin, "/api/v1/stream", None).await;
    let fourth = visitor_writes(&app, &visitor, &id, "Still here").await;
    assert_eq!(fresh.next().await["position"], fourth);

    // One conversation only: from the log's beginning, its first event is its start.
    let mut only = EventStream::open(
        &app,
        &app.admin,
        &format!("/api/v1/stream?conversation={id}"),
        Some(0),
    )
    .await;
    let started = only.next().await;
    assert_eq!(started["type"], "ConversationStarted");
    assert_eq!(started["position"], first - 1);
    assert_eq!(only.next().await["position"], first);

    for bad in ["soon", "-1"] {
        let response = app
            .client
            .get(format!("{}/api/v1/stream", app.address))
            .bearer_auth(&app.admin)
            .header("Last-Event-ID", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
    let beyond = app
        .client
        .get(format!("{}/api/v1/stream", app.address))
        .bearer_auth(&app.admin)
        .header("Last-Event-ID", (fourth + 1_000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), 400);
    let unknown = app
        .get_as(
            &app.admin,
            "/api/v1/stream?conversation=01890000-0000-7000-8000-00000000dead",
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

async fn agents_without_support_do_not_see_customer_conversations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let (_, visitor, before) = app.widget_visitor().await;
    let (id, _) = start_chat(&app, &visitor, "Hello").await;
    visitor_writes(&app, &visitor, &id, "Hello?").await;

    let mut stream = EventStream::open(&app, &agent, "/api/v1/stream", Some(before)).await;
    // Neither the chat nor customer records reach this agent: the next event it may see is a
    // ticket's creation.
    let _ = app.widget_visitor().await;
    let ticket = expect(
        app.post_as(
            &app.admin,
            "/api/v1/tickets",
            &json!({"title": "Printer on fire"}),
        )
        .await,
        201,
    )
    .await;
    let event = stream.next().await;
    assert_eq!(event["type"], "TicketCreated");
    assert_eq!(
        event["stream"],
        format!("ticket-{}", ticket["id"].as_str().unwrap())
    );

    let response = app
        .get_as(&agent, &format!("/api/v1/stream?conversation={id}"))
        .await;
    assert_eq!(response.status(), 404);
}

async fn internal_conversations_stream_to_their_members_only(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, ana) = app.support_agent().await;
    let (ben_id, ben) = app.agent(false).await;
    let (_, carla) = app.support_agent().await;
    let mut to_ben = EventStream::open(&app, &ben, "/api/v1/stream", None).await;
    let mut to_carla = EventStream::open(&app, &carla, "/api/v1/stream", None).await;

    let response = app
        .post_as(
            &ana,
            "/api/v1/conversations",
            &json!({"kind": "internal", "members": [ben_id], "subject": "Between us",
                    "message": {"body": "psst"}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let started: Value = response.json().await.unwrap();
    let id = started["id"].as_str().unwrap();
    let (customer, _, _) = app.widget_visitor().await;
    expect(
        app.post_as(
            &app.admin,
            "/api/v1/tickets",
            &json!({"title": "After the chat"}),
        )
        .await,
        201,
    )
    .await;

    let started = to_ben.next().await;
    assert_eq!(started["type"], "ConversationStarted");
    assert_eq!(started["stream"], format!("conversation-{id}"));
    assert_eq!(to_ben.next().await["data"]["body"], "psst");
    // Ben, without the support flag, sees no customer records: the ticket comes next.
    assert_eq!(to_ben.next().await["type"], "TicketCreated");
    // Carla sees every customer conversation, but not this one.
    let first = to_carla.next().await;
    assert_eq!(first["type"], "CustomerCreated");
    assert_eq!(first["stream"], format!("customer-{customer}"));
    let response = app
        .get_as(&carla, &format!("/api/v1/stream?conversation={id}"))
        .await;
    assert_eq!(response.status(), 404);
    // Nor does an admin who is no agent (nor a member).
    let response = app
        .get_as(&app.admin, &format!("/api/v1/stream?conversation={id}"))
        .await;
    assert_eq!(response.status(), 404);
}

async fn the_widget_stream_follows_one_own_conversation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, visitor, _) = app.widget_visitor().await;
    let (id, first) = start_chat(&app, &visitor, "Hello").await;
    let path = format!("/widget/v1/conversations/{id}/stream");

    // Another visitor's chat goes on meanwhile; it never shows.
    let (_, other, _) = app.widget_visitor().await;
    let (elsewhere, _) = start_chat(&app, &other, "Unrelated").await;
    visitor_writes(&app, &other, &elsewhere, "Unrelated again").await;

    let mut stream = EventStream::open(&app, &visitor, &path, Some(first - 1)).await;
    let event = stream.next().await;
    assert_eq!(event["position"], first, "the start itself is not shown");
    assert_eq!(event["data"]["body"], "Hello");
    let next = visitor_writes(&app, &visitor, &id, "More").await;
    assert_eq!(stream.next().await["position"], next);

    assert_eq!(app.get_as(&other, &path).await.status(), 404);
    assert_eq!(app.get_as(&app.admin, &path).await.status(), 403);
}

async fn the_feed_pages_through_the_log(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let integration = app.mint(json!({"role": "integration"})).await;
    let (_, visitor, _) = app.widget_visitor().await;
    let (id, _) = start_chat(&app, &visitor, "Hello").await;
    let last = visitor_writes(&app, &visitor, &id, "Hello?").await;

    let mut events = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let response = app
            .get_as(
                &integration,
                &format!("/api/v1/events?after={after}&limit=2"),
            )
            .await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        pages += 1;
        let page_events = page["events"].as_array().unwrap();
        assert!(page_events.len() <= 2);
        events.extend(page_events.iter().cloned());
        after = page["next_after"].as_u64().unwrap();
        if page["has_more"] == false {
            break;
        }
        assert!(pages < 100, "the feed ends");
    }
    assert_eq!(after, last, "the last page ends at the log's head");
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(
        events
            .iter()
            .all(|e| !e["stream"].as_str().unwrap().starts_with("token-")),
        "token events are never shown"
    );
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "CustomerCreated",
            "ConversationStarted",
            "MessageSent",
            "MessageSent"
        ]
    );

    // The same page, read again, is the same.
    let again: Value = app
        .get_as(&app.admin, "/api/v1/events?after=0&limit=1000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["events"], Value::Array(events));
    assert_eq!(again["has_more"], false);

    let (_, agent) = app.support_agent().await;
    assert_eq!(app.get_as(&agent, "/api/v1/events").await.status(), 403);
    assert_eq!(app.get_as(&visitor, "/api/v1/events").await.status(), 403);
    for bad in ["limit=0", "limit=1001", "after=-1", "since=3"] {
        let response = app
            .get_as(&integration, &format!("/api/v1/events?{bad}"))
            .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
}

/// An open live stream does not hold the server up: shutting down ends it.
async fn shutdown_ends_open_streams(backend: Backend) {
    let Some(mut app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let mut stream = app.get_as(&agent, "/api/v1/stream").await;
    assert_eq!(stream.status(), 200);
    assert!(
        app.shut_down(Duration::from_secs(10)).await,
        "the server stops although a live stream is open"
    );
    // The stream ended with the server.
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}

#[tokio::test]
async fn shutdown_on_sqlite() {
    shutdown_ends_open_streams(Backend::Sqlite).await;
}

#[tokio::test]
async fn shutdown_on_postgres() {
    shutdown_ends_open_streams(Backend::Postgres).await;
}

#[tokio::test]
async fn resume_on_sqlite() {
    the_stream_resumes_after_last_event_id(Backend::Sqlite).await;
}

#[tokio::test]
async fn resume_on_postgres() {
    the_stream_resumes_after_last_event_id(Backend::Postgres).await;
}

#[tokio::test]
async fn stream_visibility_on_sqlite() {
    agents_without_support_do_not_see_customer_conversations(Backend::Sqlite).await;
}

#[tokio::test]
async fn stream_visibility_on_postgres() {
    agents_without_support_do_not_see_customer_conversations(Backend::Postgres).await;
}

#[tokio::test]
async fn widget_stream_on_sqlite() {
    the_widget_stream_follows_one_own_conversation(Backend::Sqlite).await;
}

#[tokio::test]
async fn widget_stream_on_postgres() {
    the_widget_stream_follows_one_own_conversation(Backend::Postgres).await;
}

#[tokio::test]
async fn feed_on_sqlite() {
    the_feed_pages_through_the_log(Backend::Sqlite).await;
}

#[tokio::test]
async fn feed_on_postgres() {
    the_feed_pages_through_the_log(Backend::Postgres).await;
}

#[tokio::test]
async fn internal_stream_on_sqlite() {
    internal_conversations_stream_to_their_members_only(Backend::Sqlite).await;
}

#[tokio::test]
async fn internal_stream_on_postgres() {
    internal_conversations_stream_to_their_members_only(Backend::Postgres).await;
}
