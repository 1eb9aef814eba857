//! Who is in which room: memberships by tenant (or every tenant), then by
//! room (or every room), looked up with an event's own `&str` tenant and
//! rooms, so a fan-out allocates nothing to find its recipients.

use std::collections::HashMap;
use std::sync::Arc;

use super::hub::{ConnHandle, ConnId};
use crate::protocol::{Room, Scope, TenantId};

pub(super) struct Member {
    pub conn: Arc<ConnHandle>,
    /// Event types wanted; `None`: all.
    pub types: Option<Arc<[String]>>,
}

pub(super) type Members = HashMap<ConnId, Member>;

/// The rooms of one tenant (or of every tenant).
#[derive(Default)]
pub(super) struct Rooms {
    /// Keyed by room, looked up by each event's `&str` rooms.
    pub by_room: HashMap<Room, Members>,
    /// Members of every room.
    pub any_room: Members,
}

impl Rooms {
    pub fn members(&mut self, room: &Scope<Room>) -> &mut Members {
        match room {
            Scope::All => &mut self.any_room,
            Scope::Only(room) => self.by_room.entry(room.clone()).or_default(),
        }
    }

    pub fn get_mut(&mut self, room: &Scope<Room>) -> Option<&mut Members> {
        match room {
            Scope::All => Some(&mut self.any_room),
            Scope::Only(room) => self.by_room.get_mut(room),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_room.is_empty() && self.any_room.is_empty()
    }

    pub fn count(&self) -> u64 {
        self.by_room.len() as u64 + u64::from(!self.any_room.is_empty())
    }
}

/// Memberships by tenant, then room.
#[derive(Default)]
pub(super) struct Directory {
    pub by_tenant: HashMap<TenantId, Rooms>,
    pub any_tenant: Rooms,
}

impl Directory {
    pub fn rooms(&mut self, tenant: &Scope<TenantId>) -> &mut Rooms {
        match tenant {
            Scope::All => &mut self.any_tenant,
            Scope::Only(t) => self.by_tenant.entry(t.clone()).or_default(),
        }
    }

    pub fn get_mut(&mut self, tenant: &Scope<TenantId>) -> Option<&mut Rooms> {
        match tenant {
            Scope::All => Some(&mut self.any_tenant),
            Scope::Only(t) => self.by_tenant.get_mut(t),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Members> {
        self.by_tenant
            .values()
            .chain([&self.any_tenant])
            .flat_map(|r| r.by_room.values().chain([&r.any_room]))
    }
}
