//! The server: [`Application::build`] opens the log and binds; [`router`] is the HTTP surface.

use crate::config::Config;
use crate::problem::Problem;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use parley_eventlog::{EventLog, LogError};
use parley_projections::{ReadModels, ViewError};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub log: Arc<dyn EventLog>,
    pub models: ReadModels,
}

/// The HTTP surface, without a listener: tests can drive it in-process.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .fallback(|| async { Problem::not_found("no such resource") })
        .with_state(state)
}

/// Liveness and the log's reachability: 200 with the log's head position, how far each read
/// model has applied it, why feeding one last failed (while it has not recovered) and whether
/// this process feeds them; or 503.
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    let head = state.log.head().await?;
    let mut models = serde_json::Map::new();
    let mut failures = serde_json::Map::new();
    for name in state.models.names() {
        models.insert(
            (*name).to_owned(),
            json!(state.models.position(name).unwrap_or_default()),
        );
        if let Some(failure) = state.models.failure(name) {
            failures.insert((*name).to_owned(), json!(failure));
        }
    }
    Ok(Json(json!({
        "status": "ok",
        "log_head": head.0,
        "read_models": models,
        "read_model_failures": failures,
        "projection_leader": state.models.is_leading(),
    })))
}

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens the log (applying migrations, creating an SQLite file on first run) and binds.
    pub async fn build(config: &Config) -> Result<Application, StartError> {
        let log = parley_eventlog::open(&config.database_url, config.log_options()).await?;
        let models =
            ReadModels::open(log.clone(), &config.database_url, parley_projections::all()).await?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        Ok(Application {
            listener,
            state: AppState { log, models },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn log(&self) -> Arc<dyn EventLog> {
        self.state.log.clone()
    }

    pub fn read_models(&self) -> ReadModels {
        self.state.models.clone()
    }

    /// Serves until `shutdown` resolves, then stops the log's writer after queued appends.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let log = self.state.log.clone();
        // Feeds the read models (on PostgreSQL: once this process is the leader).
        let feeding = tokio::spawn(self.state.models.clone().run());
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await;
        log.close().await;
        feeding.abort();
        served
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the event log: {0}")]
    Log(#[from] LogError),
    #[error("cannot open the read models: {0}")]
    ReadModels(#[from] ViewError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
