//! The API's one error type, mapped to HTTP in exactly one place: RFC 9457
//! `application/problem+json` bodies with a stable `type`.
//!
//! Every problem carries the request's id (also in the `x-request-id` header), so a client
//! reporting a 500 gives operators the line to look for; internal details are logged, never
//! echoed.

use crate::files::FileError;
use crate::service::ServiceError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_domain::DomainError;
use parley_eventlog::LogError;
use parley_projections::{StoreError, ViewError};
use serde::Serialize;

tokio::task_local! {
    /// The id of the request being handled (set by the request-id middleware).
    pub static REQUEST_ID: String;
}

/// The current request's id, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// An error as a client sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A stable identifier of the kind of problem, e.g. `urn:parley:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For conflicts: the stream's version now, to decide again from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// Seconds to wait before retrying (429, 503); also sent as `Retry-After`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// The request's id, as in the `x-request-id` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("urn:parley:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            current_version: None,
            retry_after: None,
            request_id: None,
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 400: a malformed request (syntax, a bad path or query parameter).
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 422: well-formed, but a field's value is not acceptable.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
    }

    /// 401: no token, or one that is unknown or revoked.
    pub fn unauthorized(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the token is valid but may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 409: the current state refuses the request.
    pub fn conflict(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 429 with the seconds to wait.
    pub fn too_many_requests(retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!("too many requests with this token; retry in {retry_after} s"),
            )
        }
    }

    /// 500: logged with the request id, never echoed.
    pub fn internal(error: &dyn std::fmt::Display) -> Problem {
        tracing::error!(%error, request_id = ?request_id(), "internal failure");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal failure; it has been logged with this request's id",
        )
    }

    /// 503: a dependency is down or behind; retry later.
    pub fn unavailable(detail: impl Into<String>, retry_after: u64) -> Problem {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(mut self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.request_id.is_none() {
            self.request_id = request_id();
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"parley\""),
            );
        }
        response
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
                tracing::error!(%error, request_id = ?request_id(), "event log unavailable");
                Problem::unavailable("the event log is unavailable; retry later", 1)
            }
            E::Codec(_) | E::Corrupt { .. } | E::UnsupportedUrl(_) => Problem::internal(&error),
        }
    }
}

impl From<DomainError> for Problem {
    fn from(error: DomainError) -> Problem {
        if error.is_not_found() {
            Problem::not_found(error.to_string())
        } else if error.is_conflict() {
            Problem::conflict(error.to_string())
        } else {
            Problem::invalid(error.to_string())
        }
    }
}

impl From<ServiceError> for Problem {
    fn from(error: ServiceError) -> Problem {
        match error {
            ServiceError::Domain(error) => error.into(),
            ServiceError::Log(error) => error.into(),
            ServiceError::Contention { .. } => Problem::conflict(error.to_string()),
            ServiceError::VersionMismatch { current, .. } => Problem {
                current_version: Some(current.0),
                ..Problem::conflict(error.to_string())
            },
            ServiceError::MergeChain { .. } | ServiceError::Codec(_) => Problem::internal(&error),
        }
    }
}

impl From<parley_app::channels::DirectoryError> for Problem {
    fn from(error: parley_app::channels::DirectoryError) -> Problem {
        match error {
            parley_app::channels::DirectoryError::Service(error) => error.into(),
            parley_app::channels::DirectoryError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        match error {
            StoreError::Corrupt(..) | StoreError::Column { .. } => Problem::internal(&error),
            _ => {
                tracing::error!(%error, request_id = ?request_id(), "read models unavailable");
                Problem::unavailable("the read models are unavailable; retry later", 1)
            }
        }
    }
}

impl From<ViewError> for Problem {
    fn from(error: ViewError) -> Problem {
        match error {
            ViewError::Store(error) => error.into(),
            ViewError::Log(error) => error.into(),
            ViewError::Lagging { .. } => Problem {
                kind: "urn:parley:problem:lagging".into(),
                ..Problem::unavailable(error.to_string(), 1)
            },
            _ => Problem::internal(&error),
        }
    }
}

impl From<FileError> for Problem {
    fn from(error: FileError) -> Problem {
        match error {
            FileError::Empty | FileError::InvalidName(_) | FileError::NotYours(_) => {
                Problem::invalid(error.to_string())
            }
            FileError::TooLarge { .. } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                error.to_string(),
            ),
            // Only the retry of a keyed upload meets an id that names another file.
            FileError::IdTaken(_) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was used with another file (content or name)",
            ),
            FileError::Read(_) => {
                tracing::info!(%error, request_id = ?request_id(), "an upload broke off");
                Problem::bad_request("the upload ended before the file did")
            }
            FileError::Io(_) | FileError::Postgres(_) => {
                tracing::error!(%error, request_id = ?request_id(), "file store unavailable");
                Problem::unavailable("the file store is unavailable; retry later", 1)
            }
            FileError::Store(error) => error.into(),
            FileError::View(error) => error.into(),
            FileError::Corrupt(_) => Problem::internal(&error),
        }
    }
}

impl From<JsonRejection> for Problem {
    fn from(rejection: JsonRejection) -> Problem {
        let detail = rejection.body_text();
        match rejection {
            // Well-formed JSON whose fields do not fit the request (a wrong type, a missing or
            // unknown field, a value outside an enumeration): a malformed field.
            JsonRejection::JsonDataError(_) => Problem::bad_request(detail),
            JsonRejection::MissingJsonContentType(_) => Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "the body must be JSON, sent with `Content-Type: application/json`",
            ),
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "the request body is larger than the server accepts",
            ),
            _ => Problem::bad_request(detail),
        }
    }
}

impl From<QueryRejection> for Problem {
    fn from(rejection: QueryRejection) -> Problem {
        Problem::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(rejection: PathRejection) -> Problem {
        Problem::bad_request(rejection.body_text())
    }
}
