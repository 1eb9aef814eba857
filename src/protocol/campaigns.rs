//! Campaign analytics as the API answers them (seeds 001, 003 and 004).

use serde::{Deserialize, Serialize};

/// Seed 003's `GET /api/campaigns/:id/metrics`, with seed 004's call
/// outcomes. Rates are percents with two decimals.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignMetrics {
    pub campaign_id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    /// `created`, `running`, `paused`, `completed`, `failed` or `unknown`.
    pub status: String,
    pub total_contacts: Option<i64>,
    pub sent_count: i64,
    pub error_count: i64,
    /// Contacts done: sent, failed, or passed (`currentPosition`).
    pub processed: i64,
    pub success_rate: f64,
    pub error_rate: f64,
    pub progress_percentage: f64,
    pub messages_per_minute: f64,
    /// `None` when it cannot be told (no total, no pace yet, or not
    /// running); 0 once completed.
    pub estimated_seconds_remaining: Option<i64>,
    /// Seed 003's formula, 0 to 100.
    pub health_score: i64,
    /// `excellent` (90-100), `good` (70-89), `moderate` (50-69), `poor`.
    pub health: String,
    pub outcomes: CallOutcomes,
    /// (answered + converted) / calls, percent.
    pub answer_rate: f64,
    /// converted / calls, percent.
    pub conversion_rate: f64,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration_seconds: Option<i64>,
    pub updated_at: String,
}

/// Seed 004's call outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallOutcomes {
    pub answered: i64,
    pub busy: i64,
    pub failed: i64,
    pub converted: i64,
    pub opt_outs: i64,
    pub total: i64,
}

/// Seed 003's `GET /api/campaigns/:id/performance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignPerformance {
    pub campaign_id: String,
    pub hourly_analysis: Vec<HourlyPoint>,
    pub top_errors: Vec<TopError>,
    pub timing_stats: TimingStats,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HourlyPoint {
    /// The hour of the day (UTC), as the seed shows it.
    pub hour: u32,
    /// The hour's start, RFC 3339.
    pub hour_start: String,
    pub total: i64,
    pub sent: i64,
    pub failed: i64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopError {
    pub error_message: String,
    pub count: i64,
    /// Of the campaign's errors.
    pub percentage: f64,
}

/// The time between one send and the next: the pace a campaign's delays
/// (seed 003's `delayMin`/`delayMax`) give it. `None` before two sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingStats {
    pub avg_send_time_seconds: Option<f64>,
    pub min_send_time_seconds: Option<f64>,
    pub max_send_time_seconds: Option<f64>,
    pub intervals: i64,
}

/// Seed 003's `GET /api/campaigns/dashboard`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignDashboard {
    pub tenant_id: Option<String>,
    pub summary: CampaignSummary,
    pub recent_campaigns: Vec<CampaignMetrics>,
    /// The last 30 days (UTC), oldest first, days without sends as zeros.
    pub daily_performance: Vec<DailyPoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignSummary {
    pub total_campaigns: i64,
    pub completed_campaigns: i64,
    pub running_campaigns: i64,
    /// The mean of the campaigns' success rates (those that sent anything).
    pub avg_success_rate: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyPoint {
    /// `YYYY-MM-DD`.
    pub date: String,
    pub sent: i64,
    pub failed: i64,
    pub success_rate: f64,
}

/// `GET /api/v1/campaigns`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignList {
    pub campaigns: Vec<CampaignMetrics>,
}

/// Seed 003's health score: 100, less 30/15/5 for an error rate over
/// 10/5/2 %, less 25/10 for a success rate under 70/85 %, less 15 for
/// under half a message a minute, plus 10 for a campaign completed with
/// over 95 % success; kept within 0 to 100.
pub fn health_score(
    error_rate: f64,
    success_rate: f64,
    messages_per_minute: f64,
    completed: bool,
) -> i64 {
    let mut score: i64 = 100;
    if error_rate > 10.0 {
        score -= 30;
    } else if error_rate > 5.0 {
        score -= 15;
    } else if error_rate > 2.0 {
        score -= 5;
    }
    if success_rate < 70.0 {
        score -= 25;
    } else if success_rate < 85.0 {
        score -= 10;
    }
    if messages_per_minute < 0.5 {
        score -= 15;
    }
    if completed && success_rate > 95.0 {
        score += 10;
    }
    score.clamp(0, 100)
}

/// Seed 003's reading of a score.
pub fn health_label(score: i64) -> &'static str {
    match score {
        90.. => "excellent",
        70..=89 => "good",
        50..=69 => "moderate",
        _ => "poor",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each branch of the formula, at and past its edges.
    #[test]
    fn health_score_follows_seed_003() {
        // Nothing wrong: 100; completed above 95 %: still 100 (capped).
        assert_eq!(health_score(0.0, 100.0, 2.0, false), 100);
        assert_eq!(health_score(0.0, 100.0, 2.0, true), 100);
        // Error rate bands: > 10, > 5, > 2 (the edges themselves do not count).
        assert_eq!(health_score(10.01, 90.0, 2.0, false), 70);
        assert_eq!(health_score(10.0, 90.0, 2.0, false), 85);
        assert_eq!(health_score(5.01, 90.0, 2.0, false), 85);
        assert_eq!(health_score(5.0, 90.0, 2.0, false), 95);
        assert_eq!(health_score(2.01, 90.0, 2.0, false), 95);
        assert_eq!(health_score(2.0, 90.0, 2.0, false), 100);
        // Success rate bands: < 70, < 85.
        assert_eq!(health_score(0.0, 69.99, 2.0, false), 75);
        assert_eq!(health_score(0.0, 70.0, 2.0, false), 90);
        assert_eq!(health_score(0.0, 84.99, 2.0, false), 90);
        assert_eq!(health_score(0.0, 85.0, 2.0, false), 100);
        // Pace under half a message a minute.
        assert_eq!(health_score(0.0, 90.0, 0.49, false), 85);
        assert_eq!(health_score(0.0, 90.0, 0.5, false), 100);
        // The bonus: completed and over 95 %, not at 95 %.
        assert_eq!(health_score(3.0, 96.0, 0.1, true), 90);
        assert_eq!(health_score(3.0, 96.0, 0.1, false), 80);
        assert_eq!(health_score(3.0, 95.0, 0.1, true), 80);
        // Everything wrong: 100 - 30 - 25 - 15 = 30; never below 0.
        assert_eq!(health_score(50.0, 10.0, 0.0, false), 30);
        assert_eq!(health_label(100), "excellent");
        assert_eq!(health_label(90), "excellent");
        assert_eq!(health_label(89), "good");
        assert_eq!(health_label(70), "good");
        assert_eq!(health_label(69), "moderate");
        assert_eq!(health_label(50), "moderate");
        assert_eq!(health_label(49), "poor");
    }
}
