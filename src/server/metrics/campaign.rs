//! Campaign analytics from the store's campaign rows and hourly rollups:
//! what `/api/v1/campaigns/...` answers and the throttled pushes carry.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

use super::figures::{percent, round2};
use crate::protocol::campaigns::{
    health_label, health_score, CallOutcomes, CampaignDashboard, CampaignMetrics,
    CampaignPerformance, CampaignSummary, DailyPoint, HourlyPoint, TimingStats, TopError,
};
use crate::protocol::metrics::Counter;
use crate::protocol::{Scope, TenantId};
use crate::server::storage::metrics::{CampaignRow, MetricStore, SeriesQuery};
use crate::server::storage::StoreError;

/// Errors listed in a campaign's performance.
pub const TOP_ERRORS: u32 = 10;
/// Campaigns in the dashboard's "recent" list.
pub const RECENT: u32 = 10;
/// Days of the dashboard's daily performance (seed 003).
pub const DAYS: i64 = 30;

fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A campaign's figures at `now`.
pub fn metrics(row: &CampaignRow, now: DateTime<Utc>) -> CampaignMetrics {
    let sent = row.sent.max(row.reported_sent.unwrap_or(0));
    let errors = row.failed.max(row.reported_failed.unwrap_or(0));
    let processed = (sent + errors).max(row.position.unwrap_or(0));
    let done = sent + errors;
    let success_rate = percent(sent, done);
    let error_rate = percent(errors, done);
    let finished = matches!(row.status.as_str(), "completed" | "failed");
    let start = row
        .started_at
        .or(row.first_sent_at)
        .unwrap_or(row.first_event_at);
    // A running campaign's pace is measured up to now; a paused or
    // finished one's up to its last event, so a pause does not slow it.
    let end = match row.status.as_str() {
        "running" => now.timestamp_millis().max(row.last_event_at),
        _ => row.completed_at.unwrap_or(row.last_event_at),
    };
    let elapsed_ms = (end - start).max(1000);
    let messages_per_minute = round2(sent as f64 * 60_000.0 / elapsed_ms as f64);
    let progress = match row.total_contacts {
        Some(total) if total > 0 => round2((processed as f64 * 100.0 / total as f64).min(100.0)),
        _ if finished => 100.0,
        _ => 0.0,
    };
    let remaining = match (row.status.as_str(), row.total_contacts) {
        (_, _) if finished => Some(0),
        ("running", Some(total)) if messages_per_minute > 0.0 => {
            let left = (total - processed).max(0) as f64;
            Some((left / messages_per_minute * 60.0).round() as i64)
        }
        _ => None,
    };
    let score = health_score(
        error_rate,
        success_rate,
        messages_per_minute,
        row.status == "completed",
    );
    let calls = row.answered + row.busy + row.calls_failed + row.converted + row.opt_out;
    CampaignMetrics {
        campaign_id: row.campaign_id.clone(),
        tenant_id: row.tenant_id.clone(),
        name: row.name.clone(),
        status: row.status.clone(),
        total_contacts: row.total_contacts,
        sent_count: sent,
        error_count: errors,
        processed,
        success_rate,
        error_rate,
        progress_percentage: progress,
        messages_per_minute,
        estimated_seconds_remaining: remaining,
        health_score: score,
        health: health_label(score).to_string(),
        outcomes: CallOutcomes {
            answered: row.answered,
            busy: row.busy,
            failed: row.calls_failed,
            converted: row.converted,
            opt_outs: row.opt_out,
            total: calls,
        },
        answer_rate: percent(row.answered + row.converted, calls),
        conversion_rate: percent(row.converted, calls),
        created_at: row.created_at.map(rfc3339),
        started_at: row.started_at.map(rfc3339),
        completed_at: row.completed_at.map(rfc3339),
        duration_seconds: row
            .completed_at
            .zip(row.started_at)
            .map(|(end, start)| (end - start).max(0) / 1000),
        updated_at: rfc3339(row.last_event_at),
    }
}

