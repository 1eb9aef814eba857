//! The dashboard, campaign and export endpoints, for `pytake metrics` and
//! `pytake export`.
//!
//! Views come back as [`Fetched`]: the body exactly as the server sent it
//! (so `--output json` prints the API's JSON, field order and numbers
//! included) beside the typed body the tables are drawn from. Exports come
//! back as an [`ExportBody`] read chunk by chunk, never whole.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use url::Url;

use super::rest::root_cause;
use super::{ApiClient, ClientError};
use crate::protocol::dashboard::{ExportFormat, ExportRequest, Series};
use crate::protocol::metrics::Period;

/// How long one view may take: the figures come from memory and a few
/// indexed store reads, so a longer wait is a server in trouble, and
/// `--watch` must not hang on it.
const VIEW_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON body as sent and as read.
#[derive(Debug)]
pub struct Fetched<T> {
    pub raw: Box<RawValue>,
    pub body: T,
}

impl<T: DeserializeOwned> Fetched<T> {
    /// Reads `raw` as `T`; a body that is not a `T` is a protocol error.
    pub fn new(raw: Box<RawValue>) -> Result<Fetched<T>, ClientError> {
        let body = serde_json::from_str(raw.get())
            .map_err(|e| ClientError::Protocol(format!("{e} in {}", short(raw.get()))))?;
        Ok(Fetched { raw, body })
    }
}

/// The first characters of a body, for an error message.
fn short(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("{cut}...")
    } else {
        cut
    }
}

/// Parameters of `GET /api/v1/events/export`.
#[derive(Debug, Clone, Default)]
pub struct EventExport {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub event_types: Vec<String>,
    pub rooms: Vec<String>,
    pub tenant_id: Option<String>,
    pub format: ExportFormat,
}

/// An export whose body has not been read yet.
pub struct ExportBody {
    response: reqwest::Response,
    read: u64,
}

/// The body ended before its end: the server died, the connection broke,
/// or the server stopped the export (it then leaves out the final chunk on
/// purpose, so that no client takes a partial export for a whole one).
#[derive(Debug, thiserror::Error)]
#[error("the export broke off after {bytes} bytes: {reason}")]
pub struct BrokeOff {
    pub bytes: u64,
    pub reason: String,
}

impl ExportBody {
    /// The body's size when the server said it (`Content-Length`); a
    /// streamed export has none.
    pub fn size(&self) -> Option<u64> {
        self.response.content_length()
    }

    /// The next piece of the body; `None` once all of it has arrived.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BrokeOff> {
        match self.response.chunk().await {
            Ok(Some(chunk)) => {
                self.read += chunk.len() as u64;
                Ok(Some(chunk))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(BrokeOff {
                bytes: self.read,
                reason: root_cause(&e),
            }),
        }
    }
}

impl ApiClient {
    /// A view: `GET path?query`, with a deadline.
    async fn view<T: DeserializeOwned>(
        &self,
        url: Url,
        query: &[(&str, String)],
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.get(url).query(query).timeout(VIEW_TIMEOUT);
        Fetched::new(self.send::<Box<RawValue>>(req).await?)
    }

    /// `/api/v1/campaigns/{id}/{what}`, the id escaped as a path segment.
    fn campaign_url(&self, id: &str, what: &str) -> Url {
        let mut url = self.url("/api/v1/campaigns/");
        url.path_segments_mut()
            .expect("an http URL has a path")
            .pop_if_empty()
            .push(id)
            .push(what);
        url
    }

