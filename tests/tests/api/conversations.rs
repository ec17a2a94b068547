//! Conversation and message commands over HTTP, as whole journeys: a customer conversation from
//! first reply to spam, handing it over between agents, tickets and conversations created from
//! it, and every refusal (404 that does not leak, 409 conflicts, 422, 400, 401, 403).

use crate::helpers::{Backend, TestApp, new_id, now_micros, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `/api/v1/conversations/{id}`, followed by `suffix` (e.g. `/close`).
fn conversation(id: &str, suffix: &str) -> String {
    format!("/api/v1/conversations/{id}{suffix}")
}

/// Requests as one token, each expecting a status and answering the JSON body (`Null` when
/// there is none).
struct Session<'a> {
    app: &'a TestApp,
    token: &'a str,
}

impl<'a> Session<'a> {
    fn new(app: &'a TestApp, token: &'a str) -> Session<'a> {
        Session { app, token }
    }

    async fn send(&self, method: Method, path: &str, body: Value, status: u16) -> Value {
        let response = self
            .app
            .send_as(method.clone(), self.token, path, &body)
            .await;
        let got = response.status().as_u16();
        let reply = response.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{method} {path}: {reply}");
        reply
    }

    async fn post(&self, path: &str, body: Value, status: u16) -> Value {
        self.send(Method::POST, path, body, status).await
    }

    async fn patch(&self, path: &str, body: Value, status: u16) -> Value {
        self.send(Method::PATCH, path, body, status).await
    }

    async fn put(&self, path: &str, body: Value, status: u16) -> Value {
        self.send(Method::PUT, path, body, status).await
    }

    async fn delete(&self, path: &str, status: u16) -> Value {
        self.send(Method::DELETE, path, Value::Null, status).await
    }

    /// `POST path` without a body (the actions: close, reopen, take-over...).
    async fn act(&self, path: &str, status: u16) -> Value {
        self.post(path, Value::Null, status).await
    }

    /// Starts a customer conversation with `customer` and a first public message; its id.
    async fn start_with(&self, customer: &str) -> String {
        let reply = self
            .post(
                "/api/v1/conversations",
                json!({"kind": "customer", "channel": "email", "subject": "Parcel",
                       "customers": [customer],
                       "message": {"body": "Hello, how can we help?"}}),
                201,
            )
            .await;
        reply["id"].as_str().unwrap().to_owned()
    }

    /// The conversation as the views show it, once they reflect `position`.
    async fn view(&self, id: &str, position: &Value) -> Value {
        let path = conversation(id, &format!("?position={position}"));
        let response = self.app.get_as(self.token, &path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// `POST path` with an `If-Match` header and no body: the status and the body.
    async fn post_if_match(&self, path: &str, if_match: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .app
            .client
            .post(format!("{}{path}", self.app.address))
            .bearer_auth(self.token)
            .header("If-Match", if_match)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn a_customer_conversation_from_reply_to_spam(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, visitor, _) = app.widget_visitor().await;
    let (ana_id, ana_token) = app.support_agent().await;
    let (_, bob_token) = app.support_agent().await;
    let (ana, bob) = (
        Session::new(&app, &ana_token),
        Session::new(&app, &bob_token),
    );

    let message_id = new_id();
    let id = new_id();
    let start = json!({"conversation_id": id, "kind": "customer", "channel": "email",
                       "subject": "Parcel", "customers": [customer],
                       "message": {"message_id": message_id, "body": "Hello, how can we help?"}});
    let started = ana.post("/api/v1/conversations", start.clone(), 201).await;
    assert_eq!(started["id"], id.as_str());
    assert_eq!(started["events"], 2, "started, and its first message");
    assert_eq!(started["stream_version"], 2);
    // A retried start does nothing more and answers the conversation as it is.
    let retried = ana.post("/api/v1/conversations", start, 201).await;
    assert_eq!(retried["events"], 0);
    assert_eq!(retried["stream_version"], 2);

    let messages = conversation(&id, "/messages");
    let reply = bob
        .post(
            &messages,
            json!({"body": "Your parcel left our warehouse today.",
                   "quote_of": message_id, "mentions": [ana_id]}),
            201,
        )
        .await;
    let reply_id = reply["id"].as_str().unwrap().to_owned();
    let note = ana
        .post(
            &messages,
            json!({"body": "Carrier says it is lost, keep it quiet", "visibility": "internal",
                   "attachments": [{"name": "trace.pdf", "content_type": "application/pdf",
                                    "size": 1234, "storage_ref": "s3://bucket/trace.pdf"}]}),
            201,
        )
        .await;
    let note_id = note["id"].as_str().unwrap().to_owned();

    // The customer never sees the internal note.
    let path = format!(
        "/widget/v1/conversations/{id}?position={}",
        note["position"]
    );
    let seen: Value = app.get_as(&visitor, &path).await.json().await.unwrap();
    let bodies: Vec<&str> = seen["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            "Hello, how can we help?",
            "Your parcel left our warehouse today."
        ]
    );

    // Only the author edits or deletes a message.
    let the_note = format!("{messages}/{note_id}");
    bob.patch(&the_note, json!({"body": "hijacked"}), 409).await;
    let edited = ana
        .patch(&the_note, json!({"body": "Carrier says it is lost"}), 200)
        .await;
    assert_eq!(edited["id"], note_id.as_str());
    let the_reply = format!("{messages}/{reply_id}");
    bob.delete(&the_reply, 200).await;
    bob.delete(&the_reply, 409).await;
    let unknown = format!("{messages}/{}", new_id());
    ana.patch(&unknown, json!({"body": "x"}), 404).await;

    // Read marks are the calling agent's own.
    let read = conversation(&id, "/read");
    assert_eq!(bob.post(&read, json!({}), 200).await["events"], 1);
    assert_eq!(
        bob.post(&read, json!({}), 200).await["events"],
        0,
        "read already"
    );
    bob.act(&format!("{messages}/{message_id}/unread"), 200)
        .await;

    let renamed = ana
        .patch(
            &conversation(&id, ""),
            json!({"subject": "Lost parcel"}),
            200,
        )
        .await;
    let shown = ana.view(&id, &renamed["position"]).await;
    assert_eq!(shown["subject"], "Lost parcel");
    let note_shown = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == note_id.as_str())
        .expect("the note");
    assert_eq!(note_shown["body"], "Carrier says it is lost");
    assert_eq!(note_shown["visibility"], "internal");

    // Finishing asks for a rating; finishing twice is a conflict; reopening brings it back.
    let (close, reopen) = (conversation(&id, "/close"), conversation(&id, "/reopen"));
    let closed = ana.act(&close, 200).await;
    assert_eq!(closed["events"], 2, "closed, and a rating requested");
    let twice = ana.act(&close, 409).await;
    assert_eq!(twice["type"], "urn:parley:problem:conflict");
    ana.post(&messages, json!({"body": "late"}), 409).await;
    ana.act(&reopen, 200).await;
    ana.act(&reopen, 409).await;

    // Spam ends it for good: no reply, no reopening.
    let spam = conversation(&id, "/spam");
    let marked = bob.act(&spam, 200).await;
    assert_eq!(marked["events"], 1, "no rating request");
    bob.act(&spam, 409).await;
    ana.post(&messages, json!({"body": "hi"}), 409).await;
    ana.act(&reopen, 409).await;
    assert_eq!(ana.view(&id, &marked["position"]).await["status"], "spam");
}

