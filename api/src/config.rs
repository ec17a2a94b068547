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

    /// Live streams (SSE) one token may hold open at once; 0: no limit. Beyond it: 429.
    #[arg(long, env = "PARLEY_STREAMS_PER_TOKEN", default_value_t = 8)]
    pub streams_per_token: usize,

    /// Live streams widget visitors from one address (an IPv6 /64) may hold open at once; 0:
    /// no limit. Beyond it: 429.
    #[arg(long, env = "PARLEY_STREAMS_PER_ADDRESS", default_value_t = 32)]
    pub streams_per_address: usize,

    /// Seconds a client has to send a request's head: from the moment it connects, and from the
    /// first byte of each later request on the connection. Beyond it the connection is closed.
    #[arg(long, env = "PARLEY_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a kept-alive connection may wait idle for its next request before it is closed.
    #[arg(long, env = "PARLEY_KEEP_ALIVE_TIMEOUT_SECS", default_value_t = 60)]
    pub keep_alive_timeout_secs: u64,

    /// Seconds a response (a live stream above all) may wait for its client to take more bytes,
    /// or a request body for its next bytes, before the connection is closed.
    #[arg(long, env = "PARLEY_SEND_TIMEOUT_SECS", default_value_t = 30)]
    pub send_timeout_secs: u64,

    /// Connections served at once; more wait in the listen backlog until one closes.
    #[arg(long, env = "PARLEY_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Largest file an upload may hold, in bytes (`POST /api/v1/files`, `/widget/v1/files`);
    /// beyond it: 413, and nothing is kept. Other request bodies have a limit of their own.
    #[arg(long, env = "PARLEY_MAX_FILE_BYTES", default_value_t = crate::files::DEFAULT_MAX_BYTES)]
    pub max_file_bytes: u64,

    /// The server's address as the social platforms reach it (e.g. `https://desk.example.com`):
    /// the channel accounts' webhook URLs are shown with it in front.
    #[arg(long, env = "PARLEY_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// The first pause before a reply whose send failed for a passing reason (a timeout, a
    /// 5xx, a 429 without `Retry-After`) is sent again, in milliseconds; it doubles, with
    /// jitter, for five sends in all.
    #[arg(long, env = "PARLEY_DISPATCH_BACKOFF_MS", default_value_t = 1000)]
    pub dispatch_backoff_ms: u64,

    /// Reactions not to run in this process (by name: `inbound`, `dispatcher`): benchmarks
    /// queue work for one, then measure it alone.
    #[arg(long, hide = true, value_delimiter = ',')]
    pub pause_reactions: Vec<String>,

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
            streams_per_token: 8,
            streams_per_address: 32,
            header_read_timeout_secs: 10,
            keep_alive_timeout_secs: 60,
            send_timeout_secs: 30,
            max_connections: 4096,
            max_file_bytes: crate::files::DEFAULT_MAX_BYTES,
            public_url: None,
            dispatch_backoff_ms: 1000,
            pause_reactions: Vec::new(),
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

    /// How connections are kept in check.
    pub fn connection_limits(&self) -> crate::server::ConnectionLimits {
        use std::time::Duration;
        crate::server::ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs.max(1)),
            keep_alive_timeout: Duration::from_secs(self.keep_alive_timeout_secs.max(1)),
            send_timeout: Duration::from_secs(self.send_timeout_secs.max(1)),
            max_connections: self.max_connections.max(1),
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
