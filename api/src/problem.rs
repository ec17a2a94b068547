//! The API's one error type, mapped to HTTP in exactly one place: RFC 9457
//! `application/problem+json` bodies with a stable `type`.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_eventlog::LogError;
use serde::Serialize;

/// An error as a client sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A stable identifier of the kind of problem, e.g. `urn:parley:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:parley:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            current_version: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<LogError> for Problem {
    fn from(error: LogError) -> Problem {
        use LogError as E;
        match &error {
            E::Conflict { current, .. } => Problem {
                current_version: Some(current.0),
                ..Problem::new(StatusCode::CONFLICT, "conflict", error.to_string())
            },
            E::DuplicateEventId { .. } => Problem::new(
                StatusCode::CONFLICT,
                "duplicate-event-id",
                error.to_string(),
            ),
            E::InvalidStreamId { .. }
            | E::InvalidEventType { .. }
            | E::EmptyAppend
            | E::RepeatedEventId { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                error.to_string(),
            ),
            E::TooManyEvents { .. } | E::PayloadTooLarge { .. } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                error.to_string(),
            ),
            E::Storage(_) | E::Sqlite(_) | E::BatchFailed(_) | E::Closed | E::Migration(_) => {
                tracing::error!(%error, "event log unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the event log is unavailable; retry later",
                )
            }
            E::Codec(_) | E::Corrupt { .. } | E::UnsupportedUrl(_) => {
                tracing::error!(%error, "internal failure");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal failure; it has been logged",
                )
            }
        }
    }
}