    /// `GET /api/v1/dashboard/overview`.
    pub async fn overview<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        self.view(
            self.url("/api/v1/dashboard/overview"),
            &tenant_query(tenant),
        )
        .await
    }

    /// `GET /api/v1/dashboard/metrics`; no period or metrics: the server's
    /// defaults.
    pub async fn series(
        &self,
        period: Option<Period>,
        metrics: &[String],
        tenant: Option<&str>,
    ) -> Result<Fetched<Series>, ClientError> {
        let mut query = tenant_query(tenant);
        if let Some(p) = period {
            query.push(("period", p.name().to_string()));
        }
        if !metrics.is_empty() {
            query.push(("metrics", metrics.join(",")));
        }
        let req = self
            .http
            .get(self.url("/api/v1/dashboard/metrics"))
            .query(&query)
            .timeout(VIEW_TIMEOUT);
        let raw = self.send::<Box<RawValue>>(req).await?;
        let body = read_series(raw.get())
            .map_err(|e| ClientError::Protocol(format!("{e} in {}", short(raw.get()))))?;
        Ok(Fetched { raw, body })
    }

    /// `GET /api/v1/campaigns`.
    pub async fn campaigns<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Fetched<T>, ClientError> {
        let mut query = tenant_query(tenant);
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        self.view(self.url("/api/v1/campaigns"), &query).await
    }

    /// `GET /api/v1/campaigns/dashboard`.
    pub async fn campaign_dashboard<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        self.view(
            self.url("/api/v1/campaigns/dashboard"),
            &tenant_query(tenant),
        )
        .await
    }

    /// `GET /api/v1/campaigns/{id}/metrics`.
    pub async fn campaign_metrics<T: DeserializeOwned>(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        self.view(self.campaign_url(id, "metrics"), &tenant_query(tenant))
            .await
    }

    /// `GET /api/v1/campaigns/{id}/performance`.
    pub async fn campaign_performance<T: DeserializeOwned>(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        self.view(self.campaign_url(id, "performance"), &tenant_query(tenant))
            .await
    }

    /// `POST /api/v1/dashboard/export`.
    pub async fn export_metrics(&self, request: &ExportRequest) -> Result<ExportBody, ClientError> {
        let req = self
            .http
            .post(self.url("/api/v1/dashboard/export"))
            .json(request);
        self.open(req).await
    }

    /// `GET /api/v1/events/export`.
    pub async fn export_events(&self, p: &EventExport) -> Result<ExportBody, ClientError> {
        let mut query = tenant_query(p.tenant_id.as_deref());
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        if let Some(t) = p.since {
            query.push(("since_time", time(t)));
        }
        if let Some(t) = p.until {
            query.push(("until", time(t)));
        }
        if !p.event_types.is_empty() {
            query.push(("event_types", p.event_types.join(",")));
        }
        if !p.rooms.is_empty() {
            query.push(("rooms", p.rooms.join(",")));
        }
        query.push(("format", p.format.name().to_string()));
        let req = self
            .http
            .get(self.url("/api/v1/events/export"))
            .query(&query);
        self.open(req).await
    }

    /// `GET /api/v1/campaigns/{id}/export`.
    pub async fn export_campaign(
        &self,
        id: &str,
        tenant: Option<&str>,
    ) -> Result<ExportBody, ClientError> {
        let req = self
            .http
            .get(self.campaign_url(id, "export"))
            .query(&tenant_query(tenant));
        self.open(req).await
    }

    /// Sends a request whose body is read later: the server's error when
    /// it refuses, else the body to read. No deadline: an export of
    /// millions of events takes as long as it takes.
    async fn open(&self, req: reqwest::RequestBuilder) -> Result<ExportBody, ClientError> {
        let req = match self.tokens() {
            Some(tokens) => req.bearer_auth(tokens.token()),
            None => req,
        };
        let response = req.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base().to_string(),
            reason: root_cause(&e),
        })?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.unwrap_or_default();
            return Err(self.error(status, &bytes));
        }
        Ok(ExportBody { response, read: 0 })
    }
}

/// A series as the server sent it.
pub fn read_series(text: &str) -> Result<Series, serde_json::Error> {
    serde_json::from_str(text)
}

fn tenant_query(tenant: Option<&str>) -> Vec<(&'static str, String)> {
    tenant
        .map(|t| vec![("tenant_id", t.to_string())])
        .unwrap_or_default()
}
