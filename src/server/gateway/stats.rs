//! The gateway's counters: plain atomics bumped where things happen and
//! read by `/health` and, at scrape time, by `/metrics` (see
//! [`crate::server::telemetry`]). Nothing on the fan-out takes a lock, so
//! counting costs it one relaxed add per frame at most.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocol::close;

/// Counters shown by `/health` and `/metrics`.
#[derive(Default)]
pub struct HubStats {
    /// Open now.
    pub connections: AtomicU64,
    /// Open and authenticated now.
    pub authenticated: AtomicU64,
    /// Open now with permessage-deflate negotiated.
    pub compressed: AtomicU64,
    /// Opened since start.
    pub opened: AtomicU64,
    pub slow_consumers: AtomicU64,
    /// Event frames the hub handed to connections (fan-out).
    pub delivered: AtomicU64,
    /// Text frames a connection sent itself: replies and replayed events.
    pub replies: AtomicU64,
    /// Text and binary messages received from clients.
    pub client_messages: AtomicU64,
    /// Bytes written to client sockets (shared with every [`CountedIo`]).
    pub bytes_sent: Arc<AtomicU64>,
    /// Messages the hub received from the bus.
    pub bus_received: AtomicU64,
    /// Messages the hub missed because it fell behind the bus.
    pub bus_lagged: AtomicU64,
    /// Presence and typing frames the hub lost by falling behind the bus
    /// (nobody is closed for them).
    pub frames_lagged: AtomicU64,
    /// Connections ended, by [`CLOSE_KINDS`] index.
    pub closes: [AtomicU64; CLOSE_KINDS.len()],
    /// Authenticated connections by their token's tenant (admin tokens
    /// without one count only in `authenticated`): the per-tenant
    /// `websocket_connections` figure. Locked once when a connection
    /// authenticates and once when it ends, never per frame.
    pub by_tenant: Mutex<HashMap<String, u64>>,
}

impl HubStats {
    pub fn tenant_connected(&self, tenant: &str) {
        *self
            .by_tenant
            .lock()
            .expect("stats lock")
            .entry(tenant.to_string())
            .or_default() += 1;
    }

    pub fn tenant_disconnected(&self, tenant: &str) {
        let mut by_tenant = self.by_tenant.lock().expect("stats lock");
        if let Some(n) = by_tenant.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by_tenant.remove(tenant);
            }
        }
    }

    /// Connections per tenant now.
    pub fn tenants(&self) -> HashMap<String, u64> {
        self.by_tenant.lock().expect("stats lock").clone()
    }
}

/// How a connection ended, as `/metrics` labels it: the close code the
/// server sent and a stable name for it, or `none` when the server sent
/// no Close (the client closed, or the connection dropped). A fixed table,
/// so the label set stays bounded whatever code a future change sends.
pub const CLOSE_KINDS: [(&str, &str); 14] = [
    ("none", "client_closed"),
    ("none", "connection_lost"),
    ("1000", "normal"),
    ("1001", "going_away"),
    ("1002", "protocol_error"),
    ("1007", "invalid_payload"),
    ("1009", "too_big"),
    ("1011", "internal_error"),
    ("4001", "unauthorized"),
    ("4003", "forbidden"),
    ("4008", "rate_limited"),
    ("4009", "slow_consumer"),
    ("4400", "bad_message"),
    ("1013", "try_again_later"),
];

/// The [`CLOSE_KINDS`] index of a close the client started.
pub const CLIENT_CLOSED: usize = 0;
/// The [`CLOSE_KINDS`] index of a connection that dropped without a Close.
pub const CONNECTION_LOST: usize = 1;

/// The [`CLOSE_KINDS`] index of a close the server sent with `code`; an
/// unknown code counts as `internal_error` (a new code belongs in the table).
pub fn close_kind(code: u16) -> usize {
    match code {
        close::NORMAL => 2,
        close::GOING_AWAY => 3,
        close::PROTOCOL_ERROR => 4,
        close::INVALID_PAYLOAD => 5,
        close::TOO_BIG => 6,
        close::UNAUTHORIZED => 8,
        close::FORBIDDEN => 9,
        close::RATE_LIMITED => 10,
        close::SLOW_CONSUMER => 11,
        close::BAD_MESSAGE => 12,
        close::TRY_AGAIN_LATER => 13,
        _ => 7,
    }
}

impl HubStats {
    /// Counts a connection that ended as `kind` (a [`CLOSE_KINDS`] index).
    pub fn closed(&self, kind: usize) {
        self.closes[kind].fetch_add(1, Ordering::Relaxed);
    }
}

/// A connection's socket that counts the bytes written to it into one
/// shared counter: one relaxed add per write syscall, never per frame.
pub struct CountedIo<T> {
    io: T,
    sent: Arc<AtomicU64>,
}

impl<T> CountedIo<T> {
    pub fn new(io: T, sent: Arc<AtomicU64>) -> CountedIo<T> {
        CountedIo { io, sent }
    }

    fn count(&self, written: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = written {
            self.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CountedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.count(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.count(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn every_close_code_has_its_own_row() {
        for (code, name) in CLOSE_KINDS.iter().skip(2) {
            let kind = close_kind(code.parse().unwrap());
            assert_eq!(CLOSE_KINDS[kind], (*code, *name));
        }
        assert_eq!(CLOSE_KINDS[close_kind(4999)].1, "internal_error");
        assert_eq!(CLOSE_KINDS[CLIENT_CLOSED].1, "client_closed");
        assert_eq!(CLOSE_KINDS[CONNECTION_LOST].1, "connection_lost");
    }

    #[tokio::test]
    async fn counts_the_bytes_written_not_those_read() {
        let sent = Arc::new(AtomicU64::new(0));
        let (server, mut client) = tokio::io::duplex(1024);
        let mut counted = CountedIo::new(server, sent.clone());
        counted.write_all(b"hello").await.unwrap();
        let slices = [IoSlice::new(b"ab"), IoSlice::new(b"cd")];
        let n = counted.write_vectored(&slices).await.unwrap();
        client.write_all(b"ignored").await.unwrap();
        let mut read = [0u8; 7];
        counted.read_exact(&mut read).await.unwrap();
        assert_eq!(sent.load(Ordering::Relaxed), 5 + n as u64);
    }
}
