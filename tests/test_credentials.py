"""Credentials that expire, and their in-band refresh: `expires_at` in the context `on_connect`
returns closes a WebSocket with 4403 "Token expired" (or ends an SSE stream) when it passes;
a graphql-transport-ws `ping` whose payload carries new credentials goes to `on_refresh`,
which renews the connection or refuses (4403). Over real sockets, with real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from helpers import (
    COUNTER,
    counters,
    js_clients,
    node_client,
    protocol_app,
    running_server,
    until,
    ws_client,
)

from fraiseql_fastapi import ConnectionContext, SubscriptionManager, subscription
from fraiseql_fastapi.decorator import SubscriptionRegistry

pytestmark = pytest.mark.anyio

admins = SubscriptionRegistry()


@subscription(registry=admins, channel="counter", roles="admin")
def audited(event: Any) -> int:
    """The numbers of `counter`, for admins only."""
    return int(event.data["n"])


FIELDS = [*counters.fields, *admins.fields]
AUDITED = "subscription { audited }"
#: How long a "short" token lives, in seconds.
SHORT = 0.6


def issued(token: str | None) -> Any:
    """The verdict for a token, issued now (what `on_connect` returns)."""
    now = time.time()
    ann = {"user_id": "ann", "tenant_id": "acme", "roles": ["reader"]}
    tokens: dict[str | None, Any] = {
        "short": {**ann, "expires_at": now + SHORT},
        "long": {**ann, "expires_at": now + 30},
        "dated": {**ann, "expires_at": datetime.now(UTC) + timedelta(seconds=SHORT)},
        "expired": {**ann, "expires_at": now - 1},
        "forever": ann,
        "bad-expiry": {**ann, "expires_at": "soon"},
    }
    return tokens.get(token, False)


def on_connect(payload: Any, request: Any) -> Any:
    """WebSockets: the token in `connection_init`; SSE: in the Authorization header."""
    if payload is not None:
        return issued(payload.get("token"))
    return issued(request.headers.get("authorization", "").removeprefix("Bearer ") or None)


refreshes: list[tuple[dict[str, Any], ConnectionContext]] = []


async def on_refresh(payload: dict[str, Any], context: ConnectionContext) -> Any:
    """Renews `ann`'s credentials for a good token; every other way a refresh can go."""
    refreshes.append((payload, context))
    await asyncio.sleep(0)  # an async hook, as one checking a token would be
    now = time.time()
    same = {
        "user_id": context.user_id,
        "tenant_id": context.tenant_id,
        "roles": context.roles,
        "expires_at": now + 30,
    }
    match payload.get("token"):
        case "renewed":
            return {**same, "ack_payload": {"expiresIn": 30}}
        case "promoted":
            return {**same, "roles": {*context.roles, "admin"}}
        case "same":
            return None
        case "denied":
            return False
        case "raise":
            raise PermissionError("no")
        case "other-user":
            return {**same, "user_id": "bob"}
        case "other-tenant":
            return {**same, "tenant_id": "globex"}
        case "fewer-roles":
            return {**same, "roles": []}
        case "already-expired":
            return {**same, "expires_at": now - 1}
        case "bad-expiry":
            return {**same, "expires_at": "later"}
    return False


@contextlib.asynccontextmanager
async def server(
    subprotocols: list[str] | None = None, refresh: bool = True, **options: Any
) -> AsyncIterator[tuple[str, SubscriptionManager]]:
    refreshes.clear()
    app, manager = protocol_app(
        FIELDS,
        on_connect,
        on_refresh=on_refresh if refresh else None,
        **{"ping_interval": None, "keepalive_interval": None, **options},
    )
    async with running_server(app) as address:
        yield address, manager


async def live(manager: SubscriptionManager, count: int = 1) -> None:
    await until(lambda: manager.get_metrics()["subscribers"] == count)


# ----- expiry ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["short", "dated"])
async def test_the_connection_closes_4403_when_its_credentials_expire(token: str) -> None:
    async with server() as (address, manager), ws_client(address) as client:
        assert (await client.init({"token": token}))["type"] == "connection_ack"
        opened = time.monotonic()
        await client.subscribe("1", COUNTER)
        await live(manager)
        await manager.publish("counter", {"n": 1})
        assert (await client.receive())["payload"]["data"] == {"counter": 1}
        assert await client.closed_with() == (4403, "Token expired")
        assert SHORT - 0.2 < time.monotonic() - opened < SHORT + 1.5
        await until(lambda: not manager.connections)
        assert manager.get_metrics()["subscribers"] == 0
        assert manager.connections_closed[4403] == 1


