//! Conformance cases of `MetricStore`: the rollups, conversations and
//! campaigns the append writes, and their reads.

use chrono::{DateTime, Utc};
use pytake::protocol::metrics::{Counter, Gauge};
use pytake::protocol::{Scope, ValidEvent};
use pytake::server::storage::metrics::{CounterRow, GaugeRow, SeriesQuery};
use pytake::server::storage::MetricStore;
use serde_json::{json, Value};

use super::{append_one, keyed_request, request, t, tenant, Backend};

/// An event of a known type at `at`.
fn typed(tenant: &str, event_type: &str, at: &str, data: Value) -> ValidEvent {
    ValidEvent {
        event_type: event_type.into(),
        tenant_id: tenant.into(),
        rooms: vec!["dashboard".into()],
        data,
        timestamp: t(at),
        idempotency_key: None,
        fingerprint: None,
    }
}

fn secs(at: &str) -> i64 {
    t(at).timestamp()
}

/// The total of one counter in `rows` (any key, any tenant, any time).
fn total(rows: &[CounterRow], counter: Counter) -> i64 {
    rows.iter()
        .filter(|r| r.counter == counter)
        .map(|r| r.count)
        .sum()
}

fn tenant_total(rows: &[CounterRow], tenant: &str, counter: Counter) -> i64 {
    rows.iter()
        .filter(|r| r.counter == counter && r.tenant_id == tenant)
        .map(|r| r.count)
        .sum()
}

/// Per-minute series of `counters` for `scope` over the hour from `from`.
async fn minutes(
    store: &dyn MetricStore,
    scope: Scope<pytake::protocol::TenantId>,
    counters: &[Counter],
    from: &str,
    bucket: i64,
) -> Vec<CounterRow> {
    let from = secs(from);
    store
        .counter_series(&SeriesQuery {
            tenant: scope,
            counters: counters.to_vec(),
            key: None,
            from,
            to: from + 3600,
            bucket,
        })
        .await
        .expect("series")
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

pub async fn rollups_count_each_stored_event_once(backend: Backend) {
    let stores = backend.open_all().await;
    let first = vec![
        typed("acme", "MessageSent", "2026-03-01T12:00:01Z", json!({})),
        typed("acme", "MessageSent", "2026-03-01T12:00:59Z", json!({})),
        typed("acme", "MessageFailed", "2026-03-01T12:01:00Z", json!({})),
        typed("globex", "MessageSent", "2026-03-01T12:00:30Z", json!({})),
        typed(
            "acme",
            "ERPCall",
            "2026-03-01T12:00:02Z",
            json!({"success": false, "response_time": 80}),
        ),
    ];
    append_one(stores.events.as_ref(), request(first), now()).await;
    // A request key used twice: the repeat stores and counts nothing.
    let keyed = || {
        keyed_request(
            Some("acme"),
            "k1",
            "f1",
            vec![typed(
                "acme",
                "MessageSent",
                "2026-03-01T12:02:00Z",
                json!({}),
            )],
        )
    };
    // The append answers with what it counted (this node's aggregator
    // adds it as it is): the repeat, nothing.
    let sent = |rollup: &pytake::server::metrics::rollup::Rollup| {
        rollup
            .totals
            .get(&("acme".to_string(), Counter::MessagesSent, String::new()))
            .map(|add| add.count)
    };
    let counted = stores
        .events
        .append_counted(vec![keyed()], now())
        .await
        .expect("append");
    assert_eq!(sent(&counted.rollup), Some(1));
    let repeat = stores
        .events
        .append_counted(vec![keyed()], now())
        .await
        .expect("append");
    assert!(repeat.outcomes[0].as_ref().is_ok_and(|o| !o.events[0].new));
    assert!(repeat.rollup.is_empty(), "{:?}", repeat.rollup);

    let counters = [
        Counter::MessagesSent,
        Counter::MessagesFailed,
        Counter::ErpCalls,
        Counter::ErpErrors,
        Counter::ErpLatency,
        Counter::Events,
    ];
    let acme = minutes(
        stores.metrics.as_ref(),
        Scope::Only(tenant("acme")),
        &counters,
        "2026-03-01T12:00:00Z",
        60,
    )
    .await;
    let at = |minute: &str, counter: Counter| -> i64 {
        acme.iter()
            .filter(|r| r.counter == counter && r.time == secs(minute))
            .map(|r| r.count)
            .sum()
    };
    assert_eq!(at("2026-03-01T12:00:00Z", Counter::MessagesSent), 2);
    assert_eq!(at("2026-03-01T12:01:00Z", Counter::MessagesFailed), 1);
    assert_eq!(at("2026-03-01T12:02:00Z", Counter::MessagesSent), 1);
    assert_eq!(at("2026-03-01T12:00:00Z", Counter::Events), 3);
    assert_eq!(total(&acme, Counter::ErpErrors), 1);
    let latency: Vec<_> = acme
        .iter()
        .filter(|r| r.counter == Counter::ErpLatency)
        .collect();
    assert_eq!(latency.len(), 1);
    assert_eq!((latency[0].key.as_str(), latency[0].sum), ("100", 80.0));
    assert!(acme.iter().all(|r| r.tenant_id.is_empty()));

    // Every tenant, in quarter-hours and in hours: the same sums.
    for bucket in [900, 3600] {
        let all = minutes(
            stores.metrics.as_ref(),
            Scope::All,
            &counters,
            "2026-03-01T12:00:00Z",
            bucket,
        )
        .await;
        assert_eq!(total(&all, Counter::MessagesSent), 4, "bucket {bucket}");
        assert_eq!(total(&all, Counter::Events), 6, "bucket {bucket}");
        assert!(all.iter().all(|r| r.time == secs("2026-03-01T12:00:00Z")));
    }
    let snapshot = stores
        .metrics
        .metric_snapshot(0, 0)
        .await
        .expect("snapshot");
    assert_eq!(
        tenant_total(&snapshot.totals, "acme", Counter::MessagesSent),
        3
    );
    assert_eq!(
        tenant_total(&snapshot.totals, "globex", Counter::MessagesSent),
        1
    );
}

pub async fn nodes_appending_at_once_are_counted_exactly(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    const REQUESTS: usize = 40;
    let node = |stores: pytake::server::storage::Stores, tenant: &'static str| async move {
        for i in 0..REQUESTS {
            let events = (0..5)
                .map(|j| {
                    typed(
                        tenant,
                        "MessageSent",
                        "2026-03-01T12:00:00Z",
                        json!({"i": i, "j": j}),
                    )
                })
                .collect();
            append_one(stores.events.as_ref(), request(events), now()).await;
        }
    };
    tokio::join!(node(a.clone(), "acme"), node(b.clone(), "acme"));
    for stores in [&a, &b] {
        let snapshot = stores
            .metrics
            .metric_snapshot(0, 0)
            .await
            .expect("snapshot");
        assert_eq!(
            tenant_total(&snapshot.totals, "acme", Counter::MessagesSent),
            (2 * REQUESTS * 5) as i64
        );
        let series = minutes(
            stores.metrics.as_ref(),
            Scope::All,
            &[Counter::MessagesSent],
            "2026-03-01T12:00:00Z",
            60,
        )
        .await;
        assert_eq!(
            total(&series, Counter::MessagesSent),
            (2 * REQUESTS * 5) as i64
        );
    }
}

