//! The server: [`Application::build`] opens the log and the read models and binds;
//! [`Application::run_until`] feeds the read models, makes sure an admin token exists and
//! serves [`crate::http::router`].

use crate::config::Config;
use crate::files::{FileError, FileStore};
use crate::http::auth::{self, Authenticator};
use crate::http::idempotency::IdempotencyStore;
use crate::http::streams::{Revocations, StreamLimits};
use crate::http::{AppState, Settings, Shared};
use crate::service::{CommandService, ServiceError};
use parley_app::channels::Directory;
use parley_app::dispatcher::Dispatcher;
use parley_app::inbound::Inbound;
use parley_app::reactions::{Reaction, Reactions};
use parley_domain::access::{Role, TokenId};
use parley_domain::{Actor, DomainError};
use parley_eventlog::{EventLog, LogError, Metadata};
use parley_projections::access;
use parley_projections::{ReadModels, ViewError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Namespace of the token ids derived from a secret's digest (bootstrap admin tokens), so
/// nodes starting together issue the same token once.
const TOKEN_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x7061_726c_6579_746f_6b65_6e00_0000_0001);

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    limits: crate::server::ConnectionLimits,
    state: AppState,
    admin_token: Option<String>,
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Application {
    /// Opens the log (applying migrations, creating an SQLite file on first run) and the read
    /// models, and binds.
    pub async fn build(config: &Config) -> Result<Application, StartError> {
        let log = parley_eventlog::open(&config.database_url, config.log_options()).await?;
        let models =
            ReadModels::open(log.clone(), &config.database_url, parley_projections::all()).await?;
        models.set_linger(Duration::from_millis(config.live_linger_ms));
        let idempotency = IdempotencyStore::open(&models, &config.database_url).await?;
        let files =
            Arc::new(FileStore::new(&models, &config.database_url, config.max_file_bytes).await?);
        let service = CommandService::new(log.clone());
        let channels =
            Arc::new(Directory::open(&models, &config.database_url, service.clone()).await?);
        let platforms = parley_channels::http::Client::new();
        let reactions = Reactions::open(
            log.clone(),
            &models,
            &config.database_url,
            [
                Arc::new(Inbound {
                    service: service.clone(),
                    directory: channels.clone(),
                    files: files.clone(),
                    client: platforms.clone(),
                    downloads: Arc::new(tokio::sync::Semaphore::new(
                        parley_app::inbound::DOWNLOADS_AT_ONCE,
                    )),
                }),
                Arc::new(Dispatcher {
                    service: service.clone(),
                    directory: channels.clone(),
                    client: platforms.clone(),
                    first_backoff: Duration::from_millis(config.dispatch_backoff_ms.max(1)),
                    public_url: config.public_url.clone(),
                }) as Arc<dyn Reaction>,
            ]
            .into_iter()
            .filter(|reaction| {
                !config
                    .pause_reactions
                    .iter()
                    .any(|name| name == reaction.name())
            })
            .collect(),
        )
        .await?;
        let (stopping, stopping_seen) = tokio::sync::watch::channel(false);
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.bind,
                source,
            })?;
        let limits = config.connection_limits();
        Ok(Application {
            listener,
            limits,
            state: AppState::new(Shared {
                reactions,
                service,
                log,
                models,
                auth: Authenticator::new(config.rate_limit, config.rate_burst),
                settings: Settings {
                    // A quiet live stream still moves bytes well within the send timeout.
                    stream_keep_alive: (limits.send_timeout / 2)
                        .min(Settings::default().stream_keep_alive),
                    public_url: config.public_url.clone(),
                    ..Settings::default()
                },
                idempotency: Arc::new(idempotency),
                files,
                channels,
                platforms,
                streams: StreamLimits::new(config.streams_per_token, config.streams_per_address),
                revocations: Revocations::default(),
                stopping: stopping_seen,
            }),
            admin_token: config.admin_token.clone(),
            stopping,
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

    pub fn reactions(&self) -> Reactions {
        self.state.reactions.clone()
    }

    /// Feeds the read models, makes sure an admin can log in, then serves until `shutdown`
    /// resolves and stops the log's writer after queued appends.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let log = self.state.log.clone();
        // Feeds the read models (on PostgreSQL: once this process is the leader).
        let feeding = tokio::spawn(self.state.models.clone().run());
        // The reactions follow the log where the read models are fed (ADR 12).
        let reacting = tokio::spawn(
            self.state
                .reactions
                .clone()
                .run(self.state.models.leadership()),
        );
        // Tells open live streams of revoked tokens.
        let revocations = tokio::spawn(self.state.revocations.clone().follow(log.clone()));
        match ensure_admin(&self.state, self.admin_token.as_deref()).await {
            Ok(Some(secret)) => {
                // Shown once, on standard output, for the operator who started the server.
                println!(
                    "parley: no admin token existed, so one was issued. It is shown only now:\n\n    {secret}\n"
                );
            }
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "cannot make sure an admin token exists"),
        }
        let stopping = self.stopping;
        let shutdown = async move {
            shutdown.await;
            // Live streams end first; graceful shutdown then waits for the other requests.
            let _ = stopping.send(true);
        };
        let served = crate::server::serve(
            self.listener,
            crate::http::router(self.state),
            self.limits,
            shutdown,
        )
        .await;
        log.close().await;
        feeding.abort();
        reacting.abort();
        revocations.abort();
        served
    }
}

