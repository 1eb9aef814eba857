//! Ingest: the one path every event takes. Requests queue for a single
//! writer that stores them in groups (one transaction, one fsync, for all the
//! requests that arrived meanwhile), answers each, and only then publishes the
//! new events on the bus: persist before publish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::protocol::EventId;
use crate::server::bus::{Bus, BusMessage};
use crate::server::clock::Clock;
use crate::server::metrics::handoff::{Handoff, LocalGroup};
use crate::server::storage::{AppendOutcome, AppendRequest, Counted, EventStore, KeyReused};
use crate::server::telemetry::intake::StoreOp;
use crate::server::telemetry::IntakeMetrics;

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

/// Complete seconds behind `/health`'s events per second: long enough to
/// smooth a bursty producer, short enough that a stall shows within it.
pub const RATE_WINDOW_SECS: u64 = 10;

/// One slot per second of the window, plus the second under way.
const RATE_SLOTS: usize = RATE_WINDOW_SECS as usize + 1;

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
    stats: Arc<IntakeStats>,
}

/// Events stored since start and per second over the last
/// [`RATE_WINDOW_SECS`]. The single writer records, `/health` reads; both
/// with atomics only, so the intake path takes no lock for it.
pub struct IntakeStats {
    started: Instant,
    total: AtomicU64,
    /// Second `s` (counted from `started`) lives in slot `s % RATE_SLOTS`:
    /// `s` in the high 32 bits, its count in the low 32, so a slot is
    /// claimed for a new second and counted in one atomic step.
    slots: [AtomicU64; RATE_SLOTS],
}

impl IntakeStats {
    pub(crate) fn new() -> IntakeStats {
        IntakeStats {
            started: Instant::now(),
            total: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts `n` events stored now.
    fn record(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.total.fetch_add(n, Ordering::Relaxed);
        let now = self.second();
        let slot = &self.slots[(now % RATE_SLOTS as u64) as usize];
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |packed| {
            let (second, count) = unpack(packed);
            let before = if second == now { count } else { 0 };
            Some(pack(now, before.saturating_add(n)))
        });
    }

    /// Events stored since start.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Events per second over the last [`RATE_WINDOW_SECS`] complete
    /// seconds, or over the complete seconds since start when fewer (0 in
    /// the first second). The second under way is left out: its count is
    /// partial and would read as a drop.
    pub fn per_second(&self) -> f64 {
        self.rate().0
    }

    /// [`Self::per_second`] and the seconds it is taken over (fewer than
    /// [`RATE_WINDOW_SECS`] in the first seconds after start), so a reader
    /// is not told "over the last 10s" of a server up for 4.
    pub fn rate(&self) -> (f64, u64) {
        let now = self.second();
        let span = now.min(RATE_WINDOW_SECS);
        if span == 0 {
            return (0.0, 0);
        }
        let window = now - span..now;
        let sum: u64 = self
            .slots
            .iter()
            .map(|slot| unpack(slot.load(Ordering::Relaxed)))
            .filter(|(second, _)| window.contains(second))
            .map(|(_, count)| count)
            .sum();
        (sum as f64 / span as f64, span)
    }
}

/// A rate slot: the second (32 bits: 136 years of uptime) and its count
/// (saturating at 4 billion).
fn pack(second: u64, count: u64) -> u64 {
    ((second & 0xffff_ffff) << 32) | count.min(0xffff_ffff)
}

fn unpack(packed: u64) -> (u64, u64) {
    (packed >> 32, packed & 0xffff_ffff)
}

impl Ingest {
    /// The producers' handle and the writer, for the caller to run
    /// ([`Writer::run`]) once the server starts.
    pub fn new(
        store: Arc<dyn EventStore>,
        bus: Arc<dyn Bus>,
        clock: Clock,
        metrics: IntakeMetrics,
        handoff: Handoff,
    ) -> (Ingest, Writer) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(IntakeStats::new());
        let writer = Writer {
            rx,
            group: Committer {
                store,
                bus,
                clock,
                stats: stats.clone(),
                metrics,
                handoff,
            },
        };
        (Ingest { tx, stats }, writer)
    }

    /// Events stored, in total and per second.
    pub fn stats(&self) -> &IntakeStats {
        &self.stats
    }

