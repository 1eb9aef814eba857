//! The store conformance suite: the same cases, each a function of a
//! [`Backend`], against every store backend (SQLite in a temp file, and
//! PostgreSQL on a fresh database of a throwaway server). Each point of
//! the contract on `EventStore` has a case here, and each of the other
//! capabilities' contracts one in the module named after it.
//!
//! To add a case: write `async fn my_case(backend: Backend)` and add its
//! name to the `conformance!` list at the bottom; it then runs once per
//! backend, as `store_conformance::sqlite::my_case` and
//! `store_conformance::postgres::my_case`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pytake::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use pytake::protocol::{Event, EventId, Room, Scope, TenantId, ValidEvent};
use pytake::server::storage::{
    self, AppendOutcome, AppendRequest, EventQuery, EventStore, KeyReused, StoreOptions, Stores,
};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::services::Postgres;

mod alerts;
mod alerts_history;
mod alerts_postgres;
mod alerts_rules;
mod conversations;
mod jobs;
mod jobs_postgres;
mod metrics;
use alerts::{
    a_commit_that_fails_leaves_nothing_behind, a_commit_without_the_current_lease_writes_nothing,
    a_commit_writes_everything_and_enqueues_its_jobs,
    the_lease_is_renewed_refused_and_taken_over_after_expiry,
};
use alerts_history::{
    acknowledging_by_alert_or_incident_id_once, alert_listings_filter_by_time_state_and_tenant,
    an_acknowledgement_survives_later_commits, incidents_list_open_and_recently_resolved,
    other_tenants_ids_reveal_nothing, silences_are_scoped_and_filtered_by_time,
};
use alerts_rules::{
    alert_rules_are_scoped_and_replaced, deleting_a_rule_keeps_its_fired_alerts_only,
    seeding_keeps_a_rule_changed_over_the_api,
};
use conversations::*;
use jobs::*;
use metrics::*;

/// One backend's database: every [`Backend::open`] is a store on it, as
/// another node would open it.
pub struct Backend {
    url: String,
    /// Whether several processes may append to the database at once.
    /// SQLite is the one-node store: two `SqliteStore`s appending to one
    /// file at once fail (its id cache retries a taken id once, and a
    /// keyed append's deferred transaction meets SQLITE_BUSY_SNAPSHOT), so
    /// its "nodes" in [`Backend::nodes`] are one store.
    several_nodes: bool,
    /// The SQLite file's dir, removed with the backend.
    _dir: Option<TempDir>,
}

impl Backend {
    async fn sqlite() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("pytake.db").display());
        Backend {
            url,
            several_nodes: false,
            _dir: Some(dir),
        }
    }

    /// A fresh database on the shared throwaway server; `None` (after
    /// saying the test is skipped) where PostgreSQL is not installed, a
    /// failure instead under `CI=true`.
    async fn postgres(test: &str) -> Option<Backend> {
        let url = Postgres::database_or_skip(test).await?;
        Some(Backend {
            url,
            several_nodes: true,
            _dir: None,
        })
    }

    /// Opens a store on this backend's database.
    async fn open(&self) -> Arc<dyn EventStore> {
        self.open_all().await.events
    }

    /// Opens every capability of a store on this backend's database.
    async fn open_all(&self) -> Stores {
        storage::open(&self.url, &StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("open {}: {e:#}", self.url))
    }

    /// Two stores on the database, as two nodes open them (one store
    /// twice where the backend is for one node).
    async fn two_nodes_all(&self) -> [Stores; 2] {
        let first = self.open_all().await;
        let second = if self.several_nodes {
            self.open_all().await
        } else {
            first.clone()
        };
        [first, second]
    }

    /// Two stores on the database, as two nodes append to it (one store
    /// twice where the backend is for one node).
    async fn two_nodes(&self) -> [Arc<dyn EventStore>; 2] {
        let first = self.open().await;
        let second = if self.several_nodes {
            self.open().await
        } else {
            first.clone()
        };
        [first, second]
    }
}

// ------------------------------------------------------------------ helpers

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

/// A moment all times of a case are measured from.
fn t0() -> DateTime<Utc> {
    t("2026-03-01T12:00:00.000Z")
}

fn after(start: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    start + chrono::Duration::from_std(d).expect("duration")
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(n as u64)
}

fn tenant(id: &str) -> TenantId {
    TenantId::parse(id).expect("tenant")
}

/// An event of `tenant` in `rooms` with `data`.
fn event(tenant: &str, rooms: &[&str], data: Value) -> ValidEvent {
    ValidEvent {
        event_type: "Custom".into(),
        tenant_id: tenant.into(),
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        data,
        timestamp: t("2026-01-02T03:04:05.678Z"),
        idempotency_key: None,
        fingerprint: None,
    }
}

/// A plain event: tenant, room `erp`, `{"n": n}`.
fn plain(tenant: &str, n: i64) -> ValidEvent {
    event(tenant, &["erp"], serde_json::json!({ "n": n }))
}

