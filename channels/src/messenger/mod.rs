//! Facebook Messenger (Meta Graph API): the `page` webhook (messages, delivery and read
//! watermarks) and replies through the Send API. Verification is Meta's, the same as
//! WhatsApp's.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
