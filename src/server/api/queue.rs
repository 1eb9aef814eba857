//! The queue's REST API (admin and operator tokens): enqueue, stats,
//! listing, retry and purge. An operator sees and acts on its tenant's
//! jobs only; platform jobs (webhooks, which have no tenant until they
//! are read) are an admin's.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::body::read_body;
use super::scope::time_param;
use super::{ApiError, Caller};
use crate::protocol::{Claims, Role, Scope, TenantId};
use crate::server::alerts::notification::NOTIFY_KIND;
use crate::server::alerts::notify;
use crate::server::queue::http::Delivery;
use crate::server::queue::DEFAULT_QUEUE;
use crate::server::state::AppState;
use crate::server::storage::jobs::{Job, JobFilter, JobId, JobStatus};

/// Most jobs one listing returns.
pub const MAX_LIST: u32 = 1000;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// Who may use the queue API, and over which tenants.
fn queue_scope(claims: &Claims) -> Result<Scope<TenantId>, ApiError> {
    match claims.role {
        Role::Admin | Role::Operator => Ok(claims.scope()),
        role => Err(ApiError::Forbidden(format!(
            "role {role} may not use the queue: admin or operator tokens only"
        ))),
    }
}

/// A job as the API shows it: an `http` job's header values are masked,
/// since they often carry a destination's credentials.
fn shown(mut job: Job) -> Value {
    if job.kind == "http" {
        if let Some(Value::Object(headers)) = job.payload.get_mut("headers") {
            for value in headers.values_mut() {
                *value = Value::String("****".into());
            }
        }
    }
    serde_json::to_value(job).expect("jobs serialize")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnqueueBody {
    kind: String,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// `POST /api/v1/queue/jobs`.
pub async fn enqueue(
    State(state): State<AppState>,
    Caller(claims): Caller,
    request: Request,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let scope = queue_scope(&claims)?;
    let body = read_body(request).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let asked: EnqueueBody = serde_path_to_error::deserialize(value).map_err(|e| {
        let field = e.path().to_string();
        ApiError::unprocessable(field, e.into_inner().to_string())
    })?;
    let queue = &state.queue;
    // Webhook jobs come from the webhook endpoints, alert events from the
    // evaluator, transfer events from a transfer: enqueued here, any would
    // be input no one checked.
    let internal = |k: &str| {
        k.starts_with("webhook.")
            || k == crate::server::alerts::EVENT_KIND
            || k == crate::server::conversations::OUTBOX_KIND
    };
    if queue.handlers.get(&asked.kind).is_none() || internal(&asked.kind) {
        return Err(ApiError::unprocessable(
            "kind",
            format!(
                "unknown kind `{}`: this endpoint enqueues {}",
                asked.kind,
                queue
                    .handlers
                    .kinds()
                    .into_iter()
                    .filter(|k| !internal(k))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if asked.kind == "http" {
        Delivery::parse(&asked.payload).map_err(|e| ApiError::unprocessable("payload", e))?;
    }
    if asked.kind == NOTIFY_KIND {
        // The channels are the platform's (one Slack, one mailing list):
        // a tenant's operator must not post to them in another tenant's
        // name.
        if claims.role != Role::Admin {
            return Err(ApiError::Forbidden(format!(
                "{NOTIFY_KIND} jobs send to the platform's alert channels: admin tokens only"
            )));
        }
        notify::parse(&asked.payload).map_err(|e| ApiError::unprocessable("payload", e))?;
    }
    if let Some(q) = asked.queue.as_deref().filter(|q| *q != DEFAULT_QUEUE) {
        return Err(ApiError::unprocessable(
            "queue",
            format!("no workers serve queue `{q}`: use `{DEFAULT_QUEUE}`"),
        ));
    }
    let max_attempts = asked.max_attempts.unwrap_or(queue.settings.max_attempts);
    if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(ApiError::unprocessable(
            "max_attempts",
            format!("must be 1 to {MAX_ATTEMPTS}"),
        ));
    }
    if asked
        .correlation_id
        .as_ref()
        .is_some_and(|c| c.is_empty() || c.len() > 128 || c.chars().any(char::is_control))
    {
        // Control characters: PostgreSQL text cannot hold a NUL, and none
        // belongs in an id that logs and tables print.
        return Err(ApiError::unprocessable(
            "correlation_id",
            "1 to 128 characters, none of them control characters",
        ));
    }
    let mut job = queue.job(&asked.kind, asked.payload);
    job.priority = asked.priority.unwrap_or(0);
    job.run_at = asked.run_at.unwrap_or(job.run_at);
    job.max_attempts = max_attempts;
    job.correlation_id = asked.correlation_id;
    job.tenant_id = scope.to_wire();
    let id = queue.enqueue(vec![job]).await?[0];
    let job = queue.store.job(id, &Scope::All).await?;
    Ok((StatusCode::CREATED, Json(shown(job))))
}

/// `GET /api/v1/queue/stats`: the shared stats, and this node's circuits.
pub async fn stats(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Value>, ApiError> {
    let scope = queue_scope(&claims)?;
    let stats = state.queue.stats(&scope).await?;
    let circuits: Vec<Value> = state
        .queue
        .breakers
        .states()
        .into_iter()
        .map(|(host, s)| json!({"host": host, "state": s}))
        .collect();
    let mut body = serde_json::to_value(stats).expect("stats serialize");
    body["tenant_id"] = json!(scope.to_wire());
    body["circuits"] = Value::Array(circuits);
    Ok(Json(body))
}

fn status_param(params: &HashMap<String, String>) -> Result<Option<JobStatus>, ApiError> {
    params
        .get("status")
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e| ApiError::bad_param("status", e)))
        .transpose()
}

/// `GET /api/v1/queue/jobs?status=&kind=&limit=&before=`, newest first.
pub async fn list(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = queue_scope(&claims)?;
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::bad_param(name, format!("`{v}` is not a positive whole number"))
                })
            })
            .transpose()
    };
    let limit = number("limit")?.unwrap_or(100);
    if limit > i64::from(MAX_LIST) {
        return Err(ApiError::bad_param("limit", format!("at most {MAX_LIST}")));
    }
    let filter = JobFilter {
        tenant,
        status: status_param(&params)?,
        kind: params.get("kind").filter(|k| !k.is_empty()).cloned(),
        before: number("before")?,
        limit: limit as u32,
    };
    let jobs = state.queue.store.jobs(&filter).await?;
    let next = (jobs.len() as u32 == filter.limit).then(|| jobs.last().map(|j| j.id));
    Ok(Json(json!({
        "jobs": jobs.into_iter().map(shown).collect::<Vec<_>>(),
        "next_before": next.flatten(),
    })))
}

