//! The Python face of the engine: `PySubscriptionExecutor` and `PyEvent`, plus the module init.
//!
//! Locking rule: the registry mutex is never held while calling into Python, and no thread
//! attaches to Python while holding it, so the GIL and the mutex cannot deadlock. Dispatch runs
//! detached from Python; resolvers run attached, once per group, without the mutex.
//!
//! Adopted WebSockets (`native`) are served by tasks on the bus runtime: they take the registry
//! mutex to drain their connection's frames and never attach to Python; Python objects the
//! registry releases meanwhile wait in its graveyard for the next `Shared::wake`. A socket whose
//! queue reached half its bound is drained and written by the thread in `Shared::wake`,
//! detached from Python (`NativeSocket::relieve`).

use super::bus::config::{EventBusConfig, PyEventBusConfig};
use super::bus::{Bus, BusMessage, Inbound, MetricValue, ReplayRequest, Target};
use super::envelope::Envelope;
use super::event::{now_seconds, Event};
use super::executor::{
    FieldError, GroupRef, Pending, QueueDefaults, RegisterError, Registry, Released, Resolution,
    ResolverScope, ResolverSpec, Stamp, SubscriptionSpec,
};
use super::filter::{FilterOp, FilterSpec, Operand};
use super::message::{PyGraphQLMessage, PySubscriptionPayload};
use super::metrics::DELIVERY_BUCKETS;
use super::native::{self, FrameSource, Hub, NativeSocket, SocketEventKind};
use super::plan::{self, ProjectionPlan};
use super::position::{self, BusKind, History, HistoryLimits, Replay};
use super::py_value::{to_json, to_json_map, to_py};
use super::queue::{FrameBody, OverflowPolicy, SubKey};
use super::schema::SchemaInfo;
use super::security::SecurityContext;
use super::throttle;
use parking_lot::Mutex;
use pyo3::exceptions::{
    PyConnectionError, PyKeyError, PyOSError, PyPermissionError, PyRuntimeError, PyTypeError,
    PyValueError,
};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};
use std::io;
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Registers the classes of the `subscriptions` module on `m`.
pub fn init_subscriptions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySubscriptionPayload>()?;
    m.add_class::<PyGraphQLMessage>()?;
    m.add_class::<PySubscriptionExecutor>()?;
    m.add_class::<PyEventBusConfig>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyComplete>()?;
    Ok(())
}

/// Most distinct documents whose compiled plans are kept.
const PLAN_CACHE_CAPACITY: usize = 1024;

/// A resolver with what it is called with: one per resolution group.
struct PyResolver {
    func: Py<PyAny>,
    variables: Py<PyAny>,
    context: Py<PyAny>,
    /// The root field's name, for error messages and `format_error`.
    field: String,
}

/// How a connection learns that frames wait for it.
enum ConnWaker {
    /// `on_frames()`, called on the thread that queued them; Python drains.
    Python(Py<PyAny>),
    /// An adopted WebSocket: its writer task drains and sends, without Python.
    Native(Arc<NativeSocket>),
}

type PyRegistry = Registry<Arc<PyResolver>, ConnWaker>;

/// query text -> [(operation name, plan)]; only plans that do not depend on variables.
type PlanCache = FxHashMap<Box<str>, Vec<(Option<Box<str>>, Arc<ProjectionPlan>)>>;

struct Shared {
    registry: Mutex<PyRegistry>,
    plans: Mutex<PlanCache>,
    /// The schema plans are compiled against, when the Python layer gave one.
    schema: Option<Arc<SchemaInfo>>,
    next_event_id: AtomicU64,
    /// Async resolutions in flight, held so asyncio cannot collect their tasks early.
    tasks: Mutex<FxHashMap<u64, Py<PyAny>>>,
    next_task_id: AtomicU64,
    /// The Redis or PostgreSQL bus (None: in-memory) and what it has received.
    bus: Option<Arc<dyn Bus>>,
    /// Created by `start_bus`, in the process that serves (not before a fork).
    inbound: Mutex<Option<Arc<Inbound>>>,
    bus_started: AtomicBool,
    bus_events_malformed: AtomicU64,
    /// `format_error(exception, field)`: what a client sees of a failed resolver call.
    format_error: Option<Py<PyAny>>,
    /// The adopted WebSockets and what they received.
    native: Arc<Hub>,
    /// Subscriptions resuming on a bus, by the token of their replay.
    resumes: Mutex<FxHashMap<u64, SubKey>>,
    next_resume: AtomicU64,
    /// When the loop's timer for held frames (`max_rate`) is due, if one is armed.
    release_at: Mutex<Option<f64>>,
}

impl FrameSource for Shared {
    fn drain_with(&self, socket: &NativeSocket, with: &mut dyn FnMut(Vec<FrameBody>)) {
        let mut reg = self.registry.lock();
        let connection = socket.connection();
        let served = matches!(
            reg.waker(connection),
            Some(Some(ConnWaker::Native(s))) if std::ptr::eq(Arc::as_ptr(s), socket)
        );
        if served {
            if let Some(frames) = reg.drain(connection) {
                with(frames);
            }
        }
    }
}

impl Shared {
    /// Runs `f` on the registry, then (attached) wakes the connections that got frames and drops
    /// what the registry released, both outside the lock.
    fn with_registry<T>(
        self: &Arc<Self>,
        py: Python<'_>,
        f: impl FnOnce(&mut PyRegistry) -> T + Send,
    ) -> T
    where
        T: Send,
    {
        let out = py.detach(|| f(&mut self.registry.lock()));
        self.wake(py);
        out
    }

    fn wake(self: &Arc<Self>, py: Python<'_>) {
        let (wakers, pressed, released, channels, held) = {
            let mut reg = self.registry.lock();
            // Frames held back by a `max_rate` whose slot has come go out with this wake-up.
            let held = reg.release_held();
            let wakers: Vec<ConnWaker> = reg
                .take_wakeups()
                .into_iter()
                .map(|w| match w {
                    ConnWaker::Python(f) => ConnWaker::Python(f.clone_ref(py)),
                    ConnWaker::Native(s) => ConnWaker::Native(s.clone()),
                })
                .collect();
            // A Python sender runs on this loop: only the core's sockets can be relieved here.
            let pressed: Vec<Arc<NativeSocket>> = reg
                .take_pressed()
                .into_iter()
                .filter_map(|w| match w {
                    ConnWaker::Native(s) => Some(s.clone()),
                    ConnWaker::Python(_) => None,
                })
                .collect();
            (
                wakers,
                pressed,
                reg.take_released(),
                reg.take_channel_changes(),
                held,
            )
        };
        if let Some(due) = held {
            self.arm_release(py, due);
        }
        if !pressed.is_empty() {
            py.detach(|| {
                for socket in &pressed {
                    socket.relieve();
                }
            });
        }
        for r in &released {
            // A removed connection's socket ends with it.
            if let Released::Waker(ConnWaker::Native(socket)) = r {
                socket.abort();
            }
        }
        drop(released);
        if let Some(bus) = &self.bus {
            // The bus listens only to channels that have local subscribers.
            for (channel, listen) in channels {
                if listen {
                    bus.listen(&channel);
                } else {
                    bus.unlisten(&channel);
                }
            }
        }
        for waker in wakers {
            match waker {
                ConnWaker::Native(socket) => socket.wake(),
                ConnWaker::Python(waker) => {
                    if let Err(err) = waker.call0(py) {
                        err.write_unraisable(py, Some(waker.bind(py)));
                    }
                }
            }
        }
    }

