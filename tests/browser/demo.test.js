// The demo (demo/ at the workspace root) in headless Chromium, served as the README says:
// `krmx serve --static-dir demo --relay --krmx-version 0.5`. Two pages join, chat and one
// leaves; a screenshot goes to KRMX_SCREENSHOT. The committed browser bundle of @krmx/client
// (demo/vendor/krmx-client.js) must equal a fresh build (`npm run bundle-demo` writes it).
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

let harness;
let bundle;
let missing;
try {
  require.resolve('playwright-core');
  require.resolve('esbuild');
  require.resolve('@krmx/client');
  harness = require('./harness');
  bundle = require('./bundle');
} catch (e) {
  missing = e;
}
if (missing) {
  // Missing packages fail the run, never skip it.
  it('has its packages installed (run `npm ci` in tests/browser)', () => {
    throw missing;
  });
  return;
}
const { ServerProcess, launchChromium, expectText, withTimeout, STEP_MS } = harness;

const DEMO_DIR = path.join(__dirname, '..', '..', 'demo');

it('has a committed demo bundle equal to a fresh build (else run `npm run bundle-demo`)', async () => {
  const committed = fs.readFileSync(bundle.DEMO_BUNDLE, 'utf8');
  const fresh = await bundle.bundleText();
  assert.ok(committed === fresh, `${path.relative(process.cwd(), bundle.DEMO_BUNDLE)} differs from a fresh build: `
    + 'run `npm run bundle-demo` in tests/browser and commit it');
});

