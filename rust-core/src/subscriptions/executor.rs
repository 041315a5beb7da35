//! The registry and dispatch: subscriptions, the channel index, resolution groups, connections
//! and their queues. Generic over the resolver handle `R` and the connection waker `W`, so the
//! logic is tested without Python; the bindings instantiate it with Python objects.
//!
//! Dispatch of one event: the channel index gives the candidates; event type, tenant, user and
//! argument filters drop some (each drop counted); the survivors are bucketed by resolution
//! group. Groups without a resolver are delivered at once from the event data; groups with one
//! come back as `Pending` for the caller to resolve (once per group) and hand to `resolve`.
//!
//! A resolver that fails for one event is a field error (GraphQL's semantics): that event's
//! `next` carries `errors` and a null field, and the subscription goes on. Only a failure of the
//! stream itself (falling behind, EVENTS_LAGGED) ends a subscription with `error`.

use super::envelope::Envelope;
use super::event::{now_seconds, Event};
use super::filter::{ArgFilter, FilterSpec};
use super::metrics::Metrics;
use super::plan::ProjectionPlan;
use super::position::{self, History};
use super::projection;
use super::queue::{FrameBody, FrameQueue, OverflowPolicy, QueuedFrame, SubKey};
use super::security::{Refusal, SecurityContext};
use super::throttle::{self, Throttle};
use indexmap::IndexSet;
use rustc_hash::{FxBuildHasher, FxHashMap};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which subscriptions may share one resolver call: those with the same resolver and variables
/// and, depending on the scope, the same tenant, user, or nobody else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolverScope {
    Global,
    Tenant,
    User,
    Subscription,
}

impl ResolverScope {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "global" => Ok(Self::Global),
            "tenant" => Ok(Self::Tenant),
            "user" => Ok(Self::User),
            "subscription" => Ok(Self::Subscription),
            other => Err(format!(
                "Unknown resolver scope \"{other}\" (expected global, tenant, user or subscription)"
            )),
        }
    }
}

/// A resolver as registered: the handle, an identity for grouping, and its sharing scope.
pub struct ResolverSpec<R> {
    pub handle: R,
    pub identity: u64,
    pub scope: ResolverScope,
}

/// Everything needed to register one subscription.
pub struct SubscriptionSpec<R> {
    pub connection_id: String,
    pub subscription_id: String,
    /// The id written in frames (the client's operation id); defaults to `subscription_id`.
    pub operation_id: Option<String>,
    pub plan: Arc<ProjectionPlan>,
    /// The operation's variables.
    pub variables: Map<String, Value>,
    /// The root field's argument values, when the caller resolved them (a schema-aware layer
    /// does); filters and resolver grouping use them, else the variables.
    pub arguments: Option<Map<String, Value>>,
    pub security: SecurityContext,
    /// Empty: the root field name.
    pub channels: Vec<String>,
    pub event_types: Option<Vec<String>>,
    pub filters: Vec<FilterSpec>,
    pub resolver: Option<ResolverSpec<R>>,
    /// Keep only the latest value: a `next` still queued for it is replaced by the newer one
    /// instead of another being queued (a slow client gets the latest, never lags).
    pub conflate: bool,
    /// Its `next` payloads carry the event's cursor (`extensions.cursor`) when it has one.
    pub positions: bool,
    /// Registered resuming: live events pass it by until `resumed` (see `position`).
    pub resuming: bool,
    /// At most this many `next` frames a second (see `throttle`).
    pub max_rate: Option<f64>,
}

impl<R> SubscriptionSpec<R> {
    /// What filters and resolver groups read: the arguments if given, else the variables.
    fn inputs(&self) -> &Map<String, Value> {
        self.arguments.as_ref().unwrap_or(&self.variables)
    }
}

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The security check refused it (counted in `subscriptions_refused`).
    Refused(String),
    /// The subscription id is already active.
    Duplicate(String),
    Invalid(String),
}

/// What a resolver call produced for its group.
pub enum Resolution {
    Value(Value),
    /// `None` from the resolver: nothing is sent.
    Skip,
    /// The resolver failed for this event: the group's subscriptions get a `next` whose
    /// payload has the error and a null field; they go on receiving later events.
    Error(FieldError),
    /// The resolver ended the group's subscriptions (`Complete(result)`): a last `next` with the
    /// value when there is one, then `complete`.
    Complete(Option<Value>),
}

/// A field error as the client sees it: the message and `extensions`; the path is each
/// subscription's root response key.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub message: String,
    /// A JSON object, or None for no `extensions`.
    pub extensions: Option<Map<String, Value>>,
}

/// What the frames of one event carry from it: its publish time (seconds since the epoch, for
/// the delivery latency) and its cursor.
#[derive(Debug, Clone, Default)]
pub struct Stamp {
    pub published: f64,
    pub position: Option<Arc<str>>,
}

impl Stamp {
    pub fn of(event: &Event) -> Self {
        Self {
            published: event.ts,
            position: event.position.clone(),
        }
    }
}

/// A group that needs its resolver called for one event.
pub struct Pending<R> {
    pub group: GroupRef,
    pub resolver: R,
    pub seq: u64,
    pub subs: Vec<SubKey>,
    pub stamp: Stamp,
}

/// A generation-checked reference to a resolution group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRef {
    idx: u32,
    gen: u32,
}

