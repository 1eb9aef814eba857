//! The group append on PostgreSQL: every request of a group commit stored
//! in one transaction, ids assigned in commit order across every node.

use super::metrics::write_rollup;
use super::rows::write;
use crate::server::metrics::rollup::Rollup;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPool};

use super::{cutoff, millis, pg_text, PgStore};
use crate::protocol::limits::{EVENT_KEY_TTL, IDEMPOTENCY_TTL};
use crate::protocol::{Event, EventId, ValidEvent};
use crate::server::storage::{
    AppendOutcome, AppendRequest, Appended, Counted, KeyReused, StoreError,
};

/// The advisory lock every append holds until it commits. Two `int4`s:
/// PostgreSQL keeps that key space apart from the single-`bigint` one
/// sqlx's migrator locks in, so the two can never be the same lock.
const APPEND_LOCK: (i32, i32) = (0x7079_7461, 1); // "pyta", the event log

/// One request's result.
pub(super) type Outcome = Result<AppendOutcome, KeyReused>;

/// What the tables hold of the keys a group uses, read once under the
/// lock before anything is decided.
#[derive(Default)]
struct Known {
    /// Live request keys by (scope, stored key): their events' ids and
    /// fingerprint.
    requests: HashMap<(String, String), (Vec<EventId>, Option<String>)>,
    /// Event keys still held by an event, live or expired, by (tenant,
    /// stored key): the event, its fingerprint and when it was received.
    events: HashMap<(String, String), EventKeyUse>,
    /// The events those keys name.
    loaded: HashMap<EventId, Arc<Event>>,
}

impl Known {
    fn event(&self, id: EventId, key: &str) -> Result<Arc<Event>, StoreError> {
        self.loaded
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                id,
                message: format!("named by idempotency key `{key}` but missing"),
            })
    }
}

/// An event key's stored use: the event, its fingerprint, and when it
/// was received.
type EventKeyUse = (EventId, Option<String>, Received);

/// When an event was received.
type Received = DateTime<Utc>;

/// Ids to hand out: the next one and each tenant's newest.
struct Ids {
    next: EventId,
    heads: HashMap<String, EventId>,
}

impl Ids {
    /// The next id, for a new event of `tenant`; returns it with the
    /// tenant's previous id.
    fn assign(&mut self, tenant: &str) -> (EventId, EventId) {
        let id = self.next;
        self.next += 1;
        let prev = self.heads.insert(tenant.to_string(), id).unwrap_or(0);
        (id, prev)
    }
}

/// What an append writes besides its new events.
#[derive(Default)]
pub(super) struct Plan {
    pub(super) outcomes: Vec<Outcome>,
    /// Request keys to remember: (scope, stored key, ids, fingerprint).
    pub(super) keys: Vec<(String, String, Vec<EventId>, Option<String>)>,
    /// Events whose expired key a new event takes over.
    pub(super) clear: Vec<EventId>,
}

