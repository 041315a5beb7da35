"""The graphql-transport-ws protocol as a state machine, driven directly (no network) by
Hypothesis: any sequence of client messages (valid, invalid, out of order, refreshes of its
credentials, operations faster than its rate), events and timers (the init deadline, the
credentials' expiry) keeps the protocol's rules, and what the core holds for the connection
always matches what the client was told."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from fraiseql_fastapi import SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry
from fraiseql_fastapi.protocols.common import ProtocolOptions
from fraiseql_fastapi.protocols.graphql_transport_ws import CloseCode, GraphQLTransportWSProtocol

registry = SubscriptionRegistry()
LIMIT = 2
#: Operations the connection may start at once; the rate refills so slowly that it is all.
BURST = 4


@subscription(registry=registry, channel="counter")
def counter(event: Any) -> int:
    """A number per event."""
    return int(event.data["n"])


def on_connect(payload: Any, request: Any) -> Any:
    token = (payload or {}).get("token")
    if token == "forbidden":
        return False
    if token == "expiring":
        return {"user_id": "u", "expires_at": time.time() + 3600}
    return {"user_id": "u"}


def on_refresh(payload: Any, context: Any) -> Any:
    return {"ok": {"user_id": "u"}, "keep": None, "other": {"user_id": "v"}}.get(
        payload.get("token"), False
    )


class Timer:
    def __init__(self, callback: Callable[[], Awaitable[None]]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class RecordingSocket:
    """A `ProtocolSocket` that records what the protocol sends, as the wire would see it."""

    request = None

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed_with: int | None = None
        self.timers: list[Timer] = []
        self.on_close: Callable[[int], None] = lambda code: None
        self.releases = 0

    def release_request(self) -> None:
        self.releases += 1

    async def send(self, text: str) -> None:
        if self.closed_with is None:
            self.sent.append(orjson.loads(text))

    async def close(self, code: int, reason: str) -> None:
        if self.closed_with is None:
            self.closed_with = int(code)
            self.on_close(int(code))

    def call_later(self, delay: float, callback: Callable[[], Awaitable[None]]) -> Timer:
        timer = Timer(callback)
        self.timers.append(timer)
        return timer

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        yield


OP_IDS = st.sampled_from(["1", "2", "3", "4", "5"])


class ProtocolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.manager = SubscriptionManager(subscriptions=registry.fields)
        self.connection = self.manager.connect()
        self.socket = RecordingSocket()
        self.socket.on_close = self.connection.close
        self.protocol = GraphQLTransportWSProtocol(
            self.connection,
            self.socket,
            on_connect=on_connect,
            on_refresh=on_refresh,
            options=ProtocolOptions(
                max_subscriptions=LIMIT,
                ping_interval=None,
                subscribe_rate=1e-9,
                subscribe_burst=BURST,
            ),
        )
        self.run(self.protocol.opened())
        # The model: what the client has been told.
        self.init_sent = False
        self.acknowledged = False
        self.closed: int | None = None
        self.live: set[str] = set()
        self.events = 0
        #: The credentials expire (a timer is pending), and what the rate still allows.
        self.expiring = False
        self.tokens = BURST
        self.refused_in_a_row = 0

    def teardown(self) -> None:
        self.protocol.closed()
        self.connection.close(CloseCode.ABNORMAL_CLOSURE)
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def run(self, step: Awaitable[None]) -> None:
        async def with_settling() -> None:
            await step
            for _ in range(5):  # let query tasks finish
                await asyncio.sleep(0)

        self.loop.run_until_complete(with_settling())

    def receive(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.socket.sent)
        self.run(self.protocol.received(orjson.dumps(message).decode()))
        return self.socket.sent[before:]

    def expect_close(self, code: int) -> None:
        assert self.socket.closed_with == code, (self.socket.closed_with, code)
        self.closed = code
        self.live.clear()

    # ----- rules ----------------------------------------------------------------------------

    @precondition(lambda self: not self.init_sent and self.closed is None)
    @rule(token=st.sampled_from(["ok", "ok", "expiring", "forbidden"]))
    def connection_init(self, token: str) -> None:
        sent = self.receive({"type": "connection_init", "payload": {"token": token}})
        self.init_sent = True
        if token == "forbidden":
            self.expect_close(CloseCode.FORBIDDEN)
        else:
            assert sent == [{"type": "connection_ack"}]
            self.acknowledged = True
            self.expiring = token == "expiring"

    @precondition(lambda self: self.closed is None)
    @rule(token=st.sampled_from(["ok", "keep", "ok", "keep", "ok", "keep", "other", "forbidden"]))
    def refresh(self, token: str) -> None:
        """A ping carrying credentials: renews an acknowledged connection, or closes it."""
        sent = self.receive({"type": "ping", "payload": {"token": token}})
        if not self.acknowledged:
            assert sent == [{"type": "pong"}]
        elif token in ("ok", "keep"):
            assert sent == [{"type": "pong"}]
            self.expiring = self.expiring and token == "keep"
        else:  # refused, or another user's
            self.expect_close(CloseCode.FORBIDDEN)

    @precondition(lambda self: self.expiring and self.closed is None)
    @rule()
    def credentials_expire(self) -> None:
        pending = [
            t
            for t in self.socket.timers
            if getattr(t.callback, "__name__", "") == "_expired" and not t.cancelled
        ]
        assert len(pending) == 1
        self.run(pending[0].callback())
        self.expect_close(CloseCode.FORBIDDEN)

    @precondition(lambda self: self.acknowledged and self.closed is None)
    @rule(kind=st.sampled_from(["subscription", "subscription", "invalid", "query"]))
    def subscribe(self, kind: str) -> None:
        self.start(kind)

    @precondition(lambda self: self.acknowledged and self.closed is None)
    @rule(count=st.integers(1, 2 * BURST + 2))
    def flood(self, count: int) -> None:
        """Operations one after the other, as fast as a client can send them."""
        for _ in range(count):
            if self.closed is not None:
                return
            self.start("query")

    def start(self, kind: str) -> None:
        op_id = next(str(n) for n in range(1, 10) if str(n) not in self.live)
        query = {
            "subscription": "subscription { counter }",
            "invalid": "subscription { nope }",
            "query": "{ __typename }",
        }[kind]
        sent = self.receive({"id": op_id, "type": "subscribe", "payload": {"query": query}})
        if len(self.live) >= LIMIT:
            assert [m["type"] for m in sent] == ["error"]
            assert sent[0]["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            return
        if self.tokens == 0:
            self.refused_in_a_row += 1
            if self.refused_in_a_row > BURST:
                self.expect_close(CloseCode.POLICY_VIOLATION)
                return
            assert [(m["id"], m["type"]) for m in sent] == [(op_id, "error")]
            assert sent[0]["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
            return
        self.tokens -= 1
        self.refused_in_a_row = 0
        if kind == "subscription":
            assert sent == []
            self.live.add(op_id)
        elif kind == "invalid":
            assert [(m["id"], m["type"]) for m in sent] == [(op_id, "error")]
        else:
            assert sent == [
                {"id": op_id, "type": "next", "payload": {"data": {"__typename": "Query"}}},
                {"id": op_id, "type": "complete"},
            ]

    @precondition(lambda self: self.closed is None)
    @rule(op_id=OP_IDS)
    def complete(self, op_id: str) -> None:
        assert self.receive({"id": op_id, "type": "complete"}) == []
        self.live.discard(op_id)

    @precondition(lambda self: self.closed is None)
    @rule()
    def ping(self) -> None:
        assert self.receive({"type": "ping"}) == [{"type": "pong"}]

    @precondition(lambda self: self.closed is None)
    @rule()
    def init_timer_fires(self) -> None:
        (timer, *_) = self.socket.timers
        if not timer.cancelled:
            self.run(timer.callback())
        if not self.acknowledged:
            self.expect_close(CloseCode.CONNECTION_INITIALISATION_TIMEOUT)

    @precondition(lambda self: self.closed is None)
    @rule(
        kind=st.sampled_from(["second_init", "duplicate_id", "unexpected_type", "early"]),
        text=st.text(max_size=20).filter(lambda t: not t.lstrip().startswith("{")),
        now=st.integers(0, 3),
    )
    def misbehave(self, kind: str, text: str, now: int) -> None:
        """One thing a client must not do, each with its close code (one time in four: the
        connection ends, and the runs that go on for long reach the rate limit)."""
        if now:
            return
        if kind == "early" and not self.acknowledged:
            query = {"query": "subscription { counter }"}
            self.receive({"id": "9", "type": "subscribe", "payload": query})
            self.expect_close(CloseCode.UNAUTHORIZED)
        elif kind == "second_init" and self.init_sent:
            self.receive({"type": "connection_init"})
            self.expect_close(CloseCode.TOO_MANY_INITIALISATION_REQUESTS)
        elif kind == "duplicate_id" and self.live:
            query = {"query": "subscription { counter }"}
            self.receive({"id": min(self.live), "type": "subscribe", "payload": query})
            self.expect_close(CloseCode.SUBSCRIBER_ALREADY_EXISTS)
        elif kind == "unexpected_type":
            self.receive({"id": "1", "type": "next", "payload": {}})
            self.expect_close(CloseCode.BAD_REQUEST)
        else:
            self.run(self.protocol.received(text))
            self.expect_close(CloseCode.BAD_REQUEST)

    @rule()
    def event(self) -> None:
        n = self.events
        self.events += 1
        self.manager.executor.publish_event("e", "counter", {"n": n})
        frames = [orjson.loads(text) for text in self.connection.drain()]
        if self.closed is not None:
            assert frames == []
            return
        assert {f["id"] for f in frames} == self.live
        assert all(
            f == {"id": f["id"], "type": "next", "payload": {"data": {"counter": n}}}
            for f in frames
        )

    # ----- invariants -------------------------------------------------------------------------

    @invariant()
    def core_matches_the_model(self) -> None:
        assert self.connection.live_count == len(self.live)
        assert self.manager.get_metrics()["active_subscriptions"] == len(self.live)

    @invariant()
    def the_request_goes_once_on_connect_accepted(self) -> None:
        assert self.socket.releases == (1 if self.acknowledged else 0)

    @invariant()
    def closes_only_once_and_nothing_after(self) -> None:
        assert self.socket.closed_with == self.closed


ProtocolMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
TestProtocolMachine = ProtocolMachine.TestCase
