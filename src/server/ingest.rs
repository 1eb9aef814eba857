//! Ingest: the one path every event takes. Requests queue for a single
//! writer that stores them in groups (one transaction, one fsync, for all the
//! requests that arrived meanwhile), answers each, and only then publishes the
//! new events on the bus: persist before publish.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::Event;
use crate::server::bus::Bus;
use crate::server::storage::{AppendOutcome, AppendRequest, KeyReused, Store};

/// Requests waiting for the writer. When full, producers wait up to
/// [`SUBMIT_TIMEOUT`] and then get 503: backpressure, not memory growth.
const QUEUE: usize = 4096;

/// How long a producer waits for room in the queue before giving up.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often expired idempotency keys are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Most requests stored in one group commit.
const MAX_GROUP_REQUESTS: usize = 512;

/// Most events stored in one group commit (keeps a transaction short).
const MAX_GROUP_EVENTS: usize = 8192;

/// Why an event was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("ingest is overloaded; retry later")]
    Overloaded,
    #[error("the store failed: {0}")]
    Store(String),
    #[error(transparent)]
    KeyReused(#[from] KeyReused),
}

struct Job {
    request: AppendRequest,
    reply: Reply,
}

/// The producers' handle on ingest.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::Sender<Job>,
}

impl Ingest {
    /// Starts the writer task.
    pub fn start(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Ingest {
        let (tx, rx) = mpsc::channel(QUEUE);
        tracker.spawn(writer(rx, store, bus, shutdown));
        Ingest { tx }
    }

    /// Stores a request and publishes its new events; returns once the
    /// events are durable.
    pub async fn submit(&self, request: AppendRequest) -> Result<AppendOutcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { request, reply };
        match tokio::time::timeout(SUBMIT_TIMEOUT, self.tx.send(job)).await {
            Err(_) => return Err(IngestError::Overloaded),
            Ok(Err(_)) => return Err(IngestError::ShuttingDown),
            Ok(Ok(())) => {}
        }
        answer.await.unwrap_or(Err(IngestError::ShuttingDown))
    }
}

async fn writer(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    shutdown: CancellationToken,
) {
    let mut requests: Vec<AppendRequest> = Vec::with_capacity(MAX_GROUP_REQUESTS);
    let mut replies = Vec::with_capacity(MAX_GROUP_REQUESTS);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let first = tokio::select! {
            biased;
            job = rx.recv() => job,
            _ = sweep.tick() => {
                match store.expire_idempotency_keys(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "idempotency keys swept"),
                    Err(e) => tracing::warn!(error = %e, "sweeping idempotency keys failed"),
                }
                continue;
            }
            _ = shutdown.cancelled() => {
                // Refuse new work, then finish what was already accepted.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let mut events = first.request.events.len();
        requests.push(first.request);
        replies.push(first.reply);
        while requests.len() < MAX_GROUP_REQUESTS && events < MAX_GROUP_EVENTS {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.request.events.len();
                    requests.push(job.request);
                    replies.push(job.reply);
                }
                Err(_) => break,
            }
        }
        commit(
            std::mem::take(&mut requests),
            &mut replies,
            store.as_ref(),
            bus.as_ref(),
        )
        .await;
    }
    tracing::debug!("ingest writer stopped");
}

type Reply = oneshot::Sender<Result<AppendOutcome, IngestError>>;

async fn commit(
    requests: Vec<AppendRequest>,
    replies: &mut Vec<Reply>,
    store: &dyn Store,
    bus: &dyn Bus,
) {
    let count = requests.len();
    match store.append(requests).await {
        Ok(outcomes) => {
            let mut fresh: Vec<Arc<Event>> = Vec::new();
            for (reply, outcome) in replies.drain(..).zip(outcomes) {
                if let Ok(outcome) = &outcome {
                    for (event, new) in outcome.events.iter().zip(&outcome.fresh) {
                        if *new {
                            fresh.push(event.clone());
                        }
                    }
                }
                let _ = reply.send(outcome.map_err(IngestError::from));
            }
            if let Err(e) = bus.publish(&fresh).await {
                tracing::error!(error = %e, events = fresh.len(), "publish failed after store; subscribers resume from the store");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, requests = count, "store append failed");
            for reply in replies.drain(..) {
                let _ = reply.send(Err(IngestError::Store(e.to_string())));
            }
        }
    }
}
