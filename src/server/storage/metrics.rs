//! The metric rollups, conversations and campaigns the append writes (see
//! [`crate::server::metrics::rollup`]), and how they are read back.

use async_trait::async_trait;

use super::StoreError;
use crate::protocol::metrics::{Counter, Gauge};
use crate::protocol::{EventId, Scope, TenantId};

/// How long per-minute counters are kept: the 1h and 24h series read them.
pub const MINUTES_KEPT_SECS: i64 = 48 * 3600;
/// How long per-hour counters are kept: the 7d and 30d series, campaigns'
/// hourly analysis and 30-day daily performance.
pub const HOURS_KEPT_SECS: i64 = 400 * 86_400;
/// How long gauge samples are kept: the 30d series.
pub const GAUGES_KEPT_SECS: i64 = 31 * 86_400;
/// How long a conversation without activity is kept: far past any idle
/// window, so a late event still finds its conversation's start.
pub const CONVERSATIONS_KEPT_MS: i64 = 90 * 86_400 * 1000;

/// The tenant of a gauge sample that covers every tenant.
pub const ALL_TENANTS: &str = "*";

/// One counter row, summed as the query asked: `time` is the bucket's
/// start in Unix seconds (0 for totals), `tenant_id` is empty when
/// summed over tenants.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRow {
    pub tenant_id: String,
    pub counter: Counter,
    pub key: String,
    pub time: i64,
    pub count: i64,
    pub sum: f64,
}

/// One gauge sample: the value a node saw in a minute (or, from
/// [`MetricStore::gauge_series`], the mean of its samples in a bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct GaugeRow {
    /// A tenant, or [`ALL_TENANTS`].
    pub tenant_id: String,
    pub gauge: Gauge,
    /// The minute (or bucket) start, Unix seconds.
    pub time: i64,
    /// The node that sampled it; empty for a figure every node computes
    /// the same.
    pub node: String,
    pub value: f64,
}

/// A conversation as stored (times in Unix milliseconds): active while
/// started, not ended since (`ended_at < started_at`), and recent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub tenant_id: String,
    pub conversation_id: String,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub last_activity_at: i64,
}

impl ConversationRow {
    /// Started, and not ended since.
    pub fn open(&self) -> bool {
        self.started_at
            .is_some_and(|start| self.ended_at.is_none_or(|end| end < start))
    }
}

/// Where the aggregator starts: the figures of every event up to `head`,
/// read in one snapshot, so the events after `head` (from the bus) are
/// exactly the ones still to count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSnapshot {
    pub head: EventId,
    /// Per tenant, since the first event.
    pub totals: Vec<CounterRow>,
    /// Per tenant and minute, the minutes asked for.
    pub recent: Vec<CounterRow>,
    /// See [`MetricStore::metric_snapshot`].
    pub conversations: Vec<ConversationRow>,
}

/// A time series of counters, summed over the tenants in scope.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    pub tenant: Scope<TenantId>,
    pub counters: Vec<Counter>,
    /// Only this key (a campaign id); `None`: rows per key.
    pub key: Option<String>,
    /// Unix seconds, `from` included, `to` excluded; both multiples of
    /// `bucket`.
    pub from: i64,
    pub to: i64,
    /// Seconds; a multiple of 3600 reads the hourly rollups, anything
    /// else the per-minute ones (kept [`MINUTES_KEPT_SECS`]).
    pub bucket: i64,
}

/// A campaign as its events left it (all times Unix milliseconds).
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct CampaignRow {
    pub tenant_id: String,
    pub campaign_id: String,
    pub name: Option<String>,
    /// `created`, `running`, `paused`, `completed`, `failed`, or
    /// `unknown` while no lifecycle event has been seen.
    pub status: String,
    pub status_at: Option<i64>,
    pub total_contacts: Option<i64>,
    pub sent: i64,
    pub failed: i64,
    pub reported_sent: Option<i64>,
    pub reported_failed: Option<i64>,
    pub position: Option<i64>,
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub first_sent_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    pub interval_count: i64,
    pub interval_sum: i64,
    pub interval_min: Option<i64>,
    pub interval_max: Option<i64>,
    pub answered: i64,
    pub busy: i64,
    pub calls_failed: i64,
    pub converted: i64,
    pub opt_out: i64,
    pub first_event_at: i64,
    pub last_event_at: i64,
}

