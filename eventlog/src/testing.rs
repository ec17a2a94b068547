//! Test support: a fresh PostgreSQL database per test.
//!
//! The server is found through `TEST_DATABASE_URL` (default: the local one on 127.0.0.1:5432).
//! When it cannot be reached, tests skip with a loud message, except under `CI=true`, where a
//! missing PostgreSQL fails the run.

use crate::scratch::ScratchDatabase;

/// The server URL tests create their databases through.
pub fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, empty database for one test, dropped after it. `None` (with a loud message) when
/// PostgreSQL is unreachable outside CI; under `CI=true` that panics, so CI never skips.
pub async fn postgres_database() -> Option<ScratchDatabase> {
    let server = server_url();
    match ScratchDatabase::create(&server, "parley_test").await {
        Ok(db) => Some(db),
        Err(error) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "PostgreSQL is required under CI but {server} is unusable: {error}"
            );
            eprintln!(
                "\n*** SKIPPING a PostgreSQL test: {server} is unusable ({error}). \
                 Set TEST_DATABASE_URL or start PostgreSQL. ***\n"
            );
            None
        }
    }
}
