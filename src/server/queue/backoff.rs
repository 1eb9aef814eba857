//! Retry delays: exponential (seed 003: 2 s, 4 s, 8 s, ...), capped, with
//! jitter so that jobs that failed together (a destination that went down)
//! do not all come back in the same instant.

use std::time::Duration;

use rand::Rng;

/// Most jitter added, as a share of the delay. Added, never taken off, so
/// a retry never comes sooner than the documented delay.
pub const JITTER: f64 = 0.2;

/// The delay before the retry that follows `attempt` (1 for the first
/// run): `base * 2^(attempt-1)`, at most `cap`, plus up to [`JITTER`].
pub fn delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let plain = plain_delay(attempt, base, cap);
    let jitter = rand::rng().random_range(0.0..=JITTER);
    plain.mul_f64(1.0 + jitter)
}

/// [`delay`] without the jitter.
pub fn plain_delay(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    base.saturating_mul(1u32 << doublings.min(31)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(2);
    const CAP: Duration = Duration::from_secs(600);

    #[test]
    fn delays_double_from_the_base_up_to_the_cap() {
        let secs: Vec<u64> = (1..=10)
            .map(|a| plain_delay(a, BASE, CAP).as_secs())
            .collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600]);
        assert_eq!(plain_delay(1000, BASE, CAP), CAP, "no overflow");
    }

    #[test]
    fn jitter_only_adds_up_to_a_fifth() {
        for attempt in 1..=5 {
            let plain = plain_delay(attempt, BASE, CAP);
            for _ in 0..200 {
                let d = delay(attempt, BASE, CAP);
                assert!(
                    d >= plain && d <= plain.mul_f64(1.0 + JITTER),
                    "{d:?} for {plain:?}"
                );
            }
        }
    }
}
