//! What a group of newly stored events adds to the figures: counters per
//! tenant and minute, conversation activity, campaign state and campaign
//! errors. The store writes it in the append's own transaction, so an
//! event is counted exactly when it is stored: once, on whichever node
//! stored it, and never for a repeat matched by idempotency key.
//!
//! Every part merges by addition, minimum, maximum or "latest wins", and
//! groups commit in id order, so applying the groups one after another
//! gives the same rows as folding every event at once.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::protocol::metrics::{latency_key, Counter};
use crate::protocol::Event;

/// Errors are kept per campaign under their text, cut to this many
/// characters so a producer cannot grow a row without bound.
pub const MAX_ERROR_TEXT: usize = 160;

/// A counter row: (tenant, minute start in Unix seconds, counter, key).
pub type CounterKey = (String, i64, Counter, String);

/// What to add to one counter row.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Add {
    pub count: i64,
    pub sum: f64,
}

/// The change one group of events makes.
#[derive(Debug, Default, PartialEq)]
pub struct Rollup {
    /// Per minute.
    pub counters: BTreeMap<CounterKey, Add>,
    /// The same per hour (the time is the hour's start).
    pub hours: BTreeMap<CounterKey, Add>,
    /// The same over all time.
    pub totals: BTreeMap<(String, Counter, String), Add>,
    pub conversations: BTreeMap<(String, String), ConversationChange>,
    pub campaigns: BTreeMap<(String, String), CampaignChange>,
    pub campaign_errors: BTreeMap<(String, String, String), i64>,
    /// The counters while folding, by tenant first: looked up with the
    /// event's `&str` tenant, so counting an event allocates nothing but
    /// a new row (this runs for every stored event, in the writer).
    staging: HashMap<String, StagedRows, FastHash>,
}

/// The hasher of the maps looked up once per event (in the writer and in
/// the aggregator): SipHash was a measurable share of counting. foldhash
/// is hashbrown's own default, seeded per map, which is defence enough
/// for keys that are validated tenant ids and static counter keys.
pub type FastHash = foldhash::fast::RandomState;

/// One tenant's counters while folding: (minute, counter, static key).
type StagedRows = HashMap<(i64, Counter, &'static str), Add, FastHash>;

/// Times are Unix milliseconds of the events' timestamps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationChange {
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub last_activity_at: i64,
}

/// What a group of events says of one campaign. Counts add up; the other
/// fields are the latest the group reports (`None`: the group says
/// nothing, the stored value stays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CampaignChange {
    pub name: Option<String>,
    /// `created`, `running`, `paused`, `completed` or `failed`.
    pub status: Option<String>,
    pub status_at: Option<i64>,
    pub total_contacts: Option<i64>,
    pub sent: i64,
    pub failed: i64,
    /// Absolute counts from `progress` and `campaign_complete` events
    /// (seed 003's callbacks), for producers that report totals rather
    /// than one event per message.
    pub reported_sent: Option<i64>,
    pub reported_failed: Option<i64>,
    pub position: Option<i64>,
    pub created_at: Option<i64>,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub first_sent_at: Option<i64>,
    pub last_sent_at: Option<i64>,
    /// Gaps between consecutive sends inside the group; the gap from the
    /// stored `last_sent_at` to `first_sent_at` is added by the store.
    pub interval_count: i64,
    pub interval_sum: i64,
    pub interval_min: Option<i64>,
    pub interval_max: Option<i64>,
    pub answered: i64,
    pub busy: i64,
    pub calls_failed: i64,
    pub converted: i64,
    pub opt_out: i64,
    pub first_event_at: i64,
    pub last_event_at: i64,
}

