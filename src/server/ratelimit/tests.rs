use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;

use super::*;

fn quota(n: u32) -> LocalQuota {
    LocalQuota::new(NonZeroU32::new(n).unwrap())
}

/// 3 a minute: three at once, then one every 20 s; the clock is tokio's,
/// paused, so the 20 s pass at once.
#[tokio::test(start_paused = true)]
async fn a_local_quota_is_a_burst_then_one_per_interval() {
    let q = quota(3);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = q.check("viewer:acme:ana");
        assert!(d.allowed);
        seen.push((d.remaining, d.reset));
    }
    assert_eq!(
        seen,
        [
            (2, Duration::from_secs(20)),
            (1, Duration::from_secs(40)),
            (0, Duration::from_secs(60))
        ]
    );
    let refused = q.check("viewer:acme:ana");
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_secs(20));
    assert_eq!(refused.retry_after_secs(), 20);
    assert_eq!(refused.reset, Duration::from_secs(60));
    // Another subject has its own quota.
    assert!(q.check("viewer:acme:bob").allowed);

    tokio::time::advance(Duration::from_secs(19)).await;
    assert!(!q.check("viewer:acme:ana").allowed);
    tokio::time::advance(Duration::from_secs(1)).await;
    let again = q.check("viewer:acme:ana");
    assert!(again.allowed, "{again:?}");
    assert_eq!(again.remaining, 0);
}

#[test]
fn headers_are_whole_seconds_rounded_up() {
    let d = Decision {
        allowed: false,
        limit: 60,
        remaining: 0,
        reset: Duration::from_millis(59_001),
        retry_after: Duration::from_millis(1),
    };
    let mut headers = HeaderMap::new();
    d.write_headers(&mut headers);
    assert_eq!(headers[LIMIT], "60");
    assert_eq!(headers[REMAINING], "0");
    assert_eq!(headers[RESET], "60");
    assert_eq!(d.retry_after_secs(), 1);
}

#[test]
fn probes_scrapes_and_websockets_are_not_counted() {
    for path in [
        "/health",
        "/ready",
        "/metrics",
        "/ws",
        "/ws/dashboard",
        "/ws/tenant/acme",
    ] {
        assert!(exempt(path), "{path}");
    }
    for path in ["/api/v1/events", "/wsx", "/api/v1/stream", "/healthz"] {
        assert!(!exempt(path), "{path}");
    }
}
