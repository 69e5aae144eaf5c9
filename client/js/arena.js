// Arena browser SDK: a dependency-free ES module speaking the Arena client
// protocol, version 1 (subprotocol arena.v1.json). Every Arena node serves
// it at /sdk/arena.js, with TypeScript declarations at /sdk/arena.d.ts.
//
// It mirrors the Go SDK (package client): one WebSocket to an edge that
// survives being lost. When the connection drops, is cut as too slow
// (4010) or the node drains (a reconnect frame, then 1001), the client
// reconnects with exponential backoff and jitter, trying the edges the
// server suggested first, and subscribes again from each room's last
// position: missed messages are delivered, none twice (deduplicated by
// epoch and seq). A publish waiting for its ack is sent again with the
// same idempotency key, so it takes effect once. Close 4001 (bad or
// expired token) stops the client with an "error" event.
//
//   import { Arena } from '/sdk/arena.js';
//   const arena = await Arena.connectNearest(location.origin, { token });
//   const sub = await arena.subscribe('chat:lobby', {
//     onMessage: (m) => console.log(m.seq, m.data),
//   });
//   const ack = await arena.publish('chat:lobby', { text: 'hi' });
//
// JavaScript runs handlers on one thread, so there are no locks here: each
// WebSocket event is handled to the end before the next one.

/** The WebSocket subprotocol of the protocol version this SDK speaks. */
export const SUBPROTOCOL = 'arena.v1.json';

/** The SDK version, sent as the connect frame's name ("arena-js/VERSION"). */
export const VERSION = '1.0.0';

const ROOM_RE = /^[A-Za-z0-9:_\-.@/]{1,200}$/;
const RETRYABLE = new Set(['unavailable']);
const SUB_RETRYABLE = new Set(['unavailable', 'internal', 'rate_limited']);
// connLost rejects requests whose connection ended before the reply: the
// caller sends them again on the next connection.
const connLost = Symbol('connection lost');

const defaults = {
  name: 'arena-js/' + VERSION,
  connectTimeout: 10000,
  reconnectMin: 100,
  reconnectMax: 5000,
  keepAlive: 20000,
  maxBatch: 32 * 1024,
  probes: 3,
  probeTimeout: 2000,
};

/**
 * An error reported by the server (its code is one of PROTOCOL.md's:
 * bad_request, unauthorized, forbidden, not_subscribed, rate_limited,
 * too_large, unavailable, internal) or by the SDK itself ("closed",
 * "timeout", "aborted", "connect_failed").
 */
export class ArenaError extends Error {
  constructor(code, message, retryMs) {
    super(message || code);
    this.name = 'ArenaError';
    this.code = code;
    this.retryMs = retryMs || 0;
  }
}

// errorOf turns an error frame into an ArenaError.
function errorOf(f) {
  return new ArenaError(f.code || 'internal', f.message || f.code || 'error', f.retry_ms || 0);
}

/** Reports whether room is a valid room name. */
export function validRoom(room) {
  return typeof room === 'string' && ROOM_RE.test(room);
}

function checkRoom(room) {
  if (!validRoom(room)) {
    throw new ArenaError('bad_request', `bad room name ${JSON.stringify(room)}: 1 to 200 bytes of A-Z a-z 0-9 : _ - . @ /`);
  }
}

const utf8 = new TextEncoder();

/**
 * Splits one WebSocket message into frames: JSON objects separated by
 * '\n'. Lines that are empty or not JSON objects are skipped.
 */
export function parseFrames(text) {
  const out = [];
  if (typeof text !== 'string') return out;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    try {
      const f = JSON.parse(line);
      if (f && typeof f === 'object' && typeof f.op === 'string') out.push(f);
    } catch {
      // A frame we cannot read is dropped; the protocol never needs it.
    }
  }
  return out;
}

/**
 * Turns a node address into its WebSocket endpoint: http(s) becomes
 * ws(s), and an empty path becomes /v1/ws. Relative addresses resolve
 * against the page.
 */
export function wsURL(url) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const u = new URL(url, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new ArenaError('bad_request', `url ${url}: scheme must be ws, wss, http or https`);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/ws';
  return u.toString();
}

/** Turns a node address (http, https, ws or wss) into its HTTP base URL. */
export function httpURL(url) {
  const base = typeof location !== 'undefined' ? location.href : undefined;
  const u = new URL(url, base);
  if (u.protocol === 'ws:') u.protocol = 'http:';
  else if (u.protocol === 'wss:') u.protocol = 'https:';
  return u.origin;
}

