//! WhatsApp Cloud API (Meta Graph API): Meta's subscription check (`hub.challenge`) and
//! `X-Hub-Signature-256` body signature, the `whatsapp_business_account` webhook (messages and
//! delivery statuses), and replies and media through the Graph API. Messenger shares the
//! verification half.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
