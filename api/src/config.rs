//! Server settings. Defaults suit a first run on one machine: the embedded SQLite log in
//! `parley.db` in the working directory, listening on 127.0.0.1:8080. Every setting can be
//! given as a flag or as a `PARLEY_*` environment variable.

use clap::Args;
use std::net::SocketAddr;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "PARLEY_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// The event log: `sqlite:<path>` (created on first run) or `postgres://…`.
    #[arg(long, env = "PARLEY_DATABASE_URL", default_value = "sqlite:parley.db")]
    pub database_url: String,

    /// Connections for reads (SQLite) or for everything (PostgreSQL).
    #[arg(long, env = "PARLEY_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,

    /// SQLite only: `full` (every acknowledged append survives power loss) or `normal`.
    #[arg(long, env = "PARLEY_DURABILITY", default_value = "full")]
    pub durability: parley_eventlog::Durability,

    /// Requests per second each API token may make (bursts up to `--rate-burst`); 0 turns
    /// rate limiting off. Beyond it: 429 with `Retry-After`.
    #[arg(long, env = "PARLEY_RATE_LIMIT", default_value_t = 200)]
    pub rate_limit: u32,

    /// Requests a token may make at once before `--rate-limit` paces it.
    #[arg(long, env = "PARLEY_RATE_BURST", default_value_t = 400)]
    pub rate_burst: u32,

    /// Milliseconds a read model lets new events gather under load before applying them in
    /// one transaction (0: apply each stretch at once). An idle read model, or one a reader
    /// waits on with `?position=`, applies at once whatever this says.
    #[arg(long, env = "PARLEY_LIVE_LINGER_MS", default_value_t = 200)]
    pub live_linger_ms: u64,

    /// An admin token to accept (issued on start if the log does not know it yet). Without it,
    /// the first start on a log with no admin prints a new admin token once.
    #[arg(long, env = "PARLEY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl Config {
    /// Settings for tests: a given database, any free port on loopback.
    pub fn for_tests(database_url: impl Into<String>) -> Config {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            pool_size: 4,
            durability: parley_eventlog::Durability::Full,
            rate_limit: 0,
            rate_burst: 0,
            live_linger_ms: 200,
            admin_token: None,
        }
    }

    pub fn log_options(&self) -> parley_eventlog::LogOptions {
        parley_eventlog::LogOptions {
            pool_size: self.pool_size,
            durability: self.durability,
            ..parley_eventlog::LogOptions::default()
        }
    }

    /// The database URL with any password hidden, for logs.
    pub fn redacted_database_url(&self) -> String {
        redact(&self.database_url)
    }
}

/// Hides the password of a `scheme://user:password@host/...` URL.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://parley:s3cret@db:5432/parley"),
            "postgres://parley:***@db:5432/parley"
        );
        assert_eq!(super::redact("sqlite:parley.db"), "sqlite:parley.db");
        assert_eq!(
            super::redact("postgres://parley@db/parley"),
            "postgres://parley@db/parley"
        );
    }
}
