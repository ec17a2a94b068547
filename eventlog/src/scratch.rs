//! Throw-away PostgreSQL databases, for tests and benchmarks: created empty on a server,
//! dropped (with any connections still open) when the handle is dropped.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

/// A database that lives as long as this handle.
pub struct ScratchDatabase {
    /// The URL of the new database.
    pub url: String,
    server_url: String,
    name: String,
}

impl ScratchDatabase {
    /// Creates `<prefix>_<random>` on the server `server_url` points at (any database of it).
    pub async fn create(server_url: &str, prefix: &str) -> Result<ScratchDatabase, sqlx::Error> {
        let mut conn = PgConnection::connect(server_url).await?;
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(ScratchDatabase {
            url: replace_database(server_url, &name),
            server_url: server_url.to_owned(),
            name,
        })
    }
}

/// `postgres://host/old?x` → `postgres://host/<name>?x`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{host_part}/{name}?{query}"),
        None => format!("{host_part}/{name}"),
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server_url.clone(), self.name.clone());
        // Drop may run inside a runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&server).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(AssertSqlSafe(drop)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced_and_options_kept() {
        let f = super::replace_database;
        assert_eq!(
            f("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            f("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(f("postgres://h", "x"), "postgres://h/x");
    }
}
