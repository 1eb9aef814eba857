//! What every backend's queue SQL shares: a row as read, a finish as
//! written, and the stats put together from their parts. Times are Unix
//! milliseconds in both schemas.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Finish, Job, JobStatus, Lease, Leased, Outcome, QueueStats, STATS_WINDOW};
use crate::server::storage::StoreError;

/// The columns [`JobRow`] reads, in the order of its fields.
pub const JOB_COLUMNS: &str = "id, queue, kind, payload, priority, status, attempts, \
     max_attempts, run_at, lease_expires_at, lease_token, last_error, correlation_id, \
     tenant_id, created_at, updated_at";

/// A `jobs` row as both backends return it.
#[derive(Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub priority: i32,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub lease_expires_at: Option<i64>,
    pub lease_token: i64,
    pub last_error: Option<String>,
    pub correlation_id: Option<String>,
    pub tenant_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl JobRow {
    pub fn into_job(self) -> Result<Job, StoreError> {
        let id = self.id;
        let corrupt = |message: String| StoreError::CorruptJob { id, message };
        let time = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms)
                .ok_or_else(|| corrupt(format!("time {ms} is out of range")))
        };
        Ok(Job {
            id,
            payload: serde_json::from_str(&self.payload)
                .map_err(|e| corrupt(format!("payload is not JSON: {e}")))?,
            status: self.status.parse().map_err(corrupt)?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            max_attempts: u32::try_from(self.max_attempts).unwrap_or(0),
            run_at: time(self.run_at)?,
            lease_expires_at: self.lease_expires_at.map(time).transpose()?,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
            queue: self.queue,
            kind: self.kind,
            priority: self.priority,
            last_error: self.last_error,
            correlation_id: self.correlation_id,
            tenant_id: self.tenant_id,
        })
    }
}

/// Leased rows as [`Leased`] jobs in lease order (RETURNING follows the
/// update, not the order the jobs were chosen in).
pub fn leased(rows: Vec<JobRow>) -> Result<Vec<Leased>, StoreError> {
    let mut leased = rows
        .into_iter()
        .map(|row| {
            let lease = Lease {
                job: row.id,
                token: row.lease_token,
            };
            row.into_job().map(|job| Leased { job, lease })
        })
        .collect::<Result<Vec<_>, _>>()?;
    leased.sort_by_key(|l| (std::cmp::Reverse(l.job.priority), l.job.run_at, l.job.id));
    Ok(leased)
}

/// A finish as columns: the status it sets (`None`: back to waiting, the
/// attempt given back), the next run time and the error.
pub struct FinishColumns {
    pub status: Option<JobStatus>,
    pub run_at: Option<i64>,
    pub error: Option<String>,
    /// Counted in `job_minutes` as this outcome.
    pub counted_as: Option<&'static str>,
}

impl FinishColumns {
    pub fn of(finish: &Finish) -> FinishColumns {
        match &finish.outcome {
            Outcome::Done => FinishColumns {
                status: Some(JobStatus::Done),
                run_at: None,
                error: None,
                counted_as: Some("done"),
            },
            Outcome::Retry { at, error } => FinishColumns {
                status: Some(JobStatus::Retrying),
                run_at: Some(at.timestamp_millis()),
                error: Some(error.clone()),
                counted_as: Some("retried"),
            },
            Outcome::Dead { error } => FinishColumns {
                status: Some(JobStatus::Dead),
                run_at: None,
                error: Some(error.clone()),
                counted_as: Some("dead"),
            },
            Outcome::Release { at } => FinishColumns {
                status: None,
                run_at: Some(at.timestamp_millis()),
                error: None,
                counted_as: None,
            },
        }
    }
}

/// The minute bucket (Unix seconds of its start) of a time.
pub fn minute_of(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(60) * 60
}

/// The first minute bucket the stats read.
pub fn window_start(now: DateTime<Utc>) -> i64 {
    minute_of(now - chrono::Duration::from_std(STATS_WINDOW).unwrap_or_default())
}

/// How long `job_minutes` rows are kept.
pub const MINUTES_KEPT_SECS: i64 = 86_400;

/// The stats from what a backend read.
pub struct StatsParts {
    pub depth: Vec<(String, i64)>,
    /// The earliest `run_at` of a due waiting job.
    pub oldest_due_ms: Option<i64>,
    /// `job_minutes` sums by outcome since [`window_start`].
    pub outcomes: Vec<(String, i64)>,
    pub dead_by_kind: Vec<(String, i64)>,
}

impl StatsParts {
    pub fn into_stats(self, now: DateTime<Utc>) -> QueueStats {
        let mut depth: BTreeMap<JobStatus, u64> =
            JobStatus::ALL.into_iter().map(|s| (s, 0)).collect();
        for (status, n) in self.depth {
            if let Ok(status) = status.parse() {
                depth.insert(status, n.max(0) as u64);
            }
        }
        let count = |name: &str| {
            self.outcomes
                .iter()
                .filter(|(o, _)| o == name)
                // A fold from +0.0: an empty f64 sum is -0.0, which the
                // API would print as `-0.0`.
                .fold(0.0, |sum, (_, n)| sum + (*n).max(0) as f64)
        };
        let (done, failed) = (count("done"), count("retried") + count("dead"));
        // The window covers whole minutes back from the current one.
        let seconds = (now.timestamp() - window_start(now)).max(1) as f64;
        QueueStats {
            depth,
            oldest_pending_seconds: self.oldest_due_ms.map_or(0.0, |ms| {
                ((now.timestamp_millis() - ms).max(0) as f64) / 1000.0
            }),
            processed_per_second: done / seconds,
            error_rate: if done + failed > 0.0 {
                failed / (done + failed)
            } else {
                0.0
            },
            dead_by_kind: self
                .dead_by_kind
                .into_iter()
                .map(|(k, n)| (k, n.max(0) as u64))
                .collect(),
        }
    }
}