impl PgStore {
    /// Stores a group in one transaction.
    ///
    /// # Ordering
    ///
    /// The transaction first takes `pg_advisory_xact_lock(APPEND_LOCK)`,
    /// the same lock on every node, held until it commits or rolls back.
    /// Only then does it read the last assigned id and the tenants' heads:
    /// in a statement of its own, because under READ COMMITTED (asked for
    /// explicitly, whatever the server's default) each statement sees
    /// what committed before it started, so that read sees every append
    /// that held the lock before, and no other append can commit until
    /// this one has. Ids and `prev` are assigned from it in request
    /// order, and the commit makes the rows visible before PostgreSQL
    /// releases the lock. So appends commit one at a time, in the order
    /// of their ids: an append that commits after another holds greater
    /// ids, and once any id is visible every smaller one is. A transaction
    /// that fails rolls back before releasing the lock, its ids unused, so
    /// the next one assigns them again and ids stay dense. The same lock
    /// orders the idempotency lookups: two nodes appending one key are
    /// served one after the other, and the second finds the first's.
    pub(super) async fn append_group(
        pool: &PgPool,
        batch: &[AppendRequest],
        now: DateTime<Utc>,
    ) -> Result<Counted, StoreError> {
        let received_at = millis(now);
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(APPEND_LOCK.0)
            .bind(APPEND_LOCK.1)
            .execute(&mut *tx)
            .await?;
        let mut tenants: Vec<&str> = batch
            .iter()
            .flat_map(|r| &r.events)
            .map(|e| e.tenant_id.as_str())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        tenants.sort_unstable();
        // The last id is the greater of the counter and the newest row, so
        // neither a deleted newest event nor a row written around the
        // counter makes an id be handed out twice. One row per known head,
        // and one without a head when there is none.
        let rows: Vec<(EventId, Option<String>, Option<EventId>)> = sqlx::query_as(
            "SELECT c.last_id, h.tenant_id, h.last_id \
             FROM (SELECT GREATEST((SELECT last_id FROM event_id_head), \
                                   (SELECT COALESCE(MAX(id), 0) FROM events))::bigint AS last_id) c \
             LEFT JOIN tenant_heads h ON h.tenant_id = ANY($1)",
        )
        .bind(&tenants)
        .fetch_all(&mut *tx)
        .await?;
        let last = rows.first().map_or(0, |row| row.0);
        let heads = rows
            .into_iter()
            .filter_map(|(_, tenant, head)| Some((tenant?, head?)))
            .collect();
        let mut ids = Ids {
            next: last + 1,
            heads,
        };
        let keyed = batch.iter().any(|r| {
            r.idempotency_key.is_some() || r.events.iter().any(|e| e.idempotency_key.is_some())
        });
        let known = if keyed {
            lookup(&mut tx, batch, received_at).await?
        } else {
            Known::default()
        };
        let plan = resolve(batch, &known, &mut ids, cutoff(received_at, EVENT_KEY_TTL))?;
        if !plan.clear.is_empty() {
            // Before the insert: the expired use still holds the unique
            // index the new event's key goes into.
            sqlx::query(
                "UPDATE events SET idempotency_key = NULL, idempotency_fingerprint = NULL \
                 WHERE id = ANY($1)",
            )
            .bind(&plan.clear)
            .execute(&mut *tx)
            .await?;
        }
        write(&mut tx, batch, &plan, received_at, ids.next - 1).await?;
        let rollup = Rollup::of(
            plan.outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok())
                .flat_map(|o| &o.events)
                .filter(|a| a.new)
                .map(|a| a.event.as_ref()),
        );
        write_rollup(&mut tx, &rollup).await?;
        tx.commit().await?;
        Ok(Counted {
            outcomes: plan.outcomes,
            rollup,
        })
    }
}

/// Reads every key the group names, in three statements whatever its size.
async fn lookup(
    conn: &mut PgConnection,
    batch: &[AppendRequest],
    received_at: DateTime<Utc>,
) -> Result<Known, StoreError> {
    let mut known = Known::default();
    let (mut scopes, mut keys) = (Vec::new(), Vec::new());
    for req in batch {
        if let Some(key) = req.idempotency_key.as_deref() {
            scopes.push(req.key_scope_text());
            keys.push(pg_text(key).into_owned());
        }
    }
    if !keys.is_empty() {
        let rows: Vec<(String, String, Vec<EventId>, Option<String>)> = sqlx::query_as(
            "SELECT k.scope, k.key, k.event_ids, k.fingerprint \
             FROM idempotency_keys k \
             JOIN UNNEST($1::text[], $2::text[]) AS q(scope, key) \
               ON k.scope = q.scope AND k.key = q.key \
             WHERE k.created_at > $3",
        )
        .bind(&scopes)
        .bind(&keys)
        .bind(cutoff(received_at, IDEMPOTENCY_TTL))
        .fetch_all(&mut *conn)
        .await?;
        for (scope, key, ids, fingerprint) in rows {
            known.requests.insert((scope, key), (ids, fingerprint));
        }
    }
    let (mut tenants, mut keys) = (Vec::new(), Vec::new());
    for ev in batch.iter().flat_map(|r| &r.events) {
        if let Some(key) = ev.idempotency_key.as_deref() {
            tenants.push(ev.tenant_id.as_str());
            keys.push(pg_text(key).into_owned());
        }
    }
    if !keys.is_empty() {
        let rows: Vec<(String, String, EventId, Option<String>, Received)> = sqlx::query_as(
            "SELECT e.tenant_id, e.idempotency_key, e.id, e.idempotency_fingerprint, \
                        e.received_at \
                 FROM events e \
                 JOIN (SELECT DISTINCT * FROM UNNEST($1::text[], $2::text[])) AS q(tenant_id, key) \
                   ON e.tenant_id = q.tenant_id AND e.idempotency_key = q.key \
                 WHERE e.idempotency_key IS NOT NULL",
        )
        .bind(&tenants)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        for (tenant, key, id, fingerprint, at) in rows {
            known.events.insert((tenant, key), (id, fingerprint, at));
        }
    }
    let event_cutoff = cutoff(received_at, EVENT_KEY_TTL);
    let mut wanted: Vec<EventId> = known
        .requests
        .values()
        .flat_map(|(ids, _)| ids.iter().copied())
        .chain(
            known
                .events
                .values()
                .filter(|(_, _, at)| *at > event_cutoff)
                .map(|(id, _, _)| *id),
        )
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    known.loaded = PgStore::load_ids(conn, &wanted).await?;
    Ok(known)
}

