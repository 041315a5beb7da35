"""PySubscriptionExecutor through the Python bindings: registration, dispatch, projection,
security, resolvers, queues, wake-ups, cleanup and metrics."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from typing import Any

import pytest

import fraiseql_core_rs as _fraiseql_rs
from fraiseql_core_rs.subscriptions import PyEvent, PyEventBusConfig, PySubscriptionExecutor

QUERY = "subscription { users { id } }"


def frames(executor: PySubscriptionExecutor, sub_id: str) -> list[dict[str, Any]]:
    """Every queued frame of a subscription. One the server ended (error, lag) is forgotten
    once its last frame is taken; its id is unknown from then on."""
    out = []
    while True:
        try:
            frame = executor.next_event(sub_id)
        except KeyError:
            break
        if frame is None:
            break
        out.append(json.loads(frame))
    return out


def register(executor: PySubscriptionExecutor, sub_id: str, **kwargs: Any) -> None:
    kwargs.setdefault("connection_id", "conn1")
    kwargs.setdefault("query", QUERY)
    executor.register_subscription(subscription_id=sub_id, **kwargs)


# --- the original plan's Phase 1 cases -------------------------------------------------------


def test_phase1_success_criterion() -> None:
    executor = _fraiseql_rs.subscriptions.PySubscriptionExecutor()
    executor.register_subscription(
        connection_id="conn1",
        subscription_id="sub1",
        query="subscription { users { id } }",
        operation_name=None,
        variables={},
        user_id="user1",
        tenant_id="tenant1",
    )
    delivered = executor.publish_event(
        event_type="userCreated", channel="users", data={"id": "123", "name": "Alice"}
    )
    frame = executor.next_event("sub1")
    assert delivered == 1
    assert isinstance(frame, bytes)
    assert json.loads(frame) == {
        "id": "sub1",
        "type": "next",
        "payload": {"data": {"users": {"id": "123"}}},
    }
    assert executor.next_event("sub1") is None
    metrics = executor.get_metrics()
    assert metrics["events_published"] == 1
    assert metrics["frames_queued"] == 1
    assert metrics["active_subscriptions"] == 1


def test_executor_instantiation_and_config() -> None:
    assert PySubscriptionExecutor().config.bus_type == "memory"
    executor = PySubscriptionExecutor(PyEventBusConfig.redis("redis://127.0.0.1:6379/0"))
    assert executor.config.bus_type == "redis"
    assert executor.get_metrics()["bus_type"] == "redis"
    assert "PySubscriptionExecutor" in repr(executor)


def test_module_layout() -> None:
    assert sys.modules["fraiseql_core_rs.subscriptions"] is _fraiseql_rs.subscriptions
    assert _fraiseql_rs.PySubscriptionExecutor is PySubscriptionExecutor
    assert isinstance(_fraiseql_rs.__version__, str)


# --- projection -------------------------------------------------------------------------------


def test_projection_aliases_nesting_lists_fragments() -> None:
    executor = PySubscriptionExecutor()
    register(
        executor,
        "s",
        query="""
        subscription Feed {
          latest: feed {
            __typename
            ...PostFields
            ... on Photo { url }
            author { name missing }
          }
        }
        fragment PostFields on Post { title tags }
        """,
        channels=["feed"],
    )
    executor.publish_event(
        "created",
        "feed",
        [
            {"__typename": "Post", "title": "T", "tags": ["a"], "url": "x", "author": None},
            {"__typename": "Photo", "title": "T", "url": "u", "author": {"name": "N", "age": 3}},
        ],
    )
    (frame,) = frames(executor, "s")
    assert frame["payload"] == {
        "data": {
            "latest": [
                {"__typename": "Post", "title": "T", "tags": ["a"], "author": None},
                {"__typename": "Photo", "url": "u", "author": {"name": "N", "missing": None}},
            ]
        }
    }


def test_unicode_and_large_numbers_round_trip() -> None:
    executor = PySubscriptionExecutor()
    register(executor, "s", query="subscription { users { id name big f } }")
    data = {"id": "1", "name": 'Zoë \U0001f600 "quoted"\n\u2028', "big": 2**100, "f": 1e-300}
    executor.publish_event("e", "users", data)
    (frame,) = frames(executor, "s")
    assert frame["payload"]["data"]["users"] == data


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        ({"a": float("nan")}, ValueError, r"data\['a'\]: float nan"),
        ({"a": [1, object()]}, TypeError, r"data\['a'\]\[1\]: value of type object"),
        ({1: "x"}, TypeError, "dict keys must be str"),
        ({"a": "\ud800"}, ValueError, "lone surrogate"),
    ],
)
def test_non_json_data_is_a_precise_error(data: Any, error: type[Exception], match: str) -> None:
    executor = PySubscriptionExecutor()
    register(executor, "s")
    with pytest.raises(error, match=match):
        executor.publish_event("e", "users", data)
    assert executor.get_metrics()["events_published"] == 0


def test_too_deep_data_is_refused() -> None:
    deep: Any = "leaf"
    for _ in range(200):
        deep = [deep]
    executor = PySubscriptionExecutor()
    too_deep = r"data\['x'\]\[0\].*\.\.\.: nested deeper than 127 levels"
    with pytest.raises(ValueError, match=too_deep):
        executor.publish_event("e", "users", {"x": deep})


# --- registration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("subscription {", "Syntax error"),
        ("query { users { id } }", "Only subscription operations"),
        ("subscription { a b }", "exactly one top-level field"),
        ("subscription { a { ...Missing } }", 'Unknown fragment "Missing"'),
    ],
)
def test_invalid_documents(query: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        register(PySubscriptionExecutor(), "s", query=query)


@pytest.mark.parametrize(
    "query",
    [
        "subscription { a " + "{ a " * 100_000 + "}" * 100_001,
        "subscription { a(x: " + "[" * 100_000 + "]" * 100_000 + ") }",
        "subscription { a { " + "... on T { " * 100_000 + "b" + "}" * 100_001 + " }",
    ],
)
def test_hostile_nesting_is_an_error_not_a_crash(query: str) -> None:
    with pytest.raises(ValueError, match=r"Syntax error|nested deeper"):
        register(PySubscriptionExecutor(), "s", query=query)


def test_bad_arguments_raise_precise_errors() -> None:
    executor = PySubscriptionExecutor()
    with pytest.raises(TypeError, match="variables must be a dict"):
        register(executor, "s", variables=[1])
    with pytest.raises(TypeError, match="channels must be a list of str"):
        register(executor, "s", channels="users")
    with pytest.raises(ValueError, match="Unknown resolver scope"):
        register(executor, "s", resolver=lambda e, v, c: None, resolver_scope="everyone")
    with pytest.raises(TypeError, match="resolver must be callable"):
        register(executor, "s", resolver=42)
    with pytest.raises(ValueError, match="Unknown filter operator"):
        register(executor, "s", filters=[{"field": "a", "op": "like", "value": 1}])
    with pytest.raises(ValueError, match="exactly one of"):
        register(executor, "s", filters=[{"field": "a"}])
    with pytest.raises(ValueError, match="Unknown overflow policy"):
        PySubscriptionExecutor(overflow_policy="block")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="Unknown subscription"):
        executor.next_event("nope")
    with pytest.raises(KeyError, match="Unknown subscription"):
        executor.complete_subscription("nope")
    with pytest.raises(KeyError, match="Unknown connection"):
        executor.drain("nope")
    with pytest.raises(KeyError, match="Unknown connection"):
        executor.remove_connection("nope")
    assert executor.get_metrics()["active_subscriptions"] == 0


def test_duplicate_subscription_id() -> None:
    executor = PySubscriptionExecutor()
    register(executor, "s")
    with pytest.raises(ValueError, match="already registered"):
        register(executor, "s")
    executor.complete_subscription("s")
    register(executor, "s")  # reusable after complete
    assert executor.is_active("s")


# --- channels, event types, filters ---------------------------------------------------------


def test_channels_event_types_and_filters() -> None:
    executor = PySubscriptionExecutor()
    register(
        executor,
        "room",
        query="subscription ($room: String!) { messages(room: $room) { text } }",
        variables={"room": "42"},
        channels=["room:42"],
        event_types=["messagePosted"],
        filters=[
            {"field": "room_id", "op": "eq", "variable": "room"},
            {"field": "meta.score", "op": "gte", "value": 10},
        ],
    )
    post = {"room_id": "42", "text": "hi", "meta": {"score": 10}}
    assert executor.publish_event("messagePosted", "room:42", post) == 1
    assert executor.publish_event("messagePosted", "room:7", post) == 0
    assert executor.publish_event("messageDeleted", "room:42", post) == 0
    assert executor.publish_event("messagePosted", "room:42", {**post, "room_id": "7"}) == 0
    assert executor.publish_event("messagePosted", "room:42", {**post, "meta": {"score": 9}}) == 0
    assert [f["payload"]["data"]["messages"] for f in frames(executor, "room")] == [{"text": "hi"}]
    metrics = executor.get_metrics()
    assert metrics["events_filtered_event_type"] == 1
    assert metrics["events_filtered_args"] == 2


# --- security -----------------------------------------------------------------------------------


def test_tenant_and_user_isolation() -> None:
    executor = PySubscriptionExecutor()
    register(executor, "t1u1", user_id="u1", tenant_id="t1")
    register(executor, "t1u2", user_id="u2", tenant_id="t1")
    register(executor, "t2u3", user_id="u3", tenant_id="t2")
    register(executor, "anon")
    assert executor.publish_event("e", "users", {"id": "a"}, tenant_id="t1") == 2
    assert executor.publish_event("e", "users", {"id": "b"}, user_id="u3") == 1
    assert executor.publish_event("e", "users", {"id": "c"}, tenant_id="t1", user_id="u3") == 0
    assert executor.publish_event("e", "users", {"id": "d"}) == 4
    got = {
        s: [f["payload"]["data"]["users"]["id"] for f in frames(executor, s)]
        for s in ("t1u1", "t1u2", "t2u3", "anon")
    }
    assert got == {"t1u1": ["a", "d"], "t1u2": ["a", "d"], "t2u3": ["b", "d"], "anon": ["d"]}
    metrics = executor.get_metrics()
    assert metrics["events_filtered_tenant"] == 2 + 2  # events a and c
    assert metrics["events_filtered_user"] == 3 + 2  # events b and c


@pytest.mark.parametrize(
    "variables",
    [{"userId": "u2"}, {"tenant_id": "t2"}, {"filter": {"user_id": "u2"}}, {"tenantId": 5}],
)
def test_variables_naming_another_user_or_tenant_are_refused(variables: dict[str, Any]) -> None:
    executor = PySubscriptionExecutor()
    with pytest.raises(PermissionError, match="other than the authenticated one"):
        register(executor, "s", variables=variables, user_id="u1", tenant_id="t1")
    assert executor.get_metrics()["subscriptions_refused"] == 1
    assert not executor.is_active("s")
    register(
        executor, "ok", variables={"userId": "u1", "tenantId": "t1"}, user_id="u1", tenant_id="t1"
    )


# --- resolvers ----------------------------------------------------------------------------------


def test_resolver_called_once_per_group() -> None:
    calls: list[tuple[Any, Any, Any]] = []

    def resolver(event: PyEvent, variables: Any, context: Any) -> Any:
        calls.append((event.data, variables, context))
        return {"id": f"{event.data['id']}-{context['user_id']}", "secret": 1}

    executor = PySubscriptionExecutor()
    for i in range(50):
        register(executor, f"a{i}", resolver=resolver, user_id="u1", tenant_id="t")
    for i in range(50):
        register(executor, f"b{i}", resolver=resolver, user_id="u2", tenant_id="t")
    assert executor.get_metrics()["resolution_groups"] == 2
    assert executor.publish_event("e", "users", {"id": "x"}) == 100
    assert len(calls) == 2
    assert calls[0][2] == {"user_id": "u1", "tenant_id": "t"}
    assert frames(executor, "b7")[0]["payload"]["data"]["users"] == {"id": "x-u2"}
    assert executor.get_metrics()["resolver_calls"] == 2


def test_resolver_scopes_and_variables() -> None:
    calls = 0

    def resolver(event: PyEvent, variables: Any, context: Any) -> Any:
        nonlocal calls
        calls += 1
        return {"id": variables.get("v", "none")}

    executor = PySubscriptionExecutor()
    for i in range(4):
        register(executor, f"g{i}", resolver=resolver, resolver_scope="global", user_id=f"u{i}")
    register(executor, "v1", resolver=resolver, resolver_scope="global", variables={"v": "1"})
    for i in range(3):
        register(executor, f"s{i}", resolver=resolver, resolver_scope="subscription")
    executor.publish_event("e", "users", {})
    assert calls == 1 + 1 + 3
    assert frames(executor, "v1")[0]["payload"]["data"]["users"] == {"id": "1"}


def test_resolver_none_and_exception() -> None:
    def skip(event: PyEvent, variables: Any, context: Any) -> None:
        return None

    def boom(event: PyEvent, variables: Any, context: Any) -> Any:
        raise RuntimeError("db password=hunter2 at 10.0.0.5 failed")

    def not_json(event: PyEvent, variables: Any, context: Any) -> Any:
        return {"id": object()}

    executor = PySubscriptionExecutor()
    register(executor, "skip", resolver=skip)
    register(executor, "boom", resolver=boom)
    register(executor, "bad", resolver=not_json)
    register(executor, "plain")
    masked = {
        "errors": [
            {
                "message": "Internal server error",
                "path": ["users"],
                "extensions": {"code": "INTERNAL_SERVER_ERROR"},
            }
        ],
        "data": {"users": None},
    }
    # A failed call is a field error in that event's `next`; nothing of the exception leaks.
    assert executor.publish_event("e", "users", {"id": "1"}) == 3
    assert frames(executor, "skip") == []
    assert frames(executor, "boom") == [{"id": "boom", "type": "next", "payload": masked}]
    assert frames(executor, "bad") == [{"id": "bad", "type": "next", "payload": masked}]
    assert executor.is_active("boom") and executor.is_active("bad") and executor.is_active("skip")
    metrics = executor.get_metrics()
    assert (metrics["resolver_errors"], metrics["resolver_skips"]) == (2, 1)
    assert executor.publish_event("e", "users", {"id": "2"}) == 3  # the subscriptions go on


def unmasked(exception: BaseException, field: str) -> dict[str, Any]:
    return {"message": str(exception)}


def test_format_error_decides_what_the_client_sees(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def format_error(exception: BaseException, field: str) -> dict[str, Any]:
        seen.append((type(exception).__name__, field))
        return {"message": f"failed: {exception}", "extensions": {"code": "X", "n": 1}}

    def boom(event: PyEvent, variables: Any, context: Any) -> Any:
        raise ValueError(event.data["why"])

    executor = PySubscriptionExecutor(format_error=format_error)
    register(executor, "a", resolver=boom, query="subscription { who: users { id } }")
    executor.publish_event("e", "users", {"why": "no"})
    assert frames(executor, "a")[0]["payload"] == {
        "errors": [{"message": "failed: no", "path": ["who"], "extensions": {"code": "X", "n": 1}}],
        "data": {"who": None},
    }
    assert seen == [("ValueError", "users")], "once per call, with the field's name"
    # A hook that fails or answers nonsense: masked, never the raw text; its failure reported.
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    for answer in [42, {"message": 1}, {"message": "m", "extensions": []}]:
        executor = PySubscriptionExecutor(format_error=lambda exception, field, a=answer: a)
        register(executor, "b", resolver=boom)
        executor.publish_event("e", "users", {"why": "secret"})
        (frame,) = frames(executor, "b")
        assert frame["payload"]["errors"][0]["message"] == "Internal server error"
    assert [type(u.exc_value) for u in unraisable] == [TypeError] * 3
    with pytest.raises(TypeError, match="format_error must be callable"):
        PySubscriptionExecutor(format_error=1)  # type: ignore[arg-type]


def test_async_resolvers_deliver_in_publish_order() -> None:
    async def main() -> tuple[list[Any], int]:
        delays = iter([0.03, 0.0, 0.01])

        async def slow(event: PyEvent, variables: Any, context: Any) -> Any:
            await asyncio.sleep(next(delays))
            return {"id": event.data["id"]}

        executor = PySubscriptionExecutor()
        register(executor, "s", resolver=slow)
        waits = [executor.publish_event_async("e", "users", {"id": str(i)}) for i in range(3)]
        counts = await asyncio.gather(*waits)
        ids = [f["payload"]["data"]["users"]["id"] for f in frames(executor, "s")]
        assert executor.get_metrics()["pending_resolutions"] == 0
        return ids, sum(counts)

    ids, delivered = asyncio.run(main())
    assert ids == ["0", "1", "2"]
    assert delivered == 3


def test_async_resolver_error_and_sync_publish() -> None:
    async def main() -> list[dict[str, Any]]:
        async def fail(event: PyEvent, variables: Any, context: Any) -> Any:
            raise ValueError("nope")

        executor = PySubscriptionExecutor(format_error=unmasked)
        register(executor, "s", resolver=fail)
        assert executor.publish_event("e", "users", {}) == 0  # scheduled, not yet delivered
        for _ in range(3):
            await asyncio.sleep(0)
        assert executor.is_active("s")
        return frames(executor, "s")

    (frame,) = asyncio.run(main())
    assert frame["type"] == "next"
    assert frame["payload"]["errors"][0]["message"] == "nope"


def test_async_resolver_without_running_loop_is_an_error_frame() -> None:
    async def resolver(event: PyEvent, variables: Any, context: Any) -> Any:
        return {"id": "1"}

    executor = PySubscriptionExecutor(format_error=unmasked)
    register(executor, "s", resolver=resolver)
    executor.publish_event("e", "users", {})
    (frame,) = frames(executor, "s")
    assert "needs a running asyncio event loop" in frame["payload"]["errors"][0]["message"]
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        executor.publish_event_async("e", "users", {})


# --- queues, wake-ups, cleanup ------------------------------------------------------------------


def test_overflow_default_policy_lags_only_the_slow_subscription() -> None:
    executor = PySubscriptionExecutor(max_queue=3)
    register(executor, "slow", connection_id="slow")
    register(executor, "fast", connection_id="fast")
    for i in range(5):
        executor.publish_event("e", "users", {"id": str(i)})
        assert len(executor.drain("fast")) == 1
    got = frames(executor, "slow")
    assert [f["type"] for f in got] == ["next", "next", "next", "error"]
    assert got[3]["payload"][0]["extensions"]["code"] == "EVENTS_LAGGED"
    assert not executor.is_active("slow")
    assert executor.is_active("fast")
    assert executor.get_metrics()["queue_overflows"] == 1


def test_drop_oldest_policy_per_connection() -> None:
    executor = PySubscriptionExecutor()
    executor.open_connection("c", max_queue=2, overflow_policy="drop_oldest")
    register(executor, "s", connection_id="c")
    for i in range(4):
        executor.publish_event("e", "users", {"id": str(i)})
    assert [json.loads(f)["payload"]["data"]["users"]["id"] for f in executor.drain("c")] == [
        "2",
        "3",
    ]
    assert executor.get_metrics()["frames_dropped"] == 2


def test_wakeup_callback_and_drain() -> None:
    wakes: list[str] = []
    executor = PySubscriptionExecutor()
    executor.open_connection("c", lambda: wakes.append("c"))
    register(executor, "a", connection_id="c")
    register(executor, "b", connection_id="c", query="subscription { users { id name } }")
    executor.publish_event("e", "users", {"id": "1", "name": "n"})
    executor.publish_event("e", "users", {"id": "2", "name": "n"})
    assert wakes == ["c"]  # once until drained
    drained = executor.drain("c")
    assert all(isinstance(f, str) for f in drained)
    assert [
        (json.loads(f)["id"], json.loads(f)["payload"]["data"]["users"]["id"]) for f in drained
    ] == [("a", "1"), ("b", "1"), ("a", "2"), ("b", "2")]
    executor.publish_event("e", "users", {"id": "3"})
    assert wakes == ["c", "c"]


def test_wakeup_exception_does_not_break_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def broken() -> None:
        raise RuntimeError("waker failed")

    executor = PySubscriptionExecutor()
    executor.open_connection("c", broken)
    register(executor, "s", connection_id="c")
    assert executor.publish_event("e", "users", {"id": "1"}) == 1
    assert len(executor.drain("c")) == 1
    assert [str(e) for e in reported] == ["waker failed"]


def test_operation_id_is_written_in_frames() -> None:
    executor = PySubscriptionExecutor()
    register(executor, "conn1/1", operation_id="1")
    executor.publish_event("e", "users", {"id": "x"})
    assert frames(executor, "conn1/1")[0]["id"] == "1"


def test_complete_drops_queued_frames() -> None:
    executor = PySubscriptionExecutor()
    register(executor, "s")
    executor.publish_event("e", "users", {"id": "1"})
    executor.complete_subscription("s")
    assert executor.drain("conn1") == []
    with pytest.raises(KeyError):
        executor.next_event("s")


def test_remove_connection_releases_everything() -> None:
    def resolver(event: PyEvent, variables: Any, context: Any) -> Any:
        return event.data

    executor = PySubscriptionExecutor()
    executor.open_connection("c", lambda: None)
    for i in range(100):
        register(
            executor, f"s{i}", connection_id="c", resolver=resolver, channels=[f"room:{i}", "all"]
        )
    executor.publish_event("e", "all", {"id": "1"})
    before = sys.getrefcount(resolver)
    assert executor.connection_subscriptions("c") == [f"s{i}" for i in range(100)]
    assert executor.remove_connection("c") == 100
    gc.collect()
    metrics = dict(executor.get_metrics())
    gauges = (
        "active_connections",
        "active_subscriptions",
        "channels",
        "resolution_groups",
        "queued_frames",
        "pending_resolutions",
    )
    assert {k: metrics[k] for k in gauges} == dict.fromkeys(gauges, 0)
    assert sys.getrefcount(resolver) < before
    assert metrics["subscriptions_completed"] == 100


# --- schema-aware projection ----------------------------------------------------------------

SCHEMA = {
    "subscription_type": "Subscription",
    "types": {
        "Subscription": {
            "kind": "OBJECT",
            "fields": {"messagePosted": {"type": "Message!", "source": "message_posted"}},
        },
        "Message": {
            "kind": "OBJECT",
            "fields": {
                "id": {"type": "ID!", "source": "id"},
                "roomId": {"type": "String!", "source": "room_id"},
                "likes": {"type": "Int", "source": "likes"},
            },
        },
    },
}


def test_schema_shapes_responses() -> None:
    executor = PySubscriptionExecutor(schema=SCHEMA)
    register(executor, "s", query="subscription { messagePosted { __typename id roomId likes } }")
    executor.publish_event("e", "messagePosted", {"id": 1, "room_id": "42", "likes": "x"})
    executor.publish_event("e", "messagePosted", {"id": 2})
    first, second = frames(executor, "s")
    assert first["payload"] == {
        "errors": [
            {
                "message": 'Int cannot represent non-integer value: "x"',
                "path": ["messagePosted", "likes"],
            }
        ],
        "data": {
            "messagePosted": {"__typename": "Message", "id": "1", "roomId": "42", "likes": None}
        },
    }
    assert second["payload"] == {
        "errors": [
            {
                "message": "Cannot return null for non-nullable field Message.roomId.",
                "path": ["messagePosted", "roomId"],
            }
        ],
        "data": None,
    }


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ({"types": {}}, "subscription_type"),
        ({"subscription_type": "S", "types": {"S": {"kind": "THING"}}}, "unknown kind"),
        (
            {
                "subscription_type": "S",
                "types": {"S": {"kind": "OBJECT", "fields": {"a": {"type": "Nope"}}}},
            },
            'undescribed type "Nope"',
        ),
        (
            {
                "subscription_type": "S",
                "types": {"S": {"kind": "OBJECT", "fields": {"a": {"type": "[Int"}}}},
            },
            "Invalid type reference",
        ),
    ],
)
def test_invalid_schema_descriptions(schema: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PySubscriptionExecutor(schema=schema)
