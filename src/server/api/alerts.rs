//! The alerting REST API: rules, alerts, incidents, acknowledgements and
//! silences. Every token reads its tenant's (an admin every tenant's);
//! changes take an admin or operator token, and an operator changes only
//! its own tenant's rules and silences (rules for every tenant are an
//! admin's).

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::body::read_body;
use super::scope::{tenant_scope, time_param};
use super::{ApiError, Caller};
use crate::protocol::alerts::{AlertRule, AlertState, Channel, NewSilence, Silence};
use crate::protocol::{Claims, Role, Scope, TenantId};
use crate::server::alerts::evaluate::stamp;
use crate::server::state::AppState;
use crate::server::storage::alerts::AlertFilter;

/// Most alerts or incidents one listing returns.
pub const MAX_LIST: u32 = 1000;

/// What `GET /api/v1/dashboard/alerts` covers (seed 000).
const DASHBOARD_HOURS: i64 = 24;

/// Changes need an admin or operator token.
fn may_change(claims: &Claims) -> Result<(), ApiError> {
    match claims.role {
        Role::Admin | Role::Operator => Ok(()),
        role => Err(ApiError::Forbidden(format!(
            "role {role} may not change alerting: admin or operator tokens only"
        ))),
    }
}

/// Whether `claims` may change something of `tenant` (`None`: every
/// tenant's, an admin's alone).
fn may_change_tenant(claims: &Claims, tenant: Option<&str>) -> Result<(), ApiError> {
    may_change(claims)?;
    match (claims.tenant_id.as_deref(), tenant) {
        (None, _) => Ok(()),
        (Some(own), Some(t)) if own == t => Ok(()),
        (Some(_), None) => Err(ApiError::Forbidden(
            "a rule or silence for every tenant is an admin's: give your tenant_id".into(),
        )),
        (Some(_), Some(t)) => Err(ApiError::Forbidden(format!(
            "this token may not change tenant `{t}`"
        ))),
    }
}

/// A rule from a request body, and whether it named its id: 400 naming
/// the field for anything wrong.
async fn rule_body(request: Request) -> Result<(AlertRule, bool), ApiError> {
    let body = read_body(request).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let mut rule: AlertRule = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // A missing field is reported at the object: name it.
        let field = match message.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_string(),
            None if path == "." => "body".to_string(),
            None => path,
        };
        ApiError::bad_param(&field, message)
    })?;
    let named = !rule.id.is_empty();
    rule.check()
        .map_err(|e| ApiError::bad_param(e.field, e.message))?;
    Ok((rule, named))
}

/// A rule may name only channels this server can deliver to: a rule
/// that silently notified nobody would be found out during an outage.
fn check_channels(state: &AppState, rule: &AlertRule) -> Result<(), ApiError> {
    for channel in &rule.channels {
        if !state.alert_channels.contains(channel) {
            let section = match channel {
                Channel::Slack => "[slack] webhook_url",
                Channel::Email => "[smtp] host and to",
                Channel::Webhook => "[alerts] webhook_url",
                Channel::Websocket => "",
            };
            return Err(ApiError::bad_param(
                "channels",
                format!(
                    "the {} channel is not configured on this server: set {section}",
                    channel.name()
                ),
            ));
        }
    }
    Ok(())
}

/// `GET /api/v1/alerts/rules[?tenant_id=]`.
pub async fn rules(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let scope = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let rules = state.stores.alerts.rules(&scope).await?;
    Ok(Json(json!({ "rules": rules })))
}

/// A rule the caller may see, or 404.
async fn visible_rule(state: &AppState, claims: &Claims, id: &str) -> Result<AlertRule, ApiError> {
    let rule = state.stores.alerts.rule(id).await?;
    match (&rule.tenant_id, claims.tenant_id.as_deref()) {
        (Some(t), Some(own)) if t != own => {
            Err(ApiError::NotFound(format!("rule `{id}` does not exist")))
        }
        _ => Ok(rule),
    }
}

