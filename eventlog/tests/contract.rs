//! The event-log contract, written once and run against every backend.
//!
//! Each test is an `async fn(Arc<dyn EventLog>)` below; `contract!` instantiates it once per
//! backend. PostgreSQL tests get a fresh database each (see `parley_eventlog::testing`).

mod support;

use parley_eventlog::codec::{self, CodecError, EventCodec};
use parley_eventlog::{
    Actor, ActorKind, AsOf, EventLog, ExpectedVersion, LogError, Metadata, Position, StreamId,
    StreamVersion, Subscription, Timestamp,
};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use support::{Counted, event, event_of, stream};
use uuid::Uuid;

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let backend = crate::support::Backend::sqlite().await;
                    super::$test(backend.log.clone()).await;
                    backend.log.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(backend) = crate::support::Backend::postgres().await else { return };
                    super::$test(backend.log.clone()).await;
                    backend.log.close().await;
                }
            )*
        }
    };
}

contract!(
    appends_check_the_expected_version,
    of_two_racing_writers_exactly_one_wins,
    a_retried_append_returns_the_original_result_and_writes_nothing,
    an_event_id_stored_in_another_stream_is_refused,
    the_global_log_is_in_append_order_and_pages_without_gaps,
    a_stream_reads_forward_from_a_version,
    a_stream_can_be_read_as_of_a_position_or_a_time,
    the_envelope_round_trips,
    a_subscriber_catching_up_during_8_concurrent_writers_sees_every_event_once_in_order,
    bad_input_is_a_typed_error,
    an_unknown_event_type_on_read_is_a_typed_error,
    a_conflicting_append_in_a_busy_batch_fails_alone,
    reads_abandoned_by_their_callers_do_not_break_later_reads,
    only_the_whole_original_append_counts_as_a_retry,
    a_subscriber_learns_that_the_log_was_closed,
    an_append_is_found_by_any_of_its_event_ids,
);

async fn appends_check_the_expected_version(log: Arc<dyn EventLog>) {
    let s = stream("conversation-1");
    let first = log
        .append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    assert_eq!(first.stream_version, StreamVersion(1));

    let err = log
        .append(&s, ExpectedVersion::NoStream, vec![event(2)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Conflict {
                current: StreamVersion(1),
                ..
            }
        ),
        "got {err:?}"
    );

    let second = log
        .append(
            &s,
            ExpectedVersion::Exact(StreamVersion(1)),
            vec![event(2), event(3)],
        )
        .await
        .unwrap();
    assert_eq!(second.stream_version, StreamVersion(3));
    assert_eq!(second.positions.len(), 2);

    let err = log
        .append(&s, ExpectedVersion::Exact(StreamVersion(1)), vec![event(4)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Conflict {
                current: StreamVersion(3),
                ..
            }
        ),
        "got {err:?}"
    );

    let any = log
        .append(&s, ExpectedVersion::Any, vec![event(4)])
        .await
        .unwrap();
    assert_eq!(any.stream_version, StreamVersion(4));
    assert_eq!(log.stream_version(&s).await.unwrap(), StreamVersion(4));
    assert_eq!(
        log.stream_version(&stream("nobody")).await.unwrap(),
        StreamVersion::NONE
    );
}

async fn of_two_racing_writers_exactly_one_wins(log: Arc<dyn EventLog>) {
    let s = stream("ticket-race");
    for round in 0..40u64 {
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let log = log.clone();
                let s = s.clone();
                tokio::spawn(async move {
                    log.append(
                        &s,
                        ExpectedVersion::Exact(StreamVersion(round)),
                        vec![event(round)],
                    )
                    .await
                })
            })
            .collect();
        let mut wins = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(result) => {
                    wins += 1;
                    assert_eq!(result.stream_version, StreamVersion(round + 1));
                }
                Err(LogError::Conflict { current, .. }) => {
                    assert_eq!(current, StreamVersion(round + 1))
                }
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one racer wins");
    }
    assert_eq!(log.stream_version(&s).await.unwrap(), StreamVersion(40));
}

