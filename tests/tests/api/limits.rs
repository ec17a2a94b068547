//! Clients that misbehave cost the server bounded resources: live streams are limited per
//! token and per visitors' address, a revoked token's open streams end at once (on every node),
//! and connections that never speak, stay idle, or stop reading are closed.

use crate::helpers::{Backend, TestApp, expect, problem, spawn_app, spawn_app_with};
use crate::live::{EventStream, start_chat, visitor_writes};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn open_stream(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .expect("the server answers")
}

async fn streams_are_limited_per_token_and_per_visitors_address(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.streams_per_token = 2;
        config.streams_per_address = 3;
    })
    .await
    else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let _first = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    let _second = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    let refused = problem(
        open_stream(&app, &agent, "/api/v1/stream").await,
        429,
        "too-many-streams",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("token"));
    // Another token has places of its own.
    let (_, other) = app.support_agent().await;
    let _third = EventStream::open(&app, &other, "/api/v1/stream", None).await;

    // Widget visitors from one address share its places, whatever their tokens.
    let mut held = Vec::new();
    for n in 0..3 {
        let (_, visitor, _) = app.widget_visitor().await;
        let (chat, _) = start_chat(&app, &visitor, &format!("Question {n}")).await;
        let path = format!("/widget/v1/conversations/{chat}/stream");
        held.push(EventStream::open(&app, &visitor, &path, None).await);
    }
    let (_, visitor, _) = app.widget_visitor().await;
    let (chat, _) = start_chat(&app, &visitor, "One more").await;
    let refused = problem(
        open_stream(
            &app,
            &visitor,
            &format!("/widget/v1/conversations/{chat}/stream"),
        )
        .await,
        429,
        "too-many-streams",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("address"));
}

/// Revokes `token_id` as the admin of `app`.
async fn revoke(app: &TestApp, token_id: &str) {
    expect(app.revoke(token_id).await, 200).await;
}

async fn a_revoked_tokens_open_streams_end_at_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let me = expect(app.get_as(&agent, "/api/v1/tokens/me").await, 200).await;
    let (_, visitor, _) = app.widget_visitor().await;
    let visitor_me = expect(app.get_as(&visitor, "/api/v1/tokens/me").await, 200).await;
    let (chat, _) = start_chat(&app, &visitor, "Hello").await;
    let mut staff = EventStream::open(&app, &agent, "/api/v1/stream", None).await;
    let mut own = EventStream::open(
        &app,
        &visitor,
        &format!("/widget/v1/conversations/{chat}/stream"),
        None,
    )
    .await;
    // The streams work until then.
    visitor_writes(&app, &visitor, &chat, "Anyone there?").await;
    assert_eq!(staff.next().await["type"], "MessageSent");
    assert_eq!(own.next().await["type"], "MessageSent");

    revoke(&app, me["token_id"].as_str().unwrap()).await;
    revoke(&app, visitor_me["token_id"].as_str().unwrap()).await;
    let revoked_at = Instant::now();
    // Events after the revocation reach neither stream: both end.
    let (_, other) = app.support_agent().await;
    let reply = app
        .post_as(
            &other,
            &format!("/api/v1/conversations/{chat}/messages"),
            &json!({"body": "Still here?"}),
        )
        .await;
    expect(reply, 201).await;
    staff.ends(Duration::from_secs(5)).await;
    own.ends(Duration::from_secs(5)).await;
    assert!(
        revoked_at.elapsed() < Duration::from_secs(2),
        "the streams ended {:?} after the revocation",
        revoked_at.elapsed()
    );
}

/// PostgreSQL: a stream open on one node ends when its token is revoked through another.
#[tokio::test]
async fn a_revocation_on_one_node_ends_streams_on_another() {
    let Some(first) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let second = first.another_node().await;
    let (_, agent) = first.support_agent().await;
    let me = expect(first.get_as(&agent, "/api/v1/tokens/me").await, 200).await;
    let mut stream = EventStream::open(&first, &agent, "/api/v1/stream", None).await;
    revoke(&second, me["token_id"].as_str().unwrap()).await;
    let revoked_at = Instant::now();
    stream.ends(Duration::from_secs(5)).await;
    assert!(
        revoked_at.elapsed() < Duration::from_secs(2),
        "the stream ended {:?} after the revocation",
        revoked_at.elapsed()
    );
}

