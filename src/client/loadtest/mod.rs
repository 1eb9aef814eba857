//! The load generator behind `pytake loadtest`: N authenticated, subscribed
//! WebSocket connections and events published at a fixed rate, measured so
//! that a stalled server cannot hide its stall.
//!
//! Models: *closed* holds N connections (ramped over `ramp`) while events
//! are published; *open* lets connections arrive at a rate during the run,
//! each resuming from the run's first event so every delivery is accounted.
//!
//! Several nodes: the connections and the publishers are spread round-robin
//! over the targets (the server, then every `--node`), and an event counts
//! as owed to every subscriber of its room on every node, wherever it was
//! posted. History reads go to the first target only.
//!
//! An interrupted run ([`Shared::interrupt`]) opens no more connections and
//! publishes no more events, but still waits for the deliveries of events
//! already acknowledged before it closes the connections: its figures are
//! those of a shorter run, not of a run cut off mid-flight.

mod build;
mod publisher;
pub mod report;
mod subscriber;
pub mod threshold;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::credentials::is_loopback;
use super::{ApiClient, ClientError, HistoryParams, TokenSource};
use publisher::PublishPlan;
use report::{
    ConnectionReport, DeliveryReport, EventReport, GeneratorReport, LatencyReport, MemoryReport,
    NodeConnections, NodeEvents, NodeReport, Report, RunConfig, SCHEMA,
};
pub use threshold::{Threshold, Verdict};

/// The generator's own lateness past which a run is declared invalid: its
/// latency figures would include the generator's stalls.
pub const MAX_SCHEDULE_LAG: Duration = Duration::from_millis(100);

/// How long after the last publish deliveries may still arrive.
const DRAIN: Duration = Duration::from_secs(5);

/// Connection attempts in flight at once while ramping.
const CONNECT_CONCURRENCY: usize = 256;

/// Histogram shards; connections record into `index % SHARDS`.
const SHARDS: usize = 16;

/// Connections per loopback source address before another is used: well
/// under the ~28,000 ephemeral ports of one address, because the sockets of
/// earlier runs linger in TIME_WAIT for a minute and hold theirs.
const CONNECTIONS_PER_SOURCE: usize = 1000;

/// How connections arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    /// All connections held for the whole run, opened over `ramp`.
    Closed,
    /// Connections arriving at this many per second during the run.
    Open { per_second: f64 },
}

/// One run's parameters.
#[derive(Clone)]
pub struct LoadConfig {
    /// The first target: it also answers the generator's history reads.
    pub server: Url,
    /// More targets, nodes of the same cluster as `server`.
    pub nodes: Vec<Url>,
    pub tokens: TokenSource,
    pub connections: usize,
    pub ramp: Duration,
    pub rate: f64,
    pub duration: Duration,
    pub rooms: usize,
    pub tenants: usize,
    pub payload_bytes: usize,
    pub publishers: usize,
    pub model: Model,
}

impl LoadConfig {
    /// Every target: the server, then the nodes.
    pub fn targets(&self) -> Vec<&Url> {
        std::iter::once(&self.server).chain(&self.nodes).collect()
    }
}

/// Why a run could not be carried out (as opposed to failing thresholds).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot resolve {0}")]
    Resolve(String),
}

/// State shared by the connections, the publisher and the progress display.
pub struct Shared {
    pub start: Instant,
    /// Everything stops: connections close (end of run, or a fatal error).
    pub stop: CancellationToken,
    /// No new connections or events; deliveries still drain (a signal).
    interrupted: CancellationToken,
    pub groups: usize,
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub published: AtomicU64,
    pub publish_failed: AtomicU64,
    pub received: AtomicU64,
    last_delivery_us: AtomicU64,
    /// Acknowledged events per group (tenant × room).
    acked: Vec<AtomicU64>,
    /// Subscribed connections per group.
    subscribers: Vec<AtomicU64>,
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Acknowledgement latency of publish batches, in microseconds.
    acks: Mutex<Histogram<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    fatal: Mutex<Option<String>>,
    /// Per target, in `LoadConfig::targets` order.
    nodes: Vec<NodeCounters>,
}

/// What happened on one target.
#[derive(Default)]
struct NodeCounters {
    connected: AtomicU64,
    failed: AtomicU64,
    published: AtomicU64,
    publish_failed: AtomicU64,
}

impl Shared {
    fn new(groups: usize, nodes: usize) -> Arc<Shared> {
        let histogram = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
        Arc::new(Shared {
            start: Instant::now(),
            stop: CancellationToken::new(),
            interrupted: CancellationToken::new(),
            groups,
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            published: AtomicU64::new(0),
            publish_failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            acked: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            subscribers: (0..groups).map(|_| AtomicU64::new(0)).collect(),
            shards: (0..SHARDS).map(|_| Mutex::new(histogram())).collect(),
            acks: Mutex::new(histogram()),
            errors: Mutex::new(BTreeMap::new()),
            fatal: Mutex::new(None),
            nodes: (0..nodes.max(1)).map(|_| NodeCounters::default()).collect(),
        })
    }

