use super::*;
use crate::protocol::{Room, ValidEvent};
use crate::server::storage::{AppendOutcome, KeyReused};

fn event(room: &str, extra_room: Option<&str>, key: Option<&str>) -> ValidEvent {
    let mut rooms = vec![room.to_string()];
    rooms.extend(extra_room.map(str::to_string));
    ValidEvent {
        event_type: "MessageReceived".into(),
        tenant_id: "acme".into(),
        rooms,
        data: serde_json::json!({"n": 1}),
        timestamp: Utc::now(),
        idempotency_key: key.map(str::to_string),
        fingerprint: key.map(|k| format!("fingerprint of {k}")),
    }
}

/// Appends as received now.
trait AppendNow {
    async fn append_now(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendOutcome, KeyReused>>, StoreError>;
}

impl AppendNow for SqliteStore {
    async fn append_now(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendOutcome, KeyReused>>, StoreError> {
        self.append(batch, Utc::now()).await
    }
}

/// Which events of an outcome are new.
fn fresh(outcome: &AppendOutcome) -> Vec<bool> {
    outcome.events.iter().map(|a| a.new).collect()
}

fn request(events: Vec<ValidEvent>) -> AppendRequest {
    AppendRequest {
        idempotency_key: None,
        key_scope: Scope::Only(TenantId::parse("acme").unwrap()),
        fingerprint: None,
        events,
    }
}

async fn ids_in(store: &SqliteStore, room: &str) -> Vec<EventId> {
    let mut query = EventQuery::after(Scope::Only(TenantId::parse("acme").unwrap()), 0, 5000);
    query.rooms = Scope::Only(vec![Room::parse(room).unwrap()]);
    let events = store.events(&query).await.unwrap();
    events.iter().map(|e| e.id).collect()
}

async fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pytake.db");
    let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_group_is_stored_in_one_query_with_every_room_indexed() {
    let (_dir, store) = open().await;
    let outcomes = store
        .append_now(vec![
            request(vec![event("campaigns", Some("alerts"), None)]),
            request(vec![event("campaigns", None, None)]),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.expect("accepted"))
        .collect::<Vec<_>>();
    let ids: Vec<EventId> = outcomes
        .iter()
        .flat_map(|o| o.events().map(|e| e.id))
        .collect();
    assert_eq!(ids, vec![1, 2]);
    assert_eq!(ids_in(&store, "campaigns").await, vec![1, 2]);
    assert_eq!(ids_in(&store, "alerts").await, vec![1]);
    assert_eq!(store.last_event_id().await.unwrap(), 2);
}

#[tokio::test]
async fn groups_larger_than_one_statement_are_stored_whole() {
    let (_dir, store) = open().await;
    let many = |n| (0..n).map(|_| event("erp", Some("ai"), None)).collect();
    let outcomes = store
        .append_now(vec![request(many(700)), request(many(600))])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.expect("accepted"))
        .collect::<Vec<_>>();
    assert_eq!(outcomes[1].events.last().unwrap().event.id, 1300);
    let all: Vec<EventId> = (1..=1300).collect();
    assert_eq!(ids_in(&store, "erp").await, all);
    assert_eq!(ids_in(&store, "ai").await, all);
}

#[tokio::test]
async fn keyed_events_are_looked_up_and_indexed_once() {
    let (_dir, store) = open().await;
    let first = store
        .append_now(vec![request(vec![event("ai", Some("alerts"), Some("k1"))])])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.expect("accepted"))
        .collect::<Vec<_>>();
    let again = store
        .append_now(vec![request(vec![
            event("ai", Some("alerts"), Some("k1")),
            event("ai", None, None),
        ])])
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.expect("accepted"))
        .collect::<Vec<_>>();
    assert_eq!(fresh(&first[0]), vec![true]);
    assert_eq!(fresh(&again[0]), vec![false, true]);
    assert_eq!(again[0].events[0].event.id, first[0].events[0].event.id);
    assert_eq!(ids_in(&store, "ai").await, vec![1, 2]);
    assert_eq!(ids_in(&store, "alerts").await, vec![1]);
}

#[tokio::test]
async fn a_key_reused_for_other_content_is_refused_and_stores_nothing() {
    let (_dir, store) = open().await;
    let keyed = |key: &str, fingerprint: &str, events| AppendRequest {
        idempotency_key: Some(key.into()),
        fingerprint: Some(fingerprint.into()),
        ..request(events)
    };
    let mut other = event("ai", None, Some("e1"));
    other.fingerprint = Some("another event".into());
    let outcomes = store
        .append_now(vec![
            keyed("r1", "one event", vec![event("ai", None, None)]),
            keyed("r1", "two events", vec![event("ai", None, None); 2]),
            keyed("r1", "one event", vec![event("ai", None, None)]),
            request(vec![event("ai", None, Some("e1"))]),
            request(vec![event("erp", None, None), other]),
            request(vec![
                event("ai", None, Some("e2")),
                event("ai", None, Some("e2")),
            ]),
        ])
        .await
        .unwrap();
    assert_eq!(fresh(outcomes[0].as_ref().unwrap()), vec![true]);
    let reused = outcomes[1].as_ref().unwrap_err();
    assert_eq!(
        (reused.field.as_str(), reused.what),
        ("Idempotency-Key", "request")
    );
    assert_eq!(fresh(outcomes[2].as_ref().unwrap()), vec![false]);
    assert_eq!(fresh(outcomes[3].as_ref().unwrap()), vec![true]);
    assert_eq!(
        outcomes[4].as_ref().unwrap_err().field,
        "[1].idempotency_key"
    );
    assert_eq!(
        outcomes[5].as_ref().unwrap_err().field,
        "[1].idempotency_key"
    );
    // Only the first request and the first keyed event were stored.
    assert_eq!(ids_in(&store, "ai").await, vec![1, 2]);
    assert_eq!(ids_in(&store, "erp").await, Vec::<EventId>::new());
    // Across groups, too.
    let later = store
        .append_now(vec![keyed(
            "r1",
            "two events",
            vec![event("ai", None, None)],
        )])
        .await
        .unwrap();
    assert!(later[0].is_err());
}

