//! API tokens: admins mint and revoke them; any token can ask who it is. A token's secret is
//! answered once, when it is minted; the log keeps only its digest.

use super::extract::{IfMatch, Json, Path, Query};
use super::tickets::StreamPrecondition;
use super::{AppState, CommandReply, auth::Caller};
use crate::problem::Problem;
use crate::service::{CommandService, Executed, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use parley_domain::access::{Role, Token, TokenCommand, TokenId};
use parley_domain::ids::{AgentId, CustomerId};
use parley_projections::access::{self, TokenView};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(revoke))
        .routes(routes!(me))
}

/// How long a token command waits for the token read model before answering, so the token
/// works (or stops working) as soon as the answer arrives.
const APPLIED_WITHIN: Duration = Duration::from_secs(10);

/// What a token may do (the same shape as in the audit history).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "role", rename_all = "snake_case", deny_unknown_fields)]
pub enum RoleDto {
    /// Everything; with `agent`, acts as that agent.
    Admin {
        #[serde(default)]
        agent: Option<Uuid>,
    },
    /// A support team member; `support` shows the "from customers" section.
    Agent {
        agent: Uuid,
        #[serde(default)]
        support: bool,
    },
    /// Another system: acts as the system, reads everything and the event feed.
    Integration,
    /// A widget visitor: only `/widget` routes, only their own conversations.
    Visitor { customer: Uuid },
}

impl From<RoleDto> for Role {
    fn from(dto: RoleDto) -> Role {
        match dto {
            RoleDto::Admin { agent } => Role::Admin {
                agent: agent.map(AgentId),
            },
            RoleDto::Agent { agent, support } => Role::Agent {
                agent: AgentId(agent),
                support,
            },
            RoleDto::Integration => Role::Integration,
            RoleDto::Visitor { customer } => Role::Visitor {
                customer: CustomerId(customer),
            },
        }
    }
}

