"""GraphiQL on the GraphQL path: the page a browser gets for a GET that accepts `text/html`.

The page runs GraphiQL 3 (React 18 UMD) and sends queries and introspection over POST, and
subscriptions over graphql-transport-ws (the graphql-ws client), to the path it was served
from, computing both URLs from `location` (so a router mounted under a prefix, a proxy or TLS
need no configuration). Nothing of the request goes into the page: it is built once per route
from the asset locations and served as it is.

The assets come from unpkg, pinned, with subresource-integrity hashes; `assets_url` points at
a self-hosted copy laid out as the npm packages' own trees (`{assets_url}/graphiql/...`,
`{assets_url}/react/umd/...`, `{assets_url}/react-dom/umd/...`, `{assets_url}/graphql-ws/umd/...`),
i.e. `npm install graphiql@3.8.3 react@18.3.1 react-dom@18.3.1 graphql-ws@5.16.2` and a static
mount of `node_modules`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from importlib.resources import files

from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, Response

__all__ = [
    "ASSETS",
    "CDN_URL",
    "STYLESHEET",
    "Asset",
    "accepts_html",
    "graphiql_page",
    "graphiql_response",
    "serve_graphiql",
    "wants_graphiql",
]

#: Where the assets come from unless `assets_url` says otherwise.
CDN_URL = "https://unpkg.com"


@dataclass(frozen=True)
class Asset:
    """One file of an npm package the page loads."""

    package: str
    version: str
    path: str
    #: The subresource-integrity hash of the file as published on npm (and served by the CDN).
    integrity: str

    def url(self, assets_url: str | None) -> str:
        """The file's URL: pinned on the CDN, or under a self-hosted `assets_url`."""
        if assets_url is None:
            return f"{CDN_URL}/{self.package}@{self.version}/{self.path}"
        return f"{assets_url.rstrip('/')}/{self.package}/{self.path}"


#: GraphiQL's stylesheet.
STYLESHEET = Asset(
    "graphiql",
    "3.8.3",
    "graphiql.min.css",
    "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
)

#: The scripts, in load order: React and ReactDOM (globals GraphiQL's bundle expects), the
#: graphql-ws client (global `graphqlWs`) and GraphiQL (global `GraphiQL`).
ASSETS: tuple[Asset, ...] = (
    Asset(
        "react",
        "18.3.1",
        "umd/react.production.min.js",
        "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    ),
    Asset(
        "react-dom",
        "18.3.1",
        "umd/react-dom.production.min.js",
        "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    ),
    Asset(
        "graphql-ws",
        "5.16.2",
        "umd/graphql-ws.min.js",
        "sha384-+EVxFEOpy8LWPRQcpntm0FKN2O+BzrMNSL0G3HIgVWFmeb6xqZqjuLivrQUTXZKi",
    ),
    Asset(
        "graphiql",
        "3.8.3",
        "graphiql.min.js",
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
)

#: The methods the GraphQL path answers when GraphiQL is on.
ALLOW = "GET, POST"


def _attributes(asset: Asset, assets_url: str | None) -> str:
    """`src`/`href`-less attributes of an asset's tag: integrity and CORS for the CDN (a
    self-hosted copy is same-origin and may be another build, so it is not pinned)."""
    if assets_url is not None:
        return ""
    return f' integrity="{html.escape(asset.integrity)}" crossorigin="anonymous"'


def graphiql_page(*, assets_url: str | None = None) -> str:
    """The GraphiQL page (HTML) loading its assets from the CDN, or from `assets_url`."""
    template = files("fraiseql_fastapi").joinpath("static/graphiql.html").read_text("utf-8")
    link = (
        f'<link rel="stylesheet" href="{html.escape(STYLESHEET.url(assets_url))}"'
        f"{_attributes(STYLESHEET, assets_url)}>"
    )
    scripts = "\n  ".join(
        f'<script src="{html.escape(asset.url(assets_url))}"'
        f"{_attributes(asset, assets_url)}></script>"
        for asset in ASSETS
    )
    for marker in ("{{ stylesheet }}", "{{ scripts }}"):
        if template.count(marker) != 1:
            raise RuntimeError(f"graphiql.html must contain {marker} once")
    return template.replace("{{ stylesheet }}", link).replace("{{ scripts }}", scripts)


def accepts_html(accept: str) -> bool:
    """True when an `Accept` header value lists `text/html` with a quality above 0 (a
    browser's page load; `*/*` alone, as curl sends, is not enough)."""
    for item in accept.split(","):
        media_type, *parameters = (part.strip() for part in item.split(";"))
        if media_type.lower() == "text/html" and _quality(parameters) > 0:
            return True
    return False


def _quality(parameters: list[str]) -> float:
    """The `q` of a media range's parameters (1 when absent, 0 when malformed)."""
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def wants_graphiql(request: HTTPConnection) -> bool:
    """True for a browser's page load: GET (or HEAD) accepting `text/html`."""
    method = request.scope.get("method")
    return method in ("GET", "HEAD") and accepts_html(request.headers.get("accept", ""))


def graphiql_response(page: str) -> Response:
    """The page as an HTML response."""
    return HTMLResponse(
        page,
        headers={"Vary": "Accept", "X-Content-Type-Options": "nosniff"},
    )


def serve_graphiql(request: HTTPConnection, page: str) -> Response:
    """Answers a GET on the GraphQL path: the page for a browser, else 405 (queries go over
    POST, subscriptions over the WebSocket)."""
    if wants_graphiql(request):
        return graphiql_response(page)
    message = (
        "GET serves GraphiQL to browsers (Accept: text/html); "
        "use POST, or a WebSocket with graphql-transport-ws"
    )
    return JSONResponse(
        {"errors": [{"message": message}]},
        status_code=405,
        headers={"Allow": ALLOW, "Vary": "Accept"},
    )
