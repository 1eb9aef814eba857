//! Alerting on PostgreSQL, for several nodes of which one evaluates at a
//! time. The lease is one upsert, which PostgreSQL serializes on the
//! lease's row, so two nodes never both get it; a commit locks that row
//! while it checks the token and holds it until it commits, so a takeover
//! waits for a commit under way and the new holder reads what it wrote.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;

use super::PgStore;
use crate::protocol::alerts::{Alert, AlertRule, Incident, Silence};
use crate::protocol::{Scope, TenantId};
use crate::server::storage::alerts::columns::{CommitColumns, RuleColumns, SilenceColumns};
use crate::server::storage::alerts::rows::{
    not_found, pending_conflict, AlertRow, IncidentRow, RuleRow, SilenceRow, StateRow,
    ALERT_COLUMNS, INCIDENT_COLUMNS, RULE_COLUMNS, SILENCE_COLUMNS, STATE_COLUMNS,
};
use crate::server::storage::alerts::{AlertFilter, AlertStore, AlertWrite, RuleState};
use crate::server::storage::StoreError;

mod write;

/// `t` as stored: Unix milliseconds, as in the SQLite store.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The tenant a scope limits to (`None`: every row), for
/// `($n::text IS NULL OR tenant_id = $n)`.
fn scope_text(tenant: &Scope<TenantId>) -> Option<&str> {
    tenant.only().map(TenantId::as_str)
}

/// One incident `tenant` may see.
async fn incident_row(
    conn: &mut PgConnection,
    id: &str,
    tenant: &Scope<TenantId>,
) -> Result<Option<IncidentRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents \
         WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
    ))
    .bind(id)
    .bind(scope_text(tenant))
    .fetch_optional(conn)
    .await?)
}

/// The incident `id` names for [`AlertStore::acknowledge`]: itself, or the
/// incident of the alert it is.
async fn incident_of(
    conn: &mut PgConnection,
    id: &str,
    tenant: &Scope<TenantId>,
) -> Result<String, StoreError> {
    if let Some(row) = incident_row(conn, id, tenant).await? {
        return Ok(row.id);
    }
    let alert: Option<Option<String>> = sqlx::query_scalar(
        "SELECT incident_id FROM alerts WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)",
    )
    .bind(id)
    .bind(scope_text(tenant))
    .fetch_optional(conn)
    .await?;
    match alert {
        None => Err(not_found("incident or alert", id)),
        Some(None) => Err(pending_conflict(id)),
        Some(Some(incident)) => Ok(incident),
    }
}

