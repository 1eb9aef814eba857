//! Presence shared through Redis, so every node answers the same list and
//! a change is announced once, whichever node sees it.
//!
//! # Layout
//!
//! - `pytake:presence:nodes`, a sorted set: each node's id scored with the
//!   Unix milliseconds of its last heartbeat (every third of the TTL), as
//!   Redis's own clock (`TIME`) gives them: nodes with skewed clocks agree
//!   on who is live.
//! - `pytake:presence:users:{tenant}`, a hash per tenant: field
//!   `{node}|{user}` holds that node's [`NodeEntry`] of the user (its
//!   connections there, status, since).
//! - `pytake:presence:shown:{tenant}`, a hash per tenant: field `{user}`
//!   holds the state last announced to the tenant's `presence` room
//!   (`status:connections`), for online users only.
//! - `pytake:presence:tenants`, a set of the tenants with a hash, for an
//!   admin's listing of every tenant and for the sweep.
//!
//! # Announcing once
//!
//! Every change goes through one script ([`Shared::settle`]): it writes the
//! node's entry, merges the user's entries of the live nodes, and compares
//! the result with the shown state; only a difference is announced, by the
//! node whose script found it. Redis runs scripts one at a time, so the
//! shown states follow each other in one order for all nodes: connection
//! one on A and two on B, then A's closes, announces one connection (A's
//! own view never changed its mind about the user being online).
//!
//! # TTL semantics
//!
//! A node is live while its heartbeat is younger than the TTL; listings
//! count only live nodes' entries, so a node that dies stops counting
//! within the TTL on every node at once. Its entries stay in Redis until a
//! surviving node's sweep claims the dead node with `ZREM` (Redis answers
//! 1 to exactly one caller), removes its entries and settles the users it
//! had. A node swept by mistake (a heartbeat later than the TTL) learns it
//! from its next heartbeat, whose `ZADD` adds it anew, and settles all its
//! users again, so they are announced online again.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::registry::{merge, user_of, Key, NodeEntry};
use crate::protocol::presence::{OnlineUser, Status};
use crate::protocol::{Scope, TenantId};

const NODES: &str = "pytake:presence:nodes";
const TENANTS: &str = "pytake:presence:tenants";
const USERS_PREFIX: &str = "pytake:presence:users:";
const SHOWN_PREFIX: &str = "pytake:presence:shown:";

/// The milliseconds of Redis's clock, in a script.
const NOW_MS: &str = r"
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
";

/// KEYS[1]: the nodes. ARGV[1]: this node, ARGV[2]: the TTL in ms.
/// Returns 1 if the node was not live before this beat (its first beat,
/// swept, or late by more than the TTL: other nodes may have settled its
/// users without it), else 0.
const HEARTBEAT: &str = r"
local last = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
redis.call('ZADD', KEYS[1], now, ARGV[1])
if not last or last < now - tonumber(ARGV[2]) then
  return 1
end
return 0
";

/// KEYS[1]: the nodes. ARGV[1]: the TTL in ms. ARGV[2]: `live` or `dead`.
const NODES_BY_AGE: &str = r"
local oldest = now - tonumber(ARGV[1])
if ARGV[2] == 'live' then
  return redis.call('ZRANGEBYSCORE', KEYS[1], oldest, '+inf')
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest)
";

/// KEYS: the nodes, the tenant's users, the tenant's shown, the tenants.
/// ARGV: the TTL in ms, the tenant, the user, a node (empty: write
/// nothing), that node's entry (empty: remove it), and `sweep` to remove
/// the entry only if its node is not live (a sweep must not remove what a
/// node that came back just wrote). Entries that are not what this
/// version writes are skipped, not fatal. Returns the user's new
/// `{status, connections, online users}` if it differs from the shown
/// one, else nil; the count is that of the shown users, so the frames'
/// counts follow the same order as their changes.
/// The newest status wins; on a tie of `status_at`, the greater name (as
/// [`merge`] does).
const SETTLE: &str = r"
local user = ARGV[3]
local oldest = now - tonumber(ARGV[1])
if ARGV[4] ~= '' then
  local field = ARGV[4] .. '|' .. user
  if ARGV[6] == 'sweep' then
    local beat = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[4]))
    if not beat or beat < oldest then
      redis.call('HDEL', KEYS[2], field)
    end
  elseif ARGV[5] == '' then
    redis.call('HDEL', KEYS[2], field)
  else
    redis.call('HSET', KEYS[2], field, ARGV[5])
    redis.call('SADD', KEYS[4], ARGV[2])
  end
