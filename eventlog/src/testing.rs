//! Test support: a fresh PostgreSQL database per test.
//!
//! The server is found through `TEST_DATABASE_URL` (default: the local one on 127.0.0.1:5432).
//! When it cannot be reached, tests skip with a loud message, except under `CI=true`, where a
//! missing PostgreSQL fails the run.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

/// The administrative URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for one test and is dropped after it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database. `None` (with a loud message) when PostgreSQL is not
    /// reachable outside CI; under `CI=true` that panics, so CI never silently skips.
    pub async fn create() -> Option<TestDatabase> {
        let admin = admin_url();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(conn) => conn,
            Err(error) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                assert!(
                    !ci,
                    "PostgreSQL is required under CI but {admin} is unreachable: {error}"
                );
                eprintln!(
                    "\n*** SKIPPING a PostgreSQL test: {admin} is unreachable ({error}). \
                     Set TEST_DATABASE_URL or start PostgreSQL. ***\n"
                );
                return None;
            }
        };
        let name = format!("parley_test_{}", Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("test database can be created");
        let _ = conn.close().await;
        let (base, _) = admin
            .rsplit_once('/')
            .expect("admin url has a database path");
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        // Drop may run inside a runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
