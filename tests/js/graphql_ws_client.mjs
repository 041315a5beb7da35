// The real graphql-ws client (graphql-transport-ws) against a server, for tests/test_credentials.py:
//
//   node graphql_ws_client.mjs <ws-url> <scenario>
//
// Prints one JSON object per line on stdout ({"event": ...}) and reads the test's go-aheads,
// one per line, on stdin. Scenarios:
//   refresh  connectionParams {token: "short"}, subscribe to `counter` and print each `next`;
//            on "refresh TOKEN", send a `ping` carrying {token: TOKEN} on the live socket
//            (the README's recipe) and print the `pong` with its payload; print `closed`
//            with the close code and reason; on "exit", exit.
// Exits 1 (after printing {"event": "failed"}) on an unexpected callback or after 25 s.

import { createRequire } from 'node:module';
import { emit, fail, nextLine } from './harness.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const { createClient } = require('graphql-ws');

const [url, scenario] = process.argv.slice(2);

if (scenario !== 'refresh') fail(`unknown scenario ${scenario}`);

// The recipe: keep the socket the client connected with, and renew the token on it.
let socket = null;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
  connectionParams: { token: 'short' },
  on: {
    connected: (connected) => {
      socket = connected;
      emit('connected');
    },
    pong: (received, payload) => emit('pong', { payload: payload ?? null }),
    closed: (event) => emit('closed', { code: event.code, reason: event.reason }),
  },
});

function refresh(token) {
  if (socket?.readyState !== WebSocket.OPEN) fail('no open socket to refresh on');
  socket.send(JSON.stringify({ type: 'ping', payload: { token } }));
}

client.subscribe(
  { query: 'subscription { counter }' },
  {
    next: (result) => emit('next', { data: result.data }),
    error: () => {}, // the close after a refused refresh; `closed` reports it
    complete: () => {},
  },
);

for (;;) {
  const [command, argument] = (await nextLine()).split(' ');
  if (command === 'refresh') refresh(argument);
  else if (command === 'exit') process.exit(0);
  else fail('unknown go-ahead', command);
}
