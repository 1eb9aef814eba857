//! Presence and typing: who of a tenant is online (with several tabs and
//! several nodes), with what status, and who is typing in which
//! conversation. Neither is stored: changes go as frames through the bus
//! ([`BusMessage::Frame`]), and the listing is computed when asked.
//!
//! A user is online while any of its connections is open, on any node; it
//! goes offline once the last closes and the grace period passes without
//! a new one, so a page reload does not flap. Every change of a user's
//! status or connection count is announced to the tenant's `presence`
//! room once, by the node that found it differs from what was last
//! announced (a reload within the grace announces nothing): on one node
//! against its memory, on several against Redis (see [`shared`]).
//!
//! The programmatic API ([`Presence::connect`], [`PresenceGuard::set_status`],
//! [`Presence::typing`]) is what the gateway uses for each connection, and
//! what a simulation (the demo) uses without a socket.

mod collector;
mod registry;
mod shared;
pub mod typing;

pub use collector::PresenceCollector;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::protocol::presence::{
    PresenceChange, PresenceList, Status, TypingChange, PRESENCE_ROOM,
};
use crate::protocol::{Room, Scope, ServerFrame, TenantId};
use crate::server::bus::{Bus, BusFrame, BusMessage};
use crate::server::clock::Clock;
use crate::server::gateway::hub::ConnId;
use registry::{Key, Registry};
use shared::{Shared, Shown, Write};
pub use typing::TypingKey;

/// What one node announced, per user and as a count per tenant.
#[derive(Default)]
struct Announced {
    users: HashMap<Key, (Status, u32)>,
    online: HashMap<TenantId, u32>,
}

impl Announced {
    /// Records a user's announced state; returns the one before.
    fn set(&mut self, key: &Key, state: (Status, u32)) -> (Status, u32) {
        let before = if state.1 == 0 {
            self.users.remove(key)
        } else {
            self.users.insert(key.clone(), state)
        };
        let count = self.online.entry(key.0.clone()).or_default();
        match (before.is_some(), state.1 > 0) {
            (false, true) => *count += 1,
            (true, false) => *count -= 1,
            _ => {}
        }
        if *count == 0 {
            self.online.remove(&key.0);
        }
        before.unwrap_or((Status::Offline, 0))
    }

    fn online(&self, tenant: &TenantId) -> u32 {
        self.online.get(tenant).copied().unwrap_or(0)
    }
}

/// How long a failed Redis write waits before the worker tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// A presence fault.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    /// The shared presence in Redis could not be read.
    #[error("presence is shared through Redis, which failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("`offline` is not a status a user sets: it follows the last connection's close")]
    NotSettable,
}

/// Presence and typing of this node; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    inner: Arc<Inner>,
}

struct Inner {
    grace: Duration,
    clock: Clock,
    bus: Arc<dyn Bus>,
    shared: Option<Shared>,
    registry: Mutex<Registry>,
    typing: Mutex<typing::Typing>,
    /// Wakes the worker: something is dirty or a deadline moved.
    wake: Notify,
}

/// A user's connection as presence counts it; the user's connection count
/// drops when it is dropped (and, for the last, the grace period starts).
pub struct PresenceGuard {
    presence: Presence,
    key: Key,
}

impl PresenceGuard {
    pub fn tenant(&self) -> &TenantId {
        &self.key.0
    }

    pub fn user(&self) -> &str {
        &self.key.1
    }

    /// Sets the user's status (every connection of the user shares it; the
    /// newest setting wins across nodes). Announced to the `presence` room.
    pub fn set_status(&self, status: Status) -> Result<(), PresenceError> {
        if status == Status::Offline {
            return Err(PresenceError::NotSettable);
        }
        let inner = &self.presence.inner;
        let now = inner.clock.now();
        if inner
            .registry
            .lock()
            .expect("presence lock")
            .set_status(&self.key, status, now)
        {
            inner.wake.notify_one();
        }
        Ok(())
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let inner = &self.presence.inner;
        let leave_at = Instant::now() + inner.grace;
        inner
            .registry
            .lock()
            .expect("presence lock")
            .disconnect(&self.key, leave_at);
        inner.wake.notify_one();
    }
}

impl Presence {
    /// Presence on one node (`shared` is `None`) or shared through Redis
    /// with a per-node heartbeat of `ttl`.
    pub fn new(
        grace: Duration,
        ttl: Duration,
        clock: Clock,
        bus: Arc<dyn Bus>,
        node: &str,
    ) -> Presence {
        let shared = bus
            .shared_state()
            .map(|conn| Shared::new(conn, format!("{node}-{:016x}", rand::random::<u64>()), ttl));
        Presence {
            inner: Arc::new(Inner {
                grace,
                clock,
                bus,
                shared,
                registry: Mutex::default(),
                typing: Mutex::default(),
                wake: Notify::new(),
            }),
        }
    }

