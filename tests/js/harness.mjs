// What the node clients of the Python tests share: their events as JSON lines on stdout, a
// failure (`{"event": "failed"}`, exit 1), a deadline, and the test's go-aheads on stdin.

import readline from 'node:readline';

export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

export function fail(reason, detail) {
  emit('failed', { reason, detail: detail === undefined ? null : String(detail) });
  process.exit(1);
}

setTimeout(() => fail('timeout'), 25_000);

// The test's lines on stdin, awaited one at a time.
const lines = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const waiter = waiting.shift();
  if (waiter) waiter(line);
  else lines.push(line);
});

export function nextLine() {
  return lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => waiting.push(r));
}

export async function expectLine(expected) {
  const line = await nextLine();
  if (line !== expected) fail(`expected "${expected}" on stdin`, line);
}
