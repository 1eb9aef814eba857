//! The embedded store: one SQLite file under the data dir, WAL mode,
//! `synchronous=FULL` so an acknowledged event survives a power cut; group
//! commit amortizes the fsync over every request of a batch.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
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

mod alerts;
mod append;
mod conversations;
mod gate;
mod jobs;
mod keys;
mod metrics;
mod trip;

use super::{AppendRequest, Counted, EventQuery, EventStore, StoreError};
use crate::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use crate::protocol::{Event, EventId, Room, Scope, TenantId};
use gate::WriteGate;

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection with `synchronous=NORMAL`, for the queue's leases
    /// and finishes: a commit there is not fsynced (the next fsynced commit
    /// or checkpoint takes it along), so a power cut may forget the last
    /// of them, which the at-least-once contract already covers (the job
    /// runs again); a process crash forgets nothing. Enqueues, which
    /// acknowledge work, stay on `pool`. Each lease and finish costing an
    /// fsync put three fsyncs behind every webhook and kept the disk busy.
    unsynced: SqlitePool,
    ids: Arc<Ids>,
    /// Every write takes a turn here first.
    writes: Arc<WriteGate>,
    /// Moves on every enqueue: one node uses the file, so this process's
    /// workers are the only ones to wake.
    jobs_enqueued: tokio::sync::watch::Sender<u64>,
}

/// Id assignment, shared with the append task.
///
/// The ids and tenant heads an append writes come from the database: this
/// is a cache of them, held for the whole of an append (so appends are
/// serial and ids follow commit order) and checked by the database on
/// every write: an id another writer took (a second process on the same
/// file) fails the insert on the primary key, which empties the cache, and
/// the append is retried once from what the database holds.
struct Ids {
    /// `None` until read, and after an append failed.
    cache: Mutex<Option<IdCache>>,
}

struct IdCache {
    /// The next id to assign.
    next: EventId,
    /// Newest id per tenant, of the tenants seen since the cache was
    /// filled; others are read when first appended to.
    heads: HashMap<String, EventId>,
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
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("src/server/storage/migrations/sqlite")
            .run(&pool)
            .await?;
        let unsynced = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        let writes = Arc::new(WriteGate::default());
        Ok(SqliteStore {
            pool,
            unsynced,
            ids: Arc::new(Ids {
                cache: Mutex::new(None),
            }),
            writes,
            jobs_enqueued: tokio::sync::watch::channel(0).0,
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
/// The stored heads of `tenants` (absent: no events yet).
async fn read_heads<'a>(
    pool: &SqlitePool,
    tenants: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, EventId>, StoreError> {
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT tenant_id, last_id FROM tenant_heads WHERE tenant_id IN (");
    let mut sep = qb.separated(", ");
    let mut any = false;
    for tenant in tenants {
        sep.push_bind(tenant);
        any = true;
    }
    if !any {
        return Ok(HashMap::new());
    }
    qb.push(")");
    let rows: Vec<(String, EventId)> = qb.build_query_as().fetch_all(pool).await?;
    Ok(rows.into_iter().collect())
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
impl EventStore for SqliteStore {
    async fn append_counted(
        &self,
        batch: Vec<AppendRequest>,
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        // In a task of its own, so a caller that goes away cannot stop an
        // append half-way: its query would still reach SQLite's thread and
        // might commit after the ids were handed out again.
        let (pool, ids, writes) = (self.pool.clone(), self.ids.clone(), self.writes.clone());
        tokio::spawn(
            async move { SqliteStore::append_group(&pool, &ids, &writes, &batch, now).await },
        )
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events e WHERE e.id > "));
        qb.push_bind(q.since);
        if let Some(before) = q.before {
            qb.push(" AND e.id < ").push_bind(before);
        }
        match &q.rooms {
            Scope::All => {
                if let Scope::Only(tenant) = &q.tenant {
                    qb.push(" AND e.tenant_id = ").push_bind(tenant.as_str());
                }
            }
            Scope::Only(rooms) => {
                qb.push(" AND e.id IN (SELECT event_id FROM event_rooms WHERE event_id > ")
                    .push_bind(q.since);
                if let Scope::Only(tenant) = &q.tenant {
                    qb.push(" AND tenant_id = ").push_bind(tenant.as_str());
                }
                qb.push(" AND room IN (");
                let mut sep = qb.separated(", ");
                for room in rooms {
                    sep.push_bind(room.as_str());
                }
                qb.push("))");
            }
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

    async fn room_tenants(&self, room: &Room, limit: u32) -> Result<Vec<TenantId>, StoreError> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT tenant_id FROM event_rooms WHERE room = ? LIMIT ?")
                .bind(room.as_str())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        Ok(names.iter().map(|t| TenantId::checked(t)).collect())
    }

    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn tenant_heads(&self, tenants: &[TenantId]) -> Result<Vec<EventId>, StoreError> {
        let heads = read_heads(&self.pool, tenants.iter().map(TenantId::as_str)).await?;
        Ok(tenants
            .iter()
            .map(|t| heads.get(t.as_str()).copied().unwrap_or(0))
            .collect())
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
        let _write = self.writes.turn().await;
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
        let _write = self.writes.turn().await;
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await;
        self.unsynced.close().await;
        self.pool.close().await;
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::pool_stats(&self.pool)
    }
}

#[cfg(test)]
mod tests;
