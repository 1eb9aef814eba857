//! This node's workers: one fetcher leases due jobs in batches while
//! there are free slots (`concurrency`), each job runs as its own task,
//! and one finisher records outcomes in batches, so a busy queue costs
//! two store transactions per batch rather than two per job.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handlers::JobError;
use super::{backoff, Queue};
use crate::server::storage::jobs::{Finish, Leased, Outcome};

/// Finished runs waiting to be recorded. Full: a finishing run waits (a
/// finish must never be dropped: its job would run again), which slows
/// the fetcher through the slots it holds.
pub const FINISH_QUEUE: usize = 4096;

/// Most finishes recorded in one transaction.
const FINISH_BATCH: usize = 512;

/// How long the finisher waits before trying a failed write again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The share of the lease a run may take: it must end (and be recorded)
/// before another worker may take the job over.
const RUN_SHARE_OF_LEASE: f64 = 0.8;

/// Runs the fetcher of `queue_name` until shutdown.
pub async fn fetch(
    queue: Arc<Queue>,
    queue_name: String,
    slots: Arc<Semaphore>,
    finished: mpsc::Sender<Finish>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
) {
    let settings = &queue.settings;
    let mut woken = match queue.store.enqueued().await {
        Ok(rx) => Some(rx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch for enqueues; polling every {:?}", settings.poll_interval);
            None
        }
    };
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit.expect("slots stay open"),
        };
        let mut permits = vec![first];
        while permits.len() < settings.batch_size as usize {
            match slots.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let now = queue.clock.now();
        let leased = match queue
            .store
            .lease(&queue_name, permits.len() as u32, settings.lease, now)
            .await
        {
            Ok(leased) => leased,
            Err(e) => {
                tracing::warn!(error = %e, queue = %queue_name, "cannot lease jobs; trying again");
                drop(permits);
                sleep_or_shutdown(settings.poll_interval, &shutdown).await;
                continue;
            }
        };
        if leased.is_empty() {
            drop(permits);
            wait_for_work(&queue, &queue_name, woken.as_mut(), &shutdown).await;
            continue;
        }
        for (job, permit) in leased.into_iter().zip(permits) {
            let queue = queue.clone();
            let finished = finished.clone();
            tracker.spawn(run(queue, job, permit, finished));
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Waits until an enqueue (on any node), the next scheduled job or
/// expiring lease, or the poll interval, whichever comes first.
async fn wait_for_work(
    queue: &Queue,
    queue_name: &str,
    woken: Option<&mut tokio::sync::watch::Receiver<u64>>,
    shutdown: &CancellationToken,
) {
    let mut wait = queue.settings.poll_interval;
    if let Ok(Some(due)) = queue.store.next_due(queue_name).await {
        let until = (due - queue.clock.now()).to_std().unwrap_or(Duration::ZERO);
        wait = wait.min(until);
    }
    match woken {
        Some(rx) => {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(wait) => {}
                changed = rx.changed() => {
                    if changed.is_err() {
                        // The store closed: the server is stopping.
                        sleep_or_shutdown(wait, shutdown).await;
                    }
                }
            }
        }
        None => sleep_or_shutdown(wait, shutdown).await,
    }
}

/// Runs one leased job and hands its outcome to the finisher.
async fn run(
    queue: Arc<Queue>,
    leased: Leased,
    permit: OwnedSemaphorePermit,
    finished: mpsc::Sender<Finish>,
) {
    let outcome = outcome_of(&queue, &leased).await;
    queue.counters.count(&leased.job.kind, &outcome);
    match &outcome {
        Outcome::Dead { error } => tracing::warn!(
            job = leased.job.id, kind = %leased.job.kind, attempts = leased.job.attempts,
            error = %error, "job dead"
        ),
        Outcome::Retry { at, error } => tracing::info!(
            job = leased.job.id, kind = %leased.job.kind, attempts = leased.job.attempts,
            retry_at = %at, error = %error, "job failed; will retry"
        ),
        Outcome::Done | Outcome::Release { .. } => {}
    }
    drop(permit);
    let finish = Finish {
        lease: leased.lease,
        outcome,
    };
    if finished.send(finish).await.is_err() {
        tracing::warn!(
            job = leased.job.id,
            "the finisher stopped; the job runs again after its lease"
        );
    }
}

async fn outcome_of(queue: &Queue, leased: &Leased) -> Outcome {
    let job = &leased.job;
    let settings = &queue.settings;
    if job.attempts > job.max_attempts {
        return Outcome::Dead {
            error: format!(
                "its worker stopped (died or hung past the lease) on the last of {} attempts{}",
                job.max_attempts,
                job.last_error
                    .as_deref()
                    .map(|e| format!("; the error before: {e}"))
                    .unwrap_or_default()
            ),
        };
    }
    let Some(handler) = queue.handlers.get(&job.kind) else {
        return Outcome::Dead {
            error: format!(
                "no handler for kind `{}`: this server runs {}",
                job.kind,
                queue.handlers.kinds().join(", ")
            ),
        };
    };
    let limit = settings.lease.mul_f64(RUN_SHARE_OF_LEASE);
    let result = match tokio::time::timeout(limit, handler.run(job)).await {
        Ok(result) => result,
        Err(_) => Err(JobError::Retry(format!(
            "did not finish within {} (80 % of the lease)",
            crate::config::duration::format(limit)
        ))),
    };
    let now = queue.clock.now();
    match result {
        Ok(()) => Outcome::Done,
        Err(JobError::Fatal(error)) => Outcome::Dead { error },
        Err(JobError::Held { until, .. }) => {
            let wait = until.saturating_duration_since(tokio::time::Instant::now());
            Outcome::Release {
                at: now + chrono::Duration::from_std(wait).unwrap_or_default(),
            }
        }
        Err(JobError::Retry(error)) if job.attempts >= job.max_attempts => Outcome::Dead {
            error: format!("{error} (attempt {} of {})", job.attempts, job.max_attempts),
        },
        Err(JobError::Retry(error)) => {
            let delay = backoff::delay(job.attempts, settings.retry_base, settings.retry_cap);
            Outcome::Retry {
                at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                error: format!("{error} (attempt {} of {})", job.attempts, job.max_attempts),
            }
        }
    }
}

/// Records finished runs in batches until every sender is gone (the
/// fetchers stopped and every run ended), so shutdown loses no finish
/// that was made. A failed write is tried again: until it lands, those
/// jobs would run again after their lease (at-least-once).
pub async fn finish(queue: Arc<Queue>, mut finished: mpsc::Receiver<Finish>) {
    let mut batch = Vec::with_capacity(FINISH_BATCH);
    while finished.recv_many(&mut batch, FINISH_BATCH).await > 0 {
        let mut tries = 0;
        loop {
            match queue.store.finish(batch.clone(), queue.clock.now()).await {
                Ok(counted) => {
                    let lost = counted.iter().filter(|c| !**c).count();
                    if lost > 0 {
                        tracing::warn!(lost, "finishes refused: those jobs' leases had expired and another worker took them");
                    }
                    break;
                }
                Err(e) if tries < 30 => {
                    tries += 1;
                    tracing::warn!(error = %e, jobs = batch.len(), "cannot record finished jobs; trying again");
                    tokio::time::sleep(STORE_RETRY).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "gave up recording finished jobs; they run again after their lease");
                    break;
                }
            }
        }
        batch.clear();
    }
}
