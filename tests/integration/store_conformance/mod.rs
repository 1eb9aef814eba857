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
mod keys;
mod metrics;
mod reads;
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
use keys::*;
use metrics::*;
use reads::*;

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
