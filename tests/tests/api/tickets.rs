//! Tickets, social messaging, customers and the help desk over HTTP: the ticket lifecycle,
//! social tickets created from inbound messages (with their customer), WhatsApp's reply
//! window, customer merges, the help-desk switch and settings, and the refusals.

use crate::helpers::{Backend, TestApp, expect, new_id, now_micros, problem, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

/// `method path` with a token, an optional JSON body and an optional `If-Match`.
async fn call(
    app: &TestApp,
    method: Method,
    token: &str,
    path: &str,
    body: Option<Value>,
    if_match: Option<u64>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(version) = if_match {
        request = request.header("if-match", version.to_string());
    }
    request.send().await.expect("the server answers")
}

/// `GET path?position=` as `token`, expecting 200.
async fn read(app: &TestApp, token: &str, path: &str, position: u64) -> Value {
    let separator = if path.contains('?') { '&' } else { '?' };
    let response = app
        .get_as(token, &format!("{path}{separator}position={position}"))
        .await;
    expect(response, 200).await
}

fn position(reply: &Value) -> u64 {
    reply["position"].as_u64().expect("a position")
}

fn tags(ticket: &Value) -> Vec<&str> {
    let mut tags: Vec<&str> = ticket["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort_unstable();
    tags
}

async fn integration(app: &TestApp) -> String {
    app.mint(json!({"role": "integration"})).await
}

/// A WhatsApp message from `handle` relayed by an integration.
fn whatsapp(handle: &str, body: &str) -> Value {
    json!({
        "channel": "whatsapp",
        "account_id": "support-whatsapp",
        "customer_handle": handle,
        "body": body,
    })
}

async fn a_ticket_lives_through_its_status_flow(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (agent_id, agent) = app.agent(false).await;
    let (colleague_id, _) = app.agent(true).await;

    let created = app
        .post_as(
            &agent,
            "/api/v1/tickets",
            &json!({"title": "Refund for order 42", "description": "Charged twice",
                    "priority": "high", "tags": ["Billing"]}),
        )
        .await;
    let created = expect(created, 201).await;
    let id = created["id"].as_str().expect("the ticket id").to_owned();
    assert_eq!(created["stream_version"], 1);
    let path = format!("/api/v1/tickets/{id}");
    let ticket = read(&app, &agent, &path, position(&created)).await;
    assert_eq!(ticket["title"], "Refund for order 42");
    assert_eq!(ticket["status"], "new");
    assert_eq!(ticket["priority"], "high");
    assert_eq!(ticket["ticket_type"], "ticket");
    assert_eq!(tags(&ticket), ["billing"]);

    // Each field is one change; one already so changes nothing.
    let edited = call(
        &app,
        Method::PATCH,
        &agent,
        &path,
        Some(json!({"title": "Refund order 42", "priority": "high", "ticket_type": "task"})),
        Some(1),
    )
    .await;
    let edited = expect(edited, 200).await;
    assert_eq!(edited["events"], 2);
    assert_eq!(edited["stream_version"], 3);
    // A client that decided on an older version is refused, with the current one.
    let stale = call(
        &app,
        Method::PATCH,
        &agent,
        &path,
        Some(json!({"description": "Never mind"})),
        Some(1),
    )
    .await;
    let stale = problem(stale, 409, "conflict").await;
    assert_eq!(stale["current_version"], 3);
    // An invalid field refuses the whole edit.
    let invalid = call(
        &app,
        Method::PATCH,
        &agent,
        &path,
        Some(json!({"description": "Fine", "title": " "})),
        None,
    )
    .await;
    problem(invalid, 422, "validation").await;

    // New cannot jump to closed.
    let status = format!("{path}/status");
    let jump = call(
        &app,
        Method::PUT,
        &agent,
        &status,
        Some(json!({"status": "closed"})),
        None,
    )
    .await;
    problem(jump, 409, "conflict").await;

    // Assigning opens it.
    let assigned = call(
        &app,
        Method::PUT,
        &agent,
        &format!("{path}/assignee"),
        Some(json!({"agent": colleague_id})),
        None,
    )
    .await;
    assert_eq!(expect(assigned, 200).await["events"], 2);
    let again = call(
        &app,
        Method::PUT,
        &agent,
        &format!("{path}/assignee"),
        Some(json!({"agent": colleague_id})),
        None,
    )
    .await;
    assert_eq!(expect(again, 200).await["events"], 0, "PUT is idempotent");

    let comment = app
        .post_as(
            &agent,
            &format!("{path}/comments"),
            &json!({"body": "Checked with the bank", "visibility": "internal"}),
        )
        .await;
    let comment = expect(comment, 201).await;
    let tagged = call(
        &app,
        Method::PUT,
        &agent,
        &format!("{path}/tags/vip"),
        None,
        None,
    )
    .await;
    expect(tagged, 200).await;
    let untagged = call(
        &app,
        Method::DELETE,
        &agent,
        &format!("{path}/tags/billing"),
        None,
        None,
    )
    .await;
    expect(untagged, 200).await;
    let followed = call(
        &app,
        Method::PUT,
        &agent,
        &format!("{path}/follow"),
        None,
        None,
    )
    .await;
    let followed = expect(followed, 200).await;

    let ticket = read(&app, &agent, &path, position(&followed)).await;
    assert_eq!(ticket["title"], "Refund order 42");
    assert_eq!(ticket["ticket_type"], "task");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["assignee"], colleague_id.as_str());
    assert_eq!(ticket["followers"], json!([agent_id]));
    assert_eq!(tags(&ticket), ["vip"]);
    let entries = ticket["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["entry_id"], comment["id"]);
    assert_eq!(entries[0]["visibility"], "internal");

    for to in ["pending", "solved", "closed"] {
        let moved = call(
            &app,
            Method::PUT,
            &agent,
            &status,
            Some(json!({"status": to})),
            None,
        )
        .await;
        assert_eq!(expect(moved, 200).await["events"], 1, "to {to}");
    }
    // A closed ticket changes no more.
    let late = app
        .post_as(
            &agent,
            &format!("{path}/comments"),
            &json!({"body": "One more thing", "visibility": "public"}),
        )
        .await;
    problem(late, 409, "conflict").await;
}

async fn a_social_message_creates_a_customer_and_a_social_ticket(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let relay = integration(&app).await;
    let (_, agent) = app.support_agent().await;

    let mut first = whatsapp("+1 (555) 010-0001", "Hi, my parcel is late\nOrder 77");
    first["external_id"] = json!("wamid.1");
    first["customer_name"] = json!("Ana");
    let received = expect(
        app.post_as(&relay, "/api/v1/social/messages", &first).await,
        201,
    )
    .await;
    let ticket_id = received["id"].as_str().expect("the ticket id").to_owned();
    let customer_id = received["customer_id"]
        .as_str()
        .expect("the customer")
        .to_owned();
    let path = format!("/api/v1/tickets/{ticket_id}");
    let ticket = read(&app, &agent, &path, position(&received)).await;
    assert_eq!(ticket["title"], "Hi, my parcel is late");
    assert_eq!(ticket["requester"], customer_id.as_str());
    assert_eq!(tags(&ticket), ["messaging_support", "whatsapp"]);
    assert_eq!(ticket["source"]["kind"], "social");
    assert_eq!(ticket["channel_info"]["account_id"], "support-whatsapp");

    // The customer was created on first contact, through the normalised handle.
    let customer = read(
        &app,
        &agent,
        "/api/v1/customers?channel=whatsapp&value=%2B15550100001",
        position(&received),
    )
    .await;
    assert_eq!(customer["customer_id"], customer_id.as_str());
    assert_eq!(customer["name"], "Ana");

    // A redelivery is received once.
    let redelivered = app.post_as(&relay, "/api/v1/social/messages", &first).await;
    let redelivered = expect(redelivered, 200).await;
    assert_eq!(redelivered["id"], ticket_id.as_str());
    assert_eq!(redelivered["events"], 0);

    // A follow-up continues the ticket; the same handle is the same customer.
    let mut follow_up = whatsapp("+15550100001", "Any news?");
    follow_up["ticket_id"] = json!(ticket_id);
    follow_up["external_id"] = json!("wamid.2");
    let continued = app
        .post_as(&relay, "/api/v1/social/messages", &follow_up)
        .await;
    let continued = expect(continued, 200).await;
    assert_eq!(continued["customer_id"], customer_id.as_str());
    assert_eq!(continued["events"], 1);
    // Not through another customer's handle.
    let mut stranger = whatsapp("+15550100002", "Me too");
    stranger["ticket_id"] = json!(ticket_id);
    let stranger = app
        .post_as(&relay, "/api/v1/social/messages", &stranger)
        .await;
    problem(stranger, 409, "conflict").await;

    // In the unassigned notifier tab until the social tag goes.
    let unassigned = read(
        &app,
        &agent,
        "/api/v1/notifier/unassigned",
        position(&continued),
    )
    .await;
    assert_eq!(unassigned["items"][0]["ticket_id"], ticket_id.as_str());

    // A reply goes out through the receiving account and is reported delivered.
    let reply = app
        .post_as(
            &agent,
            &format!("{path}/replies"),
            &json!({"body": "It ships tomorrow"}),
        )
        .await;
    let reply = expect(reply, 201).await;
    assert_eq!(reply["delivery"], "pending");
    let reply_id = reply["id"].as_str().expect("the reply id");
    // Reported on a stale version: refused, and the reply stays pending.
    let stale = call(
        &app,
        Method::POST,
        &relay,
        &format!("{path}/replies/{reply_id}/delivered"),
        None,
        Some(1),
    )
    .await;
    problem(stale, 409, "conflict").await;
    let delivered = app
        .post_as(
            &relay,
            &format!("{path}/replies/{reply_id}/delivered"),
            &json!(null),
        )
        .await;
    expect(delivered, 200).await;
    let twice = app
        .post_as(
            &relay,
            &format!("{path}/replies/{reply_id}/delivered"),
            &json!(null),
        )
        .await;
    problem(twice, 409, "conflict").await;
    let unknown = app
        .post_as(
            &relay,
            &format!("{path}/replies/{}/failed", new_id()),
            &json!({"reason": "nope"}),
        )
        .await;
    problem(unknown, 404, "not-found").await;

    let untagged = call(
        &app,
        Method::DELETE,
        &agent,
        &format!("{path}/tags/messaging_support"),
        None,
        None,
    )
    .await;
    let untagged = expect(untagged, 200).await;
    let unassigned = read(
        &app,
        &agent,
        "/api/v1/notifier/unassigned",
        position(&untagged),
    )
    .await;
    assert_eq!(unassigned["items"], json!([]));
    let ticket = read(&app, &agent, &path, position(&untagged)).await;
    let kinds: Vec<&str> = ticket["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["customer_message", "reply"]);
    assert_eq!(ticket["entries"][1]["delivery"], "delivered");

    // A photo alone starts a ticket too; the file is kept as the customer's message.
    let photo = json!({
        "channel": "line",
        "account_id": "support-line",
        "customer_handle": "U4af4980629",
        "attachments": [{"name": "parcel.jpg", "content_type": "image/jpeg", "size": 2048,
                         "storage_ref": "files/parcel.jpg"}],
    });
    let photo = expect(
        app.post_as(&relay, "/api/v1/social/messages", &photo).await,
        201,
    )
    .await;
    assert_eq!(photo["events"], 2);
    assert_ne!(photo["customer_id"], customer_id.as_str());
    let ticket = read(
        &app,
        &agent,
        &format!(
            "/api/v1/tickets/{}",
            photo["id"].as_str().expect("the ticket id")
        ),
        position(&photo),
    )
    .await;
    assert_eq!(ticket["title"], "line message from U4af4980629");
    assert_eq!(tags(&ticket), ["line", "messaging_support"]);
    assert_eq!(ticket["entries"][0]["attachments"][0]["name"], "parcel.jpg");

    // Visitors never reach these routes; bad input is refused.
    let (_, visitor, _) = app.widget_visitor().await;
    let refused = app
        .post_as(
            &visitor,
            "/api/v1/social/messages",
            &whatsapp("+1555", "hi"),
        )
        .await;
    problem(refused, 403, "forbidden").await;
    let mut in_seconds = whatsapp("+15550100003", "hello");
    in_seconds["sent_at"] = json!(now_micros() / 1_000_000);
    let in_seconds = app
        .post_as(&relay, "/api/v1/social/messages", &in_seconds)
        .await;
    problem(in_seconds, 422, "validation").await;
    let empty = app
        .post_as(
            &relay,
            "/api/v1/social/messages",
            &whatsapp("+15550100004", " "),
        )
        .await;
    problem(empty, 422, "validation").await;
    let email = json!({"channel": "email", "account_id": "a", "customer_handle": "b",
                       "body": "c"});
    let email = app.post_as(&relay, "/api/v1/social/messages", &email).await;
    problem(email, 400, "bad-request").await;
}

async fn a_whatsapp_reply_after_the_window_fails_as_an_event(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let relay = integration(&app).await;
    let (_, agent) = app.support_agent().await;
    let mut old = whatsapp("+15550100009", "Hello?");
    old["sent_at"] = json!(now_micros() - 25 * 3_600 * 1_000_000);
    let received = app.post_as(&relay, "/api/v1/social/messages", &old).await;
    let ticket_id = expect(received, 201).await["id"]
        .as_str()
        .expect("the ticket id")
        .to_owned();
    let path = format!("/api/v1/tickets/{ticket_id}");

    let reply = app
        .post_as(
            &agent,
            &format!("{path}/replies"),
            &json!({"body": "Sorry!"}),
        )
        .await;
    let reply = expect(reply, 201).await;
    assert_eq!(reply["delivery"], "failed");
    assert_eq!(reply["events"], 2);
    let ticket = read(&app, &agent, &path, position(&reply)).await;
    let entry = &ticket["entries"][0];
    assert_eq!(entry["kind"], "reply");
    assert_eq!(entry["delivery"], "failed");
    assert!(
        entry["failure"]
            .as_str()
            .is_some_and(|f| f.contains("24 hours")),
        "{entry}"
    );
    let audit = app
        .get_as(&app.admin, &format!("/api/v1/audit/ticket-{ticket_id}"))
        .await;
    let audit = expect(audit, 200).await;
    let types: Vec<&str> = audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "TicketCreated",
            "OutboundReplyRequested",
            "OutboundReplyFailed"
        ]
    );
    assert_eq!(audit["entries"][0]["channel"], "whatsapp");

    // A new message from the customer opens the window again.
    let mut again = whatsapp("+15550100009", "Still there?");
    again["ticket_id"] = json!(ticket_id);
    expect(
        app.post_as(&relay, "/api/v1/social/messages", &again).await,
        200,
    )
    .await;
    let reply = app
        .post_as(&agent, &format!("{path}/replies"), &json!({"body": "Yes!"}))
        .await;
    assert_eq!(expect(reply, 201).await["delivery"], "pending");

    // A ticket without channel info has no account to reply through.
    let plain = app
        .post_as(&agent, "/api/v1/tickets", &json!({"title": "Plain"}))
        .await;
    let plain = expect(plain, 201).await["id"]
        .as_str()
        .expect("the ticket id")
        .to_owned();
    let reply = app
        .post_as(
            &agent,
            &format!("/api/v1/tickets/{plain}/replies"),
            &json!({"body": "Hello"}),
        )
        .await;
    problem(reply, 409, "conflict").await;
}

async fn customers_are_created_merged_and_unmerged(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.support_agent().await;
    let created = app
        .post_as(
            &agent,
            "/api/v1/customers",
            &json!({"identity": {"channel": "whatsapp", "value": "+15550200001"},
                    "name": "Bo"}),
        )
        .await;
    let a = expect(created, 201).await["id"]
        .as_str()
        .expect("the customer id")
        .to_owned();
    let again = app
        .post_as(
            &agent,
            "/api/v1/customers",
            &json!({"identity": {"channel": "whatsapp", "value": "+1 555 020 0001"}}),
        )
        .await;
    problem(again, 409, "conflict").await;
    let accented = app
        .post_as(
            &agent,
            "/api/v1/customers",
            &json!({"identity": {"channel": "email", "value": "josé@example.com"}}),
        )
        .await;
    problem(accented, 422, "validation").await;
    let created = app
        .post_as(
            &agent,
            "/api/v1/customers",
            &json!({"identity": {"channel": "email", "value": "bo@example.com"}}),
        )
        .await;
    let b = expect(created, 201).await["id"]
        .as_str()
        .expect("the customer id")
        .to_owned();

    let renamed = call(
        &app,
        Method::PATCH,
        &agent,
        &format!("/api/v1/customers/{a}"),
        Some(json!({"email": "bo@example.com"})),
        None,
    )
    .await;
    let renamed = expect(renamed, 200).await;
    let view = read(
        &app,
        &agent,
        &format!("/api/v1/customers/{a}"),
        position(&renamed),
    )
    .await;
    assert_eq!(view["name"], "Bo", "a field left out keeps its value");
    assert_eq!(view["email"], "bo@example.com");
    let identity = app
        .post_as(
            &agent,
            &format!("/api/v1/customers/{b}/identities"),
            &json!({"channel": "line", "value": "bo-line"}),
        )
        .await;
    expect(identity, 201).await;

    let merged = app
        .post_as(
            &agent,
            &format!("/api/v1/customers/{a}/merge"),
            &json!({"into": b}),
        )
        .await;
    let merged = expect(merged, 200).await;
    assert_eq!(merged["events"], 2);
    let view = read(
        &app,
        &agent,
        &format!("/api/v1/customers/{a}"),
        position(&merged),
    )
    .await;
    assert_eq!(view["merged_into"], b.as_str());
    // First contact through a merged customer's identity answers the survivor.
    let relay = integration(&app).await;
    let received = app
        .post_as(
            &relay,
            "/api/v1/social/messages",
            &whatsapp("+15550200001", "Hello again"),
        )
        .await;
    assert_eq!(expect(received, 201).await["customer_id"], b.as_str());

    let unmerged = app
        .post_as(
            &agent,
            &format!("/api/v1/customers/{a}/unmerge"),
            &json!({}),
        )
        .await;
    let unmerged = expect(unmerged, 200).await;
    let view = read(
        &app,
        &agent,
        &format!("/api/v1/customers/{a}"),
        position(&unmerged),
    )
    .await;
    assert!(view["merged_into"].is_null(), "{view}");
    let twice = app
        .post_as(
            &agent,
            &format!("/api/v1/customers/{a}/unmerge"),
            &json!({}),
        )
        .await;
    problem(twice, 409, "conflict").await;

    let unknown = app
        .post_as(
            &agent,
            &format!("/api/v1/customers/{a}/merge"),
            &json!({"into": new_id()}),
        )
        .await;
    problem(unknown, 404, "not-found").await;
    let stale = call(
        &app,
        Method::POST,
        &agent,
        &format!("/api/v1/customers/{a}/merge"),
        Some(json!({"into": b})),
        Some(1),
    )
    .await;
    problem(stale, 409, "conflict").await;
    let missing = call(
        &app,
        Method::PATCH,
        &agent,
        &format!("/api/v1/customers/{}", new_id()),
        Some(json!({"name": "Nobody"})),
        None,
    )
    .await;
    problem(missing, 404, "not-found").await;
}

async fn the_help_desk_switch_and_its_settings(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let online = call(
        &app,
        Method::PUT,
        &agent,
        "/api/v1/helpdesk/online",
        None,
        None,
    )
    .await;
    let online = expect(online, 200).await;
    assert_eq!(online["events"], 1);
    let again = call(
        &app,
        Method::PUT,
        &agent,
        "/api/v1/helpdesk/online",
        None,
        None,
    )
    .await;
    assert_eq!(expect(again, 200).await["events"], 0);
    let status = expect(app.get("/widget/v1/status").await, 200).await;
    assert_eq!(status["online"], true);

    // Settings are for admins.
    let hours = json!({"utc_offset_minutes": 60,
                       "days": [{"weekday": 1, "opens": 540, "closes": 1020},
                                {"weekday": 2, "opens": 540, "closes": 1020}]});
    let refused = call(
        &app,
        Method::PUT,
        &agent,
        "/api/v1/helpdesk/business-hours",
        Some(hours.clone()),
        None,
    )
    .await;
    problem(refused, 403, "forbidden").await;
    let set = call(
        &app,
        Method::PUT,
        &app.admin,
        "/api/v1/helpdesk/business-hours",
        Some(hours),
        None,
    )
    .await;
    expect(set, 200).await;
    let overlapping = json!({"utc_offset_minutes": 0,
                             "days": [{"weekday": 1, "opens": 540, "closes": 1020},
                                      {"weekday": 1, "opens": 600, "closes": 700}]});
    let overlapping = call(
        &app,
        Method::PUT,
        &app.admin,
        "/api/v1/helpdesk/business-hours",
        Some(overlapping),
        None,
    )
    .await;
    problem(overlapping, 422, "validation").await;
    let rules = call(
        &app,
        Method::PUT,
        &app.admin,
        "/api/v1/helpdesk/report-rules",
        Some(json!({"business_hours_only": true})),
        None,
    )
    .await;
    expect(rules, 200).await;
    let stale = call(
        &app,
        Method::PUT,
        &app.admin,
        "/api/v1/helpdesk/widget-messages",
        Some(json!({"online_message": "Hi!", "offline_message": "Bye!"})),
        Some(1),
    )
    .await;
    let stale = problem(stale, 409, "conflict").await;
    let current = stale["current_version"].as_u64().expect("the version");
    let messages = call(
        &app,
        Method::PUT,
        &app.admin,
        "/api/v1/helpdesk/widget-messages",
        Some(json!({"online_message": "Hi!", "offline_message": "Bye!"})),
        Some(current),
    )
    .await;
    expect(messages, 200).await;

    let offline = call(
        &app,
        Method::DELETE,
        &agent,
        "/api/v1/helpdesk/online",
        None,
        None,
    )
    .await;
    expect(offline, 200).await;
    let desk = expect(app.get_as(&agent, "/api/v1/helpdesk").await, 200).await;
    assert_eq!(desk["online"], false);
    assert_eq!(desk["offline_message"], "Bye!");
    assert_eq!(desk["business_hours_only"], true);
    assert_eq!(desk["business_hours"]["utc_offset_minutes"], 60);
    assert_eq!(desk["stream_version"], current + 2);
    let status = expect(app.get("/widget/v1/status").await, 200).await;
    assert_eq!(status["message"], "Bye!");

    let (_, visitor, _) = app.widget_visitor().await;
    problem(
        app.get_as(&visitor, "/api/v1/helpdesk").await,
        403,
        "forbidden",
    )
    .await;
}

async fn bad_requests_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let unknown = format!("/api/v1/tickets/{}", new_id());
    let missing = call(
        &app,
        Method::PUT,
        &agent,
        &format!("{unknown}/status"),
        Some(json!({"status": "open"})),
        None,
    )
    .await;
    problem(missing, 404, "not-found").await;
    let missing = call(
        &app,
        Method::PATCH,
        &agent,
        &unknown,
        Some(json!({"title": "x"})),
        None,
    )
    .await;
    problem(missing, 404, "not-found").await;
    let bad_id = call(
        &app,
        Method::PUT,
        &agent,
        "/api/v1/tickets/not-a-uuid/status",
        Some(json!({"status": "open"})),
        None,
    )
    .await;
    problem(bad_id, 400, "bad-request").await;

    let malformed = app
        .client
        .post(format!("{}/api/v1/tickets", app.address))
        .bearer_auth(&agent)
        .header("content-type", "application/json")
        .body("{\"title\":")
        .send()
        .await
        .expect("the server answers");
    problem(malformed, 400, "bad-request").await;
    let no_title = app
        .post_as(&agent, "/api/v1/tickets", &json!({"description": "x"}))
        .await;
    problem(no_title, 400, "bad-request").await;
    let unknown_field = app
        .post_as(
            &agent,
            "/api/v1/tickets",
            &json!({"title": "x", "colour": "red"}),
        )
        .await;
    problem(unknown_field, 400, "bad-request").await;
    let bad_tag = app
        .post_as(
            &agent,
            "/api/v1/tickets",
            &json!({"title": "x", "tags": ["two words"]}),
        )
        .await;
    problem(bad_tag, 422, "validation").await;
    let no_requester = app
        .post_as(
            &agent,
            "/api/v1/tickets",
            &json!({"title": "x", "requester": new_id()}),
        )
        .await;
    problem(no_requester, 422, "validation").await;
    let nothing = call(&app, Method::PATCH, &agent, &unknown, Some(json!({})), None).await;
    problem(nothing, 422, "validation").await;

    let (_, visitor, _) = app.widget_visitor().await;
    let refused = app
        .post_as(&visitor, "/api/v1/tickets", &json!({"title": "x"}))
        .await;
    problem(refused, 403, "forbidden").await;
    let anonymous = app
        .client
        .post(format!("{}/api/v1/tickets", app.address))
        .json(&json!({"title": "x"}))
        .send()
        .await
        .expect("the server answers");
    problem(anonymous, 401, "unauthorized").await;
    // Following is for oneself: a token that acts as no agent cannot.
    let created = app
        .post_as(&app.admin, "/api/v1/tickets", &json!({"title": "x"}))
        .await;
    let id = expect(created, 201).await["id"]
        .as_str()
        .expect("the ticket id")
        .to_owned();
    let relay = integration(&app).await;
    let follow = call(
        &app,
        Method::PUT,
        &relay,
        &format!("/api/v1/tickets/{id}/follow"),
        None,
        None,
    )
    .await;
    problem(follow, 403, "forbidden").await;
}

