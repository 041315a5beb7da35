"""Adopted WebSockets: Python does the HTTP upgrade, then the core serves the socket itself
(`adopt_socket`), writing the connection's frames without Python and reporting what the client
sends through `socket_events_fd` / `take_socket_events()`."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from fraiseql_core_rs.subscriptions import PySubscriptionExecutor

pytestmark = pytest.mark.anyio

QUERY = "subscription { users { id } }"

Event = tuple[str, str, str | int | None]


class SocketEvents:
    """Collects the executor's socket events as the loop sees `socket_events_fd` readable."""

    def __init__(self, executor: PySubscriptionExecutor) -> None:
        self.executor = executor
        self.items: list[Event] = []
        self.changed = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.fd = executor.socket_events_fd
        self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        self.items.extend(self.executor.take_socket_events())
        self.changed.set()

    async def wait_for(self, predicate: Callable[[list[Event]], bool], timeout: float = 5) -> None:
        async def wait() -> None:
            while not predicate(self.items):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(wait(), timeout)

    def closed(self, connection_id: str = "c") -> list[Event]:
        return [e for e in self.items if e[0] == connection_id and e[1] == "closed"]

    def stop(self) -> None:
        self.loop.remove_reader(self.fd)


@pytest.fixture
async def events() -> AsyncIterator[tuple[PySubscriptionExecutor, SocketEvents]]:
    executor = PySubscriptionExecutor()
    watcher = SocketEvents(executor)
    yield executor, watcher
    watcher.stop()


async def adopt(
    executor: PySubscriptionExecutor,
    connection_id: str = "c",
    *,
    max_message_size: int = 1 << 20,
    queue: int | None = None,
    **client: Any,
) -> ClientConnection:
    """A real client connected to a listener whose accepted socket, once upgraded with the
    sansio `ServerProtocol`, is handed to the executor."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        client.setdefault("proxy", None)
        client.setdefault("ping_interval", None)
        opening = asyncio.ensure_future(connect(f"ws://127.0.0.1:{port}", **client))
        conn, _ = await loop.sock_accept(listener)
        protocol = ServerProtocol()
        request = None
        while request is None:
            data = await loop.sock_recv(conn, 65536)
            assert data, "the client went away during the handshake"
            protocol.receive_data(data)
            received = protocol.events_received()
            if received:
                assert isinstance(received[0], Request)
                request = received[0]
        response = protocol.accept(request)
        protocol.send_response(response)
        handshake = b"".join(protocol.data_to_send())
        executor.open_connection(connection_id, max_queue=queue)
        executor.adopt_socket(
            connection_id, conn.detach(), handshake, max_message_size=max_message_size
        )
        return await asyncio.wait_for(opening, 5)
    finally:
        listener.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled_fds() -> int:
    """The open descriptors once what earlier tests left closing has closed."""
    gc.collect()
    count = open_fds()
    for _ in range(50):
        await asyncio.sleep(0.05)
        now = open_fds()
        if now == count:
            break
        count = now
    return count


async def start_runtime() -> None:
    """Adopts (and drops) a first socket, so that the core's runtime, created on first use
    with descriptors of its own, is not counted in a test's descriptors."""
    executor = PySubscriptionExecutor()
    client = await adopt(executor)
    executor.remove_connection("c")
    await asyncio.wait_for(client.wait_closed(), 5)


