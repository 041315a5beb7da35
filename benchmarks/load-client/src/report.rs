//! The JSON report: the same keys and meanings as `build_report` of benchmarks/load_client.py.

use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::connection::{Outcome, Shared};

/// Percentiles kept of the latency distribution (for the plots).
fn cdf_points() -> Vec<Value> {
    let mut points: Vec<Value> = (0..100).map(Value::from).collect();
    points.extend([json!(99.5), json!(99.9), json!(100)]);
    points
}

/// What the driver measured besides the tallies.
#[derive(Default)]
pub struct Measures {
    pub rss: Map<String, Value>,
    pub rss_samples: Vec<Value>,
    pub subscribe_seconds: Option<f64>,
    /// From the first connection attempt until every `connection_ack` came.
    pub connect_seconds: Option<f64>,
    /// From the first connection attempt until the server reported every subscription.
    pub live_seconds: Option<f64>,
    pub stats_seen: bool,
    /// Unix time the burst started.
    pub started: f64,
    pub timed_out: bool,
    /// The trigger's status and body (JSON, or the text's first 500 characters).
    pub trigger: Option<(u16, Value)>,
    pub server_cpu: Option<f64>,
    pub client_cpu: f64,
}

/// p50, p99, max and the distribution (milliseconds) of publish-to-receipt latencies.
pub fn latency_summary(mut latencies: Vec<f64>) -> Value {
    if latencies.is_empty() {
        return Value::Null;
    }
    latencies.sort_by(f64::total_cmp);
    let ordered = latencies;
    let last = ordered.len() - 1;
    let at = |percent: f64| -> f64 {
        let index = (percent / 100.0 * last as f64).round_ties_even() as usize;
        ordered[index.min(last)] * 1000.0
    };
    let mean = ordered.iter().sum::<f64>() / ordered.len() as f64;
    let cdf: Vec<Value> = cdf_points()
        .into_iter()
        .map(|point| {
            let value = at(point.as_f64().unwrap_or_default());
            json!([point, value])
        })
        .collect();
    json!({
        "count": ordered.len(),
        "p50_ms": at(50.0),
        "p90_ms": at(90.0),
        "p99_ms": at(99.0),
        "p999_ms": at(99.9),
        "max_ms": ordered[last] * 1000.0,
        "mean_ms": mean * 1000.0,
        "cdf_ms": cdf,
    })
}