struct Subscription {
    id: Box<str>,
    conn: u32,
    channels: Box<[Box<str>]>,
    event_types: Option<Box<[Box<str>]>>,
    security: SecurityContext,
    filters: Box<[ArgFilter]>,
    plan: Arc<ProjectionPlan>,
    group: u32,
    next_prefix: Arc<[u8]>,
    /// Its connection's envelope (for the suffix of `next` frames and for error frames).
    envelope: Envelope,
    operation_id: Box<str>,
    /// Frames of this subscription still in its connection's queue.
    queued: u32,
    /// Ended by the server (error, overflow): kept only until its last frames are taken.
    ended: bool,
    /// Keeps at most one `next` queued: the latest (see `SubscriptionSpec::conflate`).
    conflate: bool,
    /// See `SubscriptionSpec::positions` and `resuming`.
    positions: bool,
    resuming: bool,
    /// Its `max_rate` and the frames it holds back.
    throttle: Option<Box<Throttle>>,
}

struct Connection<W> {
    id: Box<str>,
    queue: FrameQueue,
    /// How this connection's protocol wraps frames.
    envelope: Envelope,
    waker: Option<W>,
    /// A wake-up is outstanding: no other is sent until the queue is drained.
    notified: bool,
    /// In `pressed`, not yet taken.
    pressed: bool,
    subs: Vec<SubKey>,
    /// How many of `subs` have not ended.
    active: usize,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    resolver: u64,
    variables: String,
    scope: String,
}

struct Group<R> {
    key: GroupKey,
    refs: u32,
    resolver: Option<R>,
    next_seq: u64,
    deliver_seq: u64,
    /// Results that finished before an earlier event's result of the same group, with their
    /// subscriptions and stamp.
    parked: BTreeMap<u64, (Vec<SubKey>, Stamp, Resolution)>,
}

/// A slot arena with generations: indices are reused, stale keys are detected.
struct Arena<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Arena<T> {
    fn new() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    fn insert(&mut self, value: T) -> (u32, u32) {
        self.len += 1;
        if let Some(idx) = self.free.pop() {
            let slot = &mut self.slots[idx as usize];
            slot.1 = Some(value);
            (idx, slot.0)
        } else {
            self.slots.push((0, Some(value)));
            ((self.slots.len() - 1) as u32, 0)
        }
    }

    fn get(&self, idx: u32, gen: u32) -> Option<&T> {
        match self.slots.get(idx as usize) {
            Some((g, Some(v))) if *g == gen => Some(v),
            _ => None,
        }
    }

    fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut T> {
        match self.slots.get_mut(idx as usize) {
            Some((g, Some(v))) if *g == gen => Some(v),
            _ => None,
        }
    }

    fn at(&self, idx: u32) -> Option<&T> {
        self.slots.get(idx as usize).and_then(|s| s.1.as_ref())
    }

    fn at_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.slots.get_mut(idx as usize).and_then(|s| s.1.as_mut())
    }

    fn gen_of(&self, idx: u32) -> u32 {
        self.slots.get(idx as usize).map_or(0, |s| s.0)
    }

    fn remove(&mut self, idx: u32) -> Option<T> {
        let slot = self.slots.get_mut(idx as usize)?;
        let value = slot.1.take()?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(idx);
        self.len -= 1;
        Some(value)
    }
}

/// Defaults applied to connections created implicitly by a registration.
#[derive(Debug, Clone, Copy)]
pub struct QueueDefaults {
    pub capacity: usize,
    pub policy: OverflowPolicy,
}

impl Default for QueueDefaults {
    fn default() -> Self {
        Self {
            capacity: 1000,
            policy: OverflowPolicy::Lag,
        }
    }
}

/// The whole engine state. Not thread-safe by itself: the bindings keep it behind one mutex.
pub struct Registry<R, W> {
    subs: Arena<Subscription>,
    sub_ids: FxHashMap<Box<str>, SubKey>,
    channels: FxHashMap<Box<str>, IndexSet<SubKey, FxBuildHasher>>,
    conns: Arena<Connection<W>>,
    conn_ids: FxHashMap<Box<str>, u32>,
    groups: Arena<Group<R>>,
    group_ids: FxHashMap<GroupKey, u32>,
    active: usize,
    defaults: QueueDefaults,
    to_wake: Vec<u32>,
    /// Connections whose queue is at least half full, each once until taken.
    pressed: Vec<u32>,
    /// Channels that gained their first (true) or lost their last (false) subscription since
    /// last taken: what a bus must start or stop listening to.
    channel_changes: Vec<(Box<str>, bool)>,
    /// Handles released while the lock was held; dropped by the caller after unlocking, so a
    /// Python destructor never runs under the lock.
    graveyard: Vec<Released<R, W>>,
    pub metrics: Metrics,
    /// The in-memory bus's history (recorded with each publish, under the same lock as its
    /// dispatch, so a resume sees every event exactly once: in the history or live).
    pub history: Option<History>,
    /// Subscriptions holding frames back (`max_rate`).
    throttled: IndexSet<SubKey, FxBuildHasher>,
}

/// A resolver or waker no longer referenced by the registry.
pub enum Released<R, W> {
    Resolver(R),
    Waker(W),
}

impl<R: Clone, W> Default for Registry<R, W> {
    fn default() -> Self {
        Self::new(QueueDefaults::default())
    }
}

