//! `GET /health` (seed 003's health check) and `GET /ready`.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::protocol::api::{ConnectionStats, Health, ProcessStats};
use crate::server::state::AppState;

/// Status, uptime, version and connection counts; 503 while shutting down.
pub async fn get_health(State(state): State<AppState>) -> impl IntoResponse {
    let stopping = state.shutdown.is_cancelled();
    let stats = &state.hub.stats;
    let body = Health {
        status: if stopping { "shutting_down" } else { "ok" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: state.store.kind().into(),
        bus: state.bus.kind().into(),
        last_event_id: state.store.last_event_id().await.unwrap_or(0),
        websocket: ConnectionStats {
            total: stats.connections.load(Ordering::Relaxed),
            authenticated: stats.authenticated.load(Ordering::Relaxed),
            rooms: state.hub.room_count(),
            slow_consumers_closed: stats.slow_consumers.load(Ordering::Relaxed),
        },
        long_polls: state.long_polls.held() as u64,
        process: ProcessStats {
            rss_bytes: resident_memory(),
        },
    };
    let status = if stopping {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}

/// 200 when the server takes traffic: not shutting down and the store answers.
pub async fn get_ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": "shutting down"})),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({"ready": true}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check: store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"ready": false, "reason": "store unreachable"})),
            )
        }
    }
}

/// This process's resident memory in bytes (0 where the OS will not say).
pub fn resident_memory() -> u64 {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let Ok(pid) = sysinfo::get_current_pid() else {
        return 0;
    };
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|p| p.memory()).unwrap_or(0)
}
