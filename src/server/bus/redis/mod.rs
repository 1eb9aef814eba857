//! The bus of several nodes: Redis pub/sub, one channel per tenant.
//!
//! A node subscribes only to the tenants its connections watch (and to all
//! of them, by pattern, while an admin watches every tenant), so it
//! receives nothing of a busy tenant none of its clients follow: not one
//! channel that carries every event to every node.
//!
//! Redis is a fast path, never the record: events are committed before
//! they are published, the [`sequencer`] restores id order across
//! publishers and reads anything missing from the store, and after Redis
//! comes back every watched stream is caught up from the store. While
//! Redis is down, the reconciler keeps delivering from the store, a tick
//! late.

mod frames;
mod sequencer;
mod task;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    Bus, BusError, BusEvent, BusFrame, BusMessage, BusReceiver, BusState, FrameReceiver, Interest,
    BUS_CAPACITY, FRAME_CAPACITY,
};
use crate::protocol::{Event, EventId, Scope, TenantId};
use crate::server::storage::EventStore;
use sequencer::Sequencer;
use task::{Control, Task};

/// Channels are `pytake:events:{tenant}`; tenant ids cannot hold `:` or
/// a glob character, so the pattern matches event channels only.
pub(super) const CHANNEL_PREFIX: &str = "pytake:events:";
pub(super) const ALL_PATTERN: &str = "pytake:events:*";

/// How often the reconciler compares the watched streams with the store.
/// Bounds how late an event is when its publisher died before publishing
/// (two ticks at most) or Redis is down.
pub(super) const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Longest a PUBLISH may take before the ingest writer moves on (the
/// events are stored: other nodes read them from the store).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Reconnect backoff: from the first, doubling up to the last.
pub(super) const RECONNECT_MIN: Duration = Duration::from_millis(100);
pub(super) const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Local events waiting for the sequencer. Full, the ingest writer waits:
/// backpressure on intake rather than memory growth.
const LOCAL_QUEUE: usize = 1024;

/// The Redis bus.
pub struct RedisBus {
    /// For messages; the password masked.
    url: String,
    publisher: ConnectionManager,
    /// This bus's id on the frames channels, random per process.
    origin: u64,
    /// Numbers this bus's frames, so a node subscribed twice drops a copy.
    frame_seq: AtomicU64,
    out: broadcast::Sender<BusEvent>,
    frames: broadcast::Sender<BusFrame>,
    local: mpsc::Sender<Vec<(Arc<Event>, EventId)>>,
    control: mpsc::UnboundedSender<Control>,
    state: Arc<Mutex<BusState>>,
    shutdown: CancellationToken,
    /// The task that subscribes and sequences, started on first use, so
    /// an opened server runs nothing until it serves.
    idle: Mutex<Option<Idle>>,
}

/// The bus task before its start.
struct Idle {
    task: Task,
    pubsub: PubSub,
    local: mpsc::Receiver<Vec<(Arc<Event>, EventId)>>,
    control: mpsc::UnboundedReceiver<Control>,
}

/// Drops an interest: tells the bus task.
struct Unwatch {
    control: mpsc::UnboundedSender<Control>,
    scope: Scope<TenantId>,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Unwatch(self.scope.clone()));
    }
}

