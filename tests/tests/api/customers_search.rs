//! Finding customers by the beginning of what is known of them (`GET /api/v1/customers?q=`):
//! names, e-mail addresses, phone numbers however written, merged customers once, pages, and
//! the refusals.

use crate::helpers::{Backend, TestApp, expect, problem, spawn_app};
use serde_json::{Value, json};

/// A customer met on `channel` at `value`, created by the admin: its id and the log position
/// of its creation.
async fn customer(
    app: &TestApp,
    channel: &str,
    value: &str,
    name: &str,
    email: Option<&str>,
) -> (String, u64) {
    let body = json!({"identity": {"channel": channel, "value": value}, "name": name,
                      "email": email});
    let reply = expect(
        app.post_as(&app.admin, "/api/v1/customers", &body).await,
        201,
    )
    .await;
    (
        reply["id"].as_str().expect("the customer's id").to_owned(),
        reply["position"].as_u64().expect("a position"),
    )
}

/// The ids of the customers a page holds.
fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["customer_id"].as_str().expect("an id"))
        .collect()
}

/// `GET /api/v1/customers?q=<q>` (already URL-encoded) as `token`, after `position`: the page.
async fn search(app: &TestApp, token: &str, q: &str, position: u64) -> Value {
    let path = format!("/api/v1/customers?q={q}&position={position}");
    expect(app.get_as(token, &path).await, 200).await
}

async fn support_agents_find_customers_by_what_they_start_with(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, support) = app.support_agent().await;
    let (ana, _) = customer(
        &app,
        "email",
        "ana.souza@example.com",
        "Ana Maria Souza",
        Some("ana.souza@example.com"),
    )
    .await;
    let (bruno, _) = customer(&app, "whatsapp", "+55 11 91234-0002", "Bruno Alves", None).await;
    let (bia, last) = customer(&app, "line", "U-bia", "Beatriz Souza", None).await;

    // A word of the name, the start of the whole name, in any case; each a summary. Both match
    // by the same word: ordered by id.
    let page = search(&app, &support, "SOUZ", last).await;
    let mut both = vec![ana.as_str(), bia.as_str()];
    both.sort();
    assert_eq!(ids(&page), both);
    assert!(page["next_cursor"].is_null());
    let found = &page["items"][usize::from(both[0] != ana)];
    assert_eq!(found["name"], "Ana Maria Souza");
    assert_eq!(found["email"], "ana.souza@example.com");
    assert!(found["merged_into"].is_null());
    assert_eq!(found["identities"][0]["channel"], "email");
    assert!(found["identities"][0]["account"].is_null());
    assert_eq!(found["social"], json!([]));
    assert!(found.get("merged").is_none(), "a summary: {found}");
    let page = search(&app, &support, "ana%20m", last).await;
    assert_eq!(ids(&page), vec![ana.as_str()]);
    // The e-mail address; the phone number without its plus sign, or with its punctuation.
    let page = search(&app, &support, "ana.souza%40ex", last).await;
    assert_eq!(ids(&page), vec![ana.as_str()]);
    let page = search(&app, &support, "5511912", last).await;
    assert_eq!(ids(&page), vec![bruno.as_str()]);
    let page = search(&app, &support, "%2B55%2011%2091234-0", last).await;
    assert_eq!(ids(&page), vec![bruno.as_str()]);
    // An identity value.
    let page = search(&app, &support, "u-b", last).await;
    assert_eq!(ids(&page), vec![bia.as_str()]);
    let page = search(&app, &support, "nobody", last).await;
    assert_eq!(page, json!({"items": [], "next_cursor": null}));

    // Merged into Ana, Beatriz is found as Ana, once, by either's name.
    let merged = expect(
        app.post_as(
            &app.admin,
            &format!("/api/v1/customers/{bia}/merge"),
            &json!({"into": ana}),
        )
        .await,
        200,
    )
    .await;
    let last = merged["position"].as_u64().expect("a position");
    let page = search(&app, &support, "souza", last).await;
    assert_eq!(ids(&page), vec![ana.as_str()]);
    let page = search(&app, &support, "beatriz", last).await;
    assert_eq!(ids(&page), vec![ana.as_str()]);
    assert_eq!(page["items"][0]["identities"].as_array().unwrap().len(), 2);

    // The customer's own page shows its social profiles (none here).
    let view = expect(
        app.get_as(&support, &format!("/api/v1/customers/{ana}"))
            .await,
        200,
    )
    .await;
    assert_eq!(view["social"], json!([]));
    assert_eq!(view["merged"], json!([bia]));
}