/// Why an admin token could not be checked or issued.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    View(#[from] ViewError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("no random numbers: {0}")]
    Random(#[from] getrandom::Error),
}

/// How long start-up waits for the token read model to catch up.
const ACCESS_CATCH_UP: Duration = Duration::from_secs(60);

/// Accepts `configured` as an admin token (issuing it if unknown); without it, issues and
/// returns a new admin secret if no valid admin token exists.
pub async fn ensure_admin(
    state: &AppState,
    configured: Option<&str>,
) -> Result<Option<String>, BootstrapError> {
    let head = state.log.head().await.map_err(ViewError::from)?;
    state
        .models
        .wait_for(access::NAME, head.0, ACCESS_CATCH_UP)
        .await?;
    let (secret, announce) = match configured {
        Some(secret) => {
            let digest = auth::digest(secret);
            let known = state
                .models
                .query(access::NAME, move |tx, t| access::by_digest(tx, t, &digest))
                .await?;
            match known {
                Some(view) if view.revoked_at.is_some() => {
                    tracing::warn!(token_id = %view.token_id, "PARLEY_ADMIN_TOKEN was revoked; it stays refused");
                    return Ok(None);
                }
                Some(_) => return Ok(None),
                None => (secret.to_owned(), false),
            }
        }
        None => {
            if state.models.query(access::NAME, access::has_admin).await? {
                return Ok(None);
            }
            (auth::new_secret()?, true)
        }
    };
    let digest = auth::digest(&secret);
    let token_id = TokenId(uuid::Uuid::new_v5(&TOKEN_ID_NAMESPACE, digest.as_bytes()));
    let issued = crate::http::tokens::issue(
        &state.service,
        token_id,
        Role::Admin { agent: None },
        "first admin",
        digest,
        Actor::System,
        &Metadata {
            channel: Some("cli".into()),
            ..Metadata::default()
        },
    )
    .await;
    match issued {
        Ok(executed) => {
            state
                .models
                .wait_for(access::NAME, executed.position.0, ACCESS_CATCH_UP)
                .await?;
            tracing::info!(%token_id, "admin token issued");
            Ok(announce.then_some(secret))
        }
        // Another node issued the same token at the same moment.
        Err(ServiceError::Domain(DomainError::TokenExists)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the event log: {0}")]
    Log(#[from] LogError),
    #[error("cannot open the read models: {0}")]
    ReadModels(#[from] ViewError),
    #[error("cannot open the file store: {0}")]
    Files(#[from] FileError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}
