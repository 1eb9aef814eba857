//! What a fenced commit writes on PostgreSQL, inside its transaction:
//! each table's rows as arrays (`UNNEST`), so a statement per table has a
//! fixed number of parameters whatever the evaluation decided, and is
//! prepared once per connection.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::super::jobs::insert_jobs;
use crate::server::storage::alerts::columns::{keep_acknowledgement, CommitColumns};
use crate::server::storage::StoreError;

/// Writes `c` and enqueues its jobs, in the contract's order: a state
/// both set and cleared ends cleared, an alert written pending and
/// dropped ends dropped. Only pending alerts are dropped: one that fired
/// stays in history whatever the write says.
pub(super) async fn write_rows(
    conn: &mut PgConnection,
    c: &CommitColumns<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if !c.states.is_empty() {
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for s in &c.states {
            cols.0.push(s.rule_id);
            cols.1.push(s.tenant_id);
            cols.2.push(s.state);
            cols.3.push(s.alert_id);
            cols.4.push(s.since);
        }
        sqlx::query(
            "INSERT INTO alert_states (rule_id, tenant_id, state, alert_id, since) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[]) \
             ON CONFLICT (rule_id, tenant_id) DO UPDATE SET state = excluded.state, \
               alert_id = excluded.alert_id, since = excluded.since",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .execute(&mut *conn)
        .await?;
    }
    if !c.cleared.is_empty() {
        let (rules, tenants): (Vec<&str>, Vec<&str>) = c
            .cleared
            .iter()
            .map(|(rule, tenant)| (rule.as_str(), tenant.as_str()))
            .unzip();
        sqlx::query(
            "DELETE FROM alert_states s \
             USING UNNEST($1::text[], $2::text[]) AS c(rule_id, tenant_id) \
             WHERE s.rule_id = c.rule_id AND s.tenant_id = c.tenant_id",
        )
        .bind(&rules)
        .bind(&tenants)
        .execute(&mut *conn)
        .await?;
    }
    if !c.alerts.is_empty() {
        let mut ids = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut times = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut rest = (Vec::new(), Vec::new(), Vec::new());
        for a in &c.alerts {
            ids.0.push(a.id);
            ids.1.push(a.rule_id);
            ids.2.push(a.tenant_id);
            ids.3.push(a.state);
            times.0.push(a.pending_since);
            times.1.push(a.fired_at);
            times.2.push(a.resolved_at);
            times.3.push(a.acknowledged_at);
            rest.0.push(a.incident_id);
            rest.1.push(a.acknowledged_by);
            rest.2.push(a.body.as_str());
        }
        sqlx::query(&format!(
            "INSERT INTO alerts (id, rule_id, tenant_id, state, pending_since, fired_at, \
               resolved_at, acknowledged_at, incident_id, acknowledged_by, body) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
               $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::text[], $10::text[], \
               $11::text[]) \
             ON CONFLICT (id) DO UPDATE SET rule_id = excluded.rule_id, \
               tenant_id = excluded.tenant_id, state = excluded.state, \
               pending_since = excluded.pending_since, fired_at = excluded.fired_at, \
               resolved_at = excluded.resolved_at, incident_id = excluded.incident_id, \
               body = excluded.body, {}",
            keep_acknowledgement("alerts")
        ))
        .bind(&ids.0)
        .bind(&ids.1)
        .bind(&ids.2)
        .bind(&ids.3)
        .bind(&times.0)
        .bind(&times.1)
        .bind(&times.2)
        .bind(&times.3)
        .bind(&rest.0)
        .bind(&rest.1)
        .bind(&rest.2)
        .execute(&mut *conn)
        .await?;
    }
    if !c.dropped.is_empty() {
        sqlx::query("DELETE FROM alerts WHERE state = 'pending' AND id = ANY($1)")
            .bind(c.dropped)
            .execute(&mut *conn)
            .await?;
    }
    if !c.incidents.is_empty() {
        let mut ids = (Vec::new(), Vec::new(), Vec::new());
        let mut times = (Vec::new(), Vec::new(), Vec::new());
        let mut rest = (Vec::new(), Vec::new());
        for i in &c.incidents {
            ids.0.push(i.id);
            ids.1.push(i.tenant_id);
            ids.2.push(i.state);
            times.0.push(i.opened_at);
            times.1.push(i.resolved_at);
            times.2.push(i.acknowledged_at);
            rest.0.push(i.acknowledged_by);
            rest.1.push(i.body.as_str());
        }
        sqlx::query(&format!(
            "INSERT INTO incidents (id, tenant_id, state, opened_at, resolved_at, \
               acknowledged_at, acknowledged_by, body) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], \
               $5::int8[], $6::int8[], $7::text[], $8::text[]) \
             ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, \
               state = excluded.state, opened_at = excluded.opened_at, \
               resolved_at = excluded.resolved_at, body = excluded.body, {}",
            keep_acknowledgement("incidents")
        ))
        .bind(&ids.0)
        .bind(&ids.1)
        .bind(&ids.2)
        .bind(&times.0)
        .bind(&times.1)
        .bind(&times.2)
        .bind(&rest.0)
        .bind(&rest.1)
        .execute(&mut *conn)
        .await?;
    }
    if !c.jobs.is_empty() {
        insert_jobs(&mut *conn, c.jobs, now).await?;
    }
    Ok(())
}
