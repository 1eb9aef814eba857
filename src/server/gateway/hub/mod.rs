//! The hub: room membership and fan-out. Each event is framed once and the
//! same bytes go to every subscriber's socket (see [`super::wire`]); a
//! subscriber whose queue is full is closed as a slow consumer instead of
//! growing memory.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};

use tokio::sync::watch;

use super::alert::{alert_frame, ALERT_EVENT};
use super::directory::{Directory, Member, Members, Rooms};
pub use super::stats::HubStats;
use super::wire::{Delivery, Io, Offer, Wire};
use crate::protocol::{Event, EventId, Room, Scope, ServerFrame, TenantId};

mod follow;

/// Connection id, unique within a process.
pub type ConnId = u64;

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
    /// The socket, written by the hub directly when nothing is queued.
    pub wire: Arc<Wire>,
    /// 0 while running, else a [`Verdict`]; checked on every wake of the
    /// connection, so an atomic rather than a cancellation token (whose
    /// check takes a lock).
    verdict: AtomicU8,
}

impl ConnHandle {
    /// Tells the connection to stop; the first verdict wins.
    pub fn stop(&self, verdict: Verdict) -> bool {
        let first = self
            .verdict
            .compare_exchange(0, verdict as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.wire.wake();
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
        self.wire.poll_pending(cx);
        match self.verdict() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

/// Rooms by tenant (or every tenant) then room (or every room).
pub struct Hub {
    rooms: RwLock<Directory>,
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
            rooms: RwLock::new(Directory::default()),
            conns: Mutex::new(Some(HashMap::new())),
            next_conn: AtomicU64::new(1),
            stats: HubStats::default(),
            head: watch::channel(head).0,
        })
    }

