use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

fn event(id: i64, tenant: &str, event_type: &str, secs: i64, data: Value) -> Event {
    Event {
        id,
        event_type: event_type.into(),
        tenant_id: tenant.into(),
        room: "dashboard".into(),
        rooms: vec!["dashboard".into()],
        data,
        timestamp: Utc.timestamp_opt(secs, 0).unwrap(),
    }
}

fn counter(r: &Rollup, tenant: &str, minute: i64, c: Counter, key: &str) -> Add {
    r.counters
        .get(&(tenant.to_string(), minute, c, key.to_string()))
        .copied()
        .unwrap_or_default()
}

/// Receipts of a sent message (delivered, read) are not sends.
#[test]
fn receipts_are_not_counted_as_sends() {
    let t0 = 1_764_000_000;
    let sent = |n: i64, status: &str| {
        event(
            n,
            "acme",
            "MessageSent",
            t0,
            json!({"message_id": "m1", "to": "+55", "status": status}),
        )
    };
    let r = Rollup::of(&[
        sent(1, "sent"),
        sent(2, "delivered"),
        sent(3, "read"),
        sent(4, "played"),
    ]);
    assert_eq!(counter(&r, "acme", t0, Counter::MessagesSent, "").count, 1);
    assert_eq!(counter(&r, "acme", t0, Counter::Events, "").count, 4);
}

#[test]
fn counts_each_event_type_in_its_minute() {
    let t0 = 1_796_294_400; // a whole minute
    let events = vec![
        event(
            1,
            "acme",
            "MessageSent",
            t0 + 1,
            json!({"conversation_id": "c1"}),
        ),
        event(2, "acme", "MessageSent", t0 + 59, json!({})),
        event(3, "acme", "MessageSent", t0 + 60, json!({})),
        event(4, "acme", "MessageFailed", t0 + 2, json!({})),
        event(5, "globex", "MessageReceived", t0 + 3, json!({})),
        event(6, "acme", "AIInteraction", t0 + 4, json!({"tokens": 120})),
        event(
            7,
            "acme",
            "ERPCall",
            t0 + 5,
            json!({"success": false, "response_time": 80}),
        ),
        event(
            8,
            "acme",
            "ERPCall",
            t0 + 6,
            json!({"success": true, "response_time": "12"}),
        ),
        event(9, "acme", "CallEvent", t0 + 7, json!({"outcome": "busy"})),
        event(10, "acme", "Custom", t0 + 8, json!({})),
    ];
    let r = Rollup::of(&events);
    let sent = |m| counter(&r, "acme", m, Counter::MessagesSent, "").count;
    assert_eq!((sent(t0), sent(t0 + 60)), (2, 1));
    assert_eq!(
        counter(&r, "acme", t0, Counter::MessagesFailed, "").count,
        1
    );
    assert_eq!(
        counter(&r, "globex", t0, Counter::MessagesReceived, "").count,
        1
    );
    assert_eq!(counter(&r, "acme", t0, Counter::AiTokens, "").count, 120);
    assert_eq!(counter(&r, "acme", t0, Counter::ErpErrors, "").count, 1);
    assert_eq!(counter(&r, "acme", t0, Counter::ErpCalls, "").count, 2);
    assert_eq!(
        counter(&r, "acme", t0, Counter::ErpLatency, "100"),
        Add {
            count: 1,
            sum: 80.0
        }
    );
    assert_eq!(counter(&r, "acme", t0, Counter::ErpLatency, "15").count, 1);
    assert_eq!(counter(&r, "acme", t0, Counter::CallsBusy, "").count, 1);
    assert_eq!(counter(&r, "acme", t0, Counter::Events, "").count, 8);
    assert_eq!(counter(&r, "acme", t0 + 60, Counter::Events, "").count, 1);
    let hours = &r.hours;
    let hour = t0.div_euclid(3600) * 3600;
    assert_eq!(
        hours[&(
            "acme".to_string(),
            hour,
            Counter::MessagesSent,
            String::new()
        )]
            .count,
        3
    );
    let totals = &r.totals;
    assert_eq!(
        totals[&("acme".to_string(), Counter::Events, String::new())].count,
        9
    );
    assert_eq!(r.conversations.len(), 1);
}

