//! WebSockets the core serves itself. Python does the HTTP upgrade and hands over the socket
//! (`adopt_socket`); from then on the core serves it:
//!
//! - Writes: the frames the registry queued for the connection, what Python sends and the
//!   control frames are encoded into one buffer per socket and written with as few `write`
//!   calls as the socket allows, never blocking: the rest waits for the socket to be writable.
//!   The writer task drains the registry when `Shared::wake` rings it; while a connection's
//!   queue is at least half full (its writer has not run: one CPU, a burst), the thread that
//!   queues frames for it writes what is pending and drains and writes the queue itself
//!   (`relieve`). Nothing is drained while
//!   written bytes are pending: a client that does not read leaves the frames in the
//!   registry's bounded queue, whose overflow policy applies.
//! - Reads: tungstenite parses what the client sends (its pongs and close replies go into the
//!   same write buffer); text, binary and the end are reported to the event loop through an
//!   `Inbound` (a queue plus a file descriptor the loop watches).
//! - Keep-alive: a ping every `ping_interval`; no pong within `ping_timeout` closes 1011.
//!
//! Lock order: registry, then a socket's outbound state. Nothing here touches Python.

use super::bus::{runtime, Inbound};
use super::queue::FrameBody;
use futures_util::StreamExt;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
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
/// The client did not answer a keep-alive ping in time.
pub const CLOSE_PING_TIMEOUT: u16 = 1011;
/// How long the writer waits for the client's echo of our close frame.
const CLOSE_ECHO_WAIT: Duration = Duration::from_secs(1);
/// Once the socket is ending (a close queued, the client gone), the longest it may take to
/// send what is left: a client that does not read cannot keep it open.
const ENDING_LIMIT: Duration = Duration::from_secs(2);
/// Longest close reason the protocol allows (a control frame's payload is at most 125 bytes).
const MAX_CLOSE_REASON: usize = 123;
/// What tungstenite reads at a time: client messages are small, and an idle socket keeps
/// this much (a longer message gets room for itself).
const READ_BUFFER: usize = 256;
/// A write buffer larger than this is freed once written, so that a burst does not leave
/// every socket holding its peak.
const KEEP_WRITE_BUFFER: usize = 16 * 1024;

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

/// Server pings: every `interval`, answered within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepAlive {
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
struct OutState {
    queue: VecDeque<Outbound>,
    /// Encoded bytes; those before `written` have been written.
    buf: Vec<u8>,
    written: usize,
    /// The socket's write half, until the socket ends.
    writer: Option<Arc<OwnedWriteHalf>>,
    /// Our close frame is in `buf`: nothing after it is encoded.
    close_encoded: bool,
    /// The code of the close we queued: nothing queued after it is sent.
    our_close: Option<u16>,
    /// The client's close code.
    peer_close: Option<u16>,
    /// The reader ended (close, end of stream, error).
    reader_done: bool,
}

impl OutState {
    fn pending(&self) -> bool {
        self.written < self.buf.len()
    }

    /// Moves the queue into `buf` as frames; data stops once the client is gone, everything
    /// once our close is in.
    fn encode(&mut self) {
        while let Some(item) = self.queue.pop_front() {
            if self.close_encoded {
                self.queue.clear();
                return;
            }
            match item {
                Outbound::Frame(body) if !self.reader_done => {
                    text_header(body.len(), &mut self.buf);
                    body.write_to(&mut self.buf);
                }
                Outbound::Text(text) if !self.reader_done => {
                    text_header(text.len(), &mut self.buf);
                    self.buf.extend_from_slice(text.as_bytes());
                }
                Outbound::Close(code, reason) => {
                    let frame = Frame::close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    }));
                    // Writing into a Vec cannot fail.
                    let _ = frame.format(&mut self.buf);
                    self.close_encoded = true;
                }
                Outbound::Frame(_) | Outbound::Text(_) => {}
            }
        }
    }

    /// Writes what the socket takes now (one `write` for everything pending, unless the
    /// socket's buffer fills).
    fn write(&mut self) -> Written {
        let Some(writer) = &self.writer else {
            return Written::Failed;
        };
        while self.written < self.buf.len() {
            match writer.try_write(&self.buf[self.written..]) {
                Ok(0) => return Written::Failed,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Written::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Written::Failed,
            }
        }
        self.written = 0;
        if self.buf.capacity() > KEEP_WRITE_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Written::Done
    }
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// Everything pending was written.
    Done,
    /// The socket's buffer is full: wait until it is writable.
    Blocked,
    /// The connection is broken.
    Failed,
}

/// The header of a final, unmasked text frame of `len` bytes.
fn text_header(len: usize, out: &mut Vec<u8>) {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, out);
}