/// An event under event key `key`; its fingerprint is `fingerprint`.
fn keyed(tenant: &str, key: &str, fingerprint: &str) -> ValidEvent {
    ValidEvent {
        idempotency_key: Some(key.into()),
        fingerprint: Some(fingerprint.into()),
        ..plain(tenant, 0)
    }
}

/// A request of `events` without a request key, scoped to all tenants.
fn request(events: Vec<ValidEvent>) -> AppendRequest {
    AppendRequest {
        idempotency_key: None,
        key_scope: Scope::All,
        fingerprint: None,
        events,
    }
}

/// A request under request key `key` of `scope`'s.
fn keyed_request(
    scope: Option<&str>,
    key: &str,
    fingerprint: &str,
    events: Vec<ValidEvent>,
) -> AppendRequest {
    AppendRequest {
        idempotency_key: Some(key.into()),
        key_scope: scope.map_or(Scope::All, |s| Scope::Only(tenant(s))),
        fingerprint: Some(fingerprint.into()),
        events,
    }
}

/// Appends one group at `now`; panics on a store error.
async fn append(
    store: &dyn EventStore,
    batch: Vec<AppendRequest>,
    now: DateTime<Utc>,
) -> Vec<Result<AppendOutcome, KeyReused>> {
    let n = batch.len();
    let outcomes = store.append(batch, now).await.expect("append");
    assert_eq!(outcomes.len(), n, "one outcome per request");
    outcomes
}

/// Appends one request at `now` that must be accepted.
async fn append_one(
    store: &dyn EventStore,
    req: AppendRequest,
    now: DateTime<Utc>,
) -> AppendOutcome {
    append(store, vec![req], now)
        .await
        .pop()
        .unwrap()
        .expect("accepted")
}

fn ids(outcome: &AppendOutcome) -> Vec<EventId> {
    outcome.events().map(|e| e.id).collect()
}

fn fresh(outcome: &AppendOutcome) -> Vec<bool> {
    outcome.events.iter().map(|a| a.new).collect()
}

/// Every stored event, read in pages of `page`.
async fn history(store: &dyn EventStore, page: u32) -> Vec<Event> {
    read_all(store, EventQuery::after(Scope::All, 0, page)).await
}

/// Every event `query` matches, paging from its `since` by `limit`.
async fn read_all(store: &dyn EventStore, mut query: EventQuery) -> Vec<Event> {
    let mut all: Vec<Event> = Vec::new();
    loop {
        let page = store.events(&query).await.expect("events");
        assert!(
            page.len() <= query.limit as usize,
            "a page is at most limit"
        );
        let Some(last) = page.last() else { break };
        query.since = last.id;
        all.extend(page);
    }
    all
}