#[test]
fn conversations_keep_start_end_and_last_activity() {
    let events = vec![
        event(
            1,
            "acme",
            "ConversationStarted",
            100,
            json!({"conversation_id": 7}),
        ),
        event(
            2,
            "acme",
            "MessageReceived",
            160,
            json!({"conversation_id": 7}),
        ),
        event(
            3,
            "acme",
            "ConversationEnded",
            130,
            json!({"conversation_id": "7"}),
        ),
    ];
    let r = Rollup::of(&events);
    let c = &r.conversations[&("acme".to_string(), "7".to_string())];
    assert_eq!(
        c,
        &ConversationChange {
            started_at: Some(100_000),
            ended_at: Some(130_000),
            last_activity_at: 160_000,
        }
    );
}

#[test]
fn a_campaign_is_folded_from_its_lifecycle_and_messages() {
    let c = |id, secs, data: Value| event(id, "acme", "CampaignUpdate", secs, data);
    let events = vec![
        c(
            1,
            10,
            json!({"campaign_id": "CAMP-1", "event": "campaign_created", "name": "Natal", "total_contacts": 4}),
        ),
        c(
            2,
            20,
            json!({"campaign_id": "CAMP-1", "event": "campaign_started"}),
        ),
        c(
            3,
            30,
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            4,
            32,
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            5,
            40,
            json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Timeout"}),
        ),
        c(
            6,
            41,
            json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": {"message": "Timeout"}}),
        ),
        c(
            7,
            50,
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            8,
            55,
            json!({"campaign_id": "CAMP-1", "event": "progress", "currentPosition": 5, "sent": 3, "errors": 2}),
        ),
        c(
            9,
            60,
            json!({"campaign_id": "CAMP-1", "event": "campaign_paused"}),
        ),
        event(
            10,
            "acme",
            "CallEvent",
            61,
            json!({"campaign_id": "CAMP-1", "outcome": "converted"}),
        ),
    ];
    let r = Rollup::of(&events);
    let got = &r.campaigns[&("acme".to_string(), "CAMP-1".to_string())];
    assert_eq!(got.name.as_deref(), Some("Natal"));
    assert_eq!(got.status.as_deref(), Some("paused"));
    assert_eq!(got.status_at, Some(60_000));
    assert_eq!(got.total_contacts, Some(4));
    assert_eq!((got.sent, got.failed), (3, 2));
    assert_eq!((got.reported_sent, got.reported_failed), (Some(3), Some(2)));
    assert_eq!(got.position, Some(5));
    assert_eq!(
        (got.created_at, got.started_at),
        (Some(10_000), Some(20_000))
    );
    assert_eq!(
        (got.first_sent_at, got.last_sent_at),
        (Some(30_000), Some(50_000))
    );
    // Gaps 2 s and 18 s.
    assert_eq!((got.interval_count, got.interval_sum), (2, 20_000));
    assert_eq!(
        (got.interval_min, got.interval_max),
        (Some(2_000), Some(18_000))
    );
    assert_eq!(got.converted, 1);
    assert_eq!((got.first_event_at, got.last_event_at), (10_000, 61_000));
    assert_eq!(
        r.campaign_errors[&(
            "acme".to_string(),
            "CAMP-1".to_string(),
            "Timeout".to_string()
        )],
        2
    );
    assert_eq!(
        counter(&r, "acme", 0, Counter::CampaignMessagesSent, "CAMP-1").count,
        3
    );
}

#[test]
fn error_texts_are_cut_and_defaulted() {
    assert_eq!(error_text(&json!({})), "unknown error");
    assert_eq!(error_text(&json!({"reason": 131026})), "131026");
    let long = "x".repeat(500);
    assert_eq!(error_text(&json!({"error": long})).len(), MAX_ERROR_TEXT);
}
