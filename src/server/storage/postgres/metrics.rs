//! The PostgreSQL side of [`MetricStore`]: the rollup statement the append
//! runs under its lock, and the reads.

use async_trait::async_trait;
use sqlx::postgres::PgConnection;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use crate::protocol::metrics::Gauge;
use crate::protocol::{Scope, TenantId};
use crate::server::metrics::rollup::{Add, Rollup};
use crate::server::storage::metrics::{
    campaign_counts_sql, campaign_merge, conversation_merge, conversation_rows, counter_names,
    counter_rows, expiry, gauge_rows, series_table, snapshot_conversations_sql, CampaignCounts,
    CampaignRow, ConversationTuple, CounterRow, CounterTuple, GaugeRow, MetricSnapshot,
    MetricStore, SeriesQuery, CAMPAIGN_COLUMNS,
};
use crate::server::storage::StoreError;

/// The rows of one counter table, a column each (`UNNEST`).
#[derive(Default)]
struct Counters<'a> {
    tenant: Vec<&'a str>,
    metric: Vec<&'static str>,
    time: Vec<i64>,
    key: Vec<&'a str>,
    n: Vec<i64>,
    sum: Vec<f64>,
}

impl<'a> Counters<'a> {
    fn push(&mut self, tenant: &'a str, metric: &'static str, time: i64, key: &'a str, add: &Add) {
        self.tenant.push(tenant);
        self.metric.push(metric);
        self.time.push(time);
        self.key.push(key);
        self.n.push(add.count);
        self.sum.push(add.sum);
    }
}

