//! The event that flows through dispatch, from `publish_event` or (later) from a bus.

use serde_json::Value;

/// One published event. `data` is the root field's value when no resolver is set.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: u64,
    pub channel: String,
    pub event_type: String,
    pub data: Value,
    /// When set, only subscriptions of this tenant may receive the event.
    pub tenant_id: Option<String>,
    /// When set, only subscriptions of this user may receive the event.
    pub user_id: Option<String>,
    /// Publish time, seconds since the Unix epoch.
    pub ts: f64,
}
