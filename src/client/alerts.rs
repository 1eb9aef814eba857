//! The alerting endpoints, for `pytake alerts`.
//!
//! Replies come back as [`Fetched`] (the body as sent beside the typed
//! body), so `--output json` prints the API's JSON; deletes answer 204
//! and come back as `()`. Ids go into paths as escaped segments: a rule id
//! is checked by the server, and an id typed with a `/` or `?` must reach
//! it as that id, not as another path.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;

use super::{ApiClient, ClientError, Fetched};

/// How long one request may take: rules, alerts and silences are a few
/// indexed rows, so a longer wait is a server in trouble, and `list
/// --watch` must not hang on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which alerts `GET /api/v1/alerts` lists; `None`: the server's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertQuery {
    pub state: Option<String>,
    pub tenant_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: Option<u32>,
}

/// The body of `POST /api/v1/alerts/silences`; `None`: left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewSilenceRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// A duration as the server reads it (`1h`).
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A time as the server writes its own.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl ApiClient {
    /// Sends `req` with a deadline; the reply as sent and as `T`.
    async fn alerts_call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Fetched<T>, ClientError> {
        Fetched::new(
            self.send::<Box<RawValue>>(req.timeout(REQUEST_TIMEOUT))
                .await?,
        )
    }

    /// `/api/v1/alerts/` then `segments`, each escaped.
    fn alerts_url(&self, segments: &[&str]) -> Url {
        let mut url = self.url("/api/v1/alerts/");
        url.path_segments_mut()
            .expect("an http URL has a path")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// `GET /api/v1/alerts`, newest first.
    pub async fn alerts<T: DeserializeOwned>(
        &self,
        q: &AlertQuery,
    ) -> Result<Fetched<T>, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = &q.state {
            query.push(("state", s.clone()));
        }
        if let Some(t) = &q.tenant_id {
            query.push(("tenant_id", t.clone()));
        }
        if let Some(s) = q.since {
            query.push(("since", stamp(s)));
        }
        if let Some(l) = q.limit {
            query.push(("limit", l.to_string()));
        }
        let req = self.http.get(self.url("/api/v1/alerts")).query(&query);
        self.alerts_call(req).await
    }

    /// `GET /api/v1/alerts/incidents`: the open ones and those resolved
    /// since `since` (the server's default: a day).
    pub async fn incidents<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        since: Option<DateTime<Utc>>,
        limit: Option<u32>,
    ) -> Result<Fetched<T>, ClientError> {
        let mut query = tenant_query(tenant);
        if let Some(s) = since {
            query.push(("since", stamp(s)));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        let req = self.http.get(self.alerts_url(&["incidents"])).query(&query);
        self.alerts_call(req).await
    }

    /// `GET /api/v1/alerts/rules`.
    pub async fn alert_rules<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self
            .http
            .get(self.alerts_url(&["rules"]))
            .query(&tenant_query(tenant));
        self.alerts_call(req).await
    }

    /// `GET /api/v1/alerts/rules/{id}`.
    pub async fn alert_rule<T: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.get(self.alerts_url(&["rules", id]));
        self.alerts_call(req).await
    }

    /// `POST /api/v1/alerts/rules` with the rule as the server reads it
    /// (its defaults fill what `rule` leaves out).
    pub async fn create_alert_rule<T: DeserializeOwned>(
        &self,
        rule: &Value,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.post(self.alerts_url(&["rules"])).json(rule);
        self.alerts_call(req).await
    }

    /// `DELETE /api/v1/alerts/rules/{id}`.
    pub async fn delete_alert_rule(&self, id: &str) -> Result<(), ClientError> {
        let req = self
            .http
            .delete(self.alerts_url(&["rules", id]))
            .timeout(REQUEST_TIMEOUT);
        self.send_no_content(req).await
    }

    /// `POST /api/v1/alerts/rules/{id}/enable` or `/disable`.
    pub async fn set_alert_rule_enabled<T: DeserializeOwned>(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<Fetched<T>, ClientError> {
        let action = if enabled { "enable" } else { "disable" };
        let req = self.http.post(self.alerts_url(&["rules", id, action]));
        self.alerts_call(req).await
    }

    /// `POST /api/v1/alerts/{id}/ack`: an alert's or an incident's id.
    pub async fn acknowledge_alert<T: DeserializeOwned>(
        &self,
        id: &str,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.post(self.alerts_url(&[id, "ack"]));
        self.alerts_call(req).await
    }

    /// `GET /api/v1/alerts/silences`; `all`: ended ones too.
    pub async fn silences<T: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        all: bool,
    ) -> Result<Fetched<T>, ClientError> {
        let mut query = tenant_query(tenant);
        if all {
            query.push(("all", "true".into()));
        }
        let req = self.http.get(self.alerts_url(&["silences"])).query(&query);
        self.alerts_call(req).await
    }

    /// `POST /api/v1/alerts/silences`.
    pub async fn add_silence<T: DeserializeOwned>(
        &self,
        silence: &NewSilenceRequest,
    ) -> Result<Fetched<T>, ClientError> {
        let req = self.http.post(self.alerts_url(&["silences"])).json(silence);
        self.alerts_call(req).await
    }

    /// `DELETE /api/v1/alerts/silences/{id}`: the silence ends now.
    pub async fn delete_silence(&self, id: &str) -> Result<(), ClientError> {
        let req = self
            .http
            .delete(self.alerts_url(&["silences", id]))
            .timeout(REQUEST_TIMEOUT);
        self.send_no_content(req).await
    }
}

fn tenant_query(tenant: Option<&str>) -> Vec<(&'static str, String)> {
    tenant
        .map(|t| vec![("tenant_id", t.to_string())])
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::TokenSource;

    /// An id is one path segment, whatever it holds.
    #[test]
    fn ids_are_escaped_path_segments() {
        let api = ApiClient::new("http://127.0.0.1:8080", TokenSource::Static("t".into())).unwrap();
        assert_eq!(
            api.alerts_url(&["rules", "a/b?c", "enable"]).as_str(),
            "http://127.0.0.1:8080/api/v1/alerts/rules/a%2Fb%3Fc/enable"
        );
        assert_eq!(
            api.alerts_url(&["alt_1", "ack"]).as_str(),
            "http://127.0.0.1:8080/api/v1/alerts/alt_1/ack"
        );
    }

    /// What a silence asks for, and nothing it leaves out.
    #[test]
    fn a_silence_body_has_only_what_was_given() {
        let body = NewSilenceRequest {
            rule_id: Some("high_failure_rate".into()),
            tenant_id: None,
            for_: "1h".into(),
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"rule_id":"high_failure_rate","for":"1h"}"#
        );
    }
}
