//! Counters of the engine, reported by `get_metrics()`, and the delivery-time histogram.
//! Updated under the registry lock, so plain integers suffice.

/// Monotonic counters; gauges (active connections, subscriptions, ...) are read off the registry.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub events_published: u64,
    pub events_delivered: u64,
    pub frames_queued: u64,
    pub frames_sent: u64,
    pub events_filtered_event_type: u64,
    pub events_filtered_tenant: u64,
    pub events_filtered_user: u64,
    pub events_filtered_args: u64,
    pub subscriptions_registered: u64,
    pub subscriptions_refused: u64,
    pub subscriptions_completed: u64,
    pub resolver_calls: u64,
    pub resolver_errors: u64,
    pub resolver_skips: u64,
    pub queue_overflows: u64,
    pub frames_dropped: u64,
    /// `next` frames replaced in the queue by a newer one of their conflated subscription.
    pub frames_conflated: u64,
    /// Events of a channel's history dispatched to a resuming subscription.
    pub events_replayed: u64,
    /// Resumes whose cursor the history no longer covered (`RESUME_GAP`).
    pub resume_gaps: u64,
    /// `next` frames held back by their subscription's `max_rate` until a slot came.
    pub frames_held: u64,
    /// Time from publish to the frame being handed to the connection's sender.
    pub delivery: DeliveryHistogram,
}

impl Metrics {
    /// (name, value) pairs in a stable order.
    pub fn counters(&self) -> [(&'static str, u64); 20] {
        [
            ("events_published", self.events_published),
            ("events_delivered", self.events_delivered),
            ("frames_queued", self.frames_queued),
            ("frames_sent", self.frames_sent),
            (
                "events_filtered_event_type",
                self.events_filtered_event_type,
            ),
            ("events_filtered_tenant", self.events_filtered_tenant),
            ("events_filtered_user", self.events_filtered_user),
            ("events_filtered_args", self.events_filtered_args),
            ("subscriptions_registered", self.subscriptions_registered),
            ("subscriptions_refused", self.subscriptions_refused),
            ("subscriptions_completed", self.subscriptions_completed),
            ("resolver_calls", self.resolver_calls),
            ("resolver_errors", self.resolver_errors),
            ("resolver_skips", self.resolver_skips),
            ("queue_overflows", self.queue_overflows),
            ("frames_dropped", self.frames_dropped),
            ("frames_conflated", self.frames_conflated),
            ("events_replayed", self.events_replayed),
            ("resume_gaps", self.resume_gaps),
            ("frames_held", self.frames_held),
        ]
    }
}

/// Upper bounds (seconds, inclusive) of the delivery-time buckets; a last bucket takes the rest.
pub const DELIVERY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A fixed-bucket histogram: recording a value is a search over 16 bounds and an increment,
/// with no allocation.
#[derive(Debug, Default, Clone)]
pub struct DeliveryHistogram {
    /// Per bucket (not cumulative); the last one counts values above every bound.
    pub counts: [u64; DELIVERY_BUCKETS.len() + 1],
    pub sum: f64,
}

impl DeliveryHistogram {
    pub fn observe(&mut self, seconds: f64) {
        // Clocks of two machines may disagree: a negative time (or NaN) counts as zero.
        let seconds = seconds.max(0.0);
        let bucket = DELIVERY_BUCKETS.partition_point(|bound| *bound < seconds);
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let mut h = DeliveryHistogram::default();
        for v in [0.0001, 0.00011, -1.0, 0.003, 11.0, f64::NAN] {
            h.observe(v);
        }
        assert_eq!(h.counts[0], 3, "0.0001, the negative value and NaN");
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[5], 1);
        assert_eq!(h.counts[DELIVERY_BUCKETS.len()], 1, "11 s");
        assert_eq!(h.count(), 6);
    }
}