impl<R: Clone, W> Registry<R, W> {
    pub fn new(defaults: QueueDefaults) -> Self {
        Self {
            subs: Arena::new(),
            sub_ids: FxHashMap::default(),
            channels: FxHashMap::default(),
            conns: Arena::new(),
            conn_ids: FxHashMap::default(),
            groups: Arena::new(),
            group_ids: FxHashMap::default(),
            active: 0,
            defaults,
            to_wake: Vec::new(),
            pressed: Vec::new(),
            channel_changes: Vec::new(),
            graveyard: Vec::new(),
            metrics: Metrics::default(),
            history: None,
            throttled: IndexSet::default(),
        }
    }

    pub fn defaults(&self) -> QueueDefaults {
        self.defaults
    }

    // ----- connections -----

    /// Opens (or reconfigures) a connection. Returns the previous waker, if replaced.
    pub fn open_connection(
        &mut self,
        id: &str,
        waker: Option<W>,
        capacity: usize,
        policy: OverflowPolicy,
        envelope: Envelope,
    ) -> Option<W> {
        let idx = self.connection_index(id);
        let conn = self.conns.at_mut(idx)?;
        conn.queue.capacity = capacity;
        conn.queue.policy = policy;
        conn.envelope = envelope;
        std::mem::replace(&mut conn.waker, waker)
    }

    fn connection_index(&mut self, id: &str) -> u32 {
        if let Some(&idx) = self.conn_ids.get(id) {
            return idx;
        }
        let (idx, _) = self.conns.insert(Connection {
            id: id.into(),
            queue: FrameQueue::new(self.defaults.capacity, self.defaults.policy),
            envelope: Envelope::default(),
            waker: None,
            notified: false,
            pressed: false,
            subs: Vec::new(),
            active: 0,
        });
        self.conn_ids.insert(id.into(), idx);
        idx
    }

    /// Removes a connection and everything about it. Returns how many subscriptions it had, or
    /// `None` when the connection is unknown.
    pub fn remove_connection(&mut self, id: &str) -> Option<usize> {
        let idx = self.conn_ids.remove(id)?;
        let conn = self.conns.remove(idx)?;
        let mut count = 0;
        for key in &conn.subs {
            if let Some(sub) = self.subs.get(key.idx, key.gen) {
                if !sub.ended {
                    count += 1;
                    self.metrics.subscriptions_completed += 1;
                }
                self.unindex(*key);
                self.free_sub(*key, false);
            }
        }
        if let Some(w) = conn.waker {
            self.graveyard.push(Released::Waker(w));
        }
        Some(count)
    }

    /// The connection's waker: `None` when the connection is unknown.
    pub fn waker(&self, id: &str) -> Option<Option<&W>> {
        let idx = *self.conn_ids.get(id)?;
        self.conns.at(idx).map(|c| c.waker.as_ref())
    }

    /// Replaces the connection's waker, keeping its queue settings; returns the previous one
    /// (`None` when the connection is unknown, and `waker` is handed back).
    pub fn set_waker(&mut self, id: &str, waker: W) -> Result<Option<W>, W> {
        let Some(conn) = self
            .conn_ids
            .get(id)
            .and_then(|&idx| self.conns.at_mut(idx))
        else {
            return Err(waker);
        };
        Ok(conn.waker.replace(waker))
    }

    pub fn connection_exists(&self, id: &str) -> bool {
        self.conn_ids.contains_key(id)
    }

    /// Takes every queued frame of a connection (oldest first) and re-arms its wake-up.
    pub fn drain(&mut self, id: &str) -> Option<Vec<FrameBody>> {
        let idx = *self.conn_ids.get(id)?;
        let conn = self.conns.at_mut(idx)?;
        conn.notified = false;
        let frames: Vec<QueuedFrame> = conn.queue.drain_all().collect();
        self.metrics.frames_sent += frames.len() as u64;
        let now = now_seconds();
        let mut out = Vec::with_capacity(frames.len());
        for f in frames {
            self.metrics.delivery.observe(now - f.published);
            self.frame_taken(f.sub);
            out.push(f.body);
        }
        Some(out)
    }

    /// Number of frames waiting on a connection.
    pub fn queued(&self, id: &str) -> Option<usize> {
        let idx = *self.conn_ids.get(id)?;
        self.conns.at(idx).map(|c| c.queue.len())
    }

    /// Connections that got frames since they were last drained, with their wakers.
    pub fn take_wakeups(&mut self) -> Vec<&W> {
        let wake = std::mem::take(&mut self.to_wake);
        let conns = &self.conns;
        wake.into_iter()
            .filter_map(|idx| conns.at(idx).and_then(|c| c.waker.as_ref()))
            .collect()
    }

    /// Connections whose queue was at least half full when a frame was queued since the last
    /// call (their writer is behind), with their wakers; only those still at least half full.
    /// One still so when the next frame comes is pressed again.
    pub fn take_pressed(&mut self) -> Vec<&W> {
        let pressed = std::mem::take(&mut self.pressed);
        for &idx in &pressed {
            if let Some(conn) = self.conns.at_mut(idx) {
                conn.pressed = false;
            }
        }
        let conns = &self.conns;
        pressed
            .into_iter()
            .filter_map(|idx| conns.at(idx))
            .filter(|c| c.queue.len() >= half(c.queue.capacity))
            .filter_map(|c| c.waker.as_ref())
            .collect()
    }

    /// Channels to start (true) or stop (false) listening to, in the order they changed.
    pub fn take_channel_changes(&mut self) -> Vec<(Box<str>, bool)> {
        std::mem::take(&mut self.channel_changes)
    }

