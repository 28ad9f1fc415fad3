// The browser tests' page. Every event of the client goes to the event log (#log) as one line:
// the event's name, then its argument (a username, a reason, or a message as JSON). The user
// list (#users) is the client's, by name: `alice linked`, `bob unlinked`.
'use strict';

const STORAGE_KEY = 'krmx-test-username';
const RECORDED = ['connect', 'accept', 'reject', 'join', 'link', 'unlink', 'leave', 'message', 'close'];

const client = Krmx.createClient({ logger: false });
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const byId = (id) => document.getElementById(id);

function render() {
  byId('status').textContent = client.getStatus();
  const users = client.getUsers().sort((a, b) => a.username.localeCompare(b.username));
  byId('users').replaceChildren(...users.map(({ username, isLinked }) => {
    const item = document.createElement('li');
    item.textContent = `${username} ${isLinked ? 'linked' : 'unlinked'}`;
    return item;
  }));
}

client.all((event, ...args) => {
  if (RECORDED.includes(event)) {
    const item = document.createElement('li');
    item.textContent = [event, ...args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg)))].join(' ');
    byId('log').append(item);
  }
  render();
});

async function link(username) {
  byId('error').textContent = '';
  try {
    await client.link(username);
    sessionStorage.setItem(STORAGE_KEY, username);
  } catch (error) {
    byId('error').textContent = error.message;
  }
  render();
}

byId('link-form').addEventListener('submit', (event) => {
  event.preventDefault();
  link(byId('name').value.trim());
});

byId('say-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = byId('text');
  client.send({ type: 'chat/say', payload: text.value });
  text.value = '';
});

(async () => {
  byId('url').textContent = url;
  try {
    await client.connect(url);
  } catch (error) {
    byId('error').textContent = error.message;
    render();
    return;
  }
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved) {
    await link(saved);
  }
  render();
})();
