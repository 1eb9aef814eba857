//! The `Alert` message: how a stored `SystemAlert` reaches seed 000's
//! dashboard, which lists alerts from `Alert` messages apart from events.

use crate::protocol::{Event, ServerFrame};

/// The event type that also goes out as an `Alert` message.
pub(super) const ALERT_EVENT: &str = "SystemAlert";

/// A `SystemAlert` event as seed 000's dashboard reads it: an `Alert`
/// message beside the `Event`, live only (a replay sends the `Event`,
/// which carries the same data).
pub(super) fn alert_frame(event: &Event) -> ServerFrame {
    ServerFrame::Alert(serde_json::json!({
        "id": event.id,
        "event_type": event.event_type,
        "tenant_id": event.tenant_id,
        "data": event.data,
        "timestamp": event.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}
