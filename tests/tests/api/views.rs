//! Read models over HTTP: inbox sections and who sees them, read-your-writes with `?position=`,
//! conversation detail and its visibility, search, reports, audits, and bad parameters.

use crate::helpers::{Backend, TestApp, spawn_app};
use serde_json::{Value, json};

/// `GET path` as `token`, expecting `status`; the JSON body.
async fn get_json(app: &TestApp, token: &str, path: &str, status: u16) -> Value {
    let response = app.get_as(token, path).await;
    assert_eq!(response.status(), status, "GET {path}");
    response.json().await.expect("a JSON body")
}

/// Asserts a problem+json answer of `status` and `kind`.
async fn expect_problem(app: &TestApp, token: &str, path: &str, status: u16, kind: &str) {
    let response = app.get_as(token, path).await;
    assert_eq!(response.status(), status, "GET {path}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "GET {path}"
    );
    let body: Value = response.json().await.expect("a problem body");
    assert_eq!(
        body["type"],
        format!("urn:parley:problem:{kind}"),
        "GET {path}"
    );
}

/// `POST path` as `token`, expecting `status`; the JSON body.
async fn post_json(app: &TestApp, token: &str, path: &str, body: Value, status: u16) -> Value {
    let response = app.post_as(token, path, &body).await;
    assert_eq!(response.status(), status, "POST {path}");
    response.json().await.expect("a JSON body")
}

/// A customer met on WhatsApp at `phone` (created by the admin); its id.
async fn customer(app: &TestApp, phone: &str) -> String {
    let reply = post_json(
        app,
        &app.admin,
        "/api/v1/customers",
        json!({"identity": {"channel": "whatsapp", "value": phone}, "name": "Ana"}),
        201,
    )
    .await;
    reply["id"].as_str().expect("the customer's id").to_owned()
}

/// Today as the reports name days (UTC).
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or_default();
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The conversation ids of an inbox page.
fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["conversation_id"].as_str().expect("an id"))
        .collect()
}

async fn from_customers_is_for_support_agents(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let (_, support) = app.support_agent().await;

    expect_problem(
        &app,
        &agent,
        "/api/v1/inbox/from-customers",
        403,
        "forbidden",
    )
    .await;
    let counts = get_json(&app, &agent, "/api/v1/inbox/counts", 200).await;
    assert!(counts.get("from_customers").is_none(), "{counts}");
    assert_eq!(counts["mine"]["all"], 0);

    let counts = get_json(&app, &support, "/api/v1/inbox/counts", 200).await;
    assert_eq!(counts["from_customers"]["all"], 0);
    assert!(counts["from_customers"].get("unread").is_none(), "{counts}");
    let page = get_json(&app, &support, "/api/v1/inbox/from-customers", 200).await;
    assert_eq!(page["items"], json!([]));
    assert!(page["next_cursor"].is_null());

    // "Mine" and the notifier's own tabs need an agent; integrations read the shared lists.
    let integration = app.mint(json!({"role": "integration"})).await;
    expect_problem(&app, &integration, "/api/v1/inbox/mine", 403, "forbidden").await;
    expect_problem(
        &app,
        &integration,
        "/api/v1/notifier/summary",
        403,
        "forbidden",
    )
    .await;
    get_json(&app, &integration, "/api/v1/inbox/from-customers", 200).await;
    let page = get_json(&app, &integration, "/api/v1/notifier/unassigned", 200).await;
    assert_eq!(page["items"], json!([]));
    let summary = get_json(&app, &agent, "/api/v1/notifier/summary", 200).await;
    assert_eq!(summary["attention"], false);
    get_json(&app, &agent, "/api/v1/notifier/assigned-to-me", 200).await;
}

