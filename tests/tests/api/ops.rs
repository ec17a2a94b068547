//! Operations and cross-cutting request handling: `Idempotency-Key`, `/ready`, `/metrics`,
//! rate limits and request body checks.

use crate::helpers::{Backend, TestApp, new_id, spawn_app, spawn_app_with};
use serde_json::{Value, json};

/// The log's head position, from `/health`.
async fn log_head(app: &TestApp) -> u64 {
    let health: Value = app.get("/health").await.json().await.unwrap();
    health["log_head"].as_u64().expect("log_head")
}

/// A new widget visitor's token.
async fn visitor(app: &TestApp) -> String {
    app.widget_visitor().await.1
}

/// `POST path` with a bearer token, a JSON body and an `Idempotency-Key`.
async fn post_with_key(
    app: &TestApp,
    token: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn a_retry_with_the_same_key_is_answered_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = visitor(&app).await;
    let start = json!({"body": "My order has not arrived"});
    let path = "/widget/v1/conversations";

    let first = post_with_key(&app, &token, path, "start-1", &start).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_type = first.headers()["content-type"].clone();
    let first_body: Value = first.json().await.unwrap();
    let head = log_head(&app).await;
    assert_eq!(first_body["position"], head);

    let retry = post_with_key(&app, &token, path, "start-1", &start).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.headers()["content-type"], first_type);
    let retry_body: Value = retry.json().await.unwrap();
    assert_eq!(retry_body, first_body, "the first answer, replayed");
    assert_eq!(log_head(&app).await, head, "nothing appended again");

    // The same key with another request is a client error, not a replay.
    let other = json!({"body": "Another question"});
    let reused = post_with_key(&app, &token, path, "start-1", &other).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.headers()["content-type"], "application/problem+json");
    let problem: Value = reused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:idempotency-key-reused");

    // Keys belong to the token that sent them: another visitor's same key acts anew.
    let someone_else = visitor(&app).await;
    let theirs = post_with_key(&app, &someone_else, path, "start-1", &start).await;
    assert_eq!(theirs.status(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(theirs["id"], first_body["id"]);

    // Without a key, a retry acts again.
    let without = app.post_as(&token, path, &start).await;
    assert_eq!(without.status(), 201);
    let without: Value = without.json().await.unwrap();
    assert_ne!(without["id"], first_body["id"]);
}

async fn concurrent_duplicates_act_once(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = visitor(&app).await;
    let start = json!({"body": "Is anyone there?"});
    let head = log_head(&app).await;
    let sent: Vec<_> = (0..8)
        .map(|_| {
            let request = app
                .client
                .post(format!("{}/widget/v1/conversations", app.address))
                .bearer_auth(&token)
                .header("Idempotency-Key", "burst")
                .json(&start);
            tokio::spawn(request.send())
        })
        .collect();
    let mut ids = Vec::new();
    for answer in sent {
        let answer = answer.await.unwrap().unwrap();
        match answer.status().as_u16() {
            201 => {
                let body: Value = answer.json().await.unwrap();
                ids.push(body["id"].clone());
            }
            409 => {
                assert!(answer.headers().contains_key("retry-after"));
                let problem: Value = answer.json().await.unwrap();
                assert_eq!(problem["type"], "urn:parley:problem:idempotency-in-flight");
            }
            other => panic!("a duplicate is answered 201 (replayed) or 409, not {other}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one conversation: {ids:?}"
    );
    let replayed = post_with_key(&app, &token, "/widget/v1/conversations", "burst", &start).await;
    assert_eq!(replayed.status(), 201);
    let after = log_head(&app).await;
    let first: Value = replayed.json().await.unwrap();
    assert_eq!(first["position"], after, "only the first request appended");
    assert!(after > head);
}

async fn keys_longer_than_255_characters_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let token = visitor(&app).await;
    let body = json!({"body": "Hello"});
    let path = "/widget/v1/conversations";
    let head = log_head(&app).await;
    let long = "k".repeat(256);
    let response = post_with_key(&app, &token, path, &long, &body).await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:bad-request");
    assert_eq!(log_head(&app).await, head, "nothing appended");
    let longest = "k".repeat(255);
    let response = post_with_key(&app, &token, path, &longest, &body).await;
    assert_eq!(response.status(), 201);

    // The OpenAPI document shows the header, and its bound, on every POST.
    let api: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let parameters = api["paths"][path]["post"]["parameters"]
        .as_array()
        .expect("parameters");
    let key = parameters
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .expect("Idempotency-Key is documented");
    assert_eq!(key["in"], "header");
    assert_eq!(key["schema"]["maxLength"], 255);
}

/// A retried request whose answer held a secret (a new token, a new visitor) acts nothing
/// again, and the retry says why it cannot have the secret.
async fn a_retried_secret_is_withheld_and_nothing_is_done_again(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mint = json!({"role": "agent", "agent": new_id(), "support": true});
    let first = post_with_key(&app, &app.admin, "/api/v1/tokens", "mint-1", &mint).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert!(first["secret"].is_string());
    let head = log_head(&app).await;
    let retry = post_with_key(&app, &app.admin, "/api/v1/tokens", "mint-1", &mint).await;
    assert_eq!(retry.status(), 409);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let problem: Value = retry.json().await.unwrap();
    assert_eq!(
        problem["type"],
        "urn:parley:problem:idempotency-answer-withheld"
    );
    assert!(problem.get("secret").is_none());
    assert!(
        !problem
            .to_string()
            .contains(first["secret"].as_str().unwrap())
    );

    // A visitor (no token: the key alone is the scope).
    let visitor = |key: &'static str| {
        app.client
            .post(format!("{}/widget/v1/visitors", app.address))
            .header("Idempotency-Key", key)
            .json(&json!({"name": "Marta"}))
            .send()
    };
    assert_eq!(visitor("visit-1").await.unwrap().status(), 201);
    let head_after_visitor = log_head(&app).await;
    assert!(head_after_visitor > head);
    let again = visitor("visit-1").await.unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(
        log_head(&app).await,
        head_after_visitor,
        "nothing appended again"
    );
}

/// The document is OpenAPI 3.1, and every command on something that exists (a path with an id)
/// documents `If-Match`, so a client that wants strict concurrency can use it everywhere.
async fn every_command_on_an_existing_resource_takes_if_match(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let api: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(api["openapi"], "3.1.0");
    let mut commands = 0;
    for (path, operations) in api["paths"].as_object().expect("paths") {
        // The platforms' webhooks are not commands on a stream: platforms send no If-Match.
        if !path.contains('{') || path.starts_with("/hooks/") {
            continue;
        }
        for (method, operation) in operations.as_object().expect("operations") {
            if !["post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            commands += 1;
            let documented = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == "If-Match" && p["in"] == "header")
            });
            assert!(documented, "{method} {path} takes If-Match");
        }
    }
    assert!(commands > 40, "only {commands} commands found");
}

