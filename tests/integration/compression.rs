//! permessage-deflate (RFC 7692) against a real `pytake serve`: the
//! handshake with and without an offer, compressed events inflated by a
//! client-side inflater and compared (payloads and bytes) with a plain
//! connection, compressed client messages (whole and fragmented), and the
//! refusals: a message inflating past the limit, RSV1 on a control frame.

use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{message_sent, Options, TestServer};

const OFFER: &str = "permessage-deflate; client_max_window_bits";
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// A WebSocket client that speaks permessage-deflate by hand (the
/// project's client library has none), counting the bytes it reads.
struct DeflateWs {
    tcp: TcpStream,
    /// Bytes of frames read since the last reset.
    wire_bytes: usize,
}

/// A frame as read off the socket, its payload inflated if it had RSV1.
#[derive(Debug)]
struct Frame {
    opcode: u8,
    rsv1: bool,
    payload: Vec<u8>,
}

impl Frame {
    fn json(&self) -> Value {
        assert_eq!(self.opcode, 0x1, "a text frame: {self:?}");
        serde_json::from_slice(&self.payload).expect("JSON")
    }

    fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// Upgrades `path` offering `offer` (if any); returns the 101's headers.
async fn handshake(server: &TestServer, path: &str, offer: Option<&str>) -> (TcpStream, String) {
    let url = server.ws_url(path);
    let host = url.trim_start_matches("ws://").split('/').next().unwrap();
    let mut tcp = TcpStream::connect(host).await.unwrap();
    let extensions = offer
        .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extensions}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tcp, head)
}

/// The `Sec-WebSocket-Extensions` value of a 101, if any.
fn extensions(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_string())
    })
}

