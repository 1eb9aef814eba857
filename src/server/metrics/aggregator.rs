//! The aggregator: follows the event stream and keeps the live figures.
//!
//! It never polls the store for totals. At start (and after falling behind
//! the bus) it reads one snapshot of the store's rollups with the event id
//! they count up to, then adds every event after that id: subscribed
//! before the snapshot, so nothing committed after it is missed, and
//! skipping what the snapshot counted, so nothing is counted twice. The
//! bus delivers each tenant's events in order without gaps or repeats, on
//! one node or several, so every node's figures are the store's, and the
//! same. The groups this node stores come with their rollup from the
//! writer and are added from it rather than counted again from the bus
//! (`handoff.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify};
use tokio_util::sync::CancellationToken;

use super::figures::{Counts, Live, WINDOW_SECS};
use super::handoff::{Awaited, Handed, LocalGroup, HANDOFF_CAPACITY};
use super::rollup::{FastHash, Rollup};
use super::throttle::Throttle;
use crate::config::MetricsSettings;
use crate::protocol::metrics::Kpis;
use crate::protocol::{Event, EventId, Scope};
use crate::server::bus::{Bus, BusEvent};
use crate::server::clock::Clock;
use crate::server::gateway::hub::Hub;
use crate::server::storage::metrics::{MetricStore, CONVERSATIONS_KEPT_MS};

/// Most events counted under one write lock: readers (pushes, the
/// overview, scrapes) wait at most this long.
const MAX_GROUP: usize = 1024;

/// How often idle conversations past the store's keeping time are
/// forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Pause before reading the snapshot again after the store failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the nodes' samples say now (see `system.rs`); empty until the
/// first samples are read back.
#[derive(Debug, Clone, Default)]
pub struct ClusterGauges {
    /// The other nodes' connections per tenant, and for every tenant
    /// under `*` (this node's are counted live).
    pub websocket_connections: HashMap<String, f64>,
    pub system_cpu_usage: Option<f64>,
    pub system_memory_usage: Option<f64>,
}

/// The live figures and the tasks that keep them.
pub struct Aggregator {
    live: RwLock<Live>,
    pub settings: MetricsSettings,
    clock: Clock,
    store: Arc<dyn MetricStore>,
    bus: Arc<dyn Bus>,
    /// This node's connections, counted live.
    hub: Arc<Hub>,
    /// Whether the figures are the store's plus the bus's: false before
    /// the first snapshot and while reading one again.
    caught_up: AtomicBool,
    /// Bumped whenever figures change, for the pushes.
    changed: watch::Sender<u64>,
    pub(super) gauges: Mutex<ClusterGauges>,
    pub(super) throttle: Mutex<Throttle>,
    pub(super) throttle_wake: Notify,
    /// The groups this node stores, counted by the store (`handoff.rs`);
    /// taken by `run`.
    handed: Mutex<Option<Handed>>,
}

impl Aggregator {
    pub fn new(
        settings: MetricsSettings,
        clock: Clock,
        store: Arc<dyn MetricStore>,
        bus: Arc<dyn Bus>,
        hub: Arc<Hub>,
        handed: Handed,
    ) -> Arc<Aggregator> {
        Arc::new(Aggregator {
            handed: Mutex::new(Some(handed)),
            live: RwLock::new(Live::default()),
            throttle: Mutex::new(Throttle::new(settings.campaign_throttle)),
            settings,
            clock,
            store,
            bus,
            hub,
            caught_up: AtomicBool::new(false),
            changed: watch::channel(0).0,
            gauges: Mutex::new(ClusterGauges::default()),
            throttle_wake: Notify::new(),
        })
    }

    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// The newest event counted.
    pub fn head(&self) -> EventId {
        self.live.read().expect("figures lock").head
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The KPIs of a scope now, with the nodes' gauges.
    pub fn kpis(&self, tenant: &Scope<crate::protocol::TenantId>) -> Kpis {
        let now = self.clock.now();
        let idle_ms = self.settings.active_window.as_millis() as i64;
        let tenant = tenant.only().map(|t| t.as_str());
        let mut kpis =
            self.live
                .read()
                .expect("figures lock")
                .kpis(tenant, now.timestamp(), idle_ms);
        let local = match tenant {
            Some(t) => self.hub.stats.tenants().get(t).copied().unwrap_or(0),
            None => self.hub.stats.connections.load(Ordering::Relaxed),
        };
        let gauges = self.gauges.lock().expect("gauges lock");
        let others = gauges
            .websocket_connections
            .get(tenant.unwrap_or("*"))
            .copied()
            .unwrap_or(0.0);
        kpis.websocket_connections = local as i64 + others.round() as i64;
        kpis.system_cpu_usage = gauges.system_cpu_usage.unwrap_or(0.0);
        kpis.system_memory_usage = gauges.system_memory_usage.unwrap_or(0.0);
        kpis.timestamp = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        kpis
    }

    /// The counts of one tenant (`None`: all) over the last `window`, in
    /// whole minutes ([`super::figures::Figures::window_over`]); empty
    /// for a tenant never seen.
    pub fn recent(&self, tenant: Option<&str>, window: Duration) -> Counts {
        let now = self.clock.now().timestamp();
        let live = self.live.read().expect("figures lock");
        let figures = match tenant {
            Some(t) => live.tenants.get(t),
            None => Some(&live.all),
        };
        figures.map_or_else(Counts::default, |f| {
            f.window_over(now, window.as_secs() as i64)
        })
    }

    /// The tenants with figures, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let live = self.live.read().expect("figures lock");
        let mut tenants: Vec<String> = live.tenants.keys().cloned().collect();
        tenants.sort();
        tenants
    }