async fn bad_parameters_are_400s(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, support) = app.support_agent().await;
    for path in [
        "/api/v1/inbox/mine?limit=0",
        "/api/v1/inbox/mine?limit=101",
        "/api/v1/inbox/mine?cursor=nonsense",
        "/api/v1/inbox/mine?status=pending",
        "/api/v1/inbox/mine?unassigned=maybe",
        "/api/v1/inbox/mine?channel=pigeon",
        "/api/v1/inbox/mine?queue=not-a-uuid",
        "/api/v1/inbox/mine?no_such_filter=1",
        "/api/v1/inbox/mine?position=-1",
        "/api/v1/inbox/from-customers?unread=true",
        "/api/v1/notifier/unassigned?cursor=1.2",
        "/api/v1/notifier/unassigned?limit=1000",
        "/api/v1/conversations/not-a-uuid",
        "/api/v1/conversations/00000000-0000-7000-8000-000000000000?cursor=first",
        "/api/v1/tickets/00000000-0000-7000-8000-000000000000?limit=0",
        "/api/v1/tickets/42",
        "/api/v1/customers?channel=whatsapp",
        "/api/v1/customers/00000000-0000-7000-8000-000000000000/history?limit=x",
        "/api/v1/customers/00000000-0000-7000-8000-000000000000/history?q=%21%21",
        "/api/v1/customers/00000000-0000-7000-8000-000000000000/history?cursor=x",
        "/api/v1/search",
        "/api/v1/search?q=%3F%3F%3F",
        "/api/v1/search?q=hello&from=yesterday",
        "/api/v1/reports?from=2026-01-01",
        "/api/v1/reports?from=2026-02-30&to=2026-03-01",
        "/api/v1/reports?from=2026-03-02&to=2026-03-01",
        "/api/v1/reports?from=2020-01-01&to=2026-03-01",
        "/api/v1/reports?from=2026-03-01&to=2026-03-01&group_by=week",
        "/api/v1/reports/social?from=2026-03-01&to=tomorrow",
    ] {
        expect_problem(&app, &support, path, 400, "bad-request").await;
    }
    for path in [
        "/api/v1/audit/token-x?limit=0",
        "/api/v1/audit/token-x?cursor=first",
        "/api/v1/audit/helpdesk-main/state?position=1&at=2",
        "/api/v1/audit/token-x/state",
        "/api/v1/audit/helpdesk-main/state?at=noon",
    ] {
        expect_problem(&app, &app.admin, path, 400, "bad-request").await;
    }
    // Unknown things are 404s.
    let nobody = "00000000-0000-7000-8000-000000000000";
    for path in [
        format!("/api/v1/conversations/{nobody}"),
        format!("/api/v1/tickets/{nobody}"),
        format!("/api/v1/customers/{nobody}"),
        format!("/api/v1/customers/{nobody}/history"),
        "/api/v1/customers?channel=whatsapp&value=%2B15550001".to_owned(),
    ] {
        expect_problem(&app, &support, &path, 404, "not-found").await;
    }
    expect_problem(
        &app,
        &app.admin,
        "/api/v1/audit/ticket-none",
        404,
        "not-found",
    )
    .await;
    expect_problem(
        &app,
        &app.admin,
        "/api/v1/audit/helpdesk-main/state",
        404,
        "not-found",
    )
    .await;
}

