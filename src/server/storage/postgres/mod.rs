//! The PostgreSQL store, for several nodes sharing one database: the same
//! schema as SQLite's, ids assigned under one advisory lock held until
//! commit (see [`append`]), a pool that replaces dead connections so the
//! store recovers by itself when the server is back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, QueryBuilder, Row};

mod alerts;
mod append;
mod conversations;
mod jobs;
mod metrics;
mod rows;

use super::{AppendRequest, Counted, EventQuery, EventStore, StoreError};
use crate::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use crate::protocol::{Event, EventId, Room, Scope, TenantId};

/// How long opening a connection (or waiting for a free one) may take
/// before a call fails: at start, an unreachable server is reported after
/// it; while running, a call fails with [`StoreError::Database`] (503) and
/// the pool connects again on a later call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a session may sit in a transaction waiting for its client.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";

/// The columns [`row_to_event`] reads, from `events e`.
const COLUMNS: &str = "e.id, e.tenant_id, e.event_type, e.rooms, e.data::text, e.ts";

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    /// The job queue's wake counter and listener.
    jobs: jobs::Wake,
}

impl PgStore {
    /// Connects (at most `pool_size` connections) and runs the migrations.
    pub async fn open(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        // The URL may carry a password: never in a message.
        let connect_error = |cause| StoreError::Connect {
            url: crate::config::mask_url(url),
            cause,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(connect_error)?
            .application_name("pytake")
            // A node cut off mid-append (a frozen process, a partition the
            // TCP stack has not noticed) would hold the append lock, and
            // stop every node's appends, until PostgreSQL saw the
            // connection die; an append never waits on its client for
            // more than a round trip, so PostgreSQL ends such a session
            // (and its transaction, releasing the lock) after this long.
            .options([(
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            // A connection the server dropped (a restart, a failover) is
            // found here and replaced, instead of failing the call it was
            // handed to.
            .test_before_acquire(true)
            .connect_with(options.clone())
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => return Err(connect_error(connect_cause(e, &options).await)),
        };
        // Several nodes may start at once: sqlx's migrator holds a
        // session-level `pg_advisory_lock` (keyed by the database name) from
        // before it creates `_sqlx_migrations` until every migration is
        // applied (sqlx-core 0.8 `Migrator::run_direct` calling
        // sqlx-postgres's `Migrate::lock`), so one node migrates and the
        // others wait, then find nothing left to apply. That lock is the
        // single-bigint key space; the append lock uses the two-int4 one,
        // and PostgreSQL keeps the two apart.
        sqlx::migrate!("src/server/storage/migrations/postgres")
            .run(&pool)
            .await?;
        Ok(PgStore {
            pool,
            jobs: jobs::Wake::new(),
        })
    }

    async fn load_ids(
        conn: &mut PgConnection,
        ids: &[EventId],
    ) -> Result<HashMap<EventId, Arc<Event>>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events e WHERE e.id = ANY($1)"
        ))
        .bind(ids)
        .fetch_all(conn)
        .await?;
        rows.iter()
            .map(|row| row_to_event(row).map(|e| (e.id, Arc::new(e))))
            .collect()
    }
}

/// Why a pool could not open: the pool retries a refused connection until
/// its timeout and then reports only that it timed out, so one direct
/// attempt finds the cause (connection refused, unknown database, bad
/// password) for the message.
async fn connect_cause(e: sqlx::Error, options: &PgConnectOptions) -> sqlx::Error {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return e;
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options)).await {
        Ok(Err(cause)) => cause,
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            e
        }
        Err(_) => e,
    }
}

/// `t` to the millisecond, as the SQLite store keeps times: both give
/// back the same timestamps and compare times the same way.
fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The time a key first used before it has outlived `ttl` at `now`.
fn cutoff(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    millis(now) - chrono::Duration::milliseconds(ttl.as_millis() as i64)
}

/// Marks a key stored in [`pg_text`]'s hex form.
const HEX_MARK: char = '\u{1}';

/// An idempotency key as PostgreSQL can hold it. `text` cannot hold NUL,
/// which a key in a JSON body may (`"\u0000"`), and a refused value would
/// fail the whole group commit: such keys, and those starting with
/// [`HEX_MARK`], are stored as the mark and their bytes in hex. Every
/// other key is stored as given; no two keys share a form.
fn pg_text(key: &str) -> Cow<'_, str> {
    if !key.contains('\0') && !key.starts_with(HEX_MARK) {
        return Cow::Borrowed(key);
    }
    let mut text = String::with_capacity(1 + 2 * key.len());
    text.push(HEX_MARK);
    for b in key.bytes() {
        text.push_str(&format!("{b:02x}"));
    }
    Cow::Owned(text)
}