/// The campaign events of seed 003's flow, one tenant.
fn campaign_events(tenant: &str) -> Vec<ValidEvent> {
    let c = |at: &str, data: Value| typed(tenant, "CampaignUpdate", at, data);
    vec![
        c(
            "2026-03-01T12:00:00Z",
            json!({"campaign_id": "CAMP-1", "event": "campaign_created", "name": "Natal", "total_contacts": 10}),
        ),
        c(
            "2026-03-01T12:00:10Z",
            json!({"campaign_id": "CAMP-1", "event": "campaign_started"}),
        ),
        c(
            "2026-03-01T12:00:20Z",
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            "2026-03-01T12:00:25Z",
            json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Timeout"}),
        ),
        c(
            "2026-03-01T12:00:50Z",
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            "2026-03-01T12:00:52Z",
            json!({"campaign_id": "CAMP-1", "event": "message_sent"}),
        ),
        c(
            "2026-03-01T12:01:00Z",
            json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Timeout"}),
        ),
        c(
            "2026-03-01T12:01:02Z",
            json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Invalid number"}),
        ),
        c(
            "2026-03-01T12:02:00Z",
            json!({"campaign_id": "CAMP-1", "event": "progress", "currentPosition": 6}),
        ),
        c(
            "2026-03-01T12:03:00Z",
            json!({"campaign_id": "CAMP-1", "event": "campaign_paused"}),
        ),
        typed(
            tenant,
            "CallEvent",
            "2026-03-01T12:03:30Z",
            json!({"campaign_id": "CAMP-1", "outcome": "answered"}),
        ),
    ]
}

