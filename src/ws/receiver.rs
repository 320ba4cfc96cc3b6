//! One connection's incoming side: the peer's frames in, events out. The
//! peer is a client (its frames are masked) unless [`Limits::from_server`]
//! says it is a server, one the gateway connected to (its frames are not).
//!
//! The caller owns the bytes. It hands [`Receiver::decode`] everything it has
//! not yet consumed, drops the consumed prefix, and calls again until told
//! `(0, None)`. Control frames are decoded only once whole (they are at most
//! 125 bytes); data frames are consumed as they arrive, so a huge frame never
//! has to sit in the caller's buffer, and a bad UTF-8 byte fails the
//! connection the moment it is seen.

use super::close::parse_close_payload;
use super::deflate::inflate::{Inflater, Inflaters, BLOCK};
use super::deflate::Agreed;
use super::error::WsError;
use super::frame::{parse_header, FrameHeader};
use super::mask::apply_mask;
use super::opcode::OpCode;
use super::utf8::Utf8Validator;
use std::rc::Rc;

/// Size limits and options for one connection's incoming messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The longest data frame payload accepted, in bytes.
    pub(crate) max_frame: u64,
    /// The longest message accepted, all its frames together, in bytes. Not
    /// applied when `streaming`, since then no message is ever held whole.
    pub(crate) max_message: u64,
    /// Whether text messages must be UTF-8. Close reasons always must.
    pub(crate) validate_utf8: bool,
    /// Hand out data as it arrives ([`Event::Fragment`]) instead of whole
    /// messages ([`Event::Message`]).
    pub(crate) streaming: bool,
    /// The peer is a server: its frames must not be masked (§5.1), where a
    /// client's must be.
    pub(crate) from_server: bool,
    /// permessage-deflate's parameters, when it was negotiated: RSV1 then
    /// marks a compressed message, inflated before it is handed out, and
    /// `max_message` limits its inflated size.
    pub(crate) deflate: Option<Agreed>,
}

impl Limits {
    /// The RSV bits a frame may carry, as they sit in its first byte.
    fn rsv(&self) -> u8 {
        if self.deflate.is_some() {
            super::deflate::compress::RSV1
        } else {
            0
        }
    }

    /// The peer's compressor keeps its context from message to message, so
    /// the connection needs an inflater of its own for as long as it lasts.
    fn takes_over(&self) -> bool {
        self.deflate.is_some_and(|d| !d.client_no_context_takeover)
    }
}

/// What one call to [`Receiver::decode`] produced. A compressed message is
/// handed out inflated, as if it had arrived so.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A whole message. Zero-copy (borrowing the caller's buffer) when it
    /// arrived as one unfragmented frame already complete in `buf`; otherwise
    /// borrowing the receiver's reassembly buffer.
    Message {
        /// A Text message (validated UTF-8 if so configured), not Binary.
        text: bool,
        /// The unmasked payload.
        data: &'a [u8],
    },
    /// Streaming mode only: a piece of a message as soon as it arrived (part
    /// of a frame's payload). A text piece may end inside a character; it is
    /// valid so far, but the message can still fail later.
    Fragment {
        /// The message is Text, not Binary.
        text: bool,
        /// The unmasked bytes; empty only for a `last` piece.
        data: &'a [u8],
        /// This is the message's first piece.
        first: bool,
        /// This piece ends the message.
        last: bool,
    },
    /// A Ping, with its payload to echo in the Pong.
    Ping(&'a [u8]),
    /// A Pong.
    Pong(&'a [u8]),
    /// A valid close frame from the peer.
    Close {
        /// The status code, if the payload had one.
        code: Option<u16>,
        /// The reason, empty if none was given.
        reason: &'a str,
    },
}

/// The header of a masked frame with a 7-bit length: two bytes and the key.
const SHORT_HEADER: usize = 6;

/// What a call returns: bytes consumed, and at most one event.
type Decoded<'a> = Result<(usize, Option<Event<'a>>), WsError>;

/// The incoming state machine of one connection.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// What this connection accepts: shared by every connection of the same
    /// kind, so each pays a pointer for it instead of three words.
    limits: Rc<Limits>,
    /// A message that did not arrive as one whole frame, while it lasts (and
    /// for one call after it is handed out). Boxed, so an idle connection
    /// pays one pointer for it.
    partial: Option<Box<Partial>>,
}

/// The state of a message that arrives in pieces.
#[derive(Debug, Default)]
struct Partial {
    /// The data message begun and not yet ended, if any.
    message: Option<Message>,
    /// The message so far (not used when streaming).
    buffer: Vec<u8>,
    /// Carries a text message's validation across pieces.
    utf8: Utf8Validator,
    /// The connection's own inflater: while a compressed message arrives in
    /// pieces, or for the connection's life when the peer takes over
    /// context (see [`Limits::takes_over`]).
    inflater: Option<Box<Inflater>>,
}

/// A data message in progress.
#[derive(Debug, Clone, Copy)]
struct Message {
    /// Text, not Binary.
    text: bool,
    /// The payload lengths its frame headers have declared so far.
    declared: u64,
    /// Streaming: a piece of it was handed out already.
    emitted: bool,
    /// Compressed (RSV1 on its first frame): its payload is inflated.
    compressed: bool,
    /// Inflated output is due without more input: the last step filled
    /// its block (streaming), or the message's tail is still to be fed.
    pending: bool,
    /// Its latest frame, whose header is consumed.
    frame: Frame,
}

/// The payload still to come of a frame whose header is consumed.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The frame ends the message.
    fin: bool,
    /// The key its payload is masked with.
    mask: [u8; 4],
    /// Payload bytes not yet consumed; 0 once the next header is due.
    remaining: u64,
    /// The payload offset of the next byte, modulo 4, to resume unmasking.
    phase: usize,
}

