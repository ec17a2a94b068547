//! The `parley` command line.

use crate::app::Application;
use crate::bench::BenchCommand;
use crate::config::Config;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "Event-sourced engine for customer conversations and tickets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Config),
    /// Rebuild read models from the whole log (`all` or one projection's name); a running
    /// server keeps serving the old tables until the new ones are swapped in.
    Rebuild(crate::rebuild::RebuildArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Measure the engine; `--json` prints one JSON object on the last line.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Mint a token and print its secret (shown once; only its digest is stored).
    Create(crate::token_cli::CreateArgs),
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve(config) => serve(config).await,
        Command::Rebuild(args) => match crate::rebuild::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("parley rebuild: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Token(TokenCommand::Create(args)) => match crate::token_cli::create(args).await {
            Ok((token_id, secret)) => {
                eprintln!("token {token_id} issued; its secret is shown only now:");
                println!("{secret}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("parley token create: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Bench(bench) => match crate::bench::run(bench).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("parley bench: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PARLEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(config: Config) -> ExitCode {
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "parley cannot start");
            return ExitCode::FAILURE;
        }
    };
    match app.local_addr() {
        Ok(addr) => tracing::info!(
            %addr,
            database = %config.redacted_database_url(),
            "parley is serving"
        ),
        Err(error) => tracing::warn!(%error, "listening address unknown"),
    }
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server failed");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