async fn a_retried_append_returns_the_original_result_and_writes_nothing(log: Arc<dyn EventLog>) {
    let s = stream("conversation-retry");
    let events = vec![event(1), event(2)];
    let original = log
        .append(&s, ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    log.append(&s, ExpectedVersion::Any, vec![event(3)])
        .await
        .unwrap();

    // The client did not see the answer and retries, with the same ids and condition.
    let retried = log
        .append(&s, ExpectedVersion::NoStream, events.clone())
        .await
        .unwrap();
    assert_eq!(retried.stream_version, original.stream_version);
    assert_eq!(retried.positions, original.positions);
    assert!(retried.replayed && !original.replayed);
    let stored = log.read_stream(&s, StreamVersion::NONE, 100).await.unwrap();
    assert_eq!(stored.len(), 3, "nothing is written twice");

    // Two retries racing each other, and the original, all get the same answer.
    let again = vec![event(10)];
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (log, s, again) = (log.clone(), s.clone(), again.clone());
            tokio::spawn(async move { log.append(&s, ExpectedVersion::Any, again).await })
        })
        .collect();
    let mut results = HashSet::new();
    for racer in racers {
        let result = racer.await.unwrap().unwrap();
        results.insert((result.stream_version, result.positions));
    }
    assert_eq!(results.len(), 1, "every retry gets the original result");
    assert_eq!(log.stream_version(&s).await.unwrap(), StreamVersion(4));
}