/**
 * Lists the edges a node knows (GET /v1/edges) and measures the round trip
 * to each with a few GET /healthz requests (the first one, which opens the
 * TCP connection, is not counted). The result is sorted fastest first;
 * edges that did not answer come last with rtt Infinity.
 */
export async function measureEdges(seedURL, opts = {}) {
  const o = { ...defaults, ...opts };
  let edges = [];
  try {
    const resp = await fetchTimeout(httpURL(seedURL) + '/v1/edges', o.probeTimeout * 2, 'cors');
    if (resp.ok) {
      const body = await resp.json();
      edges = (body.edges || []).filter((e) => e && e.url);
    }
  } catch {
    // The seed is unreachable or refuses CORS: measure the seed alone.
  }
  if (edges.length === 0) edges = [{ node: '', region: '', url: httpURL(seedURL) }];
  const measured = await Promise.all(edges.map(async (e) => ({ ...e, rtt: await probe(e.url, o) })));
  measured.sort((a, b) => a.rtt - b.rtt);
  return measured;
}

// probe returns the best of o.probes timed GET /healthz (after one warm-up),
// in ms, or Infinity when the edge does not answer. no-cors: the response is
// opaque, but its timing is what counts and no CORS header is needed.
async function probe(url, o) {
  let best = Infinity;
  for (let i = 0; i <= o.probes; i++) {
    const t0 = performance.now();
    try {
      await fetchTimeout(httpURL(url) + '/healthz?probe=' + i, o.probeTimeout, 'no-cors');
    } catch {
      return Infinity;
    }
    const d = performance.now() - t0;
    if (i > 0 && d < best) best = d;
  }
  return best;
}

async function fetchTimeout(url, ms, mode) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), ms);
  try {
    return await fetch(url, { mode, cache: 'no-store', signal: ac.signal });
  } finally {
    clearTimeout(t);
  }
}

// Emitter is a tiny event emitter: on returns a function that removes the
// handler. A throwing handler does not stop the others.
class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(type, fn) {
    if (!this._handlers.has(type)) this._handlers.set(type, new Set());
    this._handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    const hs = this._handlers.get(type);
    if (hs) hs.delete(fn);
  }

  _has(type) {
    const hs = this._handlers.get(type);
    return !!hs && hs.size > 0;
  }

  _emit(type, value) {
    const hs = this._handlers.get(type);
    if (!hs) return;
    for (const fn of [...hs]) {
      try {
        fn(value);
      } catch (e) {
        if (type !== 'error') this._emit('error', e);
        else setTimeout(() => { throw e; });
      }
    }
  }
}

/**
 * A subscription to one room. Its messages arrive in order, each once,
 * across reconnections. Events: "message" (a msg: room, epoch, seq, ts,
 * from, key, data), "reset" ({from, to}: the messages between were lost),
 * "join" and "leave" ({room, user}), "receipt" ({room, seq, user, status}),
 * "error" (an ArenaError when the server refuses the subscription) and
 * "close". Messages that arrive before the first "message" handler is
 * added wait for it.
 */
export class Subscription extends Emitter {
  constructor(arena, room, opts) {
    super();
    this.arena = arena;
    this.room = room;
    this.presence = !!opts.presence;
    /** The last message delivered, {epoch, seq}; null until one is known. */
    this.position = opts.since ? { epoch: opts.since.epoch, seq: opts.since.seq } : null;
    /** The room's head at the last subscribed reply. */
    this.head = null;
    this.closed = false;
    this.error = null;
    this._state = 'resync'; // resync | live | closed
    this._reqId = 0; // the sub request in flight; 0 if none
    this._conn = 0; // the connection generation the sub was last sent on
    this._waiting = []; // messages waiting for the first message handler
    this._ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this._ready.catch(() => {});
    this._isReady = false;
    if (opts.onMessage) this.on('message', opts.onMessage);
    if (opts.onReset) this.on('reset', opts.onReset);
    if (opts.onEvent) {
      for (const t of ['join', 'leave', 'receipt']) this.on(t, (e) => opts.onEvent({ type: t, ...e }));
    }
  }

  on(type, fn) {
    const off = super.on(type, fn);
    if (type === 'message' && this._waiting.length > 0) {
      const waiting = this._waiting;
      this._waiting = [];
      for (const m of waiting) this._emit('message', m);
    }
    return off;
  }

  /** Ends the subscription, here and on the server. Idempotent. */
  async unsubscribe() {
    if (this.closed) return;
    const a = this.arena;
    const onServer = this._conn === a._gen && a._connected;
    a._subs.delete(this.room);
    this._close(null);
    if (!onServer) return;
    try {
      await a._once((id) => ({ op: 'unsub', id, room: this.room }), 'unsubscribed');
    } catch (e) {
      if (e === connLost || (e instanceof ArenaError && (e.code === 'not_subscribed' || e.code === 'closed'))) return;
      throw e;
    }
  }

