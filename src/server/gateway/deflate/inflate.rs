//! The read side of permessage-deflate: a transform between the socket and
//! tungstenite, which refuses frames with RSV1 set. Frames of compressed
//! messages are unmasked and inflated as they stream in; the whole message
//! then goes to tungstenite as one plain frame, so its checks (UTF-8, size,
//! protocol) run on what the client meant. Everything else passes through
//! byte for byte.
//!
//! Violations are handed to tungstenite as a frame it refuses, so the
//! connection fails through the gateway's one read-error path
//! ([`super::super::close::read_error`]): a frame with a reserved bit set
//! (close 1002) or one longer than the message limit (close 1009).

use std::io;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};
use tokio::io::ReadBuf;

/// Bytes read from the socket per call.
const READ_CHUNK: usize = 4096;

/// The end of the deflate stream that senders strip (RFC 7692 §7.2.2).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// A masked, final, zero-length text frame with RSV2 set: tungstenite fails
/// the connection with a protocol error (1002) on it.
pub(super) const PROTOCOL_ERROR: [u8; 6] = [0x80 | 0x20 | 0x1, 0x80, 0, 0, 0, 0];

/// Compressed bytes a message may carry beyond `limit`: deflate's stored
/// blocks add 5 bytes per 64 KiB, so a message that needs more than this
/// inflates past the limit anyway.
const COMPRESSED_SLACK: usize = 1024;

/// What becomes of the payload of the frame being read.
#[derive(Debug, Clone, Copy)]
enum Payload {
    /// Handed to tungstenite as it is.
    Pass,
    /// Part of a compressed message: unmasked with this key (from this
    /// offset in the frame) and inflated.
    Inflate { mask: [u8; 4], offset: usize },
}

/// The frame being read.
struct Current {
    /// Payload bytes still to come.
    remaining: u64,
    payload: Payload,
    fin: bool,
}

/// A compressed message being received.
pub(super) struct Message {
    /// The first frame's opcode (text or binary).
    opcode: u8,
    inflate: Decompress,
    /// The message so far, refused once it holds more than `limit` bytes.
    text: Vec<u8>,
    /// Compressed bytes received.
    received: usize,
    /// The deflate stream ended with a final block: the rest is ignored.
    ended: bool,
}

/// Why a compressed message fails the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Inflates (or would) past the limit: 1009.
    TooBig,
    /// Not a deflate stream: 1002.
    Corrupt,
}

/// One connection's read-side transform, used only once the connection
/// negotiated permessage-deflate. Holds no inflater between messages.
pub struct Inflater {
    /// The largest message, inflated, that tungstenite accepts (its
    /// `max_frame_size`): a larger one is refused with 1009 as soon as it
    /// inflates past it, whatever its compressed size.
    limit: usize,
    /// Read from the socket, not yet parsed.
    raw: BytesMut,
    /// Ready for tungstenite.
    pub(super) out: BytesMut,
    frame: Option<Current>,
    pub(super) message: Option<Message>,
    /// A violation was handed to tungstenite: the rest passes untouched.
    pub(super) failed: bool,
    eof: bool,
}

impl Inflater {
    pub fn new(limit: usize) -> Inflater {
        Inflater {
            limit,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            frame: None,
            message: None,
            failed: false,
            eof: false,
        }
    }