pub async fn campaigns_merge_the_same_however_events_are_grouped(backend: Backend) {
    let stores = backend.open_all().await;
    // `whole` in one append; `split` one event per append.
    append_one(
        stores.events.as_ref(),
        request(campaign_events("whole")),
        now(),
    )
    .await;
    for event in campaign_events("split") {
        append_one(stores.events.as_ref(), request(vec![event]), now()).await;
    }
    let whole = stores
        .metrics
        .campaign(&tenant("whole"), "CAMP-1")
        .await
        .expect("read")
        .expect("stored");
    let split = stores
        .metrics
        .campaign(&tenant("split"), "CAMP-1")
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(
        pytake::server::storage::metrics::CampaignRow {
            tenant_id: "whole".into(),
            ..split
        },
        whole
    );
    assert_eq!(whole.name.as_deref(), Some("Natal"));
    assert_eq!(whole.status, "paused");
    assert_eq!((whole.sent, whole.failed), (3, 3));
    assert_eq!(whole.total_contacts, Some(10));
    assert_eq!(whole.position, Some(6));
    assert_eq!(whole.answered, 1);
    // Sends at :20, :50, :52: gaps of 30 s and 2 s.
    assert_eq!((whole.interval_count, whole.interval_sum), (2, 32_000));
    assert_eq!(
        (whole.interval_min, whole.interval_max),
        (Some(2_000), Some(30_000))
    );
    assert_eq!(
        whole.started_at,
        Some(t("2026-03-01T12:00:10Z").timestamp_millis())
    );
    let errors = stores
        .metrics
        .campaign_errors(&tenant("split"), "CAMP-1", 10)
        .await
        .expect("errors");
    assert_eq!(
        errors,
        vec![
            ("Timeout".to_string(), 2),
            ("Invalid number".to_string(), 1)
        ]
    );
    let listed = stores
        .metrics
        .campaigns(&Scope::Only(tenant("whole")), 10)
        .await
        .expect("list");
    assert_eq!(listed, vec![whole]);
    assert_eq!(
        stores
            .metrics
            .campaigns(&Scope::All, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(stores
        .metrics
        .campaign(&tenant("whole"), "CAMP-2")
        .await
        .unwrap()
        .is_none());
}

pub async fn the_snapshot_counts_up_to_its_head(backend: Backend) {
    let stores = backend.open_all().await;
    let empty = stores
        .metrics
        .metric_snapshot(0, 0)
        .await
        .expect("snapshot");
    assert_eq!(empty.head, 0);
    assert!(empty.totals.is_empty());
    let mut last = 0;
    for i in 0..3 {
        let outcome = append_one(
            stores.events.as_ref(),
            request(vec![typed(
                "acme",
                "MessageReceived",
                "2026-03-01T12:00:00Z",
                json!({ "i": i }),
            )]),
            now(),
        )
        .await;
        last = outcome.events().last().unwrap().id;
    }
    let snapshot = stores
        .metrics
        .metric_snapshot(secs("2026-03-01T12:00:00Z"), 0)
        .await
        .expect("snapshot");
    assert_eq!(snapshot.head, last);
    assert_eq!(total(&snapshot.totals, Counter::MessagesReceived), 3);
    assert_eq!(total(&snapshot.recent, Counter::MessagesReceived), 3);
    assert!(snapshot
        .recent
        .iter()
        .all(|r| r.time == secs("2026-03-01T12:00:00Z") && r.tenant_id == "acme"));
    let later = stores
        .metrics
        .metric_snapshot(secs("2026-03-01T12:01:00Z"), 0)
        .await
        .expect("snapshot");
    assert!(later.recent.is_empty());
}

pub async fn active_conversations_are_started_not_ended_and_recent(backend: Backend) {
    let stores = backend.open_all().await;
    let started = |id: &str, at: &str| {
        typed(
            "acme",
            "ConversationStarted",
            at,
            json!({"conversation_id": id, "customer": "Ana"}),
        )
    };
    let message = |id: &str, at: &str| {
        typed(
            "acme",
            "MessageReceived",
            at,
            json!({"conversation_id": id, "from": "+55", "message": "oi"}),
        )
    };
    let ended = |id: &str, at: &str| {
        typed(
            "acme",
            "ConversationEnded",
            at,
            json!({"conversation_id": id}),
        )
    };
    let events = vec![
        started("open", "2026-03-01T10:00:00Z"),
        message("open", "2026-03-01T11:00:00Z"),
        started("closed", "2026-03-01T10:00:00Z"),
        ended("closed", "2026-03-01T10:30:00Z"),
        started("idle", "2026-03-01T08:00:00Z"),
        // Never started here: not counted.
        message("orphan", "2026-03-01T11:00:00Z"),
        // Ended, then started again.
        started("again", "2026-03-01T09:00:00Z"),
        ended("again", "2026-03-01T09:10:00Z"),
        started("again", "2026-03-01T10:45:00Z"),
    ];
    append_one(stores.events.as_ref(), request(events), now()).await;
    let since = t("2026-03-01T09:30:00Z").timestamp_millis();
    // Open ones since 09:30; no others (the recent minutes are later).
    let snapshot = stores
        .metrics
        .metric_snapshot(secs("2026-03-02T00:00:00Z"), since)
        .await
        .expect("snapshot");
    let mut ids: Vec<(&str, i64, bool)> = snapshot
        .conversations
        .iter()
        .map(|c| (c.conversation_id.as_str(), c.last_activity_at, c.open()))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![
            ("again", t("2026-03-01T10:45:00Z").timestamp_millis(), true),
            ("open", t("2026-03-01T11:00:00Z").timestamp_millis(), true),
        ]
    );
    // With the last hours as recent: the others too, as stored.
    let snapshot = stores
        .metrics
        .metric_snapshot(secs("2026-03-01T10:00:00Z"), since)
        .await
        .expect("snapshot");
    let mut rows: Vec<_> = snapshot.conversations.clone();
    rows.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
    let names: Vec<&str> = rows.iter().map(|c| c.conversation_id.as_str()).collect();
    assert_eq!(names, ["again", "closed", "open", "orphan"]);
    let closed = &rows[1];
    assert_eq!(
        (closed.started_at, closed.ended_at, closed.open()),
        (
            Some(t("2026-03-01T10:00:00Z").timestamp_millis()),
            Some(t("2026-03-01T10:30:00Z").timestamp_millis()),
            false
        )
    );
    assert_eq!(rows[3].started_at, None);
}

pub async fn gauges_replace_per_minute_and_average_per_bucket(backend: Backend) {
    let stores = backend.open_all().await;
    let minute = secs("2026-03-01T12:00:00Z");
    let sample = |node: &str, time: i64, value: f64| GaugeRow {
        tenant_id: "*".into(),
        gauge: Gauge::SystemCpuUsage,
        time,
        node: node.into(),
        value,
    };
    stores
        .metrics
        .record_gauges(&[sample("a", minute, 10.0), sample("b", minute, 50.0)])
        .await
        .expect("record");
    // Sampled again in the same minute: replaced, not added.
    stores
        .metrics
        .record_gauges(&[sample("a", minute, 20.0), sample("a", minute + 60, 40.0)])
        .await
        .expect("record");
    let mut rows = stores
        .metrics
        .gauge_series("*", &[Gauge::SystemCpuUsage], minute, minute + 900, 900)
        .await
        .expect("series");
    rows.sort_by(|x, y| x.node.cmp(&y.node));
    assert_eq!(
        rows,
        vec![sample("a", minute, 30.0), sample("b", minute, 50.0)]
    );
    let none = stores
        .metrics
        .gauge_series("acme", &[Gauge::SystemCpuUsage], minute, minute + 900, 900)
        .await
        .expect("series");
    assert!(none.is_empty());
}

pub async fn expiry_forgets_rollups_past_their_keeping_time(backend: Backend) {
    let stores = backend.open_all().await;
    append_one(
        stores.events.as_ref(),
        request(vec![typed(
            "acme",
            "MessageSent",
            "2026-03-01T12:00:00Z",
            json!({}),
        )]),
        now(),
    )
    .await;
    let series = |bucket| {
        let metrics = stores.metrics.clone();
        async move {
            minutes(
                metrics.as_ref(),
                Scope::All,
                &[Counter::MessagesSent],
                "2026-03-01T12:00:00Z",
                bucket,
            )
            .await
        }
    };
    // Two days on, the minutes go; the hours and totals stay.
    let removed = stores
        .metrics
        .expire_metrics(secs("2026-03-03T12:00:01Z"))
        .await
        .expect("expire");
    assert_eq!(removed, 2, "the minute row of each counter");
    assert!(series(60).await.is_empty());
    assert_eq!(total(&series(3600).await, Counter::MessagesSent), 1);
    let snapshot = stores
        .metrics
        .metric_snapshot(0, 0)
        .await
        .expect("snapshot");
    assert_eq!(total(&snapshot.totals, Counter::MessagesSent), 1);
    // Past the hours' keeping time, they go too.
    stores
        .metrics
        .expire_metrics(secs("2027-06-01T00:00:00Z"))
        .await
        .expect("expire");
    assert!(series(3600).await.is_empty());
}
