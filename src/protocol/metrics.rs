//! The metrics contract: the names of the figures, the periods of the time
//! series and how they are bucketed. The server and `pytake metrics` and
//! `pytake export` share these, so a name valid in one is valid in all.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use super::latency::{
    latency_bucket, latency_key, latency_quantile, LATENCY_BOUNDS_MS, LATENCY_OVERFLOW_KEY,
};

/// A figure counted from events, one row per tenant, minute and key in the
/// store. Counted once per stored event, in the append's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    MessagesSent,
    MessagesReceived,
    MessagesFailed,
    ConversationsStarted,
    ConversationsEnded,
    TicketsCreated,
    CampaignsCreated,
    CampaignsStarted,
    CampaignsPaused,
    CampaignsCompleted,
    /// Keyed by campaign id.
    CampaignMessagesSent,
    /// Keyed by campaign id.
    CampaignMessagesFailed,
    CallsAnswered,
    CallsBusy,
    CallsFailed,
    CallsConverted,
    CallsOptOut,
    AiInteractions,
    /// The count is the tokens used, not the interactions.
    AiTokens,
    ErpCalls,
    ErpErrors,
    /// A latency histogram: keyed by the bucket's upper bound in
    /// milliseconds ([`LATENCY_BOUNDS_MS`]), the sum is milliseconds.
    ErpLatency,
    SystemAlerts,
    /// Every stored event, of any type.
    Events,
}

impl Counter {
    pub const ALL: [Counter; 24] = [
        Counter::MessagesSent,
        Counter::MessagesReceived,
        Counter::MessagesFailed,
        Counter::ConversationsStarted,
        Counter::ConversationsEnded,
        Counter::TicketsCreated,
        Counter::CampaignsCreated,
        Counter::CampaignsStarted,
        Counter::CampaignsPaused,
        Counter::CampaignsCompleted,
        Counter::CampaignMessagesSent,
        Counter::CampaignMessagesFailed,
        Counter::CallsAnswered,
        Counter::CallsBusy,
        Counter::CallsFailed,
        Counter::CallsConverted,
        Counter::CallsOptOut,
        Counter::AiInteractions,
        Counter::AiTokens,
        Counter::ErpCalls,
        Counter::ErpErrors,
        Counter::ErpLatency,
        Counter::SystemAlerts,
        Counter::Events,
    ];

    /// The name in the store, the API and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Counter::MessagesSent => "messages_sent",
            Counter::MessagesReceived => "messages_received",
            Counter::MessagesFailed => "messages_failed",
            Counter::ConversationsStarted => "conversations_started",
            Counter::ConversationsEnded => "conversations_ended",
            Counter::TicketsCreated => "tickets_created",
            Counter::CampaignsCreated => "campaigns_created",
            Counter::CampaignsStarted => "campaigns_started",
            Counter::CampaignsPaused => "campaigns_paused",
            Counter::CampaignsCompleted => "campaigns_completed",
            Counter::CampaignMessagesSent => "campaign_messages_sent",
            Counter::CampaignMessagesFailed => "campaign_messages_failed",
            Counter::CallsAnswered => "calls_answered",
            Counter::CallsBusy => "calls_busy",
            Counter::CallsFailed => "calls_failed",
            Counter::CallsConverted => "calls_converted",
            Counter::CallsOptOut => "calls_opt_out",
            Counter::AiInteractions => "ai_interactions",
            Counter::AiTokens => "ai_tokens",
            Counter::ErpCalls => "erp_calls",
            Counter::ErpErrors => "erp_errors",
            Counter::ErpLatency => "erp_latency",
            Counter::SystemAlerts => "system_alerts",
            Counter::Events => "events",
        }
    }

    pub fn from_name(name: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Its place in a dense array of counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A figure sampled rather than counted: the last value seen in a minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gauge {
    /// Conversations started, not ended and not idle past the window.
    ActiveConversations,
    /// Open WebSocket connections; with several nodes, the sum of theirs.
    WebsocketConnections,
    /// Percent of all cores; with several nodes, their mean.
    SystemCpuUsage,
    /// Percent of the machine's memory in use; with several nodes, their mean.
    SystemMemoryUsage,
}

impl Gauge {
    pub const ALL: [Gauge; 4] = [
        Gauge::ActiveConversations,
        Gauge::WebsocketConnections,
        Gauge::SystemCpuUsage,
        Gauge::SystemMemoryUsage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gauge::ActiveConversations => "active_conversations",
            Gauge::WebsocketConnections => "websocket_connections",
            Gauge::SystemCpuUsage => "system_cpu_usage",
            Gauge::SystemMemoryUsage => "system_memory_usage",
        }
    }

    pub fn from_name(name: &str) -> Option<Gauge> {
        Gauge::ALL.into_iter().find(|g| g.name() == name)
    }

    /// How the samples of several nodes make one figure: a node's share
    /// is summed, a node's own state is averaged, and a cluster-wide
    /// figure (the same on every node) is taken as it is.
    pub fn across_nodes(self) -> AcrossNodes {
        match self {
            Gauge::ActiveConversations => AcrossNodes::Same,
            Gauge::WebsocketConnections => AcrossNodes::Sum,
            Gauge::SystemCpuUsage | Gauge::SystemMemoryUsage => AcrossNodes::Mean,
        }
    }

    /// Whether the gauge has a value per tenant (the others are the
    /// machine's and exist only for all tenants).
    pub fn per_tenant(self) -> bool {
        matches!(
            self,
            Gauge::ActiveConversations | Gauge::WebsocketConnections
        )
    }
}

