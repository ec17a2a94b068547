//! Axum's extractors with every rejection answered as problem+json (400 malformed JSON or a
//! field that does not fit the request, 413 too large, 415 not JSON).

use crate::problem::Problem;
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use parley_eventlog::StreamVersion;
use std::marker::PhantomData;

/// A JSON body, or a JSON response.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A JSON response encoded where its value was built: a read encodes its answer on the thread
/// that ran it, which then also frees the rows and strings it allocated, instead of handing
/// them to another thread to encode and free. `T` is the type encoded (each route's OpenAPI
/// `responses` name it too).
pub struct Encoded<T> {
    body: Vec<u8>,
    of: PhantomData<fn() -> T>,
}

impl<T: serde::Serialize> Encoded<T> {
    pub fn new(value: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            body: serde_json::to_vec(value)?,
            of: PhantomData,
        })
    }
}

impl<T> IntoResponse for Encoded<T> {
    fn into_response(self) -> Response {
        let json = HeaderValue::from_static("application/json");
        ([(header::CONTENT_TYPE, json)], self.body).into_response()
    }
}

/// Query parameters.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct Query<T>(pub T);

/// Path parameters.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct Path<T>(pub T);

/// The optional `If-Match: <stream version>` header of a command: the command is refused with
/// 409 unless the stream is at exactly that version. Quotes (an entity tag) are accepted.
#[derive(Debug, Clone, Copy, Default)]
pub struct IfMatch(pub Option<StreamVersion>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Problem> {
        let Some(value) = parts.headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value
            .to_str()
            .ok()
            .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'));
        match text.and_then(|t| t.parse::<u64>().ok()) {
            Some(version) => Ok(IfMatch(Some(StreamVersion(version)))),
            None => Err(Problem::bad_request(
                "If-Match must be a stream version: a whole number such as 7 or \"7\"",
            )),
        }
    }
}

/// The address the request came from, as the connection shows it (behind a reverse proxy, the
/// proxy's); `None` where the router is driven without a listener (in-process tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}