fn id_list(events: &[Event]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

// -------------------------------------------------------------------- cases

/// What was appended reads back as given: data (numbers as written, key
/// order and nesting), rooms, tenant, type and the timestamp.
async fn appends_read_back_exactly(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.last_event_id().await.unwrap(), 0, "empty store");
    assert!(history(&*store, 10).await.is_empty());
    let texts = [
        r#"{"amount":1.50,"big":12345678901234567890,"e":1e2,"neg":-0,"small":1.0E-3}"#,
        r#"{"nested":{"z":[1,2.0,{"y":null}],"a":"\u0000 é ✓ \"q\""},"t":true}"#,
        r#"{}"#,
    ];
    let mut events: Vec<ValidEvent> = texts
        .iter()
        .map(|text| event("acme", &["erp"], serde_json::from_str(text).unwrap()))
        .collect();
    events[0].rooms = vec!["campaigns".into(), "alerts".into(), "erp".into()];
    events[1].event_type = "MessageReceived".into();
    events[1].timestamp = t("1969-12-31T23:59:59.999Z");
    events[2].timestamp = t("2099-12-31T23:59:59.001Z");
    let outcome = append_one(&*store, request(events.clone()), t0()).await;
    assert_eq!(ids(&outcome), vec![1, 2, 3]);
    let stored = history(&*store, 100).await;
    assert_eq!(stored.len(), 3);
    for ((got, want), text) in stored.iter().zip(&events).zip(texts) {
        assert_eq!(got.data, want.data);
        // Compared as text too: a number rewritten (1e2 as 100) is equal
        // to nothing else, but say so plainly.
        let want_text = serde_json::to_string(&serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(
            serde_json::to_string(&got.data).unwrap(),
            want_text.unwrap()
        );
        assert_eq!(got.tenant_id, want.tenant_id);
        assert_eq!(got.event_type, want.event_type);
        assert_eq!(got.rooms, want.rooms);
        assert_eq!(got.room, want.rooms[0]);
        assert_eq!(got.timestamp, want.timestamp);
    }
    // The append's answer is the stored event.
    for (appended, got) in outcome.events().zip(&stored) {
        assert_eq!(**appended, *got);
    }
    assert_eq!(store.last_event_id().await.unwrap(), 3);
}

/// Ids are 1, 2, 3... in request order across a group and across groups;
/// `prev` is the tenant's previous id (0 for its first).
async fn ids_are_dense_and_prev_chains_each_tenant(backend: Backend) {
    let store = backend.open().await;
    let outcomes = append(
        &*store,
        vec![
            request(vec![plain("acme", 1), plain("globex", 2)]),
            request(vec![plain("acme", 3)]),
        ],
        t0(),
    )
    .await;
    let first: Vec<AppendOutcome> = outcomes.into_iter().map(Result::unwrap).collect();
    assert_eq!(ids(&first[0]), vec![1, 2]);
    assert_eq!(ids(&first[1]), vec![3]);
    let prevs: Vec<EventId> = first
        .iter()
        .flat_map(|o| o.events.iter().map(|a| a.prev))
        .collect();
    assert_eq!(prevs, vec![0, 0, 1]);
    assert!(first.iter().all(|o| !o.duplicate()));
    let next = append_one(
        &*store,
        request(vec![
            plain("globex", 4),
            plain("acme", 5),
            plain("initech", 6),
        ]),
        t0(),
    )
    .await;
    assert_eq!(ids(&next), vec![4, 5, 6]);
    let prevs: Vec<EventId> = next.events.iter().map(|a| a.prev).collect();
    assert_eq!(prevs, vec![2, 3, 0]);
    assert_eq!(id_list(&history(&*store, 2).await), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(store.last_event_id().await.unwrap(), 6);
    // Another store on the same database goes on from there.
    let other = backend.open().await;
    let more = append_one(&*other, request(vec![plain("acme", 7)]), t0()).await;
    assert_eq!(ids(&more), vec![7]);
    assert_eq!(more.events[0].prev, 5);
}

/// A request key: the same request again gets the same events (nothing
/// new); another request under it is refused whole; keys are per scope.
async fn request_keys_return_the_first_events_or_refuse(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k-1",
            "f-1",
            vec![plain("acme", 1), plain("acme", 2)],
        ),
        t0(),
    )
    .await;
    assert_eq!(ids(&first), vec![1, 2]);
    assert_eq!(fresh(&first), vec![true, true]);

    let again = append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k-1",
            "f-1",
            vec![plain("acme", 1), plain("acme", 2)],
        ),
        after(t0(), ms(1000)),
    )
    .await;
    assert_eq!(ids(&again), vec![1, 2]);
    assert_eq!(fresh(&again), vec![false, false]);
    assert!(again.duplicate());
    assert!(again.events.iter().all(|a| a.prev == 0));
    assert_eq!(again.events[0].event, first.events[0].event);

    let other = append(
        &*store,
        vec![keyed_request(
            Some("acme"),
            "k-1",
            "f-2",
            vec![plain("acme", 9)],
        )],
        t0(),
    )
    .await;
    let reused = other[0].clone().expect_err("another request under k-1");
    assert_eq!(reused.field, "Idempotency-Key");
    assert_eq!(reused.key, "k-1");
    assert_eq!(reused.what, "request");
    assert_eq!(reused.hours, IDEMPOTENCY_TTL.as_secs() / 3600);
    assert_eq!(store.last_event_id().await.unwrap(), 2, "nothing stored");

    // The same key in another scope is another key.
    let elsewhere = append_one(
        &*store,
        keyed_request(Some("globex"), "k-1", "f-2", vec![plain("globex", 3)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&elsewhere), vec![3]);
    let admin = append_one(
        &*store,
        keyed_request(None, "k-1", "f-3", vec![plain("acme", 4)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&admin), vec![4]);

    // Inside one group: a repeat gets the first's events, another request
    // is refused, and the refused one takes no id.
    let group = append(
        &*store,
        vec![
            keyed_request(Some("acme"), "k-2", "f-1", vec![plain("acme", 5)]),
            keyed_request(Some("acme"), "k-2", "f-9", vec![plain("acme", 6)]),
            keyed_request(Some("acme"), "k-2", "f-1", vec![plain("acme", 5)]),
            request(vec![plain("acme", 7)]),
        ],
        t0(),
    )
    .await;
    assert_eq!(ids(group[0].as_ref().unwrap()), vec![5]);
    assert_eq!(group[1].as_ref().unwrap_err().key, "k-2");
    assert_eq!(ids(group[2].as_ref().unwrap()), vec![5]);
    assert_eq!(fresh(group[2].as_ref().unwrap()), vec![false]);
    assert_eq!(ids(group[3].as_ref().unwrap()), vec![6]);
    assert_eq!(
        id_list(&history(&*store, 100).await),
        vec![1, 2, 3, 4, 5, 6]
    );
    // A key of control characters and non-ASCII is a key like any other.
    let odd = "\u{0}\u{1}ключ";
    let first = append_one(
        &*store,
        keyed_request(Some("acme"), odd, "f-1", vec![plain("acme", 8)]),
        t0(),
    )
    .await;
    let again = append_one(
        &*store,
        keyed_request(Some("acme"), odd, "f-1", vec![plain("acme", 8)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&first), ids(&again));
    assert!(again.duplicate());
}

/// An event key, per tenant: the same event again is the stored one; another
/// event under it refuses its whole request; two events of one request
/// under one key are refused.
async fn event_keys_are_per_tenant(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(&*store, request(vec![keyed("acme", "e-1", "f-1")]), t0()).await;
    assert_eq!(ids(&first), vec![1]);

    let mixed = append_one(
        &*store,
        request(vec![keyed("acme", "e-1", "f-1"), plain("acme", 2)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&mixed), vec![1, 2]);
    assert_eq!(fresh(&mixed), vec![false, true]);
    assert_eq!(mixed.events[0].prev, 0);
    assert_eq!(mixed.events[1].prev, 1);

    let other = append(
        &*store,
        vec![request(vec![plain("acme", 3), keyed("acme", "e-1", "f-2")])],
        t0(),
    )
    .await;
    let reused = other[0].clone().expect_err("another event under e-1");
    assert_eq!(reused.field, "[1].idempotency_key");
    assert_eq!(reused.what, "event");
    assert_eq!(reused.hours, EVENT_KEY_TTL.as_secs() / 3600);
    let single = append(
        &*store,
        vec![request(vec![keyed("acme", "e-1", "f-2")])],
        t0(),
    )
    .await;
    assert_eq!(single[0].as_ref().unwrap_err().field, "idempotency_key");
    assert_eq!(store.last_event_id().await.unwrap(), 2, "nothing stored");

    // Another tenant's key of the same name is another key.
    let globex = append_one(&*store, request(vec![keyed("globex", "e-1", "f-2")]), t0()).await;
    assert_eq!(ids(&globex), vec![3]);
    assert_eq!(fresh(&globex), vec![true]);

    let twice = append(
        &*store,
        vec![request(vec![
            keyed("acme", "e-2", "f-1"),
            keyed("acme", "e-2", "f-1"),
        ])],
        t0(),
    )
    .await;
    assert_eq!(twice[0].as_ref().unwrap_err().field, "[1].idempotency_key");
    // A key of control characters and non-ASCII is a key like any other.
    let odd = "\u{0}\u{1}ключ";
    let first = append_one(&*store, request(vec![keyed("acme", odd, "f-1")]), t0()).await;
    let again = append_one(&*store, request(vec![keyed("acme", odd, "f-1")]), t0()).await;
    assert_eq!((ids(&first), ids(&again)), (vec![4], vec![4]));
    assert!(again.duplicate());

    // Inside one group: the second use of a new key is the first's event.
    let group = append(
        &*store,
        vec![
            request(vec![keyed("acme", "e-3", "f-1")]),
            request(vec![keyed("acme", "e-3", "f-1"), plain("acme", 5)]),
            request(vec![keyed("acme", "e-3", "f-2")]),
        ],
        t0(),
    )
    .await;
    assert_eq!(ids(group[0].as_ref().unwrap()), vec![5]);
    assert_eq!(ids(group[1].as_ref().unwrap()), vec![5, 6]);
    assert_eq!(fresh(group[1].as_ref().unwrap()), vec![false, true]);
    assert!(group[2].is_err());
    assert_eq!(
        id_list(&history(&*store, 100).await),
        vec![1, 2, 3, 4, 5, 6]
    );
}

/// Keys are honoured for their time-to-live from the append's `now`, and
/// free from then on: measured by the `now` each call is given.
async fn keys_are_free_after_their_ttl(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-1", vec![plain("acme", 1)]),
        t0(),
    )
    .await;
    let event = append_one(&*store, request(vec![keyed("acme", "e", "f-1")]), t0()).await;
    assert_eq!((ids(&first), ids(&event)), (vec![1], vec![2]));

    // A millisecond before the end: honoured, and still refused for
    // something else.
    let almost = after(t0(), IDEMPOTENCY_TTL - ms(1));
    let again = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-1", vec![plain("acme", 1)]),
        almost,
    )
    .await;
    assert_eq!((ids(&again), again.duplicate()), (vec![1], true));
    let refused = append(
        &*store,
        vec![keyed_request(
            Some("acme"),
            "k",
            "f-2",
            vec![plain("acme", 1)],
        )],
        almost,
    )
    .await;
    assert!(refused[0].is_err());

    // At the end of its TTL a request key is new again, for anything.
    let expired = after(t0(), IDEMPOTENCY_TTL);
    let renewed = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-2", vec![plain("acme", 9)]),
        expired,
    )
    .await;
    assert_eq!((ids(&renewed), renewed.duplicate()), (vec![3], false));
    // ... and honoured from its new first use.
    let repeat = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-2", vec![plain("acme", 9)]),
        expired,
    )
    .await;
    assert_eq!((ids(&repeat), repeat.duplicate()), (vec![3], true));

    // The event key outlives the request key: honoured a day on...
    let event_again = append_one(&*store, request(vec![keyed("acme", "e", "f-1")]), expired).await;
    assert_eq!(
        (ids(&event_again), event_again.duplicate()),
        (vec![2], true)
    );
    let almost = after(t0(), EVENT_KEY_TTL - ms(1));
    let refused = append(
        &*store,
        vec![request(vec![keyed("acme", "e", "f-2")])],
        almost,
    )
    .await;
    assert!(refused[0].is_err());
    // ... and free at the end of its own.
    let expired = after(t0(), EVENT_KEY_TTL);
    let renewed = append_one(&*store, request(vec![keyed("acme", "e", "f-2")]), expired).await;
    assert_eq!((ids(&renewed), renewed.duplicate()), (vec![4], false));
    let repeat = append_one(&*store, request(vec![keyed("acme", "e", "f-2")]), expired).await;
    assert_eq!((ids(&repeat), repeat.duplicate()), (vec![4], true));
    assert_eq!(id_list(&history(&*store, 100).await), vec![1, 2, 3, 4]);
}

