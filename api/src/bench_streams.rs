//! `parley bench streams`: what clients that open live streams and never read cost the server.
//!
//! The real server runs in a process of its own (as in `bench http`). A customer first fills
//! its conversation with 600 messages of the largest size (20,000 four-byte characters, 80 KB
//! each). Then two phases of the same normal traffic — `--writers` agents posting messages, one
//! in ten of the largest size — are measured: without streams, then with `--streams` live
//! streams (default 200) that replay the whole log from its start (`Last-Event-ID: 0`) to
//! clients that read the response's first line and nothing more (receive buffers of 4 KiB).
//! The stalled streams are held for the whole phase (the server's send timeout is raised
//! above it, so it does not close them), which is the worst case. The second phase begins once
//! the server has settled after opening them (each stream replays the log until its
//! connection's buffers are full): `streams_settled_secs` says how long that took, and the
//! memory figure covers it.
//!
//! A third phase runs the same traffic again once the streams are closed, since a grown log
//! answers more slowly by itself. Reports the server's resident memory (sampled every 50 ms)
//! and the posts' p99 in each phase; the targets are under 300 MB and a p99 with the streams
//! within twice the baseline's.

use crate::bench::{
    BenchArgs, BenchError, Store, backend_name, cpu_secs_of, memory_mb_of, peak_rss_mb_of, round2,
};
use crate::bench_http::{
    Agent, Call, Server, expect, http_error, phase, set_up, start_server, support_agent,
    visitor_chat,
};
use hyper::body::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest message a customer may send: 20,000 characters, each four bytes in UTF-8.
fn largest_message() -> String {
    "\u{1F4E6}".repeat(parley_domain::conversation::MAX_BODY_CHARS)
}

/// Messages of the largest size in the customer's conversation before the streams open.
const LARGE_MESSAGES: usize = 600;
/// One request in this many posts the largest message.
const LARGE_EVERY: u64 = 10;

/// Samples the server's resident memory every 50 ms until dropped; the largest sample, in KiB.
struct Sampler {
    largest_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    fn start(pid: String) -> Sampler {
        let largest_kib = Arc::new(AtomicU64::new(0));
        let task = {
            let largest_kib = largest_kib.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(50));
                loop {
                    every.tick().await;
                    let kib = (memory_mb_of(&pid, "VmRSS:") * 1024.0) as u64;
                    largest_kib.fetch_max(kib, Ordering::Relaxed);
                }
            })
        };
        Sampler { largest_kib, task }
    }

    fn largest_mb(self) -> f64 {
        self.task.abort();
        round2(self.largest_kib.load(Ordering::Relaxed) as f64 / 1024.0)
    }
}

/// Waits until the server has settled after the streams opened: each replays the log until its
/// connection's buffers are full, then waits. Settled is a half second in which the server used
/// under a twentieth of a core (at most a minute); answers how long that took.
async fn quiet(pid: &str) -> Duration {
    let started = std::time::Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(500));
    every.tick().await;
    let mut before = cpu_secs_of(pid);
    while started.elapsed() < Duration::from_secs(60) {
        every.tick().await;
        let now = cpu_secs_of(pid);
        if now - before < 0.025 {
            break;
        }
        before = now;
    }
    started.elapsed()
}

/// A live stream whose client read the status line and nothing more.
async fn stalled_stream(server: &Server, token: &str) -> Result<tokio::net::TcpStream, BenchError> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stream = socket.connect(server.addr).await?;
    let request = format!(
        "GET /api/v1/stream HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
         Last-Event-ID: 0\r\n\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await?;
    let mut status = [0u8; 12];
    stream.read_exact(&mut status).await?;
    if &status != b"HTTP/1.1 200" {
        return Err(BenchError::Invalid(format!(
            "a stream was refused: {}",
            String::from_utf8_lossy(&status)
        )));
    }
    Ok(stream)
}

