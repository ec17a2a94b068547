//! The projection runner: feeds read models from the log, exactly once.
//!
//! Every projection has a row in `parley_projections`: its version, the generation of tables
//! that serves queries, and its checkpoint (the last log position applied). Each batch of events
//! is applied in one transaction that first locks that row, applies only the events after the
//! stored checkpoint, and moves the checkpoint: a crash anywhere leaves either all of a batch or
//! none of it, and two processes can never apply the same event twice.
//!
//! Tables are named `<projection>_g<generation>_<table>`. A rebuild fills the next generation
//! (the shadow) from position 0 while the current one keeps serving, then swaps the two in one
//! transaction under the same row lock, catching up on the last events inside it.

use crate::feed::{Envelope, FeedError, decode_all, decode_wanted};
use crate::store::{Dialect, Lane, SqliteStore, Store, StoreError, Tx};
use parley_eventlog::{EventLog, LogError, Position, RecordedEvent};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;

/// Events per transaction while following the log. A read model lingering for more events
/// (see [`ReadModels::set_linger`]) stops waiting once this many are waiting.
const LIVE_BATCH: usize = 2_000;
/// A read model lingers only after a transaction that carried at least this many events: it is
/// under load. With fewer, events apply as soon as they are appended.
const LINGER_FROM: usize = 32;
/// Decoded stretches of new events kept for the read models that have yet to apply them.
const LIVE_STRETCHES_KEPT: usize = 8;
/// A stretch also ends once its events' payloads reach this many bytes, so that what is kept
/// stays bounded when the events are large (messages of 80 KB): 8 stretches of 4 MiB at most.
const LIVE_STRETCH_BYTES: usize = 4 * 1024 * 1024;
/// Events per read while rebuilding.
const REBUILD_BATCH: usize = 10_000;
/// Events per transaction while rebuilding (memory stays bounded by this).
const REBUILD_TX_EVENTS: usize = 20_000;
/// Decoded stretches a rebuild may have waiting while the others catch up.
const REBUILD_QUEUE: usize = 2;
/// The advisory lock a leader holds for as long as it runs the projections (PostgreSQL).
const LEADER_LOCK_KEY: i64 = 0x7061_726c_6579_0002;
/// The advisory lock that serialises schema changes between processes (PostgreSQL).
const SCHEMA_LOCK_KEY: i64 = 0x7061_726c_6579_0003;
const PROGRESS_CHANNEL: &str = "parley_projection_progress";
/// How often a leader checks that the connection holding its lock is alive (PostgreSQL).
const LEADERSHIP_CHECK: Duration = Duration::from_secs(1);
/// How long a leader waits for that check's answer before it counts the connection as lost.
const LEADERSHIP_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a failed attempt to wait for the leader lock, doubling up to
/// [`LEAD_RETRY_MAX`] while the database stays unreachable.
const LEAD_RETRY_FIRST: Duration = Duration::from_secs(1);
const LEAD_RETRY_MAX: Duration = Duration::from_secs(30);
/// How long a former leader waits for the live transactions it had started to end.
const LANES_DRAIN: Duration = Duration::from_secs(10);

/// A read model fed from the log.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: table prefix, registry key and the argument of `parley rebuild`.
    fn name(&self) -> &'static str;
    /// Bumped whenever the tables or the way events fill them change; a new version is
    /// rebuilt on start while the old tables keep serving.
    fn version(&self) -> i64;
    /// The tables (without prefix) the schema creates, for dropping a generation.
    fn tables(&self) -> &'static [&'static str];
    /// Statements creating one generation's tables and indexes; `{p}` is the table prefix.
    fn schema(&self, dialect: Dialect) -> Vec<&'static str>;
    /// Indexes that only queries use (never `apply`): a rebuild creates them once its tables
    /// are filled — building an index from the rows sorted is far cheaper than maintaining it
    /// row by row — and before it swaps.
    fn query_indexes(&self, _dialect: Dialect) -> Vec<&'static str> {
        Vec::new()
    }
    /// Applies events in position order, inside the batch's transaction.
    fn apply(
        &self,
        tx: &mut dyn Tx,
        tables: &Tables,
        events: &[Envelope],
    ) -> Result<(), StoreError>;
    /// Whether events of this type in this stream can matter; others are skipped before being
    /// decoded (they still move the checkpoint).
    fn wants(&self, _stream: &str, _event_type: &str) -> bool {
        true
    }
    /// Streams read in full when a generation is created, before any event is applied; for
    /// rules that apply to all of history (see the reports).
    fn seed_streams(&self) -> &'static [&'static str] {
        &[]
    }
    /// Receives the seed streams' events when a generation is created.
    fn seed(
        &self,
        _tx: &mut dyn Tx,
        _tables: &Tables,
        _events: &[Envelope],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The table names of one generation of a projection.
#[derive(Debug, Clone)]
pub struct Tables {
    prefix: String,
}

impl Tables {
    fn new(name: &str, generation: i64) -> Self {
        Tables {
            prefix: format!("{name}_g{generation}_"),
        }
    }

    /// `template` with `{p}` replaced by this generation's table prefix.
    pub fn sql(&self, template: &str) -> String {
        template.replace("{p}", &self.prefix)
    }
}

/// Why a read model could not answer or be fed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("no projection is called {0:?}")]
    UnknownProjection(String),
    #[error(
        "projection {projection} has reached position {reached}, not yet {wanted}, after waiting {waited_ms} ms"
    )]
    Lagging {
        projection: &'static str,
        wanted: u64,
        reached: u64,
        waited_ms: u64,
    },
    #[error("the rebuild of {0} was superseded by a newer rebuild")]
    Superseded(&'static str),
    #[error(
        "read model {projection} is registered at version {registered}; this process has version {ours} and leaves it alone (restart with the matching version)"
    )]
    OtherVersion {
        projection: &'static str,
        registered: i64,
        ours: i64,
    },
    #[error("the read models' database URL {0:?} is not sqlite: or postgres://")]
    UnsupportedUrl(String),
}

/// A projection's registry row.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub version: i64,
    pub generation: i64,
    pub position: i64,
    pub shadow: Option<Shadow>,
}

impl Registration {
    /// The newest version this read model is registered at, counting a shadow being built.
    pub fn newest_version(&self) -> i64 {
        self.shadow
            .as_ref()
            .map_or(self.version, |s| s.version.max(self.version))
    }

