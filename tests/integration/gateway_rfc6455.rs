//! RFC 6455 as a hostile or careless client meets it: raw frames a client
//! library would refuse to send, and the close code each one must earn.
//! The Autobahn testsuite covers the same ground exhaustively in CI
//! (`conformance/autobahn.sh`); these pin the behaviour per commit.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestServer;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;

/// A WebSocket client that writes whatever frame it is told to.
struct RawWs {
    tcp: TcpStream,
}

/// A frame as read off the socket.
#[derive(Debug)]
struct Frame {
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

impl RawWs {
    /// Upgrades `path` (a token in the query authenticates at once).
    async fn connect(server: &TestServer, path: &str) -> RawWs {
        let url = server.ws_url(path);
        let host = url.trim_start_matches("ws://").split('/').next().unwrap();
        let mut tcp = TcpStream::connect(host).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.unwrap());
        }
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        RawWs { tcp }
    }

    /// Writes one frame; `masked` false breaks the client masking rule.
    async fn frame(&mut self, first: u8, payload: &[u8], masked: bool) {
        let mut out = vec![first];
        let mask_bit = if masked { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(mask_bit | n as u8),
            n if n <= 0xffff => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if masked {
            let key = [0x37, 0xfa, 0x21, 0x3d];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        self.tcp.write_all(&out).await.unwrap();
    }

    /// A final, masked frame of `opcode`.
    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        self.frame(0x80 | opcode, payload, true).await;
    }

    /// The next frame, or `None` once the server closed the TCP connection.
    async fn read(&mut self) -> Option<Frame> {
        let read = async {
            let mut head = [0u8; 2];
            self.tcp.read_exact(&mut head).await.ok()?;
            let len = match head[1] & 0x7f {
                126 => self.tcp.read_u16().await.ok()? as usize,
                127 => self.tcp.read_u64().await.ok()? as usize,
                n => n as usize,
            };
            let mut payload = vec![0; len];
            self.tcp.read_exact(&mut payload).await.ok()?;
            Some(Frame {
                opcode: head[0] & 0x0f,
                payload,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server neither sent a frame nor closed")
    }

    /// Reads past data frames to the server's Close; then the server must
    /// drop the TCP connection. Returns the Close frame.
    async fn close_frame(&mut self) -> Frame {
        loop {
            let frame = self
                .read()
                .await
                .expect("a Close frame before the TCP close");
            if frame.opcode == OP_CLOSE {
                self.send(OP_CLOSE, &frame.payload[..2.min(frame.payload.len())])
                    .await;
                assert!(self.read().await.is_none(), "TCP still open after Close");
                return frame;
            }
        }
    }
}

async fn authenticated(server: &TestServer) -> RawWs {
    let mut ws = RawWs::connect(server, &format!("/ws?token={}", server.viewer("acme"))).await;
    let welcome = ws.read().await.expect("Welcome");
    assert!(String::from_utf8_lossy(&welcome.payload).contains("\"Welcome\""));
    ws
}

#[tokio::test]
async fn a_client_close_is_answered_with_a_close_then_the_tcp_close() {
    let server = TestServer::start().await;
    let mut ws = authenticated(&server).await;
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    ws.send(OP_CLOSE, &payload).await;
    let reply = ws
        .read()
        .await
        .expect("a Close in reply, not a dropped socket");
    assert_eq!(reply.opcode, OP_CLOSE);
    assert_eq!(reply.close_code(), Some(1000));
    assert!(
        ws.read().await.is_none(),
        "the server closes TCP after the handshake"
    );
}

#[tokio::test]
async fn invalid_utf8_fails_the_connection_with_1007() {
    let server = TestServer::start().await;
    // κόσμε followed by a UTF-16 surrogate, which UTF-8 forbids.
    let bad = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80";
    let mut ws = authenticated(&server).await;
    ws.send(OP_TEXT, bad).await;
    assert_eq!(ws.close_frame().await.close_code(), Some(1007));

    // Fail fast: the bad first fragment is enough; the message never ends.
    let mut ws = authenticated(&server).await;
    ws.frame(OP_TEXT, bad, true).await;
    assert_eq!(ws.close_frame().await.close_code(), Some(1007));
}

#[tokio::test]
async fn protocol_violations_fail_the_connection_with_1002() {
    let server = TestServer::start().await;
    let violations: [(&str, u8, Vec<u8>, bool); 8] = [
        (
            "RSV1 without an extension",
            0x80 | 0x40 | OP_TEXT,
            b"{}".to_vec(),
            true,
        ),
        ("RSV3 on a ping", 0x80 | 0x10 | OP_PING, vec![], true),
        ("reserved data opcode 3", 0x80 | 0x3, vec![], true),
        ("reserved control opcode 11", 0x80 | 0xb, vec![], true),
        ("200-byte ping", 0x80 | OP_PING, vec![b'p'; 200], true),
        (
            "unmasked client frame",
            0x80 | OP_TEXT,
            b"{}".to_vec(),
            false,
        ),
        (
            "continuation with nothing to continue",
            0x80 | OP_CONTINUATION,
            b"x".to_vec(),
            true,
        ),
        ("fragmented ping", OP_PING, vec![], true),
    ];
    for (what, first, payload, masked) in violations {
        let mut ws = authenticated(&server).await;
        ws.frame(first, &payload, masked).await;
        let close = ws.close_frame().await;
        assert_eq!(close.close_code(), Some(1002), "{what}: {close:?}");
    }
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000] {
        let mut ws = authenticated(&server).await;
        ws.send(OP_CLOSE, &code.to_be_bytes()).await;
        let reply = ws.read().await.expect("a Close in reply");
        assert_eq!(reply.close_code(), Some(1002), "close code {code}");
        assert!(ws.read().await.is_none());
    }
}
