// The tutorial's chat page (docs/examples/tutorial/chat.html) in headless Chromium, as its
// readers use it: one window per token, joined to a room; then one of them sends a message.
//
//   node tutorial_chat.mjs <page url> <sender token> <token>...
//
// events: "joined" once every window says so; then, after "send" on stdin, the sender types
// and sends "hi"; "seen" {messages: {token: [lines]}} once the sender's own window shows it,
// after a further "read" on stdin (the test's pause for the other windows).

import puppeteer from 'puppeteer-core';
import { emit, expectLine, fail } from './harness.mjs';

const [url, sender, ...tokens] = process.argv.slice(2);
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const lines = (page) => page.$$eval('#messages li', (items) => items.map((li) => li.textContent));

try {
  const pages = {};
  for (const token of tokens) {
    const page = await browser.newPage();
    page.on('pageerror', (error) => fail('page error', error));
    await page.goto(url, { waitUntil: 'load' });
    await page.type('#token', token);
    await page.click('#join button');
    await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Joined'));
    pages[token] = page;
  }
  emit('joined');
  await expectLine('send');
  await pages[sender].bringToFront();
  await pages[sender].type('#text', 'hi');
  await pages[sender].click('#post button');
  await pages[sender].waitForFunction(() => document.querySelectorAll('#messages li').length > 0);
  await expectLine('read');
  const messages = {};
  for (const token of tokens) messages[token] = await lines(pages[token]);
  emit('seen', { messages });
} catch (error) {
  fail('browser', error);
} finally {
  await browser.close();
}
process.exit(0);