    /// Refuses a process whose code is older than what is registered or being built: it must
    /// neither feed nor replace tables whose shape it does not know.
    fn check_not_older(&self, projection: &'static str, ours: i64) -> Result<(), ViewError> {
        let registered = self.newest_version();
        if registered > ours {
            return Err(ViewError::OtherVersion {
                projection,
                registered,
                ours,
            });
        }
        Ok(())
    }
}

/// A generation being rebuilt.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub generation: i64,
    pub version: i64,
    pub position: i64,
}

/// One decoded stretch of the log, shared by the rebuilds of one pass.
struct Stretch {
    events: Vec<Envelope>,
    /// The position of its last event.
    last: i64,
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Progress of a rebuild, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub projection: &'static str,
    /// Log position reached by the shadow tables.
    pub done: u64,
    /// Head of the log when the rebuild started.
    pub target: u64,
}

/// What a finished rebuild did.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub projection: &'static str,
    pub generation: i64,
    pub position: u64,
    pub events: u64,
    /// From the start of the rebuild to its swap.
    pub elapsed: Duration,
}

struct Entry {
    projection: Arc<dyn Projection>,
    store: Store,
    position: watch::Sender<i64>,
    /// How long live feeding lets new events gather after a transaction, in microseconds.
    linger_us: AtomicU64,
    /// The highest position a reader waits for ([`ReadModels::wait_for`]); a linger ends as
    /// soon as it is beyond what the read model has applied.
    wanted: AtomicI64,
    /// Wakes a lingering read model when `wanted` moves.
    hurry: tokio::sync::Notify,
    /// Transactions live feeding has run (counted inside each, so before its commit is seen).
    live_transactions: Arc<AtomicU64>,
    /// Where live feeding's transactions run.
    lane: Lane,
    /// Why feeding it last failed, until it runs again (for `/health`).
    failure: watch::Sender<Option<String>>,
}

/// Every read model, its store and its progress: what the server queries and what the runner
/// feeds. Cheap to clone.
#[derive(Clone)]
pub struct ReadModels {
    log: Arc<dyn EventLog>,
    entries: Arc<HashMap<&'static str, Entry>>,
    order: Arc<Vec<&'static str>>,
    pool: Option<PgPool>,
    /// Whether this process feeds the read models now.
    leading: Arc<watch::Sender<bool>>,
    live: Arc<LiveFeed>,
}

/// New events, read from the log and decoded once for every read model that follows it: they
/// all follow at about the same position. The first to reach the end of what is kept reads the
/// next stretch while holding the lock, so the others wait for it instead of reading it again;
/// one that has fallen behind what is kept (or must skip what fails to decode for another read
/// model) reads for itself, as a rebuild's catching up would.
struct LiveFeed {
    log: Arc<dyn EventLog>,
    projections: Vec<Arc<dyn Projection>>,
    kept: tokio::sync::Mutex<VecDeque<Arc<LiveStretch>>>,
    reads: LiveFeedReads,
}

/// How often live feeding has read the log: once for all read models, or for one alone.
#[derive(Debug, Default)]
pub struct LiveFeedReads {
    pub shared: AtomicU64,
    pub own: AtomicU64,
}

/// Every event after `after` up to its last one (decoded if any read model wants it).
struct LiveStretch {
    after: i64,
    events: Vec<Envelope>,
}

impl LiveStretch {
    fn last(&self) -> i64 {
        self.events.last().map_or(self.after, |e| e.position)
    }
}

impl LiveFeed {
    /// Events after `position` for `projection`, up to [`LIVE_BATCH`] of them, as a stretch
    /// and the index of its first event after `position` (none if the log holds none yet).
    async fn after(
        &self,
        position: i64,
        projection: &dyn Projection,
    ) -> Result<(Arc<LiveStretch>, usize), ViewError> {
        let mut kept = self.kept.lock().await;
        if let Some(stretch) = kept
            .iter()
            .find(|s| s.after <= position && position < s.last())
        {
            let from = stretch.events.partition_point(|e| e.position <= position);
            return Ok((stretch.clone(), from));
        }
        if kept.back().is_some_and(|s| position < s.last()) {
            // Behind what is kept: not a stretch the others will ask for.
            drop(kept);
            self.reads.own.fetch_add(1, Ordering::Relaxed);
            let events = self.read(position).await?;
            return Ok((Arc::new(Self::decoded(position, &events, projection)?), 0));
        }
        let events = self.read(position).await?;
        let wanted = |stream: &str, event_type: &str| {
            self.projections.iter().any(|p| p.wants(stream, event_type))
        };
        let Ok(decoded) = decode_wanted(&events, wanted) else {
            // Something another read model wants does not decode: it reports that itself.
            drop(kept);
            self.reads.own.fetch_add(1, Ordering::Relaxed);
            return Ok((Arc::new(Self::decoded(position, &events, projection)?), 0));
        };
        self.reads.shared.fetch_add(1, Ordering::Relaxed);
        let stretch = Arc::new(LiveStretch {
            after: position,
            events: decoded,
        });
        if !stretch.events.is_empty() {
            kept.push_back(stretch.clone());
            if kept.len() > LIVE_STRETCHES_KEPT {
                kept.pop_front();
            }
        }
        Ok((stretch, 0))
    }

    async fn read(&self, after: i64) -> Result<Vec<RecordedEvent>, LogError> {
        self.log
            .read_all_bounded(Position(after as u64), LIVE_BATCH, LIVE_STRETCH_BYTES)
            .await
    }

    /// `events` (read after `after`) decoded for `projection` alone.
    fn decoded(
        after: i64,
        events: &[RecordedEvent],
        projection: &dyn Projection,
    ) -> Result<LiveStretch, FeedError> {
        Ok(LiveStretch {
            after,
            events: decode_wanted(events, |s, t| projection.wants(s, t))?,
        })
    }
}

