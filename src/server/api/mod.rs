//! The REST API and the router.

mod auth;
pub mod error;
mod events;
mod health;
pub mod long_poll;

pub use health::resident_memory;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::protocol::limits::{BODY_READ_TIMEOUT, MAX_BODY_BYTES, MAX_URI_BYTES};
use crate::server::gateway;
use crate::server::state::AppState;

pub use auth::Caller;
pub use error::ApiError;

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health::get_health))
        .route("/ready", get(health::get_ready))
        .route(
            "/api/v1/events",
            get(events::get_events).post(events::post_events),
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(RequestBodyTimeoutLayer::new(BODY_READ_TIMEOUT))
        .layer(middleware::from_fn(refuse_long_uris))
        .with_state(state)
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
