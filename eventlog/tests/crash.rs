//! A process SIGKILLed in the middle of heavy appending loses no acknowledged event and leaves
//! no partial append, on every backend.
//!
//! The test re-runs its own test binary as the child (selected by an environment variable):
//! the child appends from 16 tasks and prints each acknowledged append; the parent kills it
//! with SIGKILL once enough are acknowledged, reopens the log and checks it.

mod support;

use parley_eventlog::{ExpectedVersion, LogOptions, Metadata, Position, StreamVersion};
use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;
use support::{Backend, Counted, event_of, stream};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

const CHILD_URL: &str = "PARLEY_CRASH_CHILD_URL";
const ACKS_BEFORE_KILL: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkilled_mid_append_loses_no_acknowledged_event() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return append_until_killed(&url).await;
    }
    let backend = Backend::sqlite().await;
    backend.log.close().await;
    kill_and_check(
        &backend.url,
        "sqlite_sigkilled_mid_append_loses_no_acknowledged_event",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkilled_mid_append_loses_no_acknowledged_event() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return append_until_killed(&url).await;
    }
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    backend.log.close().await;
    kill_and_check(
        &backend.url,
        "postgres_sigkilled_mid_append_loses_no_acknowledged_event",
    )
    .await;
}

/// The child: 16 tasks append 1 to 3 events at a time, each append tagged with its own
/// correlation id, and print `ack <correlation id> <count>` once the append is acknowledged.
async fn append_until_killed(url: &str) {
    let log = parley_eventlog::open(
        url,
        LogOptions {
            pool_size: 4,
            ..LogOptions::default()
        },
    )
    .await
    .expect("child opens the log");
    let writers: Vec<_> = (0..16u64)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let count = 1 + i % 3;
                    let append = Uuid::new_v4();
                    let metadata = Metadata {
                        correlation_id: Some(append),
                        ..Metadata::default()
                    };
                    let events = (0..count)
                        .map(|n| event_of(n, count, metadata.clone()))
                        .collect();
                    let s = stream(&format!("crash-{w}-{}", i % 10));
                    if log.append(&s, ExpectedVersion::Any, events).await.is_ok() {
                        let mut out = std::io::stdout().lock();
                        let _ = writeln!(out, "ack {append} {count}");
                        let _ = out.flush();
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

async fn kill_and_check(url: &str, test_name: &str) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_URL, url)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("child starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: HashMap<Uuid, u64> = HashMap::new();
    let reading = async {
        while acked.len() < ACKS_BEFORE_KILL {
            let Some(line) = lines.next_line().await.unwrap() else {
                break;
            };
            if let Some(ack) = parse_ack(&line) {
                acked.insert(ack.0, ack.1);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(120), reading)
        .await
        .expect("the child acknowledges appends");
    child.start_kill().expect("SIGKILL is sent");
    child.wait().await.unwrap();
    // Acknowledgements already in the pipe when the child died count too.
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(ack) = parse_ack(&line) {
            acked.insert(ack.0, ack.1);
        }
    }
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "only {} appends acknowledged",
        acked.len()
    );

    let log = parley_eventlog::open(url, LogOptions::default())
        .await
        .expect("log reopens");
    let mut stored: HashMap<Uuid, (u64, u64)> = HashMap::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut after = Position::START;
    loop {
        let page = log.read_all(after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in page {
            let counted: Counted = rmp_serde::from_slice(&e.payload).unwrap();
            let append = e.metadata.correlation_id.expect("every event is tagged");
            let entry = stored.entry(append).or_insert((0, counted.of));
            entry.0 += 1;
            let version = versions.entry(e.stream_id.clone()).or_default();
            *version += 1;
            assert_eq!(
                e.version,
                StreamVersion(*version),
                "stream versions have no holes"
            );
        }
    }
    for (append, count) in &acked {
        assert_eq!(
            stored.get(append).map(|s| s.0),
            Some(*count),
            "acknowledged append {append} is stored whole"
        );
    }
    for (append, (found, of)) in &stored {
        assert_eq!(found, of, "append {append} is stored whole or not at all");
    }
    // The log accepts appends again after the crash.
    log.append(
        &stream("after-crash"),
        ExpectedVersion::NoStream,
        vec![support::event(1)],
    )
    .await
    .expect("the log is writable after recovery");
    log.close().await;
}

fn parse_ack(line: &str) -> Option<(Uuid, u64)> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}
