//! The publisher: events at a fixed arrival rate over `POST /api/v1/events`.
//!
//! A scheduler emits one batch per tick (every event at rates up to 200/s,
//! 5 ms of events above that); each event carries a sequence number and the
//! batch's intended send time. Workers POST batches concurrently, so a slow
//! server shows up as latency (measured from the intended time, the wrk2
//! correction) instead of silently slowing the schedule down. With several
//! targets, worker `j` posts to target `j % n`; the workers take batches
//! from one queue, so a slower node is sent fewer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;

/// Above this rate events are sent in batches of one tick.
const BATCH_ABOVE_RATE: f64 = 200.0;

/// Tick length when batching.
const BATCH_TICK: Duration = Duration::from_millis(5);

/// Batches waiting for a worker, per worker.
const QUEUE_PER_WORKER: usize = 4;

/// What the publisher needs.
pub struct PublishPlan {
    /// `POST /api/v1/events` of every target.
    pub urls: Vec<String>,
    pub token: String,
    pub rate: f64,
    pub duration: Duration,
    pub workers: usize,
    pub tenants: Vec<String>,
    pub rooms: Vec<String>,
    pub payload_bytes: usize,
}

/// How the schedule went.
#[derive(Debug, Default, Clone, Copy)]
pub struct Schedule {
    /// When publishing began, from the run's start.
    pub started_at: Duration,
    pub max_lag: Duration,
    pub backpressure: Duration,
    pub elapsed: Duration,
    /// From the first batch's intended time to the scheduler's end.
    pub published_for: Duration,
}

/// The longest the scheduler sleeps at once, so that an interrupted run
/// stops publishing within this even at a rate of one event a minute.
const MAX_NAP: Duration = Duration::from_millis(50);

struct Batch {
    first_seq: u64,
    count: u64,
    intended_us: u64,
    body: String,
}

impl PublishPlan {
    /// The body of one batch: events `first..first+count`, all intended at
    /// `intended_us` (microseconds since the run's start).
    fn body(&self, first: u64, count: u64, intended_us: u64, pad: &str) -> String {
        let groups = (self.tenants.len() * self.rooms.len()) as u64;
        let mut body = String::with_capacity((count as usize) * (120 + pad.len()) + 2);
        body.push('[');
        for seq in first..first + count {
            let group = (seq % groups) as usize;
            let tenant = &self.tenants[group % self.tenants.len()];
            let room = &self.rooms[group / self.tenants.len()];
            if seq != first {
                body.push(',');
            }
            body.push_str(&format!(
                r#"{{"event_type":"LoadTest","tenant_id":"{tenant}","rooms":["{room}"],"data":{{"seq":{seq},"t":{intended_us},"pad":"{pad}"}}}}"#
            ));
        }
        body.push(']');
        body
    }
}

/// Publishes for the plan's duration; returns how the schedule held up.
///
/// The subscribers keep the generator's runtime busy, and its timer ticks in
/// whole milliseconds: on that runtime, sends would start late and responses
/// would wait in line behind thousands of connection tasks, and the delay
/// would be charged to the server as latency. So the schedule runs on a
/// thread of its own with precise sleeps, and the POSTs on a runtime of
/// their own.
pub async fn run(plan: Arc<PublishPlan>, shared: Arc<Shared>) -> Schedule {
    let (tx, rx) = mpsc::channel::<Batch>(plan.workers * QUEUE_PER_WORKER);
    let posting = {
        let (plan, shared) = (plan.clone(), shared.clone());
        std::thread::Builder::new()
            .name("loadtest-post".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("publisher runtime")
                    .block_on(post_all(rx, plan, shared));
            })
            .expect("spawn the publisher thread")
    };
    let (done, scheduled) = tokio::sync::oneshot::channel();
    let scheduler = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("loadtest-schedule".into())
            .spawn(move || {
                let _ = done.send(schedule(&plan, &shared, tx));
            })
            .expect("spawn the scheduler thread")
    };
    let mut schedule = scheduled.await.unwrap_or_default();
    // Every batch answered (the posting thread ends when the channel drains).
    let _ = tokio::task::spawn_blocking(move || {
        let _ = scheduler.join();
        let _ = posting.join();
    })
    .await;
    schedule.elapsed = shared.start.elapsed().saturating_sub(schedule.started_at);
    schedule
}