/// The sweep forgets keys past their time-to-live at the `now` it is
/// given, and counts them.
async fn expiring_keys_counts_what_it_forgot(backend: Backend) {
    let store = backend.open().await;
    append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k",
            "f-1",
            vec![keyed("acme", "e-1", "f-1"), keyed("acme", "e-2", "f-2")],
        ),
        t0(),
    )
    .await;
    append_one(&*store, request(vec![plain("acme", 3)]), t0()).await;
    let sweep = |d| store.expire_idempotency_keys(after(t0(), d));
    assert_eq!(sweep(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(
        sweep(IDEMPOTENCY_TTL + ms(1)).await.unwrap(),
        1,
        "the request key"
    );
    assert_eq!(sweep(IDEMPOTENCY_TTL + ms(2)).await.unwrap(), 0);
    assert_eq!(
        sweep(EVENT_KEY_TTL + ms(1)).await.unwrap(),
        2,
        "the event keys"
    );
    assert_eq!(sweep(EVENT_KEY_TTL + ms(2)).await.unwrap(), 0);
    // The events stay.
    assert_eq!(id_list(&history(&*store, 100).await), vec![1, 2, 3]);
}

/// Appends from several tasks on each of two stores on one database (two
/// nodes): every id from 1 to the total names one event, each outcome's
/// ids increase, every tenant's `prev` chain follows its history, and an
/// id one node handed out is readable on the other at once.
async fn concurrent_appends_on_two_nodes_keep_one_order(backend: Backend) {
    const TASKS_PER_NODE: usize = 4;
    const GROUPS_PER_TASK: usize = 12;
    let nodes = backend.two_nodes().await;
    let tenants = ["acme", "globex", "initech"];
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for task in 0..TASKS_PER_NODE {
            let (node, other) = (node.clone(), nodes[1 - n].clone());
            tasks.push(tokio::spawn(async move {
                let mut appended = Vec::new();
                let mut last_seen = 0;
                for group in 0..GROUPS_PER_TASK {
                    let size = 1 + (task + group) % 3;
                    let batch: Vec<AppendRequest> = (0..size)
                        .map(|r| {
                            let events = (0..1 + (r + group) % 4)
                                .map(|e| plain(tenants[(task + r + e) % 3], group as i64))
                                .collect();
                            request(events)
                        })
                        .collect();
                    let outcomes = node.append(batch, Utc::now()).await.expect("append");
                    let outcomes: Vec<AppendOutcome> =
                        outcomes.into_iter().map(Result::unwrap).collect();
                    let group_ids: Vec<EventId> = outcomes.iter().flat_map(ids).collect();
                    assert!(
                        group_ids.windows(2).all(|w| w[0] < w[1]),
                        "ids increase in a group: {group_ids:?}"
                    );
                    assert!(group_ids[0] > last_seen, "a later append has greater ids");
                    last_seen = *group_ids.last().unwrap();
                    // Committed before the answer: the other node reads it.
                    assert!(other.last_event_id().await.unwrap() >= last_seen);
                    let page = other
                        .events(&EventQuery::after(Scope::All, last_seen - 1, 1))
                        .await
                        .unwrap();
                    assert_eq!(id_list(&page), vec![last_seen]);
                    appended.extend(outcomes.into_iter().flat_map(|o| o.events));
                }
                appended
            }));
        }
    }
    let mut appended = Vec::new();
    for task in tasks {
        appended.extend(task.await.expect("task"));
    }
    let total = appended.len() as EventId;
    let stored = history(&*nodes[0], 97).await;
    assert_eq!(id_list(&stored), (1..=total).collect::<Vec<_>>());
    let mut prev_of: HashMap<EventId, EventId> = HashMap::new();
    for a in &appended {
        assert!(a.new);
        assert_eq!(*a.event, stored[(a.event.id - 1) as usize]);
        prev_of.insert(a.event.id, a.prev);
    }
    let mut heads: HashMap<&str, EventId> = HashMap::new();
    for e in &stored {
        let head = heads.insert(&e.tenant_id, e.id).unwrap_or(0);
        assert_eq!(prev_of[&e.id], head, "prev of {} ({})", e.id, e.tenant_id);
    }
    let names: Vec<TenantId> = tenants.iter().map(|t| tenant(t)).collect();
    for node in &nodes {
        let got = node.tenant_heads(&names).await.unwrap();
        let want: Vec<EventId> = tenants.iter().map(|t| heads[t]).collect();
        assert_eq!(got, want);
        assert_eq!(node.last_event_id().await.unwrap(), total);
    }
}

