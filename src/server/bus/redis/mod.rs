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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub, PubSubSink, PubSubStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{
    Bus, BusError, BusEvent, BusFrame, BusMessage, BusReceiver, BusState, FrameReceiver, Interest,
    BUS_CAPACITY, FRAME_CAPACITY,
};
use crate::protocol::{Event, EventId, Scope, TenantId};
use crate::server::storage::EventStore;
use frames::{frame_channel, Route, FRAME_PREFIX};
use sequencer::Sequencer;

/// Channels are `pytake:events:{tenant}`; tenant ids cannot hold `:` or
/// a glob character, so the pattern matches event channels only.
const CHANNEL_PREFIX: &str = "pytake:events:";
const ALL_PATTERN: &str = "pytake:events:*";

/// How often the reconciler compares the watched streams with the store.
/// Bounds how late an event is when its publisher died before publishing
/// (two ticks at most) or Redis is down.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Longest a PUBLISH may take before the ingest writer moves on (the
/// events are stored: other nodes read them from the store).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// Reconnect backoff: from the first, doubling up to the last.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

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

enum Control {
    Watch(Scope<TenantId>, oneshot::Sender<Result<(), String>>),
    Unwatch(Scope<TenantId>),
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
                    frames.push(frames::encode(self.origin, frame));
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

/// The next message of the subscription, if there is one (else never).
async fn next_message(conn: &mut Option<(PubSubSink, PubSubStream)>) -> Option<redis::Msg> {
    match conn.as_mut() {
        Some((_, stream)) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// A reconnect attempt's outcome, if one is under way (else never).
async fn reconnected(
    attempt: &mut Option<oneshot::Receiver<redis::RedisResult<PubSub>>>,
) -> redis::RedisResult<PubSub> {
    match attempt.as_mut() {
        Some(rx) => rx.await.unwrap_or_else(|_| {
            Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "reconnect task ended",
            )))
        }),
        None => std::future::pending().await,
    }
}

/// The bus's task: owns the subscription connection and the sequencer.
struct Task {
    /// The bus's id on the frames channels: its own echoes are dropped.
    origin: u64,
    /// Where frames from other nodes go (events go through the sequencer).
    frames: broadcast::Sender<BusFrame>,
    client: redis::Client,
    url: String,
    sequencer: Sequencer,
    state: Arc<Mutex<BusState>>,
}

fn channel(scope: &Scope<TenantId>) -> String {
    match scope {
        Scope::All => ALL_PATTERN.to_string(),
        Scope::Only(tenant) => format!("{CHANNEL_PREFIX}{tenant}"),
    }
}

/// Subscribes to a scope's events and frames channels, together.
async fn subscribe(sink: &mut PubSubSink, scope: &Scope<TenantId>) -> redis::RedisResult<()> {
    let channels = [channel(scope), frame_channel(scope)];
    match scope {
        Scope::All => sink.psubscribe(&channels[..]).await,
        Scope::Only(_) => sink.subscribe(&channels[..]).await,
    }
}

async fn unsubscribe(sink: &mut PubSubSink, scope: &Scope<TenantId>) -> redis::RedisResult<()> {
    let channels = [channel(scope), frame_channel(scope)];
    match scope {
        Scope::All => sink.punsubscribe(&channels[..]).await,
        Scope::Only(_) => sink.unsubscribe(&channels[..]).await,
    }
}

impl Task {
    async fn run(
        mut self,
        pubsub: PubSub,
        mut local: mpsc::Receiver<Vec<(Arc<Event>, EventId)>>,
        mut control: mpsc::UnboundedReceiver<Control>,
        shutdown: CancellationToken,
    ) {
        let (sink, stream) = pubsub.split();
        let mut conn: Option<(PubSubSink, PubSubStream)> = Some((sink, stream));
        let mut reconnect: Option<oneshot::Receiver<redis::RedisResult<PubSub>>> = None;
        let mut backoff = RECONNECT_MIN;
        let mut retry_at = tokio::time::Instant::now();
        let mut store_failing = false;
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let retry_due = conn.is_none() && reconnect.is_none();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                message = next_message(&mut conn) => match message {
                    Some(msg) => self.on_message(&msg).await,
                    None => {
                        conn = None;
                        self.down("the subscription connection closed".into());
                        retry_at = tokio::time::Instant::now();
                    }
                },
                // This node's writer publishes in id order.
                Some(events) = local.recv() => self.sequencer.receive(events).await,
                Some(request) = control.recv() => self.on_control(request, &mut conn).await,
                _ = tick.tick() => {
                    // Said once per outage, not every tick of it.
                    match self.sequencer.reconcile(false).await {
                        Ok(()) if store_failing => {
                            store_failing = false;
                            tracing::info!("the bus reads the store again");
                        }
                        Ok(()) => {}
                        Err(e) if !store_failing => {
                            store_failing = true;
                            tracing::warn!(error = %e, "comparing the bus with the store failed; retrying every tick");
                        }
                        Err(e) => tracing::debug!(error = %e, "the store still fails"),
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if retry_due => {
                    let client = self.client.clone();
                    let (tx, rx) = oneshot::channel();
                    tokio::spawn(async move {
                        let _ = tx.send(client.get_async_pubsub().await);
                    });
                    reconnect = Some(rx);
                }
                result = reconnected(&mut reconnect) => {
                    reconnect = None;
                    match self.resume(result).await {
                        Ok(new) => {
                            conn = Some(new);
                            backoff = RECONNECT_MIN;
                        }
                        Err(e) => {
                            self.down(e.to_string());
                            retry_at = tokio::time::Instant::now() + backoff;
                            backoff = (backoff * 2).min(RECONNECT_MAX);
                        }
                    }
                }
            }
        }
        tracing::debug!("Redis bus stopped");
    }

