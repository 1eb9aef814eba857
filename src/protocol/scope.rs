//! Tenants, rooms, and the one way to say "all of them".
//!
//! Before these types, "every tenant" was `"*"` in the hub, `None` in a
//! store query and a missing claim in a token, and "every room" was `"*"`
//! or an empty list: three spellings that each caller had to translate, and
//! a place for a tenant-scoped caller to end up seeing everything. A
//! [`Scope`] is either [`Scope::All`] or one value that passed validation.

use std::fmt;
use std::sync::Arc;

use super::rooms::{validate_room, validate_tenant};

/// A tenant id that passed [`validate_tenant`]: cheap to clone, since the
/// hub keys every membership by it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Checks `id`; the error says what a tenant id may hold.
    pub fn parse(id: &str) -> Result<TenantId, String> {
        validate_tenant(id)?;
        Ok(TenantId(Arc::from(id)))
    }

    /// A tenant id checked elsewhere: a verified token's claim (the
    /// verifier checks its form) or a stored event's.
    pub fn checked(id: &str) -> TenantId {
        debug_assert!(validate_tenant(id).is_ok(), "unchecked tenant id {id:?}");
        TenantId(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room name that passed [`validate_room`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Room(Arc<str>);

impl Room {
    /// Checks `name`; the error lists the rooms that exist.
    pub fn parse(name: &str) -> Result<Room, String> {
        validate_room(name)?;
        Ok(Room(Arc::from(name)))
    }

    /// A room name checked elsewhere (a stored event's).
    pub fn checked(name: &str) -> Room {
        debug_assert!(validate_room(name).is_ok(), "unchecked room {name:?}");
        Room(Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! name_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                &*self.0 == other
            }
        }
    };
}
name_impls!(TenantId);

/// Maps keyed by room are looked up with an event's `&str` rooms.
impl std::borrow::Borrow<str> for Room {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by tenant are looked up with an event's `&str` tenant,
/// without building a `TenantId` per event.
impl std::borrow::Borrow<str> for TenantId {
    fn borrow(&self) -> &str {
        &self.0
    }
}
name_impls!(Room);

/// Every value, or only one. `Only` never holds an empty set: "no rooms"
/// is not a way to spell "all rooms".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope<T> {
    All,
    Only(T),
}

impl<T> Scope<T> {
    pub fn only(&self) -> Option<&T> {
        match self {
            Scope::All => None,
            Scope::Only(t) => Some(t),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Scope::All)
    }
}

impl Scope<TenantId> {
    /// Whether an event of `tenant` is inside this scope.
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(t) => t == tenant,
        }
    }

    /// The tenant as the wire shows it: absent for all.
    pub fn to_wire(&self) -> Option<String> {
        self.only().map(|t| t.to_string())
    }
}

impl Scope<Vec<Room>> {
    /// Every room, or the given ones; an empty list is all rooms, as the
    /// protocol's `rooms: []` says.
    pub fn rooms(rooms: Vec<Room>) -> Scope<Vec<Room>> {
        if rooms.is_empty() {
            Scope::All
        } else {
            Scope::Only(rooms)
        }
    }

    /// Whether an event filed under `rooms` is inside this scope.
    pub fn covers<S: AsRef<str>>(&self, rooms: &[S]) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(wanted) => rooms.iter().any(|r| wanted.iter().any(|w| w == r.as_ref())),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Scope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("all"),
            Scope::Only(t) => t.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_once_at_the_edge() {
        assert!(TenantId::parse("acme").is_ok());
        assert!(TenantId::parse("*").is_err(), "`*` is not a tenant");
        assert!(Room::parse("*").is_err(), "`*` is not a room");
        assert!(Room::parse("conversation:42").is_ok());
    }

    #[test]
    fn an_empty_room_list_is_every_room() {
        let all = Scope::rooms(vec![]);
        assert!(all.is_all());
        assert!(all.covers(&["erp"]));
        let some = Scope::rooms(vec![Room::parse("erp").unwrap()]);
        assert!(some.covers(&["ai", "erp"]));
        assert!(!some.covers(&["ai"]));
    }

    #[test]
    fn tenant_scope_covers() {
        let acme = Scope::Only(TenantId::parse("acme").unwrap());
        assert!(acme.covers("acme"));
        assert!(!acme.covers("globex"));
        assert!(Scope::<TenantId>::All.covers("globex"));
        assert_eq!(acme.to_wire().as_deref(), Some("acme"));
    }
}
