//! Webhook intake: `POST /api/v1/webhooks/{source}` checks the sender
//! (WhatsApp's `X-Hub-Signature-256`, Evolution's API key), stores the raw
//! body as a job in one write and answers 200 at once (seed 002: answer
//! fast, process apart); workers turn the body into events. Nothing is
//! stored for a request that fails the check. `GET
//! /api/v1/webhooks/whatsapp` answers Meta's verification handshake.

use std::collections::HashMap;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::body::read_body;
use super::ApiError;
use crate::server::queue::webhook::{payload, Source};
use crate::server::state::AppState;
use crate::server::webhooks::{evolution, whatsapp};

/// Webhooks run before other jobs: they are customers' messages.
pub const WEBHOOK_PRIORITY: i32 = 10;

fn source(state: &AppState, name: &str) -> Result<Source, ApiError> {
    let unknown = || {
        ApiError::NotFound(format!(
            "no webhook source `{name}`: this server takes whatsapp and evolution"
        ))
    };
    let source = Source::parse(name).ok_or_else(unknown)?;
    let configured = match source {
        Source::Whatsapp => state.webhooks.whatsapp.is_some(),
        Source::Evolution => state.webhooks.evolution.is_some(),
    };
    if !configured {
        return Err(ApiError::NotFound(format!(
            "the {name} webhook is not configured on this server: add [webhooks.{name}] to its config file"
        )));
    }
    Ok(source)
}

/// `POST /api/v1/webhooks/{source}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let source = source(&state, &name)?;
    let body = read_body(request).await?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match source {
        Source::Whatsapp => {
            let secret = state
                .webhooks
                .whatsapp
                .as_ref()
                .and_then(|w| w.app_secret.as_deref())
                .unwrap_or_default();
            whatsapp::verify_signature(secret, header("x-hub-signature-256"), &body)
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        }
        Source::Evolution => {
            let key = state
                .webhooks
                .evolution
                .as_ref()
                .and_then(|e| e.api_key.as_deref())
                .unwrap_or_default();
            evolution::check_api_key(key, header("apikey"), &body)
                .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        }
    }
    let queue = &state.queue;
    let mut job = queue.job(source.kind(), payload(&body, state.clock.now()));
    job.priority = WEBHOOK_PRIORITY;
    let id = queue.enqueue(vec![job]).await?[0];
    Ok((
        StatusCode::OK,
        Json(json!({"status": "accepted", "job_id": id})),
    )
        .into_response())
}

/// `GET /api/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...`:
/// the challenge back as plain text when the token is right.
pub async fn verify(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if source(&state, &name)? != Source::Whatsapp {
        return Err(ApiError::MethodNotAllowed(format!(
            "GET is the WhatsApp verification handshake; the {name} webhook takes POST only"
        )));
    }
    let configured = state
        .webhooks
        .whatsapp
        .as_ref()
        .and_then(|w| w.verify_token.as_deref())
        .ok_or_else(|| {
            ApiError::NotFound(
                "no verify_token in [webhooks.whatsapp]: set one to answer Meta's handshake".into(),
            )
        })?;
    let get = |key: &str| params.get(key).map(String::as_str);
    match whatsapp::handshake(
        get("hub.mode"),
        get("hub.verify_token"),
        get("hub.challenge"),
        configured,
    ) {
        Ok(challenge) => Ok((StatusCode::OK, challenge).into_response()),
        Err(whatsapp::HandshakeError::Forbidden) => Err(ApiError::Forbidden(
            "hub.verify_token does not match [webhooks.whatsapp] verify_token".into(),
        )),
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}