async fn reports_answer(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let report = get_json(
        &app,
        &agent,
        "/api/v1/reports?from=2026-03-01&to=2026-03-07",
        200,
    )
    .await;
    assert_eq!(report["group_by"], "day");
    let rows = report["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 7, "one row per day, empty days included");
    assert_eq!(rows[0]["group"], "2026-03-01");
    assert_eq!(rows[0]["new_conversations"], 0);
    assert_eq!(rows[0]["first_response"]["count"], 0);

    let report = get_json(
        &app,
        &agent,
        "/api/v1/reports?from=2026-03-01&to=2026-03-07&group_by=channel&channel=whatsapp",
        200,
    )
    .await;
    assert_eq!(report["rows"], json!([]));
    let social = get_json(
        &app,
        &agent,
        "/api/v1/reports/social?from=2026-03-01&to=2026-03-07&channel=line",
        200,
    )
    .await;
    assert_eq!(social["from"], "2026-03-01");
    assert_eq!(social["rows"], json!([]));
}

async fn audits_show_who_did_what_and_are_for_admins(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (agent_id, agent) = app.support_agent().await;
    let agent_token = get_json(&app, &agent, "/api/v1/tokens/me", 200).await["token_id"].clone();
    let customer = customer(&app, "+1 555 0102").await;
    let started = post_json(
        &app,
        &agent,
        "/api/v1/conversations",
        json!({"kind": "customer", "subject": "Audit me", "customers": [customer],
               "message": {"body": "Hello"}}),
        201,
    )
    .await;
    let id = started["id"].as_str().unwrap();
    let response = app
        .client
        .post(format!(
            "{}/api/v1/conversations/{id}/messages",
            app.address
        ))
        .bearer_auth(&agent)
        .header("x-request-id", "audit-me-42")
        .json(&json!({"body": "A second message"}))
        .send()
        .await
        .expect("the server answers");
    assert_eq!(response.status(), 201);

    let stream = format!("conversation-{id}");
    let page = get_json(&app, &app.admin, &format!("/api/v1/audit/{stream}"), 200).await;
    assert_eq!(page["stream"], stream);
    let types: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["event_type"])
        .collect();
    assert_eq!(types, ["ConversationStarted", "MessageSent", "MessageSent"]);
    let entry = &page["entries"][2];
    assert_eq!(entry["version"], 3);
    assert_eq!(entry["request_id"], "audit-me-42");
    assert_eq!(entry["token_id"], agent_token);
    assert_eq!(entry["actor"], json!({"id": agent_id, "kind": "agent"}));
    assert_eq!(entry["channel"], "api");
    assert!(entry["recorded_at"].as_i64().unwrap() > 1_600_000_000_000_000);
    assert!(page["next_cursor"].is_null());

    // Paged by stream version.
    let first = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}?limit=2"),
        200,
    )
    .await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let rest = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}?limit=2&cursor={cursor}"),
        200,
    )
    .await;
    assert_eq!(rest["entries"][0]["version"], 3);
    assert!(rest["next_cursor"].is_null());

    // The state as it was after the start, and as it is now.
    let position = started["position"].as_u64().unwrap();
    let then = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}/state?position={position}"),
        200,
    )
    .await;
    assert_eq!(then["version"], 2);
    assert_eq!(then["state"]["aggregate"], "conversation");
    assert_eq!(then["state"]["status"], "open");
    assert_eq!(then["state"]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(then["state"]["customers"], json!([customer]));
    // As of a time: just before the second message was recorded, and at that moment.
    let second_at = entry["recorded_at"].as_i64().unwrap();
    let before = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}/state?at={}", second_at - 1),
        200,
    )
    .await;
    assert_eq!(before["version"], 2);
    assert_eq!(before["state"]["messages"].as_array().unwrap().len(), 1);
    let at_second = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}/state?at={second_at}"),
        200,
    )
    .await;
    assert_eq!(at_second["version"], 3);
    let now = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}/state"),
        200,
    )
    .await;
    assert_eq!(now["version"], 3);
    assert_eq!(
        now["state"]["messages"][1]["author"],
        format!("agent:{agent_id}")
    );
    expect_problem(
        &app,
        &app.admin,
        &format!("/api/v1/audit/{stream}/state?at=0"),
        404,
        "not-found",
    )
    .await;
    let customer_state = get_json(
        &app,
        &app.admin,
        &format!("/api/v1/audit/customer-{customer}/state"),
        200,
    )
    .await;
    assert_eq!(
        customer_state["state"]["identities"][0]["value"],
        "+15550102"
    );

    // Integrations audit too; agents may not.
    let integration = app.mint(json!({"role": "integration"})).await;
    get_json(&app, &integration, &format!("/api/v1/audit/{stream}"), 200).await;
    expect_problem(
        &app,
        &agent,
        &format!("/api/v1/audit/{stream}"),
        403,
        "forbidden",
    )
    .await;
    expect_problem(
        &app,
        &agent,
        &format!("/api/v1/audit/{stream}/state"),
        403,
        "forbidden",
    )
    .await;
}

