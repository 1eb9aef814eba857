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

/// How long `/health` (or the token check after it) may take before the
/// server counts as unreachable: `/health` waits on the store for at most
/// 1 s twice, so anything longer is a hung server.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);

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
    pub(super) http: reqwest::Client,
    /// `None`: only `/health` will work (every other endpoint answers 401).
    tokens: Option<TokenSource>,
}

impl ApiClient {
    pub fn new(server: &str, tokens: TokenSource) -> Result<ApiClient, ClientError> {
        ApiClient::build(server, Some(tokens))
    }

    /// A client with no credentials, for `/health` on a machine that has
    /// none (`pytake status` must work there).
    pub fn without_token(server: &str) -> Result<ApiClient, ClientError> {
        ApiClient::build(server, None)
    }

    fn build(server: &str, tokens: Option<TokenSource>) -> Result<ApiClient, ClientError> {
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

    /// The credentials in use, if any.
    pub fn tokens(&self) -> Option<&TokenSource> {
        self.tokens.as_ref()
    }

    pub(super) fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("static paths join")
    }

    /// Sends with the token, if any; the reply's body as `T` on success,
    /// else the server's error.
    pub(super) async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let (status, bytes) = self.exchange(self.authorized(req)).await?;
        if status.is_success() {
            return parse(&bytes);
        }
        Err(self.error(status, &bytes))
    }

    /// As [`ApiClient::send`], for a reply with no body to read (`204 No
    /// Content` after a delete).
    pub(super) async fn send_no_content(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(), ClientError> {
        let (status, bytes) = self.exchange(self.authorized(req)).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(self.error(status, &bytes))
    }

    /// `req` with the token, if any.
    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.tokens {
            Some(tokens) => req.bearer_auth(tokens.token()),
            None => req,
        }
    }

    /// The reply's status and whole body; `Unreachable` when there is none.
    pub(super) async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, bytes::Bytes), ClientError> {
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.to_string(),
            reason: root_cause(&e),
        };
        let response = req.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        Ok((status, bytes))
    }

    /// The error an unsuccessful reply stands for.
    pub(super) fn error(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        let (code, message) = match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => (body.error.code.to_string(), body.error.message),
            Err(_) => (
                "unknown".into(),
                String::from_utf8_lossy(bytes).into_owned(),
            ),
        };
        match status {
            StatusCode::UNAUTHORIZED => ClientError::Unauthorized(message),
            StatusCode::FORBIDDEN => ClientError::Forbidden(message),
            _ => ClientError::Api {
                status: status.as_u16(),
                code,
                message,
            },
        }
    }

    /// `GET /health`, sent without a token (it needs none). A server
    /// shutting down answers 503 with its health body: that is an answer
    /// too, and is returned as `Ok` with status `shutting_down`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let req = self.http.get(self.url("/health")).timeout(HEALTH_TIMEOUT);
        let (status, bytes) = self.exchange(req).await?;
        if status.is_success() || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Ok(health) = serde_json::from_slice(&bytes) {
                return Ok(health);
            }
        }
        if status.is_success() {
            return parse(&bytes);
        }
        Err(self.error(status, &bytes))
    }

    /// Whether the server accepts this client's token: the cheapest
    /// authenticated request (history after `head`, one event at most).
    /// `Unauthorized` when it is refused; `Forbidden` cannot happen (every
    /// role may read its own history).
    pub async fn check_token(&self, head: EventId) -> Result<(), ClientError> {
        let query = [("since", head.to_string()), ("limit", "1".into())];
        let req = self
            .http
            .get(self.url("/api/v1/events"))
            .query(&query)
            .timeout(HEALTH_TIMEOUT);
        self.send::<EventsPage>(req).await.map(drop)
    }

    /// `GET /api/v1/events`.
    /// `GET /api/v1/presence`: the online users of `tenant` (or of the
    /// token's scope).
    pub async fn presence(
        &self,
        tenant: Option<&str>,
    ) -> Result<crate::protocol::presence::PresenceList, ClientError> {
        let query: Vec<(&str, &str)> = tenant.map(|t| ("tenant_id", t)).into_iter().collect();
        let req = self.http.get(self.url("/api/v1/presence")).query(&query);
        self.send(req).await
    }

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

/// A success body as `T`.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::api::HealthStatus;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers one request on a local port with `status` and `body`.
    async fn answer_once(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = vec![0u8; 4096];
            let _ = tcp.read(&mut request).await;
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(reply.as_bytes()).await.unwrap();
        });
        url
    }

    /// A draining server's 503 carries its health: an answer, not an error.
    #[tokio::test]
    async fn a_server_shutting_down_still_reports_its_health() {
        let url = answer_once(
            "503 Service Unavailable",
            r#"{"status":"shutting_down","version":"0.1.0","uptime_seconds":9,"store":"sqlite","bus":"memory","last_event_id":5,"process":{"rss_bytes":1},"websocket":{"total":0,"authenticated":0,"rooms":0,"slow_consumers_closed":0}}"#,
        )
        .await;
        let health = ApiClient::without_token(&url)
            .unwrap()
            .health()
            .await
            .unwrap();
        assert_eq!(
            (health.status, health.last_event_id),
            (HealthStatus::ShuttingDown, 5)
        );
    }

    /// A 503 from something else (a proxy with no server behind it) stays
    /// an error.
    #[tokio::test]
    async fn a_503_without_a_health_body_is_an_error() {
        let url = answer_once("503 Service Unavailable", "no upstream").await;
        let err = ApiClient::without_token(&url)
            .unwrap()
            .health()
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "server answered 503: no upstream");
    }
}
