//! The group append: every request of a group commit stored in one
//! transaction, with ids assigned in commit order.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{QueryBuilder, Sqlite};

use super::{last_stored_id, Ids, SqliteStore};
use crate::protocol::{Event, EventId, ValidEvent};
use crate::server::storage::{AppendOutcome, AppendRequest, StoreError};

/// Events per multi-row INSERT; 8 bound values each stays far below SQLite's
/// limit of 32,766 variables per statement.
const INSERT_CHUNK: usize = 500;

/// Groups up to this many rows keep their prepared statements cached: the
/// realtime case, where the SQL text repeats. Larger groups vary in size,
/// and each would cache its own set of big statements.
const CACHED_GROUP_ROWS: usize = 16;

/// A pooled connection that is closed, not returned, if dropped before
/// [`CloseUnlessDone::done`]: an append stopped mid-flight (its task dropped
/// when the runtime shuts down) may leave its transaction open, and closing
/// the connection rolls it back.
struct CloseUnlessDone(Option<PoolConnection<Sqlite>>);

impl CloseUnlessDone {
    fn conn(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("connection until done")
    }

    fn done(mut self) {
        self.0.take();
    }
}

impl Drop for CloseUnlessDone {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

fn to_event(id: EventId, ev: &ValidEvent) -> Arc<Event> {
    Arc::new(Event {
        id,
        event_type: ev.event_type.clone(),
        tenant_id: ev.tenant_id.clone(),
        room: ev.rooms.first().cloned().unwrap_or_default(),
        rooms: ev.rooms.clone(),
        data: ev.data.clone(),
        timestamp: ev.timestamp,
    })
}

/// A row waiting for the multi-row insert.
struct Pending<'a> {
    event: &'a Event,
    key: Option<&'a str>,
}