end
local connections, status, status_at = 0, 'offline', -1
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], oldest, '+inf')) do
  local json = redis.call('HGET', KEYS[2], node .. '|' .. user)
  if json then
    local ok, entry = pcall(cjson.decode, json)
    if ok and type(entry) == 'table' then
      local n, at, st = tonumber(entry.connections), tonumber(entry.status_at), entry.status
      if n and at and type(st) == 'string' then
        connections = connections + n
        if at > status_at or (at == status_at and st > status) then
          status, status_at = st, at
        end
      end
    end
  end
end
if connections == 0 then status = 'offline' end
local state = status .. ':' .. connections
local shown = redis.call('HGET', KEYS[3], user)
if shown == state or (not shown and connections == 0) then
  return false
end
if connections == 0 then
  redis.call('HDEL', KEYS[3], user)
else
  redis.call('HSET', KEYS[3], user, state)
end
return {status, connections, redis.call('HLEN', KEYS[3])}
";

fn users_key(tenant: &str) -> String {
    format!("{USERS_PREFIX}{tenant}")
}

fn field(node: &str, user: &str) -> String {
    format!("{node}|{user}")
}

/// A user's state to announce, and the tenant's online count with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shown {
    pub status: Status,
    pub connections: u32,
    pub online_count: u32,
}

