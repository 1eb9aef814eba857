use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::*;
use crate::protocol::Role;

fn caps(total: u32, per_tenant: u32, unauthenticated: u32) -> Arc<Caps> {
    let settings = GatewaySettings {
        max_connections: Some(total),
        max_connections_per_tenant: Some(per_tenant),
        max_unauthenticated_per_address: unauthenticated,
        ..GatewaySettings::default()
    };
    Arc::new(Caps::new(&settings, &[]))
}

fn claims(tenant: Option<&str>) -> Claims {
    let role = if tenant.is_some() {
        Role::Viewer
    } else {
        Role::Admin
    };
    Claims::new("ana", tenant, role, 0, u64::MAX)
}

const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

#[test]
fn the_server_wide_cap_refuses_the_next_and_frees_on_drop() {
    let caps = caps(2, 10, 10);
    let first = caps.admit(A, None).unwrap();
    let _second = caps.admit(B, Some(&claims(None))).unwrap();
    let refused = caps.admit(B, Some(&claims(Some("acme")))).err().unwrap();
    assert_eq!(refused.cap, Cap::Server);
    assert_eq!(
        refused.to_string(),
        "connection refused: this server already has 2 open, the `[gateway] max_connections` cap; retry in 5 s"
    );
    drop(first);
    assert_eq!(caps.open(), 1);
    caps.admit(A, None).unwrap();
    assert_eq!(caps.health().refused["max_connections"], 1);
}

#[test]
fn unauthenticated_connections_count_per_address() {
    let caps = caps(100, 100, 2);
    let held: Vec<_> = (0..2).map(|_| caps.admit(A, None).unwrap()).collect();
    let refused = caps.admit(A, None).err().unwrap();
    assert_eq!(refused.cap, Cap::UnauthenticatedPerAddress);
    // Another address, and authenticated connections from the same one,
    // are not affected.
    let _other = caps.admit(B, None).unwrap();
    let _authenticated = caps.admit(A, Some(&claims(Some("acme")))).unwrap();
    // The IPv4-mapped form of A is A.
    let mapped = IpAddr::V6(Ipv6Addr::from(0xffff_0a00_0001u128));
    assert_eq!(
        caps.admit(mapped, None).err().unwrap().cap,
        Cap::UnauthenticatedPerAddress
    );
    assert_eq!(caps.health().unauthenticated, 3);
    drop(held);
    assert_eq!(caps.health().unauthenticated, 1);
    assert!(caps.health().tenants.contains_key("acme"));
}

#[test]
fn authenticating_moves_a_connection_from_its_address_to_its_tenant() {
    let caps = caps(100, 1, 1);
    let mut first = caps.admit(A, None).unwrap();
    first.authenticate(&claims(Some("acme"))).unwrap();
    // A's place is free again; the tenant's is taken.
    let mut second = caps.admit(A, None).unwrap();
    let refused = second.authenticate(&claims(Some("acme"))).err().unwrap();
    assert_eq!(refused.cap, Cap::Tenant);
    assert!(refused
        .to_string()
        .contains("tenant `acme` already has 1 open"));
    // Refused, it still holds its address's place until dropped.
    assert_eq!(
        caps.admit(A, None).err().unwrap().cap,
        Cap::UnauthenticatedPerAddress
    );
    drop(second);
    assert_eq!(caps.health().unauthenticated, 0);
    // Another tenant, and a token of every tenant, fit.
    let mut other = caps.admit(A, None).unwrap();
    other.authenticate(&claims(Some("globex"))).unwrap();
    let mut admin = caps.admit(A, None).unwrap();
    admin.authenticate(&claims(None)).unwrap();
    // A second authentication is a no-op.
    admin.authenticate(&claims(Some("acme"))).unwrap();
    assert_eq!(caps.open(), 3);
    drop((first, other, admin));
    let health = caps.health();
    assert_eq!((health.connections, health.unauthenticated), (0, 0));
    assert!(health.tenants.is_empty(), "{:?}", health.tenants);
    assert_eq!(health.refused["max_connections_per_tenant"], 1);
}

#[test]
fn the_default_server_cap_follows_the_open_file_limit() {
    let n = default_max_connections();
    assert!((1..=MAX_CONNECTIONS_CEILING).contains(&n), "{n}");
    let caps = Caps::new(&GatewaySettings::default(), &[]);
    assert_eq!(
        caps.limits()[1].1,
        caps.limits()[0].1,
        "per tenant defaults to the server cap"
    );
}

#[test]
fn a_refusal_is_a_503_with_retry_after() {
    let caps = caps(0, 1, 1);
    let response = caps.admit(A, None).err().unwrap().into_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    assert_eq!(response.headers()[header::CONNECTION], "close");
}
