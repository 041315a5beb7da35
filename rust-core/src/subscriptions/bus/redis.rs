//! The Redis bus: every event is appended to a per-channel stream (the replay log, trimmed to
//! about `RETENTION` entries) and announced with PUBLISH carrying its stream id, both in one Lua
//! call so the two cannot disagree. A process SUBSCRIBEs only to the channels it has local
//! subscribers for and remembers the last stream id it delivered per channel; after its
//! connection drops it reconnects with backoff, subscribes again and reads the stream from that
//! id, so nothing published meanwhile is lost (within the retention) and nothing is delivered
//! twice (ids at or below the last delivered one are dropped). A publisher numbers its events,
//! so resending a batch after a dropped connection does not append them again; its last number
//! lives in a key of its own that expires `PUBLISHER_TTL` after its last publish, so publishers
//! that are gone leave nothing behind. rediss:// URLs use redis-rs's TLS (rustls), verifying
//! the server against the system's roots or the configured CA file (`#insecure` skips it).

use super::super::position::{self, BusKind};
use super::config::mask_password;
use super::logging;
use super::{runtime, Bus, BusMessage, Inbound, MetricValue, ReplayRequest, Target};
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Entries kept per channel stream: the replay window after a reconnect.
pub const RETENTION: usize = 100_000;
/// Events queued for publishing while Redis is unreachable.
pub const PUBLISH_QUEUE: usize = 10_000;
/// How long a publisher's last sequence number is kept after its last publish: a batch resent
/// within that time is never appended twice, and a publisher gone for longer leaves no key.
pub const PUBLISHER_TTL: Duration = Duration::from_secs(24 * 3600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLAY_PAGE: usize = 1000;

/// XADD then PUBLISH "<id> <payload>": one atomic step, one round trip. The publisher's
/// sequence number (ARGV[3], kept in the publisher's key KEYS[3] for ARGV[4] ms) makes a batch
/// sent again after a dropped connection a no-op for the events Redis had already applied.
/// Sent by its SHA (EVALSHA), loaded again when Redis answers NOSCRIPT.
const PUBLISH_SCRIPT: &str = "\
    local last = tonumber(redis.call('GET', KEYS[3]) or '0') \
    if tonumber(ARGV[3]) <= last then return false end \
    redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4]) \
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[1]) \
    redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[1]) return id";

enum Command {
    /// Start listening; the time (ms) the first subscription asked for it.
    Listen(String, u64),
    Unlisten(String),
    Replay(ReplayRequest),
}

/// A new channel's stream is read from this long before the subscription asked for it: events
/// published after the subscription, before the listener got to it, still arrive (and small
/// clock differences with the Redis server are absorbed); at worst a subscription sees an event
/// this much older than itself.
const LISTEN_MARGIN_MS: u64 = 50;

#[derive(Default)]
struct State {
    connected: AtomicBool,
    reconnects: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    replayed: AtomicU64,
    duplicates: AtomicU64,
    lag_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// A full publish queue was logged (once until the publisher gets through again).
    queue_full_logged: AtomicBool,
}

impl State {
    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        self.connected.store(false, Ordering::Release);
        *self.last_error.lock() = Some(format!("{what}: {error}"));
    }
}

struct Running {
    commands: mpsc::UnboundedSender<Command>,
    outgoing: mpsc::Sender<BusMessage>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// A Redis event bus client.
pub struct RedisBus {
    url: String,
    /// The CA file a rediss:// server is verified against instead of the system's roots.
    ca_file: Option<String>,
    prefix: String,
    state: Arc<State>,
    running: Mutex<Option<Running>>,
}

impl RedisBus {
    /// `consumer_group` keeps two applications on one Redis apart (it prefixes every key).
    pub fn new(url: &str, consumer_group: &str) -> Self {
        Self {
            url: url.to_owned(),
            ca_file: None,
            prefix: format!("fraiseql:{consumer_group}:"),
            state: Arc::new(State::default()),
            running: Mutex::new(None),
        }
    }

    /// Verifies a rediss:// server against the CA certificates of this PEM file.
    pub fn with_ca_file(mut self, ca_file: Option<&str>) -> Self {
        self.ca_file = ca_file.map(str::to_owned);
        self
    }

    fn describe(&self) -> String {
        format!("Redis at {}", mask_password(&self.url))
    }