/** A demo page in its own browser context. */
async function openDemo(browser, origin) {
  const context = await browser.newContext({ viewport: { width: 820, height: 520 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const response = await page.goto(`${origin}/`);
  assert.equal(response.status(), 200, 'the demo page loads');
  await expectText(page, '#status', `connected to ws://${new URL(origin).host}/`, 'the status');
  return { context, page };
}

/** The user list as `name state` lines (`alice (you) here`, `bob away`). */
const users = (page) => page.$$eval('#users li', (items) => items.map((item) =>
  `${item.querySelector('.name').textContent} ${item.querySelector('.state').textContent}`));
const chat = (page) => page.$$eval('#messages li', (items) => items.map((item) => `${item.className}: ${item.textContent}`));

async function expectUsers(page, expected, message) {
  await harness.waitFor(`${message}: ${JSON.stringify(expected)}`, async () =>
    JSON.stringify(await users(page)) === JSON.stringify(expected), STEP_MS,
  async () => `${message} is ${JSON.stringify(await users(page))}`);
}

async function expectChat(page, expected, message) {
  await harness.waitFor(`${message}: ${JSON.stringify(expected)}`, async () =>
    JSON.stringify(await chat(page)) === JSON.stringify(expected), STEP_MS,
  async () => `${message} is ${JSON.stringify(await chat(page))}`);
}

async function join(page, name) {
  await page.fill('#name', name);
  await page.click('#join');
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

describe(`the demo on krmx serve (${process.env.KRMX_SERVER_CMD || 'KRMX_SERVER_CMD unset'})`, () => {
  let browser;
  let server;

  before(async () => {
    browser = await launchChromium();
    server = new ServerProcess(['--static-dir', DEMO_DIR, '--relay', '--krmx-version', '0.5']);
    await server.start();
  });

  after(async () => {
    if (browser) {
      await withTimeout('Chromium to close', browser.close()).catch(() => {});
    }
    if (server) {
      server.kill();
    }
  });

  it('lets two pages join, chat, and see one of them leave', async () => {
    const alice = await openDemo(browser, server.origin);
    await join(alice.page, 'alice');
    await expectText(alice.page, '#status', `linked as alice on ws://127.0.0.1:${server.port}/`, 'alice\'s status');
    assert.equal(await alice.page.isVisible('#lobby'), true, 'alice is in the lobby');
    assert.equal(await alice.page.isVisible('#join-form'), false);
    await expectUsers(alice.page, ['alice (you) here'], 'alice\'s users');

    const bob = await openDemo(browser, server.origin);
    await join(bob.page, 'bob');
    await expectUsers(bob.page, ['bob (you) here', 'alice here'], 'bob\'s users');
    await expectUsers(alice.page, ['alice (you) here', 'bob here'], 'alice\'s users');
    await expectChat(alice.page, ['notice: bob joined'], 'alice\'s chat');
    await expectChat(bob.page, [], 'bob\'s chat');

    await say(alice.page, 'hi bob!');
    await expectChat(bob.page, ['said: alice: hi bob!'], 'bob\'s chat');
    await say(bob.page, 'hello alice, nice lobby');
    const both = ['said mine: alice: hi bob!', 'said: bob: hello alice, nice lobby'];
    await expectChat(alice.page, ['notice: bob joined', ...both], 'alice\'s chat');
    await expectChat(bob.page, ['said: alice: hi bob!', 'said mine: bob: hello alice, nice lobby'], 'bob\'s chat');
    await server.expectEvents([
      { event: 'authenticate', username: 'alice', isNewUser: true },
      { event: 'join', username: 'alice' },
      { event: 'link', username: 'alice' },
      { event: 'authenticate', username: 'bob', isNewUser: true },
      { event: 'join', username: 'bob' },
      { event: 'link', username: 'bob' },
      { event: 'message', username: 'alice', message: { type: 'chat/say', payload: { from: 'alice', text: 'hi bob!' } } },
      { event: 'message', username: 'bob',
        message: { type: 'chat/say', payload: { from: 'bob', text: 'hello alice, nice lobby' } } },
    ]);

    const screenshot = process.env.KRMX_SCREENSHOT;
    if (screenshot) {
      // Written beside and renamed: the other transport's run may write the same file.
      fs.mkdirSync(path.dirname(screenshot), { recursive: true });
      const partial = `${screenshot}.${process.pid}.png`;
      await alice.page.screenshot({ path: partial });
      fs.renameSync(partial, screenshot);
    }

    await bob.page.click('#leave');
    await expectText(bob.page, '#status', `connected to ws://127.0.0.1:${server.port}/`, 'bob\'s status');
    assert.equal(await bob.page.isVisible('#join-form'), true, 'bob is back at the name form');
    assert.equal(await bob.page.isVisible('#lobby'), false);
    await expectChat(alice.page, ['notice: bob joined', ...both, 'notice: bob went away', 'notice: bob left'],
      'alice\'s chat');
    await expectUsers(alice.page, ['alice (you) here'], 'alice\'s users');
    await server.expectEvents([{ event: 'unlink', username: 'bob' }, { event: 'leave', username: 'bob' }]);

    await alice.context.close();
    await bob.context.close();
    await server.expectEvents([{ event: 'unlink', username: 'alice' }]);
    server.assertNoPendingEvents();
  });

  it('shows why a name cannot be taken', async () => {
    const carol = await openDemo(browser, server.origin);
    await join(carol.page, 'carol');
    await expectUsers(carol.page, ['carol (you) here', 'alice away'], 'carol\'s users');
    const other = await openDemo(browser, server.origin);
    await join(other.page, 'carol');
    await expectText(other.page, '#error', 'user carol is already linked to a connection', 'the second carol\'s error');
    assert.equal(await other.page.isVisible('#lobby'), false, 'a rejected page stays at the name form');
    await server.expectEvents([
      { event: 'authenticate', username: 'carol', isNewUser: true },
      { event: 'join', username: 'carol' },
      { event: 'link', username: 'carol' },
    ]);
    // A sequence point: the rejected link printed nothing (it failed before authentication).
    assert.deepEqual(await server.command('users'), {
      users: [{ username: 'alice', isLinked: false }, { username: 'carol', isLinked: true }],
    });
    server.assertNoPendingEvents();
    await carol.context.close();
    await other.context.close();
  });
});
