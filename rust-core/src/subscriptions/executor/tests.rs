use super::*;
use crate::subscriptions::filter::{FilterOp, Operand};
use crate::subscriptions::plan::compile;
use serde_json::json;

type Reg = Registry<u32, &'static str>;

fn plan(q: &str) -> Arc<ProjectionPlan> {
    match compile(q, None, &Map::new(), None) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("{e}"),
    }
}

fn spec(conn: &str, id: &str, user: Option<&str>, tenant: Option<&str>) -> SubscriptionSpec<u32> {
    SubscriptionSpec {
        connection_id: conn.into(),
        subscription_id: id.into(),
        operation_id: None,
        plan: plan("subscription { users { id } }"),
        variables: Map::new(),
        arguments: None,
        security: SecurityContext {
            user_id: user.map(Into::into),
            tenant_id: tenant.map(Into::into),
        },
        channels: Vec::new(),
        event_types: None,
        filters: Vec::new(),
        resolver: None,
        conflate: false,
        positions: false,
        resuming: false,
        max_rate: None,
    }
}

fn event(channel: &str, data: Value, tenant: Option<&str>, user: Option<&str>) -> Event {
    Event {
        id: 1,
        channel: channel.into(),
        event_type: "userCreated".into(),
        data,
        tenant_id: tenant.map(Into::into),
        user_id: user.map(Into::into),
        ts: 0.0,
        position: None,
    }
}

fn next_json(reg: &mut Reg, id: &str) -> Option<Value> {
    let frame = reg.next_frame(id)??;
    serde_json::from_slice(&frame.to_vec()).ok()
}

fn register(reg: &mut Reg, s: SubscriptionSpec<u32>) -> SubKey {
    match reg.register(s) {
        Ok(k) => k,
        Err(e) => panic!("{e:?}"),
    }
}

/// Opens connection "c" with a waker and a queue of `capacity` under the lag policy.
fn open_lagging(reg: &mut Reg, capacity: usize) {
    reg.open_connection(
        "c",
        Some("waker"),
        capacity,
        OverflowPolicy::Lag,
        Envelope::default(),
    );
}

#[test]
fn phase_one_criterion() {
    let mut reg = Reg::default();
    register(
        &mut reg,
        spec("conn1", "sub1", Some("user1"), Some("tenant1")),
    );
    let (n, pending) = reg.dispatch(&event(
        "users",
        json!({"id": "123", "name": "Alice"}),
        None,
        None,
    ));
    assert_eq!((n, pending.len()), (1, 0));
    assert_eq!(
        next_json(&mut reg, "sub1"),
        Some(json!({"id": "sub1", "type": "next", "payload": {"data": {"users": {"id": "123"}}}}))
    );
    assert_eq!(reg.next_frame("sub1").map(|f| f.is_none()), Some(true));
}

#[test]
fn channel_index_touches_only_its_channel() {
    let mut reg = Reg::default();
    let mut a = spec("c", "a", None, None);
    a.channels = vec!["room:1".into()];
    let mut b = spec("c", "b", None, None);
    b.channels = vec!["room:2".into(), "room:3".into()];
    register(&mut reg, a);
    register(&mut reg, b);
    assert_eq!(reg.dispatch(&event("room:2", json!({}), None, None)).0, 1);
    assert_eq!(reg.dispatch(&event("room:3", json!({}), None, None)).0, 1);
    assert_eq!(reg.dispatch(&event("users", json!({}), None, None)).0, 0);
    assert_eq!(reg.channel_count(), 3);
    assert_eq!(reg.complete("b"), Some(()));
    assert_eq!(reg.channel_count(), 1);
    assert_eq!(reg.dispatch(&event("room:2", json!({}), None, None)).0, 0);
}

