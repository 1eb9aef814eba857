//! The embedded store: one SQLite file under the data dir, WAL mode,
//! `synchronous=FULL` so an acknowledged event survives a power cut; group
//! commit amortizes the fsync over every request of a batch.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use tokio::sync::Mutex;

mod append;

use super::{AppendOutcome, AppendRequest, EventQuery, KeyReused, Store, StoreError};
use crate::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use crate::protocol::{Event, EventId};

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    ids: Arc<Ids>,
}

/// Id assignment, shared with the append task.
struct Ids {
    /// The next id to assign; held for the whole of an append, which makes
    /// the writer single and ids follow commit order. `None` after an append
    /// failed: the next one reads the next free id from the database.
    next: Mutex<Option<EventId>>,
    /// The newest committed id, readable without waiting for a writer.
    committed: AtomicI64,
}

const COLUMNS: &str = "e.id, e.tenant_id, e.event_type, e.rooms, e.data, e.ts";

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs migrations.
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .pragma("cache_size", "-16000");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // The check is a round trip to SQLite's thread on every
            // acquire; a local file does not drop connections the way a
            // network peer can.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("src/server/storage/migrations/sqlite")
            .run(&pool)
            .await?;
        let last = last_stored_id(&pool).await?;
        Ok(SqliteStore {
            pool,
            ids: Arc::new(Ids {
                next: Mutex::new(Some(last + 1)),
                committed: AtomicI64::new(last),
            }),
        })
    }

    async fn load_ids(
        tx: &mut sqlx::SqliteConnection,
        ids: &[EventId],
    ) -> Result<Vec<Arc<Event>>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events e WHERE e.id IN ("));
        let mut sep = qb.separated(", ");
        for id in ids {
            sep.push_bind(*id);
        }
        qb.push(")");
        let rows = qb.build().fetch_all(&mut *tx).await?;
        let mut by_id: HashMap<EventId, Arc<Event>> = HashMap::with_capacity(rows.len());
        for row in rows {
            let event = row_to_event(&row)?;
            by_id.insert(event.id, Arc::new(event));
        }
        ids.iter()
            .map(|id| {
                by_id.get(id).cloned().ok_or_else(|| StoreError::Corrupt {
                    id: *id,
                    message: "named by an idempotency key but missing".into(),
                })
            })
            .collect()
    }
}

/// Creates the database file (and its missing parent dirs, 0700) with mode
/// 0600 before SQLite opens it: SQLite gives the `-wal` and `-shm` files the
/// database file's mode, so the three hold every tenant's events for the
/// server's user alone. An existing file keeps its mode, with a warning when
/// other users may read it.
fn create_private_file(path: &str) -> Result<(), StoreError> {
    // `sqlite://PATH?mode=ro` and the like: the file is before the query.
    let file = path.split('?').next().unwrap_or_default();
    if file.is_empty() || file.starts_with(":memory:") {
        return Ok(());
    }
    let file = Path::new(file);
    let io = |at: &Path| {
        let at = at.display().to_string();
        move |source| StoreError::Io { path: at, source }
    };
    if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::auth::create_private_dir(parent).map_err(io(parent))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Some(mode) = crate::auth::shared_mode(file) {
                tracing::warn!(
                    path = %file.display(),
                    mode = %format!("{mode:04o}"),
                    "database file is open to other local users, who may read every tenant's events: run `chmod 600 {}`",
                    crate::auth::shell_word(file)
                );
            }
            Ok(())
        }
        Err(e) => Err(io(file)(e)),
    }
}

