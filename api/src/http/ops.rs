//! Operations: `/health` (liveness and positions), `/ready` (may this node take traffic) and
//! `/metrics` (Prometheus), with the middleware that measures every request.
//!
//! Metrics go through the `metrics` facade to one Prometheus recorder per process
//! ([`recorder`]); what depends on the log's head (projection lag) is computed when scraped,
//! from this server's own state.

use super::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How far (in log positions) a read model may trail the log's head while the node still
/// reports ready. Under load a read model lingers until up to 2,000 events wait
/// (`ReadModels::set_linger`) and applies them in one transaction while more arrive: a
/// trail of a few thousand positions is a read model keeping up.
pub const READY_MAX_LAG: u64 = 10_000;

/// Requests answered, by method, route template and status class.
pub const REQUESTS_TOTAL: &str = "parley_http_requests_total";
/// Time to answer a request (until its head is sent), by method, route and status class.
pub const REQUEST_DURATION: &str = "parley_http_request_duration_seconds";
/// Time a command takes from load to append (`CommandService::execute_if`), by aggregate.
pub use parley_app::APPEND_DURATION;

/// Histogram buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Requests between two foldings of the histograms' raw samples into their buckets (a
/// scrape folds them too): memory stays bounded by this many samples, with no timer thread.
const UPKEEP_EVERY_REQUESTS: u64 = 4096;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

// ---------------------------------------------------------------------------------------------
// Recording

/// The process's Prometheus recorder, installed as the `metrics` recorder on first use.
/// Several servers in one process (tests) share it; if another recorder was installed first,
/// request metrics go there and this one renders only what servers compute when scraped.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        let recorder = builder
            .set_buckets(LATENCY_BUCKETS)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        match metrics::set_global_recorder(recorder) {
            Ok(()) => describe(),
            Err(error) => tracing::warn!(%error, "another metrics recorder is installed"),
        }
        handle
    })
}

fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests answered, by method, route template and status class"
    );
    metrics::describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route template and status class"
    );
    metrics::describe_counter!(
        "parley_connections_closed_total",
        Unit::Count,
        "Connections the server closed on a client that kept it waiting, by reason \
         (header-read-timeout, keep-alive-timeout, send-timeout)"
    );
    metrics::describe_histogram!(
        APPEND_DURATION,
        Unit::Seconds,
        "Time to run a command to its append (load, decide, append), by aggregate"
    );
}

/// Counts and times every request, by route template (never the raw path, so that ids do not
/// multiply the series), method and status class.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        (
            "status",
            status_class(response.status().as_u16()).to_owned(),
        ),
    ];
    metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(REQUEST_DURATION, &labels).record(started.elapsed().as_secs_f64());
    static RECORDED: AtomicU64 = AtomicU64::new(0);
    if RECORDED.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY_REQUESTS == UPKEEP_EVERY_REQUESTS - 1
    {
        recorder().run_upkeep();
    }
    response
}

/// Standard methods by name; anything else as `other` (clients choose methods freely).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// What `/health` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok` (an unreachable log answers 503).
    pub status: String,
    /// The log's last global position.
    pub log_head: u64,
    /// The log position each read model has applied, by name.
    pub read_models: BTreeMap<String, u64>,
    /// Why feeding a read model last failed, by name, while it has not recovered.
    pub read_model_failures: BTreeMap<String, String>,
    /// Whether this process feeds the read models (and runs the reactions).
    pub projection_leader: bool,
    /// The log position each reaction has handled, by name, as this process knows it (0 on a
    /// process that does not lead).
    pub reactions: BTreeMap<String, u64>,
}

/// Liveness and the log's reachability: 200 with the log's head position, how far each read
/// model has applied it, why feeding one last failed (while it has not recovered) and whether
/// this process feeds them; or 503.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The log is reachable", body = Health),
              (status = 503, description = "The log is unreachable", body = Problem,
               content_type = "application/problem+json")))]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    let head = state.log.head().await?;
    let positions = positions(&state);
    let failures = state
        .models
        .names()
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), state.models.failure(name)?)))
        .collect();
    Ok(Json(Health {
        status: "ok".into(),
        log_head: head.0,
        read_models: positions
            .into_iter()
            .map(|(name, position)| (name.to_owned(), position))
            .collect(),
        read_model_failures: failures,
        projection_leader: state.models.is_leading(),
        reactions: state
            .reactions
            .names()
            .into_iter()
            .map(|name| {
                let position = state
                    .reactions
                    .position(name)
                    .map(|watch| *watch.borrow())
                    .unwrap_or_default();
                (name.to_owned(), position)
            })
            .collect(),
    }))
}

/// Each read model's applied position, as this process knows it.
fn positions(state: &AppState) -> Vec<(&'static str, u64)> {
    state
        .models
        .names()
        .iter()
        .map(|name| (*name, state.models.position(name).unwrap_or_default()))
        .collect()
}

/// What `/ready` answers when the node may take traffic.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready` (otherwise the answer is 503).
    pub status: String,
    /// The log's last global position.
    pub log_head: u64,
    /// The most a read model may trail the log's head for the node to be ready.
    pub max_lag: u64,
    /// How many log positions each read model has yet to apply, by name.
    pub lag: BTreeMap<String, u64>,
}

