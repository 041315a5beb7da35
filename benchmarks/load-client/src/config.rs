//! The command line (the Python client's flags for graphql-transport-ws) as a `Config`.

use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use url::Url;

pub const DEFAULT_QUERY: &str = "subscription ($ch: String!) { ticks(channel: $ch) { id value } }";
pub const PROTOCOL: &str = "graphql-transport-ws";
/// Handshakes (through their `connection_ack`) in flight at once, unless told otherwise.
pub const CONNECT_CONCURRENCY: i64 = 50;

/// A GraphQL subscriptions load client (graphql-transport-ws): C connections open S
/// subscriptions each, one burst of N events is triggered, and every `next` is counted, checked
/// and timed. Prints one JSON report; exit status 0 (passed), 2 (a check failed), 1 (error).
#[derive(Parser, Debug)]
#[command(name = "fraiseql-load-client", allow_negative_numbers = true)]
struct Args {
    #[arg(long, default_value = "ws://127.0.0.1:8000/graphql")]
    url: String,
    #[arg(long, default_value_t = 100)]
    connections: i64,
    /// Per connection.
    #[arg(long, default_value_t = 1)]
    subscriptions: i64,
    /// 0: subscribe only.
    #[arg(long, default_value_t = 1000)]
    events: i64,
    /// Events/s; 0: full speed.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, default_value = "load")]
    channel: String,
    #[arg(long, default_value = DEFAULT_QUERY)]
    query: String,
    /// JSON (default: {"ch": CHANNEL}).
    #[arg(long)]
    variables: Option<String>,
    /// Default: /stats on the server of --url.
    #[arg(long)]
    stats_url: Option<String>,
    /// Default: /burst on the server of --url.
    #[arg(long)]
    trigger_url: Option<String>,
    /// JSON POSTed to the trigger.
    #[arg(long)]
    trigger_body: Option<String>,
    /// To measure the server's CPU and memory.
    #[arg(long)]
    server_pid: Option<i64>,
    /// RSS sampling, seconds.
    #[arg(long, default_value_t = 0.25)]
    sample_every: f64,
    /// Hard limit, seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
    /// Only graphql-transport-ws (the Python client also speaks graphql-ws and sse).
    #[arg(long, default_value = PROTOCOL)]
    protocol: String,
    /// Runtime worker threads; 1 (the default): a current-thread runtime, one core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// At most this many handshakes (through their connection_ack) in flight at once.
    #[arg(long, default_value_t = CONNECT_CONCURRENCY)]
    connect_concurrency: i64,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    pub connections: u64,
    pub subscriptions: u64,
    pub events: u64,
    pub rate: f64,
    pub query: String,
    pub variables: Value,
    pub stats_url: String,
    pub trigger_url: String,
    pub trigger_body: Value,
    pub server_pid: Option<i64>,
    pub sample_every: f64,
    pub timeout: f64,
    pub threads: usize,
    pub connect_concurrency: usize,
}

/// What the command line asked for: a run, or help/version text to print.
pub enum Parsed {
    Run(Box<Config>),
    Print(String),
}

impl Config {
    pub fn total_subscriptions(&self) -> u64 {
        self.connections * self.subscriptions
    }

    /// The server's PID when measuring it (0, like no PID, is not measured).
    pub fn pid(&self) -> Option<i64> {
        self.server_pid.filter(|pid| *pid != 0)
    }
}

/// `path` on the server of the WebSocket URL (ws -> http, wss -> https).
fn http_url(url: &Url, path: &str) -> String {
    let scheme = if url.scheme() == "wss" {
        "https"
    } else {
        "http"
    };
    let host = url.host_str().unwrap_or("127.0.0.1");
    match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    }
}

/// Python's truthiness of a JSON value (an empty trigger body means the default one).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
    }
}

fn json_arg(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("--{name}: invalid JSON: {e}"))
}

fn positive(name: &str, value: i64) -> Result<u64, String> {
    u64::try_from(value)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| format!("--{name} must be positive"))
}

