//! One load-test connection: connect (from a chosen loopback source
//! address), authenticate, subscribe to one room, then count every delivery
//! by sequence number and record its latency from the intended send time.
//! Frames are scanned, not parsed: at a million deliveries a second the
//! generator must stay cheaper than the server it measures.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use memchr::memmem;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::Shared;
use crate::protocol::{ClientFrame, ServerFrame, Subscription};

/// Latency samples kept locally before they are merged into a shared
/// histogram shard: one lock per batch, not per delivery.
const SAMPLE_BATCH: usize = 256;

/// What one connection is asked to do.
pub struct Plan {
    pub index: usize,
    /// The target's index (`LoadConfig::targets`).
    pub node: usize,
    pub server: SocketAddr,
    pub source: Option<IpAddr>,
    pub token: String,
    pub group: usize,
    pub tenant: String,
    pub room: String,
    /// Replay from here (open model: connections arriving mid-run).
    pub since: Option<i64>,
    /// Held while connecting; released once subscribed or failed.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// What one connection saw.
#[derive(Default)]
pub struct Outcome {
    pub node: usize,
    pub group: usize,
    pub subscribed: bool,
    pub received: u64,
    pub duplicated: u64,
}

/// Seen sequence numbers.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    /// Marks `seq`; false if it was already marked.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.0.len() {
            self.0.resize(word + 1, 0);
        }
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }
}