async fn a_support_agent_sees_a_new_customer_chat(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let (_, support) = app.support_agent().await;
    let ana = customer(&app, "+1 555 0100").await;
    // A channel connector (an integration) opens the chat: no agent takes part yet.
    let connector = app.mint(json!({"role": "integration"})).await;
    let started = post_json(
        &app,
        &connector,
        "/api/v1/conversations",
        json!({"kind": "customer", "channel": "whatsapp", "subject": "Order 1234",
               "customers": [ana], "message": {"body": "Where is my parcel?"}}),
        201,
    )
    .await;
    let id = started["id"].as_str().unwrap();
    let position = started["position"].as_u64().unwrap();

    // Read-your-writes: with the command's position the new chat is there at once.
    let page = get_json(
        &app,
        &support,
        &format!("/api/v1/inbox/from-customers?position={position}"),
        200,
    )
    .await;
    assert_eq!(ids(&page), [id]);
    let item = &page["items"][0];
    assert_eq!(item["channel"], "whatsapp");
    assert_eq!(item["status"], "open");
    assert_eq!(item["awaiting_first_response"], true);
    assert_eq!(item["preview"], "Where is my parcel?");
    for (filters, found) in [
        (
            "unassigned=true&awaiting_first_response=true&status=open",
            true,
        ),
        ("channel=whatsapp", true),
        ("channel=line", false),
        ("status=closed", false),
        ("pinned=true", false),
    ] {
        let page = get_json(
            &app,
            &support,
            &format!("/api/v1/inbox/from-customers?{filters}&position={position}"),
            200,
        )
        .await;
        assert_eq!(!ids(&page).is_empty(), found, "{filters}");
    }
    let counts = get_json(
        &app,
        &support,
        &format!("/api/v1/inbox/counts?position={position}"),
        200,
    )
    .await;
    assert_eq!(counts["from_customers"]["all"], 1);
    assert_eq!(counts["from_customers"]["awaiting"], 1);
    assert_eq!(counts["from_customers"]["unassigned"], 1);

    // An agent without the support flag sees neither the section nor the chat.
    expect_problem(
        &app,
        &agent,
        "/api/v1/inbox/from-customers",
        403,
        "forbidden",
    )
    .await;
    let counts = get_json(&app, &agent, "/api/v1/inbox/counts", 200).await;
    assert!(counts.get("from_customers").is_none(), "{counts}");
    expect_problem(
        &app,
        &agent,
        &format!("/api/v1/conversations/{id}?position={position}"),
        404,
        "not-found",
    )
    .await;
    let detail = get_json(
        &app,
        &support,
        &format!("/api/v1/conversations/{id}?position={position}"),
        200,
    )
    .await;
    assert_eq!(detail["messages"][0]["body"], "Where is my parcel?");

    // Pages follow the cursor, newest activity first.
    let mut last = position;
    for n in 0..2 {
        let more = post_json(
            &app,
            &connector,
            "/api/v1/conversations",
            json!({"kind": "customer", "subject": format!("More {n}"), "customers": [ana]}),
            201,
        )
        .await;
        last = more["position"].as_u64().unwrap();
    }
    let first = get_json(
        &app,
        &support,
        &format!("/api/v1/inbox/from-customers?limit=2&position={last}"),
        200,
    )
    .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = get_json(
        &app,
        &support,
        &format!("/api/v1/inbox/from-customers?limit=2&cursor={cursor}"),
        200,
    )
    .await;
    assert_eq!(ids(&second), [id]);
    assert!(second["next_cursor"].is_null());

    // The customer: found by identity (normalised), with history searchable by keyword.
    let found = get_json(
        &app,
        &support,
        &format!("/api/v1/customers?channel=whatsapp&value=%2B1-555-0100&position={last}"),
        200,
    )
    .await;
    assert_eq!(found["customer_id"], ana);
    assert_eq!(found["identities"][0]["value"], "+15550100");
    let view = get_json(&app, &support, &format!("/api/v1/customers/{ana}"), 200).await;
    assert_eq!(view["name"], "Ana");
    let history = get_json(
        &app,
        &support,
        &format!("/api/v1/customers/{ana}/history?position={last}"),
        200,
    )
    .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 3);
    assert!(history.get("matches").is_none());
    assert!(history["next_cursor"].is_null());
    // Two at a time: a cursor to the rest, and the same items in the same order.
    let first = get_json(
        &app,
        &support,
        &format!("/api/v1/customers/{ana}/history?limit=2"),
        200,
    )
    .await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let rest = get_json(
        &app,
        &support,
        &format!("/api/v1/customers/{ana}/history?limit=2&cursor={cursor}"),
        200,
    )
    .await;
    assert!(rest["next_cursor"].is_null());
    let mut paged = first["items"].as_array().unwrap().clone();
    paged.extend(rest["items"].as_array().unwrap().iter().cloned());
    assert_eq!(&paged, history["items"].as_array().unwrap());
    let history = get_json(
        &app,
        &support,
        &format!("/api/v1/customers/{ana}/history?q=parcel&position={last}"),
        200,
    )
    .await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1);
    assert_eq!(history["items"][0]["id"], id);
    assert_eq!(history["matches"][0]["conversation_id"], id);
    let history = get_json(
        &app,
        &support,
        &format!("/api/v1/customers/{ana}/history?q=banana"),
        200,
    )
    .await;
    assert_eq!(history["items"], json!([]));
    expect_problem(
        &app,
        &agent,
        &format!("/api/v1/customers/{ana}"),
        403,
        "forbidden",
    )
    .await;

    // Reports count the new chats today.
    let day = today();
    let report = get_json(
        &app,
        &agent,
        &format!("/api/v1/reports?from={day}&to={day}&group_by=channel&position={last}"),
        200,
    )
    .await;
    let rows = report["rows"].as_array().unwrap();
    let whatsapp = rows
        .iter()
        .find(|r| r["group"] == "whatsapp")
        .expect("a row");
    assert_eq!(whatsapp["new_conversations"], 1);
}

