//! Event buses carry events between processes. The in-memory bus is the executor's own
//! dispatch; Redis and PostgreSQL buses run their I/O on a tokio runtime of their own and hand
//! what they receive to the Python event loop through `Inbound`: a queue plus a socket the loop
//! watches, written only when the queue goes from empty to non-empty (one wake-up per batch).

pub mod config;
pub mod logging;
pub mod postgres;
pub mod redis;
pub mod tls;

use config::EventBusConfig;
use std::sync::Arc;

use parking_lot::Mutex;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// An event as it travels on a bus: its channel and its wire form (`Event::to_wire`). Each bus
/// keeps its own ordering key (a stream id, a row id) to replay and to drop duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    pub channel: String,
    pub payload: Vec<u8>,
    /// Received: the event's cursor (see `position`).
    pub position: Option<Arc<str>>,
    /// Received: who it is for.
    pub target: Target,
}

impl BusMessage {
    /// An event to publish, or received for every subscription of its channel.
    pub fn new(channel: String, payload: Vec<u8>) -> Self {
        Self {
            channel,
            payload,
            position: None,
            target: Target::Live,
        }
    }
}

/// Who a received message is for: every subscription of its channel, or the one resuming
/// subscription that asked for a replay (`Bus::replay`): an event of its history, then the end
/// of it (an empty payload), or the news that the history no longer covers its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Live,
    Replay(u64),
    ReplayDone(u64),
    ReplayGap(u64),
}

/// A resuming subscription's request: the events of `channel` after `offset` (of `epoch`), up to
/// where the live events the subscription passed by begin, tagged with `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRequest {
    pub token: u64,
    pub channel: String,
    pub epoch: String,
    pub offset: String,
}

impl ReplayRequest {
    /// The message that ends this replay (`gap`: the history does not cover it).
    pub fn end(&self, gap: bool) -> BusMessage {
        BusMessage {
            channel: self.channel.clone(),
            payload: Vec::new(),
            position: None,
            target: if gap {
                Target::ReplayGap(self.token)
            } else {
                Target::ReplayDone(self.token)
            },
        }
    }

    /// A replayed event.
    pub fn event(&self, payload: Vec<u8>, position: String) -> BusMessage {
        BusMessage {
            channel: self.channel.clone(),
            payload,
            position: Some(position.into()),
            target: Target::Replay(self.token),
        }
    }
}

/// A bus metric value for `get_metrics()`.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Int(u64),
    Bool(bool),
    Text(Option<String>),
}

/// What every bus client provides. Methods never block: they hand work to the bus's tasks.
pub trait Bus: Send + Sync {
    /// Connects and starts the bus's tasks. Blocking (the caller runs it off the event loop);
    /// an error names the server and the problem.
    fn start(&self, inbound: Arc<Inbound>) -> Result<(), String>;
    /// A channel got its first local subscriber: start receiving its events.
    fn listen(&self, channel: &str);
    /// A channel lost its last local subscriber.
    fn unlisten(&self, channel: &str);
    /// Queues an event for publishing; an error when the bus is down and its bounded queue is
    /// full (nothing is dropped silently).
    fn publish(&self, message: BusMessage) -> Result<(), String>;
    /// Replays a channel's history for a resuming subscription (see `ReplayRequest`): the
    /// events, then the end, pushed to the inbound queue after every live event of the channel
    /// the subscription passed by and before every later one. Asked after `listen`.
    fn replay(&self, request: ReplayRequest);
    /// State for `get_metrics()`, names prefixed with `bus_`.
    fn metrics(&self) -> Vec<(&'static str, MetricValue)>;
    /// Stops the bus's tasks (blocking until they end, within a short bound).
    fn stop(&self);
}

/// The bus client for a configuration (None: in-memory, dispatch stays in the process).
pub fn create(config: &EventBusConfig) -> Result<Option<Arc<dyn Bus>>, String> {
    Ok(match config {
        EventBusConfig::Memory { .. } => None,
        EventBusConfig::Redis {
            url,
            consumer_group,
            tls_ca_file,
        } => Some(Arc::new(
            redis::RedisBus::new(url, consumer_group).with_ca_file(tls_ca_file.as_deref()),
        )),
        EventBusConfig::PostgreSQL {
            connection_string,
            channel_prefix,
            retention,
        } => Some(Arc::new(
            postgres::PostgresBus::with_prefix(connection_string, channel_prefix)?
                .with_retention(*retention),
        )),
    })
}

/// The shared tokio runtime of the bus clients: two worker threads, created on first use.
pub fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("fraiseql-bus")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the bus runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Messages waiting for the event loop: events received from a bus (`Inbound<BusMessage>`),
/// what adopted WebSockets received (`native::SocketEvent`).
pub struct Inbound<T = BusMessage> {
    queue: Mutex<Vec<T>>,
    signaled: AtomicBool,
    reader: UnixStream,
    writer: UnixStream,
}

impl<T> Inbound<T> {
    pub fn new() -> std::io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self {
            queue: Mutex::new(Vec::new()),
            signaled: AtomicBool::new(false),
            reader,
            writer,
        })
    }

    /// The file descriptor the event loop watches for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Adds received messages (in order) and wakes the loop if it is not already woken.
    pub fn push(&self, messages: impl IntoIterator<Item = T>) {
        self.queue.lock().extend(messages);
        if !self.signaled.swap(true, Ordering::AcqRel) {
            // A full socket buffer means a wake-up is already pending: nothing is lost.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// Takes everything received so far and re-arms the wake-up.
    pub fn take(&self) -> Vec<T> {
        let mut buf = [0u8; 256];
        loop {
            match (&self.reader).read(&mut buf) {
                Ok(n) if n > 0 => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                _ => break,
            }
        }
        // Cleared before taking: a push after this point signals again.
        self.signaled.store(false, Ordering::Release);
        std::mem::take(&mut *self.queue.lock())
    }

    pub fn pending(&self) -> usize {
        self.queue.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u8) -> BusMessage {
        BusMessage::new("c".into(), vec![n])
    }

    #[test]
    fn one_wakeup_per_batch_and_nothing_lost() {
        let inbound: Result<Inbound, _> = Inbound::new().map_err(|e| e.to_string());
        let Ok(inbound) = inbound else {
            panic!("socketpair failed");
        };
        inbound.push([message(1)]);
        inbound.push([message(2), message(3)]);
        let mut buf = [0u8; 8];
        assert_eq!(
            (&inbound.reader).read(&mut buf).ok(),
            Some(1),
            "one byte for two pushes"
        );
        let taken = inbound.take();
        assert_eq!(taken, vec![message(1), message(2), message(3)]);
        assert!(inbound.take().is_empty());
        inbound.push([message(4)]);
        assert_eq!(inbound.take(), vec![message(4)]);
    }

    #[test]
    fn generic_over_the_message_type() {
        let Ok(inbound) = Inbound::<(u32, &'static str)>::new() else {
            panic!("socketpair failed");
        };
        assert_eq!(inbound.pending(), 0);
        inbound.push([(1, "a")]);
        inbound.push([(2, "b")]);
        assert_eq!(inbound.pending(), 2);
        let mut buf = [0u8; 8];
        assert_eq!((&inbound.reader).read(&mut buf).ok(), Some(1));
        assert_eq!(inbound.take(), vec![(1, "a"), (2, "b")]);
        // Re-armed: the next push signals again.
        inbound.push([(3, "c")]);
        assert_eq!((&inbound.reader).read(&mut buf).ok(), Some(1));
        assert_eq!(inbound.take(), vec![(3, "c")]);
    }
}
