//! The latency histogram the store keeps ERP call times in: fixed bucket
//! bounds, so histograms add up across minutes and nodes, and quantiles
//! interpolated within a bucket.

/// Upper bounds (milliseconds) of the latency histogram's buckets; the last
/// bucket has no bound. Percentiles are interpolated within a bucket, so
/// they are as precise as these are close: within ~25 % of the value
/// from 10 ms to 10 s.
pub const LATENCY_BOUNDS_MS: [u32; 22] = [
    5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000,
    7500, 10000,
];

/// The key of the bucket over all bounds.
pub const LATENCY_OVERFLOW_KEY: &str = "+Inf";

/// [`LATENCY_BOUNDS_MS`] as the keys the store keeps them under.
const LATENCY_KEYS: [&str; 22] = [
    "5", "10", "15", "20", "30", "40", "50", "75", "100", "150", "200", "300", "400", "500", "750",
    "1000", "1500", "2000", "3000", "5000", "7500", "10000",
];

/// The histogram key a latency falls in.
pub fn latency_key(ms: f64) -> &'static str {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|b| ms <= f64::from(*b))
        .map_or(LATENCY_OVERFLOW_KEY, |i| LATENCY_KEYS[i])
}

/// The histogram bucket index of a key (`None` for a key not of the
/// histogram).
pub fn latency_bucket(key: &str) -> Option<usize> {
    if key == LATENCY_OVERFLOW_KEY {
        return Some(LATENCY_BOUNDS_MS.len());
    }
    let bound: u32 = key.parse().ok()?;
    LATENCY_BOUNDS_MS.iter().position(|b| *b == bound)
}

/// The `q` quantile (0 to 1) of a histogram given as counts per bucket
/// (one more than [`LATENCY_BOUNDS_MS`]), interpolated linearly inside
/// its bucket; 0 with no samples. A quantile in the overflow bucket is
/// reported as the last bound: the histogram cannot say more.
pub fn latency_quantile(counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, count) in counts.iter().enumerate() {
        let upto = below + count;
        if *count > 0 && upto as f64 >= rank {
            let Some(upper) = LATENCY_BOUNDS_MS.get(i) else {
                return f64::from(*LATENCY_BOUNDS_MS.last().expect("bounds"));
            };
            let lower = if i == 0 {
                0.0
            } else {
                f64::from(LATENCY_BOUNDS_MS[i - 1])
            };
            let within = (rank - below as f64) / *count as f64;
            return lower + (f64::from(*upper) - lower) * within.clamp(0.0, 1.0);
        }
        below = upto;
    }
    f64::from(*LATENCY_BOUNDS_MS.last().expect("bounds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_keys_name_their_bounds() {
        for (key, bound) in LATENCY_KEYS.iter().zip(LATENCY_BOUNDS_MS) {
            assert_eq!(*key, bound.to_string());
        }
    }

    #[test]
    fn latency_keys_and_quantiles() {
        assert_eq!(latency_key(0.0), "5");
        assert_eq!(latency_key(5.0), "5");
        assert_eq!(latency_key(5.1), "10");
        assert_eq!(latency_key(20_000.0), "+Inf");
        assert_eq!(latency_bucket("+Inf"), Some(LATENCY_BOUNDS_MS.len()));
        assert_eq!(latency_bucket("100"), Some(8));
        assert_eq!(latency_bucket("99"), None);
        let mut counts = vec![0u64; LATENCY_BOUNDS_MS.len() + 1];
        assert_eq!(latency_quantile(&counts, 0.5), 0.0);
        // 100 samples in (75, 100]: the median is the bucket's middle.
        counts[8] = 100;
        assert_eq!(latency_quantile(&counts, 0.5), 87.5);
        assert_eq!(latency_quantile(&counts, 1.0), 100.0);
        // 90 fast, 10 in the overflow: p95 says "at least the last bound".
        counts[8] = 90;
        counts[LATENCY_BOUNDS_MS.len()] = 10;
        assert_eq!(latency_quantile(&counts, 0.95), 10_000.0);
        assert_eq!(latency_quantile(&counts, 0.5), 75.0 + 25.0 * (50.0 / 90.0));
    }
}
