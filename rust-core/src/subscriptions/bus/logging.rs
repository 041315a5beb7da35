//! Bus log records for Python's `logging`, on the logger `fraiseql_fastapi.bus`.
//!
//! The bus tasks never take the GIL: a record goes into a bounded queue, and one thread of its
//! own (started with the first record) attaches to Python and hands it to the logger. So a bus
//! thread can never wait on a Python thread that holds the GIL while it waits on the bus, and
//! a busy interpreter only delays records. Records are only written for connection changes
//! (connect, disconnect with the reason, reconnect, replay, a full publish queue), never per
//! event; messages name servers with their passwords masked (`describe()` of each bus).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;

use pyo3::prelude::*;

/// The Python logger the records go to.
pub const LOGGER: &str = "fraiseql_fastapi.bus";
/// Records waiting for the logging thread; beyond that they are dropped (and counted).
const QUEUE: usize = 1024;

/// Python's logging levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 10,
    Info = 20,
    Warning = 30,
}

static SENDER: OnceLock<Option<SyncSender<(Level, String)>>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Queues a record for the `fraiseql_fastapi.bus` logger; never blocks.
pub fn log(level: Level, message: String) {
    let sender = SENDER.get_or_init(|| {
        let (sender, receiver) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("fraiseql-bus-log".into())
            .spawn(move || emit(receiver))
            .ok()
            .map(|_| sender)
    });
    let Some(sender) = sender else {
        return;
    };
    if let Err(TrySendError::Full(_)) = sender.try_send((level, message)) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn info(message: String) {
    log(Level::Info, message);
}

pub fn warning(message: String) {
    log(Level::Warning, message);
}

pub fn debug(message: String) {
    log(Level::Debug, message);
}

/// The logging thread: hands each record to the logger, attached to Python only meanwhile.
fn emit(records: Receiver<(Level, String)>) {
    let mut logger: Option<Py<PyAny>> = None;
    while let Ok(first) = records.recv() {
        // Records that arrived together are written under one attach.
        let batch: Vec<(Level, String)> =
            std::iter::once(first).chain(records.try_iter()).collect();
        let attached = Python::try_attach(|py| {
            let logger = match &logger {
                Some(l) => l.bind(py).clone(),
                None => {
                    let l = py.import("logging")?.call_method1("getLogger", (LOGGER,))?;
                    logger = Some(l.clone().unbind());
                    l
                }
            };
            let dropped = DROPPED.swap(0, Ordering::Relaxed);
            if dropped > 0 {
                let text = format!("{dropped} bus log records were dropped (too many at once)");
                logger.call_method1("log", (Level::Warning as i32, text))?;
            }
            for (level, message) in batch {
                logger.call_method1("log", (level as i32, message))?;
            }
            Ok::<_, PyErr>(())
        });
        match attached {
            // Python is shutting down (or gone): nothing can be logged any more.
            None => return,
            // A handler raised: Python's logging reports its own handler errors, so this is
            // something else (logging torn down); keep going with the next records.
            Some(Err(_)) => logger = None,
            Some(Ok(())) => {}
        }
    }
}