#[async_trait]
impl AlertStore for PgStore {
    async fn rules(&self, tenant: &Scope<TenantId>) -> Result<Vec<AlertRule>, StoreError> {
        let rows: Vec<RuleRow> = sqlx::query_as(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules \
             WHERE $1::text IS NULL OR tenant_id IS NULL OR tenant_id = $1 ORDER BY id"
        ))
        .bind(scope_text(tenant))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RuleRow::into_rule).collect()
    }

    async fn rule(&self, id: &str) -> Result<AlertRule, StoreError> {
        let row: Option<RuleRow> = sqlx::query_as(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| not_found("alert rule", id))?.into_rule()
    }

    async fn put_rule(
        &self,
        rule: &AlertRule,
        create: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let c = RuleColumns::of(rule)?;
        let on_conflict = if create {
            "DO NOTHING"
        } else {
            "DO UPDATE SET tenant_id = excluded.tenant_id, rule = excluded.rule, \
             updated_at = excluded.updated_at"
        };
        let stored = sqlx::query(&format!(
            "INSERT INTO alert_rules (id, tenant_id, rule, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) {on_conflict}"
        ))
        .bind(c.id)
        .bind(c.tenant_id)
        .bind(&c.rule)
        .bind(ms(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if stored == 0 {
            return Err(StoreError::Conflict(format!(
                "alert rule `{}` already exists",
                rule.id
            )));
        }
        Ok(())
    }

    async fn seed_rules(&self, rules: &[AlertRule], now: DateTime<Utc>) -> Result<u64, StoreError> {
        let columns = rules
            .iter()
            .map(RuleColumns::of)
            .collect::<Result<Vec<_>, _>>()?;
        if columns.is_empty() {
            return Ok(0);
        }
        let mut cols = (Vec::new(), Vec::new(), Vec::new());
        for c in &columns {
            cols.0.push(c.id);
            cols.1.push(c.tenant_id);
            cols.2.push(c.rule.as_str());
        }
        // Nodes starting together seed at once: the rows a node finds
        // already inserted are skipped, not refused.
        let seeded = sqlx::query(
            "INSERT INTO alert_rules (id, tenant_id, rule, created_at, updated_at) \
             SELECT id, tenant_id, rule, $4, $4 \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS r(id, tenant_id, rule) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(ms(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(seeded)
    }

    async fn delete_rule(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Err(not_found("alert rule", id));
        }
        sqlx::query("DELETE FROM alert_states WHERE rule_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM alerts WHERE rule_id = $1 AND state = 'pending'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let until = ms(now).saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        // One statement: a node racing for the same lease waits on the
        // row this one inserts or updates, then sees it and is refused
        // (PostgreSQL checks the WHERE against the latest row).
        Ok(sqlx::query_scalar(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
               token = CASE WHEN leases.holder = excluded.holder \
                 THEN leases.token ELSE leases.token + 1 END, \
               holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 \
             RETURNING token",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn rule_states(&self) -> Result<Vec<RuleState>, StoreError> {
        let rows: Vec<StateRow> = sqlx::query_as(&format!(
            "SELECT {STATE_COLUMNS} FROM alert_states ORDER BY rule_id, tenant_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(StateRow::into_state).collect()
    }

    async fn commit(
        &self,
        name: &str,
        token: i64,
        write: AlertWrite,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let columns = CommitColumns::of(&write)?;
        let mut tx = self.pool.begin().await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT token FROM leases WHERE name = $1 AND token = $2 AND expires_at > $3 \
             FOR UPDATE",
        )
        .bind(name)
        .bind(token)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_none() {
            tx.rollback().await?;
            return Ok(false);
        }
        write::write_rows(&mut tx, &columns, now).await?;
        tx.commit().await?;
        if !write.jobs.is_empty() {
            self.jobs.bump();
        }
        Ok(true)
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let rows: Vec<AlertRow> = sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts \
             WHERE ($1::text IS NULL OR tenant_id = $1) \
               AND ($2::int8 IS NULL OR pending_since >= $2 OR resolved_at IS NULL \
                    OR resolved_at >= $2) \
               AND ($3::text IS NULL OR state = $3) \
             ORDER BY pending_since DESC, id DESC LIMIT $4"
        ))
        .bind(scope_text(&filter.tenant))
        .bind(filter.since.map(ms))
        .bind(filter.state.map(|s| s.name()))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AlertRow::into_alert).collect()
    }

    async fn alert(&self, id: &str, tenant: &Scope<TenantId>) -> Result<Alert, StoreError> {
        let row: Option<AlertRow> = sqlx::query_as(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts \
             WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
        ))
        .bind(id)
        .bind(scope_text(tenant))
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| not_found("alert", id))?.into_alert()
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<IncidentRow> = sqlx::query_as(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE resolved_at IS NULL \
             ORDER BY opened_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(IncidentRow::into_incident).collect()
    }

    async fn incidents(
        &self,
        tenant: &Scope<TenantId>,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Incident>, StoreError> {
        let rows: Vec<IncidentRow> = sqlx::query_as(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE ($1::text IS NULL OR tenant_id = $1) \
               AND (resolved_at IS NULL OR resolved_at >= $2) \
             ORDER BY opened_at DESC, id DESC LIMIT $3"
        ))
        .bind(scope_text(tenant))
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(IncidentRow::into_incident).collect()
    }

    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError> {
        let mut tx = self.pool.begin().await?;
        let incident = match incident_of(&mut tx, id, tenant).await {
            Ok(incident) => incident,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        // Two acknowledgements at once: the second waits on the row the
        // first updates, then finds it set and leaves it.
        sqlx::query(
            "WITH incident AS ( \
               UPDATE incidents SET acknowledged_at = $1, acknowledged_by = $2 \
               WHERE id = $3 AND acknowledged_at IS NULL \
             ) \
             UPDATE alerts SET acknowledged_at = $1, acknowledged_by = $2 \
             WHERE incident_id = $3 AND acknowledged_at IS NULL",
        )
        .bind(ms(now))
        .bind(by)
        .bind(&incident)
        .execute(&mut *tx)
        .await?;
        let row = incident_row(&mut tx, &incident, &Scope::All)
            .await?
            .ok_or_else(|| not_found("incident", &incident))?;
        tx.commit().await?;
        row.into_incident()
    }

    async fn silences(
        &self,
        tenant: &Scope<TenantId>,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<Silence>, StoreError> {
        let rows: Vec<SilenceRow> = sqlx::query_as(&format!(
            "SELECT {SILENCE_COLUMNS} FROM silences \
             WHERE ($1::text IS NULL OR tenant_id IS NULL OR tenant_id = $1) \
               AND ($2::int8 IS NULL OR (starts_at <= $2 AND ends_at > $2)) \
             ORDER BY ends_at, id"
        ))
        .bind(scope_text(tenant))
        .bind(active_at.map(ms))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(SilenceRow::into_silence).collect()
    }

    async fn add_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let c = SilenceColumns::of(silence)?;
        let stored = sqlx::query(
            "INSERT INTO silences (id, rule_id, tenant_id, starts_at, ends_at, reason, \
             created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(c.id)
        .bind(c.rule_id)
        .bind(c.tenant_id)
        .bind(c.starts_at)
        .bind(c.ends_at)
        .bind(c.reason)
        .bind(c.created_by)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if stored == 0 {
            return Err(StoreError::Conflict(format!(
                "silence `{}` already exists",
                silence.id
            )));
        }
        Ok(())
    }

    async fn delete_silence(&self, id: &str, tenant: &Scope<TenantId>) -> Result<(), StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM silences \
             WHERE id = $1 AND ($2::text IS NULL OR tenant_id IS NULL OR tenant_id = $2)",
        )
        .bind(id)
        .bind(scope_text(tenant))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(not_found("silence", id));
        }
        Ok(())
    }
}