/// Under load, lets new events gather after a transaction that `began` at that instant: waits
/// until the read model's linger has passed since, [`LIVE_BATCH`] events wait after
/// `position`, or a reader waits for a position beyond it.
async fn linger(
    entry: &Entry,
    began: std::time::Instant,
    head: &mut watch::Receiver<Position>,
    position: i64,
) {
    let linger = Duration::from_micros(entry.linger_us.load(Ordering::Relaxed));
    let Some(left) = linger.checked_sub(began.elapsed()) else {
        return;
    };
    let until = tokio::time::Instant::now() + left;
    loop {
        if head.borrow().0.saturating_sub(position as u64) >= LIVE_BATCH as u64 {
            return;
        }
        // Registered before `wanted` is read, so that a reader moving it after the read still
        // wakes this wait.
        let hurried = entry.hurry.notified();
        tokio::pin!(hurried);
        hurried.as_mut().enable();
        if entry.wanted.load(Ordering::Acquire) > position {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return,
            _ = hurried => return,
            changed = head.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Where a SQLite log's read models live: a directory next to the log file, one database per
/// projection (`parley.db` → `parley.views/inbox.db`).
pub fn sqlite_views_dir(log_path: &Path) -> PathBuf {
    log_path.with_extension("views")
}

/// The log's file named by a `sqlite:` URL (`None` for another URL, or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

const REGISTRY: &str = "CREATE TABLE IF NOT EXISTS parley_projections (
    name TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    position BIGINT NOT NULL,
    shadow_generation BIGINT,
    shadow_version BIGINT,
    shadow_position BIGINT
)";

fn registration(
    tx: &mut dyn Tx,
    name: &str,
    lock: bool,
) -> Result<Option<Registration>, StoreError> {
    let sql = match (lock, tx.dialect()) {
        (true, Dialect::Postgres) => {
            "SELECT version, generation, position, shadow_generation, shadow_version, shadow_position
             FROM parley_projections WHERE name = $1 FOR UPDATE"
        }
        _ => {
            "SELECT version, generation, position, shadow_generation, shadow_version, shadow_position
             FROM parley_projections WHERE name = $1"
        }
    };
    let Some(row) = tx.query_opt(sql, &[name.into()])? else {
        return Ok(None);
    };
    let shadow = match (row.opt_i64(3)?, row.opt_i64(4)?, row.opt_i64(5)?) {
        (Some(generation), Some(version), Some(position)) => Some(Shadow {
            generation,
            version,
            position,
        }),
        _ => None,
    };
    Ok(Some(Registration {
        version: row.i64(0)?,
        generation: row.i64(1)?,
        position: row.i64(2)?,
        shadow,
    }))
}

/// The registry row, locked, and the shadow `generation` it must still be building (another
/// rebuild may have superseded it).
fn locked_shadow(
    tx: &mut dyn Tx,
    name: &'static str,
    generation: i64,
) -> Result<(Registration, Shadow), ViewError> {
    let found = locked(tx, name)?;
    match found.shadow.clone().filter(|s| s.generation == generation) {
        Some(shadow) => Ok((found, shadow)),
        None => Err(ViewError::Superseded(name)),
    }
}

fn locked(tx: &mut dyn Tx, name: &'static str) -> Result<Registration, StoreError> {
    registration(tx, name, true)?
        .ok_or_else(|| StoreError::Corrupt(name, "its registry row is missing".into()))
}

/// Creates a generation's tables (and, with `query_indexes`, the indexes only queries use).
fn create_generation(
    tx: &mut dyn Tx,
    projection: &dyn Projection,
    generation: i64,
    query_indexes: bool,
) -> Result<Tables, StoreError> {
    let tables = Tables::new(projection.name(), generation);
    drop_generation(tx, projection, generation)?;
    for statement in projection.schema(tx.dialect()) {
        tx.execute(&ddl(tx.dialect(), &tables, statement), &[])?;
    }
    if query_indexes {
        create_query_indexes(tx, projection, &tables)?;
    }
    Ok(tables)
}

fn create_query_indexes(
    tx: &mut dyn Tx,
    projection: &dyn Projection,
    tables: &Tables,
) -> Result<(), StoreError> {
    for statement in projection.query_indexes(tx.dialect()) {
        tx.execute(&ddl(tx.dialect(), tables, statement), &[])?;
    }
    Ok(())
}

/// A schema statement for this generation and dialect: `{clustered}` after a table's closing
/// parenthesis stores it as one B-tree ordered by its primary key on SQLite (`WITHOUT ROWID`;
/// for tables of small rows looked up by key), and means nothing on PostgreSQL.
fn ddl(dialect: Dialect, tables: &Tables, statement: &str) -> String {
    let clustered = match dialect {
        Dialect::Sqlite => " WITHOUT ROWID",
        Dialect::Postgres => "",
    };
    tables.sql(statement).replace("{clustered}", clustered)
}

/// Adds `deltas` to a `{p}counts (scope, key, n)` table, dropping rows that reach zero, so the
/// stored rows do not depend on where batches ended.
pub fn add_counts(
    tx: &mut dyn Tx,
    tables: &Tables,
    deltas: std::collections::HashMap<(String, &'static str), i64>,
) -> Result<(), StoreError> {
    let add = tables.sql(
        "INSERT INTO {p}counts (scope, key, n) VALUES ($1, $2, $3)
         ON CONFLICT (scope, key) DO UPDATE SET n = {p}counts.n + excluded.n",
    );
    let drop_zero = tables.sql("DELETE FROM {p}counts WHERE scope = $1 AND key = $2 AND n = 0");
    for ((scope, key), n) in deltas {
        if n == 0 {
            continue;
        }
        let (scope, key): (crate::store::Value, crate::store::Value) = (scope.into(), key.into());
        tx.execute(&add, &[scope.clone(), key.clone(), n.into()])?;
        if n < 0 {
            tx.execute(&drop_zero, &[scope, key])?;
        }
    }
    Ok(())
}

fn drop_generation(
    tx: &mut dyn Tx,
    projection: &dyn Projection,
    generation: i64,
) -> Result<(), StoreError> {
    let tables = Tables::new(projection.name(), generation);
    for table in projection.tables() {
        tx.execute(
            &tables.sql(&format!("DROP TABLE IF EXISTS {{p}}{table}")),
            &[],
        )?;
    }
    Ok(())
}

/// On PostgreSQL, waits for table locks at most 5 s in this transaction (dropping tables that a
/// query still reads must not stall or deadlock it).
fn bounded_locks(tx: &mut dyn Tx) -> Result<(), StoreError> {
    if tx.dialect() == Dialect::Postgres {
        tx.execute("SET LOCAL lock_timeout = '5s'", &[])?;
    }
    Ok(())
}

/// Drops the tables of every generation of `projection` but `keep`: what a crash between a
/// swap and its drop, or a failed drop, left behind.
fn sweep_generations(
    tx: &mut dyn Tx,
    projection: &dyn Projection,
    keep: i64,
) -> Result<(), StoreError> {
    let prefix = format!("{}_g", projection.name());
    let sql = match tx.dialect() {
        Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE $1",
        Dialect::Postgres => {
            "SELECT CAST(tablename AS TEXT) FROM pg_tables
             WHERE schemaname = current_schema() AND tablename LIKE $1"
        }
    };
    let mut generations = std::collections::BTreeSet::new();
    for row in tx.query(sql, &[format!("{prefix}%").into()])? {
        let table = row.text(0)?;
        let generation = table
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(n, _)| n.parse::<i64>().ok());
        if let Some(generation) = generation.filter(|g| *g != keep) {
            generations.insert(generation);
        }
    }
    for generation in generations {
        drop_generation(tx, projection, generation)?;
    }
    Ok(())
}

fn schema_lock(tx: &mut dyn Tx) -> Result<(), StoreError> {
    if tx.dialect() == Dialect::Postgres {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[SCHEMA_LOCK_KEY.into()],
        )?;
    }
    Ok(())
}

fn notify_progress(tx: &mut dyn Tx, name: &str, position: i64) -> Result<(), StoreError> {
    if tx.dialect() == Dialect::Postgres {
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[PROGRESS_CHANNEL.into(), format!("{name}:{position}").into()],
        )?;
    }
    Ok(())
}