async fn an_append_is_found_by_any_of_its_event_ids(log: Arc<dyn EventLog>) {
    let s = stream("conversation-found");
    log.append(&s, ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();
    let events = vec![event(2), event(3), event(4)];
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let original = log
        .append(&s, ExpectedVersion::Exact(StreamVersion(1)), events)
        .await
        .unwrap();
    log.append(&s, ExpectedVersion::Any, vec![event(5)])
        .await
        .unwrap();
    for id in ids {
        let (found_in, found) = log.find_append(id).await.unwrap().expect("found");
        assert_eq!(found_in, s);
        assert_eq!(found.stream_version, original.stream_version);
        assert_eq!(found.positions, original.positions, "the whole append");
    }
    assert!(log.find_append(Uuid::new_v4()).await.unwrap().is_none());
}

async fn an_event_id_stored_in_another_stream_is_refused(log: Arc<dyn EventLog>) {
    let e = event(1);
    log.append(&stream("a"), ExpectedVersion::Any, vec![e.clone()])
        .await
        .unwrap();
    let err = log
        .append(&stream("b"), ExpectedVersion::Any, vec![e.clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::DuplicateEventId { event_id, .. } if event_id == e.event_id));
    // Reusing one id inside a different append of the same stream is refused too.
    let err = log
        .append(
            &stream("a"),
            ExpectedVersion::Any,
            vec![event(2), e.clone()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LogError::DuplicateEventId { .. }),
        "got {err:?}"
    );
    assert_eq!(
        log.stream_version(&stream("b")).await.unwrap(),
        StreamVersion::NONE
    );
    assert_eq!(
        log.stream_version(&stream("a")).await.unwrap(),
        StreamVersion(1)
    );
}

async fn the_global_log_is_in_append_order_and_pages_without_gaps(log: Arc<dyn EventLog>) {
    let mut appended = Vec::new();
    for i in 0..30u64 {
        let s = stream(&format!("s-{}", i % 7));
        let result = log
            .append(&s, ExpectedVersion::Any, vec![event(i), event(i)])
            .await
            .unwrap();
        appended.extend(result.positions);
    }
    assert!(
        appended.windows(2).all(|w| w[0] < w[1]),
        "positions grow with appends"
    );
    assert_eq!(log.head().await.unwrap(), *appended.last().unwrap());

    let mut read = Vec::new();
    let mut after = Position::START;
    loop {
        let page = log.read_all(after, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        read.extend(page);
    }
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        appended
    );
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for e in &read {
        let v = versions.entry(&e.stream_id).or_default();
        *v += 1;
        assert_eq!(
            e.version,
            StreamVersion(*v),
            "stream order follows global order"
        );
    }
}

async fn a_stream_reads_forward_from_a_version(log: Arc<dyn EventLog>) {
    let s = stream("conversation-read");
    for n in 1..=10 {
        log.append(&s, ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
        log.append(&stream("noise"), ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
    }
    let page = log.read_stream(&s, StreamVersion(3), 4).await.unwrap();
    let versions: Vec<u64> = page.iter().map(|e| e.version.0).collect();
    assert_eq!(versions, vec![4, 5, 6, 7]);
    let payload: Counted = rmp_serde::from_slice(&page[0].payload).unwrap();
    assert_eq!(payload.n, 4);
    assert!(
        log.read_stream(&s, StreamVersion(10), 4)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        log.read_stream(&stream("empty"), StreamVersion::NONE, 4)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_stream_can_be_read_as_of_a_position_or_a_time(log: Arc<dyn EventLog>) {
    let s = stream("ticket-audit");
    let first = log
        .append(&s, ExpectedVersion::Any, vec![event(1), event(2)])
        .await
        .unwrap();
    let all = log.read_stream(&s, StreamVersion::NONE, 10).await.unwrap();
    let cut = all[1].recorded_at;
    // Make sure the next append is recorded strictly later than `cut`.
    while Timestamp::now() <= cut {
        tokio::task::yield_now().await;
    }
    log.append(&s, ExpectedVersion::Any, vec![event(3)])
        .await
        .unwrap();

    let then = log
        .read_stream_as_of(
            &s,
            AsOf::Position(first.last_position()),
            StreamVersion::NONE,
            100,
        )
        .await
        .unwrap();
    assert_eq!(then.len(), 2);
    let then = log
        .read_stream_as_of(&s, AsOf::Time(cut), StreamVersion::NONE, 100)
        .await
        .unwrap();
    assert_eq!(then.len(), 2);
    let before = log
        .read_stream_as_of(&s, AsOf::Time(Timestamp(0)), StreamVersion::NONE, 100)
        .await
        .unwrap();
    assert!(before.is_empty());
    let recorded: Vec<_> = log
        .read_stream(&s, StreamVersion::NONE, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.recorded_at)
        .collect();
    assert!(
        recorded.windows(2).all(|w| w[0] <= w[1]),
        "recorded_at never decreases"
    );
}

async fn the_envelope_round_trips(log: Arc<dyn EventLog>) {
    let metadata = Metadata {
        actor: Some(Actor {
            id: "agent-7".into(),
            kind: ActorKind::Agent,
        }),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: Some(Uuid::new_v4()),
        channel: Some("whatsapp".into()),
        request_id: Some("req-42".into()),
        token_id: Some("0190c5c4-0000-7000-8000-000000000001".into()),
    };
    let mut sent = event_of(5, 9, metadata.clone());
    sent.schema_version = 3;
    let before = Timestamp::now();
    let s = stream("conversation-envelope");
    let result = log
        .append(&s, ExpectedVersion::NoStream, vec![sent.clone()])
        .await
        .unwrap();
    let read = log.read_all(Position::START, 10).await.unwrap();
    assert_eq!(read.len(), 1);
    let e = &read[0];
    assert_eq!(e.event_id, sent.event_id);
    assert_eq!(e.stream_id, "conversation-envelope");
    assert_eq!(e.version, StreamVersion(1));
    assert_eq!(e.position, result.positions[0]);
    assert_eq!(e.event_type, "Counted");
    assert_eq!(e.schema_version, 3);
    assert_eq!(e.metadata, metadata);
    assert_eq!(e.payload, sent.payload);
    assert!(e.recorded_at >= before && e.recorded_at <= Timestamp::now());
}

async fn a_subscriber_catching_up_during_8_concurrent_writers_sees_every_event_once_in_order(
    log: Arc<dyn EventLog>,
) {
    const WRITERS: u64 = 8;
    const PER_WRITER: u64 = 150;
    // Some history to catch up on first.
    for n in 0..50 {
        log.append(&stream("history"), ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
    }
    let expected = 50 + WRITERS * PER_WRITER;
    let mut subscription = Subscription::new(log.clone(), Position::START, 64);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while (seen.len() as u64) < expected {
            seen.extend(subscription.next_batch().await.unwrap());
        }
        seen
    });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..PER_WRITER {
                    let e = event(n);
                    ids.push(e.event_id);
                    let s = stream(&format!("writer-{w}-{}", n % 5));
                    log.append(&s, ExpectedVersion::Any, vec![e]).await.unwrap();
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap());
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the subscriber keeps up")
        .unwrap();
    assert_eq!(seen.len() as u64, expected, "no event twice, none missing");
    assert!(
        seen.windows(2).all(|w| w[0].position < w[1].position),
        "in order"
    );
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert!(written.is_subset(&seen_ids));
}

async fn bad_input_is_a_typed_error(log: Arc<dyn EventLog>) {
    assert!(matches!(
        StreamId::new(""),
        Err(LogError::InvalidStreamId { .. })
    ));
    assert!(matches!(
        StreamId::new("x".repeat(201)),
        Err(LogError::InvalidStreamId { .. })
    ));
    assert!(matches!(
        StreamId::new("a\nb"),
        Err(LogError::InvalidStreamId { .. })
    ));
    assert!(StreamId::new("x".repeat(200)).is_ok());

    let s = stream("conversation-bad");
    let mut big = event(1);
    big.payload = vec![0; 1024 * 1024 + 1];
    let err = log
        .append(&s, ExpectedVersion::Any, vec![event(0), big])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::PayloadTooLarge {
                limit: 1_048_576,
                actual: 1_048_577
            }
        ),
        "got {err:?}"
    );
    let err = log
        .append(&s, ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::EmptyAppend));
    let mut unnamed = event(1);
    unnamed.event_type = String::new();
    let err = log
        .append(&s, ExpectedVersion::Any, vec![unnamed])
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::InvalidEventType { .. }));
    let twice = event(1);
    let err = log
        .append(&s, ExpectedVersion::Any, vec![twice.clone(), twice])
        .await
        .unwrap_err();
    assert!(matches!(err, LogError::RepeatedEventId { .. }));
    let err = log
        .append(&s, ExpectedVersion::Any, (0..1001).map(event).collect())
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::TooManyEvents {
            limit: 1000,
            actual: 1001
        }
    ));
    assert_eq!(
        log.stream_version(&s).await.unwrap(),
        StreamVersion::NONE,
        "nothing written"
    );
}

