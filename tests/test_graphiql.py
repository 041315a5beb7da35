"""GraphiQL on the GraphQL path: the page a browser's GET gets (FastAPI router and Starlette
route, on by default, off with `graphiql=False`), its pinned CDN assets and their integrity
hashes, the self-hosted layout, and the page itself in headless Chromium (puppeteer-core,
tests/js/graphiql_check.mjs): the schema in the docs explorer, a subscription's events in the
result pane, a refusal of `on_connect` shown, and the Headers pane as the `connection_init`
payload.

The browser loads the assets from tests/js/node_modules through a static mount (no internet
here), which is exactly the self-hosted layout `graphiql_assets_url` describes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from example_modules import load_module
from fastapi import FastAPI
from helpers import running_server
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from fraiseql_fastapi import EventBusConfig, SubscriptionManager
from fraiseql_fastapi.graphiql import ASSETS, STYLESHEET, accepts_html, graphiql_page
from fraiseql_fastapi.http_abstraction.fastapi import SubscriptionRouterFactory
from fraiseql_fastapi.http_abstraction.starlette import SubscriptionRoute, create_subscription_app

JS = Path(__file__).parent / "js"
NODE_MODULES = JS / "node_modules"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
TICKS = 'subscription { ticks(channel: "browser") { id value } }'


# --- the page, without a browser -----------------------------------------------------------


class Tags(HTMLParser):
    """The attributes of every <script> and <link rel=stylesheet> of a page, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.stylesheets: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and "src" in attributes:
            self.scripts.append(attributes)
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes)


def tags(page: str) -> Tags:
    parser = Tags()
    parser.feed(page)
    return parser


def test_default_page_loads_pinned_assets_from_unpkg_with_integrity() -> None:
    page = tags(graphiql_page())
    assert [(s["src"], s["crossorigin"]) for s in page.scripts] == [
        ("https://unpkg.com/react@18.3.1/umd/react.production.min.js", "anonymous"),
        ("https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js", "anonymous"),
        ("https://unpkg.com/graphql-ws@5.16.2/umd/graphql-ws.min.js", "anonymous"),
        ("https://unpkg.com/graphiql@3.8.3/graphiql.min.js", "anonymous"),
    ]
    assert [s["integrity"] for s in page.scripts] == [asset.integrity for asset in ASSETS]
    assert [(s["href"], s["integrity"], s["crossorigin"]) for s in page.stylesheets] == [
        ("https://unpkg.com/graphiql@3.8.3/graphiql.min.css", STYLESHEET.integrity, "anonymous")
    ]
    assert all(asset.integrity.startswith("sha384-") for asset in (*ASSETS, STYLESHEET))


@pytest.mark.parametrize("asset", [*ASSETS, STYLESHEET], ids=lambda asset: asset.path)
def test_integrity_hashes_are_those_of_the_npm_files(asset: Any) -> None:
    # The npm package files are byte-identical to what unpkg serves for package@version/path.
    package = NODE_MODULES / asset.package
    assert json.loads((package / "package.json").read_text())["version"] == asset.version
    digest = hashlib.sha384((package / asset.path).read_bytes()).digest()
    assert asset.integrity == "sha384-" + base64.b64encode(digest).decode()


@pytest.mark.parametrize("assets_url", ["/static/vendor", "/static/vendor/"])
def test_self_hosted_page_uses_the_npm_packages_layout(assets_url: str) -> None:
    page = tags(graphiql_page(assets_url=assets_url))
    assert [s["src"] for s in page.scripts] == [
        "/static/vendor/react/umd/react.production.min.js",
        "/static/vendor/react-dom/umd/react-dom.production.min.js",
        "/static/vendor/graphql-ws/umd/graphql-ws.min.js",
        "/static/vendor/graphiql/graphiql.min.js",
    ]
    assert [s["href"] for s in page.stylesheets] == ["/static/vendor/graphiql/graphiql.min.css"]
    assert not any("integrity" in s for s in page.scripts + page.stylesheets)


def test_assets_url_is_escaped() -> None:
    hostile = '/x"><script>alert(1)</script>'
    page = graphiql_page(assets_url=hostile)
    assert "<script>alert(1)" not in page
    assert tags(page).scripts[0]["src"] == f"{hostile}/react/umd/react.production.min.js"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("TEXT/HTML; q=0.5", True),
        ("application/json, text/html;level=1", True),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
        ("application/json", False),
        ("application/graphql-response+json, application/json", False),
        ("*/*", False),
        ("text/*", False),
        ("", False),
    ],
)
def test_accepts_html(accept: str, expected: bool) -> None:
    assert accepts_html(accept) is expected