/// See [`Gauge::across_nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcrossNodes {
    Sum,
    Mean,
    Same,
}

/// A figure computed from counters in the same bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Derived {
    /// failed / (sent + failed), in percent.
    MessageFailureRate,
    /// ERP errors / ERP calls, in percent.
    ErpErrorRate,
    ErpLatencyAvg,
    ErpLatencyP50,
    ErpLatencyP95,
    EventsPerSecond,
    /// (answered + converted) / calls, in percent.
    CallAnswerRate,
    /// converted / calls, in percent.
    CallConversionRate,
}

impl Derived {
    pub const ALL: [Derived; 8] = [
        Derived::MessageFailureRate,
        Derived::ErpErrorRate,
        Derived::ErpLatencyAvg,
        Derived::ErpLatencyP50,
        Derived::ErpLatencyP95,
        Derived::EventsPerSecond,
        Derived::CallAnswerRate,
        Derived::CallConversionRate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Derived::MessageFailureRate => "message_failure_rate",
            Derived::ErpErrorRate => "erp_error_rate",
            Derived::ErpLatencyAvg => "erp_latency_avg_ms",
            Derived::ErpLatencyP50 => "erp_latency_p50_ms",
            Derived::ErpLatencyP95 => "erp_latency_p95_ms",
            Derived::EventsPerSecond => "events_per_second",
            Derived::CallAnswerRate => "call_answer_rate",
            Derived::CallConversionRate => "call_conversion_rate",
        }
    }
}

/// Any figure of a time series, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricName {
    Counter(Counter),
    Gauge(Gauge),
    Derived(Derived),
}

impl MetricName {
    /// Every name a series or an export may ask for, in a stable order.
    pub fn all() -> impl Iterator<Item = MetricName> {
        Counter::ALL
            .into_iter()
            .filter(|c| *c != Counter::ErpLatency)
            .map(MetricName::Counter)
            .chain(Gauge::ALL.into_iter().map(MetricName::Gauge))
            .chain(Derived::ALL.into_iter().map(MetricName::Derived))
    }

    pub fn name(self) -> &'static str {
        match self {
            MetricName::Counter(c) => c.name(),
            MetricName::Gauge(g) => g.name(),
            MetricName::Derived(d) => d.name(),
        }
    }

    /// The metrics a series shows when none are named: seed 000's
    /// dashboard figures.
    pub fn defaults() -> Vec<MetricName> {
        vec![
            MetricName::Counter(Counter::MessagesSent),
            MetricName::Counter(Counter::MessagesReceived),
            MetricName::Counter(Counter::MessagesFailed),
            MetricName::Derived(Derived::MessageFailureRate),
            MetricName::Gauge(Gauge::ActiveConversations),
            MetricName::Gauge(Gauge::WebsocketConnections),
            MetricName::Derived(Derived::EventsPerSecond),
        ]
    }

    /// Parses a comma-separated list (`messages_sent,active_conversations`);
    /// the error lists every valid name.
    pub fn parse_list(list: &str) -> Result<Vec<MetricName>, String> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let metric = name.parse::<MetricName>()?;
            if !out.contains(&metric) {
                out.push(metric);
            }
        }
        if out.is_empty() {
            return Err(format!("name at least one metric: {}", valid_names()));
        }
        Ok(out)
    }
}

