//! Tokens: minting, who-am-I, listing, revocation, and refusals that leak nothing.

use crate::helpers::{Backend, problem, spawn_app};
use serde_json::json;

async fn an_admin_mints_and_revokes_tokens(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (agent_id, agent) = app.agent(false).await;
    let me: serde_json::Value = app
        .get_as(&agent, "/api/v1/tokens/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "agent");
    assert_eq!(me["agent"], agent_id);
    assert_eq!(me["support"], false);

    // Only admins manage tokens.
    let refused = app
        .post_as(&agent, "/api/v1/tokens", &json!({"role": "admin"}))
        .await;
    problem(refused, 403, "forbidden").await;

    let page: serde_json::Value = app
        .get_as(&app.admin, "/api/v1/tokens?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["tokens"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().expect("a second page");
    let rest: serde_json::Value = app
        .get_as(&app.admin, &format!("/api/v1/tokens?cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(rest["tokens"][0]["token_id"], me["token_id"]);
    assert!(rest["next_cursor"].is_null());

    let token_id = me["token_id"].as_str().unwrap();
    // A revocation decided on another version of the token is refused, and changes nothing.
    let stale = app
        .client
        .delete(format!("{}/api/v1/tokens/{token_id}", app.address))
        .bearer_auth(&app.admin)
        .header("If-Match", "7")
        .send()
        .await
        .unwrap();
    let stale = problem(stale, 409, "conflict").await;
    assert_eq!(stale["current_version"], 1);
    assert_eq!(app.get_as(&agent, "/api/v1/tokens/me").await.status(), 200);
    assert_eq!(app.revoke(token_id).await.status(), 200);
    problem(
        app.get_as(&agent, "/api/v1/tokens/me").await,
        401,
        "unauthorized",
    )
    .await;
    problem(app.revoke(token_id).await, 409, "conflict").await;
}

async fn bad_credentials_and_bodies_are_problems(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let missing = app.get("/api/v1/tokens/me").await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"parley\""
    );
    problem(missing, 401, "unauthorized").await;
    problem(
        app.get_as("parley_not-a-token", "/api/v1/tokens/me").await,
        401,
        "unauthorized",
    )
    .await;
    // A role the server does not know, and an id that is not one: malformed fields.
    problem(
        app.post_as(&app.admin, "/api/v1/tokens", &json!({"role": "root"}))
            .await,
        400,
        "bad-request",
    )
    .await;
    problem(
        app.post_as(
            &app.admin,
            "/api/v1/tokens",
            &json!({"role": "agent", "agent": "not-a-uuid"}),
        )
        .await,
        400,
        "bad-request",
    )
    .await;
    let malformed = app
        .client
        .post(format!("{}/api/v1/tokens", app.address))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"role\":")
        .send()
        .await
        .unwrap();
    problem(malformed, 400, "bad-request").await;
    problem(
        app.get_as(&app.admin, "/api/v1/tokens?limit=0").await,
        400,
        "bad-request",
    )
    .await;
    problem(
        app.send_as(
            reqwest::Method::DELETE,
            &app.admin,
            "/api/v1/tokens/0190c5c4-0000-7000-8000-000000000001",
            &json!({}),
        )
        .await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn tokens_on_sqlite() {
    an_admin_mints_and_revokes_tokens(Backend::Sqlite).await;
}

#[tokio::test]
async fn tokens_on_postgres() {
    an_admin_mints_and_revokes_tokens(Backend::Postgres).await;
}

#[tokio::test]
async fn refusals_on_sqlite() {
    bad_credentials_and_bodies_are_problems(Backend::Sqlite).await;
}

#[tokio::test]
async fn refusals_on_postgres() {
    bad_credentials_and_bodies_are_problems(Backend::Postgres).await;
}
