//! The runner: a changed version is rebuilt on start while the old tables serve; a rebuild
//! started while events keep arriving swaps in tables that miss nothing; read-your-writes waits
//! are bounded and fail with a typed error.

mod support;

use parley_eventlog::{EventLog, ExpectedVersion, LogOptions, Metadata, NewEvent, StreamId};
use parley_projections::workload::{Shape, Workload};
use parley_projections::{
    Dialect, Envelope, Projection, ReadModels, StoreError, Tables, Tx, ViewError, access, detail,
    inbox,
};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use support::*;
use uuid::Uuid;

/// A help desk of ten lives at a time.
fn small_workload(seed: u64) -> Workload {
    Workload::new(
        seed,
        Shape {
            concurrent: 10,
            ..Shape::default()
        },
    )
}

async fn fill(log: &Arc<dyn EventLog>, workload: &mut Workload, events: u64) -> u64 {
    workload.append_to(log.as_ref(), events).await.unwrap();
    log.head().await.unwrap().0
}

/// The inbox under another version number.
struct InboxV2;

impl Projection for InboxV2 {
    fn name(&self) -> &'static str {
        inbox::NAME
    }
    fn version(&self) -> i64 {
        2
    }
    fn tables(&self) -> &'static [&'static str] {
        inbox::Inbox.tables()
    }
    fn schema(&self, dialect: Dialect) -> Vec<&'static str> {
        inbox::Inbox.schema(dialect)
    }
    fn wants(&self, stream: &str, event_type: &str) -> bool {
        inbox::Inbox.wants(stream, event_type)
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        inbox::Inbox.apply(tx, t, events)
    }
}

/// The detail read model, held back until its gate opens: it falls behind the others.
struct HeldDetail(Arc<Gate>);

/// Closed until [`Gate::open`]; opening it releases every `apply` waiting on it.
#[derive(Default)]
struct Gate {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let open = self.open.lock().unwrap();
        drop(self.opened.wait_while(open, |open| !*open).unwrap());
    }
}

/// Opens the gate when the test ends, even by a panic, so that no `apply` waits forever.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

impl Projection for HeldDetail {
    fn name(&self) -> &'static str {
        detail::NAME
    }
    fn version(&self) -> i64 {
        detail::Detail.version()
    }
    fn tables(&self) -> &'static [&'static str] {
        detail::Detail.tables()
    }
    fn schema(&self, dialect: Dialect) -> Vec<&'static str> {
        detail::Detail.schema(dialect)
    }
    fn query_indexes(&self, dialect: Dialect) -> Vec<&'static str> {
        detail::Detail.query_indexes(dialect)
    }
    fn wants(&self, stream: &str, event_type: &str) -> bool {
        detail::Detail.wants(stream, event_type)
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        // Runs on a blocking thread of its own: waiting here holds back only this read model.
        self.0.pass();
        detail::Detail.apply(tx, t, events)
    }
}

async fn a_new_version_is_rebuilt_on_start(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(inbox::Inbox) as _]).await else {
        return;
    };
    let mut workload = small_workload(3);
    fill(&w.log, &mut workload, 1_500).await;
    w.settle().await;
    let before = w.models.dump(inbox::NAME).await.unwrap();
    assert_eq!(
        w.models.registration(inbox::NAME).await.unwrap().generation,
        1
    );

    // The process restarts with version 2: it rebuilds into generation 2, then follows.
    let mut w = w;
    w.stop_runner().await;
    let log = parley_eventlog::open(&w.url, LogOptions::default())
        .await
        .unwrap();
    let upgraded = ReadModels::open(log.clone(), &w.url, vec![Arc::new(InboxV2) as _])
        .await
        .unwrap();
    assert_eq!(
        upgraded.dump(inbox::NAME).await.unwrap(),
        before,
        "the old tables serve"
    );
    let runner = tokio::spawn(upgraded.clone().run());
    let head = fill(&log, &mut workload, 200).await;
    upgraded
        .wait_for(inbox::NAME, head, Duration::from_secs(60))
        .await
        .unwrap();
    let found = upgraded.registration(inbox::NAME).await.unwrap();
    assert_eq!(
        (found.version, found.generation, found.shadow),
        (2, 2, None)
    );
    let live = upgraded.dump(inbox::NAME).await.unwrap();
    upgraded.rebuild(inbox::NAME, |_| {}).await.unwrap();
    assert_eq!(upgraded.dump(inbox::NAME).await.unwrap(), live);
    runner.abort();
}