/// The socket's task, once started, unless aborted before.
#[derive(Default)]
struct TaskSlot {
    aborted: bool,
    handle: Option<AbortHandle>,
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
            awaiting_pong: AtomicBool::new(false),
            reported: AtomicBool::new(false),
            task: Mutex::new(TaskSlot::default()),
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
    fn drain_into(&self, socket: &NativeSocket, mut extra: Option<Outbound>) -> bool {
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

/// One adopted WebSocket: its outbound state and its task.
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
    /// A keep-alive ping is out and its pong has not come.
    awaiting_pong: AtomicBool,
    /// The "closed" event was reported.
    reported: AtomicBool,
    task: Mutex<TaskSlot>,
}

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

    /// The connection's queue is at least half full and its writer has not drained it:
    /// writes what is pending, then drains and writes the queue, on this thread, without
    /// blocking (what the socket does not take now is left to the writer). Nothing is drained
    /// while earlier bytes wait for a full socket: the client is slow, and the queue's
    /// overflow policy is what applies.
    pub fn relieve(&self) {
        {
            let Some(mut out) = self.out.try_lock() else {
                return; // the writer is at it
            };
            if out.pending() && out.write() != Written::Done {
                return;
            }
        }
        if !self.hub.drain_into(self, None) {
            return;
        }
        let Some(mut out) = self.out.try_lock() else {
            self.notify.notify_one(); // the writer is at it
            return;
        };
        out.encode();
        if out.write() != Written::Done || out.close_encoded {
            drop(out);
            self.notify.notify_one();
        }
    }

    /// Starts serving `stream`: `handshake` (the HTTP response) is written first, then the
    /// WebSocket is served until it ends or `abort`.
    pub fn start(
        self: &Arc<Self>,
        stream: TcpStream,
        handshake: Vec<u8>,
        max_message_size: usize,
        keep_alive: Option<KeepAlive>,
    ) -> io::Result<()> {
        let runtime = runtime().map_err(io::Error::other)?;
        let (read, write) = stream.into_split();
        {
            let mut out = self.out.lock();
            out.writer = Some(Arc::new(write));
            // Before anything queued: the queue is encoded after it.
            out.buf.splice(0..0, handshake);
        }
        self.hub.sockets.lock().insert(self.id, self.clone());
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(max_message_size))
            .max_frame_size(Some(max_message_size));
        // Frames queued before the adoption go out first.
        self.notify.notify_one();
        let task = runtime.spawn(serve(self.clone(), read, config, keep_alive));
        self.set_task(task.abort_handle());
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

    /// Ends the socket now (its task is cancelled, the stream dropped) and reports it closed.
    pub fn abort(&self) {
        let handle = {
            let mut slot = self.task.lock();
            slot.aborted = true;
            slot.handle.take()
        };
        if let Some(handle) = handle {
            handle.abort();
        }
        self.finish();
    }

