//! Presence shared through Redis, so every node answers the same list.
//!
//! # Layout
//!
//! - `pytake:presence:nodes`, a sorted set: each node's id scored with the
//!   Unix milliseconds of its last heartbeat (every third of the TTL).
//! - `pytake:presence:users:{tenant}`, a hash per tenant: field
//!   `{node}|{user}` holds that node's [`NodeEntry`] of the user (its
//!   connections there, status, since).
//! - `pytake:presence:tenants`, a set of the tenants with a hash, for an
//!   admin's listing of every tenant and for the sweep.
//!
//! # TTL semantics
//!
//! A node is live while its heartbeat is younger than the TTL; listings
//! count only live nodes' entries, so a node that dies stops counting
//! within the TTL on every node at once. Its entries stay in Redis until a
//! surviving node's sweep claims the dead node with `ZREM` (Redis answers
//! 1 to exactly one caller), removes its entries and announces the users
//! it leaves offline: exactly once while the claimer lives, at most once
//! if it dies mid-sweep (the list is right either way; the later sweeps
//! remove entries of nodes that are neither live nor in the set, without
//! announcing).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use super::registry::{merge, user_of, Key, NodeEntry};
use crate::protocol::presence::OnlineUser;
use crate::protocol::{Scope, TenantId};

const NODES: &str = "pytake:presence:nodes";
const TENANTS: &str = "pytake:presence:tenants";
const USERS_PREFIX: &str = "pytake:presence:users:";

fn users_key(tenant: &str) -> String {
    format!("{USERS_PREFIX}{tenant}")
}

fn field(node: &str, user: &str) -> String {
    format!("{node}|{user}")
}

/// A node's handle on the shared presence.
pub(super) struct Shared {
    pub conn: ConnectionManager,
    /// This node's id: random per process, so a restarted node is a new one.
    pub node: String,
    pub ttl: Duration,
}

/// A dead node's users, as the sweep found them: tenant and user ids.
pub(super) type Orphans = Vec<Key>;

impl Shared {
    fn live_after(&self, now: DateTime<Utc>) -> i64 {
        now.timestamp_millis() - self.ttl.as_millis() as i64
    }

    /// Writes (or, with `None`, removes) this node's entry of a user.
    pub async fn write(&self, key: &Key, entry: Option<&NodeEntry>) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let (tenant, user) = key;
        let hash = users_key(tenant.as_str());
        match entry {
            Some(entry) => {
                let json = serde_json::to_string(entry).expect("entries serialize");
                redis::pipe()
                    .hset(&hash, field(&self.node, user), json)
                    .ignore()
                    .sadd(TENANTS, tenant.as_str())
                    .ignore()
                    .query_async(&mut conn)
                    .await
            }
            None => conn.hdel(&hash, field(&self.node, user)).await,
        }
    }

    /// Says this node is live, and rewrites its entries (Redis may have
    /// restarted empty).
    pub async fn heartbeat(
        &self,
        now: DateTime<Utc>,
        entries: &[(Key, NodeEntry)],
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.zadd(NODES, &self.node, now.timestamp_millis())
            .ignore();
        for ((tenant, user), entry) in entries {
            let json = serde_json::to_string(entry).expect("entries serialize");
            pipe.hset(users_key(tenant.as_str()), field(&self.node, user), json)
                .ignore()
                .sadd(TENANTS, tenant.as_str())
                .ignore();
        }
        pipe.query_async(&mut self.conn.clone()).await
    }

    /// Leaves the set of live nodes (a clean shutdown): other nodes sweep
    /// this node's entries at once instead of after the TTL.
    pub async fn retire(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.zadd(NODES, &self.node, 0).await
    }

    async fn live_nodes(&self, now: DateTime<Utc>) -> redis::RedisResult<HashSet<String>> {
        let mut conn = self.conn.clone();
        conn.zrangebyscore(NODES, self.live_after(now), "+inf")
            .await
    }

    /// The online users of `scope` on every live node, merged.
    pub async fn online(
        &self,
        scope: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> redis::RedisResult<Vec<OnlineUser>> {
        let live = self.live_nodes(now).await?;
        let mut conn = self.conn.clone();
        let tenants: Vec<String> = match scope {
            Scope::Only(tenant) => vec![tenant.to_string()],
            Scope::All => conn.smembers(TENANTS).await?,
        };
        let mut users = Vec::new();
        for tenant in tenants {
            let fields: HashMap<String, String> = conn.hgetall(users_key(&tenant)).await?;
            let mut merged: HashMap<&str, (OnlineUser, DateTime<Utc>)> = HashMap::new();
            for (name, json) in &fields {
                let Some((node, user)) = name.split_once('|') else {
                    continue;
                };
                if !live.contains(node) {
                    continue;
                }
                let Ok(entry) = serde_json::from_str::<NodeEntry>(json) else {
                    tracing::warn!(field = %name, "unreadable presence entry in Redis; skipped");
                    continue;
                };
                match merged.get_mut(user) {
                    Some(into) => merge(into, &entry),
                    None => {
                        merged.insert(user, (user_of(&tenant, user, &entry), entry.status_at));
                    }
                }
            }
            users.extend(
                merged
                    .into_values()
                    .map(|(user, _)| user)
                    .filter(|u| u.connections > 0),
            );
        }
        Ok(users)
    }

    /// Claims the nodes whose heartbeat is older than the TTL and removes
    /// their entries; returns the users they had (see the module's TTL
    /// semantics for who announces them).
    pub async fn sweep(&self, now: DateTime<Utc>) -> redis::RedisResult<Orphans> {
        let mut conn = self.conn.clone();
        let dead: Vec<String> = conn
            .zrangebyscore(NODES, "-inf", format!("({}", self.live_after(now)))
            .await?;
        let mut claimed = HashSet::new();
        for node in dead {
            let removed: i64 = conn.zrem(NODES, &node).await?;
            if removed == 1 {
                tracing::info!(node = %node, "a node's presence heartbeat stopped; its users leave");
                claimed.insert(node);
            }
        }
        let known: HashSet<String> = conn.zrange(NODES, 0, -1).await?;
        let tenants: Vec<String> = conn.smembers(TENANTS).await?;
        let mut orphans = Vec::new();
        for tenant in tenants {
            let hash = users_key(&tenant);
            let fields: Vec<String> = conn.hkeys(&hash).await?;
            let mut stale = Vec::new();
            for name in fields {
                let Some((node, user)) = name.split_once('|') else {
                    stale.push(name);
                    continue;
                };
                if claimed.contains(node) {
                    if let Ok(tenant) = TenantId::parse(&tenant) {
                        orphans.push((tenant, user.to_string()));
                    }
                    stale.push(name.clone());
                } else if !known.contains(node) {
                    stale.push(name.clone());
                }
            }
            if !stale.is_empty() {
                let _: i64 = conn.hdel(&hash, stale).await?;
            }
        }
        Ok(orphans)
    }
}