    pub fn take_released(&mut self) -> Vec<Released<R, W>> {
        std::mem::take(&mut self.graveyard)
    }

    // ----- subscriptions -----

    pub fn register(&mut self, spec: SubscriptionSpec<R>) -> Result<SubKey, RegisterError> {
        let checked = spec
            .security
            .check_variables(&spec.variables)
            .and_then(|()| match &spec.arguments {
                Some(args) => spec.security.check_variables(args),
                None => Ok(()),
            });
        if let Err(msg) = checked {
            self.metrics.subscriptions_refused += 1;
            return Err(RegisterError::Refused(msg));
        }
        if let Some(&old) = self.sub_ids.get(spec.subscription_id.as_str()) {
            let ended = self.subs.get(old.idx, old.gen).is_none_or(|s| s.ended);
            if !ended {
                return Err(RegisterError::Duplicate(format!(
                    "Subscription \"{}\" is already registered",
                    spec.subscription_id
                )));
            }
            self.free_sub(old, false);
        }
        let mut filters = Vec::with_capacity(spec.filters.len());
        for f in &spec.filters {
            if let Some(bound) = f.bind(spec.inputs()).map_err(RegisterError::Invalid)? {
                filters.push(bound);
            }
        }
        let channels: Box<[Box<str>]> = if spec.channels.is_empty() {
            Box::new([spec.plan.root_field_name().into()])
        } else {
            spec.channels.iter().map(|c| c.as_str().into()).collect()
        };
        let group = self.group_for(&spec)?;
        let conn_idx = self.connection_index(&spec.connection_id);
        let operation_id: Box<str> = spec
            .operation_id
            .as_deref()
            .unwrap_or(&spec.subscription_id)
            .into();
        let envelope = self
            .conns
            .at(conn_idx)
            .map_or_else(Envelope::default, |c| c.envelope);
        let sub = Subscription {
            id: spec.subscription_id.as_str().into(),
            conn: conn_idx,
            next_prefix: envelope.next_prefix(&operation_id).into(),
            envelope,
            operation_id,
            channels,
            event_types: spec
                .event_types
                .map(|t| t.iter().map(|s| s.as_str().into()).collect()),
            security: spec.security,
            filters: filters.into_boxed_slice(),
            plan: spec.plan,
            group,
            queued: 0,
            ended: false,
            conflate: spec.conflate,
            positions: spec.positions,
            resuming: spec.resuming,
            throttle: spec.max_rate.map(|rate| Box::new(Throttle::new(rate))),
        };
        let (idx, gen) = self.subs.insert(sub);
        let key = SubKey { idx, gen };
        if let Some(sub) = self.subs.at(idx) {
            for channel in sub.channels.iter() {
                let set = self.channels.entry(channel.clone()).or_insert_with(|| {
                    self.channel_changes.push((channel.clone(), true));
                    IndexSet::default()
                });
                set.insert(key);
            }
        }
        if let Some(conn) = self.conns.at_mut(conn_idx) {
            conn.subs.push(key);
            conn.active += 1;
        }
        self.sub_ids.insert(spec.subscription_id.into(), key);
        self.active += 1;
        self.metrics.subscriptions_registered += 1;
        Ok(key)
    }

    fn group_for(&mut self, spec: &SubscriptionSpec<R>) -> Result<u32, RegisterError> {
        let key = match &spec.resolver {
            None => GroupKey {
                resolver: 0,
                variables: String::new(),
                scope: String::new(),
            },
            Some(r) => {
                let s = &spec.security;
                let scope = match r.scope {
                    ResolverScope::Global => String::new(),
                    ResolverScope::Tenant => format!("t:{}", s.tenant_id.as_deref().unwrap_or("")),
                    ResolverScope::User => format!(
                        "t:{}\u{0}u:{}",
                        s.tenant_id.as_deref().unwrap_or(""),
                        s.user_id.as_deref().unwrap_or("")
                    ),
                    ResolverScope::Subscription => {
                        format!("s:{}\u{0}{}", spec.connection_id, spec.subscription_id)
                    }
                };
                GroupKey {
                    resolver: r.identity,
                    // serde_json's Map is ordered by key, so equal variables give equal text.
                    variables: serde_json::to_string(spec.inputs())
                        .map_err(|e| RegisterError::Invalid(e.to_string()))?,
                    scope,
                }
            }
        };
        if let Some(&idx) = self.group_ids.get(&key) {
            if let Some(g) = self.groups.at_mut(idx) {
                g.refs += 1;
                return Ok(idx);
            }
        }
        let (idx, _) = self.groups.insert(Group {
            key: key.clone(),
            refs: 1,
            resolver: spec.resolver.as_ref().map(|r| r.handle.clone()),
            next_seq: 0,
            deliver_seq: 0,
            parked: BTreeMap::new(),
        });
        self.group_ids.insert(key, idx);
        Ok(idx)
    }

    /// The key of an active or ended subscription.
    pub fn key_of(&self, subscription_id: &str) -> Option<SubKey> {
        self.sub_ids.get(subscription_id).copied()
    }

    /// True when the subscription exists and has not ended.
    pub fn is_active(&self, subscription_id: &str) -> bool {
        self.key_of(subscription_id)
            .and_then(|k| self.subs.get(k.idx, k.gen))
            .is_some_and(|s| !s.ended)
    }

