// subscriptions-transport-ws (npm install subscriptions-transport-ws ws): the legacy
// graphql-ws protocol, as Apollo's WebSocketLink speaks it.
//   node legacy_client.mjs [URL]
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws'; // in a browser, leave it out: the page's WebSocket is used

const url = process.argv[2] ?? 'ws://127.0.0.1:8000/graphql';

const client = new SubscriptionClient(
  url,
  { connectionParams: { token: 'ann-token' }, reconnect: true }, // the connection_init payload
  WebSocket,
);

client
  .request({
    query: 'subscription ($room: String!) { messagePosted(roomId: $room) { id text } }',
    variables: { room: 'lobby' },
  })
  .subscribe({
    next: (result) => console.log(JSON.stringify(result)),
    error: (error) => console.error('error', JSON.stringify(error)),
    complete: () => console.log('complete'),
  });
