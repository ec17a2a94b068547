//! Parley's HTTP server and command line.
//!
//! Parts:
//! - [`cli`]: the `parley` subcommands (`serve`, `bench ...`);
//! - [`config`]: settings, from defaults then `PARLEY_*` environment variables then flags;
//! - [`app`]: [`app::Application`], which opens the log, binds the listener (port 0 works,
//!   for tests) and serves the router built by [`app::router`];
//! - [`problem`]: the one error type of the API, rendered as RFC 9457 problem+json;
//! - [`service`]: the application service that turns commands into appended events;
//! - [`workflows`]: actions that touch two aggregates (ticket from a conversation, ...);
//! - [`bench`]: the benchmarks behind `parley bench`.

pub mod app;
pub mod bench;
pub mod cli;
pub mod config;
pub mod problem;
pub mod service;
pub mod workflows;
