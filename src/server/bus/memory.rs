//! The in-process bus of a single node: a tokio broadcast channel, so each
//! event is one `Arc` shared by every consumer. The single ingest writer
//! publishes in id order, so the bus's order and completeness need no
//! sequencing.

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{Bus, BusError, BusMessage, BusReceiver, BusState, Interest};
use crate::protocol::{Scope, TenantId};

/// The in-process bus.
pub struct MemoryBus {
    tx: broadcast::Sender<BusMessage>,
}

impl MemoryBus {
    pub fn new(capacity: usize) -> MemoryBus {
        let (tx, _) = broadcast::channel(capacity);
        MemoryBus { tx }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), BusError> {
        for message in messages {
            // No receiver yet is not an error: the store has the event.
            let _ = self.tx.send(message);
        }
        Ok(())
    }

    fn subscribe(&self) -> BusReceiver {
        self.tx.subscribe()
    }

    async fn watch(&self, _tenant: Scope<TenantId>) -> Result<Interest, BusError> {
        Ok(Interest::free())
    }

    fn state(&self) -> BusState {
        BusState::Up
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
