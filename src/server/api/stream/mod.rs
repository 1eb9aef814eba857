//! `GET /api/v1/stream`: stored and live events as Server-Sent Events, for
//! `curl -N` and the browser's `EventSource`, which reconnects by itself
//! and resumes with `Last-Event-ID`.
//!
//! Everything that can be refused is refused before the stream starts,
//! with the API's JSON errors; once the `200` is out, the stream is
//! listening, and every event after its resume point follows.

mod feed;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::scope::{event_filters, tenant_scope};
use crate::protocol::limits::{MAX_EVENT_TYPES, MAX_ROOMS_PER_SUBSCRIPTION, SSE_KEEP_ALIVE};
use crate::protocol::{Claims, EventId, Room, Scope};
use crate::server::bus::Interest;
use crate::server::caps::Peer;
use crate::server::replay::Seam;
use crate::server::state::AppState;
use feed::Feed;

/// The query parameters the stream takes; any other is refused, so a typo
/// (`room=`) cannot silently widen the stream to every room.
const PARAMS: [&str; 5] = ["rooms", "event_types", "tenant_id", "since", "token"];

/// The header `EventSource` sends when it reconnects: the last `id:` it
/// received.
const LAST_EVENT_ID: &str = "last-event-id";

/// `GET /api/v1/stream?rooms=&event_types=&tenant_id=&since=&token=`.
pub async fn get_stream(
    State(state): State<AppState>,
    peer: Peer,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = caller(&state, &params, &headers)?;
    let (mut seam, since) = stream_scope(&claims, &params, &headers)?;
    // A stream counts under the same connection caps as a WebSocket:
    // admitted once the request is known to be valid, before it
    // subscribes or costs memory, and held (inside the interest) for the
    // stream's life.
    let admission = match state.caps.admit(peer.0, Some(&claims)) {
        Ok(admission) => admission,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    // Listen first, then read the head: every event after it arrives live.
    let live = state.bus.subscribe();
    let interest = state.bus.watch(seam.tenant.clone()).await.map_err(|e| {
        tracing::error!(error = %e, "watching a tenant for an SSE stream failed");
        ApiError::Unavailable("the bus is unavailable; retry".into())
    })?;
    let head = state.store.last_event_id().await?;
    seam.floor = match since {
        Some(ResumePoint { id, .. }) if id <= head => id,
        Some(ResumePoint { field, id }) => {
            return Err(ApiError::bad_param(
                field,
                format!("event {id} is past the newest stored event ({head}): it was not sent by this server's store"),
            ))
        }
        // No resume point: what happens from now on.
        None => head,
    };
    tracing::debug!(tenant = ?seam.tenant.to_wire(), since = seam.floor, sub = %claims.sub, "SSE stream opens");
    let feed = Feed::new(
        state.store.clone(),
        seam,
        live,
        Interest::new((interest, admission)),
        state.shutdown.clone(),
    );
    let keep_alive = KeepAlive::new().interval(SSE_KEEP_ALIVE).text("keep-alive");
    let mut response = Sse::new(feed.into_stream())
        .keep_alive(keep_alive)
        .into_response();
    // Reverse proxies (nginx) would otherwise buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The token from `Authorization: Bearer` or, for `EventSource`, which
/// cannot set headers, `?token=`; verified.
fn caller(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Claims, ApiError> {
    let token = match (headers.get(AUTHORIZATION), params.get("token")) {
        (Some(header), _) => header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?,
        (None, Some(token)) if !token.trim().is_empty() => token.trim(),
        _ => {
            return Err(ApiError::Unauthorized(
                "missing token: send `Authorization: Bearer <token>` or `?token=<token>`".into(),
            ))
        }
    };
    state
        .keys
        .verify(token)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// Where a stream resumes: after `id`, as the request field `field` said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResumePoint {
    field: &'static str,
    id: EventId,
}

/// Which events the stream carries, and where it resumes (`Last-Event-ID`
/// wins over `since`, because `EventSource` reconnects to the same URL
/// with the header advanced).
fn stream_scope(
    claims: &Claims,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(Seam, Option<ResumePoint>), ApiError> {
    if let Some(unknown) = params.keys().find(|k| !PARAMS.contains(&k.as_str())) {
        return Err(ApiError::bad_param(
            unknown,
            format!("unknown parameter; the stream takes {}", PARAMS.join(", ")),
        ));
    }
    let tenant = tenant_scope(claims, params.get("tenant_id").map(String::as_str))?;
    let (rooms, types) = event_filters(params)?;
    if rooms.len() > MAX_ROOMS_PER_SUBSCRIPTION {
        return Err(ApiError::bad_param(
            "rooms",
            format!("at most {MAX_ROOMS_PER_SUBSCRIPTION} rooms"),
        ));
    }
    if types.as_ref().is_some_and(|t| t.len() > MAX_EVENT_TYPES) {
        return Err(ApiError::bad_param(
            "event_types",
            format!("at most {MAX_EVENT_TYPES} types"),
        ));
    }
    let mut unique: Vec<Room> = Vec::with_capacity(rooms.len());
    for room in rooms {
        if !unique.contains(&room) {
            unique.push(room);
        }
    }
    let since = match (headers.get(LAST_EVENT_ID), params.get("since")) {
        (Some(header), _) => {
            let value = header.to_str().unwrap_or("").trim();
            // An empty `Last-Event-ID` is how EventSource says "none".
            (!value.is_empty())
                .then(|| event_id("Last-Event-ID", value))
                .transpose()?
        }
        (None, Some(since)) => Some(event_id("since", since)?),
        (None, None) => None,
    };
    let seam = Seam {
        floor: 0,
        tenant,
        rooms: Scope::rooms(unique),
        types,
    };
    Ok((seam, since))
}

fn event_id(field: &'static str, value: &str) -> Result<ResumePoint, ApiError> {
    value
        .trim()
        .parse::<EventId>()
        .ok()
        .filter(|id| *id >= 0)
        .map(|id| ResumePoint { field, id })
        .ok_or_else(|| {
            ApiError::bad_param(field, format!("`{value}` is not an event id (0 or more)"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Role;

    fn claims(tenant: Option<&str>, role: Role) -> Claims {
        Claims {
            sub: "t".into(),
            tenant_id: tenant.map(str::to_string),
            role,
            exp: u64::MAX,
            iat: 0,
            nbf: None,
            aud: None,
            iss: None,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field(e: ApiError) -> Option<String> {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("not a 400: {other:?}"),
        }
    }

    #[test]
    fn last_event_id_wins_over_since() {
        let mut headers = HeaderMap::new();
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("42"));
        let viewer = claims(Some("acme"), Role::Viewer);
        let (seam, since) = stream_scope(
            &viewer,
            &params(&[("since", "7"), ("rooms", "erp,erp")]),
            &headers,
        )
        .unwrap();
        assert_eq!(
            since,
            Some(ResumePoint {
                field: "Last-Event-ID",
                id: 42
            })
        );
        assert_eq!(seam.rooms, Scope::Only(vec![Room::parse("erp").unwrap()]));
        assert_eq!(seam.tenant.to_wire().as_deref(), Some("acme"));
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static(""));
        let (_, since) = stream_scope(&viewer, &params(&[("since", "7")]), &headers).unwrap();
        assert_eq!(since, None, "an empty Last-Event-ID means none");
        let (_, since) =
            stream_scope(&viewer, &params(&[("since", "7")]), &HeaderMap::new()).unwrap();
        assert_eq!(
            since,
            Some(ResumePoint {
                field: "since",
                id: 7
            })
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let viewer = claims(Some("acme"), Role::Viewer);
        let none = HeaderMap::new();
        let refused = |pairs: &[(&str, &str)], headers: &HeaderMap| {
            stream_scope(&viewer, &params(pairs), headers)
                .err()
                .unwrap()
        };
        assert_eq!(
            field(refused(&[("since", "-1")], &none)).as_deref(),
            Some("since")
        );
        assert_eq!(
            field(refused(&[("since", "x")], &none)).as_deref(),
            Some("since")
        );
        assert_eq!(
            field(refused(&[("rooms", "nope")], &none)).as_deref(),
            Some("rooms")
        );
        assert_eq!(
            field(refused(&[("room", "erp")], &none)).as_deref(),
            Some("room")
        );
        assert_eq!(
            field(refused(&[("event_types", "a b")], &none)).as_deref(),
            Some("event_types")
        );
        let mut headers = HeaderMap::new();
        headers.insert(LAST_EVENT_ID, HeaderValue::from_static("abc"));
        assert_eq!(
            field(refused(&[], &headers)).as_deref(),
            Some("Last-Event-ID")
        );
        assert!(matches!(
            refused(&[("tenant_id", "globex")], &none),
            ApiError::Forbidden(_)
        ));
    }
}
