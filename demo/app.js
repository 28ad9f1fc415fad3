// The Krmx lobby: @krmx/client (the global Krmx, from vendor/krmx-client.js) connected to the
// server that served this page, on its own origin (ws:// for http://, wss:// for https://).
//
// Presence comes from the protocol itself: every linked client is told who joined, linked,
// unlinked and left. Chat is a custom message, `chat/say`, that `krmx serve --relay` sends to
// every linked user, sender included. The relay passes messages on as they are, so the sender's
// name travels in the payload: `{ type: 'chat/say', payload: { from, text } }`.
'use strict';

const client = Krmx.createClient({ logger: false });
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const $ = (id) => document.getElementById(id);

// After our own user is linked, the server has told us every user already here; presence
// changes from then on are news worth a line in the chat.
let synced = false;

function setStatus(text) {
  $('status').textContent = text;
}

function showLobby(visible) {
  $('lobby').hidden = !visible;
  $('join-form').hidden = visible;
  (visible ? $('text') : $('name')).focus();
}

function renderUsers() {
  const me = client.getUsername();
  $('users').replaceChildren(...client.getUsers().map(({ username, isLinked }) => {
    const item = document.createElement('li');
    item.className = isLinked ? 'linked' : 'unlinked';
    item.dataset.user = username;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = username === me ? `${username} (you)` : username;
    const state = document.createElement('span');
    state.className = 'state';
    state.textContent = isLinked ? 'here' : 'away';
    item.append(name, state);
    return item;
  }));
}

function addLine(className, ...parts) {
  const item = document.createElement('li');
  item.className = className;
  for (const part of parts) {
    item.append(part);
  }
  const list = $('messages');
  list.append(item);
  list.scrollTop = list.scrollHeight;
}

function addNotice(text) {
  addLine('notice', text);
}

// Users that joined since we synced and have not linked yet: their first link is no news.
const joining = new Set();

client.on('join', (username) => {
  if (synced) {
    joining.add(username);
    addNotice(`${username} joined`);
  }
  renderUsers();
});
client.on('link', (username) => {
  if (username === client.getUsername()) {
    synced = true;
  } else if (synced && !joining.delete(username)) {
    addNotice(`${username} is back`);
  }
  renderUsers();
});
client.on('unlink', (username) => {
  if (username !== client.getUsername() && synced) {
    addNotice(`${username} went away`);
  }
  renderUsers();
});
client.on('leave', (username) => {
  if (synced) {
    addNotice(`${username} left`);
  }
  renderUsers();
});
client.on('message', (message) => {
  if (message.type !== 'chat/say' || typeof message.payload !== 'object' || message.payload === null) {
    return;
  }
  const { from, text } = message.payload;
  const name = document.createElement('strong');
  name.textContent = `${from}: `;
  addLine(from === client.getUsername() ? 'said mine' : 'said', name, String(text));
});
client.on('close', () => {
  synced = false;
  showLobby(false);
  setStatus(`disconnected from ${url}`);
});

async function connect() {
  setStatus(`connecting to ${url}…`);
  try {
    await client.connect(url);
    setStatus(`connected to ${url}`);
  } catch {
    setStatus(`could not connect to ${url}; is krmx serve running?`);
  }
}

$('join-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('error').textContent = '';
  if (client.getStatus() === 'closed') {
    await connect();
  }
  const name = $('name').value.trim();
  try {
    $('messages').replaceChildren();
    synced = false;
    joining.clear();
    await client.link(name);
    setStatus(`linked as ${name} on ${url}`);
    showLobby(true);
    renderUsers();
  } catch (error) {
    const hint = error.message.includes('version mismatch')
      ? ' (this page speaks Krmx 0.5: start krmx serve with --krmx-version 0.5)'
      : '';
    $('error').textContent = `${error.message}${hint}`;
  }
});

$('chat-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text');
  client.send({ type: 'chat/say', payload: { from: client.getUsername(), text: text.value } });
  text.value = '';
});

$('leave').addEventListener('click', async () => {
  await client.leave();
  synced = false;
  showLobby(false);
  setStatus(`connected to ${url}`);
});

connect();