async fn agents_hand_a_conversation_over(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, _, _) = app.widget_visitor().await;
    let (ana_id, ana_token) = app.support_agent().await;
    let (bob_id, bob_token) = app.support_agent().await;
    let (carl_id, carl_token) = app.agent(false).await;
    let ana = Session::new(&app, &ana_token);
    let bob = Session::new(&app, &bob_token);
    let carl = Session::new(&app, &carl_token);
    let admin = Session::new(&app, &app.admin);
    let id = ana.start_with(&customer).await;
    let path = |suffix: &str| conversation(&id, suffix);

    // Carl is not in customer support and takes no part: for him it does not exist.
    carl.put(&path("/follow"), Value::Null, 404).await;
    carl.post(&path("/messages"), json!({"body": "hi"}), 404)
        .await;

    ana.post(&path("/assign"), json!({"agent": ana_id}), 200)
        .await;
    ana.post(&path("/assign"), json!({"agent": ana_id}), 409)
        .await;
    ana.post(&path("/transfer"), json!({"to": bob_id}), 200)
        .await;
    // Ana takes it back over from Bob, then passes it back to the queue.
    ana.act(&path("/take-over"), 200).await;
    bob.act(&path("/return-to-queue"), 409).await;
    ana.act(&path("/return-to-queue"), 200).await;
    ana.act(&path("/take-over"), 409).await;
    let queue = json!({"queue": new_id()});
    bob.put(&path("/queue"), queue.clone(), 200).await;
    bob.put(&path("/queue"), queue, 409).await;

    // Invited, Carl takes part: he may follow and write.
    let carl_in = path(&format!("/participants/{carl_id}"));
    ana.put(&carl_in, Value::Null, 200).await;
    ana.put(&carl_in, Value::Null, 409).await;
    carl.put(&path("/follow"), Value::Null, 200).await;
    carl.put(&path("/follow"), Value::Null, 409).await;
    let note = json!({"body": "I know this customer", "visibility": "internal"});
    carl.post(&path("/messages"), note, 201).await;
    carl.delete(&path("/follow"), 200).await;
    carl.delete(&path("/follow"), 409).await;

    // Bob pins it ("lock as mine"): it is his, and nobody else takes it over or moves it.
    let in_a_week = json!({"auto_close_at": now_micros() + 7 * 24 * 3600 * 1_000_000});
    let pinned = bob.put(&path("/pin"), in_a_week.clone(), 200).await;
    assert_eq!(pinned["events"], 2, "assigned to Bob, and pinned");
    let shown = ana.view(&id, &pinned["position"]).await;
    assert_eq!(shown["pinned_by"], bob_id.as_str());
    assert_eq!(shown["assignee"], bob_id.as_str());
    let refused = ana.act(&path("/take-over"), 409).await;
    assert!(refused["detail"].as_str().unwrap().contains("pinned"));
    ana.post(&path("/transfer"), json!({"to": ana_id}), 409)
        .await;
    bob.put(&path("/pin"), json!({"auto_close_at": 1}), 409)
        .await;
    ana.delete(&path("/pin"), 409).await;
    bob.delete(&path("/pin"), 200).await;
    ana.act(&path("/take-over"), 200).await;

    // Carl removed no longer sees it; the one customer stays.
    ana.delete(&carl_in, 200).await;
    carl.put(&path("/follow"), Value::Null, 404).await;
    let last_customer = ana
        .delete(&path(&format!("/participants/{customer}")), 422)
        .await;
    assert!(
        last_customer["detail"]
            .as_str()
            .unwrap()
            .contains("customer")
    );

    // An admin without an agent id sees customer conversations, but pins nothing.
    admin.put(&path("/pin"), in_a_week, 403).await;
    admin.act(&path("/close"), 200).await;
}

