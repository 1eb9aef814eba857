//! The aggregator's figures on `/metrics`: one family per counted figure
//! with a `tenant` label (`pytake_messages_sent_total{tenant="acme"}`),
//! the ERP latency histogram, active conversations, and how far the
//! aggregator has counted. Written at scrape time from the live figures,
//! so a tenant shows up with its first event and nothing is registered
//! per tenant.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::aggregator::Aggregator;
use crate::protocol::metrics::{Counter, LATENCY_BOUNDS_MS};

/// The help text of each counter family.
fn help(counter: Counter) -> &'static str {
    match counter {
        Counter::MessagesSent => "MessageSent events stored, by tenant.",
        Counter::MessagesReceived => "MessageReceived events stored, by tenant.",
        Counter::MessagesFailed => "MessageFailed events stored, by tenant.",
        Counter::ConversationsStarted => "ConversationStarted events stored, by tenant.",
        Counter::ConversationsEnded => "ConversationEnded events stored, by tenant.",
        Counter::TicketsCreated => "TicketCreated events stored, by tenant.",
        Counter::CampaignsCreated => {
            "Campaigns created (CampaignUpdate campaign_created), by tenant."
        }
        Counter::CampaignsStarted => {
            "Campaigns started (CampaignUpdate campaign_started), by tenant."
        }
        Counter::CampaignsPaused => "Campaigns paused (CampaignUpdate campaign_paused), by tenant.",
        Counter::CampaignsCompleted => {
            "Campaigns completed (CampaignUpdate campaign_complete), by tenant."
        }
        Counter::CampaignMessagesSent => {
            "Campaign messages sent (CampaignUpdate message_sent), by tenant."
        }
        Counter::CampaignMessagesFailed => {
            "Campaign messages failed (CampaignUpdate message_failed), by tenant."
        }
        Counter::CallsAnswered => "Calls answered (CallEvent), by tenant.",
        Counter::CallsBusy => "Calls busy (CallEvent), by tenant.",
        Counter::CallsFailed => "Calls failed (CallEvent), by tenant.",
        Counter::CallsConverted => "Calls converted (CallEvent), by tenant.",
        Counter::CallsOptOut => "Calls ending in an opt-out (CallEvent), by tenant.",
        Counter::AiInteractions => "AIInteraction events stored, by tenant.",
        Counter::AiTokens => "AI tokens used (AIInteraction tokens), by tenant.",
        Counter::ErpCalls => "ERPCall events stored, by tenant.",
        Counter::ErpErrors => "ERPCall events with success false, by tenant.",
        Counter::ErpLatency => "ERP call latency, by tenant.",
        Counter::SystemAlerts => "SystemAlert events stored, by tenant.",
        Counter::Events => "Events stored and counted by the metrics, of any type, by tenant.",
    }
}

/// Writes the aggregator's figures on every scrape.
pub struct AggregatorCollector(pub Arc<Aggregator>);

impl fmt::Debug for AggregatorCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AggregatorCollector")
    }
}

impl Collector for AggregatorCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let snapshot = self.0.prometheus_snapshot();
        for counter in Counter::ALL {
            if counter == Counter::ErpLatency {
                continue;
            }
            let name = format!("pytake_{}", counter.name());
            let mut family =
                e.encode_descriptor(&name, help(counter), None, MetricType::Counter)?;
            for (tenant, counts) in &snapshot.tenants {
                let value = counts.get(counter).max(0) as u64;
                family
                    .encode_family(&[("tenant", tenant.as_str())])?
                    .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
            }
        }
        let mut latency = e.encode_descriptor(
            "pytake_erp_latency",
            help(Counter::ErpLatency),
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (tenant, counts) in &snapshot.tenants {
            let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_MS
                .iter()
                .map(|ms| f64::from(*ms) / 1000.0)
                .chain([f64::MAX])
                .zip(counts.latency)
                .collect();
            let count: u64 = counts.latency.iter().sum();
            latency
                .encode_family(&[("tenant", tenant.as_str())])?
                .encode_histogram::<NoLabelSet>(
                    counts.latency_sum_ms / 1000.0,
                    count,
                    &buckets,
                    None,
                )?;
        }
        let mut active = e.encode_descriptor(
            "pytake_active_conversations",
            "Conversations started, not ended and active within the window ([metrics] active_window), by tenant.",
            None,
            MetricType::Gauge,
        )?;
        for (tenant, n) in &snapshot.active {
            active
                .encode_family(&[("tenant", tenant.as_str())])?
                .encode_gauge(n)?;
        }
        crate::server::telemetry::collector::gauge(
            &mut e,
            "pytake_metrics_counted_event_id",
            "The newest event id the metrics aggregator has counted.",
            None,
            snapshot.head,
        )?;
        crate::server::telemetry::collector::gauge(
            &mut e,
            "pytake_metrics_caught_up",
            "1 while the aggregator's figures are the store's plus the bus's, 0 while it reads them from the store.",
            None,
            i64::from(snapshot.caught_up),
        )
    }
}
