//! The live figures: totals since the first event and a ring of the last
//! hour's minutes, per tenant and for every tenant, and the conversations
//! that may be active. Filled from the store's snapshot and then from the
//! events the aggregator follows, one [`Rollup`] at a time; read for the
//! `Metrics` pushes, the overview and Prometheus.

use std::collections::HashMap;

use crate::protocol::metrics::{
    latency_bucket, latency_quantile, Counter, Derived, Kpis, LATENCY_BOUNDS_MS,
};
use crate::protocol::EventId;
use crate::server::metrics::rollup::Rollup;
use crate::server::storage::metrics::{CounterRow, MetricSnapshot};

/// Minutes in the ring: the window of rates and percentiles.
pub const WINDOW_MINUTES: usize = 60;
pub const WINDOW_SECS: i64 = WINDOW_MINUTES as i64 * 60;

/// How far ahead of the server's clock an event's minute may be and still
/// enter the window: a producer's clock a little fast counts; one an hour
/// off (a time-zone bug) would otherwise push the real minutes out of the
/// ring. Such events still count in the totals and the store.
pub const MAX_SKEW_SECS: i64 = 120;

const COUNTERS: usize = Counter::ALL.len();
const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One value per counter, and the ERP latency histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub n: [i64; COUNTERS],
    pub latency: [u64; BUCKETS],
    /// The latencies' sum, milliseconds.
    pub latency_sum_ms: f64,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            n: [0; COUNTERS],
            latency: [0; BUCKETS],
            latency_sum_ms: 0.0,
        }
    }
}

impl Counts {
    fn add(&mut self, counter: Counter, key: &str, count: i64, sum: f64) {
        self.n[counter.index()] += count;
        if counter == Counter::ErpLatency {
            if let Some(bucket) = latency_bucket(key) {
                self.latency[bucket] += count.max(0) as u64;
            }
            self.latency_sum_ms += sum;
        }
    }

    fn merge(&mut self, other: &Counts) {
        for (a, b) in self.n.iter_mut().zip(other.n) {
            *a += b;
        }
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a += b;
        }
        self.latency_sum_ms += other.latency_sum_ms;
    }

    pub fn get(&self, counter: Counter) -> i64 {
        self.n[counter.index()]
    }
}

/// The figures of one tenant, or of all.
#[derive(Debug, Default)]
pub struct Figures {
    pub totals: Counts,
    /// Slot `minute / 60 % WINDOW_MINUTES`, tagged with its minute.
    ring: Vec<(i64, Counts)>,
    /// Conversations by id: the open ones, and the others seen lately
    /// (so a late start or end is merged as the store merges it). Empty
    /// for the all-tenants figures.
    conversations: HashMap<String, Conversation>,
}

/// What is known of one conversation (Unix ms), merged as the store
/// merges its row: the latest start, the latest end, the latest activity.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Conversation {
    started: Option<i64>,
    ended: Option<i64>,
    last: i64,
}

impl Conversation {
    fn open(&self) -> bool {
        self.started
            .is_some_and(|start| self.ended.is_none_or(|end| end < start))
    }

    fn merge(&mut self, started: Option<i64>, ended: Option<i64>, last: i64) {
        self.started = self.started.max(started);
        self.ended = self.ended.max(ended);
        self.last = self.last.max(last);
    }
}

impl Figures {
    fn add(&mut self, counter: Counter, key: &str, minute: i64, count: i64, sum: f64, now: i64) {
        self.totals.add(counter, key, count, sum);
        if minute <= now + MAX_SKEW_SECS {
            self.add_recent(counter, key, minute, count, sum);
        }
    }

    /// Counts into the ring only: a minute older than the slot's holds
    /// nothing of the window any more and is left out.
    fn add_recent(&mut self, counter: Counter, key: &str, minute: i64, count: i64, sum: f64) {
        if self.ring.is_empty() {
            self.ring = vec![(i64::MIN, Counts::default()); WINDOW_MINUTES];
        }
        let slot = &mut self.ring[(minute / 60).rem_euclid(WINDOW_MINUTES as i64) as usize];
        if slot.0 < minute {
            *slot = (minute, Counts::default());
        }
        if slot.0 == minute {
            slot.1.add(counter, key, count, sum);
        }
    }

    /// The counts of the minutes in `(now - window, now]`.
    pub fn window(&self, now_secs: i64) -> Counts {
        self.window_over(now_secs, WINDOW_SECS)
    }