    fn uses_tls(&self) -> bool {
        self.url
            .get(..9)
            .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
    }

    /// The client, with TLS set up for rediss:// URLs (the CA file is read now).
    fn client(&self) -> Result<redis::Client, String> {
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", self.describe());
        if self.uses_tls() {
            super::tls::prepare_redis();
        }
        match &self.ca_file {
            None => redis::Client::open(self.url.as_str()).map_err(|e| fail(&e)),
            Some(path) => {
                let root_cert =
                    super::tls::redis_ca(std::path::Path::new(path)).map_err(|e| fail(&e))?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                };
                redis::Client::build_with_tls(self.url.as_str(), certificates).map_err(|e| fail(&e))
            }
        }
    }
}

/// A redis-rs error with a hint when it comes from TLS: which check failed, in words.
fn describe_error(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") {
        " (the server's certificate is not signed by a trusted CA: check tls_ca_file)"
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        " (the server's certificate is for another host name)"
    } else if text.contains("corrupt message") || text.contains("InvalidContentType") {
        " (the server does not speak TLS: use redis:// or its TLS port)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

impl Bus for RedisBus {
    fn start(&self, inbound: Arc<Inbound>) -> Result<(), String> {
        let rt = runtime()?;
        let client = self.client()?;
        // Fail at start, naming the server, rather than at the first event.
        let (publisher_conn, pubsub) = rt
            .block_on(async {
                tokio::time::timeout(CONNECT_TIMEOUT, async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<()>(&mut conn).await?;
                    let pubsub = client.get_async_pubsub().await?;
                    Ok::<_, redis::RedisError>((conn, pubsub))
                })
                .await
            })
            .map_err(|_| format!("{}: no answer within {CONNECT_TIMEOUT:?}", self.describe()))?
            .map_err(|e| {
                let mut reason = describe_error(&e);
                if self.uses_tls() && e.is_timeout() {
                    // A plain-text Redis waits for the end of a command line that never comes.
                    reason.push_str(
                        " (no answer to the TLS handshake: does the server speak TLS on this port?)",
                    );
                }
                format!("cannot connect to {}: {reason}", self.describe())
            })?;
        self.state.connected.store(true, Ordering::Release);
        logging::info(format!("connected to {}", self.describe()));

        let (commands, command_rx) = mpsc::unbounded_channel();
        let (outgoing, outgoing_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let listener = Listener {
            client: client.clone(),
            server: self.describe(),
            prefix: self.prefix.clone(),
            state: self.state.clone(),
            inbound,
            channels: FxHashMap::default(),
            epoch: String::new(),
            replays: Vec::new(),
        };
        let publisher = Publisher {
            client,
            server: self.describe(),
            script: redis::Script::new(PUBLISH_SCRIPT),
            prefix: self.prefix.clone(),
            state: self.state.clone(),
            id: publisher_id(),
        };
        let tasks = vec![
            rt.spawn(listener.run(
                pubsub,
                publisher_conn.clone(),
                command_rx,
                shutdown_rx.clone(),
            )),
            rt.spawn(publisher.run(publisher_conn, outgoing_rx, shutdown_rx)),
        ];
        *self.running.lock() = Some(Running {
            commands,
            outgoing,
            shutdown,
            tasks,
        });
        Ok(())
    }

    fn listen(&self, channel: &str) {
        if let Some(r) = self.running.lock().as_ref() {
            let _ = r
                .commands
                .send(Command::Listen(channel.to_owned(), now_ms()));
        }
    }

    fn unlisten(&self, channel: &str) {
        if let Some(r) = self.running.lock().as_ref() {
            let _ = r.commands.send(Command::Unlisten(channel.to_owned()));
        }
    }

    fn replay(&self, request: ReplayRequest) {
        // A bus that is not running delivers nothing, live or replayed.
        if let Some(r) = self.running.lock().as_ref() {
            let _ = r.commands.send(Command::Replay(request));
        }
    }

    fn publish(&self, message: BusMessage) -> Result<(), String> {
        let guard = self.running.lock();
        let Some(r) = guard.as_ref() else {
            return Err(format!("the bus to {} is not started", self.describe()));
        };
        r.outgoing.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                let error = format!(
                    "cannot publish: {} is unreachable and {PUBLISH_QUEUE} events already wait for it ({})",
                    self.describe(),
                    self.state.last_error.lock().clone().unwrap_or_default()
                );
                if !self.state.queue_full_logged.swap(true, Ordering::Relaxed) {
                    logging::warning(format!("publish queue full: {error}"));
                }
                error
            }
            mpsc::error::TrySendError::Closed(_) => {
                format!("cannot publish: the bus to {} has stopped", self.describe())
            }
        })
    }

    fn metrics(&self) -> Vec<(&'static str, MetricValue)> {
        let s = &self.state;
        let queued = self
            .running
            .lock()
            .as_ref()
            .map_or(0, |r| PUBLISH_QUEUE - r.outgoing.capacity());
        vec![
            (
                "bus_connected",
                MetricValue::Bool(s.connected.load(Ordering::Acquire)),
            ),
            (
                "bus_reconnects",
                MetricValue::Int(s.reconnects.load(Ordering::Relaxed)),
            ),
            (
                "bus_last_error",
                MetricValue::Text(s.last_error.lock().clone()),
            ),
            (
                "bus_published",
                MetricValue::Int(s.published.load(Ordering::Relaxed)),
            ),
            (
                "bus_received",
                MetricValue::Int(s.received.load(Ordering::Relaxed)),
            ),
            (
                "bus_replayed",
                MetricValue::Int(s.replayed.load(Ordering::Relaxed)),
            ),
            (
                "bus_duplicates_dropped",
                MetricValue::Int(s.duplicates.load(Ordering::Relaxed)),
            ),
            (
                "bus_lag_ms",
                MetricValue::Int(s.lag_ms.load(Ordering::Relaxed)),
            ),
            ("bus_publish_queue", MetricValue::Int(queued as u64)),
        ]
    }

    fn stop(&self) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        let _ = running.shutdown.send(true);
        if let Ok(rt) = runtime() {
            rt.block_on(async {
                for task in running.tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
                }
            });
        }
        self.state.connected.store(false, Ordering::Release);
        logging::info(format!("disconnected from {} (stopped)", self.describe()));
    }
}

