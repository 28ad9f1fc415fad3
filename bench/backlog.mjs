// Slow consumers and memory, measured from outside against `krmx serve` with the `ws` client
// (tests/interop-js's dependency: run `npm ci` there first). Each scenario starts the server
// itself, samples its resident memory from /proc every 20 ms and prints one JSON line.
//
//   node bench/backlog.mjs burst      KRMX="target/release/krmx serve --transport smol"
//   node bench/backlog.mjs nonreaders KRMX="target/release/krmx serve" [BUDGET=67108864]
//   node bench/backlog.mjs sigterm    KRMX="target/release/krmx serve" [USERS=10000]
//
// burst: with --relay, a sender sends 500 messages of 100 KB in a burst while a second linked
// client in the same process reads steadily: who was closed, what each received, peak RSS.
// nonreaders: 1000 linked clients stop reading while a reading pair receives a broadcast storm
// (64 KiB messages relayed by the pair): how many were closed, peak RSS against the budget.
// sigterm: USERS linked clients, then SIGTERM: the time until the server exits.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../tests/interop-js/package.json'));
const WebSocket = require('ws');

const scenario = process.argv[2];
const env = (name, fallback) => process.env[name] ?? fallback;
const KRMX = env('KRMX', join(here, '../target/release/krmx') + ' serve');

function rssKib(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  } catch {
    return 0;
  }
}

/** Starts `krmx serve` with extra flags; resolves with its port, pid and a peak-RSS sampler. */
function startServer(flags) {
  const [cmd, ...args] = KRMX.split(/\s+/);
  const child = spawn(cmd, [...args, '--port', '0', '--quiet', ...flags], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const events = [];
  let buffered = '';
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let at;
      while ((at = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, at);
        buffered = buffered.slice(at + 1);
        const event = JSON.parse(line);
        events.push(event);
        if (event.event === 'listen') {
          const server = { child, port: event.port, pid: child.pid, events, peak: 0 };
          server.baseline = rssKib(child.pid);
          server.sampler = setInterval(() => {
            server.peak = Math.max(server.peak, rssKib(child.pid));
          }, 20);
          resolve(server);
        }
      }
    });
  });
}

function stopServer(server) {
  clearInterval(server.sampler);
  server.peak = Math.max(server.peak, rssKib(server.pid));
  return new Promise((resolve) => {
    server.child.on('exit', () => resolve());
    server.child.kill('SIGTERM');
  });
}

/** A client linked as `username`; `received` counts custom messages, `closed` its close. */
function link(port, username) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const client = { ws, username, received: [], users: new Set(), closed: null };
    ws.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'krmx/accepted') resolve(client);
      else if (message.type === 'krmx/rejected') reject(new Error(message.payload.reason));
      else if (message.type === 'krmx/linked') client.users.add(message.payload.username);
      else if (!message.type.startsWith('krmx/')) client.received.push(message.payload.seq);
    });
    ws.on('close', (code, reason) => {
      client.closed = { code, reason: reason.toString() };
    });
    ws.on('error', reject);
    ws.on('open', () =>
      ws.send(JSON.stringify({ type: 'krmx/link', payload: { username, version: '0.6.0' } })),
    );
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function inOrder(seqs, count) {
  return seqs.length === count && seqs.every((seq, i) => seq === i);
}

async function burst() {
  const MESSAGES = Number(env('MESSAGES', 500));
  const BYTES = Number(env('BYTES', 100_000));
  const server = await startServer(['--relay']);
  const sender = await link(server.port, 'sender');
  const reader = await link(server.port, 'reader');
  const fill = 'x'.repeat(BYTES);
  const started = Date.now();
  for (let seq = 0; seq < MESSAGES; seq++) {
    sender.ws.send(JSON.stringify({ type: 'bulk', payload: { seq, fill } }));
  }
  await waitFor(
    () =>
      (reader.received.length === MESSAGES || reader.closed) &&
      (sender.received.length === MESSAGES || sender.closed),
    120_000,
    'the burst',
  );
  const ms = Date.now() - started;
  const closed = [sender, reader]
    .filter((c) => c.closed)
    .map((c) => `${c.username} ${c.closed.code} ${c.closed.reason}`);
  await stopServer(server);
  return {
    scenario: 'burst',
    server: KRMX,
    messages: MESSAGES,
    bytes: BYTES,
    ms,
    closed,
    readerInOrder: inOrder(reader.received, MESSAGES),
    senderInOrder: inOrder(sender.received, MESSAGES),
    baselineRssKib: server.baseline,
    peakRssKib: server.peak,
  };
}

