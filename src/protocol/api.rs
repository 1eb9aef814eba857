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

/// The server's overall state in `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Serving, and every component answers in time.
    Ok,
    /// Serving, but a component fails or is slow (see `components`): events
    /// may be refused with 503 until it recovers.
    Degraded,
    /// Draining after SIGTERM; `/health` answers 503.
    ShuttingDown,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl HealthStatus {
    /// The word on the wire and on screen (`shutting_down`).
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::ShuttingDown => "shutting_down",
            HealthStatus::Unknown => "unknown",
        }
    }
}

/// How one component answered its check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Answered in time.
    Ok,
    /// No answer within the limit (1 s for the store).
    Slow,
    /// Answered with an error.
    Down,
    /// A state this client does not know (a newer server).
    #[serde(other)]
    Unknown,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Slow => "slow",
            CheckStatus::Down => "down",
            CheckStatus::Unknown => "unknown",
        }
    }
}

/// The store's check: a ping, timed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreCheck {
    pub status: CheckStatus,
    /// `sqlite`.
    pub kind: String,
    /// Where the store is (`sqlite:///var/lib/pytake/pytake.db`), with any
    /// password replaced by `***`.
    pub url: String,
    /// How long the ping took; absent when it failed or timed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What went wrong, in words safe for an unauthenticated endpoint (the
    /// store's own error is in the server log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The bus's check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusCheck {
    pub status: CheckStatus,
    /// `memory` or `redis`.
    pub kind: String,
    /// The bus URL (`memory`, `redis://host:6379`), password replaced.
    #[serde(default)]
    pub url: String,
    /// What went wrong, in words safe for an unauthenticated endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every backend the server depends on, each with its own status; any one
/// not `ok` makes the server `degraded`. The job queue joins here when it
/// arrives (`queue`, with its depth and workers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Components {
    pub store: StoreCheck,
    pub bus: BusCheck,
}

/// Events accepted by intake (stored, duplicates not counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRates {
    /// Since the server started.
    pub total: u64,
    /// Average over the last `window_seconds` complete seconds (or the
    /// uptime, when shorter).
    pub per_second: f64,
    pub window_seconds: u64,
}

/// `GET /health`. Fields added after the first release carry
/// `#[serde(default)]`, so a newer client still reads an older server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    /// The crate version (`0.1.0`).
    pub version: String,
    /// The git commit it was built from (`1a2b3c4d5e6f`, `-dirty`, or
    /// `unknown`).
    #[serde(default = "unknown")]
    pub revision: String,
    /// The UTC day it was built (`2026-12-02`).
    #[serde(default = "unknown")]
    pub build_date: String,
    pub uptime_seconds: u64,
    /// The store's kind (`sqlite`); its check is in `components.store`.
    pub store: String,
    /// The bus's kind (`memory`); its check is in `components.bus`.
    pub bus: String,
    pub last_event_id: EventId,
    pub websocket: ConnectionStats,
    /// `GET /api/v1/events?wait=` requests held now (capped; see limits).
    #[serde(default)]
    pub long_polls: u64,
    pub process: ProcessStats,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventRates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Components>,
    /// The machine (CPU and memory of every node, their mean) and this
    /// node's store pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<crate::protocol::dashboard::SystemStats>,
    /// This node's part in alerting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsHealth>,
    /// This node's connection caps and what counts against them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<CapsHealth>,
}

/// In `/health`: the connection caps of this node (WebSocket and SSE
/// together) and the counts they apply to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapsHealth {
    /// Admitted and open now.
    pub connections: u64,
    pub max_connections: u32,
    /// Open connections authenticated with a tenant's token, by tenant.
    pub tenants: std::collections::BTreeMap<String, u64>,
    pub max_connections_per_tenant: u32,
    /// Not yet authenticated now, every source address together.
    pub unauthenticated: u64,
    pub max_unauthenticated_per_address: u32,
    /// Refused since start, by the cap's setting name.
    pub refused: std::collections::BTreeMap<String, u64>,
}

/// In `/health`: whether this node evaluates the alert rules (holds the
/// evaluator's lease) or stands by, and when it last evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertsHealth {
    pub evaluating: bool,
    /// Null until this node first evaluates.
    #[serde(default)]
    pub last_evaluation: Option<String>,
}

fn unknown() -> String {
    "unknown".into()
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
