// Run: cd tests/interop-js && npm ci && KRMX_SERVER_CMD="node reference-serve.js" node --test
//  (the Rust server: KRMX_SERVER_CMD="../../target/debug/krmx serve" node --test, after `cargo build`;
//   `cargo run -q --bin krmx -- serve` works too, KRMX_STARTUP_TIMEOUT_MS bounds the wait for `listen`)
//
// JavaScript interop test of a `krmx serve` server (shared/CLI.md), driven with the published
// JavaScript client (@krmx/client). KRMX_SERVER_CMD is split on whitespace, run with this
// directory as its working directory, and given `--port 0 --krmx-version 0.5 --relay` (the main
// server also `--reject mallory=banned`). Each scenario checks what the clients observe and what the server
// prints on stdout, message by message. Every wait has a timeout: a hang fails, it never blocks.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');

// Missing packages (no `npm ci`) must fail the run, never skip it.
let createClient;
let WebSocketImpl;
let missing;
try {
  ({ createClient } = require('@krmx/client'));
  WebSocketImpl = require('ws');
} catch (e) {
  missing = e;
}
if (missing) {
  it('has its packages installed (run `npm ci` in tests/interop-js)', () => {
    throw missing;
  });
  return;
}
// @krmx/client uses the global WebSocket, which Node 20 does not have.
globalThis.WebSocket = WebSocketImpl;

const STEP_MS = Number(process.env.KRMX_STEP_TIMEOUT_MS || 5000);
const STARTUP_MS = Number(process.env.KRMX_STARTUP_TIMEOUT_MS || 60000);
const BASE_ARGS = ['--port', '0', '--krmx-version', '0.5', '--relay'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value, failing after `ms` with `what` and `details()`. */
async function waitFor(what, check, ms = STEP_MS, details = () => '') {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${details() ? `\n${details()}` : ''}`);
    }
    await sleep(5);
  }
}

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

/** A spawned `krmx serve`: its stdout split into events and command replies. */
class ServerProcess {
  constructor(extraArgs = []) {
    const cmd = (process.env.KRMX_SERVER_CMD || '').split(/\s+/).filter(Boolean);
    if (cmd.length === 0) {
      throw new Error('KRMX_SERVER_CMD is not set (for example KRMX_SERVER_CMD="node reference-serve.js")');
    }
    this.args = [...cmd.slice(1), ...BASE_ARGS, ...extraArgs];
    this.child = spawn(cmd[0], this.args, { cwd: __dirname, stdio: ['pipe', 'pipe', 'pipe'] });
    this.lines = []; // every stdout line, parsed, in order
    this.events = []; // the lines with an `event`
    this.replies = []; // the other lines: command replies
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
        const line = buffer.slice(0, i).replace(/\r$/, '');
        buffer = buffer.slice(i + 1);
        if (line.trim() === '') {
          continue;
        }
        let parsed;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = { unparsable: line }; // stdout must be JSON lines only: surfaces as a mismatch
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

  async start() {
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
    assert.deepEqual(Object.keys(listen).sort(), ['event', 'port']);
    assert.ok(Number.isInteger(listen.port) && listen.port > 0, `a real port: ${JSON.stringify(listen)}`);
    this.eventCursor = 1;
    this.port = listen.port;
    this.url = `ws://127.0.0.1:${listen.port}/`;
  }

  /** The next `n` events (waiting for them), consumed. */
  async nextEvents(n, what = `${n} server event(s)`) {
    await waitFor(what, () => this.events.length >= this.eventCursor + n, STEP_MS, () => this.details());
    const taken = this.events.slice(this.eventCursor, this.eventCursor + n);
    this.eventCursor += n;
    return taken;
  }

  /** Asserts the next events are exactly `expected`, in order. */
  async expectEvents(expected, message) {
    assert.deepEqual(await this.nextEvents(expected.length, message), expected, message);
  }

  /** Events printed and not consumed yet. */
  pendingEvents() {
    return this.events.slice(this.eventCursor);
  }

  /** Sends one stdin command and returns its one reply line. */
  async command(line) {
    this.child.stdin.write(`${line}\n`);
    const index = this.replyCursor++;
    await waitFor(`the reply to \`${line}\``, () => this.replies.length > index, STEP_MS, () => this.details());
    return this.replies[index];
  }

  async users() {
    const reply = await this.command('users');
    assert.ok(Array.isArray(reply.users), `users reply: ${JSON.stringify(reply)}`);
    return reply.users;
  }

  async waitExit(ms = STEP_MS) {
    return waitFor('the server process to exit', () => this.exit, ms, () => this.details());
  }

  kill() {
    if (this.exit === undefined && !this.spawnError) {
      this.child.kill('SIGKILL');
    }
  }
}