/// The events a reader of the test log knows; "Mystery" is not one of them.
#[derive(Debug)]
enum Known {
    Counted(Counted),
}

impl EventCodec for Known {
    fn event_type(&self) -> &'static str {
        "Counted"
    }
    fn current_schema_version(event_type: &str) -> Option<u16> {
        (event_type == "Counted").then_some(1)
    }
    fn encode_payload(&self) -> Result<Vec<u8>, CodecError> {
        let Known::Counted(c) = self;
        codec::to_msgpack("Counted", c)
    }
    fn decode_payload(event_type: &str, payload: &[u8]) -> Result<Self, CodecError> {
        Ok(Known::Counted(codec::from_msgpack(event_type, 1, payload)?))
    }
}

async fn an_unknown_event_type_on_read_is_a_typed_error(log: Arc<dyn EventLog>) {
    let s = stream("conversation-mystery");
    let mut mystery = event(1);
    mystery.event_type = "Mystery".into();
    let known = codec::new_event(
        Uuid::new_v4(),
        &Known::Counted(Counted { n: 2, of: 0 }),
        Metadata::default(),
    )
    .unwrap();
    log.append(&s, ExpectedVersion::Any, vec![mystery, known])
        .await
        .unwrap();
    let events = log.read_stream(&s, StreamVersion::NONE, 10).await.unwrap();
    let err = codec::decode::<Known>(&events[0]).unwrap_err();
    assert!(
        matches!(err, CodecError::UnknownEventType { ref event_type } if event_type == "Mystery")
    );
    let ok = codec::decode::<Known>(&events[1]).unwrap();
    assert!(matches!(ok, Known::Counted(Counted { n: 2, .. })));
}

