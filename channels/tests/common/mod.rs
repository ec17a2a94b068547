//! What the inbound and outbound tests share.

use parley_channels::{MediaRef, MediaSource};

/// A file of `kind` at `source`, without a name or a type.
pub fn media(kind: &str, source: MediaSource) -> MediaRef {
    MediaRef {
        kind: kind.to_owned(),
        source,
        name: None,
        content_type: None,
    }
}
