//! The source address of a request: the TCP peer the accept loop
//! recorded, or the client a trusted reverse proxy forwarded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::client_address;
use crate::server::state::AppState;

/// The client's IP address (IPv4-mapped IPv6 addresses as IPv4): the TCP
/// peer, or behind a proxy of `[server] trusted_proxies` the address it
/// forwarded. The accept loop ([`crate::server::http::serve`]) puts a
/// `ConnectInfo` on every request; a router served some other way (unit
/// tests) has none, and its requests all count as `0.0.0.0`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

impl FromRequestParts<AppState> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let tcp = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip())
            .to_canonical();
        Ok(Peer(client_address(
            tcp,
            &parts.headers,
            &state.caps.trusted_proxies,
        )))
    }
}
