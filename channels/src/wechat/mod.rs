//! WeChat Official Account: the SHA-1 signature on the subscription check and on every
//! `POST`, XML messages in plain or safe (AES-encrypted) mode, and replies through the
//! customer service API with a cached access token.

mod inbound;
mod outbound;

pub use inbound::*;
pub use outbound::*;