/// Parses the command line; Err is an error message for the JSON report.
pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Parsed, String> {
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(error) => {
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    Ok(Parsed::Print(error.to_string()))
                }
                _ => Err(error.to_string().trim().to_owned()),
            };
        }
    };
    if args.protocol != PROTOCOL {
        return Err(format!(
            "--protocol {}: not supported by this client (only {PROTOCOL}; \
             benchmarks/load_client.py speaks graphql-ws and sse)",
            args.protocol
        ));
    }
    let connections = positive("connections", args.connections)?;
    let subscriptions = positive("subscriptions", args.subscriptions)?;
    let connect_concurrency = positive("connect-concurrency", args.connect_concurrency)?;
    // A semaphore holds at most this many permits; more than the connections is as many.
    let connect_concurrency = usize::try_from(connect_concurrency)
        .unwrap_or(usize::MAX)
        .min(tokio::sync::Semaphore::MAX_PERMITS);
    let events = u64::try_from(args.events).map_err(|_| "--events must be 0 or more")?;
    if !args.timeout.is_finite() || args.timeout <= 0.0 {
        return Err("--timeout must be positive".to_owned());
    }
    if !args.sample_every.is_finite() || args.sample_every < 0.0 {
        return Err("--sample-every must be 0 or more".to_owned());
    }
    connections
        .checked_mul(subscriptions)
        .and_then(|total| total.checked_mul(events))
        .ok_or("--connections x --subscriptions x --events is too large")?;
    let url = Url::parse(&args.url).map_err(|e| format!("--url {}: {e}", args.url))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!("--url {}: not a ws:// URL", args.url));
    }
    let variables = match args.variables.as_deref().map(|v| json_arg("variables", v)) {
        Some(Ok(Value::Null)) | None => json!({ "ch": args.channel }),
        Some(value) => value?,
    };
    let trigger_body = match args
        .trigger_body
        .as_deref()
        .map(|v| json_arg("trigger-body", v))
    {
        Some(Ok(value)) if truthy(&value) => value,
        Some(Err(error)) => return Err(error),
        _ => json!({ "channel": args.channel, "count": events, "rate": args.rate }),
    };
    Ok(Parsed::Run(Box::new(Config {
        stats_url: args.stats_url.unwrap_or_else(|| http_url(&url, "/stats")),
        trigger_url: args.trigger_url.unwrap_or_else(|| http_url(&url, "/burst")),
        url: args.url,
        connections,
        subscriptions,
        events,
        rate: args.rate,
        query: args.query,
        variables,
        trigger_body,
        server_pid: args.server_pid,
        sample_every: args.sample_every,
        timeout: args.timeout,
        threads: args.threads.max(1),
        connect_concurrency,
    })))
}

/// Seconds as a Duration, saturating (negative: zero; huge: a year).
pub fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.clamp(0.0, 365.0 * 86400.0)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let argv = std::iter::once("x")
            .chain(args.iter().copied())
            .map(str::to_owned);
        match parse(argv)? {
            Parsed::Run(config) => Ok(*config),
            Parsed::Print(text) => Err(text),
        }
    }

    #[test]
    fn defaults_like_the_python_client() {
        let c = config(&["--url=ws://127.0.0.1:9/graphql", "--events", "5"]).unwrap();
        assert_eq!(c.stats_url, "http://127.0.0.1:9/stats");
        assert_eq!(c.trigger_url, "http://127.0.0.1:9/burst");
        assert_eq!(
            c.trigger_body,
            json!({"channel": "load", "count": 5, "rate": 0.0})
        );
        assert_eq!(c.variables, json!({"ch": "load"}));
        let c = config(&["--trigger-body={}", "--variables=null", "--channel=x"]).unwrap();
        assert_eq!(c.trigger_body["channel"], "x");
        assert_eq!(c.variables, json!({"ch": "x"}));
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        assert!(
            config(&["--protocol=sse"])
                .unwrap_err()
                .contains("not supported")
        );
        assert!(config(&["--connections=0"]).is_err());
        assert!(config(&["--timeout=-1"]).is_err());
        assert!(config(&["--events=-1"]).is_err());
        assert!(config(&["--variables={"]).is_err());
        assert!(config(&["--url=http://x"]).is_err());
        assert!(config(&["--nope"]).is_err());
    }

    #[test]
    fn connect_concurrency_defaults_to_50_and_must_be_positive() {
        assert_eq!(config(&[]).unwrap().connect_concurrency, 50);
        let c = config(&["--connect-concurrency", "200"]).unwrap();
        assert_eq!(c.connect_concurrency, 200);
        assert_eq!(
            config(&["--connect-concurrency=1"])
                .unwrap()
                .connect_concurrency,
            1
        );
        for bad in ["0", "-3"] {
            let error = config(&["--connect-concurrency", bad]).unwrap_err();
            assert!(
                error.contains("--connect-concurrency must be positive"),
                "{error}"
            );
        }
        assert!(config(&["--connect-concurrency=many"]).is_err());
        let huge = config(&["--connect-concurrency", &i64::MAX.to_string()]).unwrap();
        assert_eq!(
            huge.connect_concurrency,
            tokio::sync::Semaphore::MAX_PERMITS
        );
    }
}