/// `GET /api/v1/alerts/rules/{id}`.
pub async fn rule(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<AlertRule>, ApiError> {
    Ok(Json(visible_rule(&state, &claims, &id).await?))
}

/// `POST /api/v1/alerts/rules`: 201, or 409 when the id exists. An
/// operator's rule is for its tenant whether or not it says so.
pub async fn create_rule(
    State(state): State<AppState>,
    Caller(claims): Caller,
    request: Request,
) -> Result<(StatusCode, Json<AlertRule>), ApiError> {
    may_change(&claims)?;
    let (mut rule, _) = rule_body(request).await?;
    if rule.tenant_id.is_none() && claims.tenant_id.is_some() {
        rule.tenant_id = claims.tenant_id.clone();
        rule.check()
            .map_err(|e| ApiError::bad_param(e.field, e.message))?;
    }
    may_change_tenant(&claims, rule.tenant_id.as_deref())?;
    check_channels(&state, &rule)?;
    state
        .stores
        .alerts
        .put_rule(&rule, true, state.clock.now())
        .await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

/// `PUT /api/v1/alerts/rules/{id}`: replaces the rule (the body's id, if
/// any, must match).
pub async fn replace_rule(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<AlertRule>, ApiError> {
    may_change(&claims)?;
    let old = visible_rule(&state, &claims, &id).await?;
    may_change_tenant(&claims, old.tenant_id.as_deref())?;
    let (mut rule, named) = rule_body(request).await?;
    if named && rule.id != id {
        return Err(ApiError::bad_param(
            "id",
            format!("the body names rule `{}`, the path `{id}`", rule.id),
        ));
    }
    rule.id = id;
    if rule.tenant_id.is_none() && claims.tenant_id.is_some() {
        rule.tenant_id = claims.tenant_id.clone();
        rule.check()
            .map_err(|e| ApiError::bad_param(e.field, e.message))?;
    }
    may_change_tenant(&claims, rule.tenant_id.as_deref())?;
    check_channels(&state, &rule)?;
    state
        .stores
        .alerts
        .put_rule(&rule, false, state.clock.now())
        .await?;
    Ok(Json(rule))
}

/// `POST /api/v1/alerts/rules/{id}/enable` and `/disable`.
pub async fn set_enabled(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<AlertRule>, ApiError> {
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no action `{other}` on a rule: enable or disable"
            )))
        }
    };
    let mut rule = visible_rule(&state, &claims, &id).await?;
    may_change_tenant(&claims, rule.tenant_id.as_deref())?;
    rule.enabled = enabled;
    state
        .stores
        .alerts
        .put_rule(&rule, false, state.clock.now())
        .await?;
    Ok(Json(rule))
}

