//! Group commit for enqueues: requests queue for one task that stores
//! every request waiting at that moment in one transaction, one fsync,
//! and answers each with its ids. A webhook is acknowledged only once its
//! job is stored, so at hundreds of webhooks a second a transaction each
//! would put the fsyncs, not the work, on the acknowledgement's path.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::server::clock::Clock;
use crate::server::storage::jobs::{JobId, JobStore, NewJob};
use crate::server::storage::StoreError;

/// Requests waiting for the group writer. When full, an enqueue waits up
/// to [`SUBMIT_TIMEOUT`] for room and then fails with
/// [`EnqueueError::Overloaded`] (503 at the API): backpressure, not memory
/// growth.
const QUEUE: usize = 4096;

/// How long an enqueue waits for room in the queue before giving up.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most jobs stored in one group (keeps a transaction short); the rest
/// go in the next.
const MAX_GROUP_JOBS: usize = 4096;

/// Why jobs were not enqueued.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnqueueError {
    #[error("the queue is overloaded; retry later")]
    Overloaded,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The group's transaction failed: every request in it gets the same
    /// error, and none of its jobs is stored.
    #[error(transparent)]
    Store(Arc<StoreError>),
}

struct Request {
    jobs: Vec<NewJob>,
    reply: oneshot::Sender<Result<Vec<JobId>, EnqueueError>>,
}

/// The handle producers enqueue through.
pub struct Enqueuer {
    tx: mpsc::Sender<Request>,
}

impl Enqueuer {
    /// Starts the group writer; it ends when the last handle is dropped,
    /// after storing what was already queued.
    pub fn start(store: Arc<dyn JobStore>, clock: Clock) -> Enqueuer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_groups(store, clock, rx));
        Enqueuer { tx }
    }

    /// Stores `jobs` together with whatever else is waiting; the ids come
    /// back in the jobs' order. Once the request is queued it is stored
    /// even if the caller goes away (a webhook sender that hung up is
    /// still answered by its job).
    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, EnqueueError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        match self
            .tx
            .send_timeout(Request { jobs, reply }, SUBMIT_TIMEOUT)
            .await
        {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(EnqueueError::Overloaded),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => {
                return Err(EnqueueError::ShuttingDown)
            }
        }
        answer.await.map_err(|_| EnqueueError::ShuttingDown)?
    }
}

async fn write_groups(store: Arc<dyn JobStore>, clock: Clock, mut rx: mpsc::Receiver<Request>) {
    let mut group: Vec<Request> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut jobs = first.jobs.len();
        group.push(first);
        while jobs < MAX_GROUP_JOBS {
            match rx.try_recv() {
                Ok(next) => {
                    jobs += next.jobs.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        write_group(&*store, clock.now(), &mut group).await;
    }
}

/// Stores one group and answers each of its requests.
async fn write_group(store: &dyn JobStore, now: DateTime<Utc>, group: &mut Vec<Request>) {
    let sizes: Vec<usize> = group.iter().map(|r| r.jobs.len()).collect();
    let jobs: Vec<NewJob> = group.iter_mut().flat_map(|r| r.jobs.drain(..)).collect();
    let stored = store.enqueue(jobs, now).await;
    if let Err(e) = &stored {
        tracing::error!(error = %e, requests = group.len(), "enqueue failed");
    }
    let mut stored = stored.map_err(|e| EnqueueError::Store(Arc::new(e)));
    for (request, size) in group.drain(..).zip(sizes) {
        let answer = match &mut stored {
            Ok(ids) => Ok(ids.drain(..size).collect()),
            Err(e) => Err(e.clone()),
        };
        // The caller may have gone away; its jobs are stored all the same.
        let _ = request.reply.send(answer);
    }
}
