//! The customer widget: visitors created on first contact, their own conversations only, and
//! never an internal note.

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::live::EventStream;
use serde_json::{Value, json};

/// Starts a widget conversation as `token`; its id and the command's position.
async fn start_chat(app: &TestApp, token: &str, body: &str) -> (String, u64) {
    let response = app
        .post_as(token, "/widget/v1/conversations", &json!({"body": body}))
        .await;
    assert_eq!(response.status(), 201, "starting a widget conversation");
    let reply: Value = response.json().await.unwrap();
    (
        reply["id"].as_str().unwrap().to_owned(),
        reply["position"].as_u64().unwrap(),
    )
}

/// `GET path` as `token`, expecting 200 and JSON.
async fn read(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get_as(token, path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn a_visitor_chats_and_follows_their_conversation(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let response = app
        .client
        .post(format!("{}/widget/v1/visitors", app.address))
        .json(&json!({"name": "Ana", "email": "ana@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let visitor: Value = response.json().await.unwrap();
    let token = visitor["token"].as_str().unwrap();

    let status: Value = app.get("/widget/v1/status").await.json().await.unwrap();
    assert_eq!(status["online"], false);
    assert!(status["message"].as_str().unwrap().contains("away"));

    // The token works at once.
    let empty = read(&app, token, "/widget/v1/conversations").await;
    assert_eq!(empty["conversations"], json!([]));

    let response = app
        .post_as(
            token,
            "/widget/v1/conversations",
            &json!({"conversation_id": "01890000-0000-7000-8000-000000000001",
                    "message_id": "01890000-0000-7000-8000-000000000002",
                    "body": "My parcel is late\nOrder 1234"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let started: Value = response.json().await.unwrap();
    assert_eq!(started["id"], "01890000-0000-7000-8000-000000000001");
    assert_eq!(started["events"], 2);
    assert_eq!(started["stream_version"], 2);

    // A retry with the same ids completes nothing more.
    let retried = app
        .post_as(
            token,
            "/widget/v1/conversations",
            &json!({"conversation_id": "01890000-0000-7000-8000-000000000001",
                    "message_id": "01890000-0000-7000-8000-000000000002",
                    "body": "My parcel is late\nOrder 1234"}),
        )
        .await;
    assert_eq!(retried.status(), 201);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["events"], 0);
    assert_eq!(retried["stream_version"], 2);

    // Without a message id, a retry names the same first message all the same.
    let again = json!({"conversation_id": "01890000-0000-7000-8000-000000000003",
                       "body": "Also: my invoice"});
    let first = app.post_as(token, "/widget/v1/conversations", &again).await;
    assert_eq!(first.status(), 201);
    let retried = app.post_as(token, "/widget/v1/conversations", &again).await;
    assert_eq!(retried.status(), 201);
    let retried: Value = retried.json().await.unwrap();
    assert_eq!(retried["events"], 0);

    let id = "01890000-0000-7000-8000-000000000001";
    let response = app
        .post_as(
            token,
            &format!("/widget/v1/conversations/{id}/messages"),
            &json!({"body": "Any news?"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let sent: Value = response.json().await.unwrap();
    let position = sent["position"].as_u64().unwrap();

    let detail = read(
        &app,
        token,
        &format!("/widget/v1/conversations/{id}?position={position}"),
    )
    .await;
    assert_eq!(detail["subject"], "My parcel is late");
    assert_eq!(detail["channel"], "widget");
    assert_eq!(detail["status"], "open");
    let bodies: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["My parcel is late\nOrder 1234", "Any news?"]);

    let list = read(
        &app,
        token,
        &format!("/widget/v1/conversations?position={position}"),
    )
    .await;
    assert_eq!(list["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(
        list["conversations"][0]["conversation_id"], id,
        "latest activity first"
    );
    assert_eq!(list["next_cursor"], Value::Null);

    // Reading: an idempotent command.
    let read_path = format!("/widget/v1/conversations/{id}/read");
    let response = app.post_as(token, &read_path, &json!({})).await;
    assert_eq!(response.status(), 200);

    // If-Match guards commands.
    let stale = app
        .client
        .post(format!("{}{}", app.address, read_path))
        .bearer_auth(token)
        .header("If-Match", "1")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);

    // A rating waits for the conversation to be finished.
    let early = app
        .post_as(
            token,
            &format!("/widget/v1/conversations/{id}/rating"),
            &json!({"score": 5}),
        )
        .await;
    assert!(early.status().is_client_error());
    assert_ne!(early.status(), 404);
}

/// The text no customer may ever read.
const NOTE: &str = "INTERNAL-NOTE: refund approved, do not tell yet";

async fn a_customer_reply_reopens_a_closed_chat(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, visitor, _) = app.widget_visitor().await;
    let (_, agent) = app.support_agent().await;
    let (id, started) = start_chat(&app, &visitor, "Where is my order?").await;
    let widget_path = format!("/widget/v1/conversations/{id}");
    let api_path = format!("/api/v1/conversations/{id}");
    // Everything the visitor's widget receives, to search for the note at the end.
    let mut seen = Vec::new();

    let mut stream = EventStream::open(
        &app,
        &visitor,
        &format!("{widget_path}/stream"),
        Some(started),
    )
    .await;
    for (body, visibility) in [(NOTE, "internal"), ("It ships today.", "public")] {
        let response = app
            .post_as(
                &agent,
                &format!("{api_path}/messages"),
                &json!({"body": body, "visibility": visibility}),
            )
            .await;
        assert_eq!(response.status(), 201, "the agent writes ({visibility})");
    }
    let response = app
        .post_as(&agent, &format!("{api_path}/close"), &json!({}))
        .await;
    assert_eq!(response.status(), 200, "the agent closes");
    let closed: Value = response.json().await.unwrap();
    let position = closed["position"].as_u64().unwrap();

    let detail = read(
        &app,
        &visitor,
        &format!("{widget_path}?position={position}"),
    )
    .await;
    assert_eq!(detail["status"], "closed");
    let bodies: Vec<&str> = detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Where is my order?", "It ships today."]);
    seen.push(detail);
    let list = read(
        &app,
        &visitor,
        &format!("/widget/v1/conversations?position={position}"),
    )
    .await;
    assert_eq!(list["conversations"][0]["status"], "closed");
    seen.push(list);

    // A finished conversation can be rated, once.
    let rating = json!({"score": 5, "comment": "Quick answer"});
    let response = app
        .post_as(&visitor, &format!("{widget_path}/rating"), &rating)
        .await;
    assert_eq!(response.status(), 200);
    seen.push(response.json().await.unwrap());
    let response = app
        .post_as(&visitor, &format!("{widget_path}/rating"), &rating)
        .await;
    assert_eq!(response.status(), 409, "rated already");

    // The customer writes again: the conversation reopens.
    let response = app
        .post_as(
            &visitor,
            &format!("{widget_path}/messages"),
            &json!({"body": "It has not arrived."}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let reopened: Value = response.json().await.unwrap();
    assert_eq!(reopened["events"], 2, "reopened, then the message");
    let position = reopened["position"].as_u64().unwrap();
    seen.push(reopened);
    let detail = read(
        &app,
        &visitor,
        &format!("{widget_path}?position={position}"),
    )
    .await;
    assert_eq!(detail["status"], "open");
    assert_eq!(detail["rating"]["score"], 5);
    assert_eq!(detail["messages"].as_array().unwrap().len(), 3);
    seen.push(detail);
    let list = read(
        &app,
        &visitor,
        &format!("/widget/v1/conversations?position={position}"),
    )
    .await;
    assert_eq!(list["conversations"][0]["status"], "open");
    seen.push(list);
    let response = app
        .post_as(&visitor, &format!("{widget_path}/read"), &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    seen.push(response.json().await.unwrap());

    // The widget stream: the public reply, the closing, the reopening and the customer's
    // message; never the note, the rating request or the rating.
    let mut types = Vec::new();
    for _ in 0..4 {
        let event = stream.next().await;
        types.push(event["type"].as_str().unwrap().to_owned());
        seen.push(event);
    }
    assert_eq!(
        types,
        [
            "MessageSent",
            "ConversationClosed",
            "ConversationReopened",
            "MessageSent"
        ]
    );
    assert_eq!(seen.last().unwrap()["position"], position);
    for answer in &seen {
        assert!(
            !answer.to_string().contains("INTERNAL-NOTE"),
            "a widget answer shows the note: {answer}"
        );
    }
    // The note is there for agents.
    let response = app.get_as(&agent, "/api/v1/events").await;
    assert_eq!(response.status(), 403, "agents do not read the feed");
    let feed: Value = app
        .get_as(&app.admin, "/api/v1/events?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    assert!(feed.to_string().contains("INTERNAL-NOTE"));
}

async fn the_list_is_paged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, token, _) = app.widget_visitor().await;
    let mut position = 0;
    for n in 0..3 {
        position = start_chat(&app, &token, &format!("question {n}")).await.1;
    }
    let first = read(
        &app,
        &token,
        &format!("/widget/v1/conversations?limit=2&position={position}"),
    )
    .await;
    let subjects = |page: &Value| -> Vec<String> {
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subjects(&first), ["question 2", "question 1"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = read(
        &app,
        &token,
        &format!("/widget/v1/conversations?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(subjects(&second), ["question 0"]);
    assert_eq!(second["next_cursor"], Value::Null);

    let bad = app
        .get_as(&token, "/widget/v1/conversations?cursor=nonsense")
        .await;
    assert_eq!(bad.status(), 400);
    let too_many = app
        .get_as(&token, "/widget/v1/conversations?limit=1000")
        .await;
    assert_eq!(too_many.status(), 400);
}

async fn visitor_input_is_validated(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let create = |body: Value| {
        app.client
            .post(format!("{}/widget/v1/visitors", app.address))
            .json(&body)
            .send()
    };
    for (body, status) in [
        (json!({"email": "josé@example.com"}), 422),
        (json!({"email": "not an address"}), 422),
        (json!({"name": "x".repeat(201)}), 422),
        // A field a visitor does not send: malformed.
        (json!({"name": "Ana", "customer_id": "someone else"}), 400),
    ] {
        let response = create(body.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let malformed = app
        .client
        .post(format!("{}/widget/v1/visitors", app.address))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // An invalid first message starts nothing.
    let (_, token, _) = app.widget_visitor().await;
    for body in [json!({"body": "   "}), json!({"body": "x".repeat(20_001)})] {
        let response = app.post_as(&token, "/widget/v1/conversations", &body).await;
        assert_eq!(response.status(), 422);
    }
    let head: Value = app.get("/health").await.json().await.unwrap();
    let position = head["log_head"].as_u64().unwrap();
    let list = read(
        &app,
        &token,
        &format!("/widget/v1/conversations?position={position}"),
    )
    .await;
    assert_eq!(list["conversations"], json!([]));
}

async fn visitors_reach_only_their_own_conversations(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, ana, _) = app.widget_visitor().await;
    let (_, ben, _) = app.widget_visitor().await;
    let (id, position) = start_chat(&app, &ana, "Ana's private question").await;
    let path = format!("/widget/v1/conversations/{id}");

    let response = app
        .get_as(&ben, &format!("{path}?position={position}"))
        .await;
    assert_eq!(response.status(), 404);
    for (suffix, body) in [
        ("/messages", json!({"body": "let me in"})),
        ("/read", json!({})),
        ("/rating", json!({"score": 1})),
    ] {
        let response = app.post_as(&ben, &format!("{path}{suffix}"), &body).await;
        assert_eq!(response.status(), 404, "{suffix}");
    }
    // Even with If-Match or an invalid body, nothing tells the conversation exists.
    let response = app
        .client
        .post(format!("{}{path}/messages", app.address))
        .bearer_auth(&ben)
        .header("If-Match", "7")
        .json(&json!({"body": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Nor does reusing its id to start one.
    let response = app
        .post_as(
            &ben,
            "/widget/v1/conversations",
            &json!({"conversation_id": id, "body": "mine now?"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let list = read(
        &app,
        &ben,
        &format!("/widget/v1/conversations?position={position}"),
    )
    .await;
    assert_eq!(list["conversations"], json!([]));

    // Visitor tokens stay out of /api/v1.
    for api in ["/api/v1/stream", "/api/v1/events"] {
        let response = app.get_as(&ana, api).await;
        assert_eq!(response.status(), 403, "{api}");
    }
    // Agents' tokens stay out of /widget/v1.
    let (_, agent) = app.support_agent().await;
    assert_eq!(app.get_as(&agent, &path).await.status(), 403);
    assert_eq!(
        app.get_as(&agent, "/widget/v1/conversations")
            .await
            .status(),
        403
    );
    let response = app
        .post_as(&agent, "/widget/v1/conversations", &json!({"body": "hi"}))
        .await;
    assert_eq!(response.status(), 403);
    // And nobody without a token.
    assert_eq!(app.get("/widget/v1/conversations").await.status(), 401);
}

#[tokio::test]
async fn chat_on_sqlite() {
    a_visitor_chats_and_follows_their_conversation(Backend::Sqlite).await;
}

#[tokio::test]
async fn chat_on_postgres() {
    a_visitor_chats_and_follows_their_conversation(Backend::Postgres).await;
}

#[tokio::test]
async fn list_paging_on_sqlite() {
    the_list_is_paged(Backend::Sqlite).await;
}

#[tokio::test]
async fn list_paging_on_postgres() {
    the_list_is_paged(Backend::Postgres).await;
}

#[tokio::test]
async fn validation_on_sqlite() {
    visitor_input_is_validated(Backend::Sqlite).await;
}

#[tokio::test]
async fn validation_on_postgres() {
    visitor_input_is_validated(Backend::Postgres).await;
}

#[tokio::test]
async fn own_conversations_only_on_sqlite() {
    visitors_reach_only_their_own_conversations(Backend::Sqlite).await;
}

#[tokio::test]
async fn own_conversations_only_on_postgres() {
    visitors_reach_only_their_own_conversations(Backend::Postgres).await;
}

async fn the_routes_are_documented(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let paths = &doc["paths"];
    for (path, method) in [
        ("/widget/v1/visitors", "post"),
        ("/widget/v1/status", "get"),
        ("/widget/v1/conversations", "post"),
        ("/widget/v1/conversations", "get"),
        ("/widget/v1/conversations/{conversation_id}", "get"),
        (
            "/widget/v1/conversations/{conversation_id}/messages",
            "post",
        ),
        ("/widget/v1/conversations/{conversation_id}/read", "post"),
        ("/widget/v1/conversations/{conversation_id}/rating", "post"),
        ("/widget/v1/conversations/{conversation_id}/stream", "get"),
        ("/api/v1/stream", "get"),
        ("/api/v1/events", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert!(operation["operationId"].is_string());
    }
    // The public routes need no token.
    assert_eq!(
        paths["/widget/v1/visitors"]["post"]["security"],
        json!([{}])
    );
}

#[tokio::test]
async fn documented_on_sqlite() {
    the_routes_are_documented(Backend::Sqlite).await;
}

#[tokio::test]
async fn documented_on_postgres() {
    the_routes_are_documented(Backend::Postgres).await;
}

#[tokio::test]
async fn journey_on_sqlite() {
    a_customer_reply_reopens_a_closed_chat(Backend::Sqlite).await;
}

#[tokio::test]
async fn journey_on_postgres() {
    a_customer_reply_reopens_a_closed_chat(Backend::Postgres).await;
}