on_both_backends! {
    streams_are_limited_per_token_and_per_visitors_address => streams_limited_on_sqlite, streams_limited_on_postgres;
    a_revoked_tokens_open_streams_end_at_once => revoked_streams_end_on_sqlite, revoked_streams_end_on_postgres;
}

// Connections: the same on both backends, so tested on the embedded one.

/// A raw connection to the server.
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .expect("connects")
}

/// Reads until the server closes the connection (or resets it); what it read.
async fn until_closed(socket: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut read = Vec::new();
    let closed = async {
        let mut buffer = [0u8; 64 * 1024];
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(within, closed)
        .await
        .expect("the server closes the connection in time");
    read
}

#[tokio::test]
async fn connections_that_never_speak_or_idle_are_closed() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.header_read_timeout_secs = 1;
        config.keep_alive_timeout_secs = 2;
    })
    .await
    .unwrap();
    // Never a byte.
    let mut silent = connect(&app).await;
    // Half a request's head, then nothing.
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: parley\r\n")
        .await
        .unwrap();
    // A whole request, answered, then idle on a kept-alive connection.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: parley\r\n\r\n")
        .await
        .unwrap();

    let started = Instant::now();
    assert!(
        until_closed(&mut silent, Duration::from_secs(10))
            .await
            .is_empty()
    );
    assert!(
        until_closed(&mut slow, Duration::from_secs(10))
            .await
            .is_empty()
    );
    let answered = until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "the request was answered"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the idle connection was kept for its keep-alive timeout"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.max_connections = 2)
        .await
        .unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: parley\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut socket = connect(&app).await;
        socket.write_all(request).await.unwrap();
        let mut answer = [0u8; 12];
        socket.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        held.push(socket);
    }
    // The third connects (the listen backlog takes it) but is not served...
    let mut third = connect(&app).await;
    third.write_all(request).await.unwrap();
    let mut answer = [0u8; 12];
    let waited =
        tokio::time::timeout(Duration::from_millis(500), third.read_exact(&mut answer)).await;
    assert!(waited.is_err(), "served beyond the cap");
    // ... until one of the two closes.
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(10), third.read_exact(&mut answer))
        .await
        .expect("served once a place is free")
        .unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

/// How many connections the server closed for `reason`, as `/metrics` counts them.
async fn closed_for(app: &TestApp, reason: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let series = format!("parley_connections_closed_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_stream_whose_client_stopped_reading_is_closed() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.send_timeout_secs = 2)
        .await
        .unwrap();
    let before = closed_for(&app, "send-timeout").await;
    let (_, agent) = app.support_agent().await;
    let (_, visitor, _) = app.widget_visitor().await;
    let (chat, _) = start_chat(&app, &visitor, "Hello").await;

    // A client with a small receive window that reads the response's head and then nothing.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let address = app.address.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    stalled
        .write_all(
            format!(
                "GET /api/v1/stream HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer {agent}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Far more than the socket buffers hold, in the largest messages there are.
    let body = "x".repeat(20_000);
    let mut sent = 0;
    for _ in 0..200 {
        visitor_writes(&app, &visitor, &chat, &body).await;
        sent += body.len();
    }
    // The server gives up on the client; nothing announces it but its metrics.
    let gave_up = async {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        while closed_for(&app, "send-timeout").await <= before {
            every.tick().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), gave_up)
        .await
        .expect("the stalled connection is closed");
    let received = until_closed(&mut stalled, Duration::from_secs(10)).await;
    assert!(
        received.len() < sent,
        "the stream stopped early: {} of {sent} bytes",
        received.len()
    );
}
