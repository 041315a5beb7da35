//! The event that flows through dispatch, from `publish_event` or (later) from a bus.

use super::plan::write_json_str;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch: the clock of `Event::ts`, comparable across processes.
pub fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

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
    /// Its place in the channel's history, as a cursor (see `position`), when its bus keeps one.
    pub position: Option<Arc<str>>,
}

impl Event {
    /// The event as it travels on a bus (JSON; the channel travels beside it).
    pub fn to_wire(&self) -> Vec<u8> {
        // Written field by field: the data is serialized in place, never copied.
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"event_type\":");
        write_json_str(&mut out, &self.event_type);
        out.extend_from_slice(b",\"data\":");
        let _ = serde_json::to_writer(&mut out, &self.data);
        for (key, value) in [("tenant_id", &self.tenant_id), ("user_id", &self.user_id)] {
            if let Some(v) = value {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(b"\":");
                write_json_str(&mut out, v);
            }
        }
        if let Some(ts) = serde_json::Number::from_f64(self.ts) {
            out.extend_from_slice(b",\"ts\":");
            let _ = serde_json::to_writer(&mut out, &ts);
        }
        out.push(b'}');
        out
    }

    /// Reads an event received on `channel`; `id` is this process's sequence number for it.
    pub fn from_wire(
        id: u64,
        channel: &str,
        payload: &[u8],
        position: Option<Arc<str>>,
    ) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| format!("event on \"{channel}\" is not valid JSON: {e}"))?;
        let Value::Object(mut map) = value else {
            return Err(format!("event on \"{channel}\" is not a JSON object"));
        };
        let text = |map: &mut Map<String, Value>, key: &str| match map.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        Ok(Self {
            id,
            channel: channel.to_owned(),
            event_type: text(&mut map, "event_type").unwrap_or_default(),
            tenant_id: text(&mut map, "tenant_id"),
            user_id: text(&mut map, "user_id"),
            ts: map.get("ts").and_then(Value::as_f64).unwrap_or(0.0),
            data: map.remove("data").unwrap_or(Value::Null),
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_round_trip() {
        let event = Event {
            id: 7,
            channel: "room:1".into(),
            event_type: "posted".into(),
            data: json!({"big": 123456789012345678901234567890u128.to_string(), "n": [1, 2]}),
            tenant_id: Some("t".into()),
            user_id: None,
            ts: 1.5,
            position: None,
        };
        let back = Event::from_wire(7, "room:1", &event.to_wire(), None);
        let back = back.map(|e| (e.event_type, e.data, e.tenant_id, e.user_id, e.ts));
        assert_eq!(
            back,
            Ok((
                "posted".into(),
                event.data.clone(),
                Some("t".into()),
                None,
                1.5
            ))
        );
        assert!(Event::from_wire(1, "c", b"[1]", None).is_err());
        assert!(Event::from_wire(1, "c", b"{", None).is_err());
    }
}