async fn detail_and_search_follow_who_takes_part(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, ana_agent) = app.support_agent().await;
    let (bob_id, bob) = app.agent(false).await;
    let (_, carol) = app.support_agent().await;
    let (_, dave) = app.agent(false).await;
    let customer = customer(&app, "+1 555 0101").await;

    // A customer conversation Ana takes part in, with an internal note.
    let started = post_json(
        &app,
        &ana_agent,
        "/api/v1/conversations",
        json!({"kind": "customer", "subject": "Refund", "customers": [customer],
               "message": {"body": "Your refund is on its way"}}),
        201,
    )
    .await;
    let chat = started["id"].as_str().unwrap();
    let note = post_json(
        &app,
        &ana_agent,
        &format!("/api/v1/conversations/{chat}/messages"),
        json!({"body": "VIP customer, refund approved", "visibility": "internal"}),
        201,
    )
    .await;
    let position = note["position"].as_u64().unwrap();
    let detail = get_json(
        &app,
        &ana_agent,
        &format!("/api/v1/conversations/{chat}?position={position}"),
        200,
    )
    .await;
    let messages = detail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["visibility"], "internal");
    assert_eq!(messages[1]["body"], "VIP customer, refund approved");
    assert_eq!(messages[1]["message_id"], note["id"]);
    assert!(detail["next_cursor"].is_null());
    // One message at a time: a cursor to the next.
    let first = get_json(
        &app,
        &ana_agent,
        &format!("/api/v1/conversations/{chat}?limit=1"),
        200,
    )
    .await;
    assert_eq!(first["messages"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = get_json(
        &app,
        &ana_agent,
        &format!("/api/v1/conversations/{chat}?limit=1&cursor={cursor}"),
        200,
    )
    .await;
    assert_eq!(second["messages"][0]["message_id"], note["id"]);
    assert!(second["next_cursor"].is_null());
    let mine = get_json(
        &app,
        &ana_agent,
        &format!("/api/v1/inbox/mine?position={position}"),
        200,
    )
    .await;
    assert_eq!(ids(&mine), [chat]);

    // An internal conversation between Ana and Bob: nobody else sees it.
    let internal = post_json(
        &app,
        &ana_agent,
        "/api/v1/conversations",
        json!({"kind": "internal", "subject": "Handover", "members": [bob_id],
               "message": {"body": "Secret escalation plan"}}),
        201,
    )
    .await;
    let internal_id = internal["id"].as_str().unwrap();
    let position = internal["position"].as_u64().unwrap();
    let seen = get_json(
        &app,
        &bob,
        &format!("/api/v1/conversations/{internal_id}?position={position}"),
        200,
    )
    .await;
    assert_eq!(seen["kind"], "internal");
    for outsider in [&carol, &dave, &app.admin] {
        expect_problem(
            &app,
            outsider,
            &format!("/api/v1/conversations/{internal_id}?position={position}"),
            404,
            "not-found",
        )
        .await;
    }
    let bobs = get_json(
        &app,
        &bob,
        &format!("/api/v1/inbox/mine?position={position}"),
        200,
    )
    .await;
    assert_eq!(ids(&bobs), [internal_id]);

    // Search finds what each may see.
    let search = |token: &str, q: &str| {
        let path = format!("/api/v1/search?q={q}&position={position}");
        let token = token.to_owned();
        let app = &app;
        async move { get_json(app, &token, &path, 200).await["hits"].clone() }
    };
    let hits = search(&bob, "secret%20plan").await;
    assert_eq!(hits[0]["conversation_id"], internal_id);
    assert_eq!(search(&carol, "secret").await, json!([]));
    let hits = search(&carol, "refund").await;
    assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");
    assert_eq!(hits[0]["visibility"], "internal");
    assert_eq!(
        search(&dave, "refund").await,
        json!([]),
        "not his conversation"
    );
    let hits = search(&ana_agent, "VIP").await;
    assert_eq!(hits[0]["message_id"], note["id"]);

    // Pages of one: the two refund messages, newest first, then nothing more.
    let first = get_json(
        &app,
        &carol,
        &format!("/api/v1/search?q=refund&limit=1&position={position}"),
        200,
    )
    .await;
    assert_eq!(first["hits"].as_array().unwrap().len(), 1);
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second = get_json(
        &app,
        &carol,
        &format!("/api/v1/search?q=refund&limit=1&cursor={cursor}"),
        200,
    )
    .await;
    assert_eq!(second["hits"].as_array().unwrap().len(), 1);
    assert_ne!(
        second["hits"][0]["message_id"],
        first["hits"][0]["message_id"]
    );
    assert!(second["next_cursor"].is_null(), "{second}");
    expect_problem(
        &app,
        &carol,
        "/api/v1/search?q=refund&cursor=nonsense",
        400,
        "bad-request",
    )
    .await;
}

async fn tickets_show_in_detail_and_the_notifier(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, agent) = app.agent(false).await;
    let created = post_json(
        &app,
        &agent,
        "/api/v1/tickets",
        json!({"title": "Broken screen", "tags": ["messaging_support", "whatsapp"]}),
        201,
    )
    .await;
    let ticket = created["id"].as_str().unwrap();
    let position = created["position"].as_u64().unwrap();
    let detail = get_json(
        &app,
        &agent,
        &format!("/api/v1/tickets/{ticket}?position={position}"),
        200,
    )
    .await;
    assert_eq!(detail["title"], "Broken screen");
    assert_eq!(detail["status"], "new");
    let page = get_json(
        &app,
        &agent,
        &format!("/api/v1/notifier/unassigned?position={position}"),
        200,
    )
    .await;
    assert_eq!(page["items"][0]["ticket_id"], ticket);
    assert_eq!(page["items"][0]["customer_status"], "started");
    let summary = get_json(&app, &agent, "/api/v1/notifier/summary", 200).await;
    assert_eq!(summary["unassigned"], 1);
    assert_eq!(summary["attention"], true);
    let day = today();
    let social = get_json(
        &app,
        &agent,
        &format!("/api/v1/reports/social?from={day}&to={day}&position={position}"),
        200,
    )
    .await;
    assert_eq!(social["rows"][0]["new_tickets"], 1);
}