#[test]
fn tenant_and_user_isolation_is_counted() {
    let mut reg = Reg::default();
    register(&mut reg, spec("c1", "s1", Some("u1"), Some("t1")));
    register(&mut reg, spec("c2", "s2", Some("u2"), Some("t2")));
    register(&mut reg, spec("c3", "s3", None, None));
    assert_eq!(
        reg.dispatch(&event("users", json!({}), Some("t1"), None)).0,
        1
    );
    assert_eq!(reg.metrics.events_filtered_tenant, 2);
    assert_eq!(
        reg.dispatch(&event("users", json!({}), None, Some("u2"))).0,
        1
    );
    assert_eq!(reg.metrics.events_filtered_user, 2);
    assert_eq!(reg.dispatch(&event("users", json!({}), None, None)).0, 3);
    let mut bad = spec("c4", "s4", Some("u1"), Some("t1"));
    bad.variables = json!({"userId": "u2"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(matches!(reg.register(bad), Err(RegisterError::Refused(_))));
    assert_eq!(reg.metrics.subscriptions_refused, 1);
}

#[test]
fn event_types_and_argument_filters() {
    let mut reg = Reg::default();
    let mut s = spec("c", "s", None, None);
    s.event_types = Some(vec!["userCreated".into()]);
    s.variables = json!({"minAge": 18})
        .as_object()
        .cloned()
        .unwrap_or_default();
    s.filters = vec![FilterSpec {
        field: "age".into(),
        op: FilterOp::Gte,
        operand: Operand::Variable("minAge".into()),
    }];
    register(&mut reg, s);
    assert_eq!(
        reg.dispatch(&event("users", json!({"age": 20}), None, None))
            .0,
        1
    );
    assert_eq!(
        reg.dispatch(&event("users", json!({"age": 10}), None, None))
            .0,
        0
    );
    let mut other = event("users", json!({"age": 30}), None, None);
    other.event_type = "userDeleted".into();
    assert_eq!(reg.dispatch(&other).0, 0);
    assert_eq!(reg.metrics.events_filtered_args, 1);
    assert_eq!(reg.metrics.events_filtered_event_type, 1);
}

#[test]
fn resolver_groups_share_one_call_and_keep_order() {
    let mut reg = Reg::default();
    for (i, user) in ["u1", "u1", "u2"].iter().enumerate() {
        let mut s = spec("c", &format!("s{i}"), Some(user), None);
        s.resolver = Some(ResolverSpec {
            handle: 7,
            identity: 7,
            scope: ResolverScope::User,
        });
        register(&mut reg, s);
    }
    assert_eq!(reg.group_count(), 2);
    let (n, pending) = reg.dispatch(&event("users", json!({"id": 1}), None, None));
    assert_eq!((n, pending.len()), (0, 2));
    let (_, later) = reg.dispatch(&event("users", json!({"id": 2}), None, None));
    // The second event's result for the first group arrives first: it must wait.
    let mut later = later.into_iter();
    let mut pending = pending.into_iter();
    let (l1, p1) = (later.next(), pending.next());
    if let (Some(l1), Some(p1)) = (l1, p1) {
        assert_eq!(
            reg.resolve(
                l1.group,
                l1.seq,
                l1.subs,
                l1.stamp.clone(),
                Resolution::Value(json!({"id": "second"}))
            ),
            0
        );
        assert_eq!(
            reg.resolve(
                p1.group,
                p1.seq,
                p1.subs,
                p1.stamp.clone(),
                Resolution::Value(json!({"id": "first"}))
            ),
            4
        );
    } else {
        panic!("missing pending groups");
    }
    let ids: Vec<Value> = std::iter::from_fn(|| next_json(&mut reg, "s0"))
        .map(|v| v["payload"]["data"]["users"]["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("first"), json!("second")]);
}

#[test]
fn resolver_error_is_a_field_error_and_the_subscription_goes_on() {
    let mut reg = Reg::default();
    for (id, query) in [
        ("s", "subscription { users { id } }"),
        ("aliased", "subscription { who: users { id } }"),
    ] {
        let mut s = spec("c", id, None, None);
        s.plan = plan(query);
        s.resolver = Some(ResolverSpec {
            handle: 1,
            identity: 1,
            scope: ResolverScope::Global,
        });
        register(&mut reg, s);
    }
    let error = FieldError {
        message: "Internal server error".into(),
        extensions: json!({"code": "INTERNAL_SERVER_ERROR"})
            .as_object()
            .cloned(),
    };
    let (_, pending) = reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(pending.len(), 1, "one call for the group");
    for p in pending {
        let n = reg.resolve(
            p.group,
            p.seq,
            p.subs,
            p.stamp.clone(),
            Resolution::Error(error.clone()),
        );
        assert_eq!(n, 2);
    }
    assert_eq!(
        next_json(&mut reg, "s"),
        Some(json!({"id": "s", "type": "next", "payload": {
            "errors": [{"message": "Internal server error", "path": ["users"],
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
            "data": {"users": null}}}))
    );
    assert_eq!(
        next_json(&mut reg, "aliased"),
        Some(json!({"id": "aliased", "type": "next", "payload": {
            "errors": [{"message": "Internal server error", "path": ["who"],
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"}}],
            "data": {"who": null}}}))
    );
    assert_eq!(reg.metrics.resolver_errors, 1);
    assert_eq!(reg.active_subscriptions(), 2, "a field error ends nothing");
    let (_, pending) = reg.dispatch(&event("users", json!({}), None, None));
    for p in pending {
        reg.resolve(
            p.group,
            p.seq,
            p.subs,
            p.stamp.clone(),
            Resolution::Value(json!({"id": "2"})),
        );
    }
    assert_eq!(
        next_json(&mut reg, "s").map(|v| v["payload"].clone()),
        Some(json!({"data": {"users": {"id": "2"}}}))
    );
}

#[test]
fn drained_frames_record_their_delivery_time() {
    let mut reg = Reg::default();
    register(&mut reg, spec("c", "s", None, None));
    let mut e = event("users", json!({"id": 1}), None, None);
    e.ts = now_seconds() - 0.003;
    reg.dispatch(&e);
    reg.dispatch(&event("users", json!({"id": 2}), None, None)); // ts 0: past every bucket
    assert_eq!(reg.drain("c").map(|f| f.len()), Some(2));
    let h = &reg.metrics.delivery;
    assert_eq!(h.count(), 2);
    let over = crate::subscriptions::metrics::DELIVERY_BUCKETS.len();
    assert_eq!(h.counts[over], 1);
    // 3 ms (plus the test's own time) lands in the 5 ms or a later bucket, never before.
    let bucket = h.counts[..over].iter().position(|&n| n == 1);
    assert!(matches!(bucket, Some(5..)), "{:?}", h.counts);
}

#[test]
fn overflow_lags_the_subscription_but_not_others() {
    let mut reg = Reg::new(QueueDefaults {
        capacity: 2,
        policy: OverflowPolicy::Lag,
    });
    register(&mut reg, spec("slow", "s", None, None));
    register(&mut reg, spec("fast", "f", None, None));
    for i in 0..3 {
        reg.dispatch(&event("users", json!({"id": i}), None, None));
        let _ = reg.drain("fast");
    }
    assert_eq!(reg.metrics.queue_overflows, 1);
    let frames: Vec<Value> = std::iter::from_fn(|| next_json(&mut reg, "s")).collect();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2]["type"], json!("error"));
    assert_eq!(
        frames[2]["payload"][0]["extensions"]["code"],
        json!("EVENTS_LAGGED")
    );
    assert!(reg.is_active("f"));
    assert!(!reg.is_active("s"));
    assert_eq!(reg.metrics.frames_sent, 3 + 3);
}

#[test]
fn drop_oldest_keeps_the_newest() {
    let mut reg = Reg::new(QueueDefaults {
        capacity: 2,
        policy: OverflowPolicy::DropOldest,
    });
    register(&mut reg, spec("c", "s", None, None));
    for i in 0..5 {
        reg.dispatch(&event("users", json!({"id": i}), None, None));
    }
    let ids: Vec<Value> = std::iter::from_fn(|| next_json(&mut reg, "s"))
        .map(|v| v["payload"]["data"]["users"]["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(3), json!(4)]);
    assert_eq!(reg.metrics.frames_dropped, 3);
}

#[test]
fn wakeups_once_per_drain_and_cleanup_is_complete() {
    let mut reg = Reg::default();
    open_lagging(&mut reg, 10);
    register(&mut reg, spec("c", "a", None, None));
    register(&mut reg, spec("c", "b", None, None));
    reg.dispatch(&event("users", json!({}), None, None));
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(reg.take_wakeups(), vec![&"waker"]);
    assert!(reg.take_wakeups().is_empty());
    assert_eq!(reg.drain("c").map(|f| f.len()), Some(4));
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(reg.take_wakeups().len(), 1);
    assert_eq!(reg.remove_connection("c"), Some(2));
    assert_eq!(
        (
            reg.active_subscriptions(),
            reg.active_connections(),
            reg.channel_count(),
            reg.group_count(),
            reg.queued_frames()
        ),
        (0, 0, 0, 0, 0)
    );
    assert!(matches!(
        reg.take_released().as_slice(),
        [Released::Waker("waker")]
    ));
}

#[test]
fn a_queue_at_least_half_full_is_pressed_until_drained() {
    let mut reg = Reg::default();
    open_lagging(&mut reg, 4);
    register(&mut reg, spec("c", "a", None, None));
    reg.dispatch(&event("users", json!({}), None, None));
    assert!(reg.take_pressed().is_empty(), "1 of 4 queued");
    reg.dispatch(&event("users", json!({}), None, None));
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(reg.take_pressed(), vec![&"waker"], "once per take");
    assert!(reg.take_pressed().is_empty(), "nothing queued since");
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(
        reg.take_pressed(),
        vec![&"waker"],
        "still behind: pressed again"
    );
    assert_eq!(reg.drain("c").map(|f| f.len()), Some(4));
    reg.dispatch(&event("users", json!({}), None, None));
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(reg.drain("c").map(|f| f.len()), Some(2));
    assert!(
        reg.take_pressed().is_empty(),
        "drained before anyone took it"
    );
}

#[test]
fn duplicate_ids_are_refused_until_completed() {
    let mut reg = Reg::default();
    register(&mut reg, spec("c", "s", None, None));
    assert!(matches!(
        reg.register(spec("c", "s", None, None)),
        Err(RegisterError::Duplicate(_))
    ));
    reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!(reg.complete("s"), Some(()));
    assert_eq!(
        reg.queued("c"),
        Some(0),
        "complete drops the operation's queued frames"
    );
    register(&mut reg, spec("c", "s", None, None));
    assert!(reg.complete("nope").is_none());
}

#[test]
fn channel_changes_follow_first_and_last_subscription() {
    let mut reg = Reg::default();
    let mut a = spec("c", "a", None, None);
    a.channels = vec!["x".into(), "y".into()];
    let mut b = spec("c", "b", None, None);
    b.channels = vec!["x".into()];
    register(&mut reg, a);
    register(&mut reg, b);
    let changes = |reg: &mut Reg| -> Vec<(String, bool)> {
        reg.take_channel_changes()
            .into_iter()
            .map(|(c, on)| (c.to_string(), on))
            .collect()
    };
    assert_eq!(
        changes(&mut reg),
        vec![("x".into(), true), ("y".into(), true)]
    );
    reg.complete("a");
    assert_eq!(changes(&mut reg), vec![("y".into(), false)]);
    reg.remove_connection("c");
    assert_eq!(changes(&mut reg), vec![("x".into(), false)]);
}

#[test]
fn connection_active_counts_live_subscriptions_only() {
    let mut reg = Reg::new(QueueDefaults {
        capacity: 2,
        policy: OverflowPolicy::Lag,
    });
    register(&mut reg, spec("c", "a", None, None));
    register(&mut reg, spec("c", "b", None, None));
    register(&mut reg, spec("d", "x", None, None));
    assert_eq!(reg.connection_active("c"), Some(2));
    assert_eq!(reg.complete("a"), Some(()));
    assert_eq!(reg.connection_active("c"), Some(1));
    for i in 0..3 {
        reg.dispatch(&event("users", json!({"id": i}), None, None));
        let _ = reg.drain("d");
    }
    assert!(!reg.is_active("b"), "lagged");
    assert_eq!(reg.connection_active("c"), Some(0));
    assert_eq!(reg.connection_active("d"), Some(1));
    register(&mut reg, spec("c", "b", None, None));
    assert_eq!(reg.connection_active("c"), Some(1));
    let _ = reg.drain("c");
    assert_eq!(reg.connection_active("c"), Some(1));
    assert_eq!(reg.remove_connection("c"), Some(1));
    assert_eq!(reg.connection_active("c"), None);
    assert_eq!(reg.connection_active("d"), Some(1));
}

#[test]
fn a_resolver_completes_its_group_after_a_last_value() {
    let mut reg = Reg::default();
    let mut s = spec("c", "s", None, None);
    s.resolver = Some(ResolverSpec {
        handle: 1,
        identity: 1,
        scope: ResolverScope::Global,
    });
    register(&mut reg, s);
    let (_, pending) = reg.dispatch(&event("users", json!({}), None, None));
    for p in pending {
        let last = Resolution::Complete(Some(json!({"id": "last"})));
        assert_eq!(
            reg.resolve(p.group, p.seq, p.subs, p.stamp.clone(), last),
            1
        );
    }
    assert_eq!(
        next_json(&mut reg, "s"),
        Some(json!({"id": "s", "type": "next", "payload": {"data": {"users": {"id": "last"}}}}))
    );
    assert_eq!(
        next_json(&mut reg, "s"),
        Some(json!({"id": "s", "type": "complete"}))
    );
    assert_eq!(reg.active_subscriptions(), 0);
    assert_eq!(reg.channel_count(), 0, "nothing left in the index");
    let (n, pending) = reg.dispatch(&event("users", json!({}), None, None));
    assert_eq!((n, pending.len()), (0, 0));
}

#[test]
fn complete_channel_ends_every_subscription_on_it_after_its_queued_frames() {
    let mut reg = Reg::default();
    register(&mut reg, spec("c", "a", None, None));
    register(&mut reg, spec("c", "b", None, None));
    let mut other = spec("c", "other", None, None);
    other.channels = vec!["elsewhere".into()];
    register(&mut reg, other);
    reg.dispatch(&event("users", json!({"id": "1"}), None, None));
    assert_eq!(reg.complete_channel("users"), 2);
    assert_eq!(reg.complete_channel("nobody"), 0);
    for id in ["a", "b"] {
        let first = next_json(&mut reg, id).map(|v| v["type"].clone());
        assert_eq!(first, Some(json!("next")));
        assert_eq!(
            next_json(&mut reg, id),
            Some(json!({"id": id, "type": "complete"}))
        );
    }
    assert_eq!(reg.active_subscriptions(), 1);
    assert_eq!(reg.connection_active("c"), Some(1));
}

#[test]
fn a_conflated_subscription_keeps_only_its_latest_value_queued() {
    let mut reg = Reg::default();
    open_lagging(&mut reg, 3);
    let mut latest = spec("c", "latest", None, None);
    latest.conflate = true;
    register(&mut reg, latest);
    register(&mut reg, spec("c", "every", None, None));
    let delivered: Vec<usize> = (1..=3)
        .map(|id| {
            reg.dispatch(&event("users", json!({ "id": id }), None, None))
                .0
        })
        .collect();
    assert_eq!(delivered, [2, 2, 1]);
    // The third event overflowed the queue of 3 for `every` (it lagged); `latest` kept one.
    assert_eq!(reg.metrics.frames_conflated, 2);
    let frames: Vec<Value> = reg
        .drain("c")
        .unwrap_or_default()
        .iter()
        .map(|f| serde_json::from_slice(&f.to_vec()).unwrap_or(Value::Null))
        .collect();
    let seen: Vec<(Value, Value)> = frames
        .iter()
        .map(|f| (f["id"].clone(), f["payload"]["data"]["users"]["id"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (json!("latest"), json!(3)),
            (json!("every"), json!(1)),
            (json!("every"), json!(2)),
            (json!("every"), Value::Null), // its EVENTS_LAGGED error
        ]
    );
    // Once sent, the next value is queued again.
    reg.dispatch(&event("users", json!({"id": 4}), None, None));
    assert_eq!(
        next_json(&mut reg, "latest").map(|v| v["payload"]["data"]["users"]["id"].clone()),
        Some(json!(4))
    );
}

#[test]
fn a_resuming_subscription_gets_its_history_alone_then_live_events_with_cursors() {
    let mut reg = Reg::default();
    let resuming = register(
        &mut reg,
        SubscriptionSpec {
            positions: true,
            resuming: true,
            ..spec("c", "r", None, None)
        },
    );
    register(&mut reg, spec("c", "plain", None, None));
    let at = |n: i64| Event {
        position: Some(format!("m1.{n}").into()),
        ..event("users", json!({"id": n}), None, None)
    };
    // Live events pass it by while it resumes; its history reaches it alone.
    reg.dispatch(&at(3));
    reg.dispatch_to(resuming, &at(2));
    assert_eq!(
        next_json(&mut reg, "r"),
        Some(json!({"id": "r", "type": "next", "payload":
            {"data": {"users": {"id": 2}}, "extensions": {"cursor": "m1.2"}}}))
    );
    assert_eq!(next_json(&mut reg, "r"), None);
    assert_eq!(
        next_json(&mut reg, "plain"),
        Some(json!({"id": "plain", "type": "next", "payload": {"data": {"users": {"id": 3}}}})),
        "no cursor unless asked"
    );
    assert!(reg.resumed(resuming, false));
    reg.dispatch(&at(4));
    let live = next_json(&mut reg, "r");
    assert_eq!(
        live.map(|m| m["payload"]["extensions"]["cursor"].clone()),
        Some(json!("m1.4"))
    );
    assert_eq!(reg.metrics.events_replayed, 1);
}

#[test]
fn a_resume_gap_is_a_field_error_before_the_live_events() {
    let mut reg = Reg::default();
    let key = register(
        &mut reg,
        SubscriptionSpec {
            resuming: true,
            positions: true,
            ..spec("c", "r", None, None)
        },
    );
    assert!(reg.resumed(key, true));
    let gap = next_json(&mut reg, "r").unwrap_or_default();
    assert_eq!(gap["payload"]["data"], json!({"users": null}));
    assert_eq!(
        gap["payload"]["errors"][0]["extensions"],
        json!({"code": "RESUME_GAP"})
    );
    assert_eq!(reg.metrics.resume_gaps, 1);
    assert!(reg.complete("r").is_some());
    assert!(!reg.resumed(key, false), "gone: nothing to turn live");
}

#[test]
fn an_sse_event_carries_its_cursor_as_its_id() {
    let mut reg = Reg::default();
    reg.open_connection("c", None, 10, OverflowPolicy::Lag, Envelope::SseDistinct);
    register(
        &mut reg,
        SubscriptionSpec {
            positions: true,
            ..spec("c", "s", None, None)
        },
    );
    reg.dispatch(&Event {
        position: Some("m1.7".into()),
        ..event("users", json!({"id": 1}), None, None)
    });
    let frame = reg.next_frame("s").flatten().map(|f| f.to_vec());
    assert_eq!(
        frame.as_deref(),
        Some(
            &b"event: next\ndata: {\"data\":{\"users\":{\"id\":1}},\"extensions\":{\"cursor\":\"m1.7\"}}\nid: m1.7\n\n"[..]
        )
    );
}

#[test]
fn a_max_rate_holds_frames_in_order_and_releases_them_as_slots_come() {
    let mut reg = Reg::default();
    open_lagging(&mut reg, 100);
    register(
        &mut reg,
        SubscriptionSpec {
            max_rate: Some(1000.0),
            ..spec("c", "fast", None, None)
        },
    );
    register(
        &mut reg,
        SubscriptionSpec {
            max_rate: Some(2.0),
            ..spec("c", "slow", None, None)
        },
    );
    for n in 0..5 {
        reg.dispatch(&event("users", json!({"id": n}), None, None));
    }
    let ids = |reg: &mut Reg, id: &str| {
        std::iter::from_fn(|| next_json(reg, id))
            .map(|m| m["payload"]["data"]["users"]["id"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&mut reg, "fast"),
        (0..5).map(|n| json!(n)).collect::<Vec<_>>()
    );
    assert_eq!(
        ids(&mut reg, "slow"),
        vec![json!(0), json!(1)],
        "a burst of two"
    );
    assert_eq!(reg.metrics.frames_held, 3);
    let due = reg.release_held();
    assert!(
        due.is_some_and(|d| d > throttle::monotonic()),
        "the next slot is ahead"
    );
    assert_eq!(ids(&mut reg, "slow"), Vec::<Value>::new());
    std::thread::sleep(std::time::Duration::from_millis(520));
    reg.release_held();
    assert_eq!(
        ids(&mut reg, "slow"),
        vec![json!(2)],
        "one slot later, the next in order"
    );
}

#[test]
fn a_conflated_max_rate_holds_only_the_latest_and_too_many_held_lag() {
    let mut reg = Reg::default();
    open_lagging(&mut reg, 3);
    register(
        &mut reg,
        SubscriptionSpec {
            max_rate: Some(1.0),
            conflate: true,
            ..spec("c", "latest", None, None)
        },
    );
    register(
        &mut reg,
        SubscriptionSpec {
            max_rate: Some(1.0),
            ..spec("c", "every", None, None)
        },
    );
    for n in 0..6 {
        reg.dispatch(&event("users", json!({"id": n}), None, None));
    }
    let first = next_json(&mut reg, "latest");
    assert_eq!(
        first.map(|m| m["payload"]["data"]["users"]["id"].clone()),
        Some(json!(0))
    );
    assert_eq!(
        next_json(&mut reg, "latest"),
        None,
        "the rest waits: only the latest"
    );
    // `every` held more than its connection's bound: it lagged.
    let mut every = std::iter::from_fn(|| next_json(&mut reg, "every"));
    assert_eq!(every.next().map(|m| m["type"].clone()), Some(json!("next")));
    let lagged = every.next().unwrap_or_default();
    assert_eq!(lagged["type"], json!("error"));
    assert_eq!(
        lagged["payload"][0]["extensions"]["code"],
        json!("EVENTS_LAGGED")
    );
    assert!(reg.is_active("latest") && !reg.is_active("every"));
}
