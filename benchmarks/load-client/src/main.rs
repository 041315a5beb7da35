//! fraiseql-load-client: the benchmarks' load client (benchmarks/load_client.py) for
//! graphql-transport-ws, in Rust, so that one core takes far more messages per second than any
//! of the servers sends. Same flags, same behaviour, same JSON report.
//!
//! C connections each send `connection_init` and wait for the ack (at most
//! `--connect-concurrency` handshakes at once, 50 by default); then every connection sends its S
//! `subscribe` messages (ids "1".."S"), the client polls `GET /stats` until the server reports
//! them all, posts the trigger (`POST /burst`) and counts every `next` per subscription, checking
//! ids "0".."N-1" in order. `connect_seconds` runs from the first connection attempt until every
//! `connection_ack` came, `live_seconds` from the same start until the server reported every
//! subscription. It prints one JSON object; the exit status is 0 when every check
//! passed, 2 when one failed, 1 on an error (then the JSON has `error`).

mod config;
mod connection;
mod frame;
mod report;
mod sys;
mod tally;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::{Instant, sleep, timeout};

use config::{Config, Parsed, seconds};
use connection::{Outcome, Phase, Shared};
use report::Measures;

/// How long to keep listening once every subscription is complete, to catch repeats.
const SETTLE: Duration = Duration::from_millis(200);

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// The server's `subscribers` gauge, or None when it does not report one.
async fn subscriber_count(http: &reqwest::Client, stats_url: &str) -> Option<i64> {
    let response = http.get(stats_url).send().await.ok()?;
    if response.status() != reqwest::StatusCode::OK {
        return None;
    }
    let stats: Value = response.json().await.ok()?;
    stats.get("subscribers")?.as_i64()
}

/// Polls `subscribers` until it reaches `target`; false when the server has no stats. Err if
/// a subscription was refused or the deadline passed.
async fn wait_until_subscribed(
    http: &reqwest::Client,
    config: &Config,
    target: i64,
    shared: &Shared,
    deadline: Instant,
) -> Result<bool, String> {
    while Instant::now() < deadline {
        if let Some(refusal) = shared.refusals().first() {
            return Err(format!(
                "RuntimeError: a subscription was refused: {refusal}"
            ));
        }
        match subscriber_count(http, &config.stats_url).await {
            None => {
                sleep(Duration::from_millis(500)).await; // no stats: let the subscribes land
                return Ok(false);
            }
            Some(count) if count >= target => return Ok(true),
            Some(_) => sleep(Duration::from_millis(5)).await,
        }
    }
    Err(format!(
        "TimeoutError: the server did not report {target} subscribers in time"
    ))
}

/// POSTs the trigger; its status and body, or None if it failed.
async fn trigger(http: reqwest::Client, url: String, body: Value) -> Option<(u16, Value)> {
    let response = http.post(&url).json(&body).send().await.ok()?;
    let status = response.status().as_u16();
    let text = response.text().await.ok()?;
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| Value::String(text.chars().take(500).collect()));
    Some((status, body))
}

/// Appends [seconds since `started`, messages received, server RSS] every `every` s.
async fn sample_rss(
    pid: i64,
    shared: Arc<Shared>,
    started: Instant,
    every: Duration,
    out: Arc<Mutex<Vec<Value>>>,
) {
    while let Ok(rss) = sys::rss_bytes(pid) {
        let received = shared.received.load(std::sync::atomic::Ordering::Relaxed);
        let sample = json!([started.elapsed().as_secs_f64(), received, rss]);
        out.lock().unwrap_or_else(|p| p.into_inner()).push(sample);
        sleep(every).await;
    }
}

/// Triggers the events and waits for every message (or the deadline).
async fn burst(
    config: &Config,
    http: &reqwest::Client,
    shared: &Arc<Shared>,
    measures: &mut Measures,
    deadline: Instant,
) -> Result<(), String> {
    let pid = config.pid();
    let cpu_before = pid.map(sys::cpu_seconds).transpose()?;
    let client_cpu_before = sys::process_time();
    let started = Instant::now();
    measures.started = connection::unix_now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = pid.map(|pid| {
        let every = seconds(config.sample_every).max(Duration::from_millis(1));
        tokio::spawn(sample_rss(
            pid,
            shared.clone(),
            started,
            every,
            samples.clone(),
        ))
    });
    let url = config.trigger_url.clone();
    let posting = tokio::spawn(trigger(http.clone(), url, config.trigger_body.clone()));
    measures.timed_out = timeout(remaining(deadline), shared.all_done())
        .await
        .is_err();
    if let (Some(pid), Some(before)) = (pid, cpu_before) {
        measures.server_cpu = Some(sys::cpu_seconds(pid)? - before);
    }
    measures.client_cpu = sys::process_time() - client_cpu_before;
    let wait = remaining(deadline).max(Duration::from_secs(1));
    measures.trigger = timeout(wait, posting)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    sleep(SETTLE).await;
    if let (Some(sampler), Some(pid)) = (sampler, pid) {
        sampler.abort();
        let _ = sampler.await;
        measures
            .rss
            .insert("after_burst".into(), sys::rss_bytes(pid)?.into());
    }
    measures.rss_samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(())
}

