//! The store: where every accepted event is kept, in id order.
//!
//! A trait, chosen by URL scheme, so the PostgreSQL backend slots in beside
//! the embedded SQLite one without touching callers.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::protocol::{Event, EventId, ValidEvent};

pub use sqlite::SqliteStore;

/// A storage fault. Callers answer 503 and log it; the text never reaches
/// clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sqlx's message names the failure ("UNIQUE constraint failed: ...").
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("stored event {id} is corrupt: {message}")]
    Corrupt { id: EventId, message: String },
    #[error("the append task failed: {0}")]
    Task(String),
    #[error("unsupported store URL `{0}`: use sqlite://PATH")]
    UnsupportedUrl(String),
}

/// One producer request: its events are stored together or not at all.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Request-level idempotency key (the `Idempotency-Key` header), scoped by
    /// `key_scope` (the caller's tenant, or `*` for admins).
    pub idempotency_key: Option<String>,
    pub key_scope: String,
    /// With a request key: what the request asked for, so reusing the key
    /// for a different request is refused instead of answered with the
    /// first request's ids.
    pub fingerprint: Option<String>,
    pub events: Vec<ValidEvent>,
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

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendOutcome {
    /// The events in request order, with their ids.
    pub events: Vec<Arc<Event>>,
    /// For each event, whether it is new (stored now) or a repeat of an
    /// earlier one matched by idempotency key (stored before, not republished).
    pub fresh: Vec<bool>,
}

impl AppendOutcome {
    /// True when nothing new was stored.
    pub fn duplicate(&self) -> bool {
        !self.fresh.iter().any(|f| *f)
    }
}

/// Which events a query wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    /// `None`: every tenant (admins only).
    pub tenant_id: Option<String>,
    /// Empty: every room.
    pub rooms: Vec<String>,
    /// `None`: every type.
    pub event_types: Option<Vec<String>>,
    /// Only ids greater than this.
    pub since: EventId,
    pub limit: u32,
}

/// The event store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a group of requests atomically (group commit), in order,
    /// assigning increasing ids; one outcome per request, in order.
    ///
    /// Idempotency: a key (the request's, scoped by `key_scope`, or an
    /// event's, scoped by its tenant) is honoured for
    /// [`IDEMPOTENCY_TTL`](crate::protocol::limits::IDEMPOTENCY_TTL) (a
    /// request's) or [`EVENT_KEY_TTL`](crate::protocol::limits::EVENT_KEY_TTL)
    /// (an event's) after its first use. Within it, a repeat with the same fingerprint gets
    /// the earlier events back (`fresh` false, nothing stored); a repeat
    /// with another fingerprint is [`KeyReused`], and nothing of that
    /// request is stored. After it, the key is free again.
    async fn append(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendOutcome, KeyReused>>, StoreError>;

    /// Events matching `query`, in id order.
    async fn events(&self, query: &EventQuery) -> Result<Vec<Event>, StoreError>;

    /// The newest event id (0 when empty).
    async fn last_event_id(&self) -> Result<EventId, StoreError>;

    /// The id just before the first event received at or after `time`, to
    /// start a replay from a point in time.
    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, StoreError>;

    /// Forgets the idempotency keys whose time-to-live has passed at `now`
    /// (see [`Store::append`]); returns how many.
    async fn expire_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Whether the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Flushes and closes; later calls fail.
    async fn close(&self);

    /// The backend's name for `/health` (`sqlite`).
    fn kind(&self) -> &'static str;
}

/// Whether a store URL names a backend this build has, so a bad `--store`
/// is a usage error before anything starts.
pub fn check_url(url: &str) -> Result<(), String> {
    match url.strip_prefix("sqlite://") {
        Some("") => {
            Err("no path: write sqlite://PATH, e.g. sqlite:///var/lib/pytake/pytake.db".into())
        }
        Some(_) => Ok(()),
        None => Err("unsupported store: use sqlite://PATH".into()),
    }
}

/// Opens the store a URL names, running its migrations.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    // The URL may carry a password: never in a message.
    Err(StoreError::UnsupportedUrl(crate::config::mask_url(url)))
}
