//! Projecting a random valid history incrementally — in batches of every size, interleaved with
//! catching up — gives exactly the rows a rebuild from zero gives.

mod support;

use parley_eventlog::{ExpectedVersion, StreamId};
use parley_projections::workload::{Shape, Workload};
use parley_projections::{Projection, inbox};
use proptest::prelude::*;
use std::sync::Arc;
use support::*;

fn projections() -> Vec<Arc<dyn Projection>> {
    parley_projections::all()
}

async fn incremental_equals_rebuild(
    backend: Backend,
    seed: u64,
    appends: usize,
    pauses: Vec<usize>,
) {
    let Some(w) = World::new(backend, projections()).await else {
        return;
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
    for i in 0..appends {
        let append = workload.next_append();
        w.log
            .append(
                &StreamId::new(append.stream).unwrap(),
                ExpectedVersion::Any,
                append.events,
            )
            .await
            .unwrap();
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
        assert_eq!(rebuilt.generation, 2);
        let after = w.models.dump(name).await.unwrap();
        // The workload mints no API tokens: only the access read model may be empty.
        assert!(
            !after.is_empty() || *name == parley_projections::access::NAME,
            "{name} is empty"
        );
        assert_same_rows(name, ("incremental", &before), ("rebuild", &after));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_incremental_projection_equals_a_rebuild(
        seed in any::<u64>(),
        pauses in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(incremental_equals_rebuild(Backend::Sqlite, seed, 400, pauses));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_incremental_projection_equals_a_rebuild() {
    incremental_equals_rebuild(Backend::Postgres, 7, 400, vec![50, 51, 200]).await;
}