impl ReadModels {
    /// Opens the read models of the log at `url` (the same URL as the log's), creating each
    /// projection's registry row and first generation if missing.
    pub async fn open(
        log: Arc<dyn EventLog>,
        url: &str,
        projections: Vec<Arc<dyn Projection>>,
    ) -> Result<Self, ViewError> {
        let mut stores = Vec::new();
        let mut pool = None;
        if url.starts_with("sqlite:") {
            let path = sqlite_path(url).ok_or_else(|| ViewError::UnsupportedUrl(url.into()))?;
            let dir = sqlite_views_dir(&path);
            for projection in &projections {
                let file = dir.join(format!("{}.db", projection.name()));
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&file))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                stores.push(Store::Sqlite(Arc::new(store)));
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let shared = PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await
                .map_err(StoreError::from)?;
            stores.extend(projections.iter().map(|_| Store::Postgres(shared.clone())));
            pool = Some(shared);
        } else {
            return Err(ViewError::UnsupportedUrl(url.into()));
        }

        let mut entries = HashMap::new();
        let mut order = Vec::new();
        for (projection, store) in projections.into_iter().zip(stores) {
            let registered = {
                let projection = projection.clone();
                let log = log.clone();
                store
                    .write(move |tx| -> Result<_, ViewError> {
                        schema_lock(tx)?;
                        tx.execute(REGISTRY, &[])?;
                        if let Some(found) = registration(tx, projection.name(), true)? {
                            return Ok(found);
                        }
                        // First start: the seed streams are read only now that they are needed.
                        let seed = Handle::current()
                            .block_on(seed_events(log.as_ref(), projection.as_ref()))?;
                        let tables = create_generation(tx, projection.as_ref(), 1, true)?;
                        projection.seed(tx, &tables, &seed)?;
                        tx.execute(
                            "INSERT INTO parley_projections (name, version, generation, position)
                             VALUES ($1, $2, 1, 0)",
                            &[projection.name().into(), projection.version().into()],
                        )?;
                        Ok(Registration {
                            version: projection.version(),
                            generation: 1,
                            position: 0,
                            shadow: None,
                        })
                    })
                    .await?
            };
            let name = projection.name();
            order.push(name);
            entries.insert(
                name,
                Entry {
                    projection,
                    store,
                    position: watch::Sender::new(registered.position),
                    linger_us: AtomicU64::new(0),
                    wanted: AtomicI64::new(0),
                    hurry: tokio::sync::Notify::new(),
                    live_transactions: Arc::default(),
                    lane: Lane::new(format!("live-{name}")),
                    failure: watch::Sender::new(None),
                },
            );
        }
        let live = Arc::new(LiveFeed {
            log: log.clone(),
            projections: entries.values().map(|e| e.projection.clone()).collect(),
            kept: tokio::sync::Mutex::default(),
            reads: LiveFeedReads::default(),
        });
        let models = ReadModels {
            log,
            live,
            entries: Arc::new(entries),
            order: Arc::new(order),
            pool,
            leading: Arc::new(watch::Sender::new(false)),
        };
        if let Some(pool) = &models.pool {
            models.follow_progress(pool.clone()).await?;
        }
        Ok(models)
    }

    /// A store for tables that are not a read model but live beside them and are shared by
    /// every node (e.g. the API's idempotency records), with `schema` applied (statements that
    /// may run again, such as `CREATE TABLE IF NOT EXISTS`, serialised between processes like
    /// the read models' own). On SQLite it is the file `<name>.db` in the read models'
    /// directory; on PostgreSQL the read models' database and connections. `url` is the URL
    /// these read models were opened with.
    pub async fn side_store(
        &self,
        url: &str,
        name: &str,
        schema: &'static [&'static str],
    ) -> Result<Store, ViewError> {
        let store = match &self.pool {
            Some(pool) => Store::Postgres(pool.clone()),
            None => {
                let path = sqlite_path(url).ok_or_else(|| ViewError::UnsupportedUrl(url.into()))?;
                let file = sqlite_views_dir(&path).join(format!("{name}.db"));
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&file))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                Store::Sqlite(Arc::new(store))
            }
        };
        store
            .write(move |tx| -> Result<_, StoreError> {
                schema_lock(tx)?;
                for statement in schema {
                    tx.execute(statement, &[])?;
                }
                Ok(())
            })
            .await?;
        Ok(store)
    }

    /// How often live feeding has read the log for all read models at once, and for one alone
    /// (one that lags behind what the feed keeps, or must read past what another cannot decode).
    pub fn live_feed_reads(&self) -> &LiveFeedReads {
        &self.live.reads
    }

    /// Whether this process feeds the read models (always, on SQLite, once running).
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// [`ReadModels::is_leading`] as it changes, to wait on.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    /// The projections' names, in registration order.
    pub fn names(&self) -> &[&'static str] {
        &self.order
    }

    fn entry(&self, name: &str) -> Result<&Entry, ViewError> {
        self.entries
            .get(name)
            .ok_or_else(|| ViewError::UnknownProjection(name.to_owned()))
    }

    /// The registry row of `name`.
    pub async fn registration(&self, name: &str) -> Result<Registration, ViewError> {
        let entry = self.entry(name)?;
        let projection = entry.projection.name();
        Ok(entry
            .store
            .read(move |tx| -> Result<_, StoreError> {
                registration(tx, projection, false)?
                    .ok_or_else(|| StoreError::Corrupt(projection, "registry row missing".into()))
            })
            .await?)
    }

    /// Why feeding `name` last failed in this process, while it has not run again since.
    pub fn failure(&self, name: &str) -> Option<String> {
        self.entries.get(name)?.failure.borrow().clone()
    }

    /// [`ReadModels::failure`] of `name` as it changes, to wait on.
    pub fn failures(&self, name: &str) -> Result<watch::Receiver<Option<String>>, ViewError> {
        Ok(self.entry(name)?.failure.subscribe())
    }

    /// How long live feeding lets new events gather under load before applying them, for
    /// every read model (zero, the default: never).
    ///
    /// A read model applies the events it finds in one transaction. Under load, each
    /// transaction would carry only the events appended while the previous one ran, and each
    /// commit rewrites the same pages (counts, hot rows, index edges, the checkpoint) again.
    /// With a linger, a read model whose last transaction carried [`LINGER_FROM`] events or
    /// more, and began less than `linger` ago, waits for the rest of the linger, so that one
    /// commit carries all that arrived meanwhile. It stops waiting when [`LIVE_BATCH`] events
    /// wait, or when a reader waits for a position it has not applied
    /// ([`ReadModels::wait_for`]): read-your-writes is not delayed in the process that feeds
    /// the read models. A reader that does not give a position may see the read model up to
    /// the linger behind the log under load.
    pub fn set_linger(&self, linger: Duration) {
        for name in self.order.iter() {
            // Every name in `order` has an entry.
            let _ = self.set_linger_of(name, linger);
        }
    }

    /// [`ReadModels::set_linger`] for the read model `name` alone.
    pub fn set_linger_of(&self, name: &str, linger: Duration) -> Result<(), ViewError> {
        let micros = u64::try_from(linger.as_micros()).unwrap_or(u64::MAX);
        self.entry(name)?.linger_us.store(micros, Ordering::Relaxed);
        Ok(())
    }

    /// How many transactions live feeding has run on `name` in this process.
    pub fn live_transactions(&self, name: &str) -> Result<u64, ViewError> {
        Ok(self.entry(name)?.live_transactions.load(Ordering::Relaxed))
    }

    /// The last log position `name` has applied, as this process knows it.
    pub fn position(&self, name: &str) -> Result<u64, ViewError> {
        Ok(*self.entry(name)?.position.borrow() as u64)
    }

    /// Waits until `name` has applied the log up to `position` (read-your-writes), for at most
    /// `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        position: u64,
        timeout: Duration,
    ) -> Result<(), ViewError> {
        let entry = self.entry(name)?;
        let wanted = i64::try_from(position).unwrap_or(i64::MAX);
        if *entry.position.borrow() < wanted {
            // A lingering read model applies what it has at once.
            entry.wanted.fetch_max(wanted, Ordering::AcqRel);
            entry.hurry.notify_waiters();
        }
        let mut seen = entry.position.subscribe();
        let started = std::time::Instant::now();
        match tokio::time::timeout(timeout, seen.wait_for(|p| *p >= wanted)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ViewError::Lagging {
                projection: entry.projection.name(),
                wanted: position,
                reached: *entry.position.borrow() as u64,
                waited_ms: started.elapsed().as_millis() as u64,
            }),
        }
    }

    /// Runs a read-only query on the generation of `name` that serves now.
    pub async fn query<T, F>(&self, name: &str, work: F) -> Result<T, ViewError>
    where
        T: Send + 'static,
        F: Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        self.query_on(name, false, work).await
    }

    /// [`ReadModels::query`] for a query known to be short, such as one bounded page of an
    /// index: on SQLite it runs on the calling task's thread (see [`crate::Store::read_short`]).
    pub async fn query_short<T, F>(&self, name: &str, work: F) -> Result<T, ViewError>
    where
        T: Send + 'static,
        F: Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        self.query_on(name, true, work).await
    }

    async fn query_on<T, F>(&self, name: &str, short: bool, work: F) -> Result<T, ViewError>
    where
        T: Send + 'static,
        F: Fn(&mut dyn Tx, &Tables) -> Result<T, StoreError> + Send + Sync + 'static,
    {
        let entry = self.entry(name)?;
        let projection = entry.projection.name();
        let work = Arc::new(work);
        let mut attempts = 0;
        loop {
            let work = work.clone();
            let read = move |tx: &mut dyn Tx| -> Result<_, StoreError> {
                let found = registration(tx, projection, false)?.ok_or_else(|| {
                    StoreError::Corrupt(projection, "registry row missing".into())
                })?;
                work(tx, &Tables::new(projection, found.generation))
            };
            let result = if short {
                entry.store.read_short(read).await
            } else {
                entry.store.read(read).await
            };
            match result {
                // A swap dropped the generation this query had just looked up (or the drop and
                // this query deadlocked): look again.
                Err(StoreError::Postgres(sqlx::Error::Database(e)))
                    if matches!(e.code().as_deref(), Some("42P01" | "40P01")) && attempts == 0 =>
                {
                    attempts += 1;
                }
                other => return Ok(other?),
            }
        }
    }

    /// Every row of the serving generation of `name`, one line per row, sorted: for comparing
    /// read models built in different ways (tests, `parley rebuild --verify`).
    pub async fn dump(&self, name: &str) -> Result<Vec<String>, ViewError> {
        let tables = self.entry(name)?.projection.tables();
        self.query(name, move |tx, t| {
            let mut lines = Vec::new();
            for table in tables {
                for row in tx.query(&t.sql(&format!("SELECT * FROM {{p}}{table}")), &[])? {
                    lines.push(format!("{table}: {:?}", row.0));
                }
            }
            lines.sort();
            Ok(lines)
        })
        .await
    }

    /// Feeds every projection from its checkpoint, then live, until the log closes. A
    /// projection whose version changed, or whose rebuild was abandoned, is rebuilt first (its
    /// old tables keep serving meanwhile). With PostgreSQL, only the process holding the leader
    /// lock runs them; the others wait for it and take over when its session ends. A leader
    /// whose lock connection fails (the server restarted, the backend was terminated, the
    /// network cut) has lost the lock with its session: it stops feeding, no longer reports
    /// leading, and waits for the lock again on a new connection.
    pub async fn run(self) -> Result<(), ViewError> {
        let Some(pool) = self.pool.clone() else {
            self.leading.send_replace(true);
            let mut tasks = self.start_feeding();
            let outcome = supervise(&mut tasks).await;
            self.leading.send_replace(false);
            return outcome;
        };
        let mut backoff = LEAD_RETRY_FIRST;
        loop {
            let mut leadership = match lead(&pool).await {
                Ok(conn) => conn,
                Err(error) => {
                    // The database is unreachable, or the connection waiting for the lock
                    // failed: nothing announces that it is back, so the pause is a timer.
                    tracing::warn!(%error, retry_in = ?backoff, "cannot wait for projection leadership");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LEAD_RETRY_MAX);
                    continue;
                }
            };
            backoff = LEAD_RETRY_FIRST;
            self.leading.send_replace(true);
            let mut tasks = self.start_feeding();
            let lost = tokio::select! {
                outcome = supervise(&mut tasks) => {
                    self.leading.send_replace(false);
                    return outcome;
                }
                lost = leadership_lost(&mut leadership) => lost,
            };
            // The session, and the lock with it, are gone: another process may lead already.
            drop(leadership);
            tracing::warn!(error = %lost, "lost projection leadership: stopping the projections");
            self.stop_feeding(tasks).await;
        }
    }

    /// One task per projection, each running it under [`ReadModels::keep_running`].
    fn start_feeding(&self) -> tokio::task::JoinSet<Result<(), ViewError>> {
        let mut tasks = tokio::task::JoinSet::new();
        for name in self.order.iter().copied() {
            let models = self.clone();
            tasks.spawn(async move { models.keep_running(name).await });
        }
        tasks
    }

    /// Stops the projections' tasks, no longer reports leading, and waits (for a bounded time)
    /// until the transactions they had handed to their lanes have ended: after that, this
    /// process applies nothing.
    async fn stop_feeding(&self, mut tasks: tokio::task::JoinSet<Result<(), ViewError>>) {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.leading.send_replace(false);
        let lanes = async {
            for name in self.order.iter() {
                if let Some(entry) = self.entries.get(name) {
                    entry.lane.drained().await;
                }
            }
        };
        if tokio::time::timeout(LANES_DRAIN, lanes).await.is_err() {
            // A transaction still waits on the database; if it ever commits, the registry
            // row's lock and checkpoint keep it from applying anything twice.
            tracing::warn!(
                waited = ?LANES_DRAIN,
                "a live transaction was still running after the projections stopped"
            );
        }
        tracing::info!("stopped feeding the projections");
    }

    /// Runs one projection until the log closes, starting it again after a failure (a lost
    /// connection, a busy database): after 1 s, doubling to 60 s while it keeps failing. Nothing
    /// announces that the cause is gone, so the pause is a timer; every failure is logged. A
    /// version mismatch is final: another process owns the read model.
    async fn keep_running(&self, name: &'static str) -> Result<(), ViewError> {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = std::time::Instant::now();
            let outcome = self.run_one(name).await;
            if let (Err(error), Ok(entry)) = (&outcome, self.entry(name)) {
                entry.failure.send_replace(Some(error.to_string()));
            }
            match outcome {
                Ok(()) | Err(ViewError::Log(LogError::Closed)) => return Ok(()),
                Err(error @ ViewError::OtherVersion { .. }) => return Err(error),
                Err(error) => {
                    if started.elapsed() > Duration::from_secs(300) {
                        backoff = Duration::from_secs(1);
                    }
                    tracing::error!(projection = name, %error, retry_in = ?backoff, "a projection failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    async fn run_one(&self, name: &'static str) -> Result<(), ViewError> {
        let entry = self.entry(name)?;
        let found = self.registration(name).await?;
        let ours = entry.projection.version();
        // A newer version is registered or being built: never downgrade it from here.
        found.check_not_older(name, ours)?;
        if found.version != ours || found.shadow.is_some() {
            tracing::info!(
                projection = name,
                stored = found.version,
                current = entry.projection.version(),
                "rebuilding a projection"
            );
            self.rebuild(name, |_| {}).await?;
        }
        self.follow(name).await
    }

    /// Applies new events to the serving generation as they are appended (read through the
    /// shared [`LiveFeed`]).
    async fn follow(&self, name: &'static str) -> Result<(), ViewError> {
        let entry = self.entry(name)?;
        let mut position = self.registration(name).await?.position;
        entry.position.send_replace(position);
        let mut head = self.log.watch_head();
        // When the last transaction began, if it carried enough events to linger after it.
        let mut loaded: Option<std::time::Instant> = None;
        loop {
            let known = head.borrow_and_update().0;
            if known > position as u64 {
                if let Some(began) = loaded {
                    linger(entry, began, &mut head, position).await;
                }
                let (stretch, from) = self.live.after(position, entry.projection.as_ref()).await?;
                if from < stretch.events.len() {
                    let began = std::time::Instant::now();
                    loaded = (stretch.events.len() - from >= LINGER_FROM).then_some(began);
                    // Past the stretch if a swap moved the checkpoint beyond it.
                    position = self.apply_live(entry, stretch, from).await?;
                    entry.position.send_replace(position);
                    // Wakes those waiting on failures only when there was one.
                    entry
                        .failure
                        .send_if_modified(|failure| failure.take().is_some());
                    continue;
                }
            }
            head.changed().await.map_err(|_| LogError::Closed)?;
        }
    }

    /// Applies `stretch`'s events from index `from` on, in one transaction; answers the
    /// checkpoint reached.
    async fn apply_live(
        &self,
        entry: &Entry,
        stretch: Arc<LiveStretch>,
        from: usize,
    ) -> Result<i64, ViewError> {
        let projection = entry.projection.clone();
        let transactions = entry.live_transactions.clone();
        let reached = entry
            .store
            .write_on(&entry.lane, move |tx| -> Result<_, ViewError> {
                transactions.fetch_add(1, Ordering::Relaxed);
                let name = projection.name();
                let found = locked(tx, name)?;
                if found.version != projection.version() {
                    // Another process has registered another version: this one must not write
                    // tables whose shape its code does not know.
                    return Err(ViewError::OtherVersion {
                        projection: name,
                        registered: found.version,
                        ours: projection.version(),
                    });
                }
                let events = &stretch.events[from..];
                let start = events.partition_point(|e| e.position <= found.position);
                let Some(last) = events
                    .last()
                    .map(|e| e.position)
                    .filter(|_| start < events.len())
                else {
                    return Ok(found.position);
                };
                projection.apply(tx, &Tables::new(name, found.generation), &events[start..])?;
                tx.execute(
                    "UPDATE parley_projections SET position = $2 WHERE name = $1",
                    &[name.into(), last.into()],
                )?;
                notify_progress(tx, name, last)?;
                Ok(last)
            })
            .await?;
        Ok(reached)
    }

    /// Rebuilds `name` from position 0 into a new generation while the current one keeps
    /// serving, then swaps them atomically and drops the old tables.
    pub async fn rebuild(
        &self,
        name: &str,
        progress: impl FnMut(Progress),
    ) -> Result<Rebuilt, ViewError> {
        self.rebuild_many(&[name], progress)
            .await?
            .pop()
            .unwrap_or_else(|| Err(ViewError::UnknownProjection(name.to_owned())))
    }

    /// Rebuilds several read models in one pass over the log: every stretch of it is read and
    /// decoded once and handed to each rebuild, which applies it to its own shadow tables on a
    /// thread of its own (a slow one holds the reader back by at most [`REBUILD_QUEUE`]
    /// stretches). Answers each rebuild's outcome in the order of `names`; the outer error is
    /// the log's (or an unknown name), which stops them all.
    pub async fn rebuild_many(
        &self,
        names: &[&str],
        mut progress: impl FnMut(Progress),
    ) -> Result<Vec<Result<Rebuilt, ViewError>>, ViewError> {
        let projections = names
            .iter()
            .map(|name| Ok(self.entry(name)?.projection.clone()))
            .collect::<Result<Vec<_>, ViewError>>()?;
        let target = self.log.head().await?.0;
        let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut feeds = Vec::new();
        let mut tasks = Vec::new();
        for projection in &projections {
            let (feed, stretches) = tokio::sync::mpsc::channel(REBUILD_QUEUE);
            feeds.push(Some(feed));
            let models = self.clone();
            let progress = progress_tx.clone();
            let name = projection.name();
            // Aborted if the pass is dropped (a leader that lost its lock stops feeding).
            tasks.push(AbortOnDrop(tokio::spawn(async move {
                models.rebuild_from(name, target, stretches, progress).await
            })));
        }
        drop(progress_tx);

        let log = self.log.clone();
        let reader = async move {
            let mut after = 0u64;
            while after < target {
                let mut pages = Vec::new();
                let mut read = 0;
                while read < REBUILD_TX_EVENTS {
                    let page = log.read_all(Position(after), REBUILD_BATCH).await?;
                    let Some(last) = page.last() else { break };
                    after = last.position.0;
                    read += page.len();
                    pages.push(page);
                }
                if pages.is_empty() {
                    break;
                }
                let wanted = projections.clone();
                let events = tokio::task::spawn_blocking(move || {
                    let mut events = Vec::with_capacity(read);
                    for page in &pages {
                        events.extend(decode_wanted(page, |stream, event_type| {
                            wanted.iter().any(|p| p.wants(stream, event_type))
                        })?);
                    }
                    Ok::<_, FeedError>(events)
                })
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
                let stretch = Arc::new(Stretch {
                    events,
                    last: after as i64,
                });
                for feed in &mut feeds {
                    let open = match feed {
                        Some(sender) => sender.send(Some(stretch.clone())).await.is_ok(),
                        None => false,
                    };
                    if !open {
                        // That rebuild has failed; it reports why itself.
                        *feed = None;
                    }
                }
                if feeds.iter().all(Option::is_none) {
                    break;
                }
            }
            // The end of the log as it was when the rebuilds began: each may swap.
            for sender in feeds.iter().flatten() {
                let _ = sender.send(None).await;
            }
            Ok::<_, ViewError>(())
        };
        let report = async move {
            while let Some(reached) = progress_rx.recv().await {
                progress(reached);
            }
        };
        let (read, ()) = tokio::join!(reader, report);
        let mut outcomes = Vec::new();
        for mut task in tasks {
            outcomes.push(
                (&mut task.0)
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Task(e.to_string()).into())),
            );
        }
        read?;
        Ok(outcomes)
    }

    /// One rebuild of a shared pass: a new generation filled from `stretches`, then swapped in.
    async fn rebuild_from(
        &self,
        name: &'static str,
        target: u64,
        mut stretches: tokio::sync::mpsc::Receiver<Option<Arc<Stretch>>>,
        progress: tokio::sync::mpsc::UnboundedSender<Progress>,
    ) -> Result<Rebuilt, ViewError> {
        let started = std::time::Instant::now();
        let entry = self.entry(name)?;
        let projection = entry.projection.clone();
        let seed = seed_events(self.log.as_ref(), projection.as_ref()).await?;
        let generation = {
            let projection = projection.clone();
            entry
                .store
                .write(move |tx| -> Result<_, ViewError> {
                    schema_lock(tx)?;
                    let found = locked(tx, name)?;
                    found.check_not_older(name, projection.version())?;
                    // An earlier shadow, and any generation a crash or a failed drop left.
                    sweep_generations(tx, projection.as_ref(), found.generation)?;
                    let generation = found
                        .generation
                        .max(found.shadow.map_or(0, |s| s.generation))
                        + 1;
                    let tables = create_generation(tx, projection.as_ref(), generation, false)?;
                    projection.seed(tx, &tables, &seed)?;
                    tx.execute(
                        "UPDATE parley_projections SET shadow_generation = $2,
                         shadow_version = $3, shadow_position = 0 WHERE name = $1",
                        &[name.into(), generation.into(), projection.version().into()],
                    )?;
                    Ok(generation)
                })
                .await?
        };

        let mut events: u64 = 0;
        let _ = progress.send(Progress {
            projection: name,
            done: 0,
            target,
        });
        loop {
            let stretch = match stretches.recv().await {
                Some(Some(stretch)) => stretch,
                Some(None) => break,
                // The reader stopped: the log failed, and the pass reports it.
                None => return Err(StoreError::Task("the log reader stopped".into()).into()),
            };
            events += stretch.events.len() as u64;
            let last = stretch.last;
            let projection = projection.clone();
            entry
                .store
                .write(move |tx| -> Result<_, ViewError> {
                    locked_shadow(tx, name, generation)?;
                    projection.apply(tx, &Tables::new(name, generation), &stretch.events)?;
                    tx.execute(
                        "UPDATE parley_projections SET shadow_position = $2 WHERE name = $1",
                        &[name.into(), last.into()],
                    )?;
                    Ok(())
                })
                .await?;
            let _ = progress.send(Progress {
                projection: name,
                done: last as u64,
                target,
            });
        }

        // The filled shadow gets its query indexes, each built in one pass over sorted rows.
        {
            let projection = projection.clone();
            entry
                .store
                .write(move |tx| -> Result<_, ViewError> {
                    schema_lock(tx)?;
                    locked_shadow(tx, name, generation)?;
                    let tables = Tables::new(name, generation);
                    create_query_indexes(tx, projection.as_ref(), &tables)?;
                    if tx.dialect() == Dialect::Postgres {
                        // Fresh statistics, so the first queries on the new tables get good plans.
                        for table in projection.tables() {
                            tx.execute(&tables.sql(&format!("ANALYZE {{p}}{table}")), &[])?;
                        }
                    }
                    Ok(())
                })
                .await?;
        }

        // The swap: under the row lock, catch up with what the serving generation has applied
        // meanwhile, then make the shadow the serving generation.
        let log = self.log.clone();
        let swapped = {
            let projection = projection.clone();
            entry
                .store
                .write(move |tx| -> Result<_, ViewError> {
                    schema_lock(tx)?;
                    let (found, shadow) = locked_shadow(tx, name, generation)?;
                    let tables = Tables::new(name, generation);
                    let mut reached = shadow.position;
                    let mut extra = 0u64;
                    let handle = Handle::current();
                    while reached < found.position {
                        let batch = handle
                            .block_on(log.read_all(Position(reached as u64), REBUILD_BATCH))?;
                        let Some(last) = batch.last().map(|e| e.position.0 as i64) else {
                            break;
                        };
                        let decoded = decode_wanted(&batch, |s, t| projection.wants(s, t))?;
                        projection.apply(tx, &tables, &decoded)?;
                        extra += batch.len() as u64;
                        reached = last;
                    }
                    tx.execute(
                        "UPDATE parley_projections SET version = $2, generation = $3,
                         position = $4, shadow_generation = NULL, shadow_version = NULL,
                         shadow_position = NULL WHERE name = $1",
                        &[
                            name.into(),
                            shadow.version.into(),
                            generation.into(),
                            reached.into(),
                        ],
                    )?;
                    notify_progress(tx, name, reached)?;
                    Ok((found.generation, reached, extra))
                })
                .await?
        };
        let (old, reached, extra) = swapped;
        // The swap is done; dropping the old tables is housekeeping. If it fails (a query still
        // holds them), the next rebuild sweeps them.
        if let Err(error) = entry
            .store
            .write(move |tx| -> Result<_, StoreError> {
                schema_lock(tx)?;
                bounded_locks(tx)?;
                drop_generation(tx, projection.as_ref(), old)
            })
            .await
        {
            tracing::warn!(projection = name, generation = old, %error, "old tables left for the next rebuild");
        }
        entry.position.send_if_modified(|p| {
            let moved = reached > *p;
            *p = (*p).max(reached);
            moved
        });
        Ok(Rebuilt {
            projection: name,
            generation,
            position: reached as u64,
            events: events + extra,
            elapsed: started.elapsed(),
        })
    }

    /// Keeps this process's view of every projection's position up to date when another
    /// process (the leader) moves it (PostgreSQL).
    async fn follow_progress(&self, pool: PgPool) -> Result<(), ViewError> {
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(StoreError::from)?;
        listener
            .listen(PROGRESS_CHANNEL)
            .await
            .map_err(StoreError::from)?;
        let on_payload = {
            let models = self.clone();
            move |payload: &str| {
                if let Some((name, position)) = payload.rsplit_once(':')
                    && let (Some(entry), Ok(position)) =
                        (models.entries.get(name), position.parse::<i64>())
                {
                    entry.position.send_if_modified(|p| {
                        let moved = position > *p;
                        *p = (*p).max(position);
                        moved
                    });
                }
            }
        };
        let models = self.clone();
        tokio::spawn(parley_eventlog::follow_channel(
            listener,
            pool,
            on_payload,
            move || {
                let models = models.clone();
                async move { models.refresh_positions().await }
            },
        ));
        Ok(())
    }

    /// Re-reads every position from the registry; `false` if the database could not answer.
    async fn refresh_positions(&self) -> bool {
        for name in self.order.iter() {
            let (Ok(found), Some(entry)) = (self.registration(name).await, self.entries.get(name))
            else {
                return false;
            };
            entry.position.send_if_modified(|p| {
                let moved = found.position > *p;
                *p = (*p).max(found.position);
                moved
            });
        }
        true
    }
}

