//! The HTTP accept loop. axum's `serve` cannot bound how long a client
//! takes to send its request header, so connections are served here with
//! hyper's own builder, which can: a slowloris client is cut off after
//! [`HEADER_READ_TIMEOUT`]. The connection is wrapped so hyper's own
//! parse-error answers carry the API's JSON error body too, and so a
//! client that stops reading is cut off ([`stall::StallGuard`]).

mod parse_errors;
mod stall;

use std::io;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::protocol::limits::HEADER_READ_TIMEOUT;

/// Serves `app` on `listener` until `shutdown`, then lets each connection
/// finish its request in flight (keep-alive off) and returns once all
/// have; upgraded WebSockets are not connections here any more (the
/// gateway tracks them).
///
/// A connection whose writes make no progress for `write_stall` plus
/// [`STALL_MARGIN`] is dropped: an SSE stream or a response the client
/// stopped reading. The margin lets the gateway close a stalled WebSocket
/// its own way first (at `write_stall`, with a close code and a grace).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    write_stall: std::time::Duration,
) -> io::Result<()> {
    let stall_limit = write_stall + STALL_MARGIN;
    let connections = TaskTracker::new();
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Nagle's algorithm would hold each small frame until the previous
        // one is acknowledged, and the peer delays that ACK by up to 40 ms:
        // fatal for a realtime fan-out of small frames.
        let (tcp, peer) = tcp;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
        // The peer's address, for the caps on connections per address.
        let service =
            TowerToHyperService::new(app.clone().map_request(move |req: Request<Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            }));
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            // HTTP/1 only (nothing here speaks HTTP/2): hyper-util's
            // auto-detecting builder reads the protocol preface with no
            // timer, so a client that connects and says nothing would
            // never be timed out. This one's header timer starts at once.
            let io = stall::StallGuard::new(tcp, stall_limit);
            let io = TokioIo::new(parse_errors::JsonParseErrors::new(io));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    connections.close();
    // A client that stops reading a response, or trickles a body, would
    // hold its connection (and so the shutdown) forever.
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            "HTTP connections still open after the drain timeout; dropping them"
        );
    }
    Ok(())
}

/// Beyond the gateway's own write stall and close grace (2 s), before the
/// socket itself is dropped.
const STALL_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// How long shutdown waits for HTTP requests in flight.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Errors of one connection (reset before it was accepted): not the
/// listener's fault.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    const WRITE_STALL: std::time::Duration = std::time::Duration::from_secs(10);

    /// A client that asks for an endless stream (an SSE subscriber) and
    /// stops reading: the server's writes fill the socket, and after the
    /// stall limit the connection and its response stream are dropped,
    /// while a client that reads keeps its stream. On the paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_off() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        static OPEN: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                OPEN.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // 64 KiB every 10 ms, as a busy SSE stream would.
        let endless = || async {
            OPEN.fetch_add(1, Ordering::SeqCst);
            let guard = Arc::new(Counted);
            let chunks = futures_util::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                Some((Ok::<_, std::convert::Infallible>(chunk), guard))
            });
            Body::from_stream(chunks)
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = Router::new().route("/stream", get(endless));
        tokio::spawn(serve(listener, app, shutdown.clone(), WRITE_STALL));

        let mut reader = TcpStream::connect(addr).await.unwrap();
        reader
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut chunk = vec![0u8; 256 * 1024];
        // Both streams open: a wait on the paused clock (each pause lets
        // it move on), bounded well below the stall limit.
        let opened = tokio::time::Instant::now();
        while OPEN.load(Ordering::SeqCst) != 2 {
            assert!(opened.elapsed() < WRITE_STALL, "the streams never opened");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let started = tokio::time::Instant::now();
        while OPEN.load(Ordering::SeqCst) != 1 {
            // Reading keeps one stream alive; the paused clock moves on
            // whenever every task waits.
            let n = reader.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the reading client was cut off");
            assert!(
                started.elapsed() < WRITE_STALL * 10,
                "the stalled stream is still open"
            );
        }
        let waited = started.elapsed();
        assert!(
            waited >= WRITE_STALL + STALL_MARGIN,
            "cut off after {waited:?}"
        );
        drop(stalled);
        shutdown.cancel();
    }

    /// The clock is paused: tokio moves it on whenever every task waits, so
    /// the 10 s timeout passes at once, and only a timer can close the
    /// socket.
    #[tokio::test(start_paused = true)]
    async fn a_request_header_not_sent_in_time_closes_the_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let server = tokio::spawn(serve(listener, app, shutdown.clone(), WRITE_STALL));

        let mut prompt = TcpStream::connect(addr).await.unwrap();
        prompt
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut reply = [0u8; 12];
        prompt.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"HTTP/1.1 200");

        // Silent from the start: no byte at all.
        let started = tokio::time::Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut nothing = Vec::new();
        let _ = silent.read_to_end(&mut nothing).await;
        assert!(nothing.is_empty());
        let waited = started.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT * 2,
            "closed after {waited:?}"
        );

        let started = tokio::time::Instant::now();
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHos").await.unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest).await;
        assert!(
            rest.is_empty() || rest.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
        let waited = started.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT * 2,
            "closed after {waited:?}"
        );
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}