/// The highest id ever used, including deleted rows' (AUTOINCREMENT).
async fn last_stored_id(pool: &SqlitePool) -> Result<EventId, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(COALESCE((SELECT MAX(id) FROM events), 0),
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0))",
    )
    .fetch_one(pool)
    .await?)
}
fn row_to_event(row: &SqliteRow) -> Result<Event, StoreError> {
    let id: EventId = row.try_get(0)?;
    let corrupt = |message: String| StoreError::Corrupt { id, message };
    let rooms: Vec<String> =
        serde_json::from_str(row.try_get::<&str, _>(3)?).map_err(|e| corrupt(e.to_string()))?;
    let data =
        serde_json::from_str(row.try_get::<&str, _>(4)?).map_err(|e| corrupt(e.to_string()))?;
    let timestamp = DateTime::parse_from_rfc3339(row.try_get::<&str, _>(5)?)
        .map_err(|e| corrupt(e.to_string()))?
        .with_timezone(&Utc);
    Ok(Event {
        id,
        event_type: row.try_get(2)?,
        tenant_id: row.try_get(1)?,
        room: rooms.first().cloned().unwrap_or_default(),
        rooms,
        data,
        timestamp,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<AppendOutcome, KeyReused>>, StoreError> {
        // In a task of its own, so a caller that goes away cannot stop an
        // append half-way: its query would still reach SQLite's thread and
        // might commit after the ids were handed out again.
        let (pool, ids) = (self.pool.clone(), self.ids.clone());
        tokio::spawn(async move { SqliteStore::append_group(&pool, &ids, &batch).await })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events e WHERE e.id > "));
        qb.push_bind(q.since);
        if q.rooms.is_empty() {
            if let Some(tenant) = &q.tenant_id {
                qb.push(" AND e.tenant_id = ").push_bind(tenant);
            }
        } else {
            qb.push(" AND e.id IN (SELECT event_id FROM event_rooms WHERE event_id > ")
                .push_bind(q.since);
            if let Some(tenant) = &q.tenant_id {
                qb.push(" AND tenant_id = ").push_bind(tenant);
            }
            qb.push(" AND room IN (");
            let mut sep = qb.separated(", ");
            for room in &q.rooms {
                sep.push_bind(room);
            }
            qb.push("))");
        }
        if let Some(types) = &q.event_types {
            if !types.is_empty() {
                qb.push(" AND e.event_type IN (");
                let mut sep = qb.separated(", ");
                for t in types {
                    sep.push_bind(t);
                }
                qb.push(")");
            }
        }
        qb.push(" ORDER BY e.id LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(row_to_event).collect()
    }

    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        Ok(self.ids.committed.load(Ordering::Acquire))
    }

    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, StoreError> {
        let first: Option<EventId> =
            sqlx::query_scalar("SELECT MIN(id) FROM events WHERE received_at >= ?")
                .bind(time.timestamp_millis())
                .fetch_one(&self.pool)
                .await?;
        match first {
            Some(id) => Ok(id - 1),
            None => self.last_event_id().await,
        }
    }

    async fn expire_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = |ttl: std::time::Duration| now.timestamp_millis() - ttl.as_millis() as i64;
        let requests = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
            .bind(before(IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await?;
        // Served by the partial index `events_keyed_received`: only keyed
        // events are visited, not the whole history.
        let events = sqlx::query(
            "UPDATE events SET idempotency_key = NULL, idempotency_fingerprint = NULL \
             WHERE idempotency_key IS NOT NULL AND received_at < ?",
        )
        .bind(before(EVENT_KEY_TTL))
        .execute(&self.pool)
        .await?;
        Ok(requests.rows_affected() + events.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        // Fold the WAL back into the main file so a copy of it is complete.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.pool.close().await;
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ValidEvent;

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

    fn request(events: Vec<ValidEvent>) -> AppendRequest {
        AppendRequest {
            idempotency_key: None,
            key_scope: "acme".into(),
            fingerprint: None,
            events,
        }
    }

    async fn ids_in(store: &SqliteStore, room: &str) -> Vec<EventId> {
        let query = EventQuery {
            tenant_id: Some("acme".into()),
            rooms: vec![room.into()],
            limit: 5000,
            ..EventQuery::default()
        };
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
            .append(vec![
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
            .flat_map(|o| o.events.iter().map(|e| e.id))
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
            .append(vec![request(many(700)), request(many(600))])
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.expect("accepted"))
            .collect::<Vec<_>>();
        assert_eq!(outcomes[1].events.last().unwrap().id, 1300);
        let all: Vec<EventId> = (1..=1300).collect();
        assert_eq!(ids_in(&store, "erp").await, all);
        assert_eq!(ids_in(&store, "ai").await, all);
    }

    #[tokio::test]
    async fn keyed_events_are_looked_up_and_indexed_once() {
        let (_dir, store) = open().await;
        let first = store
            .append(vec![request(vec![event("ai", Some("alerts"), Some("k1"))])])
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.expect("accepted"))
            .collect::<Vec<_>>();
        let again = store
            .append(vec![request(vec![
                event("ai", Some("alerts"), Some("k1")),
                event("ai", None, None),
            ])])
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.expect("accepted"))
            .collect::<Vec<_>>();
        assert_eq!(first[0].fresh, vec![true]);
        assert_eq!(again[0].fresh, vec![false, true]);
        assert_eq!(again[0].events[0].id, first[0].events[0].id);
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
            .append(vec![
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
        assert_eq!(outcomes[0].as_ref().unwrap().fresh, vec![true]);
        let reused = outcomes[1].as_ref().unwrap_err();
        assert_eq!(
            (reused.field.as_str(), reused.what),
            ("Idempotency-Key", "request")
        );
        assert_eq!(outcomes[2].as_ref().unwrap().fresh, vec![false]);
        assert_eq!(outcomes[3].as_ref().unwrap().fresh, vec![true]);
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
            .append(vec![keyed(
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
            .append(vec![keyed_request.clone(), keyed_event.clone()])
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
            .append(vec![other_request, other_event.clone()])
            .await
            .unwrap();
        assert_eq!(later[0].as_ref().unwrap().fresh, vec![true]);
        assert_eq!(later[1].as_ref().unwrap_err().what, "event");

        // A week on, the event key is free too.
        age(EVENT_KEY_TTL + Duration::from_millis(1)).await;
        let week = store.append(vec![other_event]).await.unwrap();
        assert_eq!(week[0].as_ref().unwrap().fresh, vec![true]);

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
        sqlx::query(
            "INSERT INTO event_rooms (tenant_id, room, event_id) VALUES ('acme', 'erp', 1)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
        let failed = store
            .append(vec![request(vec![event("erp", None, None)])])
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
                .append(vec![request(vec![event("erp", None, None)])])
                .await;
            assert_eq!(stored.unwrap()[0].as_ref().unwrap().events[0].id, n);
        }
        assert_eq!(ids_in(&store, "erp").await, (1..=8).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn appends_dropped_midway_leave_no_transaction_open_and_no_id_reused() {
        let (_dir, store) = open().await;
        // Dropped at their first await: after the query went to SQLite's
        // thread, before its answer came back.
        for _ in 0..16 {
            let append = store.append(vec![request(vec![event("erp", None, None)])]);
            let _ = tokio::time::timeout(std::time::Duration::ZERO, append).await;
        }
        // A connection left inside BEGIN IMMEDIATE would hold the write lock
        // and fail these with "database is locked"; a stale next id would
        // fail them with a UNIQUE constraint.
        let mut ids = Vec::new();
        for _ in 0..8 {
            let stored = store
                .append(vec![request(vec![event("erp", None, None)])])
                .await;
            ids.push(stored.unwrap()[0].as_ref().unwrap().events[0].id);
        }
        let all = ids_in(&store, "erp").await;
        assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
        assert_eq!(all[all.len() - 8..], ids[..]);
        assert_eq!(store.last_event_id().await.unwrap(), *ids.last().unwrap());
    }
}