/// What [`Shared::settle`] writes of a user's entries first.
pub(super) enum Write<'a> {
    /// This node's entry, or its removal (`None`).
    Entry(Option<&'a NodeEntry>),
    /// The removal of a dead node's entry, unless that node is live again.
    Sweep(&'a str),
}

/// A node's handle on the shared presence.
pub(super) struct Shared {
    pub conn: ConnectionManager,
    /// This node's id: random per process, so a restarted node is a new one.
    pub node: String,
    pub ttl: Duration,
    heartbeat: Script,
    nodes_by_age: Script,
    settle: Script,
}

impl Shared {
    pub fn new(conn: ConnectionManager, node: String, ttl: Duration) -> Shared {
        let script = |body: &str| Script::new(&format!("{NOW_MS}{body}"));
        Shared {
            conn,
            node,
            ttl,
            heartbeat: script(HEARTBEAT),
            nodes_by_age: script(NODES_BY_AGE),
            settle: script(SETTLE),
        }
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// Writes this node's entry of a user (`Write::Entry`), then compares
    /// the user's state on every live node with what was last announced:
    /// the new state if this call is the one that changed it (announce
    /// it), else `None`. Atomic in Redis.
    pub async fn settle(&self, key: &Key, write: Write<'_>) -> redis::RedisResult<Option<Shown>> {
        let (tenant, user) = key;
        let (node, json, mode) = match write {
            Write::Sweep(node) => (node, String::new(), "sweep"),
            Write::Entry(None) => (self.node.as_str(), String::new(), ""),
            Write::Entry(Some(entry)) => (
                self.node.as_str(),
                serde_json::to_string(entry).expect("entries serialize"),
                "",
            ),
        };
        let answer: Option<(String, u32, u32)> = self
            .settle
            .key(NODES)
            .key(users_key(tenant.as_str()))
            .key(format!("{SHOWN_PREFIX}{tenant}"))
            .key(TENANTS)
            .arg(self.ttl_ms())
            .arg(tenant.as_str())
            .arg(user)
            .arg(node)
            .arg(json)
            .arg(mode)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(answer.map(|(status, connections, online_count)| Shown {
            // The script answers only statuses it read from entries.
            status: status.parse().unwrap_or(Status::Online),
            connections,
            online_count,
        }))
    }

    /// Forgets what was announced of a user (its frame could not be sent),
    /// so the next settle announces its state whatever it is.
    pub async fn forget(&self, key: &Key) -> redis::RedisResult<()> {
        let (tenant, user) = key;
        let mut conn = self.conn.clone();
        conn.hdel(format!("{SHOWN_PREFIX}{tenant}"), user).await
    }

    /// Says this node is live, and rewrites its entries (Redis may have
    /// restarted empty, a sweep may have removed them). Returns the users
    /// to settle again: every one if the node was not live before this
    /// beat (its first, a Redis that lost it, late past the TTL or swept:
    /// others may have announced its users offline), else those whose
    /// entry was missing.
    pub async fn heartbeat(&self, entries: &[(Key, NodeEntry)]) -> redis::RedisResult<Vec<Key>> {
        let mut conn = self.conn.clone();
        let revived: i64 = self
            .heartbeat
            .key(NODES)
            .arg(&self.node)
            .arg(self.ttl_ms())
            .invoke_async(&mut conn)
            .await?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for ((tenant, user), entry) in entries {
            let json = serde_json::to_string(entry).expect("entries serialize");
            pipe.hset(users_key(tenant.as_str()), field(&self.node, user), json)
                .sadd(TENANTS, tenant.as_str())
                .ignore();
        }
        // HSET answers 1 for a field it created.
        let created: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(entries
            .iter()
            .zip(created)
            .filter(|(_, created)| revived == 1 || *created == 1)
            .map(|(key_entry, _)| key_entry.0.clone())
            .collect())
    }

    /// Leaves the set of live nodes (a clean shutdown): other nodes sweep
    /// this node's entries at their next heartbeat instead of after the
    /// TTL.
    pub async fn retire(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        conn.zadd(NODES, &self.node, 0).await
    }

    /// The nodes whose heartbeat is younger than the TTL (`live`), or
    /// older, by Redis's clock.
    async fn nodes(&self, live: bool) -> redis::RedisResult<HashSet<String>> {
        self.nodes_by_age
            .key(NODES)
            .arg(self.ttl_ms())
            .arg(if live { "live" } else { "dead" })
            .invoke_async(&mut self.conn.clone())
            .await
    }

    /// The online users of `scope` on every live node, merged.
    pub async fn online(&self, scope: &Scope<TenantId>) -> redis::RedisResult<Vec<OnlineUser>> {
        let live = self.nodes(true).await?;
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

    /// Claims the nodes whose heartbeat is older than the TTL (one claimer
    /// each, by `ZREM`), and returns their entries and those of nodes
    /// neither live nor in the set (a claimer died mid-sweep): each to be
    /// removed and its user settled in one step, [`Write::Sweep`], so a
    /// claimer that dies between two leaves the rest to the next sweep.
    pub async fn sweep(&self) -> redis::RedisResult<Vec<(Key, String)>> {
        let mut conn = self.conn.clone();
        let mut claimed = HashSet::new();
        for node in self.nodes(false).await? {
            let removed: i64 = conn.zrem(NODES, &node).await?;
            if removed == 1 {
                tracing::info!(node = %node, "a node's presence heartbeat stopped; its users leave");
                claimed.insert(node);
            }
        }
        let known: HashSet<String> = conn.zrange(NODES, 0, -1).await?;
        let tenants: Vec<String> = conn.smembers(TENANTS).await?;
        let mut affected = Vec::new();
        for tenant in tenants {
            let hash = users_key(&tenant);
            let fields: Vec<String> = conn.hkeys(&hash).await?;
            let mut unreadable = Vec::new();
            for name in fields {
                match name.split_once('|') {
                    Some((node, user)) if claimed.contains(node) || !known.contains(node) => {
                        match TenantId::parse(&tenant) {
                            Ok(tenant) => {
                                affected.push(((tenant, user.to_string()), node.to_string()))
                            }
                            Err(_) => unreadable.push(name.clone()),
                        }
                    }
                    Some(_) => {}
                    None => unreadable.push(name),
                }
            }
            if !unreadable.is_empty() {
                let _: i64 = conn.hdel(&hash, unreadable).await?;
            }
        }
        Ok(affected)
    }
}
