//! Channel accounts, `/api/v1/channels` (admins): the help desk's accounts on WhatsApp,
//! Messenger, LINE, WeChat and X, with the secrets their platforms sign and authorise with.
//!
//! An account's life is events of its `channel-<id>` stream; its secrets are kept in a side
//! store and never answered: only whether each is set. Each account has its webhook URL,
//! `/hooks/<platform>/<id>`, answered on creation and on every read.

use super::extract::{IfMatch, Json, Path, Query};
use super::tickets::StreamPrecondition;
use super::{AppState, AtLeast, CommandReply, auth::Caller};
use crate::problem::Problem;
use crate::service::{CommandService, Executed};
use axum::extract::State;
use axum::http::StatusCode;
use parley_app::channels::{channel_of, platform_of};
use parley_channels::Platform;
use parley_domain::channel::{ChannelAccount, ChannelCommand, ChannelId};
use parley_domain::conversation::Channel;
use parley_domain::{Aggregate, DomainError, Timestamp};
use parley_projections::channels::{self as accounts, AccountView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_channel, list_channels))
        .routes(routes!(get_channel, change_channel, remove_channel))
}

/// Longest secret accepted, in bytes.
const MAX_SECRET_BYTES: usize = 4096;

/// A platform with a built-in adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlatformDto {
    Whatsapp,
    Messenger,
    Line,
    Wechat,
    X,
}

impl From<PlatformDto> for Platform {
    fn from(dto: PlatformDto) -> Platform {
        match dto {
            PlatformDto::Whatsapp => Platform::Whatsapp,
            PlatformDto::Messenger => Platform::Messenger,
            PlatformDto::Line => Platform::Line,
            PlatformDto::Wechat => Platform::Wechat,
            PlatformDto::X => Platform::X,
        }
    }
}

/// A new channel account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    pub platform: PlatformDto,
    /// A name for people: "Support +1 555 0100".
    pub name: String,
    /// The platform's ids for the account. WhatsApp: `phone_number_id` (and
    /// `display_phone_number`); Messenger: `page_id`; LINE: `channel_id`, `bot_user_id`;
    /// WeChat: `app_id`, `original_id`; X: `user_id`.
    #[serde(default)]
    pub platform_ids: BTreeMap<String, String>,
    /// Where replies and downloads go instead of the platform's own API (a stand-in, a
    /// staging proxy). Default: the platform's.
    #[serde(default)]
    pub api_base: Option<String>,
    /// WhatsApp and Messenger: `app_secret`, `access_token`, `verify_token`; LINE:
    /// `channel_secret`, `access_token`; WeChat: `token`, `app_secret` (and
    /// `encoding_aes_key` for safe mode); X: `consumer_secret`, `access_token`.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// Changes to an account: every field present is changed; a secret set to `null` is cleared.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelChange {
    #[serde(default)]
    pub name: Option<String>,
    /// Replaces the platform ids as a whole.
    #[serde(default)]
    pub platform_ids: Option<BTreeMap<String, String>>,
    /// `null` goes back to the platform's own API.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_base: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub secrets: BTreeMap<String, Option<String>>,
}

/// Tells a field sent as `null` from one left out.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

/// A channel account as admins see it: never its secrets' values.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelDto {
    pub channel_id: Uuid,
    pub platform: PlatformDto,
    pub name: String,
    pub platform_ids: BTreeMap<String, String>,
    /// `null`: the platform's own API.
    pub api_base: Option<String>,
    /// Every secret the platform uses, and whether it is set.
    pub secrets: BTreeMap<String, bool>,
    /// Where the platform sends its webhooks: register it in the platform's console (with
    /// the server's public address in front when `--public-url` is not set).
    pub webhook_url: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What creating or changing an account answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelAnswer {
    #[serde(flatten)]
    pub reply: CommandReply,
    pub channel: ChannelDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<ChannelDto>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ChannelPath {
    pub channel_id: Uuid,
}

fn dto_platform(platform: Platform) -> PlatformDto {
    match platform {
        Platform::Whatsapp => PlatformDto::Whatsapp,
        Platform::Messenger => PlatformDto::Messenger,
        Platform::Line => PlatformDto::Line,
        Platform::Wechat => PlatformDto::Wechat,
        Platform::X => PlatformDto::X,
    }
}

/// The path the platform posts an account's webhooks to.
pub fn webhook_path(platform: Platform, id: impl std::fmt::Display) -> String {
    format!("/hooks/{}/{id}", platform.name())
}

fn dto(state: &AppState, platform: Platform, id: Uuid, account: &ChannelAccount) -> ChannelDto {
    let path = webhook_path(platform, id);
    ChannelDto {
        channel_id: id,
        platform: dto_platform(platform),
        name: account.name.clone(),
        platform_ids: account.platform_ids.clone(),
        api_base: account.api_base.clone(),
        secrets: secrets_set(platform, &account.secrets),
        webhook_url: match &state.settings.public_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            None => path,
        },
        created_at: account.created_at.0,
        updated_at: account.updated_at.0,
    }
}

