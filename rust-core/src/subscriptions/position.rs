//! Positions: where an event sits in its channel's history, so that a client that reconnects
//! can resume after the last event it got. A position travels to clients as an opaque cursor
//! (`extensions.cursor` of a `next`, the `id:` of an SSE event): the bus it belongs to, that
//! bus's epoch (a new epoch means the history the cursor points into is gone) and the offset,
//! written `<bus><epoch>.<offset>`. Each bus owns its offsets: the in-memory bus a sequence
//! number (`History`, below), Redis a stream id, PostgreSQL a delivery cursor.
//!
//! Resuming is the same on every bus: the subscription is registered *resuming* (live events
//! pass it by), the history after the cursor is dispatched to it alone, in order, up to the
//! point where the live events it passed by begin, and then it turns live. When the history no
//! longer covers the cursor it gets a `RESUME_GAP` field error first and then the live events.

use super::event::{now_seconds, Event};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

/// Longest cursor accepted from a client.
pub const MAX_CURSOR: usize = 4096;
/// The error code a subscription gets when its history no longer covers its cursor.
pub const RESUME_GAP: &str = "RESUME_GAP";
pub const GAP_MESSAGE: &str =
    "Events since the cursor are no longer available; refetch, and go on from the events that follow";

/// Which bus a cursor belongs to: its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusKind {
    Memory,
    Redis,
    PostgreSQL,
}

impl BusKind {
    fn tag(self) -> char {
        match self {
            Self::Memory => 'm',
            Self::Redis => 'r',
            Self::PostgreSQL => 'p',
        }
    }
}

/// The cursor of an offset in the history of a bus's `epoch`.
pub fn cursor(bus: BusKind, epoch: &str, offset: &str) -> String {
    let mut out = String::with_capacity(2 + epoch.len() + offset.len());
    out.push(bus.tag());
    out.push_str(epoch);
    out.push('.');
    out.push_str(offset);
    out
}

/// A cursor a client sent, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub bus: BusKind,
    pub epoch: String,
    pub offset: String,
}

impl Cursor {
    /// Reads a cursor; an error says why it is not one of ours.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || "resumeFrom is not a cursor this server issued".to_owned();
        if text.len() > MAX_CURSOR || !text.is_ascii() {
            return Err(bad());
        }
        let bus = match text.chars().next() {
            Some('m') => BusKind::Memory,
            Some('r') => BusKind::Redis,
            Some('p') => BusKind::PostgreSQL,
            _ => return Err(bad()),
        };
        let (epoch, offset) = text[1..].split_once('.').ok_or_else(bad)?;
        let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
        if epoch.is_empty() || offset.is_empty() || !printable(epoch) || !printable(offset) {
            return Err(bad());
        }
        Ok(Self {
            bus,
            epoch: epoch.to_owned(),
            offset: offset.to_owned(),
        })
    }
}

/// Appends `"extensions":{"cursor":…}` to a payload (a JSON object).
pub fn with_cursor(payload: &[u8], cursor: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + cursor.len() + 28);
    match payload.split_last() {
        Some((b'}', body)) => out.extend_from_slice(body),
        _ => return payload.to_vec(),
    }
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(b"\"extensions\":{\"cursor\":");
    super::plan::write_json_str(&mut out, cursor);
    out.extend_from_slice(b"}}");
    out
}

/// A random epoch: a process's in-memory history, a fresh Redis history.
pub fn random_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    format!("{:x}", hasher.finish())
}

/// How much of each channel's history the in-memory bus keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryLimits {
    /// Events per channel (0: none kept, so nothing can be resumed).
    pub size: usize,
    /// Seconds an event is kept.
    pub age: f64,
}

/// What a resume finds in a history.
#[derive(Debug)]
pub enum Replay<E> {
    /// The events after the cursor, oldest first (possibly none).
    Events(Vec<E>),
    /// Some event after the cursor is gone (or the cursor is from another epoch).
    Gap,
}

