//! Resuming a subscriber: the stored events after the id it last saw,
//! page by page, then live events with the copies the replay already sent
//! dropped. The WebSocket gateway and the SSE stream both resume through
//! here, so they share one seam: no gap, no duplicate.
//!
//! The order that makes the seam hold: the subscriber first listens for
//! live events (bus watch answered), then replays; each page reads the
//! store's head before the events, and the replay's floor rises to the
//! higher of that head and the last id sent. Live events at or below the
//! floor are copies of what the replay sent (or will send); those above it
//! committed after the listening began, so the bus delivers them.

use crate::protocol::limits::MAX_PAGE;
use crate::protocol::{Event, EventId, Room, Scope, TenantId};
use crate::server::storage::{EventQuery, EventStore, StoreError};

/// Events up to `floor` in this scope were replayed: the same ones arriving
/// live are dropped, so the seam has no duplicate.
#[derive(Debug, Clone)]
pub struct Seam {
    pub floor: EventId,
    pub tenant: Scope<TenantId>,
    pub rooms: Scope<Vec<Room>>,
    pub types: Option<Vec<String>>,
}

impl Seam {
    /// Whether `e` is a live copy of an event the replay sent.
    pub fn covers(&self, e: &Event) -> bool {
        e.id <= self.floor && self.matches(e)
    }

    /// Whether `e` is in the seam's scope (tenant, rooms, types), whatever
    /// its id: what a subscriber of that scope is owed.
    pub fn matches(&self, e: &Event) -> bool {
        self.tenant.covers(&e.tenant_id)
            && self.rooms.covers(&e.rooms)
            && self
                .types
                .as_ref()
                .is_none_or(|t| t.contains(&e.event_type))
    }
}

/// One page of a replay.
pub struct Page {
    /// In increasing id order.
    pub events: Vec<Event>,
    /// The page was short: the replay has reached the head it read, and
    /// live events take over.
    pub last: bool,
}

/// The stored events of one scope after a resume point, a page at a time.
pub struct Replay {
    query: EventQuery,
    floor: EventId,
}

impl Replay {
    /// A replay of `scope`'s events after `since`, in pages of
    /// [`MAX_PAGE`].
    pub fn new(seam: &Seam, since: EventId) -> Replay {
        Replay {
            query: EventQuery {
                tenant: seam.tenant.clone(),
                rooms: seam.rooms.clone(),
                event_types: seam.types.clone(),
                since,
                before: None,
                limit: MAX_PAGE,
            },
            floor: since,
        }
    }

    /// The next page: reads the store's head, then the events after the
    /// last one sent. Afterwards [`Replay::floor`] is at least that head
    /// and the page's last id: every event of the scope up to it is in
    /// this page or an earlier one, or (when the page was not the last)
    /// in a later one. Live copies up to it are therefore duplicates.
    /// Call it again until a page comes back `last`.
    pub async fn next_page(&mut self, store: &dyn EventStore) -> Result<Page, StoreError> {
        // The head first: everything up to it is visible to the query.
        let head = store.last_event_id().await?;
        let events = store.events(&self.query).await?;
        self.floor = self.floor.max(head);
        if let Some(last) = events.last() {
            self.floor = self.floor.max(last.id);
            self.query.since = last.id;
        }
        let last = events.len() < self.query.limit as usize;
        Ok(Page { events, last })
    }

    /// Every event of the scope up to this id has been returned, or will
    /// be by the pages still to come.
    pub fn floor(&self) -> EventId {
        self.floor
    }
}
