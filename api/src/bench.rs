//! `parley bench append|replay`: throughput, latency and memory of the event log, measured
//! on real databases. Each run prints a human summary and, with `--json`, one JSON object on
//! its last line.
//!
//! - `append`: W writers each append single events to streams of their own (optimistic
//!   concurrency with the exact expected version), N events in all, through group commit.
//!   In the same run it measures the naive baseline (one transaction per append) on a fresh
//!   database and, on PostgreSQL, a raw single-row INSERT loop of the same rows into a table
//!   shaped like `events`, at the same concurrency.
//! - `commands`: "send a message" commands through the application service (load the
//!   stream, decide, append), conversations of 10 messages each, W agents at once; measured
//!   with the service's aggregate cache (the default) and without it (every command reads its
//!   stream), each on a fresh log.
//! - `replay`: fills a fresh log with N events, reopens it, then reads and decodes the whole
//!   log in pages; peak memory is measured over the replay alone.

use clap::{Args, Subcommand, ValueEnum};
use parley_eventlog::codec::{self, CodecError, EventCodec};
use parley_eventlog::scratch::ScratchDatabase;
use parley_eventlog::{
    EventLog, ExpectedVersion, LogError, LogOptions, Metadata, NewEvent, Position, StreamId,
    StreamVersion,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append throughput and latency, with the naive (and on PostgreSQL the raw INSERT) baseline.
    Append(BenchArgs),
    /// Read and decode the whole log.
    Replay(BenchArgs),
    /// "Send a message" commands through the application service (load, decide, append),
    /// conversations of 10 messages each; `--events` is the number of commands.
    Commands(BenchArgs),
    /// Fill a log with a realistic history (a mix of every action) and rebuild every read
    /// model from it; then time inbox queries. `--events` is the size of the log.
    Rebuild(BenchArgs),
    /// The server over HTTP: `--writers` keep-alive connections (default 64) post messages,
    /// then read inbox pages; `--events` requests of each kind.
    Http(BenchArgs),
    /// What live streams whose clients never read cost: the server's memory and the p99 of
    /// normal traffic (`--writers` agents, `--events` posts per phase) without and with
    /// `--streams` stalled streams replaying a log of the largest messages.
    Streams(BenchArgs),
    /// A platform's signed webhooks into the server (`--writers` connections, `--events`
    /// webhooks of `--platform`), the latency until each message shows on its ticket in an
    /// agent's live stream, then `--replies` replies dispatched to a stand-in of the platform.
    Webhooks(BenchArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: Backend,
    /// Events to append (append) or to fill the log with and replay (replay).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 64)]
    pub writers: u64,
    /// SQLite: the database file to use (default: a fresh temporary file). PostgreSQL: the
    /// server to use (default: `DATABASE_URL`, then the local one); each phase runs in a
    /// fresh database created there and dropped afterwards.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Events for the naive baseline of `append` (it is slow; the rate does not need many).
    #[arg(long, default_value_t = 10_000)]
    pub naive_events: u64,
    /// SQLite only: `full` (durable commits, the default) or `normal`.
    #[arg(long, default_value = "full")]
    pub durability: parley_eventlog::Durability,
    /// Measure only, on the log at `--database-url` (used by `replay` and `rebuild` for their
    /// measuring process).
    #[arg(long, hide = true)]
    pub replay_only: bool,
    /// `rebuild` only: the read models to rebuild, comma-separated (default: all).
    #[arg(long)]
    pub only: Option<String>,
    /// `streams` only: live streams that never read.
    #[arg(long, default_value_t = 200)]
    pub streams: usize,
    /// `webhooks` only: the platform (`whatsapp`, `messenger`, `line`, `wechat`, `x`).
    #[arg(long, default_value = "whatsapp")]
    pub platform: String,
    /// `webhooks` only: replies for the dispatcher to send.
    #[arg(long, default_value_t = 20_000)]
    pub replies: u64,
    /// Print one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("a benchmark task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Invalid(String),
}

pub async fn run(command: BenchCommand) -> Result<(), BenchError> {
    let (name, args) = match &command {
        BenchCommand::Append(args) => ("append", args),
        BenchCommand::Replay(args) => ("replay", args),
        BenchCommand::Commands(args) => ("commands", args),
        BenchCommand::Rebuild(args) => ("rebuild", args),
        BenchCommand::Http(args) => ("http", args),
        BenchCommand::Streams(args) => ("streams", args),
        BenchCommand::Webhooks(args) => ("webhooks", args),
    };
    if args.events == 0 || args.writers == 0 {
        return Err(BenchError::Invalid(
            "--events and --writers must be at least 1".into(),
        ));
    }
    let report = match &command {
        BenchCommand::Append(args) => append(args).await?,
        BenchCommand::Replay(args) => replay(args).await?,
        BenchCommand::Commands(args) => commands(args).await?,
        BenchCommand::Http(args) => crate::bench_http::http(args).await?,
        BenchCommand::Streams(args) => crate::bench_streams::streams(args).await?,
        BenchCommand::Webhooks(args) => crate::bench_webhooks::webhooks(args).await?,
        BenchCommand::Rebuild(args) => {
            let measure_only = args
                .replay_only
                .then_some(args.database_url.as_deref())
                .flatten();
            crate::bench_rebuild::rebuild(args, measure_only).await?
        }
    };
    eprintln!("parley bench {name}:");
    if let serde_json::Value::Object(fields) = &report {
        for (key, value) in fields {
            eprintln!("  {key:<28} {value}");
        }
    }
    if args.json {
        println!("{report}");
    }
    Ok(())
}

/// A fresh place to put a log for one phase of a benchmark.
pub(crate) enum Store {
    Sqlite {
        url: String,
        _dir: Option<tempfile::TempDir>,
    },
    Postgres(ScratchDatabase),
}

impl Store {
    pub(crate) async fn fresh(args: &BenchArgs) -> Result<Store, BenchError> {
        match args.backend {
            Backend::Sqlite => match &args.database_url {
                Some(url) => Ok(Store::Sqlite {
                    url: url.clone(),
                    _dir: None,
                }),
                None => {
                    let dir = tempfile::tempdir()?;
                    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                    Ok(Store::Sqlite {
                        url,
                        _dir: Some(dir),
                    })
                }
            },
            Backend::Postgres => {
                let server = args
                    .database_url
                    .clone()
                    .or_else(|| std::env::var("DATABASE_URL").ok())
                    .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let db = ScratchDatabase::create(&server, "parley_bench").await?;
                // Creating and dropping databases makes the server checkpoint; start every
                // phase right after a checkpoint, so that all phases pay the same full-page
                // writes and none is cut by a checkpoint (best effort: needs a privileged role).
                if let Ok(mut conn) = sqlx::PgConnection::connect(&db.url).await {
                    let _ = sqlx::query("CHECKPOINT").execute(&mut conn).await;
                    let _ = conn.close().await;
                }
                Ok(Store::Postgres(db))
            }
        }
    }

    pub(crate) fn url(&self) -> &str {
        match self {
            Store::Sqlite { url, .. } => url,
            Store::Postgres(db) => &db.url,
        }
    }

    pub(crate) async fn open(&self, options: LogOptions) -> Result<Arc<dyn EventLog>, BenchError> {
        Ok(parley_eventlog::open(self.url(), options).await?)
    }
}

fn options(args: &BenchArgs, group_commit: bool) -> LogOptions {
    LogOptions {
        group_commit,
        durability: args.durability,
        ..LogOptions::default()
    }
}

/// The event the benchmarks write: shaped like a chat message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageSent {
    pub conversation_id: Uuid,
    pub message_id: Uuid,
    pub author_id: String,
    pub body: String,
    pub internal: bool,
}