impl Receiver {
    /// A receiver with no message in progress, on limits of its own (the
    /// tests' and the fuzz targets' way in).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn new(limits: Limits) -> Receiver {
        Receiver::shared(Rc::new(limits))
    }

    /// A receiver with no message in progress, on limits shared with others.
    pub(crate) fn shared(limits: Rc<Limits>) -> Receiver {
        Receiver {
            limits,
            partial: None,
        }
    }

    /// Lowers this connection's frame and message limits to these, each
    /// only where it is lower than what it accepts now: the buffers and the
    /// inflater's output bound (`room`) were sized for the shared limits,
    /// and a message under way is held to the new ones from its next frame.
    #[cold]
    pub(crate) fn tighten(&mut self, max_frame: u64, max_message: u64) {
        let limits = Limits {
            max_frame: max_frame.min(self.limits.max_frame),
            max_message: max_message.min(self.limits.max_message),
            ..*self.limits
        };
        if limits != *self.limits {
            // The connection's own copy from now on; the shared one stays.
            self.limits = Rc::new(limits);
        }
    }

    /// Whether compressed messages may arrive (permessage-deflate was negotiated).
    #[inline]
    pub(crate) fn inflates(&self) -> bool {
        self.limits.deflate.is_some()
    }

    /// The data message in progress, if any.
    fn message(&self) -> Option<Message> {
        self.partial.as_ref().and_then(|p| p.message)
    }

    /// The state of a message arriving in pieces, made when first needed.
    fn partial(&mut self) -> &mut Partial {
        self.partial.get_or_insert_with(Box::default)
    }

    /// Decodes from the front of `buf`; unmasks IN PLACE (hence `&mut`).
    /// Returns how many bytes were consumed and at most one event.
    ///
    /// `(0, None)` means "need more bytes and nothing was consumed": the
    /// caller keeps the unconsumed tail and calls again when more arrive. Any
    /// other result asks to be called again with the rest. After an error or
    /// a Close event the receiver is done: the caller closes.
    ///
    /// `inflaters` serve compressed messages (permessage-deflate): whole
    /// ones inflate with the shared inflater, into its buffer.
    pub(crate) fn decode<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        inflaters: &'a mut Lent,
    ) -> Decoded<'a> {
        if self.message().is_none() {
            self.end_message();
            if let Some((text, mask, end)) = self.short_frame(buf) {
                let event = self.whole_frame(text, mask, &mut buf[SHORT_HEADER..end])?;
                return Ok((end, Some(event)));
            }
            if self.limits.from_server {
                if let Some(short) = self.short_server_message(buf) {
                    let (text, payload) = short?;
                    let end = payload.end;
                    let data = &buf[payload];
                    let event = if self.limits.streaming {
                        Event::Fragment {
                            text,
                            data,
                            first: true,
                            last: true,
                        }
                    } else {
                        Event::Message { text, data }
                    };
                    return Ok((end, Some(event)));
                }
            }
        }
        if let Some(message) = self
            .message()
            .filter(|m| m.frame.remaining > 0 || m.pending)
        {
            return self.payload(message, buf, inflaters);
        }
        self.frame(buf, inflaters)
    }

    /// Lets go of the last message handed out of the receiver's own buffer,
    /// if it is over: what an idle connection holds is its context at most.
    #[inline]
    pub(crate) fn settle(&mut self) {
        if self.partial.is_some() && self.message().is_none() {
            self.end_message();
        }
    }

    /// The last message may have been lent out of the buffer; it is over.
    /// Only an inflater that keeps the peer's context outlives it.
    fn end_message(&mut self) {
        match &mut self.partial {
            Some(p) if p.inflater.is_some() && self.limits.takes_over() => {
                p.buffer = Vec::new();
            }
            _ => self.partial = None,
        }
    }

    /// Decodes the frame whose header is at the front of `buf`.
    fn frame<'a>(&'a mut self, buf: &'a mut [u8], inflaters: &'a mut Lent) -> Decoded<'a> {
        let Some(header) = parse_header(buf, self.limits.rsv())? else {
            return Ok((0, None));
        };
        let mask = self.key(&header)?;
        match header.opcode {
            OpCode::Ping => control(&header, mask, buf, |p| Ok(Event::Ping(p))),
            OpCode::Pong => control(&header, mask, buf, |p| Ok(Event::Pong(p))),
            OpCode::Close => control(&header, mask, buf, close_event),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                self.data_frame(&header, mask, buf, inflaters)
            }
        }
    }

    /// The key to unmask a frame's payload with, if the frame is masked as
    /// the peer's side must: a server's unmasked payload takes the zero key.
    fn key(&self, header: &FrameHeader) -> Result<[u8; 4], WsError> {
        match (header.mask, self.limits.from_server) {
            (Some(key), false) => Ok(key),
            (None, true) => Ok([0; 4]),
            (None, false) => Err(WsError::Unmasked),
            (Some(_), true) => Err(WsError::Masked),
        }
    }

    /// The common case on its own: a whole short message (see
    /// `short_frame`) when not streaming, unmasked in place. Returns whether
    /// it is Text and where its payload lies in `buf` (the frame ends with
    /// it); `None` leaves everything else to [`Receiver::decode`].
    #[inline(always)]
    pub(crate) fn short_message(
        &self,
        buf: &mut [u8],
    ) -> Option<Result<(bool, std::ops::Range<usize>), WsError>> {
        if self.partial.is_some() || self.limits.streaming {
            return None;
        }
        let (text, mask, end) = self.short_frame(buf)?;
        let unmasked = self.unmask_whole(text, mask, &mut buf[SHORT_HEADER..end]);
        Some(unmasked.map(|()| (text, SHORT_HEADER..end)))
    }

    /// `short_frame` for a server's frames (a gateway's downstream leg):
    /// a whole, unfragmented, unmasked Text or Binary frame of at most 125
    /// bytes, whose two-byte header is all there is before the payload. A
    /// masked one is left to the general path, which refuses it.
    #[inline(never)]
    fn short_server_message(
        &self,
        buf: &[u8],
    ) -> Option<Result<(bool, std::ops::Range<usize>), WsError>> {
        let (&[first, len], rest) = buf.split_first_chunk::<2>()?;
        let text = match first {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        let fits = u64::from(len) <= self.limits.max_frame.min(self.limits.max_message);
        if len > 125 || usize::from(len) > rest.len() || !fits {
            return None;
        }
        let end = 2 + usize::from(len);
        if text && self.limits.validate_utf8 && std::str::from_utf8(&buf[2..end]).is_err() {
            return Some(Err(WsError::InvalidUtf8));
        }
        Some(Ok((text, 2..end)))
    }

    /// The most common frame of all: a whole, unfragmented, masked Text or
    /// Binary frame of at most 125 bytes, with no message in progress.
    /// Returns whether it is Text, its key and where it ends, so it can be
    /// decoded without the general path; `None` leaves anything else,
    /// including every error, to that path. A server's frames are never
    /// taken: a masked one is an error, an unmasked one has no key to skip.
    #[inline]
    fn short_frame(&self, buf: &[u8]) -> Option<(bool, [u8; 4], usize)> {
        let (&[first, second, k0, k1, k2, k3], rest) = buf.split_first_chunk::<SHORT_HEADER>()?;
        // FIN, no RSV bits, Text (1) or Binary (2).
        let text = match first {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        // Masked, with the length in the 7-bit field.
        let len = second ^ 0x80;
        let fits = u64::from(len) <= self.limits.max_frame.min(self.limits.max_message);
        (len <= 125 && usize::from(len) <= rest.len() && fits && !self.limits.from_server)
            .then_some((text, [k0, k1, k2, k3], SHORT_HEADER + usize::from(len)))
    }

    /// True while a compressed message has inflated output to hand out that
    /// needs no more input (a streaming handler's piece filled its block).
    #[inline]
    pub(crate) fn draining(&self) -> bool {
        self.message()
            .is_some_and(|m| m.pending && m.frame.remaining == 0)
    }

    /// True while the receiver keeps any state of a message.
    #[cfg(test)]
    pub(crate) fn holds_message(&self) -> bool {
        self.partial.is_some()
    }

    /// True while a data message is in progress: begun, not yet ended.
    #[cfg(test)]
    pub(crate) fn in_message(&self) -> bool {
        self.message().is_some()
    }

    /// Starts a data frame: zero-copy if it is a whole message already in
    /// `buf`, else consumes its header and whatever payload is there.
    fn data_frame<'a>(
        &'a mut self,
        header: &FrameHeader,
        mask: [u8; 4],
        buf: &'a mut [u8],
        inflaters: &'a mut Lent,
    ) -> Decoded<'a> {
        let message = self.next_message(header, mask)?;
        let whole = header.fin && self.message().is_none();
        if message.compressed && header.opcode != OpCode::Continuation {
            let shared = !self.limits.streaming && !self.limits.takes_over();
            if let Some(end) = whole_frame_end(header, buf.len()).filter(|_| whole && shared) {
                let payload = &mut buf[header.header_len..end];
                let event = self.whole_compressed(message.text, mask, payload, inflaters)?;
                return Ok((end, Some(event)));
            }
            self.start_inflating(inflaters);
        } else if whole {
            if let Some(end) = whole_frame_end(header, buf.len()) {
                let event =
                    self.whole_frame(message.text, mask, &mut buf[header.header_len..end])?;
                return Ok((end, Some(event)));
            }
        }
        let (consumed, event) = self.payload(message, &mut buf[header.header_len..], inflaters)?;
        Ok((header.header_len + consumed, event))
    }

    /// The most a message may inflate to before it is over the limit: the
    /// limit and one byte.
    fn room(&self) -> usize {
        usize::try_from(self.limits.max_message.saturating_add(1)).unwrap_or(usize::MAX)
    }

    /// A compressed one-frame message all in `payload`: inflated by the
    /// shared inflater, from a fresh state, into its buffer.
    fn whole_compressed<'a>(
        &self,
        text: bool,
        mask: [u8; 4],
        payload: &mut [u8],
        inflaters: &'a mut Lent,
    ) -> Result<Event<'a>, WsError> {
        apply_mask(payload, mask, 0);
        let room = self.room();
        let (inflater, out) = lent(inflaters).shared();
        let progress = inflater.inflate(payload, true, out, room)?;
        if progress.full {
            return Err(WsError::MessageTooLarge);
        }
        if text && self.limits.validate_utf8 && std::str::from_utf8(out).is_err() {
            return Err(WsError::InvalidUtf8);
        }
        Ok(Event::Message { text, data: out })
    }

    /// A compressed message begins that will arrive in pieces: it gets an
    /// inflater of its own (the one that keeps the peer's context, if it does).
    fn start_inflating(&mut self, inflaters: &mut Lent) {
        let takes_over = self.limits.takes_over();
        let bits = self.limits.deflate.map_or(15, |d| d.client_max_window_bits);
        match &mut self.partial().inflater {
            Some(inflater) if takes_over => inflater.begin(),
            Some(inflater) => inflater.reset(),
            slot @ None if takes_over => *slot = Some(Box::new(Inflater::new(bits))),
            slot @ None => *slot = Some(lent(inflaters).take()),
        }
    }

    /// Checks a data frame's header against the message in progress and the
    /// limits, before any of its payload is read; returns the message with
    /// this frame as its latest.
    fn next_message(&self, header: &FrameHeader, mask: [u8; 4]) -> Result<Message, WsError> {
        let (text, declared, emitted, compressed) = match (header.opcode, self.message()) {
            (OpCode::Continuation, Some(m)) => (m.text, m.declared, m.emitted, m.compressed),
            (OpCode::Continuation, None) => return Err(WsError::UnexpectedContinuation),
            (_, Some(_)) => return Err(WsError::ExpectedContinuation),
            (opcode, None) => (opcode == OpCode::Text, 0, false, header.rsv != 0),
        };
        if header.len > self.limits.max_frame {
            return Err(WsError::FrameTooLarge);
        }
        let declared = declared.saturating_add(header.len);
        // A compressed message's limit is on what it inflates to, checked then.
        if !self.limits.streaming && !compressed && declared > self.limits.max_message {
            return Err(WsError::MessageTooLarge);
        }
        let frame = Frame {
            fin: header.fin,
            mask,
            remaining: header.len,
            phase: 0,
        };
        Ok(Message {
            text,
            declared,
            emitted,
            compressed,
            pending: false,
            frame,
        })
    }

    /// Unmasks the whole payload of a one-frame message and checks a text one.
    #[inline(always)]
    fn unmask_whole(&self, text: bool, mask: [u8; 4], payload: &mut [u8]) -> Result<(), WsError> {
        apply_mask(payload, mask, 0);
        if text && self.limits.validate_utf8 && std::str::from_utf8(payload).is_err() {
            return Err(WsError::InvalidUtf8);
        }
        Ok(())
    }

    /// Hands out a one-frame message whose payload is all in `payload`.
    fn whole_frame<'a>(
        &self,
        text: bool,
        mask: [u8; 4],
        payload: &'a mut [u8],
    ) -> Result<Event<'a>, WsError> {
        if self.limits.from_server {
            // A server's payload is not masked: only a text one is checked.
            if text && self.limits.validate_utf8 && std::str::from_utf8(payload).is_err() {
                return Err(WsError::InvalidUtf8);
            }
        } else {
            self.unmask_whole(text, mask, payload)?;
        }
        Ok(if self.limits.streaming {
            Event::Fragment {
                text,
                data: payload,
                first: true,
                last: true,
            }
        } else {
            Event::Message {
                text,
                data: payload,
            }
        })
    }

    /// Consumes as much of the current frame's payload as `buf` holds.
    fn payload<'a>(
        &'a mut self,
        mut message: Message,
        buf: &'a mut [u8],
        inflaters: &'a mut Lent,
    ) -> Decoded<'a> {
        if message.compressed {
            return self.inflate_payload(message, buf, inflaters);
        }
        let frame = &mut message.frame;
        let take = usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let chunk = &mut buf[..take];
        apply_mask(chunk, frame.mask, frame.phase);
        frame.phase = (frame.phase + take) % 4;
        frame.remaining -= take as u64;
        let last = frame.fin && frame.remaining == 0;
        self.check_text(message.text, chunk, last)?;
        if self.limits.streaming {
            return Ok((take, self.fragment(message, chunk, last)));
        }
        let partial = self.partial();
        partial.message = (!last).then_some(message);
        partial.buffer.extend_from_slice(chunk);
        Ok((
            take,
            last.then_some(Event::Message {
                text: message.text,
                data: &partial.buffer,
            }),
        ))
    }

    /// Inflates as much of a compressed message's current frame as `buf`
    /// holds: into the message so far, or, streaming, into a piece of at
    /// most one block, leaving the input it could not yet inflate for the
    /// next call.
    fn inflate_payload<'a>(
        &'a mut self,
        message: Message,
        buf: &'a mut [u8],
        inflaters: &'a mut Lent,
    ) -> Decoded<'a> {
        let take = usize::try_from(message.frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let draining = take == 0 && message.pending;
        let (used, out) = self.inflate_step(message, &mut buf[..take], inflaters)?;
        if draining && matches!(out, Inflated::Nothing) {
            // Nothing was due after all: the next frame may be here.
            return self.frame(buf, inflaters);
        }
        let data = self.partial.as_deref().map_or(&[][..], |p| &p.buffer[..]);
        let text = message.text;
        let event = match out {
            Inflated::Nothing => None,
            Inflated::Message => Some(Event::Message { text, data }),
            Inflated::Piece { first, last } => Some(Event::Fragment {
                text,
                data,
                first,
                last,
            }),
        };
        Ok((used, event))
    }

    /// `inflate_payload`'s work on `chunk`, the part of the frame's payload
    /// at hand: returns the bytes used and what there is to hand out, in
    /// the partial message's buffer.
    fn inflate_step(
        &mut self,
        mut message: Message,
        chunk: &mut [u8],
        inflaters: &mut Lent,
    ) -> Result<(usize, Inflated), WsError> {
        let streaming = self.limits.streaming;
        let room = if streaming { BLOCK } else { self.room() };
        let keep = self.limits.takes_over();
        let check = message.text && self.limits.validate_utf8;
        let frame = &mut message.frame;
        apply_mask(chunk, frame.mask, frame.phase);
        let end = frame.fin && chunk.len() as u64 == frame.remaining;
        let partial = self.partial();
        if streaming {
            partial.buffer.clear();
        }
        let base = partial.buffer.len();
        let inflater = partial
            .inflater
            .get_or_insert_with(|| lent(inflaters).take());
        let progress = inflater.inflate(chunk, end, &mut partial.buffer, room)?;
        let used = progress.consumed;
        if used < chunk.len() {
            // Offered again on the next call: its mask goes back on.
            apply_mask(&mut chunk[used..], frame.mask, (frame.phase + used) % 4);
        }
        frame.phase = (frame.phase + used) % 4;
        frame.remaining -= used as u64;
        if progress.full && !streaming {
            return Err(WsError::MessageTooLarge);
        }
        message.pending = progress.full;
        let last = progress.done;
        if check {
            partial.utf8.feed(&partial.buffer[base..])?;
            if last {
                partial.utf8.finish()?;
            }
        }
        if last && !keep {
            if let Some(inflater) = partial.inflater.take() {
                lent(inflaters).give(inflater);
            }
        }
        if !streaming {
            partial.message = (!last).then_some(message);
            return Ok((
                used,
                if last {
                    Inflated::Message
                } else {
                    Inflated::Nothing
                },
            ));
        }
        if partial.buffer.is_empty() && !last {
            partial.message = Some(message);
            return Ok((used, Inflated::Nothing));
        }
        let first = !message.emitted;
        message.emitted = true;
        partial.message = (!last).then_some(message);
        Ok((used, Inflated::Piece { first, last }))
    }

    /// Validates a piece of a text message, and its end if `last`.
    fn check_text(&mut self, text: bool, chunk: &[u8], last: bool) -> Result<(), WsError> {
        if !text || !self.limits.validate_utf8 {
            return Ok(());
        }
        let utf8 = &mut self.partial().utf8;
        utf8.feed(chunk)?;
        if last {
            utf8.finish()?;
        }
        Ok(())
    }

    /// Streaming: hands out `chunk`, unless it is an empty piece that does
    /// not end the message and so tells the caller nothing.
    fn fragment<'a>(
        &mut self,
        mut message: Message,
        chunk: &'a [u8],
        last: bool,
    ) -> Option<Event<'a>> {
        if chunk.is_empty() && !last {
            self.partial().message = Some(message);
            return None;
        }
        let first = !message.emitted;
        message.emitted = true;
        self.partial().message = (!last).then_some(message);
        Some(Event::Fragment {
            text: message.text,
            data: chunk,
            first,
            last,
        })
    }
}