async def test_client_text_arrives_as_events_and_socket_send_reaches_the_client(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    assert executor.get_metrics()["native_sockets"] == 1
    await client.send("hello core")
    await client.send('{"type":"ping"}')
    await watcher.wait_for(lambda items: len(items) >= 2)
    assert watcher.items == [("c", "text", "hello core"), ("c", "text", '{"type":"ping"}')]
    executor.socket_send("c", '{"type":"pong"}')
    assert await asyncio.wait_for(client.recv(), 5) == '{"type":"pong"}'
    await client.close()
    await watcher.wait_for(lambda items: bool(watcher.closed()))


async def test_subscription_frames_reach_the_client_without_python_in_order(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    client = await adopt(executor)
    executor.register_subscription(
        connection_id="c", subscription_id="s", query=QUERY, operation_id="op"
    )
    for i in range(5):
        assert await executor.publish_event_async("e", "users", {"id": str(i)}) == 1
    executor.socket_send("c", '{"type":"pong"}')
    got = [json.loads(await asyncio.wait_for(client.recv(), 5)) for _ in range(6)]
    assert got[:5] == [
        {"id": "op", "type": "next", "payload": {"data": {"users": {"id": str(i)}}}}
        for i in range(5)
    ]
    assert got[5] == {"type": "pong"}
    metrics = executor.get_metrics()
    assert metrics["frames_sent"] == 5
    assert metrics["queued_frames"] == 0
    assert sum(executor.delivery_histogram()[1]) == 5
    await client.close()


async def test_many_sockets_get_every_frame_in_order(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    clients = [await adopt(executor, f"c{i}") for i in range(8)]
    for i in range(8):
        executor.register_subscription(
            connection_id=f"c{i}", subscription_id=f"s{i}", query=QUERY, operation_id="1"
        )
    for n in range(100):
        executor.publish_event("e", "users", {"id": str(n)})
        if n % 10 == 0:
            await asyncio.sleep(0)
    for client in clients:
        got = [json.loads(await asyncio.wait_for(client.recv(), 5)) for _ in range(100)]
        assert [f["payload"]["data"]["users"]["id"] for f in got] == [str(n) for n in range(100)]
    assert executor.get_metrics()["frames_sent"] == 800
    for client in clients:
        await client.close()


async def test_frames_queued_before_adoption_go_first(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    # The connection exists (with its subscription and a queued frame) before the socket.
    executor.register_subscription(connection_id="c", subscription_id="s", query=QUERY)
    executor.publish_event("e", "users", {"id": "early"})
    client = await adopt(executor)
    executor.socket_send("c", "after")
    assert json.loads(await asyncio.wait_for(client.recv(), 5))["payload"] == {
        "data": {"users": {"id": "early"}}
    }
    assert await asyncio.wait_for(client.recv(), 5) == "after"
    await client.close()


async def test_client_ping_is_answered(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    client = await adopt(executor)
    pong = await client.ping(b"are you there")
    await asyncio.wait_for(pong, 5)
    await client.close()


async def test_oversized_message_closes_with_1009(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor, max_message_size=64)
    await client.send("small")
    await client.send("x" * 1000)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    assert watcher.items == [("c", "text", "small"), ("c", "closed", 1009)]


async def test_invalid_utf8_closes_with_1007(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    await client.send(b"\xff\xfe", text=True)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    assert watcher.items == [("c", "closed", 1007)]


async def test_binary_message_is_an_event(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    await client.send(b"\x00\x01\x02")
    await watcher.wait_for(lambda items: bool(items))
    assert watcher.items == [("c", "binary", None)]
    await client.close()


async def test_client_close_gives_one_closed_event_with_its_code(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    await client.close(4001, "bye")
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    await asyncio.sleep(0.2)
    assert watcher.closed() == [("c", "closed", 4001)]
    assert executor.get_metrics()["native_sockets"] == 0
    # Closed: later sends are dropped silently; the connection itself stays until removed.
    executor.socket_send("c", "too late")
    # A connection whose socket ended may adopt a new one.
    again = await adopt(executor)
    executor.socket_send("c", "new socket")
    assert await asyncio.wait_for(again.recv(), 5) == "new socket"
    await again.close()
    await watcher.wait_for(lambda items: len(watcher.closed()) == 2)
    assert watcher.closed() == [("c", "closed", 4001), ("c", "closed", 1000)]
    assert executor.remove_connection("c") == 0
    with pytest.raises(KeyError):
        executor.socket_send("c", "gone")


async def test_abrupt_disconnect_is_closed_1006(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    await client.send("hi")
    client.transport.abort()
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    await asyncio.sleep(0.1)
    assert watcher.items == [("c", "text", "hi"), ("c", "closed", 1006)]
    assert executor.get_metrics()["native_sockets"] == 0


async def test_socket_close_sends_our_code(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor)
    executor.socket_send("c", "last words")
    executor.socket_close("c", 4403, "Forbidden")
    executor.socket_close("c", 1000)  # idempotent
    executor.socket_send("c", "dropped")
    assert await asyncio.wait_for(client.recv(), 5) == "last words"
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(client.recv(), 5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4403, "Forbidden")
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    await asyncio.sleep(0.2)
    assert watcher.closed() == [("c", "closed", 4403)]
    with pytest.raises(ValueError):
        executor.socket_close("c", 1006)


async def test_remove_connection_ends_everything(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    await start_runtime()
    baseline = await settled_fds()
    client = await adopt(executor)
    executor.register_subscription(connection_id="c", subscription_id="s", query=QUERY)
    assert open_fds() > baseline
    assert executor.remove_connection("c") == 1
    await asyncio.wait_for(client.wait_closed(), 5)
    await watcher.wait_for(lambda items: bool(watcher.closed()))
    assert watcher.closed() == [("c", "closed", 1006)]
    assert executor.get_metrics()["native_sockets"] == 0
    for _ in range(100):
        if open_fds() == baseline:
            break
        await asyncio.sleep(0.02)
    assert open_fds() == baseline
    # The id opened again is a new connection, drained by Python: the old socket is gone.
    executor.open_connection("c")
    executor.register_subscription(connection_id="c", subscription_id="s2", query=QUERY)
    executor.publish_event("e", "users", {"id": "1"})
    await asyncio.sleep(0.05)
    assert len(executor.drain("c")) == 1
    assert watcher.closed() == [("c", "closed", 1006)]


async def test_dropping_the_executor_closes_its_sockets() -> None:
    await start_runtime()
    executor = PySubscriptionExecutor()
    baseline = await settled_fds()
    client = await adopt(executor)
    del executor
    await asyncio.wait_for(client.wait_closed(), 5)
    for _ in range(100):
        if open_fds() == baseline:  # the socket and the event descriptors went with it
            break
        await asyncio.sleep(0.02)
    assert open_fds() == baseline


async def test_slow_client_ends_with_the_lag_error(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    # The client stops reading (its own queue holds one message), the kernel buffers fill, the
    # writer waits for the socket, and the registry's bounded queue overflows: the lag policy
    # applies.
    client = await adopt(executor, queue=4, max_queue=1)
    executor.register_subscription(connection_id="c", subscription_id="s", query=QUERY)
    big = "x" * 20_000
    published = 0
    while executor.is_active("s") and published < 5000:
        executor.publish_event("e", "users", {"id": big})
        published += 1
        if published % 50 == 0:
            await asyncio.sleep(0.01)
    assert not executor.is_active("s"), "the queue never overflowed"
    assert executor.get_metrics()["queue_overflows"] == 1
    received = []
    while True:
        frame = json.loads(await asyncio.wait_for(client.recv(), 10))
        received.append(frame["type"])
        if frame["type"] == "error":
            assert frame["payload"][0]["extensions"]["code"] == "EVENTS_LAGGED"
            break
    assert set(received[:-1]) == {"next"}
    assert len(received) < published + 1
    await client.close()


async def test_close_of_a_stalled_socket_ends_within_a_bound(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    client = await adopt(executor, queue=4, max_queue=1)
    executor.register_subscription(connection_id="c", subscription_id="s", query=QUERY)
    big = "x" * 200_000
    for _ in range(500):
        if not executor.is_active("s"):
            break
        executor.publish_event("e", "users", {"id": big})
        await asyncio.sleep(0.002)
    assert not executor.is_active("s"), "the writer never stalled"
    # The client reads nothing: the writer's bytes cannot all go out, yet the socket ends.
    executor.socket_close("c", 1001, "going away")
    await watcher.wait_for(lambda items: bool(watcher.closed()), timeout=6)
    assert watcher.closed() == [("c", "closed", 1001)]
    assert executor.get_metrics()["native_sockets"] == 0
    client.transport.abort()


async def test_adoption_errors(events: tuple[PySubscriptionExecutor, SocketEvents]) -> None:
    executor, _ = events
    sock = socket.socket()
    fd = sock.detach()
    with pytest.raises(KeyError):
        executor.adopt_socket("unknown", fd)
    with pytest.raises(OSError):
        os.fstat(fd)  # the core took it, and closed it
    executor.open_connection("p")
    with pytest.raises(KeyError):
        executor.socket_send("p", "no socket")
    with pytest.raises(KeyError):
        executor.socket_close("p")
    unconnected = socket.socket().detach()
    with pytest.raises(OSError):
        executor.adopt_socket("p", unconnected)
    client = await adopt(executor)
    other = socket.socket().detach()
    with pytest.raises(ValueError):
        executor.adopt_socket("c", other)
    with pytest.raises(ValueError):
        executor.open_connection("c", on_frames=lambda: None)
    # Reconfiguring keeps the socket.
    executor.open_connection("c", max_queue=10)
    executor.socket_send("c", "still here")
    assert await asyncio.wait_for(client.recv(), 5) == "still here"
    await client.close()


async def adopt_raw(
    executor: PySubscriptionExecutor, **keep_alive: float
) -> tuple[socket.socket, ClientProtocol]:
    """A sans-I/O client on a plain socket, whose server side the executor adopted with
    `keep_alive` (`ping_interval`, `ping_timeout`): the test decides what the client sends,
    so it can leave pings unanswered."""
    loop = asyncio.get_running_loop()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        client_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client_sock.setblocking(False)
        await loop.sock_connect(client_sock, listener.getsockname())
        conn, _ = await loop.sock_accept(listener)
    finally:
        listener.close()
    client = ClientProtocol(parse_uri(f"ws://127.0.0.1:{conn.getsockname()[1]}/"))
    client.send_request(client.connect())
    await loop.sock_sendall(client_sock, b"".join(client.data_to_send()))
    server = ServerProtocol()
    request = None
    while request is None:
        server.receive_data(await loop.sock_recv(conn, 65536))
        received = server.events_received()
        if received:
            assert isinstance(received[0], Request)
            request = received[0]
    server.send_response(server.accept(request))
    executor.open_connection("c")
    executor.adopt_socket("c", conn.detach(), b"".join(server.data_to_send()), **keep_alive)
    return client_sock, client


async def frames_until(
    sock: socket.socket, client: ClientProtocol, done: Callable[[list[Frame]], bool], answer: bool
) -> list[Frame]:
    """Reads frames until `done(frames)`; sends what the client protocol wants to (its pongs)
    only when `answer`."""
    loop = asyncio.get_running_loop()
    frames: list[Frame] = []
    while not done(frames):
        data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 5)
        if not data:
            client.receive_eof()
        else:
            client.receive_data(data)
        frames.extend(e for e in client.events_received() if isinstance(e, Frame))
        outgoing = client.data_to_send()
        if answer:
            for chunk in outgoing:
                if chunk:
                    await loop.sock_sendall(sock, chunk)
        if not data:
            break
    return frames


async def test_keep_alive_pings_and_a_client_that_answers_stays(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    sock, client = await adopt_raw(executor, ping_interval=0.1, ping_timeout=0.3)
    with sock:
        frames = await frames_until(
            sock, client, lambda fs: sum(f.opcode is Opcode.PING for f in fs) >= 5, answer=True
        )
        assert all(f.opcode is Opcode.PING for f in frames)
        assert watcher.closed() == []
        executor.socket_close("c", 1000, "bye")
        await watcher.wait_for(lambda items: bool(watcher.closed()))
    assert watcher.closed() == [("c", "closed", 1000)]


async def test_keep_alive_closes_a_client_that_does_not_answer_with_1011(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, watcher = events
    sock, client = await adopt_raw(executor, ping_interval=0.1, ping_timeout=0.2)
    with sock:
        frames = await frames_until(
            sock, client, lambda fs: any(f.opcode is Opcode.CLOSE for f in fs), answer=False
        )
        await watcher.wait_for(lambda items: bool(watcher.closed()), timeout=10)
    assert [f.opcode for f in frames] == [Opcode.PING, Opcode.CLOSE]
    assert frames[-1].data[:2] == (1011).to_bytes(2, "big")
    assert watcher.closed() == [("c", "closed", 1011)]


async def test_keep_alive_settings_are_checked(
    events: tuple[PySubscriptionExecutor, SocketEvents],
) -> None:
    executor, _ = events
    for bad in (
        {"ping_interval": 0.0},
        {"ping_interval": -1.0},
        {"ping_interval": 1.0, "ping_timeout": 0.0},
    ):
        first, second = socket.socketpair()
        executor.open_connection("k")
        with pytest.raises(ValueError, match="positive"):
            executor.adopt_socket("k", first.detach(), **bad)
        executor.remove_connection("k")
        second.close()
