//! Metrics read at scrape time from the atomics the server keeps anyway:
//! the process, the gateway's hub, intake totals and the bus. A scrape
//! costs a handful of loads (and one read of `/proc` for memory and open
//! files); the paths that count pay nothing for `/metrics`.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::build_info;
use crate::server::bus::{Bus, BusState};
use crate::server::gateway::hub::Hub;
use crate::server::gateway::stats::CLOSE_KINDS;
use crate::server::ingest::IntakeStats;

/// Writes one unlabelled counter sample; `name` without `_total`, which
/// the encoder adds.
pub fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// Writes one unlabelled gauge sample.
pub fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// The process, gateway, intake and bus figures of one server.
pub struct ServerCollector {
    pub hub: Arc<Hub>,
    pub intake: Arc<IntakeStats>,
    pub bus: Arc<dyn Bus>,
    /// When the server started, on the wall clock and on the monotonic one
    /// (uptime must not jump with the wall clock).
    pub started: (SystemTime, Instant),
}

impl fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCollector").finish_non_exhaustive()
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        self.process(&mut encoder)?;
        self.gateway(&mut encoder)?;
        self.intake(&mut encoder)?;
        self.bus(&mut encoder)
    }
}

impl ServerCollector {
    fn process(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        e.encode_descriptor(
            "pytake_build_info",
            "The running build: always 1, labelled with the version and git revision.",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[
            ("version", build_info::VERSION),
            ("revision", build_info::REVISION),
        ])?
        .encode_gauge(&1i64)?;
        let (wall, monotonic) = self.started;
        let start = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        gauge(
            e,
            "pytake_process_start_time",
            "When the server started, in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            start.as_secs_f64(),
        )?;
        gauge(
            e,
            "pytake_uptime",
            "How long the server has been running.",
            Some(&Unit::Seconds),
            monotonic.elapsed().as_secs_f64(),
        )?;
        gauge(
            e,
            "pytake_process_resident_memory",
            "Resident memory of the server process (0 where the OS does not say).",
            Some(&Unit::Bytes),
            crate::server::api::resident_memory(),
        )?;
        if let Some(open) = open_fds() {
            gauge(
                e,
                "pytake_process_open_fds",
                "File descriptors the server process holds open (sockets included).",
                None,
                open,
            )?;
        }
        if let Ok((soft, _)) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        {
            gauge(
                e,
                "pytake_process_max_fds",
                "The process's limit on open file descriptors (RLIMIT_NOFILE, soft).",
                None,
                soft,
            )?;
        }
        Ok(())
    }

    fn gateway(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let s = &self.hub.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            e,
            "pytake_ws_connections",
            "WebSocket connections open now, authenticated or not.",
            None,
            load(&s.connections),
        )?;
        gauge(
            e,
            "pytake_ws_connections_authenticated",
            "WebSocket connections open now and authenticated.",
            None,
            load(&s.authenticated),
        )?;
        gauge(
            e,
            "pytake_ws_connections_compressed",
            "WebSocket connections open now that negotiated permessage-deflate.",
            None,
            load(&s.compressed),
        )?;
        counter(
            e,
            "pytake_ws_connections_opened",
            "WebSocket connections opened (upgrades completed).",
            None,
            load(&s.opened),
        )?;
        let mut closed = e.encode_descriptor(
            "pytake_ws_connections_closed",
            "WebSocket connections ended, by the close code the server sent and its name; code \"none\" when the client closed or the connection dropped.",
            None,
            MetricType::Counter,
        )?;
        for ((code, reason), count) in CLOSE_KINDS.iter().zip(&s.closes) {
            closed
                .encode_family(&[("code", *code), ("reason", *reason)])?
                .encode_counter::<NoLabelSet, _, u64>(&load(count), None)?;
        }
        let delivered = load(&s.delivered);
        counter(
            e,
            "pytake_ws_frames_sent",
            "Text frames sent to WebSocket clients: live events, replayed events and replies (pings and Close not counted).",
            None,
            delivered + load(&s.replies),
        )?;
        counter(
            e,
            "pytake_ws_events_delivered",
            "Live events handed to WebSocket connections by the hub's fan-out, one per connection.",
            None,
            delivered,
        )?;
        counter(
            e,
            "pytake_ws_sent",
            "Bytes written to WebSocket client sockets, framing included.",
            Some(&Unit::Bytes),
            load(&s.bytes_sent),
        )?;
        counter(
            e,
            "pytake_ws_client_messages_received",
            "Text and binary messages received from WebSocket clients.",
            None,
            load(&s.client_messages),
        )?;
        counter(
            e,
            "pytake_ws_slow_consumers_closed",
            "WebSocket connections closed as slow consumers (4009): queue full or writes stalled.",
            None,
            load(&s.slow_consumers),
        )?;
        gauge(
            e,
            "pytake_ws_rooms",
            "Rooms with at least one member on this node.",
            None,
            self.hub.room_count(),
        )
    }

    fn intake(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        counter(
            e,
            "pytake_intake_events_accepted",
            "Events newly stored by this node's intake (repeats by idempotency key not counted).",
            None,
            self.intake.total(),
        )
    }

    fn bus(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let up = i64::from(self.bus.state() == BusState::Up);
        e.encode_descriptor(
            "pytake_bus_up",
            "Whether the bus is connected (1) or not (0); while it is down, events reach subscribers late, from the store.",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[("kind", self.bus.kind())])?
        .encode_gauge(&up)?;
        let s = &self.hub.stats;
        counter(
            e,
            "pytake_bus_messages_received",
            "Messages the hub received from the bus.",
            None,
            s.bus_received.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "pytake_bus_messages_lagged",
            "Messages the hub missed by falling behind the bus (its subscribers were closed to resume).",
            None,
            s.bus_lagged.load(Ordering::Relaxed),
        )?;
        counter(
            e,
            "pytake_bus_frames_lagged",
            "Presence and typing frames the hub lost by falling behind the bus (frames have no resume; nobody is closed).",
            None,
            s.frames_lagged.load(Ordering::Relaxed),
        )
    }
}

/// Open file descriptors, from `/proc/self/fd` (Linux); `None` elsewhere.
fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory handle itself is one of the entries.
    Some((entries.count() as u64).saturating_sub(1))
}