    /// The counts of the last `secs` in whole minutes, the current one
    /// included (so 5 minutes are the 4 before this one and this one so
    /// far), at most the window.
    pub fn window_over(&self, now_secs: i64, secs: i64) -> Counts {
        let minutes = ((secs + 59) / 60).clamp(1, WINDOW_MINUTES as i64);
        let newest = now_secs.div_euclid(60) * 60;
        let oldest = newest - (minutes - 1) * 60;
        let mut sum = Counts::default();
        for (minute, counts) in &self.ring {
            if (oldest..=newest).contains(minute) {
                sum.merge(counts);
            }
        }
        sum
    }

    /// Events per second over the last minute: the minute before this
    /// one and this one so far.
    fn events_per_second(&self, now_secs: i64) -> f64 {
        let newest = now_secs.div_euclid(60) * 60;
        let count = |minute: i64| {
            self.ring
                .iter()
                .filter(|(m, _)| *m == minute)
                .map(|(_, c)| c.get(Counter::Events))
                .sum::<i64>()
        };
        let seconds = 60 + (now_secs - newest);
        (count(newest - 60) + count(newest)) as f64 / seconds as f64
    }

    pub fn active_conversations(&self, since_ms: i64) -> i64 {
        self.conversations
            .values()
            .filter(|c| c.open() && c.last >= since_ms)
            .count() as i64
    }
}

/// Every tenant's figures and their sum, up to event `head`.
#[derive(Debug, Default)]
pub struct Live {
    pub head: EventId,
    pub tenants: HashMap<String, Figures>,
    pub all: Figures,
}

impl Live {
    /// The figures of a store snapshot taken at `now` (Unix seconds).
    pub fn from_snapshot(snapshot: MetricSnapshot, now: i64) -> Live {
        let mut live = Live {
            head: snapshot.head,
            ..Live::default()
        };
        let mut apply = |row: &CounterRow, recent: bool| {
            let tenant = live.tenants.entry(row.tenant_id.clone()).or_default();
            if recent && row.time > now + MAX_SKEW_SECS {
                return;
            }
            if recent {
                tenant.add_recent(row.counter, &row.key, row.time, row.count, row.sum);
                live.all
                    .add_recent(row.counter, &row.key, row.time, row.count, row.sum);
            } else {
                tenant.totals.add(row.counter, &row.key, row.count, row.sum);
                live.all
                    .totals
                    .add(row.counter, &row.key, row.count, row.sum);
            }
        };
        for row in &snapshot.totals {
            apply(row, false);
        }
        for row in &snapshot.recent {
            apply(row, true);
        }
        for c in snapshot.conversations {
            live.tenants
                .entry(c.tenant_id)
                .or_default()
                .conversations
                .entry(c.conversation_id)
                .or_default()
                .merge(c.started_at, c.ended_at, c.last_activity_at);
        }
        live
    }

    /// Counts a group of events, up to event `head`, at `now` (Unix
    /// seconds).
    pub fn apply(&mut self, rollup: &Rollup, head: EventId, now: i64) {
        for ((tenant, minute, counter, key), add) in &rollup.counters {
            self.tenants
                .entry(tenant.clone())
                .or_default()
                .add(*counter, key, *minute, add.count, add.sum, now);
            self.all
                .add(*counter, key, *minute, add.count, add.sum, now);
        }
        for ((tenant, id), change) in &rollup.conversations {
            self.tenants
                .entry(tenant.clone())
                .or_default()
                .conversations
                .entry(id.clone())
                .or_default()
                .merge(change.started_at, change.ended_at, change.last_activity_at);
        }
        self.head = self.head.max(head);
    }

    /// Everything up to event `head` is counted.
    pub fn advance(&mut self, head: EventId) {
        self.head = self.head.max(head);
    }

    /// Forgets open conversations idle since before `open_before_ms`
    /// (the store forgets them then too), and the others idle since
    /// before `other_before_ms`.
    pub fn sweep(&mut self, open_before_ms: i64, other_before_ms: i64) {
        for figures in self.tenants.values_mut() {
            figures.conversations.retain(|_, c| {
                c.last
                    >= if c.open() {
                        open_before_ms
                    } else {
                        other_before_ms
                    }
            });
        }
    }

