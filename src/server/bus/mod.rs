//! The bus carries published events from ingest to every consumer of every
//! node (hub, and later metrics and alerts). A trait chosen by URL, so the
//! Redis backend slots in beside the in-process one.

mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::protocol::Event;

pub use memory::MemoryBus;

/// Events a subscriber may fall behind by before it misses some; a consumer
/// that lags this far is told how many it lost (and logs it) rather than
/// holding the publisher back.
pub const BUS_CAPACITY: usize = 16 * 1024;

/// A bus fault.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unsupported bus `{0}`: use `memory`")]
    UnsupportedUrl(String),
}

/// One consumer's view of the bus: a bounded receiver of published events.
pub type BusReceiver = broadcast::Receiver<Arc<Event>>;

/// The event bus.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes stored events, in id order.
    async fn publish(&self, events: &[Arc<Event>]) -> Result<(), BusError>;

    /// A new receiver of everything published from now on.
    fn subscribe(&self) -> BusReceiver;

    /// The backend's name for `/health` (`memory`).
    fn kind(&self) -> &'static str;
}

/// Whether a bus URL names a bus this build has (see [`open`]).
pub fn check_url(url: &str) -> Result<(), String> {
    match url {
        "memory" | "memory://" => Ok(()),
        _ => Err("unsupported bus: use `memory`".into()),
    }
}

/// Opens the bus a URL names.
pub async fn open(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    match url {
        "memory" | "memory://" => Ok(Arc::new(MemoryBus::new(BUS_CAPACITY))),
        other => Err(BusError::UnsupportedUrl(crate::config::mask_url(other))),
    }
}
