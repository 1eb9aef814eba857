//! `ApiError`: every REST failure, rendered as `{"error": {code, message}}`
//! with the right status. Internal details go to the log, never the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::api::{ErrorBody, ErrorDetail};
use crate::protocol::ErrorCode;
use crate::server::ingest::IngestError;

/// A REST error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: unreadable input (not JSON, bad query parameter).
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// 401.
    #[error("{0}")]
    Unauthorized(String),
    /// 403.
    #[error("{0}")]
    Forbidden(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 408: the request body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 405; the router adds `Allow`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 414.
    #[error("{0}")]
    UriTooLong(String),
    /// 429, with `Retry-After` in seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 422: well-formed JSON that breaks a rule; `field` names it.
    #[error("{field}: {message}")]
    Unprocessable { field: String, message: String },
    /// 409: the resource's state forbids it.
    #[error("{0}")]
    Conflict(String),
    /// 503, with `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_param(field: &str, message: impl std::fmt::Display) -> ApiError {
        ApiError::BadRequest {
            message: format!("{field}: {message}"),
            field: Some(field.to_string()),
        }
    }

    pub fn unprocessable(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            field: field.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, ErrorCode, Option<String>) {
        match self {
            ApiError::BadRequest { field, .. } => (
                StatusCode::BAD_REQUEST,
                ErrorCode::BadMessage,
                field.clone(),
            ),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, ErrorCode::Forbidden, None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound, None),
            ApiError::MethodNotAllowed(_) => {
                (StatusCode::METHOD_NOT_ALLOWED, ErrorCode::BadMessage, None)
            }
            ApiError::RequestTimeout(_) => {
                (StatusCode::REQUEST_TIMEOUT, ErrorCode::BadMessage, None)
            }
            ApiError::UriTooLong(_) => (StatusCode::URI_TOO_LONG, ErrorCode::BadMessage, None),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, None)
            }
            ApiError::PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::PayloadTooLarge,
                None,
            ),
            ApiError::Unprocessable { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::Unprocessable,
                Some(field.clone()),
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict, None),
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                None,
            ),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> ApiError {
        match e {
            IngestError::Store(_) => {
                ApiError::Unavailable("the event store is unavailable; retry later".into())
            }
            IngestError::KeyReused(reused) => {
                ApiError::unprocessable(reused.field.clone(), reused.to_string())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<crate::server::queue::enqueue::EnqueueError> for ApiError {
    fn from(e: crate::server::queue::enqueue::EnqueueError) -> ApiError {
        use crate::server::queue::enqueue::EnqueueError;
        match e {
            EnqueueError::Store(_) => {
                ApiError::Unavailable("the job store is unavailable; retry later".into())
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<crate::server::storage::StoreError> for ApiError {
    fn from(e: crate::server::storage::StoreError) -> ApiError {
        use crate::server::storage::StoreError;
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(message) => ApiError::Conflict(message),
            e => {
                tracing::error!(error = %e, "store read failed");
                ApiError::Unavailable("the store is unavailable; retry later".into())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                field,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