    /// Counts a connection of `user` in `tenant` until the guard drops.
    pub fn connect(&self, tenant: &TenantId, user: &str) -> PresenceGuard {
        let key = (tenant.clone(), user.to_string());
        let now = self.inner.clock.now();
        self.inner
            .registry
            .lock()
            .expect("presence lock")
            .connect(&key, now);
        self.inner.wake.notify_one();
        PresenceGuard {
            presence: self.clone(),
            key,
        }
    }

    /// The online users of `scope` (every node's, with Redis), by tenant
    /// then user. Users in their grace period are listed as they were.
    pub async fn list(&self, scope: &Scope<TenantId>) -> Result<PresenceList, PresenceError> {
        let mut users = match &self.inner.shared {
            Some(shared) => shared.online(scope).await?,
            None => self
                .inner
                .registry
                .lock()
                .expect("presence lock")
                .online(scope),
        };
        users.sort_by(|a, b| (&a.tenant_id, &a.user_id).cmp(&(&b.tenant_id, &b.user_id)));
        Ok(PresenceList {
            tenant_id: scope.to_wire(),
            online_count: users.len() as u32,
            users,
        })
    }

    /// A `Typing` message of `key.user` in `key.conversation` (a room of
    /// `key.tenant`; the caller checked the tenant owns it). Sent on to
    /// the conversation's room, except to `key.conn`, under the rules of
    /// [`typing::Typing::update`]; the state ends by itself after
    /// [`TYPING_TTL`](crate::protocol::presence::TYPING_TTL).
    pub async fn typing(&self, key: &TypingKey, typing: bool) {
        let send =
            self.inner
                .typing
                .lock()
                .expect("typing lock")
                .update(key, typing, Instant::now());
        self.inner.wake.notify_one();
        if send {
            self.inner.send_typing(key, typing).await;
        }
    }

    /// Users with a connection on this node (or in their grace period),
    /// and typing states held here: this node's share, for `/metrics`.
    pub fn local_counts(&self) -> (usize, usize) {
        let users = self.inner.registry.lock().expect("presence lock").len();
        let typing = self.inner.typing.lock().expect("typing lock").len();
        (users, typing)
    }

    /// Ends a closing connection's typing states (each sends
    /// `typing: false`).
    pub fn end_typing(&self, conn: ConnId) {
        let ended = self
            .inner
            .typing
            .lock()
            .expect("typing lock")
            .end_conn(conn, Instant::now());
        if ended {
            self.inner.wake.notify_one();
        }
    }

    /// Announces changes, ends grace periods and typing states, and (with
    /// Redis) beats this node's heartbeat and sweeps dead nodes, until
    /// shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        self.inner.clone().run(shutdown).await
    }
}

