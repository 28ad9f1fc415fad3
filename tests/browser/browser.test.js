// Run: cd tests/browser && npm ci && KRMX_SERVER_CMD="../../target/debug/krmx serve" \
//   KRMX_TLS_CERT=cert.pem KRMX_TLS_KEY=key.pem node --test
//  (tests/tests/browser.rs does this on both transports, with certificates made at test time)
//
// Real-browser tests: pages in headless Chromium load the test page (page/, with @krmx/client
// bundled by esbuild now) from `krmx serve --static-dir`, which serves the Krmx endpoint on the
// same origin. Each page is its own browser context (its own tab and sessionStorage). Every
// assertion is on what the pages show (their user list and event log, exactly) and on what the
// server prints, message by message. Every wait is bounded.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');

let harness;
let missing;
try {
  require.resolve('playwright-core');
  require.resolve('esbuild');
  require.resolve('@krmx/client');
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
const { ServerProcess, launchChromium, preparePageDir, expectTexts, expectList, expectText, withTimeout } = harness;

const SERVER_ARGS = ['--krmx-version', '0.5', '--relay', '--reject', 'mallory=banned'];

/** One user's page in its own browser context. */
class UserPage {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
  }

  static async open(browser, name, origin, contextOptions = {}) {
    const context = await browser.newContext(contextOptions);
    const page = await context.newPage();
    page.setDefaultTimeout(harness.STEP_MS);
    const response = await page.goto(`${origin}/`);
    assert.equal(response.status(), 200, `${name}'s page loads`);
    const user = new UserPage(name, context, page);
    await user.expectStatus('connected');
    return user;
  }

  async expectStatus(status) {
    await expectText(this.page, '#status', status, `${this.name}'s status`);
  }

  /** Types its name and links, waiting for the outcome. */
  async link(username = this.name) {
    await this.page.fill('#name', username);
    await this.page.click('#link');
  }

  async say(text) {
    await this.page.fill('#text', text);
    await this.page.click('#say');
  }

  async expectLog(expected, message = `${this.name}'s event log`) {
    await expectTexts(this.page, '#log li', expected, message);
  }

  async expectUsers(expected, message = `${this.name}'s user list`) {
    await expectList(this.page, '#users li', expected, message);
  }

  async close() {
    await withTimeout(`${this.name}'s context to close`, this.context.close());
  }
}

const say = (text) => `message ${JSON.stringify({ type: 'chat/say', payload: text })}`;

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  if (browser) {
    await withTimeout('Chromium to close', browser.close()).catch(() => {});
  }
});