  /** Tells the server this user got message seq (a delivery receipt). */
  markDelivered(seq) {
    return this.arena.markDelivered(this.room, seq);
  }

  /** Tells the server this user read every message up to seq. */
  markRead(seq) {
    return this.arena.markRead(this.room, seq);
  }

  _deliver(m) {
    if (this._has('message')) this._emit('message', m);
    else this._waiting.push(m);
  }

  // _onMsg takes a message of the room: delivers the one after position,
  // drops those delivered already, and reports true when messages are
  // missing on a live subscription (the caller subscribes again from
  // position).
  _onMsg(f) {
    if (this._state === 'closed') return false;
    const p = { epoch: f.epoch, seq: f.seq };
    const pos = this.position;
    if (pos) {
      if (p.epoch < pos.epoch) return false; // from a sequence the room has left
      if (p.epoch === pos.epoch && p.seq <= pos.seq) return false; // delivered already
      if (p.epoch === pos.epoch && p.seq > pos.seq + 1) {
        // While resubscribing these are leftovers of the previous
        // subscription and the replay brings the missing ones; on a live
        // subscription the server skipped some, so ask for them.
        if (this._state === 'live') {
          this._state = 'resync';
          this._reqId = 0;
          return true;
        }
        return false;
      }
      if (p.epoch > pos.epoch) this._emit('reset', { room: this.room, from: pos, to: p });
    }
    this.position = p;
    const m = { room: this.room, epoch: f.epoch, seq: f.seq, ts: f.ts, from: f.from, data: f.data };
    if (f.key) m.key = f.key;
    this._deliver(m);
    return false;
  }

  // _onSubscribed handles a subscribed reply: a reset moves the position to
  // just before the oldest retained message.
  _onSubscribed(f) {
    this.head = f.head || null;
    const o = f.oldest;
    const pos = this.position;
    if (f.reset && o && o.epoch) {
      // Nothing is lost if what was delivered reaches the oldest retained
      // message already.
      if (!(pos && pos.epoch === o.epoch && pos.seq + 1 >= o.seq)) {
        this.position = { epoch: o.epoch, seq: Math.max(o.seq, 1) - 1 };
        this._emit('reset', { room: this.room, from: pos, to: { epoch: o.epoch, seq: o.seq } });
      }
    } else if (!pos && f.head && f.head.epoch) {
      this.position = { epoch: f.head.epoch, seq: f.head.seq };
    }
    if (this._state === 'resync') this._state = 'live';
    if (!this._isReady) {
      this._isReady = true;
      this._resolveReady(this);
    }
  }

  _close(err) {
    if (this.closed) return;
    this.closed = true;
    this._state = 'closed';
    this.error = err;
    if (err) {
      this._rejectReady(err);
      this._emit('error', err);
    } else {
      this._rejectReady(new ArenaError('closed', 'subscription closed'));
    }
    this._emit('close', err);
  }
}

/**
 * A client of an Arena cluster: one WebSocket to an edge, replaced when it
 * is lost. Create it with Arena.connect or Arena.connectNearest. Events:
 * "connect" (info), "disconnect" ({url, code, reason}), "reconnect" ({reason,
 * edges}: the server asked to move), "receipt" (receipts of rooms not
 * subscribed), "error" (ArenaError) and "close" (the error that stopped
 * the client, or null after close()).
 */
export class Arena extends Emitter {
  constructor(urls, opts = {}) {
    super();
    this.opts = { ...defaults, ...opts };
    if (this.opts.reconnectMax < this.opts.reconnectMin) this.opts.reconnectMax = this.opts.reconnectMin;
    /** WebSocket URLs of the known edges, best first. */
    this.edges = [...new Set(urls.map(wsURL))];
    /** The current connection (url, session, user, node, region, expires); null while reconnecting. */
    this.info = null;
    /** Edges with their measured round trip, when made by connectNearest. */
    this.measured = null;
    this.closed = false;
    this.error = null;
    this._WS = this.opts.WebSocket || globalThis.WebSocket;
    this._token = this.opts.token;
    this._nearest = false;
    this._ws = null;
    this._gen = 0; // connection generation, bumped by every new connection
    this._connected = false;
    this._lastId = 0;
    this._keyPrefix = randomPrefix();
    this._keySeq = 0;
    this._pending = new Map(); // id -> {resolve, reject}
    this._subs = new Map(); // room -> Subscription
    this._outbox = [];
    this._flushQueued = false;
    this._redirect = []; // edges from the last reconnect frame
    this._timers = new Set(); // the end functions of pending _sleep calls
    this._keepTimer = null;
    this._lastRead = 0;
    this._newReady();
  }

