#!/usr/bin/env node
// The Node.js reference Krmx server (@krmx/server from the npm registry) behind the options
// krmx-load gives `krmx serve` (shared/CLI.md), for the benchmarks:
//
//   node serve.js [--host ADDR] [--port N] [--path PATH] [--krmx-version X.Y]
//                 [--relay | --echo] [--quiet] [--log-level LEVEL]
//
// Prints {"event":"listen","port":N} on stdout once listening (and join/link/unlink/leave
// events, plus message events without --quiet). --relay broadcasts every custom message to every
// linked user (the sender included), --echo sends it back to its sender. SIGTERM and SIGINT end the
// process at once. The reference serves protocol 0.5 whatever --krmx-version says: clients must send
// a 0.5.x version (krmx-load --version 0.5.0). The interop test's fuller wrapper (with stdin
// commands) is tests/interop-js/reference-serve.js; this copy is the benchmark's own, installed
// with its own `npm ci`.
'use strict';

const http = require('http');
const { createServer } = require('@krmx/server');

function usage(message) {
  process.stderr.write(`node-reference: ${message}\n`);
  process.exit(2);
}

const opts = { host: '127.0.0.1', port: 8082, path: '/', relay: false, echo: false, quiet: false };
const args = process.argv.slice(2);
if (args[0] === 'serve') {
  args.shift();
}
const value = (name) => (args.length > 0 ? args.shift() : usage(`${name} needs a value`));
while (args.length > 0) {
  const arg = args.shift();
  switch (arg) {
    case '--host': opts.host = value(arg); break;
    case '--port': {
      const v = value(arg);
      if (!/^\d+$/.test(v) || Number(v) > 65535) {
        usage(`invalid port ${v}`);
      }
      opts.port = Number(v);
      break;
    }
    case '--path': {
      const p = value(arg);
      opts.path = p.startsWith('/') ? p : `/${p}`;
      break;
    }
    case '--krmx-version': value(arg); break; // the reference serves 0.5
    case '--log-level': value(arg); break;
    case '--relay': opts.relay = true; break;
    case '--echo': opts.echo = true; break;
    case '--quiet': opts.quiet = true; break;
    default: usage(`unknown option ${arg}`);
  }
}
if (opts.relay && opts.echo) {
  usage('--relay and --echo exclude each other');
}

const out = (object) => process.stdout.write(`${JSON.stringify(object)}\n`);

const httpServer = new http.Server();
const server = createServer({
  http: { server: httpServer, path: opts.path },
  logger: (severity, ...rest) => {
    if (severity === 'warn' || severity === 'error') {
      process.stderr.write(`[${severity}] ${rest.map(String).join(' ')}\n`);
    }
  },
});

server.on('listen', (port) => out({ event: 'listen', port }));
for (const event of ['join', 'link', 'unlink', 'leave']) {
  server.on(event, (username) => out({ event, username }));
}
server.on('message', (username, message) => {
  if (!opts.quiet) {
    out({ event: 'message', username, message });
  }
  if (opts.relay) {
    server.broadcast(message);
  } else if (opts.echo) {
    server.send(username, message);
  }
});

// A benchmark needs no graceful close (closing 10000 linked users takes the reference minutes
// of leave broadcasts): SIGTERM and SIGINT end the process at once.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

httpServer.on('error', (e) => {
  process.stderr.write(`node-reference: ${e.message}\n`);
  process.exit(1);
});
httpServer.listen(opts.port, opts.host, () => {
  server.listen().catch((e) => {
    process.stderr.write(`node-reference: ${e.message}\n`);
    process.exit(1);
  });
});
