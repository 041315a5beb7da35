//! WebSockets the core serves itself. Python does the HTTP upgrade and hands over the socket
//! (`adopt_socket`); from then on two tasks on the bus runtime serve it:
//!
//! - the writer waits for its `Notify` (rung by `Shared::wake` when the registry queued frames
//!   for the connection, by `send`, `close` and the reader), drains the connection's frames
//!   under the registry lock into the socket's outbound queue, then writes everything pending
//!   with `feed` and one `flush`. It drains again only after that flush: a client that does not
//!   read leaves the frames in the registry's bounded queue, whose overflow policy applies.
//! - the reader reports what the client sends (text, binary, close) to the event loop through
//!   an `Inbound` (a queue plus a file descriptor the loop watches).
//!
//! Lock order: registry, then a socket's outbound queue. Nothing here touches Python.

use super::bus::{runtime, Inbound};
use super::queue::FrameBody;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The client closed without a status code.
pub const CLOSE_NO_STATUS: u16 = 1005;
/// The connection ended without a close handshake.
pub const CLOSE_ABNORMAL: u16 = 1006;
/// The client broke the protocol.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// A text message that is not UTF-8.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// A message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// How long the writer waits for the client's echo of our close frame.
const CLOSE_ECHO_WAIT: Duration = Duration::from_secs(1);
/// Once the socket is ending (a close queued, the client gone), the longest it may take to
/// send what is left: a client that does not read cannot keep it open.
const ENDING_LIMIT: Duration = Duration::from_secs(2);
/// Longest close reason the protocol allows (a control frame's payload is at most 125 bytes).
const MAX_CLOSE_REASON: usize = 123;

/// What a client sent, or how its socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketEventKind {
    Text(String),
    Binary,
    /// The socket ended: the client's close code (1005 when it gave none), ours when we
    /// closed first, 1006 for an end without a close handshake.
    Closed(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketEvent {
    pub connection: Arc<str>,
    pub kind: SocketEventKind,
}

/// Where the frames of a connection wait: the registry, behind its lock.
pub trait FrameSource: Send + Sync {
    /// Holding the registry lock, takes the frames queued for `socket`'s connection (counted
    /// as sent) and passes them to `with`, still under the lock. Nothing when the connection is
    /// gone or no longer served by `socket` (a removed id opened again is another connection).
    fn drain_with(&self, socket: &NativeSocket, with: &mut dyn FnMut(Vec<FrameBody>));
}

/// A message waiting in a socket's outbound queue.
#[derive(Debug)]
pub enum Outbound {
    Frame(FrameBody),
    Text(String),
    Close(u16, String),
}

#[derive(Debug, Default)]
struct OutState {
    queue: VecDeque<Outbound>,
    /// The code of the close we queued: nothing queued after it is sent.
    our_close: Option<u16>,
    /// The client's close code.
    peer_close: Option<u16>,
    /// The reader ended (close, end of stream, error).
    reader_done: bool,
}

#[derive(Default)]
struct Tasks {
    aborted: bool,
    handles: Vec<AbortHandle>,
}

/// The adopted sockets of one executor and what they received.
pub struct Hub {
    /// The executor's registry; cleared when the executor goes away.
    source: RwLock<Option<Weak<dyn FrameSource>>>,
    events: Mutex<Option<Arc<Inbound<SocketEvent>>>>,
    sockets: Mutex<FxHashMap<u64, Arc<NativeSocket>>>,
    next_id: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            source: RwLock::new(None),
            events: Mutex::new(None),
            sockets: Mutex::new(FxHashMap::default()),
            next_id: AtomicU64::new(0),
        }
    }

    pub fn set_source(&self, source: Weak<dyn FrameSource>) {
        *self.source.write() = Some(source);
    }

    /// The queue of socket events and its wake-up descriptor (created on first use).
    pub fn events(&self) -> io::Result<Arc<Inbound<SocketEvent>>> {
        let mut events = self.events.lock();
        if let Some(e) = &*events {
            return Ok(e.clone());
        }
        let created = Arc::new(Inbound::new()?);
        *events = Some(created.clone());
        Ok(created)
    }

    /// Every socket event so far, in arrival order; re-arms the wake-up.
    pub fn take_events(&self) -> Vec<SocketEvent> {
        let events = self.events.lock().clone();
        events.map(|e| e.take()).unwrap_or_default()
    }

    /// Adopted sockets that have not ended.
    pub fn open_sockets(&self) -> usize {
        self.sockets.lock().len()
    }

    /// A socket for `connection`, not yet serving (see `NativeSocket::start`).
    pub fn socket(self: &Arc<Self>, connection: &str) -> Arc<NativeSocket> {
        Arc::new(NativeSocket {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            connection: connection.into(),
            hub: self.clone(),
            notify: Notify::new(),
            reader_gone: Notify::new(),
            ending: Notify::new(),
            out: Mutex::new(OutState::default()),
            reported: AtomicBool::new(false),
            tasks: Mutex::new(Tasks::default()),
        })
    }

    /// The executor is going away: its sockets end and nothing drains its registry any more.
    pub fn shutdown(&self) {
        *self.source.write() = None;
        let sockets: Vec<Arc<NativeSocket>> = self.sockets.lock().values().cloned().collect();
        for socket in sockets {
            socket.abort();
        }
    }

    fn push_event(&self, connection: Arc<str>, kind: SocketEventKind) {
        let events = self.events.lock().clone();
        if let Some(events) = events {
            events.push([SocketEvent { connection, kind }]);
        }
    }

    /// Under the registry lock: moves the connection's frames into the socket's outbound
    /// queue, then `extra` after them. False when the executor is gone.
    fn drain_into(&self, socket: &NativeSocket, extra: Option<Outbound>) -> bool {
        let mut extra = extra;
        let guard = self.source.read();
        // The upgraded handle is dropped before the read guard: `shutdown` (on the thread that
        // drops the executor) waits for it, so the executor is never freed on a tokio thread.
        let alive = match guard.as_ref().and_then(Weak::upgrade) {
            Some(source) => {
                source.drain_with(socket, &mut |frames| {
                    socket.enqueue(frames, extra.take());
                });
                true
            }
            None => false,
        };
        if let Some(extra) = extra {
            // The connection is gone from the registry; still keep the order of the socket.
            socket.enqueue(Vec::new(), Some(extra));
        }
        alive
    }
}