async fn a_ticket_and_a_conversation_come_from_a_chat(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, _, _) = app.widget_visitor().await;
    let (_, token) = app.support_agent().await;
    let (bob_id, _) = app.support_agent().await;
    let agent = Session::new(&app, &token);
    let id = agent.start_with(&customer).await;
    let sent = agent
        .post(
            &conversation(&id, "/messages"),
            json!({"body": "The parcel arrived damaged"}),
            201,
        )
        .await;
    let message_id = sent["id"].as_str().unwrap().to_owned();

    let ticket_id = new_id();
    let tickets = conversation(&id, "/tickets");
    let request = json!({"ticket_id": ticket_id, "message_id": message_id,
                         "ticket_type": "task", "priority": "high"});
    let created = agent.post(&tickets, request.clone(), 201).await;
    assert_eq!(created["id"], ticket_id.as_str());
    assert_eq!(created["stream_version"], 1);
    assert_eq!(created["conversation_version"], 4);
    assert_eq!(created["events"], 2, "the ticket, and its link");
    // A retry finds both steps done.
    assert_eq!(agent.post(&tickets, request, 201).await["events"], 0);

    let path = format!(
        "/api/v1/tickets/{ticket_id}?position={}",
        created["position"]
    );
    let response = app.get_as(&token, &path).await;
    assert_eq!(response.status(), 200);
    let ticket: Value = response.json().await.unwrap();
    assert_eq!(ticket["title"], "Parcel", "prefilled from the subject");
    assert_eq!(ticket["ticket_type"], "task");
    assert_eq!(ticket["requester"], customer.as_str());
    let shown = agent.view(&id, &created["position"]).await;
    assert_eq!(shown["tickets"], json!([ticket_id]));

    let link = format!("{tickets}/{ticket_id}");
    agent.put(&link, Value::Null, 409).await;
    agent.delete(&link, 200).await;
    agent.delete(&link, 409).await;
    agent.put(&link, Value::Null, 200).await;
    let unknown = agent
        .put(&format!("{tickets}/{}", new_id()), Value::Null, 404)
        .await;
    assert!(unknown["detail"].as_str().unwrap().contains("ticket"));
    // From a message the conversation does not hold.
    agent
        .post(&tickets, json!({"message_id": new_id()}), 404)
        .await;

    // A new conversation from the message: same customer, named after its origin.
    let branch_path = conversation(&id, &format!("/messages/{message_id}/conversations"));
    let branch = agent.post(&branch_path, json!({}), 201).await;
    assert_eq!(branch["events"], 2, "started, and recorded on the origin");
    let branch_id = branch["id"].as_str().unwrap();
    let started = agent.view(branch_id, &branch["position"]).await;
    assert_eq!(started["subject"], "Re: Parcel");
    assert_eq!(started["origin"]["conversation_id"], id.as_str());

    // An internal conversation never makes a ticket.
    let internal = agent
        .post(
            "/api/v1/conversations",
            json!({"kind": "internal", "members": [bob_id], "subject": "Shift"}),
            201,
        )
        .await;
    let internal_tickets = conversation(internal["id"].as_str().unwrap(), "/tickets");
    agent.post(&internal_tickets, json!({}), 422).await;
}

