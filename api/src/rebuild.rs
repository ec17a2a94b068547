//! `parley rebuild <projection|all>`: rebuilds read models into shadow tables from the whole
//! log and swaps them in, while a running server keeps serving the old tables; a progress bar
//! shows events/s and the time left.

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use parley_eventlog::LogOptions;
use parley_projections::{ReadModels, ViewError};

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
                log.close().await;
                return Err(RebuildError::Unknown {
                    target: args.target,
                    known: models.names().join(", "),
                });
            }
        }
    };
    let outcome = rebuild(&models, &targets, args.verify).await;
    log.close().await;
    outcome
}

/// Rebuilds `targets` in one pass, a progress bar each; with `verify`, compares each one's
/// rows with those it replaced.
async fn rebuild(
    models: &ReadModels,
    targets: &[&'static str],
    verify: bool,
) -> Result<(), RebuildError> {
    let mut before = Vec::new();
    if verify {
        for name in targets {
            before.push(models.dump(name).await?);
        }
    }
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>10} [{bar:30}] {pos}/{len} positions  {per_sec}  ETA {eta}  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let progress_bars: Vec<ProgressBar> = targets
        .iter()
        .map(|name| {
            bars.add(
                ProgressBar::new(0)
                    .with_style(style.clone())
                    .with_prefix(*name),
            )
        })
        .collect();
    // One pass over the log feeds every rebuild.
    let outcomes = models
        .rebuild_many(targets, |p| {
            if let Some(i) = targets.iter().position(|name| *name == p.projection) {
                progress_bars[i].set_length(p.target);
                progress_bars[i].set_position(p.done);
            }
        })
        .await?;
    let mut outcome = Ok(());
    for (i, rebuilt) in outcomes.into_iter().enumerate() {
        let (name, bar) = (targets[i], &progress_bars[i]);
        let rebuilt = match rebuilt {
            Ok(rebuilt) => rebuilt,
            Err(error) => {
                bar.abandon_with_message(error.to_string());
                if bar.is_hidden() {
                    eprintln!("{name}: {error}");
                }
                outcome = Err(error.into());
                continue;
            }
        };
        let seconds = rebuilt.elapsed.as_secs_f64().max(1e-6);
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
        if let Some(before) = before.get(i) {
            if *before != models.dump(name).await? {
                outcome = Err(RebuildError::Differs(name.to_owned()));
                continue;
            }
            eprintln!("{name}: the rebuilt rows equal the rows they replace");
        }
    }
    outcome
}
