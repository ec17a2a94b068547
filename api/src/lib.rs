//! Parley's HTTP server and command line.
//!
//! Parts:
//! - [`cli`]: the `parley` subcommands (`serve`, `rebuild`, `bench ...`);
//! - [`config`]: settings, from defaults then `PARLEY_*` environment variables then flags;
//! - [`app`]: [`app::Application`], which opens the log and read models, binds the listener
//!   (port 0 works, for tests), makes sure an admin token exists and serves [`http::router`];
//! - [`http`]: the routes, authentication and roles, live streams and the OpenAPI document;
//! - [`token_cli`]: `parley token create`;
//! - [`problem`]: the one error type of the API, rendered as RFC 9457 problem+json;
//! - [`service`], [`workflows`], [`ids`], [`files`]: the application layer, from `parley-app`
//!   (re-exported here);
//! - [`rebuild`]: `parley rebuild`, with a progress bar;
//! - [`bench`]: the benchmarks behind `parley bench`.

pub mod app;
pub mod bench;
mod bench_http;
mod bench_rebuild;
mod bench_streams;
mod bench_webhooks;
pub mod cli;
pub mod config;
pub mod http;
pub mod problem;
pub mod rebuild;
pub mod server;
pub mod token_cli;

pub use parley_app::{files, ids, service, workflows};
