//! One graphql-transport-ws connection as a task: handshake, `connection_init` and its ack, the
//! subscribes when told, then every frame counted into its subscriptions' tallies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use crate::config::{Config, PROTOCOL};
use crate::frame::{self, Frame};
use crate::tally::Tally;

/// The WebSocket handshake and the `connection_ack` each have this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_FRAME: usize = 1 << 24;
/// A status-less close frame is reported with the code a status-less close stands for.
const NO_STATUS: u16 = 1005;

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// What every connection shares: counters, what the server refused or closed, and the "all
/// done" signal.
pub struct Shared {
    pub received: AtomicU64,
    pending: AtomicU64,
    done: watch::Sender<bool>,
    refusals: Mutex<Vec<Value>>,
    closes: Mutex<Vec<(Option<u16>, String)>>,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub fn new(expected_subscriptions: u64) -> Self {
        Shared {
            received: AtomicU64::new(0),
            pending: AtomicU64::new(expected_subscriptions),
            done: watch::Sender::new(false),
            refusals: Mutex::new(Vec::new()),
            closes: Mutex::new(Vec::new()),
        }
    }

    pub fn set_done(&self) {
        self.done.send_replace(true);
    }

    /// Resolves once every subscription is complete, or something ended one early.
    pub async fn all_done(&self) {
        let mut done = self.done.subscribe();
        // The sender lives as long as `self`: this only returns when done.
        let _ = done.wait_for(|done| *done).await;
    }

    fn subscription_done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.set_done();
        }
    }

    pub fn refusals(&self) -> Vec<Value> {
        locked(&self.refusals).clone()
    }

    pub fn closes(&self) -> Vec<(Option<u16>, String)> {
        locked(&self.closes).clone()
    }

    fn refuse(&self, message: Value) {
        locked(&self.refusals).push(message);
        self.set_done(); // a subscription ended early: no point waiting
    }

    fn closed(&self, code: Option<u16>, reason: String) {
        locked(&self.closes).push((code, reason));
        self.set_done();
    }
}

/// What the driver tells every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Wait,
    Subscribe,
    Stop,
}

/// What a connection hands back when stopped.
pub struct Outcome {
    pub tallies: Vec<Tally>,
    pub latencies: Vec<f64>,
}

/// The `subscribe` messages of one connection, ids "1".."S".
pub fn subscribe_messages(config: &Config) -> Vec<String> {
    let payload = json!({ "query": config.query, "variables": config.variables });
    (1..=config.subscriptions)
        .map(|id| {
            json!({ "id": id.to_string(), "type": "subscribe", "payload": payload }).to_string()
        })
        .collect()
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// The tally index of an operation id "1".."count" (written exactly so), if it is one.
fn op_index(op_id: &str, count: usize) -> Option<usize> {
    let bytes = op_id.as_bytes();
    if bytes.first().is_none_or(|b| *b == b'0') || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    op_id
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=count).contains(n))
        .map(|n| n - 1)
}

async fn open(url: &str) -> Result<Socket, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("{url}: {e}"))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_FRAME));
    let (mut socket, _) = timeout(
        HANDSHAKE_TIMEOUT,
        connect_async_with_config(request, Some(config), true),
    )
    .await
    .map_err(|_| "TimeoutError: the WebSocket handshake took over 30 s".to_owned())?
    .map_err(|e| format!("ConnectionError: {e}"))?;
    socket
        .send(Message::text(r#"{"type":"connection_init","payload":{}}"#))
        .await
        .map_err(|e| format!("ConnectionError: {e}"))?;
    Ok(socket)
}

/// What to do after a frame.
enum Action {
    Continue,
    Pong,
    Stop,
}

/// A connection's tallies and handshake state, fed frame by frame.
struct State {
    shared: Arc<Shared>,
    outcome: Outcome,
    acked: Option<oneshot::Sender<Result<(), String>>>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl State {
    fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) -> Action {
        match message {
            Some(Ok(Message::Text(text))) => return self.on_text(text.as_str()),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.to_string()),
                    None => (NO_STATUS, String::new()),
                };
                self.shared.closed(Some(code), reason);
                // Reading on sends the close reply; the stream then ends.
            }
            Some(Ok(_)) => {} // binary frames are ignored; pings are answered for us
            Some(Err(error)) => {
                self.shared.closed(None, error.to_string());
                return Action::Stop;
            }
            None => {
                self.shared.set_done();
                return Action::Stop;
            }
        }
        Action::Continue
    }

    fn on_text(&mut self, text: &str) -> Action {
        match frame::parse(text) {
            Ok(Frame::Next { op_id, fields }) => {
                if let Some(index) = op_index(&op_id, self.outcome.tallies.len()) {
                    let now = unix_now();
                    self.shared.received.fetch_add(1, Ordering::Relaxed);
                    if let Some(ts) = fields.ts {
                        self.outcome.latencies.push(now - ts);
                    }
                    if self.outcome.tallies[index].record(fields.id, now) {
                        self.shared.subscription_done();
                    }
                }
            }
            Ok(Frame::Ping) => return Action::Pong,
            Ok(Frame::ConnectionAck) => {
                if let Some(acked) = self.acked.take() {
                    let _ = acked.send(Ok(()));
                    self.permit = None;
                }
            }
            Ok(Frame::Refusal(message)) => self.shared.refuse(message),
            Ok(Frame::Other) => {}
            Err(error) => self.shared.closed(None, error),
        }
        Action::Continue
    }
}