/// The loop's shared inflaters as a session lends them to its receiver:
/// made the first time a compressed message needs them.
pub(crate) type Lent = Option<Box<Inflaters>>;

fn lent(slot: &mut Lent) -> &mut Inflaters {
    slot.get_or_insert_with(Box::default)
}

/// What a step of inflating left in the partial message's buffer to hand out.
#[derive(Debug, Clone, Copy)]
enum Inflated {
    Nothing,
    /// The whole message.
    Message,
    /// Streaming: a piece of it.
    Piece {
        first: bool,
        last: bool,
    },
}

/// Where a frame ends in a buffer of `available` bytes, if it is all there.
fn whole_frame_end(header: &FrameHeader, available: usize) -> Option<usize> {
    let end = header
        .header_len
        .checked_add(usize::try_from(header.len).ok()?)?;
    (end <= available).then_some(end)
}

/// Decodes a control frame once it is whole; until then consumes nothing.
fn control<'a>(
    header: &FrameHeader,
    mask: [u8; 4],
    buf: &'a mut [u8],
    event: impl FnOnce(&'a [u8]) -> Result<Event<'a>, WsError>,
) -> Decoded<'a> {
    let Some(end) = whole_frame_end(header, buf.len()) else {
        return Ok((0, None));
    };
    let payload = &mut buf[header.header_len..end];
    apply_mask(payload, mask, 0);
    Ok((end, Some(event(payload)?)))
}