/// See [`MetricStore::campaign_counts`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignCounts {
    pub total: i64,
    pub completed: i64,
    pub running: i64,
    pub avg_success_rate: f64,
}

/// Metric rollups, conversations and campaigns.
///
/// # Contract (every backend; the conformance suite checks each point)
///
/// **Written with the events.** [`EventStore::append`](super::EventStore::append)
/// writes what its new events add (counters per minute, per hour and in
/// total, conversations, campaigns, campaign errors) in its own
/// transaction: a stored event is counted exactly once, whichever node
/// stored it, and an event repeated by idempotency key is not counted
/// again. Nothing counted is lost by a restart.
///
/// **Counters merge by addition**, conversations and campaigns by the
/// rules in [`crate::server::metrics::rollup`], so the figures do not
/// depend on how events were grouped into appends.
#[async_trait]
pub trait MetricStore: Send + Sync + 'static {
    /// The totals, the per-minute counters from `recent_from` (Unix
    /// seconds) on, and the conversations: the open ones active at or
    /// after `open_since` (Unix milliseconds), and any other active since
    /// `recent_from` (so that an event of the last minutes that arrives
    /// late, a start after its end, is judged as the store judges it);
    /// with the head they count up to, all from one snapshot.
    async fn metric_snapshot(
        &self,
        recent_from: i64,
        open_since: i64,
    ) -> Result<MetricSnapshot, StoreError>;

    /// Counter rows per bucket, metric and key (summed over tenants, so
    /// `tenant_id` is empty), in no particular order; buckets without
    /// events have no row.
    async fn counter_series(&self, query: &SeriesQuery) -> Result<Vec<CounterRow>, StoreError>;

    /// Stores samples; a sample for a (tenant, gauge, minute, node)
    /// already stored replaces it, so a node may sample a minute again.
    async fn record_gauges(&self, samples: &[GaugeRow]) -> Result<(), StoreError>;

    /// The mean of each node's samples per bucket of `bucket` seconds,
    /// for one tenant (or [`ALL_TENANTS`]).
    async fn gauge_series(
        &self,
        tenant: &str,
        gauges: &[Gauge],
        from: i64,
        to: i64,
        bucket: i64,
    ) -> Result<Vec<GaugeRow>, StoreError>;

    /// Campaigns of the scope, the most recently started (first event)
    /// first, `limit` at most.
    async fn campaigns(
        &self,
        tenant: &Scope<TenantId>,
        limit: u32,
    ) -> Result<Vec<CampaignRow>, StoreError>;

    /// How many campaigns the scope has, completed and running, and the
    /// mean success rate of those that sent or failed anything.
    async fn campaign_counts(&self, tenant: &Scope<TenantId>)
        -> Result<CampaignCounts, StoreError>;

    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<CampaignRow>, StoreError>;

    /// A campaign's errors with their counts, the most frequent first.
    async fn campaign_errors(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Every sample of minutes from `since` (Unix seconds) on, for every
    /// tenant and node: what the nodes see now.
    async fn latest_gauges(&self, since: i64) -> Result<Vec<GaugeRow>, StoreError>;

    /// Forgets rollups, samples and conversations past their keeping
    /// times at `now` (Unix seconds); returns how many rows.
    async fn expire_metrics(&self, now: i64) -> Result<u64, StoreError>;
}

