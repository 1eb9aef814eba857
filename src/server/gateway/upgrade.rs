//! The WebSocket handshake, done here rather than by axum's extractor so the
//! gateway owns the upgraded connection: the hub writes to it directly (see
//! [`super::wire`]). Rejections say what axum's extractor says, in the
//! API's JSON error shape.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::deflate;
use crate::protocol::api::{ErrorBody, ErrorDetail};
use crate::protocol::ErrorCode;

/// A valid upgrade request.
pub struct WsUpgrade {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// The `Sec-WebSocket-Extensions` answer to the client's
    /// permessage-deflate offer, if it made one this server can honour.
    deflate: Option<&'static str>,
}

/// Why a request is not a WebSocket upgrade.
pub struct Rejection(StatusCode, &'static str);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::BadMessage,
                message: format!("not a WebSocket upgrade: {}", self.1),
                field: None,
            },
        };
        (self.0, axum::Json(body)).into_response()
    }
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let bad = |message| Rejection(StatusCode::BAD_REQUEST, message);
        if parts.version > Version::HTTP_11 {
            return Err(bad("WebSocket upgrades need HTTP/1.1"));
        }
        if parts.method != Method::GET {
            return Err(Rejection(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request method must be `GET`",
            ));
        }
        if !header_has(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(bad("Connection header did not include 'upgrade'"));
        }
        if !header_has(&parts.headers, header::UPGRADE, "websocket") {
            return Err(bad("`Upgrade` header did not include 'websocket'"));
        }
        if !header_has(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(bad("`Sec-WebSocket-Version` header did not include '13'"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(bad("`Sec-WebSocket-Key` header missing"))?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(Rejection(
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket request couldn't be upgraded since no upgrade state was present",
        ))?;
        let offers = parts
            .headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let deflate = deflate::negotiate(offers);
        Ok(WsUpgrade {
            key,
            on_upgrade,
            deflate,
        })
    }
}

impl WsUpgrade {
    /// Whether the connection compresses (permessage-deflate): the client
    /// offered it in terms this server can honour and `enabled` (the
    /// `[gateway] compression` setting) allows it. When false, the 101
    /// answers no extension and the connection runs uncompressed.
    pub fn negotiate_deflate(&mut self, enabled: bool) -> bool {
        if !enabled {
            self.deflate = None;
        }
        self.deflate.is_some()
    }

    /// Answers 101 and runs `serve` on the connection once upgraded.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(TokioIo<Upgraded>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        let mut response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept);
        if let Some(extensions) = self.deflate {
            response = response.header(header::SEC_WEBSOCKET_EXTENSIONS, extensions);
        }
        response.body(Body::empty()).expect("a valid 101 response")
    }
}