pub enum BenchEvent {
    MessageSent(MessageSent),
}

impl EventCodec for BenchEvent {
    fn event_type(&self) -> &'static str {
        "MessageSent"
    }
    fn current_schema_version(event_type: &str) -> Option<u16> {
        (event_type == "MessageSent").then_some(1)
    }
    fn encode_payload(&self) -> Result<Vec<u8>, CodecError> {
        let BenchEvent::MessageSent(m) = self;
        codec::to_msgpack("MessageSent", m)
    }
    fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Self, CodecError> {
        match event_type {
            "MessageSent" => Ok(BenchEvent::MessageSent(codec::from_msgpack(
                event_type, 1, payload,
            )?)),
            other => Err(CodecError::UnknownEventType {
                event_type: other.to_owned(),
            }),
        }
    }
}

fn message(conversation: Uuid, n: u64) -> Result<parley_eventlog::NewEvent, CodecError> {
    let event = BenchEvent::MessageSent(MessageSent {
        conversation_id: conversation,
        message_id: Uuid::now_v7(),
        author_id: format!("agent-{}", n % 50),
        body: format!(
            "Hello, thanks for reaching out about order #{n}. I have checked the shipment and \
             it leaves our warehouse today."
        ),
        internal: n.is_multiple_of(7),
    });
    codec::new_event(Uuid::now_v7(), &event, Metadata::default())
}