    /// The nodes' gauges as last read.
    pub fn gauges(&self) -> ClusterGauges {
        self.gauges.lock().expect("gauges lock").clone()
    }

    /// Open conversations active within the window, per tenant: the
    /// `active_conversations` samples.
    pub fn active_conversations(&self) -> Vec<(String, i64)> {
        let since =
            self.clock.now().timestamp_millis() - self.settings.active_window.as_millis() as i64;
        let live = self.live.read().expect("figures lock");
        live.tenants
            .iter()
            .map(|(tenant, figures)| (tenant.clone(), figures.active_conversations(since)))
            .collect()
    }

    /// The per-tenant totals for a scrape, tenants sorted.
    pub fn prometheus_snapshot(&self) -> ScrapeSnapshot {
        let live = self.live.read().expect("figures lock");
        let since =
            self.clock.now().timestamp_millis() - self.settings.active_window.as_millis() as i64;
        let mut tenants: Vec<(String, Counts)> = live
            .tenants
            .iter()
            .map(|(t, f)| (t.clone(), f.totals.clone()))
            .collect();
        tenants.sort_by(|a, b| a.0.cmp(&b.0));
        let mut active: Vec<(String, i64)> = live
            .tenants
            .iter()
            .map(|(t, f)| (t.clone(), f.active_conversations(since)))
            .collect();
        active.sort();
        ScrapeSnapshot {
            tenants,
            active,
            head: live.head,
            caught_up: self.caught_up(),
        }
    }