impl SqliteStore {
    pub(super) async fn append_group(
        pool: &SqlitePool,
        ids: &Ids,
        batch: &[AppendRequest],
    ) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut next_id = ids.next.lock().await;
        let first = match next_id.take() {
            Some(id) => id,
            None => last_stored_id(pool).await? + 1,
        };
        let received_at = Utc::now().timestamp_millis();
        let keyed = batch.iter().any(|r| {
            r.idempotency_key.is_some() || r.events.iter().any(|e| e.idempotency_key.is_some())
        });
        let (outcomes, next) = if keyed {
            SqliteStore::append_keyed(pool, batch, first, received_at).await?
        } else {
            SqliteStore::append_unkeyed(pool, batch, first, received_at).await?
        };
        *next_id = Some(next);
        ids.committed.store(next - 1, Ordering::Release);
        Ok(outcomes)
    }

    /// The common case: no idempotency key to look up, so every id is known
    /// before SQLite is asked anything, and the whole group travels to
    /// SQLite's thread as one query (`BEGIN`, the INSERTs, `COMMIT`): one
    /// round trip instead of one per statement, each of which could wait
    /// for a busy worker thread while a large fan-out ran.
    async fn append_unkeyed(
        pool: &SqlitePool,
        batch: &[AppendRequest],
        mut next: EventId,
        received_at: i64,
    ) -> Result<(Vec<AppendOutcome>, EventId), StoreError> {
        let outcomes: Vec<AppendOutcome> = batch
            .iter()
            .map(|req| {
                let events: Vec<Arc<Event>> = req
                    .events
                    .iter()
                    .map(|ev| {
                        next += 1;
                        to_event(next - 1, ev)
                    })
                    .collect();
                let fresh = vec![true; events.len()];
                AppendOutcome { events, fresh }
            })
            .collect();
        let pending = pending_rows(batch, &outcomes);
        if pending.is_empty() {
            return Ok((outcomes, next));
        }
        let mut conn = CloseUnlessDone(Some(pool.acquire().await?));
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE; ");
        push_inserts(&mut qb, &pending, received_at);
        qb.push("COMMIT;");
        let query = qb.build().persistent(pending.len() <= CACHED_GROUP_ROWS);
        if let Err(e) = query.execute(conn.conn()).await {
            // The statements stopped at the one that failed, inside the
            // transaction: end it, or give the connection up.
            if sqlx::query("ROLLBACK").execute(conn.conn()).await.is_ok() {
                conn.done();
            }
            return Err(e.into());
        }
        conn.done();
        Ok((outcomes, next))
    }

    /// The general append: looks idempotency keys up inside the
    /// transaction, then stores what is new.
    async fn append_keyed(
        pool: &SqlitePool,
        batch: &[AppendRequest],
        mut next: EventId,
        received_at: i64,
    ) -> Result<(Vec<AppendOutcome>, EventId), StoreError> {
        let mut tx = pool.begin().await?;
        let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(batch.len());
        // Keys first seen inside this batch are not in the tables yet.
        let mut batch_keys: HashMap<(&str, &str), usize> = HashMap::new();
        let mut batch_event_keys: HashMap<(&str, &str), Arc<Event>> = HashMap::new();

        for (index, req) in batch.iter().enumerate() {
            if let Some(key) = req.idempotency_key.as_deref() {
                if let Some(&earlier) = batch_keys.get(&(req.key_scope.as_str(), key)) {
                    let events = outcomes[earlier].events.clone();
                    let fresh = vec![false; events.len()];
                    outcomes.push(AppendOutcome { events, fresh });
                    continue;
                }
                let stored: Option<String> = sqlx::query_scalar(
                    "SELECT event_ids FROM idempotency_keys WHERE scope = ? AND key = ?",
                )
                .bind(&req.key_scope)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(ids) = stored {
                    let ids: Vec<EventId> =
                        serde_json::from_str(&ids).map_err(|e| StoreError::Corrupt {
                            id: 0,
                            message: format!("idempotency key `{key}`: {e}"),
                        })?;
                    let events = Self::load_ids(&mut tx, &ids).await?;
                    let fresh = vec![false; events.len()];
                    outcomes.push(AppendOutcome { events, fresh });
                    continue;
                }
                batch_keys.insert((req.key_scope.as_str(), key), index);
            }
            let mut events = Vec::with_capacity(req.events.len());
            let mut fresh = Vec::with_capacity(req.events.len());
            for ev in &req.events {
                if let Some(key) = ev.idempotency_key.as_deref() {
                    if let Some(earlier) = batch_event_keys.get(&(ev.tenant_id.as_str(), key)) {
                        events.push(earlier.clone());
                        fresh.push(false);
                        continue;
                    }
                    let existing: Option<EventId> = sqlx::query_scalar(
                        "SELECT id FROM events WHERE tenant_id = ? AND idempotency_key = ?",
                    )
                    .bind(&ev.tenant_id)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(id) = existing {
                        events.extend(Self::load_ids(&mut tx, &[id]).await?);
                        fresh.push(false);
                        continue;
                    }
                }
                let event = to_event(next, ev);
                next += 1;
                if let Some(key) = ev.idempotency_key.as_deref() {
                    batch_event_keys.insert((ev.tenant_id.as_str(), key), event.clone());
                }
                events.push(event);
                fresh.push(true);
            }
            if let Some(key) = req.idempotency_key.as_deref() {
                let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                sqlx::query(
                    "INSERT INTO idempotency_keys (scope, key, event_ids, created_at) VALUES (?, ?, ?, ?)",
                )
                .bind(&req.key_scope)
                .bind(key)
                .bind(serde_json::to_string(&ids).expect("ids serialize"))
                .bind(received_at)
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(AppendOutcome { events, fresh });
        }

        let pending = pending_rows(batch, &outcomes);
        if !pending.is_empty() {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
            push_inserts(&mut qb, &pending, received_at);
            qb.build()
                .persistent(pending.len() <= CACHED_GROUP_ROWS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((outcomes, next))
    }
}

/// The new events of `outcomes`, beside their events' keys.
fn pending_rows<'a>(batch: &'a [AppendRequest], outcomes: &'a [AppendOutcome]) -> Vec<Pending<'a>> {
    let mut pending = Vec::new();
    for (req, outcome) in batch.iter().zip(outcomes) {
        for ((event, fresh), ev) in outcome.events.iter().zip(&outcome.fresh).zip(&req.events) {
            if *fresh {
                pending.push(Pending {
                    event,
                    key: ev.idempotency_key.as_deref(),
                });
            }
        }
    }
    pending
}

/// Multi-row INSERTs of `rows` into `events` and `event_rooms`, each ended
/// by `;`. Chunked so every statement stays far below SQLite's limit of
/// 32,766 bound values (one query may hold several statements).
fn push_inserts<'a>(qb: &mut QueryBuilder<'a, Sqlite>, rows: &'a [Pending<'a>], received_at: i64) {
    for chunk in rows.chunks(INSERT_CHUNK) {
        qb.push(
            "INSERT INTO events (id, tenant_id, event_type, rooms, data, ts, received_at, idempotency_key) ",
        );
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(p.event.id)
                .push_bind(&p.event.tenant_id)
                .push_bind(&p.event.event_type)
                .push_bind(serde_json::to_string(&p.event.rooms).expect("rooms serialize"))
                .push_bind(p.event.data.to_string())
                .push_bind(
                    p.event
                        .timestamp
                        .to_rfc3339_opts(SecondsFormat::Millis, true),
                )
                .push_bind(received_at)
                .push_bind(p.key);
        });
        qb.push("; ");
    }
    let pairs: Vec<(&Event, &String)> = rows
        .iter()
        .flat_map(|p| p.event.rooms.iter().map(move |r| (p.event, r)))
        .collect();
    for chunk in pairs.chunks(INSERT_CHUNK * 2) {
        qb.push("INSERT INTO event_rooms (tenant_id, room, event_id) ");
        qb.push_values(chunk.iter().copied(), |mut b, (event, room)| {
            b.push_bind(&event.tenant_id)
                .push_bind(room.as_str())
                .push_bind(event.id);
        });
        qb.push("; ");
    }
}
