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
    _dir: Option<tempfile::TempDir>,
    _db: Option<ScratchDatabase>,
}

/// Starts the server on a fresh database. `None` when the backend is PostgreSQL and it is
/// unreachable outside CI (the skip is announced loudly; under `CI=true` it fails instead).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
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
    let app = Application::build(&Config::for_tests(url))
        .await
        .expect("the server starts");
    let address = format!("http://{}", app.local_addr().expect("bound address"));
    tokio::spawn(app.run_until(std::future::pending()));
    Some(TestApp {
        address,
        client: reqwest::Client::new(),
        _dir: dir,
        _db: db,
    })
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the server answers")
    }
}