    /// Counts the bus's events until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut handed) = self.handed.lock().expect("handoff lock").take() else {
            tracing::error!("the metrics aggregator was started twice");
            return;
        };
        // Every tenant's events, on every node: the figures cover them all.
        let _interest = loop {
            match self.bus.watch(Scope::All).await {
                Ok(interest) => break interest,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics cannot follow the bus yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                }
            }
        };
        let mut failing = false;
        loop {
            let mut bus = self.bus.subscribe();
            let now = self.clock.now();
            let recent_from = now.timestamp().div_euclid(60) * 60 - WINDOW_SECS;
            let keep_since = now.timestamp_millis() - CONVERSATIONS_KEPT_MS;
            // Groups stored so far are in the snapshot about to be read.
            while handed.try_recv().is_some() {}
            let snapshot = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = self.store.metric_snapshot(recent_from, keep_since) => s,
            };
            let snapshot = match snapshot {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "metrics cannot read their starting figures from the store; retrying every second");
                        failing = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_AFTER) => {}
                    }
                    continue;
                }
            };
            failing = false;
            let head = snapshot.head;
            *self.live.write().expect("figures lock") =
                Live::from_snapshot(snapshot, self.clock.now().timestamp());
            self.caught_up.store(true, Ordering::Relaxed);
            self.changed.send_modify(|n| *n += 1);
            tracing::info!(head, "metrics counted from the store; following the bus");
            match self.follow(&mut bus, &mut handed, head, &shutdown).await {
                Followed::Shutdown => return,
                Followed::Behind(missed) => {
                    tracing::warn!(
                        missed,
                        "metrics fell behind the bus; reading the figures from the store again"
                    );
                    self.caught_up.store(false, Ordering::Relaxed);
                }
                Followed::Unmatched => {
                    tracing::warn!(
                        "metrics were handed stored groups whose events never came on the bus; reading the figures from the store again"
                    );
                    self.caught_up.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    async fn follow(
        &self,
        bus: &mut broadcast::Receiver<BusEvent>,
        handed: &mut Handed,
        head: EventId,
        shutdown: &CancellationToken,
    ) -> Followed {
        // Each tenant's last counted id: the bus orders each tenant's
        // stream, so anything at or below it is a repeat.
        let mut counted: HashMap<String, EventId, FastHash> = HashMap::default();
        let mut awaited = Awaited::default();
        // The greatest id that came on the bus: a handed group at or
        // below it may have been counted from the bus already.
        let mut seen = head;
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Followed::Shutdown,
                _ = sweep.tick() => {
                    let now = self.clock.now();
                    let before = now.timestamp_millis() - CONVERSATIONS_KEPT_MS;
                    let others = now.timestamp_millis() - WINDOW_SECS * 1000;
                    self.live.write().expect("figures lock").sweep(before, others);
                    continue;
                }
                received = bus.recv() => received,
            };
            self.take_handed(handed, &mut awaited, seen);
            let mut group: Vec<Arc<Event>> = Vec::new();
            let mut campaign_events: Vec<Arc<Event>> = Vec::new();
            let mut received = Some(first);
            while let Some(message) = received.take() {
                match message {
                    Ok(BusEvent { event, .. }) => {
                        let floor = seen;
                        seen = seen.max(event.id);
                        // Looked up by `&str`: no allocation per event.
                        let last = match counted.get_mut(event.tenant_id.as_str()) {
                            Some(last) => last,
                            None => counted.entry(event.tenant_id.clone()).or_insert(head),
                        };
                        if event.id > *last {
                            *last = event.id;
                            // Stored here and handed over before it was
                            // published: a miss may mean the handoff was
                            // read too early. (With Redis, another node's
                            // event can make the bus fetch one of ours from
                            // the store before our writer hands it over;
                            // the floor then refuses the late handoff.)
                            let local = awaited.take(event.id)
                                || (self.take_handed(handed, &mut awaited, floor)
                                    && awaited.take(event.id));
                            if local {
                                if matches!(
                                    event.event_type.as_str(),
                                    "CampaignUpdate" | "CallEvent"
                                ) {
                                    campaign_events.push(event);
                                }
                            } else {
                                group.push(event);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        return Followed::Behind(missed)
                    }
                    Err(broadcast::error::RecvError::Closed) => return Followed::Shutdown,
                }
                if group.len() < MAX_GROUP {
                    received = match bus.try_recv() {
                        Ok(message) => Some(Ok(message)),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Some(Err(broadcast::error::RecvError::Lagged(n)))
                        }
                        Err(_) => None,
                    };
                }
            }
            if !group.is_empty() {
                self.count(&group);
            }
            // Skipped local events count up to `seen` too.
            self.live.write().expect("figures lock").advance(seen);
            campaign_events.extend(group);
            self.touch_campaigns(&campaign_events);
            // A group is added only while none of its events has come, and
            // each comes once, so the awaited groups are those between
            // handoff and publish. More is a broken promise of the bus:
            // start afresh rather than grow.
            if awaited.len() > HANDOFF_CAPACITY {
                return Followed::Unmatched;
            }
        }
    }

    /// Adds the groups this node stored since the last call (see
    /// `handoff.rs`), unless an event at or above their first id came
    /// already (`floor`: the snapshot's head, or the greatest id seen on
    /// the bus), in which case they are counted from the bus; false if
    /// there were none.
    fn take_handed(&self, handed: &mut Handed, awaited: &mut Awaited, floor: EventId) -> bool {
        let mut any = false;
        while let Some(LocalGroup { ids, rollup }) = handed.try_recv() {
            any = true;
            if ids.first().is_none_or(|first| *first <= floor) {
                continue;
            }
            self.add(&rollup, floor);
            awaited.add(ids);
        }
        any
    }

    /// Counts a group of new events from other nodes.
    fn count(&self, group: &[Arc<Event>]) {
        let rollup = Rollup::of(group.iter().map(|e| e.as_ref()));
        let newest = group.iter().map(|e| e.id).max().unwrap_or(0);
        self.add(&rollup, newest);
    }

    /// Adds a rollup, everything up to `head` being counted, and wakes
    /// the pushes.
    fn add(&self, rollup: &Rollup, head: EventId) {
        let now = self.clock.now().timestamp();
        self.live
            .write()
            .expect("figures lock")
            .apply(rollup, head, now);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Tells the campaign pushes which campaigns new events changed.
    fn touch_campaigns(&self, events: &[Arc<Event>]) {
        let now = tokio::time::Instant::now();
        let mut touched = false;
        let mut throttle = self.throttle.lock().expect("throttle lock");
        for event in events {
            if let Some((campaign, lifecycle)) = super::throttle::campaign_of(event) {
                throttle.touch((event.tenant_id.clone(), campaign), lifecycle, now);
                touched = true;
            }
        }
        drop(throttle);
        if touched {
            self.throttle_wake.notify_one();
        }
    }
}

/// What a scrape shows (see `prometheus.rs`).
pub struct ScrapeSnapshot {
    pub tenants: Vec<(String, Counts)>,
    pub active: Vec<(String, i64)>,
    pub head: EventId,
    pub caught_up: bool,
}

enum Followed {
    Shutdown,
    Behind(u64),
    /// Groups handed over whose events did not come on the bus.
    Unmatched,
}
