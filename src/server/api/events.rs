//! `POST /api/v1/events` (intake) and `GET /api/v1/events` (history and the
//! long-poll fallback of seeds 001 and 004).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::Caller;
use super::body::read_body;
use super::error::ApiError;
use super::long_poll::LongPolls;
use crate::protocol::api::{EventsPage, PublishResponse};
use crate::protocol::events::{hex, json_type};
use crate::protocol::limits::{
    DEFAULT_PAGE, MAX_BATCH_EVENTS, MAX_IDEMPOTENCY_KEY, MAX_LONG_POLL, MAX_PAGE,
};
use crate::protocol::{Claims, NewEvent, Scope, ValidEvent};
use crate::server::ingest::IngestError;
use crate::server::state::AppState;
use crate::server::storage::{AppendRequest, EventQuery};
use crate::server::telemetry::RequestOutcome;

/// `POST /api/v1/events`: one event or an array of them. A batch is stored
/// all or nothing: one bad event rejects the whole request, naming it.
pub async fn post_events(
    State(state): State<AppState>,
    Caller(claims): Caller,
    headers: HeaderMap,
    request: Request,
) -> Result<impl IntoResponse, ApiError> {
    let posted = post(&state, claims, headers, request).await;
    let outcome = match &posted {
        Ok((_, Json(reply))) if reply.duplicate => RequestOutcome::Duplicate,
        Ok(_) => RequestOutcome::Stored,
        Err(ApiError::Unavailable(_)) => RequestOutcome::Failed,
        Err(_) => RequestOutcome::Rejected,
    };
    state.telemetry.intake.request(outcome);
    posted
}

/// [`post_events`] less the counting.
async fn post(
    state: &AppState,
    claims: Claims,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, Json<PublishResponse>), ApiError> {
    if !claims.role.can_publish() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not publish events",
            claims.role
        )));
    }
    let body = read_body(request).await?;
    let key = idempotency_header(&headers)?;
    let (events, batch) = parse_events(&body, &claims, state.clock.now())?;
    let request = AppendRequest {
        fingerprint: key.as_ref().map(|_| request_fingerprint(&events)),
        idempotency_key: key,
        key_scope: claims.scope(),
        events,
    };
    let outcome = state.ingest.submit(request).await.map_err(|e| match e {
        // The store names a lone event's key without a position; in an
        // array body the error names `[0]`, as every other error does.
        IngestError::KeyReused(mut reused) if batch && reused.field == "idempotency_key" => {
            reused.field = "[0].idempotency_key".into();
            IngestError::KeyReused(reused)
        }
        other => other,
    })?;
    let duplicate = outcome.duplicate();
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let ids = outcome.events().map(|e| e.id).collect();
    Ok((status, Json(PublishResponse { ids, duplicate })))
}

fn idempotency_header(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_param("Idempotency-Key", "must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::bad_param(
            "Idempotency-Key",
            format!("1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    Ok(Some(key.to_string()))
}

/// What a request asked for (SHA-256 over its events' fingerprints, in
/// order), to tell a retry from a reuse of its `Idempotency-Key`.
fn request_fingerprint(events: &[ValidEvent]) -> String {
    let mut hash = Sha256::new();
    for event in events {
        hash.update(event.content_fingerprint().as_bytes());
    }
    hex(&hash.finalize())
}

/// Parses and checks the body; errors name the event (`[3].data.to`).
/// Also says whether the body was an array (a batch), however long.
fn parse_events(
    body: &[u8],
    claims: &Claims,
    now: DateTime<Utc>,
) -> Result<(Vec<ValidEvent>, bool), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        item @ Value::Object(_) => (vec![item], false),
        other => {
            return Err(ApiError::unprocessable(
                "body",
                format!(
                    "expected an event object or an array of them, got {}",
                    json_type(&other)
                ),
            ))
        }
    };
    if items.is_empty() {
        return Err(ApiError::unprocessable("body", "the batch is empty"));
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::PayloadTooLarge(format!(
            "batch of {} events is over the limit of {MAX_BATCH_EVENTS}",
            items.len()
        )));
    }
    let mut events: Vec<ValidEvent> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |field: &str| {
            if batch {
                format!("[{i}].{field}")
            } else {
                field.to_string()
            }
        };
        let event: NewEvent = serde_path_to_error::deserialize(item).map_err(|e| {
            let path = e.path().to_string();
            let field = match (path.as_str(), batch) {
                (".", true) => format!("[{i}]"),
                (".", false) => "body".to_string(),
                _ => at(&path),
            };
            ApiError::unprocessable(field, e.into_inner().to_string())
        })?;
        let tenant = match (&event.tenant_id, &claims.tenant_id) {
            (Some(wanted), Some(own)) if wanted != own => {
                return Err(ApiError::Forbidden(format!(
                    "{}: a token for tenant `{own}` may not publish for tenant `{wanted}`",
                    at("tenant_id")
                )))
            }
            (Some(wanted), _) => wanted.clone(),
            (None, Some(own)) => own.clone(),
            (None, None) => {
                return Err(ApiError::unprocessable(
                    at("tenant_id"),
                    "required with an admin token",
                ))
            }
        };
        let valid = event
            .validate_at(tenant, now)
            .map_err(|e| ApiError::unprocessable(at(&e.field), e.problem))?;
        if let Some(key) = &valid.idempotency_key {
            if let Some(first) = events.iter().position(|e| {
                e.tenant_id == valid.tenant_id && e.idempotency_key.as_ref() == Some(key)
            }) {
                return Err(ApiError::unprocessable(
                    format!("[{i}].idempotency_key"),
                    format!(
                        "key `{key}` is also the key of [{first}]: each event of a batch needs its own key"
                    ),
                ));
            }
        }
        events.push(valid);
    }
    Ok((events, batch))
}