/// `text` deflated as RFC 7692 sends it: no `00 00 ff ff` tail.
fn deflate(text: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(text.len() + 1024);
    c.compress_vec(text, &mut out, FlushCompress::Sync).unwrap();
    assert_eq!(c.total_in() as usize, text.len());
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut d = Decompress::new(false);
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

impl DeflateWs {
    /// Opens `path` (a token in the query authenticates at once), offering
    /// permessage-deflate; asserts the server accepted it.
    async fn open(server: &TestServer, path: &str) -> DeflateWs {
        let (tcp, head) = handshake(server, path, Some(OFFER)).await;
        assert_eq!(extensions(&head).as_deref(), Some(ANSWER), "{head}");
        DeflateWs { tcp, wire_bytes: 0 }
    }

    /// Opens `path` without an offer.
    async fn plain(server: &TestServer, path: &str) -> DeflateWs {
        let (tcp, head) = handshake(server, path, None).await;
        assert_eq!(extensions(&head), None, "{head}");
        DeflateWs { tcp, wire_bytes: 0 }
    }

    /// Writes one masked frame with first byte `b0`.
    async fn frame(&mut self, b0: u8, payload: &[u8]) {
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        self.tcp.write_all(&out).await.unwrap();
    }

    /// Sends `text` compressed, in `parts` fragments.
    async fn send_compressed(&mut self, text: &str, parts: usize) {
        let deflated = deflate(text.as_bytes());
        let size = deflated.len().div_ceil(parts);
        let chunks: Vec<&[u8]> = deflated.chunks(size).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let fin = if i + 1 == chunks.len() { 0x80 } else { 0 };
            let first = if i == 0 { 0x40 | 0x1 } else { 0 };
            self.frame(fin | first, chunk).await;
        }
    }

    /// The next frame, inflated if compressed.
    async fn read(&mut self) -> Option<Frame> {
        let read = async {
            let mut head = [0u8; 2];
            self.tcp.read_exact(&mut head).await.ok()?;
            let (len, extra) = match head[1] & 0x7f {
                126 => (self.tcp.read_u16().await.ok()? as usize, 2),
                127 => (self.tcp.read_u64().await.ok()? as usize, 8),
                n => (n as usize, 0),
            };
            let mut payload = vec![0; len];
            self.tcp.read_exact(&mut payload).await.ok()?;
            self.wire_bytes += 2 + extra + len;
            let rsv1 = head[0] & 0x40 != 0;
            if rsv1 {
                payload = inflate(&payload);
            }
            Some(Frame {
                opcode: head[0] & 0x0f,
                rsv1,
                payload,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server neither sent a frame nor closed")
    }

    /// The next text frame, past pings.
    async fn next(&mut self) -> Frame {
        loop {
            let frame = self.read().await.expect("a frame");
            if frame.opcode != 0x9 && frame.opcode != 0xa {
                return frame;
            }
        }
    }

    /// The next frame of `message_type`, past others.
    async fn expect(&mut self, message_type: &str) -> Value {
        loop {
            let frame = self.next().await;
            let value = frame.json();
            if value["message_type"] == message_type {
                return value;
            }
            assert_ne!(value["message_type"], "Error", "{value}");
        }
    }

    /// Reads to the server's Close and returns its code.
    async fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.read().await.expect("a Close before the end");
            if let Some(code) = frame.close_code() {
                return code;
            }
        }
    }
}

#[tokio::test]
async fn deflate_is_negotiated_only_when_offered_and_enabled() {
    use crate::support::metrics::scrape_until;
    let server = TestServer::start().await;
    let (compressing, head) = handshake(&server, "/ws", Some(OFFER)).await;
    assert_eq!(extensions(&head).as_deref(), Some(ANSWER));
    let (plain, head) = handshake(&server, "/ws", None).await;
    assert_eq!(extensions(&head), None, "no offer, no compression: {head}");
    let scrape = scrape_until(&server, "pytake_ws_connections", 2.0).await;
    assert_eq!(scrape.get("pytake_ws_connections_compressed"), 1.0);
    drop((compressing, plain));
    scrape_until(&server, "pytake_ws_connections_compressed", 0.0).await;
    // An offer the server cannot honour (a smaller server window) is
    // declined; a later acceptable one is taken.
    let offer = "permessage-deflate; server_max_window_bits=10";
    let (_, head) = handshake(&server, "/ws", Some(offer)).await;
    assert_eq!(extensions(&head), None, "{head}");
    let offer = "permessage-deflate; server_max_window_bits=10, permessage-deflate";
    let (_, head) = handshake(&server, "/ws", Some(offer)).await;
    assert_eq!(extensions(&head).as_deref(), Some(ANSWER));

    let off = TestServer::start_with(Options::args(&["--compression", "false"])).await;
    let (_, head) = handshake(&off, "/ws", Some(OFFER)).await;
    assert_eq!(extensions(&head), None, "compression = false: {head}");
}

#[tokio::test]
async fn compressed_events_inflate_to_what_a_plain_connection_reads_in_fewer_bytes() {
    let server = TestServer::start().await;
    let token = server.viewer("acme");
    let path = format!("/ws/conversations?token={token}");
    let mut deflating = DeflateWs::open(&server, &path).await;
    let mut plain = DeflateWs::plain(&server, &path).await;
    deflating.expect("Welcome").await;
    plain.expect("Welcome").await;
    server.wait_for_subscribers(2).await;
    deflating.wire_bytes = 0;
    plain.wire_bytes = 0;

    const EVENTS: usize = 50;
    let service = server.token(Some("acme"), pytake::protocol::Role::Service);
    for n in 0..EVENTS {
        server
            .publish(&service, message_sent("acme", &format!("wamid.{n:06}")))
            .await;
    }
    let mut compressed_frames = 0;
    for _ in 0..EVENTS {
        let a = deflating.next().await;
        let b = plain.next().await;
        assert!(!b.rsv1, "a connection that did not offer gets plain frames");
        compressed_frames += usize::from(a.rsv1);
        let (a, b) = (a.json(), b.json());
        assert_eq!(a["message_type"], "Event", "{a}");
        assert_eq!(a, b, "the same event, inflated");
    }
    assert_eq!(compressed_frames, EVENTS, "every event frame is compressed");
    assert!(
        deflating.wire_bytes * 10 < plain.wire_bytes * 8,
        "compressed {} bytes vs plain {}",
        deflating.wire_bytes,
        plain.wire_bytes
    );
}

#[tokio::test]
async fn compressed_client_messages_are_read_whole_and_fragmented() {
    let server = TestServer::start().await;
    let token = server.operator("acme");
    let mut ws = DeflateWs::open(&server, &format!("/ws?token={token}")).await;
    ws.expect("Welcome").await;
    let subscription = json!({"message_type": "Subscription",
        "payload": {"rooms": ["erp", "conversations", "campaigns", "conversation:c-1"]}});
    ws.send_compressed(&subscription.to_string(), 3).await;
    let subscribed = ws.expect("Subscribed").await;
    assert_eq!(subscribed["payload"]["rooms"][0], "erp", "{subscribed}");

    let publish = json!({"message_type": "Publish", "payload": {"room": "erp",
        "event_type": "OrderNoted", "data": {"note": "compressed ".repeat(20)}}});
    ws.send_compressed(&publish.to_string(), 1).await;
    let event = ws.expect("Event").await;
    assert_eq!(event["payload"]["event_type"], "OrderNoted", "{event}");
    assert_eq!(
        event["payload"]["data"]["note"],
        "compressed ".repeat(20).as_str()
    );
    // Plain frames still work on a compressing connection.
    let heartbeat = json!({"message_type": "Heartbeat", "payload": {}}).to_string();
    ws.frame(0x81, heartbeat.as_bytes()).await;
    ws.expect("HeartbeatAck").await;
}

#[tokio::test]
async fn a_compressed_message_inflating_past_the_limit_is_closed_1009() {
    let server = TestServer::start().await;
    let token = server.operator("acme");
    let mut ws = DeflateWs::open(&server, &format!("/ws?token={token}")).await;
    ws.expect("Welcome").await;
    // 4 MiB of spaces deflate to a few KiB: within the 64 KiB frame limit
    // compressed, far past it inflated.
    let bomb = format!(
        r#"{{"message_type":"Heartbeat","payload":{{"pad":"{}"}}}}"#,
        " ".repeat(4 << 20)
    );
    ws.send_compressed(&bomb, 1).await;
    assert_eq!(ws.close_code().await, 1009);
}

#[tokio::test]
async fn rsv1_on_a_control_frame_is_a_protocol_error() {
    let server = TestServer::start().await;
    let token = server.operator("acme");
    let mut ws = DeflateWs::open(&server, &format!("/ws?token={token}")).await;
    ws.expect("Welcome").await;
    ws.frame(0x80 | 0x40 | 0x9, b"ping").await;
    assert_eq!(ws.close_code().await, 1002);
}

#[tokio::test]
async fn rsv1_without_negotiation_is_a_protocol_error() {
    let server = TestServer::start().await;
    let token = server.operator("acme");
    let mut ws = DeflateWs::plain(&server, &format!("/ws?token={token}")).await;
    ws.expect("Welcome").await;
    let heartbeat = json!({"message_type": "Heartbeat", "payload": {}}).to_string();
    ws.send_compressed(&heartbeat, 1).await;
    assert_eq!(ws.close_code().await, 1002);
}