/// The measured traffic: agents post messages, one in [`LARGE_EVERY`] of the largest size.
fn traffic(
    agents: &[Agent],
    requests: u64,
    server: &Server,
) -> impl Future<Output = Result<crate::bench_http::Phase, BenchError>> {
    let small = Bytes::from(json!({"body": "Thanks, the parcel left this morning."}).to_string());
    let large = Bytes::from(json!({"body": largest_message()}).to_string());
    phase(server, agents, requests, move |agent, n| Call {
        method: hyper::Method::POST,
        path: format!(
            "/api/v1/conversations/{}/messages",
            agent.conversations[n as usize % agent.conversations.len()]
        ),
        body: if n % LARGE_EVERY == 0 {
            large.clone()
        } else {
            small.clone()
        },
        headers: Vec::new(),
    })
}

pub(crate) async fn streams(args: &BenchArgs) -> Result<Value, BenchError> {
    let store = Store::fresh(args).await?;
    // Stalled streams are held for the whole run: the worst case for memory.
    let server = start_server(store.url(), &["--send-timeout-secs", "3600"]).await?;
    let pid = server
        .child
        .id()
        .map(|pid| pid.to_string())
        .unwrap_or_default();
    let agents = set_up(&server, args.writers as usize).await?;
    let client = reqwest::Client::new();

    // A customer fills a conversation with the largest messages.
    let (visitor, chat) =
        visitor_chat(&server, &client, "A customer who writes a lot", "Hello").await?;
    let large = json!({"body": largest_message()});
    for _ in 0..LARGE_MESSAGES {
        expect(
            client
                .post(format!(
                    "{}/widget/v1/conversations/{chat}/messages",
                    server.base
                ))
                .bearer_auth(&visitor)
                .json(&large)
                .send()
                .await
                .map_err(http_error)?,
            "posting a large message",
        )
        .await?;
    }

    let sampler = Sampler::start(pid.clone());
    let baseline = traffic(&agents, args.events, &server).await?;
    let baseline_rss = sampler.largest_mb();

    // Stream holders: support agents, 8 streams each (the default limit per token).
    let holders = args.streams.div_ceil(8);
    let mut stalled = Vec::with_capacity(args.streams);
    let sampler = Sampler::start(pid.clone());
    for n in 0..holders {
        let token = support_agent(&server, &client, &format!("stalled streams {n}")).await?;
        for _ in 0..8.min(args.streams - stalled.len()) {
            stalled.push(stalled_stream(&server, &token).await?);
        }
    }
    let opened = quiet(&pid).await;
    let with_streams = traffic(&agents, args.events, &server).await?;
    let with_streams_rss = sampler.largest_mb();
    // The same traffic once more without them: a log that has grown answers more slowly
    // (on PostgreSQL markedly), and this phase shows by how much.
    drop(stalled);
    quiet(&pid).await;
    let after = traffic(&agents, args.events, &server).await?;
    let p99 = |phase: &crate::bench_http::Phase| {
        let mut latencies = phase.latencies_us.clone();
        crate::bench::percentile_ms(&mut latencies, 99.0)
    };
    let (baseline_p99, with_streams_p99, after_p99) =
        (p99(&baseline), p99(&with_streams), p99(&after));
    let per_sec = |phase: &crate::bench_http::Phase| {
        (phase.latencies_us.len() as f64 / phase.elapsed.as_secs_f64()).round()
    };
    let report = json!({
        "benchmark": "streams",
        "backend": backend_name(args.backend),
        "connections": args.writers,
        "requests_per_phase": args.events,
        "stalled_streams": args.streams,
        "large_messages_in_log": LARGE_MESSAGES,
        "baseline_p99_ms": baseline_p99,
        "baseline_per_sec": per_sec(&baseline),
        "baseline_failures": baseline.failures,
        "baseline_server_rss_mb": baseline_rss,
        "with_streams_p99_ms": with_streams_p99,
        "with_streams_per_sec": per_sec(&with_streams),
        "with_streams_failures": with_streams.failures,
        "with_streams_server_rss_mb": with_streams_rss,
        "streams_settled_secs": round2(opened.as_secs_f64()),
        "p99_ratio": round2(with_streams_p99 / baseline_p99.max(0.001)),
        "after_p99_ms": after_p99,
        "after_per_sec": per_sec(&after),
        "after_failures": after.failures,
        "p99_ratio_to_after": round2(with_streams_p99 / after_p99.max(0.001)),
        "server_peak_rss_mb": peak_rss_mb_of(&pid),
    });
    drop(server);
    Ok(report)
}
