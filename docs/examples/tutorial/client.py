"""Tutorial: a subscriber, with gql (`pip install "gql[websockets]"`).

python client.py alice lobby
"""

import asyncio
import sys

from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport

MESSAGES = "subscription ($room: String!) { messagePosted(roomId: $room) { author text } }"


async def listen(token: str, room: str, url: str = "ws://127.0.0.1:8000/graphql") -> None:
    transport = WebsocketsTransport(url=url, init_payload={"token": token})
    async with Client(transport=transport) as session:
        request = GraphQLRequest(MESSAGES, variable_values={"room": room})
        async for result in session.subscribe(request):
            message = result["messagePosted"]
            print(f"{message['author']}: {message['text']}", flush=True)


if __name__ == "__main__":
    asyncio.run(listen(sys.argv[1], sys.argv[2]))
