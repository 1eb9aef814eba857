//! Alerting on SQLite. Every write takes its turn at the write gate, and a
//! write of more than one statement runs in a `BEGIN IMMEDIATE`
//! transaction: SQLite's single writer is what makes a commit's lease
//! check and its writes one step no other writer can come between.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
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

/// `AND tenant_id = ?` for a tenant scope (nothing for all): alerts and
/// incidents, which always belong to one tenant.
fn push_tenant(qb: &mut QueryBuilder<'_, Sqlite>, tenant: &Scope<TenantId>) {
    if let Some(t) = tenant.only() {
        qb.push(" AND tenant_id = ")
            .push_bind(t.as_str().to_string());
    }
}

/// The same for rules and silences, where a row without a tenant is for
/// every tenant and so seen by each.
fn push_shared(qb: &mut QueryBuilder<'_, Sqlite>, tenant: &Scope<TenantId>) {
    if let Some(t) = tenant.only() {
        qb.push(" AND (tenant_id IS NULL OR tenant_id = ")
            .push_bind(t.as_str().to_string())
            .push(")");
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl SqliteStore {
    async fn incident_row(
        conn: &mut SqliteConnection,
        id: &str,
        tenant: &Scope<TenantId>,
    ) -> Result<Option<IncidentRow>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = "
        ));
        qb.push_bind(id.to_string());
        push_tenant(&mut qb, tenant);
        Ok(qb.build_query_as().fetch_optional(conn).await?)
    }

    /// The incident `id` names for [`AlertStore::acknowledge`]: itself, or
    /// the incident of the alert it is.
    async fn incident_of(
        conn: &mut SqliteConnection,
        id: &str,
        tenant: &Scope<TenantId>,
    ) -> Result<String, StoreError> {
        if let Some(row) = Self::incident_row(conn, id, tenant).await? {
            return Ok(row.id);
        }
        let mut qb = QueryBuilder::new("SELECT incident_id FROM alerts WHERE id = ");
        qb.push_bind(id.to_string());
        push_tenant(&mut qb, tenant);
        let alert: Option<Option<String>> = qb.build_query_scalar().fetch_optional(conn).await?;
        match alert {
            None => Err(not_found("incident or alert", id)),
            Some(None) => Err(pending_conflict(id)),
            Some(Some(incident)) => Ok(incident),
        }
    }
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn rules(&self, tenant: &Scope<TenantId>) -> Result<Vec<AlertRule>, StoreError> {
        let mut qb = QueryBuilder::new(format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE 1 = 1"
        ));
        push_shared(&mut qb, tenant);
        qb.push(" ORDER BY id");
        let rows: Vec<RuleRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(RuleRow::into_rule).collect()
    }

    async fn rule(&self, id: &str) -> Result<AlertRule, StoreError> {
        let row: Option<RuleRow> = sqlx::query_as(&format!(
            "SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?1"
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
        let _write = self.writes.turn().await;
        let stored = sqlx::query(&format!(
            "INSERT INTO alert_rules (id, tenant_id, rule, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) {on_conflict}"
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
        let _write = self.writes.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut seeded = 0;
        for c in &columns {
            seeded += sqlx::query(
                "INSERT INTO alert_rules (id, tenant_id, rule, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(c.id)
            .bind(c.tenant_id)
            .bind(&c.rule)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(seeded)
    }

    async fn delete_rule(&self, id: &str) -> Result<(), StoreError> {
        let _write = self.writes.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            tx.rollback().await?;
            return Err(not_found("alert rule", id));
        }
        sqlx::query("DELETE FROM alert_states WHERE rule_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM alerts WHERE rule_id = ?1 AND state = 'pending'")
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
        let _write = self.writes.turn().await;
        Ok(sqlx::query_scalar(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES (?1, ?2, 1, ?3) \
             ON CONFLICT (name) DO UPDATE SET \
               token = CASE WHEN leases.holder = excluded.holder \
                 THEN leases.token ELSE leases.token + 1 END, \
               holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4 \
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
        let _write = self.writes.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT token FROM leases WHERE name = ?1 AND token = ?2 AND expires_at > ?3",
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
        // Rolled back before the turn passes on, so the next writer does
        // not find the write lock still held.
        if let Err(e) = write::write_rows(&mut tx, &columns, now).await {
            tx.rollback().await?;
            return Err(e);
        }
        tx.commit().await?;
        if !write.jobs.is_empty() {
            self.wake_workers();
        }
        Ok(true)
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE 1 = 1"));
        push_tenant(&mut qb, &filter.tenant);
        if let Some(since) = filter.since {
            qb.push(" AND (pending_since >= ")
                .push_bind(ms(since))
                .push(" OR resolved_at IS NULL OR resolved_at >= ")
                .push_bind(ms(since))
                .push(")");
        }
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.name());
        }
        qb.push(" ORDER BY pending_since DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<AlertRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(AlertRow::into_alert).collect()
    }

    async fn alert(&self, id: &str, tenant: &Scope<TenantId>) -> Result<Alert, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = "));
        qb.push_bind(id.to_string());
        push_tenant(&mut qb, tenant);
        let row: Option<AlertRow> = qb.build_query_as().fetch_optional(&self.pool).await?;
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
        let mut qb = QueryBuilder::new(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents \
             WHERE (resolved_at IS NULL OR resolved_at >= "
        ));
        qb.push_bind(ms(since)).push(")");
        push_tenant(&mut qb, tenant);
        qb.push(" ORDER BY opened_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows: Vec<IncidentRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(IncidentRow::into_incident).collect()
    }

    async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Incident, StoreError> {
        let _write = self.writes.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let incident = match Self::incident_of(&mut tx, id, tenant).await {
            Ok(incident) => incident,
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        };
        sqlx::query(
            "UPDATE incidents SET acknowledged_at = ?1, acknowledged_by = ?2 \
             WHERE id = ?3 AND acknowledged_at IS NULL",
        )
        .bind(ms(now))
        .bind(by)
        .bind(&incident)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE alerts SET acknowledged_at = ?1, acknowledged_by = ?2 \
             WHERE incident_id = ?3 AND acknowledged_at IS NULL",
        )
        .bind(ms(now))
        .bind(by)
        .bind(&incident)
        .execute(&mut *tx)
        .await?;
        let row = Self::incident_row(&mut tx, &incident, &Scope::All)
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
        let mut qb = QueryBuilder::new(format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE 1 = 1"
        ));
        push_shared(&mut qb, tenant);
        if let Some(at) = active_at {
            qb.push(" AND starts_at <= ")
                .push_bind(ms(at))
                .push(" AND ends_at > ")
                .push_bind(ms(at));
        }
        qb.push(" ORDER BY ends_at, id");
        let rows: Vec<SilenceRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(SilenceRow::into_silence).collect()
    }

    async fn add_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let c = SilenceColumns::of(silence)?;
        let _write = self.writes.turn().await;
        let stored = sqlx::query(
            "INSERT INTO silences (id, rule_id, tenant_id, starts_at, ends_at, reason, \
             created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING",
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
        let mut qb = QueryBuilder::new("DELETE FROM silences WHERE id = ");
        qb.push_bind(id.to_string());
        push_shared(&mut qb, tenant);
        let _write = self.writes.turn().await;
        if qb.build().execute(&self.pool).await?.rows_affected() == 0 {
            return Err(not_found("silence", id));
        }
        Ok(())
    }
}
