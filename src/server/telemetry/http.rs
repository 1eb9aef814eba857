//! HTTP request latency by route template, and the `/metrics` endpoint.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::server::api::ApiError;
use crate::server::state::AppState;

/// The route label of a request that matched no route (404s, probes):
/// never the raw path, which would make a series per URL anyone sends.
pub const UNMATCHED: &str = "unmatched";

/// A request's labels: every value from a bounded set.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The method, or `other` for a method no route serves.
    pub method: &'static str,
    /// The route template (`/ws/{room}`), or [`UNMATCHED`].
    pub route: String,
    /// The status class: `2xx`, `4xx`, ...
    pub status: &'static str,
}

type Histograms = Family<HttpLabels, Histogram, fn() -> Histogram>;

/// Request latency histograms; clones share them.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Histograms,
}

/// 1 ms to 16 s: a health probe up to a long-poll's wait (at most 30 s,
/// which lands in +Inf with the rest of the long ones).
fn buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> HttpMetrics {
        let requests = Histograms::new_with_constructor(buckets);
        registry.register_with_unit(
            "pytake_http_request_duration",
            "HTTP requests by method, route template and status class, and how long the server took to answer (to the response head; a WebSocket upgrade ends at 101)",
            Unit::Seconds,
            requests.clone(),
        );
        HttpMetrics { requests }
    }

    /// Records one answered request.
    pub fn observe(&self, labels: &HttpLabels, seconds: f64) {
        self.requests.get_or_create(labels).observe(seconds);
    }
}

/// The method as a static label value; the set stays bounded whatever
/// method a client invents.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx` for 204, and so on.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Middleware timing every request, labelled by the route template axum
/// matched (set before route middleware runs), never by the raw path.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    let labels = HttpLabels {
        method,
        route,
        status: status_class(response.status()),
    };
    metrics.observe(&labels, started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: no token, like `/health`; scrapers carry none.
pub async fn get_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.telemetry.encode() {
        Ok(text) => Ok(([(header::CONTENT_TYPE, super::CONTENT_TYPE)], text).into_response()),
        Err(e) => {
            tracing::error!(error = %e, "encoding /metrics failed");
            Err(ApiError::Unavailable(
                "the metrics could not be encoded (the server log says why)".into(),
            ))
        }
    }
}
