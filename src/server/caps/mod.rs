//! Connection caps: how many long-lived connections (WebSocket, and the SSE
//! stream) a node admits, server-wide, per tenant, and not yet
//! authenticated per source address (seed 002's `WEBSOCKET_MAX_CONNECTIONS`).
//!
//! Admission happens before a connection costs memory: the gateway asks
//! [`Caps::admit`] before it answers 101 (the SSE endpoint before it starts
//! the stream), and a refusal is a 503 with `Retry-After`, naming the cap.
//! What is admitted is an [`Admission`], a guard that gives its place back
//! when dropped, so every exit path (a close, an error, a failed upgrade,
//! a panic) counts down. The caps are per node: each node protects its
//! own file descriptors and memory; with several nodes behind a balancer
//! the fleet's capacity is the sum.

mod collector;
mod peer;
mod proxies;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::GatewaySettings;
use crate::protocol::api::{CapsHealth, ErrorBody, ErrorDetail};
use crate::protocol::limits::MAX_CONNECTIONS_CEILING;
use crate::protocol::{Claims, ErrorCode};

pub use collector::CapsCollector;
pub use peer::Peer;
pub use proxies::{client_address, ProxyNet};

/// What a refused client is told to wait: connections end at human pace
/// (a tab closed, an auth timeout of 10 s), so retrying sooner only adds
/// load to a node already full.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Share of the open-file limit the default cap may use; the rest is for
/// the store, the bus, listeners and plain HTTP requests.
const FD_SHARE: f64 = 0.8;

/// `min(20000, 80% of the soft open-file limit)`: the default of
/// `[gateway] max_connections`, read once at start (`pytake serve` has
/// raised the soft limit to the hard one by then).
pub fn default_max_connections() -> u32 {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    let share = (soft as f64 * FD_SHARE) as u64;
    share.clamp(1, MAX_CONNECTIONS_CEILING as u64) as u32
}

/// One of the caps, as `/health`, `/metrics` and refusals name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Server,
    Tenant,
    UnauthenticatedPerAddress,
}

impl Cap {
    /// Every cap, in the order of [`Caps`]' refusal counters.
    pub const ALL: [Cap; 3] = [Cap::Server, Cap::Tenant, Cap::UnauthenticatedPerAddress];

    /// The setting's key in `[gateway]`.
    pub fn setting(self) -> &'static str {
        match self {
            Cap::Server => "max_connections",
            Cap::Tenant => "max_connections_per_tenant",
            Cap::UnauthenticatedPerAddress => "max_unauthenticated_per_address",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A connection the caps do not admit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connection refused: {what} already has {limit} open, the `[gateway] {setting}` cap; retry in {retry} s", setting = .cap.setting(), retry = RETRY_AFTER.as_secs())]
pub struct Refusal {
    pub cap: Cap,
    /// The cap's value.
    pub limit: u32,
    /// Who reached it: "this server", "tenant `acme`", "address 10.0.0.7".
    pub what: String,
}

impl IntoResponse for Refusal {
    /// 503 with `Retry-After` and `Connection: close` (hyper then drops
    /// the TCP connection, so a refused client holds nothing either).
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::Unavailable,
                message: self.to_string(),
                field: Some(format!("gateway.{}", self.cap.setting())),
            },
        };
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER.as_secs()),
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }
}

/// The counts behind the caps, locked once when a connection is admitted,
/// once when it authenticates and once when it ends, never per frame.
#[derive(Default)]
struct Counts {
    total: u32,
    tenants: HashMap<String, u32>,
    unauthenticated: HashMap<IpAddr, u32>,
}

/// The caps of one node and what counts against them.
pub struct Caps {
    max_connections: u32,
    per_tenant: u32,
    unauthenticated_per_address: u32,
    /// Whose `X-Forwarded-For` names the client (see [`client_address`]).
    trusted_proxies: Vec<ProxyNet>,
    counts: Mutex<Counts>,
    /// Refused since start, by [`Cap::index`].
    refused: [AtomicU64; 3],
}

/// Where an admitted connection counts besides the total.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// Not authenticated yet: against its address.
    Unauthenticated(IpAddr),
    /// Authenticated with a tenant's token: against that tenant.
    Tenant(String),
    /// Authenticated with a token of every tenant (admin): the total only.
    AllTenants,
}

/// An admitted connection's place; dropping it frees the place.
pub struct Admission {
    caps: Arc<Caps>,
    place: Place,
}

