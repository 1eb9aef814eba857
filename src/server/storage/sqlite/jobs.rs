//! The job queue on SQLite. SQLite has one writer at a time, which is
//! its equivalent of `FOR UPDATE SKIP LOCKED`: a lease is one `UPDATE
//! ... RETURNING` under the write lock, so two leases never see the same
//! due job. One node uses the file, so a wake-up is this process's own
//! counter.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::watch;

use super::trip::rows_in_one_trip;
use super::SqliteStore;
use crate::protocol::{Scope, TenantId};
use crate::server::storage::jobs::rows::{
    self, minute_of, window_start, FinishColumns, JobRow, StatsParts, JOB_COLUMNS,
    MINUTES_KEPT_SECS,
};
use crate::server::storage::jobs::{
    Finish, Job, JobFilter, JobId, JobStatus, JobStore, Leased, NewJob, QueueStats,
};
use crate::server::storage::StoreError;

/// SQLite's bound-parameter limit is 32 766 per statement; a job binds 11.
const ENQUEUE_CHUNK: usize = 2_000;

/// Enqueues of up to this many jobs keep their prepared statement (the
/// common sizes of a group); larger ones would fill the cache with
/// statements used once.
const CACHED_ENQUEUE_ROWS: usize = 16;

/// `AND tenant_id = ?` for a tenant scope (nothing for all).
fn push_tenant(qb: &mut QueryBuilder<'_, Sqlite>, tenant: &Scope<TenantId>) {
    if let Some(t) = tenant.only() {
        qb.push(" AND tenant_id = ")
            .push_bind(t.as_str().to_string());
    }
}

fn not_found(id: JobId) -> StoreError {
    StoreError::NotFound {
        what: "job",
        id: id.to_string(),
    }
}

/// `INSERT INTO jobs ... RETURNING id` for `chunk` (at most
/// [`ENQUEUE_CHUNK`] jobs), pending from `now_ms`: one statement for an
/// enqueue's trip and for [`insert_jobs`].
fn push_insert(qb: &mut QueryBuilder<'_, Sqlite>, chunk: &[NewJob], now_ms: i64) {
    qb.push(
        "INSERT INTO jobs (queue, kind, payload, priority, status, max_attempts, \
         run_at, correlation_id, tenant_id, created_at, updated_at) ",
    );
    qb.push_values(chunk, |mut b, job| {
        b.push_bind(job.queue.clone())
            .push_bind(job.kind.clone())
            .push_bind(job.payload.to_string())
            .push_bind(job.priority)
            .push_bind(JobStatus::Pending.as_str())
            .push_bind(job.max_attempts as i64)
            .push_bind(job.run_at.timestamp_millis())
            .push_bind(job.correlation_id.clone())
            .push_bind(job.tenant_id.clone())
            .push_bind(now_ms)
            .push_bind(now_ms);
    });
    qb.push(" RETURNING id");
}

/// RETURNING's order is not promised; AUTOINCREMENT ids follow the rows'
/// order.
fn sorted_ids(rows: Vec<(JobId,)>) -> Vec<JobId> {
    let mut ids: Vec<JobId> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort_unstable();
    ids
}