/// What a timed run of appends measured.
struct Measured {
    events: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Measured {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&mut self, p: f64) -> f64 {
        percentile_ms(&mut self.latencies_us, p)
    }
}

pub(crate) fn percentile_ms(values_us: &mut [u64], p: f64) -> f64 {
    if values_us.is_empty() {
        return 0.0;
    }
    values_us.sort_unstable();
    let rank = ((p / 100.0) * (values_us.len() - 1) as f64).round() as usize;
    values_us[rank.min(values_us.len() - 1)] as f64 / 1000.0
}

/// `writers` tasks append `events_per_append` events at a time to 16 streams of their own
/// each, with the exact expected version, until `total` events are written.
async fn append_load(
    log: Arc<dyn EventLog>,
    total: u64,
    writers: u64,
    events_per_append: u64,
) -> Result<Measured, BenchError> {
    let run = Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            let run = run.clone();
            let share = total / writers + u64::from(w < total % writers);
            tokio::spawn(async move {
                let streams: Vec<(StreamId, Uuid)> = (0..16)
                    .map(|k| {
                        let id = Uuid::new_v4();
                        StreamId::new(format!("conversation-{run}-{w}-{k}")).map(|s| (s, id))
                    })
                    .collect::<Result<_, _>>()?;
                let templates = streams
                    .iter()
                    .enumerate()
                    .map(|(k, (_, conversation))| message(*conversation, k as u64))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut versions = [StreamVersion::NONE; 16];
                let mut latencies = Vec::with_capacity((share / events_per_append + 1) as usize);
                let mut written = 0;
                let mut i = 0usize;
                while written < share {
                    let count = events_per_append.min(share - written);
                    let k = i % streams.len();
                    let (stream, _) = &streams[k];
                    // Payloads are encoded once per stream and copied, so the load measures
                    // the log, not the encoder; every event still gets its own id.
                    let events = (0..count)
                        .map(|_| NewEvent {
                            event_id: Uuid::now_v7(),
                            ..templates[k].clone()
                        })
                        .collect::<Vec<_>>();
                    let expected = match versions[k] {
                        StreamVersion::NONE => ExpectedVersion::NoStream,
                        v => ExpectedVersion::Exact(v),
                    };
                    let start = Instant::now();
                    let result = log.append(stream, expected, events).await?;
                    latencies.push(start.elapsed().as_micros() as u64);
                    versions[k] = result.stream_version;
                    written += count;
                    i += 1;
                }
                Ok::<_, BenchError>(latencies)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    Ok(Measured {
        events: total,
        elapsed: started.elapsed(),
        latencies_us,
    })
}

async fn append(args: &BenchArgs) -> Result<serde_json::Value, BenchError> {
    let store = Store::fresh(args).await?;
    let log = store.open(options(args, true)).await?;
    let mut grouped = append_load(log.clone(), args.events, args.writers, 1).await?;
    log.close().await;
    drop(store);

    let naive_store = Store::fresh(args).await?;
    let naive_log = naive_store.open(options(args, false)).await?;
    let naive_events = args.naive_events.min(args.events).max(args.writers);
    let naive = append_load(naive_log.clone(), naive_events, args.writers, 1).await?;
    naive_log.close().await;
    drop(naive_store);

    let mut report = json!({
        "benchmark": "append",
        "backend": backend_name(args.backend),
        "events": args.events,
        "writers": args.writers,
        "durability": args.durability.to_string(),
        "events_per_sec": grouped.events_per_sec().round(),
        "p50_ms": grouped.percentile_ms(50.0),
        "p99_ms": grouped.percentile_ms(99.0),
        "naive_events": naive_events,
        "naive_events_per_sec": naive.events_per_sec().round(),
        "speedup": round2(grouped.events_per_sec() / naive.events_per_sec()),
    });
    if args.backend == Backend::Postgres {
        let raw = raw_insert_loop(args).await?;
        report["raw_insert_events_per_sec"] = json!(raw.events_per_sec().round());
        report["ratio_to_raw"] = json!(round2(grouped.events_per_sec() / raw.events_per_sec()));
    }
    report["peak_rss_mb"] = json!(peak_rss_mb());
    Ok(report)
}

/// The same rows inserted one per transaction by `writers` connections into a table shaped
/// like `events` (same columns, keys and indexes), with no checks and no batching: what the
/// database itself can do at this concurrency.
async fn raw_insert_loop(args: &BenchArgs) -> Result<Measured, BenchError> {
    let store = Store::fresh(args).await?;
    // Opening the log applies the migrations, so `events` exists to copy the shape of.
    store.open(LogOptions::default()).await?.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(args.writers as u32)
        .connect(store.url())
        .await?;
    sqlx::query("CREATE TABLE raw_events (LIKE events INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.writers)
        .map(|w| {
            let pool = pool.clone();
            let share = args.events / args.writers + u64::from(w < args.events % args.writers);
            tokio::spawn(async move {
                let conversation = Uuid::new_v4();
                let stream = format!("conversation-raw-{w}");
                let metadata = codec::to_msgpack("metadata", &Metadata::default())?;
                let mut latencies = Vec::with_capacity(share as usize);
                for n in 0..share {
                    let event = message(conversation, n)?;
                    let start = Instant::now();
                    sqlx::query(
                        "INSERT INTO raw_events (stream_id, version, event_id, event_type, \
                         schema_version, recorded_at, metadata, payload, append_index, \
                         append_size) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 1)",
                    )
                    .bind(&stream)
                    .bind(n as i64 + 1)
                    .bind(event.event_id)
                    .bind(&event.event_type)
                    .bind(i32::from(event.schema_version))
                    .bind(parley_eventlog::Timestamp::now().as_micros())
                    .bind(&metadata)
                    .bind(&event.payload)
                    .execute(&pool)
                    .await?;
                    latencies.push(start.elapsed().as_micros() as u64);
                }
                Ok::<_, BenchError>(latencies)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await??);
    }
    let measured = Measured {
        events: args.events,
        elapsed: started.elapsed(),
        latencies_us,
    };
    pool.close().await;
    Ok(measured)
}

async fn replay(args: &BenchArgs) -> Result<serde_json::Value, BenchError> {
    if args.replay_only {
        let url = args
            .database_url
            .clone()
            .ok_or_else(|| BenchError::Invalid("--replay-only needs --database-url".into()))?;
        let log = parley_eventlog::open(&url, options(args, true)).await?;
        let report = replay_log(log.clone(), args).await;
        log.close().await;
        return report;
    }
    let store = Store::fresh(args).await?;
    let fill_started = Instant::now();
    let log = store.open(options(args, true)).await?;
    // Filling is not what is measured: appends of 100 events from a few writers.
    append_load(log.clone(), args.events, args.writers.min(8), 100).await?;
    log.close().await;
    let fill_secs = fill_started.elapsed().as_secs_f64();

    let mut report = measure_in_child("replay", args, args.events, store.url(), &[]).await?;
    report["fill_secs"] = json!(round2(fill_secs));
    Ok(report)
}

/// Runs the measuring phase of `bench <name>` in a process of its own, so that its peak memory
/// is its own, not the filling's (an allocator keeps freed memory resident); returns its report.
pub(crate) async fn measure_in_child(
    name: &str,
    args: &BenchArgs,
    events: u64,
    url: &str,
    extra: &[&str],
) -> Result<serde_json::Value, BenchError> {
    let output = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", name, "--replay-only", "--json"])
        .args(["--backend", backend_name(args.backend)])
        .args(["--events", &events.to_string()])
        .args(["--database-url", url])
        .args(extra)
        .stderr(std::process::Stdio::inherit())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| {
        BenchError::Invalid(format!(
            "the {name} measuring process printed no report: {e}"
        ))
    })
}

/// Reads and decodes the whole log in pages, the next page read while this one is decoded.
async fn replay_log(
    log: Arc<dyn EventLog>,
    args: &BenchArgs,
) -> Result<serde_json::Value, BenchError> {
    const PAGE: usize = 2000;
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel(4);
    let reader = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut after = Position::START;
            loop {
                let start = Instant::now();
                let page = log.read_all(after, PAGE).await?;
                let took = start.elapsed().as_micros() as u64;
                let Some(last) = page.last() else { break };
                after = last.position;
                if pages_tx.send((page, took)).await.is_err() {
                    break;
                }
            }
            Ok::<_, LogError>(())
        })
    };
    let started = Instant::now();
    let mut events = 0u64;
    let mut body_bytes = 0usize;
    let mut page_us = Vec::new();
    while let Some((page, took)) = pages.recv().await {
        page_us.push(took);
        for recorded in &page {
            let BenchEvent::MessageSent(m) = codec::decode::<BenchEvent>(recorded)?;
            body_bytes += m.body.len();
            events += 1;
        }
    }
    reader.await??;
    let elapsed = started.elapsed();
    if events != args.events {
        return Err(BenchError::Invalid(format!(
            "replay read {events} events, the log holds {}",
            args.events
        )));
    }
    std::hint::black_box(body_bytes);
    Ok(json!({
        "benchmark": "replay",
        "backend": backend_name(args.backend),
        "events": events,
        "events_per_sec": (events as f64 / elapsed.as_secs_f64()).round(),
        "page_size": PAGE,
        "p50_ms": percentile_ms(&mut page_us, 50.0),
        "p99_ms": percentile_ms(&mut page_us, 99.0),
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// Messages per conversation in `bench commands`.
const MESSAGES_PER_CONVERSATION: u64 = 10;

async fn commands(args: &BenchArgs) -> Result<serde_json::Value, BenchError> {
    let (mut cached, conversations) =
        command_load(args, crate::service::DEFAULT_CACHE_CAPACITY).await?;
    let (uncached, _) = command_load(args, 0).await?;
    Ok(json!({
        "benchmark": "commands",
        "backend": backend_name(args.backend),
        "commands": cached.events,
        "conversations": conversations,
        "writers": args.writers,
        "durability": args.durability.to_string(),
        "commands_per_sec": cached.events_per_sec().round(),
        "p50_ms": cached.percentile_ms(50.0),
        "p99_ms": cached.percentile_ms(99.0),
        "uncached_commands_per_sec": uncached.events_per_sec().round(),
        "peak_rss_mb": peak_rss_mb(),
    }))
}

/// One run of `bench commands` on a fresh log, with a service caching up to `capacity`
/// aggregates (0: every command reads its stream from the log).
async fn command_load(args: &BenchArgs, capacity: usize) -> Result<(Measured, u64), BenchError> {
    use parley_domain::conversation::{
        Channel, Conversation, ConversationCommand, ConversationKind, SendMessage, Start,
        Visibility,
    };
    use parley_domain::ids::{AgentId, ConversationId, CustomerId, MessageId};
    use parley_domain::{Actor, Timestamp};

    let store = Store::fresh(args).await?;
    let log = store.open(options(args, true)).await?;
    let service = crate::service::CommandService::with_cache_capacity(log.clone(), capacity);
    let conversations = args.events.div_ceil(MESSAGES_PER_CONVERSATION);
    let at = Timestamp(parley_eventlog::Timestamp::now().as_micros());

    // Each writer is an agent working through conversations of its own: start them (not
    // measured), then send their messages, one command at a time (measured).
    let mut plans = Vec::new();
    for w in 0..args.writers {
        let mut mine = Vec::new();
        for c in (w..conversations).step_by(args.writers as usize) {
            let id = ConversationId(Uuid::now_v7());
            let customer = CustomerId(Uuid::now_v7());
            let stream = crate::service::CommandService::stream::<Conversation>(id)?;
            let sends = MESSAGES_PER_CONVERSATION.min(args.events - c * MESSAGES_PER_CONVERSATION);
            mine.push((stream, id, customer, sends));
        }
        plans.push(mine);
    }
    let metadata = Metadata::default();
    let setup: Vec<_> = plans
        .iter()
        .cloned()
        .map(|mine| {
            let service = service.clone();
            let metadata = metadata.clone();
            tokio::spawn(async move {
                for (stream, id, customer, _) in mine {
                    let start = ConversationCommand::Start(Start {
                        conversation_id: id,
                        kind: ConversationKind::Customer,
                        channel: Channel::Widget,
                        queue: None,
                        subject: "Where is my order?".into(),
                        started_by: Actor::Customer(customer),
                        customers: vec![customer],
                        members: vec![],
                        origin: None,
                        at,
                    });
                    service
                        .execute::<Conversation>(&stream, start, &metadata)
                        .await?;
                }
                Ok::<_, crate::service::ServiceError>(())
            })
        })
        .collect();
    for task in setup {
        task.await?
            .map_err(|e| BenchError::Invalid(e.to_string()))?;
    }

    let started = Instant::now();
    let tasks: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(w, mine)| {
            let service = service.clone();
            let metadata = metadata.clone();
            tokio::spawn(async move {
                let agent = AgentId(Uuid::from_u128(w as u128 + 1));
                let mut latencies = Vec::new();
                for (stream, _, customer, sends) in mine {
                    for n in 0..sends {
                        let author = if n % 2 == 0 {
                            Actor::Customer(customer)
                        } else {
                            Actor::Agent(agent)
                        };
                        let send = ConversationCommand::SendMessage(SendMessage {
                            message_id: MessageId(Uuid::now_v7()),
                            author,
                            body: format!("Message {n}: the parcel left the warehouse today."),
                            visibility: Visibility::Public,
                            attachments: vec![],
                            mentions: vec![],
                            quote_of: None,
                            at,
                        });
                        let start = Instant::now();
                        service
                            .execute::<Conversation>(&stream, send, &metadata)
                            .await?;
                        latencies.push(start.elapsed().as_micros() as u64);
                    }
                }
                Ok::<_, crate::service::ServiceError>(latencies)
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(
            task.await?
                .map_err(|e| BenchError::Invalid(e.to_string()))?,
        );
    }
    let elapsed = started.elapsed();
    log.close().await;
    let measured = Measured {
        events: latencies_us.len() as u64,
        elapsed,
        latencies_us,
    };
    Ok((measured, conversations))
}

pub(crate) fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The process's peak resident memory (VmHWM), in MiB; 0 where /proc is unavailable.
pub(crate) fn peak_rss_mb() -> f64 {
    peak_rss_mb_of("self")
}

/// CPU time (user and system, all threads) that process `pid` has used so far, in seconds; 0
/// if unknown. Linux counts it in ticks of 1/100 s (`USER_HZ`).
pub(crate) fn cpu_secs_of(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces: state is
    // the first of them, utime and stime the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => 0.0,
    }
}

/// Peak resident memory of process `pid` (`self` for this one), in MiB; 0 if unknown.
pub(crate) fn peak_rss_mb_of(pid: &str) -> f64 {
    round2(memory_mb_of(pid, "VmHWM:"))
}

/// One memory figure of `/proc/<pid>/status` (`VmHWM:`, `VmRSS:`…), in MiB; 0 if unknown.
pub(crate) fn memory_mb_of(pid: &str, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}