async fn conflicts_are_409_with_the_current_version(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, _, _) = app.widget_visitor().await;
    let (_, token) = app.support_agent().await;
    let agent = Session::new(&app, &token);
    let id = agent.start_with(&customer).await;
    let close = conversation(&id, "/close");

    let (status, problem) = agent.post_if_match(&close, "1", Value::Null).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["current_version"], 2);
    let (status, _) = agent.post_if_match(&close, "yesterday", Value::Null).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, reply) = agent.post_if_match(&close, "\"2\"", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["stream_version"], 4, "closed, and a rating requested");
    assert_eq!(agent.act(&close, 409).await["status"], 409);

    // The workflows check If-Match on the conversation before writing anything.
    let tickets = conversation(&id, "/tickets");
    let (status, problem) = agent.post_if_match(&tickets, "2", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["current_version"], 4);

    // Without a client message id, a retried start still writes its first message once.
    let retry_safe = json!({"conversation_id": new_id(), "kind": "customer",
                            "customers": [customer], "message": {"body": "Hi"}});
    let first = agent
        .post("/api/v1/conversations", retry_safe.clone(), 201)
        .await;
    let again = agent.post("/api/v1/conversations", retry_safe, 201).await;
    assert_eq!(
        (first["events"].clone(), again["events"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(again["stream_version"], 2);
    // An id in use for another kind of conversation is not resumed.
    let (bob_id, _) = app.support_agent().await;
    let reuse = json!({"conversation_id": id, "kind": "internal", "members": [bob_id]});
    agent.post("/api/v1/conversations", reuse, 409).await;
}

async fn internal_conversations_exist_only_for_their_members(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, ana_token) = app.support_agent().await;
    let (bob_id, bob_token) = app.agent(false).await;
    let (carl_id, carl_token) = app.support_agent().await;
    let ana = Session::new(&app, &ana_token);
    let bob = Session::new(&app, &bob_token);
    let carl = Session::new(&app, &carl_token);
    let admin = Session::new(&app, &app.admin);

    let start = json!({"conversation_id": new_id(), "kind": "internal", "members": [bob_id],
                       "subject": "Rota", "message": {"body": "Who covers Sunday?"}});
    let started = ana.post("/api/v1/conversations", start.clone(), 201).await;
    let id = started["id"].as_str().unwrap().to_owned();
    let path = |suffix: &str| conversation(&id, suffix);
    bob.post(&path("/messages"), json!({"body": "I do"}), 201)
        .await;

    // To a non-member, support agent or admin alike, it is exactly like an unknown id.
    let unknown = conversation(&new_id(), "/messages");
    for (who, route) in [
        (&carl, path("/messages")),
        (&admin, path("/messages")),
        (&carl, unknown),
    ] {
        let problem = who.post(&route, json!({"body": "peek"}), 404).await;
        assert_eq!(problem["type"], "urn:parley:problem:not-found");
        assert_eq!(problem["detail"], "no such conversation");
    }
    for route in [
        path("/close"),
        path("/spam"),
        conversation(&new_id(), "/close"),
    ] {
        carl.act(&route, 404).await;
    }
    // Even a stale If-Match does not tell it exists.
    let (status, _) = carl.post_if_match(&path("/close"), "1", Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    carl.patch(&path(""), json!({"subject": "x"}), 404).await;
    // Starting another with its id cannot resume it: that id is taken.
    carl.post("/api/v1/conversations", start, 409).await;

    // Internal conversations have no spam, queue or assignee.
    ana.act(&path("/spam"), 422).await;
    ana.post(&path("/assign"), json!({"agent": bob_id}), 422)
        .await;

    // Once invited by a member, Carl sees it.
    let invited = bob
        .put(&path(&format!("/participants/{carl_id}")), Value::Null, 200)
        .await;
    carl.put(&path("/follow"), Value::Null, 200).await;
    assert_eq!(
        carl.view(&id, &invited["position"]).await["kind"],
        "internal"
    );
}

/// An agent without the support flag reaches a customer conversation only while it takes part
/// or follows: once removed, following it no more, it cannot act on it.
async fn a_removed_agent_loses_a_customer_conversation_it_followed(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, _, _) = app.widget_visitor().await;
    let (_, ana_token) = app.support_agent().await;
    let (dave_id, dave_token) = app.agent(false).await;
    let ana = Session::new(&app, &ana_token);
    let dave = Session::new(&app, &dave_token);
    let id = ana.start_with(&customer).await;
    let path = |suffix: &str| conversation(&id, suffix);
    dave.post(&path("/messages"), json!({"body": "hi"}), 404)
        .await;
    ana.put(&path(&format!("/participants/{dave_id}")), Value::Null, 200)
        .await;
    dave.put(&path("/follow"), Value::Null, 200).await;
    dave.post(&path("/messages"), json!({"body": "On it"}), 201)
        .await;
    ana.delete(&path(&format!("/participants/{dave_id}")), 200)
        .await;
    dave.post(&path("/messages"), json!({"body": "still here?"}), 404)
        .await;
}

async fn invalid_requests_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (customer, visitor, _) = app.widget_visitor().await;
    let (_, token) = app.support_agent().await;
    let agent = Session::new(&app, &token);
    let id = agent.start_with(&customer).await;
    let messages = conversation(&id, "/messages");

    let empty = agent.post(&messages, json!({"body": "  "}), 422).await;
    assert_eq!(empty["type"], "urn:parley:problem:validation");
    assert!(empty["detail"].as_str().unwrap().contains("body"));
    // A field the request does not have, or a value outside its enumeration: malformed.
    let unknown = agent
        .post(&messages, json!({"body": "hi", "colour": "red"}), 400)
        .await;
    assert_eq!(unknown["type"], "urn:parley:problem:bad-request");
    assert!(unknown["detail"].as_str().unwrap().contains("colour"));
    agent
        .post(
            &messages,
            json!({"body": "hi", "visibility": "secret"}),
            400,
        )
        .await;

    let malformed = app
        .client
        .post(format!("{}{messages}", app.address))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"body\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    agent
        .act("/api/v1/conversations/not-a-uuid/close", 400)
        .await;

    // Starting: who takes part must make sense.
    for (request, what) in [
        (json!({"kind": "customer", "customers": []}), "customers"),
        (
            json!({"kind": "customer", "customers": [new_id()]}),
            "does not exist",
        ),
        (json!({"kind": "internal", "members": []}), "two agents"),
        (
            json!({"kind": "internal", "channel": "email", "members": [new_id()]}),
            "channel",
        ),
        (
            json!({"kind": "customer", "customers": [customer], "message": {"body": ""}}),
            "body",
        ),
    ] {
        let problem = agent
            .post("/api/v1/conversations", request.clone(), 422)
            .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(what), "{request}: {problem}");
    }

    // Without a token, 401; with a visitor's, 403 (the widget is theirs).
    let anonymous = app
        .client
        .post(format!("{}{messages}", app.address))
        .json(&json!({"body": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let minted = app
        .mint(json!({"role": "visitor", "customer": customer}))
        .await;
    for token in [&visitor, &minted] {
        let visitor = Session::new(&app, token);
        visitor.post(&messages, json!({"body": "hi"}), 403).await;
        visitor.act(&conversation(&id, "/close"), 403).await;
        let start = json!({"kind": "customer", "customers": [customer]});
        visitor.post("/api/v1/conversations", start, 403).await;
    }
    // An integration writes as the system, but has no read marks of its own.
    let integration_token = app.mint(json!({"role": "integration"})).await;
    let integration = Session::new(&app, &integration_token);
    integration
        .post(&messages, json!({"body": "Bot"}), 201)
        .await;
    integration
        .post(&conversation(&id, "/read"), json!({}), 403)
        .await;
}

async fn the_routes_are_documented(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let document: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    let paths = &document["paths"];
    let id = "/api/v1/conversations/{conversation_id}";
    let message = "/api/v1/conversations/{conversation_id}/messages/{message_id}";
    for (path, method) in [
        ("/api/v1/conversations".to_owned(), "post"),
        (id.to_owned(), "patch"),
        (format!("{id}/messages"), "post"),
        (message.to_owned(), "patch"),
        (message.to_owned(), "delete"),
        (format!("{message}/unread"), "post"),
        (format!("{message}/conversations"), "post"),
        (format!("{id}/read"), "post"),
        (format!("{id}/close"), "post"),
        (format!("{id}/reopen"), "post"),
        (format!("{id}/spam"), "post"),
        (format!("{id}/assign"), "post"),
        (format!("{id}/transfer"), "post"),
        (format!("{id}/take-over"), "post"),
        (format!("{id}/return-to-queue"), "post"),
        (format!("{id}/queue"), "put"),
        (format!("{id}/participants/{{participant_id}}"), "put"),
        (format!("{id}/participants/{{participant_id}}"), "delete"),
        (format!("{id}/follow"), "put"),
        (format!("{id}/follow"), "delete"),
        (format!("{id}/pin"), "put"),
        (format!("{id}/pin"), "delete"),
        (format!("{id}/tickets"), "post"),
        (format!("{id}/tickets/{{ticket_id}}"), "put"),
        (format!("{id}/tickets/{{ticket_id}}"), "delete"),
    ] {
        let operation = &paths[&path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        assert_eq!(
            operation["tags"],
            json!(["conversations"]),
            "{method} {path}"
        );
    }
    // The rename shares its path with the views' read of the conversation: both are kept.
    assert!(paths[id]["get"].is_object(), "GET {id} is documented too");
    let params: Vec<(&str, &str)> = paths[&format!("{id}/close")]["post"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["in"].as_str().unwrap()))
        .collect();
    assert!(params.contains(&("conversation_id", "path")), "{params:?}");
    assert!(params.contains(&("If-Match", "header")), "{params:?}");
}

on_both_backends! {
    a_customer_conversation_from_reply_to_spam => journey_on_sqlite, journey_on_postgres;
    agents_hand_a_conversation_over => handover_on_sqlite, handover_on_postgres;
    a_ticket_and_a_conversation_come_from_a_chat => ticket_on_sqlite, ticket_on_postgres;
    conflicts_are_409_with_the_current_version => conflicts_on_sqlite, conflicts_on_postgres;
    internal_conversations_exist_only_for_their_members =>
        internal_on_sqlite, internal_on_postgres;
    a_removed_agent_loses_a_customer_conversation_it_followed =>
        removed_on_sqlite, removed_on_postgres;
    invalid_requests_are_refused => invalid_on_sqlite, invalid_on_postgres;
    the_routes_are_documented => openapi_on_sqlite, openapi_on_postgres;
}
