//! The `Caller` extractor: a verified `Authorization: Bearer` token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::protocol::Claims;
use crate::server::ratelimit::Verified;
use crate::server::state::AppState;

/// The claims of the request's token.
pub struct Caller(pub Claims);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Verified already by the rate limiter, from the same header.
        if let Some(Verified(claims)) = parts.extensions.get::<Verified>().cloned() {
            return Ok(Caller(claims));
        }
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        state
            .keys
            .verify(token.trim())
            .map(Caller)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))
    }
}