    /// A new connection on `io`, queueing at most `queue` events.
    pub fn connect(&self, io: Box<dyn Io>, queue: usize) -> Arc<ConnHandle> {
        let handle = Arc::new(ConnHandle {
            id: self.next_conn.fetch_add(1, Ordering::Relaxed),
            wire: Arc::new(Wire::new(io, queue)),
            verdict: AtomicU8::new(0),
        });
        match &mut *self.conns.lock().expect("hub lock") {
            Some(conns) => {
                conns.insert(handle.id, Arc::downgrade(&handle));
            }
            None => {
                handle.stop(Verdict::Shutdown);
            }
        }
        handle
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
        tenant: &Scope<TenantId>,
        room: &Scope<Room>,
        types: Option<Arc<[String]>>,
    ) -> Membership {
        let mut rooms = self.rooms.write().expect("hub lock");
        rooms.rooms(tenant).members(room).insert(
            conn.id,
            Member {
                conn: conn.clone(),
                types,
            },
        );
        Membership {
            hub: self.clone(),
            tenant: tenant.clone(),
            room: room.clone(),
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

    fn leave(&self, tenant: &Scope<TenantId>, room: &Scope<Room>, conn: ConnId) {
        let mut directory = self.rooms.write().expect("hub lock");
        let Some(rooms) = directory.get_mut(tenant) else {
            return;
        };
        if let Some(members) = rooms.get_mut(room) {
            members.remove(&conn);
            if members.is_empty() {
                if let Scope::Only(room) = room {
                    rooms.by_room.remove(room);
                }
            }
        }
        if rooms.is_empty() {
            if let Scope::Only(tenant) = tenant {
                directory.by_tenant.remove(tenant);
            }
        }
    }

    /// Number of rooms with at least one member.
    pub fn room_count(&self) -> u64 {
        let rooms = self.rooms.read().expect("hub lock");
        rooms.by_tenant.values().map(Rooms::count).sum::<u64>() + rooms.any_tenant.count()
    }

    /// The newest event id delivered (or stored at start); long-polls wait
    /// on it.
    pub fn head(&self) -> watch::Receiver<EventId> {
        self.head.subscribe()
    }

    /// Sends one event to every member of its rooms, once per connection:
    /// written straight to each socket when `now` (the hub is keeping up
    /// with the bus), else queued so each connection writes its backlog in
    /// one syscall.
    pub fn deliver(&self, event: Arc<Event>, now: bool) {
        let recipients = self.recipients(&event.tenant_id, &event.rooms, Some(&event.event_type));
        if !recipients.is_empty() {
            // Framed once, only if someone listens; written outside the
            // rooms lock, so joins and leaves never wait for a fan-out.
            let delivery = Arc::new(Delivery::event(event.clone()));
            self.fan_out(&recipients, &delivery, now);
            if event.event_type == ALERT_EVENT {
                let alert = Arc::new(Delivery::frame(&alert_frame(&event)));
                self.fan_out(&recipients, &alert, now);
            }
        }
        // Every delivery wakes the long-polls, not only a new highest id:
        // with several nodes, tenants' streams are ordered apart, and a
        // long-poll waits on one tenant.
        self.head.send_modify(|head| *head = (*head).max(event.id));
    }

    /// Sends a frame that is not a stored event (a metrics push, a
    /// presence change) to the members of one room of a tenant: no id, so
    /// no replay and no resume; a client that missed it gets the next.
    pub fn deliver_frame(&self, tenant: &TenantId, room: &Room, frame: &ServerFrame) {
        self.deliver_frame_except(tenant, room, frame, None);
    }

    /// [`Hub::deliver_frame`] to every member but `except` (a typist's own
    /// connection).
    pub fn deliver_frame_except(
        &self,
        tenant: &TenantId,
        room: &Room,
        frame: &ServerFrame,
        except: Option<ConnId>,
    ) {
        let mut recipients = self.recipients(tenant.as_str(), std::slice::from_ref(room), None);
        if let Some(except) = except {
            recipients.retain(|conn| conn.id != except);
        }
        if !recipients.is_empty() {
            let delivery = Arc::new(Delivery::frame(frame));
            self.fan_out(&recipients, &delivery, true);
        }
    }

    /// The tenant scopes with members in `room` (or in every room) on
    /// this node: the scopes a push to that room has to compute for.
    pub fn scopes_in(&self, room: &str) -> Vec<Scope<TenantId>> {
        let directory = self.rooms.read().expect("hub lock");
        let has = |rooms: &Rooms| {
            rooms.by_room.get(room).is_some_and(|m| !m.is_empty()) || !rooms.any_room.is_empty()
        };
        let mut scopes: Vec<Scope<TenantId>> = directory
            .by_tenant
            .iter()
            .filter(|(_, rooms)| has(rooms))
            .map(|(tenant, _)| Scope::Only(tenant.clone()))
            .collect();
        if has(&directory.any_tenant) {
            scopes.push(Scope::All);
        }
        scopes
    }

    /// Sends a frame to the members of `room` whose tenant scope is
    /// exactly `scope`: a tenant's figures to that tenant's subscribers,
    /// every tenant's to those who watch every tenant.
    pub fn deliver_to_scope(&self, scope: &Scope<TenantId>, room: &Room, frame: &ServerFrame) {
        let recipients: Vec<Arc<ConnHandle>> = {
            let directory = self.rooms.read().expect("hub lock");
            let rooms = match scope {
                Scope::All => Some(&directory.any_tenant),
                Scope::Only(tenant) => directory.by_tenant.get(tenant.as_str()),
            };
            let mut seen: HashSet<ConnId> = HashSet::new();
            rooms
                .into_iter()
                .flat_map(|r| {
                    r.by_room
                        .get(room.as_str())
                        .into_iter()
                        .chain([&r.any_room])
                })
                .flat_map(|members| members.values())
                .filter(|m| seen.insert(m.conn.id))
                .map(|m| m.conn.clone())
                .collect()
        };
        if !recipients.is_empty() {
            let delivery = Arc::new(Delivery::frame(frame));
            self.fan_out(&recipients, &delivery, true);
        }
    }

    fn fan_out(&self, recipients: &[Arc<ConnHandle>], delivery: &Arc<Delivery>, now: bool) {
        let mut delivered = 0u64;
        for conn in recipients {
            match conn.wire.offer(delivery, now) {
                Offer::Written | Offer::Queued => delivered += 1,
                Offer::Replayed | Offer::Closed => {}
                Offer::Full => self.drop_slow(conn),
            }
        }
        self.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
    }

    /// The members of a tenant's `rooms` that want `event_type` (`None`:
    /// any member), once each.
    fn recipients<R: AsRef<str>>(
        &self,
        tenant: &str,
        rooms: &[R],
        event_type: Option<&str>,
    ) -> Vec<Arc<ConnHandle>> {
        let directory = self.rooms.read().expect("hub lock");
        let mut targets: Vec<&Members> = Vec::with_capacity(rooms.len() * 2 + 2);
        for by_room in directory
            .by_tenant
            .get(tenant)
            .into_iter()
            .chain([&directory.any_tenant])
        {
            for room in rooms {
                if let Some(members) = by_room.by_room.get(room.as_ref()) {
                    targets.push(members);
                }
            }
            if !by_room.any_room.is_empty() {
                targets.push(&by_room.any_room);
            }
        }
        let wants = |m: &&Member| match (&m.types, event_type) {
            (Some(types), Some(event_type)) => types.iter().any(|t| t == event_type),
            _ => true,
        };
        match targets.as_slice() {
            [] => Vec::new(),
            [only] => only
                .values()
                .filter(wants)
                .map(|m| m.conn.clone())
                .collect(),
            _ => {
                let mut seen: HashSet<ConnId> = HashSet::new();
                targets
                    .iter()
                    .flat_map(|members| members.values())
                    .filter(|m| wants(m) && seen.insert(m.conn.id))
                    .map(|m| m.conn.clone())
                    .collect()
            }
        }
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
        for member in rooms.all().flat_map(|m| m.values()) {
            self.drop_slow(&member.conn);
        }
    }
}

/// A connection's place in one room; leaves the room when dropped.
pub struct Membership {
    hub: Arc<Hub>,
    tenant: Scope<TenantId>,
    room: Scope<Room>,
    conn: ConnId,
}

impl Membership {
    pub fn tenant(&self) -> &Scope<TenantId> {
        &self.tenant
    }
    pub fn room(&self) -> &Scope<Room> {
        &self.room
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.tenant, &self.room, self.conn);
    }
}

#[cfg(test)]
pub(in crate::server::gateway) mod tests;