/// Frames handled in a row, once one arrived, before looking at the driver's phase again.
const BATCH: usize = 256;

/// One connection from handshake to stop. `acked` gets Ok once the server acknowledged
/// `connection_init`, or why it did not.
pub async fn run(
    config: Arc<Config>,
    shared: Arc<Shared>,
    gate: Arc<Semaphore>,
    mut control: watch::Receiver<Phase>,
    subscribes: Arc<Vec<String>>,
    acked: oneshot::Sender<Result<(), String>>,
) -> Outcome {
    let outcome = Outcome {
        tallies: vec![Tally::new(config.events); subscribes.len()],
        latencies: Vec::new(),
    };
    // At most --connect-concurrency handshakes (through their ack) in flight at once.
    let Ok(permit) = gate.acquire_owned().await else {
        let _ = acked.send(Err("the connection gate closed".to_owned()));
        return outcome;
    };
    let mut socket = match open(&config.url).await {
        Ok(socket) => socket,
        Err(error) => {
            let _ = acked.send(Err(error));
            return outcome;
        }
    };
    let mut state = State {
        shared,
        outcome,
        acked: Some(acked),
        permit: Some(permit),
    };
    let ack_timer = sleep(HANDSHAKE_TIMEOUT);
    tokio::pin!(ack_timer);
    let mut subscribed = false;
    'frames: loop {
        tokio::select! {
            biased;
            message = socket.next() => {
                // Handle what is already buffered or readable without a round through select.
                let mut action = state.on_message(message);
                let mut handled = 0;
                loop {
                    match action {
                        Action::Continue => {}
                        Action::Pong => {
                            let pong = Message::text(r#"{"type":"pong"}"#);
                            if let Err(error) = socket.send(pong).await {
                                state.shared.closed(None, format!("sending a pong: {error}"));
                            }
                        }
                        Action::Stop => break 'frames,
                    }
                    handled += 1;
                    if handled == BATCH {
                        break;
                    }
                    match socket.next().now_or_never() {
                        Some(message) => action = state.on_message(message),
                        None => break,
                    }
                }
            },
            changed = control.changed() => {
                if changed.is_err() {
                    break;
                }
                let phase = *control.borrow_and_update();
                if phase == Phase::Stop {
                    let _ = timeout(Duration::from_millis(500), socket.close(None)).await;
                    break;
                }
                if phase == Phase::Subscribe && !subscribed {
                    subscribed = true;
                    if let Err(error) = subscribe_all(&mut socket, &subscribes).await {
                        state.shared.closed(None, format!("sending the subscribes: {error}"));
                    }
                }
            },
            () = &mut ack_timer, if state.acked.is_some() => {
                if let Some(acked) = state.acked.take() {
                    let _ = acked.send(Err("TimeoutError: no connection_ack in 30 s".to_owned()));
                }
                break;
            },
        }
    }
    if let Some(acked) = state.acked.take() {
        let _ = acked.send(Err(
            "ConnectionError: closed before connection_ack".to_owned()
        ));
    }
    state.outcome
}

async fn subscribe_all(
    socket: &mut Socket,
    subscribes: &[String],
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    for message in subscribes {
        socket.feed(Message::text(message.as_str())).await?;
    }
    socket.flush().await
}

#[cfg(test)]
mod tests {
    use super::op_index;

    #[test]
    fn op_ids_are_written_exactly() {
        assert_eq!(op_index("1", 3), Some(0));
        assert_eq!(op_index("3", 3), Some(2));
        for id in ["0", "4", "01", "+1", "", "1 ", "x"] {
            assert_eq!(op_index(id, 3), None, "{id:?}");
        }
    }
}