/// Parses `GET /api/v1/events` parameters into a query and a wait.
fn history_query(
    params: &HashMap<String, String>,
    claims: &Claims,
) -> Result<(EventQuery, Duration, Option<DateTime<Utc>>), ApiError> {
    let (rooms, types) = super::scope::event_filters(params)?;
    let tenant = super::scope::tenant_scope(claims, params.get("tenant_id").map(String::as_str))?;
    let since = match params.get("since") {
        Some(s) => s.parse::<i64>().ok().filter(|s| *s >= 0).ok_or_else(|| {
            ApiError::bad_param("since", format!("`{s}` is not an event id (0 or more)"))
        })?,
        None => 0,
    };
    let since_time = super::scope::time_param(params, "since_time")?;
    let limit = match params.get("limit") {
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| {
                ApiError::bad_param(
                    "limit",
                    format!("`{l}` is not a number from 1 to {MAX_PAGE}"),
                )
            })?,
        None => DEFAULT_PAGE,
    };
    let wait = match params.get("wait") {
        Some(w) => parse_wait(w)?,
        None => Duration::ZERO,
    };
    Ok((
        EventQuery {
            tenant,
            rooms: Scope::rooms(rooms),
            event_types: types,
            since,
            before: None,
            limit,
        },
        wait,
        since_time,
    ))
}

fn parse_wait(w: &str) -> Result<Duration, ApiError> {
    let d = match w.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(w).map_err(|_| {
            ApiError::bad_param("wait", format!("`{w}` is not a duration like 25s"))
        })?,
    };
    if d > MAX_LONG_POLL {
        return Err(ApiError::bad_param(
            "wait",
            format!("at most {}s", MAX_LONG_POLL.as_secs()),
        ));
    }
    Ok(d)
}

/// `GET /api/v1/events?rooms=&since=&limit=&wait=&event_types=&tenant_id=&since_time=`.
/// With `wait`, an empty answer is held until an event arrives or the wait
/// runs out: the polling fallback for clients without WebSocket.
pub async fn get_events(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<EventsPage>, ApiError> {
    let (mut query, wait, since_time) = history_query(&params, &claims)?;
    let _permit = match wait.is_zero() {
        true => None,
        // A token is its tenant and subject: one operator's tokens for two
        // tenants share a `sub` but not a quota.
        false => {
            let holder = format!(
                "{}/{}",
                claims.tenant_id.as_deref().unwrap_or("*"),
                claims.sub
            );
            Some(LongPolls::acquire(&state.long_polls, &holder)?)
        }
    };
    if let Some(t) = since_time {
        query.since = query.since.max(state.store.id_before(t).await?);
    }
    let deadline = tokio::time::Instant::now() + wait;
    // With several nodes, this node hears of the tenant's events only
    // while it watches the tenant: for as long as the poll is held.
    let _watch = match wait.is_zero() {
        true => None,
        false => Some(state.bus.watch(query.tenant.clone()).await.map_err(|e| {
            tracing::error!(error = %e, "watching a tenant for a long-poll failed");
            ApiError::Unavailable("the bus is unavailable; retry, or poll without `wait`".into())
        })?),
    };
    let mut head = state.hub.head();
    loop {
        head.borrow_and_update();
        let events = state.store.events(&query).await?;
        let timed_out = tokio::time::Instant::now() >= deadline;
        if !events.is_empty() || wait.is_zero() || timed_out || state.shutdown.is_cancelled() {
            let next_since = events.last().map(|e| e.id).unwrap_or(query.since);
            let head = state.store.last_event_id().await?;
            return Ok(Json(EventsPage {
                events,
                next_since,
                head,
            }));
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => {},
            _ = state.shutdown.cancelled() => {},
        }
    }
    Err(ApiError::Unavailable("the server is shutting down".into()))
}