async fn a_fresh_server_is_ready(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["log_head"], 1);
    let lag = body["lag"].as_object().expect("lag per read model");
    assert!(lag.contains_key("inbox") && lag.contains_key("access"));
    assert!(lag.values().all(|l| l.as_u64() <= body["max_lag"].as_u64()));
}

/// Another process appends an event the read models of conversations cannot decode, then more:
/// those read models stop before it, `/ready` says which trail and by how much, and a read that
/// waits for a position beyond it answers 503 `lagging` after its bounded wait. PostgreSQL only:
/// there, another process's appends reach the server (on SQLite one process owns the file).
async fn stopped_read_models_are_not_ready_and_reads_waiting_on_them_lag(backend: Backend) {
    use parley_eventlog::{ExpectedVersion, Metadata, NewEvent, StreamId};
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let log = parley_eventlog::open(&app.database_url, parley_eventlog::LogOptions::default())
        .await
        .unwrap();
    let event = |stream_type: &str, payload: Vec<u8>| NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: stream_type.into(),
        schema_version: 1,
        payload,
        metadata: Metadata::default(),
    };
    let conversation = StreamId::new(format!("conversation-{}", new_id())).unwrap();
    // 0xc1 is a MessagePack marker that is never used.
    log.append(
        &conversation,
        ExpectedVersion::Any,
        vec![event("MessageSent", vec![0xc1])],
    )
    .await
    .unwrap();
    // More than `/ready` lets a read model trail (10,000), in appends of 1,000 (the most one
    // takes).
    let notes = StreamId::new(format!("note-{}", new_id())).unwrap();
    for _ in 0..11 {
        let filler = (0..1_000)
            .map(|_| event("NoteWritten", vec![0x80]))
            .collect();
        log.append(&notes, ExpectedVersion::Any, filler)
            .await
            .unwrap();
    }
    log.close().await;

    // The server sees the new head through PostgreSQL's notification, and the read models
    // that do not want conversation events reach it: minting a token waits until the token
    // read model has applied it, and a read with `?position=` waits for the notifier (which
    // follows tickets). Then `/ready` is asked once.
    let minted = app
        .post_as(
            &app.admin,
            "/api/v1/tokens",
            &json!({"role": "integration"}),
        )
        .await;
    assert_eq!(minted.status(), 201);
    let minted: Value = minted.json().await.unwrap();
    let head = minted["position"].as_u64().expect("a position");
    let notifier = app
        .get_as(&agent, &format!("/api/v1/notifier/summary?position={head}"))
        .await;
    assert_eq!(notifier.status(), 200, "the notifier reaches the head");
    let ready = app.get("/ready").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.headers()["content-type"], "application/problem+json");
    let problem: Value = ready.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:lagging");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("inbox"), "{detail}");
    assert!(!detail.contains("access"), "{detail}");

    let read = app
        .get_as(
            &agent,
            &format!("/api/v1/inbox/from-customers?position={head}"),
        )
        .await;
    assert_eq!(read.status(), 503);
    assert!(read.headers().contains_key("retry-after"));
    let problem: Value = read.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:lagging");
}