async fn a_conflicting_append_in_a_busy_batch_fails_alone(log: Arc<dyn EventLog>) {
    // 64 appends race, 32 of them to one stream with NoStream: one of those wins, the other
    // 31 conflict, and the 32 appends to their own streams all succeed.
    let tasks: Vec<_> = (0..64u64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                let s = if i % 2 == 0 {
                    stream("contended")
                } else {
                    stream(&format!("own-{i}"))
                };
                (
                    i,
                    log.append(&s, ExpectedVersion::NoStream, vec![event(i)])
                        .await,
                )
            })
        })
        .collect();
    let (mut contended_wins, mut conflicts, mut own) = (0, 0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(_)) if i % 2 == 0 => contended_wins += 1,
            (_, Ok(_)) => own += 1,
            (i, Err(LogError::Conflict { .. })) if i % 2 == 0 => conflicts += 1,
            (i, Err(e)) => panic!("append {i} failed: {e:?}"),
        }
    }
    assert_eq!((contended_wins, conflicts, own), (1, 31, 32));
}

async fn reads_abandoned_by_their_callers_do_not_break_later_reads(log: Arc<dyn EventLog>) {
    log.append(&stream("s"), ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    for _ in 0..200 {
        // A caller that gives up at once (a client that disconnected, a timeout).
        let _ = tokio::time::timeout(Duration::ZERO, log.read_all(Position::START, 10)).await;
        let events = log.read_all(Position::START, 10).await.unwrap();
        assert_eq!(events.len(), 1);
    }
}

async fn a_subscriber_learns_that_the_log_was_closed(log: Arc<dyn EventLog>) {
    log.append(&stream("s"), ExpectedVersion::Any, vec![event(1)])
        .await
        .unwrap();
    let mut subscription = Subscription::new(log.clone(), Position::START, 10);
    assert_eq!(subscription.next_batch().await.unwrap().len(), 1);
    log.close().await;
    let ended = tokio::time::timeout(Duration::from_secs(30), subscription.next_batch())
        .await
        .expect("the subscriber does not wait forever");
    assert!(matches!(ended, Err(LogError::Closed)), "got {ended:?}");
    let refused = log
        .append(&stream("s"), ExpectedVersion::Any, vec![event(2)])
        .await;
    assert!(matches!(refused, Err(LogError::Closed)));
}

async fn only_the_whole_original_append_counts_as_a_retry(log: Arc<dyn EventLog>) {
    let s = stream("conversation-partial");
    let (a, b, c) = (event(1), event(2), event(3));
    log.append(
        &s,
        ExpectedVersion::NoStream,
        vec![a.clone(), b.clone(), c.clone()],
    )
    .await
    .unwrap();
    for part in [
        vec![b.clone(), c.clone()],
        vec![a.clone()],
        vec![a.clone(), b.clone()],
    ] {
        let err = log
            .append(&s, ExpectedVersion::Any, part)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::DuplicateEventId { .. }), "{err:?}");
    }
    let whole = log
        .append(&s, ExpectedVersion::Any, vec![a, b, c])
        .await
        .unwrap();
    assert_eq!(whole.stream_version, StreamVersion(3));
    assert_eq!(log.stream_version(&s).await.unwrap(), StreamVersion(3));
}