    /// Makes sure the loop wakes us when the next held frame's slot comes (`due`, on
    /// `throttle::monotonic`'s clock). Without a running loop, held frames go out with the
    /// next wake-up instead.
    fn arm_release(self: &Arc<Self>, py: Python<'_>, due: f64) {
        {
            let mut armed = self.release_at.lock();
            if armed.is_some_and(|at| at <= due) {
                return;
            }
            *armed = Some(due);
        }
        let armed = running_loop(py).and_then(|event_loop| {
            let callback = Py::new(
                py,
                ReleaseHeld {
                    shared: self.clone(),
                },
            )?;
            let delay = (due - throttle::monotonic()).max(0.0);
            event_loop.call_method1(intern!(py, "call_later"), (delay, callback))
        });
        if armed.is_err() {
            *self.release_at.lock() = None;
        }
    }

    fn plan(
        &self,
        py: Python<'_>,
        query: &str,
        operation_name: Option<&str>,
        variables: &Map<String, Value>,
    ) -> PyResult<Arc<ProjectionPlan>> {
        if let Some(entries) = self.plans.lock().get(query) {
            if let Some((_, p)) = entries
                .iter()
                .find(|(op, _)| op.as_deref() == operation_name)
            {
                return Ok(p.clone());
            }
        }
        let compiled = py
            .detach(|| plan::compile(query, operation_name, variables, self.schema.as_deref()))
            .map_err(PyValueError::new_err)?;
        let compiled = Arc::new(compiled);
        if !compiled.depends_on_variables {
            let mut plans = self.plans.lock();
            if plans.len() >= PLAN_CACHE_CAPACITY {
                plans.clear();
            }
            plans
                .entry(query.into())
                .or_default()
                .push((operation_name.map(Into::into), compiled.clone()));
        }
        Ok(compiled)
    }
}

impl Shared {
    /// What a resolver call produced (its result, not an awaitable, or its exception).
    fn resolution(
        &self,
        py: Python<'_>,
        result: PyResult<Bound<'_, PyAny>>,
        field: &str,
    ) -> Resolution {
        let value = match result {
            Ok(value) => value,
            Err(err) => return Resolution::Error(self.field_error(py, &err, field)),
        };
        if value.is_none() {
            return Resolution::Skip;
        }
        // A static name: no string built per call (the field is named where it is reported).
        let json = |v: &Bound<'_, PyAny>| to_json(v, "the resolver's result");
        if let Ok(complete) = value.cast::<PyComplete>() {
            let last = complete.get().result.bind(py);
            if last.is_none() {
                return Resolution::Complete(None);
            }
            return match json(last) {
                Ok(v) => Resolution::Complete(Some(v)),
                Err(err) => Resolution::Error(self.field_error(py, &err, field)),
            };
        }
        match json(&value) {
            Ok(v) => Resolution::Value(v),
            Err(err) => Resolution::Error(self.field_error(py, &err, field)),
        }
    }

    /// The client's view of a resolver failure: `format_error(exception, field)` decides; without
    /// it, or when it fails, the message is masked (the exception's text may hold secrets).
    fn field_error(&self, py: Python<'_>, err: &PyErr, field: &str) -> FieldError {
        let Some(hook) = &self.format_error else {
            return masked_error();
        };
        // `into_value` attaches the traceback, so that the hook logs where the resolver failed.
        let formatted = hook
            .bind(py)
            .call1((err.clone_ref(py).into_value(py), field))
            .and_then(|answer| field_error_of(&answer));
        formatted.unwrap_or_else(|hook_err| {
            hook_err.write_unraisable(py, Some(hook.bind(py)));
            masked_error()
        })
    }
}

fn masked_error() -> FieldError {
    let mut extensions = Map::new();
    extensions.insert("code".into(), Value::from("INTERNAL_SERVER_ERROR"));
    FieldError {
        message: "Internal server error".into(),
        extensions: Some(extensions),
    }
}

/// A field error from what `format_error` returned: a mapping with a string `message` and,
/// optionally, an `extensions` mapping (any `path` or `locations` is ours to set).
fn field_error_of(answer: &Bound<'_, PyAny>) -> PyResult<FieldError> {
    let mut error = match to_json(answer, "format_error's result")? {
        Value::Object(map) => map,
        _ => return Err(PyTypeError::new_err("format_error must return a dict")),
    };
    let message = match error.remove("message") {
        Some(Value::String(m)) => m,
        _ => {
            return Err(PyTypeError::new_err(
                "format_error must return a dict with a string 'message'",
            ))
        }
    };
    let extensions = match error.remove("extensions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            return Err(PyTypeError::new_err(
                "format_error's 'extensions' must be a dict",
            ))
        }
    };
    Ok(FieldError {
        message,
        extensions,
    })
}

/// What a resolver returns to end its subscriptions: `PyComplete(result)` sends `result` (unless
/// None) as their last `next`, then `complete`.
#[pyclass(name = "PyComplete", module = "fraiseql_core_rs", frozen)]
pub struct PyComplete {
    #[pyo3(get)]
    result: Py<PyAny>,
}

#[pymethods]
impl PyComplete {
    #[new]
    #[pyo3(signature = (result=None))]
    fn new(py: Python<'_>, result: Option<Py<PyAny>>) -> Self {
        Self {
            result: result.unwrap_or_else(|| py.None()),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let inner = self
            .result
            .bind(py)
            .repr()
            .map_or_else(|_| "?".to_string(), |r| r.to_string());
        format!("PyComplete({inner})")
    }
}

/// The event handed to resolvers as their first argument.
#[pyclass(name = "PyEvent", module = "fraiseql_core_rs", frozen)]
pub struct PyEvent {
    #[pyo3(get)]
    id: u64,
    #[pyo3(get)]
    channel: String,
    #[pyo3(get)]
    event_type: String,
    #[pyo3(get)]
    data: Py<PyAny>,
    #[pyo3(get)]
    tenant_id: Option<String>,
    #[pyo3(get)]
    user_id: Option<String>,
    /// Publish time, seconds since the Unix epoch.
    #[pyo3(get)]
    ts: f64,
}

#[pymethods]
impl PyEvent {
    fn __repr__(&self) -> String {
        format!(
            "PyEvent(id={}, channel={:?}, event_type={:?})",
            self.id, self.channel, self.event_type
        )
    }
}

/// The subscription engine: registry, dispatch, projection, queues and metrics.
#[pyclass(name = "PySubscriptionExecutor", module = "fraiseql_core_rs", frozen)]
pub struct PySubscriptionExecutor {
    shared: Arc<Shared>,
    config: EventBusConfig,
}

fn policy_arg(name: Option<&str>, default: OverflowPolicy) -> PyResult<OverflowPolicy> {
    name.map_or(Ok(default), |n| {
        OverflowPolicy::parse(n).map_err(PyValueError::new_err)
    })
}

fn capacity_arg(value: Option<usize>, default: usize) -> PyResult<usize> {
    match value {
        Some(0) => Err(PyValueError::new_err("max_queue must be at least 1")),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn strings_arg(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Vec<String>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a list of str, not a single str"
        )));
    }
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        out.push(
            item?
                .extract::<String>()
                .map_err(|_| PyTypeError::new_err(format!("{what} must contain only str")))?,
        );
    }
    Ok(Some(out))
}