  /**
   * Connects to the node at url (ws(s):// or http(s)://; the path /v1/ws
   * is added when absent) and resolves once the connect handshake is done.
   * opts.edges lists more edges to fall back to. The first connection is
   * tried once per edge; later ones are retried forever with backoff.
   */
  static async connect(url, opts = {}) {
    const a = new Arena([url, ...(opts.edges || [])], opts);
    await a._first();
    return a;
  }

  /**
   * Lists the cluster's edges from the node at seedURL, measures the round
   * trip to each (see measureEdges) and connects to the fastest. When that
   * connection is lost, or the node asks clients to move, the client goes
   * to the next fastest edge.
   */
  static async connectNearest(seedURL, opts = {}) {
    const measured = await measureEdges(seedURL, opts);
    const a = new Arena(measured.map((e) => e.url), opts);
    a.measured = measured;
    a._nearest = true;
    await a._first();
    return a;
  }

  /** True while a connection is established. */
  get connected() {
    return this._connected;
  }

  /**
   * Subscribes to room and resolves once the server confirms. opts.since
   * ({epoch, seq}) resumes after that position; opts.presence also asks
   * for joins, leaves and receipts; opts.onMessage, opts.onReset and
   * opts.onEvent are attached before any message can arrive. Rejects with
   * an ArenaError when the server refuses it (forbidden, ...).
   */
  async subscribe(room, opts = {}) {
    checkRoom(room);
    this._checkOpen();
    if (opts.since && !opts.since.epoch) throw new ArenaError('bad_request', 'since needs an epoch');
    if (this._subs.has(room)) throw new ArenaError('bad_request', `already subscribed to ${room}`);
    const sub = new Subscription(this, room, opts);
    this._subs.set(room, sub);
    this._resync(sub);
    if (opts.signal) {
      const abort = () => {
        if (!sub._isReady) sub.unsubscribe().catch(() => {});
      };
      if (opts.signal.aborted) abort();
      else opts.signal.addEventListener('abort', abort, { once: true });
    }
    return sub._ready;
  }

  /**
   * Publishes data (any JSON value) to room and resolves with the ack
   * ({room, epoch, seq, ts, dup}) once it is durable. It is sent again with
   * the same idempotency key (opts.key, or a fresh one) when the
   * connection is lost or the server answers unavailable, until
   * opts.signal aborts or opts.timeout (ms) passes, so it takes effect
   * once. opts.retryRateLimited waits out rate_limited instead of
   * rejecting.
   */
  async publish(room, data, opts = {}) {
    checkRoom(room);
    const key = opts.key === undefined || opts.key === '' ? this._newKey() : opts.key;
    const klen = utf8.encode(String(key)).length;
    if (typeof key !== 'string' || klen < 1 || klen > 64) throw new ArenaError('bad_request', 'key must be 1 to 64 bytes');
    if (data === undefined) throw new ArenaError('bad_request', 'publish needs data');
    JSON.stringify(data); // fails now, not on the wire, for cyclic data
    const f = await this._call((id) => ({ op: 'pub', id, room, key, data }), 'ack', opts);
    return { room, epoch: f.epoch, seq: f.seq, ts: f.ts, dup: !!f.dup, key };
  }

  /**
   * Returns messages of room's current epoch, oldest first: {epoch, msgs}.
   * opts.before or opts.after (a seq; after: 0 means from the oldest
   * retained), opts.limit (1 to 1000, default 50). With neither, the newest.
   */
  async history(room, opts = {}) {
    checkRoom(room);
    const f = { op: 'history', room };
    if (opts.before !== undefined && opts.before !== null) f.before = opts.before;
    if (opts.after !== undefined && opts.after !== null) f.after = opts.after;
    if (opts.limit) f.limit = opts.limit;
    const r = await this._call((id) => ({ ...f, id }), 'history', opts);
    return { epoch: r.epoch || 0, msgs: r.msgs || [] };
  }

  /**
   * Returns the users present in room ([{user, conns}]): users with a
   * subscribed connection anywhere in the cluster. Rejects with an
   * ArenaError "unavailable" when the node does not offer presence (older
   * servers) or the room's home is unreachable; not retried, so a page can
   * show that presence is not available.
   */
  async presence(room, opts = {}) {
    checkRoom(room);
    const r = await this._call((id) => ({ op: 'presence', id, room }), 'presence', { ...opts, retry: false });
    return r.members || [];
  }

