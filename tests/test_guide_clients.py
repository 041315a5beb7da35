"""The guides "SSE and the legacy protocol" and "An existing Strawberry or Ariadne schema", and
"Migrating from Strawberry", run as written: their files under docs/examples/ (sse/,
existing_schema/, migrating/) are served by a real uvicorn server and driven by the real
clients the pages show (curl, graphql-sse, subscriptions-transport-ws, EventSource, gql), and
every behaviour the pages state (status codes, messages, close codes) is asserted here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from example_modules import fresh_module
from helpers import JS, ROOT, js_clients, protocol_app, running_server, until, ws_client
from pydantic import BaseModel

from fraiseql_fastapi import SubscriptionDefinitionError, SubscriptionManager
from fraiseql_fastapi.http_abstraction import ProtocolOptions

pytestmark = pytest.mark.anyio

EXAMPLES = ROOT / "docs" / "examples"
SSE = EXAMPLES / "sse"
ROOM = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
EVENT_STREAM = {"accept": "text/event-stream"}
ANN = {"authorization": "Bearer ann-token"}
BOB = {"authorization": "Bearer bob-token"}


def subscribers(module: ModuleType) -> int:
    count: int = module.manager.get_metrics()["subscribers"]
    return count


async def post(address: str, room: str, message: dict[str, str], **params: str) -> Any:
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        response = await http.post(f"/rooms/{room}/messages", json=message, params=params)
        response.raise_for_status()
        return response.json()


def message(n: int, text: str = "hi") -> dict[str, str]:
    return {"id": str(n), "room_id": "lobby", "text": text}


def result(n: int, text: str = "hi") -> dict[str, Any]:
    return {"data": {"messagePosted": {"id": str(n), "text": text}}}


# ----- node: the page's scripts, with tests/js's node_modules -----------------------------------


class Node:
    """A node process running one of docs/examples/sse/*.mjs; its stdout line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 10.0) -> str:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not raw:
            assert self.process.stderr is not None
            raise AssertionError(f"node exited: {(await self.process.stderr.read()).decode()}")
        return raw.decode().rstrip("\n")

    async def json(self, timeout: float = 10.0) -> Any:
        return json.loads(await self.line(timeout))


@contextlib.asynccontextmanager
async def node(tmp_path: Path, script: str, *args: str, flags: tuple[str, ...] = ()) -> Any:
    """Runs docs/examples/sse/SCRIPT as written, from a directory where its imports resolve
    (ES modules ignore NODE_PATH: a copy next to a link to tests/js/node_modules)."""
    work = tmp_path / "js"
    work.mkdir(exist_ok=True)
    if not (work / "node_modules").exists():
        (work / "node_modules").symlink_to(JS / "node_modules")
    shutil.copy(SSE / script, work / script)
    # Node exits when nothing holds its loop, as during EventSource's reconnection delay
    # (an unref'd timer); a browser tab does not.
    (work / "stay.cjs").write_text("setInterval(() => {}, 1 << 30);\n")
    executable = shutil.which("node")
    assert executable is not None
    process = await asyncio.create_subprocess_exec(
        executable,
        "--require",
        "./stay.cjs",
        *flags,
        script,
        *args,
        cwd=work,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield Node(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# ----- SSE: curl, distinct connections mode -------------------------------------------------------


def shell(name: str, address: str) -> str:
    """docs/examples/sse/NAME.sh, pointed at `address` instead of 127.0.0.1:8000."""
    return (SSE / name).read_text().replace("127.0.0.1:8000", address)


async def test_curl_subscribes_on_a_stream_of_its_own_and_gets_what_the_page_shows() -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with running_server(sse.app) as address:
        curl = await asyncio.create_subprocess_exec(
            "bash", "-c", shell("subscribe.sh", address), stdout=asyncio.subprocess.PIPE
        )
        try:
            await until(lambda: subscribers(sse) == 1)
            publish = await asyncio.create_subprocess_exec(
                "bash", "-c", shell("publish.sh", address), stdout=asyncio.subprocess.PIPE
            )
            stdout, _ = await asyncio.wait_for(publish.communicate(), 10)
            assert json.loads(stdout) == {"delivered": 1}
            expected = (SSE / "subscribe.out").read_bytes()
            assert curl.stdout is not None
            got = await asyncio.wait_for(curl.stdout.readexactly(len(expected)), 5)
            assert got == expected
        finally:
            curl.kill()
            await curl.wait()
        await until(lambda: subscribers(sse) == 0)  # closing the stream ends the subscription


async def test_distinct_mode_queries_errors_and_get() -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with (
        running_server(sse.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http,
    ):
        # A query: one `next`, then `complete`, and the response ends.
        response = await http.post(
            "/graphql", json={"query": "{ __typename }"}, headers={**EVENT_STREAM, **ANN}
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.text == (
            ':\n\nevent: next\ndata: {"data":{"__typename":"Query"}}\n\nevent: complete\ndata: \n\n'
        )
        # A document that does not validate: a `next` with `errors`, then `complete` (200).
        response = await http.post(
            "/graphql", json={"query": "subscription { nope }"}, headers={**EVENT_STREAM, **ANN}
        )
        assert response.status_code == 200
        records = [r for r in response.text.split("\n\n") if r and r != ":"]
        assert records[0].startswith("event: next\ndata: ")
        assert "errors" in json.loads(records[0].removeprefix("event: next\ndata: "))
        assert records[1:] == ["event: complete\ndata: "]
        # A GET with the request in the query string works too...
        query = {"query": ROOM, "variables": json.dumps({"room": "lobby"})}
        async with http.stream("GET", "/graphql", params=query, headers=EVENT_STREAM) as stream:
            assert stream.status_code == 200
            await until(lambda: subscribers(sse) == 1)
        # ...but never a mutation (405), and the statuses the page lists.
        mutation = await http.get(
            "/graphql", params={"query": "mutation { x }"}, headers=EVENT_STREAM
        )
        assert mutation.status_code == 405
        refused = await http.post(
            "/graphql", json={"query": ROOM}, headers={**EVENT_STREAM, "authorization": "Bearer x"}
        )
        assert refused.status_code == 403
        not_json = await http.post(
            "/graphql", content="{}", headers={**EVENT_STREAM, "content-type": "text/plain"}
        )
        assert not_json.status_code == 415
        unservable = await http.put("/graphql", headers={"accept": "application/json"})
        assert unservable.status_code == 406
        assert sse.manager.get_metrics()["active_connections"] == 0


# ----- SSE: single connection mode ---------------------------------------------------------------


async def records(response: httpx.Response) -> AsyncIterator[str]:
    """The records of an event stream, comments left out."""
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        while "\n\n" in buffer:
            record, buffer = buffer.split("\n\n", 1)
            if not record.startswith(":"):
                yield record


async def test_single_connection_mode_with_a_token() -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with (
        running_server(sse.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http,
    ):
        reserved = await http.put("/graphql", headers=ANN)
        assert reserved.status_code == 201
        assert reserved.headers["content-type"].startswith("text/plain")
        token = reserved.text
        with_token = {**ANN, "x-graphql-event-stream-token": token}
        unknown = {**EVENT_STREAM, **ANN, "x-graphql-event-stream-token": "nope"}
        assert (await http.get("/graphql", headers=unknown)).status_code == 404
        async with http.stream("GET", "/graphql", headers={**EVENT_STREAM, **with_token}) as s:
            assert s.status_code == 200
            again = await http.get("/graphql", headers={**EVENT_STREAM, **with_token})
            assert again.status_code == 409  # already open
            body = {"query": ROOM, "variables": {"room": "lobby"}}
            start = {**body, "extensions": {"operationId": "1"}}
            assert (await http.post("/graphql", json=start, headers=with_token)).status_code == 202
            assert (await http.post("/graphql", json=start, headers=with_token)).status_code == 409
            assert (await http.post("/graphql", json=body, headers=with_token)).status_code == 400
            invalid = {"query": "subscription { nope }", "extensions": {"operationId": "2"}}
            answer = await http.post("/graphql", json=invalid, headers=with_token)
            assert answer.status_code == 400 and answer.json()["errors"]
            # The token is bound to ann (acme): bob, of another tenant, may not use it.
            bobs = {**BOB, "x-graphql-event-stream-token": token}
            assert (await http.post("/graphql", json=start, headers=bobs)).status_code == 403
            # ?token= works as well as the header.
            by_query = await http.post(
                "/graphql",
                params={"token": token},
                json={**body, "extensions": {"operationId": "3"}},
                headers=ANN,
            )
            assert by_query.status_code == 202
            await until(lambda: subscribers(sse) == 2)
            await post(address, "lobby", message(1))
            stream = records(s)
            got = {await anext(stream), await anext(stream)}
            payload = json.dumps({"data": {"messagePosted": {"id": "1", "text": "hi"}}})
            assert got == {
                f'event: next\ndata: {{"id":"{op}","payload":{payload.replace(" ", "")}}}'
                for op in ("1", "3")
            }
            stop = await http.delete("/graphql", params={"operationId": "1"}, headers=with_token)
            assert stop.status_code == 200
            await until(lambda: subscribers(sse) == 1)
            await post(address, "lobby", message(2))
            record = await anext(stream)
            assert record.startswith('event: next\ndata: {"id":"3"')  # no `complete` for 1
        await until(lambda: sse.manager.get_metrics()["active_connections"] == 0)
        assert (await http.post("/graphql", json=start, headers=with_token)).status_code == 404


async def test_sse_off() -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    app, _ = protocol_app(sse.registry.fields, None, sse=False)
    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=5) as http,
    ):
        assert (await http.put("/graphql")).status_code == 405
        assert (await http.delete("/graphql")).status_code == 405
        stream = await http.post("/graphql", json={"query": ROOM}, headers=EVENT_STREAM)
        assert stream.status_code == 406
        query = await http.post("/graphql", json={"query": "{ __typename }"})
        assert query.json() == {"data": {"__typename": "Query"}}


# ----- SSE: the JavaScript clients --------------------------------------------------------------


@js_clients
@pytest.mark.parametrize("mode", ["distinct", "single"])
async def test_graphql_sse_client(tmp_path: Path, mode: str) -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with running_server(sse.app) as address:
        async with node(tmp_path, "graphql_sse_client.mjs", f"http://{address}/graphql", mode):
            await until(lambda: subscribers(sse) == 1, timeout=10)
            async with node(
                tmp_path, "graphql_sse_client.mjs", f"http://{address}/graphql", mode
            ) as c:
                await until(lambda: subscribers(sse) == 2, timeout=10)
                for n in (1, 2):
                    assert await post(address, "lobby", message(n)) == {"delivered": 2}
                assert [await c.json(), await c.json()] == [result(1), result(2)]
                # ann is of acme: an event for globex's tenant does not reach her.
                assert await post(address, "lobby", message(3), tenant="globex") == {"delivered": 0}
        await until(lambda: sse.manager.get_metrics()["active_connections"] == 0)


class Proxy:
    """A TCP forwarder to `upstream` whose responses the test can end, as a proxy or a
    network drop does. (Node 20's EventSource, unlike browsers', gives up on a reset
    connection: `cut` ends each chunked response cleanly, then closes both sides.)"""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.split(":")
        self.port = int(port)
        self.pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.pairs.append((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for client, upstream in self.pairs:
            upstream.transport.abort()
            if not client.is_closing():
                client.write(b"0\r\n\r\n")  # the last chunk: the response is over
                client.close()
        self.pairs.clear()


@js_clients
async def test_eventsource_resumes_with_last_event_id_after_a_dropped_connection(
    tmp_path: Path,
) -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with running_server(sse.app) as address:
        proxy = Proxy(address)
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/graphql"
        try:
            async with node(
                tmp_path, "eventsource.mjs", url, flags=("--experimental-eventsource",)
            ) as source:
                await until(lambda: subscribers(sse) == 1, timeout=10)
                assert await post(address, "lobby", message(1)) == {"delivered": 1}
                first = await source.json()
                assert first["result"]["data"] == result(1)["data"] and first["id"]
                # Anonymous: an event for a tenant never reaches it.
                assert await post(address, "lobby", message(9), tenant="acme") == {"delivered": 0}
                proxy.cut()
                await until(lambda: subscribers(sse) == 0)
                for n in (2, 3):  # missed while it is away
                    assert await post(address, "lobby", message(n)) == {"delivered": 0}
                # EventSource reconnects by itself (about 3 s) with Last-Event-ID.
                missed = [await source.json(timeout=15), await source.json()]
                assert [m["result"]["data"] for m in missed] == [
                    result(2)["data"],
                    result(3)["data"],
                ]
                assert len({first["id"], missed[0]["id"], missed[1]["id"]}) == 3
                assert await post(address, "lobby", message(4)) == {"delivered": 1}
                assert (await source.json())["result"]["data"] == result(4)["data"]
                # Ended by the server: `complete`, and the page's script closes the source.
                assert sse.manager.complete_channel("room:lobby") == 1
                assert await source.line() == "complete"
                await asyncio.sleep(3.5)  # past EventSource's reconnection delay
                assert subscribers(sse) == 0
        finally:
            proxy.cut()
            server.close()


@js_clients
async def test_subscriptions_transport_ws_client(tmp_path: Path) -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with (
        running_server(sse.app) as address,
        node(tmp_path, "legacy_client.mjs", f"ws://{address}/graphql") as client,
    ):
        await until(lambda: subscribers(sse) == 1, timeout=10)
        for n in (1, 2):
            assert await post(address, "lobby", message(n)) == {"delivered": 1}
        assert [await client.json(), await client.json()] == [result(1), result(2)]
        assert await post(address, "lobby", message(3), tenant="globex") == {"delivered": 0}


# ----- the legacy graphql-ws protocol, message by message -----------------------------------------


async def test_legacy_protocol_messages() -> None:
    sse = fresh_module("docs/examples/sse/app.py")
    async with running_server(sse.app) as address:
        # The client's first choice among the subprotocols it offers.
        async with ws_client(address, subprotocols=["graphql-ws", "graphql-transport-ws"]) as c:
            assert c.ws.subprotocol == "graphql-ws"
            await c.send({"type": "connection_init", "payload": {"token": "ann-token"}})
            assert await c.receive() == {"type": "connection_ack"}
            assert await c.receive() == {"type": "ka"}  # at once, then every 12 s
            start = {"query": ROOM, "variables": {"room": "lobby"}}
            await c.send({"id": "1", "type": "start", "payload": start})
            await until(lambda: subscribers(sse) == 1)
            await post(address, "lobby", message(1))
            assert await c.receive() == {"id": "1", "type": "data", "payload": result(1)}
            await c.send({"id": "2", "type": "start", "payload": {"query": "subscription { x }"}})
            error = await c.receive()
            assert error["id"] == "2" and error["type"] == "error"
            assert isinstance(error["payload"], list) and error["payload"][0]["message"]
            await c.send({"id": "1", "type": "stop"})
            assert await c.receive() == {"id": "1", "type": "complete"}
            await c.send({"type": "connection_init"})
            assert (await c.closed_with())[0] == 4429
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            await c.send({"type": "connection_init", "payload": {"token": "nope"}})
            assert await c.receive() == {
                "type": "connection_error",
                "payload": {"message": "Forbidden"},
            }
            assert await c.closed_with() == (4403, "Forbidden")
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            await c.send({"id": "1", "type": "start", "payload": {"query": ROOM}})
            assert (await c.closed_with())[0] == 4401
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            await c.send({"type": "connection_init"})
            assert await c.receive() == {"type": "connection_ack"}
            await c.send({"type": "connection_terminate"})
            assert (await c.closed_with())[0] == 1000
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            await c.send({"type": "nonsense"})
            assert (await c.closed_with())[0] == 4400
        async with ws_client(address, subprotocols=["something-else"]) as c:
            assert (await c.closed_with())[0] == 4406


async def test_legacy_timers_and_turning_protocols_off() -> None:
    assert ProtocolOptions().keepalive_interval == 12.0
    assert ProtocolOptions().connection_init_timeout == 3.0
    sse = fresh_module("docs/examples/sse/app.py")
    app, _ = protocol_app(
        sse.registry.fields, None, keepalive_interval=0.1, connection_init_timeout=0.3
    )
    async with running_server(app) as address:
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            await c.send({"type": "connection_init"})
            assert [await c.receive() for _ in range(3)] == [
                {"type": "connection_ack"},
                {"type": "ka"},
                {"type": "ka"},
            ]
        async with ws_client(address, subprotocols=["graphql-ws"]) as c:
            assert (await c.closed_with())[0] == 4408
    turned_off = {"graphql_ws": "graphql-ws", "graphql_transport_ws": "graphql-transport-ws"}
    for off, offered in turned_off.items():
        sse = fresh_module("docs/examples/sse/app.py")
        app, _ = protocol_app(sse.registry.fields, None, **{off: False})
        async with running_server(app) as address:
            async with ws_client(address, subprotocols=[offered]) as c:
                assert (await c.closed_with())[0] == 4406
            other = "graphql-transport-ws" if offered == "graphql-ws" else "graphql-ws"
            async with ws_client(address, subprotocols=[other]) as c:
                await c.send({"type": "connection_init"})
                assert await c.receive() == {"type": "connection_ack"}


# ----- an existing schema -----------------------------------------------------------------------


async def test_strawberry_schema_serves_queries_and_subscriptions() -> None:
    from fraiseql_fastapi.testing import SubscriptionTestClient

    example = fresh_module("docs/examples/existing_schema/strawberry_app.py")
    app, manager, message_type = example.app, example.manager, example.Message
    async with SubscriptionTestClient(app, cookies={"user": "ann"}) as client:
        assert await client.execute("{ hello }") == {"data": {"hello": "hello ann"}}
        sub = await client.subscribe('subscription { messagePosted(roomId: "1") { id text } }')
        await manager.publish("room:1", message_type(id="7", room_id="1", text="hi"))
        assert await sub.next() == {"data": {"messagePosted": {"id": "7", "text": "hi"}}}
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        answer = await http.post(
            "/graphql", json={"query": "{ hello }"}, headers={"cookie": "user=bob"}
        )
    assert answer.json() == {"data": {"hello": "hello bob"}}
    schema = manager.print_schema()
    assert "type Query" in schema and "messagePosted(roomId: String!): Message!" in schema


async def test_ariadne_schema_first_serves_queries_and_subscriptions_on_one_path() -> None:
    example = fresh_module("docs/examples/existing_schema/ariadne_app.py")
    async with (
        running_server(example.app) as address,
        httpx.AsyncClient(base_url=f"http://{address}") as http,
    ):
        messages = await http.post(
            "/graphql", json={"query": '{ messages(roomId: "lobby") { id text } }'}
        )
        assert messages.json() == {"data": {"messages": [{"id": "1", "text": "welcome"}]}}
        # context_getter: a Header dependency, info.context of queries.
        secret = await http.post(
            "/graphql", json={"query": "{ secret }"}, headers={"x-user": "ann"}
        )
        assert secret.json() == {"data": {"secret": "for ann"}}
        # Query errors are masked like resolver errors; a GraphQLError keeps its message.
        refused = (await http.post("/graphql", json={"query": "{ secret }"})).json()
        assert refused["errors"][0]["message"] == "Sign in first"
        assert refused["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
        broken = (await http.post("/graphql", json={"query": "{ broken }"})).json()
        assert broken["data"] == {"broken": None}
        assert broken["errors"][0]["message"] == "Internal server error"
        assert "hunter2" not in json.dumps(broken)
        async with ws_client(address) as client:
            assert (await client.init())["type"] == "connection_ack"
            await client.subscribe("1", ROOM, {"room": "lobby"})
            await until(lambda: subscribers(example) == 1)
            await example.manager.publish("room:lobby", message(2))
            assert (await client.receive())["payload"] == result(2, "hi")
        # One schema: the SDL's Subscription type is the one served.
        typename = await http.post(
            "/graphql", json={"query": '{ __type(name: "Subscription") { fields { name } } }'}
        )
        assert typename.json() == {"data": {"__type": {"fields": [{"name": "messagePosted"}]}}}


class Message(BaseModel):
    id: str  # not the SDL's Message: a String! here, an ID! there
    room_id: str
    text: str


def test_a_type_that_differs_fails_at_startup_naming_both() -> None:
    from ariadne import make_executable_schema

    from fraiseql_fastapi import subscription
    from fraiseql_fastapi.decorator import SubscriptionRegistry

    example = fresh_module("docs/examples/existing_schema/ariadne_app.py")
    registry = SubscriptionRegistry()

    @subscription(channel="room:{room_id}", registry=registry)
    def message_posted(event: Any, room_id: str) -> Message:
        return Message(**event.data)

    schema = make_executable_schema(example.SDL, example.query)
    with pytest.raises(SubscriptionDefinitionError) as raised:
        SubscriptionManager(schema=schema, subscriptions=registry.fields)
    page = (ROOT / "docs" / "guides" / "existing-schema.md").read_text()
    shown = page.split("```text\n", 1)[1].split("```", 1)[0].rstrip("\n")
    assert str(raised.value) == shown.replace("ariadne_app.Message", f"{__name__}.Message")

    other = SubscriptionRegistry()

    @subscription(name="messagePosted", channel="room:{room_id}", registry=other)
    def returns_an_int(event: Any, room_id: str) -> int:
        return 1

    with pytest.raises(SubscriptionDefinitionError) as raised:
        SubscriptionManager(schema=schema, subscriptions=other.fields)
    shown = "Subscription.messagePosted is messagePosted(roomId: String!): Message! in the existing schema but messagePosted(roomId: String!): Int! as a @subscription"  # noqa: E501
    assert str(raised.value) == shown

    # An SDL Subscription field that no @subscription serves fails too, naming it.
    sdl = example.SDL.replace("type Subscription {", "type Subscription {\n  other: Int")
    missing = "the existing schema's Subscription.other is served by no @subscription"
    with pytest.raises(SubscriptionDefinitionError, match=re.escape(missing)):
        SubscriptionManager(
            schema=make_executable_schema(sdl, example.query),
            subscriptions=example.registry.fields,
        )


async def test_introspection_off() -> None:
    example = fresh_module("docs/examples/existing_schema/ariadne_app.py")
    manager = SubscriptionManager(
        schema=example.schema, subscriptions=example.registry.fields, introspection=False
    )
    answer = await manager.execute(manager.prepare("{ __typename }", None, None))  # type: ignore[arg-type]
    assert answer == {"data": {"__typename": "Query"}}
    refused = manager.prepare("{ __schema { types { name } } }", None, None)
    assert isinstance(refused, list) and refused


# ----- migrating from Strawberry ---------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["modern", "legacy"])
async def test_both_apps_send_the_same_messages_to_the_same_client(protocol: str) -> None:
    client = fresh_module("docs/examples/migrating/client.py")
    received = {}
    for name in ("strawberry_app", "fraiseql_app"):
        example = fresh_module(f"docs/examples/migrating/{name}.py")
        listening = (
            functools.partial(lambda e: len(e.broadcast.rooms["lobby"]) == 1, example)
            if name == "strawberry_app"
            else functools.partial(subscribers, example)
        )
        async with running_server(example.app) as address:
            url = f"ws://{address}/graphql"
            countdown = await client.countdown(url, protocol)
            task = asyncio.create_task(client.messages(url, "lobby", 2, protocol))
            await until(listening)
            posted = [
                await client.post_message(f"http://{address}/graphql", "lobby", text)
                for text in ("hi", "there")
            ]
            messages = await asyncio.wait_for(task, 5)
            received[name] = (countdown, posted, messages)
    assert received["strawberry_app"] == received["fraiseql_app"]
    assert received["fraiseql_app"] == (
        [3, 2, 1],
        [{"postMessage": {"id": "1"}}, {"postMessage": {"id": "2"}}],
        [{"id": "1", "text": "hi"}, {"id": "2", "text": "there"}],
    )


async def test_both_apps_refuse_an_anonymous_subscriber() -> None:
    """IsMember (Strawberry) and roles="member" (ours): an `error` for the operation."""
    for name in ("strawberry_app", "fraiseql_app"):
        example = fresh_module(f"docs/examples/migrating/{name}.py")
        async with running_server(example.app) as address, ws_client(address) as ws:
            assert (await ws.init())["type"] == "connection_ack"
            await ws.subscribe("1", ROOM, {"room": "lobby"})
            answer = await ws.receive()
            assert answer["type"] == "error", answer
            if name == "fraiseql_app":
                assert answer["payload"][0]["extensions"]["code"] == "FORBIDDEN"
            else:
                assert answer["payload"][0]["message"] == "Sign in first"
        async with running_server(example.app) as address, ws_client(address) as ws:
            if name == "fraiseql_app":  # an unknown token: refused at connection_init
                await ws.send({"type": "connection_init", "payload": {"token": "x"}})
                assert await ws.closed_with() == (4403, "Forbidden")