/// Decides every request in order from what the tables hold, as the SQLite
/// store does: each request is checked whole before anything of it is
/// assigned, so a refused one leaves no trace (no id taken, no key
/// remembered). An event key received at or before `event_cutoff` has
/// expired.
fn resolve(
    batch: &[AppendRequest],
    known: &Known,
    ids: &mut Ids,
    event_cutoff: DateTime<Utc>,
) -> Result<Plan, StoreError> {
    let mut plan = Plan::default();
    // Keys first used inside this group are not in the tables yet.
    let mut batch_keys: HashMap<(&str, &str), usize> = HashMap::new();
    let mut batch_event_keys: HashMap<(&str, &str), FirstUse<'_>> = HashMap::new();

    'requests: for (index, req) in batch.iter().enumerate() {
        if let Some(key) = req.idempotency_key.as_deref() {
            let reused = || reused("Idempotency-Key".into(), key, "request", IDEMPOTENCY_TTL);
            if let Some(&earlier) = batch_keys.get(&(req.key_scope_text(), key)) {
                let outcome = match &plan.outcomes[earlier] {
                    Ok(first)
                        if same(
                            batch[earlier].fingerprint.as_deref(),
                            req.fingerprint.as_deref(),
                        ) =>
                    {
                        Ok(repeat(first.events().cloned().collect()))
                    }
                    _ => Err(reused()),
                };
                plan.outcomes.push(outcome);
                continue;
            }
            let stored_key = (req.key_scope_text().to_string(), pg_text(key).into_owned());
            if let Some((stored, fingerprint)) = known.requests.get(&stored_key) {
                if !same(fingerprint.as_deref(), req.fingerprint.as_deref()) {
                    plan.outcomes.push(Err(reused()));
                    continue;
                }
                let events = stored
                    .iter()
                    .map(|id| known.event(*id, key))
                    .collect::<Result<_, _>>()?;
                plan.outcomes.push(Ok(repeat(events)));
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
            let refused = || {
                let field = if req.events.len() > 1 {
                    format!("[{i}].idempotency_key")
                } else {
                    "idempotency_key".into()
                };
                reused(field, key, "event", EVENT_KEY_TTL)
            };
            if own_keys.contains(&(ev.tenant_id.as_str(), key)) {
                // Two events of one request under one key: which one the
                // key means is unknowable.
                plan.outcomes.push(Err(refused()));
                continue 'requests;
            }
            own_keys.push((ev.tenant_id.as_str(), key));
            if let Some((event, fingerprint)) = batch_event_keys.get(&(ev.tenant_id.as_str(), key))
            {
                if !same(*fingerprint, ev.fingerprint.as_deref()) {
                    plan.outcomes.push(Err(refused()));
                    continue 'requests;
                }
                earlier.push(Some(event.clone()));
                continue;
            }
            let stored_key = (ev.tenant_id.clone(), pg_text(key).into_owned());
            match known.events.get(&stored_key) {
                None => earlier.push(None),
                Some((id, _, at)) if *at <= event_cutoff => {
                    // An expired use still holds the unique index: the key
                    // is free, so take it from that event.
                    if !plan.clear.contains(id) {
                        plan.clear.push(*id);
                    }
                    earlier.push(None);
                }
                Some((_, fingerprint, _))
                    if !same(fingerprint.as_deref(), ev.fingerprint.as_deref()) =>
                {
                    plan.outcomes.push(Err(refused()));
                    continue 'requests;
                }
                Some((id, _, _)) => earlier.push(Some(known.event(*id, key)?)),
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
            plan.keys.push((
                req.key_scope_text().to_string(),
                pg_text(key).into_owned(),
                events.iter().map(|a| a.event.id).collect(),
                req.fingerprint.clone(),
            ));
        }
        plan.outcomes.push(Ok(AppendOutcome { events }));
    }
    Ok(plan)
}

/// An event key's first use inside a group: its event and fingerprint.
type FirstUse<'a> = (Arc<Event>, Option<&'a str>);

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

/// Whether a key's first use and this one asked for the same thing. A key
/// stored without a fingerprint (NULL) matches anything, as in SQLite.
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

fn reused(field: String, key: &str, what: &'static str, ttl: std::time::Duration) -> KeyReused {
    KeyReused {
        field,
        key: key.to_string(),
        what,
        hours: ttl.as_secs() / 3600,
    }
}