impl From<Role> for RoleDto {
    fn from(role: Role) -> RoleDto {
        match role {
            Role::Admin { agent } => RoleDto::Admin {
                agent: agent.map(|a| a.0),
            },
            Role::Agent { agent, support } => RoleDto::Agent {
                agent: agent.0,
                support,
            },
            Role::Integration => RoleDto::Integration,
            Role::Visitor { customer } => RoleDto::Visitor {
                customer: customer.0,
            },
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewToken {
    #[serde(flatten)]
    pub role: RoleDto,
    /// A name for people: "Ana's laptop", "CRM sync".
    #[serde(default)]
    pub label: String,
}

/// A minted token: the only answer that ever holds its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct MintedToken {
    pub token_id: Uuid,
    /// Send it as `Authorization: Bearer <secret>`. Shown only now.
    pub secret: String,
    #[serde(flatten)]
    pub role: RoleDto,
    pub label: String,
    /// Global log position of the `TokenIssued` event.
    pub position: u64,
}

/// A token as admins see it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenInfo {
    pub token_id: Uuid,
    #[serde(flatten)]
    pub role: RoleDto,
    pub label: String,
    /// Microseconds since the Unix epoch.
    pub issued_at: i64,
    /// Microseconds since the Unix epoch, once revoked.
    pub revoked_at: Option<i64>,
}

impl From<TokenView> for TokenInfo {
    fn from(view: TokenView) -> TokenInfo {
        TokenInfo {
            token_id: view.token_id.0,
            role: view.role.into(),
            label: view.label,
            issued_at: view.issued_at,
            revoked_at: view.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPage {
    pub tokens: Vec<TokenInfo>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// At most this many tokens (1..=200, default 50).
    pub limit: Option<usize>,
}

/// Appends `TokenIssued` for a secret's digest: the one way tokens come to be (the API, the
/// widget's visitors, the first admin, `parley token create`).
pub async fn issue(
    service: &CommandService,
    token_id: TokenId,
    role: Role,
    label: &str,
    secret_sha256: String,
    by: parley_domain::Actor,
    metadata: &parley_eventlog::Metadata,
) -> Result<Executed, ServiceError> {
    service
        .execute::<Token>(
            &CommandService::stream::<Token>(token_id)?,
            TokenCommand::Issue {
                token_id,
                role,
                label: label.to_owned(),
                secret_sha256,
                by,
                at: super::now(),
            },
            metadata,
        )
        .await
}

/// Issues a token with a new secret and waits until it works; the secret is answered once.
pub(super) async fn mint(
    state: &AppState,
    role: Role,
    label: &str,
    by: parley_domain::Actor,
    metadata: &parley_eventlog::Metadata,
) -> Result<(TokenId, String, Executed), Problem> {
    let secret = super::auth::new_secret().map_err(|e| Problem::internal(&e))?;
    let token_id = TokenId(crate::ids::new_id("token"));
    let digest = super::auth::digest(&secret);
    let executed = issue(&state.service, token_id, role, label, digest, by, metadata).await?;
    if executed.replayed {
        // An earlier attempt of this request issued the token, with a secret it alone knew.
        return Err(super::idempotency::withheld());
    }
    state
        .models
        .wait_for(access::NAME, executed.position.0, APPLIED_WITHIN)
        .await?;
    Ok((token_id, secret, executed))
}

/// Answers holding a secret are never stored (by idempotency records or by caches).
pub(super) const NO_STORE: [(axum::http::HeaderName, &str); 1] =
    [(axum::http::header::CACHE_CONTROL, "no-store")];

/// Mints a token (admins only). The answer carries `Cache-Control: no-store`: its secret is
/// never stored, so a retry with the same `Idempotency-Key` mints nothing and answers 409
/// `idempotency-answer-withheld`.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = MintedToken), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<NewToken>,
) -> Result<impl IntoResponse, Problem> {
    caller.require_admin()?;
    let role: Role = request.role.into();
    let (token_id, secret, executed) = mint(
        &state,
        role,
        &request.label,
        caller.actor(),
        &caller.metadata(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(MintedToken {
            token_id: token_id.0,
            secret,
            role: role.into(),
            label: request.label,
            position: executed.position.0,
        }),
    ))
}

/// Every token, oldest first (admins only).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(PageParams),
    responses((status = 200, body = TokenPage), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<Json<TokenPage>, Problem> {
    caller.require_admin()?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 200"));
    }
    let after = params
        .cursor
        .as_deref()
        .map(super::parse_time_id_cursor)
        .transpose()?;
    let mut tokens = state
        .models
        .query(access::NAME, move |tx, t| {
            access::list(tx, t, after.clone(), limit + 1)
        })
        .await?;
    let next_cursor = super::next_page(&mut tokens, limit, |last| {
        super::time_key_cursor(last.issued_at, last.token_id)
    });
    Ok(Json(TokenPage {
        tokens: tokens.into_iter().map(TokenInfo::from).collect(),
        next_cursor,
    }))
}

/// Revokes a token (admins only); it stops working at once on this node and within a second
/// on the others.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens",
    params(("token_id" = Uuid, Path, description = "The token's id"), StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(token_id): Path<Uuid>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_admin()?;
    let token_id = TokenId(token_id);
    let executed = state
        .service
        .execute_if::<Token>(
            &CommandService::stream::<Token>(token_id)?,
            TokenCommand::Revoke {
                by: caller.actor(),
                at: super::now(),
            },
            &caller.metadata(),
            if_match,
        )
        .await?;
    state
        .models
        .wait_for(access::NAME, executed.position.0, APPLIED_WITHIN)
        .await?;
    state.auth.forget(token_id);
    Ok(Json(CommandReply::new(token_id, &executed)))
}

/// Who am I: the calling token's id and role.
#[utoipa::path(get, path = "/api/v1/tokens/me", tag = "tokens",
    responses((status = 200, body = TokenInfo), (status = 401, body = Problem)))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<TokenInfo>, Problem> {
    let id = caller.token_id.to_string();
    let found = state
        .models
        .query(access::NAME, move |tx, t| access::by_id(tx, t, &id))
        .await?;
    found
        .map(|view| Json(view.into()))
        .ok_or_else(|| Problem::unauthorized("the token is unknown or revoked"))
}
