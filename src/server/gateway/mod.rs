//! The WebSocket gateway: `/ws`, `/ws/{room}` and `/ws/tenant/{id}`.

mod connection;
pub mod hub;
mod session;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use crate::server::state::AppState;

/// What the endpoint asked for, joined right after authentication.
#[derive(Debug, Clone)]
pub enum Target {
    /// `/ws`: nothing until a `Subscription`.
    Nothing,
    /// `/ws/{room}`: that room of the token's tenant.
    Room(String),
    /// `/ws/tenant/{id}`: every room of one tenant.
    Tenant(String),
}

#[derive(Deserialize)]
pub struct UpgradeQuery {
    token: Option<String>,
}

/// Token from `?token=` or `Authorization: Bearer` at upgrade.
fn upgrade_token(query: UpgradeQuery, headers: &HeaderMap) -> Option<String> {
    query.token.filter(|t| !t.is_empty()).or_else(|| {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
    })
}

fn upgrade(
    ws: WebSocketUpgrade,
    state: AppState,
    target: Target,
    token: Option<String>,
) -> Response {
    let limits = &state.gateway;
    let tracker = state.tracker.clone();
    ws.max_message_size(limits.max_frame_bytes)
        .max_frame_size(limits.max_frame_bytes)
        // Small buffers keep an idle connection cheap; tungstenite's default
        // 128 KiB read buffer (zero-filled on every read) would dominate its
        // memory and CPU. Client frames are small; big ones take more reads.
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(limits.max_frame_bytes.max(64 * 1024) * 4)
        .on_upgrade(move |socket| {
            tracker.track_future(connection::run(socket, state, target, token))
        })
}

/// `GET /ws`.
pub async fn ws_root(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, Target::Nothing, token)
}

/// `GET /ws/{room}`.
pub async fn ws_room(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, Target::Room(room), token)
}

/// `GET /ws/tenant/{id}`.
pub async fn ws_tenant(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, Target::Tenant(tenant), token)
}
