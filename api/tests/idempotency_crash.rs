//! A retry with an `Idempotency-Key` acts no second time, even when the server died between
//! acting and recording its answer: 32 clients post with keys (agents' messages into
//! conversations, visitors starting new ones), the real `parley serve` process is SIGKILLed
//! mid-load, restarted on the same database, and every request whose answer the client never
//! got is retried with its key. Then every keyed message is in the log exactly once: none
//! lost, none twice. Twice per backend.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

const CLIENTS: usize = 32;
const CONVERSATIONS: usize = 8;
/// Requests acknowledged in a round before the server is killed.
const ACKED_BEFORE_KILL: usize = 300;
const ROUNDS: usize = 2;

mod process;
use process::ServerProcess as Server;

async fn start(url: &str, admin: &str) -> Server {
    Server::start(url, Some(admin), &["--rate-limit", "0"]).await
}

/// One keyed request a client sends, and its body's marker (unique in the whole log).
#[derive(Debug, Clone)]
struct Keyed {
    key: String,
    path: String,
    token: String,
    body: Value,
    marker: String,
}

async fn send(client: &reqwest::Client, base: &str, request: &Keyed) -> Option<(u16, Value)> {
    let response = client
        .post(format!("{base}{}", request.path))
        .bearer_auth(&request.token)
        .header("idempotency-key", &request.key)
        .json(&request.body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.ok()?;
    Some((status, body))
}

async fn post(client: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let mut request = client.post(format!("{base}{path}")).json(&body);
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// The markers of every message in the log, with how many times each appears.
async fn messages_in_the_log(base: &str, admin: &str) -> HashMap<String, usize> {
    let client = reqwest::Client::new();
    let mut seen = HashMap::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(format!("{base}/api/v1/events?after={after}&limit=1000"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for event in page["events"].as_array().unwrap() {
            if event["type"] == "MessageSent"
                && let Some(marker) = event["data"]["body"]
                    .as_str()
                    .and_then(|body| body.lines().nth(1))
            {
                *seen.entry(marker.to_owned()).or_default() += 1;
            }
        }
        after = page["next_after"].as_u64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            return seen;
        }
    }
}

async fn retries_after_a_crash_act_once(url: &str) {
    let admin = format!("parley_crash_admin_{}", uuid::Uuid::new_v4().simple());
    let client = reqwest::Client::new();
    let mut server = start(url, &admin).await;

    // Agents, and customers with a conversation each.
    let mut agents = Vec::new();
    for n in 0..4 {
        let minted = post(
            &client,
            &server.base,
            &admin,
            "/api/v1/tokens",
            json!({"role": "agent", "agent": uuid::Uuid::now_v7(), "support": true, "label": format!("agent {n}")}),
        )
        .await;
        agents.push(minted["secret"].as_str().unwrap().to_owned());
    }
    let mut visitors = Vec::new();
    let mut conversations = Vec::new();
    for n in 0..CONVERSATIONS {
        let visitor = post(&client, &server.base, "", "/widget/v1/visitors", json!({})).await;
        let token = visitor["token"].as_str().unwrap().to_owned();
        let started = post(
            &client,
            &server.base,
            &token,
            "/widget/v1/conversations",
            json!({"body": format!("Hello\nsetup-{n}")}),
        )
        .await;
        conversations.push(started["id"].as_str().unwrap().to_owned());
        visitors.push(token);
    }

    let mut answered: HashMap<String, Keyed> = HashMap::new();
    let mut first_answers: HashMap<String, Value> = HashMap::new();
    for round in 0..ROUNDS {
        let acked = Arc::new(AtomicUsize::new(0));
        let enough = Arc::new(Notify::new());
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (client, base) = (client.clone(), server.base.clone());
            let (acked, enough) = (acked.clone(), enough.clone());
            let (agents, visitors, conversations) =
                (agents.clone(), visitors.clone(), conversations.clone());
            clients.push(tokio::spawn(async move {
                // Sends until the server stops answering; returns what was answered and the
                // one request in doubt.
                let mut done = Vec::new();
                for n in 0.. {
                    let marker = format!("r{round}-c{c}-n{n}");
                    let request = if c % 2 == 0 {
                        let conversation = &conversations[(c / 2 + n) % CONVERSATIONS];
                        Keyed {
                            key: format!("key-{marker}"),
                            path: format!("/api/v1/conversations/{conversation}/messages"),
                            token: agents[c % agents.len()].clone(),
                            body: json!({"body": format!("Reply\n{marker}")}),
                            marker,
                        }
                    } else {
                        Keyed {
                            key: format!("key-{marker}"),
                            path: "/widget/v1/conversations".to_owned(),
                            token: visitors[c % visitors.len()].clone(),
                            body: json!({"body": format!("New question\n{marker}")}),
                            marker,
                        }
                    };
                    match send(&client, &base, &request).await {
                        Some((status, body)) if (200..300).contains(&status) => {
                            done.push((request, body));
                            if acked.fetch_add(1, Ordering::Relaxed) + 1 == ACKED_BEFORE_KILL {
                                enough.notify_one();
                            }
                        }
                        Some((status, body)) => panic!("{status}: {body}"),
                        None => return (done, Some(request)),
                    }
                }
                (done, None)
            }));
        }
        enough.notified().await;
        server.kill().await;
        let mut in_doubt = Vec::new();
        for client in clients {
            let (done, doubt) = client.await.unwrap();
            for (request, body) in done {
                first_answers.insert(request.key.clone(), body);
                answered.insert(request.key.clone(), request);
            }
            in_doubt.extend(doubt);
        }
        assert_eq!(
            in_doubt.len(),
            CLIENTS,
            "every client had a request in flight"
        );

        server = start(url, &admin).await;
        // Every request in doubt is retried with its key, at once: no marker to wait for.
        for request in in_doubt {
            let (status, body) = send(&client, &server.base, &request)
                .await
                .expect("the restarted server answers");
            assert!((200..300).contains(&status), "{status}: {body}");
            first_answers.insert(request.key.clone(), body);
            answered.insert(request.key.clone(), request);
        }
        // Retries of requests answered before the crash replay their first answer.
        for request in answered.values().take(16) {
            let (status, body) = send(&client, &server.base, request).await.unwrap();
            assert!((200..300).contains(&status), "{status}: {body}");
            assert_eq!(body, first_answers[&request.key], "{}", request.key);
        }
    }

    let seen = messages_in_the_log(&server.base, &admin).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "acted twice: {twice:?}");
    let lost: Vec<_> = answered
        .values()
        .filter(|r| !seen.contains_key(&r.marker))
        .map(|r| &r.key)
        .collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(answered.len() >= ROUNDS * (ACKED_BEFORE_KILL + CLIENTS));
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_retries_after_a_sigkill_act_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("parley.db").display());
    retries_after_a_crash_act_once(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_retries_after_a_sigkill_act_once_on_postgres() {
    let Some(db) = parley_eventlog::testing::postgres_database().await else {
        return;
    };
    retries_after_a_crash_act_once(&db.url).await;
}