/// Two nodes appending the same keys at once store each key once.
async fn one_key_appended_on_two_nodes_at_once_is_stored_once(backend: Backend) {
    let nodes = backend.two_nodes().await;
    let mut tasks = Vec::new();
    for node in nodes.iter().chain(nodes.iter()) {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for k in 0..10 {
                let key = format!("k-{k}");
                let req = keyed_request(
                    Some("acme"),
                    &key,
                    "f",
                    vec![plain("acme", k), keyed("acme", &format!("e-{k}"), "f")],
                );
                let outcome = node.append(vec![req], Utc::now()).await.expect("append");
                got.push(ids(outcome[0].as_ref().expect("accepted")));
            }
            got
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for answer in &answers[1..] {
        assert_eq!(
            *answer, answers[0],
            "every node answers each key with the same ids"
        );
    }
    assert_eq!(nodes[0].last_event_id().await.unwrap(), 20);
    assert_eq!(history(&*nodes[1], 100).await.len(), 20);
}

/// History filters (tenant, rooms, types, since, before, limit) and
/// paging, which reads every match once.
async fn history_filters_and_pages(backend: Backend) {
    let store = backend.open().await;
    let mut events = Vec::new();
    for i in 0..30i64 {
        let tenant = ["acme", "globex"][(i % 2) as usize];
        let rooms: &[&str] = match i % 3 {
            0 => &["erp"],
            1 => &["alerts", "erp"],
            _ => &["ai"],
        };
        let mut ev = event(tenant, rooms, serde_json::json!({ "i": i }));
        if i % 5 == 0 {
            ev.event_type = "MessageReceived".into();
        }
        events.push(ev);
    }
    append_one(&*store, request(events.clone()), t0()).await;
    let matching = |f: &dyn Fn(&ValidEvent) -> bool| -> Vec<EventId> {
        (1..=30)
            .filter(|id| f(&events[(*id - 1) as usize]))
            .collect()
    };
    let query = |tenant: Option<&str>, rooms: Option<&[&str]>| EventQuery {
        tenant: tenant.map_or(Scope::All, |t| Scope::Only(self::tenant(t))),
        rooms: rooms.map_or(Scope::All, |r| {
            Scope::Only(r.iter().map(|r| Room::parse(r).unwrap()).collect())
        }),
        event_types: None,
        since: 0,
        before: None,
        limit: 4,
    };
    let cases: Vec<(EventQuery, Vec<EventId>)> = vec![
        (query(None, None), (1..=30).collect()),
        (
            query(Some("acme"), None),
            matching(&|e| e.tenant_id == "acme"),
        ),
        (
            query(None, Some(&["alerts"])),
            matching(&|e| e.rooms.contains(&"alerts".into())),
        ),
        (
            query(Some("globex"), Some(&["erp"])),
            matching(&|e| e.tenant_id == "globex" && e.rooms.contains(&"erp".into())),
        ),
        (
            // An event in two of the rooms asked for comes once.
            query(Some("acme"), Some(&["erp", "alerts", "ai"])),
            matching(&|e| e.tenant_id == "acme"),
        ),
        (
            EventQuery {
                event_types: Some(vec!["MessageReceived".into()]),
                ..query(None, None)
            },
            matching(&|e| e.event_type == "MessageReceived"),
        ),
        (
            EventQuery {
                event_types: Some(vec!["MessageReceived".into(), "Custom".into()]),
                ..query(None, Some(&["ai"]))
            },
            matching(&|e| e.rooms == ["ai"]),
        ),
        (
            EventQuery {
                since: 10,
                before: Some(20),
                ..query(None, None)
            },
            (11..20).collect(),
        ),
        (
            EventQuery {
                since: 10,
                before: Some(20),
                ..query(Some("acme"), Some(&["erp"]))
            },
            matching(&|e| e.tenant_id == "acme" && e.rooms.contains(&"erp".into()))
                .into_iter()
                .filter(|id| (11..20).contains(id))
                .collect(),
        ),
        (query(Some("nobody"), None), vec![]),
    ];
    for (query, want) in cases {
        let first = store.events(&query).await.unwrap();
        let head: Vec<EventId> = want.iter().copied().take(4).collect();
        assert_eq!(id_list(&first), head, "first page of {query:?}");
        assert_eq!(
            id_list(&read_all(&*store, query.clone()).await),
            want,
            "{query:?}"
        );
    }
    let one = store
        .events(&EventQuery::after(Scope::All, 29, 100))
        .await
        .unwrap();
    assert_eq!(id_list(&one), vec![30]);
    assert_eq!(one[0].data, events[29].data);
}

/// Each tenant's newest id, 0 for a tenant without events.
async fn tenant_heads_are_each_tenants_newest(backend: Backend) {
    let store = backend.open().await;
    let names = [tenant("acme"), tenant("globex"), tenant("nobody")];
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![0, 0, 0]);
    append_one(
        &*store,
        request(vec![plain("acme", 1), plain("globex", 2), plain("acme", 3)]),
        t0(),
    )
    .await;
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![3, 2, 0]);
    append_one(&*store, request(vec![plain("globex", 4)]), t0()).await;
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![3, 4, 0]);
    assert_eq!(
        store.tenant_heads(&[]).await.unwrap(),
        Vec::<EventId>::new()
    );
    let reversed = [tenant("globex"), tenant("acme")];
    assert_eq!(store.tenant_heads(&reversed).await.unwrap(), vec![4, 3]);
}