    /// Ends a subscription on the client's request: its queued frames are dropped too, since
    /// nothing may be sent for an operation after `complete`. `None` when unknown.
    pub fn complete(&mut self, subscription_id: &str) -> Option<()> {
        let key = *self.sub_ids.get(subscription_id)?;
        let sub = self.subs.get(key.idx, key.gen)?;
        let (conn, ended) = (sub.conn, sub.ended);
        if let Some(c) = self.conns.at_mut(conn) {
            c.queue.purge(key);
        }
        if !ended {
            self.metrics.subscriptions_completed += 1;
        }
        self.unindex(key);
        self.free_sub(key, true);
        Some(())
    }

    /// Takes the oldest queued frame of one subscription.
    pub fn next_frame(&mut self, subscription_id: &str) -> Option<Option<FrameBody>> {
        let key = *self.sub_ids.get(subscription_id)?;
        let conn = self.subs.get(key.idx, key.gen)?.conn;
        let frame = self
            .conns
            .at_mut(conn)
            .and_then(|c| c.queue.take_first_of(key));
        if let Some(f) = &frame {
            self.metrics.frames_sent += 1;
            self.metrics.delivery.observe(now_seconds() - f.published);
            self.frame_taken(key);
        }
        Some(frame.map(|f| f.body))
    }

    fn frame_taken(&mut self, key: SubKey) {
        if let Some(sub) = self.subs.get_mut(key.idx, key.gen) {
            sub.queued = sub.queued.saturating_sub(1);
            if sub.ended && sub.queued == 0 {
                self.free_sub(key, true);
            }
        }
    }

    /// Takes a subscription out of the channel index and its group (it receives nothing more).
    fn unindex(&mut self, key: SubKey) {
        let Some(sub) = self.subs.get_mut(key.idx, key.gen) else {
            return;
        };
        if sub.ended {
            return;
        }
        sub.ended = true;
        self.active -= 1;
        let (group, conn) = (sub.group, sub.conn);
        if let Some(c) = self.conns.at_mut(conn) {
            c.active -= 1;
        }
        for channel in sub.channels.iter() {
            if let Some(set) = self.channels.get_mut(channel) {
                set.swap_remove(&key);
                if set.is_empty() {
                    self.channels.remove(channel);
                    self.channel_changes.push((channel.clone(), false));
                }
            }
        }
        self.release_group(group);
    }

    fn release_group(&mut self, idx: u32) {
        let Some(group) = self.groups.at_mut(idx) else {
            return;
        };
        group.refs -= 1;
        if group.refs == 0 {
            if let Some(g) = self.groups.remove(idx) {
                self.group_ids.remove(&g.key);
                if let Some(r) = g.resolver {
                    self.graveyard.push(Released::Resolver(r));
                }
            }
        }
    }

    /// Forgets an (already unindexed) subscription. `detach` also removes it from its
    /// connection's list (not needed when the connection itself is going away).
    fn free_sub(&mut self, key: SubKey, detach: bool) {
        self.unindex(key);
        let Some(sub) = self.subs.remove(key.idx) else {
            return;
        };
        if self.sub_ids.get(&sub.id) == Some(&key) {
            self.sub_ids.remove(&sub.id);
        }
        if detach {
            if let Some(conn) = self.conns.at_mut(sub.conn) {
                if let Some(pos) = conn.subs.iter().position(|k| *k == key) {
                    conn.subs.swap_remove(pos);
                }
            }
        }
    }

    // ----- dispatch -----

    /// Dispatches an event: delivers the groups without a resolver and returns the others, each
    /// to be resolved once and handed to [`Registry::resolve`]. Returns the frames queued now.
    pub fn dispatch(&mut self, event: &Event) -> (usize, Vec<Pending<R>>) {
        self.metrics.events_published += 1;
        let Some(candidates) = self.channels.get(event.channel.as_str()) else {
            return (0, Vec::new());
        };
        // Buckets in first-seen order; most events touch one group, so remember the last.
        let mut buckets: Vec<(u32, Vec<SubKey>)> = Vec::new();
        let mut bucket_of: FxHashMap<u32, usize> = FxHashMap::default();
        let mut last: usize = usize::MAX;
        let m = &mut self.metrics;
        for key in candidates {
            let Some(sub) = self.subs.at(key.idx) else {
                continue;
            };
            if sub.resuming || !admits(m, sub, event) {
                continue;
            }
            if last == usize::MAX || buckets[last].0 != sub.group {
                last = *bucket_of.entry(sub.group).or_insert_with(|| {
                    // Only the first bucket is sized for everyone: with many groups, each
                    // holds few subscriptions.
                    let cap = if buckets.is_empty() {
                        candidates.len()
                    } else {
                        4
                    };
                    buckets.push((sub.group, Vec::with_capacity(cap)));
                    buckets.len() - 1
                });
            }
            buckets[last].1.push(*key);
        }
        self.deliver_buckets(event, buckets)
    }

    /// Dispatches an event of its history to one resuming subscription (its filters and
    /// security checks apply as to any event).
    pub fn dispatch_to(&mut self, key: SubKey, event: &Event) -> (usize, Vec<Pending<R>>) {
        let m = &mut self.metrics;
        let Some(sub) = self.subs.get(key.idx, key.gen) else {
            return (0, Vec::new());
        };
        if sub.ended || !admits(m, sub, event) {
            return (0, Vec::new());
        }
        m.events_replayed += 1;
        let group = sub.group;
        self.deliver_buckets(event, vec![(group, vec![key])])
    }