async def test_credentials_without_expiry_do_not_expire() -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.init({"token": "forever"})
        await client.subscribe("1", COUNTER)
        await live(manager)
        await asyncio.sleep(SHORT + 0.3)
        await manager.publish("counter", {"n": 2})
        assert (await client.receive())["payload"]["data"] == {"counter": 2}


async def test_credentials_expired_already_are_refused_before_the_ack() -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.send({"type": "connection_init", "payload": {"token": "expired"}})
        await client.subscribe("1", COUNTER)
        assert await client.closed_with() == (4403, "Token expired")
        assert manager.get_metrics()["subscriptions_registered"] == 0


async def test_an_expiry_that_is_no_time_is_a_server_error_not_a_session() -> None:
    """A hook's mistake is seen (an error log, 4500), and fails closed."""
    async with server() as (address, manager), ws_client(address) as client:
        await client.send({"type": "connection_init", "payload": {"token": "bad-expiry"}})
        assert await client.closed_with() == (4500, "Internal server error")
        assert manager.get_metrics()["subscriptions_registered"] == 0


async def test_the_legacy_protocol_closes_4403_when_the_credentials_expire() -> None:
    async with (
        server() as (address, manager),
        ws_client(address, subprotocols=["graphql-ws"]) as client,
    ):
        assert (await client.init({"token": "short"}))["type"] == "connection_ack"
        await client.send({"id": "1", "type": "start", "payload": {"query": COUNTER}})
        await live(manager)
        assert await client.closed_with() == (4403, "Token expired")
        await until(lambda: manager.connections_closed[4403] == 1)


@pytest.mark.parametrize("value", ["soon", True, float("nan"), float("inf"), datetime.now()])
def test_an_expiry_must_be_an_instant(value: Any) -> None:
    with pytest.raises(TypeError, match="expires_at"):
        ConnectionContext.from_value({"user_id": "ann", "expires_at": value})


def test_an_expiry_is_kept_as_a_unix_timestamp() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    context = ConnectionContext.from_value({"expires_at": at})
    assert context.expires_at == at.timestamp()
    assert ConnectionContext(expires_at=1_900_000_000).expires_at == 1_900_000_000.0
    assert not context.is_expired()
    assert ConnectionContext(expires_at=time.time() - 1).is_expired()
    assert ConnectionContext().seconds_left() is None


# ----- refresh -----------------------------------------------------------------------------------


async def ping(client: Any, payload: dict[str, Any] | None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "ping"}
    if payload is not None:
        message["payload"] = payload
    await client.send(message)
    return await client.receive()


async def test_a_ping_with_new_credentials_renews_the_connection() -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.init({"token": "short"})
        await client.subscribe("1", COUNTER)
        await live(manager)
        assert await ping(client, {"token": "renewed"}) == {
            "type": "pong",
            "payload": {"expiresIn": 30},
        }
        payload, context = refreshes[0]
        assert payload == {"token": "renewed"}
        assert (context.user_id, context.tenant_id) == ("ann", "acme")
        await asyncio.sleep(SHORT + 0.3)  # past the first credentials' expiry
        await manager.publish("counter", {"n": 3})
        assert (await client.receive())["payload"]["data"] == {"counter": 3}
        assert manager.connections_closed[4403] == 0


async def test_new_operations_are_checked_against_the_renewed_context() -> None:
    async with server() as (address, manager), ws_client(address) as client:
        await client.init({"token": "long"})
        await client.subscribe("1", AUDITED)
        refused = await client.receive()
        assert refused["type"] == "error"
        assert refused["payload"][0]["extensions"]["code"] == "FORBIDDEN"
        assert await ping(client, {"token": "promoted"}) == {"type": "pong"}
        await client.subscribe("2", AUDITED)
        await live(manager)
        await manager.publish("counter", {"n": 4})
        assert await client.receive() == {
            "id": "2",
            "type": "next",
            "payload": {"data": {"audited": 4}},
        }


async def test_a_refresh_that_keeps_the_context_keeps_its_expiry() -> None:
    async with server() as (address, _), ws_client(address) as client:
        await client.init({"token": "short"})
        assert await ping(client, {"token": "same"}) == {"type": "pong"}
        assert len(refreshes) == 1
        assert await client.closed_with() == (4403, "Token expired")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("denied", "Forbidden"),
        ("raise", "Forbidden"),
        ("other-user", "Forbidden"),
        ("other-tenant", "Forbidden"),
        ("fewer-roles", "Forbidden"),
        ("unknown", "Forbidden"),
        ("already-expired", "Token expired"),
        ("bad-expiry", "Internal server error"),
    ],
)
async def test_a_refused_refresh_closes_the_connection(token: str, reason: str) -> None:
    """Fails closed: a refusal, a context for someone else or with fewer grants (the live
    subscriptions were allowed by them), credentials already expired, or a hook's mistake."""
    async with server() as (address, manager), ws_client(address) as client:
        await client.init({"token": "long"})
        await client.subscribe("1", COUNTER)
        await live(manager)
        await client.send({"type": "ping", "payload": {"token": token}})
        code = 4500 if reason == "Internal server error" else 4403
        assert await client.closed_with() == (code, reason)
        await until(lambda: manager.get_metrics()["subscribers"] == 0)


