//! The REST API and the router.

mod auth;
pub mod error;
mod events;
mod health;

pub use health::resident_memory;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;

use crate::protocol::limits::MAX_BODY_BYTES;
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
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