/// Emits the batches on time, blocking the calling thread.
fn schedule(plan: &PublishPlan, shared: &Shared, tx: mpsc::Sender<Batch>) -> Schedule {
    let pad = "x".repeat(plan.payload_bytes);
    let tick = if plan.rate <= BATCH_ABOVE_RATE {
        Duration::from_secs_f64(1.0 / plan.rate)
    } else {
        BATCH_TICK
    };
    let per_tick = plan.rate * tick.as_secs_f64();
    let total = (plan.rate * plan.duration.as_secs_f64()).round() as u64;
    let epoch = shared.start.into_std();
    let started = std::time::Instant::now();
    let mut schedule = Schedule {
        started_at: started.duration_since(epoch),
        ..Schedule::default()
    };
    let mut sent = 0u64;
    let mut k = 0u64;
    while sent < total && !shared.halted() {
        let due = started + tick.mul_f64(k as f64);
        let mut now = std::time::Instant::now();
        while due > now + MAX_NAP && !shared.halted() {
            std::thread::sleep(MAX_NAP);
            now = std::time::Instant::now();
        }
        if shared.halted() {
            break;
        }
        if due > now {
            std::thread::sleep(due - now);
            // Woken late with nothing in the way: the generator is starved.
            schedule.max_lag = schedule.max_lag.max(due.elapsed());
        }
        k += 1;
        let target = ((k as f64 * per_tick).round() as u64).min(total);
        let count = target.saturating_sub(sent);
        if count == 0 {
            continue;
        }
        let intended_us = due.duration_since(epoch).as_micros() as u64;
        let batch = Batch {
            first_seq: sent,
            count,
            intended_us,
            body: plan.body(sent, count, intended_us, &pad),
        };
        sent += count;
        let waited = std::time::Instant::now();
        if tx.blocking_send(batch).is_err() {
            break;
        }
        schedule.backpressure += waited.elapsed();
    }
    schedule.published_for = started.elapsed();
    schedule
}

/// POSTs batches with `plan.workers` in flight until the schedule ends.
async fn post_all(rx: mpsc::Receiver<Batch>, plan: Arc<PublishPlan>, shared: Arc<Shared>) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(plan.workers)
        // Below the server's idle close (its header timeout).
        .pool_idle_timeout(crate::protocol::limits::HEADER_READ_TIMEOUT / 2)
        .build()
        .expect("HTTP client");
    let mut workers = Vec::with_capacity(plan.workers);
    for j in 0..plan.workers {
        let (rx, http, plan, shared) = (rx.clone(), http.clone(), plan.clone(), shared.clone());
        let node = j % plan.urls.len();
        workers.push(tokio::spawn(async move {
            loop {
                let Some(batch) = rx.lock().await.recv().await else {
                    break;
                };
                post(&http, &plan, node, &shared, batch).await;
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
}

/// POSTs one batch to target `node`.
async fn post(
    http: &reqwest::Client,
    plan: &PublishPlan,
    node: usize,
    shared: &Shared,
    batch: Batch,
) {
    let counters = &shared.nodes[node];
    let result = http
        .post(&plan.urls[node])
        .bearer_auth(&plan.token)
        .header("content-type", "application/json")
        .body(batch.body)
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => {
            let acked_us = shared.start.elapsed().as_micros() as u64;
            // Read the body to its end: only then does the connection go
            // back to the pool instead of being closed and reopened.
            let _ = resp.bytes().await;
            shared
                .acks
                .lock()
                .expect("acks lock")
                .saturating_record(acked_us.saturating_sub(batch.intended_us));
            let groups = shared.groups as u64;
            for seq in batch.first_seq..batch.first_seq + batch.count {
                shared.acked[(seq % groups) as usize].fetch_add(1, Ordering::Relaxed);
            }
            shared.published.fetch_add(batch.count, Ordering::Relaxed);
            counters.published.fetch_add(batch.count, Ordering::Relaxed);
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status == 401 || status == 403 {
                let text = resp.text().await.unwrap_or_default();
                shared.fatal(format!("publishing refused ({status}): {text}"));
            }
            shared
                .publish_failed
                .fetch_add(batch.count, Ordering::Relaxed);
            counters
                .publish_failed
                .fetch_add(batch.count, Ordering::Relaxed);
            shared.error(&format!("publish_http_{status}"));
        }
        Err(_) => {
            shared
                .publish_failed
                .fetch_add(batch.count, Ordering::Relaxed);
            counters
                .publish_failed
                .fetch_add(batch.count, Ordering::Relaxed);
            shared.error("publish_transport");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_spread_events_over_tenants_and_rooms() {
        let plan = PublishPlan {
            urls: Vec::new(),
            token: String::new(),
            rate: 1.0,
            duration: Duration::from_secs(1),
            workers: 1,
            tenants: vec!["a".into(), "b".into()],
            rooms: vec!["campaign:0".into(), "campaign:1".into()],
            payload_bytes: 2,
        };
        let body = plan.body(1, 3, 99, "xx");
        let events: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let placed: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["tenant_id"].as_str().unwrap(),
                    e["rooms"][0].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            placed,
            vec![
                ("b", "campaign:0"),
                ("a", "campaign:1"),
                ("b", "campaign:1")
            ]
        );
        assert_eq!(
            events[0]["data"],
            serde_json::json!({"seq": 1, "t": 99, "pad": "xx"})
        );
    }
}
