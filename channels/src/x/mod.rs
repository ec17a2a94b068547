//! X (Twitter) Account Activity API: the CRC subscription check, the
//! `X-Twitter-Webhooks-Signature` body signature, direct message events, and replies as
//! direct messages.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
