//! The hub: room membership and fan-out. Each event is serialized once and
//! the same bytes are queued for every subscriber; a subscriber whose queue
//! is full is closed as a slow consumer instead of growing memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::protocol::{Event, EventId, ServerFrame};
use crate::server::bus::BusReceiver;

/// Stands for "every tenant" or "every room" in a membership key. Tenant ids
/// and room names cannot contain it.
pub const ANY: &str = "*";

/// Connection id, unique within a process.
pub type ConnId = u64;

/// One frame queued for a connection: the shared bytes, and the event they
/// carry so the connection can drop replay duplicates at the seam.
pub struct Outbound {
    pub event: Arc<Event>,
    pub frame: Utf8Bytes,
}

/// The receiving end of a connection's bounded queue.
pub struct Outbox {
    rx: mpsc::UnboundedReceiver<Outbound>,
    conn: Arc<ConnHandle>,
}

impl Outbox {
    /// The next queued frame.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let out = self.rx.recv().await;
        if out.is_some() {
            self.conn.queued.fetch_sub(1, Ordering::Relaxed);
        }
        out
    }

    /// A queued frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        let out = self.rx.try_recv().ok();
        if out.is_some() {
            self.conn.queued.fetch_sub(1, Ordering::Relaxed);
        }
        out
    }
}

/// Why a connection is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Its outbound queue filled up (4009).
    SlowConsumer = 1,
    /// The server is shutting down (1001).
    Shutdown = 2,
}

/// The hub's side of a connection.
pub struct ConnHandle {
    pub id: ConnId,
    /// Unbounded channel plus our own count: tokio's bounded channel takes
    /// a lock to return each slot, on the hottest path of all.
    tx: mpsc::UnboundedSender<Outbound>,
    queued: AtomicUsize,
    capacity: usize,
    /// 0 while running, else a [`Verdict`]. Polled on every wake of the
    /// connection, so it is an atomic and a lock-free waker rather than a
    /// cancellation token (whose check takes a lock).
    verdict: AtomicU8,
    waker: AtomicWaker,
}