#[tokio::test]
async fn keys_are_free_again_once_their_ttl_has_passed() {
    let (_dir, store) = open().await;
    let keyed_request = AppendRequest {
        idempotency_key: Some("r1".into()),
        fingerprint: Some("first".into()),
        ..request(vec![event("ai", None, None)])
    };
    let keyed_event = request(vec![event("erp", None, Some("e1"))]);
    store
        .append_now(vec![keyed_request.clone(), keyed_event.clone()])
        .await
        .unwrap();
    // Dates every first use `ago` back, as time passing would.
    let age = |ago: Duration| {
        let at = Utc::now().timestamp_millis() - ago.as_millis() as i64;
        let pool = store.pool.clone();
        async move {
            for sql in [
                "UPDATE idempotency_keys SET created_at = ?",
                "UPDATE events SET received_at = ?",
            ] {
                sqlx::query(sql).bind(at).execute(&pool).await.unwrap();
            }
        }
    };
    let mut other_request = keyed_request.clone();
    other_request.fingerprint = Some("second".into());
    let mut other_event = keyed_event.clone();
    other_event.events[0].fingerprint = Some("another".into());

    // A day on, before any sweep: the request key is free, the event
    // key (kept a week) is not.
    age(IDEMPOTENCY_TTL + Duration::from_millis(1)).await;
    let later = store
        .append_now(vec![other_request, other_event.clone()])
        .await
        .unwrap();
    assert_eq!(fresh(later[0].as_ref().unwrap()), vec![true]);
    assert_eq!(later[1].as_ref().unwrap_err().what, "event");

    // A week on, the event key is free too.
    age(EVENT_KEY_TTL + Duration::from_millis(1)).await;
    let week = store.append_now(vec![other_event]).await.unwrap();
    assert_eq!(fresh(week[0].as_ref().unwrap()), vec![true]);

    // The sweep forgets each key once its own time is up: `r1` (reused
    // a week ago) and `e1` (reused now) at a day and at a week.
    let now = Utc::now();
    assert_eq!(store.expire_idempotency_keys(now).await.unwrap(), 1);
    let in_a_day = now + chrono::Duration::from_std(IDEMPOTENCY_TTL).unwrap();
    assert_eq!(store.expire_idempotency_keys(in_a_day).await.unwrap(), 0);
    let in_a_week =
        now + chrono::Duration::from_std(EVENT_KEY_TTL).unwrap() + chrono::Duration::seconds(1);
    assert_eq!(store.expire_idempotency_keys(in_a_week).await.unwrap(), 1);
}

#[tokio::test]
async fn a_failed_group_leaves_nothing_behind_and_the_store_usable() {
    let (_dir, store) = open().await;
    // A stray index row makes the group's second statement fail after
    // its first (the events INSERT) succeeded.
    sqlx::query("INSERT INTO event_rooms (tenant_id, room, event_id) VALUES ('acme', 'erp', 1)")
        .execute(&store.pool)
        .await
        .unwrap();
    let failed = store
        .append_now(vec![request(vec![event("erp", None, None)])])
        .await;
    let message = failed.unwrap_err().to_string();
    assert!(message.contains("UNIQUE constraint failed"), "{message}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "the events INSERT was rolled back");
    assert_eq!(store.last_event_id().await.unwrap(), 0);

    sqlx::query("DELETE FROM event_rooms")
        .execute(&store.pool)
        .await
        .unwrap();
    // Every pooled connection is out of any transaction: a leftover one
    // would fail `BEGIN` with "cannot start a transaction within a
    // transaction".
    for n in 1..=8 {
        let stored = store
            .append_now(vec![request(vec![event("erp", None, None)])])
            .await;
        assert_eq!(stored.unwrap()[0].as_ref().unwrap().events[0].event.id, n);
    }
    assert_eq!(ids_in(&store, "erp").await, (1..=8).collect::<Vec<_>>());
}

#[tokio::test]
async fn appends_dropped_midway_leave_no_transaction_open_and_no_id_reused() {
    let (_dir, store) = open().await;
    // Dropped at their first await: after the query went to SQLite's
    // thread, before its answer came back.
    for _ in 0..16 {
        let append = store.append_now(vec![request(vec![event("erp", None, None)])]);
        let _ = tokio::time::timeout(std::time::Duration::ZERO, append).await;
    }
    // A connection left inside BEGIN IMMEDIATE would hold the write lock
    // and fail these with "database is locked"; a stale next id would
    // fail them with a UNIQUE constraint.
    let mut ids = Vec::new();
    for _ in 0..8 {
        let stored = store
            .append_now(vec![request(vec![event("erp", None, None)])])
            .await;
        ids.push(stored.unwrap()[0].as_ref().unwrap().events[0].event.id);
    }
    let all = ids_in(&store, "erp").await;
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    assert_eq!(all[all.len() - 8..], ids[..]);
    assert_eq!(store.last_event_id().await.unwrap(), *ids.last().unwrap());
}
