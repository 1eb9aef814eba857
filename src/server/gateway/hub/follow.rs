//! The hub's loop: what the bus publishes, delivered until shutdown.
//! Events and frames come on separate receivers, with separate policies
//! for a hub that falls behind (see
//! [`BUS_CAPACITY`](crate::server::bus::BUS_CAPACITY) and
//! [`FRAME_CAPACITY`](crate::server::bus::FRAME_CAPACITY)).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::server::bus::{BusEvent, BusFrame, BusReceiver, FrameReceiver};

impl Hub {
    /// Delivers everything the bus publishes until shutdown: events from
    /// `bus`, frames from `frames`. Runs outside tokio's cooperative
    /// budget: the socket writes of one fan-out would use it up after 128
    /// and make every later subscriber look full.
    pub async fn run(
        self: Arc<Self>,
        bus: BusReceiver,
        frames: FrameReceiver,
        shutdown: CancellationToken,
    ) {
        tokio::task::unconstrained(self.deliver_all(bus, frames, shutdown)).await
    }

    async fn deliver_all(
        self: Arc<Self>,
        mut bus: BusReceiver,
        mut frames: FrameReceiver,
        shutdown: CancellationToken,
    ) {
        let mut behind = 0u32;
        let mut frames_in_a_row = 0u32;
        let mut frames_open = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = frames.recv(), if frames_open => match received {
                    Ok(BusFrame { tenant, room, frame, except }) => {
                        self.deliver_frame_except(&tenant, &room, &frame, except);
                        // Outside tokio's budget: a typing storm must still
                        // let other tasks run, as a backlog of events does.
                        frames_in_a_row += 1;
                        if frames_in_a_row.is_multiple_of(32) {
                            tokio::task::yield_now().await;
                        }
                    }
                    // Frames have no resume: the lost ones are only
                    // counted, and nobody is closed (the next presence
                    // frame, or the listing, corrects what they said).
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.stats.frames_lagged.fetch_add(missed, Ordering::Relaxed);
                        tracing::warn!(missed, "hub fell behind the bus's presence and typing frames; they are lost");
                    }
                    Err(broadcast::error::RecvError::Closed) => frames_open = false,
                },
                received = bus.recv() => match received {
                    Ok(BusEvent { event, .. }) => {
                        self.stats.bus_received.fetch_add(1, Ordering::Relaxed);
                        // Behind the bus: queue, so connections batch their
                        // writes, and let other tasks run now and then.
                        let now = bus.is_empty();
                        self.deliver(event, now);
                        behind = if now { 0 } else { behind + 1 };
                        if behind % 32 == 31 {
                            tokio::task::yield_now().await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.stats.bus_lagged.fetch_add(missed, Ordering::Relaxed);
                        tracing::error!(missed, "hub fell behind the bus; closing subscribers so they resume");
                        self.drop_everyone();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        self.close_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{connect, event, tenant};
    use super::super::Verdict;
    use super::*;
    use crate::protocol::{Room, Scope, ServerFrame, TenantId};
    use crate::server::bus::{Bus, BusMessage, MemoryBus, FRAME_CAPACITY};

    fn typing(n: usize) -> BusMessage {
        BusMessage::Frame(BusFrame {
            tenant: TenantId::parse("acme").unwrap(),
            room: Room::parse("presence").unwrap(),
            frame: Arc::new(ServerFrame::Typing(serde_json::json!({"n": n}))),
            except: None,
        })
    }

    /// A storm of frames the hub cannot keep up with costs the frames,
    /// not the connections; falling behind the events closes everyone, who
    /// resume from their last id.
    #[tokio::test]
    async fn falling_behind_frames_loses_frames_and_behind_events_closes() {
        let bus = MemoryBus::new(8);
        let hub = Hub::new(0);
        // Queues too small to matter: the socket buffer takes everything.
        let (conn, _pipe) = connect(&hub, 64 * 1024 * 1024, 1);
        let _m = hub.join(&conn, &tenant("acme"), &Scope::All, None);
        let shutdown = CancellationToken::new();
        let follow = tokio::spawn(hub.clone().run(
            bus.subscribe(),
            bus.subscribe_frames(),
            shutdown.clone(),
        ));
        // Published before the hub's task runs (one thread): it lags.
        for n in 0..FRAME_CAPACITY + 10 {
            bus.publish(vec![typing(n)]).await.unwrap();
        }
        while hub.stats.frames_lagged.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(hub.stats.frames_lagged.load(Ordering::Relaxed), 10);
        assert_eq!(conn.verdict(), None, "nobody is closed for frames");

        for id in 1..=20 {
            let message = BusMessage::Event {
                event: event(id, "acme", &["erp"], "X"),
                prev: id - 1,
            };
            bus.publish(vec![message]).await.unwrap();
        }
        while conn.verdict().is_none() {
            tokio::task::yield_now().await;
        }
        assert_eq!(conn.verdict(), Some(Verdict::SlowConsumer));
        assert!(hub.stats.bus_lagged.load(Ordering::Relaxed) > 0);
        shutdown.cancel();
        follow.await.unwrap();
    }
}
