// The Arena demo chat: rooms, messages with their delivery latency, and
// the edge the page is connected to. It uses only the public SDK served by
// every node at /sdk/arena.js.
//
// Query parameters: edge (connect to this node instead of the nearest),
// token (a client token; not needed with dev access), room (comma-separated
// rooms to join; default chat:lobby), name (the name shown to others).
import { Arena, measureEdges, wsURL } from '/sdk/arena.js';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const maxShown = 500;

const state = {
  arena: null,
  rooms: new Map(), // room -> {sub, items: [], unread}
  current: '',
  edges: [],
  mine: new Set(), // "room#seq" of the messages this page published
};
window.arenaDemo = state;

const nameInput = $('name');
nameInput.value = params.get('name') || localStorage.getItem('arena.name') || 'guest-' + Math.random().toString(36).slice(2, 6);
nameInput.addEventListener('change', () => localStorage.setItem('arena.name', nameInput.value));

function log(text) {
  const li = document.createElement('li');
  li.textContent = new Date().toLocaleTimeString() + ' ' + text;
  $('log').prepend(li);
  while ($('log').children.length > 50) $('log').lastChild.remove();
}

function setStatus(kind, text) {
  $('dot').className = 'dot ' + kind;
  $('conn').textContent = text;
  document.body.dataset.state = kind === 'on' ? 'connected' : kind === 'wait' ? 'connecting' : 'disconnected';
}

function showConnected(info) {
  setStatus('on', '');
  const conn = $('conn');
  conn.textContent = 'connected to ';
  const b = document.createElement('b');
  b.id = 'node';
  b.textContent = info.node;
  conn.append(b, ' in region ');
  const r = document.createElement('b');
  r.id = 'region';
  r.textContent = info.region;
  conn.append(r, ' as ' + info.user + ' (' + info.url + ')');
  document.body.dataset.node = info.node;
  document.body.dataset.region = info.region;
  renderEdges();
}

function renderEdges() {
  const ul = $('edges');
  ul.replaceChildren();
  const cur = state.arena && state.arena.info ? state.arena.info.url : '';
  for (const e of state.edges) {
    const li = document.createElement('li');
    if (wsURL(e.url) === cur) li.className = 'current';
    const name = document.createElement('span');
    name.textContent = (e.node || e.url) + (e.region ? ' · ' + e.region : '');
    const rtt = document.createElement('span');
    rtt.textContent = Number.isFinite(e.rtt) ? e.rtt.toFixed(1) + ' ms' : 'down';
    li.append(name, rtt);
    ul.append(li);
  }
}

function renderRooms() {
  const ul = $('rooms');
  ul.replaceChildren();
  for (const [room, r] of state.rooms) {
    const li = document.createElement('li');
    li.dataset.room = room;
    if (room === state.current) li.className = 'active';
    const name = document.createElement('span');
    name.textContent = room;
    li.append(name);
    if (r.unread > 0) {
      const u = document.createElement('span');
      u.className = 'unread';
      u.textContent = String(r.unread);
      li.append(u);
    }
    li.addEventListener('click', () => show(room));
    ul.append(li);
  }
}

// item turns a message into what the page shows, measuring its delivery
// latency from the timestamp its publisher embedded (same clock when both
// pages run on one machine; otherwise it includes the clocks' skew).
function item(m) {
  const d = m.data;
  const text = d && typeof d === 'object' && typeof d.text === 'string' ? d.text : JSON.stringify(d);
  const who = d && typeof d === 'object' && typeof d.name === 'string' ? d.name : m.from;
  const latency = d && typeof d === 'object' && typeof d.sent === 'number' ? Date.now() - d.sent : null;
  const mine = state.mine.has(m.room + '#' + m.seq) || (!!m.key && state.mine.has('key:' + m.key));
  return { kind: 'msg', seq: m.seq, epoch: m.epoch, who, text, latency, mine, delivered: new Set(), read: new Set(), el: null };
}