/// The decoded events of `projection`'s seed streams, read to the log's head.
async fn seed_events(
    log: &dyn EventLog,
    projection: &dyn Projection,
) -> Result<Vec<Envelope>, ViewError> {
    let mut seed = Vec::new();
    for stream in projection.seed_streams() {
        let stream = parley_eventlog::StreamId::new(*stream)?;
        let mut after = parley_eventlog::StreamVersion::NONE;
        loop {
            let page = log.read_stream(&stream, after, REBUILD_BATCH).await?;
            let Some(last) = page.last() else { break };
            after = last.version;
            seed.extend(decode_all(&page)?);
        }
    }
    Ok(seed)
}

/// Blocks until this process holds the leader lock; the connection holding it is returned and
/// must be kept for as long as the process leads. When the process dies, PostgreSQL ends its
/// session and the next waiting process acquires the lock at once.
async fn lead(pool: &PgPool) -> Result<sqlx::PgConnection, ViewError> {
    // Detached from the pool: when leadership ends (the task is dropped), the connection
    // closes and the session lock goes with it, instead of idling in the pool still held.
    let mut conn = pool.acquire().await.map_err(StoreError::from)?.detach();
    // Named, so that an operator finds it in `pg_stat_activity`.
    sqlx::query("SET application_name = 'parley projection leader'")
        .execute(&mut conn)
        .await
        .map_err(StoreError::from)?;
    tracing::info!("waiting for projection leadership");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LEADER_LOCK_KEY)
        .execute(&mut conn)
        .await
        .map_err(StoreError::from)?;
    tracing::info!("leading the projections");
    Ok(conn)
}