/// Every read route is in the OpenAPI document, and every schema it refers to is defined.
#[tokio::test]
async fn views_are_documented() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for path in [
        "/api/v1/inbox/mine",
        "/api/v1/inbox/from-customers",
        "/api/v1/inbox/counts",
        "/api/v1/notifier/assigned-to-me",
        "/api/v1/notifier/unassigned",
        "/api/v1/notifier/summary",
        "/api/v1/conversations/{conversation_id}",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/customers",
        "/api/v1/customers/{customer_id}",
        "/api/v1/customers/{customer_id}/history",
        "/api/v1/search",
        "/api/v1/reports",
        "/api/v1/reports/social",
        "/api/v1/audit/{stream}",
        "/api/v1/audit/{stream}/state",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "GET {path} is documented"
        );
    }
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "schema {name} is defined");
    }
}

on_both_backends! {
    from_customers_is_for_support_agents => views_from_customers_on_sqlite, views_from_customers_on_postgres;
    bad_parameters_are_400s => views_bad_parameters_on_sqlite, views_bad_parameters_on_postgres;
    reports_answer => views_reports_on_sqlite, views_reports_on_postgres;
    audits_show_who_did_what_and_are_for_admins => views_audit_on_sqlite, views_audit_on_postgres;
    a_support_agent_sees_a_new_customer_chat => views_new_chat_on_sqlite, views_new_chat_on_postgres;
    detail_and_search_follow_who_takes_part => views_detail_search_on_sqlite, views_detail_search_on_postgres;
    tickets_show_in_detail_and_the_notifier => views_tickets_on_sqlite, views_tickets_on_postgres;
}
