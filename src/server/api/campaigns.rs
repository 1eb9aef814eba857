//! Campaign analytics (seeds 001, 003 and 004): `GET /api/v1/campaigns`,
//! `/api/v1/campaigns/dashboard`, `/api/v1/campaigns/{id}/metrics` and
//! `/api/v1/campaigns/{id}/performance`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;

use super::auth::Caller;
use super::dashboard::one_tenant;
use super::scope::tenant_scope;
use super::ApiError;
use crate::protocol::campaigns::{
    CampaignDashboard, CampaignList, CampaignMetrics, CampaignPerformance,
};
use crate::protocol::Claims;
use crate::server::metrics::campaign;
use crate::server::state::AppState;
use crate::server::storage::metrics::CampaignRow;

/// Campaigns a list shows unless `limit` says otherwise, and the most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// `GET /api/v1/campaigns?tenant_id=&limit=`: the most recent first.
pub async fn list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CampaignList>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let limit = match params.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_param(
                    "limit",
                    format!("`{l}` is not a number from 1 to {MAX_LIMIT}"),
                )
            })?,
        None => DEFAULT_LIMIT,
    };
    let now = state.clock.now();
    let rows = state.stores.metrics.campaigns(&tenant, limit).await?;
    Ok(Json(CampaignList {
        campaigns: rows.iter().map(|row| campaign::metrics(row, now)).collect(),
    }))
}

/// `GET /api/v1/campaigns/dashboard?tenant_id=`: seed 003's summary.
pub async fn dashboard(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CampaignDashboard>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    Ok(Json(
        campaign::dashboard(state.stores.metrics.as_ref(), &tenant, state.clock.now()).await?,
    ))
}

/// The campaign a path names, in the tenant the request is about.
async fn find(
    state: &AppState,
    claims: &Claims,
    id: &str,
    params: &HashMap<String, String>,
) -> Result<CampaignRow, ApiError> {
    let tenant = one_tenant(&tenant_scope(
        claims,
        params.get("tenant_id").map(String::as_str),
    )?)?;
    state
        .stores
        .metrics
        .campaign(&tenant, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no campaign `{id}` in tenant `{tenant}`")))
}

/// `GET /api/v1/campaigns/{id}/metrics?tenant_id=`.
pub async fn metrics(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CampaignMetrics>, ApiError> {
    let row = find(&state, &claims, &id, &params).await?;
    Ok(Json(campaign::metrics(&row, state.clock.now())))
}

/// `GET /api/v1/campaigns/{id}/performance?tenant_id=`.
pub async fn performance(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CampaignPerformance>, ApiError> {
    let row = find(&state, &claims, &id, &params).await?;
    Ok(Json(
        campaign::performance(state.stores.metrics.as_ref(), &row).await?,
    ))
}
