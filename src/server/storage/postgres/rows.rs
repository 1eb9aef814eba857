//! The statement that writes a planned group on PostgreSQL: every
//! table's rows as arrays, so one prepared statement serves any group.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::append::Plan;
use super::{millis, pg_text};
use crate::protocol::{Event, EventId, ValidEvent};
use crate::server::storage::{AppendRequest, StoreError};

/// Writes the plan's new events, their rooms, the tenants' heads, the
/// request keys and the last assigned id in one statement: each table's
/// rows travel as arrays (`UNNEST`), so the statement has a fixed number
/// of parameters whatever the group's size, and is prepared once per
/// connection.
pub(super) async fn write(
    conn: &mut PgConnection,
    batch: &[AppendRequest],
    plan: &Plan,
    received_at: DateTime<Utc>,
    last: EventId,
) -> Result<(), StoreError> {
    let mut events = EventColumns::default();
    let mut rooms = (Vec::new(), Vec::new(), Vec::new());
    let mut heads: HashMap<&str, EventId> = HashMap::new();
    for (req, outcome) in batch.iter().zip(&plan.outcomes) {
        let Ok(outcome) = outcome else { continue };
        for (appended, ev) in outcome.events.iter().zip(&req.events) {
            if !appended.new {
                continue;
            }
            let event = &appended.event;
            events.push(event, ev);
            for room in &event.rooms {
                rooms.0.push(event.tenant_id.as_str());
                rooms.1.push(room.as_str());
                rooms.2.push(event.id);
            }
            // In id order: the last of each tenant is its new head.
            heads.insert(&event.tenant_id, event.id);
        }
    }
    if events.id.is_empty() && plan.keys.is_empty() {
        return Ok(());
    }
    let (head_tenants, head_ids): (Vec<&str>, Vec<EventId>) = heads.into_iter().unzip();
    let mut keys = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (scope, key, ids, fingerprint) in &plan.keys {
        keys.0.push(scope.as_str());
        keys.1.push(key.as_str());
        keys.2.push(id_array(ids));
        keys.3.push(fingerprint.as_deref());
    }
    sqlx::query(
        "WITH new_events AS ( \
           INSERT INTO events (id, tenant_id, event_type, rooms, data, ts, received_at, \
                               idempotency_key, idempotency_fingerprint) \
           SELECT id, tenant_id, event_type, rooms::text[], data::json, ts, $9, key, fingerprint \
           FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
                       $6::timestamptz[], $7::text[], $8::text[]) \
                AS t(id, tenant_id, event_type, rooms, data, ts, key, fingerprint) \
         ), new_rooms AS ( \
           INSERT INTO event_rooms (tenant_id, room, event_id) \
           SELECT * FROM UNNEST($10::text[], $11::text[], $12::bigint[]) \
         ), new_heads AS ( \
           INSERT INTO tenant_heads (tenant_id, last_id) \
           SELECT * FROM UNNEST($13::text[], $14::bigint[]) \
           ON CONFLICT (tenant_id) DO UPDATE SET last_id = excluded.last_id \
         ), new_keys AS ( \
           INSERT INTO idempotency_keys (scope, key, event_ids, created_at, fingerprint) \
           SELECT scope, key, ids::bigint[], $9, fingerprint \
           FROM UNNEST($15::text[], $16::text[], $17::text[], $18::text[]) \
                AS t(scope, key, ids, fingerprint) \
           ON CONFLICT (scope, key) DO UPDATE SET event_ids = excluded.event_ids, \
              created_at = excluded.created_at, fingerprint = excluded.fingerprint \
         ) \
         UPDATE event_id_head SET last_id = GREATEST(last_id, $19)",
    )
    .bind(&events.id)
    .bind(&events.tenant)
    .bind(&events.event_type)
    .bind(&events.rooms)
    .bind(&events.data)
    .bind(&events.ts)
    .bind(&events.key)
    .bind(&events.fingerprint)
    .bind(received_at)
    .bind(&rooms.0)
    .bind(&rooms.1)
    .bind(&rooms.2)
    .bind(&head_tenants)
    .bind(&head_ids)
    .bind(&keys.0)
    .bind(&keys.1)
    .bind(&keys.2)
    .bind(&keys.3)
    .bind(last)
    .execute(conn)
    .await?;
    Ok(())
}

/// The `events` rows of a group, a column each.
#[derive(Default)]
struct EventColumns<'a> {
    id: Vec<EventId>,
    tenant: Vec<&'a str>,
    event_type: Vec<&'a str>,
    /// Array literals (`{"a","b"}`), cast in the statement.
    rooms: Vec<String>,
    data: Vec<String>,
    ts: Vec<DateTime<Utc>>,
    key: Vec<Option<String>>,
    fingerprint: Vec<Option<&'a str>>,
}

impl<'a> EventColumns<'a> {
    fn push(&mut self, event: &'a Event, ev: &'a ValidEvent) {
        self.id.push(event.id);
        self.tenant.push(&event.tenant_id);
        self.event_type.push(&event.event_type);
        self.rooms.push(text_array(&event.rooms));
        self.data.push(event.data.to_string());
        self.ts.push(millis(event.timestamp));
        self.key.push(
            ev.idempotency_key
                .as_deref()
                .map(|k| pg_text(k).into_owned()),
        );
        self.fingerprint.push(ev.fingerprint.as_deref());
    }
}

/// A PostgreSQL array literal of `items`, each quoted.
fn text_array(items: &[String]) -> String {
    let mut text = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                text.push('\\');
            }
            text.push(c);
        }
        text.push('"');
    }
    text.push('}');
    text
}

/// A PostgreSQL array literal of ids.
fn id_array(ids: &[EventId]) -> String {
    let ids: Vec<String> = ids.iter().map(EventId::to_string).collect();
    format!("{{{}}}", ids.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_literals_quote_every_item() {
        let rooms = vec!["alerts".to_string(), "a\"b\\c".to_string()];
        assert_eq!(text_array(&rooms), r#"{"alerts","a\"b\\c"}"#);
        assert_eq!(text_array(&[]), "{}");
        assert_eq!(id_array(&[3, 4]), "{3,4}");
    }
}
