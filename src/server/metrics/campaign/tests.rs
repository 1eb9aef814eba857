use chrono::TimeZone;

use super::*;

const T0: i64 = 1_796_294_400_000; // 2026-12-03T10:40:00Z, in ms

fn row() -> CampaignRow {
    CampaignRow {
        tenant_id: "acme".into(),
        campaign_id: "CAMP-1".into(),
        name: Some("Natal".into()),
        status: "running".into(),
        total_contacts: Some(100),
        sent: 48,
        failed: 2,
        started_at: Some(T0),
        first_event_at: T0,
        last_event_at: T0 + 20 * 60_000,
        answered: 3,
        converted: 1,
        busy: 4,
        ..CampaignRow::default()
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

#[test]
fn a_running_campaign_is_measured_up_to_now() {
    // 48 sent in 20 minutes: 2.4 a minute; 50 contacts left take 1250 s.
    let m = metrics(&row(), at(T0 + 20 * 60_000));
    assert_eq!((m.sent_count, m.error_count, m.processed), (48, 2, 50));
    assert_eq!((m.success_rate, m.error_rate), (96.0, 4.0));
    assert_eq!(m.progress_percentage, 50.0);
    assert_eq!(m.messages_per_minute, 2.4);
    assert_eq!(m.estimated_seconds_remaining, Some(1250));
    // Error rate 4 % (> 2): 95.
    assert_eq!((m.health_score, m.health.as_str()), (95, "excellent"));
    assert_eq!(m.outcomes.total, 8);
    assert_eq!((m.answer_rate, m.conversion_rate), (50.0, 12.5));
    assert_eq!(m.duration_seconds, None);
}

#[test]
fn reported_totals_and_positions_count() {
    let mut r = row();
    r.sent = 0;
    r.failed = 0;
    r.reported_sent = Some(30);
    r.reported_failed = Some(10);
    r.position = Some(60);
    let m = metrics(&r, at(T0 + 20 * 60_000));
    assert_eq!((m.sent_count, m.error_count, m.processed), (30, 10, 60));
    assert_eq!(m.progress_percentage, 60.0);
    // 25 % errors, 75 % success: 100 - 30 - 10 = 60.
    assert_eq!((m.health_score, m.health.as_str()), (60, "moderate"));
}

#[test]
fn a_paused_or_finished_campaign_keeps_its_pace() {
    let mut r = row();
    r.status = "paused".into();
    let later = metrics(&r, at(T0 + 600 * 60_000));
    assert_eq!(later.messages_per_minute, 2.4);
    assert_eq!(later.estimated_seconds_remaining, None);
    r.status = "completed".into();
    r.completed_at = Some(T0 + 20 * 60_000);
    let done = metrics(&r, at(T0 + 600 * 60_000));
    assert_eq!(done.estimated_seconds_remaining, Some(0));
    assert_eq!(done.duration_seconds, Some(1200));
    // Completed above 95 %: 95 + 10, capped at 100.
    assert_eq!(done.health_score, 100);
    assert_eq!(
        done.completed_at.as_deref(),
        Some("2026-12-03T11:00:00.000Z")
    );
}

#[test]
fn a_campaign_that_sent_nothing_scores_by_the_formula() {
    let mut r = row();
    r.sent = 0;
    r.failed = 0;
    r.total_contacts = None;
    let m = metrics(&r, at(T0 + 60_000));
    assert_eq!(m.progress_percentage, 0.0);
    assert_eq!(m.estimated_seconds_remaining, None);
    // Success 0 % (< 70): -25; pace 0: -15.
    assert_eq!(m.health_score, 60);
}
