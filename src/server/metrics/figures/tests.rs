use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::protocol::Event;
use crate::server::storage::metrics::ConversationRow;

const T0: i64 = 1_796_294_400; // 2026-12-03T10:40:00Z, a whole minute

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

fn known_events() -> Vec<Event> {
    let mut events = Vec::new();
    let mut id = 0;
    let mut push = |tenant: &str, t: &str, secs: i64, data: Value| {
        id += 1;
        events.push(event(id, tenant, t, secs, data));
    };
    for i in 0..19 {
        push("acme", "MessageSent", T0 + i, json!({}));
    }
    push("acme", "MessageFailed", T0 + 30, json!({}));
    push("globex", "MessageFailed", T0 + 30, json!({}));
    for ms in [40, 60, 80, 2500] {
        push(
            "acme",
            "ERPCall",
            T0 + 40,
            json!({"response_time": ms, "success": ms < 1000}),
        );
    }
    push(
        "acme",
        "ConversationStarted",
        T0 + 50,
        json!({"conversation_id": "c1"}),
    );
    push(
        "acme",
        "ConversationStarted",
        T0 + 51,
        json!({"conversation_id": "c2"}),
    );
    push(
        "acme",
        "ConversationEnded",
        T0 + 52,
        json!({"conversation_id": "c2"}),
    );
    events
}

#[test]
fn kpis_of_a_known_set_of_events_are_exact() {
    let events = known_events();
    let mut live = Live::default();
    live.apply(&Rollup::of(&events), events.last().unwrap().id, T0 + 60);
    let now = T0 + 59;
    let acme = live.kpis(Some("acme"), now, 24 * 3600 * 1000);
    assert_eq!(acme.messages_sent, 19);
    assert_eq!(acme.messages_failed, 1);
    assert_eq!(acme.message_failure_rate, 5.0);
    assert_eq!(acme.erp_calls, 4);
    assert_eq!(acme.erp_errors, 1);
    assert_eq!(acme.erp_error_rate, 25.0);
    // Buckets (30,40], (50,75], (75,100], (2000,3000]: the median sits at
    // the top of the second.
    assert_eq!(acme.erp_latency_p50_ms, 75.0);
    assert_eq!(acme.erp_latency_p95_ms, 2800.0);
    assert_eq!(acme.active_conversations, 1);
    assert_eq!(acme.events_total, 27);
    assert_eq!(acme.last_event_id, 28);
    // 27 events in the minute under way, 59 s into it, plus the 60 s
    // before it.
    assert_eq!(acme.events_per_second, round2(27.0 / 119.0));
    let all = live.kpis(None, now, 24 * 3600 * 1000);
    assert_eq!(all.tenant_id, None);
    assert_eq!(all.messages_failed, 2);
    assert_eq!(all.message_failure_rate, 9.52);
    assert_eq!(all.active_conversations, 1);
    let none = live.kpis(Some("initech"), now, 1000);
    assert_eq!(none.messages_sent, 0);
    assert_eq!(none.message_failure_rate, 0.0);
}

#[test]
fn the_window_forgets_minutes_older_than_an_hour() {
    let events = known_events();
    let mut live = Live::default();
    live.apply(&Rollup::of(&events), 27, T0 + 60);
    let later = live.kpis(Some("acme"), T0 + WINDOW_SECS, 1000);
    // Totals stay; the window's rates are of nothing.
    assert_eq!(later.messages_sent, 19);
    assert_eq!(later.message_failure_rate, 0.0);
    assert_eq!(later.erp_latency_p95_ms, 0.0);
    let just_inside = live.kpis(Some("acme"), T0 + WINDOW_SECS - 1, 1000);
    assert_eq!(just_inside.message_failure_rate, 5.0);
    // Idle past the window: not active.
    assert_eq!(later.active_conversations, 0);
}