/// Who a room name belongs to: each tenant with events there once, up to
/// the limit, whatever the order of their events.
async fn room_tenants_lists_each_tenant_of_a_room_once(backend: Backend) {
    let store = backend.open().await;
    let room = |name: &str| Room::parse(name).unwrap();
    let sorted = |mut v: Vec<TenantId>| {
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v.iter().map(|t| t.to_string()).collect::<Vec<_>>()
    };
    let empty = store
        .room_tenants(&room("conversation:c1"), 2)
        .await
        .unwrap();
    assert!(empty.is_empty());
    let mut events: Vec<ValidEvent> = (0..70)
        .map(|n| event("acme", &["conversation:c1"], serde_json::json!({ "n": n })))
        .collect();
    // A second tenant only after many events of the first.
    events.push(event(
        "globex",
        &["conversation:c1", "erp"],
        serde_json::json!({}),
    ));
    events.push(event(
        "initech",
        &["conversation:c2"],
        serde_json::json!({}),
    ));
    append_one(&*store, request(events), t0()).await;
    assert_eq!(
        sorted(
            store
                .room_tenants(&room("conversation:c1"), 2)
                .await
                .unwrap()
        ),
        ["acme", "globex"]
    );
    assert_eq!(
        store
            .room_tenants(&room("conversation:c1"), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        sorted(
            store
                .room_tenants(&room("conversation:c2"), 2)
                .await
                .unwrap()
        ),
        ["initech"]
    );
}

/// The id just before the first event received at or after a time.
async fn id_before_a_time_starts_a_replay_there(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.id_before(t0()).await.unwrap(), 0);
    for (minute, n) in [(0, 2), (10, 3), (20, 1)] {
        let events = (0..n).map(|i| plain("acme", i)).collect();
        append_one(&*store, request(events), after(t0(), ms(minute * 60_000))).await;
    }
    let at = |minute: i64| store.id_before(after(t0(), ms(minute * 60_000)));
    assert_eq!(at(0).await.unwrap(), 0);
    assert_eq!(at(5).await.unwrap(), 2);
    assert_eq!(at(10).await.unwrap(), 2);
    assert_eq!(at(11).await.unwrap(), 5);
    assert_eq!(at(20).await.unwrap(), 5);
    assert_eq!(at(30).await.unwrap(), 6, "after every event: the newest");
    let earlier = t0() - chrono::Duration::days(1);
    assert_eq!(store.id_before(earlier).await.unwrap(), 0);
}

