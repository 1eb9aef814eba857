//! This node's part in alerting, for `/health`: an operator looking for
//! the evaluator (or checking that a takeover happened) asks each node.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::evaluate::stamp;
use super::runner::Round;
use crate::protocol::api::AlertsHealth;

#[derive(Debug, Default)]
pub struct Status {
    /// Whether the last round held the lease, and when it evaluated.
    state: Mutex<(bool, Option<DateTime<Utc>>)>,
}

impl Status {
    pub fn record(&self, round: Round, at: DateTime<Utc>) {
        let mut state = self.state.lock().expect("alert status lock");
        match round {
            Round::Standby | Round::LostLease => state.0 = false,
            Round::Unchanged | Round::Committed => *state = (true, Some(at)),
        }
    }

    pub fn health(&self) -> AlertsHealth {
        let (evaluating, last) = *self.state.lock().expect("alert status lock");
        AlertsHealth {
            evaluating,
            last_evaluation: last.map(stamp),
        }
    }
}