    fn set_task(&self, handle: AbortHandle) {
        let mut slot = self.task.lock();
        if slot.aborted {
            handle.abort();
        } else {
            slot.handle = Some(handle);
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

    /// Control bytes from tungstenite (pongs, the reply to the client's close): written
    /// after what is encoded, unless our close is in.
    fn control(&self, bytes: &[u8]) {
        let mut out = self.out.lock();
        if !out.close_encoded {
            out.buf.extend_from_slice(bytes);
        }
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

    /// Reports the end (once), closes the socket and forgets it.
    fn finish(&self) {
        if self.reported.swap(true, Ordering::AcqRel) {
            return;
        }
        let (code, writer) = {
            let mut out = self.out.lock();
            out.queue.clear();
            out.buf = Vec::new();
            out.written = 0;
            (
                out.our_close.or(out.peer_close).unwrap_or(CLOSE_ABNORMAL),
                out.writer.take(),
            )
        };
        drop(writer);
        let removed = self.hub.sockets.lock().remove(&self.id);
        self.hub
            .push_event(self.connection.clone(), SocketEventKind::Closed(code));
        drop(removed);
    }

    fn event(&self, kind: SocketEventKind) {
        self.hub.push_event(self.connection.clone(), kind);
    }

    /// Encodes what is queued and writes it, waiting for the socket while it is full. What
    /// the writer should do next.
    async fn write_out(&self) -> Next {
        loop {
            // The write half, to wait on outside the lock, only when the socket is full.
            let full = {
                let mut out = self.out.lock();
                out.encode();
                match out.write() {
                    Written::Failed => return Next::End,
                    Written::Done if out.close_encoded => return Next::AwaitEcho,
                    // The client closed or went away: our reply (if any) is out.
                    Written::Done if out.reader_done => return Next::End,
                    Written::Done => return Next::Wait,
                    Written::Blocked => out.writer.clone(),
                }
            };
            match full {
                Some(writer) if writer.writable().await.is_ok() => {}
                _ => return Next::End,
            }
        }
    }
}

/// What the writer does once a write is done.
enum Next {
    Wait,
    AwaitEcho,
    End,
}

/// The reader's side of the socket for tungstenite: reads from the socket; writes (pongs,
/// close replies) go into the socket's write buffer.
struct Duplex {
    read: OwnedReadHalf,
    socket: Arc<NativeSocket>,
}

impl AsyncRead for Duplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.socket.control(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.notify.notify_one();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

async fn serve(
    socket: Arc<NativeSocket>,
    read: OwnedReadHalf,
    config: WebSocketConfig,
    keep_alive: Option<KeepAlive>,
) {
    let duplex = Duplex {
        read,
        socket: socket.clone(),
    };
    let ws = WebSocketStream::from_raw_socket(duplex, Role::Server, Some(config)).await;
    {
        // One task serves both directions (one task's state per idle connection): the
        // reader runs beside the writer, and ends with it, dropping the last half of the
        // stream.
        let reader = read_loop(socket.clone(), ws);
        let writer = async {
            tokio::select! {
                () = write_loop(&socket, keep_alive) => {}
                () = socket.ending_deadline() => {}
            }
        };
        tokio::pin!(reader, writer);
        let mut reading = true;
        loop {
            tokio::select! {
                () = &mut reader, if reading => reading = false,
                () = &mut writer => break,
            }
        }
    }
    socket.finish();
}

/// When the keep-alive timer next fires, and what it then checks.
struct PingTimer {
    keep_alive: KeepAlive,
    /// When the last ping went out, while its pong is due.
    sent: Option<Instant>,
    due: Instant,
}

impl PingTimer {
    fn new(keep_alive: KeepAlive) -> Self {
        Self {
            keep_alive,
            sent: None,
            due: Instant::now() + keep_alive.interval,
        }
    }

    /// The timer fired: false when the pong is overdue; else the ping to send, if any.
    fn fire(&mut self, socket: &NativeSocket) -> Result<bool, ()> {
        let now = Instant::now();
        match self.sent.take() {
            Some(_) if socket.awaiting_pong.load(Ordering::Acquire) => Err(()),
            Some(sent) => {
                self.due = (sent + self.keep_alive.interval).max(now);
                Ok(false)
            }
            None => {
                socket.awaiting_pong.store(true, Ordering::Release);
                self.sent = Some(now);
                self.due = now + self.keep_alive.timeout;
                Ok(true)
            }
        }
    }
}

async fn write_loop(socket: &NativeSocket, keep_alive: Option<KeepAlive>) {
    let mut timer = keep_alive.map(PingTimer::new);
    loop {
        let due = timer.as_ref().map(|t| t.due);
        tokio::select! {
            biased;
            () = socket.notify.notified() => {}
            () = sleep_until(due) => {
                let Some(timer) = timer.as_mut() else { continue };
                match timer.fire(socket) {
                    Err(()) => socket.close(CLOSE_PING_TIMEOUT, "keepalive ping timeout"),
                    Ok(true) => {
                        let mut out = socket.out.lock();
                        if !out.close_encoded {
                            let _ = Frame::ping(Vec::new()).format(&mut out.buf);
                        }
                    }
                    Ok(false) => continue,
                }
            }
        }
        loop {
            // Bytes left by a write the socket did not take go first, and nothing is drained
            // meanwhile: the registry's bound applies to a client that reads slowly.
            let pending = socket.out.lock().pending();
            if !pending && !socket.hub.drain_into(socket, None) {
                return; // the executor is gone
            }
            match socket.write_out().await {
                // Drained after the last wake-up: new frames ring again.
                Next::Wait if !pending => break,
                // That wake-up may have been for frames still in the registry.
                Next::Wait => {}
                Next::End => return,
                Next::AwaitEcho => {
                    let _ = tokio::time::timeout(CLOSE_ECHO_WAIT, socket.wait_reader()).await;
                    return;
                }
            }
        }
    }
}

/// Sleeps until `due`; forever without one.
async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn read_loop(socket: Arc<NativeSocket>, mut stream: WebSocketStream<Duplex>) {
    let peer_close = loop {
        match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                socket.event(SocketEventKind::Text(text.as_str().to_owned()));
            }
            Some(Ok(Message::Binary(_))) => socket.event(SocketEventKind::Binary),
            // The pong is in the write buffer already (tungstenite wrote it); flushed below.
            Some(Ok(Message::Ping(_))) => socket.notify.notify_one(),
            Some(Ok(Message::Pong(_))) => socket.awaiting_pong.store(false, Ordering::Release),
            Some(Ok(Message::Frame(_))) => {}
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
    // Anything tungstenite still holds (the close reply) goes into the write buffer.
    let _ = futures_util::SinkExt::flush(&mut stream).await;
    socket.reader_ended(peer_close);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

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
        std::mem::take(&mut socket.out.lock().queue)
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
                .start(server, b"HI\r\n".to_vec(), 64, None)
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