#[test]
fn a_snapshot_gives_the_same_figures_as_the_events() {
    let events = known_events();
    let rollup = Rollup::of(&events);
    let mut counted = Live::default();
    counted.apply(&rollup, 27, T0 + 60);
    let rows = |map: &std::collections::BTreeMap<_, _>| -> Vec<CounterRow> {
        map.iter()
            .map(
                |((tenant, time, counter, key), add): (
                    &(String, i64, Counter, String),
                    &crate::server::metrics::rollup::Add,
                )| CounterRow {
                    tenant_id: tenant.clone(),
                    counter: *counter,
                    key: key.clone(),
                    time: *time,
                    count: add.count,
                    sum: add.sum,
                },
            )
            .collect()
    };
    let snapshot = MetricSnapshot {
        head: 27,
        totals: rows(&rollup.counters),
        recent: rows(&rollup.counters),
        conversations: vec![
            ConversationRow {
                tenant_id: "acme".into(),
                conversation_id: "c1".into(),
                started_at: Some((T0 + 50) * 1000),
                ended_at: None,
                last_activity_at: (T0 + 50) * 1000,
            },
            ConversationRow {
                tenant_id: "acme".into(),
                conversation_id: "c2".into(),
                started_at: Some((T0 + 51) * 1000),
                ended_at: Some((T0 + 52) * 1000),
                last_activity_at: (T0 + 52) * 1000,
            },
        ],
    };
    let loaded = Live::from_snapshot(snapshot, T0 + 59);
    for tenant in [Some("acme"), Some("globex"), None] {
        assert_eq!(
            loaded.kpis(tenant, T0 + 59, 3_600_000),
            counted.kpis(tenant, T0 + 59, 3_600_000),
            "{tenant:?}"
        );
    }
}

#[test]
fn conversations_end_and_start_again() {
    let mut live = Live::default();
    let c = |id, t: &str, secs| event(id, "acme", t, secs, json!({"conversation_id": "c"}));
    live.apply(&Rollup::of(&[c(1, "ConversationStarted", T0)]), 1, T0 + 60);
    assert_eq!(live.kpis(Some("acme"), T0, 1000).active_conversations, 1);
    live.apply(
        &Rollup::of(&[c(2, "ConversationEnded", T0 + 1)]),
        2,
        T0 + 60,
    );
    assert_eq!(live.kpis(Some("acme"), T0, 1000).active_conversations, 0);
    // Activity on an ended conversation does not reopen it.
    live.apply(&Rollup::of(&[c(3, "MessageReceived", T0 + 2)]), 3, T0 + 60);
    assert_eq!(
        live.kpis(Some("acme"), T0 + 2, 1000).active_conversations,
        0
    );
    live.apply(
        &Rollup::of(&[c(4, "ConversationStarted", T0 + 3)]),
        4,
        T0 + 60,
    );
    assert_eq!(
        live.kpis(Some("acme"), T0 + 3, 1000).active_conversations,
        1
    );
    live.sweep((T0 + 4) * 1000, (T0 + 4) * 1000);
    assert_eq!(
        live.kpis(Some("acme"), T0 + 3, 10_000).active_conversations,
        0
    );
}

/// An end that arrives before its start (two producers, two nodes) is
/// judged by the times, as the store judges it.
#[test]
fn a_late_start_before_its_end_leaves_the_conversation_ended() {
    let mut live = Live::default();
    let c = |id, t: &str, secs| event(id, "acme", t, secs, json!({"conversation_id": "c"}));
    live.apply(
        &Rollup::of(&[c(1, "ConversationEnded", T0 + 10)]),
        1,
        T0 + 60,
    );
    live.apply(&Rollup::of(&[c(2, "ConversationStarted", T0)]), 2, T0 + 60);
    assert_eq!(
        live.kpis(Some("acme"), T0 + 10, 60_000)
            .active_conversations,
        0
    );
    live.apply(
        &Rollup::of(&[c(3, "ConversationStarted", T0 + 20)]),
        3,
        T0 + 60,
    );
    assert_eq!(
        live.kpis(Some("acme"), T0 + 20, 60_000)
            .active_conversations,
        1
    );
}

/// A producer an hour ahead: its events count in the totals, and the
/// window's minutes are not pushed out by them.
#[test]
fn events_from_the_future_do_not_push_the_window_out() {
    let mut live = Live::default();
    let now = T0 + 30;
    live.apply(
        &Rollup::of(&[event(1, "acme", "MessageSent", now, json!({}))]),
        1,
        now,
    );
    live.apply(
        &Rollup::of(&[event(2, "acme", "MessageFailed", now + 3600, json!({}))]),
        2,
        now,
    );
    let k = live.kpis(Some("acme"), now, 1000);
    assert_eq!((k.messages_sent, k.messages_failed), (1, 1));
    assert_eq!(
        k.message_failure_rate, 0.0,
        "the hour-ahead failure is not in the window"
    );
    assert!(k.events_per_second > 0.0);
}