impl Rollup {
    /// Folds new events, in id order.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Rollup {
        let mut rollup = Rollup::default();
        for event in events {
            rollup.add(event);
        }
        for (tenant, rows) in std::mem::take(&mut rollup.staging) {
            for ((minute, counter, key), add) in rows {
                rollup
                    .counters
                    .insert((tenant.clone(), minute, counter, key.to_string()), add);
            }
        }
        rollup.hours = rollup.sum_hours();
        rollup.totals = rollup.sum_totals();
        rollup
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }

    fn sum_hours(&self) -> BTreeMap<CounterKey, Add> {
        let mut hours: BTreeMap<CounterKey, Add> = BTreeMap::new();
        for ((tenant, minute, counter, key), add) in &self.counters {
            let hour = minute.div_euclid(3600) * 3600;
            let row = hours
                .entry((tenant.clone(), hour, *counter, key.clone()))
                .or_default();
            row.count += add.count;
            row.sum += add.sum;
        }
        hours
    }

    fn sum_totals(&self) -> BTreeMap<(String, Counter, String), Add> {
        let mut totals: BTreeMap<(String, Counter, String), Add> = BTreeMap::new();
        for ((tenant, _, counter, key), add) in &self.counters {
            let row = totals
                .entry((tenant.clone(), *counter, key.clone()))
                .or_default();
            row.count += add.count;
            row.sum += add.sum;
        }
        totals
    }

    fn count(&mut self, event: &Event, counter: Counter, key: &'static str, count: i64, sum: f64) {
        let minute = event.timestamp.timestamp().div_euclid(60) * 60;
        let rows = match self.staging.get_mut(event.tenant_id.as_str()) {
            Some(rows) => rows,
            None => self.staging.entry(event.tenant_id.clone()).or_default(),
        };
        let row = rows.entry((minute, counter, key)).or_default();
        row.count += count;
        row.sum += sum;
    }

    /// [`Rollup::count`] for a counter keyed by a campaign id (not
    /// static): straight into the rows.
    fn count_keyed(&mut self, event: &Event, counter: Counter, key: &str) {
        let minute = event.timestamp.timestamp().div_euclid(60) * 60;
        self.counters
            .entry((event.tenant_id.clone(), minute, counter, key.to_string()))
            .or_default()
            .count += 1;
    }

    /// Adds one event. Fields are read leniently (a number or a numeric
    /// string, snake_case or the seeds' camelCase): the event was already
    /// validated for what its type requires, and a figure it lacks is
    /// simply not counted.
    fn add(&mut self, event: &Event) {
        let data = &event.data;
        let at = event.timestamp.timestamp_millis();
        self.count(event, Counter::Events, "", 1, 0.0);
        match event.event_type.as_str() {
            // A receipt (delivered, read) of a message already counted
            // when it was sent: WhatsApp reports each as its own status.
            "MessageSent" if !is_receipt(data) => {
                self.count(event, Counter::MessagesSent, "", 1, 0.0)
            }
            "MessageReceived" => self.count(event, Counter::MessagesReceived, "", 1, 0.0),
            "MessageFailed" => self.count(event, Counter::MessagesFailed, "", 1, 0.0),
            "ConversationStarted" => self.count(event, Counter::ConversationsStarted, "", 1, 0.0),
            "ConversationEnded" => self.count(event, Counter::ConversationsEnded, "", 1, 0.0),
            "TicketCreated" => self.count(event, Counter::TicketsCreated, "", 1, 0.0),
            "AIInteraction" => {
                self.count(event, Counter::AiInteractions, "", 1, 0.0);
                let tokens = number(data, &["tokens"])
                    .unwrap_or(0.0)
                    .clamp(0.0, MAX_FIGURE);
                self.count(event, Counter::AiTokens, "", tokens.round() as i64, 0.0);
            }
            "ERPCall" => {
                self.count(event, Counter::ErpCalls, "", 1, 0.0);
                if data.get("success").and_then(Value::as_bool) == Some(false) {
                    self.count(event, Counter::ErpErrors, "", 1, 0.0);
                }
                if let Some(ms) = number(data, &["response_time", "responseTime"]) {
                    let ms = ms.clamp(0.0, MAX_FIGURE);
                    self.count(event, Counter::ErpLatency, latency_key(ms), 1, ms);
                }
            }
            "SystemAlert" => self.count(event, Counter::SystemAlerts, "", 1, 0.0),
            "CampaignUpdate" => self.campaign_update(event, at),
            "CallEvent" => self.call(event, at),
            _ => {}
        }
        if let Some(conversation) = id_text(data.get("conversation_id")) {
            let change = self
                .conversations
                .entry((event.tenant_id.clone(), conversation))
                .or_default();
            change.last_activity_at = change.last_activity_at.max(at);
            match event.event_type.as_str() {
                "ConversationStarted" => change.started_at = change.started_at.max(Some(at)),
                "ConversationEnded" => change.ended_at = change.ended_at.max(Some(at)),
                _ => {}
            }
        }
    }

    fn campaign(&mut self, event: &Event, id: String, at: i64) -> &mut CampaignChange {
        let change = self
            .campaigns
            .entry((event.tenant_id.clone(), id))
            .or_insert_with(|| CampaignChange {
                first_event_at: at,
                ..CampaignChange::default()
            });
        change.first_event_at = change.first_event_at.min(at);
        change.last_event_at = change.last_event_at.max(at);
        change
    }

    fn campaign_update(&mut self, event: &Event, at: i64) {
        let data = &event.data;
        let Some(id) = id_text(data.get("campaign_id")) else {
            return;
        };
        let kind = data.get("event").and_then(Value::as_str).unwrap_or("");
        match kind {
            "campaign_created" => self.count(event, Counter::CampaignsCreated, "", 1, 0.0),
            "campaign_started" => self.count(event, Counter::CampaignsStarted, "", 1, 0.0),
            "campaign_paused" => self.count(event, Counter::CampaignsPaused, "", 1, 0.0),
            "campaign_complete" => self.count(event, Counter::CampaignsCompleted, "", 1, 0.0),
            "message_sent" => self.count_keyed(event, Counter::CampaignMessagesSent, &id),
            "message_failed" => self.count_keyed(event, Counter::CampaignMessagesFailed, &id),
            _ => {}
        }
        let error = (kind == "message_failed").then(|| error_text(data));
        let change = self.campaign(event, id.clone(), at);
        if let Some(name) = data.get("name").and_then(Value::as_str) {
            change.name = Some(clean_text(name, 200));
        }
        if let Some(total) = integer(data, &["total_contacts", "totalContacts"]) {
            change.total_contacts = Some(total);
        }
        if let Some(position) = integer(data, &["current_position", "currentPosition"]) {
            change.position = Some(position);
        }
        let status = match kind {
            "campaign_created" => {
                change.created_at = Some(change.created_at.map_or(at, |c| c.min(at)));
                Some("created")
            }
            "campaign_started" => {
                change.started_at = Some(change.started_at.map_or(at, |s| s.min(at)));
                Some("running")
            }
            "campaign_paused" => Some("paused"),
            "campaign_complete" => {
                change.completed_at = Some(at);
                Some("completed")
            }
            "campaign_failed" => {
                change.completed_at = Some(at);
                Some("failed")
            }
            _ => None,
        };
        if let Some(status) = status {
            change.status = Some(status.to_string());
            change.status_at = Some(at);
        }
        if matches!(kind, "progress" | "campaign_complete" | "campaign_failed") {
            if let Some(sent) = integer(data, &["sent", "total_sent", "totalSent"]) {
                change.reported_sent = Some(sent);
            }
            if let Some(errors) = integer(data, &["errors", "total_errors", "totalErrors"]) {
                change.reported_failed = Some(errors);
            }
        }
        match kind {
            "message_sent" => {
                change.sent += 1;
                if let Some(last) = change.last_sent_at {
                    let gap = (at - last).max(0);
                    change.interval_count += 1;
                    change.interval_sum += gap;
                    change.interval_min = Some(change.interval_min.map_or(gap, |m| m.min(gap)));
                    change.interval_max = Some(change.interval_max.map_or(gap, |m| m.max(gap)));
                }
                change.first_sent_at = Some(change.first_sent_at.map_or(at, |f| f.min(at)));
                change.last_sent_at = Some(change.last_sent_at.map_or(at, |l| l.max(at)));
            }
            "message_failed" => change.failed += 1,
            _ => {}
        }
        if let Some(error) = error {
            *self
                .campaign_errors
                .entry((event.tenant_id.clone(), id, error))
                .or_default() += 1;
        }
    }

    fn call(&mut self, event: &Event, at: i64) {
        let outcome = event.data.get("outcome").and_then(Value::as_str);
        let counter = match outcome {
            Some("answered") => Counter::CallsAnswered,
            Some("busy") => Counter::CallsBusy,
            Some("failed") => Counter::CallsFailed,
            Some("converted") => Counter::CallsConverted,
            Some("opt_out") => Counter::CallsOptOut,
            _ => return,
        };
        self.count(event, counter, "", 1, 0.0);
        let Some(id) = id_text(event.data.get("campaign_id")) else {
            return;
        };
        let change = self.campaign(event, id, at);
        match counter {
            Counter::CallsAnswered => change.answered += 1,
            Counter::CallsBusy => change.busy += 1,
            Counter::CallsFailed => change.calls_failed += 1,
            Counter::CallsConverted => change.converted += 1,
            _ => change.opt_out += 1,
        }
    }
}

