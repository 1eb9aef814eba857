//! The quota in this process: GCRA per key (`governor`), one limiter per
//! role because a `governor` limiter has one quota. Used on one node, and
//! by a node whose Redis is unreachable.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::Decision;

/// Checks between two sweeps of the keys whose bucket is full again, so
/// the map holds only recently active subjects.
const SWEEP_EVERY: u64 = 10_000;

/// `governor`'s clock, read from tokio's, so a test that pauses and
/// advances tokio's time moves the quota with it (the quanta clock
/// `governor` uses by default would not).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, TokioClock, StateInformationMiddleware>;

/// One role's quota, kept per key in this process.
pub struct LocalQuota {
    limit: u32,
    limiter: Keyed,
    checks: AtomicU64,
}

impl LocalQuota {
    /// `per_minute` requests a minute, all of them available at once
    /// (a burst of a whole minute's quota, then one every `60 s / n`).
    pub fn new(per_minute: NonZeroU32) -> LocalQuota {
        let limiter: Keyed = RateLimiter::<_, _, _, NoOpMiddleware<_>>::new(
            Quota::per_minute(per_minute),
            DefaultKeyedStateStore::default(),
            TokioClock,
        )
        .with_middleware::<StateInformationMiddleware>();
        LocalQuota {
            limit: per_minute.get(),
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// The quota per minute.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts one request of `key`; refused when its bucket is empty.
    pub fn check(&self, key: &str) -> Decision {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let interval = interval(self.limit);
        match self.limiter.check_key(&key.to_string()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity().min(self.limit);
                Decision {
                    allowed: true,
                    limit: self.limit,
                    remaining,
                    reset: interval * (self.limit - remaining),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(TokioClock.now());
                Decision {
                    allowed: false,
                    limit: self.limit,
                    remaining: 0,
                    reset: wait + interval * (self.limit - 1),
                    retry_after: wait,
                }
            }
        }
    }
}

/// Time between two requests at a steady `per_minute`.
pub fn interval(per_minute: u32) -> Duration {
    Duration::from_secs(60) / per_minute.max(1)
}