async fn a_rebuild_under_live_appends_misses_nothing(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(inbox::Inbox) as _]).await else {
        return;
    };
    let mut workload = small_workload(4);
    fill(&w.log, &mut workload, 3_000).await;
    // Appends continue while the rebuild runs.
    let log = w.log.clone();
    let appending = tokio::spawn(async move {
        fill(&log, &mut workload, 3_000).await;
    });
    let rebuilt = w.models.rebuild(inbox::NAME, |_| {}).await.unwrap();
    appending.await.unwrap();
    assert_eq!(rebuilt.generation, 2);
    w.settle().await;
    let live = w.models.dump(inbox::NAME).await.unwrap();
    w.models.rebuild(inbox::NAME, |_| {}).await.unwrap();
    assert_eq!(w.models.dump(inbox::NAME).await.unwrap(), live);
}

async fn one_pass_rebuilds_every_read_model_under_live_appends(backend: Backend) {
    let Some(w) = World::new(backend, parley_projections::all()).await else {
        return;
    };
    let mut workload = small_workload(5);
    fill(&w.log, &mut workload, 2_000).await;
    w.settle().await;
    let names = w.models.names().to_vec();
    let head = w.log.head().await.unwrap().0;
    let log = w.log.clone();
    let appending = tokio::spawn(async move {
        fill(&log, &mut workload, 1_000).await;
    });
    let mut reported = std::collections::HashSet::new();
    let outcomes = w
        .models
        .rebuild_many(&names, |p| {
            reported.insert(p.projection);
        })
        .await
        .unwrap();
    appending.await.unwrap();
    assert_eq!(
        reported.len(),
        names.len(),
        "every rebuild reports progress"
    );
    for (name, outcome) in names.iter().zip(outcomes) {
        let rebuilt = outcome.unwrap();
        assert_eq!(rebuilt.projection, *name);
        assert_eq!(rebuilt.generation, 2);
        assert!(rebuilt.position >= head, "{name} stopped before the head");
    }
    // Live feeding goes on from the swapped generations; a rebuild of one read model alone
    // gives the same rows.
    w.settle().await;
    for name in &names {
        let live = w.models.dump(name).await.unwrap();
        w.models.rebuild(name, |_| {}).await.unwrap();
        assert_eq!(w.models.dump(name).await.unwrap(), live, "{name}");
    }
    let unknown = w.models.rebuild_many(&["inbox", "nope"], |_| {}).await;
    assert!(matches!(unknown, Err(ViewError::UnknownProjection(n)) if n == "nope"));
}