    /// The KPIs of one tenant (`None`: all) at `now_secs`; conversations
    /// idle for `idle_ms` or longer are not active.
    pub fn kpis(&self, tenant: Option<&str>, now_secs: i64, idle_ms: i64) -> Kpis {
        let empty = Figures::default();
        let figures = match tenant {
            Some(t) => self.tenants.get(t).unwrap_or(&empty),
            None => &self.all,
        };
        let since = now_secs * 1000 - idle_ms;
        let active = match tenant {
            Some(_) => figures.active_conversations(since),
            None => self
                .tenants
                .values()
                .map(|f| f.active_conversations(since))
                .sum(),
        };
        let total = |c: Counter| figures.totals.get(c);
        let window = figures.window(now_secs);
        let recent = |c: Counter| window.get(c);
        Kpis {
            tenant_id: tenant.map(str::to_string),
            messages_sent: total(Counter::MessagesSent),
            messages_received: total(Counter::MessagesReceived),
            messages_failed: total(Counter::MessagesFailed),
            message_failure_rate: percent(
                recent(Counter::MessagesFailed),
                recent(Counter::MessagesSent) + recent(Counter::MessagesFailed),
            ),
            active_conversations: active,
            conversations_started: total(Counter::ConversationsStarted),
            conversations_ended: total(Counter::ConversationsEnded),
            tickets_created: total(Counter::TicketsCreated),
            campaigns_started: total(Counter::CampaignsStarted),
            campaigns_completed: total(Counter::CampaignsCompleted),
            campaign_messages_sent: total(Counter::CampaignMessagesSent),
            campaign_messages_failed: total(Counter::CampaignMessagesFailed),
            calls_answered: total(Counter::CallsAnswered),
            calls_busy: total(Counter::CallsBusy),
            calls_failed: total(Counter::CallsFailed),
            calls_converted: total(Counter::CallsConverted),
            calls_opt_out: total(Counter::CallsOptOut),
            ai_interactions: total(Counter::AiInteractions),
            ai_tokens: total(Counter::AiTokens),
            erp_calls: total(Counter::ErpCalls),
            erp_errors: total(Counter::ErpErrors),
            erp_error_rate: percent(recent(Counter::ErpErrors), recent(Counter::ErpCalls)),
            erp_latency_p50_ms: round2(latency_quantile(&window.latency, 0.50)),
            erp_latency_p95_ms: round2(latency_quantile(&window.latency, 0.95)),
            system_alerts: total(Counter::SystemAlerts),
            events_total: total(Counter::Events),
            events_per_second: round2(figures.events_per_second(now_secs)),
            window_seconds: WINDOW_SECS,
            last_event_id: self.head,
            ..Kpis::default()
        }
    }
}

/// A derived figure of one span's counts (`get`), its ERP latency
/// histogram and sum, over `seconds`: the one definition the series, the
/// exports and the alert rules share.
pub fn derived(
    d: Derived,
    get: impl Fn(Counter) -> i64,
    latency: &[u64],
    latency_sum_ms: f64,
    seconds: i64,
) -> f64 {
    let calls = || {
        get(Counter::CallsAnswered)
            + get(Counter::CallsBusy)
            + get(Counter::CallsFailed)
            + get(Counter::CallsConverted)
            + get(Counter::CallsOptOut)
    };
    match d {
        Derived::MessageFailureRate => percent(
            get(Counter::MessagesFailed),
            get(Counter::MessagesSent) + get(Counter::MessagesFailed),
        ),
        Derived::ErpErrorRate => percent(get(Counter::ErpErrors), get(Counter::ErpCalls)),
        Derived::ErpLatencyAvg => {
            let n: u64 = latency.iter().sum();
            if n == 0 {
                0.0
            } else {
                round2(latency_sum_ms / n as f64)
            }
        }
        Derived::ErpLatencyP50 => round2(latency_quantile(latency, 0.5)),
        Derived::ErpLatencyP95 => round2(latency_quantile(latency, 0.95)),
        Derived::EventsPerSecond => round2(get(Counter::Events) as f64 / seconds.max(1) as f64),
        Derived::CallAnswerRate => percent(
            get(Counter::CallsAnswered) + get(Counter::CallsConverted),
            calls(),
        ),
        Derived::CallConversionRate => percent(get(Counter::CallsConverted), calls()),
    }
}

/// `part` of `whole` in percent, two decimals; 0 of nothing.
pub fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    round2(part as f64 * 100.0 / whole as f64)
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests;
