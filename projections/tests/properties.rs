//! Projecting a random valid history incrementally — in batches of every size, interleaved with
//! catching up — gives exactly the rows a rebuild from zero gives.
//!
//! Reports follow the help desk's rules (business hours, report rules) as they were when their
//! generation was created, so when the history changes the rules they are rebuilt right after,
//! as an operator does (`parley rebuild reports`); from then on they are fed incrementally like
//! the others, and the final rebuild follows the same rules.

mod support;

use parley_projections::workload::{Shape, Workload};
use parley_projections::{Projection, events, inbox, reports};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::sync::Arc;
use support::*;

fn projections() -> Vec<Arc<dyn Projection>> {
    parley_projections::all()
}

/// How long a history the test projects.
#[derive(Clone, Copy)]
enum Length {
    Appends(usize),
    /// Until every type of every family is in it (and this many appends at most).
    EveryEventType(usize),
}

/// Projects `seed`'s history, letting the runner catch up after each append of `pauses`, and
/// compares every read model with its rebuild. The event types projected.
async fn incremental_equals_rebuild(
    backend: Backend,
    seed: u64,
    length: Length,
    pauses: Vec<usize>,
) -> BTreeSet<String> {
    let mut projected = BTreeSet::new();
    let Some(w) = World::new(backend, projections()).await else {
        return projected;
    };
    let mut workload = Workload::new(
        seed,
        Shape {
            concurrent: 12,
            agents: 4,
            queues: 2,
            social_percent: 25,
        },
    );
    let every_type = every_event_type();
    let mut reports_rebuilt = 0;
    for i in 0.. {
        let done = match length {
            Length::Appends(n) => i >= n,
            Length::EveryEventType(at_most) => i >= at_most || projected == every_type,
        };
        if done {
            break;
        }
        let append = workload.next_append();
        projected.extend(append.events.iter().map(|e| e.event_type.clone()));
        // While the runner feeds every read model, reports may move to a new generation.
        if append_as_an_operator(w.log.as_ref(), &w.models, append).await {
            reports_rebuilt += 1;
        }
        if pauses.contains(&i) {
            // Let the runner catch up here, so live batches end at this point.
            w.settle().await;
        }
    }
    w.settle().await;
    let mut incremental = Vec::new();
    for name in w.models.names() {
        incremental.push(w.models.dump(name).await.unwrap());
    }
    let (kept, scanned) = w
        .query(inbox::NAME, |tx, t| {
            Ok((inbox::all_counts(tx, t)?, inbox::counts_by_scanning(tx, t)?))
        })
        .await;
    assert_eq!(kept, scanned, "inbox counts drifted from the rows");
    for (name, before) in w.models.names().iter().zip(incremental) {
        let rebuilt = w.models.rebuild(name, |_| {}).await.unwrap();
        let earlier = if *name == reports::NAME {
            reports_rebuilt
        } else {
            0
        };
        assert_eq!(rebuilt.generation, 2 + earlier);
        let after = w.models.dump(name).await.unwrap();
        assert!(!after.is_empty(), "{name} is empty");
        assert_same_rows(name, ("incremental", &before), ("rebuild", &after));
    }
    projected
}

/// Every type of every family of events.
fn every_event_type() -> BTreeSet<String> {
    events::families()
        .iter()
        .flat_map(|(_, types)| types.iter().map(|t| t.to_string()))
        .collect()
}

/// Fails unless every type of every family was projected.
fn assert_every_event_type(projected: &BTreeSet<String>) {
    let missing: Vec<_> = every_event_type().difference(projected).cloned().collect();
    assert!(missing.is_empty(), "never projected: {missing:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_incremental_projection_equals_a_rebuild(
        seed in any::<u64>(),
        pauses in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(incremental_equals_rebuild(
            Backend::Sqlite,
            seed,
            Length::Appends(400),
            pauses,
        ));
    }
}

/// A history that holds every type of event (the rarest, such as the help desk going offline
/// at the end of its business hours or an API token revoked, take several thousand appends).
const AT_MOST: usize = 40_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_history_with_every_event_type_projects_as_a_rebuild() {
    let projected = incremental_equals_rebuild(
        Backend::Sqlite,
        13,
        Length::EveryEventType(AT_MOST),
        vec![900, 901, 3_000],
    )
    .await;
    assert_every_event_type(&projected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incremental_projection_equals_a_rebuild() {
    incremental_equals_rebuild(
        Backend::Postgres,
        7,
        Length::Appends(400),
        vec![50, 51, 200],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_history_with_every_event_type_projects_as_a_rebuild() {
    let projected = incremental_equals_rebuild(
        Backend::Postgres,
        15,
        Length::EveryEventType(AT_MOST),
        vec![1_500, 4_000, 4_001],
    )
    .await;
    if !projected.is_empty() {
        assert_every_event_type(&projected);
    }
}
