//! What every handler and connection shares.

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Keys;
use crate::config::GatewaySettings;
use crate::server::api::long_poll::LongPolls;
use crate::server::bus::Bus;
use crate::server::clock::Clock;
use crate::server::gateway::hub::Hub;
use crate::server::ingest::Ingest;
use crate::server::metrics::aggregator::Aggregator;
use crate::server::storage::{EventStore, Stores};
use crate::server::telemetry::Telemetry;

/// Shared server state; cheap to clone.
pub type AppState = Arc<Shared>;

/// The parts of a running server.
pub struct Shared {
    pub gateway: GatewaySettings,
    /// The connection caps: WebSocket upgrades and SSE streams ask
    /// [`crate::server::caps::Caps::admit`] before they cost memory.
    pub caps: Arc<crate::server::caps::Caps>,
    /// The REST quotas per token subject.
    pub rate_limits: crate::server::ratelimit::RateLimits,
    pub keys: Keys,
    /// The event store (also in `stores`, the shortcut every handler uses).
    pub store: Arc<dyn EventStore>,
    pub stores: Stores,
    /// The store's URL as configured; `/health` shows it, password masked.
    pub store_url: String,
    pub bus: Arc<dyn Bus>,
    /// The bus URL as configured, password masked where shown.
    pub bus_url: String,
    /// The time as the server sees it.
    pub clock: Clock,
    pub hub: Arc<Hub>,
    pub ingest: Ingest,
    /// Cancelled once at shutdown; every task watches it.
    pub shutdown: CancellationToken,
    /// Every background task and WebSocket connection, so shutdown can wait
    /// for them (axum's graceful shutdown does not wait for upgraded sockets).
    pub tracker: TaskTracker,
    pub started: Instant,
    /// Long-polls held now, capped.
    pub long_polls: Arc<LongPolls>,
    /// The live figures.
    pub metrics: Arc<Aggregator>,
    /// This node's name in the metric samples it stores.
    pub node_id: String,
    /// What `GET /metrics` shows; other parts register their metrics here.
    pub telemetry: Arc<Telemetry>,
    /// The job queue: enqueue, stats, this node's workers.
    pub queue: Arc<crate::server::queue::Queue>,
    /// The queue stats last read, for `/metrics` and the overview.
    pub queue_stats: Arc<crate::server::queue::monitor::Latest>,
    /// The notification channels this node's settings configure.
    pub alert_channels: std::collections::BTreeSet<crate::protocol::alerts::Channel>,
    /// This node's part in alerting (`/health`).
    pub alerting: Arc<crate::server::alerts::status::Status>,
    /// The webhook sources this server accepts.
    pub webhooks: crate::config::WebhooksSettings,
    /// Who is online and who is typing (shared through Redis on several
    /// nodes).
    pub presence: crate::server::presence::Presence,
}
