// What the browser tests share: a spawned `krmx serve` (its stdout events and stdin replies), a
// headless Chromium (the Debian package's, driven by playwright-core: no browser download), the
// test page's folder with the @krmx/client bundle built now, and bounded waits on pages.
//
// Environment (tests/tests/browser.rs sets it):
//   KRMX_SERVER_CMD   the server command, split on whitespace (`.../krmx serve --transport mio`)
//   KRMX_TLS_CERT, KRMX_TLS_KEY   PEM files for the wss:// test
//   KRMX_CHROMIUM     the browser (default /usr/bin/chromium)
//   KRMX_SCREENSHOT   where the demo test writes its screenshot (default: none written)
//   KRMX_STEP_TIMEOUT_MS, KRMX_STARTUP_TIMEOUT_MS   bounds of each wait
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const STEP_MS = Number(process.env.KRMX_STEP_TIMEOUT_MS || 5000);
const STARTUP_MS = Number(process.env.KRMX_STARTUP_TIMEOUT_MS || 30000);
const CHROMIUM = process.env.KRMX_CHROMIUM || '/usr/bin/chromium';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value, failing after `ms` with `what` and `details()`. */
async function waitFor(what, check, ms = STEP_MS, details = () => '') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      const more = await details();
      throw new Error(`timed out after ${ms} ms waiting for ${what}${more ? `\n${more}` : ''}`);
    }
    await sleep(10);
  }
}

/** `promise`, or a failure naming `what` after `ms`. */
async function withTimeout(what, promise, ms = STEP_MS) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A spawned `krmx serve --port 0 ARGS`: its stdout split into events and command replies. */
class ServerProcess {
  constructor(args) {
    const cmd = (process.env.KRMX_SERVER_CMD || '').split(/\s+/).filter(Boolean);
    if (cmd.length === 0) {
      throw new Error('KRMX_SERVER_CMD is not set (for example KRMX_SERVER_CMD="../../target/debug/krmx serve")');
    }
    this.args = [...cmd.slice(1), '--port', '0', ...args];
    this.child = spawn(cmd[0], this.args, { cwd: __dirname, stdio: ['pipe', 'pipe', 'pipe'] });
    this.lines = [];
    this.events = [];
    this.replies = [];
    this.eventCursor = 0;
    this.replyCursor = 0;
    this.stderr = '';
    this.exit = undefined;
    this.spawnError = undefined;
    let buffer = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      buffer += chunk;
      let i;
      while ((i = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = { unparsable: line }; // stdout is JSON lines only: this surfaces as a mismatch
        }
        this.lines.push(parsed);
        (parsed !== null && typeof parsed === 'object' && 'event' in parsed ? this.events : this.replies).push(parsed);
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => { this.stderr = (this.stderr + chunk).slice(-8000); });
    this.child.on('error', (e) => { this.spawnError = e; });
    this.child.on('exit', (code, signal) => { this.exit = { code, signal }; });
  }

  details() {
    return `server ${JSON.stringify(this.args)} stdout so far:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}`
      + `\nstderr (tail):\n${this.stderr}${this.exit ? `\nexited: ${JSON.stringify(this.exit)}` : ''}`;
  }

  /** Waits for the listen event; `origin` is then `http://127.0.0.1:PORT` (`https` with `tls`). */
  async start({ tls = false } = {}) {
    const listen = await waitFor('the listen event', () => {
      if (this.spawnError) {
        throw this.spawnError;
      }
      if (this.exit) {
        throw new Error(`server exited before listening\n${this.details()}`);
      }
      return this.events[0];
    }, STARTUP_MS, () => this.details());
    assert.equal(listen.event, 'listen', 'the first event is listen');
    this.eventCursor = 1;
    this.port = listen.port;
    this.origin = `${tls ? 'https' : 'http'}://127.0.0.1:${listen.port}`;
    return this;
  }

  /** Asserts the next events are exactly `expected`, in order (waiting for them), and consumes them. */
  async expectEvents(expected, message = 'server events') {
    const n = expected.length;
    await waitFor(message, () => this.events.length >= this.eventCursor + n, STEP_MS, () => this.details());
    const taken = this.events.slice(this.eventCursor, this.eventCursor + n);
    this.eventCursor += n;
    assert.deepEqual(taken, expected, message);
  }

  /** Sends one stdin command and returns its one reply line. */
  async command(line) {
    this.child.stdin.write(`${line}\n`);
    const index = this.replyCursor++;
    await waitFor(`the reply to \`${line}\``, () => this.replies.length > index, STEP_MS, () => this.details());
    return this.replies[index];
  }

  /** Asserts no event came that was not consumed. */
  assertNoPendingEvents(message = 'no other server events') {
    assert.deepEqual(this.events.slice(this.eventCursor), [], message);
  }

  kill() {
    if (this.exit === undefined && !this.spawnError) {
      this.child.kill('SIGKILL');
    }
  }
}

/** Headless Chromium from `KRMX_CHROMIUM`; fails (never skips) when it or playwright-core is missing. */
async function launchChromium() {
  const { chromium } = require('playwright-core');
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: install Debian's chromium (apt-get install chromium)`);
  }
  // Every launch flag a headless browser on a shared CI machine needs: no GPU, no sandbox as root.
  return withTimeout('Chromium to start', chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  }), STARTUP_MS);
}

/**
 * A fresh temporary folder holding the test page (page/) and the @krmx/client bundle built now,
 * for `krmx serve --static-dir`.
 */
async function preparePageDir() {
  const { writeBundle } = require('./bundle');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'krmx-browser-'));
  const pageDir = path.join(__dirname, 'page');
  for (const name of fs.readdirSync(pageDir)) {
    fs.copyFileSync(path.join(pageDir, name), path.join(dir, name));
  }
  await writeBundle(path.join(dir, 'krmx-client.js'));
  return dir;
}

/** The texts of the elements matching `selector`, in document order. */
function texts(page, selector) {
  return page.$$eval(selector, (elements) => elements.map((element) => element.textContent));
}

/**
 * Waits until `selector` matches at least `expected.length` elements, then asserts their texts
 * are exactly `expected` (so later assertions of the same list see anything extra).
 */
async function expectTexts(page, selector, expected, message) {
  await waitFor(`${message}: ${expected.length} entries`, async () => (await texts(page, selector)).length >= expected.length,
    STEP_MS, async () => `${message} so far: ${JSON.stringify(await texts(page, selector))}`);
  assert.deepEqual(await texts(page, selector), expected, message);
}

/** Waits until the texts of the elements matching `selector` are exactly `expected`. */
async function expectList(page, selector, expected, message) {
  const same = (list) => JSON.stringify(list) === JSON.stringify(expected);
  await waitFor(`${message}: ${JSON.stringify(expected)}`, async () => same(await texts(page, selector)),
    STEP_MS, async () => `${message} is ${JSON.stringify(await texts(page, selector))}`);
}

/** Waits until the text of `selector` is `expected` (exactly). */
async function expectText(page, selector, expected, message) {
  const current = () => page.$eval(selector, (element) => element.textContent).catch((e) => `<${e.message}>`);
  await waitFor(`${message}: ${JSON.stringify(expected)}`, async () => (await current()) === expected,
    STEP_MS, async () => `${message} is ${JSON.stringify(await current())}`);
}

module.exports = {
  STEP_MS,
  STARTUP_MS,
  ServerProcess,
  launchChromium,
  preparePageDir,
  waitFor,
  withTimeout,
  sleep,
  texts,
  expectTexts,
  expectList,
  expectText,
};