/** Records the protocol-level events a @krmx/client emits. */
const RECORDED = new Set(['accept', 'reject', 'join', 'link', 'unlink', 'leave', 'message', 'close']);
class Peer {
  constructor(name) {
    this.name = name;
    this.client = createClient({ logger: false });
    this.log = [];
    this.cursor = 0;
    this.client.all((event, ...args) => {
      if (RECORDED.has(event)) {
        this.log.push([event, ...args]);
      }
    });
  }

  async connect(url) {
    await withTimeout(`${this.name} to connect`, this.client.connect(url));
    assert.equal(this.client.getStatus(), 'connected');
  }

  /** The next `n` recorded client events (waiting for them), consumed. */
  async next(n) {
    await waitFor(`${n} event(s) at client ${this.name}`, () => this.log.length >= this.cursor + n, STEP_MS,
      () => `client ${this.name} log: ${JSON.stringify(this.log.slice(this.cursor))}`);
    const taken = this.log.slice(this.cursor, this.cursor + n);
    this.cursor += n;
    return taken;
  }

  async expect(expected, message = `events at ${this.name}`) {
    assert.deepEqual(await this.next(expected.length), expected, message);
  }

  pending() {
    return this.log.slice(this.cursor);
  }

  messages() {
    return this.log.filter(([e]) => e === 'message').map(([, m]) => m);
  }

  /** getUsers() sorted by name: the client keeps its own user first, so its order is not join order. */
  users() {
    return [...this.client.getUsers()].sort((a, b) => a.username.localeCompare(b.username));
  }
}

const peers = [];
function peer(name) {
  const p = new Peer(name);
  peers.push(p);
  return p;
}