/// Every read model follows appends made in many rounds through the shared live feed, while
/// one of them is held back far behind what the feed keeps: each ends equal to its rebuild.
async fn read_models_following_together_equal_their_rebuilds(backend: Backend) {
    let gate = Arc::new(Gate::default());
    let _open_at_the_end = OpenOnDrop(gate.clone());
    let projections = parley_projections::all()
        .into_iter()
        .map(|p| match p.name() {
            detail::NAME => Arc::new(HeldDetail(gate.clone())) as _,
            _ => p,
        })
        .collect();
    let Some(w) = World::new(backend, projections).await else {
        return;
    };
    let mut workload = small_workload(6);
    // The others apply each round before the next is appended, so every round is a stretch
    // of its own: far more than the feed keeps while detail waits at the gate.
    for _ in 0..30 {
        let head = append_workload(w.log.as_ref(), &w.models, &mut workload, 25).await;
        for name in w.models.names().iter().filter(|n| **n != detail::NAME) {
            w.models
                .wait_for(name, head, Duration::from_secs(30))
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    gate.open();
    w.settle().await;
    let reads = w.models.live_feed_reads();
    assert!(reads.shared.load(Ordering::Relaxed) > 0, "no read for all");
    assert!(
        reads.own.load(Ordering::Relaxed) > 0,
        "the held-back read model never fell behind what the feed keeps"
    );
    for name in w.models.names().to_vec() {
        let live = w.models.dump(name).await.unwrap();
        w.models.rebuild(name, |_| {}).await.unwrap();
        assert_eq!(w.models.dump(name).await.unwrap(), live, "{name}");
    }
}

/// A stored event that some read models want and cannot decode stops those alone: the others
/// read past it (each for itself, since the shared decode fails) and keep following.
async fn an_event_some_read_models_cannot_decode_stops_only_those(backend: Backend) {
    let Some(w) = World::new(backend, parley_projections::all()).await else {
        return;
    };
    let mut workload = small_workload(7);
    fill(&w.log, &mut workload, 200).await;
    let stream = format!("token-{}", Uuid::now_v7());
    let broken = w
        .log
        .append(
            &StreamId::new(stream.clone()).unwrap(),
            ExpectedVersion::Any,
            vec![NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "TokenIssued".into(),
                schema_version: 1,
                // 0xc1 is a MessagePack marker that is never used.
                payload: vec![0xc1],
                metadata: Metadata::default(),
            }],
        )
        .await
        .unwrap()
        .last_position()
        .0;
    let head = fill(&w.log, &mut workload, 200).await;
    let (stopped, going): (Vec<_>, Vec<_>) = parley_projections::all()
        .into_iter()
        .partition(|p| p.wants(&stream, "TokenIssued"));
    assert!(stopped.iter().any(|p| p.name() == access::NAME));
    assert!(!going.is_empty());
    for p in &going {
        let name = p.name();
        w.models
            .wait_for(name, head, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for p in &stopped {
        let name = p.name();
        assert!(w.models.position(name).unwrap() < broken, "{name}");
        first_failure(&w.models, name).await;
    }
    assert!(w.models.live_feed_reads().own.load(Ordering::Relaxed) > 0);
}

/// How [`Faulty`] fails until it is healed.
#[derive(Clone, Copy)]
enum Fault {
    Error,
    Panic,
}

/// A read model that records the position of every conversation event it applies and then,
/// until it is healed, fails: so each failing transaction has written rows it must not keep.
struct Faulty {
    name: &'static str,
    fault: Fault,
    healed: Arc<std::sync::atomic::AtomicBool>,
}

impl Projection for Faulty {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> i64 {
        1
    }
    fn tables(&self) -> &'static [&'static str] {
        &["seen"]
    }
    fn schema(&self, _dialect: Dialect) -> Vec<&'static str> {
        vec!["CREATE TABLE {p}seen (position BIGINT PRIMARY KEY)"]
    }
    fn wants(&self, stream: &str, _event_type: &str) -> bool {
        stream.starts_with("conversation-")
    }
    fn apply(&self, tx: &mut dyn Tx, t: &Tables, events: &[Envelope]) -> Result<(), StoreError> {
        for envelope in events {
            // A position applied twice would break the primary key.
            let sql = t.sql("INSERT INTO {p}seen (position) VALUES ($1)");
            tx.execute(&sql, &[envelope.position.into()])?;
        }
        if self.healed.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.fault {
            Fault::Error => Err(StoreError::Corrupt(self.name, "refused on purpose".into())),
            Fault::Panic => panic!("{} fails on purpose", self.name),
        }
    }
}

/// A live transaction that fails, by an error or by a panic, is reported with its own reason,
/// rolls back everything it wrote, stops only its read model (the process goes on), and that
/// read model resumes from its checkpoint once the cause is gone.
async fn a_failing_live_transaction_rolls_back_and_reports_why(backend: Backend) {
    let healed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let faulty = |name, fault| {
        Arc::new(Faulty {
            name,
            fault,
            healed: healed.clone(),
        }) as Arc<dyn Projection>
    };
    let projections = vec![
        faulty("erring", Fault::Error),
        faulty("panicking", Fault::Panic),
        Arc::new(inbox::Inbox) as _,
    ];
    let Some(w) = World::new(backend, projections).await else {
        return;
    };
    let head = fill(&w.log, &mut small_workload(11), 200).await;
    w.models
        .wait_for(inbox::NAME, head, Duration::from_secs(30))
        .await
        .unwrap();
    for (name, reason) in [
        ("erring", "refused on purpose"),
        ("panicking", "panicking fails on purpose"),
    ] {
        let failure = first_failure(&w.models, name).await;
        assert!(failure.contains(reason), "{name}: {failure}");
        assert_eq!(w.models.position(name).unwrap(), 0, "{name} moved on");
    }
    healed.store(true, Ordering::Release);
    for name in ["erring", "panicking"] {
        w.models
            .wait_for(name, head, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Waits (at most 30 s) until feeding `name` fails, and answers why.
async fn first_failure(models: &ReadModels, name: &str) -> String {
    let mut failures = models.failures(name).unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(30), failures.wait_for(Option::is_some))
        .await
        .unwrap_or_else(|_| panic!("{name} reported no failure within 30 s"))
        .unwrap();
    failed.clone().unwrap_or_default()
}

/// Raw events in a stream no read model knows, in one append; the position of the last one.
async fn append_unknown(log: &Arc<dyn EventLog>, count: usize) -> u64 {
    let events = (0..count)
        .map(|_| NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "NoteWritten".into(),
            schema_version: 1,
            payload: vec![0x80],
            metadata: Metadata::default(),
        })
        .collect();
    let stream = StreamId::new(format!("note-{}", Uuid::now_v7())).unwrap();
    log.append(&stream, ExpectedVersion::Any, events)
        .await
        .unwrap()
        .last_position()
        .0
}

/// Under load (its last transaction carried many events), a read model with a linger lets
/// new events gather instead of committing each as it comes; a reader waiting for a position
/// ends the linger at once, and one transaction then carries everything gathered.
async fn a_lingering_read_model_gathers_events_until_a_reader_waits(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(inbox::Inbox) as _]).await else {
        return;
    };
    w.models
        .set_linger_of(inbox::NAME, Duration::from_secs(3600))
        .unwrap();
    let transactions = || w.models.live_transactions(inbox::NAME).unwrap();
    let wait = Duration::from_secs(30);

    // A burst after an idle spell applies at once, in one transaction.
    let burst = append_unknown(&w.log, 40).await;
    w.models.wait_for(inbox::NAME, burst, wait).await.unwrap();
    assert_eq!(transactions(), 1);

    // What follows gathers: nothing is applied while nobody waits.
    let mut last = burst;
    for _ in 0..10 {
        last = append_unknown(&w.log, 1).await;
    }
    assert_eq!(w.models.position(inbox::NAME).unwrap(), burst);
    assert_eq!(transactions(), 1);

    // A reader asking for the last one gets it now, not in an hour, in one more transaction.
    w.models.wait_for(inbox::NAME, last, wait).await.unwrap();
    assert_eq!(transactions(), 2);
}

