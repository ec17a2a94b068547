//! `parley rebuild <projection|all>`: rebuilds read models into shadow tables from the whole
//! log and swaps them in, while a running server keeps serving the old tables; a progress bar
//! shows events/s and the time left.

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use parley_eventlog::LogOptions;
use parley_projections::{ReadModels, ViewError};
use std::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// A projection's name, or `all`.
    pub target: String,

    /// The event log whose read models to rebuild: `sqlite:<path>` or `postgres://…`.
    #[arg(long, env = "PARLEY_DATABASE_URL", default_value = "sqlite:parley.db")]
    pub database_url: String,

    /// Compare the rebuilt rows with the rows they replace and report any difference.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("cannot open the event log: {0}")]
    Log(#[from] parley_eventlog::LogError),
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("no projection is called {target:?}; known: {known}")]
    Unknown { target: String, known: String },
    #[error("{0} differs from a rebuild: its incremental rows were not what the log implies")]
    Differs(String),
}

pub async fn run(args: RebuildArgs) -> Result<(), RebuildError> {
    let log = parley_eventlog::open(&args.database_url, LogOptions::default()).await?;
    let models =
        ReadModels::open(log.clone(), &args.database_url, parley_projections::all()).await?;
    let targets: Vec<&'static str> = if args.target == "all" {
        models.names().to_vec()
    } else {
        match models.names().iter().find(|n| **n == args.target) {
            Some(name) => vec![*name],
            None => {
                return Err(RebuildError::Unknown {
                    target: args.target,
                    known: models.names().join(", "),
                });
            }
        }
    };
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} positions  {per_sec}  ETA {eta}  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut tasks = tokio::task::JoinSet::new();
    // As many rebuilds at once as there are cores: more only makes them contend.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(cores));
    for name in targets {
        let slots = slots.clone();
        let bar = bars.add(
            ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix(name),
        );
        let models = models.clone();
        let verify = args.verify;
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let before = if verify {
                Some(models.dump(name).await?)
            } else {
                None
            };
            let started = Instant::now();
            let rebuilt = models
                .rebuild(name, |p| {
                    bar.set_length(p.target);
                    bar.set_position(p.done);
                })
                .await?;
            let seconds = started.elapsed().as_secs_f64().max(1e-6);
            let summary = format!(
                "generation {}: {} events in {:.1}s ({:.0} events/s)",
                rebuilt.generation,
                rebuilt.events,
                seconds,
                rebuilt.events as f64 / seconds
            );
            if bar.is_hidden() {
                // No terminal to draw on (a script, a log file): one line per read model.
                eprintln!("{name}: {summary}");
            }
            bar.finish_with_message(summary);
            if let Some(before) = before {
                if before != models.dump(name).await? {
                    return Err(RebuildError::Differs(name.to_owned()));
                }
                eprintln!("{name}: the rebuilt rows equal the rows they replace");
            }
            Ok::<_, RebuildError>(())
        });
    }
    let mut outcome = Ok(());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(error)) => outcome = Err(error),
            Err(join) => {
                outcome = Err(RebuildError::View(ViewError::Store(
                    parley_projections::StoreError::Task(join.to_string()),
                )))
            }
        }
    }
    log.close().await;
    outcome
}
