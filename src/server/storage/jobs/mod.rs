//! The durable job queue: what workers on every node lease, run and
//! finish (see [`crate::server::queue`]).
//!
//! The queue is built on leases, not on locks held in a node's memory: a
//! leased job carries a fencing token ([`Lease`]), and a job whose lease
//! expired (its worker crashed or hung) is due again. Delivery is
//! at-least-once, so every handler is written to be idempotent.
//!
//! Durability: an enqueue is durable when it returns (it acknowledges
//! work). A lease or a finish survives a process crash but a backend may
//! let a power cut forget the latest ones (SQLite commits them without an
//! fsync): the job then runs again, which at-least-once already allows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::StoreError;
use crate::protocol::{Scope, TenantId};

pub type JobId = i64;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum JobStatus {
    /// Waiting for its first run (at `run_at`).
    Pending,
    /// Leased by a worker until `lease_expires_at`.
    Running,
    /// Failed, waiting for its next attempt (at `run_at`).
    Retrying,
    /// Finished.
    Done,
    /// Failed for good: out of attempts, or not retryable. Kept with its
    /// error and attempt count until retried or purged.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Retrying,
        JobStatus::Done,
        JobStatus::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Retrying => "retrying",
            JobStatus::Done => "done",
            JobStatus::Dead => "dead",
        }
    }

    /// Whether the job will not run again by itself: only these may be
    /// purged (purging a waiting job would lose work).
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Dead)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job status `{s}`: expected pending, running, retrying, done or dead"
                )
            })
    }
}

impl TryFrom<String> for JobStatus {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The queue a worker pool takes jobs from (`default`).
    pub queue: String,
    /// Which handler runs it (`http`, `webhook.whatsapp`, ...).
    pub kind: String,
    pub payload: serde_json::Value,
    /// Higher runs first; equal priorities run oldest first.
    pub priority: i32,
    /// Not before this time.
    pub run_at: DateTime<Utc>,
    pub max_attempts: u32,
    /// Ties the job to what caused it (a request, an alert), for tracing.
    pub correlation_id: Option<String>,
    /// The tenant whose operators may see and retry it; `None`: admins only.
    pub tenant_id: Option<String>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub queue: String,
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: i32,
    pub status: JobStatus,
    /// Runs started, including one whose worker died.
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_at: DateTime<Utc>,
    /// While running: when another worker may take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A worker's hold on a job, with a fencing token: every lease of a job
/// gets a new token, so a worker whose lease expired and was taken over
/// cannot finish the job a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub job: JobId,
    pub token: i64,
}

/// A leased job.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub job: Job,
    pub lease: Lease,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// Failed; runs again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Failed for good.
    Dead {
        error: String,
    },
    /// Not run (its destination's circuit is open): back to waiting until
    /// `at` without spending the attempt.
    Release {
        at: DateTime<Utc>,
    },
}

/// One finished run, to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub lease: Lease,
    pub outcome: Outcome,
}

/// Which jobs a listing wants, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFilter {
    pub tenant: Scope<TenantId>,
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    /// Only ids below this (paging).
    pub before: Option<JobId>,
    pub limit: u32,
}

/// The queue at one moment, the same from every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Jobs per status (every status present, 0 when none).
    pub depth: BTreeMap<JobStatus, u64>,
    /// How long the longest-waiting due job (pending or retrying, its
    /// `run_at` passed) has waited; 0 when none waits.
    pub oldest_pending_seconds: f64,
    /// Runs that finished done per second, over [`STATS_WINDOW`].
    pub processed_per_second: f64,
    /// Runs that failed (retried or dead) among runs that finished, over
    /// [`STATS_WINDOW`]; 0 when none finished.
    pub error_rate: f64,
    /// Dead jobs per kind.
    pub dead_by_kind: BTreeMap<String, u64>,
}

/// The window of the rates in [`QueueStats`].
pub const STATS_WINDOW: Duration = Duration::from_secs(300);

/// The durable job queue.
///
/// # Contract (every backend; the conformance suite checks each point)
///
/// - **Order**: [`JobStore::lease`] hands out due jobs by priority
///   (highest first), then `run_at`, then id. A job is due when it waits
///   (pending or retrying) and its `run_at` has passed, or when it runs
///   and its lease has expired.
/// - **One holder**: a job is leased to one caller at a time, across every
///   node: two concurrent leases never return the same job (PostgreSQL
///   `FOR UPDATE SKIP LOCKED`; SQLite's single writer).
/// - **Fencing**: a [`Finish`] counts only while the job still runs under
///   that lease's token. After the lease expired and another worker took
///   the job, the first worker's finish is refused, so a job completes
///   at most once per lease and never twice while a lease is held.
/// - **At least once**: a leased job whose worker never finishes it is
///   due again when its lease expires; nothing enqueued is lost.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores jobs in one transaction (all or none) and wakes the workers
    /// of every node ([`JobStore::enqueued`]); their ids, in order.
    async fn enqueue(
        &self,
        jobs: Vec<NewJob>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JobId>, StoreError>;

    /// Leases up to `limit` due jobs of `queue` for `lease_for`, counting
    /// an attempt for each; in the contract's order.
    async fn lease(
        &self,
        queue: &str,
        limit: u32,
        lease_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Leased>, StoreError>;

    /// Records runs' outcomes in one transaction; for each, whether it
    /// counted (false: the lease was lost, see the fencing contract).
    /// A released job gets its attempt back.
    async fn finish(
        &self,
        finished: Vec<Finish>,
        now: DateTime<Utc>,
    ) -> Result<Vec<bool>, StoreError>;

    /// The earliest time a waiting job of `queue` becomes due, or a lease
    /// expires: when a worker with nothing due should look again.
    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// One job, if `tenant` may see it ([`StoreError::NotFound`] otherwise,
    /// so another tenant's job ids reveal nothing).
    async fn job(&self, id: JobId, tenant: &Scope<TenantId>) -> Result<Job, StoreError>;

    async fn jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;

    /// Runs a dead job again from its first attempt (its last error kept
    /// until the next run). [`StoreError::Conflict`] unless it is dead.
    async fn retry(
        &self,
        id: JobId,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<Job, StoreError>;

    /// [`JobStore::retry`] for every dead job (of `kind`); how many.
    async fn retry_dead(
        &self,
        kind: Option<&str>,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Deletes the jobs of a final `status` (done or dead;
    /// [`StoreError::Conflict`] for another) last updated before
    /// `before`; how many.
    async fn purge(
        &self,
        status: JobStatus,
        before: DateTime<Utc>,
        tenant: &Scope<TenantId>,
    ) -> Result<u64, StoreError>;

    async fn queue_stats(
        &self,
        tenant: &Scope<TenantId>,
        now: DateTime<Utc>,
    ) -> Result<QueueStats, StoreError>;

    /// A counter that moves whenever jobs are enqueued on any node (and
    /// whenever the backend may have missed telling, such as a
    /// reconnection), so workers wake at once instead of at their poll
    /// interval. The poll stays as the fallback.
    async fn enqueued(&self) -> Result<watch::Receiver<u64>, StoreError>;
}

pub mod rows;
