//! This node's part of presence: the users with connections here, their
//! status, and the grace period of those whose last connection closed.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::protocol::presence::{OnlineUser, Status};
use crate::protocol::{Scope, TenantId};

/// A user of a tenant.
pub(super) type Key = (TenantId, String);

/// One user's presence on one node: what this node writes to Redis, and
/// what the listing merges across nodes. Times are Unix milliseconds in
/// Redis, so the settle script compares them as numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NodeEntry {
    /// Connections as shown: through the grace period, the count before
    /// the last connection closed, so a reload does not show a dip.
    pub connections: u32,
    pub status: Status,
    /// When the status was set: across nodes the newest wins.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub status_at: DateTime<Utc>,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub since: DateTime<Utc>,
}

struct Entry {
    /// Open connections here now.
    open: u32,
    shown: NodeEntry,
    /// Set while `open` is 0: the user goes offline here at this instant
    /// unless a connection opens first.
    leaving_until: Option<Instant>,
}

/// The users connected to this node, and which of them changed since the
/// worker last looked.
#[derive(Default)]
pub(super) struct Registry {
    entries: HashMap<Key, Entry>,
    dirty: HashSet<Key>,
}

impl Registry {
    /// A connection of `key` opened.
    pub fn connect(&mut self, key: &Key, now: DateTime<Utc>) {
        let entry = self.entries.entry(key.clone()).or_insert_with(|| Entry {
            open: 0,
            shown: NodeEntry {
                connections: 0,
                status: Status::Online,
                status_at: now,
                since: now,
            },
            leaving_until: None,
        });
        entry.open += 1;
        entry.leaving_until = None;
        if entry.shown.connections != entry.open {
            entry.shown.connections = entry.open;
            self.dirty.insert(key.clone());
        }
    }

    /// A connection of `key` closed; the last one starts the grace period.
    pub fn disconnect(&mut self, key: &Key, leave_at: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.open = entry.open.saturating_sub(1);
        if entry.open == 0 {
            entry.leaving_until = Some(leave_at);
        } else {
            entry.shown.connections = entry.open;
            self.dirty.insert(key.clone());
        }
    }

    /// Sets the status of a user connected here; false if it is not.
    pub fn set_status(&mut self, key: &Key, status: Status, now: DateTime<Utc>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        entry.shown.status = status;
        entry.shown.status_at = now;
        self.dirty.insert(key.clone());
        true
    }

    /// Forgets the users whose grace period ended by `now`.
    pub fn expire(&mut self, now: Instant) {
        let gone: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.leaving_until.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.entries.remove(&key);
            self.dirty.insert(key);
        }
    }

    /// Users with a connection here, or in their grace period.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The earliest end of a grace period.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries.values().filter_map(|e| e.leaving_until).min()
    }

    /// The users changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<Key> {
        self.dirty.drain().collect()
    }

    /// Marks a user to be looked at again (a failed write).
    pub fn mark(&mut self, key: Key) {
        self.dirty.insert(key);
    }

    /// What this node shows of a user, if it has it.
    pub fn shown(&self, key: &Key) -> Option<NodeEntry> {
        self.entries.get(key).map(|e| e.shown.clone())
    }

    /// Everything this node shows, for the heartbeat's rewrite.
    pub fn all(&self) -> Vec<(Key, NodeEntry)> {
        self.entries
            .iter()
            .map(|(k, e)| (k.clone(), e.shown.clone()))
            .collect()
    }

    /// The users of `scope` online here.
    pub fn online(&self, scope: &Scope<TenantId>) -> Vec<OnlineUser> {
        self.entries
            .iter()
            .filter(|((tenant, _), _)| scope.covers(tenant.as_str()))
            .map(|((tenant, user), e)| user_of(tenant.as_str(), user, &e.shown))
            .collect()
    }
}

/// A listing row from one node's entry.
pub(super) fn user_of(tenant: &str, user: &str, entry: &NodeEntry) -> OnlineUser {
    OnlineUser {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        status: entry.status,
        since: entry.since,
        connections: entry.connections,
    }
}

/// Merges one user's entries of several nodes: connections add up, the
/// earliest `since` and the newest status win (on a tie, the greater
/// name, as the settle script in Redis decides: both must agree).
pub(super) fn merge(into: &mut (OnlineUser, DateTime<Utc>), entry: &NodeEntry) {
    let (user, status_at) = into;
    user.connections += entry.connections;
    user.since = user.since.min(entry.since);
    let newer = (entry.status_at, entry.status.as_str()) > (*status_at, user.status.as_str());
    if newer {
        user.status = entry.status;
        *status_at = entry.status_at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(user: &str) -> Key {
        (TenantId::parse("acme").unwrap(), user.to_string())
    }

    #[test]
    fn a_reload_within_the_grace_period_changes_nothing() {
        let mut r = Registry::default();
        let now = Utc::now();
        r.connect(&key("ana"), now);
        assert_eq!(r.take_dirty(), [key("ana")]);
        let t0 = Instant::now();
        r.disconnect(&key("ana"), t0 + Duration::from_secs(5));
        assert!(
            r.take_dirty().is_empty(),
            "the last close waits for the grace"
        );
        assert_eq!(r.shown(&key("ana")).unwrap().connections, 1);
        r.connect(&key("ana"), now);
        assert!(r.take_dirty().is_empty(), "back with the count it showed");
        r.expire(t0 + Duration::from_secs(6));
        assert!(r.shown(&key("ana")).is_some(), "reconnected: no expiry");
        r.disconnect(&key("ana"), t0 + Duration::from_secs(5));
        r.expire(t0 + Duration::from_secs(5));
        assert_eq!(r.take_dirty(), [key("ana")]);
        assert!(r.shown(&key("ana")).is_none());
    }

    #[test]
    fn merging_adds_connections_and_takes_the_newest_status() {
        let t = Utc::now();
        let a = NodeEntry {
            connections: 1,
            status: Status::Busy,
            status_at: t,
            since: t,
        };
        let b = NodeEntry {
            connections: 2,
            status: Status::Away,
            status_at: t + chrono::Duration::seconds(1),
            since: t - chrono::Duration::seconds(9),
        };
        let mut merged = (user_of("acme", "ana", &a), a.status_at);
        merge(&mut merged, &b);
        assert_eq!(merged.0.connections, 3);
        assert_eq!(merged.0.status, Status::Away);
        assert_eq!(merged.0.since, b.since);
    }
}
