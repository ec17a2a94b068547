use crate::helpers::{Backend, spawn_app};

async fn health_reports_the_log_as_reachable(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(
        body["log_head"], 1,
        "a new log holds only the configured admin token"
    );
    let models = body["read_models"]
        .as_object()
        .expect("read model positions");
    let names: Vec<&str> = models.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "access",
            "channels",
            "customers",
            "detail",
            "files",
            "inbox",
            "notifier",
            "reports",
            "search"
        ]
    );
    assert_eq!(
        models["access"], 1,
        "the server serves once its tokens are loaded"
    );
    assert!(models.values().all(|p| p.as_u64() <= Some(1)));
    assert_eq!(body["read_model_failures"], serde_json::json!({}));
}

async fn an_unknown_route_is_a_problem_json_404(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/no/such/thing").await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["type"], "urn:parley:problem:not-found");
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn health_on_sqlite() {
    health_reports_the_log_as_reachable(Backend::Sqlite).await;
}

#[tokio::test]
async fn health_on_postgres() {
    health_reports_the_log_as_reachable(Backend::Postgres).await;
}

#[tokio::test]
async fn unknown_route_on_sqlite() {
    an_unknown_route_is_a_problem_json_404(Backend::Sqlite).await;
}

#[tokio::test]
async fn unknown_route_on_postgres() {
    an_unknown_route_is_a_problem_json_404(Backend::Postgres).await;
}
