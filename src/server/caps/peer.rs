//! The source address of a request, as the accept loop recorded it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The peer's IP address (IPv4-mapped IPv6 addresses as IPv4). The accept
/// loop ([`crate::server::http::serve`]) puts a `ConnectInfo` on every
/// request; a router served some other way (unit tests) has none, and its
/// requests all count as `0.0.0.0`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        Ok(Peer(ip.to_canonical()))
    }
}
