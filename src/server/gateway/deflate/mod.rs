//! permessage-deflate (RFC 7692), which tungstenite does not implement: the
//! gateway negotiates it in its own handshake, deflates event frames once
//! per delivery, and inflates a compressing client's messages before
//! tungstenite reads them ([`Inflater`]).
//!
//! Both directions are negotiated without context takeover. The server's
//! `server_no_context_takeover` makes every compressed message a
//! self-contained deflate stream, so one event's compressed frame is valid
//! for every subscriber and the hub compresses per event, not per
//! connection; the client's `client_no_context_takeover` lets a connection
//! keep no inflater (about 40 KiB) between messages.

mod inflate;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

pub use inflate::Inflater;

/// The extension's name in `Sec-WebSocket-Extensions`.
const EXTENSION: &str = "permessage-deflate";

/// The answer to an acceptable offer. The server's window is always the
/// full 15 bits (miniz_oxide deflates with a 32 KiB window and cannot be
/// told a smaller one), and the client's is whatever it offers: the
/// inflater has a 32 KiB window, which reads any.
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The answer to an offer that asked for `server_max_window_bits=15`,
/// which RFC 7692 §7.1.2.1 says the response repeats.
const RESPONSE_WINDOW_15: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15";

/// Payloads shorter than this go uncompressed (RFC 7692 lets the sender
/// choose per message): deflating an acknowledgement or a tiny event
/// saves a few bytes at most and costs a compressor.
pub const MIN_COMPRESS_BYTES: usize = 128;

/// zlib's default level: event JSON shrinks to a third or less, and the
/// cost is paid once per event, not per subscriber.
const LEVEL: u32 = 6;

/// The answer to the client's `Sec-WebSocket-Extensions` header values, or
/// `None` to run without compression. The offers are taken in the
/// client's order of preference; an offer with a parameter this server
/// cannot honour (a `server_max_window_bits` below 15), an unknown or
/// repeated parameter, or a malformed value is declined by not answering
/// it, as RFC 7692 §5 asks, and the next one is tried.
pub fn negotiate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    offers
        .into_iter()
        .flat_map(|value| value.split(','))
        .find_map(answer)
}

/// The answer to one offer (`name; param; param=value`), if accepted.
fn answer(offer: &str) -> Option<&'static str> {
    let mut parts = offer.split(';').map(str::trim);
    if !parts.next()?.eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen: Vec<String> = Vec::new();
    let mut window_15 = false;
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
            None => (param, None),
        };
        let name = name.to_ascii_lowercase();
        if seen.contains(&name) {
            return None;
        }
        match (name.as_str(), value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            ("server_max_window_bits", Some(bits)) => {
                // A smaller window than miniz_oxide's 32 KiB would leave the
                // client unable to read our back-references.
                if window_bits(bits)? != 15 {
                    return None;
                }
                window_15 = true;
            }
            _ => return None,
        }
        seen.push(name);
    }
    Some(if window_15 {
        RESPONSE_WINDOW_15
    } else {
        RESPONSE
    })
}

/// A parameter value without the quotes RFC 6455's `quoted-string` allows.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(value),
    }
}

/// A window size, 8 to 15 written without leading zeros (RFC 7692 §7.1.2).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || value.len() > 2 {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The compressed twin of a complete, unmasked server frame: the same
/// opcode with RSV1 set, the payload deflated as one self-contained
/// stream without its trailing `00 00 ff ff` (RFC 7692 §7.2.1). `None`
/// when the payload is below [`MIN_COMPRESS_BYTES`], the frame is not a
/// whole text or binary message, or deflating would not make it smaller:
/// the plain frame goes instead.
pub fn compress_frame(frame: &[u8]) -> Option<Bytes> {
    let (opcode, payload) = split_server_frame(frame)?;
    if payload.len() < MIN_COMPRESS_BYTES {
        return None;
    }
    let deflated = deflate(payload);
    if deflated.len() + 4 >= payload.len() {
        return None;
    }
    let mut out = Frame::message(deflated, opcode, true);
    out.header_mut().rsv1 = true;
    let mut bytes = Vec::with_capacity(out.len());
    out.format(&mut bytes)
        .expect("formatting into a Vec cannot fail");
    Some(Bytes::from(bytes))
}

/// The opcode and payload of `frame` if it is exactly one whole unmasked
/// text or binary frame.
fn split_server_frame(frame: &[u8]) -> Option<(OpCode, &[u8])> {
    let (&first, &second) = (frame.first()?, frame.get(1)?);
    // FIN set, RSV clear, text (1) or binary (2), not masked.
    let opcode = match first {
        0x81 => OpCode::Data(Data::Text),
        0x82 => OpCode::Data(Data::Binary),
        _ => return None,
    };
    if second & 0x80 != 0 {
        return None;
    }
    let (len, header) = match second & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes(frame.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(frame.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let payload = frame.get(header..)?;
    (payload.len() as u64 == len).then_some((opcode, payload))
}

/// `payload` as a raw deflate stream ended by a sync flush, with the
/// flush's empty stored block (`00 00 ff ff`) removed.
///
/// miniz_oxide counts input as taken once it sits in its lookahead, and a
/// call that finds a block still waiting for room in the output only
/// copies that block out and returns, with the lookahead unprocessed and
/// no sync marker yet. So a call that filled the output is followed by one
/// more full call, whatever room the next leaves. Stopping at the first
/// call with room to spare (as flate2's own `flush` does) lost the end of
/// some large messages; Autobahn 12.2.9 caught it. An extra call may add a
/// second empty stored block, which is valid deflate.
pub fn deflate(payload: &[u8]) -> Vec<u8> {
    // Room for stored blocks of incompressible input, so one call usually
    // does it all.
    deflate_into(payload, payload.len() + payload.len() / 64 + 64)
}

/// [`deflate`] starting with `capacity` bytes of output (tests start small
/// to take the paths of a full output).
fn deflate_into(payload: &[u8], capacity: usize) -> Vec<u8> {
    let mut compress = Compress::new(Compression::new(LEVEL), false);
    let mut out = Vec::with_capacity(capacity);
    let mut filled = false;
    loop {
        let taken = compress.total_in() as usize;
        compress
            .compress_vec(&payload[taken..], &mut out, FlushCompress::Sync)
            .expect("deflating from memory cannot fail");
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(64));
            filled = true;
        } else if compress.total_in() as usize == payload.len() {
            if !filled {
                break;
            }
            filled = false;
        }
    }
    if out.ends_with(&[0, 0, 0xff, 0xff]) {
        out.truncate(out.len() - 4);
    }
    out
}
