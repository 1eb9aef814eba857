//! `GET /health` (seed 003's health check, grown into what `pytake status`
//! shows) and `GET /ready`.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::build_info;
use crate::protocol::api::{
    BusCheck, CheckStatus, Components, ConnectionStats, EventRates, Health, HealthStatus,
    ProcessStats, StoreCheck,
};
use crate::protocol::dashboard::SystemStats;
use crate::server::bus::BusState;
use crate::server::state::AppState;
use crate::server::storage::EventStore;

/// A store ping that takes longer than this makes the server `degraded`,
/// and `/health` stops waiting for it: every intake request waits on the
/// store, so a store this slow is felt by every producer.
pub const STORE_SLOW: Duration = Duration::from_secs(1);

/// Status, build, uptime, components, event rates and connection counts.
/// 200 while serving, `degraded` included (the process is alive and a
/// restart would not mend its store: `/ready` is the check that takes it
/// out of rotation); 503 while shutting down.
pub async fn get_health(State(state): State<AppState>) -> impl IntoResponse {
    let stopping = state.shutdown.is_cancelled();
    let components = Components {
        store: check_store(state.store.as_ref(), &state.store_url).await,
        bus: check_bus(&state),
    };
    let stats = &state.hub.stats;
    let intake = state.ingest.stats();
    let (rate, window_seconds) = intake.rate();
    let body = Health {
        status: overall(stopping, &components),
        version: build_info::VERSION.into(),
        revision: build_info::REVISION.into(),
        build_date: build_info::BUILD_DATE.into(),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: state.store.kind().into(),
        bus: state.bus.kind().into(),
        // The hub's head is the newest event published, which trails the
        // store only by a failed publish: good enough when the store is slow.
        last_event_id: tokio::time::timeout(STORE_SLOW, state.store.last_event_id())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| *state.hub.head().borrow()),
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
        events: Some(EventRates {
            total: intake.total(),
            // Over the seconds it was taken over, fewer just after start.
            per_second: round2(rate),
            window_seconds,
        }),
        components: Some(components),
        system: Some(system_stats(&state)),
        alerts: Some(state.alerting.health()),
        caps: Some(state.caps.health()),
    };
    let status = if stopping {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body))
}

/// The machine and this node's pool: the same figures as the overview's.
pub(super) fn system_stats(state: &AppState) -> SystemStats {
    let gauges = state.metrics.gauges();
    SystemStats {
        cpu_usage: gauges.system_cpu_usage.unwrap_or(0.0),
        memory_usage: gauges.system_memory_usage.unwrap_or(0.0),
        rss_bytes: resident_memory(),
        websocket_connections: state.hub.stats.connections.load(Ordering::Relaxed),
        store_pool: Some(state.store.pool_stats()),
        // Jobs waiting (pending or retrying), every node's.
        queue_depth: state.queue_stats.get().map(|q| {
            use crate::server::storage::jobs::JobStatus;
            q.depth[&JobStatus::Pending] + q.depth[&JobStatus::Retrying]
        }),
        uptime_seconds: state.started.elapsed().as_secs(),
    }
}

/// A store check as the overview lists it: status and a line.
pub(super) async fn store_subsystem(state: &AppState) -> (CheckStatus, String) {
    let check = check_store(state.store.as_ref(), &state.store_url).await;
    let detail = match (&check.error, check.latency_ms) {
        (Some(error), _) => format!("{} at {}: {error}", check.kind, check.url),
        (None, Some(ms)) => format!("{} at {}, ping {ms} ms", check.kind, check.url),
        (None, None) => format!("{} at {}", check.kind, check.url),
    };
    (check.status, detail)
}

/// The bus check as the overview lists it.
pub(super) fn bus_subsystem(state: &AppState) -> (CheckStatus, String) {
    let check = check_bus(state);
    let detail = match &check.error {
        Some(error) => format!("{} at {}: {error}", check.kind, check.url),
        None => format!("{} at {}", check.kind, check.url),
    };
    (check.status, detail)
}

/// The server's state from its parts: shutting down above all, then
/// `degraded` when any component is not `ok`.
pub fn overall(stopping: bool, components: &Components) -> HealthStatus {
    let Components { store, bus } = components;
    if stopping {
        HealthStatus::ShuttingDown
    } else if store.status != CheckStatus::Ok || bus.status != CheckStatus::Ok {
        HealthStatus::Degraded
    } else {
        HealthStatus::Ok
    }
}

/// The bus as its connection task last saw it: no round trip, so a
/// health poll adds nothing to a Redis that is struggling.
fn check_bus(state: &AppState) -> BusCheck {
    let (status, error) = match state.bus.state() {
        BusState::Up => (CheckStatus::Ok, None),
        BusState::Down { error } => {
            tracing::debug!(%error, "health check: the bus is down");
            (
                CheckStatus::Down,
                Some("the bus lost its connection (the server log says why); events reach subscribers from the store, late".to_string()),
            )
        }
    };
    BusCheck {
        status,
        kind: state.bus.kind().into(),
        url: crate::config::mask_url(&state.bus_url),
        error,
    }
}

