//! The bus carries what one node must tell every node: stored events now,
//! presence, typing and metrics pushes later. A trait chosen by URL: the
//! in-process bus for one node, Redis for several.

mod memory;
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::protocol::{Event, EventId, Room, Scope, ServerFrame, TenantId};
use crate::server::storage::EventStore;

pub use memory::MemoryBus;
pub use redis::RedisBus;

/// Messages a subscriber may fall behind by before it misses some; a consumer
/// that lags this far is told how many it lost (and logs it) rather than
/// holding the publisher back.
pub const BUS_CAPACITY: usize = 16 * 1024;

/// A bus fault.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unsupported bus `{0}`: use `memory` or redis://HOST:PORT")]
    UnsupportedUrl(String),
    /// The message names the server (password masked) and what failed.
    #[error("the Redis bus at {url}: {source}")]
    Redis {
        url: String,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("the bus is shutting down")]
    Closed,
    /// A new stream needs the store's head, and the store did not answer.
    #[error("the bus could not read the store: {0}")]
    Store(String),
}

/// What travels on the bus.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// A stored event, with its tenant's previous id
    /// ([`Appended::prev`](crate::server::storage::Appended::prev)).
    Event { event: Arc<Event>, prev: EventId },
    /// A frame that is not stored (presence, typing): delivered to the
    /// members of one room of a tenant on every node that watches the
    /// tenant, at most once, in no particular order relative to events;
    /// never sequenced, never read back from the store. `except` is a
    /// connection of the publishing node that must not get it (the
    /// typist's own); other nodes ignore it, their ids are their own.
    Frame {
        tenant: TenantId,
        room: Room,
        frame: Arc<ServerFrame>,
        except: Option<u64>,
    },
}

/// One consumer's view of the bus: a bounded receiver of what is
/// published.
pub type BusReceiver = broadcast::Receiver<BusMessage>;

/// Whether the bus is connected, for `/health` and `/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusState {
    Up,
    /// Disconnected; events still reach subscribers from the store, late.
    Down {
        error: String,
    },
}

/// A node's interest in a tenant's messages; dropping it ends the
/// interest.
pub struct Interest {
    _guard: Option<Box<dyn Send + Sync>>,
}

impl Interest {
    /// An interest that costs nothing to hold: a bus that carries every
    /// message to every node anyway.
    pub fn free() -> Interest {
        Interest { _guard: None }
    }

    pub fn new(guard: impl Send + Sync + 'static) -> Interest {
        Interest {
            _guard: Some(Box::new(guard)),
        }
    }
}

/// The bus.
///
/// # Contract
///
/// For every tenant a node watches ([`Bus::watch`]), its receivers get
/// the [`BusMessage::Frame`]s published for it from now on, best effort,
/// and
/// every event committed after the watch was answered: each once, in
/// increasing id order, with no gap relative to the store's history of
/// that tenant (and, watching [`Scope::All`], of every tenant). A
/// receiver that falls [`BUS_CAPACITY`] behind gets `Lagged` instead and
/// must treat its connections as having missed events.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes messages: stored events in id order, after the store
    /// committed them (persist before publish). An error means other nodes
    /// may learn of them late, from the store; nothing is lost.
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), BusError>;

    /// A new receiver of what this node watches, from now on.
    fn subscribe(&self) -> BusReceiver;

    /// Makes this node receive a tenant's messages (every tenant's, for
    /// [`Scope::All`]) while the returned interest is held. Answers once
    /// they flow, so an event committed after it returns is delivered.
    async fn watch(&self, tenant: Scope<TenantId>) -> Result<Interest, BusError>;

    fn state(&self) -> BusState;

    /// The backend's name for `/health` (`memory`, `redis`).
    fn kind(&self) -> &'static str;

    /// A connection to the Redis that holds what every node must see the
    /// same (presence, rate-limit quotas), or `None` on one node, where
    /// that state lives in the process. It reconnects by itself; a call
    /// while Redis is down fails, and the caller decides how to degrade.
    fn shared_state(&self) -> Option<::redis::aio::ConnectionManager> {
        None
    }
}

/// The bus URL schemes this build has.
pub const SCHEMES: &str = "memory, redis://HOST:PORT";

/// Whether a bus URL names a bus this build has (see [`open`]).
pub fn check_url(url: &str) -> Result<(), String> {
    match url {
        "memory" | "memory://" => Ok(()),
        _ if url.starts_with("redis://") || url.starts_with("rediss://") => {
            ::redis::Client::open(url)
                .map(|_| ())
                .map_err(|e| format!("not a Redis URL: {e}"))
        }
        _ => Err(format!("unsupported bus: use one of {SCHEMES}")),
    }
}

/// Opens the bus a URL names. The Redis bus reads gaps and catch-up from
/// `store`.
pub async fn open(url: &str, store: Arc<dyn EventStore>) -> Result<Arc<dyn Bus>, BusError> {
    match url {
        "memory" | "memory://" => Ok(Arc::new(MemoryBus::new(BUS_CAPACITY))),
        _ if url.starts_with("redis://") || url.starts_with("rediss://") => {
            Ok(Arc::new(RedisBus::open(url, store).await?))
        }
        other => Err(BusError::UnsupportedUrl(crate::config::mask_url(other))),
    }
}
