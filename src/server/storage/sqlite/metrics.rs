//! The SQLite side of [`MetricStore`]: the rollup statements the append
//! runs in its transaction, and the reads.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::protocol::metrics::Gauge;
use crate::protocol::{Scope, TenantId};
use crate::server::metrics::rollup::Rollup;
use crate::server::storage::metrics::{
    campaign_counts_sql, campaign_merge, conversation_merge, conversation_rows, counter_names,
    counter_rows, expiry, gauge_rows, series_table, snapshot_conversations_sql, CampaignCounts,
    CampaignRow, ConversationTuple, CounterRow, CounterTuple, GaugeRow, MetricSnapshot,
    MetricStore, SeriesQuery, CAMPAIGN_COLUMNS,
};
use crate::server::storage::StoreError;

/// Rows per multi-row statement, far below SQLite's 32,766 bound values
/// (27 per campaign row).
const CHUNK: usize = 1000;

/// Pushes the statements that write `rollup`, each ended by `;`, for the
/// append's transaction.
pub(super) fn push_rollup<'a>(qb: &mut QueryBuilder<'a, Sqlite>, rollup: &'a Rollup) {
    for (table, time, rows) in [
        ("metric_minutes", "minute", &rollup.counters),
        ("metric_hours", "hour", &rollup.hours),
    ] {
        let rows: Vec<_> = rows.iter().collect();
        for chunk in rows.chunks(CHUNK) {
            qb.push(format_args!(
                "INSERT INTO {table} (tenant_id, metric, {time}, key, n, sum_value) "
            ));
            qb.push_values(chunk, |mut b, ((tenant, at, counter, key), add)| {
                b.push_bind(tenant.as_str())
                    .push_bind(counter.name())
                    .push_bind(*at)
                    .push_bind(key.as_str())
                    .push_bind(add.count)
                    .push_bind(add.sum);
            });
            qb.push(format_args!(
                " ON CONFLICT (tenant_id, metric, {time}, key) DO UPDATE SET \
                 n = {table}.n + excluded.n, sum_value = {table}.sum_value + excluded.sum_value; "
            ));
        }
    }
    let totals: Vec<_> = rollup.totals.iter().collect();
    for chunk in totals.chunks(CHUNK) {
        qb.push("INSERT INTO metric_totals (tenant_id, metric, key, n, sum_value) ");
        qb.push_values(chunk, |mut b, ((tenant, counter, key), add)| {
            b.push_bind(tenant.as_str())
                .push_bind(counter.name())
                .push_bind(key.as_str())
                .push_bind(add.count)
                .push_bind(add.sum);
        });
        qb.push(
            " ON CONFLICT (tenant_id, metric, key) DO UPDATE SET \
             n = metric_totals.n + excluded.n, \
             sum_value = metric_totals.sum_value + excluded.sum_value; ",
        );
    }
    let conversations: Vec<_> = rollup.conversations.iter().collect();
    for chunk in conversations.chunks(CHUNK) {
        qb.push(
            "INSERT INTO conversations \
             (tenant_id, conversation_id, started_at, ended_at, last_activity_at) ",
        );
        qb.push_values(chunk, |mut b, ((tenant, id), c)| {
            b.push_bind(tenant.as_str())
                .push_bind(id.as_str())
                .push_bind(c.started_at)
                .push_bind(c.ended_at)
                .push_bind(c.last_activity_at);
        });
        qb.push(" ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET ");
        qb.push(conversation_merge());
        qb.push("; ");
    }
    let campaigns: Vec<_> = rollup.campaigns.iter().collect();
    for chunk in campaigns.chunks(CHUNK) {
        qb.push(format_args!("INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) "));
        qb.push_values(chunk, |mut b, ((tenant, id), c)| {
            b.push_bind(tenant.as_str())
                .push_bind(id.as_str())
                .push_bind(c.name.as_deref())
                .push_bind(c.status.as_deref().unwrap_or("unknown"))
                .push_bind(c.status_at)
                .push_bind(c.total_contacts)
                .push_bind(c.sent)
                .push_bind(c.failed)
                .push_bind(c.reported_sent)
                .push_bind(c.reported_failed)
                .push_bind(c.position)
                .push_bind(c.created_at)
                .push_bind(c.started_at)
                .push_bind(c.completed_at)
                .push_bind(c.first_sent_at)
                .push_bind(c.last_sent_at)
                .push_bind(c.interval_count)
                .push_bind(c.interval_sum)
                .push_bind(c.interval_min)
                .push_bind(c.interval_max)
                .push_bind(c.answered)
                .push_bind(c.busy)
                .push_bind(c.calls_failed)
                .push_bind(c.converted)
                .push_bind(c.opt_out)
                .push_bind(c.first_event_at)
                .push_bind(c.last_event_at);
        });
        qb.push(" ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET ");
        qb.push(campaign_merge());
        qb.push("; ");
    }
    let errors: Vec<_> = rollup.campaign_errors.iter().collect();
    for chunk in errors.chunks(CHUNK) {
        qb.push("INSERT INTO campaign_errors (tenant_id, campaign_id, error, n) ");
        qb.push_values(chunk, |mut b, ((tenant, id, error), n)| {
            b.push_bind(tenant.as_str())
                .push_bind(id.as_str())
                .push_bind(error.as_str())
                .push_bind(*n);
        });
        qb.push(
            " ON CONFLICT (tenant_id, campaign_id, error) DO UPDATE SET \
             n = campaign_errors.n + excluded.n; ",
        );
    }
}