fn filters_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<FilterSpec>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        let item = item?;
        let dict = item.cast::<PyDict>().map_err(|_| {
            PyTypeError::new_err(
                "each filter must be a dict {\"field\": str, \"op\": str, \"variable\": str} or with \"value\"",
            )
        })?;
        let field: String = dict
            .get_item("field")?
            .ok_or_else(|| PyValueError::new_err("filter is missing \"field\""))?
            .extract()?;
        let op = match dict.get_item("op")? {
            Some(op) => FilterOp::parse(&op.extract::<String>()?).map_err(PyValueError::new_err)?,
            None => FilterOp::Eq,
        };
        let operand = match (dict.get_item("variable")?, dict.get_item("value")?) {
            (Some(v), None) => Operand::Variable(v.extract()?),
            (None, Some(v)) => Operand::Value(to_json(&v, "filter value")?),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "filter on \"{field}\" needs exactly one of \"variable\" or \"value\""
                )))
            }
        };
        out.push(FilterSpec { field, op, operand });
    }
    Ok(out)
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static ENSURE_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()
}

/// Completion of one publish that involved async resolvers: the future resolves to the number
/// of subscriptions that got a frame once every group is delivered.
struct PublishWaiter {
    future: Py<PyAny>,
    remaining: AtomicUsize,
    delivered: AtomicUsize,
}

impl PublishWaiter {
    fn finish_one(&self, py: Python<'_>, delivered: usize) {
        self.delivered.fetch_add(delivered, Ordering::SeqCst);
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            set_future_result(
                py,
                self.future.bind(py),
                self.delivered.load(Ordering::SeqCst),
            );
        }
    }
}

fn set_future_result(py: Python<'_>, future: &Bound<'_, PyAny>, value: usize) {
    let done = future
        .call_method0("done")
        .and_then(|d| d.is_truthy())
        .unwrap_or(true);
    if !done {
        if let Err(e) = future.call_method1("set_result", (value,)) {
            e.write_unraisable(py, Some(future));
        }
    }
}

/// The loop's timer for frames held back by a `max_rate`: sends those whose slot has come (and
/// arms itself again for the rest).
#[pyclass(module = "fraiseql_core_rs", frozen)]
struct ReleaseHeld {
    shared: Arc<Shared>,
}

#[pymethods]
impl ReleaseHeld {
    fn __call__(&self, py: Python<'_>) {
        *self.shared.release_at.lock() = None;
        self.shared.wake(py);
    }
}

/// Done-callback of an async resolver's task: delivers the group's result in order.
#[pyclass(module = "fraiseql_core_rs", frozen)]
struct ResolverDone {
    shared: Arc<Shared>,
    task_id: u64,
    group: GroupRef,
    seq: u64,
    subs: Mutex<Vec<SubKey>>,
    stamp: Stamp,
    field: String,
    waiter: Option<Arc<PublishWaiter>>,
}

#[pymethods]
impl ResolverDone {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let task_ref = self.shared.tasks.lock().remove(&self.task_id);
        drop(task_ref);
        let cancelled = task
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false);
        let resolution = if cancelled {
            Resolution::Skip
        } else {
            self.shared
                .resolution(py, task.call_method0("result"), &self.field)
        };
        let subs = std::mem::take(&mut *self.subs.lock());
        let (group, seq, stamp) = (self.group, self.seq, self.stamp.clone());
        let delivered = self.shared.with_registry(py, move |reg| {
            reg.resolve(group, seq, subs, stamp, resolution)
        });
        if let Some(w) = &self.waiter {
            w.finish_one(py, delivered);
        }
    }
}

impl Drop for PySubscriptionExecutor {
    fn drop(&mut self) {
        // Adopted sockets end with their executor.
        self.shared.native.shutdown();
    }
}

impl PySubscriptionExecutor {
    /// The adopted socket of a connection; KeyError when it has none.
    fn native_socket(&self, connection_id: &str) -> PyResult<Arc<NativeSocket>> {
        match self.shared.registry.lock().waker(connection_id) {
            Some(Some(ConnWaker::Native(socket))) => Ok(socket.clone()),
            _ => Err(PyKeyError::new_err(format!(
                "Connection \"{connection_id}\" has no adopted socket"
            ))),
        }
    }

