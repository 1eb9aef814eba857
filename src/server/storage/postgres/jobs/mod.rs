//! The PostgreSQL side of [`JobStore`]: the queue several nodes share.
//! Leasing is one statement that locks its jobs with `FOR UPDATE SKIP
//! LOCKED`, so concurrent leases on any node pass each other's jobs by
//! instead of waiting or taking them twice; finishing is one statement
//! that records the outcomes under their fencing tokens and counts them
//! for the rates.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use tokio::sync::watch;

use super::PgStore;
use crate::protocol::{Scope, TenantId};
use crate::server::storage::jobs::rows::{
    self, minute_of, window_start, FinishColumns, JobRow, StatsParts, JOB_COLUMNS,
    MINUTES_KEPT_SECS,
};
use crate::server::storage::jobs::{
    Finish, Job, JobFilter, JobId, JobStatus, JobStore, Leased, NewJob, QueueStats,
};
use crate::server::storage::StoreError;

mod wake;

pub(super) use wake::Wake;

/// What [`JobStore::retry`] and [`JobStore::retry_dead`] set, `$1` being
/// now: the first attempt again, due at once. The last error stays until
/// the next run records its own.
const RETRY_SET: &str = "status = 'pending', attempts = 0, run_at = $1, \
    lease_expires_at = NULL, updated_at = $1";

/// `t` as stored: Unix milliseconds, as in the SQLite store.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The tenant a scope limits to (`None`: every job).
fn scope_text(tenant: &Scope<TenantId>) -> Option<&str> {
    tenant.only().map(TenantId::as_str)
}

fn not_found(id: JobId) -> StoreError {
    StoreError::NotFound {
        what: "job",
        id: id.to_string(),
    }
}