/// Reads the unsigned integer right after `key` in `frame`.
fn number_after(frame: &[u8], finder: &memmem::Finder<'_>) -> Option<u64> {
    let at = finder.find(frame)? + finder.needle().len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// The event fields a delivery is measured by.
struct Delivery {
    id: u64,
    seq: u64,
    intended_us: u64,
}

struct Scanner {
    event: memmem::Finder<'static>,
    id: memmem::Finder<'static>,
    seq: memmem::Finder<'static>,
    t: memmem::Finder<'static>,
}

impl Scanner {
    fn new() -> Scanner {
        Scanner {
            event: memmem::Finder::new(br#""message_type":"Event""#),
            id: memmem::Finder::new(br#""id":"#),
            seq: memmem::Finder::new(br#""seq":"#),
            t: memmem::Finder::new(br#""t":"#),
        }
    }

    fn delivery(&self, frame: &[u8]) -> Option<Delivery> {
        self.event.find(&frame[..frame.len().min(64)])?;
        Some(Delivery {
            id: number_after(frame, &self.id)?,
            seq: number_after(frame, &self.seq)?,
            intended_us: number_after(frame, &self.t)?,
        })
    }
}

/// Runs one connection until the run stops.
pub async fn run(mut plan: Plan, shared: Arc<Shared>) -> Outcome {
    let permit = plan.permit.take();
    session(plan, &shared, permit).await
}

async fn session(
    plan: Plan,
    shared: &Arc<Shared>,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> Outcome {
    let mut outcome = Outcome {
        node: plan.node,
        group: plan.group,
        ..Outcome::default()
    };
    let socket = match plan.server {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    };
    let connect = async {
        let socket = socket?;
        if let Some(ip) = plan.source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(plan.server).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    };
    let stream = match connect.await {
        Ok(stream) => stream,
        Err(e) => {
            let kind = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect_refused".to_string(),
                std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse => {
                    "connect_no_ports".to_string()
                }
                _ if e.raw_os_error() == Some(24) => "connect_too_many_open_files".to_string(),
                _ => format!("connect_{:?}", e.kind()).to_lowercase(),
            };
            shared.fail(plan.node, &kind);
            return outcome;
        }
    };
    let mut config = WebSocketConfig::default();
    // Small buffers: thousands of connections live in this one process.
    config.read_buffer_size = 4096;
    config.write_buffer_size = 0;
    // The token goes with the upgrade, so the connection is admitted as
    // its tenant's at once rather than counted against this source
    // address's cap on connections not yet authenticated.
    let request =
        match tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            format!("ws://{}/ws", plan.server),
        )
        .map(|mut request| {
            if let Ok(value) = format!("Bearer {}", plan.token).parse() {
                request.headers_mut().insert("authorization", value);
            }
            request
        }) {
            Ok(request) => request,
            Err(_) => {
                shared.fail(plan.node, "handshake");
                return outcome;
            }
        };
    let mut ws =
        match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
            Ok((ws, _)) => ws,
            Err(_) => {
                shared.fail(plan.node, "handshake");
                return outcome;
            }
        };
    let subscribe = [ClientFrame::Subscription(Subscription {
        rooms: vec![plan.room.clone()],
        tenant_id: Some(plan.tenant.clone()),
        since: plan.since,
        ..Subscription::default()
    })];
    for frame in subscribe {
        if ws
            .send(Message::Text(frame.to_text().into()))
            .await
            .is_err()
        {
            shared.fail(plan.node, "handshake");
            return outcome;
        }
    }
    // Welcome, then Subscribed (with the head that tells replay from live).
    let mut head: Option<u64> = None;
    while head.is_none() {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = shared.stop.cancelled() => return outcome,
        };
        match frame {
            Some(Ok(Message::Text(text))) => match ServerFrame::parse(text.as_str()) {
                Ok(ServerFrame::Subscribed(s)) => head = Some(s.head.max(0) as u64),
                Ok(ServerFrame::Error(e)) => {
                    shared.fatal(format!("{}: {}", e.code, e.message));
                    shared.fail(plan.node, &format!("rejected_{}", e.code));
                    return outcome;
                }
                _ => {}
            },
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                shared.fail(plan.node, &format!("closed_{code}"));
                return outcome;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                shared.fail(plan.node, "handshake");
                return outcome;
            }
        }
    }
    let head = head.unwrap_or(0);
    outcome.subscribed = true;
    shared.subscribed(plan.group, plan.node);
    permit.take();

    let scanner = Scanner::new();
    let mut seen = Seen::default();
    let mut samples: Vec<u64> = Vec::with_capacity(SAMPLE_BATCH);
    let shard = plan.index % shared.shards.len();
    // Pinned once: a fresh `cancelled()` per frame costs a lock each.
    let stop = shared.stop.clone().cancelled_owned();
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            biased;
            frame = ws.next() => frame,
            _ = &mut stop => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                shared.error(&format!("closed_{code}"));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                shared.error("connection_lost");
                break;
            }
        };
        let Some(d) = scanner.delivery(text.as_bytes()) else {
            continue;
        };
        if d.seq as usize % shared.groups != plan.group {
            shared.error("misrouted");
            continue;
        }
        if !seen.insert(d.seq) {
            outcome.duplicated += 1;
            continue;
        }
        outcome.received += 1;
        let now_us = shared.start.elapsed().as_micros() as u64;
        shared.delivered(now_us);
        // Replayed events (arrivals in the open model) count for loss, not
        // latency: they were sent before this connection existed.
        if d.id > head {
            samples.push(now_us.saturating_sub(d.intended_us).max(1));
            if samples.len() == SAMPLE_BATCH {
                shared.record(shard, &mut samples);
            }
        }
    }
    shared.record(shard, &mut samples);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ws.close(None)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_an_event_frame() {
        let frame = br#"{"message_type":"Event","payload":{"id":42,"event_type":"LoadTest","tenant_id":"loadtest-0","room":"campaign:lt-0","rooms":["campaign:lt-0"],"data":{"pad":"aaaa","seq":7,"t":123456},"timestamp":"2026-01-01T00:00:00.000Z"},"timestamp":"2026-01-01T00:00:00.000Z"}"#;
        let d = Scanner::new().delivery(frame).unwrap();
        assert_eq!((d.id, d.seq, d.intended_us), (42, 7, 123456));
        assert!(Scanner::new()
            .delivery(br#"{"message_type":"HeartbeatAck","payload":{}}"#)
            .is_none());
    }

    #[test]
    fn seen_marks_once() {
        let mut seen = Seen::default();
        assert!(seen.insert(0));
        assert!(seen.insert(130));
        assert!(!seen.insert(130));
        assert!(seen.insert(129));
    }
}
