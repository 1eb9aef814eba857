//! The dashboard API's bodies (seed 000): the overview, the time series
//! and the export request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::{Kpis, Period};

/// `GET /api/v1/dashboard/overview`: seed 000's KPIs and the status of
/// every subsystem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// `None`: every tenant.
    pub tenant_id: Option<String>,
    pub generated_at: String,
    pub kpis: Kpis,
    pub system: SystemStats,
    pub subsystems: Vec<Subsystem>,
}

/// The machine and the process (seed 000's "system health").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemStats {
    /// Percent of every core of this node's machine.
    pub cpu_usage: f64,
    /// Percent of this node's machine's memory in use.
    pub memory_usage: f64,
    pub rss_bytes: u64,
    /// WebSocket connections open on this node.
    pub websocket_connections: u64,
    /// The store's connection pool on this node.
    pub store_pool: Option<PoolStats>,
    /// Jobs waiting in the queue; `None` until the queue exists.
    pub queue_depth: Option<u64>,
    pub uptime_seconds: u64,
}

/// A connection pool's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Open and idle.
    pub idle: u32,
    /// Open and in use.
    pub in_use: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// One subsystem's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subsystem {
    /// `store`, `bus`, `gateway`, `intake`, `metrics`.
    pub name: String,
    /// `ok`, `degraded` or `down`.
    pub status: String,
    pub detail: String,
}

/// `GET /api/v1/dashboard/metrics`: evenly spaced points, the oldest
/// first, empty buckets present as zeros.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub tenant_id: Option<String>,
    pub period: Period,
    pub bucket_seconds: i64,
    /// The first bucket's start and the last bucket's end, RFC 3339.
    pub from: String,
    pub to: String,
    /// The metrics of every point, in the order asked for.
    pub metrics: Vec<String>,
    pub points: Vec<SeriesPoint>,
}

/// One bucket: its start and a value per metric, flat
/// (`{"timestamp": ..., "messages_sent": 3}`, as a chart reads it).
/// Read through a map: serde's `flatten` cannot read numbers into `f64`
/// under serde_json's `arbitrary_precision`, which this crate enables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct SeriesPoint {
    pub timestamp: String,
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for SeriesPoint {
    type Error = String;
    fn try_from(fields: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let mut timestamp = None;
        let mut values = BTreeMap::new();
        for (key, value) in fields {
            if key == "timestamp" {
                timestamp = value.as_str().map(String::from);
            } else {
                let n = value
                    .as_f64()
                    .ok_or_else(|| format!("`{key}` of a point is not a number"))?;
                values.insert(key, n);
            }
        }
        Ok(SeriesPoint {
            timestamp: timestamp.ok_or("a point has no timestamp")?,
            values,
        })
    }
}

impl Series {
    /// The series as an export writes it: CSV with a `timestamp` column
    /// and one per metric (values as Rust prints an `f64`, a missing one
    /// as 0), the JSON document, or one point per line. A period's
    /// buckets are a few hundred at most, so it is written whole.
    pub fn render(&self, format: ExportFormat) -> Vec<u8> {
        match format {
            ExportFormat::Json => serde_json::to_vec(self).expect("series serialize"),
            ExportFormat::Ndjson => {
                let mut out = Vec::new();
                for point in &self.points {
                    serde_json::to_writer(&mut out, point).expect("point serializes");
                    out.push(b'\n');
                }
                out
            }
            ExportFormat::Csv => {
                let mut csv = csv::Writer::from_writer(Vec::new());
                let mut header = vec!["timestamp".to_string()];
                header.extend(self.metrics.iter().cloned());
                csv.write_record(&header).expect("write to memory");
                for point in &self.points {
                    let mut record = vec![point.timestamp.clone()];
                    for metric in &self.metrics {
                        record.push(point.values.get(metric).copied().unwrap_or(0.0).to_string());
                    }
                    csv.write_record(&record).expect("write to memory");
                }
                csv.into_inner().expect("flush to memory")
            }
        }
    }
}

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
    Ndjson,
}

impl ExportFormat {
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
            ExportFormat::Ndjson => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Json => "application/json",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }

    pub fn parse(s: &str) -> Result<ExportFormat, String> {
        match s {
            "csv" => Ok(ExportFormat::Csv),
            "json" => Ok(ExportFormat::Json),
            "ndjson" => Ok(ExportFormat::Ndjson),
            _ => Err(format!("unknown format `{s}`; valid: csv, json, ndjson")),
        }
    }
}

/// `POST /api/v1/dashboard/export` (seed 000).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[serde(default)]
    pub format: ExportFormat,
    pub period: Period,
    /// Metric names; empty or absent: the dashboard's defaults.
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// The header of an events export in CSV, in column order.
pub const EVENT_CSV_COLUMNS: [&str; 7] = [
    "id",
    "timestamp",
    "tenant_id",
    "event_type",
    "room",
    "rooms",
    "data",
];
