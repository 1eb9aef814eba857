//! The conversations REST API: a conversation's assignee and transfer
//! history, and transferring it (seed 002). Every role of the tenant
//! reads; operators and admins transfer. A tenant token acts on its own
//! tenant only; an admin token names the tenant (`tenant_id` in the query
//! or, for a transfer, the body).

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::Json;
use serde_json::Value;

use super::body::read_body;
use super::scope::tenant_scope;
use super::{ApiError, Caller};
use crate::protocol::conversations::{
    check_key, Conversation, Transfer, TransferBody, MAX_HISTORY,
};
use crate::protocol::{Claims, Scope, TenantId};
use crate::server::conversations::{transfer as do_transfer, TransferError};
use crate::server::state::AppState;

impl From<TransferError> for ApiError {
    fn from(e: TransferError) -> ApiError {
        match e {
            TransferError::Forbidden(message) => ApiError::Forbidden(message),
            TransferError::Invalid(e) => ApiError::bad_param(&e.field, e.problem),
            TransferError::Conflict(message) => ApiError::Conflict(message),
            TransferError::Unavailable(_) => {
                ApiError::Unavailable("the conversation store is unavailable; retry later".into())
            }
        }
    }
}

/// The one tenant a conversation request is about: the token's, or the
/// one an admin names.
fn one_tenant(claims: &Claims, asked: Option<&str>) -> Result<TenantId, ApiError> {
    match tenant_scope(claims, asked)? {
        Scope::Only(tenant) => Ok(tenant),
        Scope::All => Err(ApiError::bad_param(
            "tenant_id",
            "an admin token names the conversation's tenant: add tenant_id",
        )),
    }
}

/// `GET /api/v1/conversations/{id}[?tenant_id=&limit=&before=]`: the
/// assignee and the newest `limit` transfers (before seq `before`), oldest
/// first; 404 before the first transfer.
pub async fn get(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Conversation>, ApiError> {
    let tenant = one_tenant(&claims, params.get("tenant_id").map(String::as_str))?;
    check_key("conversation_id", &id).map_err(|e| ApiError::bad_param(&e.field, e.problem))?;
    let limit = match params.get("limit") {
        None => MAX_HISTORY,
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_HISTORY).contains(n))
            .ok_or_else(|| {
                ApiError::bad_param(
                    "limit",
                    format!("`{text}` is not a whole number from 1 to {MAX_HISTORY}"),
                )
            })?,
    };
    let before = match params.get("before") {
        None => None,
        Some(text) => Some(text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_param(
                "before",
                format!("`{text}` is not a transfer seq (1, 2, 3...): page back with the first seq of the last page"),
            )
        })?),
    };
    let conversation = state
        .stores
        .conversations
        .conversation(&tenant, &id, limit, before)
        .await
        .map_err(|e| match e {
            crate::server::storage::StoreError::NotFound { .. } => ApiError::NotFound(format!(
                "conversation `{id}` of tenant `{}` has never been assigned",
                tenant.as_str()
            )),
            e => e.into(),
        })?;
    Ok(Json(conversation))
}

/// `POST /api/v1/conversations/{id}/transfer` `{to_user, note?, tenant_id?}`:
/// the stored transfer (with `event_id`, the `ConversationTransferred`
/// event's). 409 when already assigned to `to_user`.
pub async fn transfer(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    request: Request,
) -> Result<Json<Transfer>, ApiError> {
    let body = read_body(request).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let asked: TransferBody = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown field is reported at the object: name it.
        let unknown = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next());
        let field = match unknown {
            Some(name) => name.to_string(),
            None if path == "." => "body".to_string(),
            None => path,
        };
        ApiError::bad_param(&field, message)
    })?;
    let named = asked
        .tenant_id
        .as_deref()
        .or(params.get("tenant_id").map(String::as_str));
    let tenant = one_tenant(&claims, named)?;
    let to_user = asked.to_user.as_deref().unwrap_or_default();
    let done = do_transfer(
        &state,
        &claims,
        &tenant,
        &id,
        to_user,
        asked.note.as_deref(),
    )
    .await?;
    Ok(Json(done))
}