/// Waits for every connection's `connection_ack`; Err with the first reason one did not come.
async fn acknowledged(
    acks: Vec<oneshot::Receiver<Result<(), String>>>,
    deadline: Instant,
) -> Result<(), String> {
    let all = async {
        for ack in acks {
            match ack.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err("ConnectionError: closed before connection_ack".to_owned()),
            }
        }
        Ok(())
    };
    timeout(remaining(deadline), all)
        .await
        .map_err(|_| "TimeoutError: the connections did not open in time".to_owned())?
}

/// Everything once the connections are open: the subscribes and the burst.
async fn phases(
    config: &Config,
    http: &reqwest::Client,
    shared: &Arc<Shared>,
    control: &watch::Sender<Phase>,
    baseline: i64,
    measures: &mut Measures,
    deadline: Instant,
) -> Result<(), String> {
    // `connect_seconds` was measured just now: live is that plus the time from here.
    let connected = Instant::now();
    let pid = config.pid();
    if let Some(pid) = pid {
        measures
            .rss
            .insert("after_connections".into(), sys::rss_bytes(pid)?.into());
    }
    let subscribing = Instant::now();
    control.send_replace(Phase::Subscribe);
    let target =
        baseline.saturating_add(i64::try_from(config.total_subscriptions()).unwrap_or(i64::MAX));
    measures.stats_seen = wait_until_subscribed(http, config, target, shared, deadline).await?;
    measures.subscribe_seconds = Some(subscribing.elapsed().as_secs_f64());
    if measures.stats_seen {
        let since = connected.elapsed().as_secs_f64();
        measures.live_seconds = measures.connect_seconds.map(|connect| connect + since);
    }
    if let Some(pid) = pid {
        measures
            .rss
            .insert("after_subscriptions".into(), sys::rss_bytes(pid)?.into());
    }
    if config.events > 0 {
        burst(config, http, shared, measures, deadline).await?;
    }
    Ok(())
}

/// Runs one load test; returns the report (see `report::build`).
async fn run_load(config: Arc<Config>) -> Result<Value, String> {
    let deadline = Instant::now() + seconds(config.timeout);
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(seconds(config.timeout))
        .build()
        .map_err(|e| format!("the HTTP client: {e}"))?;
    let shared = Arc::new(Shared::new(config.total_subscriptions()));
    let mut measures = Measures::default();
    let baseline = subscriber_count(&http, &config.stats_url)
        .await
        .unwrap_or(0);
    if let Some(pid) = config.pid() {
        measures
            .rss
            .insert("before_connections".into(), sys::rss_bytes(pid)?.into());
    }
    let (control, control_rx) = watch::channel(Phase::Wait);
    let gate = Arc::new(Semaphore::new(config.connect_concurrency));
    let subscribes = Arc::new(connection::subscribe_messages(&config));
    let mut acks = Vec::new();
    let mut tasks = Vec::new();
    // The connections' tasks start trying as soon as this task yields: the start of the first
    // attempt, give or take the spawning.
    let connecting = Instant::now();
    for _ in 0..config.connections {
        let (acked, ack) = oneshot::channel();
        acks.push(ack);
        tasks.push(tokio::spawn(connection::run(
            config.clone(),
            shared.clone(),
            gate.clone(),
            control_rx.clone(),
            subscribes.clone(),
            acked,
        )));
    }
    let result = match acknowledged(acks, deadline).await {
        Ok(()) => {
            measures.connect_seconds = Some(connecting.elapsed().as_secs_f64());
            phases(
                &config,
                &http,
                &shared,
                &control,
                baseline,
                &mut measures,
                deadline,
            )
            .await
        }
        Err(error) => Err(error),
    };
    control.send_replace(Phase::Stop);
    // On an error the process exits at once: no need to wait for the connections to close.
    result?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(
            task.await
                .map_err(|e| format!("a connection failed: {e}"))?,
        );
    }
    Ok(report::build(&config, outcomes, &shared, measures))
}

fn print(report: &Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{report}");
    let _ = stdout.flush();
}

fn fail(error: &str) -> ExitCode {
    print(&json!({ "ok": false, "error": error }));
    ExitCode::from(1)
}

fn main() -> ExitCode {
    sys::raise_nofile_limit();
    let argv = std::env::args_os().map(|arg| arg.to_string_lossy().into_owned());
    let config = match config::parse(argv) {
        Ok(Parsed::Run(config)) => Arc::<Config>::from(config),
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(error) => return fail(&error),
    };
    let mut builder = if config.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(config.threads);
        builder
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("the runtime: {error}")),
    };
    // The inner deadlines bound each phase; this bounds the whole, closing included.
    let limit = seconds(config.timeout + 15.0);
    let result = runtime.block_on(async { timeout(limit, run_load(config)).await });
    runtime.shutdown_background();
    match result {
        Ok(Ok(report)) => {
            print(&report);
            if report["ok"] == Value::Bool(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Ok(Err(error)) => fail(&error),
        Err(_) => fail("TimeoutError: the run did not finish in time"),
    }
}
