//! Black-box tests: each starts the real server (on port 0, with a database of its own) and
//! talks HTTP to it. One binary, so it builds and links once.

mod conversations;
mod health;
mod helpers;
mod live;
mod ops;
mod tickets;
mod tokens;
mod views;
mod widget;
