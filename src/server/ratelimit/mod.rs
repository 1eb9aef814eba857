//! REST rate limits (seed 003): a quota of requests per minute per token
//! subject, by role, GCRA. On one node the quota lives in the process
//! ([`local`]); with Redis configured it lives in Redis ([`shared`]), one
//! atomic script per request, so spreading requests over nodes does not
//! multiply it.
//!
//! The check is a middleware that runs before the handler: a refused
//! request is answered 429 and never reaches intake, so a 429 never loses
//! an accepted request, and an answered one was counted. Only requests
//! with a valid token are counted: `/health`, `/ready`, `/metrics`, the
//! WebSocket upgrades (capped by [`crate::server::caps`] instead) and
//! requests without a token (webhooks, or a 401) pass untouched, and a bad
//! token costs no Redis call.
//!
//! If Redis does not answer, the node falls back to its local quota
//! (fail open to a per-node limit rather than refuse every request, or
//! drop the limit), logs the change once, and counts each fallback in
//! `pytake_rate_limit_fallbacks_total`.

mod local;
mod shared;
#[cfg(test)]
mod tests;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::config::ServerSettings;
use crate::protocol::{Claims, Role};
use crate::server::api::ApiError;
use crate::server::bus::{Bus, BusState};
use crate::server::state::AppState;
use crate::server::telemetry::Telemetry;

pub use local::{LocalQuota, TokioClock};
pub use shared::SharedQuota;

/// Longest a request waits for Redis to count it before the node counts
/// it locally: a slow Redis must not become a slow API.
const SHARED_TIMEOUT: Duration = Duration::from_millis(250);

