"""The native WebSocket path: after the HTTP upgrade, the Rust core owns the socket.

Turn it on with uvicorn's WebSocket setting, for the same app on the same port:

    uvicorn app:app --ws fraiseql_fastapi.native.uvicorn:NativeWebSocketProtocol

or `uvicorn.run(app, ws=NativeWebSocketProtocol)`. The upgrade request still goes through the
app's routes and middleware; a GraphQL route (FastAPI's or Starlette's) then hands the socket
to the core, which reads and writes it on its own threads: the frames it queues for the
connection are written there, coalesced per socket, without Python. What the client sends
comes back to the event loop, where the same protocol objects as on the Python path decide
(`on_connect`, validation, `complete`, limits, close codes). The route's handler returns
once the socket is handed over (a FastAPI route with a `context_getter` keeps it until the
connection ends, for its dependencies), so an idle connection holds no task. The core also
sends uvicorn's keep-alive pings (`--ws-ping-interval`, `--ws-ping-timeout`: close 1011).

Every other WebSocket of the app is served by uvicorn as usual (its sans-I/O `websockets`
implementation), without per-message compression. Over TLS terminated by uvicorn itself, and
on other servers, the Python path serves as before.
"""

from __future__ import annotations

#: The ASGI scope extension a server sets when it can hand a WebSocket over to the core: a
#: dict, whose `ping_interval` and `ping_timeout` (seconds, or None) are the keep-alive pings
#: the core then sends in the server's place.
NATIVE_EXTENSION = "fraiseql.native"
#: The key of a `websocket.accept` message asking the server to hand the socket over: a
#: callable that takes the socket's file descriptor (a duplicate the caller then owns).
ADOPT_KEY = "fraiseql.native.adopt"

__all__ = ["ADOPT_KEY", "NATIVE_EXTENSION"]