/// Enqueues `jobs` (not empty) with the one statement that also notifies
/// every node: on the pool, an enqueue of its own; on a transaction, jobs
/// that commit with what caused them (an alert transition and its
/// notifications), PostgreSQL holding the notification until that
/// commit. Their ids, in order. The caller moves this node's counter
/// ([`Wake::bump`]) once committed.
pub(super) async fn insert_jobs<'e, E: PgExecutor<'e>>(
    executor: E,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<Vec<JobId>, StoreError> {
    let n = jobs.len();
    let mut cols = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for job in jobs {
        cols.0.push(job.queue.as_str());
        cols.1.push(job.kind.as_str());
        cols.2.push(job.payload.to_string());
        cols.3.push(job.priority);
        // Past i32::MAX attempts a job retries for ever either way.
        cols.4
            .push(i32::try_from(job.max_attempts).unwrap_or(i32::MAX));
        cols.5.push(ms(job.run_at));
        cols.6.push(job.correlation_id.as_deref());
        cols.7.push(job.tenant_id.as_deref());
    }
    // One statement, so the rows and the notification commit together
    // (with the caller's transaction, if any), and PostgreSQL delivers the
    // notification at that commit, when every listener can lease the new
    // jobs. The rows are
    // inserted in input order and take their identity values in that
    // order, so the ids sorted are the jobs' ids in order (another
    // session's inserts may take values in between).
    let ids: Vec<JobId> = sqlx::query_scalar(
        "WITH new AS ( \
           INSERT INTO jobs (queue, kind, payload, priority, status, max_attempts, run_at, \
                             correlation_id, tenant_id, created_at, updated_at) \
           SELECT queue, kind, payload, priority, 'pending', max_attempts, run_at, \
                  correlation_id, tenant_id, $9, $9 \
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int4[], \
                       $6::int8[], $7::text[], $8::text[]) WITH ORDINALITY \
                AS t(queue, kind, payload, priority, max_attempts, run_at, \
                     correlation_id, tenant_id, n) \
           ORDER BY n \
           RETURNING id \
         ) \
         SELECT ARRAY(SELECT id FROM new ORDER BY id), pg_notify($10, '')",
    )
    .bind(&cols.0)
    .bind(&cols.1)
    .bind(&cols.2)
    .bind(&cols.3)
    .bind(&cols.4)
    .bind(&cols.5)
    .bind(&cols.6)
    .bind(&cols.7)
    .bind(ms(now))
    .bind(wake::CHANNEL)
    .fetch_one(executor)
    .await?;
    Ok(ids)
}

#[async_trait]
impl JobStore for PgStore {
    async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobId>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = insert_jobs(&self.pool, &jobs, now).await?;
        self.jobs.bump();
        Ok(ids)
    }

    async fn lease(
        &self,
        queue: &str,
        limit: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Leased>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lease_ms = i64::try_from(lease_for.as_millis()).unwrap_or(i64::MAX);
        // "Due" is two sets, each with its index: waiting jobs in lease
        // order, running ones by lease expiry (an OR of the two made the
        // planner read and sort every waiting job of the queue). Each half
        // locks up to `limit` of its rows, skipping rows another lease
        // holds, so a concurrent lease on any node takes the next free jobs
        // instead of nothing; the first `limit` of both halves in lease
        // order are leased, and the others unlocked at the statement's end.
        let rows: Vec<JobRow> = sqlx::query_as(&format!(
            "WITH due AS ( \
               SELECT * FROM ( \
                 SELECT id, priority, run_at FROM jobs \
                 WHERE queue = $1 AND status IN ('pending', 'retrying') AND run_at <= $2 \
                 ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) waiting \
               UNION ALL \
               SELECT * FROM ( \
                 SELECT id, priority, run_at FROM jobs \
                 WHERE queue = $1 AND status = 'running' AND lease_expires_at <= $2 \
                 ORDER BY priority DESC, run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) expired \
               ORDER BY priority DESC, run_at, id LIMIT $3 \
             ) \
             UPDATE jobs SET status = 'running', attempts = attempts + 1, \
               lease_token = lease_token + 1, lease_expires_at = $2 + $4, updated_at = $2 \
             WHERE id IN (SELECT id FROM due) \
             RETURNING {JOB_COLUMNS}"
        ))
        .bind(queue)
        .bind(ms(now))
        .bind(i64::from(limit))
        .bind(lease_ms)
        .fetch_all(&self.pool)
        .await?;
        rows::leased(rows)
    }

    async fn finish(
        &self,
        finished: Vec<Finish>,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError> {
        if finished.is_empty() {
            return Ok(Vec::new());
        }
        let minute = minute_of(now);
        if self.jobs.expiry_due(minute) {
            // Before the finish, in a statement of its own: in the finish's
            // statement it could lock old rows before or after the counted
            // ones, and two nodes doing it in opposite orders would
            // deadlock. Once a minute per node, not on every finish.
            sqlx::query("DELETE FROM job_minutes WHERE minute < $1")
                .bind(minute - MINUTES_KEPT_SECS)
                .execute(&self.pool)
                .await?;
        }
        let n = finished.len();
        let mut cols = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for finish in &finished {
            let c = FinishColumns::of(finish);
            cols.0.push(finish.lease.job);
            cols.1.push(finish.lease.token);
            cols.2.push(c.status.map(JobStatus::as_str));
            cols.3.push(c.run_at);
            cols.4.push(c.error);
            cols.5.push(c.counted_as);
        }
        // One statement: the outcomes and their counts commit together.
        // A finish counts while its job runs under its token. A NULL
        // status is a release: back to waiting, the attempt given back.
        // The counts are upserted in key order, so concurrent finishes
        // lock the shared minute rows in one order and cannot deadlock.
        // Each input answers by its ordinal: one the join did not use (a
        // second finish of one lease in the call) did not count.
        let counted: Vec<i64> = sqlx::query_scalar(
            "WITH f AS ( \
               SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
                                    $6::text[]) \
                 WITH ORDINALITY AS f(id, token, status, run_at, error, counted_as, n) \
             ), ran AS ( \
               UPDATE jobs j SET \
                 status = COALESCE(f.status, \
                   CASE WHEN j.attempts <= 1 THEN 'pending' ELSE 'retrying' END), \
                 attempts = CASE WHEN f.status IS NULL THEN GREATEST(j.attempts - 1, 0) \
                   ELSE j.attempts END, \
                 run_at = COALESCE(f.run_at, j.run_at), \
                 last_error = COALESCE(f.error, j.last_error), \
                 lease_expires_at = NULL, updated_at = $7 \
               FROM f \
               WHERE j.id = f.id AND j.status = 'running' AND j.lease_token = f.token \
               RETURNING f.n, f.counted_as, j.tenant_id \
             ), counts AS ( \
               INSERT INTO job_minutes (minute, tenant_id, outcome, n) \
               SELECT $8, COALESCE(tenant_id, ''), counted_as, count(*) FROM ran \
               WHERE counted_as IS NOT NULL GROUP BY 2, 3 ORDER BY 2, 3 \
               ON CONFLICT (minute, tenant_id, outcome) \
               DO UPDATE SET n = job_minutes.n + excluded.n \
             ) \
             SELECT n FROM ran",
        )
        .bind(&cols.0)
        .bind(&cols.1)
        .bind(&cols.2)
        .bind(&cols.3)
        .bind(&cols.4)
        .bind(&cols.5)
        .bind(ms(now))
        .bind(minute)
        .fetch_all(&self.pool)
        .await?;
        let counted: HashSet<i64> = counted.into_iter().collect();
        Ok((1..=n as i64).map(|i| counted.contains(&i)).collect())
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        // The earliest waiting `run_at` is the first entry of each
        // priority in the lease-order index: one index descent per
        // priority present (a skip scan), where MIN(run_at) read every
        // waiting job (50 ms for 100,000 scheduled ahead, against 0.4).
        let at: Option<i64> = sqlx::query_scalar(
            "WITH RECURSIVE firsts AS ( \
               (SELECT priority, run_at FROM jobs \
                WHERE queue = $1 AND status IN ('pending', 'retrying') \
                ORDER BY priority DESC, run_at, id LIMIT 1) \
               UNION ALL \
               SELECT next.priority, next.run_at FROM firsts f CROSS JOIN LATERAL ( \
                 SELECT priority, run_at FROM jobs \
                 WHERE queue = $1 AND status IN ('pending', 'retrying') AND priority < f.priority \
                 ORDER BY priority DESC, run_at, id LIMIT 1) next \
             ) \
             SELECT LEAST((SELECT MIN(run_at) FROM firsts), \
                          (SELECT MIN(lease_expires_at) FROM jobs \
                           WHERE queue = $1 AND status = 'running'))",
        )
        .bind(queue)
        .fetch_one(&self.pool)
        .await?;
        Ok(at.and_then(DateTime::from_timestamp_millis))
    }

    async fn job(&self, id: JobId, tenant: &Scope<TenantId>) -> Result<Job, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND ($2::text IS NULL OR tenant_id = $2)"
        ))
        .bind(id)
        .bind(scope_text(tenant))
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| not_found(id))?.into_job()
    }

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE TRUE"));
        if let Scope::Only(tenant) = &filter.tenant {
            qb.push(" AND tenant_id = ").push_bind(tenant.as_str());
        }
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(kind) = &filter.kind {
            qb.push(" AND kind = ").push_bind(kind.as_str());
        }
        if let Some(before) = filter.before {
            qb.push(" AND id < ").push_bind(before);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit));
        let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(JobRow::into_job).collect()
    }

    async fn retry(
        &self,
        id: JobId,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError> {
        // A retried job is due at once: the workers of every node are told
        // as for an enqueue.
        let row: Option<JobRow> = sqlx::query_as(&format!(
            "WITH retried AS ( \
               UPDATE jobs SET {RETRY_SET} \
               WHERE id = $2 AND status = 'dead' AND ($3::text IS NULL OR tenant_id = $3) \
               RETURNING {JOB_COLUMNS} \
             ) \
             SELECT *, pg_notify($4, '') FROM retried"
        ))
        .bind(ms(now))
        .bind(id)
        .bind(scope_text(tenant))
        .bind(wake::CHANNEL)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            self.jobs.bump();
            return row.into_job();
        }
        // Not retried: say why, from the job as it stands now.
        let job = self.job(id, tenant).await?;
        Err(StoreError::Conflict(format!(
            "job {id} is {}, not dead: only dead jobs can be retried",
            job.status
        )))
    }

    async fn retry_dead(
        &self,
        kind: Option<&str>,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let retried: i64 = sqlx::query_scalar(&format!(
            "WITH retried AS ( \
               UPDATE jobs SET {RETRY_SET} \
               WHERE status = 'dead' AND ($2::text IS NULL OR kind = $2) \
                 AND ($3::text IS NULL OR tenant_id = $3) \
               RETURNING 1 \
             ) \
             SELECT count(*), CASE WHEN count(*) > 0 THEN pg_notify($4, '')::text END \
             FROM retried"
        ))
        .bind(ms(now))
        .bind(kind)
        .bind(scope_text(tenant))
        .bind(wake::CHANNEL)
        .fetch_one(&self.pool)
        .await?;
        if retried > 0 {
            self.jobs.bump();
        }
        Ok(retried as u64)
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
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE status = $1 AND updated_at < $2 \
               AND ($3::text IS NULL OR tenant_id = $3)",
        )
        .bind(status.as_str())
        .bind(ms(before))
        .bind(scope_text(tenant))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    async fn queue_stats(
        &self,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError> {
        // One statement, so every figure is of one snapshot: rows of
        // (part, key, value).
        let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
            "SELECT 'depth', status::text, count(*) FROM jobs \
               WHERE $1::text IS NULL OR tenant_id = $1 GROUP BY status \
             UNION ALL \
             SELECT 'dead', kind::text, count(*) FROM jobs \
               WHERE status = 'dead' AND ($1::text IS NULL OR tenant_id = $1) GROUP BY kind \
             UNION ALL \
             SELECT 'oldest', '', MIN(run_at) FROM jobs \
               WHERE status IN ('pending', 'retrying') AND run_at <= $2 \
                 AND ($1::text IS NULL OR tenant_id = $1) \
             UNION ALL \
             SELECT 'runs', outcome::text, SUM(n)::bigint FROM job_minutes \
               WHERE minute >= $3 AND ($1::text IS NULL OR tenant_id = $1) GROUP BY outcome",
        )
        .bind(scope_text(tenant))
        .bind(ms(now))
        .bind(window_start(now))
        .fetch_all(&self.pool)
        .await?;
        let mut parts = StatsParts {
            depth: Vec::new(),
            oldest_due_ms: None,
            outcomes: Vec::new(),
            dead_by_kind: Vec::new(),
        };
        for (part, key, value) in rows {
            match (part.as_str(), value) {
                ("oldest", oldest) => parts.oldest_due_ms = oldest,
                ("depth", Some(n)) => parts.depth.push((key, n)),
                ("dead", Some(n)) => parts.dead_by_kind.push((key, n)),
                (_, Some(n)) => parts.outcomes.push((key, n)),
                (_, None) => {}
            }
        }
        Ok(parts.into_stats(now))
    }

    async fn enqueued(&self) -> Result<watch::Receiver<u64>, StoreError> {
        self.jobs.subscribe(&self.pool).await
    }
}
