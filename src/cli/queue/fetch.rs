//! What one `pytake queue` request fetches, and its forms: the API's JSON
//! as sent, a table (or a line saying what was done), CSV for listings.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{csv, render, Action};
use crate::client::queue::{JobQuery, NewJobRequest};
use crate::client::{ApiClient, ClientError, Fetched};
use crate::server::storage::jobs::{Job, JobId, JobStatus, QueueStats};

/// `GET /api/v1/queue/stats`: the stats every node shares, the tenant
/// they cover, and the circuits of the node that answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub stats: QueueStats,
    /// `None`: every tenant (an admin token).
    pub tenant_id: Option<String>,
    pub circuits: Vec<Circuit>,
}

/// One destination host's circuit breaker on the node that answered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Circuit {
    pub host: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
}

/// What the stats body adds to [`QueueStats`].
#[derive(Deserialize)]
struct StatsExtras {
    tenant_id: Option<String>,
    #[serde(default)]
    circuits: Vec<Circuit>,
}

/// Read twice from the body as sent, rather than through
/// `#[serde(flatten)]`, which cannot read f64s with serde_json's
/// `arbitrary_precision` on.
impl<'de> Deserialize<'de> for Stats {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Stats, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let stats = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        let extras: StatsExtras = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        Ok(Stats {
            stats,
            tenant_id: extras.tenant_id,
            circuits: extras.circuits,
        })
    }
}

/// `GET /api/v1/queue/jobs`: a page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// Set when the page is full: the `--before` of the next one.
    pub next_before: Option<JobId>,
}

/// `POST /api/v1/queue/dead/retry`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Retried {
    pub retried: u64,
}

/// `DELETE /api/v1/queue/jobs`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Purged {
    pub purged: u64,
    pub status: JobStatus,
    /// Jobs last updated before this were deleted.
    pub before: DateTime<Utc>,
}

/// What a listing asked for, to say it above the table and to spell the
/// command line of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    /// `pytake queue dead`: the dead-letter view.
    pub dead: bool,
    pub status: Option<JobStatus>,
    pub kind: Option<String>,
    pub limit: u32,
    pub before: Option<JobId>,
}

/// One request's reply.
#[derive(Debug)]
pub enum Reply {
    Stats(Fetched<Stats>),
    Jobs {
        page: Fetched<Page>,
        listing: Listing,
    },
    Job(Fetched<Job>),
    Retried(Fetched<Job>),
    RetriedDead {
        body: Fetched<Retried>,
        kind: Option<String>,
    },
    Purged(Fetched<Purged>),
    Enqueued(Fetched<Job>),
}

impl Reply {
    /// Makes `action`'s request; `now` dates a `--run-at` given as a
    /// duration.
    pub async fn fetch(
        api: &ApiClient,
        action: &Action,
        now: DateTime<Utc>,
    ) -> Result<Reply, ClientError> {
        Ok(match action {
            Action::Stats(_) => Reply::Stats(api.queue_stats().await?),
            Action::List(a) => Reply::listing(api, a.listing()).await?,
            Action::Dead(a) => Reply::listing(api, a.listing()).await?,
            Action::Show(a) => Reply::Job(api.job(a.id).await?),
            Action::Retry(a) => match a.id {
                Some(id) => Reply::Retried(api.retry_job(id).await?),
                None => Reply::RetriedDead {
                    body: api.retry_dead(a.kind.as_deref()).await?,
                    kind: a.kind.clone(),
                },
            },
            Action::Purge(a) => {
                Reply::Purged(api.purge_jobs(a.status.as_str(), a.older_than).await?)
            }
            Action::Enqueue(a) => {
                let job = NewJobRequest {
                    kind: a.kind.clone(),
                    payload: a.payload.clone(),
                    priority: a.priority,
                    run_at: a.run_at.as_ref().map(|r| r.at(now)),
                    max_attempts: a.max_attempts,
                    correlation_id: a.correlation_id.clone(),
                };
                Reply::Enqueued(api.enqueue_job(&job).await?)
            }
        })
    }

    async fn listing(api: &ApiClient, listing: Listing) -> Result<Reply, ClientError> {
        let page = api.jobs(&query(&listing)).await?;
        Ok(Reply::Jobs { page, listing })
    }

    /// One line of JSON: the API's body as sent.
    pub fn json(&self) -> &str {
        match self {
            Reply::Stats(f) => f.raw.get(),
            Reply::Jobs { page, .. } => page.raw.get(),
            Reply::Job(f) | Reply::Retried(f) | Reply::Enqueued(f) => f.raw.get(),
            Reply::RetriedDead { body, .. } => body.raw.get(),
            Reply::Purged(f) => f.raw.get(),
        }
    }

    /// The tables, or the line saying what was done; times relative to
    /// `now`.
    pub fn table(&self, color: bool, now: DateTime<Utc>) -> String {
        match self {
            Reply::Stats(f) => render::stats(&f.body, color),
            Reply::Jobs { page, listing } => render::jobs(&page.body, listing, now, color),
            Reply::Job(f) => render::job(&f.body, now, color),
            Reply::Retried(f) => render::retried(&f.body),
            Reply::RetriedDead { body, kind } => {
                render::retried_dead(body.body.retried, kind.as_deref())
            }
            Reply::Purged(f) => render::purged(&f.body, now),
            Reply::Enqueued(f) => render::enqueued(&f.body, now),
        }
    }

    /// A listing as CSV; `None` for the other replies, which are not
    /// tables of rows (clap offers `--output csv` only for listings).
    pub fn csv(&self) -> Option<Vec<u8>> {
        match self {
            Reply::Jobs { page, .. } => Some(csv::jobs(&page.body.jobs)),
            _ => None,
        }
    }
}

/// The request of a listing (`dead` is `status=dead`).
fn query(listing: &Listing) -> JobQuery {
    let status = if listing.dead {
        Some(JobStatus::Dead)
    } else {
        listing.status
    };
    JobQuery {
        status: status.map(|s| s.as_str().to_string()),
        kind: listing.kind.clone(),
        limit: Some(listing.limit),
        before: listing.before,
    }
}
