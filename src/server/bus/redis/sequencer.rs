//! Puts the events a node receives from several publishers back into id
//! order, with no gap and no duplicate, for the tenants the node watches.
//!
//! # Why the order needs restoring, and how
//!
//! The store hands out ids in commit order (its contract): when id `Y` is
//! committed, every id below it is too. But each node publishes its own
//! commits, so node A's PUBLISH of id 101 can reach Redis after node B's
//! PUBLISH of 102, and a node killed between its commit and its PUBLISH
//! never publishes at all. Delivering in arrival order would show 102
//! before 101, and a client that saw 102 would resume past 101 for good.
//!
//! Every event carries its tenant's previous id (`prev`, from the store).
//! A node keeps, per watched tenant, the newest id it delivered (`last`):
//!
//! - `id <= last`: a copy (the node's own event echoed by Redis, or one a
//!   fill already read): dropped.
//! - `prev <= last`: the next event of the tenant: delivered.
//! - `prev > last`: events between are missing. They are committed (an
//!   event with a greater id is), so they are read from the store now and
//!   delivered first, in order. When their own PUBLISH arrives later it is
//!   a copy.
//!
//! Watching every tenant ([`Scope::All`]), the same holds with the global
//! order: ids are dense, so the event after `last` is `last + 1`.
//!
//! What no later event reveals (the last events before a publisher died,
//! or a PUBLISH lost with the Redis connection) the reconciler finds:
//! every tick it reads the watched tenants' heads from the store, and a
//! head that was already ahead of `last` one tick earlier is filled from
//! the store. After a reconnect, every watched stream is filled at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::protocol::limits::MAX_PAGE;
use crate::protocol::{Event, EventId, Scope, TenantId};
use crate::server::bus::BusEvent;
use crate::server::storage::{EventQuery, EventStore, StoreError};

/// One watched stream: a tenant's, or every tenant's.
#[derive(Debug, Default)]
struct Stream {
    /// Interests held on this node.
    refs: usize,
    /// Newest id delivered, or the head when the watch began.
    last: EventId,
    /// The store's head at the previous reconcile tick, when it was ahead
    /// of `last`: still ahead a tick later means nothing is coming.
    behind: Option<EventId>,
}

/// The ordering state of one node.
pub struct Sequencer {
    store: Arc<dyn EventStore>,
    /// Keyed by tenant, looked up by the `&str` of each event.
    tenants: HashMap<TenantId, Stream>,
    all: Option<Stream>,
    out: broadcast::Sender<BusEvent>,
}

impl Sequencer {
    pub fn new(store: Arc<dyn EventStore>, out: broadcast::Sender<BusEvent>) -> Sequencer {
        Sequencer {
            store,
            tenants: HashMap::new(),
            all: None,
            out,
        }
    }

    /// The streams watched now (to subscribe to again after a reconnect).
    pub fn watched(&self) -> Vec<Scope<TenantId>> {
        let all = self.all.as_ref().map(|_| Scope::All);
        all.into_iter()
            .chain(self.tenants.keys().cloned().map(Scope::Only))
            .collect()
    }

    fn stream(&mut self, scope: &Scope<TenantId>) -> Option<&mut Stream> {
        match scope {
            Scope::All => self.all.as_mut(),
            Scope::Only(tenant) => self.tenants.get_mut(tenant),
        }
    }

    /// One more interest in `scope`; true if it is new, so the caller
    /// subscribes first. Call [`Sequencer::begin`] once subscribed.
    pub fn add(&mut self, scope: &Scope<TenantId>) -> bool {
        let stream = match scope {
            Scope::All => self.all.get_or_insert_with(Stream::default),
            Scope::Only(tenant) => self.tenants.entry(tenant.clone()).or_default(),
        };
        stream.refs += 1;
        stream.refs == 1
    }

    /// One interest fewer; true when none is left, so the caller
    /// unsubscribes.
    pub fn remove(&mut self, scope: &Scope<TenantId>) -> bool {
        let Some(stream) = self.stream(scope) else {
            return false;
        };
        stream.refs -= 1;
        if stream.refs > 0 {
            return false;
        }
        match scope {
            Scope::All => self.all = None,
            Scope::Only(tenant) => {
                self.tenants.remove(tenant);
            }
        }
        true
    }

    /// A new stream's messages flow: everything committed from now on is
    /// owed, so it starts at the store's head. Watching every tenant, the
    /// watched tenants are first brought up to that head: the global
    /// stream then takes over their order, and must not skip an event of
    /// theirs still on its way.
    pub async fn begin(&mut self, scope: &Scope<TenantId>) -> Result<(), StoreError> {
        let head = match scope {
            Scope::All => {
                let head = self.store.last_event_id().await?;
                let tenants: Vec<TenantId> = self.tenants.keys().cloned().collect();
                for tenant in tenants {
                    self.fill(&Scope::Only(tenant), head + 1).await?;
                }
                head
            }
            Scope::Only(tenant) => {
                self.store
                    .tenant_heads(std::slice::from_ref(tenant))
                    .await?[0]
            }
        };
        if let Some(stream) = self.stream(scope) {
            stream.last = stream.last.max(head);
        }
        Ok(())
    }

