//! `spawn_app`: a running server on a fresh database, and a typed client for it.

use parley_api::app::Application;
use parley_api::config::Config;
use parley_eventlog::scratch::ScratchDatabase;

/// Which event log a test server runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A server running for one test, and what keeps its database alive.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    /// An admin token's secret (given to the server as its configured admin token).
    pub admin: String,
    /// The server's event log, for tests that write to it as another process would.
    pub database_url: String,
    /// Begins a graceful shutdown when sent (or dropped).
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

/// Starts the server on a fresh database. `None` when the backend is PostgreSQL and it is
/// unreachable outside CI (the skip is announced loudly; under `CI=true` it fails instead).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// A unique enough suffix without a UUID dependency.
fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}

impl TestApp {
    /// Another server process's worth on the same database (PostgreSQL: another node), with
    /// the same admin token.
    pub async fn another_node(&self) -> TestApp {
        let config = Config {
            admin_token: Some(self.admin.clone()),
            ..Config::for_tests(self.database_url.clone())
        };
        serve(config, self.admin.clone(), None, None).await
    }

    /// Shuts the server down gracefully; `true` if it stopped within `within`.
    pub async fn shut_down(&mut self, within: std::time::Duration) -> bool {
        drop(self.shutdown.take());
        match self.served.take() {
            Some(served) => tokio::time::timeout(within, served).await.is_ok(),
            None => true,
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the server answers")
    }

    /// `GET path` with a bearer token.
    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("the server answers")
    }

    /// `method path` with a bearer token and a JSON body.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    /// `POST path` with a bearer token and a JSON body.
    pub async fn post_as(
        &self,
        token: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.send_as(reqwest::Method::POST, token, path, body).await
    }
}

impl TestApp {
    /// Mints a token with the admin token (`POST /api/v1/tokens`) and returns its secret.
    /// `role` is the token's role object, e.g. `{"role": "agent", "agent": "<uuid>", "support": true}`.
    pub async fn mint(&self, role: serde_json::Value) -> String {
        let response = self.post_as(&self.admin, "/api/v1/tokens", &role).await;
        assert_eq!(response.status(), 201, "minting a token");
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        body["secret"].as_str().expect("the secret").to_owned()
    }

    /// `DELETE /api/v1/tokens/{token_id}` as the admin.
    pub async fn revoke(&self, token_id: &str) -> reqwest::Response {
        self.send_as(
            reqwest::Method::DELETE,
            &self.admin,
            &format!("/api/v1/tokens/{token_id}"),
            &serde_json::json!({}),
        )
        .await
    }

    /// A new support agent (sees "from customers"): its id and token.
    pub async fn support_agent(&self) -> (String, String) {
        self.agent(true).await
    }

    /// A new agent with or without the customer-support flag: its id and token.
    pub async fn agent(&self, support: bool) -> (String, String) {
        let id = format!("00000000-0000-7000-8000-{:012x}", next_number());
        let token = self
            .mint(serde_json::json!({"role": "agent", "agent": id, "support": support}))
            .await;
        (id, token)
    }
}

fn next_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Like [`spawn_app`], with the server's configuration adjusted first (e.g. a low
/// `rate_limit`).
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    let (url, dir, db) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}", dir.path().join("parley.db").display());
            (url, Some(dir), None)
        }
        Backend::Postgres => {
            let db = parley_eventlog::testing::postgres_database().await?;
            (db.url.clone(), None, Some(db))
        }
    };
    let admin = format!("parley_test_admin_{}", uuid_like());
    let mut config = Config {
        admin_token: Some(admin.clone()),
        ..Config::for_tests(url)
    };
    adjust(&mut config);
    Some(serve(config, admin, dir, db).await)
}

/// Starts a server with `config`, keeping what keeps its database alive.
async fn serve(
    config: Config,
    admin: String,
    dir: Option<tempfile::TempDir>,
    db: Option<ScratchDatabase>,
) -> TestApp {
    let app = Application::build(&config)
        .await
        .expect("the server starts");
    let address = format!("http://{}", app.local_addr().expect("bound address"));
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stop.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        admin,
        database_url: config.database_url,
        shutdown: Some(shutdown),
        served: Some(served),
        _dir: dir,
        _db: db,
    }
}

impl TestApp {
    /// A new widget visitor (`POST /widget/v1/visitors`, no token): its customer id, its
    /// token, and the log position of its creation.
    pub async fn widget_visitor(&self) -> (String, String, u64) {
        let response = self
            .client
            .post(format!("{}/widget/v1/visitors", self.address))
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 201, "creating a widget visitor");
        let body: serde_json::Value = response.json().await.expect("a JSON body");
        (
            body["customer_id"]
                .as_str()
                .expect("the customer id")
                .to_owned(),
            body["token"].as_str().expect("the token").to_owned(),
            body["position"].as_u64().expect("the position"),
        )
    }
}

/// Asserts the status and answers the JSON body (printed when the status is not the one
/// expected; `Null` for a body that is not JSON).
pub async fn expect(response: reqwest::Response, status: u16) -> serde_json::Value {
    let got = response.status().as_u16();
    let text = response.text().await.expect("a body");
    assert_eq!(got, status, "unexpected answer: {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

/// Asserts a problem+json answer of `status` and `kind` that names its request.
pub async fn problem(response: reqwest::Response, status: u16, kind: &str) -> serde_json::Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body = expect(response, status).await;
    assert_eq!(body["type"], format!("urn:parley:problem:{kind}"), "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    body
}

/// A fresh UUID (v7 layout) without a UUID dependency.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-7{:03x}-8{:03x}-{:012x}",
        millis >> 16,
        millis & 0xffff,
        (n >> 12) & 0xfff,
        n & 0xfff,
        0xc0ffee_u64 << 16 | (n & 0xffff)
    )
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}
