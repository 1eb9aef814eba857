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

/// Stores one group and answers each of its requests. When the group's
/// transaction fails and it holds more than one request, each is stored
/// again on its own, so a job one backend cannot take (PostgreSQL refuses
/// a NUL in text) fails its own request only, not the others' webhooks.
async fn write_group(store: &dyn JobStore, now: DateTime<Utc>, group: &mut Vec<Request>) {
    let sizes: Vec<usize> = group.iter().map(|r| r.jobs.len()).collect();
    let jobs: Vec<NewJob> = if group.len() == 1 {
        std::mem::take(&mut group[0].jobs)
    } else {
        group.iter().flat_map(|r| r.jobs.iter().cloned()).collect()
    };
    match enqueue_checked(store, jobs, now).await {
        Ok(mut ids) => {
            for (request, size) in group.drain(..).zip(sizes) {
                let _ = request.reply.send(Ok(ids.drain(..size).collect()));
            }
        }
        Err(e) if group.len() == 1 => {
            tracing::error!(error = %e, "enqueue failed");
            let _ = group
                .remove(0)
                .reply
                .send(Err(EnqueueError::Store(Arc::new(e))));
        }
        Err(e) => {
            tracing::warn!(error = %e, requests = group.len(), "a group enqueue failed; storing its requests one by one");
            for request in group.drain(..) {
                let answer = enqueue_checked(store, request.jobs, now).await;
                if let Err(e) = &answer {
                    tracing::error!(error = %e, "enqueue failed");
                }
                // The caller may have gone away; its jobs are stored all the same.
                let _ = request
                    .reply
                    .send(answer.map_err(|e| EnqueueError::Store(Arc::new(e))));
            }
        }
    }
}

/// The store's enqueue, held to its promise of one id per job.
async fn enqueue_checked(
    store: &dyn JobStore,
    jobs: Vec<NewJob>,
    now: DateTime<Utc>,
) -> Result<Vec<JobId>, StoreError> {
    let expected = jobs.len();
    let ids = store.enqueue(jobs, now).await?;
    if ids.len() != expected {
        return Err(StoreError::Task(format!(
            "the store returned {} ids for {expected} jobs",
            ids.len()
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Scope;
    use crate::server::storage::{open, StoreOptions, Stores};
    use serde_json::json;

    async fn sqlite(dir: &tempfile::TempDir) -> Stores {
        let url = format!("sqlite://{}/pytake.db", dir.path().display());
        open(&url, &StoreOptions::default()).await.unwrap()
    }

    fn job(request: usize, n: usize) -> NewJob {
        NewJob {
            queue: "default".into(),
            kind: "noop".into(),
            payload: json!({"request": request, "n": n}),
            priority: 0,
            run_at: Utc::now(),
            max_attempts: 3,
            correlation_id: None,
            tenant_id: None,
        }
    }

    /// Requests enqueued at once share groups, and each still gets the ids
    /// of its own jobs, in its order.
    #[tokio::test]
    async fn concurrent_requests_get_their_own_ids_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await.jobs;
        let enqueuer = Arc::new(Enqueuer::start(store.clone(), Clock::System));
        let mut tasks = Vec::new();
        for request in 0..50 {
            let enqueuer = enqueuer.clone();
            tasks.push(tokio::spawn(async move {
                let jobs = (0..request % 4 + 1).map(|n| job(request, n)).collect();
                (request, enqueuer.enqueue(jobs).await.unwrap())
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let (request, ids) = task.await.unwrap();
            assert_eq!(ids.len(), request % 4 + 1);
            for (n, id) in ids.iter().enumerate() {
                let stored = store.job(*id, &Scope::All).await.unwrap();
                assert_eq!(stored.payload, json!({"request": request, "n": n}));
            }
            all.extend(ids);
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), (0..50).map(|r| r % 4 + 1).sum::<usize>());
        assert_eq!(
            enqueuer.enqueue(Vec::new()).await.unwrap(),
            Vec::<JobId>::new()
        );
    }

    /// A group whose transaction fails answers every request in it with the
    /// error, and nothing of it is stored.
    #[tokio::test]
    async fn a_failed_group_fails_each_request() {
        let dir = tempfile::tempdir().unwrap();
        let stores = sqlite(&dir).await;
        let enqueuer = Enqueuer::start(stores.jobs.clone(), Clock::System);
        stores.events.close().await;
        let err = enqueuer.enqueue(vec![job(0, 0)]).await.unwrap_err();
        assert!(matches!(err, EnqueueError::Store(_)), "{err:?}");
    }
}