/// A stream id `<ms>-<seq>`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct StreamId(u64, u64);

impl StreamId {
    fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    fn text(self) -> String {
        format!("{}-{}", self.0, self.1)
    }
}

/// A random publisher name (the standard library's hasher keys are random per instance).
fn publisher_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn backoff(attempt: &mut u32, shutdown: &mut watch::Receiver<bool>) -> bool {
    let delay = Duration::from_millis((50u64 << (*attempt).min(6)).min(2000));
    *attempt += 1;
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.changed() => false,
    }
}

/// Events sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 512;

struct Publisher {
    client: redis::Client,
    /// The server, for log records (password masked).
    server: String,
    script: redis::Script,
    prefix: String,
    state: Arc<State>,
    /// Random per bus instance: names this publisher's sequence in Redis.
    id: String,
}

impl Publisher {
    async fn run(
        self,
        mut conn: MultiplexedConnection,
        mut queue: mpsc::Receiver<BusMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut batch: Vec<BusMessage> = Vec::new();
        let mut next_seq: u64 = 1;
        loop {
            if batch.is_empty() {
                if *shutdown.borrow() {
                    // Flush what was queued before stop() (which waits up to 2 s), then end.
                    while batch.len() < PUBLISH_BATCH {
                        let Ok(message) = queue.try_recv() else { break };
                        batch.push(message);
                    }
                    if batch.is_empty() {
                        return;
                    }
                } else {
                    tokio::select! {
                        got = queue.recv_many(&mut batch, PUBLISH_BATCH) => if got == 0 { return },
                        changed = shutdown.changed() => if changed.is_err() { return } else { continue },
                    }
                }
            }
            // Numbered once, so a retry of the batch carries the same numbers.
            let first_seq = next_seq;
            next_seq += batch.len() as u64;
            // A failed batch is retried whole, in order, once Redis answers again.
            let mut attempt = 0;
            loop {
                match self.send(&mut conn, &batch, first_seq).await {
                    Ok(()) => break,
                    Err(e) => {
                        let reason = describe_error(&e);
                        self.state.failed("publish", &reason);
                        if attempt == 0 {
                            logging::warning(format!(
                                "publishing to {} failed: {reason}; retrying",
                                self.server
                            ));
                        } else {
                            logging::debug(format!(
                                "publishing to {} failed again: {reason}",
                                self.server
                            ));
                        }
                        if !backoff(&mut attempt, &mut shutdown).await {
                            return;
                        }
                        if let Ok(c) = self.client.get_multiplexed_async_connection().await {
                            conn = c;
                        }
                    }
                }
            }
            if attempt > 0 {
                logging::info(format!(
                    "publishing to {} again after {attempt} retries",
                    self.server
                ));
            }
            self.state.queue_full_logged.store(false, Ordering::Relaxed);
            self.state
                .published
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            batch.clear();
        }
    }