async fn metrics_count_requests_by_route_and_report_projection_lag(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let me = app.get_as(&app.admin, "/api/v1/tokens/me").await;
    assert_eq!(me.status(), 200);
    // An append, timed by aggregate.
    app.mint(json!({"role": "integration"})).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let counted = text.lines().any(|line| {
        line.starts_with("parley_http_requests_total{")
            && line.contains("route=\"/api/v1/tokens/me\"")
            && line.contains("method=\"GET\"")
            && line.contains("status=\"2xx\"")
    });
    assert!(counted, "a request counter for the route template:\n{text}");
    assert!(text.contains("parley_http_request_duration_seconds_bucket{"));
    assert!(text.contains("# TYPE parley_projection_lag gauge"));
    for name in ["inbox", "access", "search"] {
        assert!(
            text.contains(&format!("parley_projection_lag{{projection=\"{name}\"}} ")),
            "a lag gauge for {name}:\n{text}"
        );
    }
    assert!(text.contains("parley_log_up 1"));
    assert!(
        text.lines().any(|line| {
            line.starts_with("parley_append_duration_seconds_count{")
                && line.contains("aggregate=\"token\"")
        }),
        "an append latency histogram for tokens:\n{text}"
    );
}

async fn a_token_over_its_rate_limit_is_told_when_to_retry(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |config| {
        config.rate_limit = 1;
        config.rate_burst = 2;
    })
    .await
    else {
        return;
    };
    let mut limited = None;
    for _ in 0..10 {
        let response = app.get_as(&app.admin, "/api/v1/tokens/me").await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let response = limited.expect("a 429 within 10 quick requests");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:rate-limited");
    assert_eq!(problem["retry_after"], retry_after);

    // New widget visitors carry no token: their address is limited, and a refused one
    // creates nobody.
    let mut created = 0;
    let mut refused = None;
    for _ in 0..10 {
        let head = log_head(&app).await;
        let response = app
            .client
            .post(format!("{}/widget/v1/visitors", app.address))
            .json(&json!({"name": "Marta"}))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            assert_eq!(
                log_head(&app).await,
                head,
                "a refused visitor appends nothing"
            );
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), 201);
        created += 1;
    }
    let refused = refused.expect("a 429 within 10 quick visitors");
    assert!(created >= 1, "the burst lets the first visitors in");
    assert!(refused.headers().contains_key("retry-after"));
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:rate-limited");
}

