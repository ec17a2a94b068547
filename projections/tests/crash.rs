//! A process SIGKILLed while it feeds the read models — mid-batch, with appends still arriving —
//! leaves read models that, once a new process has caught up, equal a clean rebuild: no event
//! applied twice, none skipped.
//!
//! The test re-runs its own binary as the child (selected by an environment variable): the child
//! appends a realistic history while its runner feeds every read model, and prints how far the
//! read models got; the parent kills it with SIGKILL, reopens everything and compares.
//!
//! When the history changes the help desk's rules, the child rebuilds the reports right away, as
//! an operator does (reports follow the rules of their generation), so the kill may also fall in
//! the middle of a rebuild.

mod support;

use parley_domain::helpdesk::HelpDesk;
use parley_eventlog::{AsOf, LogOptions, Position, StreamId};
use parley_projections::ReadModels;
use parley_projections::audit::state_as_of;
use parley_projections::reports::{self, ReportRules};
use parley_projections::workload::{Shape, Workload};
use std::io::Write;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHILD_URL: &str = "PARLEY_PROJECTION_CRASH_CHILD_URL";
/// Positions the read models must have applied before the kill.
const APPLIED_BEFORE_KILL: u64 = 6_000;

/// The child: appends while the runner feeds the read models; prints the lowest applied
/// position as it grows.
async fn feed_until_killed(url: &str) {
    let log = parley_eventlog::open(url, LogOptions::default())
        .await
        .unwrap();
    let models = ReadModels::open(log.clone(), url, parley_projections::all())
        .await
        .unwrap();
    tokio::spawn(models.clone().run());
    let appending = {
        let log = log.clone();
        let models = models.clone();
        tokio::spawn(async move {
            let mut workload = Workload::new(
                99,
                Shape {
                    concurrent: 50,
                    ..Shape::default()
                },
            );
            support::append_workload(log.as_ref(), &models, &mut workload, 1_000_000).await;
        })
    };
    let mut reported = 0;
    while !appending.is_finished() {
        let (slowest, lowest) = models
            .names()
            .iter()
            .map(|n| (*n, models.position(n).unwrap()))
            .min_by_key(|(_, p)| *p)
            .unwrap();
        if lowest > reported {
            reported = lowest;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "applied {lowest}");
            let _ = out.flush();
        }
        // Wakes when the slowest read model moves on.
        let _ = models
            .wait_for(slowest, lowest + 1, Duration::from_secs(60))
            .await;
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
    let reading = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(n) = line.strip_prefix("applied ")
                && n.parse::<u64>().unwrap() >= APPLIED_BEFORE_KILL
            {
                return;
            }
        }
        panic!("the child ended before its read models moved");
    };
    tokio::time::timeout(Duration::from_secs(180), reading)
        .await
        .expect("the child's read models move");
    child.start_kill().expect("SIGKILL is sent");
    child.wait().await.unwrap();

    // A new process catches up from the checkpoints the dead one committed.
    let log = parley_eventlog::open(url, LogOptions::default())
        .await
        .unwrap();
    let models = ReadModels::open(log.clone(), url, parley_projections::all())
        .await
        .unwrap();
    let runner = tokio::spawn(models.clone().run());
    let head = log.head().await.unwrap().0;
    assert!(head > APPLIED_BEFORE_KILL, "the log holds {head} events");
    for name in models.names() {
        models
            .wait_for(name, head, Duration::from_secs(120))
            .await
            .unwrap();
    }
    // Killed between a change of the rules and the start of the rebuild that follows it, the
    // child left that rebuild to do (one it began is finished by the new process on start).
    let (help_desk, _) = state_as_of::<HelpDesk>(
        log.as_ref(),
        &StreamId::new(reports::RULES_STREAM).unwrap(),
        AsOf::Position(Position(head)),
    )
    .await
    .unwrap();
    let current = ReportRules {
        business_hours_only: help_desk.business_hours_only,
        business_hours: help_desk.business_hours,
    };
    let served = models
        .query(reports::NAME, |tx, t| reports::rules(tx, t))
        .await
        .unwrap();
    if served != current {
        models.rebuild(reports::NAME, |_| {}).await.unwrap();
    }
    let mut recovered = Vec::new();
    for name in models.names() {
        recovered.push(models.dump(name).await.unwrap());
    }
    runner.abort();
    for (name, before) in models.names().iter().zip(recovered) {
        models.rebuild(name, |_| {}).await.unwrap();
        let clean = models.dump(name).await.unwrap();
        support::assert_same_rows(
            name,
            ("after the crash", &before),
            ("a clean rebuild", &clean),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_read_models_survive_a_sigkill_mid_batch() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return feed_until_killed(&url).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("log.db").display());
    kill_and_check(&url, "sqlite_read_models_survive_a_sigkill_mid_batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_models_survive_a_sigkill_mid_batch() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return feed_until_killed(&url).await;
    }
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    kill_and_check(&db.url, "postgres_read_models_survive_a_sigkill_mid_batch").await;
}