/// An append stopped half-way (its caller dropped) stores all of itself
/// or nothing, at whatever point it is dropped, and leaves the store
/// usable; a closed store refuses calls, and another store on the
/// database goes on from what was committed.
async fn an_aborted_or_failed_append_leaves_nothing_behind(backend: Backend) {
    const GROUP: usize = 1000;
    let store = backend.open().await;
    let mut singles =
        vec![ids(&append_one(&*store, request(vec![plain("acme", 1)]), t0()).await)[0]];
    for round in 0..5 {
        let batch: Vec<AppendRequest> = (0..GROUP / 50)
            .map(|_| {
                let events = (0..50)
                    .map(|_| event("acme", &["erp"], serde_json::json!({ "round": round })))
                    .collect();
                request(events)
            })
            .collect();
        let task = tokio::spawn({
            let store = store.clone();
            async move { store.append(batch, t0()).await }
        });
        // Dropped at different points of its work.
        for _ in 0..round * 3 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        // The dropped append may still commit, before or after this one.
        let next = append_one(&*store, request(vec![plain("acme", 2)]), t0()).await;
        let id = next.events[0].event.id;
        assert_eq!(next.events[0].prev, id - 1, "one tenant, dense ids");
        singles.push(id);
    }
    // Closing waits for appends in flight.
    store.close().await;
    assert!(store
        .append(vec![request(vec![plain("acme", 3)])], t0())
        .await
        .is_err());
    assert!(store.last_event_id().await.is_err());

    let other = backend.open().await;
    let all = history(&*other, 1000).await;
    let head = all.len() as EventId;
    assert_eq!(id_list(&all), (1..=head).collect::<Vec<_>>());
    for round in 0..5 {
        let stored = all.iter().filter(|e| e.data["round"] == round).count();
        assert!(
            stored == 0 || stored == GROUP,
            "round {round}: {stored} of a group stored"
        );
    }
    for id in &singles {
        assert_eq!(
            all[(*id - 1) as usize].data["n"],
            if *id == 1 { 1 } else { 2 }
        );
    }
    let next = append_one(&*other, request(vec![plain("acme", 4)]), t0()).await;
    assert_eq!(ids(&next), vec![head + 1]);
    other.ping().await.unwrap();
}

