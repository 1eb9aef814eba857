//! What a fenced commit writes on SQLite, inside its transaction: each
//! table's rows in multi-row statements, so the commit holds the write
//! turn for a few statements however many rows the evaluation decided
//! (urgent writes wait for it).

use chrono::{DateTime, Utc};
use sqlx::query_builder::Separated;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::super::jobs::insert_jobs;
use crate::server::storage::alerts::columns::{keep_acknowledgement, CommitColumns};
use crate::server::storage::StoreError;

/// Rows per multi-row statement: SQLite binds at most 32 766 parameters,
/// and an alert binds 11.
const CHUNK: usize = 2_000;

/// Runs `head` `VALUES (...), ...` `tail` over `rows` in chunks, each row's
/// values pushed by `push`.
async fn each_chunk<T>(
    conn: &mut SqliteConnection,
    rows: &[T],
    head: &str,
    tail: &str,
    mut push: impl FnMut(Separated<'_, '_, Sqlite, &'static str>, &T),
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CHUNK) {
        let mut qb = QueryBuilder::new(head);
        qb.push_values(chunk, &mut push).push(tail);
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Writes `c` and enqueues its jobs, in the contract's order: a state
/// both set and cleared ends cleared, an alert written pending and
/// dropped ends dropped. Only pending alerts are dropped: one that fired
/// stays in history whatever the write says.
pub(super) async fn write_rows(
    conn: &mut SqliteConnection,
    c: &CommitColumns<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    each_chunk(
        conn,
        &c.states,
        "INSERT INTO alert_states (rule_id, tenant_id, state, alert_id, since) ",
        " ON CONFLICT (rule_id, tenant_id) DO UPDATE SET state = excluded.state, \
          alert_id = excluded.alert_id, since = excluded.since",
        |mut b, s| {
            b.push_bind(s.rule_id.to_string())
                .push_bind(s.tenant_id.to_string())
                .push_bind(s.state)
                .push_bind(s.alert_id.to_string())
                .push_bind(s.since);
        },
    )
    .await?;
    each_chunk(
        conn,
        c.cleared,
        "DELETE FROM alert_states WHERE (rule_id, tenant_id) IN (",
        ")",
        |mut b, (rule, tenant)| {
            b.push_bind(rule.clone()).push_bind(tenant.clone());
        },
    )
    .await?;
    each_chunk(
        conn,
        &c.alerts,
        "INSERT INTO alerts (id, rule_id, tenant_id, state, pending_since, fired_at, \
         resolved_at, incident_id, acknowledged_at, acknowledged_by, body) ",
        &format!(
            " ON CONFLICT (id) DO UPDATE SET rule_id = excluded.rule_id, \
              tenant_id = excluded.tenant_id, state = excluded.state, \
              pending_since = excluded.pending_since, fired_at = excluded.fired_at, \
              resolved_at = excluded.resolved_at, incident_id = excluded.incident_id, \
              body = excluded.body, {}",
            keep_acknowledgement("alerts")
        ),
        |mut b, a| {
            b.push_bind(a.id.to_string())
                .push_bind(a.rule_id.to_string())
                .push_bind(a.tenant_id.to_string())
                .push_bind(a.state)
                .push_bind(a.pending_since)
                .push_bind(a.fired_at)
                .push_bind(a.resolved_at)
                .push_bind(a.incident_id.map(str::to_string))
                .push_bind(a.acknowledged_at)
                .push_bind(a.acknowledged_by.map(str::to_string))
                .push_bind(a.body.clone());
        },
    )
    .await?;
    for chunk in c.dropped.chunks(CHUNK) {
        let mut qb = QueryBuilder::new("DELETE FROM alerts WHERE state = 'pending' AND id IN (");
        let mut ids = qb.separated(", ");
        for id in chunk {
            ids.push_bind(id.clone());
        }
        qb.push(")").build().execute(&mut *conn).await?;
    }
    each_chunk(
        conn,
        &c.incidents,
        "INSERT INTO incidents (id, tenant_id, state, opened_at, resolved_at, \
         acknowledged_at, acknowledged_by, body) ",
        &format!(
            " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, \
              state = excluded.state, opened_at = excluded.opened_at, \
              resolved_at = excluded.resolved_at, body = excluded.body, {}",
            keep_acknowledgement("incidents")
        ),
        |mut b, i| {
            b.push_bind(i.id.to_string())
                .push_bind(i.tenant_id.to_string())
                .push_bind(i.state)
                .push_bind(i.opened_at)
                .push_bind(i.resolved_at)
                .push_bind(i.acknowledged_at)
                .push_bind(i.acknowledged_by.map(str::to_string))
                .push_bind(i.body.clone());
        },
    )
    .await?;
    insert_jobs(conn, c.jobs, now).await?;
    Ok(())
}