// receiptText says who got or read one of this page's messages.
function receiptText(it) {
  if (it.read.size > 0) return '✓✓ read by ' + [...it.read].sort().join(', ');
  if (it.delivered.size > 0) return '✓ delivered to ' + it.delivered.size;
  return '';
}

function renderItem(it) {
  const li = document.createElement('li');
  it.el = li;
  if (it.kind === 'notice') {
    li.className = 'notice';
    li.textContent = it.text;
    return li;
  }
  li.className = 'msg';
  li.dataset.seq = String(it.seq);
  const seq = document.createElement('span');
  seq.className = 'seq';
  seq.textContent = '#' + it.seq;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = it.who;
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = it.text;
  li.append(seq, who, text);
  if (it.mine) {
    const r = document.createElement('span');
    r.className = 'rcpt';
    r.textContent = receiptText(it);
    li.append(r);
  }
  if (it.latency !== null) {
    const lat = document.createElement('span');
    lat.className = 'lat';
    lat.dataset.ms = String(it.latency);
    lat.textContent = it.live ? it.latency + ' ms' : 'history';
    li.append(lat);
  }
  return li;
}

function add(room, it) {
  const r = state.rooms.get(room);
  if (!r) return;
  r.items.push(it);
  if (r.items.length > maxShown) r.items.shift();
  if (it.kind === 'msg' && it.live) markSeen(room, it.seq);
  if (room === state.current) {
    const ul = $('messages');
    const atBottom = ul.scrollHeight - ul.scrollTop - ul.clientHeight < 40;
    ul.append(renderItem(it));
    if (ul.children.length > maxShown) ul.firstChild.remove();
    if (atBottom) ul.scrollTop = ul.scrollHeight;
  } else if (it.kind === 'msg') {
    r.unread++;
    renderRooms();
  }
}

// markSeen sends a read receipt for messages of the room on screen and a
// delivery receipt for the others, at most every 250 ms per room.
function markSeen(room, seq) {
  const r = state.rooms.get(room);
  if (!r || !state.arena) return;
  r.seen = Math.max(r.seen || 0, seq);
  if (r.markTimer) return;
  r.markTimer = setTimeout(() => {
    r.markTimer = null;
    try {
      if (room === state.current && document.visibilityState !== 'hidden') state.arena.markRead(room, r.seen);
      else state.arena.markDelivered(room, r.seen);
    } catch (e) {
      log('receipt: ' + e.message);
    }
  }, 250);
}

// onReceipt records that e.user got or read this page's messages up to
// e.seq (receipts are cumulative).
function onReceipt(room, e) {
  const r = state.rooms.get(room);
  if (!r || (state.arena.info && e.user === state.arena.info.user)) return;
  for (const it of r.items) {
    if (it.kind !== 'msg' || !it.mine || it.seq > e.seq) continue;
    (e.status === 'read' ? it.read : it.delivered).add(e.user);
    const span = it.el && it.el.querySelector('.rcpt');
    if (span) span.textContent = receiptText(it);
  }
}

function show(room) {
  state.current = room;
  const r = state.rooms.get(room);
  r.unread = 0;
  const last = r.items.filter((it) => it.kind === 'msg').pop();
  if (last) markSeen(room, last.seq);
  $('title').textContent = room;
  $('messages').replaceChildren(...r.items.map(renderItem));
  $('messages').scrollTop = $('messages').scrollHeight;
  renderRooms();
  showPresence(room);
}

async function showPresence(room) {
  const el = $('presence');
  try {
    const members = await state.arena.presence(room);
    if (state.current !== room) return;
    el.textContent = members.map((m) => m.user + (m.conns > 1 ? ' ×' + m.conns : '')).join(', ') || 'nobody';
  } catch (e) {
    if (state.current !== room) return;
    el.textContent = e.code === 'unavailable' ? 'not offered by this node' : 'error: ' + e.message;
  }
}