describe(`krmx serve interop (KRMX_SERVER_CMD=${process.env.KRMX_SERVER_CMD || '<unset>'})`, () => {
  let server;
  let alice;
  let bob;

  before(async () => {
    server = new ServerProcess(['--reject', 'mallory=banned']);
    await server.start();
  });

  after(async () => {
    for (const p of peers) {
      if (!['closed', 'initializing'].includes(p.client.getStatus())) {
        await withTimeout(`${p.name} to disconnect`, p.client.disconnect(true)).catch(() => {});
      }
    }
    if (server) {
      server.kill();
    }
  });

  it('answers status and an empty user list', async () => {
    assert.deepEqual(await server.command('status'), { status: 'listening' });
    assert.deepEqual(await server.users(), []);
  });

  it('links two clients, each seeing both users linked', async () => {
    alice = peer('alice');
    await alice.connect(server.url);
    await withTimeout('alice to link', alice.client.link('alice'));
    assert.equal(alice.client.getStatus(), 'linked');
    assert.equal(alice.client.getUsername(), 'alice');
    await alice.expect([['accept'], ['join', 'alice'], ['link', 'alice']]);
    await server.expectEvents([
      { event: 'authenticate', username: 'alice', isNewUser: true },
      { event: 'join', username: 'alice' },
      { event: 'link', username: 'alice' },
    ]);

    bob = peer('bob');
    await bob.connect(server.url);
    await withTimeout('bob to link', bob.client.link('bob'));
    // A new user receives accepted, then every user in join order (itself last): joined, linked.
    await bob.expect([['accept'], ['join', 'alice'], ['link', 'alice'], ['join', 'bob'], ['link', 'bob']]);
    await alice.expect([['join', 'bob'], ['link', 'bob']]);
    await server.expectEvents([
      { event: 'authenticate', username: 'bob', isNewUser: true },
      { event: 'join', username: 'bob' },
      { event: 'link', username: 'bob' },
    ]);

    const both = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }];
    assert.deepEqual(alice.users(), both);
    assert.deepEqual(bob.users(), both);
    assert.deepEqual(await server.users(), both, 'server users, in join order');
    assert.deepEqual(alice.pending(), []);
    assert.deepEqual(bob.pending(), []);
  });

  it('relays messages both ways, whole objects, in send order', async () => {
    const fromAlice = [
      { type: 'chat/say', payload: 'hi bob' },
      { type: 'chat/say', payload: { text: 'nested', list: [1, 2.5, null, true, 'x'] }, id: 2, extra: { keep: 'me' } },
      { type: 'game/move' },
      { type: 'chat/say', payload: 'ünïcödé ✓ 🙂', id: 4 },
      { type: 'chat/say', payload: null, flag: false },
    ];
    const fromBob = [
      { type: 'chat/say', payload: 'hi alice' },
      { type: 'chat/reply', payload: [{ a: 1 }, { b: 'two' }], seq: 7 },
      { type: 'chat/say', payload: 42 },
    ];
    // Sent interleaved: each sender's order must hold, at both clients and in the server's events.
    for (let i = 0; i < Math.max(fromAlice.length, fromBob.length); i++) {
      if (i < fromAlice.length) alice.client.send(fromAlice[i]);
      if (i < fromBob.length) bob.client.send(fromBob[i]);
    }
    const total = fromAlice.length + fromBob.length;
    const isFrom = (list) => (m) => list.some((x) => JSON.stringify(x) === JSON.stringify(m));
    for (const p of [alice, bob]) {
      const received = (await p.next(total)).map(([event, message]) => {
        assert.equal(event, 'message', `${p.name} receives only messages: ${JSON.stringify(p.log)}`);
        return message;
      });
      assert.deepEqual(received.filter(isFrom(fromAlice)), fromAlice, `alice's messages at ${p.name}, in order`);
      assert.deepEqual(received.filter(isFrom(fromBob)), fromBob, `bob's messages at ${p.name}, in order`);
    }
    const events = await server.nextEvents(total, 'the message events');
    for (const e of events) {
      assert.deepEqual(Object.keys(e).sort(), ['event', 'message', 'username']);
      assert.equal(e.event, 'message');
    }
    assert.deepEqual(events.filter((e) => e.username === 'alice').map((e) => e.message), fromAlice);
    assert.deepEqual(events.filter((e) => e.username === 'bob').map((e) => e.message), fromBob);

    // Sequential now: the relay order is then fully determined.
    alice.client.send({ type: 'seq/a', payload: 1 });
    await alice.expect([['message', { type: 'seq/a', payload: 1 }]]);
    bob.client.send({ type: 'seq/b', payload: 2 });
    await bob.expect([['message', { type: 'seq/a', payload: 1 }], ['message', { type: 'seq/b', payload: 2 }]]);
    await alice.expect([['message', { type: 'seq/b', payload: 2 }]]);
    await server.expectEvents([
      { event: 'message', username: 'alice', message: { type: 'seq/a', payload: 1 } },
      { event: 'message', username: 'bob', message: { type: 'seq/b', payload: 2 } },
    ]);
  });

  it('delivers stdin send, broadcast and broadcast-except, and reports API errors', async () => {
    assert.deepEqual(await server.command('send bob {"type":"srv/direct","payload":{"n":1}}'), { ok: 'send' });
    await bob.expect([['message', { type: 'srv/direct', payload: { n: 1 } }]]);
    assert.deepEqual(await server.command('broadcast {"type":"srv/all","payload":[1,"two"]}'), { ok: 'broadcast' });
    await alice.expect([['message', { type: 'srv/all', payload: [1, 'two'] }]]);
    await bob.expect([['message', { type: 'srv/all', payload: [1, 'two'] }]]);
    assert.deepEqual(await server.command('broadcast-except alice {"type":"srv/not-alice"}'), { ok: 'broadcast-except' });
    await bob.expect([['message', { type: 'srv/not-alice' }]]);
    // Sequence point: alice gets the next one, so she really did not get srv/not-alice.
    assert.deepEqual(await server.command('send alice {"type":"srv/marker"}'), { ok: 'send' });
    await alice.expect([['message', { type: 'srv/marker' }]]);

    assert.deepEqual(await server.command('send nobody {"type":"x"}'),
      { error: 'cannot send a message to a user that does not exist' });
    assert.deepEqual(await server.command('kick nobody'), { error: 'cannot kick a user that does not exist' });
    assert.deepEqual(await server.command('unlink nobody'),
      { error: 'cannot unlink a connection from a user that does not exist' });
    assert.deepEqual(await server.command('join alice'), { error: 'cannot join a user that already exist' });
    for (const line of ['no-such-command', 'broadcast {not json']) {
      const reply = await server.command(line);
      assert.deepEqual(Object.keys(reply), ['error'], `${line} -> ${JSON.stringify(reply)}`);
      assert.equal(typeof reply.error, 'string');
    }
    assert.deepEqual(await server.command('status'), { status: 'listening' }, 'still running after errors');
    assert.deepEqual(server.pendingEvents(), [], 'no events from stdin sends');
    assert.deepEqual(alice.pending(), []);
    assert.deepEqual(bob.pending(), []);
  });

  it('unlink: the other sees alice unlinked, and alice can link again', async () => {
    await withTimeout('alice to unlink', alice.client.unlink());
    assert.equal(alice.client.getStatus(), 'connected');
    await alice.expect([['unlink', 'alice']]);
    await bob.expect([['unlink', 'alice']]);
    await server.expectEvents([{ event: 'unlink', username: 'alice' }]);
    assert.deepEqual(bob.users(), [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }]);
    assert.deepEqual(await server.users(),
      [{ username: 'alice', isLinked: false }, { username: 'bob', isLinked: true }]);

    // The connection stays open: link again on it.
    await withTimeout('alice to link again', alice.client.link('alice'));
    await alice.expect([['accept'], ['join', 'alice'], ['link', 'alice'], ['join', 'bob'], ['link', 'bob']]);
    await bob.expect([['link', 'alice']]);
    await server.expectEvents([
      { event: 'authenticate', username: 'alice', isNewUser: false },
      { event: 'link', username: 'alice' },
    ]);
    const both = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }];
    assert.deepEqual(alice.users(), both);
    assert.deepEqual(bob.users(), both);
    assert.deepEqual(await server.users(), both);
  });

  it('leave: the others see carol leave and the server no longer lists her', async () => {
    const carol = peer('carol');
    await carol.connect(server.url);
    await withTimeout('carol to link', carol.client.link('carol', 'carol-token'));
    await carol.expect([['accept'], ['join', 'alice'], ['link', 'alice'], ['join', 'bob'], ['link', 'bob'],
      ['join', 'carol'], ['link', 'carol']]);
    await server.expectEvents([
      { event: 'authenticate', username: 'carol', isNewUser: true, auth: 'carol-token' },
      { event: 'join', username: 'carol' },
      { event: 'link', username: 'carol' },
    ]);
    for (const p of [alice, bob]) {
      await p.expect([['join', 'carol'], ['link', 'carol']]);
    }
    assert.deepEqual((await server.users()).map((u) => u.username), ['alice', 'bob', 'carol']);

    await withTimeout('carol to leave', carol.client.leave());
    // The leaver is unlinked first (and told), then told it left.
    await carol.expect([['unlink', 'carol'], ['leave', 'carol']]);
    for (const p of [alice, bob]) {
      await p.expect([['unlink', 'carol'], ['leave', 'carol']]);
    }
    await server.expectEvents([{ event: 'unlink', username: 'carol' }, { event: 'leave', username: 'carol' }]);
    const both = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }];
    assert.deepEqual(await server.users(), both);
    assert.deepEqual(alice.users(), both);
    assert.deepEqual(bob.users(), both);
    assert.equal(carol.client.getStatus(), 'connected', 'the connection stays open after leaving');
    await withTimeout('carol to disconnect', carol.client.disconnect());
    await sleep(50);
    assert.deepEqual(server.pendingEvents(), [], 'no event for closing a connection that is not linked');
  });

  it('rejects --reject users with their reason, invalid usernames and other versions', async () => {
    const mallory = peer('mallory');
    await mallory.connect(server.url);
    await assert.rejects(withTimeout('mallory to be rejected', mallory.client.link('mallory')), { message: 'banned' });
    await mallory.expect([['reject', 'banned']]);
    assert.equal(mallory.client.getStatus(), 'connected', 'a rejected connection stays open');
    // The application (here --reject) decides at authentication, so the event is printed.
    await server.expectEvents([{ event: 'authenticate', username: 'mallory', isNewUser: true }]);

    await assert.rejects(withTimeout('1abc to be rejected', mallory.client.link('1abc')), { message: 'invalid username' });
    await mallory.expect([['reject', 'invalid username']]);

    // The published client always sends its own version (0.5.x); a raw socket sends another one.
    const raw = new WebSocketImpl(server.url);
    const rawMessages = [];
    raw.on('message', (data) => rawMessages.push(JSON.parse(data.toString())));
    await withTimeout('a raw socket to open', new Promise((resolve, reject) => {
      raw.once('open', resolve);
      raw.once('error', reject);
    }));
    raw.send(JSON.stringify({ type: 'krmx/link', payload: { username: 'zed', version: '0.6.0' } }));
    raw.send(JSON.stringify({ type: 'krmx/link', payload: { username: 'zed' } }));
    raw.send(JSON.stringify({ type: 'chat/say', payload: 'not linked' }));
    raw.send('not json');
    await waitFor('4 raw rejections', () => rawMessages.length >= 4, STEP_MS, () => JSON.stringify(rawMessages));
    assert.deepEqual(rawMessages, [
      { type: 'krmx/rejected', payload: { reason: 'krmx server version mismatch (server=0.5.*,client=0.6.0)' } },
      { type: 'krmx/rejected', payload: { reason: 'invalid link request' } },
      { type: 'krmx/rejected', payload: { reason: 'unlinked connection' } },
      { type: 'krmx/rejected', payload: { reason: 'invalid message' } },
    ]);
    raw.close();

    // A sequence point on stdout: nothing else was printed for these attempts.
    const both = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }];
    assert.deepEqual(await server.users(), both);
    assert.deepEqual(server.pendingEvents(), [], 'no join/link for rejected links');
    await withTimeout('mallory to disconnect', mallory.client.disconnect());
    assert.deepEqual(alice.pending(), [], 'others see nothing of rejected links');
    assert.deepEqual(bob.pending(), []);
  });

  it('relinks after a disconnect: unlinked for the other, then linked again', async () => {
    await withTimeout('bob to disconnect', bob.client.disconnect(true));
    await alice.expect([['unlink', 'bob']]);
    await server.expectEvents([{ event: 'unlink', username: 'bob' }]);
    assert.deepEqual(alice.users(), [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }]);
    assert.deepEqual(await server.users(),
      [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: false }]);

    const bob2 = peer('bob2');
    await bob2.connect(server.url);
    await withTimeout('bob to link from a new connection', bob2.client.link('bob'));
    await bob2.expect([['accept'], ['join', 'alice'], ['link', 'alice'], ['join', 'bob'], ['link', 'bob']]);
    await alice.expect([['link', 'bob']]);
    await server.expectEvents([
      { event: 'authenticate', username: 'bob', isNewUser: false },
      { event: 'link', username: 'bob' },
    ]);
    const both = [{ username: 'alice', isLinked: true }, { username: 'bob', isLinked: true }];
    assert.deepEqual(alice.users(), both);
    assert.deepEqual(bob2.users(), both);
    assert.deepEqual(await server.users(), both);

    // A second connection cannot take a linked user.
    const intruder = peer('intruder');
    await intruder.connect(server.url);
    await assert.rejects(withTimeout('a second link of bob to be rejected', intruder.client.link('bob')),
      { message: 'user bob is already linked to a connection' });
    await withTimeout('intruder to disconnect', intruder.client.disconnect());

    // The new connection works: relay through it.
    bob2.client.send({ type: 'chat/say', payload: 'back', id: 9 });
    await bob2.expect([['message', { type: 'chat/say', payload: 'back', id: 9 }]]);
    await alice.expect([['message', { type: 'chat/say', payload: 'back', id: 9 }]]);
    await server.expectEvents([
      { event: 'message', username: 'bob', message: { type: 'chat/say', payload: 'back', id: 9 } },
    ]);
    bob = bob2;
  });

  it('closes on the `close` command: users leave, `close` event, exit code 0', async () => {
    assert.deepEqual(await server.command('close'), { ok: 'close' });
    // Every user leaves, in join order (linked ones are unlinked first), then the close event.
    await server.expectEvents([
      { event: 'unlink', username: 'alice' },
      { event: 'leave', username: 'alice' },
      { event: 'unlink', username: 'bob' },
      { event: 'leave', username: 'bob' },
      { event: 'close' },
    ]);
    const exit = await server.waitExit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(server.pendingEvents(), []);
    assert.equal(server.replies.length, server.replyCursor, 'no reply without a command');
    for (const p of [alice, bob]) {
      await waitFor(`${p.name}'s socket to close`, () => p.client.getStatus() === 'closed');
      // What a client still receives during close is what it is sent before its socket closes:
      // it must be a prefix of (own unlink, own leave) for alice and (alice's, then own) for bob.
      const expected = p === alice
        ? [['unlink', 'alice'], ['leave', 'alice']]
        : [['unlink', 'alice'], ['leave', 'alice'], ['unlink', 'bob'], ['leave', 'bob']];
      const got = p.pending().filter(([e]) => e !== 'close');
      assert.deepEqual(got, expected.slice(0, got.length), `${p.name} during close: ${JSON.stringify(got)}`);
      assert.ok(p.pending().some(([e]) => e === 'close'), `${p.name} saw its socket close`);
    }
  });
});