    fn registry_op<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut PyRegistry) -> T + Send,
    ) -> T {
        self.shared.with_registry(py, f)
    }

    fn make_event(
        &self,
        event_type: String,
        channel: String,
        data: &Bound<'_, PyAny>,
        tenant_id: Option<String>,
        user_id: Option<String>,
    ) -> PyResult<Event> {
        Ok(Event {
            id: self.shared.next_event_id.fetch_add(1, Ordering::Relaxed) + 1,
            channel,
            event_type,
            data: to_json(data, "data")?,
            tenant_id,
            user_id,
            ts: now_seconds(),
            position: None,
        })
    }

    /// Publishes `event` (whose Python form is `data`): on the bus when there is one, else by
    /// dispatching it here.
    fn publish(
        &self,
        py: Python<'_>,
        event: Event,
        data: &Bound<'_, PyAny>,
        want_future: bool,
    ) -> PyResult<(usize, Option<Py<PyAny>>)> {
        if let Some(bus) = &self.shared.bus {
            // Every process, this one included, dispatches the event when it comes back from
            // the bus: one order per channel everywhere, and no local duplicate.
            if !self.shared.bus_started.load(Ordering::Acquire) {
                return Err(PyRuntimeError::new_err(format!(
                    "the {} bus is not started: call start_bus() (SubscriptionManager.start does)",
                    self.config.bus_type()
                )));
            }
            let message = BusMessage::new(event.channel.clone(), event.to_wire());
            py.detach(|| bus.publish(message))
                .map_err(PyConnectionError::new_err)?;
            let future = if want_future {
                let f = running_loop(py)?.call_method0("create_future")?;
                set_future_result(py, &f, 0);
                Some(f.unbind())
            } else {
                None
            };
            return Ok((0, future));
        }
        let result = self.dispatch(py, event, Some(data), want_future);
        self.shared.wake(py);
        result
    }

    /// Dispatches an event in this process (`data`: its Python form, when at hand) and calls
    /// the resolvers of its groups. With `want_future`, also returns a future resolved once
    /// async resolvers have delivered. The caller wakes the connections (`Shared::wake`), once
    /// for however many events it dispatched.
    fn dispatch(
        &self,
        py: Python<'_>,
        event: Event,
        data: Option<&Bound<'_, PyAny>>,
        want_future: bool,
    ) -> PyResult<(usize, Option<Py<PyAny>>)> {
        let (event, (delivered, pending)) = py.detach(|| {
            let mut reg = self.shared.registry.lock();
            // The in-memory bus numbers and keeps it under the same lock as its dispatch.
            let event = match &mut reg.history {
                Some(history) => history.record(event),
                None => Arc::new(event),
            };
            let out = reg.dispatch(&event);
            (event, out)
        });
        self.run_pending(py, &event, data, delivered, pending, want_future)
    }

    /// Calls the resolvers of the groups an event's dispatch left pending and delivers what they
    /// return (async ones when they finish: see `dispatch`).
    fn run_pending(
        &self,
        py: Python<'_>,
        event: &Event,
        data: Option<&Bound<'_, PyAny>>,
        mut delivered: usize,
        pending: Vec<Pending<Arc<PyResolver>>>,
        want_future: bool,
    ) -> PyResult<(usize, Option<Py<PyAny>>)> {
        let future = if want_future {
            Some(running_loop(py)?.call_method0("create_future")?)
        } else {
            None
        };
        let mut async_groups = Vec::new();
        if !pending.is_empty() {
            let (resolved, scheduled) = self.call_resolvers(py, event, data, pending)?;
            delivered += py.detach(|| {
                let mut reg = self.shared.registry.lock();
                resolved
                    .into_iter()
                    .map(|(p, r)| reg.resolve(p.group, p.seq, p.subs, p.stamp, r))
                    .sum::<usize>()
            });
            async_groups = scheduled;
        }
        let waiter = match &future {
            Some(f) if !async_groups.is_empty() => Some(Arc::new(PublishWaiter {
                future: f.clone().unbind(),
                remaining: AtomicUsize::new(async_groups.len()),
                delivered: AtomicUsize::new(delivered),
            })),
            Some(f) => {
                set_future_result(py, f, delivered);
                None
            }
            None => None,
        };
        for (pending, task, field) in async_groups {
            self.watch_task(py, pending, task, field, waiter.clone())?;
        }
        Ok((delivered, future.map(Bound::unbind)))
    }

    /// Calls each pending group's resolver once. Returns the finished resolutions and the
    /// groups whose resolver returned an awaitable (now a scheduled task).
    #[allow(clippy::type_complexity)]
    fn call_resolvers<'py>(
        &self,
        py: Python<'py>,
        event: &Event,
        data: Option<&Bound<'py, PyAny>>,
        pending: Vec<Pending<Arc<PyResolver>>>,
    ) -> PyResult<(
        Vec<(Pending<Arc<PyResolver>>, Resolution)>,
        Vec<(Pending<Arc<PyResolver>>, Bound<'py, PyAny>, String)>,
    )> {
        let py_event = Py::new(
            py,
            PyEvent {
                id: event.id,
                channel: event.channel.clone(),
                event_type: event.event_type.clone(),
                // Events from a bus have no Python form yet: built once, for all groups.
                data: match data {
                    Some(d) => d.clone().unbind(),
                    None => to_py(py, &event.data)?.unbind(),
                },
                tenant_id: event.tenant_id.clone(),
                user_id: event.user_id.clone(),
                ts: event.ts,
            },
        )?;
        let mut resolved = Vec::with_capacity(pending.len());
        let mut scheduled = Vec::new();
        for p in pending {
            let r = p.resolver.clone();
            let result = r.func.bind(py).call1((
                py_event.clone_ref(py),
                r.variables.clone_ref(py),
                r.context.clone_ref(py),
            ));
            let resolution = match result {
                Ok(value) if value.hasattr("__await__").unwrap_or(false) => {
                    match ENSURE_FUTURE
                        .import(py, "asyncio", "ensure_future")
                        .and_then(|ensure| {
                            running_loop(py)?;
                            ensure.call1((&value,))
                        }) {
                        Ok(task) => {
                            scheduled.push((p, task, r.field.clone()));
                            continue;
                        }
                        Err(_) => {
                            if value.hasattr("close").unwrap_or(false) {
                                let _ = value.call_method0("close");
                            }
                            let err = PyRuntimeError::new_err(format!(
                                "The resolver of \"{}\" is async and needs a running asyncio event loop: publish from a coroutine",
                                r.field
                            ));
                            Resolution::Error(self.shared.field_error(py, &err, &r.field))
                        }
                    }
                }
                result => self.shared.resolution(py, result, &r.field),
            };
            resolved.push((p, resolution));
        }
        Ok((resolved, scheduled))
    }

    fn watch_task(
        &self,
        py: Python<'_>,
        pending: Pending<Arc<PyResolver>>,
        task: Bound<'_, PyAny>,
        field: String,
        waiter: Option<Arc<PublishWaiter>>,
    ) -> PyResult<()> {
        let task_id = self.shared.next_task_id.fetch_add(1, Ordering::Relaxed);
        self.shared
            .tasks
            .lock()
            .insert(task_id, task.clone().unbind());
        let callback = ResolverDone {
            shared: self.shared.clone(),
            task_id,
            group: pending.group,
            seq: pending.seq,
            subs: Mutex::new(pending.subs),
            stamp: pending.stamp,
            field,
            waiter,
        };
        task.call_method1("add_done_callback", (Py::new(py, callback)?,))?;
        Ok(())
    }
}

impl PySubscriptionExecutor {
    /// Starts the resume of subscription `key` after `cursor`: from the in-memory history at
    /// once, or by asking the bus for a replay (its events arrive with the bus's others).
    fn resume(
        &self,
        py: Python<'_>,
        key: SubKey,
        channel: &str,
        cursor: position::Cursor,
    ) -> PyResult<()> {
        let kind = match &self.config {
            EventBusConfig::Memory { .. } => BusKind::Memory,
            EventBusConfig::Redis { .. } => BusKind::Redis,
            EventBusConfig::PostgreSQL { .. } => BusKind::PostgreSQL,
        };
        let bus = self.shared.bus.as_ref().filter(|_| cursor.bus == kind);
        let Some(bus) = bus else {
            if kind == BusKind::Memory && cursor.bus == kind {
                return self.resume_from_history(py, key, channel, &cursor);
            }
            // A cursor of another bus: its history is not here.
            self.registry_op(py, |reg| reg.resumed(key, true));
            return Ok(());
        };
        let token = self.shared.next_resume.fetch_add(1, Ordering::Relaxed);
        self.shared.resumes.lock().insert(token, key);
        // Listening to the channel first (a new one), so the replay ends where live events
        // begin.
        self.shared.wake(py);
        bus.replay(ReplayRequest {
            token,
            channel: channel.to_owned(),
            epoch: cursor.epoch,
            offset: cursor.offset,
        });
        Ok(())
    }

