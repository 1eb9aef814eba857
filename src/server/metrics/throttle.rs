//! Throttled campaign pushes (seed 001): at most one push per campaign per
//! interval, except lifecycle changes (started, paused, completed,
//! failed), which go at once. A change inside the interval is never
//! dropped: the campaign is pushed again when the interval ends (the
//! trailing edge), with its state then, so the last state of a burst is
//! always delivered.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::protocol::Event;

/// A campaign: (tenant, campaign id).
pub type CampaignKey = (String, String);

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    last_sent: Option<Instant>,
    /// When the campaign is to be pushed next; `None`: nothing pending.
    due: Option<Instant>,
}

/// Which campaigns to push when.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    campaigns: HashMap<CampaignKey, Entry>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            campaigns: HashMap::new(),
        }
    }

    /// A campaign changed at `now`.
    pub fn touch(&mut self, key: CampaignKey, lifecycle: bool, now: Instant) {
        let entry = self.campaigns.entry(key).or_default();
        let due = match entry.last_sent {
            Some(last) if !lifecycle => (last + self.interval).max(now),
            _ => now,
        };
        entry.due = Some(entry.due.map_or(due, |d| d.min(due)));
    }

    /// The campaigns due at `now`, marked sent; forgets campaigns quiet
    /// for a whole interval, so the map holds only recent ones.
    pub fn take_due(&mut self, now: Instant) -> Vec<CampaignKey> {
        let mut due = Vec::new();
        let interval = self.interval;
        self.campaigns.retain(|key, entry| {
            if entry.due.is_some_and(|d| d <= now) {
                entry.due = None;
                entry.last_sent = Some(now);
                due.push(key.clone());
                return true;
            }
            entry.due.is_some() || entry.last_sent.is_some_and(|l| now < l + interval)
        });
        due.sort();
        due
    }

    /// When the next pending push is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.campaigns.values().filter_map(|e| e.due).min()
    }
}

/// The campaign an event changes and whether it is a lifecycle change.
pub fn campaign_of(event: &Event) -> Option<(String, bool)> {
    if !matches!(event.event_type.as_str(), "CampaignUpdate" | "CallEvent") {
        return None;
    }
    let id = match event.data.get("campaign_id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let lifecycle = matches!(
        event.data.get("event").and_then(Value::as_str),
        Some("campaign_started" | "campaign_paused" | "campaign_complete" | "campaign_failed")
    );
    Some((id, lifecycle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> CampaignKey {
        ("acme".into(), id.into())
    }

    #[test]
    fn a_burst_goes_at_once_then_on_the_trailing_edge() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut throttle = Throttle::new(s(2));
        throttle.touch(key("c1"), false, t0);
        assert_eq!(throttle.take_due(t0), vec![key("c1")]);
        // More changes within the interval: held back, not dropped.
        throttle.touch(key("c1"), false, t0 + Duration::from_millis(100));
        throttle.touch(key("c1"), false, t0 + Duration::from_millis(1500));
        assert!(throttle
            .take_due(t0 + Duration::from_millis(1999))
            .is_empty());
        assert_eq!(throttle.next_due(), Some(t0 + s(2)));
        assert_eq!(throttle.take_due(t0 + s(2)), vec![key("c1")]);
        assert_eq!(throttle.next_due(), None);
        // A lifecycle change goes at once even inside the interval.
        throttle.touch(key("c1"), true, t0 + Duration::from_millis(2100));
        assert_eq!(
            throttle.take_due(t0 + Duration::from_millis(2100)),
            vec![key("c1")]
        );
        // Campaigns are throttled apart.
        throttle.touch(key("c2"), false, t0 + Duration::from_millis(2200));
        assert_eq!(
            throttle.take_due(t0 + Duration::from_millis(2200)),
            vec![key("c2")]
        );
        // Quiet for an interval: forgotten, and the next change goes at once.
        assert!(throttle.take_due(t0 + s(10)).is_empty());
        assert!(throttle.campaigns.is_empty());
        throttle.touch(key("c1"), false, t0 + s(11));
        assert_eq!(throttle.take_due(t0 + s(11)), vec![key("c1")]);
    }

    #[test]
    fn campaign_events_are_recognised() {
        let event = |t: &str, data: Value| Event {
            id: 1,
            event_type: t.into(),
            tenant_id: "acme".into(),
            room: "campaigns".into(),
            rooms: vec![],
            data,
            timestamp: chrono::Utc::now(),
        };
        use serde_json::json;
        assert_eq!(
            campaign_of(&event(
                "CampaignUpdate",
                json!({"campaign_id": 7, "event": "campaign_paused"})
            )),
            Some(("7".into(), true))
        );
        assert_eq!(
            campaign_of(&event(
                "CampaignUpdate",
                json!({"campaign_id": "C", "event": "message_sent"})
            )),
            Some(("C".into(), false))
        );
        assert_eq!(
            campaign_of(&event("CallEvent", json!({"campaign_id": "C"}))),
            Some(("C".into(), false))
        );
        assert_eq!(
            campaign_of(&event("MessageSent", json!({"campaign_id": "C"}))),
            None
        );
    }
}
