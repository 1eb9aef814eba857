//! Reading a request body within limits. The gap limit
//! ([`BODY_READ_TIMEOUT`](crate::protocol::limits::BODY_READ_TIMEOUT), a
//! layer) stops a body that stalls; this one stops a body trickled a byte
//! at a time just inside that gap, which would otherwise hold the request
//! (and a shutdown waiting for it) for days.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;

use super::ApiError;
use crate::protocol::limits::{BODY_TOTAL_TIMEOUT, MAX_BODY_BYTES};

/// The whole body: 413 over [`MAX_BODY_BYTES`], 408 when it has not all
/// arrived within [`BODY_TOTAL_TIMEOUT`], 400 when it cannot be read
/// (including a gap over the read timeout).
pub async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    let read = tokio::time::timeout(BODY_TOTAL_TIMEOUT, Bytes::from_request(request, &()));
    match read.await {
        Err(_) => Err(ApiError::RequestTimeout(format!(
            "the body did not arrive within {}s",
            BODY_TOTAL_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Err(ApiError::PayloadTooLarge(format!(
                "body larger than the limit of {MAX_BODY_BYTES} bytes"
            )))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!("cannot read body: {e}"))),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}