impl FromStr for MetricName {
    type Err = String;
    fn from_str(s: &str) -> Result<MetricName, String> {
        MetricName::all()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown metric `{s}`; valid: {}", valid_names()))
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every valid metric name, comma-separated, for error messages.
pub fn valid_names() -> String {
    MetricName::all()
        .map(MetricName::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The periods of `GET /api/v1/dashboard/metrics` (seed 000) and how each
/// is bucketed: 60 one-minute points for an hour, 96 quarter-hours for a
/// day, 168 hours for a week, 120 six-hour points for 30 days. Each is
/// one screen of a chart, and each bucket is a whole number of the
/// store's rollups (minutes for 1h and 24h, hours for 7d and 30d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Period {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Hour, Period::Day, Period::Week, Period::Month];

    pub fn name(self) -> &'static str {
        match self {
            Period::Hour => "1h",
            Period::Day => "24h",
            Period::Week => "7d",
            Period::Month => "30d",
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Period::Hour => 3600,
            Period::Day => 86_400,
            Period::Week => 7 * 86_400,
            Period::Month => 30 * 86_400,
        }
    }

    pub fn bucket_seconds(self) -> i64 {
        match self {
            Period::Hour => 60,
            Period::Day => 15 * 60,
            Period::Week => 3600,
            Period::Month => 6 * 3600,
        }
    }

    pub fn points(self) -> i64 {
        self.seconds() / self.bucket_seconds()
    }

    /// The buckets' starts (Unix seconds, aligned to the bucket size in
    /// UTC), oldest first, the last one holding `now`.
    pub fn bucket_starts(self, now_secs: i64) -> Vec<i64> {
        let size = self.bucket_seconds();
        let last = now_secs.div_euclid(size) * size;
        (0..self.points())
            .rev()
            .map(|back| last - back * size)
            .collect()
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Period, String> {
        Period::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown period `{s}`; valid: 1h, 24h, 7d, 30d"))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The live figures of one tenant (or of all): the `Metrics` message the
/// `dashboard` room gets, `overview.kpis`, and `pytake metrics overview`.
/// Counts are since the first stored event; rates, percentiles and
/// per-second figures are over the last [`Kpis::window_seconds`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kpis {
    /// `None`: every tenant.
    pub tenant_id: Option<String>,
    pub messages_sent: i64,
    pub messages_received: i64,
    pub messages_failed: i64,
    /// Percent of the window's sent and failed messages that failed.
    pub message_failure_rate: f64,
    pub active_conversations: i64,
    pub conversations_started: i64,
    pub conversations_ended: i64,
    pub tickets_created: i64,
    pub campaigns_started: i64,
    pub campaigns_completed: i64,
    pub campaign_messages_sent: i64,
    pub campaign_messages_failed: i64,
    pub calls_answered: i64,
    pub calls_busy: i64,
    pub calls_failed: i64,
    pub calls_converted: i64,
    pub calls_opt_out: i64,
    pub ai_interactions: i64,
    pub ai_tokens: i64,
    pub erp_calls: i64,
    pub erp_errors: i64,
    /// Percent of the window's ERP calls that failed.
    pub erp_error_rate: f64,
    pub erp_latency_p50_ms: f64,
    pub erp_latency_p95_ms: f64,
    pub system_alerts: i64,
    pub events_total: i64,
    /// Over the last minute.
    pub events_per_second: f64,
    /// Open WebSocket connections of the scope, on every node.
    pub websocket_connections: i64,
    /// Percent, every core of the machine (the mean of the nodes').
    pub system_cpu_usage: f64,
    /// Percent of the machine's memory in use (the mean of the nodes').
    pub system_memory_usage: f64,
    pub window_seconds: i64,
    /// The newest event counted.
    pub last_event_id: i64,
    pub timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back() {
        for m in MetricName::all() {
            assert_eq!(m.name().parse::<MetricName>().unwrap(), m);
        }
        for (i, c) in Counter::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(Counter::from_name(c.name()), Some(c));
        }
    }

    #[test]
    fn an_unknown_metric_lists_the_valid_ones() {
        let err = MetricName::parse_list("messages_sent,bogus").unwrap_err();
        assert!(
            err.starts_with("unknown metric `bogus`; valid: messages_sent, "),
            "{err}"
        );
        assert!(err.contains("active_conversations"), "{err}");
        assert!(MetricName::parse_list(" , ").is_err());
    }

    #[test]
    fn buckets_are_aligned_and_end_with_the_current_one() {
        // 2026-12-03T10:37:12Z
        let now = 1_796_294_232;
        for period in Period::ALL {
            let starts = period.bucket_starts(now);
            assert_eq!(starts.len() as i64, period.points(), "{period}");
            let size = period.bucket_seconds();
            assert!(starts.iter().all(|s| s % size == 0), "{period}");
            let last = *starts.last().unwrap();
            assert!(last <= now && now < last + size, "{period}");
            assert!(starts.windows(2).all(|w| w[1] - w[0] == size), "{period}");
        }
        assert_eq!(Period::Hour.points(), 60);
        assert_eq!(Period::Day.points(), 96);
        assert_eq!(Period::Week.points(), 168);
        assert_eq!(Period::Month.points(), 120);
        assert_eq!("7d".parse::<Period>().unwrap(), Period::Week);
        assert_eq!(
            "2h".parse::<Period>().unwrap_err(),
            "unknown period `2h`; valid: 1h, 24h, 7d, 30d"
        );
    }
}