    /// A new subscription connection: subscribes to every watched stream,
    /// then catches each up from the store (what was published while the
    /// connection was down is lost to pub/sub).
    async fn resume(
        &mut self,
        result: redis::RedisResult<PubSub>,
    ) -> redis::RedisResult<(PubSubSink, PubSubStream)> {
        let (mut sink, stream) = result?.split();
        for scope in self.sequencer.watched() {
            subscribe(&mut sink, &scope).await?;
        }
        if let Err(e) = self.sequencer.reconcile(true).await {
            tracing::warn!(error = %e, "catching up from the store after reconnecting failed; retrying on the next tick");
        }
        *self.state.lock().expect("bus state") = BusState::Up;
        tracing::info!(url = %self.url, "bus reconnected to Redis; subscribers caught up from the store");
        Ok((sink, stream))
    }

    fn down(&self, error: String) {
        let mut state = self.state.lock().expect("bus state");
        if *state == BusState::Up {
            tracing::error!(url = %self.url, %error, "bus lost Redis; delivering from the store until it is back");
        }
        *state = BusState::Down { error };
    }

    async fn on_control(
        &mut self,
        request: Control,
        conn: &mut Option<(PubSubSink, PubSubStream)>,
    ) {
        match request {
            Control::Watch(scope, reply) => {
                if self.sequencer.add(&scope) {
                    if let Some((sink, _)) = conn.as_mut() {
                        if let Err(e) = subscribe(sink, &scope).await {
                            // The reconnect subscribes it again.
                            tracing::warn!(error = %e, %scope, "subscribing failed");
                        }
                    }
                    if let Err(e) = self.sequencer.begin(&scope).await {
                        // A stream without a start would deliver the whole
                        // history as live: refuse the watch instead.
                        tracing::warn!(error = %e, %scope, "reading the head for a new stream failed");
                        if self.sequencer.remove(&scope) {
                            if let Some((sink, _)) = conn.as_mut() {
                                let _ = unsubscribe(sink, &scope).await;
                            }
                        }
                        let _ = reply.send(Err(e.to_string()));
                        return;
                    }
                }
                let _ = reply.send(Ok(()));
            }
            Control::Unwatch(scope) => {
                if self.sequencer.remove(&scope) {
                    if let Some((sink, _)) = conn.as_mut() {
                        if let Err(e) = unsubscribe(sink, &scope).await {
                            tracing::warn!(error = %e, %scope, "unsubscribing failed");
                        }
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: &redis::Msg) {
        if msg.get_channel_name().starts_with(FRAME_PREFIX) {
            return self.on_frame(msg);
        }
        if !msg.get_channel_name().starts_with(CHANNEL_PREFIX) {
            return;
        }
        let events: Vec<(Event, EventId)> = match serde_json::from_slice(msg.get_payload_bytes()) {
            Ok(events) => events,
            Err(e) => {
                // Not ours, or a newer node's format: the store still has
                // the events and the reconciler delivers them.
                tracing::warn!(error = %e, channel = msg.get_channel_name(), "unreadable bus message");
                return;
            }
        };
        let events = events
            .into_iter()
            .map(|(event, prev)| (Arc::new(event), prev))
            .collect();
        self.sequencer.receive(events).await;
    }

    /// Another node's frame: straight to this node's subscribers, once
    /// (see [`frames::decode`]).
    fn on_frame(&self, msg: &redis::Msg) {
        let route = |tenant: &str| {
            let (tenant_watched, all_watched) = self.sequencer.watches(tenant);
            Route {
                from_pattern: msg.from_pattern(),
                tenant_watched,
                all_watched,
            }
        };
        match frames::decode(self.origin, msg.get_payload_bytes(), route) {
            Ok(Some(frame)) => {
                let _ = self.frames.send(frame);
            }
            Ok(None) => {}
            // Not stored: a frame this node cannot read is lost, as a
            // frame published while it was down would be.
            Err(e) => {
                tracing::warn!(error = %e, channel = msg.get_channel_name(), "unreadable bus frame")
            }
        }
    }
}
