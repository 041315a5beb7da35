"""A graphql-transport-ws server whose sockets the core serves: Python reads the HTTP
upgrade, then hands the socket to the core, which writes every frame itself and reports what
the client sends through one descriptor the event loop watches.

Run it (`python docs/examples/core/adopt.py`), then point a graphql-ws client at
ws://127.0.0.1:8765 and subscribe to `subscription { ticks { n } }`."""

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import socket

from fraiseql_core_rs import PySubscriptionExecutor

PROTOCOL = "graphql-transport-ws"
executor = PySubscriptionExecutor()
connection_ids = (f"conn{n}" for n in itertools.count(1))
acknowledged: set[str] = set()


async def upgrade(sock: socket.socket) -> tuple[bytes, bool]:
    """Reads the client's upgrade request; the HTTP 101 response, and whether the client
    offered our subprotocol."""
    loop = asyncio.get_running_loop()
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionError("the client went away during the handshake")
        request += chunk
    lines = request.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    key = headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()
    offered = PROTOCOL in [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n"
        + (f"Sec-WebSocket-Protocol: {PROTOCOL}\r\n" if offered else "")
        + "\r\n"
    )
    return response.encode(), offered


async def adopt(sock: socket.socket) -> None:
    connection_id = next(connection_ids)
    try:
        handshake, offered = await upgrade(sock)
    except (ConnectionError, KeyError):
        sock.close()
        return
    executor.open_connection(connection_id)
    try:
        executor.adopt_socket(connection_id, sock.detach(), handshake)  # the core owns the fd now
    except ConnectionError:  # the client is gone already
        executor.remove_connection(connection_id)
        return
    if not offered:
        executor.socket_close(connection_id, 4406, "Subprotocol not acceptable")


def on_socket_events() -> None:
    """The loop saw `socket_events_fd` readable."""
    for connection_id, kind, value in executor.take_socket_events():
        if kind == "text":
            assert isinstance(value, str)
            on_message(connection_id, value)
        elif kind == "binary":
            executor.socket_close(connection_id, 4400, "Binary messages are not supported")
        else:  # ("closed", code): exactly once per socket
            acknowledged.discard(connection_id)
            executor.remove_connection(connection_id)


def on_message(connection_id: str, text: str) -> None:
    try:
        message = json.loads(text)
        kind = message["type"]
    except (ValueError, TypeError, KeyError):
        executor.socket_close(connection_id, 4400, "Invalid message")
        return
    if kind == "connection_init":
        acknowledged.add(connection_id)
        executor.socket_send(connection_id, '{"type":"connection_ack"}')
    elif kind == "ping":
        executor.socket_send(connection_id, '{"type":"pong"}')
    elif kind in ("subscribe", "complete") and connection_id not in acknowledged:
        executor.socket_close(connection_id, 4401, "Unauthorized")
    elif kind == "subscribe":
        operation_id, payload = message["id"], message["payload"]
        try:
            executor.register_subscription(
                connection_id,
                f"{connection_id}/{operation_id}",
                payload["query"],
                payload.get("operationName"),
                payload.get("variables"),
                operation_id=operation_id,
            )
        except (ValueError, TypeError, PermissionError) as error:
            errors = [{"message": str(error)}]
            reply = {"id": operation_id, "type": "error", "payload": errors}
            executor.socket_send(connection_id, json.dumps(reply))  # after the frames queued before
    elif kind == "complete":
        with contextlib.suppress(KeyError):
            executor.complete_subscription(f"{connection_id}/{message['id']}")
    else:
        executor.socket_close(connection_id, 4400, f"Unexpected message {kind!r}")


async def serve(listener: socket.socket) -> None:
    """Accepts clients on `listener` (bound and listening) until cancelled."""
    loop = asyncio.get_running_loop()
    loop.add_reader(executor.socket_events_fd, on_socket_events)
    listener.setblocking(False)
    handshakes: set[asyncio.Task[None]] = set()
    try:
        while True:
            sock, _ = await loop.sock_accept(listener)
            task = asyncio.create_task(adopt(sock))
            handshakes.add(task)
            task.add_done_callback(handshakes.discard)
    finally:
        loop.remove_reader(executor.socket_events_fd)


async def main() -> None:
    listener = socket.create_server(("127.0.0.1", 8765))
    server = asyncio.create_task(serve(listener))
    for n in itertools.count():  # frames are written by the core's threads, not by this loop
        executor.publish_event("tick", "ticks", {"n": n})
        await asyncio.sleep(1)
    await server


if __name__ == "__main__":
    asyncio.run(main())