/// `RateLimit-Limit`: the quota (requests per minute).
pub const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: requests that may be sent at once now.
pub const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset`: whole seconds until the quota is whole again.
pub const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// What a check decided, and what the headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The quota per minute (also the burst).
    pub limit: u32,
    /// Requests that would be allowed right now after this one.
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset: Duration,
    /// Refused: until the next request would be allowed.
    pub retry_after: Duration,
}

/// Whole seconds, rounded up: a client that waits that long is allowed.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Decision {
    /// Sets the `RateLimit-*` headers.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(self.remaining));
        headers.insert(RESET, HeaderValue::from(ceil_secs(self.reset)));
    }

    /// `Retry-After` of a refusal: at least one second.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

/// The quotas of every role and where they are kept.
pub struct RateLimits {
    /// By [`slot`]; `None`: that role is not limited.
    local: [Option<LocalQuota>; 4],
    shared: Option<Shared>,
    limited: Family<[(&'static str, &'static str); 1], Counter>,
    fallbacks: Counter,
}

struct Shared {
    redis: redis::aio::ConnectionManager,
    quota: SharedQuota,
    bus: Arc<dyn Bus>,
    /// Whether the last check fell back, to log changes rather than every
    /// request.
    degraded: AtomicBool,
}

fn slot(role: Role) -> usize {
    match role {
        Role::Viewer => 0,
        Role::Operator => 1,
        Role::Admin => 2,
        Role::Service => 3,
    }
}

impl RateLimits {
    /// The quotas `settings` configure, shared through `bus`'s Redis when
    /// it has one; registers the refusal and fallback counters.
    pub fn new(settings: &ServerSettings, bus: Arc<dyn Bus>, telemetry: &Telemetry) -> RateLimits {
        let quota = |n: u32| NonZeroU32::new(n).map(LocalQuota::new);
        let limited = Family::default();
        telemetry.register(
            "pytake_http_rate_limited",
            "REST requests refused 429 by the per-subject rate limit, by token role",
            limited.clone(),
        );
        // Every role's series from the start, at zero.
        for role in ["viewer", "operator", "admin", "service"] {
            let _ = limited.get_or_create(&[("role", role)]);
        }
        let fallbacks = Counter::default();
        telemetry.register(
            "pytake_rate_limit_fallbacks",
            "Rate-limit checks counted by this node alone because Redis did not answer",
            fallbacks.clone(),
        );
        RateLimits {
            local: [
                quota(settings.rate_limit_viewer),
                quota(settings.rate_limit_operator),
                quota(settings.rate_limit_admin),
                quota(settings.rate_limit_service),
            ],
            shared: bus.shared_state().map(|redis| Shared {
                redis,
                quota: SharedQuota::default(),
                bus,
                degraded: AtomicBool::new(false),
            }),
            limited,
            fallbacks,
        }
    }

    /// Counts one request of `claims`' subject; `None` when its role has
    /// no limit. Subjects are names within a tenant: `ana` of acme and
    /// `ana` of globex have a quota each.
    pub async fn check(&self, claims: &Claims) -> Option<Decision> {
        let local = self.local[slot(claims.role)].as_ref()?;
        let key = format!(
            "{}:{}:{}",
            claims.role,
            claims.tenant_id.as_deref().unwrap_or("*"),
            claims.sub
        );
        let decision = match &self.shared {
            Some(shared) => match self.check_shared(shared, &key, local).await {
                Some(decision) => decision,
                None => local.check(&key),
            },
            None => local.check(&key),
        };
        if !decision.allowed {
            self.limited
                .get_or_create(&[("role", claims.role.as_str())])
                .inc();
        }
        Some(decision)
    }

    /// The shared count, or `None` (logged on change) when Redis is down
    /// or slow.
    async fn check_shared(
        &self,
        shared: &Shared,
        key: &str,
        local: &LocalQuota,
    ) -> Option<Decision> {
        let answer = if shared.bus.state() == BusState::Up {
            let mut redis = shared.redis.clone();
            let limit = local.limit();
            match tokio::time::timeout(SHARED_TIMEOUT, shared.quota.check(&mut redis, key, limit))
                .await
            {
                Ok(Ok(decision)) => Ok(decision),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {SHARED_TIMEOUT:?}")),
            }
        } else {
            Err("the bus reports Redis down".to_string())
        };
        match answer {
            Ok(decision) => {
                if shared.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits are shared through Redis again");
                }
                Some(decision)
            }
            Err(error) => {
                self.fallbacks.inc();
                if !shared.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "Redis cannot count rate limits: each node counts its own quota until it answers");
                }
                None
            }
        }
    }
}

/// Paths never counted: probes and scrapes, and the WebSocket endpoints
/// (connections are capped, and their messages limited per connection).
fn exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics") || path == "/ws" || path.starts_with("/ws/")
}

/// The request's token: `Authorization: Bearer`, else `?token=` (the SSE
/// stream accepts it there, for `EventSource`).
fn token_of(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
    }
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Claims the rate limiter verified, for [`crate::server::api::Caller`]
/// to reuse rather than verify the signature again.
#[derive(Clone)]
pub struct Verified(pub Claims);

/// The middleware: counts the request of a valid token, refuses it 429
/// with `Retry-After` when its quota is spent, and sets the `RateLimit-*`
/// headers on the answer either way.
pub async fn enforce(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(claims) = token_of(&request).and_then(|t| state.keys.verify(&t).ok()) else {
        return next.run(request).await;
    };
    let decision = state.rate_limits.check(&claims).await;
    // Handed on only when it came from the header `Caller` reads: a
    // `?token=` stays good only where a handler accepts it.
    let verified = request
        .headers()
        .contains_key(header::AUTHORIZATION)
        .then(|| Verified(claims.clone()));
    if let Some(verified) = verified {
        request.extensions_mut().insert(verified);
    }
    let Some(decision) = decision else {
        return next.run(request).await;
    };
    if !decision.allowed {
        let retry = decision.retry_after_secs();
        tracing::debug!(sub = %claims.sub, role = %claims.role, retry, "rate limited");
        let mut response = ApiError::TooManyRequests {
            message: format!(
                "rate limit of {} requests a minute for {} tokens reached by subject `{}`; retry in {retry} s",
                decision.limit, claims.role, claims.sub
            ),
            retry_after: retry,
        }
        .into_response();
        decision.write_headers(response.headers_mut());
        return response;
    }
    let mut response = next.run(request).await;
    decision.write_headers(response.headers_mut());
    response
}
