//! The group append: every request of a group commit stored in one
//! transaction, with ids assigned in commit order.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::SqlitePool;
use sqlx::{QueryBuilder, Sqlite};

use super::gate::WriteGate;
use super::keys::stored_event_keys;
use super::metrics::push_rollup;
use super::trip::CloseUnlessDone;
use super::{last_stored_id, read_heads, IdCache, Ids, SqliteStore};
use crate::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use crate::protocol::{Event, EventId, ValidEvent};
use crate::server::metrics::rollup::Rollup;
use crate::server::storage::{
    AppendOutcome, AppendRequest, Appended, Counted, KeyReused, StoreError,
};

/// Events per multi-row INSERT; 9 bound values each stays far below SQLite's
/// limit of 32,766 variables per statement.
const INSERT_CHUNK: usize = 500;

/// Groups up to this many rows keep their prepared statements cached: the
/// realtime case, where the SQL text repeats. Larger groups vary in size,
/// and each would cache its own set of big statements.
const CACHED_GROUP_ROWS: usize = 16;

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
    fingerprint: Option<&'a str>,
}

impl IdCache {
    /// The next id, for a new event of `tenant`; returns it with the
    /// tenant's previous id.
    fn assign(&mut self, tenant: &str) -> (EventId, EventId) {
        let id = self.next;
        self.next += 1;
        let prev = self.heads.insert(tenant.to_string(), id).unwrap_or(0);
        (id, prev)
    }
}