    fn error(&self, kind: &str) {
        *self
            .errors
            .lock()
            .expect("errors lock")
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// A connection to target `node` that never subscribed.
    fn fail(&self, node: usize, kind: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.nodes[node].failed.fetch_add(1, Ordering::Relaxed);
        self.error(kind);
    }

    /// A problem no amount of load explains (bad token): the run stops.
    fn fatal(&self, message: String) {
        self.fatal
            .lock()
            .expect("fatal lock")
            .get_or_insert(message);
        self.stop.cancel();
    }

    /// Ends the run early (the operator's Ctrl-C): no new connections or
    /// events, then the usual drain, then a report marked interrupted.
    pub fn interrupt(&self) {
        self.interrupted.cancel();
    }

    /// Whether the run should start nothing new.
    fn halted(&self) -> bool {
        self.stop.is_cancelled() || self.interrupted.is_cancelled()
    }

    /// Sleeps until `due`; false if the run was halted meanwhile.
    async fn pause_until(&self, due: Instant) -> bool {
        tokio::select! {
            _ = tokio::time::sleep_until(due) => !self.halted(),
            _ = self.stop.cancelled() => false,
            _ = self.interrupted.cancelled() => false,
        }
    }

    fn subscribed(&self, group: usize, node: usize) {
        self.subscribers[group].fetch_add(1, Ordering::Relaxed);
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.nodes[node].connected.fetch_add(1, Ordering::Relaxed);
    }

    fn delivered(&self, now_us: u64) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.last_delivery_us.fetch_max(now_us, Ordering::Relaxed);
    }

    fn record(&self, shard: usize, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        let mut h = self.shards[shard].lock().expect("histogram lock");
        for s in samples.drain(..) {
            h.saturating_record(s);
        }
    }

    /// Deliveries expected so far: acknowledged events times subscribers.
    pub fn expected(&self) -> u64 {
        self.acked
            .iter()
            .zip(&self.subscribers)
            .map(|(a, s)| a.load(Ordering::Relaxed) * s.load(Ordering::Relaxed))
            .sum()
    }

    /// Latency so far (for the progress display).
    pub fn latency(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
        for shard in &self.shards {
            let _ = all.add(&*shard.lock().expect("histogram lock"));
        }
        all
    }
}

/// The loopback source addresses to spread `n` connections over, when the
/// server is on loopback (each address has its own ephemeral ports).
fn sources(server: &SocketAddr, n: usize) -> Vec<Option<IpAddr>> {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let count = (n / CONNECTIONS_PER_SOURCE + 1).min(250);
            (0..count)
                .map(|i| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + i as u8))))
                .collect()
        }
        _ => vec![None],
    }
}