  /**
   * Lists the rooms this user has read positions in, by room name:
   * [{room, head, read, unread}] (positions are {epoch, seq}; unread counts
   * the messages after read up to head). Positions come from markRead and
   * markDelivered on any connection of the user.
   */
  async rooms(opts = {}) {
    const r = await this._call((id) => ({ op: 'rooms', id }), 'rooms', opts);
    return r.rooms || [];
  }

  /** Marks message seq of room delivered to this user (no reply). */
  markDelivered(room, seq) {
    return this._mark('recv', room, seq);
  }

  /** Marks every message of room up to seq read by this user (no reply). */
  markRead(room, seq) {
    return this._mark('read', room, seq);
  }

  /** Measures the round trip of a ping frame to the edge and back, in ms. */
  async ping(opts = {}) {
    let t0 = 0;
    await this._call((id) => {
      t0 = performance.now();
      return { op: 'ping', id };
    }, 'pong', opts);
    return performance.now() - t0;
  }

  /**
   * Gives the server a fresh token before the current one expires, and
   * keeps it for later reconnections. Resolves with the new expiry (a
   * Date, or null when it does not expire).
   */
  async refresh(token, opts = {}) {
    if (!token) throw new ArenaError('bad_request', 'refresh needs a token');
    const r = await this._call((id) => ({ op: 'refresh', id, token }), 'refreshed', opts);
    this._token = token;
    return r.expires ? new Date(r.expires) : null;
  }

  /** Closes the connection and ends every subscription. Idempotent. */
  close() {
    this._stop(null);
  }

  // ---- connection management ----

  _checkOpen() {
    if (this.closed) throw this._closedError();
  }

  _closedError() {
    return this.error || new ArenaError('closed', 'client closed');
  }

  _newReady() {
    this._ready = new Promise((resolve, reject) => {
      this._resolveReadyConn = resolve;
      this._rejectReadyConn = reject;
    });
    this._ready.catch(() => {});
  }

  // _first makes the first connection: each edge once, in order.
  async _first() {
    let last = null;
    for (const u of this.edges) {
      if (this.closed) break;
      try {
        await this._dial(u);
        return;
      } catch (e) {
        last = e;
        if (e instanceof ArenaError && e.code === 'unauthorized') break;
      }
    }
    const err = last instanceof ArenaError ? last : new ArenaError('connect_failed', `could not connect: ${last && last.message}`);
    this._stop(err, false);
    throw err;
  }