describe(`pages on krmx serve (${process.env.KRMX_SERVER_CMD || 'KRMX_SERVER_CMD unset'})`, () => {
  let server;
  let pageDir;
  let alice;
  let bob;
  let carol;
  // The logs so far: each test appends what it expects, and asserts the whole log.
  const logs = { alice: [], bob: [], carol: [] };

  before(async () => {
    pageDir = await preparePageDir();
    server = new ServerProcess(['--static-dir', pageDir, ...SERVER_ARGS]);
    await server.start();
  });

  after(() => {
    if (server) {
      server.kill();
    }
    if (pageDir) {
      fs.rmSync(pageDir, { recursive: true, force: true });
    }
  });

  it('links three pages as different users, each seeing the others\' presence', async () => {
    alice = await UserPage.open(browser, 'alice', server.origin);
    assert.equal(await alice.page.textContent('#url'), `ws://127.0.0.1:${server.port}/`, 'the page connects to its own origin');
    await alice.link();
    logs.alice.push('connect', 'accept', 'join alice', 'link alice');
    await alice.expectLog(logs.alice);
    await alice.expectStatus('linked');
    await alice.expectUsers(['alice linked']);
    await server.expectEvents([
      { event: 'authenticate', username: 'alice', isNewUser: true },
      { event: 'join', username: 'alice' },
      { event: 'link', username: 'alice' },
    ]);

    bob = await UserPage.open(browser, 'bob', server.origin);
    await bob.link();
    // A new user gets accepted, then every user in join order (itself last): joined, linked.
    logs.bob.push('connect', 'accept', 'join alice', 'link alice', 'join bob', 'link bob');
    logs.alice.push('join bob', 'link bob');
    await bob.expectLog(logs.bob);
    await alice.expectLog(logs.alice);
    await server.expectEvents([
      { event: 'authenticate', username: 'bob', isNewUser: true },
      { event: 'join', username: 'bob' },
      { event: 'link', username: 'bob' },
    ]);

    carol = await UserPage.open(browser, 'carol', server.origin);
    await carol.link();
    logs.carol.push('connect', 'accept', 'join alice', 'link alice', 'join bob', 'link bob', 'join carol', 'link carol');
    logs.alice.push('join carol', 'link carol');
    logs.bob.push('join carol', 'link carol');
    for (const user of [alice, bob, carol]) {
      await user.expectLog(logs[user.name]);
      await user.expectUsers(['alice linked', 'bob linked', 'carol linked']);
    }
    await server.expectEvents([
      { event: 'authenticate', username: 'carol', isNewUser: true },
      { event: 'join', username: 'carol' },
      { event: 'link', username: 'carol' },
    ]);
    assert.deepEqual(await server.command('users'), {
      users: [
        { username: 'alice', isLinked: true },
        { username: 'bob', isLinked: true },
        { username: 'carol', isLinked: true },
      ],
    });
  });

  it('relays chat messages to every page in send order', async () => {
    await alice.say('hello from alice');
    for (const user of [alice, bob, carol]) {
      logs[user.name].push(say('hello from alice'));
      await user.expectLog(logs[user.name]);
    }
    // A burst from bob, unicode included: every page gets it whole and in order.
    const burst = ['one', 'two', 'three', 'ünïcödé ✓ 🙂', 'five'];
    for (const text of burst) {
      await bob.say(text);
    }
    for (const user of [alice, bob, carol]) {
      logs[user.name].push(...burst.map(say));
      await user.expectLog(logs[user.name]);
    }
    // Relay order is per sender: carol speaks once bob's burst is on every page.
    await carol.say('after the burst');
    for (const user of [alice, bob, carol]) {
      logs[user.name].push(say('after the burst'));
      await user.expectLog(logs[user.name]);
    }
    await server.expectEvents([
      { event: 'message', username: 'alice', message: { type: 'chat/say', payload: 'hello from alice' } },
      ...burst.map((text) => ({ event: 'message', username: 'bob', message: { type: 'chat/say', payload: text } })),
      { event: 'message', username: 'carol', message: { type: 'chat/say', payload: 'after the burst' } },
    ]);
  });

  it('shows a closed page as unlinked on the other pages', async () => {
    await carol.close();
    for (const user of [alice, bob]) {
      logs[user.name].push('unlink carol');
      await user.expectLog(logs[user.name]);
      await user.expectUsers(['alice linked', 'bob linked', 'carol unlinked']);
    }
    await server.expectEvents([{ event: 'unlink', username: 'carol' }]);
  });

  it('relinks a reloaded page as the same user, from its sessionStorage', async () => {
    assert.equal(await bob.page.evaluate(() => sessionStorage.getItem('krmx-test-username')), 'bob');
    await withTimeout('bob\'s page to reload', bob.page.reload());
    // The reloaded page starts a new log: it relinks on load, and gets every user in join order
    // (carol joined but unlinked: no linked for her).
    logs.bob = ['connect', 'accept', 'join alice', 'link alice', 'join bob', 'link bob', 'join carol'];
    await bob.expectLog(logs.bob);
    await bob.expectStatus('linked');
    await bob.expectUsers(['alice linked', 'bob linked', 'carol unlinked']);
    logs.alice.push('unlink bob', 'link bob');
    await alice.expectLog(logs.alice);
    await alice.expectUsers(['alice linked', 'bob linked', 'carol unlinked']);
    await server.expectEvents([
      { event: 'unlink', username: 'bob' },
      { event: 'authenticate', username: 'bob', isNewUser: false },
      { event: 'link', username: 'bob' },
    ]);
    // The relinked page chats as bob.
    await bob.say('back again');
    for (const user of [alice, bob]) {
      logs[user.name].push(say('back again'));
      await user.expectLog(logs[user.name]);
    }
    await server.expectEvents([
      { event: 'message', username: 'bob', message: { type: 'chat/say', payload: 'back again' } },
    ]);
  });

  it('shows the reason of a rejected link on the page', async () => {
    const mallory = await UserPage.open(browser, 'mallory', server.origin);
    await mallory.link();
    await expectText(mallory.page, '#error', 'banned', 'mallory\'s rejection');
    await mallory.expectLog(['connect', 'reject banned']);
    await mallory.expectStatus('connected');
    await mallory.expectUsers([]);
    assert.equal(await mallory.page.evaluate(() => sessionStorage.getItem('krmx-test-username')), null,
      'a rejected name is not kept');
    await server.expectEvents([{ event: 'authenticate', username: 'mallory', isNewUser: true }]);

    // A sequence point: the other pages saw nothing of mallory before this broadcast.
    assert.deepEqual(await server.command('broadcast {"type":"srv/marker"}'), { ok: 'broadcast' });
    for (const user of [alice, bob]) {
      logs[user.name].push('message {"type":"srv/marker"}');
      await user.expectLog(logs[user.name]);
      await user.expectUsers(['alice linked', 'bob linked', 'carol unlinked']);
    }
    await mallory.expectLog(['connect', 'reject banned'], 'an unlinked page gets no broadcast');
    await mallory.close();
    for (const user of [alice, bob]) {
      await user.close();
      await server.expectEvents([{ event: 'unlink', username: user.name }]);
    }
    server.assertNoPendingEvents();
  });
});

