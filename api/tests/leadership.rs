//! With PostgreSQL, two real `parley serve` processes share one database: exactly one feeds the
//! read models; when it is killed, the other takes over within seconds and carries on from the
//! checkpoints, without applying any event twice.

use parley_eventlog::LogOptions;
use parley_projections::ReadModels;
use parley_projections::workload::{Shape, Workload};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

struct Server {
    child: Child,
    log: Lines<BufReader<ChildStderr>>,
}

impl Server {
    fn start(url: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", url])
            // The history is a workload's, which holds the reactions' own outcomes already
            // (its webhooks' tickets, its replies' deliveries): reacting to it again would add
            // events the comparison with a rebuild does not expect.
            .args(["--pause-reactions", "inbound,dispatcher"])
            .env("PARLEY_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("parley serve starts");
        let log = BufReader::new(child.stderr.take().unwrap()).lines();
        Server { child, log }
    }

    /// Reads the server's log until a line contains `text`.
    async fn until(&mut self, text: &str) {
        let wait = async {
            while let Some(line) = self.log.next_line().await.unwrap() {
                if line.contains(text) {
                    return;
                }
            }
            panic!("the server exited before logging {text:?}");
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .unwrap_or_else(|_| panic!("no {text:?} within 30 s"));
    }
}

/// Appends at least `events` events of `workload`. When they change the help desk's rules, the
/// reports are rebuilt right after (from `models`), as an operator does: their figures follow
/// the rules of their generation.
async fn append(url: &str, workload: &mut Workload, events: u64, models: &ReadModels) -> u64 {
    let log = parley_eventlog::open(url, LogOptions::default())
        .await
        .unwrap();
    let mut written = 0;
    while written < events {
        let append = workload.next_append();
        written += append.events.len() as u64;
        append
            .append_as_an_operator(log.as_ref(), models)
            .await
            .unwrap();
    }
    let head = log.head().await.unwrap().0;
    log.close().await;
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_feeds_the_read_models_and_another_takes_over_when_it_dies() {
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    let mut first = Server::start(&db.url);
    first.until("leading the projections").await;
    let mut second = Server::start(&db.url);
    second.until("waiting for projection leadership").await;

    // An observer that never feeds: it learns positions from the leader's notifications.
    let log = parley_eventlog::open(&db.url, LogOptions::default())
        .await
        .unwrap();
    let observer = ReadModels::open(log.clone(), &db.url, parley_projections::all())
        .await
        .unwrap();
    let mut workload = Workload::new(
        5,
        Shape {
            concurrent: 20,
            ..Shape::default()
        },
    );
    let head = append(&db.url, &mut workload, 2_000, &observer).await;
    for name in observer.names() {
        observer
            .wait_for(name, head, Duration::from_secs(60))
            .await
            .unwrap();
    }

    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let killed = std::time::Instant::now();
    second.until("leading the projections").await;
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "takeover took {:?}",
        killed.elapsed()
    );

    let head = append(&db.url, &mut workload, 2_000, &observer).await;
    for name in observer.names() {
        observer
            .wait_for(name, head, Duration::from_secs(60))
            .await
            .unwrap();
    }
    // What the survivor built on top of the dead leader's checkpoints equals a clean rebuild.
    for name in observer.names() {
        let live = observer.dump(name).await.unwrap();
        observer.rebuild(name, |_| {}).await.unwrap();
        assert_eq!(live, observer.dump(name).await.unwrap(), "{name}");
    }
    second.child.start_kill().unwrap();
    log.close().await;
}
