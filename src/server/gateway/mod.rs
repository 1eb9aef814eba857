//! The WebSocket gateway: `/ws`, `/ws/{room}` and `/ws/tenant/{id}`.

mod alert;
mod close;
#[cfg(test)]
mod close_tests;
#[cfg(feature = "conformance")]
pub mod conformance;
mod connection;
mod directory;
pub mod hub;
mod presence;
mod session;
pub mod stats;
mod upgrade;
pub mod wire;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use upgrade::WsUpgrade;

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

fn upgrade(ws: WsUpgrade, state: AppState, target: Target, token: Option<String>) -> Response {
    let tracker = state.tracker.clone();
    ws.on_upgrade(move |io| tracker.track_future(connection::run(io, state, target, token)))
}

/// `GET /ws`.
pub async fn ws_root(
    ws: WsUpgrade,
    State(state): State<AppState>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, Target::Nothing, token)
}

/// `GET /ws/{room}`.
pub async fn ws_room(
    ws: WsUpgrade,
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
    ws: WsUpgrade,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, Target::Tenant(tenant), token)
}