describe('pages over https:// and wss:// on krmx serve --tls-cert --tls-key', () => {
  let server;
  let pageDir;

  before(async () => {
    const { KRMX_TLS_CERT: cert, KRMX_TLS_KEY: key } = process.env;
    assert.ok(cert && key, 'KRMX_TLS_CERT and KRMX_TLS_KEY name the certificate files');
    pageDir = await preparePageDir();
    server = new ServerProcess(['--static-dir', pageDir, '--tls-cert', cert, '--tls-key', key, ...SERVER_ARGS]);
    await server.start({ tls: true });
  });

  after(() => {
    if (server) {
      server.kill();
    }
    if (pageDir) {
      fs.rmSync(pageDir, { recursive: true, force: true });
    }
  });

  it('links two pages over wss:// and relays their chat', async () => {
    // The certificate's authority is made at test time: the contexts ignore certificate errors.
    const options = { ignoreHTTPSErrors: true };
    const alice = await UserPage.open(browser, 'alice', server.origin, options);
    assert.equal(await alice.page.textContent('#url'), `wss://127.0.0.1:${server.port}/`);
    await alice.link();
    await alice.expectLog(['connect', 'accept', 'join alice', 'link alice']);
    const bob = await UserPage.open(browser, 'bob', server.origin, options);
    await bob.link();
    // Only a linked client sends: wait for the link before saying anything.
    await bob.expectLog(['connect', 'accept', 'join alice', 'link alice', 'join bob', 'link bob']);
    await bob.say('secure hello');
    const shared = ['join bob', 'link bob', say('secure hello')];
    await alice.expectLog(['connect', 'accept', 'join alice', 'link alice', ...shared]);
    await bob.expectLog(['connect', 'accept', 'join alice', 'link alice', ...shared]);
    for (const user of [alice, bob]) {
      await user.expectUsers(['alice linked', 'bob linked']);
    }
    await server.expectEvents([
      { event: 'authenticate', username: 'alice', isNewUser: true },
      { event: 'join', username: 'alice' },
      { event: 'link', username: 'alice' },
      { event: 'authenticate', username: 'bob', isNewUser: true },
      { event: 'join', username: 'bob' },
      { event: 'link', username: 'bob' },
      { event: 'message', username: 'bob', message: { type: 'chat/say', payload: 'secure hello' } },
    ]);
    for (const user of [alice, bob]) {
      await user.close();
      await server.expectEvents([{ event: 'unlink', username: user.name }]);
    }
    server.assertNoPendingEvents();
  });
});