/// Writes `rollup` in one statement (a data-modifying CTE per table, each
/// table's rows as arrays), so the append's lock is held one round trip
/// longer whatever the group's size, and the statement is prepared once
/// per connection.
pub(super) async fn write_rollup(
    conn: &mut PgConnection,
    rollup: &Rollup,
) -> Result<(), StoreError> {
    if rollup.is_empty() {
        return Ok(());
    }
    let mut minutes = Counters::default();
    for ((tenant, at, counter, key), add) in &rollup.counters {
        minutes.push(tenant, counter.name(), *at, key, add);
    }
    let mut hours = Counters::default();
    for ((tenant, at, counter, key), add) in &rollup.hours {
        hours.push(tenant, counter.name(), *at, key, add);
    }
    let mut totals = Counters::default();
    for ((tenant, counter, key), add) in &rollup.totals {
        totals.push(tenant, counter.name(), 0, key, add);
    }
    let mut conv = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((tenant, id), c) in &rollup.conversations {
        conv.0.push(tenant.as_str());
        conv.1.push(id.as_str());
        conv.2.push(c.started_at);
        conv.3.push(c.ended_at);
        conv.4.push(c.last_activity_at);
    }
    let mut errors = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for ((tenant, id, error), n) in &rollup.campaign_errors {
        errors.0.push(tenant.as_str());
        errors.1.push(id.as_str());
        errors.2.push(error.as_str());
        errors.3.push(*n);
    }
    let campaigns: Vec<_> = rollup.campaigns.iter().collect();
    let text = |f: &dyn Fn(&crate::server::metrics::rollup::CampaignChange) -> Option<&str>| {
        campaigns.iter().map(|(_, c)| f(c)).collect::<Vec<_>>()
    };
    let opt = |f: &dyn Fn(&crate::server::metrics::rollup::CampaignChange) -> Option<i64>| {
        campaigns.iter().map(|(_, c)| f(c)).collect::<Vec<_>>()
    };
    let num = |f: &dyn Fn(&crate::server::metrics::rollup::CampaignChange) -> i64| {
        campaigns.iter().map(|(_, c)| f(c)).collect::<Vec<_>>()
    };
    let sql = format!(
        "WITH m AS ( \
           INSERT INTO metric_minutes (tenant_id, metric, minute, key, n, sum_value) \
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::float8[]) \
           ON CONFLICT (tenant_id, metric, minute, key) DO UPDATE SET \
             n = metric_minutes.n + excluded.n, sum_value = metric_minutes.sum_value + excluded.sum_value \
         ), h AS ( \
           INSERT INTO metric_hours (tenant_id, metric, hour, key, n, sum_value) \
           SELECT * FROM UNNEST($7::text[], $8::text[], $9::bigint[], $10::text[], $11::bigint[], $12::float8[]) \
           ON CONFLICT (tenant_id, metric, hour, key) DO UPDATE SET \
             n = metric_hours.n + excluded.n, sum_value = metric_hours.sum_value + excluded.sum_value \
         ), t AS ( \
           INSERT INTO metric_totals (tenant_id, metric, key, n, sum_value) \
           SELECT * FROM UNNEST($13::text[], $14::text[], $15::text[], $16::bigint[], $17::float8[]) \
           ON CONFLICT (tenant_id, metric, key) DO UPDATE SET \
             n = metric_totals.n + excluded.n, sum_value = metric_totals.sum_value + excluded.sum_value \
         ), c AS ( \
           INSERT INTO conversations (tenant_id, conversation_id, started_at, ended_at, last_activity_at) \
           SELECT * FROM UNNEST($18::text[], $19::text[], $20::bigint[], $21::bigint[], $22::bigint[]) \
           ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET {conversation} \
         ), e AS ( \
           INSERT INTO campaign_errors (tenant_id, campaign_id, error, n) \
           SELECT * FROM UNNEST($23::text[], $24::text[], $25::text[], $26::bigint[]) \
           ON CONFLICT (tenant_id, campaign_id, error) DO UPDATE SET n = campaign_errors.n + excluded.n \
         ) \
         INSERT INTO campaigns ({CAMPAIGN_COLUMNS}) \
         SELECT * FROM UNNEST($27::text[], $28::text[], $29::text[], $30::text[], $31::bigint[], \
           $32::bigint[], $33::bigint[], $34::bigint[], $35::bigint[], $36::bigint[], $37::bigint[], \
           $38::bigint[], $39::bigint[], $40::bigint[], $41::bigint[], $42::bigint[], $43::bigint[], \
           $44::bigint[], $45::bigint[], $46::bigint[], $47::bigint[], $48::bigint[], $49::bigint[], \
           $50::bigint[], $51::bigint[], $52::bigint[], $53::bigint[]) \
         ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET {campaign}",
        conversation = conversation_merge(),
        campaign = campaign_merge(),
    );
    let tenants: Vec<&str> = campaigns.iter().map(|((t, _), _)| t.as_str()).collect();
    let ids: Vec<&str> = campaigns.iter().map(|((_, id), _)| id.as_str()).collect();
    sqlx::query(&sql)
        .bind(&minutes.tenant)
        .bind(&minutes.metric)
        .bind(&minutes.time)
        .bind(&minutes.key)
        .bind(&minutes.n)
        .bind(&minutes.sum)
        .bind(&hours.tenant)
        .bind(&hours.metric)
        .bind(&hours.time)
        .bind(&hours.key)
        .bind(&hours.n)
        .bind(&hours.sum)
        .bind(&totals.tenant)
        .bind(&totals.metric)
        .bind(&totals.key)
        .bind(&totals.n)
        .bind(&totals.sum)
        .bind(&conv.0)
        .bind(&conv.1)
        .bind(&conv.2)
        .bind(&conv.3)
        .bind(&conv.4)
        .bind(&errors.0)
        .bind(&errors.1)
        .bind(&errors.2)
        .bind(&errors.3)
        .bind(&tenants)
        .bind(&ids)
        .bind(text(&|c| c.name.as_deref()))
        .bind(text(&|c| Some(c.status.as_deref().unwrap_or("unknown"))))
        .bind(opt(&|c| c.status_at))
        .bind(opt(&|c| c.total_contacts))
        .bind(num(&|c| c.sent))
        .bind(num(&|c| c.failed))
        .bind(opt(&|c| c.reported_sent))
        .bind(opt(&|c| c.reported_failed))
        .bind(opt(&|c| c.position))
        .bind(opt(&|c| c.created_at))
        .bind(opt(&|c| c.started_at))
        .bind(opt(&|c| c.completed_at))
        .bind(opt(&|c| c.first_sent_at))
        .bind(opt(&|c| c.last_sent_at))
        .bind(num(&|c| c.interval_count))
        .bind(num(&|c| c.interval_sum))
        .bind(opt(&|c| c.interval_min))
        .bind(opt(&|c| c.interval_max))
        .bind(num(&|c| c.answered))
        .bind(num(&|c| c.busy))
        .bind(num(&|c| c.calls_failed))
        .bind(num(&|c| c.converted))
        .bind(num(&|c| c.opt_out))
        .bind(num(&|c| c.first_event_at))
        .bind(num(&|c| c.last_event_at))
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl MetricStore for PgStore {
    async fn metric_snapshot(
        &self,
        recent_from: i64,
        open_since: i64,
    ) -> Result<MetricSnapshot, StoreError> {
        // REPEATABLE READ: every read sees the same commits, and by the
        // id contract every event up to the newest id among them.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::bigint FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let totals: Vec<CounterTuple> = sqlx::query_as(
            "SELECT tenant_id, metric, key, 0::bigint, n, sum_value FROM metric_totals",
        )
        .fetch_all(&mut *tx)
        .await?;
        let recent: Vec<CounterTuple> = sqlx::query_as(
            "SELECT tenant_id, metric, key, minute, n, sum_value FROM metric_minutes \
             WHERE minute >= $1",
        )
        .bind(recent_from)
        .fetch_all(&mut *tx)
        .await?;
        let conversations: Vec<ConversationTuple> =
            sqlx::query_as(&snapshot_conversations_sql("$1", "$2"))
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
        let tenant = query.tenant.only().map(TenantId::as_str);
        let sql = format!(
            "SELECT ''::text, metric, key, ({time} / $1) * $1 AS t, SUM(n)::bigint, SUM(sum_value) \
             FROM {table} WHERE {time} >= $2 AND {time} < $3 AND metric = ANY($4) \
               AND ($5::text IS NULL OR tenant_id = $5) AND ($6::text IS NULL OR key = $6) \
             GROUP BY metric, key, t"
        );
        let rows: Vec<CounterTuple> = sqlx::query_as(&sql)
            .bind(query.bucket)
            .bind(query.from)
            .bind(query.to)
            .bind(counter_names(&query.counters))
            .bind(tenant)
            .bind(query.key.as_deref())
            .fetch_all(&self.pool)
            .await?;
        Ok(counter_rows(rows))
    }

    async fn record_gauges(&self, samples: &[GaugeRow]) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let tenants: Vec<&str> = samples.iter().map(|s| s.tenant_id.as_str()).collect();
        let metrics: Vec<&str> = samples.iter().map(|s| s.gauge.name()).collect();
        let minutes: Vec<i64> = samples.iter().map(|s| s.time).collect();
        let nodes: Vec<&str> = samples.iter().map(|s| s.node.as_str()).collect();
        let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
        sqlx::query(
            "INSERT INTO metric_gauges (tenant_id, metric, minute, node, value) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::float8[]) \
             ON CONFLICT (tenant_id, metric, minute, node) DO UPDATE SET value = excluded.value",
        )
        .bind(&tenants)
        .bind(&metrics)
        .bind(&minutes)
        .bind(&nodes)
        .bind(&values)
        .execute(&self.pool)
        .await?;
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
        let names: Vec<&str> = gauges.iter().map(|g| g.name()).collect();
        let rows: Vec<(String, String, i64, String, f64)> = sqlx::query_as(
            "SELECT tenant_id, metric, (minute / $1) * $1 AS t, node, AVG(value) \
             FROM metric_gauges WHERE tenant_id = $2 AND minute >= $3 AND minute < $4 \
               AND metric = ANY($5) \
             GROUP BY tenant_id, metric, t, node",
        )
        .bind(bucket)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(&names)
        .fetch_all(&self.pool)
        .await?;
        Ok(gauge_rows(rows))
    }

    async fn campaigns(
        &self,
        tenant: &Scope<TenantId>,
        limit: u32,
    ) -> Result<Vec<CampaignRow>, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
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
        let sql = campaign_counts_sql(tenant.only().map(|_| "$1"));
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
            "SELECT tenant_id, metric, minute, node, value FROM metric_gauges WHERE minute >= $1",
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
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE tenant_id = $1 AND campaign_id = $2"
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
            "SELECT error, n FROM campaign_errors WHERE tenant_id = $1 AND campaign_id = $2 \
             ORDER BY n DESC, error LIMIT $3",
        )
        .bind(tenant.as_str())
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn expire_metrics(&self, now: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for (table, column, before) in expiry(now) {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE {column} < $1"))
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}