/// Longest conversation or campaign id that is tracked: an id is a key
/// of the store's rows (PostgreSQL's index entries stop near 2.7 KB).
pub const MAX_ID_BYTES: usize = 128;

/// Most a single event may add to a counter (tokens) or report as a
/// campaign's total: far above any real figure, far below overflow.
pub const MAX_FIGURE: f64 = 1e12;

/// An id as text: ids come as strings or integers from the platforms. An
/// id too long, or with a control character (PostgreSQL text cannot hold
/// NUL), is not tracked: the event still counts, its conversation or
/// campaign does not, and the append never fails over it.
fn id_text(value: Option<&Value>) -> Option<String> {
    let id = match value? {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)).then_some(id)
}

/// Free text kept in a row (a campaign's name, an error): NUL removed,
/// cut to `max` characters.
fn clean_text(text: &str, max: usize) -> String {
    text.chars().filter(|c| *c != '\0').take(max).collect()
}

fn number(data: &Value, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|name| match data.get(*name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn integer(data: &Value, names: &[&str]) -> Option<i64> {
    number(data, names)
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.min(MAX_FIGURE) as i64)
}

/// The error of a failed campaign message, as the top-errors table shows
/// it: `error` (text, or an object's `message`/`title`), `error_message`
/// or `reason`.
fn error_text(data: &Value) -> String {
    let text = ["error", "error_message", "errorMessage", "reason"]
        .iter()
        .find_map(|name| match data.get(*name)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Object(o) => ["message", "title"]
                .iter()
                .find_map(|k| o.get(*k).and_then(Value::as_str))
                .map(str::to_string),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "unknown error".to_string());
    clean_text(&text, MAX_ERROR_TEXT)
}

#[cfg(test)]
mod tests;

/// Whether a `MessageSent` is a later status of a message (delivered,
/// read, played) rather than its sending.
fn is_receipt(data: &serde_json::Value) -> bool {
    matches!(
        data.get("status").and_then(serde_json::Value::as_str),
        Some("delivered" | "read" | "played")
    )
}
