//! The in-process bus of a single node: a tokio broadcast channel, so each
//! event is one `Arc` shared by every consumer. The single ingest writer
//! publishes in id order, so the bus's order and completeness need no
//! sequencing.

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    Bus, BusError, BusEvent, BusFrame, BusMessage, BusReceiver, BusState, FrameReceiver, Interest,
    FRAME_CAPACITY,
};
use crate::protocol::{Scope, TenantId};

/// The in-process bus.
pub struct MemoryBus {
    events: broadcast::Sender<BusEvent>,
    frames: broadcast::Sender<BusFrame>,
}

impl MemoryBus {
    /// A bus whose event receivers may lag by `capacity` (the server uses
    /// [`BUS_CAPACITY`](super::BUS_CAPACITY); tests a small one).
    pub fn new(capacity: usize) -> MemoryBus {
        MemoryBus {
            events: broadcast::channel(capacity).0,
            frames: broadcast::channel(FRAME_CAPACITY).0,
        }
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), BusError> {
        for message in messages {
            // No receiver yet is not an error: the store has the event.
            match message {
                BusMessage::Event { event, prev } => {
                    let _ = self.events.send(BusEvent { event, prev });
                }
                BusMessage::Frame(frame) => {
                    let _ = self.frames.send(frame);
                }
            }
        }
        Ok(())
    }

    fn subscribe(&self) -> BusReceiver {
        self.events.subscribe()
    }

    fn subscribe_frames(&self) -> FrameReceiver {
        self.frames.subscribe()
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