struct Ring {
    /// Each with its sequence number.
    events: VecDeque<(u64, Arc<Event>)>,
    /// Events of the channel with a sequence number up to this one may be gone.
    floor: u64,
}

/// The in-memory bus's history: a bounded ring of events per channel, numbered by one sequence
/// for the whole process (the offset of a memory cursor). Rings of channels whose events have
/// all aged out are dropped; `forgotten` remembers the newest number they held, so a cursor
/// older than that is a gap on a channel without a ring.
pub struct History {
    epoch: String,
    limits: HistoryLimits,
    rings: FxHashMap<Box<str>, Ring>,
    last: u64,
    forgotten: u64,
    /// Records until the next sweep of every ring for aged-out events.
    until_sweep: usize,
}

const SWEEP_EVERY: usize = 1024;

impl History {
    pub fn new(limits: HistoryLimits) -> Self {
        Self {
            epoch: random_epoch(),
            limits,
            rings: FxHashMap::default(),
            last: 0,
            forgotten: 0,
            until_sweep: SWEEP_EVERY,
        }
    }

    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Numbers an event, keeps it, and returns it with its position.
    pub fn record(&mut self, mut event: Event) -> Arc<Event> {
        self.last += 1;
        let seq = self.last;
        event.position = Some(cursor(BusKind::Memory, &self.epoch, &seq.to_string()).into());
        let event = Arc::new(event);
        if self.limits.size == 0 {
            return event;
        }
        let now = now_seconds();
        let (limits, forgotten) = (self.limits, self.forgotten);
        let ring = self
            .rings
            .entry(event.channel.as_str().into())
            .or_insert_with(|| Ring {
                events: VecDeque::new(),
                floor: forgotten,
            });
        if ring.events.len() >= limits.size {
            if let Some((old, _)) = ring.events.pop_front() {
                ring.floor = ring.floor.max(old);
            }
        }
        prune(ring, now - limits.age);
        ring.events.push_back((seq, event.clone()));
        self.until_sweep -= 1;
        if self.until_sweep == 0 {
            self.sweep(now);
        }
        event
    }

    /// Drops aged-out events everywhere, and the rings left empty.
    fn sweep(&mut self, now: f64) {
        let oldest = now - self.limits.age;
        let mut forgotten = self.forgotten;
        self.rings.retain(|_, ring| {
            prune(ring, oldest);
            if ring.events.is_empty() {
                forgotten = forgotten.max(ring.floor);
            }
            !ring.events.is_empty()
        });
        self.forgotten = forgotten;
        self.until_sweep = SWEEP_EVERY.max(self.rings.len());
    }

    /// The events of `channel` after `offset` (a sequence number of `epoch`).
    /// Each event comes with its sequence number (the offset to go on from).
    pub fn after(&self, channel: &str, epoch: &str, offset: &str) -> Replay<(u64, Arc<Event>)> {
        let Ok(seq) = offset.parse::<u64>() else {
            return Replay::Gap;
        };
        if epoch != self.epoch || seq > self.last {
            return Replay::Gap;
        }
        if self.limits.size == 0 {
            // Nothing is kept: only a cursor at the newest event loses nothing.
            return if seq == self.last {
                Replay::Events(Vec::new())
            } else {
                Replay::Gap
            };
        }
        let Some(ring) = self.rings.get(channel) else {
            return if seq < self.forgotten {
                Replay::Gap
            } else {
                Replay::Events(Vec::new())
            };
        };
        if seq < ring.floor {
            return Replay::Gap;
        }
        let start = ring.events.partition_point(|(n, _)| *n <= seq);
        Replay::Events(ring.events.range(start..).cloned().collect())
    }
}

