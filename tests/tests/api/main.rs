//! Black-box tests: each starts the real server (on port 0, with a database of its own) and
//! talks HTTP to it. One binary, so it builds and links once.

/// One `#[tokio::test]` per backend for each scenario: `scenario => on_sqlite, on_postgres;`
/// (the calling module imports `Backend`).
macro_rules! on_both_backends {
    ($($scenario:ident => $sqlite:ident, $postgres:ident;)+) => {$(
        #[tokio::test]
        async fn $sqlite() {
            $scenario(Backend::Sqlite).await;
        }

        #[tokio::test]
        async fn $postgres() {
            $scenario(Backend::Postgres).await;
        }
    )+};
}

mod channels;
mod conversations;
mod customers_search;
mod files;
mod health;
mod helpers;
mod limits;
mod live;
mod ops;
mod tickets;
mod tokens;
mod views;
mod widget;
