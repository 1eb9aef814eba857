//! The store: where every accepted event is kept, in id order.
//!
//! One trait per capability, opened together by URL scheme ([`open`]): the
//! embedded SQLite store for one node, PostgreSQL for several. The
//! contracts live on the traits; `tests/integration/store_conformance.rs`
//! runs the same cases against every backend.

pub mod alerts;
pub mod conversations;
pub mod jobs;
pub mod metrics;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::protocol::dashboard::PoolStats;
use crate::protocol::{Event, EventId, Room, Scope, TenantId, ValidEvent};
use crate::server::metrics::rollup::Rollup;

pub use alerts::AlertStore;
pub use conversations::ConversationStore;
pub use jobs::JobStore;
pub use metrics::MetricStore;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A storage fault. Callers answer 503 and log it; the text never reaches
/// clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sqlx's message names the failure ("UNIQUE constraint failed: ...").
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The database server could not be reached or refused us at open.
    /// `url` has its password masked.
    #[error("cannot connect to PostgreSQL at {url}: {cause}; check that the server runs and that --store names it")]
    Connect { url: String, cause: sqlx::Error },
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("stored event {id} is corrupt: {message}")]
    Corrupt { id: EventId, message: String },
    #[error("stored job {id} is corrupt: {message}")]
    CorruptJob { id: i64, message: String },
    /// An alerting row (a rule, an alert, an incident...) that no longer
    /// reads back as its type.
    #[error("stored {what} `{id}` is corrupt: {message}")]
    CorruptRow {
        what: &'static str,
        id: String,
        message: String,
    },
    /// A value the server built that the store cannot keep as given (a
    /// time that is not RFC 3339, a number JSON cannot hold): refused
    /// before anything is written, rather than stored in a form that
    /// would not read back.
    #[error("cannot store {what} `{id}`: {message}")]
    Unstorable {
        what: &'static str,
        id: String,
        message: String,
    },
    #[error("the append task failed: {0}")]
    Task(String),
    #[error("unsupported store URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// A named thing does not exist (404 at the API).
    #[error("{what} `{id}` does not exist")]
    NotFound { what: &'static str, id: String },
    /// A write contradicts what is stored (409 at the API).
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// Whether the store itself is out of reach or failing (503 with
    /// `Retry-After`, and `/ready` false), as opposed to a refused write.
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, StoreError::NotFound { .. } | StoreError::Conflict(_))
    }
}

/// One producer request: its events are stored together or not at all.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Request-level idempotency key (the `Idempotency-Key` header), scoped by
    /// `key_scope`: the caller's tenant, or all for admins.
    pub idempotency_key: Option<String>,
    pub key_scope: Scope<TenantId>,
    /// With a request key: what the request asked for, so reusing the key
    /// for a different request is refused instead of answered with the
    /// first request's ids.
    pub fingerprint: Option<String>,
    pub events: Vec<ValidEvent>,
}

impl AppendRequest {
    /// `key_scope` as stored: the tenant, or `*` for admins (no tenant id
    /// can be `*`).
    pub fn key_scope_text(&self) -> &str {
        self.key_scope.only().map_or("*", TenantId::as_str)
    }
}

/// An idempotency key reused for something else: the request is refused
/// whole and nothing of it is stored (the Idempotency-Key draft's 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}` was already used for a different {what} within the last {hours} h; use a new key for new content")]
pub struct KeyReused {
    /// Where the key was given: `Idempotency-Key` or `[2].idempotency_key`.
    pub field: String,
    pub key: String,
    /// `request` or `event`.
    pub what: &'static str,
    pub hours: u64,
}

/// One event of an appended request.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub event: Arc<Event>,
    /// Stored by this append. False for a repeat matched by idempotency
    /// key: stored (and published) before, not to be published again.
    pub new: bool,
    /// For a new event: the id of the same tenant's event before it (0 for
    /// its first). A bus that may deliver out of order (several nodes
    /// publishing at once) tells a gap from a stream's start by it. For a
    /// repeat: 0.
    pub prev: EventId,
}