/// One adopted WebSocket: its outbound queue and its tasks.
pub struct NativeSocket {
    id: u64,
    connection: Arc<str>,
    hub: Arc<Hub>,
    /// Wakes the writer.
    notify: Notify,
    reader_gone: Notify,
    /// A close was queued or the reader ended.
    ending: Notify,
    out: Mutex<OutState>,
    /// The "closed" event was reported.
    reported: AtomicBool,
    tasks: Mutex<Tasks>,
}

type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;
type Stream = SplitStream<WebSocketStream<TcpStream>>;

/// Makes a tokio stream of an accepted, upgraded TCP connection (on the bus runtime).
pub fn tokio_stream(stream: std::net::TcpStream) -> io::Result<TcpStream> {
    let runtime = runtime().map_err(io::Error::other)?;
    stream.set_nonblocking(true)?;
    // Writes are coalesced already: Nagle's algorithm would only delay them.
    stream.set_nodelay(true)?;
    let _guard = runtime.enter();
    TcpStream::from_std(stream)
}

impl NativeSocket {
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// The socket ended (its "closed" event is reported).
    pub fn is_finished(&self) -> bool {
        self.reported.load(Ordering::Acquire)
    }

    /// Rings the writer: frames wait in the registry.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Starts serving `stream`: `handshake` (the HTTP response) is written first, then the
    /// WebSocket is served until it ends or `abort`.
    pub fn start(
        self: &Arc<Self>,
        stream: TcpStream,
        handshake: Vec<u8>,
        max_message_size: usize,
    ) -> io::Result<()> {
        let runtime = runtime().map_err(io::Error::other)?;
        self.hub.sockets.lock().insert(self.id, self.clone());
        let config = WebSocketConfig::default()
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size));
        // Frames queued before the adoption go out first.
        self.notify.notify_one();
        let task = runtime.spawn(serve(self.clone(), stream, handshake, config));
        self.add_task(task.abort_handle());
        Ok(())
    }

    /// Queues `text` after every frame queued for the connection so far. Dropped once a close
    /// is queued or the client closed.
    pub fn send(&self, text: String) {
        self.hub.drain_into(self, Some(Outbound::Text(text)));
        self.notify.notify_one();
    }

    /// Queues a close frame after everything queued so far; the socket then ends. Idempotent.
    pub fn close(&self, code: u16, reason: &str) {
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        self.hub
            .drain_into(self, Some(Outbound::Close(code, reason[..end].to_owned())));
        self.notify.notify_one();
    }

    /// Ends the socket now (its tasks are cancelled, the stream dropped) and reports it closed.
    pub fn abort(&self) {
        let handles = {
            let mut tasks = self.tasks.lock();
            tasks.aborted = true;
            std::mem::take(&mut tasks.handles)
        };
        for handle in handles {
            handle.abort();
        }
        self.finish();
    }

    fn add_task(&self, handle: AbortHandle) {
        let mut tasks = self.tasks.lock();
        if tasks.aborted {
            handle.abort();
        } else {
            tasks.handles.push(handle);
        }
    }

    /// Appends frames, then `extra`, unless a close is queued or the client is gone.
    fn enqueue(&self, frames: Vec<FrameBody>, extra: Option<Outbound>) {
        let mut out = self.out.lock();
        if out.our_close.is_some() || out.reader_done {
            return;
        }
        out.queue.extend(frames.into_iter().map(Outbound::Frame));
        match extra {
            Some(Outbound::Close(code, reason)) => {
                out.our_close = Some(code);
                out.queue.push_back(Outbound::Close(code, reason));
                self.ending.notify_one();
            }
            Some(other) => out.queue.push_back(other),
            None => {}
        }
    }

    /// What the writer sends now, whether the reader ended, whether we are closing.
    fn take_outbound(&self) -> (VecDeque<Outbound>, bool, bool) {
        let mut out = self.out.lock();
        (
            std::mem::take(&mut out.queue),
            out.reader_done,
            out.our_close.is_some(),
        )
    }

    fn reader_ended(&self, peer_close: Option<u16>) {
        {
            let mut out = self.out.lock();
            out.reader_done = true;
            if out.peer_close.is_none() {
                out.peer_close = peer_close;
            }
        }
        self.reader_gone.notify_one();
        self.ending.notify_one();
        self.notify.notify_one();
    }

    /// Returns `ENDING_LIMIT` after the socket started ending.
    async fn ending_deadline(&self) {
        loop {
            {
                let out = self.out.lock();
                if out.our_close.is_some() || out.reader_done {
                    break;
                }
            }
            self.ending.notified().await;
        }
        tokio::time::sleep(ENDING_LIMIT).await;
    }

    async fn wait_reader(&self) {
        loop {
            if self.out.lock().reader_done {
                return;
            }
            self.reader_gone.notified().await;
        }
    }

    /// Reports the end (once) and forgets the socket.
    fn finish(&self) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        let code = {
            let out = self.out.lock();
            out.our_close.or(out.peer_close).unwrap_or(CLOSE_ABNORMAL)
        };
        let removed = self.hub.sockets.lock().remove(&self.id);
        self.hub
            .push_event(self.connection.clone(), SocketEventKind::Closed(code));
        drop(removed);
    }

    fn event(&self, kind: SocketEventKind) {
        self.hub.push_event(self.connection.clone(), kind);
    }
}