fn secrets_set(platform: Platform, set: &BTreeSet<String>) -> BTreeMap<String, bool> {
    platform
        .secret_names()
        .iter()
        .map(|(name, _)| ((*name).to_owned(), set.contains(*name)))
        .collect()
}

fn view_dto(state: &AppState, view: AccountView) -> Result<ChannelDto, Problem> {
    let corrupt = || Problem::internal(&"a channel account's platform is unknown");
    let channel = [
        Channel::Whatsapp,
        Channel::Facebook,
        Channel::Line,
        Channel::Wechat,
        Channel::Twitter,
    ]
    .into_iter()
    .find(|channel| channel.name() == view.platform)
    .ok_or_else(corrupt)?;
    let platform = platform_of(channel).ok_or_else(corrupt)?;
    let id = Uuid::parse_str(&view.channel_id).map_err(|_| corrupt())?;
    let account = ChannelAccount {
        id: Some(ChannelId(id)),
        channel: Some(channel),
        name: view.name,
        platform_ids: view.platform_ids,
        api_base: view.api_base,
        secrets: view.secrets_set,
        removed: false,
        created_at: Timestamp(view.created_at),
        updated_at: Timestamp(view.updated_at),
    };
    Ok(dto(state, platform, id, &account))
}

/// Checks names against what the platform knows: unknown secrets and ids are refused, so a
/// typo is not silently kept.
fn check_names(
    platform: Platform,
    ids: &BTreeMap<String, String>,
    secrets: &BTreeSet<&str>,
) -> Result<(), Problem> {
    let known_ids: Vec<&str> = platform.id_names().iter().map(|(n, _)| *n).collect();
    if let Some(unknown) = ids.keys().find(|k| !known_ids.contains(&k.as_str())) {
        return Err(Problem::invalid(format!(
            "platform_ids.{unknown}: not an id of a {} account (known: {})",
            platform.name(),
            known_ids.join(", ")
        )));
    }
    let known_secrets: Vec<&str> = platform.secret_names().iter().map(|(n, _)| *n).collect();
    if let Some(unknown) = secrets.iter().find(|k| !known_secrets.contains(k)) {
        return Err(Problem::invalid(format!(
            "secrets.{unknown}: not a secret of a {} account (known: {})",
            platform.name(),
            known_secrets.join(", ")
        )));
    }
    Ok(())
}

/// Every id the platform's webhooks and sends need.
fn check_required_ids(platform: Platform, ids: &BTreeMap<String, String>) -> Result<(), Problem> {
    for (name, required) in platform.id_names() {
        if *required && ids.get(*name).is_none_or(|v| v.trim().is_empty()) {
            return Err(Problem::invalid(format!(
                "platform_ids.{name}: required for a {} account",
                platform.name()
            )));
        }
    }
    Ok(())
}

fn check_secret(name: &str, value: &str) -> Result<(), Problem> {
    if value.is_empty() || value.len() > MAX_SECRET_BYTES || value.chars().any(char::is_control) {
        return Err(Problem::invalid(format!(
            "secrets.{name}: must be 1 to {MAX_SECRET_BYTES} bytes without control characters"
        )));
    }
    Ok(())
}

fn now() -> Timestamp {
    Timestamp(parley_eventlog::Timestamp::now().as_micros())
}