/// What became of one request: its events in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    pub events: Vec<Appended>,
}

impl AppendOutcome {
    /// True when nothing new was stored.
    pub fn duplicate(&self) -> bool {
        !self.events.iter().any(|a| a.new)
    }

    /// The events, new and repeated, in request order.
    pub fn events(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.events.iter().map(|a| &a.event)
    }
}

/// Which events a query wants.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// [`Scope::All`] only for admins.
    pub tenant: Scope<TenantId>,
    pub rooms: Scope<Vec<Room>>,
    /// `None`: every type.
    pub event_types: Option<Vec<String>>,
    /// Only ids greater than this.
    pub since: EventId,
    /// Only ids less than this (`None`: no bound): a gap to fill.
    pub before: Option<EventId>,
    pub limit: u32,
}

impl EventQuery {
    /// Every event of `tenant` after `since`, `limit` at most.
    pub fn after(tenant: Scope<TenantId>, since: EventId, limit: u32) -> EventQuery {
        EventQuery {
            tenant,
            rooms: Scope::All,
            event_types: None,
            since,
            before: None,
            limit,
        }
    }
}

/// What an append stored: one outcome per request, in order, and the
/// rollup of the new events, committed with them.
#[derive(Debug)]
pub struct Counted {
    pub outcomes: Vec<Result<AppendOutcome, KeyReused>>,
    pub rollup: Rollup,
}

/// The event store: every accepted event, in id order.
///
/// # Contract (every backend; the conformance suite checks each point)
///
/// **Ids** are positive, dense (every id from 1 to the head names an
/// event) and increase in commit order: an append that commits after
/// another holds greater ids. So once a reader has seen id `H` (from
/// [`EventStore::last_event_id`], an append's answer, or the bus), every
/// event with an id up to `H` is committed and readable by
/// [`EventStore::events`]: a subscriber that resumes with `since = H`
/// can never miss an event with a smaller id that committed later. Ids
/// come from the store, never from a node's memory: several nodes append
/// to one store.
///
/// **Events are immutable** once stored.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Stores a group of requests (one group commit), in order, assigning
    /// ids in that order; one outcome per request, in order. A request is
    /// stored whole or not at all; the group is one transaction, so a
    /// failure (`Err`) stores nothing of it. `now` is the time of
    /// receipt: it is recorded with the events and is the time the
    /// idempotency windows are measured from.
    ///
    /// Idempotency: a key (the request's, scoped by `key_scope`, or an
    /// event's, scoped by its tenant) is honoured for
    /// [`IDEMPOTENCY_TTL`](crate::protocol::limits::IDEMPOTENCY_TTL) (a
    /// request's) or [`EVENT_KEY_TTL`](crate::protocol::limits::EVENT_KEY_TTL)
    /// (an event's) after its first use. Within it, a repeat with the same
    /// fingerprint gets the earlier events back (`new` false, nothing
    /// stored); a repeat with another fingerprint is [`KeyReused`], and
    /// nothing of that request is stored. After it, the key is free again.
    /// Two nodes appending the same key at once store it once.
    ///
    /// The answer carries the [`Rollup`] of the new events, which the
    /// store wrote in the same transaction: what this node's aggregator
    /// adds for them without counting them again.
    async fn append_counted(
        &self,
        batch: Vec<AppendRequest>,
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError>;

    /// [`EventStore::append_counted`] without the rollup.
    async fn append(
        &self,
        batch: Vec<AppendRequest>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<AppendOutcome, KeyReused>>, StoreError> {
        Ok(self.append_counted(batch, now).await?.outcomes)
    }

    /// Events matching `query`, in increasing id order: the first `limit`
    /// after `since`. Paging with `since` = the last id of a page reads
    /// every matching event once, and by the id contract a page never
    /// skips an event that commits later: history, replay on `Subscription`
    /// with `since`, and long-polls (which read again with the same `since`
    /// whenever the node hears of a new event) are each complete.
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// Up to `limit` tenants with events in `room`, in no particular
    /// order: who a room name belongs to, for a caller of every tenant (an
    /// admin typing in `conversation:{id}`); two answers mean it is
    /// ambiguous. Reads the room index, never the events, but all of the
    /// room's rows when one tenant has it: cheap for a conversation, and
    /// callers cache the answer (an index by room and tenant would cost
    /// every append for this rare question).
    async fn room_tenants(&self, room: &Room, limit: u32) -> Result<Vec<TenantId>, StoreError>;

    /// The newest committed event id (0 when empty); see the contract on
    /// ids for what having seen it promises.
    async fn last_event_id(&self) -> Result<EventId, StoreError>;

    /// The newest event id of each of `tenants` (0 for a tenant without
    /// events), so a node can tell that a tenant's stream moved on without
    /// reading it.
    async fn tenant_heads(&self, tenants: &[TenantId]) -> Result<Vec<EventId>, StoreError>;

    /// The id just before the first event received at or after `time`, to
    /// start a replay from a point in time.
    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, StoreError>;

    /// Forgets the idempotency keys whose time-to-live has passed at `now`
    /// (see [`EventStore::append`]); returns how many.
    async fn expire_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Whether the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flushes and closes; later calls fail.
    async fn close(&self);

    /// The backend's name for `/health` (`sqlite`, `postgres`).
    fn kind(&self) -> &'static str;

    /// The connection pool's state now, for `/health`, the overview and
    /// `/metrics`.
    fn pool_stats(&self) -> PoolStats;
}

/// Every capability of one store, opened together from one URL so they
/// share a connection pool and can share a transaction.
///
/// One trait per capability, each with its contract and its conformance
/// cases: widgets join here as a field, with the issue that designs its
/// methods. A write that must be atomic across two of them (an alert
/// transition with its notification job, a webhook with its job) is one
/// method of the capability that owns it, one transaction in every
/// backend: never two calls a crash can split.
#[derive(Clone)]
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub metrics: Arc<dyn MetricStore>,
    pub jobs: Arc<dyn JobStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub conversations: Arc<dyn ConversationStore>,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections the pool opens (PostgreSQL; SQLite keeps its own
    /// small pool around its single writer).
    pub pool_size: u32,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { pool_size: 16 }
    }
}

