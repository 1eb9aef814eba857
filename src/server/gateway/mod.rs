//! The WebSocket gateway: `/ws`, `/ws/{room}` and `/ws/tenant/{id}`.

mod alert;
mod close;
#[cfg(test)]
mod close_tests;
#[cfg(feature = "conformance")]
pub mod conformance;
mod connection;
mod deflate;
mod directory;
mod dispatch;
pub mod hub;
mod presence;
mod session;
pub mod stats;
mod transfer;
mod upgrade;
pub mod wire;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use upgrade::WsUpgrade;

use crate::server::caps::Peer;
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

/// Admits the connection under the caps, then answers 101. Checked before
/// the upgrade: a refused client gets a 503 and costs no task and no
/// buffers. A valid token at upgrade counts against its tenant at once;
/// otherwise the connection counts against its address until `Auth`.
fn upgrade(
    mut ws: WsUpgrade,
    state: AppState,
    peer: Peer,
    target: Target,
    token: Option<String>,
) -> Response {
    let claims = token.as_deref().and_then(|t| state.keys.verify(t).ok());
    let admission = match state.caps.admit(peer.0, claims.as_ref()) {
        Ok(admission) => admission,
        Err(refusal) => return refusal.into_response(),
    };
    let tracker = state.tracker.clone();
    let deflate = ws.negotiate_deflate(state.gateway.compression);
    ws.on_upgrade(move |io| {
        tracker.track_future(connection::run(
            io, state, target, token, deflate, admission,
        ))
    })
}

/// `GET /ws`.
pub async fn ws_root(
    ws: WsUpgrade,
    peer: Peer,
    State(state): State<AppState>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, peer, Target::Nothing, token)
}

/// `GET /ws/{room}`.
pub async fn ws_room(
    ws: WsUpgrade,
    peer: Peer,
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, peer, Target::Room(room), token)
}

/// `GET /ws/tenant/{id}`.
pub async fn ws_tenant(
    ws: WsUpgrade,
    peer: Peer,
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    Query(query): Query<UpgradeQuery>,
    headers: HeaderMap,
) -> Response {
    let token = upgrade_token(query, &headers);
    upgrade(ws, state, peer, Target::Tenant(tenant), token)
}
