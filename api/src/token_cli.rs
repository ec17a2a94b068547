//! `parley token create`: mints an API token from the command line, for the first admins and
//! agents of a new help desk and for scripts. The secret is printed once; only its digest is
//! stored. With SQLite, run it while the server is stopped (one process per database file),
//! or mint tokens through `POST /api/v1/tokens` instead.

use crate::http::auth;
use crate::service::{CommandService, ServiceError};
use clap::{Args, ValueEnum};
use parley_domain::access::{Role, TokenId};
use parley_domain::ids::{AgentId, CustomerId};
use parley_eventlog::LogOptions;

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The agent the token acts as (required for `agent`, optional for `admin`).
    #[arg(long)]
    pub agent: Option<uuid::Uuid>,
    /// An agent token that sees the "from customers" section (customer support).
    #[arg(long)]
    pub support: bool,
    /// The customer a `visitor` token belongs to.
    #[arg(long)]
    pub customer: Option<uuid::Uuid>,
    /// A name for people: "Ana's laptop", "CRM sync".
    #[arg(long, default_value = "")]
    pub label: String,
    /// The event log: `sqlite:<path>` or `postgres://…`.
    #[arg(long, env = "PARLEY_DATABASE_URL", default_value = "sqlite:parley.db")]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    Agent,
    Integration,
    Visitor,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot open the event log: {0}")]
    Log(#[from] parley_eventlog::LogError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("no random numbers: {0}")]
    Random(#[from] getrandom::Error),
    #[error("{0}")]
    Usage(&'static str),
}

/// The role the arguments describe.
pub fn role(args: &CreateArgs) -> Result<Role, TokenError> {
    Ok(match args.role {
        RoleArg::Admin => Role::Admin {
            agent: args.agent.map(AgentId),
        },
        RoleArg::Agent => Role::Agent {
            agent: AgentId(
                args.agent
                    .ok_or(TokenError::Usage("--role agent needs --agent <uuid>"))?,
            ),
            support: args.support,
        },
        RoleArg::Integration => Role::Integration,
        RoleArg::Visitor => Role::Visitor {
            customer: CustomerId(
                args.customer
                    .ok_or(TokenError::Usage("--role visitor needs --customer <uuid>"))?,
            ),
        },
    })
}

/// Issues the token and returns its id and secret.
pub async fn create(args: CreateArgs) -> Result<(TokenId, String), TokenError> {
    let role = role(&args)?;
    let log = parley_eventlog::open(&args.database_url, LogOptions::default()).await?;
    let service = CommandService::new(log.clone());
    let secret = auth::new_secret()?;
    let token_id = TokenId(uuid::Uuid::now_v7());
    let metadata = parley_eventlog::Metadata {
        channel: Some("cli".into()),
        ..parley_eventlog::Metadata::default()
    };
    let issued = crate::http::tokens::issue(
        &service,
        token_id,
        role,
        &args.label,
        auth::digest(&secret),
        parley_domain::Actor::System,
        &metadata,
    )
    .await;
    log.close().await;
    issued?;
    Ok((token_id, secret))
}