    /// The same stats, for a reader that outlives a borrow (`/metrics`).
    pub fn shared_stats(&self) -> Arc<IntakeStats> {
        self.stats.clone()
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

/// The single writer: takes requests in groups and commits each.
pub struct Writer {
    rx: mpsc::Receiver<Job>,
    group: Committer,
}

/// What a group is written to.
struct Committer {
    store: Arc<dyn EventStore>,
    bus: Arc<dyn Bus>,
    clock: Clock,
    stats: Arc<IntakeStats>,
    metrics: IntakeMetrics,
    /// To this node's aggregator: what each group added to the figures.
    handoff: Handoff,
}

impl Writer {
    /// Stores what producers submit until shutdown, then what was already
    /// accepted.
    pub async fn run(self, shutdown: CancellationToken) {
        let Writer { mut rx, group } = self;
        let mut requests: Vec<AppendRequest> = Vec::with_capacity(MAX_GROUP_REQUESTS);
        let mut replies = Vec::with_capacity(MAX_GROUP_REQUESTS);
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let first = tokio::select! {
                biased;
                job = rx.recv() => job,
                _ = sweep.tick() => {
                    match group.store.expire_idempotency_keys(group.clock.now()).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(expired = n, "idempotency keys swept"),
                        Err(e) => {
                            group.metrics.store_error(StoreOp::Sweep);
                            tracing::warn!(error = %e, "sweeping idempotency keys failed");
                        }
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
            group
                .commit(std::mem::take(&mut requests), &mut replies)
                .await;
        }
        tracing::debug!("ingest writer stopped");
    }
}

impl Committer {
    /// Stores a group, answers each request, then publishes what is new:
    /// persist before publish, so nothing on the bus is missing from the
    /// store when a subscriber resumes from it.
    async fn commit(&self, requests: Vec<AppendRequest>, replies: &mut Vec<Reply>) {
        let count = requests.len();
        let events: usize = requests.iter().map(|r| r.events.len()).sum();
        self.metrics.batch_events.observe(events as f64);
        let started = Instant::now();
        let appended = self.store.append_counted(requests, self.clock.now()).await;
        let took = started.elapsed().as_secs_f64();
        self.metrics.append_seconds.observe(took);
        match appended {
            Ok(Counted { outcomes, rollup }) => {
                let mut fresh: Vec<BusMessage> = Vec::new();
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    if let Ok(outcome) = &outcome {
                        fresh.extend(outcome.events.iter().filter(|a| a.new).map(|a| {
                            BusMessage::Event {
                                event: a.event.clone(),
                                prev: a.prev,
                            }
                        }));
                    }
                    let _ = reply.send(outcome.map_err(IngestError::from));
                }
                self.stats.record(fresh.len() as u64);
                let count = fresh.len();
                // Before publishing: see `metrics/handoff.rs`.
                // New events get ids in request order: already ascending.
                let ids: Vec<EventId> = fresh
                    .iter()
                    .filter_map(|m| match m {
                        BusMessage::Event { event, .. } => Some(event.id),
                        BusMessage::Frame(_) => None,
                    })
                    .collect();
                debug_assert!(ids.is_sorted(), "a group's new ids ascend");
                self.handoff.send(LocalGroup { ids, rollup });
                match self.bus.publish(fresh).await {
                    Ok(()) => {
                        self.metrics.bus_published.inc_by(count as u64);
                    }
                    Err(e) => {
                        self.metrics.bus_publish_errors.inc();
                        tracing::error!(error = %e, events = count, "publish failed after store; subscribers catch up from the store");
                    }
                }
            }
            Err(e) => {
                self.metrics.store_error(StoreOp::Append);
                tracing::error!(error = %e, requests = count, "store append failed");
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(IngestError::Store(e.to_string())));
                }
            }
        }
    }
}

type Reply = oneshot::Sender<Result<AppendOutcome, IngestError>>;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::advance;

    const SECOND: Duration = Duration::from_secs(1);

    /// The clock is paused: `advance` moves it exactly.
    #[tokio::test(start_paused = true)]
    async fn the_rate_averages_the_complete_seconds_of_the_window() {
        let stats = IntakeStats::new();
        stats.record(30);
        assert_eq!(stats.rate(), (0.0, 0), "nothing complete in second 0");
        advance(SECOND).await;
        assert_eq!(stats.rate(), (30.0, 1), "over the one second of uptime");
        stats.record(10);
        stats.record(0);
        advance(SECOND).await;
        assert_eq!(stats.rate(), (20.0, 2), "40 events over 2 s");
        advance(9 * SECOND).await;
        assert_eq!(stats.per_second(), 1.0, "second 0 left the window");
        advance(SECOND).await;
        assert_eq!(stats.per_second(), 0.0, "an idle window reads 0");
        assert_eq!(stats.total(), 40);
    }

    /// A slot is shared by seconds `s` and `s + 11`: a new second replaces
    /// the old count instead of adding to it.
    #[tokio::test(start_paused = true)]
    async fn a_reused_slot_starts_from_zero() {
        let stats = IntakeStats::new();
        stats.record(500);
        advance(RATE_SLOTS as u32 * SECOND).await;
        stats.record(7);
        advance(SECOND).await;
        assert_eq!(stats.per_second(), 0.7);
        assert_eq!(stats.total(), 507);
    }
}