impl SqliteStore {
    pub(super) async fn append_group(
        pool: &SqlitePool,
        ids: &Ids,
        writes: &WriteGate,
        batch: &[AppendRequest],
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        let mut cache = ids.cache.lock().await;
        let received_at = now.timestamp_millis();
        let keyed = batch.iter().any(|r| {
            r.idempotency_key.is_some() || r.events.iter().any(|e| e.idempotency_key.is_some())
        });
        let mut retried = false;
        loop {
            // Taken: a failed append leaves no cache behind.
            let mut ids = match cache.take() {
                Some(ids) => ids,
                None => IdCache {
                    next: last_stored_id(pool).await? + 1,
                    heads: HashMap::new(),
                },
            };
            let mut unknown: Vec<&str> = Vec::new();
            for event in batch.iter().flat_map(|r| &r.events) {
                let tenant = event.tenant_id.as_str();
                if !ids.heads.contains_key(tenant) && !unknown.contains(&tenant) {
                    unknown.push(tenant);
                }
            }
            if !unknown.is_empty() {
                let stored = read_heads(pool, unknown.iter().copied()).await?;
                for tenant in unknown {
                    let head = stored.get(tenant).copied().unwrap_or(0);
                    ids.heads.insert(tenant.to_string(), head);
                }
            }
            let write = writes.urgent().await;
            let appended = if keyed {
                SqliteStore::append_keyed(pool, batch, &mut ids, received_at).await
            } else {
                SqliteStore::append_unkeyed(pool, batch, &mut ids, received_at).await
            };
            drop(write);
            match appended {
                Ok(counted) => {
                    *cache = Some(ids);
                    return Ok(counted);
                }
                Err(e) if !retried && is_id_taken(&e) => {
                    tracing::warn!("another writer took event ids in the database; appending again from its ids");
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The common case: no idempotency key to look up, so every id is known
    /// before SQLite is asked anything, and the whole group travels to
    /// SQLite's thread as one query (`BEGIN`, the INSERTs, `COMMIT`): one
    /// round trip instead of one per statement, each of which could wait
    /// for a busy worker thread while a large fan-out ran.
    async fn append_unkeyed(
        pool: &SqlitePool,
        batch: &[AppendRequest],
        ids: &mut IdCache,
        received_at: i64,
    ) -> Result<Counted, StoreError> {
        let outcomes: Vec<Outcome> = batch
            .iter()
            .map(|req| {
                let events = req
                    .events
                    .iter()
                    .map(|ev| {
                        let (id, prev) = ids.assign(&ev.tenant_id);
                        Appended {
                            event: to_event(id, ev),
                            new: true,
                            prev,
                        }
                    })
                    .collect();
                Ok(AppendOutcome { events })
            })
            .collect();
        let pending = pending_rows(batch, &outcomes);
        if pending.is_empty() {
            return Ok(Counted {
                outcomes,
                rollup: Rollup::default(),
            });
        }
        let rollup = Rollup::of(pending.iter().map(|p| p.event));
        let mut conn = CloseUnlessDone::acquire(pool).await?;
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE; ");
        push_inserts(&mut qb, &pending, received_at);
        push_rollup(&mut qb, &rollup);
        qb.push("COMMIT;");
        let query = qb.build().persistent(pending.len() <= CACHED_GROUP_ROWS);
        if let Err(e) = query.execute(conn.conn()).await {
            conn.roll_back().await;
            return Err(e.into());
        }
        conn.done();
        Ok(Counted { outcomes, rollup })
    }

    /// The general append: looks idempotency keys up inside the
    /// transaction, then stores what is new. Each request is checked
    /// whole before anything of it is assigned, so a refused one leaves no
    /// trace (no id taken, no key remembered).
    async fn append_keyed(
        pool: &SqlitePool,
        batch: &[AppendRequest],
        ids: &mut IdCache,
        received_at: i64,
    ) -> Result<Counted, StoreError> {
        // IMMEDIATE: the write lock before the first read. A deferred
        // transaction that reads the keys and then writes fails at once
        // (SQLITE_BUSY_SNAPSHOT, no busy wait) when another connection
        // wrote in between, as the metric samples and sweeps do.
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let request_cutoff = received_at - IDEMPOTENCY_TTL.as_millis() as i64;
        let event_cutoff = received_at - EVENT_KEY_TTL.as_millis() as i64;
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        // Keys first seen inside this batch are not in the tables yet.
        let mut batch_keys: HashMap<(&str, &str), usize> = HashMap::new();
        let mut batch_event_keys: HashMap<(&str, &str), FirstUse<'_>> = HashMap::new();
        let stored_keys = stored_event_keys(&mut tx, batch).await?;

        'requests: for (index, req) in batch.iter().enumerate() {
            if let Some(key) = req.idempotency_key.as_deref() {
                let reused = || reused("Idempotency-Key".into(), key, "request", IDEMPOTENCY_TTL);
                if let Some(&earlier) = batch_keys.get(&(req.key_scope_text(), key)) {
                    outcomes.push(match &outcomes[earlier] {
                        Ok(first)
                            if same(
                                batch[earlier].fingerprint.as_deref(),
                                req.fingerprint.as_deref(),
                            ) =>
                        {
                            Ok(repeat(first.events().cloned().collect()))
                        }
                        _ => Err(reused()),
                    });
                    continue;
                }
                let stored: Option<(String, Option<String>)> = sqlx::query_as(
                    "SELECT event_ids, fingerprint FROM idempotency_keys \
                     WHERE scope = ? AND key = ? AND created_at > ?",
                )
                .bind(req.key_scope_text())
                .bind(key)
                .bind(request_cutoff)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((ids, fingerprint)) = stored {
                    if !same(fingerprint.as_deref(), req.fingerprint.as_deref()) {
                        outcomes.push(Err(reused()));
                        continue;
                    }
                    let ids: Vec<EventId> =
                        serde_json::from_str(&ids).map_err(|e| StoreError::Corrupt {
                            id: 0,
                            message: format!("idempotency key `{key}`: {e}"),
                        })?;
                    let events = Self::load_ids(&mut tx, &ids).await?;
                    outcomes.push(Ok(repeat(events)));
                    continue;
                }
            }
            // Resolve every event key before assigning anything.
            let mut earlier: Vec<Option<Arc<Event>>> = Vec::with_capacity(req.events.len());
            let mut own_keys: Vec<(&str, &str)> = Vec::new();
            for (i, ev) in req.events.iter().enumerate() {
                let Some(key) = ev.idempotency_key.as_deref() else {
                    earlier.push(None);
                    continue;
                };
                let field = if req.events.len() > 1 {
                    format!("[{i}].idempotency_key")
                } else {
                    "idempotency_key".into()
                };
                if own_keys.contains(&(ev.tenant_id.as_str(), key)) {
                    // Two events of one request under one key: which one
                    // the key means is unknowable.
                    outcomes.push(Err(reused(field, key, "event", EVENT_KEY_TTL)));
                    continue 'requests;
                }
                own_keys.push((ev.tenant_id.as_str(), key));
                if let Some((event, fingerprint)) =
                    batch_event_keys.get(&(ev.tenant_id.as_str(), key))
                {
                    if !same(*fingerprint, ev.fingerprint.as_deref()) {
                        outcomes.push(Err(reused(field, key, "event", EVENT_KEY_TTL)));
                        continue 'requests;
                    }
                    earlier.push(Some(event.clone()));
                    continue;
                }
                match stored_keys
                    .get(&(ev.tenant_id.to_string(), key.to_string()))
                    .cloned()
                {
                    None => earlier.push(None),
                    Some((id, _, at)) if at <= event_cutoff => {
                        // An expired use still holds the unique index: the
                        // key is free, so take it from that event.
                        sqlx::query(
                            "UPDATE events SET idempotency_key = NULL, idempotency_fingerprint = NULL \
                             WHERE id = ?",
                        )
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        earlier.push(None);
                    }
                    Some((_, fingerprint, _))
                        if !same(fingerprint.as_deref(), ev.fingerprint.as_deref()) =>
                    {
                        outcomes.push(Err(reused(field, key, "event", EVENT_KEY_TTL)));
                        continue 'requests;
                    }
                    Some((id, _, _)) => earlier.push(Self::load_ids(&mut tx, &[id]).await?.pop()),
                }
            }
            let mut events = Vec::with_capacity(req.events.len());
            for (ev, earlier) in req.events.iter().zip(earlier) {
                if let Some(event) = earlier {
                    events.push(Appended {
                        event,
                        new: false,
                        prev: 0,
                    });
                    continue;
                }
                let (id, prev) = ids.assign(&ev.tenant_id);
                let event = to_event(id, ev);
                if let Some(key) = ev.idempotency_key.as_deref() {
                    batch_event_keys.insert(
                        (ev.tenant_id.as_str(), key),
                        (event.clone(), ev.fingerprint.as_deref()),
                    );
                }
                events.push(Appended {
                    event,
                    new: true,
                    prev,
                });
            }
            if let Some(key) = req.idempotency_key.as_deref() {
                batch_keys.insert((req.key_scope_text(), key), index);
                let ids: Vec<EventId> = events.iter().map(|a| a.event.id).collect();
                // REPLACE: an expired row of the same key may still be there.
                sqlx::query(
                    "INSERT OR REPLACE INTO idempotency_keys (scope, key, event_ids, created_at, fingerprint) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(req.key_scope_text())
                .bind(key)
                .bind(serde_json::to_string(&ids).expect("ids serialize"))
                .bind(received_at)
                .bind(req.fingerprint.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            outcomes.push(Ok(AppendOutcome { events }));
        }

        let pending = pending_rows(batch, &outcomes);
        let rollup = Rollup::of(pending.iter().map(|p| p.event));
        if !pending.is_empty() {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
            push_inserts(&mut qb, &pending, received_at);
            push_rollup(&mut qb, &rollup);
            qb.build()
                .persistent(pending.len() <= CACHED_GROUP_ROWS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Counted { outcomes, rollup })
    }
}

/// One request's result.
type Outcome = Result<AppendOutcome, KeyReused>;

/// An event key's first use inside a group: its event and fingerprint.
type FirstUse<'a> = (Arc<Event>, Option<&'a str>);

/// Whether a key's first use and this one asked for the same thing. A key
/// stored before fingerprints were (NULL) matches anything, as it did then.
fn same(stored: Option<&str>, now: Option<&str>) -> bool {
    stored.is_none() || stored == now
}

/// The earlier events of a repeated request: nothing new.
fn repeat(events: Vec<Arc<Event>>) -> AppendOutcome {
    let events = events
        .into_iter()
        .map(|event| Appended {
            event,
            new: false,
            prev: 0,
        })
        .collect();
    AppendOutcome { events }
}

/// Whether an append failed because an id it assigned is taken: another
/// writer appended to the same file since the cache was read.
fn is_id_taken(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            db.is_unique_violation() && db.message().contains("events.id")
        }
        _ => false,
    }
}

fn reused(field: String, key: &str, what: &'static str, ttl: std::time::Duration) -> KeyReused {
    KeyReused {
        field,
        key: key.to_string(),
        what,
        hours: ttl.as_secs() / 3600,
    }
}

/// The new events of `outcomes`, beside their events' keys.
fn pending_rows<'a>(batch: &'a [AppendRequest], outcomes: &'a [Outcome]) -> Vec<Pending<'a>> {
    let mut pending = Vec::new();
    for (req, outcome) in batch.iter().zip(outcomes) {
        let Ok(outcome) = outcome else { continue };
        for (appended, ev) in outcome.events.iter().zip(&req.events) {
            if appended.new {
                pending.push(Pending {
                    event: &appended.event,
                    key: ev.idempotency_key.as_deref(),
                    fingerprint: ev.fingerprint.as_deref(),
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
            "INSERT INTO events (id, tenant_id, event_type, rooms, data, ts, received_at, idempotency_key, idempotency_fingerprint) ",
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
                .push_bind(p.key)
                .push_bind(p.fingerprint);
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
    // Rows are in id order: the last of each tenant is its new head.
    let heads: HashMap<&str, EventId> = rows
        .iter()
        .map(|p| (p.event.tenant_id.as_str(), p.event.id))
        .collect();
    let heads: Vec<(&str, EventId)> = heads.into_iter().collect();
    for chunk in heads.chunks(INSERT_CHUNK) {
        qb.push("INSERT INTO tenant_heads (tenant_id, last_id) ");
        qb.push_values(chunk, |mut b, (tenant, id)| {
            b.push_bind(*tenant).push_bind(*id);
        });
        qb.push(" ON CONFLICT (tenant_id) DO UPDATE SET last_id = excluded.last_id; ");
    }
}