/// The stored heads of `tenants` (absent: no events yet).
async fn read_heads(
    conn: &mut PgConnection,
    tenants: &[&str],
) -> Result<HashMap<String, EventId>, StoreError> {
    if tenants.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, EventId)> =
        sqlx::query_as("SELECT tenant_id, last_id FROM tenant_heads WHERE tenant_id = ANY($1)")
            .bind(tenants)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().collect())
}

fn row_to_event(row: &PgRow) -> Result<Event, StoreError> {
    let id: EventId = row.try_get(0)?;
    let rooms: Vec<String> = row.try_get(3)?;
    let data =
        serde_json::from_str(row.try_get::<&str, _>(4)?).map_err(|e| StoreError::Corrupt {
            id,
            message: e.to_string(),
        })?;
    Ok(Event {
        id,
        event_type: row.try_get(2)?,
        tenant_id: row.try_get(1)?,
        room: rooms.first().cloned().unwrap_or_default(),
        rooms,
        data,
        timestamp: row.try_get(5)?,
    })
}

#[async_trait]
impl EventStore for PgStore {
    async fn append_counted(
        &self,
        batch: Vec<AppendRequest>,
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        // In a task of its own, so a caller that goes away cannot stop an
        // append half-way; whatever fails before the commit rolls back.
        let pool = self.pool.clone();
        tokio::spawn(async move { PgStore::append_group(&pool, &batch, now).await })
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    async fn events(&self, q: &EventQuery) -> Result<Vec<Event>, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
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
                if let Some(before) = q.before {
                    qb.push(" AND event_id < ").push_bind(before);
                }
                if let Scope::Only(tenant) = &q.tenant {
                    qb.push(" AND tenant_id = ").push_bind(tenant.as_str());
                }
                let rooms: Vec<&str> = rooms.iter().map(|r| r.as_str()).collect();
                qb.push(" AND room = ANY(").push_bind(rooms).push("))");
            }
        }
        if let Some(types) = &q.event_types {
            if !types.is_empty() {
                qb.push(" AND e.event_type = ANY(")
                    .push_bind(types.clone())
                    .push(")");
            }
        }
        qb.push(" ORDER BY e.id LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        rows.iter().map(row_to_event).collect()
    }

    async fn last_event_id(&self) -> Result<EventId, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::bigint FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn room_tenants(&self, room: &Room, limit: u32) -> Result<Vec<TenantId>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT tenant_id FROM event_rooms WHERE room = $1 LIMIT $2",
        )
        .bind(room.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(names.iter().map(|t| TenantId::checked(t)).collect())
    }

    async fn tenant_heads(&self, tenants: &[TenantId]) -> Result<Vec<EventId>, StoreError> {
        let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        let mut conn = self.pool.acquire().await?;
        let heads = read_heads(&mut conn, &names).await?;
        Ok(names
            .iter()
            .map(|t| heads.get(*t).copied().unwrap_or(0))
            .collect())
    }

    async fn id_before(&self, time: DateTime<Utc>) -> Result<EventId, StoreError> {
        let first: Option<EventId> =
            sqlx::query_scalar("SELECT MIN(id) FROM events WHERE received_at >= $1")
                .bind(millis(time))
                .fetch_one(&self.pool)
                .await?;
        match first {
            Some(id) => Ok(id - 1),
            None => self.last_event_id().await,
        }
    }

    async fn expire_idempotency_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let requests = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(cutoff(now, IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await?;
        // Served by the partial index `events_keyed_received`: only keyed
        // events are visited, not the whole history.
        let events = sqlx::query(
            "UPDATE events SET idempotency_key = NULL, idempotency_fingerprint = NULL \
             WHERE idempotency_key IS NOT NULL AND received_at < $1",
        )
        .bind(cutoff(now, EVENT_KEY_TTL))
        .execute(&self.pool)
        .await?;
        Ok(requests.rows_affected() + events.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::pool_stats(&self.pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_postgres_cannot_hold_are_stored_in_a_form_no_other_key_has() {
        assert_eq!(pg_text("order-17"), "order-17");
        let nul = pg_text("a\0b");
        assert_eq!(nul, "\u{1}610062");
        assert!(!nul.contains('\0'));
        // A key that looks like an encoded one is encoded too.
        assert_eq!(pg_text("\u{1}610062"), "\u{1}01363130303632");
    }

    #[test]
    fn times_are_kept_to_the_millisecond_like_sqlite() {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678901Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(millis(t).to_rfc3339(), "2026-01-02T03:04:05.678+00:00");
        let old = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.999999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(millis(old).to_rfc3339(), "1969-12-31T23:59:59.999+00:00");
    }
}