async fn waiting_for_a_position_never_reached_is_a_typed_timeout(backend: Backend) {
    let Some(w) = World::new(backend, vec![Arc::new(inbox::Inbox) as _]).await else {
        return;
    };
    let error = w
        .models
        .wait_for(inbox::NAME, 1_000_000, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ViewError::Lagging {
                wanted: 1_000_000,
                reached: 0,
                ..
            }
        ),
        "{error}"
    );
    assert!(matches!(
        w.models
            .wait_for("nonsense", 1, Duration::from_millis(1))
            .await,
        Err(ViewError::UnknownProjection(_))
    ));
}

async fn a_process_never_feeds_tables_registered_at_another_version(backend: Backend) {
    let Some(mut w) = World::new(backend, vec![Arc::new(inbox::Inbox) as _]).await else {
        return;
    };
    w.stop_runner().await;
    let mut workload = small_workload(6);
    fill(&w.log, &mut workload, 300).await;
    // Version 1 feeds; then version 2 is rebuilt and swapped in by another process.
    let old = w.models.clone();
    let feeding = tokio::spawn(old.clone().run());
    let upgraded = ReadModels::open(w.log.clone(), &w.url, vec![Arc::new(InboxV2) as _])
        .await
        .unwrap();
    upgraded.rebuild(inbox::NAME, |_| {}).await.unwrap();
    let after_swap = upgraded.dump(inbox::NAME).await.unwrap();
    fill(&w.log, &mut workload, 300).await;
    // The version-1 feeder stops with a typed error instead of writing version-2 tables.
    let outcome = feeding.await.unwrap();
    assert!(
        matches!(
            outcome,
            Err(ViewError::OtherVersion {
                registered: 2,
                ours: 1,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(upgraded.dump(inbox::NAME).await.unwrap(), after_swap);
}

on_both_backends! {
    a_process_never_feeds_tables_registered_at_another_version => super::a_process_never_feeds_tables_registered_at_another_version;
    a_new_version_is_rebuilt_on_start => super::a_new_version_is_rebuilt_on_start;
    a_rebuild_under_live_appends_misses_nothing => super::a_rebuild_under_live_appends_misses_nothing;
    waiting_for_a_position_never_reached_is_a_typed_timeout => super::waiting_for_a_position_never_reached_is_a_typed_timeout;
    one_pass_rebuilds_every_read_model_under_live_appends => super::one_pass_rebuilds_every_read_model_under_live_appends;
    read_models_following_together_equal_their_rebuilds => super::read_models_following_together_equal_their_rebuilds;
    an_event_some_read_models_cannot_decode_stops_only_those => super::an_event_some_read_models_cannot_decode_stops_only_those;
    a_lingering_read_model_gathers_events_until_a_reader_waits => super::a_lingering_read_model_gathers_events_until_a_reader_waits;
    a_failing_live_transaction_rolls_back_and_reports_why => super::a_failing_live_transaction_rolls_back_and_reports_why;
}

/// The key of the advisory lock a PostgreSQL leader holds (the runner's `LEADER_LOCK_KEY`).
const LEADER_LOCK_KEY: i64 = 0x7061_726c_6579_0002;

/// Sessions of this test's database holding (`granted`) or waiting for the leader lock.
const LEADER_LOCKS: &str = "FROM pg_locks
     WHERE locktype = 'advisory' AND granted = $1 AND objsubid = 1
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND (classid::int8 << 32 | objid::int8) = $2";

/// Polls until `count` sessions of this test's database hold (`granted`) or wait for the
/// leader lock, for at most 15 s. PostgreSQL tells nobody when a session starts waiting for a
/// lock: `pg_locks` is all there is, so it is asked every 20 ms.
async fn until_leader_locks(admin: &mut sqlx::PgConnection, granted: bool, count: i64, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) {LEADER_LOCKS}"
        )))
        .bind(granted)
        .bind(LEADER_LOCK_KEY)
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if found == count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} within 15 s ({found} sessions, not {count})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most 15 s) until `models` reports `leading`.
async fn until_leading(models: &ReadModels, leading: bool, what: &str) {
    let mut leadership = models.leadership();
    tokio::time::timeout(
        Duration::from_secs(15),
        leadership.wait_for(|now| *now == leading),
    )
    .await
    .unwrap_or_else(|_| panic!("{what} within 15 s"))
    .unwrap();
}