/// `DELETE /api/v1/alerts/rules/{id}`: its firing alerts resolve at the
/// next evaluation; fired alerts stay in history.
pub async fn delete_rule(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let rule = visible_rule(&state, &claims, &id).await?;
    may_change_tenant(&claims, rule.tenant_id.as_deref())?;
    state.stores.alerts.delete_rule(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn state_param(params: &HashMap<String, String>) -> Result<Option<AlertState>, ApiError> {
    params
        .get("state")
        .map(|s| match s.as_str() {
            "pending" => Ok(AlertState::Pending),
            "firing" => Ok(AlertState::Firing),
            "resolved" => Ok(AlertState::Resolved),
            other => Err(ApiError::bad_param(
                "state",
                format!("unknown state `{other}`: pending, firing or resolved"),
            )),
        })
        .transpose()
}

fn limit_param(params: &HashMap<String, String>) -> Result<u32, ApiError> {
    match params.get("limit") {
        None => Ok(100),
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or_else(|| ApiError::bad_param("limit", format!("1 to {MAX_LIST}"))),
    }
}

/// `GET /api/v1/alerts?state=&tenant_id=&since=&limit=`: alerts newest
/// first; without `since`, every pending or firing one and the rest of
/// the last 24 h.
pub async fn alerts(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let since = time_param(&params, "since")?
        .unwrap_or_else(|| state.clock.now() - chrono::Duration::hours(DASHBOARD_HOURS));
    let filter = AlertFilter {
        tenant,
        since: Some(since),
        state: state_param(&params)?,
        limit: limit_param(&params)?,
    };
    let alerts = state.stores.alerts.alerts(&filter).await?;
    Ok(Json(json!({ "alerts": alerts, "since": stamp(since) })))
}

/// `GET /api/v1/alerts/history?since=`: the same listing with `since`
/// required, for what happened during an incident.
pub async fn history(
    state: State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    if !params.contains_key("since") {
        return Err(ApiError::bad_param(
            "since",
            "required: an RFC 3339 time, e.g. since=2026-01-01T00:00:00Z",
        ));
    }
    alerts(state, caller, Query(params)).await
}

/// `GET /api/v1/dashboard/alerts`: seed 000's last 24 hours.
pub async fn dashboard(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let since = state.clock.now() - chrono::Duration::hours(DASHBOARD_HOURS);
    let filter = AlertFilter {
        tenant,
        since: Some(since),
        state: None,
        limit: MAX_LIST,
    };
    let alerts = state.stores.alerts.alerts(&filter).await?;
    let firing = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .count();
    Ok(Json(json!({
        "alerts": alerts,
        "firing": firing,
        "since": stamp(since),
        "generated_at": stamp(state.clock.now()),
    })))
}

/// `GET /api/v1/alerts/incidents?tenant_id=&since=&limit=`: open ones and
/// those resolved since (24 h by default).
pub async fn incidents(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let since = time_param(&params, "since")?
        .unwrap_or_else(|| state.clock.now() - chrono::Duration::hours(DASHBOARD_HOURS));
    let incidents = state
        .stores
        .alerts
        .incidents(&tenant, since, limit_param(&params)?)
        .await?;
    Ok(Json(json!({ "incidents": incidents })))
}

/// `POST /api/v1/alerts/{id}/ack`: an alert's or incident's id; stops
/// the incident's repeats.
pub async fn acknowledge(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    may_change(&claims)?;
    let incident = state
        .stores
        .alerts
        .acknowledge(&id, &claims.sub, &claims.scope(), state.clock.now())
        .await?;
    Ok(Json(json!({ "incident": incident })))
}

/// `GET /api/v1/alerts/silences[?all=true]`: running ones (all: ended
/// ones kept too).
pub async fn silences(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let active_at = match params.get("all").map(String::as_str) {
        Some("true") => None,
        None | Some("false") => Some(state.clock.now()),
        Some(other) => {
            return Err(ApiError::bad_param(
                "all",
                format!("`{other}`: true or false"),
            ))
        }
    };
    let silences = state.stores.alerts.silences(&tenant, active_at).await?;
    Ok(Json(json!({ "silences": silences })))
}

/// `POST /api/v1/alerts/silences` `{rule_id?, tenant_id?, for, reason?}`:
/// 201. An operator's silence is for its tenant.
pub async fn add_silence(
    State(state): State<AppState>,
    Caller(claims): Caller,
    request: Request,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    may_change(&claims)?;
    let body = read_body(request).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let asked: NewSilence = serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let field = match message.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_string(),
            None => e.path().to_string(),
        };
        ApiError::bad_param(&field, message)
    })?;
    if asked.for_.is_zero() {
        return Err(ApiError::bad_param("for", "must be longer than 0s"));
    }
    let tenant = asked.tenant_id.clone().or_else(|| claims.tenant_id.clone());
    if let Some(t) = &tenant {
        TenantId::parse(t).map_err(|e| ApiError::bad_param("tenant_id", e))?;
    }
    may_change_tenant(&claims, tenant.as_deref())?;
    if let Some(rule) = &asked.rule_id {
        visible_rule(&state, &claims, rule)
            .await
            .map_err(|_| ApiError::bad_param("rule_id", format!("rule `{rule}` does not exist")))?;
    }
    let now = state.clock.now();
    let silence = Silence {
        id: format!(
            "sil_{}{:08x}",
            now.format("%Y%m%d%H%M%S"),
            rand::random::<u32>()
        ),
        rule_id: asked.rule_id,
        tenant_id: tenant,
        starts_at: stamp(now),
        ends_at: stamp(now + chrono::Duration::from_std(asked.for_).unwrap_or_default()),
        reason: asked.reason,
        created_by: claims.sub.clone(),
    };
    state.stores.alerts.add_silence(&silence).await?;
    Ok((StatusCode::CREATED, Json(silence)))
}

/// `DELETE /api/v1/alerts/silences/{id}`.
pub async fn delete_silence(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    may_change(&claims)?;
    let scope: Scope<TenantId> = claims.scope();
    // A tenant token sees the silences for every tenant, but ending one
    // is an admin's.
    let silence = state
        .stores
        .alerts
        .silences(&scope, None)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("silence `{id}` does not exist")))?;
    may_change_tenant(&claims, silence.tenant_id.as_deref())?;
    state.stores.alerts.delete_silence(&id, &scope).await?;
    Ok(StatusCode::NO_CONTENT)
}
