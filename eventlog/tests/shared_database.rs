//! Two logs opened on one database, as two server processes would: appends through one are
//! seen, and respected, by the other.

mod support;

use parley_eventlog::{
    EventLog, ExpectedVersion, LogError, LogOptions, Position, StreamVersion, Subscription,
};
use std::sync::Arc;
use std::time::Duration;
use support::{Backend, event, stream};

/// A log on a fresh PostgreSQL database, and a second log on the same database.
async fn two_postgres_processes() -> Option<(Backend, Arc<dyn EventLog>)> {
    let backend = Backend::postgres().await?;
    let options = LogOptions {
        pool_size: 3,
        ..LogOptions::default()
    };
    let other = parley_eventlog::open(&backend.url, options).await.unwrap();
    Some((backend, other))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_subscriber_sees_appends_made_by_another_process() {
    let Some((backend, other)) = two_postgres_processes().await else {
        return;
    };
    let mut subscription = Subscription::new(backend.log.clone(), Position::START, 10);
    let reading = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            seen.extend(subscription.next_batch().await.unwrap());
        }
        seen
    });
    let written = other
        .append(
            &stream("conversation-elsewhere"),
            ExpectedVersion::NoStream,
            vec![event(1), event(2), event(3)],
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .expect("the notification wakes the subscriber")
        .unwrap();
    assert_eq!(
        seen.iter().map(|e| e.position).collect::<Vec<_>>(),
        written.positions
    );
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_racing_writers_in_two_processes_cannot_both_win() {
    let Some((backend, other)) = two_postgres_processes().await else {
        return;
    };
    let s = stream("ticket-contested");
    for round in 0..20u64 {
        let expected = ExpectedVersion::Exact(StreamVersion(round));
        let (a, b) = tokio::join!(
            backend.log.append(&s, expected, vec![event(round)]),
            other.append(&s, expected, vec![event(round)]),
        );
        let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
        assert_eq!(wins, 1, "round {round}: {a:?} / {b:?}");
        for result in [a, b] {
            if let Err(error) = result {
                assert!(matches!(error, LogError::Conflict { .. }), "{error:?}");
            }
        }
    }
    assert_eq!(
        backend.log.stream_version(&s).await.unwrap(),
        StreamVersion(20)
    );
    other.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_writer_notices_another_connection_wrote_the_file() {
    let backend = Backend::sqlite().await;
    let other = parley_eventlog::open(&backend.url, LogOptions::default())
        .await
        .unwrap();
    let s = stream("conversation-shared");
    backend
        .log
        .append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    // The other writer has never seen the stream, and reads its head.
    other
        .append(&s, ExpectedVersion::Exact(StreamVersion(1)), vec![event(2)])
        .await
        .unwrap();
    // The first writer remembers version 1, but must notice the file changed under it.
    let error = backend
        .log
        .append(&s, ExpectedVersion::Exact(StreamVersion(1)), vec![event(3)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LogError::Conflict {
                current: StreamVersion(2),
                ..
            }
        ),
        "{error:?}"
    );
    backend
        .log
        .append(&s, ExpectedVersion::Exact(StreamVersion(2)), vec![event(3)])
        .await
        .unwrap();
    other.close().await;
}