# --- over HTTP: the FastAPI router and the Starlette route ---------------------------------


def manager() -> SubscriptionManager:
    """A manager with the Starlette example's `ticks` subscription."""
    fields = load_module("examples/starlette_app.py").registry.fields
    return SubscriptionManager(EventBusConfig.memory(), subscriptions=fields)


def fastapi_app(**graphiql: Any) -> Any:
    subscriptions = manager()
    app = FastAPI(lifespan=subscriptions.lifespan)
    app.include_router(SubscriptionRouterFactory.create(subscriptions, **graphiql), prefix="/api")
    return app


def starlette_app(**graphiql: Any) -> Any:
    subscriptions = manager()
    route = SubscriptionRoute("/graphql", subscriptions, **graphiql)
    return Starlette(routes=[Mount("/api", routes=[route])], lifespan=subscriptions.lifespan)


def starlette_created_app(**graphiql: Any) -> Any:
    subscriptions = manager()
    app = Starlette(lifespan=subscriptions.lifespan)
    return create_subscription_app(app, subscriptions, path="/api/graphql", **graphiql)


APPS: list[Callable[..., Any]] = [fastapi_app, starlette_app, starlette_created_app]


@contextlib.asynccontextmanager
async def http_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_server(app) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=10) as http,
    ):
        yield http


