// The monitor (`krmx serve --monitor-token`) in headless Chromium, beside the demo: its page
// asks for the token; its API refuses requests without it; with it, the page lists the users
// and the recent events, kicks a user and broadcasts. A screenshot goes to
// KRMX_MONITOR_SCREENSHOT.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

let harness;
let missing;
try {
  require.resolve('playwright-core');
  harness = require('./harness');
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
const { ServerProcess, launchChromium, expectText, waitFor, withTimeout, STEP_MS } = harness;

const DEMO_DIR = path.join(__dirname, '..', '..', 'demo');
const TOKEN = 'browser-test-monitor-token-4f9c2a';

/** A demo page in its own browser context, joined as `name`. */
async function joinDemo(browser, origin, name) {
  const context = await browser.newContext({ viewport: { width: 820, height: 520 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  await page.goto(`${origin}/`);
  await page.fill('#name', name);
  await page.click('#join');
  await expectText(page, '#status', `linked as ${name} on ws://${new URL(origin).host}/`, `${name}'s status`);
  return { context, page };
}

const chat = (page) => page.$$eval('#messages li', (items) => items.map((item) => `${item.className}: ${item.textContent}`));

async function expectChatEnd(page, expected, message) {
  await waitFor(`${message} ending in ${JSON.stringify(expected)}`, async () => {
    const lines = await chat(page);
    return JSON.stringify(lines.slice(-expected.length)) === JSON.stringify(expected);
  }, STEP_MS, async () => `${message} is ${JSON.stringify(await chat(page))}`);
}

/** The monitor's user rows as `name connection-or-unlinked`. */
const monitorUsers = (page) => page.$$eval('#users tr', (rows) => rows.map((row) => {
  const cells = row.querySelectorAll('td');
  return `${cells[0].textContent} ${cells[1].textContent.startsWith('#') ? 'linked' : cells[1].textContent}`;
}));

describe(`the monitor on krmx serve (${process.env.KRMX_SERVER_CMD || 'KRMX_SERVER_CMD unset'})`, () => {
  let browser;
  let server;

  before(async () => {
    browser = await launchChromium();
    server = new ServerProcess(['--static-dir', DEMO_DIR, '--relay', '--krmx-version', '0.5',
      '--monitor-token', TOKEN]);
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

  it('refuses its API without the token, and with it shows the users and events, kicks and broadcasts',
    async () => {
      const alice = await joinDemo(browser, server.origin, 'alice');
      const bob = await joinDemo(browser, server.origin, 'bob');
      await alice.page.fill('#text', 'hi bob!');
      await alice.page.press('#text', 'Enter');
      await expectChatEnd(bob.page, ['said: alice: hi bob!'], 'bob\'s chat');

      const context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
      const monitor = await context.newPage();
      monitor.setDefaultTimeout(STEP_MS);
      assert.equal((await monitor.goto(`${server.origin}/monitor`)).status(), 200);
      assert.equal(await monitor.isVisible('#login'), true, 'the page asks for the token');
      assert.equal(await monitor.isVisible('#app'), false);
      // The API without a token, or with another one, from the page's own origin: 401.
      const statuses = await monitor.evaluate(async () => {
        const state = await fetch('/monitor/state');
        const kick = await fetch('/monitor/kick', {
          method: 'POST',
          headers: { Authorization: 'Bearer not-the-token-at-all-0000' },
          body: JSON.stringify({ username: 'bob' }),
        });
        return [state.status, kick.status];
      });
      assert.deepEqual(statuses, [401, 401]);
      await monitor.fill('#token', 'not-the-token-at-all-0000');
      await monitor.click('#login-form button');
      await expectText(monitor, '#login-error', 'That token was refused.', 'a wrong token');

      await monitor.fill('#token', TOKEN);
      await monitor.click('#login-form button');
      await waitFor('the monitor to list alice and bob', async () =>
        JSON.stringify(await monitorUsers(monitor)) === JSON.stringify(['alice linked', 'bob linked']),
      STEP_MS, async () => `users: ${JSON.stringify(await monitorUsers(monitor))}`);
      await expectText(monitor, '#f-linked', '2', 'linked users');
      await waitFor('the recent events', async () => {
        const events = await monitor.$$eval('#events div', (rows) => rows.map((row) => row.lastChild.textContent));
        return JSON.stringify(events.reverse()) === JSON.stringify(
          ['join alice', 'link alice', 'join bob', 'link bob', 'message alice (chat/say)']);
      });

      const screenshot = process.env.KRMX_MONITOR_SCREENSHOT;
      if (screenshot) {
        fs.mkdirSync(path.dirname(screenshot), { recursive: true });
        const partial = `${screenshot}.${process.pid}.png`;
        await monitor.screenshot({ path: partial });
        fs.renameSync(partial, screenshot);
      }

      // A broadcast from the monitor reaches both pages.
      await monitor.fill('#b-payload', '{"from": "monitor", "text": "maintenance at noon"}');
      await monitor.click('#broadcast button');
      await expectChatEnd(alice.page, ['said: monitor: maintenance at noon'], 'alice\'s chat');
      await expectChatEnd(bob.page, ['said: monitor: maintenance at noon'], 'bob\'s chat');

      // Kicking bob: the others see him go; the monitor lists alice alone.
      await monitor.click('#users tr:nth-child(2) button:has-text("kick")');
      await expectChatEnd(alice.page, ['notice: bob went away', 'notice: bob left'], 'alice\'s chat');
      await waitFor('the monitor to list alice alone', async () =>
        JSON.stringify(await monitorUsers(monitor)) === JSON.stringify(['alice linked']));
      await server.expectEvents([
        { event: 'authenticate', username: 'alice', isNewUser: true },
        { event: 'join', username: 'alice' },
        { event: 'link', username: 'alice' },
        { event: 'authenticate', username: 'bob', isNewUser: true },
        { event: 'join', username: 'bob' },
        { event: 'link', username: 'bob' },
        { event: 'message', username: 'alice', message: { type: 'chat/say', payload: { from: 'alice', text: 'hi bob!' } } },
        { event: 'unlink', username: 'bob' },
        { event: 'leave', username: 'bob' },
      ]);
      await context.close();
      await alice.context.close();
      await bob.context.close();
    });
});