/// How a stored conversation and campaign row take a group's change: the
/// `ON CONFLICT ... DO UPDATE SET` of both backends, so they cannot
/// disagree. `later(a, b)`/`earlier(a, b)` ignore NULLs (SQLite's
/// `max(a, NULL)` is NULL).
pub(super) fn conversation_merge() -> String {
    format!(
        "started_at = {}, ended_at = {}, last_activity_at = {}",
        later("conversations.started_at", "excluded.started_at"),
        later("conversations.ended_at", "excluded.ended_at"),
        later(
            "conversations.last_activity_at",
            "excluded.last_activity_at"
        ),
    )
}

pub(super) fn campaign_merge() -> String {
    // The gap from the stored last send to the group's first.
    let gap =
        "(CASE WHEN campaigns.last_sent_at IS NOT NULL AND excluded.first_sent_at IS NOT NULL \
               THEN (CASE WHEN excluded.first_sent_at > campaigns.last_sent_at \
                     THEN excluded.first_sent_at - campaigns.last_sent_at ELSE 0 END) END)";
    let keep = |col: &str| format!("{col} = COALESCE(excluded.{col}, campaigns.{col})");
    let add = |col: &str| format!("{col} = campaigns.{col} + excluded.{col}");
    [
        keep("name"),
        "status = CASE WHEN excluded.status = 'unknown' THEN campaigns.status ELSE excluded.status END"
            .to_string(),
        keep("status_at"),
        keep("total_contacts"),
        add("sent"),
        add("failed"),
        keep("reported_sent"),
        keep("reported_failed"),
        keep("position"),
        format!("created_at = {}", earlier("campaigns.created_at", "excluded.created_at")),
        format!("started_at = {}", earlier("campaigns.started_at", "excluded.started_at")),
        keep("completed_at"),
        format!(
            "first_sent_at = {}",
            earlier("campaigns.first_sent_at", "excluded.first_sent_at")
        ),
        format!(
            "last_sent_at = {}",
            later("campaigns.last_sent_at", "excluded.last_sent_at")
        ),
        format!(
            "interval_count = campaigns.interval_count + excluded.interval_count + (CASE WHEN {gap} IS NULL THEN 0 ELSE 1 END)"
        ),
        format!("interval_sum = campaigns.interval_sum + excluded.interval_sum + COALESCE({gap}, 0)"),
        format!(
            "interval_min = {}",
            earlier(
                &earlier("campaigns.interval_min", "excluded.interval_min"),
                gap
            )
        ),
        format!(
            "interval_max = {}",
            later(&later("campaigns.interval_max", "excluded.interval_max"), gap)
        ),
        add("answered"),
        add("busy"),
        add("calls_failed"),
        add("converted"),
        add("opt_out"),
        format!(
            "first_event_at = {}",
            earlier("campaigns.first_event_at", "excluded.first_event_at")
        ),
        format!(
            "last_event_at = {}",
            later("campaigns.last_event_at", "excluded.last_event_at")
        ),
    ]
    .join(", ")
}

/// The campaigns table's columns, in the order the upserts bind them.
pub(super) const CAMPAIGN_COLUMNS: &str = "tenant_id, campaign_id, name, status, status_at, \
    total_contacts, sent, failed, reported_sent, reported_failed, position, created_at, \
    started_at, completed_at, first_sent_at, last_sent_at, interval_count, interval_sum, \
    interval_min, interval_max, answered, busy, calls_failed, converted, opt_out, \
    first_event_at, last_event_at";

fn later(a: &str, b: &str) -> String {
    format!("(CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} >= {b} THEN {a} ELSE {b} END)")
}

fn earlier(a: &str, b: &str) -> String {
    format!("(CASE WHEN {a} IS NULL THEN {b} WHEN {b} IS NULL OR {a} <= {b} THEN {a} ELSE {b} END)")
}

/// The counter table a series reads, and its time column.
pub(super) fn series_table(query: &SeriesQuery) -> (&'static str, &'static str) {
    if query.bucket % 3600 == 0 {
        ("metric_hours", "hour")
    } else {
        ("metric_minutes", "minute")
    }
}

/// Counter names as stored, for `IN (...)` lists.
pub(super) fn counter_names(counters: &[Counter]) -> Vec<&'static str> {
    counters.iter().map(|c| c.name()).collect()
}

