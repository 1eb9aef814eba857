//! The server's wall clock, one place to read it from.
//!
//! Time-driven logic (idempotency windows, and the backoff, leases, TTLs
//! and rollups of later parts) reads the time here rather than from
//! `Utc::now()`, so a test that pauses tokio's clock moves the server's
//! wall clock with it: `tokio::time::advance(24h)` expires a key without
//! waiting a day.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Where the server's "now" comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system's clock (production).
    System,
    /// Starts at `start` and moves with tokio's clock, which a test may
    /// pause and advance (`tokio::time::pause`).
    Tokio { start: DateTime<Utc>, at: Instant },
}

impl Clock {
    /// A clock that follows tokio's, starting at the system time now.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            start: Utc::now(),
            at: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { start, at } => {
                let elapsed = chrono::Duration::from_std(at.elapsed()).unwrap_or_default();
                *start + elapsed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_only_with_tokio_time() {
        let clock = Clock::tokio();
        let t0 = clock.now();
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert_eq!(clock.now() - t0, chrono::Duration::days(1));
    }
}
