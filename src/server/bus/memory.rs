//! The in-process bus of a single node: a tokio broadcast channel, so each
//! event is one `Arc` shared by every consumer.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Bus, BusError, BusReceiver};
use crate::protocol::Event;

/// The in-process bus.
pub struct MemoryBus {
    tx: broadcast::Sender<Arc<Event>>,
}

impl MemoryBus {
    pub fn new(capacity: usize) -> MemoryBus {
        let (tx, _) = broadcast::channel(capacity);
        MemoryBus { tx }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, events: &[Arc<Event>]) -> Result<(), BusError> {
        for event in events {
            // No receiver yet is not an error: the store has the event.
            let _ = self.tx.send(event.clone());
        }
        Ok(())
    }

    fn subscribe(&self) -> BusReceiver {
        self.tx.subscribe()
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
