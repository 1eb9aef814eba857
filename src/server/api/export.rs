//! Exports that stream any volume in constant memory: the events export
//! (`GET /api/v1/events/export`) and a campaign's report
//! (`GET /api/v1/campaigns/{id}/export`). Pages of [`PAGE`] events are
//! read from the store only as the client takes the previous ones, so a
//! slow reader holds one page, whatever the export's size.
//!
//! An export that fails half-way (the store goes away) ends the response
//! without its final chunk: HTTP clients see an incomplete body, never a
//! complete-looking file.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use futures_util::stream;

use super::auth::Caller;
use super::dashboard::one_tenant;
use super::scope::{event_filters, tenant_scope, time_param};
use super::ApiError;
use crate::protocol::dashboard::{ExportFormat, EVENT_CSV_COLUMNS};
use crate::protocol::{Event, EventId, Room, Scope};
use crate::server::metrics::campaign;
use crate::server::state::AppState;
use crate::server::storage::{EventQuery, EventStore};

/// Events read per page.
pub const PAGE: u32 = 1000;

/// `GET /api/v1/events/export?since_time=&until=&event_types=&rooms=&tenant_id=&format=ndjson|csv|json`:
/// every matching event received in `[since_time, until)`, in id order.
pub async fn events(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = tenant_scope(&claims, params.get("tenant_id").map(String::as_str))?;
    let format = match params.get("format") {
        Some(f) => ExportFormat::parse(f).map_err(|e| ApiError::bad_param("format", e))?,
        None => ExportFormat::Ndjson,
    };
    let (rooms, types) = event_filters(&params)?;
    let since_time = time_param(&params, "since_time")?;
    let until = time_param(&params, "until")?;
    if let (Some(from), Some(to)) = (since_time, until) {
        if to <= from {
            return Err(ApiError::bad_param("until", "must be after since_time"));
        }
    }
    let since = match since_time {
        Some(t) => state.store.id_before(t).await?,
        None => 0,
    };
    // Without `until`, up to the head now: an export under steady
    // ingest ends, and holds what was stored when it was asked for.
    let before = match until {
        Some(t) => state.store.id_before(t).await? + 1,
        None => state.store.last_event_id().await? + 1,
    };
    let query = EventQuery {
        tenant,
        rooms: Scope::rooms(rooms),
        event_types: types,
        since,
        before: Some(before),
        limit: PAGE,
    };
    let name = format!(
        "pytake-events-{}.{}",
        state.clock.now().format("%Y%m%dT%H%M%SZ"),
        format.name()
    );
    let body = Body::from_stream(event_stream(
        state.store.clone(),
        query,
        format,
        Vec::new(),
        b"",
    ));
    Ok(attachment(format, &name, body))
}

fn attachment(format: ExportFormat, name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Where a paged export is.
enum Step {
    /// Nothing sent yet.
    Start,
    /// Pages after this id are still to read.
    After(EventId),
    Done,
}

/// The events of `query` from its `since` on, page by page, in `format`
/// (JSON as one array), after `head` and before `tail` (the campaign
/// report wraps the array in its document).
fn event_stream(
    store: Arc<dyn EventStore>,
    query: EventQuery,
    format: ExportFormat,
    head: Vec<u8>,
    tail: &'static [u8],
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    let since = query.since;
    stream::unfold(
        (Step::Start, store, query, head, 0u64),
        move |(step, store, mut query, head, sent)| async move {
            let after = match step {
                Step::Done => return None,
                Step::Start => {
                    let mut out = head;
                    match format {
                        ExportFormat::Csv => {
                            out.extend_from_slice(EVENT_CSV_COLUMNS.join(",").as_bytes());
                            out.push(b'\n');
                        }
                        ExportFormat::Json => out.push(b'['),
                        ExportFormat::Ndjson => {}
                    }
                    return Some((
                        Ok(Bytes::from(out)),
                        (Step::After(since), store, query, Vec::new(), sent),
                    ));
                }
                Step::After(after) => after,
            };
            query.since = after;
            let page = match store.events(&query).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %e, after, "export stopped: the store failed");
                    let error =
                        std::io::Error::other(format!("the store failed after event {after}"));
                    return Some((Err(error), (Step::Done, store, query, Vec::new(), sent)));
                }
            };
            if page.is_empty() {
                let mut out = Vec::new();
                if format == ExportFormat::Json {
                    out.push(b']');
                }
                out.extend_from_slice(tail);
                return Some((
                    Ok(Bytes::from(out)),
                    (Step::Done, store, query, Vec::new(), sent),
                ));
            }
            let last = page.last().map_or(after, |e| e.id);
            let out = write_page(&page, format, sent);
            let sent = sent + page.len() as u64;
            Some((
                Ok(Bytes::from(out)),
                (Step::After(last), store, query, Vec::new(), sent),
            ))
        },
    )
}