/// Pops events older than `oldest` (publish time), raising the ring's floor past them.
fn prune(ring: &mut Ring, oldest: f64) {
    while ring.events.front().is_some_and(|(_, e)| e.ts < oldest) {
        if let Some((old, _)) = ring.events.pop_front() {
            ring.floor = ring.floor.max(old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(channel: &str, n: i64) -> Event {
        Event {
            id: 0,
            channel: channel.into(),
            event_type: "e".into(),
            data: json!(n),
            tenant_id: None,
            user_id: None,
            ts: now_seconds(),
            position: None,
        }
    }

    fn replayed(h: &History, channel: &str, cursor: &str) -> Option<Vec<i64>> {
        let c = Cursor::parse(cursor).ok()?;
        match h.after(channel, &c.epoch, &c.offset) {
            Replay::Events(events) => {
                Some(events.iter().filter_map(|(_, e)| e.data.as_i64()).collect())
            }
            Replay::Gap => None,
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let text = cursor(BusKind::Redis, "ab12", "1700000000000-3");
        assert_eq!(text, "rab12.1700000000000-3");
        let back = Cursor::parse(&text);
        assert_eq!(
            back,
            Ok(Cursor {
                bus: BusKind::Redis,
                epoch: "ab12".into(),
                offset: "1700000000000-3".into()
            })
        );
        for bad in [
            "",
            "x1.2",
            "m.2",
            "m1.",
            "m1",
            "m1.\"",
            &"m1.2".repeat(2000),
            "m1.é",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursor_goes_into_the_payload() {
        assert_eq!(
            with_cursor(br#"{"data":{"a":1}}"#, "m1.2"),
            br#"{"data":{"a":1},"extensions":{"cursor":"m1.2"}}"#.to_vec()
        );
        assert_eq!(
            with_cursor(b"{}", "m1.2"),
            br#"{"extensions":{"cursor":"m1.2"}}"#.to_vec()
        );
    }

    #[test]
    fn history_replays_after_a_cursor_and_tells_gaps() {
        let mut h = History::new(HistoryLimits { size: 3, age: 60.0 });
        let positions: Vec<String> = (1..=5)
            .map(|n| {
                let e = h.record(event(if n % 2 == 0 { "b" } else { "a" }, n));
                e.position.as_deref().unwrap_or_default().to_owned()
            })
            .collect();
        // a: 1, 3, 5; b: 2, 4.
        assert_eq!(replayed(&h, "a", &positions[0]), Some(vec![3, 5]));
        assert_eq!(replayed(&h, "b", &positions[0]), Some(vec![2, 4]));
        assert_eq!(replayed(&h, "a", &positions[4]), Some(vec![]));
        // Another epoch, a number from the future, an unknown channel.
        assert_eq!(replayed(&h, "a", "mffff.1"), None);
        assert_eq!(replayed(&h, "a", &format!("m{}.99", h.epoch())), None);
        assert_eq!(replayed(&h, "c", &positions[0]), Some(vec![]));
        // Overflow: a keeps 3 events, so 1 falls out once 7 and 9 come.
        for n in [7, 9] {
            h.record(event("a", n));
        }
        assert_eq!(replayed(&h, "a", &positions[0]), None);
        assert_eq!(replayed(&h, "a", &positions[2]), Some(vec![5, 7, 9]));
    }

    #[test]
    fn without_a_history_only_the_newest_cursor_resumes() {
        let mut h = History::new(HistoryLimits { size: 0, age: 60.0 });
        let first = h.record(event("a", 1));
        let first = first.position.as_deref().unwrap_or_default().to_owned();
        assert_eq!(replayed(&h, "a", &first), Some(vec![]));
        h.record(event("a", 2));
        assert_eq!(replayed(&h, "a", &first), None);
    }

    #[test]
    fn aged_out_rings_are_dropped_and_still_tell_gaps() {
        let mut h = History::new(HistoryLimits { size: 10, age: 0.0 });
        let first = h.record(event("a", 1));
        let cursor_a = first.position.as_deref().unwrap_or_default().to_owned();
        std::thread::sleep(std::time::Duration::from_millis(2));
        h.record(event("a", 2));
        for n in 0..SWEEP_EVERY as i64 {
            h.record(event("z", n));
        }
        assert!(!h.rings.contains_key("a"), "empty rings are dropped");
        assert_eq!(replayed(&h, "a", &cursor_a), None);
    }
}