async fn bodies_over_the_limit_or_not_json_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let path = "/api/v1/tokens";
    let huge = json!({"role": "integration", "label": "x".repeat(2 * 1024 * 1024)});
    let response = app.post_as(&app.admin, path, &huge).await;
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:too-large");

    // The same with an Idempotency-Key (the body is read before the handler sees it).
    let response = post_with_key(&app, &app.admin, path, "huge-1", &huge).await;
    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:too-large");

    let response = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&app.admin)
        .header("content-type", "text/plain")
        .body(r#"{"role": "integration"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:parley:problem:unsupported-media-type");
}

#[tokio::test]
async fn idempotent_retry_on_sqlite() {
    a_retry_with_the_same_key_is_answered_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn idempotent_retry_on_postgres() {
    a_retry_with_the_same_key_is_answered_once(Backend::Postgres).await;
}

#[tokio::test]
async fn concurrent_duplicates_on_sqlite() {
    concurrent_duplicates_act_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn concurrent_duplicates_on_postgres() {
    concurrent_duplicates_act_once(Backend::Postgres).await;
}

#[tokio::test]
async fn long_idempotency_key_on_sqlite() {
    keys_longer_than_255_characters_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn long_idempotency_key_on_postgres() {
    keys_longer_than_255_characters_are_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn ready_on_sqlite() {
    a_fresh_server_is_ready(Backend::Sqlite).await;
}

#[tokio::test]
async fn ready_on_postgres() {
    a_fresh_server_is_ready(Backend::Postgres).await;
}

#[tokio::test]
async fn metrics_on_sqlite() {
    metrics_count_requests_by_route_and_report_projection_lag(Backend::Sqlite).await;
}

#[tokio::test]
async fn metrics_on_postgres() {
    metrics_count_requests_by_route_and_report_projection_lag(Backend::Postgres).await;
}

#[tokio::test]
async fn rate_limit_on_sqlite() {
    a_token_over_its_rate_limit_is_told_when_to_retry(Backend::Sqlite).await;
}

#[tokio::test]
async fn rate_limit_on_postgres() {
    a_token_over_its_rate_limit_is_told_when_to_retry(Backend::Postgres).await;
}

#[tokio::test]
async fn body_checks_on_sqlite() {
    bodies_over_the_limit_or_not_json_are_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn body_checks_on_postgres() {
    bodies_over_the_limit_or_not_json_are_refused(Backend::Postgres).await;
}

/// The document is the same on every backend.
#[tokio::test]
async fn if_match_is_documented_on_every_command() {
    every_command_on_an_existing_resource_takes_if_match(Backend::Sqlite).await;
}

#[tokio::test]
async fn withheld_secret_on_sqlite() {
    a_retried_secret_is_withheld_and_nothing_is_done_again(Backend::Sqlite).await;
}

#[tokio::test]
async fn withheld_secret_on_postgres() {
    a_retried_secret_is_withheld_and_nothing_is_done_again(Backend::Postgres).await;
}

/// PostgreSQL only (see the function).
#[tokio::test]
async fn stopped_read_models_on_postgres() {
    stopped_read_models_are_not_ready_and_reads_waiting_on_them_lag(Backend::Postgres).await;
}
