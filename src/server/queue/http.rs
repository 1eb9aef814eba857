//! Kind `http`: delivers a payload to a URL (the generic webhook channel
//! of alert notifications rides on it). A non-2xx answer or a timeout is
//! a failure that retries; a payload that cannot be sent as written is
//! dead at once. Each destination host has a circuit breaker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::breaker::{Admit, Breakers};
use super::handlers::{Handler, JobError};
use crate::server::storage::jobs::Job;

/// What an `http` job's payload holds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    pub url: String,
    /// `POST` by default.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON; a string is sent as it is (text).
    #[serde(default)]
    pub body: serde_json::Value,
}

impl Delivery {
    /// Reads and checks a payload, so a bad one is refused at enqueue
    /// (400) rather than dead-lettered later.
    pub fn parse(
        payload: &serde_json::Value,
    ) -> Result<(Delivery, url::Url, reqwest::Method), String> {
        let delivery: Delivery =
            serde_path_to_error::deserialize(payload.clone()).map_err(|e| {
                match e.path().to_string().as_str() {
                    "." => format!("payload: {}", e.inner()),
                    path => format!("payload.{path}: {}", e.inner()),
                }
            })?;
        let url = url::Url::parse(&delivery.url)
            .map_err(|e| format!("payload.url: `{}` is not a URL: {e}", delivery.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "payload.url: `{}` must be an http:// or https:// URL with a host",
                delivery.url
            ));
        }
        let method = match delivery.method.as_deref() {
            None => reqwest::Method::POST,
            Some(m) => reqwest::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| format!("payload.method: `{m}` is not an HTTP method"))?,
        };
        for (name, value) in &delivery.headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("payload.headers: `{name}` is not a header name"))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| format!("payload.headers.{name}: not a valid header value"))?;
        }
        Ok((delivery, url, method))
    }
}

/// The `http` handler.
pub struct HttpDelivery {
    client: reqwest::Client,
    timeout: Duration,
    breakers: Arc<Breakers>,
}

impl HttpDelivery {
    pub fn new(timeout: Duration, breakers: Arc<Breakers>) -> HttpDelivery {
        let client = reqwest::Client::builder()
            .user_agent(concat!("pytake/", env!("CARGO_PKG_VERSION")))
            // Redirects are the peer's configuration problem: a delivery
            // must not wander to another host behind its breaker's back.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        HttpDelivery {
            client,
            timeout,
            breakers,
        }
    }
}

/// `host:port` of a URL: what a circuit is kept for.
pub(crate) fn destination(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

#[async_trait]
impl Handler for HttpDelivery {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let (delivery, url, method) = Delivery::parse(&job.payload).map_err(JobError::Fatal)?;
        let host = destination(&url);
        if let Admit::Hold(until) = self.breakers.admit(&host) {
            return Err(JobError::Held { host, until });
        }
        let mut request = self.client.request(method, url).timeout(self.timeout);
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
        }
        request = match &delivery.body {
            serde_json::Value::String(text) => request.body(text.clone()),
            serde_json::Value::Null => request,
            body => request.json(body),
        };
        let result = match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(200).collect();
                Err(format!("{host} answered {status}: {excerpt}"))
            }
            Err(e) if e.is_timeout() => Err(format!(
                "{host} did not answer within {}",
                crate::config::duration::format(self.timeout)
            )),
            Err(e) => Err(format!("cannot reach {host}: {}", error_chain(&e))),
        };
        self.breakers.record(&host, result.is_ok());
        result.map_err(JobError::Retry)
    }
}

/// An error and its causes, for a message that says what went wrong
/// (reqwest's own text is only "error sending request").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_checked_with_the_field_named() {
        let err = |p| Delivery::parse(&p).unwrap_err();
        assert!(
            err(json!({"body": {}})).contains("missing field `url`"),
            "missing url"
        );
        assert!(err(json!({"url": "ftp://x/y"})).contains("http:// or https://"));
        assert!(err(json!({"url": "http://x", "method": "GE T"})).contains("payload.method"));
        assert!(err(json!({"url": "http://x", "headers": {"a b": "c"}})).contains("`a b`"));
        assert!(err(json!({"url": "http://x", "extra": 1})).contains("extra"));
        let (_, url, method) =
            Delivery::parse(&json!({"url": "https://hooks.example.com/a", "method": "put"}))
                .unwrap();
        assert_eq!(
            (destination(&url).as_str(), method),
            ("hooks.example.com:443", reqwest::Method::PUT)
        );
    }
}
