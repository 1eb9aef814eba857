//! A real HTTP peer on loopback that records what it is sent: the Slack
//! or webhook receiver of alert notifications. It can answer 500 to the
//! first requests, to test retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

struct Inner {
    received: Mutex<Vec<Received>>,
    /// Requests still to refuse with 500.
    refuse: AtomicUsize,
}

pub struct Peer {
    addr: std::net::SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// A peer that answers 200 to everything.
    pub async fn start() -> Peer {
        Peer::refusing(0).await
    }

    /// A peer that answers 500 to the first `n` requests.
    pub async fn refusing(n: usize) -> Peer {
        let inner = Arc::new(Inner {
            received: Mutex::new(Vec::new()),
            refuse: AtomicUsize::new(n),
        });
        let state = inner.clone();
        let app = Router::new().route(
            "/{*path}",
            post(
                move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
                    let state = state.clone();
                    async move {
                        let refused = state
                            .refuse
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok();
                        if refused {
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let body = serde_json::from_slice(&body).unwrap_or_else(|_| {
                            Value::String(String::from_utf8_lossy(&body).into())
                        });
                        state.received.lock().unwrap().push(Received {
                            path: uri.path().to_string(),
                            headers,
                            body,
                        });
                        StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Peer { addr, inner, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// What it accepted so far, in order.
    pub async fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
