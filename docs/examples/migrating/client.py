"""One client for both apps (gql, `pip install "gql[websockets,httpx]"`): the same messages
arrive from either server, over either WebSocket protocol.

python client.py ws://127.0.0.1:8000/graphql
"""

import asyncio
import sys

from gql import Client, GraphQLRequest
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

MESSAGES = "subscription ($room: String!) { messagePosted(roomId: $room) { id text } }"
POST = (
    "mutation ($room: String!, $text: String!) { postMessage(roomId: $room, text: $text) { id } }"
)
#: graphql-transport-ws (graphql-ws, Apollo Client 3.5+) and the legacy graphql-ws
#: (subscriptions-transport-ws, Apollo's WebSocketLink): both servers speak both.
PROTOCOLS = {"modern": "graphql-transport-ws", "legacy": "graphql-ws"}


def session(url: str, protocol: str = "modern", token: str | None = "ann-token") -> Client:
    transport = WebsocketsTransport(
        url=url, init_payload={"token": token} if token else {}, subprotocols=[PROTOCOLS[protocol]]
    )
    return Client(transport=transport)


async def countdown(url: str, protocol: str = "modern") -> list[int]:
    async with session(url, protocol) as ws:
        request = GraphQLRequest("subscription { countdown(count: 3) }")
        return [result["countdown"] async for result in ws.subscribe(request)]


async def messages(url: str, room: str, count: int, protocol: str = "modern") -> list[dict]:
    received = []
    async with session(url, protocol) as ws:
        request = GraphQLRequest(MESSAGES, variable_values={"room": room})
        async for result in ws.subscribe(request):
            received.append(result["messagePosted"])
            if len(received) == count:
                return received
    return received


async def post_message(http_url: str, room: str, text: str) -> dict:
    async with Client(transport=HTTPXAsyncTransport(url=http_url)) as http:
        request = GraphQLRequest(POST, variable_values={"room": room, "text": text})
        return await http.execute(request)


if __name__ == "__main__":
    print(asyncio.run(countdown(sys.argv[1])))