#[async_trait]
impl MetricStore for SqliteStore {
    async fn metric_snapshot(
        &self,
        recent_from: i64,
        open_since: i64,
    ) -> Result<MetricSnapshot, StoreError> {
        // One read transaction: WAL gives it one snapshot of every table.
        let mut tx = self.pool.begin().await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let totals: Vec<CounterTuple> =
            sqlx::query_as("SELECT tenant_id, metric, key, 0, n, sum_value FROM metric_totals")
                .fetch_all(&mut *tx)
                .await?;
        let recent: Vec<CounterTuple> = sqlx::query_as(
            "SELECT tenant_id, metric, key, minute, n, sum_value FROM metric_minutes \
             WHERE minute >= ?",
        )
        .bind(recent_from)
        .fetch_all(&mut *tx)
        .await?;
        let conversations: Vec<ConversationTuple> =
            sqlx::query_as(&snapshot_conversations_sql("?", "?"))
                .bind(open_since)
                .bind(recent_from * 1000)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(MetricSnapshot {
            head,
            totals: counter_rows(totals),
            recent: counter_rows(recent),
            conversations: conversation_rows(conversations),
        })
    }

    async fn counter_series(&self, query: &SeriesQuery) -> Result<Vec<CounterRow>, StoreError> {
        let (table, time) = series_table(query);
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("SELECT '', metric, key, (");
        qb.push(time)
            .push(" / ")
            .push_bind(query.bucket)
            .push(") * ")
            .push_bind(query.bucket)
            .push(format_args!(
                " AS t, CAST(SUM(n) AS INTEGER), SUM(sum_value) FROM {table} WHERE {time} >= "
            ))
            .push_bind(query.from)
            .push(format_args!(" AND {time} < "))
            .push_bind(query.to)
            .push(" AND metric IN (");
        let mut names = qb.separated(", ");
        for name in counter_names(&query.counters) {
            names.push_bind(name);
        }
        qb.push(")");
        if let Scope::Only(tenant) = &query.tenant {
            qb.push(" AND tenant_id = ").push_bind(tenant.as_str());
        }
        if let Some(key) = &query.key {
            qb.push(" AND key = ").push_bind(key.as_str());
        }
        qb.push(" GROUP BY metric, key, t");
        let rows: Vec<CounterTuple> = qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(counter_rows(rows))
    }

    async fn record_gauges(&self, samples: &[GaugeRow]) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
        for chunk in samples.chunks(CHUNK) {
            qb.push("INSERT INTO metric_gauges (tenant_id, metric, minute, node, value) ");
            qb.push_values(chunk, |mut b, s| {
                b.push_bind(s.tenant_id.as_str())
                    .push_bind(s.gauge.name())
                    .push_bind(s.time)
                    .push_bind(s.node.as_str())
                    .push_bind(s.value);
            });
            qb.push(
                " ON CONFLICT (tenant_id, metric, minute, node) DO UPDATE SET \
                 value = excluded.value; ",
            );
        }
        let _write = self.writes.turn().await;
        qb.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn gauge_series(
        &self,
        tenant: &str,
        gauges: &[Gauge],
        from: i64,
        to: i64,
        bucket: i64,
    ) -> Result<Vec<GaugeRow>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT tenant_id, metric, (minute / ");
        qb.push_bind(bucket)
            .push(") * ")
            .push_bind(bucket)
            .push(" AS t, node, AVG(value) FROM metric_gauges WHERE tenant_id = ")
            .push_bind(tenant)
            .push(" AND minute >= ")
            .push_bind(from)
            .push(" AND minute < ")
            .push_bind(to)
            .push(" AND metric IN (");
        let mut names = qb.separated(", ");
        for gauge in gauges {
            names.push_bind(gauge.name());
        }
        qb.push(") GROUP BY tenant_id, metric, t, node");
        let rows: Vec<(String, String, i64, String, f64)> =
            qb.build_query_as().fetch_all(&self.pool).await?;
        Ok(gauge_rows(rows))
    }

    async fn campaigns(
        &self,
        tenant: &Scope<TenantId>,
        limit: u32,
    ) -> Result<Vec<CampaignRow>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns"));
        if let Scope::Only(tenant) = tenant {
            qb.push(" WHERE tenant_id = ").push_bind(tenant.as_str());
        }
        qb.push(" ORDER BY first_event_at DESC, campaign_id LIMIT ")
            .push_bind(i64::from(limit));
        Ok(qb.build_query_as().fetch_all(&self.pool).await?)
    }

    async fn campaign_counts(
        &self,
        tenant: &Scope<TenantId>,
    ) -> Result<CampaignCounts, StoreError> {
        let sql = campaign_counts_sql(tenant.only().map(|_| "?"));
        let mut query = sqlx::query_as::<_, (i64, i64, i64, f64)>(&sql);
        if let Scope::Only(tenant) = tenant {
            query = query.bind(tenant.as_str());
        }
        let (total, completed, running, avg_success_rate) = query.fetch_one(&self.pool).await?;
        Ok(CampaignCounts {
            total,
            completed,
            running,
            avg_success_rate,
        })
    }

    async fn latest_gauges(&self, since: i64) -> Result<Vec<GaugeRow>, StoreError> {
        let rows: Vec<(String, String, i64, String, f64)> = sqlx::query_as(
            "SELECT tenant_id, metric, minute, node, value FROM metric_gauges WHERE minute >= ?",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        Ok(gauge_rows(rows))
    }

    async fn campaign(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<CampaignRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = ? AND campaign_id = ?"
        ))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn campaign_errors(
        &self,
        tenant: &TenantId,
        id: &str,
        limit: u32,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT error, n FROM campaign_errors WHERE tenant_id = ? AND campaign_id = ? \
             ORDER BY n DESC, error LIMIT ?",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn expire_metrics(&self, now: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        let _write = self.writes.turn().await;
        for (table, column, before) in expiry(now) {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE {column} < ?"))
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}
