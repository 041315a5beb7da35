"""A flood server for measuring a load client's own capacity (not a benchmark of any server):
just enough graphql-transport-ws and HTTP over raw asyncio sockets to send a burst as fast as
the kernel takes it. `POST /burst` builds each event's frame once and writes every
connection's frames in large chunks, so the client, not this server, is the limit.

    python benchmarks/load-client/tools/flood_server.py --port 8010
    fraiseql-load-client --url=ws://127.0.0.1:8010/graphql --connections=100 --events=10000

`GET /stats` reports `subscribers`; `connection_init` gets an ack; `subscribe` registers its
id; `ping` gets a pong. The frames carry `ts` (when the chunk was written).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Events per write on each connection.
CHUNK = 500


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """An unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = bytes([0x80 | opcode, size])
    elif size < 65536:
        header = bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big")
    return header + payload


class Server:
    def __init__(self) -> None:
        self.subscribers: list[tuple[Connection, str]] = []

    async def burst(self, count: int) -> None:
        for start in range(0, count, CHUNK):
            ts = time.time()
            events = range(start, min(count, start + CHUNK))
            by_id: dict[str, bytes] = {}
            for connection, op_id in list(self.subscribers):
                chunk = by_id.get(op_id)
                if chunk is None:
                    prefix = '{"id":' + json.dumps(op_id) + ',"type":"next","payload":'
                    chunk = by_id[op_id] = b"".join(
                        frame(
                            f'{prefix}{{"data":{{"ticks":{{"id":"{i}","value":{i}.5,"ts":{ts!r}}}}}}}}}'.encode()
                        )
                        for i in events
                    )
                connection.write(chunk)
            for connection, _ in list(self.subscribers):
                await connection.drain()
            await asyncio.sleep(0)


class Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = b""
        self.websocket = False
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.resumed = asyncio.Event()
        self.resumed.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.subscribers = [s for s in self.server.subscribers if s[0] is not self]
        self.resumed.set()

    def pause_writing(self) -> None:
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.resumed.set()

    async def drain(self) -> None:
        await self.resumed.wait()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.websocket:
            self.read_frames()
        else:
            self.read_http()

    def read_http(self) -> None:
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            return
        body, self.buffer = rest[:length], rest[length:]
        if headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(
                hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()
            )
            self.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n"
                b"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
            )
            self.websocket = True
            self.read_frames()
            return
        if path == "/burst" and method == "POST":
            count = int(json.loads(body or b"{}").get("count", 0))
            asyncio.get_running_loop().create_task(self.server.burst(count))
            self.respond({"published": count})
        elif path == "/stats":
            self.respond({"subscribers": len(self.server.subscribers)})
        else:
            self.respond({"error": "not found"}, b"404 Not Found")
        if self.buffer:
            self.read_http()

    def respond(self, document: object, status: bytes = b"200 OK") -> None:
        body = json.dumps(document).encode()
        self.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def read_frames(self) -> None:
        while len(self.buffer) >= 2:
            opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            at = 2
            if size == 126:
                size, at = int.from_bytes(self.buffer[2:4], "big"), 4
            elif size == 127:
                size, at = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < at + 4 + size:
                return
            mask = self.buffer[at : at + 4]
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.buffer[at + 4 : at + 4 + size]))
            self.buffer = self.buffer[at + 4 + size :]
            if opcode == 8:
                self.write(frame(data[:2], 8))
                if self.transport is not None:
                    self.transport.close()
                return
            if opcode == 1:
                self.on_message(json.loads(data))

    def on_message(self, message: dict) -> None:
        kind = message.get("type")
        if kind == "connection_init":
            self.write(frame(b'{"type":"connection_ack"}'))
        elif kind == "ping":
            self.write(frame(b'{"type":"pong"}'))
        elif kind == "subscribe":
            self.server.subscribers.append((self, message["id"]))
        elif kind == "complete":
            self.server.subscribers = [
                s for s in self.server.subscribers if s != (self, message.get("id"))
            ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    args = parser.parse_args()
    server = Server()
    listener = await asyncio.get_running_loop().create_server(
        lambda: Connection(server), args.host, args.port
    )
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
