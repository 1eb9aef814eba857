//! k6-style thresholds: `p99<50ms`, `loss==0`, `connect_errors==0`,
//! `deliveries_per_s>=100000`. Any unmet threshold makes `pytake loadtest`
//! exit 99.

use std::fmt;
use std::str::FromStr;

use super::report::Report;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Latency percentile, in milliseconds (p50, p90, p99, p99.9) or the max.
    Latency(f64),
    LatencyMax,
    /// Lost deliveries (count).
    Loss,
    /// Lost deliveries as a fraction of expected ones (0.01 = 1 %).
    LossRate,
    Duplicates,
    ConnectErrors,
    /// Errors of every kind (count).
    Errors,
    DeliveriesPerSecond,
    /// Server memory per connection, KiB.
    MemoryPerConnectionKib,
}

/// The metric names a threshold may use, for error messages.
pub const METRICS: &str =
    "p50, p90, p99, p99.9, max (latency, with ms, s or us), loss, loss_rate, \
duplicates, connect_errors, errors, deliveries_per_s, memory_per_conn_kib";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Op::Lt => actual < limit,
            Op::Le => actual <= limit,
            Op::Gt => actual > limit,
            Op::Ge => actual >= limit,
            Op::Eq => actual == limit,
            Op::Ne => actual != limit,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub text: String,
    pub metric: Metric,
    pub op: Op,
    /// In the metric's unit (milliseconds for latency).
    pub limit: f64,
}

/// A threshold checked against a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub threshold: String,
    pub actual: f64,
    pub ok: bool,
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, op_text, op) = ops
            .iter()
            .filter_map(|(t, op)| compact.find(t).map(|i| (i, *t, *op)))
            .min_by_key(|(i, t, _)| (*i, usize::MAX - t.len()))
            .ok_or_else(|| format!("`{text}`: expected METRIC OP VALUE, e.g. p99<50ms (operators: < <= > >= == !=)"))?;
        let name = &compact[..at];
        let value = &compact[at + op_text.len()..];
        let metric = match name {
            "p50" => Metric::Latency(50.0),
            "p90" => Metric::Latency(90.0),
            "p99" => Metric::Latency(99.0),
            "p99.9" | "p999" => Metric::Latency(99.9),
            "max" => Metric::LatencyMax,
            "loss" | "lost" => Metric::Loss,
            "loss_rate" => Metric::LossRate,
            "duplicates" | "dups" => Metric::Duplicates,
            "connect_errors" => Metric::ConnectErrors,
            "errors" => Metric::Errors,
            "deliveries_per_s" => Metric::DeliveriesPerSecond,
            "memory_per_conn_kib" => Metric::MemoryPerConnectionKib,
            other => {
                return Err(format!(
                    "`{text}`: unknown metric `{other}` (known: {METRICS})"
                ))
            }
        };
        let limit = match metric {
            Metric::Latency(_) | Metric::LatencyMax => parse_millis(value),
            _ => parse_number(value),
        }
        .ok_or_else(|| format!("`{text}`: `{value}` is not a valid value for {name}"))?;
        Ok(Threshold {
            text: text.to_string(),
            metric,
            op,
            limit,
        })
    }
}

fn parse_number(v: &str) -> Option<f64> {
    let (number, scale) = match v.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (v, 1.0),
    };
    let n: f64 = number.replace('_', "").parse().ok()?;
    n.is_finite().then_some(n * scale)
}

/// A latency in milliseconds: `50ms`, `0.5s`, `800us`, or a bare number of ms.
fn parse_millis(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("us").or_else(|| v.strip_suffix("µs")) {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    let n: f64 = number.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some(n * scale)
}

impl Threshold {
    /// The metric's value in a report.
    pub fn actual(&self, r: &Report) -> f64 {
        match self.metric {
            Metric::Latency(p) => r.latency_ms.percentile(p),
            Metric::LatencyMax => r.latency_ms.max,
            Metric::Loss => r.deliveries.lost as f64,
            Metric::LossRate => {
                if r.deliveries.expected == 0 {
                    0.0
                } else {
                    r.deliveries.lost as f64 / r.deliveries.expected as f64
                }
            }
            Metric::Duplicates => r.deliveries.duplicated as f64,
            Metric::ConnectErrors => r.connections.failed as f64,
            Metric::Errors => r.errors.values().sum::<u64>() as f64,
            Metric::DeliveriesPerSecond => r.deliveries.per_second,
            Metric::MemoryPerConnectionKib => {
                r.server_memory.per_connection_bytes.unwrap_or(0.0) / 1024.0
            }
        }
    }

    pub fn check(&self, r: &Report) -> Verdict {
        let actual = self.actual(r);
        Verdict {
            threshold: self.text.clone(),
            actual,
            ok: self.op.holds(actual, self.limit),
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_k6_forms() {
        let t: Threshold = "p99<50ms".parse().unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Latency(99.0), Op::Lt, 50.0)
        );
        let t: Threshold = "p99.9 <= 0.2s".parse().unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::Latency(99.9), Op::Le, 200.0)
        );
        let t: Threshold = "loss==0".parse().unwrap();
        assert_eq!((t.metric, t.op, t.limit), (Metric::Loss, Op::Eq, 0.0));
        let t: Threshold = "deliveries_per_s>=100_000".parse().unwrap();
        assert_eq!(
            (t.metric, t.op, t.limit),
            (Metric::DeliveriesPerSecond, Op::Ge, 100_000.0)
        );
        let t: Threshold = "loss_rate<1%".parse().unwrap();
        assert_eq!(t.limit, 0.01);
        let t: Threshold = "max<800us".parse().unwrap();
        assert!((t.limit - 0.8).abs() < 1e-9);
    }

    #[test]
    fn bad_thresholds_say_why() {
        let e = "p98<5ms".parse::<Threshold>().unwrap_err();
        assert!(e.starts_with("`p98<5ms`: unknown metric `p98`"), "{e}");
        let e = "p99 fast".parse::<Threshold>().unwrap_err();
        assert!(e.contains("expected METRIC OP VALUE"), "{e}");
        let e = "p99<soon".parse::<Threshold>().unwrap_err();
        assert_eq!(e, "`p99<soon`: `soon` is not a valid value for p99");
    }
}