    fn deliver_buckets(
        &mut self,
        event: &Event,
        buckets: Vec<(u32, Vec<SubKey>)>,
    ) -> (usize, Vec<Pending<R>>) {
        let mut delivered = 0;
        let mut pending = Vec::new();
        for (group_idx, subs) in buckets {
            let gen = self.groups.gen_of(group_idx);
            let Some(group) = self.groups.at_mut(group_idx) else {
                continue;
            };
            match &group.resolver {
                None => delivered += self.deliver_value(&subs, &Stamp::of(event), &event.data),
                Some(r) => {
                    let seq = group.next_seq;
                    group.next_seq += 1;
                    self.metrics.resolver_calls += 1;
                    pending.push(Pending {
                        group: GroupRef {
                            idx: group_idx,
                            gen,
                        },
                        resolver: r.clone(),
                        seq,
                        subs,
                        stamp: Stamp::of(event),
                    });
                }
            }
        }
        (delivered, pending)
    }

    /// A resuming subscription turns live; with `gap`, it first gets a `RESUME_GAP` field error
    /// (its history no longer covers its cursor). False when it is gone.
    pub fn resumed(&mut self, key: SubKey, gap: bool) -> bool {
        let Some(sub) = self.subs.get_mut(key.idx, key.gen) else {
            return false;
        };
        sub.resuming = false;
        if sub.ended {
            return false;
        }
        if gap {
            self.metrics.resume_gaps += 1;
            let error = FieldError {
                message: position::GAP_MESSAGE.to_owned(),
                extensions: Some(Map::from_iter([(
                    "code".to_owned(),
                    Value::from(position::RESUME_GAP),
                )])),
            };
            self.deliver(&[key], &Stamp::default(), |plan| {
                projection::error_payload(plan, &error)
            });
        }
        true
    }

    /// The channels of a subscription.
    pub fn channels_of(&self, key: SubKey) -> Option<&[Box<str>]> {
        self.subs.get(key.idx, key.gen).map(|s| &*s.channels)
    }

    /// Delivers a group's resolution (of a `Pending` taken from `dispatch`: its group, seq,
    /// subscriptions and publish time), keeping each group's results in event order: a result
    /// that finishes before an earlier one of the same group waits for it.
    pub fn resolve(
        &mut self,
        group: GroupRef,
        seq: u64,
        subs: Vec<SubKey>,
        stamp: Stamp,
        resolution: Resolution,
    ) -> usize {
        let Some(g) = self.groups.get_mut(group.idx, group.gen) else {
            return 0;
        };
        if seq != g.deliver_seq {
            g.parked.insert(seq, (subs, stamp, resolution));
            return 0;
        }
        let mut delivered = self.apply(&subs, &stamp, resolution);
        while let Some(g) = self.groups.get_mut(group.idx, group.gen) {
            g.deliver_seq += 1;
            let next = g.deliver_seq;
            match g.parked.remove(&next) {
                Some((subs, stamp, resolution)) => {
                    delivered += self.apply(&subs, &stamp, resolution)
                }
                None => break,
            }
        }
        delivered
    }

    fn apply(&mut self, subs: &[SubKey], stamp: &Stamp, resolution: Resolution) -> usize {
        match resolution {
            Resolution::Value(v) => self.deliver_value(subs, stamp, &v),
            Resolution::Skip => {
                self.metrics.resolver_skips += 1;
                0
            }
            Resolution::Error(error) => {
                self.metrics.resolver_errors += 1;
                self.deliver(subs, stamp, |plan| projection::error_payload(plan, &error))
            }
            Resolution::Complete(value) => {
                let delivered = match value {
                    Some(v) => self.deliver_value(subs, stamp, &v),
                    None => 0,
                };
                for &key in subs {
                    self.end_completed(key, stamp.published);
                }
                delivered
            }
        }
    }

    /// Projects `value` for each subscription (once per distinct plan) and queues the frames.
    fn deliver_value(&mut self, subs: &[SubKey], stamp: &Stamp, value: &Value) -> usize {
        self.deliver(subs, stamp, |plan| projection::payload(plan, value))
    }

    /// Queues a `next` frame for each subscription, with the payload `payload_for` makes for
    /// its plan (once per distinct plan, and once more with the cursor for those that want it).
    fn deliver(
        &mut self,
        subs: &[SubKey],
        stamp: &Stamp,
        payload_for: impl Fn(&ProjectionPlan) -> Vec<u8>,
    ) -> usize {
        let published = stamp.published;
        // One payload per distinct plan; consecutive subscriptions usually share the last one.
        type PayloadKey = (*const ProjectionPlan, bool);
        let mut payloads: FxHashMap<PayloadKey, Arc<[u8]>> = FxHashMap::default();
        let mut last: Option<(PayloadKey, Arc<[u8]>)> = None;
        let mut delivered = 0;
        for &key in subs {
            let Some(sub) = self.subs.get(key.idx, key.gen) else {
                continue;
            };
            if sub.ended {
                continue;
            }
            let cursor = stamp.position.as_deref().filter(|_| sub.positions);
            let payload_key = (Arc::as_ptr(&sub.plan), cursor.is_some());
            let payload = match &last {
                Some((p, bytes)) if *p == payload_key => bytes.clone(),
                _ => {
                    let bytes = payloads
                        .entry(payload_key)
                        .or_insert_with(|| {
                            let payload = payload_for(&sub.plan);
                            match cursor {
                                Some(c) => position::with_cursor(&payload, c).into(),
                                None => payload.into(),
                            }
                        })
                        .clone();
                    last = Some((payload_key, bytes.clone()));
                    bytes
                }
            };
            let conn_idx = sub.conn;
            let throttled = sub.throttle.is_some();
            let conflated = sub.conflate && sub.queued > 0;
            let body = match cursor {
                // An SSE event's id is its cursor: what the browser sends back as Last-Event-ID.
                Some(c) if sub.envelope.has_event_ids() => {
                    FrameBody::Whole(sub.envelope.next_with_id(&sub.next_prefix, &payload, c))
                }
                _ => FrameBody::Next {
                    prefix: sub.next_prefix.clone(),
                    payload,
                    suffix: sub.envelope.next_suffix(),
                },
            };
            let sent = if throttled {
                self.throttled_next(key, conn_idx, body, published)
            } else {
                self.send_next(key, conn_idx, body, published, conflated)
            };
            if sent {
                delivered += 1;
            }
        }
        self.metrics.events_delivered += delivered as u64;
        delivered
    }

