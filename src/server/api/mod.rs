//! The REST API and the router.

mod alerts;
mod auth;
mod body;
mod campaigns;
mod conversations;
mod dashboard;
pub mod error;
mod events;
mod export;
mod health;
pub mod long_poll;
mod presence;
mod queue;
mod scope;
mod stream;
mod webhooks;

pub use health::resident_memory;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::protocol::limits::{BODY_READ_TIMEOUT, MAX_BODY_BYTES, MAX_URI_BYTES};
use crate::server::gateway;
use crate::server::state::AppState;
use crate::server::telemetry;

pub use auth::Caller;
pub use error::ApiError;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    limits(
        Router::new()
            .route("/health", get(health::get_health))
            .route("/ready", get(health::get_ready))
            .route("/metrics", get(telemetry::http::get_metrics))
            .route(
                "/api/v1/events",
                get(events::get_events).post(events::post_events),
            )
            .route("/api/v1/events/export", get(export::events))
            .route("/api/v1/stream", get(stream::get_stream))
            .route("/api/v1/dashboard/overview", get(dashboard::overview))
            .route("/api/v1/dashboard/metrics", get(dashboard::metrics))
            .route("/api/v1/dashboard/export", post(dashboard::export))
            .route("/api/v1/dashboard/alerts", get(alerts::dashboard))
            .route("/api/v1/alerts", get(alerts::alerts))
            .route("/api/v1/alerts/history", get(alerts::history))
            .route("/api/v1/alerts/incidents", get(alerts::incidents))
            .route(
                "/api/v1/alerts/rules",
                get(alerts::rules).post(alerts::create_rule),
            )
            .route(
                "/api/v1/alerts/rules/{id}",
                get(alerts::rule)
                    .put(alerts::replace_rule)
                    .delete(alerts::delete_rule),
            )
            .route(
                "/api/v1/alerts/rules/{id}/{action}",
                post(alerts::set_enabled),
            )
            .route(
                "/api/v1/alerts/silences",
                get(alerts::silences).post(alerts::add_silence),
            )
            .route(
                "/api/v1/alerts/silences/{id}",
                axum::routing::delete(alerts::delete_silence),
            )
            .route("/api/v1/alerts/{id}/ack", post(alerts::acknowledge))
            .route("/api/v1/campaigns", get(campaigns::list))
            .route("/api/v1/campaigns/dashboard", get(campaigns::dashboard))
            .route("/api/v1/campaigns/{id}/metrics", get(campaigns::metrics))
            .route(
                "/api/v1/campaigns/{id}/performance",
                get(campaigns::performance),
            )
            .route("/api/v1/campaigns/{id}/export", get(export::campaign))
            .route("/api/v1/conversations/{id}", get(conversations::get))
            .route(
                "/api/v1/conversations/{id}/transfer",
                post(conversations::transfer),
            )
            .route("/api/v1/presence", get(presence::list))
            .route("/api/v1/queue/stats", get(queue::stats))
            .route(
                "/api/v1/queue/jobs",
                get(queue::list).post(queue::enqueue).delete(queue::purge),
            )
            .route("/api/v1/queue/jobs/{id}", get(queue::get))
            .route("/api/v1/queue/jobs/{id}/retry", post(queue::retry))
            .route("/api/v1/queue/dead/retry", post(queue::retry_dead))
            .route(
                "/api/v1/webhooks/{source}",
                get(webhooks::verify).post(webhooks::receive),
            )
            .route("/ws", get(gateway::ws_root))
            .route("/ws/tenant/{id}", get(gateway::ws_tenant))
            .route("/ws/{room}", get(gateway::ws_room))
            .fallback(|uri: Uri| async move {
                ApiError::NotFound(format!("no such endpoint: {}", uri.path()))
            })
            .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
                ApiError::MethodNotAllowed(format!(
                    "{method} is not allowed on {}: see the Allow header",
                    uri.path()
                ))
            })
            .layer(middleware::from_fn_with_state(
                state.clone(),
                crate::server::ratelimit::enforce,
            ))
            .layer(middleware::from_fn_with_state(
                state.telemetry.http.clone(),
                telemetry::http::track,
            )),
    )
    .with_state(state)
}

/// The request limits every route shares: body size, body read gaps,
/// target length.
fn limits<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(middleware::from_fn(refuse_long_uris))
}

/// 414 as JSON for a target over [`MAX_URI_BYTES`] (hyper itself answers,
/// with an empty body, only past 64 KiB).
async fn refuse_long_uris(request: Request, next: Next) -> Response {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::UriTooLong(format!(
            "request target of {len} bytes is over the limit of {MAX_URI_BYTES}"
        ))
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::limits::BODY_TOTAL_TIMEOUT;
    use axum::body::Bytes;
    use axum::extract::rejection::BytesRejection;
    use axum::routing::post;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::sync::CancellationToken;

    /// A body trickled a byte every 9 s (inside the 10 s gap limit) is
    /// answered 408 once 30 s have passed; the clock is paused, so virtual
    /// time passes at once.
    #[tokio::test(start_paused = true)]
    async fn a_body_trickled_inside_the_gap_limit_still_ends() {
        let app = limits(Router::new().route(
            "/",
            post(|request: Request| async move {
                match body::read_body(request).await {
                    Ok(_) => "read".into_response(),
                    Err(e) => e.into_response(),
                }
            }),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(crate::server::http::serve(
            listener,
            app,
            shutdown.clone(),
            crate::protocol::limits::WRITE_STALL,
        ));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut rx, mut tx) = tcp.into_split();
        tx.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(std::time::Duration::from_secs(9)).await;
                if tx.write_all(b"x").await.is_err() {
                    return;
                }
            }
        });
        let mut answer = vec![0u8; 1024];
        let n = rx.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        let waited = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 30s"), "{answer}");
        assert!(
            waited >= BODY_TOTAL_TIMEOUT
                && waited < BODY_TOTAL_TIMEOUT + std::time::Duration::from_secs(10),
            "{waited:?}"
        );
        trickle.abort();
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }

    /// The clock is paused and moves on whenever every task waits: the
    /// 10 s gap passes at once, and only the timeout can end the request.
    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_the_request() {
        let app = limits(Router::new().route(
            "/",
            post(|body: Result<Bytes, BytesRejection>| async move {
                match body {
                    Ok(_) => "read".to_string(),
                    Err(e) => e.body_text(),
                }
            }),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(crate::server::http::serve(
            listener,
            app,
            shutdown.clone(),
            crate::protocol::limits::WRITE_STALL,
        ));
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"half\":")
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut answer = vec![0u8; 1024];
        let n = tcp.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(started.elapsed() >= BODY_READ_TIMEOUT, "{answer}");
        assert!(
            answer.contains("timed out") || answer.contains("timeout"),
            "{answer}"
        );
        shutdown.cancel();
        drop(tcp);
        server.await.unwrap().unwrap();
    }
}