// The reference (@krmx/server 0.5) checks the version with a string prefix test, so it links a
// client that sends 0.55.1 to a 0.5 server; PROTOCOL.md compares the numbers exactly. Against the
// reference this one is reported as a known difference (todo), not as a failure of the run.
const IS_REFERENCE = /reference-serve\.js/.test(process.env.KRMX_SERVER_CMD || '');
describe('krmx serve version check', () => {
  it('rejects a version whose minor only starts with the served one (0.55.1 for 0.5)', {
    todo: IS_REFERENCE ? 'known reference difference: prefix version test accepts 0.55.1' : false,
  }, async () => {
    const server = new ServerProcess();
    let raw;
    try {
      await server.start();
      raw = new WebSocketImpl(server.url);
      const rawMessages = [];
      raw.on('message', (data) => rawMessages.push(JSON.parse(data.toString())));
      await withTimeout('a raw socket to open', new Promise((resolve, reject) => {
        raw.once('open', resolve);
        raw.once('error', reject);
      }));
      raw.send(JSON.stringify({ type: 'krmx/link', payload: { username: 'zed', version: '0.55.1' } }));
      await waitFor('an answer to the link', () => rawMessages.length >= 1, STEP_MS, () => JSON.stringify(rawMessages));
      assert.deepEqual(rawMessages[0],
        { type: 'krmx/rejected', payload: { reason: 'krmx server version mismatch (server=0.5.*,client=0.55.1)' } });
      assert.deepEqual(await server.users(), []);
    } finally {
      if (raw) raw.terminate();
      server.kill();
    }
  });
});