/// A counter row as read: (tenant, metric, key, time, count, sum).
pub(super) type CounterTuple = (String, String, String, i64, i64, f64);

/// Counter rows as read; a name this build does not know (a newer node
/// wrote it) is skipped.
pub(super) fn counter_rows(rows: Vec<CounterTuple>) -> Vec<CounterRow> {
    rows.into_iter()
        .filter_map(|(tenant_id, metric, key, time, count, sum)| {
            Some(CounterRow {
                tenant_id,
                counter: Counter::from_name(&metric)?,
                key,
                time,
                count,
                sum,
            })
        })
        .collect()
}

/// Gauge rows as read (tenant, metric, minute, node, value); a name this
/// build does not know (a newer node wrote it) is skipped.
pub(super) fn gauge_rows(rows: Vec<(String, String, i64, String, f64)>) -> Vec<GaugeRow> {
    rows.into_iter()
        .filter_map(|(tenant_id, metric, time, node, value)| {
            Some(GaugeRow {
                tenant_id,
                gauge: Gauge::from_name(&metric)?,
                time,
                node,
                value,
            })
        })
        .collect()
}

/// The query of [`MetricStore::campaign_counts`]; `tenant` is the
/// bind marker of the tenant (`?` or `$1`), or `None` for every tenant.
/// A campaign's sent and failed counts are the greater of what was
/// counted and what was reported, as `campaign::metrics` takes them.
pub(super) fn campaign_counts_sql(tenant: Option<&str>) -> String {
    let filter = tenant.map_or(String::new(), |p| format!(" WHERE tenant_id = {p}"));
    format!(
        "SELECT CAST(COUNT(*) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT), \
           CAST(COALESCE(AVG(CASE WHEN s + f > 0 THEN s * 100.0 / (s + f) END), 0) AS DOUBLE PRECISION) \
         FROM (SELECT status, \
                 CASE WHEN COALESCE(reported_sent, 0) > sent THEN reported_sent ELSE sent END AS s, \
                 CASE WHEN COALESCE(reported_failed, 0) > failed THEN reported_failed ELSE failed END AS f \
               FROM campaigns{filter}) c"
    )
}

/// The conversations of [`MetricStore::metric_snapshot`], with `first`
/// the bind marker of `open_since` and `second` of `recent_from` in ms.
pub(super) fn snapshot_conversations_sql(first: &str, second: &str) -> String {
    format!(
        "SELECT tenant_id, conversation_id, started_at, ended_at, last_activity_at \
         FROM conversations \
         WHERE (last_activity_at >= {first} AND started_at IS NOT NULL \
                AND (ended_at IS NULL OR ended_at < started_at)) \
            OR last_activity_at >= {second}"
    )
}

/// A conversation row as read: (tenant, id, started, ended, last activity).
pub(super) type ConversationTuple = (String, String, Option<i64>, Option<i64>, i64);

/// Conversation rows as read.
pub(super) fn conversation_rows(rows: Vec<ConversationTuple>) -> Vec<ConversationRow> {
    rows.into_iter()
        .map(
            |(tenant_id, conversation_id, started_at, ended_at, last_activity_at)| {
                ConversationRow {
                    tenant_id,
                    conversation_id,
                    started_at,
                    ended_at,
                    last_activity_at,
                }
            },
        )
        .collect()
}

/// What [`MetricStore::expire_metrics`] deletes at `now` (Unix seconds):
/// each table, its time column, and the first time it keeps.
pub(super) fn expiry(now: i64) -> [(&'static str, &'static str, i64); 4] {
    [
        ("metric_minutes", "minute", now - MINUTES_KEPT_SECS),
        ("metric_hours", "hour", now - HOURS_KEPT_SECS),
        ("metric_gauges", "minute", now - GAUGES_KEPT_SECS),
        (
            "conversations",
            "last_activity_at",
            now * 1000 - CONVERSATIONS_KEPT_MS,
        ),
    ]
}