impl ConnHandle {
    /// Tells the connection to stop; the first verdict wins.
    pub fn stop(&self, verdict: Verdict) -> bool {
        let first = self
            .verdict
            .compare_exchange(0, verdict as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.waker.wake();
        first
    }

    /// The verdict, if any.
    pub fn verdict(&self) -> Option<Verdict> {
        match self.verdict.load(Ordering::Acquire) {
            1 => Some(Verdict::SlowConsumer),
            2 => Some(Verdict::Shutdown),
            _ => None,
        }
    }

    /// Ready once a verdict is given.
    pub fn poll_verdict(&self, cx: &mut Context<'_>) -> Poll<Verdict> {
        if let Some(v) = self.verdict() {
            return Poll::Ready(v);
        }
        self.waker.register(cx.waker());
        match self.verdict() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

struct Member {
    conn: Arc<ConnHandle>,
    /// Event types wanted; `None`: all.
    types: Option<Arc<[String]>>,
}

type Room = HashMap<ConnId, Member>;

/// Counters shown by `/health`.
#[derive(Default)]
pub struct HubStats {
    pub connections: AtomicU64,
    pub authenticated: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub delivered: AtomicU64,
}

/// Rooms by tenant (or [`ANY`]) then room name (or [`ANY`]).
pub struct Hub {
    rooms: RwLock<HashMap<String, HashMap<String, Room>>>,
    /// Every open connection, so shutdown reaches those in no room too;
    /// `None` once the hub is closed.
    conns: Mutex<Option<HashMap<ConnId, Weak<ConnHandle>>>>,
    next_conn: AtomicU64,
    pub stats: HubStats,
    head: watch::Sender<EventId>,
}

impl Hub {
    pub fn new(head: EventId) -> Arc<Hub> {
        Arc::new(Hub {
            rooms: RwLock::new(HashMap::new()),
            conns: Mutex::new(Some(HashMap::new())),
            next_conn: AtomicU64::new(1),
            stats: HubStats::default(),
            head: watch::channel(head).0,
        })
    }

    /// A new connection handle and the receiving end of its bounded queue.
    pub fn connect(&self, queue: usize) -> (Arc<ConnHandle>, Outbox) {
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = Arc::new(ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            tx,
            queued: AtomicUsize::new(0),
            capacity: queue,
            verdict: AtomicU8::new(0),
            waker: AtomicWaker::new(),
        });
        match &mut *self.conns.lock().expect("hub lock") {
            Some(conns) => {
                conns.insert(handle.id, Arc::downgrade(&handle));
            }
            None => {
                handle.stop(Verdict::Shutdown);
            }
        }
        let outbox = Outbox {
            rx,
            conn: handle.clone(),
        };
        (handle, outbox)
    }

    /// Forgets a closed connection.
    pub fn disconnect(&self, id: ConnId) {
        if let Some(conns) = &mut *self.conns.lock().expect("hub lock") {
            conns.remove(&id);
        }
    }

    /// Tells every connection, and any that opens later, to shut down.
    pub fn close_all(&self) {
        let conns = self.conns.lock().expect("hub lock").take();
        for conn in conns.into_iter().flat_map(|c| c.into_values()) {
            if let Some(conn) = conn.upgrade() {
                conn.stop(Verdict::Shutdown);
            }
        }
    }

    /// Joins `conn` to a room; dropping the returned guard leaves it.
    pub fn join(
        self: &Arc<Self>,
        conn: &Arc<ConnHandle>,
        tenant: &str,
        room: &str,
        types: Option<Arc<[String]>>,
    ) -> Membership {
        let mut rooms = self.rooms.write().expect("hub lock");
        rooms
            .entry(tenant.to_string())
            .or_default()
            .entry(room.to_string())
            .or_default()
            .insert(
                conn.id,
                Member {
                    conn: conn.clone(),
                    types,
                },
            );
        Membership {
            hub: self.clone(),
            tenant: tenant.to_string(),
            room: room.to_string(),
            conn: conn.id,
        }
    }

    /// Changes the event-type filter of an existing membership.
    pub fn set_types(&self, membership: &Membership, types: Option<Arc<[String]>>) {
        let mut rooms = self.rooms.write().expect("hub lock");
        if let Some(member) = rooms
            .get_mut(&membership.tenant)
            .and_then(|r| r.get_mut(&membership.room))
            .and_then(|m| m.get_mut(&membership.conn))
        {
            member.types = types;
        }
    }

    fn leave(&self, tenant: &str, room: &str, conn: ConnId) {
        let mut rooms = self.rooms.write().expect("hub lock");
        if let Some(by_room) = rooms.get_mut(tenant) {
            if let Some(members) = by_room.get_mut(room) {
                members.remove(&conn);
                if members.is_empty() {
                    by_room.remove(room);
                }
            }
            if by_room.is_empty() {
                rooms.remove(tenant);
            }
        }
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> u64 {
        let rooms = self.rooms.read().expect("hub lock");
        rooms.values().map(|r| r.len() as u64).sum()
    }

    /// The newest event id delivered (or stored at start); long-polls wait
    /// on it.
    pub fn head(&self) -> watch::Receiver<EventId> {
        self.head.subscribe()
    }

    /// Queues one event for every member of its rooms, once per connection.
    pub fn deliver(&self, event: Arc<Event>) {
        {
            let rooms = self.rooms.read().expect("hub lock");
            let mut targets: Vec<&Room> = Vec::with_capacity(event.rooms.len() * 2 + 2);
            for tenant in [event.tenant_id.as_str(), ANY] {
                let Some(by_room) = rooms.get(tenant) else {
                    continue;
                };
                for room in event.rooms.iter().map(String::as_str).chain([ANY]) {
                    if let Some(members) = by_room.get(room) {
                        targets.push(members);
                    }
                }
            }
            // Serialized once, only if someone listens.
            let frame = match targets.is_empty() {
                true => None,
                false => Some(Utf8Bytes::from(ServerFrame::event_text(&event))),
            };
            let mut delivered = 0u64;
            if let (1, Some(frame)) = (targets.len(), &frame) {
                for member in targets[0].values() {
                    delivered += self.offer(member, &event, frame) as u64;
                }
            } else if let Some(frame) = &frame {
                let mut seen: HashSet<ConnId> = HashSet::new();
                for members in targets {
                    for member in members.values() {
                        if !seen.contains(&member.conn.id) && self.offer(member, &event, frame) {
                            seen.insert(member.conn.id);
                            delivered += 1;
                        }
                    }
                }
            }
            self.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        self.head.send_if_modified(|head| {
            let newer = event.id > *head;
            if newer {
                *head = event.id;
            }
            newer
        });
    }

    /// Queues the frame if the member wants this type; true if queued.
    fn offer(&self, member: &Member, event: &Arc<Event>, frame: &Utf8Bytes) -> bool {
        if let Some(types) = &member.types {
            if !types.iter().any(|t| *t == event.event_type) {
                return false;
            }
        }
        let conn = &member.conn;
        if conn.queued.fetch_add(1, Ordering::Relaxed) >= conn.capacity {
            conn.queued.fetch_sub(1, Ordering::Relaxed);
            self.drop_slow(conn);
            return false;
        }
        let out = Outbound {
            event: event.clone(),
            frame: frame.clone(),
        };
        if conn.tx.send(out).is_err() {
            conn.queued.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn drop_slow(&self, conn: &ConnHandle) {
        if conn.stop(Verdict::SlowConsumer) {
            self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Closes every connection as a slow consumer: used when the hub itself
    /// fell behind the bus and cannot tell who missed what. Clients resume
    /// with `since`, so nothing is lost.
    fn drop_everyone(&self) {
        let rooms = self.rooms.read().expect("hub lock");
        for member in rooms
            .values()
            .flat_map(|r| r.values())
            .flat_map(|m| m.values())
        {
            self.drop_slow(&member.conn);
        }
    }

    /// Delivers everything the bus publishes until shutdown.
    pub async fn run(self: Arc<Self>, mut bus: BusReceiver, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = bus.recv() => match received {
                    Ok(event) => self.deliver(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
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

/// A connection's place in one room; leaves the room when dropped.
pub struct Membership {
    hub: Arc<Hub>,
    tenant: String,
    room: String,
    conn: ConnId,
}

impl Membership {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }
    pub fn room(&self) -> &str {
        &self.room
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.tenant, &self.room, self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn event(id: EventId, tenant: &str, rooms: &[&str], event_type: &str) -> Arc<Event> {
        Arc::new(Event {
            id,
            event_type: event_type.into(),
            tenant_id: tenant.into(),
            room: rooms[0].into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
            data: json!({}),
            timestamp: Utc::now(),
        })
    }

    #[tokio::test]
    async fn delivers_once_per_connection_and_respects_tenants() {
        let hub = Hub::new(0);
        let (a, mut rx_a) = hub.connect(8);
        let (b, mut rx_b) = hub.connect(8);
        let _m1 = hub.join(&a, "acme", "dashboard", None);
        let _m2 = hub.join(&a, "acme", "conversations", None);
        let _m3 = hub.join(&b, "globex", "dashboard", None);
        hub.deliver(event(
            1,
            "acme",
            &["dashboard", "conversations"],
            "MessageSent",
        ));
        assert_eq!(rx_a.recv().await.unwrap().event.id, 1);
        assert!(rx_a.try_recv().is_none(), "delivered twice");
        assert!(rx_b.try_recv().is_none(), "crossed tenants");
        assert_eq!(*hub.head().borrow(), 1);
    }

    #[tokio::test]
    async fn filters_by_type_and_leaves_on_drop() {
        let hub = Hub::new(0);
        let (a, mut rx) = hub.connect(8);
        let types: Arc<[String]> = Arc::from(vec!["ERPCall".to_string()]);
        let m = hub.join(&a, ANY, "erp", Some(types));
        hub.deliver(event(1, "acme", &["erp"], "Other"));
        hub.deliver(event(2, "globex", &["erp"], "ERPCall"));
        assert_eq!(rx.recv().await.unwrap().event.id, 2);
        drop(m);
        assert_eq!(hub.room_count(), 0);
        hub.deliver(event(3, "acme", &["erp"], "ERPCall"));
        assert!(rx.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_full_queue_kills_the_connection() {
        let hub = Hub::new(0);
        let (a, _rx) = hub.connect(1);
        let _m = hub.join(&a, "acme", ANY, None);
        hub.deliver(event(1, "acme", &["erp"], "X"));
        assert_eq!(a.verdict(), None);
        hub.deliver(event(2, "acme", &["erp"], "X"));
        assert_eq!(a.verdict(), Some(Verdict::SlowConsumer));
        assert_eq!(hub.stats.slow_consumers.load(Ordering::Relaxed), 1);
    }
}

#[cfg(test)]
mod shutdown_tests {
    use super::*;

    #[test]
    fn close_all_reaches_every_connection_and_later_ones() {
        let hub = Hub::new(0);
        let (a, _rx) = hub.connect(1);
        hub.close_all();
        assert_eq!(a.verdict(), Some(Verdict::Shutdown));
        let (b, _rx) = hub.connect(1);
        assert_eq!(b.verdict(), Some(Verdict::Shutdown));
    }
}
