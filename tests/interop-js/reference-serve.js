#!/usr/bin/env node
// Reference `krmx serve`: wraps the published Node server (@krmx/server 0.5.x)
// behind the command-line contract of shared/CLI.md, so the interop test and
// the benchmarks can run the same scripts against the Node reference and the
// Rust binary.
//
//   node reference-serve.js [--host ADDR] [--port N] [--path PATH] [--query SPEC]...
//        [--krmx-version X.Y] [--relay | --echo] [--quiet] [--no-new-users]
//        [--reject USER=REASON]...
//
// Differences from CLI.md, by necessity of the reference library:
// - it serves protocol 0.5 whatever --krmx-version says (the option is accepted
//   and ignored);
// - --manual-auth is refused (the reference only accepts a synchronous decision);
// - --auth-timeout-ms, --ping-interval-ms and --max-message-bytes are accepted
//   and ignored (the reference has no such settings).
'use strict';

const http = require('http');
const readline = require('readline');
const { createServer } = require('@krmx/server');

function usage(message) {
  process.stderr.write(`reference-serve: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1',
    port: 8082,
    path: '/',
    query: {},
    relay: false,
    echo: false,
    quiet: false,
    acceptNewUsers: true,
    reject: new Map(),
  };
  const args = argv[0] === 'serve' ? argv.slice(1) : argv.slice();
  const value = (name) => {
    if (args.length === 0) {
      usage(`${name} needs a value`);
    }
    return args.shift();
  };
  while (args.length > 0) {
    const arg = args.shift();
    switch (arg) {
      case '--host': opts.host = value(arg); break;
      case '--port': {
        const v = value(arg);
        const port = Number(v);
        if (!/^\d+$/.test(v) || port > 65535) {
          usage(`invalid port ${v}`);
        }
        opts.port = port;
        break;
      }
      case '--path': {
        const p = value(arg);
        opts.path = p.startsWith('/') ? p : `/${p}`;
        break;
      }
      case '--query': {
        const spec = value(arg);
        if (spec.startsWith('!')) {
          opts.query[spec.slice(1)] = false;
        } else if (spec.includes('=')) {
          const i = spec.indexOf('=');
          opts.query[spec.slice(0, i)] = spec.slice(i + 1);
        } else {
          opts.query[spec] = true;
        }
        break;
      }
      case '--krmx-version': value(arg); break; // the reference serves 0.5
      case '--auth-timeout-ms':
      case '--ping-interval-ms':
      case '--max-message-bytes':
        value(arg);
        process.stderr.write(`reference-serve: ${arg} is ignored by the reference server\n`);
        break;
      case '--relay': opts.relay = true; break;
      case '--echo': opts.echo = true; break;
      case '--quiet': opts.quiet = true; break;
      case '--no-new-users': opts.acceptNewUsers = false; break;
      case '--reject': {
        const spec = value(arg);
        const i = spec.indexOf('=');
        if (i <= 0) {
          usage(`--reject needs USER=REASON, got ${spec}`);
        }
        opts.reject.set(spec.slice(0, i), spec.slice(i + 1));
        break;
      }
      case '--manual-auth':
        usage('--manual-auth is not supported by the reference server');
        break;
      default:
        usage(`unknown option ${arg}`);
    }
  }
  if (opts.relay && opts.echo) {
    usage('--relay and --echo exclude each other');
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

// One JSON object per line on stdout; logs go to stderr.
function out(object) {
  process.stdout.write(`${JSON.stringify(object)}\n`);
}

const httpServer = new http.Server();
const server = createServer({
  http: { server: httpServer, path: opts.path, queryParams: opts.query },
  acceptNewUsers: opts.acceptNewUsers,
  logger: (severity, ...args) => {
    if (severity !== 'debug') {
      process.stderr.write(`[${severity}] [server] ${args.map(String).join(' ')}\n`);
    }
  },
});

server.on('listen', (port) => out({ event: 'listen', port }));
server.on('authenticate', (username, info, reject) => {
  const event = { event: 'authenticate', username, isNewUser: info.isNewUser };
  if (info.auth !== undefined) {
    event.auth = info.auth;
  }
  out(event);
  if (opts.reject.has(username)) {
    reject(opts.reject.get(username));
  }
});
server.on('join', (username) => out({ event: 'join', username }));
server.on('link', (username) => out({ event: 'link', username }));
server.on('unlink', (username) => out({ event: 'unlink', username }));
server.on('leave', (username) => out({ event: 'leave', username }));
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

let closing = false;
function closeGracefully() {
  if (closing) {
    return false;
  }
  closing = true;
  server.close().then(() => {
    out({ event: 'close' });
    process.stdout.write('', () => process.exit(0));
  }).catch((e) => {
    process.stderr.write(`reference-serve: close failed: ${e && e.message}\n`);
    process.exit(1);
  });
  return true;
}
process.on('SIGINT', closeGracefully);
process.on('SIGTERM', closeGracefully);

function parseMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch (e) {
    throw new Error(`invalid JSON: ${e.message}`);
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message) || typeof message.type !== 'string') {
    throw new Error('invalid message: a JSON object with a string type is expected');
  }
  return message;
}

// Splits "cmd a b rest..." into the command, `n` words and the rest of the line.
function words(line, n) {
  const result = [];
  let rest = line.trim();
  for (let i = 0; i < n; i++) {
    const m = /^(\S+)\s*/.exec(rest);
    if (!m) {
      throw new Error('missing argument');
    }
    result.push(m[1]);
    rest = rest.slice(m[0].length);
  }
  return [...result, rest];
}

function handle(line) {
  const trimmed = line.trim();
  if (trimmed === '') {
    return; // blank lines are not commands
  }
  const command = trimmed.split(/\s+/)[0];
  try {
    switch (command) {
      case 'join': {
        const [, name] = words(trimmed, 2);
        server.join(name);
        out({ ok: command });
        break;
      }
      case 'kick': {
        const [, name] = words(trimmed, 2);
        server.kick(name);
        out({ ok: command });
        break;
      }
      case 'unlink': {
        const [, name] = words(trimmed, 2);
        server.unlink(name);
        out({ ok: command });
        break;
      }
      case 'send': {
        const [, name, json] = words(trimmed, 2);
        server.send(name, parseMessage(json));
        out({ ok: command });
        break;
      }
      case 'broadcast': {
        const [, json] = words(trimmed, 1);
        server.broadcast(parseMessage(json));
        out({ ok: command });
        break;
      }
      case 'broadcast-except': {
        const [, name, json] = words(trimmed, 2);
        server.broadcast(parseMessage(json), name);
        out({ ok: command });
        break;
      }
      case 'users':
        out({ users: server.getUsers() });
        break;
      case 'status':
        out({ status: server.getStatus() });
        break;
      case 'accept':
      case 'reject':
        throw new Error('manual authentication is not enabled');
      case 'close':
        if (closing) {
          throw new Error(`cannot close when the server is ${server.getStatus()}`);
        }
        out({ ok: command });
        closeGracefully();
        break;
      default:
        throw new Error(`unknown command: ${command}`);
    }
  } catch (e) {
    out({ error: (e && e.message) || String(e) });
  }
}


httpServer.on('error', (e) => {
  process.stderr.write(`reference-serve: ${e.message}\n`);
  process.exit(1);
});
httpServer.listen(opts.port, opts.host, () => {
  server.listen().then(() => {
    // Commands are read once the server listens (lines sent earlier wait in
    // the pipe). End of stdin is not a command: the server keeps running.
    readline.createInterface({ input: process.stdin, terminal: false }).on('line', handle);
  }).catch((e) => {
    process.stderr.write(`reference-serve: ${e.message}\n`);
    process.exit(1);
  });
});