impl Caps {
    /// The caps `settings` configure (`max_connections` unset: sized from
    /// the open-file limit).
    pub fn new(settings: &GatewaySettings, trusted_proxies: &[ProxyNet]) -> Caps {
        let max_connections = settings
            .max_connections
            .unwrap_or_else(default_max_connections);
        Caps {
            max_connections,
            per_tenant: settings
                .max_connections_per_tenant
                .unwrap_or(max_connections),
            unauthenticated_per_address: settings.max_unauthenticated_per_address,
            trusted_proxies: trusted_proxies.to_vec(),
            counts: Mutex::default(),
            refused: Default::default(),
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Counts are updated whole under the lock: a panic elsewhere
        // cannot leave them half-written.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refuse(&self, cap: Cap, limit: u32, what: String) -> Refusal {
        self.refused[cap.index()].fetch_add(1, Ordering::Relaxed);
        tracing::debug!(cap = cap.setting(), limit, %what, "connection refused");
        Refusal { cap, limit, what }
    }

    /// Admits a connection from `addr`, authenticated already (`claims`:
    /// a token at upgrade, or the SSE request's) or not yet (`None`: it
    /// counts against its address until [`Admission::authenticate`]).
    /// Checks the server-wide cap first, then the tenant's or the
    /// address's.
    pub fn admit(
        self: &Arc<Self>,
        addr: IpAddr,
        claims: Option<&Claims>,
    ) -> Result<Admission, Refusal> {
        let place = match claims {
            None => Place::Unauthenticated(addr.to_canonical()),
            Some(claims) => place_of(claims),
        };
        let mut counts = self.counts();
        if counts.total >= self.max_connections {
            drop(counts);
            return Err(self.refuse(Cap::Server, self.max_connections, "this server".into()));
        }
        self.take(&mut counts, &place)?;
        counts.total += 1;
        Ok(Admission {
            caps: self.clone(),
            place,
        })
    }

    /// Counts `place` in, unless its own cap is reached.
    fn take(&self, counts: &mut Counts, place: &Place) -> Result<(), Refusal> {
        match place {
            Place::Unauthenticated(ip) => {
                let n = counts.unauthenticated.get(ip).copied().unwrap_or(0);
                if n >= self.unauthenticated_per_address {
                    return Err(self.refuse(
                        Cap::UnauthenticatedPerAddress,
                        self.unauthenticated_per_address,
                        format!("address {ip} (connections not yet authenticated)"),
                    ));
                }
                *counts.unauthenticated.entry(*ip).or_default() += 1;
            }
            Place::Tenant(tenant) => {
                let n = counts.tenants.get(tenant).copied().unwrap_or(0);
                if n >= self.per_tenant {
                    return Err(self.refuse(
                        Cap::Tenant,
                        self.per_tenant,
                        format!("tenant `{tenant}`"),
                    ));
                }
                *counts.tenants.entry(tenant.clone()).or_default() += 1;
            }
            Place::AllTenants => {}
        }
        Ok(())
    }

    /// Gives `place` back.
    fn give(counts: &mut Counts, place: &Place) {
        match place {
            Place::Unauthenticated(ip) => decrement(&mut counts.unauthenticated, ip),
            Place::Tenant(tenant) => decrement(&mut counts.tenants, tenant),
            Place::AllTenants => {}
        }
    }

    /// Connections admitted and open now.
    pub fn open(&self) -> u32 {
        self.counts().total
    }

    /// The caps, what counts against them and the refusals, for `/health`.
    pub fn health(&self) -> CapsHealth {
        let counts = self.counts();
        CapsHealth {
            connections: counts.total as u64,
            max_connections: self.max_connections,
            tenants: counts
                .tenants
                .iter()
                .map(|(t, n)| (t.clone(), *n as u64))
                .collect(),
            max_connections_per_tenant: self.per_tenant,
            unauthenticated: counts.unauthenticated.values().map(|n| *n as u64).sum(),
            max_unauthenticated_per_address: self.unauthenticated_per_address,
            refused: self.refused(),
        }
    }

    /// Refusals since start, by cap setting name.
    pub fn refused(&self) -> BTreeMap<String, u64> {
        Cap::ALL
            .iter()
            .map(|cap| {
                let n = self.refused[cap.index()].load(Ordering::Relaxed);
                (cap.setting().to_string(), n)
            })
            .collect()
    }

    /// Each cap's value, by setting name.
    pub fn limits(&self) -> [(Cap, u32); 3] {
        [
            (Cap::Server, self.max_connections),
            (Cap::Tenant, self.per_tenant),
            (
                Cap::UnauthenticatedPerAddress,
                self.unauthenticated_per_address,
            ),
        ]
    }
}

fn place_of(claims: &Claims) -> Place {
    match &claims.tenant_id {
        Some(tenant) => Place::Tenant(tenant.clone()),
        None => Place::AllTenants,
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Admission {
    /// Moves a connection that has just authenticated from its address's
    /// count to its tenant's; refused (the caller closes it with 1013,
    /// "try again later") when the tenant is at its cap, in which case it
    /// still counts against its address until dropped. Authenticating an
    /// authenticated admission changes nothing.
    pub fn authenticate(&mut self, claims: &Claims) -> Result<(), Refusal> {
        if !matches!(self.place, Place::Unauthenticated(_)) {
            return Ok(());
        }
        let place = place_of(claims);
        let caps = self.caps.clone();
        let mut counts = caps.counts();
        caps.take(&mut counts, &place)?;
        Caps::give(&mut counts, &self.place);
        self.place = place;
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = self.caps.counts();
        counts.total = counts.total.saturating_sub(1);
        Caps::give(&mut counts, &self.place);
    }
}

#[cfg(test)]
mod tests;