/// Readiness for traffic: 200 when the log is reachable and every read model is within
/// `max_lag` positions of the log's head; else 503 naming the read models that trail.
#[utoipa::path(get, path = "/ready", tag = "operations", security(()),
    responses((status = 200, description = "Ready to serve", body = Readiness),
              (status = 503, description = "The log is unreachable or read models trail it",
               body = Problem, content_type = "application/problem+json")))]
async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>, Problem> {
    let head = state.log.head().await?.0;
    let lag: BTreeMap<String, u64> = positions(&state)
        .into_iter()
        .map(|(name, position)| (name.to_owned(), head.saturating_sub(position)))
        .collect();
    let lagging: Vec<String> = lag
        .iter()
        .filter(|(_, lag)| **lag > READY_MAX_LAG)
        .map(|(name, lag)| format!("{name} ({lag} behind)"))
        .collect();
    if !lagging.is_empty() {
        return Err(Problem {
            kind: "urn:parley:problem:lagging".into(),
            ..Problem::unavailable(
                format!(
                    "read models trail the log's head ({head}) by more than {READY_MAX_LAG} positions: {}",
                    lagging.join(", ")
                ),
                1,
            )
        });
    }
    Ok(Json(Readiness {
        status: "ready".into(),
        log_head: head,
        max_lag: READY_MAX_LAG,
        lag,
    }))
}

/// Metrics in Prometheus' text format: requests (`parley_http_requests_total`,
/// `parley_http_request_duration_seconds`, by method, route template and status class), command
/// latency (`parley_append_duration_seconds`, by aggregate), and, computed now, whether the log
/// is reachable, its head, each read model's position and lag (`parley_projection_lag`) and the
/// transactions live feeding has run on it (`parley_projection_live_transactions_total`:
/// against the position, how many events each carries).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition format", body = String,
               content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = recorder().render();
    let head = state.log.head().await.ok().map(|p| p.0);
    let transactions: Vec<_> = state
        .models
        .names()
        .iter()
        .map(|name| {
            let n = state.models.live_transactions(name).unwrap_or_default();
            (*name, n)
        })
        .collect();
    scrape_figures(&mut text, head, &positions(&state), &transactions);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Appends the figures computed at scrape time: log reachability and head, each read model's
/// position and lag (the lag only when the head is known), and its live transactions.
fn scrape_figures(
    out: &mut String,
    head: Option<u64>,
    positions: &[(&str, u64)],
    transactions: &[(&str, u64)],
) {
    let mut family = |kind: &str, name: &str, help: &str, values: &[(Option<&str>, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (projection, value) in values {
            match projection {
                Some(projection) => {
                    let _ = writeln!(out, "{name}{{projection=\"{projection}\"}} {value}");
                }
                None => {
                    let _ = writeln!(out, "{name} {value}");
                }
            }
        }
        out.push('\n');
    };
    let mut gauge = |name: &str, help: &str, values: &[(Option<&str>, u64)]| {
        family("gauge", name, help, values)
    };
    gauge(
        "parley_log_up",
        "Whether the event log answered this scrape (1) or not (0)",
        &[(None, u64::from(head.is_some()))],
    );
    let by_projection = |value: &dyn Fn(u64) -> u64| -> Vec<(Option<&str>, u64)> {
        positions
            .iter()
            .map(|(name, position)| (Some(*name), value(*position)))
            .collect()
    };
    let committed: Vec<_> = transactions.iter().map(|(n, v)| (Some(*n), *v)).collect();
    gauge(
        "parley_projection_position",
        "The last log position each read model has applied",
        &by_projection(&|position| position),
    );
    if let Some(head) = head {
        gauge(
            "parley_log_head",
            "The log's last global position",
            &[(None, head)],
        );
        gauge(
            "parley_projection_lag",
            "Log positions each read model has yet to apply (log head - position)",
            &by_projection(&|position| head.saturating_sub(position)),
        );
    }
    family(
        "counter",
        "parley_projection_live_transactions_total",
        "Transactions live feeding has run on each read model in this process",
        &committed,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_counted_by_class() {
        assert_eq!(status_class(201), "2xx");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }

    #[test]
    fn lag_is_rendered_per_projection_when_the_head_is_known() {
        let mut text = String::new();
        scrape_figures(
            &mut text,
            Some(10),
            &[("inbox", 7), ("search", 10)],
            &[("inbox", 2), ("search", 3)],
        );
        assert!(text.contains("parley_log_up 1\n"));
        assert!(text.contains("parley_log_head 10\n"));
        assert!(text.contains("parley_projection_lag{projection=\"inbox\"} 3\n"));
        assert!(text.contains("parley_projection_lag{projection=\"search\"} 0\n"));
        assert!(text.contains("# TYPE parley_projection_live_transactions_total counter\n"));
        assert!(
            text.contains("parley_projection_live_transactions_total{projection=\"inbox\"} 2\n")
        );
        let mut down = String::new();
        scrape_figures(&mut down, None, &[("inbox", 7)], &[("inbox", 2)]);
        assert!(down.contains("parley_log_up 0\n"));
        assert!(down.contains("parley_projection_position{projection=\"inbox\"} 7\n"));
        assert!(!down.contains("parley_projection_lag"));
    }
}