/// Answers, with why, once the connection holding the leader lock fails: its session has ended
/// and the lock with it. It is checked every [`LEADERSHIP_CHECK`] with a bare round trip (a
/// `Sync` message, which runs no statement); a round trip unanswered for
/// [`LEADERSHIP_CHECK_TIMEOUT`] (the network cut) counts as a failure too, and the connection
/// is then dropped, so the server ends the session if it ever sees it.
async fn leadership_lost(conn: &mut sqlx::PgConnection) -> String {
    use sqlx::Connection as _;
    let mut every = tokio::time::interval(LEADERSHIP_CHECK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match tokio::time::timeout(LEADERSHIP_CHECK_TIMEOUT, conn.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return error.to_string(),
            Err(_) => {
                return format!(
                    "the connection holding the leader lock did not answer within {LEADERSHIP_CHECK_TIMEOUT:?}"
                );
            }
        }
    }
}

/// Waits for every projection task to end; answers the last error other than the log closing.
async fn supervise(
    tasks: &mut tokio::task::JoinSet<Result<(), ViewError>>,
) -> Result<(), ViewError> {
    let mut outcome = Ok(());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(ViewError::Log(LogError::Closed))) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "a projection stopped");
                outcome = Err(error);
            }
            Err(join) => tracing::error!(%join, "a projection task failed"),
        }
    }
    outcome
}
