//! The help desk, `/api/v1/helpdesk`: its online/offline switch, the messages widget visitors
//! are told, its business hours and the rules its reports follow (one stream,
//! `helpdesk-main`).
//!
//! Who may act: any staff member reads the settings and turns the help desk online or
//! offline; only admins change the messages, the business hours and the report rules. Every
//! command is a `PUT` or `DELETE`: asking for what is already so answers 200 with `events: 0`.
//! Commands take `If-Match: <stream version>` (409 with `current_version` when the settings
//! moved on).

use super::extract::{IfMatch, Json};
use super::tickets::{StreamPrecondition, settle};
use super::views::HelpDeskState;
use super::{AppState, CommandReply, auth::Caller, now};
use crate::problem::Problem;
use crate::service::CommandService;
use axum::extract::State;
use parley_domain::helpdesk::{
    BusinessHours, HELP_DESK_ID, HelpDesk, HelpDeskCommand, OpeningHours,
};
use parley_eventlog::StreamId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(help_desk_settings))
        .routes(routes!(go_online, go_offline))
        .routes(routes!(set_widget_messages))
        .routes(routes!(set_business_hours))
        .routes(routes!(set_report_rules))
}

// ---------------------------------------------------------------------------------------------
// DTOs.

/// The help desk's settings now, and the version to send in `If-Match` to change them.
#[derive(Debug, Serialize, ToSchema)]
pub struct HelpDeskSettings {
    #[serde(flatten)]
    pub settings: HelpDeskState,
    /// The help desk stream's version.
    pub stream_version: u64,
}

/// What widget visitors are told while the help desk is online, and while it is offline.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WidgetMessages {
    /// 1 to 1,000 characters.
    pub online_message: String,
    /// 1 to 1,000 characters.
    pub offline_message: String,
}

/// One opening range on one weekday, in the schedule's local time. A range never crosses
/// midnight: 22:00–02:00 is two ranges, 22:00–24:00 on one day and 00:00–02:00 on the next.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpeningHoursDto {
    /// 1 = Monday .. 7 = Sunday.
    pub weekday: u8,
    /// Minutes after local midnight the range opens (inclusive).
    pub opens: u16,
    /// Minutes after local midnight the range closes (exclusive); at most 1440.
    pub closes: u16,
}

/// The help desk's weekly opening hours, in one fixed UTC offset (replacing any earlier
/// schedule).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BusinessHoursDto {
    /// Local time minus UTC, in minutes (60 for UTC+01:00, -300 for UTC−05:00); within ±840.
    pub utc_offset_minutes: i32,
    /// 1 to 56 opening ranges, in any order; ranges of one day must not overlap.
    pub days: Vec<OpeningHoursDto>,
}

impl From<BusinessHoursDto> for BusinessHours {
    fn from(dto: BusinessHoursDto) -> BusinessHours {
        BusinessHours {
            utc_offset_minutes: dto.utc_offset_minutes,
            days: dto
                .days
                .into_iter()
                .map(|range| OpeningHours {
                    weekday: range.weekday,
                    opens: range.opens,
                    closes: range.closes,
                })
                .collect(),
        }
    }
}

/// How reports measure durations.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRules {
    /// First response and resolution times count only the time inside business hours (which
    /// must be set first); otherwise wall-clock time. Reports apply the rules to all of history
    /// when they are rebuilt.
    pub business_hours_only: bool,
}

// ---------------------------------------------------------------------------------------------
// Shared steps.

fn help_desk_stream() -> Result<StreamId, Problem> {
    Ok(CommandService::stream::<HelpDesk>(HELP_DESK_ID)?)
}

/// Runs `command` on the help desk as `caller`, under `If-Match`.
async fn act(
    state: &AppState,
    caller: &Caller,
    IfMatch(if_match): IfMatch,
    command: HelpDeskCommand,
) -> Result<Json<CommandReply>, Problem> {
    let executed =
        settle::<HelpDesk>(state, caller, &help_desk_stream()?, command, if_match).await?;
    Ok(Json(CommandReply::new(HELP_DESK_ID, &executed)))
}

// ---------------------------------------------------------------------------------------------
// Handlers.

/// The help desk's settings: online or not, the widget's messages, the business hours and the
/// report rules. Any staff member.
#[utoipa::path(get, path = "/api/v1/helpdesk", tag = "helpdesk",
    responses((status = 200, body = HelpDeskSettings), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
async fn help_desk_settings(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<HelpDeskSettings>, Problem> {
    caller.require_staff()?;
    let (desk, version, _) = state.service.load::<HelpDesk>(&help_desk_stream()?).await?;
    Ok(Json(HelpDeskSettings {
        settings: Arc::unwrap_or_clone(desk).into(),
        stream_version: version.0,
    }))
}

/// Turns the help desk online: widget visitors are told the online message. Any staff member.
#[utoipa::path(put, path = "/api/v1/helpdesk/online", tag = "helpdesk",
    params(StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem)))]
async fn go_online(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let command = HelpDeskCommand::GoOnline {
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, if_match, command).await
}

/// Turns the help desk offline: widget visitors are told the offline message. Any staff
/// member.
#[utoipa::path(delete, path = "/api/v1/helpdesk/online", tag = "helpdesk",
    params(StreamPrecondition),
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem)))]
async fn go_offline(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_staff()?;
    let command = HelpDeskCommand::GoOffline {
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, if_match, command).await
}

/// Sets what widget visitors are told while online and while offline. Admins only.
#[utoipa::path(put, path = "/api/v1/helpdesk/widget-messages", tag = "helpdesk",
    params(StreamPrecondition), request_body = WidgetMessages,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn set_widget_messages(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Json(messages): Json<WidgetMessages>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_admin()?;
    let command = HelpDeskCommand::SetWidgetMessages {
        online_message: messages.online_message,
        offline_message: messages.offline_message,
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, if_match, command).await
}

/// Sets the help desk's weekly business hours. Admins only.
#[utoipa::path(put, path = "/api/v1/helpdesk/business-hours", tag = "helpdesk",
    params(StreamPrecondition), request_body = BusinessHoursDto,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn set_business_hours(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Json(schedule): Json<BusinessHoursDto>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_admin()?;
    let command = HelpDeskCommand::SetBusinessHours {
        schedule: schedule.into(),
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, if_match, command).await
}

/// Sets whether report durations count business hours only (turning it on needs business
/// hours). Reports apply the rules to all of history once rebuilt. Admins only.
#[utoipa::path(put, path = "/api/v1/helpdesk/report-rules", tag = "helpdesk",
    params(StreamPrecondition), request_body = ReportRules,
    responses((status = 200, body = CommandReply), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn set_report_rules(
    State(state): State<AppState>,
    caller: Caller,
    if_match: IfMatch,
    Json(rules): Json<ReportRules>,
) -> Result<Json<CommandReply>, Problem> {
    caller.require_admin()?;
    let command = HelpDeskCommand::ChangeReportRules {
        business_hours_only: rules.business_hours_only,
        by: caller.actor(),
        at: now(),
    };
    act(&state, &caller, if_match, command).await
}