fn live_transactions(models: &ReadModels) -> Vec<u64> {
    models
        .names()
        .iter()
        .map(|name| models.live_transactions(name).unwrap())
        .collect()
}

/// Appends `events` and waits until `models` knows every read model has applied them.
async fn fill_and_wait(
    log: &Arc<dyn EventLog>,
    workload: &mut Workload,
    events: u64,
    models: &ReadModels,
) {
    let head = fill(log, workload, events).await;
    for name in models.names() {
        models
            .wait_for(name, head, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// PostgreSQL: when the connection holding a leader's lock dies while its process lives (here
/// its backend is terminated), the leader notices, stops feeding and no longer reports
/// leading; the process waiting takes over and feeds alone; once that one is gone, the first
/// takes the lock again on a new connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lock_connection_dies_stops_feeding_and_waits_again() {
    use sqlx::Connection as _;
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    let log = parley_eventlog::open(&db.url, LogOptions::default())
        .await
        .unwrap();
    let projections = || vec![Arc::new(inbox::Inbox) as _, Arc::new(access::Access) as _];
    let first = ReadModels::open(log.clone(), &db.url, projections())
        .await
        .unwrap();
    let second = ReadModels::open(log.clone(), &db.url, projections())
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();

    let first_runner = tokio::spawn(first.clone().run());
    until_leading(&first, true, "the first process leads").await;
    let second_runner = tokio::spawn(second.clone().run());
    until_leader_locks(
        &mut admin,
        false,
        1,
        "the second process waits for the lock",
    )
    .await;
    assert!(!second.is_leading());
    let mut workload = small_workload(7);
    fill_and_wait(&log, &mut workload, 300, &first).await;
    assert!(live_transactions(&first).iter().all(|n| *n > 0));
    assert!(live_transactions(&second).iter().all(|n| *n == 0));

    // The leader's lock connection dies; its process (and its pool) live on.
    let terminated: Vec<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) {LEADER_LOCKS}"
    )))
    .bind(true)
    .bind(LEADER_LOCK_KEY)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "one leader backend terminated");
    let lost = std::time::Instant::now();
    until_leading(
        &first,
        false,
        "the old leader reports that it no longer leads",
    )
    .await;
    let noticed = lost.elapsed();
    until_leading(&second, true, "the waiting process takes over").await;

    // Only the new leader applies what follows.
    let stopped = live_transactions(&first);
    let before = live_transactions(&second);
    fill_and_wait(&log, &mut workload, 300, &second).await;
    assert_eq!(live_transactions(&first), stopped, "the old leader applied");
    assert!(
        live_transactions(&second)
            .iter()
            .zip(&before)
            .all(|(after, before)| after > before),
        "the new leader did not apply"
    );
    assert!(second.is_leading() && !first.is_leading());
    until_leader_locks(&mut admin, true, 1, "one session holds the lock").await;
    until_leader_locks(
        &mut admin,
        false,
        1,
        "the old leader waits for the lock again",
    )
    .await;

    // The new leader's process ends: the first leads again and carries on.
    second_runner.abort();
    let _ = second_runner.await;
    until_leading(&first, true, "the first process leads again").await;
    let before = live_transactions(&first);
    fill_and_wait(&log, &mut workload, 300, &first).await;
    assert!(
        live_transactions(&first)
            .iter()
            .zip(&before)
            .all(|(after, before)| after > before),
        "the first process did not apply after taking over again"
    );
    for name in first.names().to_vec() {
        let live = first.dump(name).await.unwrap();
        first.rebuild(name, |_| {}).await.unwrap();
        assert_eq!(first.dump(name).await.unwrap(), live, "{name}");
    }
    eprintln!("the old leader noticed the loss of its lock connection in {noticed:?}");
    first_runner.abort();
    log.close().await;
}
