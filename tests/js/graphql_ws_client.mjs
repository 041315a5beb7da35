// The real graphql-ws client (graphql-transport-ws) against a server, for tests/test_credentials.py
// and tests/test_resume.py:
//
//   node graphql_ws_client.mjs <ws-url> <scenario>
//
// Prints one JSON object per line on stdout ({"event": ...}) and reads the test's go-aheads,
// one per line, on stdin. Scenarios:
//   refresh  connectionParams {token: "short"}, subscribe to `counter` and print each `next`;
//            on "refresh TOKEN", send a `ping` carrying {token: TOKEN} on the live socket
//            (the token refresh guide's recipe) and print the `pong` with its payload; print `closed`
//            with the close code and reason; on "exit", exit.
//   resume   the resume guide's recipe: subscribe to `counter` asking for cursors, keep the
//            last one in the payload, and let the client reconnect and resubscribe with it;
//            print each `next` (data) and `connected`; on "kill", end the socket abruptly
//            (no close frame, as a network drop does); on "exit", exit.
// Exits 1 (after printing {"event": "failed"}) on an unexpected callback or after 25 s.

import { createRequire } from 'node:module';
import { emit, fail, nextLine } from './harness.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const { createClient } = require('graphql-ws');

const [url, scenario] = process.argv.slice(2);

if (scenario === 'resume') {
  await resume();
} else if (scenario !== 'refresh') {
  fail(`unknown scenario ${scenario}`);
}

async function resume() {
  let socket = null;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: () => new Promise((resolve) => setTimeout(resolve, 50)),
    on: {
      connected: (connected) => {
        socket = connected;
        emit('connected');
      },
    },
  });
  // The recipe: the payload is sent again on every reconnect, so the latest cursor kept in it
  // makes the server resume after the last event received.
  const payload = { query: 'subscription { counter }', extensions: { resume: true } };
  client.subscribe(payload, {
    next: (result) => {
      if (result.extensions?.cursor) payload.extensions = { resumeFrom: result.extensions.cursor };
      emit('next', { data: result.data ?? null, errors: result.errors ?? null });
    },
    error: (error) => fail('subscription error', String(error)),
    complete: () => {},
  });
  for (;;) {
    const command = await nextLine();
    if (command === 'kill') socket?.terminate();
    else if (command === 'exit') process.exit(0);
    else fail('unknown go-ahead', command);
  }
}

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
