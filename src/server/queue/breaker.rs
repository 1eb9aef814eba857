//! A circuit breaker per destination host (seed 003): after
//! `threshold` consecutive failures the circuit opens and that host's
//! jobs are held back, not run, so they keep their attempts instead of
//! burning them against a host that is down. After the cool-down one
//! trial run goes through (half-open): success closes the circuit,
//! failure opens it for another cool-down.
//!
//! The state is this node's: each node learns a host's health from its
//! own runs, which costs at most `threshold` failures per node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// How long jobs wait behind a half-open circuit's trial run before
/// they ask again.
pub const TRIAL_WAIT: Duration = Duration::from_secs(1);

/// Whether a run may go to a host now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    /// Not before this instant.
    Hold(Instant),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// Past the cool-down; `trial` while the one trial run is out.
    HalfOpen {
        trial: bool,
    },
}

/// A circuit's state for `/metrics` and the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

/// The circuits of every host this node sent to.
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    circuits: Mutex<HashMap<String, State>>,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Breakers {
        Breakers {
            threshold: threshold.max(1),
            cooldown,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    /// Asks to run a job against `host`; a `Go` must be followed by
    /// [`Breakers::record`].
    pub fn admit(&self, host: &str) -> Admit {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().expect("breakers lock");
        let state = circuits
            .entry(host.to_string())
            .or_insert(State::Closed { failures: 0 });
        match *state {
            State::Closed { .. } => Admit::Go,
            State::Open { until } if now < until => Admit::Hold(until),
            State::Open { .. } | State::HalfOpen { trial: false } => {
                *state = State::HalfOpen { trial: true };
                Admit::Go
            }
            State::HalfOpen { trial: true } => Admit::Hold(now + TRIAL_WAIT),
        }
    }

    /// Records how an admitted run against `host` went.
    pub fn record(&self, host: &str, ok: bool) {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().expect("breakers lock");
        let state = circuits
            .entry(host.to_string())
            .or_insert(State::Closed { failures: 0 });
        *state = match (*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::Closed { .. } | State::HalfOpen { .. }, false) => {
                tracing::warn!(host, cooldown = ?self.cooldown, "circuit open: holding this host's jobs back");
                State::Open {
                    until: now + self.cooldown,
                }
            }
            // A run admitted before the circuit opened: it stays open.
            (open @ State::Open { .. }, false) => open,
        };
    }

    /// Every host's circuit now.
    pub fn states(&self) -> Vec<(String, CircuitState)> {
        let now = Instant::now();
        let circuits = self.circuits.lock().expect("breakers lock");
        let mut states: Vec<(String, CircuitState)> = circuits
            .iter()
            .map(|(host, state)| {
                let shown = match state {
                    State::Closed { .. } => CircuitState::Closed,
                    State::Open { until } if now < *until => CircuitState::Open,
                    State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
                };
                (host.clone(), shown)
            })
            .collect();
        states.sort();
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_then_lets_one_trial_through_after_the_cooldown() {
        let b = Breakers::new(5, COOLDOWN);
        for _ in 0..4 {
            assert_eq!(b.admit("h"), Admit::Go);
            b.record("h", false);
        }
        assert_eq!(b.admit("h"), Admit::Go, "four failures keep it closed");
        b.record("h", false);
        let opened = Instant::now();
        assert_eq!(b.admit("h"), Admit::Hold(opened + COOLDOWN));
        assert_eq!(b.admit("other"), Admit::Go, "per host");
        assert_eq!(b.states()[0], ("h".to_string(), CircuitState::Open));

        tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
        assert!(matches!(b.admit("h"), Admit::Hold(_)), "still cooling down");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.admit("h"), Admit::Go, "the trial");
        assert_eq!(
            b.admit("h"),
            Admit::Hold(Instant::now() + TRIAL_WAIT),
            "one trial at a time"
        );
        b.record("h", false);
        assert_eq!(
            b.admit("h"),
            Admit::Hold(Instant::now() + COOLDOWN),
            "failed trial: open again"
        );

        tokio::time::advance(COOLDOWN).await;
        assert_eq!(b.admit("h"), Admit::Go);
        b.record("h", true);
        assert_eq!(b.admit("h"), Admit::Go, "closed after a good trial");
        assert_eq!(b.admit("h"), Admit::Go);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breakers::new(3, COOLDOWN);
        for ok in [false, false, true, false, false] {
            assert_eq!(b.admit("h"), Admit::Go);
            b.record("h", ok);
        }
        assert_eq!(b.admit("h"), Admit::Go, "never three in a row");
    }
}