async def test_pings_that_carry_no_credentials_are_only_pings() -> None:
    async with server() as (address, _), ws_client(address) as client:
        # Before the ack there is no connection to renew; without a payload nothing to renew.
        assert await ping(client, {"token": "renewed"}) == {"type": "pong"}
        await client.init({"token": "long"})
        assert await ping(client, None) == {"type": "pong"}
        assert refreshes == []


async def test_without_on_refresh_a_ping_payload_renews_nothing() -> None:
    async with server(refresh=False) as (address, _), ws_client(address) as client:
        await client.init({"token": "short"})
        assert await ping(client, {"token": "renewed"}) == {"type": "pong"}
        assert await client.closed_with() == (4403, "Token expired")


# ----- SSE ---------------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def streaming(token: str) -> dict[str, str]:
    return {**bearer(token), "accept": "text/event-stream"}


async def lines_until_end(response: httpx.Response) -> list[str]:
    return [line async for line in response.aiter_lines() if line and not line.startswith(":")]


async def test_an_sse_stream_ends_when_its_credentials_expire() -> None:
    async with (
        server() as (address, manager),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
        http.stream("POST", "/graphql", json={"query": COUNTER}, headers=streaming("short")) as rsp,
    ):
        assert rsp.status_code == 200
        opened = time.monotonic()
        await live(manager)
        await manager.publish("counter", {"n": 5})
        lines = await asyncio.wait_for(lines_until_end(rsp), 5)
        assert SHORT - 0.2 < time.monotonic() - opened < SHORT + 1.5
        # The `next`, and no `complete`: the client reconnects with new credentials.
        assert lines == ["event: next", 'data: {"data":{"counter":5}}']
        await until(lambda: not manager.connections)
        assert manager.connections_closed[4403] == 1


async def test_sse_credentials_expired_already_are_a_403() -> None:
    async with (
        server() as (address, manager),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        body = {"query": COUNTER}
        response = await http.post("/graphql", json=body, headers=streaming("expired"))
        assert response.status_code == 403
        assert "Token expired" in response.text
        assert manager.get_metrics()["subscriptions_registered"] == 0


async def test_an_sse_request_with_new_credentials_extends_its_stream() -> None:
    """Single connection mode: each request on a stream brings credentials; the stream lasts
    as long as its latest request's."""
    async with (
        server() as (address, manager),
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        reserved = await http.put("/graphql", headers=bearer("short"))
        token = reserved.text
        headers = {**streaming("short"), "x-graphql-event-stream-token": token}
        async with http.stream("GET", "/graphql", headers=headers) as rsp:
            body = {"query": COUNTER, "extensions": {"operationId": "a"}}
            long = {**bearer("long"), "x-graphql-event-stream-token": token}
            assert (await http.post("/graphql", json=body, headers=long)).status_code == 202
            await live(manager)
            await asyncio.sleep(SHORT + 0.3)
            await manager.publish("counter", {"n": 6})
            lines = (line async for line in rsp.aiter_lines() if line and line[0] != ":")
            record = [await anext(lines) for _ in range(2)]
            assert record[0] == "event: next"
            assert json.loads(record[1].removeprefix("data: ")) == {
                "id": "a",
                "payload": {"data": {"counter": 6}},
            }
        assert manager.connections_closed[4403] == 0


# ----- a real graphql-ws client ------------------------------------------------------------------


@js_clients
async def test_graphql_ws_client_refreshes_its_token_on_the_live_socket() -> None:
    """The token refresh guide's recipe: graphql-ws's `createClient`, the socket from its
    `connected` event, a ping with the new token before the old one expires."""
    async with (
        server() as (address, manager),
        node_client("graphql_ws_client.mjs", f"ws://{address}/graphql", "refresh") as node,
    ):
        await node.expect("connected")
        await live(manager)
        await manager.publish("counter", {"n": 1})
        assert (await node.expect("next"))["data"] == {"counter": 1}
        await node.tell("refresh renewed")
        assert (await node.expect("pong"))["payload"] == {"expiresIn": 30}
        await asyncio.sleep(SHORT + 0.3)
        await manager.publish("counter", {"n": 2})
        assert (await node.expect("next"))["data"] == {"counter": 2}
        await node.tell("refresh denied")
        closed = await node.expect("closed")
        assert (closed["code"], closed["reason"]) == (4403, "Forbidden")
        await node.tell("exit")
