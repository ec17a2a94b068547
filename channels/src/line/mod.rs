//! LINE Messaging API: the `X-Line-Signature` body signature, webhook events (messages,
//! follows), and replies through the reply and push APIs. LINE has no subscription check: its
//! console sends a signed `POST` with no events.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
