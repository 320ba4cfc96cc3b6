//! permessage-deflate (RFC 7692), sans-IO: which offer to accept, and
//! messages inflated and deflated a piece at a time.
//!
//! - [`negotiate`] reads the client's `Sec-WebSocket-Extensions` offers and
//!   agrees on parameters ([`Agreed`]) within the server's [`Policy`].
//! - [`inflate`] turns a compressed message's payload back into the message,
//!   within the message size limit, as its frames arrive.
//! - [`compress`] writes a whole compressed frame for an outgoing message.
//!
//! Memory, the single-threaded way: by default the server answers with
//! `server_no_context_takeover` and `client_no_context_takeover`, so every
//! message is compressed and inflated from a fresh state, and one
//! compressor and one inflater (reset per message) serve every connection.
//! A connection holds an inflater of its own only while one of its
//! compressed messages is incomplete — or for its whole life when context
//! takeover is configured.

pub(crate) mod compress;
pub(crate) mod inflate;
pub(crate) mod negotiate;
pub(crate) mod quick;

/// What a sync flush's output ends with: the sender drops it, the receiver
/// puts it back (RFC 7692 §7.2.1, §7.2.2).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What the server is willing to agree to, from `webSockets.compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Our compressor may keep its context from message to message
    /// (`contextTakeover`). When false the answer always carries
    /// `server_no_context_takeover`.
    pub server_takeover: bool,
    /// The client's compressor may keep its context (`contextTakeover`).
    /// When false the answer always carries `client_no_context_takeover`.
    pub client_takeover: bool,
    /// The largest window our compressor uses, 9..=15 (`windowBits`); the
    /// client may ask for less.
    pub server_window_bits: u8,
    /// The window the client is asked to keep to when its offer says it can
    /// (`client_max_window_bits`, without a value or with a larger one),
    /// 9..=15; 15 asks nothing.
    pub client_window_bits: u8,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            server_takeover: false,
            client_takeover: false,
            server_window_bits: 15,
            client_window_bits: 15,
        }
    }
}

/// The parameters both sides agreed on for one connection: what each
/// compressor must keep to. Copy-sized, so it can be part of the limits a
/// connection shares with others of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Agreed {
    /// Our compressor starts every message afresh.
    pub server_no_context_takeover: bool,
    /// The client's compressor starts every message afresh, so our inflater
    /// may be reset per message.
    pub client_no_context_takeover: bool,
    /// The largest window our compressor may use, 8..=15. zlib cannot
    /// compress with a 256-byte window, so at 8 the server sends its
    /// messages uncompressed (which RFC 7692 always allows).
    pub server_max_window_bits: u8,
    /// The largest window the client's compressor uses, 8..=15: 15 unless
    /// the offer named `client_max_window_bits` (8 only if it offered 8).
    pub client_max_window_bits: u8,
    /// The parameters the answer names, as the client must read them back
    /// (see [`Agreed::header_value`]).
    pub echo: Echo,
}

/// Which window-bits parameters the answer carries; the context takeover
/// ones are named exactly when their flag in [`Agreed`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Echo {
    /// Name `server_max_window_bits=N` (with [`Agreed::server_max_window_bits`]);
    /// set exactly when the offer named it.
    pub server_max_window_bits: bool,
    /// Name `client_max_window_bits=N` (with [`Agreed::client_max_window_bits`]);
    /// set when that is below 15, which only an offer naming it allows.
    pub client_max_window_bits: bool,
}

impl Policy {
    /// The policy `webSockets.compression` sets.
    pub(crate) fn of(config: &crate::config::Compression) -> Policy {
        Policy {
            server_takeover: config.context_takeover,
            client_takeover: config.context_takeover,
            server_window_bits: config.window_bits,
            client_window_bits: config.client_window_bits,
        }
    }
}

/// How one connection's outgoing messages may be compressed. One byte, so
/// it fits in the session beside its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Outgoing {
    /// Not negotiated (or never compressed: a 256-byte window, which zlib
    /// cannot keep to).
    #[default]
    Off,
    /// With the loop's shared compressor of this many window bits (9..=15),
    /// afresh for every message.
    Shared(u8),
    /// With the connection's own compressor, which keeps its context.
    Own,
}

impl Agreed {
    /// How the server may compress what it sends under these parameters,
    /// given whether it keeps its own context (`contextTakeover`).
    pub(crate) fn outgoing(&self, takeover: bool) -> Outgoing {
        match self.server_max_window_bits {
            8 => Outgoing::Off,
            _ if takeover && !self.server_no_context_takeover => Outgoing::Own,
            bits => Outgoing::Shared(bits),
        }
    }
}

/// What one loop shares for permessage-deflate: the inflaters, and the
/// compressors of messages sent afresh, with the config's settings.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Lent to a session while it decodes (so the events it hands out can
    /// borrow the shared inflater's output); made when first needed.
    pub inflaters: Option<Box<inflate::Inflaters>>,
    /// Compressors by window bits, 9..=15, made when first needed.
    compressors: [Option<Box<compress::Compressor>>; 7],
    /// The config: thresholds, level, window bits.
    pub settings: crate::config::Compression,
    /// Open connections that take messages compressed afresh
    /// ([`Outgoing::Shared`]): while there are none, a broadcast is not
    /// compressed for nobody.
    pub sharing: usize,
}

impl Shared {
    /// The shared state for `webSockets.compression`.
    pub(crate) fn new(settings: crate::config::Compression) -> Shared {
        Shared {
            settings,
            ..Shared::default()
        }
    }

    /// The shared compressor of `bits` window bits (9..=15).
    pub(crate) fn compressor(&mut self, bits: u8) -> &mut compress::Compressor {
        let bits = bits.clamp(9, 15);
        let level = self.settings.level;
        self.compressors[usize::from(bits - 9)]
            .get_or_insert_with(|| Box::new(compress::Compressor::new(level, bits, true)))
    }

    /// Counts a connection in or out of [`Shared::sharing`].
    pub(crate) fn count(&mut self, outgoing: Outgoing, joins: bool) {
        if let Outgoing::Shared(_) = outgoing {
            self.sharing = if joins {
                self.sharing + 1
            } else {
                self.sharing.saturating_sub(1)
            };
        }
    }

    /// Whether a message of `len` bytes is worth compressing.
    #[inline]
    pub(crate) fn worth(&self, len: usize) -> bool {
        len >= self.settings.threshold
    }
}
