//! `GET /api/v1/presence`: who of a tenant is online now.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;

use super::scope::tenant_scope;
use super::{ApiError, Caller};
use crate::protocol::presence::PresenceList;
use crate::server::state::AppState;

/// `GET /api/v1/presence?tenant_id=`: the online users (status, since,
/// connections) and their count; a tenant token sees its tenant, an admin
/// the one it names or every tenant. The same on every node; 503 when the
/// shared presence (Redis) cannot be read.
pub async fn list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<PresenceList>, ApiError> {
    if let Some(unknown) = params.keys().find(|k| k.as_str() != "tenant_id") {
        return Err(ApiError::bad_param(
            unknown,
            "unknown parameter: this route takes only tenant_id",
        ));
    }
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let list = state.presence.list(&tenant).await.map_err(|e| {
        tracing::error!(error = %e, "reading presence failed");
        ApiError::Unavailable("presence is unavailable now (Redis did not answer); retry".into())
    })?;
    Ok(Json(list))
}