    /// Fills `buf` with the transformed stream, reading the socket through
    /// `read` when nothing is ready.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        mut read: impl FnMut(&mut Context<'_>, &mut ReadBuf<'_>) -> Poll<io::Result<()>>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.out.is_empty() {
                let n = self.out.len().min(buf.remaining());
                buf.put_slice(&self.out[..n]);
                self.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(read(cx, &mut chunk_buf))?;
            if chunk_buf.filled().is_empty() {
                // A frame cut short reaches tungstenite as it is: it
                // reports the reset.
                self.eof = true;
                let rest = self.raw.split();
                self.out.extend_from_slice(&rest);
                continue;
            }
            self.push(chunk_buf.filled());
        }
    }

    /// Takes bytes read from the socket and transforms what it can; the
    /// result waits in `out`.
    pub fn push(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        while !self.failed {
            let Some(frame) = &mut self.frame else {
                match Header::parse(&self.raw) {
                    Some(header) => self.begin_frame(header),
                    None => return,
                }
                continue;
            };
            let n = frame.remaining.min(self.raw.len() as u64) as usize;
            if n == 0 && frame.remaining > 0 {
                return;
            }
            let mut chunk = self.raw.split_to(n);
            frame.remaining -= n as u64;
            match &mut frame.payload {
                Payload::Pass => self.out.extend_from_slice(&chunk),
                Payload::Inflate { mask, offset } => {
                    for (i, byte) in chunk.iter_mut().enumerate() {
                        *byte ^= mask[(*offset + i) % 4];
                    }
                    *offset += n;
                    let message = self.message.as_mut().expect("inflating a message");
                    if let Err(refusal) = message.feed(&chunk, self.limit) {
                        self.refuse(refusal);
                        break;
                    }
                }
            }
            if frame.remaining == 0 {
                let done = matches!(frame.payload, Payload::Inflate { .. }) && frame.fin;
                self.frame = None;
                if done {
                    self.end_message();
                }
            }
        }
        // Once failed, tungstenite stops at the refused frame; what follows
        // is passed on for the closing handshake.
        let rest = self.raw.split();
        self.out.extend_from_slice(&rest);
    }

    /// Decides what the frame whose header is at the front of `raw`
    /// becomes, and consumes the header.
    fn begin_frame(&mut self, h: Header) {
        let control = h.opcode & 0x8 != 0;
        let payload = if control {
            // Control frames may come between fragments; with RSV1 set
            // tungstenite refuses them (1002), as RFC 7692 §6.1 asks.
            Payload::Pass
        } else if self.message.is_some() {
            // Only continuations of the compressed message, without RSV1
            // (it marks a message's first frame), may follow.
            if h.opcode != 0 || h.rsv1 || h.rsv2 || h.rsv3 || h.mask.is_none() {
                return self.refuse(Refusal::Corrupt);
            }
            Payload::Inflate {
                mask: h.mask.unwrap_or_default(),
                offset: 0,
            }
        } else if h.rsv1 && h.opcode != 0 && !h.rsv2 && !h.rsv3 && h.mask.is_some() {
            self.message = Some(Message {
                opcode: h.opcode,
                // No context takeover: each message is its own stream.
                inflate: Decompress::new(false),
                text: Vec::new(),
                received: 0,
                ended: false,
            });
            Payload::Inflate {
                mask: h.mask.unwrap_or_default(),
                offset: 0,
            }
        } else {
            // Plain frames pass, and so do malformed ones (RSV1 on a
            // continuation, an unmasked frame): tungstenite refuses those.
            Payload::Pass
        };
        let header = self.raw.split_to(h.len);
        if let Payload::Pass = payload {
            self.out.extend_from_slice(&header);
        }
        self.frame = Some(Current {
            remaining: h.payload,
            payload,
            fin: h.fin,
        });
    }

    /// The compressed message's last frame is in: inflate the rest and
    /// hand tungstenite the plain message as one masked frame (a zero key,
    /// so the payload is written as it is).
    fn end_message(&mut self) {
        let mut message = self.message.take().expect("a message to end");
        if let Err(refusal) = message.feed(&TAIL, self.limit) {
            return self.refuse(refusal);
        }
        let len = message.text.len();
        self.out.reserve(len + 14);
        self.out.extend_from_slice(&[0x80 | message.opcode]);
        push_length(&mut self.out, len as u64);
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(&message.text);
    }

    /// Fails the connection through tungstenite: a frame it refuses.
    fn refuse(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::Corrupt => self.out.extend_from_slice(&PROTOCOL_ERROR),
            Refusal::TooBig => {
                // A header longer than its `max_frame_size`: 1009 before
                // it reads a byte of payload.
                let opcode = self.message.as_ref().map_or(0x1, |m| m.opcode);
                self.out.extend_from_slice(&[0x80 | opcode]);
                push_length(&mut self.out, self.limit as u64 + 1);
                self.out.extend_from_slice(&[0, 0, 0, 0]);
            }
        }
        self.message = None;
        self.frame = None;
        self.failed = true;
    }
}

/// The masked payload length field of a client frame.
fn push_length(out: &mut BytesMut, len: u64) {
    if len < 126 {
        out.extend_from_slice(&[0x80 | len as u8]);
    } else if len <= u64::from(u16::MAX) {
        out.extend_from_slice(&[0x80 | 126]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[0x80 | 127]);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

impl Message {
    /// Inflates `input` onto the message, refusing it as soon as it holds
    /// more than `limit` bytes: memory stays within about twice the limit
    /// whatever the compression ratio (a zip bomb stops there).
    fn feed(&mut self, mut input: &[u8], limit: usize) -> Result<(), Refusal> {
        self.received += input.len();
        if self.received > limit + COMPRESSED_SLACK {
            return Err(Refusal::TooBig);
        }
        while !self.ended {
            if self.text.len() == self.text.capacity() {
                let room = limit + 1 - self.text.len().min(limit);
                self.text
                    .reserve(room.clamp(1, (input.len() * 4).max(1024)));
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress_vec(input, &mut self.text, FlushDecompress::None)
                .map_err(|_| Refusal::Corrupt)?;
            let used = (self.inflate.total_in() - before_in) as usize;
            let produced = self.inflate.total_out() - before_out;
            input = &input[used..];
            if self.text.len() > limit {
                return Err(Refusal::TooBig);
            }
            if status == Status::StreamEnd {
                self.ended = true;
            }
            // Done only when a call with room to spare produced nothing:
            // miniz_oxide may hold output back after taking the last input.
            let room_left = self.text.len() < self.text.capacity();
            if room_left && produced == 0 && (input.is_empty() || used == 0) {
                break;
            }
        }
        Ok(())
    }
}

/// A client frame's header.
pub(super) struct Header {
    fin: bool,
    rsv1: bool,
    rsv2: bool,
    rsv3: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Payload length.
    pub(super) payload: u64,
    /// Header length.
    pub(super) len: usize,
}

impl Header {
    /// The header at the front of `raw`, once all of it has arrived.
    pub(super) fn parse(raw: &[u8]) -> Option<Header> {
        let (&b0, &b1) = (raw.first()?, raw.get(1)?);
        let (payload, mut len) = match b1 & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(raw.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(raw.get(2..10)?.try_into().ok()?), 10),
            n => (u64::from(n), 2),
        };
        let mask = if b1 & 0x80 != 0 {
            let key: [u8; 4] = raw.get(len..len + 4)?.try_into().ok()?;
            len += 4;
            Some(key)
        } else {
            None
        };
        Some(Header {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: b0 & 0x0f,
            mask,
            payload,
            len,
        })
    }
}
