//! Bounded per-connection frame queues. A frame is kept as shared pieces (the subscription's
//! prefix and the payload serialized once per group and selection) and joined only when sent.

use std::collections::VecDeque;
use std::sync::Arc;

/// Identifies a subscription slot; the generation makes stale keys harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubKey {
    pub idx: u32,
    pub gen: u32,
}

/// The bytes of one message, in its connection's envelope.
#[derive(Debug, Clone)]
pub enum FrameBody {
    /// prefix + payload + suffix, e.g. `{"id":…,"type":"next","payload":` + payload + `}`
    /// (see `Envelope`); the payload is shared by every subscriber of a group and selection.
    Next {
        prefix: Arc<[u8]>,
        payload: Arc<[u8]>,
        suffix: &'static [u8],
    },
    /// A complete message (errors and other rare frames).
    Whole(Box<[u8]>),
}

impl FrameBody {
    pub fn len(&self) -> usize {
        match self {
            Self::Next {
                prefix,
                payload,
                suffix,
            } => prefix.len() + payload.len() + suffix.len(),
            Self::Whole(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the complete frame to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::Next {
                prefix,
                payload,
                suffix,
            } => {
                out.extend_from_slice(prefix);
                out.extend_from_slice(payload);
                out.extend_from_slice(suffix);
            }
            Self::Whole(b) => out.extend_from_slice(b),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        self.write_to(&mut out);
        out
    }
}

/// What happens when a frame arrives for a connection whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// The subscription gets an `error` with code EVENTS_LAGGED and ends, so the client knows
    /// to resync instead of silently missing events.
    Lag,
    /// The oldest queued frame of the connection is dropped to make room.
    DropOldest,
}

impl OverflowPolicy {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "lag" => Ok(Self::Lag),
            "drop_oldest" => Ok(Self::DropOldest),
            other => Err(format!(
                "Unknown overflow policy \"{other}\" (expected \"lag\" or \"drop_oldest\")"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lag => "lag",
            Self::DropOldest => "drop_oldest",
        }
    }
}

/// A frame waiting to be sent, tagged with the subscription it belongs to.
#[derive(Debug)]
pub struct QueuedFrame {
    pub sub: SubKey,
    pub body: FrameBody,
    /// When its event was published (seconds since the epoch), for the delivery histogram.
    pub published: f64,
}

/// A connection's queue: FIFO, bounded by `capacity` frames.
#[derive(Debug)]
pub struct FrameQueue {
    frames: VecDeque<QueuedFrame>,
    pub capacity: usize,
    pub policy: OverflowPolicy,
}

impl FrameQueue {
    pub fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity,
            policy,
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.frames.len() >= self.capacity
    }

    /// Appends without checking the bound (callers apply the overflow policy first).
    pub fn push(&mut self, frame: QueuedFrame) {
        self.frames.push_back(frame);
    }

    pub fn pop_front(&mut self) -> Option<QueuedFrame> {
        self.frames.pop_front()
    }

    pub fn drain_all(&mut self) -> std::collections::vec_deque::Drain<'_, QueuedFrame> {
        self.frames.drain(..)
    }

    /// Removes and returns the first frame of `sub`.
    pub fn take_first_of(&mut self, sub: SubKey) -> Option<QueuedFrame> {
        let pos = self.frames.iter().position(|f| f.sub == sub)?;
        self.frames.remove(pos)
    }

    /// Puts `body` (published at `published`) in the place of the last `next` frame of `sub`
    /// still queued; the body back when its last queued frame is not a `next` or there is none.
    pub fn replace_next_of(
        &mut self,
        sub: SubKey,
        body: FrameBody,
        published: f64,
    ) -> Result<(), FrameBody> {
        match self.frames.iter_mut().rev().find(|f| f.sub == sub) {
            Some(frame) if matches!(frame.body, FrameBody::Next { .. }) => {
                frame.body = body;
                frame.published = published;
                Ok(())
            }
            _ => Err(body),
        }
    }

    /// Drops every frame of `sub`; returns how many.
    pub fn purge(&mut self, sub: SubKey) -> usize {
        let before = self.frames.len();
        self.frames.retain(|f| f.sub != sub);
        before - self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(idx: u32, text: &str) -> QueuedFrame {
        QueuedFrame {
            sub: SubKey { idx, gen: 0 },
            body: FrameBody::Whole(text.as_bytes().into()),
            published: 0.0,
        }
    }

    #[test]
    fn fifo_bound_take_and_purge() {
        let mut q = FrameQueue::new(3, OverflowPolicy::Lag);
        q.push(frame(1, "a"));
        q.push(frame(2, "b"));
        q.push(frame(1, "c"));
        assert!(q.is_full());
        let first_of_2 = q
            .take_first_of(SubKey { idx: 2, gen: 0 })
            .map(|f| f.body.to_vec());
        assert_eq!(first_of_2, Some(b"b".to_vec()));
        assert_eq!(q.purge(SubKey { idx: 1, gen: 0 }), 2);
        assert!(q.is_empty());
    }

    fn next(payload: &str) -> FrameBody {
        FrameBody::Next {
            prefix: Arc::from(&b"<"[..]),
            payload: Arc::from(payload.as_bytes()),
            suffix: b">",
        }
    }

    #[test]
    fn a_next_is_replaced_in_its_place_other_frames_are_not() {
        let (one, two) = (SubKey { idx: 1, gen: 0 }, SubKey { idx: 2, gen: 0 });
        let mut q = FrameQueue::new(4, OverflowPolicy::Lag);
        for (sub, body) in [(one, next("a")), (two, next("b")), (one, next("c"))] {
            q.push(QueuedFrame {
                sub,
                body,
                published: 1.0,
            });
        }
        assert!(q.replace_next_of(one, next("d"), 2.0).is_ok());
        let texts: Vec<Vec<u8>> = q.drain_all().map(|f| f.body.to_vec()).collect();
        assert_eq!(texts, [b"<a>".to_vec(), b"<b>".to_vec(), b"<d>".to_vec()]);
        q.push(frame(1, "error"));
        assert!(q.replace_next_of(one, next("e"), 3.0).is_err());
        assert!(q.replace_next_of(two, next("f"), 3.0).is_err());
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn next_frames_join_prefix_and_payload() {
        let body = FrameBody::Next {
            prefix: Arc::from(&b"{\"id\":\"1\",\"type\":\"next\",\"payload\":"[..]),
            payload: Arc::from(&b"{\"data\":{}}"[..]),
            suffix: b"}",
        };
        assert_eq!(
            body.to_vec(),
            b"{\"id\":\"1\",\"type\":\"next\",\"payload\":{\"data\":{}}}".to_vec()
        );
        assert_eq!(body.len(), body.to_vec().len());
        assert_eq!(
            OverflowPolicy::parse("drop_oldest"),
            Ok(OverflowPolicy::DropOldest)
        );
        assert!(OverflowPolicy::parse("x").is_err());
    }
}
