//! Seed 000's dashboard API: `GET /api/v1/dashboard/overview`,
//! `GET /api/v1/dashboard/metrics` and `POST /api/v1/dashboard/export`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::{Query, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::SecondsFormat;

use super::auth::Caller;
use super::body::read_body;
use super::health::{bus_subsystem, store_subsystem, system_stats};
use super::scope::tenant_scope;
use super::ApiError;
use crate::protocol::api::CheckStatus;
use crate::protocol::dashboard::{ExportRequest, Overview, Series, Subsystem};
use crate::protocol::metrics::{MetricName, Period};
use crate::protocol::{Scope, TenantId};
use crate::server::metrics::series::series;
use crate::server::state::AppState;

/// `GET /api/v1/dashboard/overview?tenant_id=`: the live KPIs, the
/// machine, and each subsystem's state.
pub async fn overview(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Overview>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let kpis = state.metrics.kpis(&tenant);
    let stats = &state.hub.stats;
    let connections = stats.connections.load(Ordering::Relaxed);
    let (store_status, store_detail) = store_subsystem(&state).await;
    let (bus_status, bus_detail) = bus_subsystem(&state);
    let intake = state.ingest.stats();
    let (rate, window) = intake.rate();
    let metrics_status = if state.metrics.caught_up() {
        (
            "ok",
            format!("counted up to event {}", state.metrics.head()),
        )
    } else {
        ("degraded", "reading its figures from the store".to_string())
    };
    let subsystems = vec![
        Subsystem {
            name: "store".into(),
            status: status_name(store_status).into(),
            detail: store_detail,
        },
        Subsystem {
            name: "bus".into(),
            status: status_name(bus_status).into(),
            detail: bus_detail,
        },
        Subsystem {
            name: "gateway".into(),
            status: "ok".into(),
            detail: format!(
                "{connections} connections ({} authenticated), {} rooms",
                stats.authenticated.load(Ordering::Relaxed),
                state.hub.room_count()
            ),
        },
        Subsystem {
            name: "intake".into(),
            status: if state.shutdown.is_cancelled() {
                "down".into()
            } else {
                "ok".into()
            },
            detail: format!(
                "{} events stored since start, {rate:.2}/s over {window}s",
                intake.total()
            ),
        },
        Subsystem {
            name: "metrics".into(),
            status: metrics_status.0.into(),
            detail: metrics_status.1,
        },
        queue_subsystem(&state, &tenant).await,
    ];
    Ok(Json(Overview {
        tenant_id: tenant.only().map(|t| t.as_str().to_string()),
        generated_at: state
            .clock
            .now()
            .to_rfc3339_opts(SecondsFormat::Millis, true),
        system: system_stats(&state),
        kpis,
        subsystems,
    }))
}

/// The queue as the overview lists it: depth, rates and dead letters of
/// the scope's jobs.
async fn queue_subsystem(state: &AppState, tenant: &Scope<TenantId>) -> Subsystem {
    use crate::server::storage::jobs::JobStatus;
    let (status, detail) = match state.queue.stats(tenant).await {
        Ok(q) => {
            let dead = q.depth[&JobStatus::Dead];
            let detail = format!(
                "{} pending, {} running, {} retrying, {dead} dead; {:.2} done/s, {:.1} % failed over 5 min; oldest due waits {:.0}s",
                q.depth[&JobStatus::Pending],
                q.depth[&JobStatus::Running],
                q.depth[&JobStatus::Retrying],
                q.processed_per_second,
                q.error_rate * 100.0,
                q.oldest_pending_seconds,
            );
            (if dead > 0 { "degraded" } else { "ok" }, detail)
        }
        Err(e) => ("down", format!("cannot read the queue: {e}")),
    };
    Subsystem {
        name: "queue".into(),
        status: status.into(),
        detail,
    }
}

/// `period` (default 24h) and `metrics` (a comma-separated list, default
/// the dashboard's figures) of a series request.
fn series_params(
    period: Option<&str>,
    metrics: Option<&str>,
) -> Result<(Period, Vec<MetricName>), ApiError> {
    let period = match period {
        Some(p) => p
            .parse::<Period>()
            .map_err(|e| ApiError::bad_param("period", e))?,
        None => Period::Day,
    };
    let metrics = match metrics {
        Some(list) => {
            MetricName::parse_list(list).map_err(|e| ApiError::bad_param("metrics", e))?
        }
        None => MetricName::defaults(),
    };
    Ok((period, metrics))
}

/// `GET /api/v1/dashboard/metrics?period=1h|24h|7d|30d&tenant_id=&metrics=`.
pub async fn metrics(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Series>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let (period, metrics) = series_params(
        params.get("period").map(String::as_str),
        params.get("metrics").map(String::as_str),
    )?;
    let series = series(
        state.stores.metrics.as_ref(),
        &tenant,
        period,
        &metrics,
        state.clock.now(),
    )
    .await?;
    Ok(Json(series))
}

/// `POST /api/v1/dashboard/export {format, period, metrics, tenant_id}`:
/// the series as a file (CSV with a `timestamp` column and one per
/// metric, a JSON document, or one JSON point per line).
pub async fn export(
    State(state): State<AppState>,
    Caller(claims): Caller,
    request: Request,
) -> Result<Response, ApiError> {
    let body = read_body(request).await?;
    let asked: ExportRequest = serde_json::from_slice(&body).map_err(|e| {
        let field = e
            .to_string()
            .split_once(" at line")
            .map_or(e.to_string(), |(m, _)| m.to_string());
        ApiError::bad_request(format!("body: {field}"))
    })?;
    let tenant = tenant_scope(&claims, asked.tenant_id.as_deref())?;
    let metrics = if asked.metrics.is_empty() {
        MetricName::defaults()
    } else {
        MetricName::parse_list(&asked.metrics.join(","))
            .map_err(|e| ApiError::bad_param("metrics", e))?
    };
    let series = series(
        state.stores.metrics.as_ref(),
        &tenant,
        asked.period,
        &metrics,
        state.clock.now(),
    )
    .await?;
    let body = series.render(asked.format);
    let name = format!(
        "pytake-metrics-{}-{}.{}",
        tenant.only().map_or("all", TenantId::as_str),
        asked.period,
        asked.format.name()
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                asked.format.content_type().to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Whether a scope may be asked for by these claims (used by the
/// campaign endpoints, which need one tenant).
pub fn one_tenant(scope: &Scope<TenantId>) -> Result<TenantId, ApiError> {
    scope.only().cloned().ok_or_else(|| {
        ApiError::bad_param(
            "tenant_id",
            "required with an admin token: a campaign belongs to one tenant",
        )
    })
}

/// A check's status as the overview names it.
fn status_name(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Ok => "ok",
        CheckStatus::Slow => "degraded",
        _ => "down",
    }
}
