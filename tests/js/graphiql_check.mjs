// Drives the GraphiQL page the server serves on its GraphQL path in headless Chromium, as a
// user would, and prints what the page showed as JSON on stdout (tests/test_graphiql.py
// asserts on it).
//
//   node graphiql_check.mjs '<config JSON>'
//
// config: {
//   "page": "http://127.0.0.1:PORT/graphql",
//   "docs": "Subscription",      // optional: open the docs explorer, list this type's fields
//   "runs": [{                   // in order, in the same page
//     "headers": "{...}",        // optional: typed into the Headers pane first
//     "query": "subscription { ... }",
//     // each: POSTed until the server answers {"delivered": n >= 1}, then the response pane
//     // is read once it contains `marker`; none: the pane is read once it shows anything
//     "publish": [{"url": "...", "headers": {...}, "body": {...}, "marker": "..."}]
//   }]
// }
// output: {"fields": [...] | null, "runs": [{"responses": ["<pane text>", ...]}],
//          "pageErrors": [...], "failedRequests": [...]}
// A step that does not happen within STEP_MS fails the script (exit 1) with what the page
// showed so far on stderr.

import puppeteer from "puppeteer-core";

const STEP_MS = 20_000;
const TOTAL_MS = 55_000;

const config = JSON.parse(process.argv[2]);
const output = { fields: null, runs: [], pageErrors: [], failedRequests: [] };

const watchdog = setTimeout(() => {
  console.error(`graphiql_check: not done within ${TOTAL_MS} ms`, JSON.stringify(output));
  process.exit(2);
}, TOTAL_MS);

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

/** The text of the CodeMirror editor under `selector`. */
function editorText(page, selector) {
  return page.$eval(selector, (element) => element.CodeMirror.getValue());
}

/** Replaces the text of the CodeMirror editor under `selector` as typed input. */
async function typeInto(page, selector, text) {
  await page.click(selector);
  await page.keyboard.down("Control");
  await page.keyboard.press("KeyA");
  await page.keyboard.up("Control");
  await page.keyboard.press("Backspace");
  // One input event with the whole text: CodeMirror takes it as typed, without the
  // per-keystroke bracket closing and completion a character-by-character `type` triggers.
  await page.keyboard.sendCharacter(text);
  const got = await editorText(page, selector);
  if (got !== text) throw new Error(`the editor holds ${JSON.stringify(got)}`);
}

/** POSTs `publish.body` until the server says it delivered the event to someone. */
async function publishUntilDelivered(publish) {
  const deadline = Date.now() + STEP_MS;
  while (Date.now() < deadline) {
    const response = await fetch(publish.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...(publish.headers || {}) },
      body: JSON.stringify(publish.body),
    });
    if (!response.ok) throw new Error(`${publish.url}: ${response.status} ${await response.text()}`);
    if ((await response.json()).delivered >= 1) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${publish.url}: no subscriber within ${STEP_MS} ms`);
}

const QUERY = ".graphiql-query-editor .CodeMirror";
const RESPONSE = ".graphiql-response .CodeMirror";

/** Waits until the response pane satisfies `check(text)`; returns its text. */
async function responseWhen(page, check, what) {
  const deadline = Date.now() + STEP_MS;
  let text = "";
  while (Date.now() < deadline) {
    text = await editorText(page, RESPONSE);
    if (check(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the response pane never showed ${what}; it shows ${JSON.stringify(text)}`);
}

try {
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (error) => output.pageErrors.push(String(error)));
  page.on("requestfailed", (request) =>
    output.failedRequests.push(`${request.url()}: ${request.failure()?.errorText}`),
  );
  page.on("response", (response) => {
    if (response.status() >= 400) output.failedRequests.push(`${response.url()}: ${response.status()}`);
  });

  await page.goto(config.page, { waitUntil: "load" });
  await page.waitForSelector(QUERY);

  if (config.docs) {
    // The docs explorer lists the root types once the introspection POST has answered.
    await page.click('button[aria-label="Show Documentation Explorer"]');
    const link = await page.waitForFunction(
      (name) =>
        [...document.querySelectorAll(".graphiql-doc-explorer a.graphiql-doc-explorer-type-name")]
          .find((a) => a.textContent === name),
      {},
      config.docs,
    );
    await link.click();
    await page.waitForFunction(
      (name) =>
        document.querySelector(".graphiql-doc-explorer-title")?.textContent === name &&
        document.querySelector(".graphiql-doc-explorer a.graphiql-doc-explorer-field-name"),
      {},
      config.docs,
    );
    output.fields = await page.$$eval(
      ".graphiql-doc-explorer a.graphiql-doc-explorer-field-name",
      (links) => links.map((a) => a.textContent),
    );
  }

  for (const run of config.runs) {
    const result = { responses: [] };
    output.runs.push(result);
    if (run.headers !== undefined) {
      await page.click('.graphiql-editor-tools button[data-name="headers"]');
      await typeInto(
        page,
        'section.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror',
        run.headers,
      );
    }
    await typeInto(page, QUERY, run.query);
    // GraphiQL parses the query 100 ms after the last edit; a run before that would use the
    // previous document (and send a subscription over POST).
    await page.waitForFunction(
      (selector, text) =>
        document.querySelector(selector).CodeMirror.documentAST?.loc?.source?.body === text,
      {},
      QUERY,
      run.query,
    );
    const before = await editorText(page, RESPONSE);
    await page.click(".graphiql-execute-button");
    if (!run.publish?.length) {
      result.responses.push(
        await responseWhen(page, (text) => text !== "" && text !== before, "a response"),
      );
    }
    for (const publish of run.publish || []) {
      await publishUntilDelivered(publish);
      result.responses.push(
        await responseWhen(page, (text) => text.includes(publish.marker), publish.marker),
      );
    }
  }
  console.log(JSON.stringify(output));
} catch (error) {
  console.error(String(error?.stack || error), JSON.stringify(output));
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