    async fn send(
        &self,
        conn: &mut MultiplexedConnection,
        batch: &[BusMessage],
        first_seq: u64,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        let publisher = format!("{}publisher:{}", self.prefix, self.id);
        let ttl_ms = PUBLISHER_TTL.as_millis() as u64;
        for (seq, m) in (first_seq..).zip(batch) {
            let mut invocation = self.script.prepare_invoke();
            invocation
                .key(format!("{}s:{}", self.prefix, m.channel))
                .key(format!("{}p:{}", self.prefix, m.channel))
                .key(&publisher)
                .arg(&m.payload)
                .arg(RETENTION)
                .arg(seq)
                .arg(ttl_ms);
            pipe.invoke_script(&invocation).ignore();
        }
        match pipe.query_async::<()>(conn).await {
            // Not loaded (a restarted Redis, SCRIPT FLUSH): load it and send the batch again;
            // the events that did get through are not appended twice.
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.prepare_invoke().load_async(conn).await?;
                pipe.query_async::<()>(conn).await
            }
            result => result,
        }
    }
}

struct Listener {
    client: redis::Client,
    /// The server, for log records (password masked).
    server: String,
    prefix: String,
    state: Arc<State>,
    inbound: Arc<Inbound>,
    /// Listened channels and the last stream id delivered for each.
    channels: FxHashMap<String, StreamId>,
    /// The epoch of the streams' history: a random value kept in Redis (`{prefix}epoch`), made
    /// anew when Redis lost its data, so cursors into the lost history are told apart.
    epoch: String,
    /// Replays asked for and not served to their end (a lost connection): served, from where
    /// they got to, once connected again.
    replays: Vec<ReplayRequest>,
}

impl Listener {
    fn pubsub_name(&self, channel: &str) -> String {
        format!("{}p:{channel}", self.prefix)
    }

    fn stream_name(&self, channel: &str) -> String {
        format!("{}s:{channel}", self.prefix)
    }

