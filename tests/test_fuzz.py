"""Hostile input at the socket: Hypothesis sends malformed WebSocket frames (any opcode, bad
lengths, unmasked, fragments out of order) and any text or binary messages to a real server,
one connection per example, while a control subscriber on another connection must receive
every event published after each one. Whatever a hostile connection sends, it ends with a
protocol's close code (or keeps its connection), never an internal error, and leaves nothing
behind. `scripts/test` runs this on both paths (the core reads the frames on the native one)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import queue
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import COUNTER, counters, protocol_app, running_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

#: What a hostile connection may be closed with: the protocol's and WebSocket's codes for bad
#: input, or no close frame at all. Never 1011 or 4500 (an internal error).
ALLOWED = {None, 1000, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 4400, 4401, 4409, 4429}


class Server:
    """The protocol app served in a thread of its own (with its event loop), so that
    Hypothesis drives plain sockets from the test's thread."""

    def __init__(self) -> None:
        self.app, self.manager = protocol_app(
            counters.fields,
            lambda payload, request: True,
            ping_interval=None,
            connection_init_timeout=2,
            max_message_size=4096,
        )
        self.loop = asyncio.new_event_loop()
        self.address = ""
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._serve(),))

    async def _serve(self) -> None:
        async with running_server(self.app) as address:
            self.address = address
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Server:
        self._thread.start()
        assert self._ready.wait(20), "the server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def call(self, coroutine: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def connections(self) -> int:
        async def count() -> int:
            return len(self.manager.connections)

        result: int = self.call(count())
        return result


class Control:
    """A subscriber that receives every event: its `next` values, in a queue."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(self.ws.recv(5))["type"] == "connection_ack"
        payload = {"query": COUNTER}
        self.ws.send(json.dumps({"id": "control", "type": "subscribe", "payload": payload}))
        self.values: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                message = json.loads(text)
                assert message["type"] == "next", message
                self.values.put(message["payload"]["data"]["counter"])
        except ConnectionClosed:
            pass


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, Control]]:
    with (
        Server() as server,
        connect(
            f"ws://{server.address}/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        ) as ws,
    ):
        control = Control(ws)

        async def subscribed() -> None:
            while server.manager.get_metrics()["subscribers"] < 1:
                await asyncio.sleep(0.01)

        server.call(subscribed())
        yield server, control


published = iter(range(1_000_000))


def control_still_receives(server: Server, control: Control) -> None:
    n = next(published)
    server.call(server.manager.publish("counter", {"n": n}))
    assert control.values.get(timeout=5) == n


# ----- frames ------------------------------------------------------------------------------------


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    """One WebSocket frame as a client could put it on the wire, well formed or not."""
    fin = draw(st.booleans())
    rsv = draw(st.integers(0, 7))
    opcode = draw(st.integers(0, 15))
    masked = draw(st.booleans() | st.just(True))
    payload = draw(st.binary(max_size=300))
    declared = draw(st.sampled_from(["true", "true", "short", "long"]))
    length = {"true": len(payload), "short": max(0, len(payload) - 1), "long": len(payload) + 9}
    size = length[declared]
    head = bytes([(fin << 7) | (rsv << 4) | opcode])
    encoding = draw(st.sampled_from(["shortest", "16", "64"]))
    mask_bit = 0x80 if masked else 0
    if encoding == "shortest" and size < 126:
        head += bytes([mask_bit | size])
    elif encoding != "64" and size < 1 << 16:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = draw(st.binary(min_size=4, max_size=4))
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text_frame(text: str) -> bytes:
    """A well-formed, masked text frame."""
    data = text.encode()
    key = os.urandom(4)
    assert len(data) < 126
    head = b"\x81" + bytes([0x80 | len(data)])
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(data))


def handshake(address: str) -> socket.socket:
    """A raw socket upgraded to graphql-transport-ws (the 101 read)."""
    host, port = address.split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /graphql HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def close_code(sock: socket.socket) -> int | None:
    """Reads what the server sends until it closes; its close frame's code, if one came (the
    frames before it are the server's, well formed; a reset counts as no close frame)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    while len(data) >= 2:
        opcode, size = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if size == 126:
            size, start = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, start = struct.unpack("!Q", data[2:10])[0], 10
        body, data = data[start : start + size], data[start + size :]
        if opcode == 0x8:
            return struct.unpack("!H", body[:2])[0] if len(body) >= 2 else 1005
    return None


fuzz_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz_settings
@given(st.lists(frames(), min_size=1, max_size=6), st.booleans())
def test_malformed_frames_end_only_their_connection(
    served: tuple[Server, Control], sent: list[bytes], initialised: bool
) -> None:
    server, control = served
    sock = handshake(server.address)
    with sock:
        if initialised:
            sock.sendall(text_frame('{"type":"connection_init"}'))
        for frame in sent:
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
        with contextlib.suppress(OSError):  # all sent: the server sees the end of the stream
            sock.shutdown(socket.SHUT_WR)
        assert close_code(sock) in ALLOWED
    control_still_receives(server, control)


messages = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.builds(
        json.dumps,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["connection_init", "subscribe", "complete", "ping", "pong",
                                      "next", "error", "start", "stop", "bogus"])},
            optional={
                "id": st.one_of(st.text(max_size=5), st.integers(), st.none()),
                "payload": st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=10),
                    st.fixed_dictionaries({}, optional={
                        "query": st.sampled_from([COUNTER, "{ __typename }", "subscription {",
                                                  "subscription { nope }", "query { " * 50]),
                        "variables": st.one_of(st.none(), st.lists(st.integers()),
                                               st.dictionaries(st.text(max_size=3),
                                                               st.integers())),
                        "token": st.text(max_size=5),
                    }),
                ),
            },
        ),
    ),
)  # fmt: skip


@fuzz_settings
@given(st.lists(messages, min_size=1, max_size=8))
def test_any_messages_end_with_a_protocol_close_code_and_leave_nothing(
    served: tuple[Server, Control], sent: list[str | bytes]
) -> None:
    server, control = served
    code: int | None = None
    with connect(
        f"ws://{server.address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        try:
            for message in sent:
                ws.send(message)
            ws.send(json.dumps({"type": "ping"}))
            while True:  # until the server closes, or answers the ping: it is still serving
                reply = ws.recv(5)
                if json.loads(reply) == {"type": "pong"}:
                    break
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
    assert code in ALLOWED | {4408}
    control_still_receives(server, control)

    async def only_the_control_left() -> None:
        while len(server.manager.connections) > 1:
            await asyncio.sleep(0.01)

    server.call(only_the_control_left())