// join loads the room's recent history, then subscribes from its last
// message, so nothing falls between the two.
async function join(room) {
  if (state.rooms.has(room)) {
    show(room);
    return;
  }
  const r = { sub: null, items: [], unread: 0 };
  state.rooms.set(room, r);
  show(room);
  const a = state.arena;
  let since;
  try {
    const h = await a.history(room, { limit: 50 });
    for (const m of h.msgs) add(room, { ...item(m), live: false });
    if (h.msgs.length > 0) since = { epoch: h.epoch, seq: h.msgs[h.msgs.length - 1].seq };
  } catch (e) {
    add(room, { kind: 'notice', text: 'history: ' + e.message });
  }
  try {
    r.sub = await a.subscribe(room, {
      since,
      presence: true,
      onMessage: (m) => add(room, { ...item(m), live: true }),
      onReset: (e) => add(room, { kind: 'notice', text: `messages lost: resumed at epoch ${e.to.epoch} seq ${e.to.seq}` }),
      onEvent: (e) => {
        if (e.type === 'receipt') {
          onReceipt(room, e);
          return;
        }
        log(`${e.user} ${e.type === 'join' ? 'joined' : 'left'} ${room}`);
        if (room === state.current) showPresence(room);
      },
    });
    r.sub.on('error', (e) => add(room, { kind: 'notice', text: 'subscription ended: ' + e.message }));
    log('joined ' + room);
  } catch (e) {
    add(room, { kind: 'notice', text: 'cannot join: ' + e.message });
  }
}

async function send(ev) {
  ev.preventDefault();
  const input = $('text');
  const text = input.value.trim();
  if (!text || !state.current) return;
  input.value = '';
  const t0 = performance.now();
  try {
    const room = state.current;
    const key = 'demo-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2);
    // The message may arrive before its ack: remember it as ours by key too.
    state.mine.add('key:' + key);
    const ack = await state.arena.publish(room, { text, name: nameInput.value, sent: Date.now() }, { key });
    state.mine.add(room + '#' + ack.seq);
    const r = state.rooms.get(room);
    const it = r && r.items.find((x) => x.kind === 'msg' && x.seq === ack.seq);
    if (it && !it.mine) {
      it.mine = true;
      const old = it.el;
      if (old) old.replaceWith(renderItem(it));
    }
    log(`ack #${ack.seq} in ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (e) {
    add(state.current, { kind: 'notice', text: 'not sent: ' + e.message });
  }
}

async function main() {
  setStatus('wait', 'measuring edges…');
  const opts = { token: params.get('token') || undefined };
  try {
    if (params.get('edge')) {
      // The given edge first; the others it lists to fail over to.
      state.edges = await measureEdges(params.get('edge'));
      state.arena = await Arena.connect(params.get('edge'), { ...opts, edges: state.edges.map((e) => e.url) });
    } else {
      state.arena = await Arena.connectNearest(location.origin, opts);
      state.edges = state.arena.measured;
    }
  } catch (e) {
    setStatus('', 'cannot connect: ' + e.message);
    return;
  }
  const a = state.arena;
  showConnected(a.info);
  a.on('connect', (info) => {
    showConnected(info);
    log('connected to ' + info.node + ' (' + info.region + ')');
  });
  a.on('disconnect', (e) => {
    setStatus('wait', 'reconnecting…');
    log(`lost ${e.url} (${e.code}${e.reason ? ' ' + e.reason : ''})`);
  });
  a.on('reconnect', (e) => log('asked to move (' + e.reason + ')'));
  a.on('error', (e) => log('error: ' + e.message));
  a.on('close', (e) => setStatus('', e ? 'stopped: ' + e.message : 'closed'));
  $('sendbtn').disabled = false;
  $('send').addEventListener('submit', send);
  $('join').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = ev.target.elements.room;
    const room = input.value.trim();
    input.value = '';
    if (room) join(room);
  });
  const rooms = (params.get('room') || 'chat:lobby').split(',').map((s) => s.trim()).filter(Boolean);
  for (const room of rooms) await join(room);
  show(rooms[0]);
  document.body.dataset.ready = 'true';
}

main();