/// The JSON report of a run.
pub fn build(
    config: &Config,
    outcomes: Vec<Outcome>,
    shared: &Shared,
    measures: Measures,
) -> Value {
    let total = config.total_subscriptions();
    let tallies: Vec<_> = outcomes.iter().flat_map(|o| o.tallies.iter()).collect();
    let delivered: u64 = tallies.iter().map(|t| t.received).sum();
    let missing: u64 = tallies.iter().map(|t| t.missing()).sum();
    let repeats: u64 = tallies.iter().map(|t| t.repeats).sum();
    let complete = tallies.iter().filter(|t| t.ok()).count();
    let subscribed = tallies.len() as u64 == total;
    let events = config.events > 0;
    let trigger_ok = !events
        || measures
            .trigger
            .as_ref()
            .is_some_and(|(status, _)| (200..300).contains(status));
    let refusals = shared.refusals();
    let closes = shared.closes();
    let ok = subscribed
        && !measures.timed_out
        && refusals.is_empty()
        && closes.is_empty()
        && trigger_ok
        && (!events || complete == tallies.len());
    let end = tallies.iter().filter_map(|t| t.last_at).reduce(f64::max);
    let seconds = end.filter(|_| events).map(|end| end - measures.started);
    let rss_of = |key: &str| measures.rss.get(key).and_then(Value::as_i64);
    let per_subscription = match (rss_of("after_subscriptions"), rss_of("after_connections")) {
        (Some(after), Some(before)) => Some((after - before) as f64 / total as f64),
        _ => None,
    };
    let per_connection = match (rss_of("after_subscriptions"), rss_of("before_connections")) {
        (Some(after), Some(before)) => Some((after - before) as f64 / config.connections as f64),
        _ => None,
    };
    let server_cpu = measures.server_cpu;
    let latencies: Vec<f64> = outcomes.into_iter().flat_map(|o| o.latencies).collect();
    let closes_json: Vec<Value> = closes.iter().take(5).map(|(c, r)| json!([c, r])).collect();
    json!({
        "ok": ok,
        "url": config.url,
        "connections": config.connections,
        "subscriptions_per_connection": config.subscriptions,
        "subscriptions": total,
        "events": config.events,
        "rate": config.rate,
        "messages_expected": total * config.events,
        "messages_delivered": delivered,
        "seconds": seconds,
        "messages_per_second": seconds.filter(|s| *s != 0.0).map(|s| delivered as f64 / s),
        "complete_subscriptions": complete,
        "missing": missing,
        "repeats": repeats,
        "refusals": refusals.iter().take(5).collect::<Vec<_>>(),
        "refusal_count": refusals.len(),
        "closes": closes_json,
        "timed_out": measures.timed_out,
        "subscribe_seconds": measures.subscribe_seconds,
        "connect_seconds": measures.connect_seconds,
        "live_seconds": measures.live_seconds,
        "subscriptions_per_second": measures
            .subscribe_seconds
            .filter(|s| *s != 0.0 && measures.stats_seen)
            .map(|s| total as f64 / s),
        "waited_for_stats": measures.stats_seen,
        "trigger_status": measures.trigger.as_ref().map(|(status, _)| *status),
        "trigger_response": measures.trigger.as_ref().map(|(_, body)| body),
        "server_pid": config.server_pid,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_message": server_cpu
            .filter(|_| delivered > 0)
            .map(|cpu| cpu / delivered as f64 * 1e6),
        "client_cpu_seconds": measures.client_cpu,
        "server_rss_bytes": measures.rss,
        "rss_bytes_per_subscription": per_subscription,
        "rss_bytes_per_connection": per_connection,
        "rss_samples": measures.rss_samples,
        "latency": latency_summary(latencies),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::{Measures, build, latency_summary};
    use crate::config::{Parsed, parse};
    use crate::connection::{Outcome, Shared};
    use crate::tally::Tally;

    #[test]
    fn summarizes_like_python() {
        assert!(latency_summary(Vec::new()).is_null());
        let summary = latency_summary((0..=10).rev().map(|i| f64::from(i) / 1000.0).collect());
        assert_eq!(summary["count"], 11);
        assert_eq!(summary["p50_ms"], 5.0);
        // round(0.25 * 10) is 2 in Python (ties to even).
        let cdf = summary["cdf_ms"].as_array().unwrap();
        assert_eq!(cdf.len(), 103);
        assert_eq!(cdf[25][1], 2.0);
        assert_eq!(cdf[0][0], 0);
        assert_eq!(summary["max_ms"], 10.0);
    }

    #[test]
    fn memory_and_times_per_connection() {
        let argv = ["x", "--connections=4", "--events=0", "--server-pid=1"].map(str::to_owned);
        let Ok(Parsed::Run(config)) = parse(argv) else {
            panic!("the arguments parse");
        };
        let outcomes = (0..4)
            .map(|_| Outcome {
                tallies: vec![Tally::new(0)],
                latencies: Vec::new(),
            })
            .collect();
        let mut rss = Map::new();
        rss.insert("before_connections".into(), json!(10_000));
        rss.insert("after_connections".into(), json!(30_000));
        rss.insert("after_subscriptions".into(), json!(42_000));
        let measures = Measures {
            rss,
            connect_seconds: Some(0.5),
            live_seconds: Some(0.75),
            stats_seen: true,
            subscribe_seconds: Some(0.25),
            ..Measures::default()
        };
        let report = build(&config, outcomes, &Shared::new(4), measures);
        assert_eq!(report["ok"], true);
        assert_eq!(report["rss_bytes_per_connection"], 8000.0);
        assert_eq!(report["rss_bytes_per_subscription"], 3000.0);
        assert_eq!(report["connect_seconds"], 0.5);
        assert_eq!(report["live_seconds"], 0.75);
        let without = build(&config, Vec::new(), &Shared::new(4), Measures::default());
        assert_eq!(without["rss_bytes_per_connection"], Value::Null);
        assert_eq!(without["live_seconds"], Value::Null);
    }
}