fn job_id(text: &str) -> Result<JobId, ApiError> {
    text.parse::<JobId>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_param("id", format!("`{text}` is not a job id")))
}

/// `GET /api/v1/queue/jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = queue_scope(&claims)?;
    let job = state.queue.store.job(job_id(&id)?, &tenant).await?;
    Ok(Json(shown(job)))
}

/// `POST /api/v1/queue/jobs/{id}/retry`: 409 unless the job is dead.
pub async fn retry(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = queue_scope(&claims)?;
    let job = state
        .queue
        .store
        .retry(job_id(&id)?, &tenant, state.clock.now())
        .await?;
    Ok(Json(shown(job)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryDeadBody {
    #[serde(default)]
    kind: Option<String>,
}

/// `POST /api/v1/queue/dead/retry` `{kind?}`.
pub async fn retry_dead(
    State(state): State<AppState>,
    Caller(claims): Caller,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let tenant = queue_scope(&claims)?;
    let body = read_body(request).await?;
    let asked: RetryDeadBody = if body.iter().all(u8::is_ascii_whitespace) {
        RetryDeadBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    let retried = state
        .queue
        .store
        .retry_dead(asked.kind.as_deref(), &tenant, state.clock.now())
        .await?;
    Ok(Json(json!({ "retried": retried })))
}

/// `DELETE /api/v1/queue/jobs?status=done|dead&older_than=7d` (or
/// `before=RFC3339`).
pub async fn purge(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let tenant = queue_scope(&claims)?;
    let status = status_param(&params)?
        .ok_or_else(|| ApiError::bad_param("status", "required: done or dead"))?;
    if !status.is_final() {
        return Err(ApiError::bad_param(
            "status",
            format!("{status} jobs cannot be purged: only done or dead (others would lose work)"),
        ));
    }
    let before = match (params.get("older_than"), time_param(&params, "before")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give older_than or before, not both"))
        }
        (Some(age), None) => {
            let age = crate::config::duration::parse(age)
                .map_err(|e| ApiError::bad_param("older_than", e))?;
            state.clock.now() - chrono::Duration::from_std(age).unwrap_or_default()
        }
        (None, Some(before)) => before,
        (None, None) => {
            return Err(ApiError::bad_param(
                "older_than",
                "required (or `before`): a purge cannot be undone, so say how old, e.g. older_than=7d or 0s for all",
            ))
        }
    };
    let purged = state.queue.store.purge(status, before, &tenant).await?;
    Ok(Json(
        json!({ "purged": purged, "status": status, "before": before }),
    ))
}
