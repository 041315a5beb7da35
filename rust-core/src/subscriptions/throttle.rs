//! A subscription's events-per-second limit (`max_rate`): its `next` frames go out at most that
//! often, a burst of one second's worth allowed (the generic cell rate algorithm: one "theoretical
//! arrival time" of state). Frames over the rate are held, in order, and released as their
//! slots come (`Registry::release_held`, driven by a timer of the bindings); a conflated
//! subscription holds only its latest. Held frames count against the connection's queue bound:
//! a subscription that cannot keep up even so lags (EVENTS_LAGGED), as any other.

use super::queue::FrameBody;
use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Instant;

/// Seconds on a monotonic clock (this process's).
pub fn monotonic() -> f64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// One subscription's rate and the frames it holds back.
#[derive(Debug)]
pub struct Throttle {
    /// Seconds between frames at the rate.
    interval: f64,
    /// How far ahead of the clock the schedule may run: the burst.
    tolerance: f64,
    /// When the next frame would be due at the rate.
    tat: f64,
    /// Held frames with their publish time, oldest first.
    pub held: VecDeque<(FrameBody, f64)>,
}

impl Throttle {
    /// At most `per_second` frames a second (a burst of that many, at least one).
    pub fn new(per_second: f64) -> Self {
        let interval = 1.0 / per_second;
        Self {
            interval,
            tolerance: interval * (per_second.floor().max(1.0) - 1.0),
            tat: 0.0,
            held: VecDeque::new(),
        }
    }

    /// Takes a slot at `now` if one is free (nothing held before it, and within the rate).
    pub fn admit(&mut self, now: f64) -> bool {
        if !self.held.is_empty() || self.tat - self.tolerance > now {
            return false;
        }
        self.tat = self.tat.max(now) + self.interval;
        true
    }

    /// The oldest held frame, if its slot has come (the slot is taken).
    pub fn release(&mut self, now: f64) -> Option<(FrameBody, f64)> {
        if self.held.is_empty() || self.tat - self.tolerance > now {
            return None;
        }
        self.tat = self.tat.max(now) + self.interval;
        self.held.pop_front()
    }

    /// When the next held frame's slot comes (None: nothing held).
    pub fn due(&self) -> Option<f64> {
        (!self.held.is_empty()).then_some(self.tat - self.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> (FrameBody, f64) {
        (FrameBody::Whole(Box::new([n])), 0.0)
    }

    #[test]
    fn a_burst_of_one_second_then_the_rate() {
        let mut t = Throttle::new(2.0);
        assert!(t.admit(10.0) && t.admit(10.0), "a burst of two");
        assert!(!t.admit(10.0));
        t.held.push_back(frame(1));
        t.held.push_back(frame(2));
        assert!(!t.admit(11.0), "held frames go first");
        assert_eq!(t.due(), Some(10.5));
        assert!(t.release(10.4).is_none());
        assert!(t.release(10.5).is_some());
        assert_eq!(t.due(), Some(11.0));
        assert!(t.release(11.0).is_some());
        assert_eq!(t.due(), None);
    }

    #[test]
    fn slow_rates_space_every_frame() {
        let mut t = Throttle::new(0.5);
        assert!(t.admit(0.0));
        assert!(!t.admit(1.9));
        assert!(t.admit(2.0));
    }
}
