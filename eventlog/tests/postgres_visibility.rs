//! PostgreSQL only: the out-of-order commit case, reproduced with two open transactions.
//!
//! With a plain sequence, a transaction that drew position 1 but commits after a transaction
//! that drew position 2 would let a reader see 2, checkpoint it, and skip 1 forever. Parley's
//! appends take a transaction-level advisory lock before drawing positions; this test holds
//! that lock in a hand-made transaction that has already drawn a position and shows that a
//! concurrent append waits, and that readers see both events in position order.

mod support;

use parley_eventlog::{ExpectedVersion, Position, Subscription};
use sqlx::{Connection, PgConnection};
use std::time::Duration;
use support::{Backend, event, stream};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_append_cannot_become_visible_before_an_earlier_open_one() {
    let Some(backend) = Backend::postgres().await else {
        return;
    };
    let log = backend.log.clone();

    // Transaction A: an append of another process, positions drawn, not yet committed.
    let mut a = PgConnection::connect(&backend.url).await.unwrap();
    let mut tx_a = a.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(parley_eventlog::PostgresLog::APPEND_LOCK_KEY)
        .execute(&mut *tx_a)
        .await
        .unwrap();
    let early = event(1);
    let position_a: i64 = sqlx::query_scalar(
        "INSERT INTO events (stream_id, version, event_id, event_type, schema_version, \
         recorded_at, metadata, payload, append_index, append_size) \
         VALUES ('early', 1, $1, 'Counted', 1, 0, '\\x80', $2, 0, 1) \
         RETURNING position",
    )
    .bind(early.event_id)
    .bind(&early.payload)
    .fetch_one(&mut *tx_a)
    .await
    .unwrap();

    // Transaction B: a normal append, started while A is open.
    let late = event(2);
    let late_id = late.event_id;
    let appending = {
        let log = log.clone();
        tokio::spawn(async move {
            log.append(&stream("late"), ExpectedVersion::Any, vec![late])
                .await
        })
    };
    let mut watcher = PgConnection::connect(&backend.url).await.unwrap();
    let waiting = async {
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if blocked > 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the second append waits for the first transaction");
    assert!(!appending.is_finished());
    assert!(
        log.read_all(Position::START, 10).await.unwrap().is_empty(),
        "nothing is visible while the earlier transaction is open"
    );
    let mut subscription = Subscription::new(log.clone(), Position::START, 10);

    tx_a.commit().await.unwrap();
    let b = appending.await.unwrap().unwrap();
    assert!(
        b.positions[0].0 > position_a as u64,
        "the later append draws a later position"
    );

    let ids: Vec<Uuid> = log
        .read_all(Position::START, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, vec![early.event_id, late_id]);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(
            subscription
                .next_batch()
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.event_id),
        );
    }
    assert_eq!(
        seen,
        vec![early.event_id, late_id],
        "a subscriber sees them in order"
    );
}
