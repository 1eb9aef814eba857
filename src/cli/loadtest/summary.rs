//! The run's summary on stdout: a table for people, one JSON object for
//! programs (the `pytake.loadtest/v1` schema), or CSV for spreadsheets.

use std::io::Write;
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Table};

use crate::cli::output::OutputFormat;
use crate::client::loadtest::report::{LatencyReport, Report};
use crate::config::duration;

/// Writes the summary in `format`. A write error is returned as is, a
/// broken pipe included (`serde_json::Error` for JSON): the caller decides
/// that a reader who left is not a failure.
pub fn write(report: &Report, format: OutputFormat, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer(&mut *out, report)?;
            writeln!(out)?;
        }
        OutputFormat::Csv => out.write_all(&csv(report))?,
        OutputFormat::Table => writeln!(out, "{}", table(report))?,
    }
    out.flush()?;
    Ok(())
}

/// One header row and one data row, so runs append to a spreadsheet
/// (`tail -n +2 >> runs.csv`). Columns are the JSON summary's paths, then
/// one `threshold EXPR` column per threshold (`ok` or `failed`); `errors`
/// is the count of every kind. Empty cells are values the run did not have.
pub fn csv(r: &Report) -> Vec<u8> {
    let lat = |prefix: &str, l: &LatencyReport| {
        [
            (format!("{prefix}.p50"), l.p50.to_string()),
            (format!("{prefix}.p90"), l.p90.to_string()),
            (format!("{prefix}.p99"), l.p99.to_string()),
            (format!("{prefix}.p99_9"), l.p99_9.to_string()),
            (format!("{prefix}.max"), l.max.to_string()),
            (format!("{prefix}.mean"), l.mean.to_string()),
        ]
    };
    let c = &r.config;
    let mut cols: Vec<(String, String)> = vec![
        ("valid".into(), r.valid.to_string()),
        ("interrupted".into(), r.interrupted.to_string()),
        ("config.server".into(), c.server.clone()),
        ("config.model".into(), c.model.clone()),
        ("config.connections".into(), c.connections.to_string()),
        ("config.ramp_s".into(), c.ramp_s.to_string()),
        ("config.rate".into(), c.rate.to_string()),
        ("config.duration_s".into(), c.duration_s.to_string()),
        ("config.rooms".into(), c.rooms.to_string()),
        ("config.tenants".into(), c.tenants.to_string()),
        ("config.payload_bytes".into(), c.payload_bytes.to_string()),
        ("config.publishers".into(), c.publishers.to_string()),
        (
            "connections.established".into(),
            r.connections.established.to_string(),
        ),
        (
            "connections.failed".into(),
            r.connections.failed.to_string(),
        ),
        (
            "connections.time_to_connect_all_s".into(),
            r.connections.time_to_connect_all_s.to_string(),
        ),
        ("events.published".into(), r.events.published.to_string()),
        (
            "events.publish_failed".into(),
            r.events.publish_failed.to_string(),
        ),
        (
            "events.accepted_per_s".into(),
            r.events.accepted_per_s.to_string(),
        ),
        (
            "events.published_for_s".into(),
            r.events.published_for_s.to_string(),
        ),
    ];
    let ack = lat("events.ack_latency_ms", &r.events.ack_latency_ms);
    cols.extend([ack[0].clone(), ack[2].clone()]);
    let d = &r.deliveries;
    cols.extend([
        ("deliveries.expected".into(), d.expected.to_string()),
        ("deliveries.received".into(), d.received.to_string()),
        ("deliveries.lost".into(), d.lost.to_string()),
        ("deliveries.duplicated".into(), d.duplicated.to_string()),
        ("deliveries.per_second".into(), d.per_second.to_string()),
        (
            "latency_ms.samples".into(),
            r.latency_ms.samples.to_string(),
        ),
    ]);
    cols.extend(lat("latency_ms", &r.latency_ms));
    cols.extend([
        ("errors".into(), r.errors.values().sum::<u64>().to_string()),
        (
            "server_memory.per_connection_bytes".into(),
            r.server_memory
                .per_connection_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
        ),
        (
            "generator.max_schedule_lag_ms".into(),
            r.generator.max_schedule_lag_ms.to_string(),
        ),
        (
            "generator.backpressure_ms".into(),
            r.generator.backpressure_ms.to_string(),
        ),
    ]);
    for v in &r.thresholds {
        let verdict = if v.ok { "ok" } else { "failed" };
        cols.push((format!("threshold {}", v.threshold), verdict.into()));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(cols.iter().map(|(k, _)| k))
        .and_then(|()| w.write_record(cols.iter().map(|(_, v)| v)));
    written.expect("CSV into memory cannot fail");
    w.into_inner().expect("CSV into memory cannot fail")
}

/// A number without noise: integers as integers, others with 2 decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["", "result"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    };
    let run = if r.interrupted {
        format!(
            "INTERRUPTED after {:.1}s of {}",
            r.events.published_for_s,
            duration::format(Duration::from_secs_f64(r.config.duration_s))
        )
    } else if r.valid {
        "valid".into()
    } else {
        format!("INVALID: {}", r.invalid_reason.clone().unwrap_or_default())
    };
    row("run", run);
    row(
        "load",
        format!(
            "{} connections ({}), {}/s for {}, {} room(s) x {} tenant(s), {} B payload",
            r.config.connections,
            r.config.model,
            number(r.config.rate),
            duration::format(Duration::from_secs_f64(r.config.duration_s)),
            r.config.rooms,
            r.config.tenants,
            r.config.payload_bytes
        ),
    );
    row(
        "connections",
        format!(
            "{} established, {} failed, all in {:.2}s ({} source address(es))",
            r.connections.established,
            r.connections.failed,
            r.connections.time_to_connect_all_s,
            r.connections.source_addresses
        ),
    );
    row(
        "events",
        format!(
            "{} published, {} failed, {:.0}/s accepted",
            r.events.published, r.events.publish_failed, r.events.accepted_per_s
        ),
    );
    row(
        "deliveries",
        format!(
            "{} of {} expected, {} lost, {} duplicated, {:.0}/s",
            r.deliveries.received,
            r.deliveries.expected,
            r.deliveries.lost,
            r.deliveries.duplicated,
            r.deliveries.per_second
        ),
    );
    let percentiles = |l: &LatencyReport| {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        )
    };
    row("latency (ms)", percentiles(&r.latency_ms));
    if r.events.ack_latency_ms.samples > 0 {
        row("publish ack (ms)", percentiles(&r.events.ack_latency_ms));
    }
    if let Some(per) = r.server_memory.per_connection_bytes {
        row(
            "server memory",
            format!("{:.1} KiB per connection", per / 1024.0),
        );
    }
    row(
        "generator",
        format!(
            "max schedule lag {:.1} ms, backpressure {:.0} ms",
            r.generator.max_schedule_lag_ms, r.generator.backpressure_ms
        ),
    );
    if !r.errors.is_empty() {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        row("errors", errors.join(", "));
    }
    for v in &r.thresholds {
        row(
            &format!("threshold {}", v.threshold),
            format!(
                "{} (actual {})",
                if v.ok { "ok" } else { "FAILED" },
                number(v.actual)
            ),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::client::loadtest::report::*;
    use crate::client::loadtest::Verdict;

    /// A run of 10 connections at 100/s for 10 s, interrupted after 3.2 s.
    fn interrupted() -> Report {
        let latency = LatencyReport {
            samples: 3200,
            p50: 1.5,
            p90: 2.25,
            p99: 4.0,
            p99_9: 8.5,
            max: 12.0,
            mean: 1.75,
        };
        Report {
            schema: SCHEMA,
            valid: false,
            invalid_reason: Some("interrupted after 3.2s of 10s".into()),
            interrupted: true,
            config: RunConfig {
                server: "http://127.0.0.1:8080/".into(),
                model: "closed".into(),
                connections: 10,
                ramp_s: 0.0,
                rate: 100.0,
                duration_s: 10.0,
                rooms: 1,
                tenants: 1,
                payload_bytes: 64,
                publishers: 32,
            },
            connections: ConnectionReport {
                established: 10,
                failed: 0,
                time_to_connect_all_s: 0.25,
                source_addresses: 1,
            },
            events: EventReport {
                published: 320,
                publish_failed: 0,
                accepted_per_s: 100.0,
                published_for_s: 3.2,
                ack_latency_ms: latency.clone(),
            },
            deliveries: DeliveryReport {
                expected: 3200,
                received: 3200,
                lost: 0,
                duplicated: 0,
                per_second: 1000.0,
            },
            latency_ms: latency,
            errors: BTreeMap::from([("closed_1001".to_string(), 2)]),
            server_memory: MemoryReport {
                rss_before_bytes: Some(1000),
                rss_after_bytes: Some(11240),
                per_connection_bytes: Some(1024.0),
            },
            generator: GeneratorReport {
                max_schedule_lag_ms: 0.5,
                backpressure_ms: 0.0,
            },
            thresholds: vec![
                Verdict {
                    threshold: "loss==0".into(),
                    actual: 0.0,
                    ok: true,
                },
                Verdict {
                    threshold: "p99<2ms".into(),
                    actual: 4.0,
                    ok: false,
                },
            ],
        }
    }

    fn written(format: OutputFormat) -> String {
        let mut out = Vec::new();
        write(&interrupted(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_table_marks_an_interrupted_run() {
        assert_eq!(
            written(OutputFormat::Table),
            "\
┌───────────────────┬───────────────────────────────────────────────────────────────────────────────┐
│                   ┆ result                                                                        │
╞═══════════════════╪═══════════════════════════════════════════════════════════════════════════════╡
│ run               ┆ INTERRUPTED after 3.2s of 10s                                                 │
│ load              ┆ 10 connections (closed), 100/s for 10s, 1 room(s) x 1 tenant(s), 64 B payload │
│ connections       ┆ 10 established, 0 failed, all in 0.25s (1 source address(es))                 │
│ events            ┆ 320 published, 0 failed, 100/s accepted                                       │
│ deliveries        ┆ 3200 of 3200 expected, 0 lost, 0 duplicated, 1000/s                           │
│ latency (ms)      ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                           │
│ publish ack (ms)  ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                           │
│ server memory     ┆ 1.0 KiB per connection                                                        │
│ generator         ┆ max schedule lag 0.5 ms, backpressure 0 ms                                    │
│ errors            ┆ closed_1001: 2                                                                │
│ threshold loss==0 ┆ ok (actual 0)                                                                 │
│ threshold p99<2ms ┆ FAILED (actual 4)                                                             │
└───────────────────┴───────────────────────────────────────────────────────────────────────────────┘
"
        );
    }

    #[test]
    fn csv_is_one_header_and_one_row_with_a_column_per_threshold() {
        assert_eq!(
            written(OutputFormat::Csv),
            "valid,interrupted,config.server,config.model,config.connections,config.ramp_s,\
config.rate,config.duration_s,config.rooms,config.tenants,config.payload_bytes,config.publishers,\
connections.established,connections.failed,connections.time_to_connect_all_s,\
events.published,events.publish_failed,events.accepted_per_s,events.published_for_s,\
events.ack_latency_ms.p50,events.ack_latency_ms.p99,\
deliveries.expected,deliveries.received,deliveries.lost,deliveries.duplicated,deliveries.per_second,\
latency_ms.samples,latency_ms.p50,latency_ms.p90,latency_ms.p99,latency_ms.p99_9,latency_ms.max,latency_ms.mean,\
errors,server_memory.per_connection_bytes,generator.max_schedule_lag_ms,generator.backpressure_ms,\
threshold loss==0,threshold p99<2ms
false,true,http://127.0.0.1:8080/,closed,10,0,100,10,1,1,64,32,10,0,0.25,320,0,100,3.2,1.5,4,\
3200,3200,0,0,1000,3200,1.5,2.25,4,8.5,12,1.75,2,1024,0.5,0,ok,failed
"
        );
    }

    #[test]
    fn json_says_interrupted_beside_valid() {
        let json = written(OutputFormat::Json);
        assert!(
            json.starts_with(
                r#"{"schema":"pytake.loadtest/v1","valid":false,"invalid_reason":"interrupted after 3.2s of 10s","interrupted":true,"config":{"#
            ),
            "{json}"
        );
        assert!(json.contains(r#""published_for_s":3.2,"#), "{json}");
        assert_eq!(json.lines().count(), 1);
    }
}