impl RedisBus {
    /// Connects (failing with the server's address if it does not answer)
    /// and starts the task that subscribes and sequences.
    pub async fn open(url: &str, store: Arc<dyn EventStore>) -> Result<RedisBus, BusError> {
        let masked = crate::config::mask_url(url);
        let fail = |source| BusError::Redis {
            url: masked.clone(),
            source,
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(PUBLISH_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(RECONNECT_MAX);
        let publisher = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(fail)?;
        let pubsub = client.get_async_pubsub().await.map_err(fail)?;
        let (out, _) = broadcast::channel(BUS_CAPACITY);
        let (frames, _) = broadcast::channel(FRAME_CAPACITY);
        let (local, local_rx) = mpsc::channel(LOCAL_QUEUE);
        let (control, control_rx) = mpsc::unbounded_channel();
        let state = Arc::new(Mutex::new(BusState::Up));
        let shutdown = CancellationToken::new();
        let origin = rand::random::<u64>();
        let task = Task {
            origin,
            frames: frames.clone(),
            recent: Default::default(),
            client,
            url: masked.clone(),
            sequencer: Sequencer::new(store, out.clone()),
            state: state.clone(),
        };
        tracing::info!(url = %masked, "bus connected to Redis");
        Ok(RedisBus {
            url: masked,
            publisher,
            origin,
            frame_seq: AtomicU64::new(0),
            out,
            frames,
            local,
            control,
            state,
            shutdown,
            idle: Mutex::new(Some(Idle {
                task,
                pubsub,
                local: local_rx,
                control: control_rx,
            })),
        })
    }

    /// Starts the bus task if this is the first use.
    fn start(&self) {
        if let Some(idle) = self.idle.lock().expect("bus task").take() {
            let shutdown = self.shutdown.clone();
            tokio::spawn(
                idle.task
                    .run(idle.pubsub, idle.local, idle.control, shutdown),
            );
        }
    }
}

impl Drop for RedisBus {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, messages: Vec<BusMessage>) -> Result<(), BusError> {
        self.start();
        // Per tenant, in id order: one PUBLISH each.
        let mut by_tenant: HashMap<&str, Vec<(&Event, EventId)>> = HashMap::new();
        let mut events = Vec::with_capacity(messages.len());
        let mut frames = Vec::new();
        for message in &messages {
            match message {
                BusMessage::Event { event, prev } => {
                    by_tenant
                        .entry(event.tenant_id.as_str())
                        .or_default()
                        .push((event, *prev));
                    events.push((event.clone(), *prev));
                }
                BusMessage::Frame(frame) => {
                    // Here at once, `except` and all; the echo is dropped.
                    let _ = self.frames.send(frame.clone());
                    let seq = self.frame_seq.fetch_add(1, Ordering::Relaxed);
                    frames.push(frames::encode(self.origin, seq, frame));
                }
            }
        }
        // This node's subscribers get them without a round trip; the copy
        // Redis echoes back is dropped by the sequencer.
        if !events.is_empty() && self.local.send(events).await.is_err() {
            return Err(BusError::Closed);
        }
        if matches!(
            *self.state.lock().expect("bus state"),
            BusState::Down { .. }
        ) {
            // Other nodes read them from the store; waiting on a dead
            // server would stall intake.
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (tenant, events) in by_tenant {
            let payload = serde_json::to_vec(&events).expect("events serialize");
            pipe.publish(format!("{CHANNEL_PREFIX}{tenant}"), payload)
                .ignore();
        }
        for (channel, payload) in frames {
            pipe.publish(channel, payload).ignore();
        }
        let mut conn = self.publisher.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|source| BusError::Redis {
                url: self.url.clone(),
                source,
            })
    }

    fn subscribe(&self) -> BusReceiver {
        self.out.subscribe()
    }

    fn subscribe_frames(&self) -> FrameReceiver {
        self.frames.subscribe()
    }

    async fn watch(&self, tenant: Scope<TenantId>) -> Result<Interest, BusError> {
        self.start();
        let (reply, answered) = oneshot::channel();
        self.control
            .send(Control::Watch(tenant.clone(), reply))
            .map_err(|_| BusError::Closed)?;
        answered
            .await
            .map_err(|_| BusError::Closed)?
            .map_err(BusError::Store)?;
        Ok(Interest::new(Unwatch {
            control: self.control.clone(),
            scope: tenant,
        }))
    }

    fn state(&self) -> BusState {
        self.state.lock().expect("bus state").clone()
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn shared_state(&self) -> Option<ConnectionManager> {
        Some(self.publisher.clone())
    }
}