fn message_of(item: Outbound) -> Option<(Message, bool)> {
    match item {
        // Frames are JSON text: not UTF-8 only if something is badly wrong; skipped then.
        Outbound::Frame(body) => String::from_utf8(body.to_vec())
            .ok()
            .map(|text| (Message::text(text), false)),
        Outbound::Text(text) => Some((Message::text(text), false)),
        Outbound::Close(code, reason) => Some((
            Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            })),
            true,
        )),
    }
}

async fn serve(
    socket: Arc<NativeSocket>,
    mut stream: TcpStream,
    handshake: Vec<u8>,
    config: WebSocketConfig,
) {
    let written = handshake.is_empty() || stream.write_all(&handshake).await.is_ok();
    if written {
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(config)).await;
        let (sink, stream) = ws.split();
        let reader = tokio::spawn(read_loop(socket.clone(), stream));
        socket.add_task(reader.abort_handle());
        tokio::select! {
            () = write_loop(&socket, sink) => {}
            () = socket.ending_deadline() => {}
        }
    }
    // The reader ends too (if it has not), which drops the last half of the stream.
    let handles = std::mem::take(&mut socket.tasks.lock().handles);
    for handle in handles {
        handle.abort();
    }
    socket.finish();
}

async fn write_loop(socket: &NativeSocket, mut sink: Sink) {
    loop {
        socket.notify.notified().await;
        if !socket.hub.drain_into(socket, None) {
            return;
        }
        let (batch, reader_done, closing) = socket.take_outbound();
        if reader_done && !closing {
            // The client closed or went away: only the automatic close reply is left to send.
            let _ = sink.flush().await;
            return;
        }
        let mut close_sent = false;
        for item in batch {
            let Some((message, is_close)) = message_of(item) else {
                continue;
            };
            if sink.feed(message).await.is_err() {
                return;
            }
            if is_close {
                close_sent = true;
                break;
            }
        }
        // One flush for the whole batch (it also sends pending automatic pongs).
        if sink.flush().await.is_err() {
            return;
        }
        if close_sent {
            let _ = tokio::time::timeout(CLOSE_ECHO_WAIT, socket.wait_reader()).await;
            return;
        }
        if reader_done {
            return;
        }
    }
}