@pytest.mark.anyio
@pytest.mark.parametrize("make_app", APPS)
async def test_a_browser_gets_the_page(make_app: Callable[..., Any]) -> None:
    async with http_client(make_app(graphiql_assets_url="/vendor")) as http:
        response = await http.get("/api/graphql", headers={"accept": BROWSER_ACCEPT})
        head = await http.head("/api/graphql", headers={"accept": "text/html"})
        post = await http.post("/api/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    assert response.text == graphiql_page(assets_url="/vendor")
    assert (head.status_code, head.content) == (200, b"")
    assert post.json() == {"data": {"__typename": "Query"}}


@pytest.mark.anyio
@pytest.mark.parametrize("make_app", APPS)
async def test_the_page_does_not_depend_on_the_request(make_app: Callable[..., Any]) -> None:
    # Nothing of the request is written into the page: the page computes its URLs itself.
    hostile = '"><script>alert(1)</script>'
    async with http_client(make_app()) as http:
        response = await http.get(
            "/api/graphql",
            params={"q": hostile},
            headers={"accept": "text/html", "referer": hostile, "x-forwarded-host": hostile},
        )
    assert response.status_code == 200
    assert response.text == graphiql_page()
    assert "alert(1)" not in response.text


@pytest.mark.anyio
@pytest.mark.parametrize("make_app", APPS)
@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "text/html;q=0"])
async def test_other_gets_are_not_the_page(
    make_app: Callable[..., Any], accept: str | None
) -> None:
    headers = {"accept": accept} if accept is not None else {}
    async with http_client(make_app()) as http:
        # httpx sends "Accept: */*" unless told otherwise: remove it for the no-header case.
        request = http.build_request("GET", "/api/graphql", headers=headers)
        if accept is None:
            del request.headers["accept"]
        response = await http.send(request)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/json"
    assert "GraphiQL" in response.json()["errors"][0]["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("make_app", APPS)
async def test_graphiql_false_answers_405(make_app: Callable[..., Any]) -> None:
    async with http_client(make_app(graphiql=False)) as http:
        response = await http.get("/api/graphql", headers={"accept": BROWSER_ACCEPT})
        post = await http.post("/api/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "<html" not in response.text
    assert post.json() == {"data": {"__typename": "Query"}}


# --- in a real browser ---------------------------------------------------------------------


async def browser_check(config: dict[str, Any]) -> dict[str, Any]:
    """Runs tests/js/graphiql_check.mjs with `config`; returns what it saw."""
    process = await asyncio.create_subprocess_exec(
        "node",
        str(JS / "graphiql_check.mjs"),
        json.dumps(config),
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("graphiql_check.mjs did not finish within 60 s") from None
    assert process.returncode == 0, stderr.decode()
    result: dict[str, Any] = json.loads(stdout)
    return result


def with_assets(app: Any) -> Any:
    """`app` serving tests/js/node_modules at /vendor (the self-hosted layout)."""
    app.mount("/vendor", StaticFiles(directory=NODE_MODULES))
    return app


def publish_tick(base: str, tick_id: str, value: int) -> dict[str, Any]:
    return {
        "url": f"{base}/publish",
        "body": {"channel": "browser", "data": {"id": tick_id, "value": value}},
        "marker": tick_id,
    }


def ticks(response: str) -> Any:
    return json.loads(response)["data"]["ticks"]


@pytest.mark.anyio
async def test_graphiql_on_fastapi_shows_the_schema_and_a_subscriptions_events() -> None:
    ticker = load_module("examples/ticker/app.py")
    app = with_assets(ticker.create_app(EventBusConfig.memory(), graphiql_assets_url="/vendor"))
    async with running_server(app) as address:
        base = f"http://{address}"
        seen = await browser_check(
            {
                "page": f"{base}/graphql",
                "docs": "Subscription",
                "runs": [
                    {
                        "query": TICKS,
                        "publish": [
                            publish_tick(base, "first", 41),
                            publish_tick(base, "second", 42),
                        ],
                    }
                ],
            }
        )
    assert seen["fields"] == ["ticks", "countdown"]
    first, second = seen["runs"][0]["responses"]
    assert ticks(first) == {"id": "first", "value": 41}
    assert ticks(second) == {"id": "second", "value": 42}
    assert seen["pageErrors"] == []
    assert seen["failedRequests"] == []


@pytest.mark.anyio
async def test_graphiql_on_an_existing_strawberry_schema_sees_one_schema() -> None:
    """The Strawberry example: GraphiQL's docs list the application's mutations, and a query
    runs through Strawberry's resolvers."""
    example = load_module("examples/strawberry/app.py")
    app = with_assets(example.create_app(EventBusConfig.memory(), graphiql_assets_url="/vendor"))
    async with running_server(app) as address:
        seen = await browser_check(
            {
                "page": f"http://{address}/graphql",
                "docs": "Mutation",
                "runs": [{"query": '{ messages(roomId: "lobby") { id } me }'}],
            }
        )
    assert seen["fields"] == ["postMessage"]
    (response,) = seen["runs"][0]["responses"]
    assert json.loads(response) == {"data": {"messages": [], "me": None}}
    assert seen["pageErrors"] == []
    assert seen["failedRequests"] == []


@pytest.mark.anyio
async def test_graphiql_on_starlette_under_a_mount_uses_the_pages_own_path() -> None:
    example = load_module("examples/starlette_app.py")
    inner = example.create_app(EventBusConfig.memory(), graphiql_assets_url="/vendor")
    app = Starlette(
        routes=[
            Mount("/vendor", StaticFiles(directory=NODE_MODULES)),
            Mount("/api", app=inner),
        ],
        lifespan=inner.state.manager.lifespan,
    )
    async with running_server(app) as address:
        base = f"http://{address}/api"
        seen = await browser_check(
            {
                "page": f"{base}/graphql",
                "docs": "Subscription",
                "runs": [{"query": TICKS, "publish": [publish_tick(base, "mounted", 7)]}],
            }
        )
    assert seen["fields"] == ["ticks"]
    assert [ticks(r) for r in seen["runs"][0]["responses"]] == [{"id": "mounted", "value": 7}]
    assert seen["pageErrors"] == []
    assert seen["failedRequests"] == []


@pytest.mark.anyio
async def test_graphiql_shows_a_refusal_and_sends_the_headers_pane_as_connection_init() -> None:
    chat = load_module("examples/chat/app.py")
    app = with_assets(chat.create_app(EventBusConfig.memory(), graphiql_assets_url="/vendor"))
    room = 'subscription { messagePosted(roomId: "lobby") { author text } }'
    async with running_server(app) as address:
        base = f"http://{address}"
        seen = await browser_check(
            {
                "page": f"{base}/graphql",
                "runs": [
                    # No token: on_connect returns False and the server closes with 4403.
                    {"query": room},
                    {
                        "headers": '{"token": "alice-token"}',
                        "query": room,
                        "publish": [
                            {
                                "url": f"{base}/rooms/lobby/messages",
                                "headers": {"authorization": "Bearer bob-token"},
                                "body": {"text": "hello from bob"},
                                "marker": "hello from bob",
                            }
                        ],
                    },
                ],
            }
        )
    refused, accepted = seen["runs"]
    [error] = json.loads(refused["responses"][0])["errors"]
    assert error["message"] == "Socket closed with event 4403 Forbidden"
    [message] = accepted["responses"]
    assert json.loads(message) == {
        "data": {"messagePosted": {"author": "bob", "text": "hello from bob"}}
    }
    # GraphiQL also reports the refusal as an unhandled rejection; nothing else went wrong.
    assert all("4403" in error for error in seen["pageErrors"])
    assert seen["failedRequests"] == []
