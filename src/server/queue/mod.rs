//! The job queue's runtime: this node's workers, the handlers they run,
//! and the figures they keep. The queue itself (what is due, who holds
//! it) lives in the store ([`crate::server::storage::jobs`]), so every
//! node's workers share it and a job runs on one worker at a time.

pub mod backoff;
pub mod breaker;
pub mod enqueue;
pub mod handlers;
pub mod http;
pub mod monitor;
pub mod webhook;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::QueueSettings;
use crate::protocol::{Scope, TenantId};
use crate::server::clock::Clock;
use crate::server::storage::jobs::{JobId, JobStore, NewJob, Outcome, QueueStats};
use crate::server::storage::StoreError;
use breaker::Breakers;
use enqueue::{EnqueueError, Enqueuer};
use handlers::Handlers;

/// The queue every job goes to unless it says otherwise; this node's
/// workers serve it.
pub const DEFAULT_QUEUE: &str = "default";

/// The queue's handle: enqueue, stats, and the workers' shared parts.
pub struct Queue {
    pub store: Arc<dyn JobStore>,
    pub settings: QueueSettings,
    pub clock: Clock,
    pub handlers: Handlers,
    pub breakers: Arc<Breakers>,
    /// Runs this node finished, by kind and outcome (`/metrics`).
    pub counters: RunCounters,
    enqueuer: Enqueuer,
}

impl Queue {
    pub fn new(
        store: Arc<dyn JobStore>,
        settings: QueueSettings,
        clock: Clock,
        handlers: Handlers,
        breakers: Arc<Breakers>,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            enqueuer: Enqueuer::start(store.clone(), clock.clone()),
            store,
            settings,
            clock,
            handlers,
            breakers,
            counters: RunCounters::default(),
        })
    }

    /// The breakers an `http` handler of this queue's settings uses.
    pub fn breakers_for(settings: &QueueSettings) -> Arc<Breakers> {
        Arc::new(Breakers::new(
            settings.breaker_threshold,
            settings.breaker_cooldown,
        ))
    }

    /// A job of `kind` with the defaults: the default queue, priority 0,
    /// due now, `[queue] max_attempts`.
    pub fn job(&self, kind: &str, payload: serde_json::Value) -> NewJob {
        NewJob {
            queue: DEFAULT_QUEUE.into(),
            kind: kind.into(),
            payload,
            priority: 0,
            run_at: self.clock.now(),
            max_attempts: self.settings.max_attempts,
            correlation_id: None,
            tenant_id: None,
        }
    }

    /// Stores `jobs` (in one transaction with other enqueues waiting at
    /// the same moment); the ids come back in the jobs' order.
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, EnqueueError> {
        self.enqueuer.enqueue(jobs).await
    }

    pub async fn stats(&self, scope: &Scope<TenantId>) -> Result<QueueStats, StoreError> {
        self.store.queue_stats(scope, self.clock.now()).await
    }

    /// This node's workers: a fetcher for the default queue and the
    /// finisher, which ends after every run has reported.
    pub fn workers(
        self: &Arc<Self>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Vec<crate::server::Task> {
        let (finished, finishing) = mpsc::channel(worker::FINISH_QUEUE);
        let slots = Arc::new(Semaphore::new(self.settings.concurrency as usize));
        vec![
            Box::pin(worker::fetch(
                self.clone(),
                DEFAULT_QUEUE.to_string(),
                slots,
                finished,
                tracker,
                shutdown,
            )),
            Box::pin(worker::finish(self.clone(), finishing)),
        ]
    }
}

/// Runs finished on this node, by kind and outcome.
#[derive(Default)]
pub struct RunCounters {
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl RunCounters {
    pub fn count(&self, kind: &str, outcome: &Outcome) {
        let name = match outcome {
            Outcome::Done => "done",
            Outcome::Retry { .. } => "retried",
            Outcome::Dead { .. } => "dead",
            Outcome::Release { .. } => "held",
        };
        *self
            .counts
            .lock()
            .expect("run counters lock")
            .entry((kind.to_string(), name))
            .or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<(String, &'static str), u64> {
        self.counts.lock().expect("run counters lock").clone()
    }
}