    /// Dispatches the in-memory history after `cursor` to `key` alone, then turns it live
    /// (in one lock with finding nothing more: no event is missed or sent twice).
    fn resume_from_history(
        &self,
        py: Python<'_>,
        key: SubKey,
        channel: &str,
        cursor: &position::Cursor,
    ) -> PyResult<()> {
        let mut offset = cursor.offset.clone();
        loop {
            let step = self.registry_op(py, |reg| {
                let found = match &reg.history {
                    Some(h) => h.after(channel, &cursor.epoch, &offset),
                    None => Replay::Gap,
                };
                match found {
                    Replay::Gap => {
                        reg.resumed(key, true);
                        None
                    }
                    Replay::Events(events) if events.is_empty() => {
                        reg.resumed(key, false);
                        None
                    }
                    Replay::Events(events) => Some(
                        events
                            .into_iter()
                            .map(|(seq, event)| {
                                let out = reg.dispatch_to(key, &event);
                                (seq, event, out)
                            })
                            .collect::<Vec<_>>(),
                    ),
                }
            });
            let Some(dispatched) = step else {
                return Ok(());
            };
            for (seq, event, (delivered, pending)) in dispatched {
                offset = seq.to_string();
                self.run_pending(py, &event, None, delivered, pending, false)?;
            }
        }
    }

    /// A replayed event, or the end of a replay, received from the bus.
    fn replayed(&self, py: Python<'_>, message: BusMessage) -> PyResult<usize> {
        let (token, end) = match message.target {
            Target::Live => return Ok(0),
            Target::Replay(t) => (t, None),
            Target::ReplayDone(t) => (t, Some(false)),
            Target::ReplayGap(t) => (t, Some(true)),
        };
        let key = match end {
            None => self.shared.resumes.lock().get(&token).copied(),
            Some(_) => self.shared.resumes.lock().remove(&token),
        };
        let Some(key) = key else {
            return Ok(0);
        };
        if let Some(gap) = end {
            self.registry_op(py, |reg| reg.resumed(key, gap));
            return Ok(0);
        }
        let id = self.shared.next_event_id.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(event) = Event::from_wire(id, &message.channel, &message.payload, message.position)
        else {
            self.shared
                .bus_events_malformed
                .fetch_add(1, Ordering::Relaxed);
            return Ok(0);
        };
        let (delivered, pending) = self.registry_op(py, |reg| reg.dispatch_to(key, &event));
        Ok(self
            .run_pending(py, &event, None, delivered, pending, false)?
            .0)
    }
}

