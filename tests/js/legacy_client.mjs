// A real client of the legacy graphql-ws protocol, for tests/test_graphql_ws.py:
//
//   node legacy_client.mjs <ws-url> <subscriptions-transport-ws|apollo> <scenario>
//
// `subscriptions-transport-ws` is its SubscriptionClient; `apollo` is Apollo Client with the
// WebSocketLink of '@apollo/client/link/ws' (which wraps a SubscriptionClient). Both use `ws`
// as the WebSocket. Prints one JSON object per line on stdout ({"event": ...}) and reads the
// test's go-aheads, one per line, on stdin. Scenarios:
//   events   subscribe to `counter`, print `done` with the first 100 values received
//   params   connectionParams {token, client}; print the first `whoami` result
//   invalid  subscribe to an unknown field; print what reaches the error callback
//   stop     unsubscribe after the first result; on "exit", report any result after it
//   dispose  on "close", close the client (stop, connection_terminate, close); then "exit"
// Exits 1 (after printing {"event": "failed"}) on an unexpected callback or after 25 s.

import { createRequire } from 'node:module';
import { emit, expectLine, fail } from './harness.mjs';

const require = createRequire(import.meta.url);
const WebSocket = require('ws');
const { SubscriptionClient } = require('subscriptions-transport-ws');
const { ApolloClient, InMemoryCache, gql } = require('@apollo/client/core');
const { WebSocketLink } = require('@apollo/client/link/ws');

const [url, kind, scenario] = process.argv.slice(2);

// One face for both clients: subscribe(query, variables, observer) -> { unsubscribe }, close().
function makeClient(connectionParams) {
  const options = { connectionParams, reconnect: false };
  if (kind === 'subscriptions-transport-ws') {
    const client = new SubscriptionClient(url, options, WebSocket);
    return {
      subscribe: (query, variables, observer) =>
        client.request({ query, variables }).subscribe(observer),
      close: () => client.close(),
    };
  }
  if (kind === 'apollo') {
    const link = new WebSocketLink({ uri: url, options, webSocketImpl: WebSocket });
    const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
    return {
      subscribe: (query, variables, observer) =>
        apollo.subscribe({ query: gql(query), variables }).subscribe(observer),
      close: () => {
        link.subscriptionClient.close();
        apollo.stop();
      },
    };
  }
  return fail(`unknown client ${kind}`);
}

function errorText(error) {
  if (error && typeof error === 'object') {
    return JSON.stringify(error, Object.getOwnPropertyNames(error));
  }
  return String(error);
}

const unexpected = (what) => (value) => fail(`unexpected ${what}`, errorText(value));

const scenarios = {
  async events() {
    const client = makeClient({ token: 'erin' });
    const values = [];
    await new Promise((resolve) => {
      client.subscribe('subscription { counter }', {}, {
        next: (result) => {
          values.push(result.data.counter);
          if (values.length === 100) resolve();
        },
        error: unexpected('error'),
        complete: unexpected('complete'),
      });
      emit('started');
    });
    emit('done', { values });
    client.close();
  },

  async params() {
    const client = makeClient({ token: 'dave', client: kind });
    const result = await new Promise((resolve) => {
      client.subscribe('subscription { whoami { user tenant token } }', {}, {
        next: resolve,
        error: unexpected('error'),
        complete: unexpected('complete'),
      });
      emit('started');
    });
    emit('data', { data: result.data });
    client.close();
  },

  async invalid() {
    const client = makeClient({});
    const error = await new Promise((resolve) => {
      client.subscribe('subscription { nope }', {}, {
        next: unexpected('next'),
        error: resolve,
        complete: unexpected('complete'),
      });
      emit('started');
    });
    emit('error', { message: String(error && error.message), detail: errorText(error) });
    client.close();
  },

  async stop() {
    const client = makeClient({});
    let unsubscribed = false;
    let afterUnsubscribe = 0;
    await new Promise((resolve) => {
      const subscription = client.subscribe('subscription { counter }', {}, {
        next: (result) => {
          if (unsubscribed) {
            afterUnsubscribe += 1;
            return;
          }
          emit('data', { data: result.data });
          unsubscribed = true;
          // After the callback returns: zen-observable (Apollo) refuses an unsubscribe from
          // inside the subscriber's own callback.
          setImmediate(() => {
            subscription.unsubscribe();
            resolve();
          });
        },
        error: unexpected('error'),
        complete: unexpected('complete'), // the server's complete is for a stopped id
      });
      emit('started');
    });
    emit('unsubscribed');
    await expectLine('exit');
    emit('exited', { after_unsubscribe: afterUnsubscribe });
    client.close();
  },

  async dispose() {
    const client = makeClient({});
    client.subscribe('subscription { counter }', {}, {
      next: () => {},
      error: unexpected('error'),
      complete: unexpected('complete'),
    });
    emit('started');
    await expectLine('close');
    client.close();
    emit('closed');
    await expectLine('exit');
  },
};

const run = scenarios[scenario];
if (!run) fail(`unknown scenario ${scenario}`);
run().then(
  () => process.exit(0),
  (error) => fail('exception', errorText(error)),
);