    /// Events received from one publisher, in its id order.
    pub async fn receive(&mut self, events: Vec<(Arc<Event>, EventId)>) {
        // Tenants whose gap could not be read: their later events wait
        // too (delivering them would skip the gap); other tenants' go on.
        let mut stalled: Vec<String> = Vec::new();
        for (event, prev) in events {
            if stalled.contains(&event.tenant_id) {
                continue;
            }
            let tenant = event.tenant_id.clone();
            if let Err(e) = self.offer(event, prev).await {
                // The event waits: the reconciler delivers it, in order,
                // once the store answers.
                tracing::warn!(error = %e, "reading a gap from the store failed; retrying on the next tick");
                if self.all.is_some() {
                    // One order for every tenant: nothing may pass.
                    return;
                }
                stalled.push(tenant);
            }
        }
    }

    async fn offer(&mut self, event: Arc<Event>, prev: EventId) -> Result<(), StoreError> {
        let id = event.id;
        let tenant = event.tenant_id.as_str();
        let (scope, prev, last) = if let Some(all) = &self.all {
            (Scope::All, id - 1, all.last)
        } else {
            let Some((tenant, stream)) = self.tenants.get_key_value(tenant) else {
                // Not watched here (a local publish, or an unsubscribe in
                // flight): nobody on this node is owed it.
                return Ok(());
            };
            (Scope::Only(tenant.clone()), prev, stream.last)
        };
        if id <= last {
            return Ok(());
        }
        if prev > last {
            self.fill(&scope, id).await?;
        }
        self.deliver(event, prev);
        Ok(())
    }

    /// Reads the events of `scope` between its `last` and `before` from
    /// the store and delivers them in order.
    async fn fill(&mut self, scope: &Scope<TenantId>, before: EventId) -> Result<(), StoreError> {
        loop {
            let Some(last) = self.stream(scope).map(|s| s.last) else {
                return Ok(());
            };
            if last + 1 >= before {
                return Ok(());
            }
            let mut query = EventQuery::after(scope.clone(), last, MAX_PAGE);
            query.before = Some(before);
            let page = self.store.events(&query).await?;
            let full = page.len() == MAX_PAGE as usize;
            let mut prev = last;
            for event in page {
                let id = event.id;
                self.deliver(Arc::new(event), prev);
                prev = id;
            }
            if !full {
                // Nothing else below `before`: the stream is there.
                if let Some(stream) = self.stream(scope) {
                    stream.last = stream.last.max(before - 1);
                }
                return Ok(());
            }
        }
    }

    /// Hands an event on and moves every stream it belongs to.
    fn deliver(&mut self, event: Arc<Event>, prev: EventId) {
        let streams = self
            .tenants
            .get_mut(event.tenant_id.as_str())
            .into_iter()
            .chain(self.all.as_mut());
        for stream in streams {
            if event.id > stream.last {
                stream.last = event.id;
                stream.behind = None;
            }
        }
        // No receiver is not an error: nobody here listens right now.
        let _ = self.out.send(BusEvent { event, prev });
    }

    /// One reconcile tick: fills each stream whose head in the store was
    /// already ahead of it at the previous tick (see the module doc).
    /// With `now`, fills every stream that is behind at once (after a
    /// reconnect, when whatever was in flight is lost).
    pub async fn reconcile(&mut self, now: bool) -> Result<(), StoreError> {
        let heads = self.heads().await?;
        for (scope, head) in heads {
            let Some(stream) = self.stream(&scope) else {
                continue;
            };
            if head <= stream.last {
                stream.behind = None;
                continue;
            }
            let due = now || stream.behind.is_some_and(|seen| seen <= head);
            if due {
                let seen = if now {
                    head
                } else {
                    stream.behind.unwrap_or(head)
                };
                self.fill(&scope, seen + 1).await?;
            }
            if let Some(stream) = self.stream(&scope) {
                stream.behind = (head > stream.last).then_some(head);
            }
        }
        Ok(())
    }

    /// The store's head of every watched stream. Watching every tenant,
    /// only the global one: filling one tenant's stream would move the
    /// global stream past other tenants' events it has not delivered.
    async fn heads(&mut self) -> Result<Vec<(Scope<TenantId>, EventId)>, StoreError> {
        if self.all.is_some() {
            for stream in self.tenants.values_mut() {
                stream.behind = None;
            }
            return Ok(vec![(Scope::All, self.store.last_event_id().await?)]);
        }
        let mut heads = Vec::with_capacity(self.tenants.len() + 1);
        let tenants: Vec<TenantId> = self.tenants.keys().cloned().collect();
        if !tenants.is_empty() {
            let found = self.store.tenant_heads(&tenants).await?;
            heads.extend(tenants.into_iter().map(Scope::Only).zip(found));
        }
        Ok(heads)
    }
}
