//! Customers, `/api/v1/customers`: creating them through a channel identity, adding
//! identities, changing their details, and merging two customers (reversibly: an unmerge
//! restores both). Reading customers and their history is served by the views
//! (`GET /api/v1/customers...`); customers are also created on first contact by the widget and
//! the social messaging routes.
//!
//! Who may act: staff (admins, agents, integrations); widget visitors are refused. Commands on
//! an existing customer take `If-Match: <stream version>` (409 with `current_version` when the
//! customer moved on); for a merge or an unmerge it applies to the customer being merged or
//! unmerged.

use super::conversations::ChannelDto;
use super::extract::{IfMatch, Json, Path};
use super::tickets::StreamPrecondition;
use super::{AppState, CommandReply, auth::Caller, now};
use crate::problem::Problem;
use crate::service::{CommandService, Executed, ServiceError};
use axum::extract::State;
use axum::http::StatusCode;
use parley_domain::DomainError;
use parley_domain::customer::{ChannelIdentity, Customer, CustomerCommand};
use parley_domain::ids::CustomerId;
use parley_eventlog::{Position, StreamId, StreamVersion};
use serde::{Deserialize, Deserializer};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer))
        .routes(routes!(add_customer_identity))
        .routes(routes!(edit_customer))
        .routes(routes!(merge_customer))
        .routes(routes!(unmerge_customer))
}

/// How many times a details change is decided again when the customer changed in between
/// (only without `If-Match`: with it, the client decides).
const EDIT_ATTEMPTS: usize = 3;

// ---------------------------------------------------------------------------------------------
// DTOs.

/// A customer's address on one channel.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityDto {
    /// Any channel but `internal`.
    pub channel: ChannelDto,
    /// Phone number (WhatsApp), LINE or WeChat id, Facebook id, Twitter handle, e-mail address
    /// (ASCII only), visitor id: 1 to 320 characters. Compared normalised: e-mail addresses in
    /// lower case, phone numbers without spaces, dashes, dots or parentheses.
    pub value: String,
}

impl From<IdentityDto> for ChannelIdentity {
    fn from(dto: IdentityDto) -> ChannelIdentity {
        ChannelIdentity {
            channel: dto.channel.into(),
            value: dto.value,
            account: None,
        }
    }
}

/// A customer, met first through `identity`. The customer's id is derived from that identity,
/// so the same identity always names the same customer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub identity: IdentityDto,
    /// Up to 200 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// An ASCII e-mail address (addresses with accented characters are refused).
    #[serde(default)]
    pub email: Option<String>,
}

/// A customer's details to change: a field left out keeps its value, `null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerEdit {
    /// Up to 200 characters, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// An ASCII e-mail address, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
}

/// A field that is present, possibly `null` (a missing one stays `None` by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The customer this one merges into (the survivor takes over its identities and history).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerMerge {
    pub into: Uuid,
}

/// The customer a route acts on.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CustomerPath {
    /// The customer's id.
    pub customer_id: Uuid,
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

fn customer_stream(id: Uuid) -> Result<StreamId, Problem> {
    Ok(CommandService::stream::<Customer>(CustomerId(id))?)
}

/// A customer as the log has it now; 404 when it does not exist.
async fn existing(
    state: &AppState,
    stream: &StreamId,
) -> Result<(Arc<Customer>, StreamVersion, Position), Problem> {
    let found = state.service.load::<Customer>(stream).await?;
    if found.0.id.is_none() {
        return Err(DomainError::CustomerNotFound.into());
    }
    Ok(found)
}

/// Refuses at once unless the stream is at `if_match` (when given): for the workflows, which
/// write two streams.
fn check_version(IfMatch(if_match): IfMatch, current: StreamVersion) -> Result<(), Problem> {
    match if_match {
        Some(expected) if expected != current => {
            Err(ServiceError::VersionMismatch { expected, current }.into())
        }
        _ => Ok(()),
    }
}

