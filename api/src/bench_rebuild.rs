//! `parley bench rebuild`: fills a fresh log with a realistic help-desk history, then — in a
//! process of its own, so its memory is its own — rebuilds every read model from it and times
//! inbox queries on the result.

use crate::bench::{BenchArgs, BenchError, backend_name, peak_rss_mb, percentile_ms, round2};
use parley_eventlog::{EventLog, ExpectedVersion, LogOptions, StreamId};
use parley_projections::inbox::{self, Filter, Section};
use parley_projections::workload::{Rng, Shape, Workload};
use parley_projections::{ReadModels, ViewError};
use serde_json::json;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

/// Inbox queries timed after the rebuild.
const INBOX_QUERIES: usize = 2_000;

fn view(error: ViewError) -> BenchError {
    BenchError::Invalid(error.to_string())
}

pub async fn rebuild(
    args: &BenchArgs,
    store_url: Option<&str>,
) -> Result<serde_json::Value, BenchError> {
    if let Some(url) = store_url {
        return measure(url, args).await;
    }
    let store = crate::bench::Store::fresh(args).await?;
    let fill_started = Instant::now();
    let log = store.open(LogOptions::default()).await?;
    let (events, conversations) = fill(log.clone(), args.events, args.writers).await?;
    log.close().await;
    let fill_secs = fill_started.elapsed().as_secs_f64();

    let only: Vec<&str> = args
        .only
        .iter()
        .flat_map(|o| ["--only", o.as_str()])
        .collect();
    let mut report =
        crate::bench::measure_in_child("rebuild", args, events, store.url(), &only).await?;
    report["fill_secs"] = json!(round2(fill_secs));
    report["conversations_and_tickets"] = json!(conversations);
    Ok(report)
}

/// Appends the workload until `events` events are in the log. Each stream is written by one
/// writer (streams are spread over `writers` by hash), so every stream keeps its order.
async fn fill(log: Arc<dyn EventLog>, events: u64, writers: u64) -> Result<(u64, u64), BenchError> {
    let writers = writers.clamp(1, 256) as usize;
    let mut queues = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (tx, mut rx) =
            tokio::sync::mpsc::channel::<(StreamId, Vec<parley_eventlog::NewEvent>)>(256);
        queues.push(tx);
        let log = log.clone();
        tasks.spawn(async move {
            while let Some((stream, batch)) = rx.recv().await {
                log.append(&stream, ExpectedVersion::Any, batch).await?;
            }
            Ok::<_, parley_eventlog::LogError>(())
        });
    }
    let mut workload = Workload::new(42, Shape::default());
    let mut written = 0u64;
    let mut lives = 0u64;
    while written < events {
        let append = workload.next_append();
        if append.events.first().is_some_and(|e| {
            e.event_type == "ConversationStarted" || e.event_type == "TicketCreated"
        }) {
            lives += 1;
        }
        written += append.events.len() as u64;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        append.stream.hash(&mut hasher);
        let queue = &queues[(hasher.finish() % writers as u64) as usize];
        let stream = StreamId::new(append.stream)?;
        if queue.send((stream, append.events)).await.is_err() {
            break;
        }
    }
    drop(queues);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((written, lives))
}

async fn measure(url: &str, args: &BenchArgs) -> Result<serde_json::Value, BenchError> {
    let log = parley_eventlog::open(url, LogOptions::default()).await?;
    let head = log.head().await?.0;
    let mut chosen = parley_projections::all();
    if let Some(only) = &args.only {
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        if let Some(unknown) = names
            .iter()
            .find(|n| !chosen.iter().any(|p| p.name() == **n))
        {
            return Err(BenchError::Invalid(format!(
                "no read model is called {unknown:?}"
            )));
        }
        chosen.retain(|p| names.contains(&p.name()));
    }
    let models = ReadModels::open(log.clone(), url, chosen)
        .await
        .map_err(view)?;
    let started = Instant::now();
    // One pass over the log feeds every rebuild, as `parley rebuild all` does.
    let mut per_projection = serde_json::Map::new();
    for rebuilt in models
        .rebuild_many(models.names(), |_| {})
        .await
        .map_err(view)?
    {
        let rebuilt = rebuilt.map_err(view)?;
        per_projection.insert(
            rebuilt.projection.to_owned(),
            json!({ "events": rebuilt.events, "secs": round2(rebuilt.elapsed.as_secs_f64()) }),
        );
    }
    let elapsed = started.elapsed().as_secs_f64();

    let inbox_built = models.names().contains(&inbox::NAME);
    // Inbox pages as agents open them: a section, sometimes a filter, sometimes the next page.
    let mut rng = Rng::new(7);
    let shape = Shape::default();
    let mut latencies = Vec::with_capacity(INBOX_QUERIES);
    for _ in 0..if inbox_built { INBOX_QUERIES } else { 0 } {
        let agent = uuid::Uuid::from_u128(0xA9E0_0000 + u128::from(rng.below(shape.agents)));
        let section = if rng.chance(50) {
            Section::Mine
        } else {
            Section::FromCustomers
        };
        let filter = match rng.below(6) {
            0 => Filter {
                status: Some("open".into()),
                ..Filter::default()
            },
            1 => Filter {
                status: Some("closed".into()),
                ..Filter::default()
            },
            2 => Filter {
                unassigned: true,
                ..Filter::default()
            },
            3 => Filter {
                awaiting: true,
                ..Filter::default()
            },
            _ => Filter::default(),
        };
        let second_page = rng.chance(30);
        let agent = agent.to_string();
        let one = Instant::now();
        models
            .query(inbox::NAME, move |tx, t| {
                let first = inbox::page(tx, t, &agent, section, &filter, None, 20)?;
                let counts = inbox::counts(tx, t, &agent, section)?;
                std::hint::black_box(counts);
                if second_page && let Some(cursor) = &first.next_cursor {
                    let cursor = inbox::parse_cursor(cursor)
                        .map_err(|e| parley_projections::StoreError::Task(e.to_string()))?;
                    inbox::page(tx, t, &agent, section, &filter, Some(&cursor), 20)?;
                }
                Ok(())
            })
            .await
            .map_err(view)?;
        latencies.push(one.elapsed().as_micros() as u64);
    }
    let conversations = if inbox_built {
        models
            .query(inbox::NAME, |tx, t| {
                inbox::counts(tx, t, "", Section::FromCustomers)
            })
            .await
            .map_err(view)?
            .get("all")
            .copied()
            .unwrap_or(0)
    } else {
        0
    };
    log.close().await;
    if head != args.events {
        return Err(BenchError::Invalid(format!(
            "the log holds {head} events, expected {}",
            args.events
        )));
    }
    Ok(json!({
        "benchmark": "rebuild",
        "backend": backend_name(args.backend),
        "events": head,
        "read_models": models.names().len(),
        "events_per_sec": (head as f64 / elapsed).round(),
        "rebuild_secs": round2(elapsed),
        "per_projection": per_projection,
        "inbox_conversations": conversations,
        "inbox_query_p50_ms": percentile_ms(&mut latencies.clone(), 50.0),
        "inbox_query_p99_ms": percentile_ms(&mut latencies, 99.0),
        "peak_rss_mb": peak_rss_mb(),
    }))
}
