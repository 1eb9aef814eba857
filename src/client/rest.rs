//! The REST client.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::{ClientError, TokenSource};
use crate::protocol::api::{ErrorBody, EventsPage, Health, PublishResponse};
use crate::protocol::limits::HEADER_READ_TIMEOUT;
use crate::protocol::{EventId, NewEvent};

/// Parameters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default)]
pub struct HistoryParams {
    pub rooms: Vec<String>,
    pub event_types: Vec<String>,
    pub tenant_id: Option<String>,
    pub since: Option<EventId>,
    pub since_time: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
    pub wait: Option<Duration>,
}

/// A REST client of one server.
#[derive(Clone)]
pub struct ApiClient {
    base: Url,
    http: reqwest::Client,
    tokens: TokenSource,
}

impl ApiClient {
    pub fn new(server: &str, tokens: TokenSource) -> Result<ApiClient, ClientError> {
        let base = Url::parse(server).map_err(|e| ClientError::Unreachable {
            url: server.to_string(),
            reason: format!("not a URL: {e}"),
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // The server closes a connection idle for its header timeout;
            // dropping ours first avoids sending on one it is closing.
            .pool_idle_timeout(HEADER_READ_TIMEOUT / 2)
            .user_agent(concat!("pytake/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(ApiClient { base, http, tokens })
    }

    /// The server's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The credentials in use.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("static paths join")
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = req
            .bearer_auth(self.tokens.token())
            .send()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.to_string(),
                reason: root_cause(&e),
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.to_string(),
                reason: root_cause(&e),
            })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Protocol(e.to_string()));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => (body.error.code.to_string(), body.error.message),
            Err(_) => (
                "unknown".into(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized(message),
            StatusCode::FORBIDDEN => ClientError::Forbidden(message),
            _ => ClientError::Api {
                status: status.as_u16(),
                code,
                message,
            },
        })
    }

    /// `GET /health` (no token needed, but one is sent).
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.send(self.http.get(self.url("/health"))).await
    }

    /// `GET /api/v1/events`.
    pub async fn events(&self, p: &HistoryParams) -> Result<EventsPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if !p.rooms.is_empty() {
            query.push(("rooms", p.rooms.join(",")));
        }
        if !p.event_types.is_empty() {
            query.push(("event_types", p.event_types.join(",")));
        }
        if let Some(t) = &p.tenant_id {
            query.push(("tenant_id", t.clone()));
        }
        if let Some(s) = p.since {
            query.push(("since", s.to_string()));
        }
        if let Some(t) = p.since_time {
            query.push(("since_time", t.to_rfc3339_opts(SecondsFormat::Millis, true)));
        }
        if let Some(l) = p.limit {
            query.push(("limit", l.to_string()));
        }
        let mut req = self.http.get(self.url("/api/v1/events")).query(&query);
        if let Some(w) = p.wait {
            query.push(("wait", w.as_secs().to_string()));
            req = self
                .http
                .get(self.url("/api/v1/events"))
                .query(&query)
                .timeout(w + Duration::from_secs(10));
        }
        self.send(req).await
    }

    /// `POST /api/v1/events` with a batch.
    pub async fn publish(
        &self,
        events: &[NewEvent],
        idempotency_key: Option<&str>,
    ) -> Result<PublishResponse, ClientError> {
        let mut req = self.http.post(self.url("/api/v1/events")).json(events);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        self.send(req).await
    }
}

/// The innermost cause of a transport error ("Connection refused"), which is
/// what an operator needs to read.
pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