    /// Queues a `next` for `key` (`conflated`: in the place of its `next` still queued).
    /// False when it was not queued (the subscription lagged and ended).
    fn send_next(
        &mut self,
        key: SubKey,
        conn_idx: u32,
        body: FrameBody,
        published: f64,
        conflated: bool,
    ) -> bool {
        let body = if conflated {
            match self.conflate(key, conn_idx, body, published) {
                Ok(()) => return true,
                Err(unqueued) => unqueued,
            }
        } else {
            body
        };
        self.push_frame(key, conn_idx, body, published)
    }

    /// A `next` for a subscription with a `max_rate`: sent when its slot is free, else held
    /// (only the latest, when it conflates). Holding more than its connection's queue bound
    /// lags it.
    fn throttled_next(
        &mut self,
        key: SubKey,
        conn_idx: u32,
        body: FrameBody,
        published: f64,
    ) -> bool {
        let now = throttle::monotonic();
        let capacity = self.conns.at(conn_idx).map_or(0, |c| c.queue.capacity);
        let Some(sub) = self.subs.get_mut(key.idx, key.gen) else {
            return false;
        };
        let (conflate, queued) = (sub.conflate, sub.queued as usize);
        let Some(t) = sub.throttle.as_mut() else {
            return false;
        };
        if t.admit(now) {
            let conflated = conflate && queued > 0;
            return self.send_next(key, conn_idx, body, published, conflated);
        }
        if conflate {
            if let Some(latest) = t.held.back_mut() {
                *latest = (body, published);
                self.metrics.frames_conflated += 1;
                return true;
            }
        }
        t.held.push_back((body, published));
        let over = t.held.len() + queued > capacity;
        self.metrics.frames_held += 1;
        self.throttled.insert(key);
        if over {
            self.metrics.queue_overflows += 1;
            self.end_lagged(key, published);
            return false;
        }
        true
    }

    /// Sends the held frames whose slots have come; returns when the next one's comes (on
    /// `throttle::monotonic`'s clock), None when nothing is held.
    pub fn release_held(&mut self) -> Option<f64> {
        if self.throttled.is_empty() {
            return None;
        }
        let now = throttle::monotonic();
        let mut next: Option<f64> = None;
        let keys: Vec<SubKey> = self.throttled.iter().copied().collect();
        for key in keys {
            loop {
                let released = match self.subs.get_mut(key.idx, key.gen) {
                    Some(sub) if !sub.ended => {
                        let (conn, conflated) = (sub.conn, sub.conflate && sub.queued > 0);
                        sub.throttle
                            .as_mut()
                            .map(|t| (conn, conflated, t.release(now), t.due()))
                    }
                    _ => None,
                };
                match released {
                    Some((conn, conflated, Some((body, published)), _)) => {
                        self.send_next(key, conn, body, published, conflated);
                    }
                    Some((_, _, None, Some(due))) => {
                        next = Some(next.map_or(due, |n| n.min(due)));
                        break;
                    }
                    _ => {
                        // Nothing held any more, or gone (its frames go with it).
                        self.throttled.swap_remove(&key);
                        break;
                    }
                }
            }
        }
        next
    }

    /// Puts `body` in the place of `key`'s `next` still queued (counted in `frames_conflated`);
    /// the body back when there is none.
    fn conflate(
        &mut self,
        key: SubKey,
        conn_idx: u32,
        body: FrameBody,
        published: f64,
    ) -> Result<(), FrameBody> {
        let Some(conn) = self.conns.at_mut(conn_idx) else {
            return Err(body);
        };
        conn.queue.replace_next_of(key, body, published)?;
        self.metrics.frames_conflated += 1;
        Ok(())
    }

    /// Queues a frame for `key`, applying its connection's overflow policy. False when the
    /// frame was not queued (the subscription lagged and ended).
    fn push_frame(&mut self, key: SubKey, conn_idx: u32, body: FrameBody, published: f64) -> bool {
        let Some(conn) = self.conns.at_mut(conn_idx) else {
            return false;
        };
        if conn.queue.is_full() {
            self.metrics.queue_overflows += 1;
            match conn.queue.policy {
                OverflowPolicy::Lag => {
                    self.end_lagged(key, published);
                    return false;
                }
                OverflowPolicy::DropOldest => {
                    if let Some(old) = conn.queue.pop_front() {
                        self.metrics.frames_dropped += 1;
                        self.frame_taken(old.sub);
                    }
                }
            }
        }
        self.enqueue(key, conn_idx, body, published);
        true
    }