/// Hourly analysis, top errors and send timing of one campaign.
pub async fn performance(
    store: &dyn MetricStore,
    row: &CampaignRow,
) -> Result<CampaignPerformance, StoreError> {
    let tenant = TenantId::checked(&row.tenant_id);
    let from = row.first_event_at.div_euclid(3_600_000) * 3600;
    let to = row.last_event_at.div_euclid(3_600_000) * 3600 + 3600;
    let rows = store
        .counter_series(&SeriesQuery {
            tenant: Scope::Only(tenant.clone()),
            counters: vec![
                Counter::CampaignMessagesSent,
                Counter::CampaignMessagesFailed,
            ],
            key: Some(row.campaign_id.clone()),
            from,
            to,
            bucket: 3600,
        })
        .await?;
    let mut hours: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for r in rows {
        let hour = hours.entry(r.time).or_default();
        match r.counter {
            Counter::CampaignMessagesSent => hour.0 += r.count,
            _ => hour.1 += r.count,
        }
    }
    let hourly_analysis = hours
        .into_iter()
        .map(|(start, (sent, failed))| HourlyPoint {
            hour: ((start / 3600) % 24) as u32,
            hour_start: rfc3339(start * 1000),
            total: sent + failed,
            sent,
            failed,
            success_rate: percent(sent, sent + failed),
        })
        .collect();
    let errors = store
        .campaign_errors(&tenant, &row.campaign_id, TOP_ERRORS)
        .await?;
    let all_errors = row.failed.max(1);
    let top_errors = errors
        .into_iter()
        .map(|(error_message, count)| TopError {
            error_message,
            count,
            percentage: percent(count, all_errors),
        })
        .collect();
    let secs = |ms: i64| round2(ms as f64 / 1000.0);
    let timing_stats = TimingStats {
        avg_send_time_seconds: (row.interval_count > 0)
            .then(|| round2(row.interval_sum as f64 / row.interval_count as f64 / 1000.0)),
        min_send_time_seconds: row.interval_min.map(secs),
        max_send_time_seconds: row.interval_max.map(secs),
        intervals: row.interval_count,
    };
    Ok(CampaignPerformance {
        campaign_id: row.campaign_id.clone(),
        hourly_analysis,
        top_errors,
        timing_stats,
    })
}

/// Seed 003's dashboard of a tenant's (or every tenant's) campaigns.
pub async fn dashboard(
    store: &dyn MetricStore,
    tenant: &Scope<TenantId>,
    now: DateTime<Utc>,
) -> Result<CampaignDashboard, StoreError> {
    let summary = store.campaign_counts(tenant).await?;
    let recent = store.campaigns(tenant, RECENT).await?;
    let today = now.timestamp().div_euclid(86_400) * 86_400;
    let from = today - (DAYS - 1) * 86_400;
    let rows = store
        .counter_series(&SeriesQuery {
            tenant: tenant.clone(),
            counters: vec![
                Counter::CampaignMessagesSent,
                Counter::CampaignMessagesFailed,
            ],
            key: None,
            from,
            to: today + 86_400,
            bucket: 86_400,
        })
        .await?;
    let mut days: Vec<(i64, i64, i64)> = (0..DAYS).map(|d| (from + d * 86_400, 0, 0)).collect();
    for r in rows {
        let index = ((r.time - from) / 86_400) as usize;
        if let Some(day) = days.get_mut(index) {
            match r.counter {
                Counter::CampaignMessagesSent => day.1 += r.count,
                _ => day.2 += r.count,
            }
        }
    }
    Ok(CampaignDashboard {
        tenant_id: tenant.only().map(|t| t.as_str().to_string()),
        summary: CampaignSummary {
            total_campaigns: summary.total,
            completed_campaigns: summary.completed,
            running_campaigns: summary.running,
            avg_success_rate: round2(summary.avg_success_rate),
        },
        recent_campaigns: recent.iter().map(|row| metrics(row, now)).collect(),
        daily_performance: days
            .into_iter()
            .map(|(start, sent, failed)| DailyPoint {
                date: Utc
                    .timestamp_opt(start, 0)
                    .single()
                    .unwrap_or_default()
                    .format("%Y-%m-%d")
                    .to_string(),
                sent,
                failed,
                success_rate: percent(sent, sent + failed),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests;
