//! The Redis bus's task: owns the subscription connection (reconnecting
//! with backoff), the sequencer and the reconciler tick, and takes the
//! watch and unwatch requests of the bus's handles.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use redis::aio::{PubSub, PubSubSink, PubSubStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::frames::{self, frame_channel, Recent, FRAME_PREFIX};
use super::sequencer::Sequencer;
use super::{ALL_PATTERN, CHANNEL_PREFIX, RECONCILE_EVERY, RECONNECT_MAX, RECONNECT_MIN};
use crate::protocol::{Event, EventId, Scope, TenantId};
use crate::server::bus::{BusFrame, BusState};

/// A request of a bus handle to its task.
pub(super) enum Control {
    Watch(Scope<TenantId>, oneshot::Sender<Result<(), String>>),
    Unwatch(Scope<TenantId>),
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
pub(super) struct Task {
    /// The bus's id on the frames channels: its own echoes are dropped.
    pub(super) origin: u64,
    /// Where frames from other nodes go (events go through the sequencer).
    pub(super) frames: broadcast::Sender<BusFrame>,
    pub(super) client: redis::Client,
    pub(super) url: String,
    pub(super) sequencer: Sequencer,
    pub(super) state: Arc<Mutex<BusState>>,
    /// The frames delivered lately, to drop a second copy.
    pub(super) recent: Recent,
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
    pub(super) async fn run(
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
    fn on_frame(&mut self, msg: &redis::Msg) {
        match frames::decode(self.origin, msg.get_payload_bytes(), &mut self.recent) {
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