// The reference's send overwrites a top-level `metadata` field (its own metadata option, off by
// default, sets it to undefined, so JSON drops it); CLI.md says relayed messages keep every field.
describe('krmx serve relay keeps a top-level metadata field', () => {
  it('relays {type, payload, metadata} whole', {
    todo: IS_REFERENCE ? 'known reference difference: relayed messages lose their metadata field' : false,
  }, async () => {
    const server = new ServerProcess();
    try {
      await server.start();
      const fay = peer('fay');
      await fay.connect(server.url);
      await withTimeout('fay to link', fay.client.link('fay'));
      await fay.expect([['accept'], ['join', 'fay'], ['link', 'fay']]);
      const message = { type: 'chat/say', payload: 'm', metadata: { mine: true } };
      fay.client.send(message);
      await server.expectEvents([
        { event: 'authenticate', username: 'fay', isNewUser: true },
        { event: 'join', username: 'fay' },
        { event: 'link', username: 'fay' },
        { event: 'message', username: 'fay', message },
      ]);
      await fay.expect([['message', message]]);
      await withTimeout('fay to disconnect', fay.client.disconnect(true));
    } finally {
      server.kill();
    }
  });
});

// wss://: the runner (tests/tests/interop_js.rs) makes a certificate authority and a server
// certificate for localhost at test time, passes their files in KRMX_TLS_CERT and KRMX_TLS_KEY,
// and has node trust the authority through NODE_EXTRA_CA_CERTS. Missing, the test fails.
describe('krmx serve over wss:// (--tls-cert, --tls-key)', () => {
  it('links two published clients over TLS: presence, relay and an unlink', {
    todo: IS_REFERENCE ? 'the reference has no TLS of its own' : false,
  }, async () => {
    const cert = process.env.KRMX_TLS_CERT;
    const key = process.env.KRMX_TLS_KEY;
    assert.ok(cert && key && process.env.NODE_EXTRA_CA_CERTS,
      'KRMX_TLS_CERT, KRMX_TLS_KEY and NODE_EXTRA_CA_CERTS must name the test certificate files');
    const server = new ServerProcess(['--tls-cert', cert, '--tls-key', key]);
    try {
      await server.start();
      const url = `wss://localhost:${server.port}/`;
      const gus = peer('gus');
      await gus.connect(url);
      await withTimeout('gus to link over wss', gus.client.link('gus'));
      await gus.expect([['accept'], ['join', 'gus'], ['link', 'gus']]);
      const hal = peer('hal');
      await hal.connect(url);
      await withTimeout('hal to link over wss', hal.client.link('hal'));
      await hal.expect([['accept'], ['join', 'gus'], ['link', 'gus'], ['join', 'hal'], ['link', 'hal']]);
      await gus.expect([['join', 'hal'], ['link', 'hal']]);
      const big = { type: 'doc/put', payload: 'z'.repeat(100000) };
      const small = { type: 'chat/say', payload: 'over TLS ✓' };
      gus.client.send(big);
      gus.client.send(small);
      await gus.expect([['message', big], ['message', small]]);
      await hal.expect([['message', big], ['message', small]]);
      await withTimeout('hal to disconnect', hal.client.disconnect(true));
      await gus.expect([['unlink', 'hal']]);
      assert.deepEqual(await server.users(), [
        { username: 'gus', isLinked: true },
        { username: 'hal', isLinked: false },
      ]);
      await withTimeout('gus to disconnect', gus.client.disconnect(true));
    } finally {
      server.kill();
    }
  });
});

