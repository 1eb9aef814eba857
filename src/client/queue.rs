//! The job queue's endpoints, for `pytake queue`.
//!
//! Replies come back as [`Fetched`] (the body as sent beside the typed
//! body), so `--output json` prints the API's JSON. The typed bodies are
//! the caller's choice: the job types belong to the server's queue, and
//! this layer does not depend on the server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{ApiClient, ClientError, Fetched};

/// How long a request about a few jobs may take: they are indexed reads
/// and single-row writes, so a longer wait is a server in trouble, and
/// `stats --watch` must not hang on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a purge or a retry of every dead job may take: each is one
/// statement over as many rows as match, which can be millions after a
/// long outage; a server still busy after this long is in trouble.
const BULK_TIMEOUT: Duration = Duration::from_secs(600);

/// Which jobs `GET /api/v1/queue/jobs` lists; `None`: the server's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobQuery {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub limit: Option<u32>,
    /// Only ids below this: the `next_before` of the previous page.
    pub before: Option<i64>,
}

/// The body of `POST /api/v1/queue/jobs`; `None`: the server's default.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewJobRequest {
    pub kind: String,
    pub payload: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl ApiClient {
    /// Sends `req` with `timeout`; the reply as sent and as `T`.
    async fn queue_call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Fetched<T>, ClientError> {
        Fetched::new(self.send::<Box<RawValue>>(req.timeout(timeout)).await?)
    }

    /// `/api/v1/queue/jobs/{id}` and what follows it.
    fn job_url(&self, id: i64, then: &str) -> url::Url {
        self.url(&format!("/api/v1/queue/jobs/{id}{then}"))
    }

    /// `GET /api/v1/queue/stats`.
    pub async fn queue_stats<T: DeserializeOwned>(&self) -> Result<Fetched<T>, ClientError> {
        let req = self.http.get(self.url("/api/v1/queue/stats"));
        self.queue_call(req, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/queue/jobs`, newest first.
    pub async fn jobs<T: DeserializeOwned>(&self, q: &JobQuery) -> Result<Fetched<T>, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &q.status {
            query.push(("status", s.clone()));
        }
        if let Some(k) = &q.kind {
            query.push(("kind", k.clone()));
        }
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(b) = q.before {
            query.push(("before", b.to_string()));
        }
        let req = self.http.get(self.url("/api/v1/queue/jobs")).query(&query);
        self.queue_call(req, REQUEST_TIMEOUT).await
    }

    /// `GET /api/v1/queue/jobs/{id}`.
    pub async fn job<T: DeserializeOwned>(&self, id: i64) -> Result<Fetched<T>, ClientError> {
        let req = self.http.get(self.job_url(id, ""));
        self.queue_call(req, REQUEST_TIMEOUT).await
    }

    /// `POST /api/v1/queue/jobs/{id}/retry`: a dead job runs again.
    pub async fn retry_job<T: DeserializeOwned>(&self, id: i64) -> Result<Fetched<T>, ClientError> {
        let req = self.http.post(self.job_url(id, "/retry"));
        self.queue_call(req, REQUEST_TIMEOUT).await
    }

    /// `POST /api/v1/queue/dead/retry`: every dead job (of `kind`) runs again.
    pub async fn retry_dead<T: DeserializeOwned>(
        &self,
        kind: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        let body = match kind {
            Some(k) => json!({ "kind": k }),
            None => json!({}),
        };
        let req = self
            .http
            .post(self.url("/api/v1/queue/dead/retry"))
            .json(&body);
        self.queue_call(req, BULK_TIMEOUT).await
    }

    /// `DELETE /api/v1/queue/jobs?status=&older_than=`: deletes the jobs of
    /// a final status last updated longer ago than `older_than`.
    pub async fn purge_jobs<T: DeserializeOwned>(
        &self,
        status: &str,
        older_than: Duration,
    ) -> Result<Fetched<T>, ClientError> {
        let query = [
            ("status", status.to_string()),
            ("older_than", crate::config::duration::format(older_than)),
        ];
        let req = self
            .http
            .delete(self.url("/api/v1/queue/jobs"))
            .query(&query);
        self.queue_call(req, BULK_TIMEOUT).await
    }

    /// `POST /api/v1/queue/jobs`.
    pub async fn enqueue_job<T: DeserializeOwned>(
        &self,
        job: &NewJobRequest,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.post(self.url("/api/v1/queue/jobs")).json(job);
        self.queue_call(req, REQUEST_TIMEOUT).await
    }
}
