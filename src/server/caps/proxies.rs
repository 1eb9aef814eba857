//! The client address behind reverse proxies: `X-Forwarded-For` counts
//! only when the TCP peer is one of `[server] trusted_proxies`, and then
//! only its untrusted end, so a client cannot pick the address its
//! connections count against by sending the header itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// A proxy address or network, as `[server] trusted_proxies` lists them:
/// `10.0.0.0/8`, or one address (`127.0.0.1`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(IpNet);

impl ProxyNet {
    fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for ProxyNet {
    type Err = String;

    fn from_str(s: &str) -> Result<ProxyNet, String> {
        let s = s.trim();
        let net = match s.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                format!("`{s}` is not an IP address or network (10.0.0.0/8, 192.0.2.7, ::1)")
            })?,
        };
        Ok(ProxyNet(net.trunc()))
    }
}

impl fmt::Display for ProxyNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl serde::Serialize for ProxyNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ProxyNet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ProxyNet, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The address a request comes from: the TCP `peer`, or, when the peer is
/// a trusted proxy, the nearest address in `X-Forwarded-For` that is not
/// (read from the right: each proxy appends the address it saw). An
/// unreadable entry ends the walk at the last trusted hop.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ProxyNet]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Split as bytes: a client's non-ASCII junk merged into the proxy's
    // line must cost only its own entry, not the proxy's.
    let hops: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, maybe with a port
/// (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let hop = std::str::from_utf8(hop).ok()?.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ProxyNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_client_behind_a_trusted_proxy_counts_under_its_own_address() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1"]);
        let headers = forwarded(&["198.51.100.9, 203.0.113.5", "10.1.2.3"]);
        // The proxy chain 10.1.2.3 <- 127.0.0.1; 203.0.113.5 is the first
        // untrusted hop from the right: what the client's own header
        // claimed (198.51.100.9) is ignored.
        assert_eq!(
            client_address(ip("127.0.0.1"), &headers, &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let headers = forwarded(&["203.0.113.5"]);
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &nets(&["10.0.0.0/8"])),
            ip("192.0.2.1")
        );
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &[]),
            ip("192.0.2.1"),
            "no trusted proxies: never"
        );
    }

    #[test]
    fn a_missing_or_unreadable_header_leaves_the_last_trusted_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        let headers = forwarded(&["203.0.113.5, garbage, 10.0.0.2"]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &trusted),
            ip("10.0.0.2")
        );
        let headers = forwarded(&["[2001:db8::1]:4711, 192.0.2.7:80"]);
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &trusted),
            ip("192.0.2.7")
        );
        // A client's bytes that are not text, merged into the proxy's line.
        let mut headers = HeaderMap::new();
        headers.append(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff\xfe, 203.0.113.5").unwrap(),
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &trusted),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn networks_and_single_addresses_parse_and_show_alike() {
        assert_eq!(
            "10.1.2.3/8".parse::<ProxyNet>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<ProxyNet>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "proxy.local".parse::<ProxyNet>().unwrap_err(),
            "`proxy.local` is not an IP address or network (10.0.0.0/8, 192.0.2.7, ::1)"
        );
    }
}