describe('krmx serve lifecycle', () => {
  for (const signal of ['SIGTERM', 'SIGINT']) {
    it(`closes gracefully on ${signal}, exit code 0`, async () => {
      const server = new ServerProcess();
      try {
        await server.start();
        const dave = peer(`dave-${signal}`);
        await dave.connect(server.url);
        await withTimeout('dave to link', dave.client.link('dave'));
        await server.expectEvents([
          { event: 'authenticate', username: 'dave', isNewUser: true },
          { event: 'join', username: 'dave' },
          { event: 'link', username: 'dave' },
        ]);
        server.child.kill(signal);
        await server.expectEvents([
          { event: 'unlink', username: 'dave' },
          { event: 'leave', username: 'dave' },
          { event: 'close' },
        ]);
        assert.deepEqual(await server.waitExit(), { code: 0, signal: null });
        await waitFor('dave\'s socket to close', () => dave.client.getStatus() === 'closed');
      } finally {
        server.kill();
      }
    });
  }

  it('keeps running when stdin ends', async () => {
    const server = new ServerProcess();
    try {
      await server.start();
      server.child.stdin.end();
      await sleep(300);
      assert.equal(server.exit, undefined, 'still running after end of stdin');
      const erin = peer('erin');
      await erin.connect(server.url);
      await withTimeout('erin to link', erin.client.link('erin'));
      await server.expectEvents([
        { event: 'authenticate', username: 'erin', isNewUser: true },
        { event: 'join', username: 'erin' },
        { event: 'link', username: 'erin' },
      ]);
      server.child.kill('SIGTERM');
      await server.expectEvents([
        { event: 'unlink', username: 'erin' },
        { event: 'leave', username: 'erin' },
        { event: 'close' },
      ]);
      assert.deepEqual(await server.waitExit(), { code: 0, signal: null });
    } finally {
      server.kill();
    }
  });
});