async fn a_long_answer_comes_in_pages(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut created = Vec::new();
    let mut last = 0;
    for n in 1..=5 {
        let (id, position) = customer(
            &app,
            "whatsapp",
            &format!("+1 555 0100{n}"),
            &format!("Carla {n}"),
            None,
        )
        .await;
        created.push(id);
        last = position;
    }
    // All match by the same word: ordered by id, each once.
    created.sort();
    let mut paged = Vec::new();
    let mut path = format!("/api/v1/customers?q=carla&limit=2&position={last}");
    let mut pages = 0;
    loop {
        let page = expect(app.get_as(&app.admin, &path).await, 200).await;
        pages += 1;
        let items = ids(&page);
        assert!(items.len() <= 2);
        paged.extend(items.into_iter().map(str::to_owned));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/customers?q=carla&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, created);
    // 20 by default.
    let page = search(&app, &app.admin, "carla", last).await;
    assert_eq!(ids(&page).len(), 5);
    assert!(page["next_cursor"].is_null());
}

async fn searches_that_cannot_be_answered_are_refused(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (_, support) = app.support_agent().await;
    // `q` of 1 to 100 characters.
    let long = "a".repeat(101);
    for path in [
        "/api/v1/customers?q=".to_owned(),
        "/api/v1/customers?q=%20%20".to_owned(),
        format!("/api/v1/customers?q={long}"),
    ] {
        problem(app.get_as(&support, &path).await, 422, "validation").await;
    }
    let longest = "a".repeat(100);
    let path = format!("/api/v1/customers?q={longest}");
    expect(app.get_as(&support, &path).await, 200).await;
    // A bad limit or cursor, a search and a lookup at once, neither.
    for path in [
        "/api/v1/customers?q=ana&limit=0",
        "/api/v1/customers?q=ana&limit=101",
        "/api/v1/customers?q=ana&cursor=first",
        "/api/v1/customers?q=ana&channel=whatsapp&value=1",
        "/api/v1/customers?channel=whatsapp&value=1&limit=2",
        "/api/v1/customers",
    ] {
        problem(app.get_as(&support, path).await, 400, "bad-request").await;
    }
    // Customer records are for support agents, admins and integrations.
    let (_, agent) = app.agent(false).await;
    problem(
        app.get_as(&agent, "/api/v1/customers?q=ana").await,
        403,
        "forbidden",
    )
    .await;
    let (_, visitor, _) = app.widget_visitor().await;
    let refused = app.get_as(&visitor, "/api/v1/customers?q=ana").await;
    assert_eq!(refused.status(), 403);
    let integration = app.mint(json!({"role": "integration"})).await;
    expect(
        app.get_as(&integration, "/api/v1/customers?q=ana").await,
        200,
    )
    .await;
}

/// The search shares its path with the lookup by identity: both are documented, and the
/// answer is either a customer or a page.
#[tokio::test]
async fn the_search_is_documented() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc = expect(app.get("/api/v1/openapi.json").await, 200).await;
    let get = &doc["paths"]["/api/v1/customers"]["get"];
    let params: Vec<&str> = get["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["q", "cursor", "limit", "channel", "value", "position"] {
        assert!(params.contains(&name), "{name} in {params:?}");
    }
    assert!(get["responses"]["422"].is_object());
    let schemas = &doc["components"]["schemas"];
    let answer = schemas["CustomersAnswer"].to_string();
    assert!(answer.contains("CustomerView") && answer.contains("CustomerPage"));
    for (schema, field) in [
        ("CustomerView", "social"),
        ("CustomerSummary", "social"),
        ("IdentityView", "account"),
        ("SocialProfileView", "user_id"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} is documented"
        );
    }
}

on_both_backends! {
    support_agents_find_customers_by_what_they_start_with =>
        found_by_what_they_start_with_on_sqlite, found_by_what_they_start_with_on_postgres;
    a_long_answer_comes_in_pages => pages_on_sqlite, pages_on_postgres;
    searches_that_cannot_be_answered_are_refused => refused_on_sqlite, refused_on_postgres;
}