/// Pings the store, giving up after [`STORE_SLOW`]. The store's own error
/// goes to the log, not into the unauthenticated reply.
async fn check_store(store: &dyn EventStore, url: &str) -> StoreCheck {
    let mut check = StoreCheck {
        status: CheckStatus::Ok,
        kind: store.kind().into(),
        url: mask_password(url),
        latency_ms: None,
        error: None,
    };
    match probe(store.ping(), STORE_SLOW).await {
        Probe::Answered(took) => check.latency_ms = Some(round2(took.as_secs_f64() * 1000.0)),
        Probe::Failed(e) => {
            tracing::warn!(error = %e, "health check: the store failed its ping");
            check.status = CheckStatus::Down;
            check.error = Some("the store failed its ping (the server log says why)".into());
        }
        Probe::TimedOut => {
            tracing::warn!(limit = ?STORE_SLOW, "health check: the store did not answer its ping in time");
            check.status = CheckStatus::Slow;
            check.error = Some(format!(
                "no answer within {}",
                crate::config::duration::format(STORE_SLOW)
            ));
        }
    }
    check
}

/// How a check went.
#[derive(Debug, PartialEq)]
enum Probe {
    Answered(Duration),
    Failed(String),
    TimedOut,
}

/// Runs `ping` for at most `limit`, timing it.
async fn probe<E: std::fmt::Display>(
    ping: impl Future<Output = Result<(), E>>,
    limit: Duration,
) -> Probe {
    let started = tokio::time::Instant::now();
    match tokio::time::timeout(limit, ping).await {
        Ok(Ok(())) => Probe::Answered(started.elapsed()),
        Ok(Err(e)) => Probe::Failed(e.to_string()),
        Err(_) => Probe::TimedOut,
    }
}

/// `scheme://user:***@host/db` for `scheme://user:secret@host/db`; any
/// other text unchanged. `/health` needs no token, so a store password must
/// never reach it.
pub fn mask_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

/// Two decimals are all a reader needs, and keep the JSON short.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// 200 when the server takes traffic: not shutting down, the store answers
/// and the bus is connected.
pub async fn get_ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": "shutting down"})),
        );
    }
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check: store unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": "store unreachable"})),
        );
    }
    if let BusState::Down { error } = state.bus.state() {
        tracing::warn!(%error, "readiness check: bus unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"ready": false, "reason": "bus unreachable"})),
        );
    }
    (StatusCode::OK, Json(serde_json::json!({"ready": true})))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::SqliteStore;

    #[test]
    fn a_store_password_never_reaches_health() {
        for (url, shown) in [
            (
                "postgres://pytake:s3cr3t@db:5432/pytake",
                "postgres://pytake:***@db:5432/pytake",
            ),
            (
                "postgres://u:p@ss@db/x?sslmode=require",
                "postgres://u:***@db/x?sslmode=require",
            ),
            ("redis://:hunter2@cache", "redis://:***@cache"),
            ("postgres://pytake@db/pytake", "postgres://pytake@db/pytake"),
            (
                "sqlite:///var/lib/pytake/pytake.db",
                "sqlite:///var/lib/pytake/pytake.db",
            ),
            ("sqlite://a@b/c", "sqlite://a@b/c"),
            ("memory", "memory"),
        ] {
            assert_eq!(mask_password(url), shown, "{url}");
        }
    }

    fn components(store: CheckStatus, bus: CheckStatus) -> Components {
        Components {
            store: StoreCheck {
                status: store,
                kind: "sqlite".into(),
                url: "sqlite://x".into(),
                latency_ms: None,
                error: None,
            },
            bus: BusCheck {
                status: bus,
                kind: "memory".into(),
                url: "memory".into(),
                error: None,
            },
        }
    }

    #[test]
    fn any_component_not_ok_degrades_and_shutdown_wins() {
        use CheckStatus::{Down, Ok as Up, Slow};
        assert_eq!(overall(false, &components(Up, Up)), HealthStatus::Ok);
        assert_eq!(
            overall(false, &components(Slow, Up)),
            HealthStatus::Degraded
        );
        assert_eq!(
            overall(false, &components(Down, Up)),
            HealthStatus::Degraded
        );
        assert_eq!(
            overall(false, &components(Up, Down)),
            HealthStatus::Degraded
        );
        assert_eq!(
            overall(true, &components(Up, Up)),
            HealthStatus::ShuttingDown
        );
        assert_eq!(
            overall(true, &components(Down, Up)),
            HealthStatus::ShuttingDown
        );
    }

    /// The clock is paused: the slow ping's sleep and the timeout pass in
    /// virtual time, exactly.
    #[tokio::test(start_paused = true)]
    async fn a_ping_is_timed_and_cut_off_at_the_limit() {
        let answers_in = |d: Duration| async move {
            tokio::time::sleep(d).await;
            Ok::<(), String>(())
        };
        assert_eq!(
            probe(answers_in(Duration::from_millis(250)), STORE_SLOW).await,
            Probe::Answered(Duration::from_millis(250))
        );
        assert_eq!(
            probe(answers_in(Duration::from_secs(30)), STORE_SLOW).await,
            Probe::TimedOut
        );
        assert_eq!(
            probe(async { Err::<(), _>("disk I/O error") }, STORE_SLOW).await,
            Probe::Failed("disk I/O error".into())
        );
    }

    /// A real SQLite store: answers while open, fails its ping once closed,
    /// and the reply names neither sqlx nor its message.
    #[tokio::test]
    async fn a_closed_store_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pytake.db");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let url = format!("sqlite://{}", path.display());
        let check = check_store(&store, &url).await;
        assert_eq!(
            (check.status, check.url.as_str()),
            (CheckStatus::Ok, url.as_str())
        );
        assert!(check.latency_ms.is_some_and(|ms| ms < 1000.0), "{check:?}");

        store.close().await;
        let check = check_store(&store, &url).await;
        assert_eq!(
            check,
            StoreCheck {
                status: CheckStatus::Down,
                kind: "sqlite".into(),
                url,
                latency_ms: None,
                error: Some("the store failed its ping (the server log says why)".into()),
            }
        );
    }
}