    fn enqueue(&mut self, key: SubKey, conn_idx: u32, body: FrameBody, published: f64) {
        if let Some(sub) = self.subs.get_mut(key.idx, key.gen) {
            sub.queued += 1;
        }
        if let Some(conn) = self.conns.at_mut(conn_idx) {
            conn.queue.push(QueuedFrame {
                sub: key,
                body,
                published,
            });
            self.metrics.frames_queued += 1;
            if !conn.notified {
                conn.notified = true;
                self.to_wake.push(conn_idx);
            }
            if !conn.pressed && conn.queue.len() >= half(conn.queue.capacity) {
                conn.pressed = true;
                self.pressed.push(conn_idx);
            }
        }
    }

    /// The server ends a subscription: it gets `complete` (after its frames already queued,
    /// past the queue bound since the client must learn its stream is over) and receives
    /// nothing more.
    fn end_completed(&mut self, key: SubKey, published: f64) {
        if self.end_with(key, published, |sub| {
            sub.envelope.complete_frame(&sub.operation_id)
        }) {
            self.metrics.subscriptions_completed += 1;
        }
    }

    /// Ends a live subscription with the last frame `last_frame` makes for it, queued past
    /// the bound (the client must learn why its stream stopped). False if it had ended.
    fn end_with(
        &mut self,
        key: SubKey,
        published: f64,
        last_frame: impl FnOnce(&Subscription) -> Vec<u8>,
    ) -> bool {
        let Some(sub) = self.subs.get(key.idx, key.gen) else {
            return false;
        };
        if sub.ended {
            return false;
        }
        let frame = last_frame(sub);
        let conn = sub.conn;
        self.unindex(key);
        self.enqueue(
            key,
            conn,
            FrameBody::Whole(frame.into_boxed_slice()),
            published,
        );
        true
    }

    /// Ends every subscription on `channel` with `complete` (an auction closes, a game ends);
    /// returns how many.
    pub fn complete_channel(&mut self, channel: &str) -> usize {
        let keys: Vec<SubKey> = match self.channels.get(channel) {
            Some(set) => set.iter().copied().collect(),
            None => return 0,
        };
        let now = now_seconds();
        for &key in &keys {
            self.end_completed(key, now);
        }
        keys.len()
    }

    /// The subscription fell behind (EVENTS_LAGGED): it gets an `error` message, past the queue
    /// bound since the client must learn why its stream stopped, and ends.
    fn end_lagged(&mut self, key: SubKey, published: f64) {
        let mut extensions = Map::new();
        extensions.insert("code".into(), Value::from("EVENTS_LAGGED"));
        let lagged = FieldError {
            message: "The subscription fell too far behind and was ended; resubscribe to resync"
                .into(),
            extensions: Some(extensions),
        };
        self.end_with(key, published, |sub| {
            sub.envelope.error_frame(&sub.operation_id, |out| {
                projection::write_root_error(out, &sub.plan, &lagged);
            })
        });
    }

    // ----- gauges -----

    pub fn active_subscriptions(&self) -> usize {
        self.active
    }

    pub fn active_connections(&self) -> usize {
        self.conns.len
    }

    /// Every channel with at least one subscription.
    pub fn channel_names(&self) -> Vec<Box<str>> {
        self.channels.keys().cloned().collect()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len
    }

    pub fn queued_frames(&self) -> usize {
        self.conns
            .slots
            .iter()
            .filter_map(|s| s.1.as_ref())
            .map(|c| c.queue.len())
            .sum()
    }

    /// How many subscriptions of a connection have not ended (O(1)).
    pub fn connection_active(&self, id: &str) -> Option<usize> {
        let idx = *self.conn_ids.get(id)?;
        self.conns.at(idx).map(|c| c.active)
    }

    /// Subscriptions ids of a connection (active and ended-but-undrained).
    pub fn connection_subscriptions(&self, id: &str) -> Option<Vec<String>> {
        let idx = *self.conn_ids.get(id)?;
        let conn = self.conns.at(idx)?;
        Some(
            conn.subs
                .iter()
                .filter_map(|k| self.subs.get(k.idx, k.gen))
                .filter(|s| !s.ended)
                .map(|s| s.id.to_string())
                .collect(),
        )
    }

    pub fn connection_id_of(&self, idx: u32) -> Option<&str> {
        self.conns.at(idx).map(|c| &*c.id)
    }
}

/// Where a queue of `capacity` frames counts as pressed (`Registry::take_pressed`).
/// Whether `sub` may receive `event`: its event types, tenant and user, argument filters (each
/// drop counted).
fn admits(m: &mut Metrics, sub: &Subscription, event: &Event) -> bool {
    if let Some(types) = &sub.event_types {
        if !types.iter().any(|t| **t == *event.event_type) {
            m.events_filtered_event_type += 1;
            return false;
        }
    }
    match sub
        .security
        .admits(event.tenant_id.as_deref(), event.user_id.as_deref())
    {
        Ok(()) => {}
        Err(Refusal::Tenant) => {
            m.events_filtered_tenant += 1;
            return false;
        }
        Err(Refusal::User) => {
            m.events_filtered_user += 1;
            return false;
        }
    }
    if !sub.filters.iter().all(|f| f.matches(&event.data)) {
        m.events_filtered_args += 1;
        return false;
    }
    true
}

fn half(capacity: usize) -> usize {
    (capacity / 2).max(1)
}

#[cfg(test)]
mod tests;
