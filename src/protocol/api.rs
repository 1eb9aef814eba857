//! REST bodies shared by the server and its clients.

use serde::{Deserialize, Serialize};

use super::codes::ErrorCode;
use super::events::{Event, EventId};

/// Reply to `POST /api/v1/events`: the ids in the order the events were
/// posted. `duplicate` is true when an idempotency key matched an earlier
/// request and nothing new was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishResponse {
    pub ids: Vec<EventId>,
    pub duplicate: bool,
}

/// Reply to `GET /api/v1/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventsPage {
    pub events: Vec<Event>,
    /// Pass this as `since` to get the next page (the last id returned, or the
    /// `since` given when nothing matched).
    pub next_since: EventId,
    /// The newest event id on the server.
    pub head: EventId,
}

/// Connection counts in `/health` (seed 003's "websocket" section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionStats {
    pub total: u64,
    pub authenticated: u64,
    pub rooms: u64,
    pub slow_consumers_closed: u64,
}

/// The server process as the operating system sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Resident memory; `pytake loadtest` reads it before and after
    /// connecting to measure memory per connection.
    pub rss_bytes: u64,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `shutting_down`.
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
    pub store: String,
    pub bus: String,
    pub last_event_id: EventId,
    pub websocket: ConnectionStats,
    /// `GET /api/v1/events?wait=` requests held now (capped; see limits).
    #[serde(default)]
    pub long_polls: u64,
    pub process: ProcessStats,
}

/// The body of every REST error: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Inside `ErrorBody`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The offending field, when one is to blame (`[2].data.message_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