/// A sqlx pool's state.
pub(crate) fn pool_stats<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> PoolStats {
    let size = pool.size();
    let idle = (pool.num_idle() as u32).min(size);
    PoolStats {
        size,
        idle,
        in_use: size - idle,
        max: pool.options().get_max_connections(),
    }
}

/// The URL schemes of the stores this build has.
pub const SCHEMES: &str = "sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE";

/// Whether a store URL names a backend this build has, so a bad `--store`
/// is a usage error before anything starts.
pub fn check_url(url: &str) -> Result<(), String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(
                "no path: write sqlite://PATH, e.g. sqlite:///var/lib/pytake/pytake.db".into(),
            );
        }
        return Ok(());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        if parsed.host_str().is_none_or(str::is_empty) && !url.contains("host=") {
            return Err("no host: write postgres://USER:PASSWORD@HOST:PORT/DATABASE".into());
        }
        return Ok(());
    }
    Err(format!("unsupported store: use one of {SCHEMES}"))
}

/// Opens the store a URL names, running its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Stores, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = Arc::new(SqliteStore::open(path).await?);
        return Ok(Stores {
            events: store.clone(),
            metrics: store.clone(),
            jobs: store.clone(),
            alerts: store.clone(),
            conversations: store,
        });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = Arc::new(PgStore::open(url, options.pool_size).await?);
        return Ok(Stores {
            events: store.clone(),
            metrics: store.clone(),
            jobs: store.clone(),
            alerts: store.clone(),
            conversations: store,
        });
    }
    // The URL may carry a password: never in a message.
    Err(StoreError::UnsupportedUrl(crate::config::mask_url(url)))
}