/// What a merge or an unmerge answers: the acted-on customer's new version, the later of the
/// two streams' positions (reads at it see both steps) and the events both streams gained.
async fn two_stream_reply(
    state: &AppState,
    id: Uuid,
    acted: (&StreamId, StreamVersion),
    other: (&StreamId, StreamVersion),
) -> Result<Json<CommandReply>, Problem> {
    let (_, acted_version, acted_position) = state.service.load::<Customer>(acted.0).await?;
    let (_, other_version, other_position) = state.service.load::<Customer>(other.0).await?;
    let gained = |now: StreamVersion, before: StreamVersion| now.0.saturating_sub(before.0);
    let events = gained(acted_version, acted.1) + gained(other_version, other.1);
    let executed = Executed {
        stream_version: acted_version,
        position: acted_position.max(other_position),
        events: usize::try_from(events).unwrap_or(usize::MAX),
        replayed: false,
    };
    Ok(Json(CommandReply::new(id, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// Creates a customer met through a channel identity. The customer's id is derived from the
/// identity: creating it again answers 409.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = NewCustomer,
    responses((status = 201, body = CommandReply, description = "`id` is the customer's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn create_customer(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<NewCustomer>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let identity = ChannelIdentity::from(request.identity);
    let customer_id = CustomerId::for_identity(&identity);
    let command = CustomerCommand::Create {
        customer_id,
        identity,
        name: request.name,
        email: request.email,
        at: now(),
    };
    let executed = match state
        .service
        .execute::<Customer>(
            &customer_stream(customer_id.0)?,
            command,
            &caller.metadata(),
        )
        .await
    {
        Err(ServiceError::Domain(DomainError::CustomerExists)) => {
            return Err(Problem::conflict(format!(
                "customer {customer_id} was already created through this identity"
            )));
        }
        other => other?,
    };
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(customer_id, &executed)),
    ))
}

/// Adds a channel identity to a customer. An identity through which another customer was
/// first met is refused (409): merge that customer instead.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/identities", tag = "customers",
    params(CustomerPath, StreamPrecondition), request_body = IdentityDto,
    responses((status = 201, body = CommandReply, description = "`id` is the customer's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_customer_identity(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
    Json(identity): Json<IdentityDto>,
) -> Result<(StatusCode, Json<CommandReply>), Problem> {
    caller.require_staff()?;
    let identity = ChannelIdentity::from(identity);
    let first_met = CustomerId::for_identity(&identity);
    if first_met.0 != customer_id {
        let (other, _, _) = state
            .service
            .load::<Customer>(&customer_stream(first_met.0)?)
            .await?;
        if other.id.is_some() && other.merged_into != Some(CustomerId(customer_id)) {
            return Err(Problem::conflict(format!(
                "customer {first_met} was first met through this identity; merge it instead"
            )));
        }
    }
    let executed = state
        .service
        .execute_if::<Customer>(
            &customer_stream(customer_id)?,
            CustomerCommand::AddIdentity {
                identity,
                at: now(),
            },
            &caller.metadata(),
            if_match,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CommandReply::new(customer_id, &executed)),
    ))
}

/// Changes a customer's name or e-mail address (a field left out keeps its value, `null`
/// clears it). Details that already have these values change nothing.
#[utoipa::path(patch, path = "/api/v1/customers/{customer_id}", tag = "customers",
    params(CustomerPath, StreamPrecondition), request_body = CustomerEdit,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn edit_customer(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
    Json(edit): Json<CustomerEdit>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    if edit.name.is_none() && edit.email.is_none() {
        return Err(Problem::invalid("nothing to change: give name or email"));
    }
    let stream = customer_stream(customer_id)?;
    let (by, at, metadata) = (caller.actor(), now(), caller.metadata());
    let mut attempts = 0;
    loop {
        // The details not given are kept: decided on the version they were read at.
        let (customer, version, position) = existing(&state, &stream).await?;
        let command = CustomerCommand::ChangeDetails {
            name: edit.name.clone().unwrap_or_else(|| customer.name.clone()),
            email: edit.email.clone().unwrap_or_else(|| customer.email.clone()),
            by,
            at,
        };
        let expected = Some(if_match.unwrap_or(version));
        match state
            .service
            .execute_if::<Customer>(&stream, command, &metadata, expected)
            .await
        {
            Err(ServiceError::VersionMismatch { .. })
                if if_match.is_none() && attempts < EDIT_ATTEMPTS =>
            {
                attempts += 1;
            }
            Err(ServiceError::Domain(DomainError::NoChange)) => {
                let unchanged = Executed::unchanged(version, position);
                return Ok(Json(CommandReply::new(customer_id, &unchanged)));
            }
            other => return Ok(Json(CommandReply::new(customer_id, &other?))),
        }
    }
}

/// Merges this customer into another (`into`, the survivor): it takes over this customer's
/// identities, and first contacts through them answer the survivor. Reversible with
/// `POST .../unmerge`.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/merge", tag = "customers",
    params(CustomerPath, StreamPrecondition), request_body = CustomerMerge,
    responses((status = 200, body = CommandReply, description = "`id` and `stream_version` \
                are the merged customer's; `position` covers both customers"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn merge_customer(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
    Json(merge): Json<CustomerMerge>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let merged_stream = customer_stream(customer_id)?;
    let survivor_stream = customer_stream(merge.into)?;
    let (_, merged_before, _) = existing(&state, &merged_stream).await?;
    // A retry whose first attempt merged already: its `If-Match` was checked then.
    if !state.service.acted_before(&merged_stream).await? {
        check_version(if_match, merged_before)?;
    }
    let (_, survivor_before, _) = existing(&state, &survivor_stream).await?;
    state
        .service
        .merge_customers(
            CustomerId(customer_id),
            CustomerId(merge.into),
            caller.actor(),
            now(),
            &caller.metadata(),
        )
        .await?;
    two_stream_reply(
        &state,
        customer_id,
        (&merged_stream, merged_before),
        (&survivor_stream, survivor_before),
    )
    .await
}

/// Undoes this customer's merge: it stands for itself again, with its identities; the
/// survivor lets go of them. History keeps the merge and its undoing. 409 when the customer
/// is not merged.
#[utoipa::path(post, path = "/api/v1/customers/{customer_id}/unmerge", tag = "customers",
    params(CustomerPath, StreamPrecondition),
    responses((status = 200, body = CommandReply, description = "`id` and `stream_version` \
                are the unmerged customer's; `position` covers both customers"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn unmerge_customer(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Path(CustomerPath { customer_id }): Path<CustomerPath>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let merged_stream = customer_stream(customer_id)?;
    let (merged, merged_before, _) = existing(&state, &merged_stream).await?;
    if !state.service.acted_before(&merged_stream).await? {
        check_version(if_match, merged_before)?;
    }
    let survivor = merged
        .merged_into
        .or(merged.unmerged_from)
        .ok_or(DomainError::NoChange)?;
    let survivor_stream = customer_stream(survivor.0)?;
    let (_, survivor_before, _) = state.service.load::<Customer>(&survivor_stream).await?;
    state
        .service
        .unmerge_customers(
            CustomerId(customer_id),
            caller.actor(),
            now(),
            &caller.metadata(),
        )
        .await?;
    two_stream_reply(
        &state,
        customer_id,
        (&merged_stream, merged_before),
        (&survivor_stream, survivor_before),
    )
    .await
}
