// The Arena live dashboard: polls GET /v1/stats of every node listed by
// GET /v1/edges, turns the totals into rates, and plots them on canvases
// drawn by hand (no library, no external resources).
//
// Query parameters: interval (poll period in ms, default 1000), window
// (seconds shown, default 120).

const params = new URLSearchParams(location.search);
const interval = Math.max(100, Number(params.get('interval')) || 1000);
const windowMs = Math.max(10, Number(params.get('window')) || 120) * 1000;
const palette = ['#4fb3ff', '#5ad18b', '#f2b64c', '#ff6b6b', '#c792ea', '#7fdbca', '#f78c6c', '#82aaff'];
// Latency histograms, most telling first; any other arena_*_seconds
// histogram is used when none of these exists.
const latencyPrefs = [
  'arena_edge_delivery_latency_seconds',
  'arena_edge_delivery_seconds',
  'arena_edge_publish_latency_seconds',
  'arena_edge_publish_seconds',
  'arena_router_publish_seconds',
  'arena_wal_fsync_seconds',
];

const nodes = new Map(); // url -> node state
let polls = 0;
let latencyKey = '';
const $ = (id) => document.getElementById(id);

function nodeFor(e) {
  let n = nodes.get(e.url);
  if (!n) {
    n = { node: e.node, region: e.region, url: e.url, color: nodes.size % palette.length, last: null, stats: null, down: false, pub: [], del: [], conn: [], lat: [], p50: null, p99: null, rate: { pub: null, del: null } };
    nodes.set(e.url, n);
  }
  return n;
}

async function getJSON(url) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), Math.max(2000, 2 * interval));
  try {
    const resp = await fetch(url, { cache: 'no-store', signal: ac.signal });
    if (!resp.ok) throw new Error('HTTP ' + resp.status);
    return await resp.json();
  } finally {
    clearTimeout(t);
  }
}

function chooseLatency(stats) {
  const keys = Object.keys((stats && stats.latency) || {});
  for (const k of latencyPrefs) if (keys.includes(k)) return k;
  return keys.sort()[0] || '';
}

// quantile estimates the q-quantile of cumulative buckets [{le, n}] with
// count observations, interpolating within the bucket (as Prometheus's
// histogram_quantile does).
function quantile(q, buckets, count) {
  if (!count || !buckets.length) return null;
  const rank = q * count;
  let lo = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.n >= rank) {
      const inside = b.n - below;
      return inside <= 0 ? b.le : lo + ((b.le - lo) * (rank - below)) / inside;
    }
    lo = b.le;
    below = b.n;
  }
  return buckets[buckets.length - 1].le;
}

// intervalLatency is the latency histogram of the observations made
// between two polls: the difference of the cumulative buckets.
function intervalLatency(prev, cur) {
  const c = cur && cur.latency && cur.latency[latencyKey];
  if (!c) return null;
  const p = prev && prev.latency && prev.latency[latencyKey];
  if (!p || p.buckets.length !== c.buckets.length || c.count < p.count) {
    return { p50: c.p50_ms, p99: c.p99_ms, n: c.count };
  }
  const n = c.count - p.count;
  if (n === 0) return null;
  const buckets = c.buckets.map((b, i) => ({ le: b.le, n: b.n - p.buckets[i].n }));
  return { p50: quantile(0.5, buckets, n) * 1000, p99: quantile(0.99, buckets, n) * 1000, n };
}

function push(series, t, v) {
  series.push([t, v]);
  while (series.length > 0 && series[0][0] < t - windowMs) series.shift();
}

async function poll() {
  const t = Date.now();
  try {
    const body = await getJSON('/v1/edges');
    for (const e of body.edges || []) if (e && e.url) nodeFor(e);
  } catch {
    // This node is gone or draining: keep polling the ones we know.
  }
  await Promise.all([...nodes.values()].map(async (n) => {
    let s;
    try {
      s = await getJSON(n.url + '/v1/stats');
    } catch {
      n.down = true;
      return;
    }
    n.down = false;
    n.node = s.node;
    n.region = s.region;
    if (!latencyKey) latencyKey = chooseLatency(s);
    const prev = n.last;
    n.stats = s;
    push(n.conn, t, s.connections);
    if (prev && s.time > prev.time && s.publishes_total >= prev.publishes_total && s.deliveries_total >= prev.deliveries_total) {
      const dt = (s.time - prev.time) / 1000;
      n.rate.pub = (s.publishes_total - prev.publishes_total) / dt;
      n.rate.del = (s.deliveries_total - prev.deliveries_total) / dt;
      push(n.pub, t, n.rate.pub);
      push(n.del, t, n.rate.del);
      const l = intervalLatency(prev, s);
      if (l) {
        n.p50 = l.p50;
        n.p99 = l.p99;
        push(n.lat, t, l.p99);
      }
    }
    n.last = s;
  }));
  polls++;
  render(t);
  document.body.dataset.polls = String(polls);
}

function fmt(v, digits) {
  return v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits);
}

