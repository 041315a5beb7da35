//! Counters of the engine, reported by `get_metrics()`. Updated under the registry lock, so
//! plain integers suffice.

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
}

impl Metrics {
    /// (name, value) pairs in a stable order.
    pub fn counters(&self) -> [(&'static str, u64); 16] {
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
        ]
    }
}