    async fn run(
        mut self,
        first: redis::aio::PubSub,
        mut conn: MultiplexedConnection,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut pubsub = Some(first);
        let mut attempt = 0;
        loop {
            let session = match pubsub.take() {
                Some(p) => Ok(p),
                None => self.client.get_async_pubsub().await,
            };
            let result = match session {
                Ok(p) => {
                    self.session(p, &mut conn, &mut commands, &mut shutdown, &mut attempt)
                        .await
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return, // shut down
                Err(e) => {
                    let reason = describe_error(&e);
                    self.state.failed("listen", &reason);
                    if attempt == 0 {
                        logging::warning(format!(
                            "lost the subscription connection to {}: {reason}; reconnecting",
                            self.server
                        ));
                    } else {
                        logging::debug(format!("reconnecting to {} failed: {reason}", self.server));
                    }
                }
            }
            if !backoff(&mut attempt, &mut shutdown).await {
                return;
            }
            self.state.reconnects.fetch_add(1, Ordering::Relaxed);
            if let Ok(c) = self.client.get_multiplexed_async_connection().await {
                conn = c;
            }
        }
    }

    /// One connection's life: subscribe, replay what was missed, then relay messages until the
    /// connection drops (Err) or the bus stops (Ok).
    async fn session(
        &mut self,
        pubsub: redis::aio::PubSub,
        conn: &mut MultiplexedConnection,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        shutdown: &mut watch::Receiver<bool>,
        attempt: &mut u32,
    ) -> redis::RedisResult<()> {
        self.epoch = self.read_epoch(conn).await?;
        let (mut sink, mut stream) = pubsub.split();
        let names: Vec<String> = self.channels.keys().map(|c| self.pubsub_name(c)).collect();
        if !names.is_empty() {
            sink.subscribe(&names).await?;
        }
        let channels: Vec<String> = self.channels.keys().cloned().collect();
        let replayed_before = self.state.replayed.load(Ordering::Relaxed);
        for channel in &channels {
            self.replay(conn, channel).await?;
        }
        self.serve_replays(conn).await?;
        self.state.connected.store(true, Ordering::Release);
        if *attempt > 0 {
            let replayed = self.state.replayed.load(Ordering::Relaxed) - replayed_before;
            logging::info(format!(
                "reconnected to {} after {} attempts; replayed {replayed} missed events on {} \
                 channels",
                self.server,
                *attempt,
                channels.len()
            ));
        }
        *attempt = 0;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                command = commands.recv() => match command {
                    None => return Ok(()),
                    Some(Command::Listen(channel, _)) if self.channels.contains_key(&channel) => {}
                    Some(Command::Listen(channel, asked_ms)) => {
                        // A new channel starts where the subscription asked for it (not before
                        // the stream's end at that time: no history). The start is fixed before
                        // subscribing and the stream replayed after, so an event published in
                        // between is delivered once, not lost.
                        let tail = self.stream_tail(conn, &channel).await?;
                        let asked = StreamId(asked_ms.saturating_sub(LISTEN_MARGIN_MS), 0);
                        self.channels.insert(channel.clone(), tail.min(asked));
                        sink.subscribe(self.pubsub_name(&channel)).await?;
                        self.replay(conn, &channel).await?;
                    }
                    Some(Command::Unlisten(channel)) => {
                        sink.unsubscribe(self.pubsub_name(&channel)).await?;
                        self.channels.remove(&channel);
                    }
                    Some(Command::Replay(request)) => {
                        self.replays.push(request);
                        self.serve_replays(conn).await?;
                    }
                },
                message = stream.next() => match message {
                    None => return Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "the subscription connection closed",
                    ))),
                    Some(first) => {
                        let mut batch = Vec::new();
                        self.accept(&first, &mut batch);
                        // Take whatever else is already here: one wake-up per batch.
                        while let Some(Some(more)) = futures_util::FutureExt::now_or_never(stream.next()) {
                            self.accept(&more, &mut batch);
                        }
                        if !batch.is_empty() {
                            self.inbound.push(batch);
                        }
                    }
                },
            }
        }
    }

    /// Turns a pub/sub message into a bus message unless it was already delivered.
    fn accept(&mut self, message: &redis::Msg, batch: &mut Vec<BusMessage>) {
        let Some(channel) = message
            .get_channel_name()
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix("p:"))
        else {
            return;
        };
        let payload = message.get_payload_bytes();
        let Some(space) = payload.iter().position(|b| *b == b' ') else {
            return;
        };
        let Some(id) = std::str::from_utf8(&payload[..space])
            .ok()
            .and_then(StreamId::parse)
        else {
            return;
        };
        let Some(last) = self.channels.get_mut(channel) else {
            return; // unlistened meanwhile
        };
        if id <= *last {
            self.state.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = id;
        self.state.received.fetch_add(1, Ordering::Relaxed);
        self.state
            .lag_ms
            .store(now_ms().saturating_sub(id.0), Ordering::Relaxed);
        batch.push(BusMessage {
            channel: channel.to_owned(),
            payload: payload[space + 1..].to_vec(),
            position: Some(self.cursor(id).into()),
            target: Target::Live,
        });
    }

    fn cursor(&self, id: StreamId) -> String {
        position::cursor(BusKind::Redis, &self.epoch, &id.text())
    }

    /// This Redis's history epoch, made if it has none.
    async fn read_epoch(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<String> {
        let key = format!("{}epoch", self.prefix);
        let (epoch,): (String,) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg(position::random_epoch())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(&key)
            .query_async(conn)
            .await?;
        Ok(epoch)
    }

    async fn serve_replays(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        while !self.replays.is_empty() {
            let mut request = self.replays.remove(0);
            if let Err(e) = self.replay_for(conn, &mut request).await {
                self.replays.insert(0, request);
                return Err(e);
            }
        }
        Ok(())
    }

    /// A resuming subscription's replay: the stream's entries after its cursor up to the last
    /// one delivered live (the live ones after that reach it as they come), or a gap when the
    /// cursor is from another epoch or its entry has been trimmed.
    async fn replay_for(
        &mut self,
        conn: &mut MultiplexedConnection,
        request: &mut ReplayRequest,
    ) -> redis::RedisResult<()> {
        let from = StreamId::parse(&request.offset).filter(|_| request.epoch == self.epoch);
        let Some(from) = from else {
            self.inbound.push([request.end(true)]);
            return Ok(());
        };
        let name = self.stream_name(&request.channel);
        let mut upto = match self.channels.get(&request.channel) {
            Some(last) => *last,
            None => self.stream_tail(conn, &request.channel).await?,
        };
        if from > upto && self.channels.contains_key(&request.channel) {
            // A cursor from a process further along: catch up first, so that the live events
            // up to the cursor (which the subscription passes by) are behind us.
            self.replay(conn, &request.channel).await?;
            upto = self.channels.get(&request.channel).copied().unwrap_or(upto);
        }
        // Trimming removes the oldest entries: the history covers the cursor while its entry
        // (or an older one) is still there.
        let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&name)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        let first = first.ids.first().and_then(|e| StreamId::parse(&e.id));
        if first.is_some_and(|f| f > from) {
            self.inbound.push([request.end(true)]);
            return Ok(());
        }
        let mut after = from;
        while after < upto {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&name)
                .arg(format!("({}", after.text()))
                .arg(upto.text())
                .arg("COUNT")
                .arg(REPLAY_PAGE)
                .query_async(conn)
                .await?;
            let mut batch = Vec::with_capacity(reply.ids.len());
            for entry in &reply.ids {
                let Some(id) = StreamId::parse(&entry.id) else {
                    continue;
                };
                after = after.max(id);
                if let Some(redis::Value::BulkString(payload)) = entry.map.get("e") {
                    batch.push(request.event(payload.clone(), self.cursor(id)));
                }
            }
            self.inbound.push(batch);
            // Served again after a reconnect, it goes on from here.
            request.offset = after.text();
            if reply.ids.len() < REPLAY_PAGE {
                break;
            }
        }
        self.inbound.push([request.end(false)]);
        Ok(())
    }

    async fn stream_tail(
        &self,
        conn: &mut MultiplexedConnection,
        channel: &str,
    ) -> redis::RedisResult<StreamId> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(self.stream_name(channel))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(conn)
            .await?;
        Ok(reply
            .ids
            .first()
            .and_then(|e| StreamId::parse(&e.id))
            .unwrap_or_default())
    }

    /// Delivers the entries of `channel`'s stream after the last delivered id.
    async fn replay(
        &mut self,
        conn: &mut MultiplexedConnection,
        channel: &str,
    ) -> redis::RedisResult<()> {
        loop {
            let Some(last) = self.channels.get(channel).copied() else {
                return Ok(());
            };
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(self.stream_name(channel))
                .arg(format!("({}", last.text()))
                .arg("+")
                .arg("COUNT")
                .arg(REPLAY_PAGE)
                .query_async(conn)
                .await?;
            let mut batch = Vec::with_capacity(reply.ids.len());
            let mut newest = last;
            for entry in &reply.ids {
                let Some(id) = StreamId::parse(&entry.id) else {
                    continue;
                };
                if let Some(redis::Value::BulkString(payload)) = entry.map.get("e") {
                    let mut message = BusMessage::new(channel.to_owned(), payload.clone());
                    message.position = Some(self.cursor(id).into());
                    batch.push(message);
                }
                newest = newest.max(id);
            }
            if let Some(last) = self.channels.get_mut(channel) {
                *last = newest;
            }
            self.state
                .replayed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if !batch.is_empty() {
                self.inbound.push(batch);
            }
            if reply.ids.len() < REPLAY_PAGE {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_numerically() {
        let a = StreamId::parse("1700000000000-9");
        let b = StreamId::parse("1700000000000-10");
        assert!(a < b);
        assert_eq!(b.map(StreamId::text).as_deref(), Some("1700000000000-10"));
        assert_eq!(StreamId::parse("x-1"), None);
        assert_eq!(StreamId::parse("12"), None);
    }
}