/// Connects an account (admins). Every id and secret the platform requires must be given;
/// the answer holds the webhook URL to register with the platform.
#[utoipa::path(post, path = "/api/v1/channels", tag = "channels", request_body = NewChannel,
    responses((status = 201, body = ChannelAnswer, description = "`id` is the account's"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewChannel>,
) -> Result<(StatusCode, Json<ChannelAnswer>), Problem> {
    caller.require_admin()?;
    let platform = Platform::from(new.platform);
    let given: BTreeSet<&str> = new.secrets.keys().map(String::as_str).collect();
    check_names(platform, &new.platform_ids, &given)?;
    check_required_ids(platform, &new.platform_ids)?;
    for (name, required) in platform.secret_names() {
        if *required && !new.secrets.contains_key(*name) {
            return Err(Problem::invalid(format!(
                "secrets.{name}: required for a {} account",
                platform.name()
            )));
        }
    }
    for (name, value) in &new.secrets {
        check_secret(name, value)?;
    }
    let id = ChannelId(crate::ids::new_id("channel"));
    let at = now();
    let register = ChannelCommand::Register {
        channel_id: id,
        channel: channel_of(platform),
        name: new.name,
        platform_ids: new.platform_ids,
        api_base: new.api_base,
        by: caller.actor(),
        at,
    };
    // Checked before the secrets are kept, so a refused account leaves nothing behind.
    ChannelAccount::default().decide(register.clone())?;
    // The secrets first: a node that sees the account finds them.
    let names: BTreeSet<String> = new.secrets.keys().cloned().collect();
    state
        .channels
        .set_secrets(
            id,
            new.secrets.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            at.0,
        )
        .await?;
    let answer = record(
        &state,
        &caller,
        (id, platform),
        (register, None),
        (names, BTreeSet::new()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(answer)))
}

/// The connected accounts (admins), oldest first.
#[utoipa::path(get, path = "/api/v1/channels", tag = "channels", params(AtLeast),
    responses((status = 200, body = ChannelList), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
    Query(at): Query<AtLeast>,
) -> Result<Json<ChannelList>, Problem> {
    caller.require_admin()?;
    state.caught_up(accounts::NAME, at.position).await?;
    let views = state
        .models
        .query(accounts::NAME, |tx, t| accounts::list(tx, t))
        .await?;
    let channels = views
        .into_iter()
        .map(|view| view_dto(&state, view))
        .collect::<Result<_, _>>()?;
    Ok(Json(ChannelList { channels }))
}

/// One account (admins); 404 once removed.
#[utoipa::path(get, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(ChannelPath, AtLeast),
    responses((status = 200, body = ChannelDto), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(ChannelPath { channel_id }): Path<ChannelPath>,
    Query(at): Query<AtLeast>,
) -> Result<Json<ChannelDto>, Problem> {
    caller.require_admin()?;
    state.caught_up(accounts::NAME, at.position).await?;
    let id = channel_id.to_string();
    let view = state
        .models
        .query(accounts::NAME, move |tx, t| accounts::get(tx, t, &id))
        .await?
        .ok_or_else(|| Problem::not_found("no such channel account"))?;
    Ok(Json(view_dto(&state, view)?))
}

/// Changes an account (admins): its name, platform ids, API base, and secrets (set, replaced,
/// or cleared with `null`; a required secret cannot be cleared).
#[utoipa::path(patch, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(ChannelPath, StreamPrecondition), request_body = ChannelChange,
    responses((status = 200, body = ChannelAnswer), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
async fn change_channel(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(ChannelPath { channel_id }): Path<ChannelPath>,
    Json(change): Json<ChannelChange>,
) -> Result<Json<ChannelAnswer>, Problem> {
    caller.require_admin()?;
    let id = ChannelId(channel_id);
    let stream = CommandService::stream::<ChannelAccount>(id)?;
    let (account, version, _) = state.service.load::<ChannelAccount>(&stream).await?;
    let (Some(channel), false) = (account.channel, account.removed) else {
        return Err(Problem::not_found("no such channel account"));
    };
    // Checked before the secrets are written: a stale change replaces nothing. (The command
    // checks it again against the log.)
    if let Some(expected) = if_match.filter(|expected| *expected != version) {
        return Err(crate::service::ServiceError::VersionMismatch {
            expected,
            current: version,
        }
        .into());
    }
    let platform =
        platform_of(channel).ok_or_else(|| Problem::not_found("no such channel account"))?;
    let given: BTreeSet<&str> = change.secrets.keys().map(String::as_str).collect();
    let ids = change
        .platform_ids
        .clone()
        .unwrap_or_else(|| account.platform_ids.clone());
    check_names(platform, &ids, &given)?;
    check_required_ids(platform, &ids)?;
    for (name, value) in &change.secrets {
        match value {
            Some(value) => check_secret(name, value)?,
            None if platform
                .secret_names()
                .iter()
                .any(|(n, required)| n == name && *required) =>
            {
                return Err(Problem::invalid(format!(
                    "secrets.{name}: required for a {} account; replace it instead",
                    platform.name()
                )));
            }
            None => {}
        }
    }
    let at = now();
    let settings = ChannelCommand::Change {
        name: change.name.unwrap_or_else(|| account.name.clone()),
        platform_ids: ids,
        api_base: change.api_base.unwrap_or_else(|| account.api_base.clone()),
        by: caller.actor(),
        at,
    };
    account.decide(settings.clone())?;
    let (changed, cleared): (BTreeSet<String>, BTreeSet<String>) = {
        let changed = change
            .secrets
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let cleared = change
            .secrets
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        (changed, cleared)
    };
    if !change.secrets.is_empty() {
        state.channels.set_secrets(id, change.secrets, at.0).await?;
    }
    Ok(Json(
        record(
            &state,
            &caller,
            (id, platform),
            (settings, if_match),
            (changed, cleared),
        )
        .await?,
    ))
}

/// Records an account's settings (`first`, registered or changed, under `if_match`), then which
/// of its secrets were set and cleared: one answer for both.
async fn record(
    state: &AppState,
    caller: &Caller,
    (id, platform): (ChannelId, Platform),
    (first, if_match): (ChannelCommand, Option<parley_eventlog::StreamVersion>),
    (changed, cleared): (BTreeSet<String>, BTreeSet<String>),
) -> Result<ChannelAnswer, Problem> {
    let stream = CommandService::stream::<ChannelAccount>(id)?;
    let metadata = caller.metadata();
    let first = state
        .service
        .execute_if::<ChannelAccount>(&stream, first, &metadata, if_match)
        .await?;
    let rotated = state
        .service
        .execute::<ChannelAccount>(
            &stream,
            ChannelCommand::RotateSecrets {
                changed,
                cleared,
                by: caller.actor(),
                at: now(),
            },
            &metadata,
        )
        .await?;
    let executed = Executed {
        events: first.events + rotated.events,
        ..rotated
    };
    // This node's webhooks and reactions see the change at once (other nodes within 5 s).
    state.channels.forget(id);
    let (account, _, _) = state.service.load::<ChannelAccount>(&stream).await?;
    Ok(ChannelAnswer {
        reply: CommandReply::new(id, &executed),
        channel: dto(state, platform, id.0, &account),
    })
}

/// Removes an account (admins): its webhooks answer 404 from now on, its secrets are forgotten,
/// and replies on its tickets are no longer sent (they stay pending). Its history stays.
#[utoipa::path(delete, path = "/api/v1/channels/{channel_id}", tag = "channels",
    params(ChannelPath, StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn remove_channel(
    State(state): State<AppState>,
    caller: Caller,
    IfMatch(if_match): IfMatch,
    Path(ChannelPath { channel_id }): Path<ChannelPath>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_admin()?;
    let id = ChannelId(channel_id);
    let stream = CommandService::stream::<ChannelAccount>(id)?;
    let executed = state
        .service
        .execute_if::<ChannelAccount>(
            &stream,
            ChannelCommand::Remove {
                by: caller.actor(),
                at: now(),
            },
            &caller.metadata(),
            if_match,
        )
        .await;
    match executed {
        Ok(executed) => {
            state.channels.drop_secrets(id).await?;
            Ok(Json(CommandReply::new(id, &executed)))
        }
        // Removed already (or never there): its secrets are forgotten all the same, so a retry
        // after a crash between the two steps leaves none behind.
        Err(crate::service::ServiceError::Domain(DomainError::ChannelNotFound)) => {
            state.channels.drop_secrets(id).await?;
            Err(Problem::not_found("no such channel account"))
        }
        Err(other) => Err(other.into()),
    }
}