async fn the_routes_are_documented(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let document = expect(app.get("/api/v1/openapi.json").await, 200).await;
    let paths = &document["paths"];
    let documented = [
        ("/api/v1/tickets", &["post"][..]),
        ("/api/v1/tickets/{ticket_id}", &["get", "patch"]),
        ("/api/v1/tickets/{ticket_id}/status", &["put"]),
        ("/api/v1/tickets/{ticket_id}/assignee", &["put", "delete"]),
        ("/api/v1/tickets/{ticket_id}/follow", &["put", "delete"]),
        ("/api/v1/tickets/{ticket_id}/comments", &["post"]),
        ("/api/v1/tickets/{ticket_id}/tags/{tag}", &["put", "delete"]),
        (
            "/api/v1/tickets/{ticket_id}/channel-info",
            &["put", "delete"],
        ),
        ("/api/v1/tickets/{ticket_id}/replies", &["post"]),
        (
            "/api/v1/tickets/{ticket_id}/replies/{reply_id}/delivered",
            &["post"],
        ),
        (
            "/api/v1/tickets/{ticket_id}/replies/{reply_id}/failed",
            &["post"],
        ),
        ("/api/v1/social/messages", &["post"]),
        ("/api/v1/customers", &["get", "post"]),
        ("/api/v1/customers/{customer_id}", &["get", "patch"]),
        ("/api/v1/customers/{customer_id}/identities", &["post"]),
        ("/api/v1/customers/{customer_id}/merge", &["post"]),
        ("/api/v1/customers/{customer_id}/unmerge", &["post"]),
        ("/api/v1/helpdesk", &["get"]),
        ("/api/v1/helpdesk/online", &["put", "delete"]),
        ("/api/v1/helpdesk/widget-messages", &["put"]),
        ("/api/v1/helpdesk/business-hours", &["put"]),
        ("/api/v1/helpdesk/report-rules", &["put"]),
    ];
    for (path, methods) in documented {
        for method in methods {
            assert!(
                paths[path][method]["responses"].is_object(),
                "{method} {path} is documented"
            );
        }
    }
    // Every operation has its own id.
    let mut ids: Vec<&str> = paths
        .as_object()
        .expect("paths")
        .values()
        .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

on_both_backends! {
    a_ticket_lives_through_its_status_flow =>
        ticket_lifecycle_on_sqlite, ticket_lifecycle_on_postgres;
    a_social_message_creates_a_customer_and_a_social_ticket =>
        tickets_social_inbound_on_sqlite, tickets_social_inbound_on_postgres;
    a_whatsapp_reply_after_the_window_fails_as_an_event =>
        tickets_whatsapp_window_on_sqlite, tickets_whatsapp_window_on_postgres;
    customers_are_created_merged_and_unmerged =>
        tickets_customers_merge_on_sqlite, tickets_customers_merge_on_postgres;
    the_help_desk_switch_and_its_settings =>
        tickets_helpdesk_on_sqlite, tickets_helpdesk_on_postgres;
    bad_requests_are_refused =>
        tickets_refusals_on_sqlite, tickets_refusals_on_postgres;
    the_routes_are_documented =>
        tickets_openapi_on_sqlite, tickets_openapi_on_postgres;
}
