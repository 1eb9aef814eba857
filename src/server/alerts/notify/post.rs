//! POSTing JSON to a channel whose URL is a credential (a Slack incoming
//! webhook is its own password; a generic webhook often carries a token):
//! the `http` job's way of sending, behind the same per-host circuit
//! breakers, except that nothing said about a failure may show the URL.
//! Errors, logs and dead letters name the destination by `host:port`.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use crate::server::queue::breaker::{Admit, Breakers};
use crate::server::queue::handlers::JobError;
use crate::server::queue::http::{destination, error_chain};

/// How much of a peer's error answer a job error keeps.
const EXCERPT_CHARS: usize = 200;

/// A checked http(s) URL and the `host:port` it is known by.
#[derive(Clone)]
pub struct Endpoint {
    url: url::Url,
    /// `host:port`: what errors and the circuit breaker call it.
    host: String,
}

impl Endpoint {
    /// Reads a configured URL. The error does not repeat the URL.
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(text).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "must be an http:// or https:// URL with a host, not a `{}:` URL",
                url.scheme()
            ));
        }
        let host = destination(&url);
        Ok(Endpoint { url, host })
    }

    /// `host:port`, the most of the URL that may be shown.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `text` with the URL, should it appear, replaced by the host.
    fn redact(&self, text: &str) -> String {
        let url = self.url.as_str();
        let text = text.replace(url, &self.host);
        text.replace(url.trim_end_matches('/'), &self.host)
    }
}

/// What the HTTP channels share: one client, the `[queue] http_timeout`,
/// and the queue's breakers (so an `http` job and a notification to one
/// host learn from each other that it is down).
pub struct Poster {
    client: reqwest::Client,
    timeout: Duration,
    breakers: Arc<Breakers>,
}

impl Poster {
    pub fn new(timeout: Duration, breakers: Arc<Breakers>) -> Poster {
        let client = reqwest::Client::builder()
            .user_agent(concat!("pytake/", env!("CARGO_PKG_VERSION")))
            // A redirect would take the message to a host the breaker
            // and the configuration never named.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the HTTP client builds");
        Poster {
            client,
            timeout,
            breakers,
        }
    }

    /// POSTs `body` as JSON with `headers`. A 2xx is success; any other
    /// answer, a timeout or no connection is a retry; an open circuit
    /// holds the job back.
    pub async fn post(
        &self,
        to: &Endpoint,
        body: &serde_json::Value,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<(), JobError> {
        let host = to.host.clone();
        if let Admit::Hold(until) = self.breakers.admit(&host) {
            return Err(JobError::Held { host, until });
        }
        let mut request = self
            .client
            .post(to.url.clone())
            .timeout(self.timeout)
            .json(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let result = match request.send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let excerpt: String = text.trim().chars().take(EXCERPT_CHARS).collect();
                Err(match excerpt.is_empty() {
                    true => format!("{host} answered {status}"),
                    false => format!("{host} answered {status}: {excerpt}"),
                })
            }
            Err(e) if e.is_timeout() => Err(format!(
                "{host} did not answer within {}",
                crate::config::duration::format(self.timeout)
            )),
            // reqwest puts the URL in its error text: take it out.
            Err(e) => Err(format!(
                "cannot reach {host}: {}",
                error_chain(&e.without_url())
            )),
        };
        self.breakers.record(&host, result.is_ok());
        result.map_err(|e| JobError::Retry(to.redact(&e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_known_by_host_and_never_repeat_the_url() {
        let e = Endpoint::parse("https://hooks.slack.com/services/T0/B0/s3cret").unwrap();
        assert_eq!(e.host, "hooks.slack.com:443");
        assert_eq!(
            e.redact(
                "error sending request for url (https://hooks.slack.com/services/T0/B0/s3cret)"
            ),
            "error sending request for url (hooks.slack.com:443)"
        );
        let e = Endpoint::parse("http://127.0.0.1:9/hook?token=s3cret").unwrap();
        assert_eq!(e.host, "127.0.0.1:9");
        assert_eq!(
            Endpoint::parse("ftp://files.example.com/s3cret")
                .err()
                .unwrap(),
            "must be an http:// or https:// URL with a host, not a `ftp:` URL"
        );
        let bad = Endpoint::parse("hooks.slack.com/services/s3cret")
            .err()
            .unwrap();
        assert_eq!(bad, "not a URL (relative URL without a base)");
    }
}