impl Inner {
    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // On one node, what was announced: only a change is sent (several
        // nodes compare in Redis instead).
        let mut announced = Announced::default();
        let beat_every = self.shared.as_ref().map_or(Duration::from_secs(3600), |s| {
            (s.ttl / 3).max(Duration::from_millis(100))
        });
        let mut heartbeat = tokio::time::interval(beat_every);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at: Option<Instant> = None;
        // Live before the first write: a sweep removes the entries of
        // nodes it does not know.
        self.beat().await;
        loop {
            let deadline = {
                let grace = self.registry.lock().expect("presence lock").next_deadline();
                let typing = self.typing.lock().expect("typing lock").next_deadline();
                [grace, typing, retry_at].into_iter().flatten().min()
            };
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = sleep => {}
                _ = heartbeat.tick(), if self.shared.is_some() => self.beat().await,
            }
            let now = Instant::now();
            retry_at = retry_at.filter(|at| *at > now);
            let expired = self.typing.lock().expect("typing lock").expire(now);
            for key in expired {
                self.send_typing(&key, false).await;
            }
            if retry_at.is_some() {
                continue;
            }
            let dirty = {
                let mut registry = self.registry.lock().expect("presence lock");
                registry.expire(now);
                registry.take_dirty()
            };
            for (i, key) in dirty.iter().enumerate() {
                if let Err(e) = self.announce(key, &mut announced).await {
                    tracing::warn!(error = %e, "writing presence to Redis failed; retrying");
                    let mut registry = self.registry.lock().expect("presence lock");
                    for key in &dirty[i..] {
                        registry.mark(key.clone());
                    }
                    retry_at = Some(now + RETRY_AFTER);
                    break;
                }
            }
        }
        if let Some(shared) = &self.shared {
            if let Err(e) = shared.retire().await {
                tracing::debug!(error = %e, "leaving the presence nodes failed; the TTL removes this node");
            }
        }
    }

    /// Publishes a user's state as this node now sees it (with Redis: as
    /// every live node does), if it differs from what was last announced.
    async fn announce(&self, key: &Key, announced: &mut Announced) -> Result<(), PresenceError> {
        let shown = self.registry.lock().expect("presence lock").shown(key);
        let changed = match &self.shared {
            Some(shared) => shared.settle(key, Write::Entry(shown.as_ref())).await?,
            None => {
                let state = shown.map_or((Status::Offline, 0), |e| (e.status, e.connections));
                let last = announced.set(key, state);
                (state != last).then(|| Shown {
                    status: state.0,
                    connections: state.1,
                    online_count: announced.online(&key.0),
                })
            }
        };
        if let Some(shown) = changed {
            self.publish_presence(key, shown).await;
        }
        Ok(())
    }

    /// Announces a user's new state.
    async fn publish_presence(&self, key: &Key, shown: Shown) {
        let (tenant, user) = key;
        let change = PresenceChange {
            tenant_id: tenant.to_string(),
            user_id: user.clone(),
            status: shown.status,
            connections: shown.connections,
            online_count: shown.online_count,
            timestamp: self.clock.now(),
        };
        tracing::debug!(tenant = %change.tenant_id, user = %change.user_id, status = %change.status, connections = change.connections, "presence");
        let frame = ServerFrame::Presence(serde_json::to_value(&change).expect("serializes"));
        let sent = self
            .publish(tenant.clone(), Room::checked(PRESENCE_ROOM), frame, None)
            .await;
        if let (false, Some(shared)) = (sent, &self.shared) {
            // Redis holds this state as announced: forget it, so the next
            // change of the user is announced whatever it is.
            if let Err(e) = shared.forget(key).await {
                tracing::debug!(error = %e, "forgetting an unsent presence change failed");
            }
        }
    }

    async fn send_typing(&self, key: &TypingKey, typing: bool) {
        let change = TypingChange {
            conversation_id: key.conversation.clone(),
            user_id: key.user.clone(),
            typing,
        };
        let room = Room::checked(&format!("conversation:{}", key.conversation));
        let frame = ServerFrame::Typing(serde_json::to_value(&change).expect("serializes"));
        // A lost typing frame is corrected by the next, or by the expiry.
        let _ = self
            .publish(key.tenant.clone(), room, frame, key.conn)
            .await;
    }

    async fn publish(
        &self,
        tenant: TenantId,
        room: Room,
        frame: ServerFrame,
        except: Option<ConnId>,
    ) -> bool {
        let message = BusMessage::Frame(BusFrame {
            tenant,
            room,
            frame: Arc::new(frame),
            except,
        });
        match self.bus.publish(vec![message]).await {
            Ok(()) => true,
            Err(e) => {
                // Not stored: other nodes miss this one; the listing is right.
                tracing::warn!(error = %e, "publishing a presence or typing frame failed");
                false
            }
        }
    }

    /// The heartbeat, then the sweep of dead nodes, whose users this node
    /// settles and announces. What fails stays in Redis for the next beat
    /// (of this node or another) to find again.
    async fn beat(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let entries = self.registry.lock().expect("presence lock").all();
        match shared.heartbeat(&entries).await {
            Ok(again) if again.is_empty() => {}
            Ok(again) => {
                tracing::warn!(users = again.len(), "this node's presence was missing or stale in Redis (a late heartbeat, a sweep, a Redis restart); announcing those users again");
                let mut registry = self.registry.lock().expect("presence lock");
                for key in again {
                    registry.mark(key);
                }
                drop(registry);
                self.wake.notify_one();
            }
            Err(e) => {
                tracing::warn!(error = %e, "presence heartbeat to Redis failed; other nodes drop this node's users after the TTL");
                return;
            }
        }
        let swept = match shared.sweep().await {
            Ok(swept) => swept,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping dead nodes' presence failed; the next heartbeat retries");
                return;
            }
        };
        for (key, node) in swept {
            match shared.settle(&key, Write::Sweep(&node)).await {
                Ok(Some(shown)) => self.publish_presence(&key, shown).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "settling a dead node's user failed; the next sweep retries");
                    return;
                }
            }
        }
    }
}