/// Declares the cases: each runs once per backend, as
/// `store_conformance::{sqlite,postgres}::CASE`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Backend::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let test = concat!("store_conformance::postgres::", stringify!($case));
                    let Some(backend) = super::Backend::postgres(test).await else {
                        return;
                    };
                    super::$case(backend).await;
                }
            )*
        }
    };
}

conformance!(
    appends_read_back_exactly,
    ids_are_dense_and_prev_chains_each_tenant,
    request_keys_return_the_first_events_or_refuse,
    event_keys_are_per_tenant,
    keys_are_free_after_their_ttl,
    expiring_keys_counts_what_it_forgot,
    concurrent_appends_on_two_nodes_keep_one_order,
    one_key_appended_on_two_nodes_at_once_is_stored_once,
    history_filters_and_pages,
    tenant_heads_are_each_tenants_newest,
    room_tenants_lists_each_tenant_of_a_room_once,
    id_before_a_time_starts_a_replay_there,
    an_aborted_or_failed_append_leaves_nothing_behind,
    rollups_count_each_stored_event_once,
    nodes_appending_at_once_are_counted_exactly,
    campaigns_merge_the_same_however_events_are_grouped,
    the_snapshot_counts_up_to_its_head,
    active_conversations_are_started_not_ended_and_recent,
    gauges_replace_per_minute_and_average_per_bucket,
    expiry_forgets_rollups_past_their_keeping_time,
    jobs_read_back_exactly,
    jobs_lease_by_priority_then_age_and_only_when_due,
    finishes_record_outcomes_under_their_lease_only,
    an_expired_lease_is_taken_over_and_fenced,
    concurrent_leases_hand_each_job_out_once,
    dead_letters_retry_purge_and_tenant_scope,
    queue_stats_count_depth_age_and_rates,
    an_enqueue_wakes_every_node,
    alert_rules_are_scoped_and_replaced,
    seeding_keeps_a_rule_changed_over_the_api,
    deleting_a_rule_keeps_its_fired_alerts_only,
    the_lease_is_renewed_refused_and_taken_over_after_expiry,
    a_commit_without_the_current_lease_writes_nothing,
    a_commit_writes_everything_and_enqueues_its_jobs,
    a_commit_that_fails_leaves_nothing_behind,
    acknowledging_by_alert_or_incident_id_once,
    an_acknowledgement_survives_later_commits,
    other_tenants_ids_reveal_nothing,
    alert_listings_filter_by_time_state_and_tenant,
    incidents_list_open_and_recently_resolved,
    silences_are_scoped_and_filtered_by_time,
    transfers_assign_record_and_enqueue_their_outbox,
    a_transfer_to_the_current_assignee_conflicts_and_writes_nothing,
    conversations_are_per_tenant_and_unknown_ones_not_found,
    racing_transfers_of_one_conversation_commit_in_one_order,
    racing_transfers_to_one_user_store_one,
);

/// Raw append throughput, for BENCHMARKS-style figures rather than a gate:
/// groups of 200 requests of 50 events (two rooms, a small data object)
/// appended one after another, as one node's group commit does. The store
/// is `PYTAKE_BENCH_STORE` (a `postgres://` URL to a real server), else a
/// fresh database on the throwaway server (which runs with fsync off).
///
/// `cargo test --release --test integration store_throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
async fn store_throughput() {
    const GROUPS: usize = 30;
    const REQUESTS: usize = 200;
    const EVENTS: usize = 50;
    let url = match std::env::var("PYTAKE_BENCH_STORE") {
        Ok(url) => url,
        Err(_) => match Postgres::database_or_skip("store_throughput").await {
            Some(url) => url,
            None => return,
        },
    };
    let store = storage::open(&url, &StoreOptions::default())
        .await
        .expect("open")
        .events;
    let group = |g: usize| -> Vec<AppendRequest> {
        (0..REQUESTS)
            .map(|r| {
                let events = (0..EVENTS)
                    .map(|e| {
                        let data = serde_json::json!({
                            "message_id": format!("wamid.{g}.{r}.{e}"),
                            "from": "5511999990000",
                            "text": "Olá! Seu pedido foi enviado.",
                            "amount": 12.50,
                        });
                        let tenant = ["acme", "globex", "initech", "umbrella"][(r + e) % 4];
                        event(tenant, &["conversations", "erp"], data)
                    })
                    .collect();
                request(events)
            })
            .collect()
    };
    // A warm-up group: connections, prepared statements.
    store.append(group(0), Utc::now()).await.expect("append");
    let groups: Vec<Vec<AppendRequest>> = (1..=GROUPS).map(group).collect();
    let started = std::time::Instant::now();
    for batch in groups {
        store.append(batch, Utc::now()).await.expect("append");
    }
    let took = started.elapsed();
    let events = GROUPS * REQUESTS * EVENTS;
    println!(
        "{} store: {events} events in {GROUPS} groups of {REQUESTS} requests x {EVENTS} events: {:.2} s, {:.0} events/s",
        store.kind(),
        took.as_secs_f64(),
        events as f64 / took.as_secs_f64()
    );
    assert_eq!(
        store.last_event_id().await.unwrap(),
        ((GROUPS + 1) * REQUESTS * EVENTS) as EventId
    );
}