/// One page in `format`; `sent` events went before it.
fn write_page(page: &[Event], format: ExportFormat, sent: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() * 256);
    match format {
        ExportFormat::Ndjson => {
            for event in page {
                serde_json::to_writer(&mut out, event).expect("event serializes");
                out.push(b'\n');
            }
        }
        ExportFormat::Json => {
            for (i, event) in page.iter().enumerate() {
                if sent + i as u64 > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut out, event).expect("event serializes");
            }
        }
        ExportFormat::Csv => {
            let mut csv = csv::Writer::from_writer(out);
            for e in page {
                csv.write_record([
                    e.id.to_string().as_str(),
                    &e.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
                    &e.tenant_id,
                    &e.event_type,
                    &e.room,
                    &e.rooms.join(" "),
                    &e.data.to_string(),
                ])
                .expect("write to memory");
            }
            out = csv.into_inner().expect("flush to memory");
        }
    }
    out
}

/// `GET /api/v1/campaigns/{id}/export?tenant_id=`: seed 003's report, one
/// JSON document `{campaign, performance, generated_at, messages}` whose
/// `messages` (the campaign's events, in id order) stream.
pub async fn campaign(
    State(state): State<AppState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let tenant = one_tenant(&tenant_scope(
        &claims,
        params.get("tenant_id").map(String::as_str),
    )?)?;
    if let Some(f) = params.get("format").filter(|f| f.as_str() != "json") {
        return Err(ApiError::bad_param(
            "format",
            format!("unknown format `{f}`; a campaign report is json"),
        ));
    }
    let Some(row) = state.stores.metrics.campaign(&tenant, &id).await? else {
        return Err(ApiError::NotFound(format!(
            "no campaign `{id}` in tenant `{tenant}`"
        )));
    };
    let now = state.clock.now();
    let metrics = campaign::metrics(&row, now);
    let performance = campaign::performance(state.stores.metrics.as_ref(), &row).await?;
    let room = Room::parse(&format!("campaign:{id}"))
        .map_err(|e| ApiError::bad_param("id", format!("cannot name a campaign room: {e}")))?;
    let mut head = br#"{"campaign":"#.to_vec();
    serde_json::to_writer(&mut head, &metrics).expect("metrics serialize");
    head.extend_from_slice(br#","performance":"#);
    serde_json::to_writer(&mut head, &performance).expect("performance serializes");
    head.extend_from_slice(br#","generated_at":"#);
    serde_json::to_writer(&mut head, &now.to_rfc3339_opts(SecondsFormat::Millis, true))
        .expect("time serializes");
    head.extend_from_slice(br#","messages":"#);
    let query = EventQuery {
        tenant: Scope::Only(tenant.clone()),
        rooms: Scope::Only(vec![room]),
        event_types: None,
        since: 0,
        // The messages up to the moment the report's figures were read.
        before: Some(state.store.last_event_id().await? + 1),
        limit: PAGE,
    };
    let body = Body::from_stream(event_stream(
        state.store.clone(),
        query,
        ExportFormat::Json,
        head,
        b"}",
    ));
    let name = format!("pytake-campaign-{tenant}-{id}.json");
    Ok(attachment(ExportFormat::Json, &name, body))
}