async fn read_loop(socket: Arc<NativeSocket>, mut stream: Stream) {
    let peer_close = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                socket.event(SocketEventKind::Text(text.as_str().to_owned()));
            }
            Some(Ok(Message::Binary(_))) => socket.event(SocketEventKind::Binary),
            // The pong is queued by tungstenite; the writer flushes it.
            Some(Ok(Message::Ping(_))) => socket.notify.notify_one(),
            Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
            Some(Ok(Message::Close(frame))) => {
                break Some(frame.map_or(CLOSE_NO_STATUS, |f| u16::from(f.code)));
            }
            Some(Err(WsError::Capacity(_))) => {
                socket.close(CLOSE_TOO_BIG, "message too big");
                break None;
            }
            Some(Err(WsError::Utf8(_))) => {
                socket.close(CLOSE_INVALID_DATA, "invalid UTF-8");
                break None;
            }
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                break None
            }
            Some(Err(WsError::Protocol(_) | WsError::AttackAttempt)) => {
                socket.close(CLOSE_PROTOCOL_ERROR, "protocol error");
                break None;
            }
            Some(Err(_)) | None => break None,
        }
    };
    socket.reader_ended(peer_close);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry stand-in: connection id -> queued frames.
    #[derive(Default)]
    struct Frames(Mutex<FxHashMap<String, Vec<FrameBody>>>);

    impl FrameSource for Frames {
        fn drain_with(&self, socket: &NativeSocket, with: &mut dyn FnMut(Vec<FrameBody>)) {
            let mut frames = self.0.lock();
            if let Some(queued) = frames.get_mut(socket.connection()) {
                with(std::mem::take(queued));
            }
        }
    }

    impl Frames {
        fn queue(&self, connection: &str, text: &str) {
            self.0
                .lock()
                .entry(connection.into())
                .or_default()
                .push(FrameBody::Whole(text.as_bytes().into()));
        }
    }

    fn setup() -> (Arc<Frames>, Arc<Hub>) {
        let frames = Arc::new(Frames::default());
        let hub = Arc::new(Hub::new());
        let source: Arc<dyn FrameSource> = frames.clone();
        hub.set_source(Arc::downgrade(&source));
        (frames, hub)
    }

    fn texts(socket: &NativeSocket) -> Vec<String> {
        socket
            .take_outbound()
            .0
            .into_iter()
            .map(|item| match item {
                Outbound::Frame(body) => String::from_utf8_lossy(&body.to_vec()).into_owned(),
                Outbound::Text(text) => format!("text:{text}"),
                Outbound::Close(code, reason) => format!("close:{code}:{reason}"),
            })
            .collect()
    }

    #[test]
    fn sends_go_after_the_frames_queued_before_them() {
        let (frames, hub) = setup();
        let socket = hub.socket("c");
        frames.queue("c", "f1");
        frames.queue("c", "f2");
        frames.queue("other", "x");
        socket.send("hello".into());
        frames.queue("c", "f3");
        socket.send("bye".into());
        assert_eq!(texts(&socket), ["f1", "f2", "text:hello", "f3", "text:bye"]);
        assert_eq!(frames.0.lock().get("other").map(Vec::len), Some(1));
    }

    #[test]
    fn close_is_last_and_idempotent() {
        let (frames, hub) = setup();
        let socket = hub.socket("c");
        frames.queue("c", "f1");
        socket.close(4403, "Forbidden");
        socket.close(1000, "again");
        socket.send("late".into());
        frames.queue("c", "f2");
        assert!(hub.drain_into(&socket, None));
        assert_eq!(texts(&socket), ["f1", "close:4403:Forbidden"]);
        let long = "é".repeat(100);
        let other = hub.socket("d");
        other.close(1000, &long);
        let reason_len = texts(&other)[0].len() - "close:1000:".len();
        assert!((MAX_CLOSE_REASON - 1..=MAX_CLOSE_REASON).contains(&reason_len));
    }

    #[test]
    fn one_closed_event_with_the_right_code() {
        let (_frames, hub) = setup();
        let Ok(events) = hub.events() else {
            panic!("socketpair failed");
        };
        let ours = hub.socket("a");
        ours.close(4000, "");
        ours.finish();
        ours.abort();
        let theirs = hub.socket("b");
        theirs.reader_ended(Some(1001));
        theirs.finish();
        let lost = hub.socket("c");
        lost.abort();
        let closed: Vec<(String, SocketEventKind)> = events
            .take()
            .into_iter()
            .map(|e| (e.connection.to_string(), e.kind))
            .collect();
        assert_eq!(
            closed,
            [
                ("a".to_string(), SocketEventKind::Closed(4000)),
                ("b".to_string(), SocketEventKind::Closed(1001)),
                ("c".to_string(), SocketEventKind::Closed(CLOSE_ABNORMAL)),
            ]
        );
    }

    #[test]
    fn after_shutdown_nothing_is_drained() {
        let (frames, hub) = setup();
        let socket = hub.socket("c");
        frames.queue("c", "f1");
        hub.shutdown();
        assert!(!hub.drain_into(&socket, None));
        socket.send("still ordered".into());
        assert_eq!(texts(&socket), ["text:still ordered"]);
    }

    /// A real socket pair: the server side adopted, a raw tungstenite client on the other.
    #[test]
    fn serves_a_websocket_end_to_end() {
        let Ok(rt) = runtime() else {
            panic!("no runtime");
        };
        let (frames, hub) = setup();
        let Ok(events) = hub.events() else {
            panic!("socketpair failed");
        };
        let result: Result<(), String> = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let client = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let (server, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let socket = hub.socket("c");
            frames.queue("c", "early");
            socket
                .start(server, b"HI\r\n".to_vec(), 64)
                .map_err(|e| e.to_string())?;
            let mut client = client;
            let mut hello = [0u8; 4];
            tokio::io::AsyncReadExt::read_exact(&mut client, &mut hello)
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(&hello, b"HI\r\n");
            let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
            let next = |m: Option<Result<Message, WsError>>| match m {
                Some(Ok(m)) => Ok(m),
                other => Err(format!("{other:?}")),
            };
            assert_eq!(next(ws.next().await)?, Message::text("early"));
            ws.send(Message::text("from client"))
                .await
                .map_err(|e| e.to_string())?;
            frames.queue("c", "f1");
            socket.send("after f1".into());
            assert_eq!(next(ws.next().await)?, Message::text("f1"));
            assert_eq!(next(ws.next().await)?, Message::text("after f1"));
            socket.close(4403, "Forbidden");
            match next(ws.next().await)? {
                Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4403),
                other => return Err(format!("expected close, got {other:?}")),
            }
            // Our echo goes out; the server then ends.
            while let Some(Ok(_)) = ws.next().await {}
            for _ in 0..100 {
                if hub.open_sockets() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        });
        assert_eq!(result, Ok(()));
        assert_eq!(hub.open_sockets(), 0);
        let got: Vec<SocketEventKind> = events.take().into_iter().map(|e| e.kind).collect();
        assert_eq!(
            got,
            [
                SocketEventKind::Text("from client".into()),
                SocketEventKind::Closed(4403)
            ]
        );
    }
}
