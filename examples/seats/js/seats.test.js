// The seats example served for real (`seats --transport mio|smol`), played by the published
// JavaScript client (@krmx/client): two players sit, take turns, a move out of turn is refused,
// a player who loses the connection relinks and keeps the seat, and a third user cannot sit.
//
// Run by examples/seats/tests/javascript.rs with SEATS_CMD (the binary and its transport) and
// NODE_PATH pointing at tests/interop-js/node_modules. Every wait has a timeout.
'use strict';

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { createClient } = require('@krmx/client');

// @krmx/client uses the global WebSocket, which Node 20 does not have.
globalThis.WebSocket = require('ws');

const STEP_MS = 5000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what, check, details = () => '') {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${details()}`);
    await sleep(5);
  }
}

/** One player: a @krmx/client and the game messages it received. */
class Player {
  constructor(name) {
    this.name = name;
    this.client = createClient({ logger: false });
    this.messages = [];
    this.client.on('message', (message) => this.messages.push(message));
  }

  async join(url) {
    await this.client.connect(url);
    await this.client.link(this.name);
  }

  send(type, payload) {
    this.client.send(payload === undefined ? { type } : { type, payload });
  }

  /** The last `seats/state` once `check` holds for it. */
  async state(what, check) {
    const last = () => [...this.messages].reverse().find((m) => m.type === 'seats/state');
    return waitFor(`${this.name} to see ${what}`, () => {
      const state = last();
      return state && check(state.payload) ? state.payload : undefined;
    }, () => `${this.name} got ${JSON.stringify(this.messages)}`);
  }

  async refused(reason) {
    await waitFor(`${this.name} to be refused: ${reason}`,
      () => this.messages.some((m) => m.type === 'seats/refused' && m.payload.reason === reason),
      () => `${this.name} got ${JSON.stringify(this.messages)}`);
  }
}

describe('seats, played with @krmx/client', () => {
  let server;
  let url;
  const players = [];
  const player = (name) => {
    const p = new Player(name);
    players.push(p);
    return p;
  };

  before(async () => {
    const [cmd, ...args] = (process.env.SEATS_CMD || '').split(/\s+/).filter(Boolean);
    assert.ok(cmd, 'SEATS_CMD is not set');
    server = spawn(cmd, [...args, '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (chunk) => { out += chunk; });
    const port = await waitFor('seats to listen', () => out.match(/listening on (\d+)/)?.[1], () => out);
    url = `ws://127.0.0.1:${port}`;
  });

  after(async () => {
    for (const p of players) {
      if (!['closed', 'initializing'].includes(p.client.getStatus())) {
        await p.client.disconnect(true).catch(() => {});
      }
    }
    server?.kill('SIGTERM');
  });

  it('seats two players, enforces turns, keeps a relinked player seated', async () => {
    const alice = player('alice');
    const bob = player('bob');
    await alice.join(url);
    await bob.join(url);
    await alice.state('the empty table', (s) => s.seats.every((x) => x === null));

    alice.send('seats/sit', { seat: 0 });
    await bob.state('alice seated', (s) => s.seats[0] === 'alice');
    bob.send('seats/sit', { seat: 0 });
    await bob.refused('seat taken');
    bob.send('seats/sit', { seat: 1 });
    await alice.state('both seated', (s) => s.seats[1] === 'bob');

    bob.send('seats/move', { cell: 0 });
    await bob.refused('not your turn');
    alice.send('seats/move', { cell: 4 });
    const afterMove = await bob.state('the first move', (s) => s.board[4] === 0);
    assert.equal(afterMove.turn, 1);

    // Alice's connection drops: she stays seated, relinks, and the game goes on.
    await alice.client.disconnect(true);
    const again = player('alice');
    await again.join(url);
    const seen = await again.state('the table on relink', (s) => s.board[4] === 0);
    assert.deepEqual(seen.seats, ['alice', 'bob']);
    bob.send('seats/move', { cell: 0 });
    await again.state('bob\'s move', (s) => s.board[0] === 1 && s.turn === 0);

    // A third user watches but cannot sit or move.
    const carol = player('carol');
    await carol.join(url);
    carol.send('seats/sit', { seat: 1 });
    await carol.refused('seat taken');
    carol.send('seats/move', { cell: 8 });
    await carol.refused('not seated');

    // Bob leaves: his seat is free and the board starts over.
    await bob.client.leave();
    const left = await carol.state('bob gone', (s) => s.seats[1] === null);
    assert.deepEqual(left.board, Array(9).fill(null));
  });
});