  // _dial opens a connection to u and completes the connect handshake; on
  // success it adopts the connection before resolving, so no frame is
  // missed between the handshake and the session's handlers.
  _dial(u) {
    return new Promise((resolve, reject) => {
      let ws;
      try {
        ws = new this._WS(u, SUBPROTOCOL);
      } catch (e) {
        reject(new ArenaError('connect_failed', `open ${u}: ${e.message}`));
        return;
      }
      const id = this._newId();
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close();
        } catch {
          // already closed
        }
        reject(err);
      };
      const timer = setTimeout(() => finish(new ArenaError('timeout', `connect to ${u} timed out`)), this.opts.connectTimeout);
      ws.onopen = async () => {
        let token;
        try {
          token = typeof this._token === 'function' ? await this._token() : this._token;
        } catch (e) {
          finish(new ArenaError('unauthorized', `token: ${e.message}`));
          return;
        }
        if (done) return;
        const f = { op: 'connect', id, name: this.opts.name };
        if (token) f.token = token;
        ws.send(JSON.stringify(f));
      };
      ws.onmessage = (ev) => {
        const frames = parseFrames(ev.data);
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i];
          if (f.op === 'connected' && f.id === id) {
            done = true;
            clearTimeout(timer);
            if (this.closed) {
              ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
              ws.close(1000, 'client closed');
              reject(this._closedError());
              return;
            }
            const info = { url: u, session: f.session, user: f.user, node: f.node, region: f.region, expires: f.expires ? new Date(f.expires) : null };
            this._adopt(ws, info, frames.slice(i + 1));
            resolve(info);
            return;
          }
          if (f.op === 'error' && (f.id === undefined || f.id === id)) {
            finish(errorOf(f));
            return;
          }
        }
      };
      ws.onerror = () => {}; // onclose follows with the code
      ws.onclose = (ev) => finish(closeError(ev, u));
    });
  }

  // _adopt makes ws the current connection: it subscribes every room again
  // from its position and wakes the calls waiting for a connection.
  _adopt(ws, info, rest) {
    this._ws = ws;
    this._gen++;
    const gen = this._gen;
    this._connected = true;
    this.info = info;
    this._redirect = [];
    this._lastRead = Date.now();
    ws.onmessage = (ev) => {
      if (this._gen !== gen) return;
      this._lastRead = Date.now();
      for (const f of parseFrames(ev.data)) this._dispatch(f);
    };
    ws.onclose = (ev) => {
      if (this._gen === gen) this._lost(ev);
    };
    ws.onerror = () => {};
    this._startKeepAlive(gen);
    for (const f of rest) this._dispatch(f);
    this._emit('connect', info);
    for (const sub of this._subs.values()) this._resync(sub);
    this._resolveReadyConn();
    if (this._nearest) this._learnEdges(info.url);
  }

  // _learnEdges adds edges the new node knows to the end of the list (for
  // failover), without measuring them.
  async _learnEdges(u) {
    try {
      const resp = await fetchTimeout(httpURL(u) + '/v1/edges', this.opts.probeTimeout * 2, 'cors');
      if (!resp.ok) return;
      const body = await resp.json();
      for (const e of body.edges || []) {
        if (!e || !e.url) continue;
        const w = wsURL(e.url);
        if (!this.edges.includes(w)) this.edges.push(w);
      }
    } catch {
      // Best effort: the list we have still works.
    }
  }

  // _lost handles the end of the current connection.
  _lost(ev) {
    const url = this.info ? this.info.url : '';
    this._connected = false;
    this._ws = null;
    this.info = null;
    this._gen++; // replies of the old connection can no longer arrive
    this._stopKeepAlive();
    this._outbox = [];
    this._newReady();
    const pending = this._pending;
    this._pending = new Map();
    for (const p of pending.values()) p.reject(connLost);
    for (const sub of this._subs.values()) {
      if (sub._state === 'live') sub._state = 'resync';
      sub._reqId = 0;
    }
    this._emit('disconnect', { url, code: ev.code, reason: ev.reason });
    if (this.closed) return;
    if (ev.code === 4001) {
      this._stop(new ArenaError('unauthorized', ev.reason || 'token refused or expired'));
      return;
    }
    if (ev.code === 1008) this._emit('error', new ArenaError('forbidden', `${url} closed the connection: ${ev.reason || 'policy'}`));
    this._reconnect(this._order(url));
  }

  // _order is where to reconnect after losing url: the edges the server
  // suggested, then the known edges after url (the next fastest first),
  // and url itself last.
  _order(url) {
    const out = [];
    const add = (u) => {
      try {
        const w = wsURL(u);
        if (!out.includes(w)) out.push(w);
      } catch {
        // not a URL
      }
    };
    for (const e of this._redirect) if (e !== url && safeWS(e) !== url) add(e);
    const i = this.edges.indexOf(url);
    for (let k = 1; k <= this.edges.length; k++) {
      const e = this.edges[(Math.max(i, 0) + k) % this.edges.length];
      if (e !== url) add(e);
    }
    if (url) add(url);
    if (out.length === 0) add(this.edges[0]);
    return out;
  }

  async _reconnect(urls) {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        await this._sleep(this._backoff(attempt));
      } catch {
        return; // closed
      }
      const u = urls[attempt % urls.length];
      try {
        await this._dial(u);
        return;
      } catch (e) {
        if (this.closed) return;
        if (e instanceof ArenaError && e.code === 'unauthorized') {
          this._stop(e);
          return;
        }
      }
    }
  }

  // _backoff is the delay before reconnection attempt n (from 0): a random
  // fraction of reconnectMin first, so that the clients of a draining node
  // do not all arrive at once, then doubling up to reconnectMax, each with
  // jitter between half and all of it.
  _backoff(n) {
    const lo = this.opts.reconnectMin;
    const hi = this.opts.reconnectMax;
    if (n === 0) return Math.random() * lo;
    const d = Math.min(hi, lo * 2 ** Math.min(n, 30));
    return d / 2 + Math.random() * (d / 2);
  }

  // _sleep waits ms; it rejects when signal aborts or the client closes.
  _sleep(ms, signal) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(this._closedError());
        return;
      }
      if (signal && signal.aborted) {
        reject(abortError(signal));
        return;
      }
      let t = null;
      const onAbort = () => end(abortError(signal));
      const end = (err) => {
        clearTimeout(t);
        this._timers.delete(end);
        if (signal) signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      t = setTimeout(() => end(null), ms);
      this._timers.add(end);
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  _startKeepAlive(gen) {
    this._stopKeepAlive();
    const ka = this.opts.keepAlive;
    if (!(ka > 0)) return;
    this._keepTimer = setInterval(() => {
      if (this._gen !== gen || !this._ws) return;
      const idle = Date.now() - this._lastRead;
      if (idle >= 2 * ka) {
        // Silent for two periods: as good as gone.
        this._ws.close(4000, 'silent');
        this._lost({ code: 1006, reason: 'connection silent' });
      } else if (idle >= ka) {
        const id = this._newId();
        this._pending.set(id, { resolve() {}, reject() {} });
        this._send({ op: 'ping', id });
      }
    }, ka);
  }

  _stopKeepAlive() {
    if (this._keepTimer !== null) clearInterval(this._keepTimer);
    this._keepTimer = null;
  }

  // _stop closes the client for good: err is why (null for close()).
  _stop(err, emit = true) {
    if (this.closed) return;
    this.closed = true;
    this.error = err;
    this._stopKeepAlive();
    const ws = this._ws;
    this._ws = null;
    this._connected = false;
    this._gen++;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'client closed');
      } catch {
        // already closed
      }
    }
    const closedErr = this._closedError();
    for (const end of [...this._timers]) end(closedErr);
    this._rejectReadyConn(closedErr);
    const pending = this._pending;
    this._pending = new Map();
    for (const p of pending.values()) p.reject(closedErr);
    for (const sub of [...this._subs.values()]) sub._close(err);
    this._subs.clear();
    if (emit && err) this._emit('error', err);
    if (emit) this._emit('close', err);
  }

  // ---- frames ----

  _newId() {
    return ++this._lastId;
  }

  _newKey() {
    this._keySeq++;
    return this._keyPrefix + this._keySeq.toString(36);
  }

  // _send queues a frame for the current connection; frames queued in the
  // same turn of the event loop go out as one WebSocket message
  // ('\n'-separated, up to maxBatch bytes). False when not connected.
  _send(frame) {
    if (!this._connected || !this._ws) return false;
    this._outbox.push(JSON.stringify(frame));
    if (!this._flushQueued) {
      this._flushQueued = true;
      queueMicrotask(() => this._flush());
    }
    return true;
  }

  _flush() {
    this._flushQueued = false;
    const ws = this._ws;
    const out = this._outbox;
    this._outbox = [];
    if (!ws || ws.readyState !== 1) return; // the close handler fails the requests
    let batch = '';
    for (const line of out) {
      if (batch && batch.length + 1 + line.length > this.opts.maxBatch) {
        ws.send(batch);
        batch = '';
      }
      batch = batch ? batch + '\n' + line : line;
    }
    if (batch) ws.send(batch);
  }

  _dispatch(f) {
    switch (f.op) {
      case 'msg': {
        const sub = this._subs.get(f.room);
        if (!sub || !f.epoch || !f.seq) return;
        if (sub._onMsg(f)) this._resync(sub);
        return;
      }
      case 'join':
      case 'leave':
      case 'receipt': {
        const ev = { room: f.room, user: f.user };
        if (f.op === 'receipt') {
          ev.seq = f.seq;
          ev.status = f.status;
        }
        const sub = this._subs.get(f.room);
        if (sub) sub._emit(f.op, ev);
        else if (f.op === 'receipt') this._emit('receipt', ev);
        return;
      }
      case 'reconnect':
        this._redirect = Array.isArray(f.edges) ? f.edges : [];
        this._emit('reconnect', { reason: f.reason, edges: this._redirect });
        return;
      default:
        if (typeof f.id === 'number' && this._pending.has(f.id)) {
          const p = this._pending.get(f.id);
          this._pending.delete(f.id);
          p.resolve(f);
          return;
        }
        if (f.op === 'error') this._emit('error', errorOf(f));
    }
  }

  // _resync (re)subscribes sub on the current connection from its
  // position, unless it is subscribed or being subscribed there already.
  _resync(sub) {
    if (!this._connected || sub._state === 'closed') return;
    if (sub._conn === this._gen && (sub._state === 'live' || sub._reqId !== 0)) return;
    const id = this._newId();
    sub._state = 'resync';
    sub._reqId = id;
    sub._conn = this._gen;
    const f = { op: 'sub', id, room: sub.room };
    if (sub.position && sub.position.epoch) f.since = { epoch: sub.position.epoch, seq: sub.position.seq };
    if (sub.presence) f.presence = true;
    this._pending.set(id, {
      resolve: (r) => this._onSubscribed(sub, id, r),
      reject: () => {
        if (sub._reqId === id) sub._reqId = 0;
      },
    });
    this._send(f);
  }

  _onSubscribed(sub, id, f) {
    if (sub._reqId !== id || sub._state === 'closed') return;
    sub._reqId = 0;
    if (f.op === 'subscribed') {
      sub._onSubscribed(f);
      return;
    }
    const err = f.op === 'error' ? errorOf(f) : new ArenaError('internal', `unexpected ${f.op} reply to sub`);
    if (SUB_RETRYABLE.has(err.code)) {
      const gen = this._gen;
      this._sleep(this._backoff(1)).then(() => {
        if (this._gen === gen && sub._state !== 'closed') {
          sub._conn = 0;
          this._resync(sub);
        }
      }, () => {});
      return;
    }
    this._subs.delete(sub.room);
    sub._close(err);
  }

  // _once sends one request on the current connection and waits for its
  // reply: rejects with connLost when the connection ends first.
  _once(build, want, signal) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(this._closedError());
        return;
      }
      const id = this._newId();
      let onAbort = null;
      const cleanup = () => {
        if (onAbort) signal.removeEventListener('abort', onAbort);
      };
      this._pending.set(id, {
        resolve: (f) => {
          cleanup();
          if (f.op === want) resolve(f);
          else if (f.op === 'error') reject(errorOf(f));
          else reject(new ArenaError('internal', `unexpected ${f.op} reply, want ${want}`));
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      });
      if (!this._send(build(id))) {
        this._pending.delete(id);
        reject(connLost);
        return;
      }
      if (signal) {
        onAbort = () => {
          this._pending.delete(id);
          reject(abortError(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
  }

  // _call sends a request and waits for its reply, sending it again on the
  // next connection when the connection is lost, and after a backoff when
  // the server answers unavailable (unless opts.retry is false), until
  // opts.signal aborts or opts.timeout passes.
  async _call(build, want, opts = {}) {
    const { signal, done } = withTimeout(opts.signal, opts.timeout);
    try {
      for (let attempt = 1; ;) {
        if (signal && signal.aborted) throw abortError(signal);
        if (this.closed) throw this._closedError();
        if (!this._connected) {
          await raceAbort(this._ready, signal);
          continue;
        }
        try {
          return await this._once(build, want, signal);
        } catch (e) {
          if (e === connLost) continue;
          if (!(e instanceof ArenaError)) throw e;
          if (RETRYABLE.has(e.code) && opts.retry !== false) {
            await this._sleep(this._backoff(attempt++), signal);
            continue;
          }
          if (e.code === 'rate_limited' && opts.retryRateLimited) {
            await this._sleep(e.retryMs || this._backoff(1), signal);
            continue;
          }
          throw e;
        }
      }
    } finally {
      done();
    }
  }

  _mark(op, room, seq) {
    checkRoom(room);
    if (!Number.isInteger(seq) || seq < 1) throw new ArenaError('bad_request', `${op} needs a seq`);
    this._checkOpen();
    return this._send({ op, room, seq });
  }
}

function safeWS(u) {
  try {
    return wsURL(u);
  } catch {
    return '';
  }
}

function closeError(ev, u) {
  if (ev.code === 4001) return new ArenaError('unauthorized', ev.reason || 'token refused');
  const why = ev.reason ? `${ev.code} ${ev.reason}` : `${ev.code}`;
  return new ArenaError('connect_failed', `connection to ${u} closed (${why})`);
}

function abortError(signal) {
  const r = signal && signal.reason;
  if (r instanceof ArenaError) return r;
  return new ArenaError('aborted', r && r.message ? r.message : 'aborted');
}

// withTimeout combines signal and a timeout in ms into one signal; done
// releases the timer.
function withTimeout(signal, ms) {
  if (!ms) return { signal, done() {} };
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(new ArenaError('timeout', `no answer within ${ms} ms`)), ms);
  const onAbort = () => ac.abort(signal.reason);
  if (signal) {
    if (signal.aborted) ac.abort(signal.reason);
    else signal.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: ac.signal,
    done() {
      clearTimeout(t);
      if (signal) signal.removeEventListener('abort', onAbort);
    },
  };
}

function raceAbort(p, signal) {
  if (!signal) return p;
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortError(signal));
      return;
    }
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then((v) => {
      signal.removeEventListener('abort', onAbort);
      resolve(v);
    }, (e) => {
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
  });
}

// randomPrefix is a random per-client prefix of generated idempotency
// keys: keys are prefix + a counter, unique without a draw per message.
function randomPrefix() {
  const b = new Uint8Array(9);
  globalThis.crypto.getRandomValues(b);
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '-';
}

export default Arena;