function render(now) {
  const list = [...nodes.values()];
  const regions = [...new Set(list.map((n) => n.region))].sort();
  const tbody = $('nodes').tBodies[0];
  tbody.replaceChildren();
  for (const region of regions) {
    const head = document.createElement('tr');
    head.className = 'region';
    const td = document.createElement('td');
    td.colSpan = 9;
    td.textContent = 'region ' + region;
    head.append(td);
    tbody.append(head);
    for (const n of list.filter((x) => x.region === region).sort((a, b) => a.node.localeCompare(b.node))) {
      const tr = document.createElement('tr');
      tr.className = 'node' + (n.down ? ' down' : '');
      tr.dataset.node = n.node;
      const s = n.stats || {};
      const cells = [
        null,
        n.url,
        n.down ? 'unreachable' : s.state || '–',
        fmt(s.connections, 0),
        fmt(n.rate.pub, 1),
        fmt(n.rate.del, 1),
        fmt(s.rooms, 0),
        fmt(n.p50, 2),
        fmt(n.p99, 2),
      ];
      for (const [i, c] of cells.entries()) {
        const cell = document.createElement('td');
        if (i === 0) {
          const sw = document.createElement('span');
          sw.className = 'swatch c' + n.color;
          cell.append(sw, n.node);
        } else {
          cell.textContent = c;
        }
        tr.append(cell);
      }
      tbody.append(tr);
    }
  }
  const up = list.filter((n) => !n.down).length;
  $('dot').className = 'dot ' + (up === list.length && up > 0 ? 'on' : up > 0 ? 'wait' : '');
  $('summary').textContent = `${up} of ${list.length} nodes up in ${regions.length} region${regions.length === 1 ? '' : 's'} · polled ${new Date(now).toLocaleTimeString()}`;
  if (latencyKey) {
    $('latency-source').textContent = 'latency percentiles per poll interval from ' + latencyKey;
    $('lat-title').textContent = 'Latency p99 (ms) · ' + latencyKey.replace(/^arena_/, '').replace(/_seconds$/, '');
  }
  plot($('plot-pub'), list, 'pub', now);
  plot($('plot-del'), list, 'del', now);
  plot($('plot-conn'), list, 'conn', now);
  plot($('plot-lat'), list, 'lat', now);
}

// niceMax rounds v up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

// plot draws one line per node of series key over the time window.
function plot(canvas, list, key, now) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(200, canvas.clientWidth);
  const h = Math.max(100, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 10, t: 22, b: 20 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;
  let max = 0;
  let first = now;
  for (const n of list) {
    for (const [t, v] of n[key]) {
      if (v > max) max = v;
      if (t < first) first = t;
    }
  }
  const ymax = niceMax(max * 1.1); // headroom: a flat line stays off the top edge
  // The time axis spans the data until the window is full (at least 10 s).
  const span = Math.min(windowMs, Math.max(10000, Math.ceil((now - first) / 5000) * 5000));
  const x = (t) => pad.l + pw * (1 - (now - t) / span);
  const y = (v) => pad.t + ph * (1 - v / ymax);

  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = '#2a3440';
  ctx.fillStyle = '#8593a3';
  ctx.lineWidth = 1;
  ctx.textAlign = 'right';
  ctx.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(pad.l + pw, yy);
    ctx.stroke();
    ctx.fillText(v >= 100 ? v.toFixed(0) : String(+v.toFixed(2)), pad.l - 6, yy);
  }
  ctx.textAlign = 'center';
  ctx.textBaseline = 'top';
  const secs = span / 1000;
  for (const f of [0, 0.5, 1]) ctx.fillText(f === 1 ? 'now' : '-' + Math.round(secs * (1 - f)) + 's', pad.l + pw * f, pad.t + ph + 4);

  let points = 0;
  ctx.lineWidth = 2;
  ctx.lineJoin = 'round';
  let lx = pad.l;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  for (const n of list) {
    const s = n[key];
    ctx.strokeStyle = palette[n.color];
    ctx.fillStyle = palette[n.color];
    if (s.length > 0) {
      ctx.beginPath();
      s.forEach(([t, v], i) => (i === 0 ? ctx.moveTo(x(t), y(v)) : ctx.lineTo(x(t), y(v))));
      if (s.length === 1) ctx.arc(x(s[0][0]), y(s[0][1]), 2, 0, 2 * Math.PI);
      ctx.stroke();
      points += s.length;
    }
    ctx.fillRect(lx, 6, 10, 10);
    ctx.fillStyle = '#d8dee6';
    ctx.fillText(n.node, lx + 14, 11);
    lx += 24 + ctx.measureText(n.node).width;
  }
  canvas.dataset.points = String(points);
  canvas.dataset.max = String(max);
}

async function loop() {
  for (;;) {
    const t0 = Date.now();
    await poll();
    await new Promise((r) => setTimeout(r, Math.max(0, interval - (Date.now() - t0))));
  }
}

loop();