/// Enqueues `jobs` inside the caller's transaction, for a write that must
/// commit with the jobs it causes (an alert transition and its
/// notifications); their ids, in order. The caller wakes the workers
/// ([`SqliteStore::wake_workers`]) once it has committed.
pub(super) async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<Vec<JobId>, StoreError> {
    let mut rows = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(ENQUEUE_CHUNK) {
        let mut qb = QueryBuilder::new("");
        push_insert(&mut qb, chunk, now.timestamp_millis());
        rows.extend(
            qb.build_query_as::<(JobId,)>()
                .persistent(chunk.len() <= CACHED_ENQUEUE_ROWS)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(sorted_ids(rows))
}

impl SqliteStore {
    /// Tells this process's workers that jobs were committed: one node
    /// uses the file, so there is nobody else to tell.
    pub(super) fn wake_workers(&self) {
        self.jobs_enqueued.send_modify(|n| *n = n.wrapping_add(1));
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobId>, StoreError> {
        let now_ms = now.timestamp_millis();
        // One trip: every chunk's INSERT between BEGIN and COMMIT.
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("BEGIN IMMEDIATE; ");
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            push_insert(&mut qb, chunk, now_ms);
            qb.push("; ");
        }
        qb.push("COMMIT;");
        let _write = self.writes.urgent().await;
        let rows: Vec<(JobId,)> =
            rows_in_one_trip(&self.pool, qb, jobs.len() <= CACHED_ENQUEUE_ROWS).await?;
        self.wake_workers();
        Ok(sorted_ids(rows))
    }

    async fn lease(
        &self,
        queue: &str,
        limit: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Leased>, StoreError> {
        let now_ms = now.timestamp_millis();
        let until = now_ms + lease_for.as_millis() as i64;
        // The two halves of "due" each stop at the limit; the waiting half
        // reads its index in order, so only those few rows are merged and
        // sorted (sorting every due row cost a full scan per lease).
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, \
             lease_token = lease_token + 1, lease_expires_at = ?1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM ( \
               SELECT * FROM (SELECT id, priority, run_at FROM jobs INDEXED BY jobs_waiting \
                 WHERE queue = ?3 AND status IN ('pending', 'retrying') AND run_at <= ?2 \
                 ORDER BY priority DESC, run_at, id LIMIT ?4) \
               UNION ALL \
               SELECT * FROM (SELECT id, priority, run_at FROM jobs \
                 WHERE queue = ?3 AND status = 'running' AND lease_expires_at <= ?2 \
                 ORDER BY priority DESC, run_at, id LIMIT ?4)) \
               ORDER BY priority DESC, run_at, id LIMIT ?4) \
             RETURNING {JOB_COLUMNS}"
        );
        let _write = self.writes.turn().await;
        let rows: Vec<JobRow> = sqlx::query_as(&sql)
            .bind(until)
            .bind(now_ms)
            .bind(queue)
            .bind(limit as i64)
            .fetch_all(&self.unsynced)
            .await?;
        rows::leased(rows)
    }

    async fn finish(
        &self,
        finished: Vec<Finish>,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        let now_ms = now.timestamp_millis();
        let minute = minute_of(now);
        let mut counted = Vec::with_capacity(finished.len());
        let mut tally: HashMap<(String, &'static str), i64> = HashMap::new();
        let _write = self.writes.turn().await;
        let mut tx = self.unsynced.begin_with("BEGIN IMMEDIATE").await?;
        for finish in &finished {
            let c = FinishColumns::of(finish);
            let tenant: Option<Option<String>> = match c.status {
                Some(status) => {
                    sqlx::query_scalar(
                        "UPDATE jobs SET status = ?1, run_at = COALESCE(?2, run_at), \
                         last_error = COALESCE(?3, last_error), lease_expires_at = NULL, \
                         updated_at = ?4 \
                         WHERE id = ?5 AND status = 'running' AND lease_token = ?6 \
                         RETURNING tenant_id",
                    )
                    .bind(status.as_str())
                    .bind(c.run_at)
                    .bind(c.error.as_deref())
                    .bind(now_ms)
                    .bind(finish.lease.job)
                    .bind(finish.lease.token)
                    .fetch_optional(&mut *tx)
                    .await?
                }
                None => {
                    sqlx::query_scalar(
                        "UPDATE jobs SET attempts = attempts - 1, \
                         status = CASE WHEN attempts <= 1 THEN 'pending' ELSE 'retrying' END, \
                         run_at = ?1, lease_expires_at = NULL, updated_at = ?2 \
                         WHERE id = ?3 AND status = 'running' AND lease_token = ?4 \
                         RETURNING tenant_id",
                    )
                    .bind(c.run_at)
                    .bind(now_ms)
                    .bind(finish.lease.job)
                    .bind(finish.lease.token)
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            if let (Some(tenant), Some(outcome)) = (&tenant, c.counted_as) {
                *tally
                    .entry((tenant.clone().unwrap_or_default(), outcome))
                    .or_insert(0) += 1;
            }
            counted.push(tenant.is_some());
        }
        for ((tenant, outcome), n) in tally {
            sqlx::query(
                "INSERT INTO job_minutes (minute, tenant_id, outcome, n) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (minute, tenant_id, outcome) DO UPDATE SET n = n + excluded.n",
            )
            .bind(minute)
            .bind(tenant)
            .bind(outcome)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM job_minutes WHERE minute < ?1")
            .bind(minute - MINUTES_KEPT_SECS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(counted)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
               SELECT MIN(run_at) AS t FROM jobs \
                 WHERE queue = ?1 AND status IN ('pending', 'retrying') \
               UNION ALL \
               SELECT MIN(lease_expires_at) FROM jobs WHERE queue = ?1 AND status = 'running')",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }

    async fn job(&self, id: JobId, tenant: &Scope<TenantId>) -> Result<Job, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = "));
        qb.push_bind(id);
        push_tenant(&mut qb, tenant);
        let row: Option<JobRow> = qb.build_query_as().fetch_optional(&self.pool).await?;
        row.ok_or_else(|| not_found(id))?.into_job()
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut qb = QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
        push_tenant(&mut qb, &filter.tenant);
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(kind) = &filter.kind {
            qb.push(" AND kind = ").push_bind(kind.clone());
        }
        if let Some(before) = filter.before {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(filter.limit as i64);
        let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn retry(
        &self,
        id: JobId,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError> {
        let _write = self.writes.turn().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut qb = QueryBuilder::new("SELECT status FROM jobs WHERE id = ");
        qb.push_bind(id);
        push_tenant(&mut qb, tenant);
        let status: Option<String> = qb.build_query_scalar().fetch_optional(&mut *tx).await?;
        let status = status.ok_or_else(|| not_found(id))?;
        if status != JobStatus::Dead.as_str() {
            return Err(StoreError::Conflict(format!(
                "job {id} is {status}, not dead: only dead jobs can be retried"
            )));
        }
        let row: JobRow = sqlx::query_as(&format!(
            "UPDATE jobs SET status = 'pending', attempts = 0, run_at = ?1, \
             lease_expires_at = NULL, updated_at = ?1 WHERE id = ?2 RETURNING {JOB_COLUMNS}"
        ))
        .bind(now.timestamp_millis())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.wake_workers();
        row.into_job()
    }

    async fn retry_dead(
        &self,
        kind: Option<&str>,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let now_ms = now.timestamp_millis();
        let mut qb = QueryBuilder::new(
            "UPDATE jobs SET status = 'pending', attempts = 0, lease_expires_at = NULL, run_at = ",
        );
        qb.push_bind(now_ms)
            .push(", updated_at = ")
            .push_bind(now_ms)
            .push(" WHERE status = 'dead'");
        if let Some(kind) = kind {
            qb.push(" AND kind = ").push_bind(kind.to_string());
        }
        push_tenant(&mut qb, tenant);
        let n = {
            let _write = self.writes.turn().await;
            qb.build().execute(&self.pool).await?.rows_affected()
        };
        if n > 0 {
            self.wake_workers();
        }
        Ok(n)
    }

    async fn purge(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        tenant: &Scope<TenantId>,
    ) -> Result<u64, StoreError> {
        if !status.is_final() {
            return Err(StoreError::Conflict(format!(
                "{status} jobs cannot be purged: only done and dead jobs can (purging waiting or running jobs would lose work)"
            )));
        }
        let mut qb = QueryBuilder::new("DELETE FROM jobs WHERE status = ");
        qb.push_bind(status.as_str())
            .push(" AND updated_at < ")
            .push_bind(before.timestamp_millis());
        push_tenant(&mut qb, tenant);
        let _write = self.writes.turn().await;
        Ok(qb.build().execute(&self.pool).await?.rows_affected())
    }

    async fn queue_stats(
        &self,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut qb = QueryBuilder::new("SELECT status, COUNT(*) FROM jobs WHERE 1 = 1");
        push_tenant(&mut qb, tenant);
        qb.push(" GROUP BY status");
        let depth: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;

        let mut qb = QueryBuilder::new(
            "SELECT MIN(run_at) FROM jobs WHERE status IN ('pending', 'retrying') AND run_at <= ",
        );
        qb.push_bind(now.timestamp_millis());
        push_tenant(&mut qb, tenant);
        let oldest_due_ms: Option<i64> = qb.build_query_scalar().fetch_one(&mut *conn).await?;

        let mut qb = QueryBuilder::new("SELECT outcome, SUM(n) FROM job_minutes WHERE minute >= ");
        qb.push_bind(window_start(now));
        if let Some(t) = tenant.only() {
            qb.push(" AND tenant_id = ")
                .push_bind(t.as_str().to_string());
        }
        qb.push(" GROUP BY outcome");
        let outcomes: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;

        let mut qb = QueryBuilder::new("SELECT kind, COUNT(*) FROM jobs WHERE status = 'dead'");
        push_tenant(&mut qb, tenant);
        qb.push(" GROUP BY kind");
        let dead_by_kind: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;

        Ok(StatsParts {
            depth,
            oldest_due_ms,
            outcomes,
            dead_by_kind,
        }
        .into_stats(now))
    }

    async fn enqueued(&self) -> Result<watch::Receiver<u64>, StoreError> {
        Ok(self.jobs_enqueued.subscribe())
    }
}