#[pymethods]
impl PySubscriptionExecutor {
    #[new]
    #[pyo3(signature = (
        config=None, *, max_queue=1000, overflow_policy="lag", schema=None, format_error=None
    ))]
    fn new(
        config: Option<&Bound<'_, PyEventBusConfig>>,
        max_queue: usize,
        overflow_policy: &str,
        schema: Option<&Bound<'_, PyAny>>,
        format_error: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let format_error = match format_error.filter(|f| !f.is_none()) {
            Some(f) if !f.is_callable() => {
                return Err(PyTypeError::new_err("format_error must be callable"))
            }
            f => f.map(|f| f.clone().unbind()),
        };
        let schema = match schema.filter(|s| !s.is_none()) {
            Some(s) => Some(Arc::new(
                SchemaInfo::from_json(&to_json(s, "schema")?).map_err(|e| {
                    PyValueError::new_err(format!("Invalid schema description: {e}"))
                })?,
            )),
            None => None,
        };
        let bus_config = config.map_or_else(EventBusConfig::memory, |c| c.get().config.clone());
        let defaults = QueueDefaults {
            capacity: capacity_arg(Some(max_queue), 1000)?,
            policy: policy_arg(Some(overflow_policy), OverflowPolicy::Lag)?,
        };
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::new(defaults)),
            plans: Mutex::new(FxHashMap::default()),
            schema,
            next_event_id: AtomicU64::new(0),
            tasks: Mutex::new(FxHashMap::default()),
            next_task_id: AtomicU64::new(0),
            bus: super::bus::create(&bus_config).map_err(PyValueError::new_err)?,
            inbound: Mutex::new(None),
            bus_started: AtomicBool::new(false),
            bus_events_malformed: AtomicU64::new(0),
            format_error,
            native: Arc::new(Hub::new()),
            resumes: Mutex::new(FxHashMap::default()),
            next_resume: AtomicU64::new(0),
            release_at: Mutex::new(None),
        });
        if let EventBusConfig::Memory {
            history,
            history_age,
        } = &bus_config
        {
            shared.registry.lock().history = Some(History::new(HistoryLimits {
                size: *history,
                age: history_age.as_secs_f64(),
            }));
        }
        let source: Arc<dyn FrameSource> = shared.clone();
        shared.native.set_source(Arc::downgrade(&source));
        Ok(Self {
            shared,
            config: bus_config,
        })
    }

    /// The event bus configuration this executor was created with.
    #[getter]
    fn config(&self) -> PyEventBusConfig {
        PyEventBusConfig {
            config: self.config.clone(),
        }
    }

    /// Opens a connection (or reconfigures it). `on_frames()` is called, on the thread that
    /// queued them, when the connection's queue goes from empty to non-empty; call `drain`.
    /// `envelope` is how its protocol wraps frames: "graphql-transport-ws" (the default),
    /// "graphql-ws", "sse-distinct" or "sse-single"; it applies to subscriptions registered
    /// after the call. A connection with an adopted socket keeps it (`on_frames`: ValueError).
    #[pyo3(signature = (
        connection_id, on_frames=None, *, max_queue=None, overflow_policy=None,
        envelope="graphql-transport-ws"
    ))]
    fn open_connection(
        &self,
        py: Python<'_>,
        connection_id: &str,
        on_frames: Option<Bound<'_, PyAny>>,
        max_queue: Option<usize>,
        overflow_policy: Option<&str>,
        envelope: &str,
    ) -> PyResult<()> {
        let envelope = Envelope::parse(envelope).map_err(PyValueError::new_err)?;
        if let Some(cb) = &on_frames {
            if !cb.is_callable() {
                return Err(PyTypeError::new_err("on_frames must be callable"));
            }
        }
        let defaults = self.shared.registry.lock().defaults();
        let capacity = capacity_arg(max_queue, defaults.capacity)?;
        let policy = policy_arg(overflow_policy, defaults.policy)?;
        let waker = on_frames.map(|f| ConnWaker::Python(f.unbind()));
        let result = self.registry_op(py, move |reg| {
            // An adopted socket keeps serving the connection: only its settings change (once
            // it has ended, `on_frames` may take over).
            let keep_native = match reg.waker(connection_id) {
                Some(Some(ConnWaker::Native(socket))) => match &waker {
                    None => true,
                    Some(_) if socket.is_finished() => false,
                    Some(_) => return Err(waker),
                },
                _ => false,
            };
            let previous = reg.open_connection(connection_id, waker, capacity, policy, envelope);
            if keep_native {
                if let Some(native) = previous {
                    let _ = reg.set_waker(connection_id, native);
                }
                return Ok(None);
            }
            Ok(previous)
        });
        match result {
            Ok(previous) => {
                drop(previous);
                Ok(())
            }
            Err(refused) => {
                drop(refused);
                Err(PyValueError::new_err(format!(
                    "Connection \"{connection_id}\" is served by an adopted socket: on_frames cannot be set"
                )))
            }
        }
    }

    #[pyo3(signature = (
        connection_id, subscription_id, query, operation_name=None, variables=None,
        user_id=None, tenant_id=None, *, operation_id=None, channels=None, event_types=None,
        resolver=None, resolver_scope="user", context=None, filters=None, arguments=None,
        resolver_arguments=None, conflate=false, positions=false, resume_from=None,
        max_rate=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn register_subscription(
        &self,
        py: Python<'_>,
        connection_id: String,
        subscription_id: String,
        query: &str,
        operation_name: Option<&str>,
        variables: Option<&Bound<'_, PyAny>>,
        user_id: Option<String>,
        tenant_id: Option<String>,
        operation_id: Option<String>,
        channels: Option<&Bound<'_, PyAny>>,
        event_types: Option<&Bound<'_, PyAny>>,
        resolver: Option<&Bound<'_, PyAny>>,
        resolver_scope: &str,
        context: Option<&Bound<'_, PyAny>>,
        filters: Option<&Bound<'_, PyAny>>,
        arguments: Option<&Bound<'_, PyAny>>,
        resolver_arguments: Option<&Bound<'_, PyAny>>,
        conflate: bool,
        positions: bool,
        resume_from: Option<&str>,
        max_rate: Option<f64>,
    ) -> PyResult<()> {
        if max_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(PyValueError::new_err(
                "max_rate must be a positive number of events per second",
            ));
        }
        let resume_from = resume_from
            .map(position::Cursor::parse)
            .transpose()
            .map_err(PyValueError::new_err)?;
        let vars = to_json_map(variables, "variables")?;
        let args = match arguments.filter(|a| !a.is_none()) {
            Some(a) => Some(to_json_map(Some(a), "arguments")?),
            None => None,
        };
        let plan = self.shared.plan(py, query, operation_name, &vars)?;
        let channels = strings_arg(channels, "channels")?.unwrap_or_default();
        if channels.iter().any(String::is_empty) {
            return Err(PyValueError::new_err("channel names must not be empty"));
        }
        let resolver = match resolver.filter(|r| !r.is_none()) {
            None => None,
            Some(func) => {
                if !func.is_callable() {
                    return Err(PyTypeError::new_err("resolver must be callable"));
                }
                let scope = ResolverScope::parse(resolver_scope).map_err(PyValueError::new_err)?;
                let context = match context {
                    Some(c) => c.clone().unbind(),
                    None => {
                        let d = PyDict::new(py);
                        d.set_item("user_id", &user_id)?;
                        d.set_item("tenant_id", &tenant_id)?;
                        d.into_any().unbind()
                    }
                };
                // The resolver sees its bound arguments when given (Python values made once, at
                // subscribe time), else the JSON arguments, else the variables.
                let inputs = resolver_arguments
                    .or(arguments)
                    .or(variables)
                    .filter(|v| !v.is_none());
                let variables = match inputs {
                    Some(v) => v.clone().unbind(),
                    None => PyDict::new(py).into_any().unbind(),
                };
                Some(ResolverSpec {
                    identity: func.as_ptr() as usize as u64,
                    handle: Arc::new(PyResolver {
                        func: func.clone().unbind(),
                        variables,
                        context,
                        field: plan.root.name.clone(),
                    }),
                    scope,
                })
            }
        };
        let spec = SubscriptionSpec {
            connection_id,
            subscription_id,
            operation_id,
            plan,
            variables: vars,
            arguments: args,
            security: SecurityContext {
                user_id: user_id.map(Into::into),
                tenant_id: tenant_id.map(Into::into),
            },
            channels,
            event_types: strings_arg(event_types, "event_types")?,
            filters: filters_arg(filters)?,
            resolver,
            conflate,
            positions: positions || resume_from.is_some(),
            resuming: resume_from.is_some(),
            max_rate,
        };
        if resume_from.is_some() && spec.channels.len() > 1 {
            return Err(PyValueError::new_err(
                "resumeFrom needs a subscription on one channel",
            ));
        }
        let result = self.registry_op(py, move |reg| {
            let key = reg.register(spec)?;
            let channel = reg
                .channels_of(key)
                .and_then(|c| c.first())
                .map(|c| c.to_string());
            Ok((key, channel))
        });
        let (key, channel) = result.map_err(|e| match e {
            RegisterError::Refused(m) => PyPermissionError::new_err(m),
            RegisterError::Duplicate(m) | RegisterError::Invalid(m) => PyValueError::new_err(m),
        })?;
        if let (Some(cursor), Some(channel)) = (resume_from, channel) {
            self.resume(py, key, &channel, cursor)?;
            self.shared.wake(py);
        }
        Ok(())
    }

    /// Publishes an event to the subscriptions on `channel`; returns how many got a frame now.
    /// Async resolvers are scheduled on the running loop and deliver when they finish.
    #[pyo3(signature = (event_type, channel, data, tenant_id=None, user_id=None))]
    fn publish_event(
        &self,
        py: Python<'_>,
        event_type: String,
        channel: String,
        data: &Bound<'_, PyAny>,
        tenant_id: Option<String>,
        user_id: Option<String>,
    ) -> PyResult<usize> {
        let event = self.make_event(event_type, channel, data, tenant_id, user_id)?;
        self.publish(py, event, data, false).map(|(n, _)| n)
    }

    /// Like `publish_event`, but returns an awaitable that resolves, once async resolvers have
    /// finished too, to the number of subscriptions that got a frame. Needs a running loop.
    #[pyo3(signature = (event_type, channel, data, tenant_id=None, user_id=None))]
    fn publish_event_async(
        &self,
        py: Python<'_>,
        event_type: String,
        channel: String,
        data: &Bound<'_, PyAny>,
        tenant_id: Option<String>,
        user_id: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        running_loop(py).map_err(|_| {
            PyRuntimeError::new_err("publish_event_async needs a running asyncio event loop")
        })?;
        let event = self.make_event(event_type, channel, data, tenant_id, user_id)?;
        let (_, future) = self.publish(py, event, data, true)?;
        future.ok_or_else(|| PyRuntimeError::new_err("no future was created"))
    }

    /// Connects the Redis or PostgreSQL bus and starts listening (blocking: run it off the
    /// event loop, e.g. with `loop.run_in_executor`). ConnectionError naming the server when it
    /// cannot connect. Nothing to do for the in-memory bus.
    fn start_bus(&self, py: Python<'_>) -> PyResult<()> {
        let Some(bus) = &self.shared.bus else {
            return Ok(());
        };
        if self.shared.bus_started.load(Ordering::Acquire) {
            return Ok(());
        }
        let inbound = Arc::new(Inbound::new().map_err(|e| {
            PyRuntimeError::new_err(format!("cannot create the bus wake-up socket: {e}"))
        })?);
        *self.shared.inbound.lock() = Some(inbound.clone());
        py.detach(|| bus.start(inbound))
            .map_err(PyConnectionError::new_err)?;
        let channels = self.shared.registry.lock().channel_names();
        for channel in channels {
            bus.listen(&channel);
        }
        self.shared.bus_started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the bus (blocking briefly; run it off the event loop).
    fn stop_bus(&self, py: Python<'_>) {
        if let Some(bus) = &self.shared.bus {
            if self.shared.bus_started.swap(false, Ordering::AcqRel) {
                py.detach(|| bus.stop());
            }
        }
    }

    /// The file descriptor that becomes readable when bus events wait for
    /// `process_bus_events()`; None for the in-memory bus and before `start_bus()`.
    #[getter]
    fn bus_fd(&self) -> Option<i32> {
        self.shared.inbound.lock().as_ref().map(|i| i.fd())
    }

    /// Dispatches every event received from the bus, in order; returns how many subscriptions
    /// got a frame now. Call it on the event loop when `bus_fd` is readable.
    fn process_bus_events(&self, py: Python<'_>) -> PyResult<usize> {
        let inbound = self.shared.inbound.lock().clone();
        let messages = inbound.map(|i| i.take()).unwrap_or_default();
        let result = messages.into_iter().try_fold(0, |delivered, message| {
            if message.target != Target::Live {
                return Ok(delivered + self.replayed(py, message)?);
            }
            let id = self.shared.next_event_id.fetch_add(1, Ordering::Relaxed) + 1;
            match Event::from_wire(id, &message.channel, &message.payload, message.position) {
                Ok(event) => Ok(delivered + self.dispatch(py, event, None, false)?.0),
                Err(_) => {
                    self.shared
                        .bus_events_malformed
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(delivered)
                }
            }
        });
        // One wake-up per connection for the whole batch.
        self.shared.wake(py);
        result
    }

    /// The oldest queued frame of a subscription, as bytes, or None.
    fn next_event<'py>(
        &self,
        py: Python<'py>,
        subscription_id: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let frame = self.registry_op(py, |reg| reg.next_frame(subscription_id));
        match frame {
            None => Err(unknown_subscription(subscription_id)),
            Some(f) => Ok(f.map(|body| PyBytes::new(py, &body.to_vec()))),
        }
    }

    /// Takes every queued frame of a connection, oldest first, as text ready to send.
    fn drain<'py>(&self, py: Python<'py>, connection_id: &str) -> PyResult<Bound<'py, PyList>> {
        let frames = self
            .registry_op(py, |reg| reg.drain(connection_id))
            .ok_or_else(|| unknown_connection(connection_id))?;
        frames_to_list(py, &frames)
    }

    /// Ends a subscription at the client's request; its queued frames are dropped.
    fn complete_subscription(&self, py: Python<'_>, subscription_id: &str) -> PyResult<()> {
        self.registry_op(py, |reg| reg.complete(subscription_id))
            .ok_or_else(|| unknown_subscription(subscription_id))
    }

    /// Ends every subscription on `channel` with `complete` (after the frames already queued
    /// for them); returns how many. Local to this executor: other processes on the bus keep
    /// theirs.
    fn complete_channel(&self, py: Python<'_>, channel: &str) -> usize {
        let ended = self.registry_op(py, |reg| reg.complete_channel(channel));
        self.shared.wake(py);
        ended
    }

    /// Removes a connection with all its subscriptions and frames; returns how many
    /// subscriptions were active on it.
    fn remove_connection(&self, py: Python<'_>, connection_id: &str) -> PyResult<usize> {
        self.registry_op(py, |reg| reg.remove_connection(connection_id))
            .ok_or_else(|| unknown_connection(connection_id))
    }

    /// True when the subscription is registered and has not ended.
    fn is_active(&self, subscription_id: &str) -> bool {
        self.shared.registry.lock().is_active(subscription_id)
    }

    /// How many subscriptions of a connection are active (registered and not ended).
    fn connection_active(&self, connection_id: &str) -> PyResult<usize> {
        self.shared
            .registry
            .lock()
            .connection_active(connection_id)
            .ok_or_else(|| unknown_connection(connection_id))
    }

    /// Ids of the active subscriptions of a connection.
    fn connection_subscriptions(&self, connection_id: &str) -> PyResult<Vec<String>> {
        self.shared
            .registry
            .lock()
            .connection_subscriptions(connection_id)
            .ok_or_else(|| unknown_connection(connection_id))
    }

    /// Serves an upgraded WebSocket of an open connection in the core: takes ownership of
    /// `fd` (a connected TCP socket; closed when the socket ends, or on failure), writes
    /// `handshake` (the HTTP 101 response) first, then sends the connection's frames as they
    /// are queued and reports what the client sends through `socket_events_fd`. With
    /// `ping_interval` (seconds), a ping goes out that often and a client that does not answer
    /// within `ping_timeout` is closed with 1011.
    #[pyo3(signature = (
        connection_id, fd, handshake=&[] as &[u8], *, max_message_size=1_048_576,
        ping_interval=None, ping_timeout=20.0
    ))]
    #[pyo3(
        text_signature = "($self, connection_id, fd, handshake=b'', *, max_message_size=1048576, ping_interval=None, ping_timeout=20.0)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn adopt_socket(
        &self,
        py: Python<'_>,
        connection_id: &str,
        fd: i32,
        handshake: &[u8],
        max_message_size: usize,
        ping_interval: Option<f64>,
        ping_timeout: f64,
    ) -> PyResult<()> {
        if fd < 0 {
            return Err(PyValueError::new_err("fd must be a file descriptor (>= 0)"));
        }
        // SAFETY: the caller hands the descriptor over (documented); from here it is ours and
        // closed on every path that does not keep it.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
        if max_message_size == 0 {
            return Err(PyValueError::new_err("max_message_size must be at least 1"));
        }
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    PyValueError::new_err(format!("{name} must be a positive number of seconds"))
                })
        };
        let keep_alive = match ping_interval {
            Some(interval) => Some(native::KeepAlive {
                interval: seconds("ping_interval", interval)?,
                timeout: seconds("ping_timeout", ping_timeout)?,
            }),
            None => None,
        };
        let state = match self.shared.registry.lock().waker(connection_id) {
            None => Err(unknown_connection(connection_id)),
            Some(Some(ConnWaker::Native(s))) if !s.is_finished() => {
                Err(already_adopted(connection_id))
            }
            Some(_) => Ok(()),
        };
        state?;
        let stream = py
            .detach(|| {
                stream.peer_addr()?;
                native::tokio_stream(stream)
            })
            .map_err(|e| match e.kind() {
                // The client reset or closed the connection before the handover.
                io::ErrorKind::NotConnected
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => {
                    PyConnectionError::new_err(format!("the client left before the handover: {e}"))
                }
                _ => PyOSError::new_err(format!("cannot adopt the socket: {e}")),
            })?;
        self.shared
            .native
            .events()
            .map_err(|e| PyOSError::new_err(format!("cannot create the socket events: {e}")))?;
        let socket = self.shared.native.socket(connection_id);
        let installed = socket.clone();
        let result = self.registry_op(py, move |reg| match reg.waker(connection_id) {
            None => Err(None),
            Some(Some(ConnWaker::Native(s))) if !s.is_finished() => Err(Some(())),
            Some(_) => Ok(reg.set_waker(connection_id, ConnWaker::Native(installed))),
        });
        match result {
            Err(None) => return Err(unknown_connection(connection_id)),
            Err(Some(())) => return Err(already_adopted(connection_id)),
            Ok(previous) => drop(previous),
        }
        let handshake = handshake.to_vec();
        if let Err(e) = socket.start(stream, handshake, max_message_size, keep_alive) {
            socket.abort();
            return Err(PyOSError::new_err(format!("cannot serve the socket: {e}")));
        }
        Ok(())
    }

    /// Sends a text message on an adopted socket, after every frame queued for the connection
    /// before the call. Dropped once the socket is closing. KeyError if not adopted.
    fn socket_send(&self, py: Python<'_>, connection_id: &str, text: String) -> PyResult<()> {
        let socket = self.native_socket(connection_id)?;
        py.detach(|| socket.send(text));
        // Draining may have released what only Python may drop.
        self.shared.wake(py);
        Ok(())
    }

    /// Closes an adopted socket with `code` and `reason`, after everything queued before the
    /// call. Idempotent. KeyError if not adopted; ValueError for a code a server cannot send.
    #[pyo3(signature = (connection_id, code=1000, reason=""))]
    fn socket_close(
        &self,
        py: Python<'_>,
        connection_id: &str,
        code: u16,
        reason: &str,
    ) -> PyResult<()> {
        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
            return Err(PyValueError::new_err(format!(
                "{code} is not a close code a server can send"
            )));
        }
        let socket = self.native_socket(connection_id)?;
        py.detach(|| socket.close(code, reason));
        self.shared.wake(py);
        Ok(())
    }

    /// The file descriptor that becomes readable when adopted sockets have events for
    /// `take_socket_events()` (created on first use).
    #[getter]
    fn socket_events_fd(&self) -> PyResult<i32> {
        self.shared
            .native
            .events()
            .map(|e| e.fd())
            .map_err(|e| PyOSError::new_err(format!("cannot create the socket events: {e}")))
    }

    /// What adopted sockets received, in arrival order: `(connection_id, kind, value)` with
    /// kind "text" (value: the text), "binary" (None) or "closed" (the close code).
    fn take_socket_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let events = py.detach(|| self.shared.native.take_events());
        let list = PyList::empty(py);
        for event in events {
            let (kind, value) = match event.kind {
                SocketEventKind::Text(text) => {
                    (intern!(py, "text"), PyString::new(py, &text).into_any())
                }
                SocketEventKind::Binary => (intern!(py, "binary"), py.None().into_bound(py)),
                SocketEventKind::Closed(code) => {
                    (intern!(py, "closed"), code.into_pyobject(py)?.into_any())
                }
            };
            list.append((PyString::new(py, &event.connection), kind, value))?;
        }
        Ok(list)
    }

    /// Counters and gauges of the engine.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (counters, gauges) = {
            let reg = self.shared.registry.lock();
            (
                reg.metrics.counters(),
                [
                    ("active_connections", reg.active_connections()),
                    ("active_subscriptions", reg.active_subscriptions()),
                    ("channels", reg.channel_count()),
                    ("resolution_groups", reg.group_count()),
                    ("queued_frames", reg.queued_frames()),
                ],
            )
        };
        let dict = PyDict::new(py);
        for (name, value) in gauges {
            dict.set_item(name, value)?;
        }
        for (name, value) in counters {
            dict.set_item(name, value)?;
        }
        dict.set_item("pending_resolutions", self.shared.tasks.lock().len())?;
        dict.set_item("native_sockets", self.shared.native.open_sockets())?;
        dict.set_item("bus_type", self.config.bus_type())?;
        if let Some(bus) = &self.shared.bus {
            let pending = self
                .shared
                .inbound
                .lock()
                .as_ref()
                .map_or(0, |i| i.pending());
            dict.set_item("bus_inbound_pending", pending)?;
            dict.set_item(
                "bus_events_malformed",
                self.shared.bus_events_malformed.load(Ordering::Relaxed),
            )?;
            for (name, value) in bus.metrics() {
                match value {
                    MetricValue::Int(v) => dict.set_item(name, v)?,
                    MetricValue::Bool(v) => dict.set_item(name, v)?,
                    MetricValue::Text(v) => dict.set_item(name, v)?,
                }
            }
        }
        Ok(dict)
    }

    /// The time from publish to a frame being drained for sending, as a histogram:
    /// `(upper bounds in seconds, count per bucket, sum)`. The counts are per bucket (not
    /// cumulative) and have one more entry than the bounds, for the frames above the last.
    fn delivery_histogram(&self) -> (Vec<f64>, Vec<u64>, f64) {
        let reg = self.shared.registry.lock();
        let h = &reg.metrics.delivery;
        (DELIVERY_BUCKETS.to_vec(), h.counts.to_vec(), h.sum)
    }

    fn __repr__(&self) -> String {
        let reg = self.shared.registry.lock();
        format!(
            "PySubscriptionExecutor(bus={:?}, connections={}, subscriptions={})",
            self.config.bus_type(),
            reg.active_connections(),
            reg.active_subscriptions()
        )
    }
}

fn frames_to_list<'py>(py: Python<'py>, frames: &[FrameBody]) -> PyResult<Bound<'py, PyList>> {
    let mut buf = Vec::new();
    let list = PyList::empty(py);
    for frame in frames {
        buf.clear();
        frame.write_to(&mut buf);
        let text = std::str::from_utf8(&buf)
            .map_err(|e| PyRuntimeError::new_err(format!("frame is not UTF-8: {e}")))?;
        list.append(PyString::new(py, text))?;
    }
    Ok(list)
}

fn unknown_subscription(id: &str) -> PyErr {
    PyKeyError::new_err(format!("Unknown subscription \"{id}\""))
}

fn already_adopted(id: &str) -> PyErr {
    PyValueError::new_err(format!("Connection \"{id}\" already has an adopted socket"))
}

fn unknown_connection(id: &str) -> PyErr {
    PyKeyError::new_err(format!("Unknown connection \"{id}\""))
}