async function nonreaders() {
  const SLEEPERS = Number(env('SLEEPERS', 1000));
  const BROADCASTS = Number(env('BROADCASTS', 2000));
  const BYTES = Number(env('BYTES', 64 << 10));
  const BUDGET = Number(env('BUDGET', 64 << 20));
  const server = await startServer(['--relay', '--buffered-budget-bytes', String(BUDGET)]);
  const sleepers = [];
  for (let i = 0; i < SLEEPERS; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(i + 50, SLEEPERS); j++) batch.push(link(server.port, `sleeper${j}`));
    sleepers.push(...(await Promise.all(batch)));
  }
  const reader = await link(server.port, 'reader');
  const sender = await link(server.port, 'sender');
  for (const sleeper of sleepers) sleeper.ws._socket.pause();
  const linkedRss = rssKib(server.pid);
  const fill = 'x'.repeat(BYTES);
  const started = Date.now();
  // A window of 16 relayed messages in flight to both of the pair, so the pair reads as it
  // sends (a reader left more than the hard limit behind would be closed, by design).
  let sent = 0;
  while (sent < BROADCASTS) {
    while (sent < BROADCASTS && sent - Math.min(sender.received.length, reader.received.length) < 16) {
      sender.ws.send(JSON.stringify({ type: 'bulk', payload: { seq: sent, fill } }));
      sent++;
    }
    await sleep(1);
  }
  await waitFor(() => reader.received.length === BROADCASTS, 120_000, `the storm (reader ${reader.received.length}, sender ${sender.received.length} of ${sent})`);
  const ms = Date.now() - started;
  const closed = server.events.filter((e) => e.event === 'unlink' && e.username.startsWith('sleeper')).length;
  await stopServer(server);
  for (const sleeper of sleepers) sleeper.ws.terminate();
  return {
    scenario: 'nonreaders',
    server: KRMX,
    sleepers: SLEEPERS,
    broadcasts: BROADCASTS,
    bytes: BYTES,
    budgetKib: BUDGET >> 10,
    ms,
    sleepersClosed: closed,
    readerInOrder: inOrder(reader.received, BROADCASTS),
    senderInOrder: inOrder(sender.received, BROADCASTS),
    baselineRssKib: server.baseline,
    linkedRssKib: linkedRss,
    peakRssKib: server.peak,
  };
}

async function sigterm() {
  const USERS = Number(env('USERS', 10_000));
  const server = await startServer([]);
  const clients = [];
  for (let i = 0; i < USERS; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(i + 100, USERS); j++) batch.push(link(server.port, `user${j}`));
    clients.push(...(await Promise.all(batch)));
  }
  const last = clients[clients.length - 1];
  await waitFor(() => last.users.size === USERS, 600_000, 'the last user to see everyone');
  const started = Date.now();
  const exited = new Promise((resolve) => server.child.on('exit', (code) => resolve(code)));
  server.child.kill('SIGTERM');
  const code = await exited;
  const ms = Date.now() - started;
  clearInterval(server.sampler);
  for (const client of clients) client.ws.terminate();
  return { scenario: 'sigterm', server: KRMX, users: USERS, exitMs: ms, exitCode: code, peakRssKib: server.peak };
}

const scenarios = { burst, nonreaders, sigterm };
if (!scenarios[scenario]) {
  console.error(`usage: node bench/backlog.mjs ${Object.keys(scenarios).join('|')}`);
  process.exit(2);
}
console.log(JSON.stringify(await scenarios[scenario]()));
process.exit(0);
