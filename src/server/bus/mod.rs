//! The bus carries what one node must tell every node: stored events, and
//! frames that are not stored (presence, typing). A trait chosen by URL: the
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

/// Events a receiver may fall behind by before it misses some; a consumer
/// that lags this far is told how many it lost (and logs it) rather than
/// holding the publisher back. Events have ids, so a lagging hub closes its
/// subscribers and they resume without loss.
pub const BUS_CAPACITY: usize = 16 * 1024;

/// Frames a receiver may fall behind by. Full, the oldest are overwritten
/// and the receiver counts what it lost: frames are hints with no resume
/// (the next presence frame or the listing corrects a lost one), so a
/// burst of them (a typing storm) must never cost the event stream, which
/// is why they have a channel of their own.
pub const FRAME_CAPACITY: usize = 4 * 1024;

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

/// What a node publishes.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// A stored event, with its tenant's previous id
    /// ([`Appended::prev`](crate::server::storage::Appended::prev)).
    Event { event: Arc<Event>, prev: EventId },
    /// A frame that is not stored (presence, typing).
    Frame(BusFrame),
}

/// A stored event as the bus delivers it (see [`Bus::subscribe`]).
#[derive(Debug, Clone)]
pub struct BusEvent {
    pub event: Arc<Event>,
    pub prev: EventId,
}

/// A frame that is not stored (presence, typing): delivered to the members
/// of one room of a tenant on every node that watches the tenant, at most
/// once, in no particular order relative to events; never sequenced, never
/// read back from the store (see [`Bus::subscribe_frames`]).
#[derive(Debug, Clone)]
pub struct BusFrame {
    pub tenant: TenantId,
    pub room: Room,
    pub frame: Arc<ServerFrame>,
    /// A connection of the publishing node that must not get it (the
    /// typist's own); other nodes get `None`, their ids are their own.
    pub except: Option<u64>,
}

/// One consumer's view of the events: a bounded receiver.
pub type BusReceiver = broadcast::Receiver<BusEvent>;

/// One consumer's view of the frames: a bounded receiver, apart from the
/// events (see [`FRAME_CAPACITY`]).
pub type FrameReceiver = broadcast::Receiver<BusFrame>;

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
/// For every tenant a node watches ([`Bus::watch`]), its event receivers
/// get every event committed after the watch was answered: each once, in
/// increasing id order, with no gap relative to the store's history of
/// that tenant (and, watching [`Scope::All`], of every tenant). A
/// receiver that falls [`BUS_CAPACITY`] behind gets `Lagged` instead and
/// must treat its connections as having missed events.
///
/// Its frame receivers get the frames published for it from now on, best
/// effort and each at most once, also when the node watches the tenant
/// both by itself and through [`Scope::All`].
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes messages: stored events in id order, after the store
    /// committed them (persist before publish). An error means other nodes
    /// may learn of them late, from the store; nothing is lost.
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), BusError>;

    /// A new receiver of the events of what this node watches, from now
    /// on.
    fn subscribe(&self) -> BusReceiver;

    /// A new receiver of the frames of what this node watches, from now
    /// on.
    fn subscribe_frames(&self) -> FrameReceiver;

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
