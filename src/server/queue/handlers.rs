//! Job handlers, registered by kind.
//!
//! A handler may run more than once for one job (delivery is
//! at-least-once: a worker can die after the work and before recording
//! it), so every handler is idempotent: webhooks store their events under
//! idempotency keys taken from the payload; an `http` delivery is repeated
//! to a peer that must tolerate it (as every webhook receiver must).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::server::storage::jobs::Job;

/// Why a run did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// May succeed later (a timeout, a 503): retried with backoff until
    /// the attempts run out.
    #[error("{0}")]
    Retry(String),
    /// Will never succeed as it is (a payload that cannot be understood):
    /// dead at once, with the reason.
    #[error("{0}")]
    Fatal(String),
    /// Not run: its destination's circuit is open. Back to waiting until
    /// the instant, without spending the attempt.
    #[error("held back until the circuit to {host} closes")]
    Held { host: String, until: Instant },
}

/// Runs jobs of one kind.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn run(&self, job: &Job) -> Result<(), JobError>;
}

/// The handlers by kind.
#[derive(Default, Clone)]
pub struct Handlers {
    by_kind: BTreeMap<String, Arc<dyn Handler>>,
}

impl Handlers {
    pub fn register(&mut self, kind: &str, handler: Arc<dyn Handler>) {
        self.by_kind.insert(kind.to_string(), handler);
    }

    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.by_kind.get(kind)
    }

    /// The kinds, for messages that list what exists.
    pub fn kinds(&self) -> Vec<&str> {
        self.by_kind.keys().map(String::as_str).collect()
    }
}

/// Kind `noop`: succeeds at once. For checking a queue end to end and
/// for measuring the queue's own cost (the benchmarks' jobs per second).
pub struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _job: &Job) -> Result<(), JobError> {
        Ok(())
    }
}
