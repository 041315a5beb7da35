// The real graphql-sse client (2.6.1) against a server, for tests/test_sse.py:
//
//   node sse_client.mjs URL MODE SCENARIO [USER]
//
// MODE is "single" (singleConnection: true) or "distinct"; USER, when given, is sent as
// `Authorization: Bearer USER`. Prints one JSON object per line on stdout:
//   events       100 `counter` results, then dispose: {"values": [...]}
//   refused      a subscription the server refuses: {"error": "..."}
//   invalid      a subscription that does not validate: {"results": [...], "completed": true}
//                or {"error": "..."}
//   unsubscribe  unsubscribes after the first result: {"unsubscribed": true, "values": [...]};
//                then waits for stdin to close and disposes (single mode stays connected:
//                lazy false, so the server's stream outlives the subscription)
//   dispose      two subscriptions; after a result on each, disposes the client:
//                {"disposed": true}; then waits for stdin to close
// Retries are off: an error response reaches the subscription's error path at once.
import { createClient } from 'graphql-sse';

const [url, mode, scenario, user] = process.argv.slice(2);
const single = mode === 'single';
const client = createClient({
  url,
  singleConnection: single,
  lazy: !(single && scenario === 'unsubscribe'),
  retryAttempts: 0,
  headers: user ? { authorization: `Bearer ${user}` } : {},
  onNonLazyError: (error) => print({ error: String(error?.message ?? error) }),
});

function print(value) {
  process.stdout.write(JSON.stringify(value) + '\n');
}

function stdinClosed() {
  return new Promise((resolve) => {
    process.stdin.on('end', resolve);
    process.stdin.resume();
  });
}

function collect(query, { until, onNext } = {}) {
  const results = [];
  let unsubscribe = () => {};
  const done = new Promise((resolve) => {
    unsubscribe = client.subscribe(
      { query },
      {
        next: (result) => {
          results.push(result);
          onNext?.(result, unsubscribe);
          if (until && results.length === until) resolve({ results, completed: false });
        },
        error: (error) => resolve({ results, error: String(error?.message ?? error) }),
        complete: () => resolve({ results, completed: true }),
      },
    );
  });
  return { done, results, unsubscribe: () => unsubscribe() };
}

const COUNTER = 'subscription { counter }';

async function main() {
  if (scenario === 'events') {
    const { results, error } = await collect(COUNTER, { until: 100 }).done;
    client.dispose();
    print(error ? { error } : { values: results.map((r) => r.data?.counter) });
  } else if (scenario === 'refused') {
    const outcome = await collect(COUNTER).done;
    print(outcome.error ? { error: outcome.error } : outcome);
  } else if (scenario === 'invalid') {
    const outcome = await collect('subscription { nope }').done;
    print(outcome.error ? { error: outcome.error } : outcome);
  } else if (scenario === 'unsubscribe') {
    const first = new Promise((resolve) => {
      collect(COUNTER, {
        onNext: (result, unsubscribe) => {
          unsubscribe();
          resolve(result);
        },
      });
    });
    const result = await first;
    print({ unsubscribed: true, values: [result.data?.counter] });
    await stdinClosed();
    client.dispose();
  } else if (scenario === 'dispose') {
    const seen = [false, false];
    const both = new Promise((resolve) => {
      for (const index of [0, 1]) {
        collect(COUNTER, {
          onNext: () => {
            seen[index] = true;
            if (seen.every(Boolean)) resolve();
          },
        });
      }
    });
    await both;
    client.dispose();
    print({ disposed: true });
    await stdinClosed();
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    print({ error: String(error?.message ?? error) });
    process.exit(1);
  },
);