/// A Close event, if the payload is a valid one.
fn close_event(payload: &[u8]) -> Result<Event<'_>, WsError> {
    let (code, reason) = parse_close_payload(payload)?;
    Ok(Event::Close { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::Owned;
    use crate::testing::client_frame;

    const KEY: [u8; 4] = [0xa1, 0x5b, 0x07, 0xe3];

    const ROOMY: Limits = Limits {
        max_frame: 1 << 20,
        max_message: 1 << 22,
        validate_utf8: true,
        streaming: false,
        from_server: false,
        deflate: None,
    };

    /// A frame as a client sends it: masked.
    fn masked(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        client_frame(&mut out, fin, opcode, payload, KEY);
        out
    }

    fn text(fin: bool, payload: &[u8]) -> Vec<u8> {
        masked(fin, OpCode::Text, payload)
    }

    fn binary(fin: bool, payload: &[u8]) -> Vec<u8> {
        masked(fin, OpCode::Binary, payload)
    }

    fn cont(fin: bool, payload: &[u8]) -> Vec<u8> {
        masked(fin, OpCode::Continuation, payload)
    }

    fn close(payload: &[u8]) -> Vec<u8> {
        masked(true, OpCode::Close, payload)
    }

    /// Plays the caller: keeps the unconsumed tail, appends what arrives,
    /// and decodes until told to wait.
    struct Feeder {
        rx: Receiver,
        pending: Vec<u8>,
        inflaters: Lent,
    }

    impl Feeder {
        fn new(limits: Limits) -> Feeder {
            Feeder {
                rx: Receiver::new(limits),
                pending: Vec::new(),
                inflaters: None,
            }
        }

        /// Appends the events `piece` completes to `events`, up to any error.
        fn push(&mut self, piece: &[u8], events: &mut Vec<Owned>) -> Result<(), WsError> {
            self.pending.extend_from_slice(piece);
            let mut pos = 0;
            loop {
                match self
                    .rx
                    .decode(&mut self.pending[pos..], &mut self.inflaters)?
                {
                    (0, None) => break,
                    (n, event) => {
                        pos += n;
                        events.extend(event.map(Owned::from));
                    }
                }
            }
            self.pending.drain(..pos);
            Ok(())
        }

        /// The events `piece` completes.
        fn events(&mut self, piece: &[u8]) -> Result<Vec<Owned>, WsError> {
            let mut events = Vec::new();
            self.push(piece, &mut events)?;
            Ok(events)
        }
    }

    /// Everything a run shows from outside. After an error the receiver is
    /// done, so its state is not part of the outcome.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        events: Vec<Owned>,
        error: Option<WsError>,
        unconsumed: usize,
        in_message: bool,
    }

    fn run(limits: Limits, pieces: &[&[u8]]) -> Outcome {
        let mut feeder = Feeder::new(limits);
        let mut events = Vec::new();
        for piece in pieces {
            if let Err(e) = feeder.push(piece, &mut events) {
                return Outcome {
                    events,
                    error: Some(e),
                    unconsumed: 0,
                    in_message: false,
                };
            }
        }
        let (unconsumed, in_message) = (feeder.pending.len(), feeder.rx.in_message());
        Outcome {
            events,
            error: None,
            unconsumed,
            in_message,
        }
    }

    /// Turns streaming pieces back into whole messages, checking their
    /// `first`/`last` marks; a message cut short by an error is dropped.
    fn reassemble(outcome: Outcome) -> Outcome {
        let mut events = Vec::new();
        let mut partial: Option<(bool, Vec<u8>)> = None;
        for event in outcome.events {
            match event {
                Owned::Fragment {
                    text,
                    data,
                    first,
                    last,
                } => {
                    assert_eq!(first, partial.is_none(), "first marks the first piece only");
                    let (was_text, mut so_far) = partial.take().unwrap_or((text, Vec::new()));
                    assert_eq!(was_text, text);
                    assert!(
                        !data.is_empty() || last,
                        "an empty piece must end the message"
                    );
                    so_far.extend(data);
                    if last {
                        events.push(Owned::Message(text, so_far));
                    } else {
                        partial = Some((text, so_far));
                    }
                }
                Owned::Message(..) => panic!("a whole message in streaming mode"),
                other => events.push(other),
            }
        }
        Outcome { events, ..outcome }
    }

    /// Runs `stream` whole, split in two at every point and byte by byte, in
    /// both modes, checks that every run agrees, and returns the verdict.
    fn every_split(limits: Limits, stream: &[u8]) -> Outcome {
        let whole = run(limits, &[stream]);
        let streaming = Limits {
            streaming: true,
            ..limits
        };
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(run(limits, &bytes), whole, "byte by byte");
        assert_eq!(
            reassemble(run(streaming, &bytes)),
            whole,
            "streaming byte by byte"
        );
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(run(limits, &[a, b]), whole, "cut {cut}");
            assert_eq!(
                reassemble(run(streaming, &[a, b])),
                whole,
                "streaming cut {cut}"
            );
        }
        whole
    }

    fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    #[test]
    fn a_conversation_at_every_split() {
        let blob: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let stream = concat(&[
            text(false, b"Hel"),
            masked(true, OpCode::Ping, b"ping"),
            cont(false, b"lo, w\xc3"), // ö split across frames
            masked(true, OpCode::Pong, b""),
            cont(true, b"\xb6rld"),
            binary(true, &blob), // 16-bit length
            text(true, b""),
            binary(false, b""),
            cont(true, b""),
            close(b"\x03\xe8bye"),
        ]);
        let outcome = every_split(ROOMY, &stream);
        assert_eq!(outcome.error, None);
        assert_eq!(
            outcome.events,
            [
                Owned::Ping(b"ping".to_vec()),
                Owned::Pong(vec![]),
                Owned::Message(true, "Hello, wörld".into()),
                Owned::Message(false, blob),
                Owned::Message(true, vec![]),
                Owned::Message(false, vec![]),
                Owned::Close(Some(1000), "bye".into()),
            ]
        );
        assert_eq!((outcome.unconsumed, outcome.in_message), (0, false));
    }

    #[test]
    fn a_truncated_stream_leaves_the_same_state_at_every_split() {
        let mut stream = concat(&[text(false, b"abc"), cont(false, b"de")]);
        let ping = masked(true, OpCode::Ping, b"xyz");
        stream.extend_from_slice(&ping[..ping.len() - 1]);
        let outcome = every_split(ROOMY, &stream);
        assert_eq!(outcome.events, []);
        assert_eq!(outcome.error, None);
        assert_eq!(
            (outcome.unconsumed, outcome.in_message),
            (ping.len() - 1, true)
        );
    }

    #[test]
    fn invalid_utf8_fails_at_every_split() {
        let stream = concat(&[
            text(true, b"ok"),
            text(false, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
            masked(true, OpCode::Ping, b""),
            cont(true, b"\xf4\x90\x80\x80edited"),
        ]);
        let outcome = every_split(ROOMY, &stream);
        assert_eq!(
            outcome.events,
            [Owned::Message(true, b"ok".to_vec()), Owned::Ping(vec![])]
        );
        assert_eq!(outcome.error, Some(WsError::InvalidUtf8));
    }

    #[test]
    fn utf8_is_judged_over_the_whole_message() {
        let split_char = concat(&[text(false, b"\xce"), cont(true, b"\xba")]);
        let outcome = every_split(ROOMY, &split_char);
        assert_eq!(outcome.events, [Owned::Message(true, "κ".into())]);
        for cut_short in [
            text(true, b"\xce"),
            concat(&[text(false, b"a\xe2\x82"), cont(true, b"")]),
        ] {
            assert_eq!(
                every_split(ROOMY, &cut_short).error,
                Some(WsError::InvalidUtf8)
            );
        }
        // Binary payloads are not text.
        let outcome = every_split(ROOMY, &binary(true, b"\xff"));
        assert_eq!(outcome.events, [Owned::Message(false, vec![0xff])]);
    }

    #[test]
    fn continuation_rules_at_every_split() {
        let stray = concat(&[binary(true, b"a"), cont(true, b"b")]);
        let outcome = every_split(ROOMY, &stray);
        assert_eq!(outcome.events, [Owned::Message(false, b"a".to_vec())]);
        assert_eq!(outcome.error, Some(WsError::UnexpectedContinuation));
        let interleaved = concat(&[text(false, b"a"), binary(true, b"b")]);
        assert_eq!(
            every_split(ROOMY, &interleaved).error,
            Some(WsError::ExpectedContinuation)
        );
        let interleaved = concat(&[text(false, b"a"), text(false, b"b")]);
        assert_eq!(
            every_split(ROOMY, &interleaved).error,
            Some(WsError::ExpectedContinuation)
        );
    }

    #[test]
    fn unmasked_frames_are_refused() {
        assert_eq!(run(ROOMY, &[b"\x81\x02hi"]).error, Some(WsError::Unmasked));
        assert_eq!(run(ROOMY, &[b"\x89\x00"]).error, Some(WsError::Unmasked));
    }

    /// What the gateway's downstream connections accept.
    #[test]
    fn tighten_lowers_one_connections_limits_and_never_raises_them() {
        let shared = Rc::new(Limits {
            max_frame: 1000,
            max_message: 2000,
            ..ROOMY
        });
        let mut rx = Receiver::shared(Rc::clone(&shared));
        rx.tighten(u64::MAX, 500);
        assert_eq!((rx.limits.max_frame, rx.limits.max_message), (1000, 500));
        rx.tighten(100, u64::MAX);
        assert_eq!((rx.limits.max_frame, rx.limits.max_message), (100, 500));
        assert_eq!(shared.max_frame, 1000, "the shared limits stay");
        let mut inflaters = None;
        assert!(rx
            .decode(&mut binary(true, &[0; 100]), &mut inflaters)
            .is_ok());
        assert_eq!(
            rx.decode(&mut binary(true, &[0; 101]), &mut inflaters)
                .map(|_| ()),
            Err(WsError::FrameTooLarge)
        );
        // Asking for nothing new keeps the shared `Rc`.
        let mut same = Receiver::shared(Rc::clone(&shared));
        same.tighten(5000, 5000);
        assert!(Rc::ptr_eq(&same.limits, &shared));
    }

    const FROM_SERVER: Limits = Limits {
        from_server: true,
        ..ROOMY
    };

    /// A frame as a server sends it: unmasked.
    fn plain(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::ws::frame::write_frame(&mut out, fin, opcode, payload);
        out
    }

    #[test]
    fn a_server_conversation_at_every_split() {
        let blob: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
        let stream = concat(&[
            plain(true, OpCode::Text, b"hi"),
            plain(false, OpCode::Text, b"Hel"),
            plain(true, OpCode::Ping, b"ping"),
            plain(false, OpCode::Continuation, b"lo, w\xc3"),
            plain(true, OpCode::Continuation, b"\xb6rld"),
            plain(true, OpCode::Binary, &blob),
            plain(true, OpCode::Close, b"\x03\xe8bye"),
        ]);
        let outcome = every_split(FROM_SERVER, &stream);
        assert_eq!(outcome.error, None);
        assert_eq!(
            outcome.events,
            [
                Owned::Message(true, b"hi".to_vec()),
                Owned::Ping(b"ping".to_vec()),
                Owned::Message(true, "Hello, wörld".into()),
                Owned::Message(false, blob),
                Owned::Close(Some(1000), "bye".into()),
            ]
        );
    }

    #[test]
    fn a_server_that_masks_fails_with_1002() {
        for frame in [
            text(true, b"hi"),
            binary(true, &[0; 200]),
            masked(true, OpCode::Ping, b""),
            close(b""),
        ] {
            let outcome = every_split(FROM_SERVER, &frame);
            assert_eq!(outcome.error, Some(WsError::Masked), "{frame:x?}");
        }
        // Inside a fragmented message too.
        let stream = concat(&[plain(false, OpCode::Text, b"a"), cont(true, b"b")]);
        assert_eq!(
            every_split(FROM_SERVER, &stream).error,
            Some(WsError::Masked)
        );
        assert_eq!(WsError::Masked.close_code(), 1002);
    }

    #[test]
    fn limits_and_utf8_apply_to_a_server_alike() {
        let small = Limits {
            max_frame: 4,
            ..FROM_SERVER
        };
        let big = plain(true, OpCode::Binary, b"hello");
        assert_eq!(run(small, &[&big]).error, Some(WsError::FrameTooLarge));
        let bad = plain(true, OpCode::Text, b"\xff");
        assert_eq!(run(FROM_SERVER, &[&bad]).error, Some(WsError::InvalidUtf8));
        let stray = plain(true, OpCode::Continuation, b"x");
        assert_eq!(
            run(FROM_SERVER, &[&stray]).error,
            Some(WsError::UnexpectedContinuation)
        );
    }

    #[test]
    fn the_short_path_never_takes_a_servers_frame() {
        let rx = Receiver::new(FROM_SERVER);
        for frame in [text(true, b"hi"), plain(true, OpCode::Text, b"hi")] {
            let mut copy = frame.clone();
            assert_eq!(rx.short_message(&mut copy), None, "{frame:x?}");
            assert_eq!(copy, frame, "left as it was");
        }
    }

    #[test]
    fn header_errors_need_only_their_byte() {
        let mut rx = Receiver::new(ROOMY);
        assert_eq!(
            rx.decode(&mut [0xc1], &mut None),
            Err(WsError::ReservedBits)
        );
        let mut rx = Receiver::new(ROOMY);
        assert_eq!(
            rx.decode(&mut [0x83], &mut None),
            Err(WsError::UnknownOpcode)
        );
        let mut rx = Receiver::new(ROOMY);
        assert_eq!(
            rx.decode(&mut [0x09], &mut None),
            Err(WsError::FragmentedControl)
        );
        let mut rx = Receiver::new(ROOMY);
        assert_eq!(
            rx.decode(&mut [0x89, 0xfe], &mut None),
            Err(WsError::ControlTooLong)
        );
    }

    /// permessage-deflate, afresh per message both ways (the default).
    const DEFLATE: Limits = Limits {
        deflate: Some(Agreed {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            echo: crate::ws::deflate::Echo {
                server_max_window_bits: false,
                client_max_window_bits: false,
            },
        }),
        ..ROOMY
    };

    /// As [`DEFLATE`], with the client taking over its context.
    fn takeover() -> Limits {
        let mut limits = DEFLATE;
        if let Some(d) = limits.deflate.as_mut() {
            d.client_no_context_takeover = false;
        }
        limits
    }

    /// A message as a client's compressor makes it: raw deflate, sync
    /// flushed, the tail dropped (RFC 7692 §7.2.1).
    fn deflate_with(c: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
        let start = c.total_in();
        let mut out = Vec::new();
        loop {
            out.reserve(data.len() + 1024);
            let done = (c.total_in() - start) as usize;
            let spare = out.capacity() - out.len();
            let before = out.len();
            c.compress_vec(&data[done..], &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            let all_in = (c.total_in() - start) as usize == data.len();
            if all_in && out.len() - before < spare {
                break;
            }
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    fn deflated(data: &[u8]) -> Vec<u8> {
        deflate_with(
            &mut flate2::Compress::new(flate2::Compression::default(), false),
            data,
        )
    }

    /// A client frame with RSV1 set: the first of a compressed message.
    fn rsv1(mut frame: Vec<u8>) -> Vec<u8> {
        frame[0] |= 0x40;
        frame
    }

    #[test]
    fn compressed_messages_at_every_split() {
        let hello = b"Hello, hello, hello! Compressed hello.".to_vec();
        let z = deflated(&hello);
        let wide = "κόσμε ".repeat(20).into_bytes();
        let zw = deflated(&wide);
        let (a, b) = zw.split_at(zw.len() / 2);
        let stream = concat(&[
            rsv1(text(true, &z)),
            masked(true, OpCode::Ping, b"p"),
            rsv1(text(false, a)),
            masked(true, OpCode::Pong, b""),
            cont(false, b""),
            cont(true, b),
            text(true, b"plain"),
            rsv1(binary(true, &deflated(b""))),
            close(b"\x03\xe8"),
        ]);
        let outcome = every_split(DEFLATE, &stream);
        assert_eq!(outcome.error, None);
        assert_eq!(
            outcome.events,
            [
                Owned::Message(true, hello),
                Owned::Ping(b"p".to_vec()),
                Owned::Pong(vec![]),
                Owned::Message(true, wide),
                Owned::Message(true, b"plain".to_vec()),
                Owned::Message(false, vec![]),
                Owned::Close(Some(1000), String::new()),
            ]
        );
        // Taking over context reads messages compressed afresh just as well.
        assert_eq!(every_split(takeover(), &stream), outcome);
    }

    #[test]
    fn a_peer_that_takes_over_context_is_followed() {
        let mut c = flate2::Compress::new(flate2::Compression::default(), false);
        let line = b"the same sensor reading, over and over".to_vec();
        let first = deflate_with(&mut c, &line);
        let second = deflate_with(&mut c, &line);
        assert!(
            second.len() < first.len() / 2,
            "the second refers to the first"
        );
        let stream = concat(&[rsv1(text(true, &first)), rsv1(text(true, &second))]);
        let outcome = every_split(takeover(), &stream);
        assert_eq!(outcome.error, None);
        assert_eq!(
            outcome.events,
            [
                Owned::Message(true, line.clone()),
                Owned::Message(true, line)
            ]
        );
        // Without takeover agreed, the second does not inflate on its own.
        assert_eq!(run(DEFLATE, &[&stream]).error, Some(WsError::BadDeflate));
    }

    #[test]
    fn rsv1_is_only_for_a_negotiated_message_start() {
        let z = deflated(b"x");
        let cases = [
            (ROOMY, rsv1(text(true, &z))),
            (DEFLATE, rsv1(masked(true, OpCode::Ping, b""))),
            (DEFLATE, rsv1(close(b""))),
            (
                DEFLATE,
                concat(&[text(false, b"a"), rsv1(cont(true, b"b"))]),
            ),
            (
                DEFLATE,
                concat(&[rsv1(text(false, &z)), rsv1(cont(true, b""))]),
            ),
        ];
        for (limits, stream) in cases {
            assert_eq!(run(limits, &[&stream]).error, Some(WsError::ReservedBits));
        }
        // RSV2 and RSV3 stay undefined.
        for bits in [0x20, 0x10, 0x60] {
            let mut frame = text(true, &z);
            frame[0] |= bits;
            assert_eq!(run(DEFLATE, &[&frame]).error, Some(WsError::ReservedBits));
        }
    }

    #[test]
    fn what_does_not_inflate_fails_with_1007() {
        let garbage = rsv1(binary(true, &[0xff, 0xff, 0xff, 0xff]));
        assert_eq!(run(DEFLATE, &[&garbage]).error, Some(WsError::BadDeflate));
        let bad_text = rsv1(text(true, &deflated(b"\xff\xfe")));
        assert_eq!(
            every_split(DEFLATE, &bad_text).error,
            Some(WsError::InvalidUtf8)
        );
        assert_eq!(WsError::BadDeflate.close_code(), 1007);
    }

    #[test]
    fn the_message_limit_applies_to_what_a_message_inflates_to() {
        let data = vec![b'a'; 5000];
        let z = deflated(&data);
        let (a, b) = z.split_at(z.len() / 2);
        let whole = rsv1(text(true, &z));
        let pieces = concat(&[rsv1(text(false, a)), cont(true, b)]);
        for stream in [&whole, &pieces] {
            for (limit, error) in [(5000, None), (4999, Some(WsError::MessageTooLarge))] {
                let limits = Limits {
                    max_message: limit,
                    ..DEFLATE
                };
                assert_eq!(run(limits, &[stream]).error, error, "limit {limit}");
                assert_eq!(
                    run(
                        Limits {
                            max_message: limit,
                            ..takeover()
                        },
                        &[stream]
                    )
                    .error,
                    error
                );
            }
        }
        // A compressed frame far shorter than the limit is not refused for its header.
        let limits = Limits {
            max_message: 100,
            ..DEFLATE
        };
        let fits = rsv1(text(true, &deflated(&[b'b'; 100])));
        assert_eq!(
            run(limits, &[&fits]).events,
            [Owned::Message(true, vec![b'b'; 100])]
        );
    }

    #[test]
    fn a_bomb_is_stopped_within_a_block_of_the_limit() {
        let bomb = deflated(&vec![0; 64 << 20]);
        assert!(bomb.len() < 100 << 10);
        let limits = Limits {
            max_message: 1 << 20,
            ..DEFLATE
        };
        let mut feeder = Feeder::new(limits);
        let frame = rsv1(binary(true, &bomb));
        let (head, body) = frame.split_at(200);
        assert_eq!(feeder.events(head).map(|e| e.len()), Ok(0));
        let held = feeder
            .rx
            .partial
            .as_ref()
            .map_or(0, |p| p.buffer.capacity());
        assert!(held <= (1 << 20) + BLOCK, "{held}");
        assert_eq!(feeder.events(body), Err(WsError::MessageTooLarge));
        // Whole, through the shared inflater, alike.
        assert_eq!(run(limits, &[&frame]).error, Some(WsError::MessageTooLarge));
    }

    #[test]
    fn streaming_hands_out_a_bomb_a_block_at_a_time() {
        let size = 8 << 20;
        let frame = rsv1(binary(true, &deflated(&vec![7; size])));
        let limits = Limits {
            streaming: true,
            max_message: 16,
            ..DEFLATE
        };
        let mut rx = Receiver::new(limits);
        let mut inflaters = None;
        let mut buf = frame.clone();
        let (mut pos, mut total, mut pieces) = (0, 0, 0);
        loop {
            let (used, event) = rx.decode(&mut buf[pos..], &mut inflaters).unwrap();
            pos += used;
            match event {
                Some(Event::Fragment { data, last, .. }) => {
                    assert!(data.len() <= BLOCK && data.iter().all(|&b| b == 7));
                    total += data.len();
                    pieces += 1;
                    if last {
                        break;
                    }
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!((pos, total), (frame.len(), size));
        assert!(pieces >= size / BLOCK);
    }

    #[test]
    fn frame_limit_is_decided_from_the_header() {
        for streaming in [false, true] {
            let limits = Limits {
                max_frame: 100,
                streaming,
                ..ROOMY
            };
            let too_big = binary(true, &[0; 101]);
            let header = &too_big[..2 + 4];
            assert_eq!(run(limits, &[header]).error, Some(WsError::FrameTooLarge));
            let fits = binary(true, &[0; 100]);
            let outcome = run(limits, &[&fits[..6]]);
            assert_eq!(
                (outcome.error, outcome.unconsumed, outcome.in_message),
                (None, 0, true)
            );
        }
    }

    #[test]
    fn message_limit_is_decided_from_the_header() {
        let limits = Limits {
            max_message: 10,
            ..ROOMY
        };
        let first = text(false, b"123456");
        let second = cont(true, b"12345");
        let pieces: [&[u8]; 2] = [&first, &second[..6]];
        assert_eq!(run(limits, &pieces).error, Some(WsError::MessageTooLarge));
        let just_fits = cont(true, b"1234");
        assert_eq!(
            run(limits, &[&first, &just_fits]).events,
            [Owned::Message(true, b"1234561234".to_vec())]
        );
        // A streamed message is never held whole, so it has no limit.
        let streaming = Limits {
            streaming: true,
            ..limits
        };
        let outcome = reassemble(run(streaming, &[&first, &second]));
        assert_eq!(
            outcome.events,
            [Owned::Message(true, b"12345612345".to_vec())]
        );
    }

    #[test]
    fn utf8_fails_fast_inside_a_partial_frame() {
        // Autobahn 6.4.3: one frame, sent in three chops.
        let frame = text(
            true,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited",
        );
        let mut feeder = Feeder::new(ROOMY);
        assert_eq!(feeder.events(&frame[..6 + 11]), Ok(vec![]));
        assert_eq!(feeder.events(&frame[17..18]), Ok(vec![]));
        assert_eq!(feeder.events(&frame[18..19]), Err(WsError::InvalidUtf8));
    }

    #[test]
    fn utf8_fails_fast_at_the_frame_that_breaks_it() {
        // Autobahn 6.4.2: the first frame ends in F4, a valid start; the
        // second is the lone 90 that makes it U+110000.
        let mut feeder = Feeder::new(ROOMY);
        let first = text(false, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4");
        assert_eq!(feeder.events(&first), Ok(vec![]));
        assert_eq!(
            feeder.events(&cont(false, b"\x90")),
            Err(WsError::InvalidUtf8)
        );
    }

    #[test]
    fn utf8_validation_can_be_turned_off_but_not_for_close_reasons() {
        let limits = Limits {
            validate_utf8: false,
            ..ROOMY
        };
        let stream = concat(&[text(true, b"\xff"), text(false, b"\xce"), cont(true, b"")]);
        let outcome = every_split(limits, &stream);
        assert_eq!(
            outcome.events,
            [
                Owned::Message(true, vec![0xff]),
                Owned::Message(true, vec![0xce])
            ]
        );
        assert_eq!(
            run(limits, &[&close(b"\x03\xe8\xff")]).error,
            Some(WsError::InvalidUtf8)
        );
    }

    #[test]
    fn close_frames() {
        let cases: [(&[u8], Result<Owned, WsError>); 5] = [
            (b"", Ok(Owned::Close(None, String::new()))),
            (b"\x0f\xa0app", Ok(Owned::Close(Some(4000), "app".into()))),
            (b"\x03", Err(WsError::BadClosePayload)),
            (b"\x03\xed", Err(WsError::InvalidCloseCode)),
            (b"\x03\xe8\xed\xa0\x80", Err(WsError::InvalidUtf8)),
        ];
        for (payload, want) in cases {
            let outcome = every_split(ROOMY, &close(payload));
            let got = outcome
                .error
                .map_or_else(|| Ok(outcome.events[0].clone()), Err);
            assert_eq!(got, want, "{payload:x?}");
        }
    }

    #[test]
    fn a_whole_unfragmented_frame_is_not_copied() {
        for streaming in [false, true] {
            let mut rx = Receiver::new(Limits { streaming, ..ROOMY });
            let mut buf = text(true, b"hello");
            let range = buf.as_ptr_range();
            let mut inflaters = None;
            let (n, event) = rx.decode(&mut buf, &mut inflaters).unwrap();
            let data = match event {
                Some(Event::Message { text: true, data }) if !streaming => data,
                Some(Event::Fragment {
                    text: true,
                    data,
                    first: true,
                    last: true,
                }) if streaming => data,
                other => panic!("{other:?}"),
            };
            assert_eq!((n, data), (11, &b"hello"[..]));
            assert!(range.contains(&data.as_ptr()), "copied");
        }
    }

    /// The session's short-message path takes exactly the whole short Text
    /// and Binary frames, and leaves every other frame to `decode` untouched.
    #[test]
    fn short_messages_and_what_is_left_to_decode() {
        let rx = Receiver::new(ROOMY);
        let mut buf = text(true, b"hello");
        assert_eq!(rx.short_message(&mut buf), Some(Ok((true, 6..11))));
        assert_eq!(&buf[6..11], b"hello", "unmasked in place");
        let mut buf = binary(true, &[0xff; 125]);
        assert_eq!(rx.short_message(&mut buf), Some(Ok((false, 6..131))));
        let mut bad = text(true, b"\xff");
        assert_eq!(rx.short_message(&mut bad), Some(Err(WsError::InvalidUtf8)));

        let long = binary(true, &[0; 126]);
        let unmasked = [0x82, 0x01, b'x'];
        let others: [&[u8]; 7] = [
            &text(false, b"first"),
            &cont(true, b"last"),
            &masked(true, OpCode::Ping, b""),
            &close(&[0x03, 0xe8]),
            &long,
            &unmasked,
            &text(true, b"cut")[..8],
        ];
        for frame in others {
            let mut copy = frame.to_vec();
            assert_eq!(rx.short_message(&mut copy), None, "{frame:?}");
            assert_eq!(copy, frame, "left as it was");
        }

        let streaming = Receiver::new(Limits {
            streaming: true,
            ..ROOMY
        });
        assert_eq!(streaming.short_message(&mut text(true, b"hi")), None);
        let small = Receiver::new(Limits {
            max_frame: 4,
            ..ROOMY
        });
        assert_eq!(small.short_message(&mut text(true, b"hello")), None);
        let mut midway = Receiver::new(ROOMY);
        assert!(midway.decode(&mut text(false, b"he"), &mut None).is_ok());
        assert_eq!(midway.short_message(&mut text(true, b"llo")), None);
    }

    #[test]
    fn a_control_frame_waits_until_whole_without_touching_the_bytes() {
        let frame = masked(true, OpCode::Ping, b"abc");
        let mut partial = frame[..frame.len() - 1].to_vec();
        let mut rx = Receiver::new(ROOMY);
        assert_eq!(rx.decode(&mut partial, &mut None), Ok((0, None)));
        assert_eq!(partial, frame[..frame.len() - 1]);
    }

    #[test]
    fn the_reassembly_buffer_is_released_after_each_message() {
        let mut feeder = Feeder::new(ROOMY);
        let events = feeder
            .events(&concat(&[text(false, &[b'a'; 1000]), cont(true, b"b")]))
            .unwrap();
        assert_eq!(events.len(), 1);
        assert!(
            feeder.rx.partial.is_none(),
            "nothing is held between messages"
        );
        let frame = binary(true, &[7; 500]);
        feeder.events(&frame[..300]).unwrap();
        assert!(feeder
            .rx
            .partial
            .as_ref()
            .is_some_and(|p| p.buffer.capacity() > 0));
        assert_eq!(
            feeder.events(&frame[300..]).unwrap(),
            [Owned::Message(false, vec![7; 500])]
        );
        assert!(feeder.rx.partial.is_none());
    }

    #[test]
    fn a_large_frame_in_uneven_pieces() {
        let blob: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let stream = concat(&[binary(false, &blob), cont(true, &blob[..3])]);
        let pieces: Vec<&[u8]> = stream.chunks(999).collect();
        let mut want = blob.clone();
        want.extend_from_slice(&blob[..3]);
        assert_eq!(
            run(ROOMY, &pieces).events,
            [Owned::Message(false, want.clone())]
        );
        let streaming = run(
            Limits {
                streaming: true,
                ..ROOMY
            },
            &pieces,
        );
        assert!(streaming.events.len() > 70);
        assert_eq!(reassemble(streaming).events, [Owned::Message(false, want)]);
    }
}