/// Runs a load test and reports what happened. `shared` is created by
/// [`prepare`] so a progress display can watch it.
pub async fn run(cfg: &LoadConfig, shared: Arc<Shared>) -> Result<Report, LoadError> {
    let targets = cfg.targets();
    // A token minted from this machine's secret goes only to servers on
    // this machine: a --node elsewhere needs a token of its own.
    if let TokenSource::Local(_) = cfg.tokens {
        if let Some(remote) = targets.iter().find(|t| !is_loopback(t.as_str())) {
            return Err(ClientError::RemoteNeedsToken {
                server: remote.to_string(),
            }
            .into());
        }
    }
    let apis = targets
        .iter()
        .map(|target| ApiClient::new(target.as_str(), cfg.tokens.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    // Every node answers before the load starts (or the run stops, naming
    // the one that does not).
    let mut before = Vec::with_capacity(apis.len());
    for api in &apis {
        before.push(api.health().await?);
    }
    if targets.len() > 1 {
        for (target, health) in targets.iter().zip(&before) {
            if health.bus == "memory" {
                tracing::warn!(
                    "{target} runs the in-process bus: its subscribers get only the events posted to it, \
                     so the events posted to the other nodes will count as lost (start every node with --bus redis://...)"
                );
            }
        }
    }
    // Check the token before opening thousands of sockets with it (a
    // history read: the first target's).
    apis[0]
        .events(&HistoryParams {
            limit: Some(1),
            ..HistoryParams::default()
        })
        .await?;
    let mut addrs = Vec::with_capacity(targets.len());
    for target in &targets {
        addrs.push(resolve(target).await?);
    }
    // Sized by every connection of the run: on loopback the targets share
    // the source addresses' ephemeral ports.
    let sources: Vec<Vec<Option<IpAddr>>> = addrs
        .iter()
        .map(|addr| sources(addr, cfg.connections))
        .collect();
    let tenants: Vec<String> = (0..cfg.tenants).map(|i| format!("loadtest-{i}")).collect();
    let rooms: Vec<String> = (0..cfg.rooms).map(|i| format!("campaign:lt-{i}")).collect();
    let token = cfg.tokens.token();

    // Connection i goes to target i % n. Its group is counted per target
    // ((i / n) % groups), so that every target has subscribers of every
    // group, not one tenant each when n and the group count share a factor;
    // with one target it is i % groups.
    let plan_for = |i: usize, since: Option<i64>| {
        let node = i % addrs.len();
        let group = (i / addrs.len()) % shared.groups;
        let sources = &sources[node];
        subscriber::Plan {
            index: i,
            node,
            server: addrs[node],
            source: sources[i % sources.len()],
            token: token.clone(),
            group,
            tenant: tenants[group % cfg.tenants].clone(),
            room: rooms[group / cfg.tenants].clone(),
            since,
            permit: None,
        }
    };
    // Bounds connection attempts in flight; a connection releases its
    // permit once subscribed (or failed).
    let connect_gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_CONCURRENCY));
    let spawn_conn = |mut plan: subscriber::Plan| {
        let (shared, gate) = (shared.clone(), connect_gate.clone());
        async move {
            plan.permit = gate.acquire_owned().await.ok();
            SpawnedConn(tokio::spawn(subscriber::run(plan, shared)))
        }
    };

    let publish_plan = Arc::new(PublishPlan {
        urls: targets
            .iter()
            .map(|target| {
                target
                    .join("/api/v1/events")
                    .expect("static path")
                    .to_string()
            })
            .collect(),
        token: token.clone(),
        rate: cfg.rate,
        duration: cfg.duration,
        workers: cfg.publishers,
        tenants: tenants.clone(),
        rooms: rooms.clone(),
        payload_bytes: cfg.payload_bytes,
    });

    let mut tasks = Vec::with_capacity(cfg.connections);
    let connect_started = Instant::now();
    let connect_all;
    let rss_after;
    let schedule;
    match cfg.model {
        Model::Closed => {
            for i in 0..cfg.connections {
                let due = connect_started + cfg.ramp.mul_f64(i as f64 / cfg.connections as f64);
                if !shared.pause_until(due).await {
                    break;
                }
                tasks.push(spawn_conn(plan_for(i, None)).await);
            }
            // Wait for every connection opened to subscribe or fail.
            let total = tasks.len() as u64;
            while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
                < total
            {
                if shared.halted() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            connect_all = connect_started.elapsed();
            rss_after = rss(&apis).await;
            schedule = if shared.halted() || cfg.rate <= 0.0 {
                publisher::Schedule::default()
            } else {
                publisher::run(publish_plan, shared.clone()).await
            };
        }
        Model::Open { per_second } => {
            let head = before[0].last_event_id;
            let publishing = tokio::spawn(publisher::run(publish_plan, shared.clone()));
            let gap = Duration::from_secs_f64(1.0 / per_second.max(0.001));
            for i in 0..cfg.connections {
                let due = connect_started + gap.mul_f64(i as f64);
                if due > connect_started + cfg.duration || !shared.pause_until(due).await {
                    break;
                }
                tasks.push(spawn_conn(plan_for(i, Some(head))).await);
            }
            connect_all = connect_started.elapsed();
            schedule = publishing.await.unwrap_or_default();
            rss_after = rss(&apis).await;
        }
    }

    // Drain: wait for the deliveries still on their way (an interrupted
    // run too: those events were acknowledged, so they count).
    let drain_until = Instant::now() + DRAIN;
    while shared.received.load(Ordering::Relaxed) < shared.expected()
        && Instant::now() < drain_until
        && !shared.stop.is_cancelled()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shared.stop.cancel();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for SpawnedConn(task) in tasks {
        if let Ok(outcome) = task.await {
            outcomes.push(outcome);
        }
    }
    if let Some(message) = shared.fatal.lock().expect("fatal lock").take() {
        return Err(ClientError::Unauthorized(message).into());
    }
    Ok(build::build_report(
        cfg,
        &shared,
        &outcomes,
        schedule,
        connect_all,
        sources.iter().map(Vec::len).max().unwrap_or(1),
        before.iter().map(|h| h.process.rss_bytes).sum(),
        rss_after,
    ))
}

/// The first address `target` resolves to.
async fn resolve(target: &Url) -> Result<SocketAddr, LoadError> {
    let host = target.host_str().unwrap_or("127.0.0.1");
    let port = target.port_or_known_default().unwrap_or(80);
    tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| LoadError::Resolve(format!("{host}:{port}")))
}

/// The servers' resident memory, summed; `None` if one did not say.
async fn rss(apis: &[ApiClient]) -> Option<u64> {
    let mut total = 0;
    for api in apis {
        total += api.health().await.ok()?.process.rss_bytes;
    }
    Some(total)
}

/// A connection's task (wrapped so the spawning future does not read as a
/// future of a future).
struct SpawnedConn(tokio::task::JoinHandle<subscriber::Outcome>);

/// Creates the shared state of a run (so a progress display can watch it).
pub fn prepare(cfg: &LoadConfig) -> Arc<Shared> {
    Shared::new(cfg.tenants.max(1) * cfg.rooms.max(1), cfg.targets().len())
}
