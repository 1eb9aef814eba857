//! Event idempotency keys as an append finds them stored.

use std::collections::HashMap;

use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::protocol::EventId;
use crate::server::storage::{AppendRequest, StoreError};

/// Event keys to look up per query: two bound parameters each, under
/// SQLite's limit of 32 766.
const KEY_LOOKUP_CHUNK: usize = 8_000;

/// A stored use of an event key: its event, fingerprint and receive time.
pub(super) type StoredKey = (EventId, Option<String>, i64);

/// The stored uses of every event key in `batch`, by (tenant, key): one
/// query for the group rather than one per keyed event, each of which was
/// a round trip to SQLite's thread with the write lock held (webhook
/// events all carry keys). Read inside the transaction, before anything of
/// the group is written; a key's first use within the group is tracked by
/// the group itself.
pub(super) async fn stored_event_keys(
    tx: &mut SqliteConnection,
    batch: &[AppendRequest],
) -> Result<HashMap<(String, String), StoredKey>, StoreError> {
    let mut keys: Vec<(&str, &str)> = batch
        .iter()
        .flat_map(|r| &r.events)
        .filter_map(|e| Some((e.tenant_id.as_str(), e.idempotency_key.as_deref()?)))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut stored = HashMap::new();
    for chunk in keys.chunks(KEY_LOOKUP_CHUNK) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("WITH k (tenant_id, key) AS (");
        qb.push_values(chunk, |mut b, (tenant, key)| {
            b.push_bind(*tenant).push_bind(*key);
        });
        qb.push(
            ") SELECT e.tenant_id, e.idempotency_key, e.id, e.idempotency_fingerprint, \
             e.received_at FROM k JOIN events e ON e.tenant_id = k.tenant_id \
             AND e.idempotency_key = k.key AND e.idempotency_key IS NOT NULL",
        );
        let rows: Vec<(String, String, EventId, Option<String>, i64)> =
            qb.build_query_as().fetch_all(&mut *tx).await?;
        for (tenant, key, id, fingerprint, at) in rows {
            stored.insert((tenant, key), (id, fingerprint, at));
        }
    }
    Ok(stored)
}
