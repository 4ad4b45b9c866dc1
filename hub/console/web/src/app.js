// The edk hub console: a small single-page app over the hub's HTTP API
// (docs/hub-api.md). It keeps the API token in sessionStorage (this tab
// only), routes on the URL fragment (#/ and #/devices/<id>), polls what
// has no stream (the device list, connectivity, executions) and follows
// telemetry and logs over the API's WebSocket streams.
//
// It reads the API's answers loosely on purpose: extra fields are ignored
// and both 200 and 201/204 count as success, so it keeps working while the
// API grows towards Enapter's shapes.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './app.css';

const TOKEN_KEY = 'edk-hub-token';
const THEME_KEY = 'edk-console-theme';
const POLL_LIST_MS = 2000;
const POLL_DEVICE_MS = 2000;
const POLL_EXEC_MS = 400;
const MAX_LOGS = 500;

let token = sessionStorage.getItem(TOKEN_KEY) || '';
let cleanup = () => {};
let loginMessage = '';

// ---------- small DOM helpers ----------

// h builds an element: h('a', {href: '#/'}, 'text', child, ...). Strings
// become text nodes, so nothing the hub sends is parsed as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const $ = (sel, root = document) => root.querySelector(sel);

// patchRows brings tbody to rows (each a <tr> with data-key) in place: a
// row whose key is already there stays, and of its cells only those whose
// content changed are swapped. Rebuilding a polled table every refresh
// took the keyboard focus from a link in it and closed any <details> a
// person had opened.
const cellContent = new WeakMap(); // <td> → its innerHTML when rendered
function patchRows(tbody, rows) {
  const keep = new Set(rows.map((r) => r.dataset.key));
  const old = new Map();
  for (const tr of [...tbody.rows]) {
    if (tr.dataset.key && keep.has(tr.dataset.key)) old.set(tr.dataset.key, tr);
    else tr.remove();
  }
  rows.forEach((tr, i) => {
    for (const td of tr.cells) cellContent.set(td, td.innerHTML);
    let cur = old.get(tr.dataset.key);
    if (cur && cur.cells.length === tr.cells.length) {
      for (const a of [...cur.attributes]) if (!tr.hasAttribute(a.name)) cur.removeAttribute(a.name);
      for (const a of [...tr.attributes]) if (cur.getAttribute(a.name) !== a.value) cur.setAttribute(a.name, a.value);
      [...tr.cells].forEach((td, j) => {
        const was = cur.cells[j];
        if (cellContent.get(was) !== cellContent.get(td)) cur.replaceChild(td, was);
      });
    } else {
      if (cur) cur.replaceWith(tr);
      cur = tr;
    }
    if (tbody.rows[i] !== cur) tbody.insertBefore(cur, tbody.rows[i] || null);
  });
}

function announce(text) {
  const a = $('#announce');
  a.textContent = '';
  setTimeout(() => { a.textContent = text; }, 30);
}

// ---------- API ----------

class APIError extends Error {
  constructor(status, body) {
    const e = body && Array.isArray(body.errors) && body.errors[0];
    super(e && e.message ? e.message : `the hub answered ${status}`);
    this.status = status;
    this.code = e ? e.code : '';
    this.details = e ? e.details : undefined;
  }
}

async function api(method, path, body) {
  const headers = { 'X-Enapter-Auth-Token': token };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  } catch (err) {
    throw new APIError(0, { errors: [{ message: 'cannot reach the hub (is it running?)' }] });
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.status === 401) {
    signOut('The hub refused the token: it is wrong, or the hub now has another one. Sign in again.');
    throw new APIError(401, data);
  }
  if (!res.ok) throw new APIError(res.status, data);
  return data || {};
}

function wsURL(path) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}?token=${encodeURIComponent(token)}`;
}

// stream keeps a WebSocket to path open, reconnecting with a growing
// delay, until stop() is called. onState gets 'live' or 'reconnecting'.
function stream(path, onMessage, onState) {
  let ws = null;
  let stopped = false;
  let delay = 500;
  let timer = null;
  const open = () => {
    if (stopped) return;
    ws = new WebSocket(wsURL(path));
    ws.onopen = () => { delay = 500; onState('live'); };
    ws.onmessage = (m) => {
      try { onMessage(JSON.parse(m.data)); } catch (err) { console.warn('console: bad stream message', err); }
    };
    ws.onclose = () => {
      if (stopped) return;
      onState('reconnecting');
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (ws) ws.close();
  };
}

// poll runs fn now and then every ms until the returned stop is called;
// a run never overlaps the previous one.
function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const run = async () => {
    try { await fn(); } catch (err) { if (err.status !== 401) console.warn('console: poll', err); }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return () => { stopped = true; clearTimeout(timer); };
}

// ---------- formatting ----------

function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - t.getTime()) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return t.toLocaleString();
}

function timeEl(t) {
  if (!t) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: t.toISOString(), title: t.toLocaleString() }, ago(t));
}

function parseTime(v) {
  if (v === undefined || v === null || v === '') return null;
  const t = typeof v === 'number' ? new Date(v * 1000) : new Date(v);
  return isNaN(t.getTime()) ? null : t;
}

function fmtNumber(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return v.toLocaleString();
  return v.toLocaleString(undefined, { maximumFractionDigits: 3 });
}

function compactJSON(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'object' && Object.keys(v).length === 0) return '{}';
  return JSON.stringify(v);
}

function badge(text, kind) {
  return h('span', { class: `badge b-${String(kind || text).toLowerCase()}` }, text);
}

function connectivityOf(d) {
  const c = d && d.connectivity;
  return (c && (typeof c === 'string' ? c : c.status)) || 'UNKNOWN';
}

// lastSeenOf is the later of the hub's last_seen_at (moved on connects
// and disconnects) and the newest data the page knows of (more).
function lastSeenOf(d, more) {
  const c = d && d.connectivity;
  const ts = [c && typeof c === 'object' ? parseTime(c.last_seen_at) : null, ...(more || [])].filter(Boolean);
  return ts.length ? new Date(Math.max(...ts.map((t) => t.getTime()))) : null;
}

// ---------- manifest ----------

// Manifest wraps a device's manifest (the JSON form of its manifest.yml,
// or null) with the look-ups the pages need.
class Manifest {
  constructor(m) {
    this.raw = m && typeof m === 'object' ? m : null;
    const get = (k) => (this.raw && this.raw[k] && typeof this.raw[k] === 'object' ? this.raw[k] : {});
    this.telemetry = get('telemetry');
    this.properties = get('properties');
    this.alerts = get('alerts');
    this.commands = get('commands');
    this.groups = get('command_groups');
  }
  get present() { return this.raw !== null; }
  get title() { return this.raw ? this.raw.display_name || '' : ''; }
  attrName(a) { return (this.telemetry[a] && this.telemetry[a].display_name) || a; }
  attrUnit(a) { return (this.telemetry[a] && this.telemetry[a].unit) || ''; }
  propName(p) { return (this.properties[p] && this.properties[p].display_name) || p; }
}

// enumValues lists an enum given as a list or as a map of value → details.
function enumValues(decl) {
  const e = decl && decl.enum;
  if (!e) return null;
  const numeric = decl.type === 'integer' || decl.type === 'float';
  if (Array.isArray(e)) return e.map((v) => ({ value: v, name: String(v) }));
  return Object.entries(e).map(([k, v]) => ({
    value: numeric && !isNaN(Number(k)) ? Number(k) : k,
    name: (v && v.display_name) || k,
    description: v && v.description,
    color: v && v.color,
  }));
}

function formatValue(decl, v, unit) {
  if (v === null || v === undefined) return '—';
  const ev = enumValues(decl);
  if (ev) {
    const hit = ev.find((e) => e.value === v || String(e.value) === String(v));
    if (hit) return hit.name;
  }
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return unit ? `${fmtNumber(v)} ${unit}` : fmtNumber(v);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// isNumeric says whether an attribute is drawn as a line.
function isNumeric(decl, sample) {
  if (decl && decl.type) return (decl.type === 'float' || decl.type === 'integer') && !decl.enum;
  return typeof sample === 'number';
}

// ---------- theme ----------

function applyTheme(t) {
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  $('#theme').textContent = `Theme: ${t || 'auto'}`;
}

function setupTheme() {
  applyTheme(localStorage.getItem(THEME_KEY) || '');
  $('#theme').addEventListener('click', () => {
    const order = ['', 'light', 'dark'];
    const next = order[(order.indexOf(localStorage.getItem(THEME_KEY) || '') + 1) % order.length];
    localStorage.setItem(THEME_KEY, next);
    applyTheme(next);
    window.dispatchEvent(new Event('edk-theme'));
  });
}

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// ---------- sign in ----------

function takeTokenFromURL() {
  // edk demo prints http://host/#token=...: the fragment never reaches
  // the server's logs; it is moved into sessionStorage and off the URL.
  const m = location.hash.match(/^#token=([^&]*)/);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', `${location.pathname}${location.search}#/`);
  }
}

function signOut(message) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  loginMessage = message || '';
  route();
}

function showLogin() {
  $('#signout').hidden = true;
  const main = $('#main');
  const msg = h('p', { id: 'login-message', role: 'alert', class: 'error', hidden: !loginMessage }, loginMessage);
  const input = h('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const button = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { id: 'login-form', novalidate: true },
    h('label', { for: 'login-token' }, 'API token'), input,
    h('p', { class: 'hint' }, 'The token ', h('code', {}, 'edk hub'), ' printed when it started (also in the file ',
      h('code', {}, 'api-token'), ' of its data folder). It stays in this browser tab only.'),
    button);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (!t) { replace(msg, 'Enter the token.'); msg.hidden = false; return; }
    button.disabled = true;
    token = t;
    try {
      await api('GET', '/v3/devices?limit=1');
      sessionStorage.setItem(TOKEN_KEY, t);
      loginMessage = '';
      route();
    } catch (err) {
      if (err.status !== 401) { loginMessage = `Could not sign in: ${err.message}`; route(); }
    } finally {
      button.disabled = false;
    }
  });
  replace(main, h('section', { class: 'card narrow', id: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to the hub'), msg, form));
  document.title = 'Sign in · edk hub';
  input.focus();
}

// ---------- router ----------

function route() {
  cleanup();
  cleanup = () => {};
  if (!token) { showLogin(); return; }
  $('#signout').hidden = false;
  const hash = location.hash || '#/';
  const m = hash.match(/^#\/devices\/([^/?#]+)/);
  cleanup = m ? devicePage(decodeURIComponent(m[1])) : deviceList();
  $('#main').focus({ preventScroll: true });
}

// ---------- device list ----------

function deviceList() {
  document.title = 'Devices · edk hub';
  const main = $('#main');
  const tbody = h('tbody', {}, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'Loading…')));
  const count = h('p', { class: 'muted', id: 'device-count' });
  const error = h('p', { class: 'error', role: 'alert', hidden: true });
  const created = h('div', { 'aria-live': 'polite' });

  const name = h('input', { id: 'new-name', name: 'name', required: true, maxlength: 255, autocomplete: 'off' });
  const slug = h('input', { id: 'new-slug', name: 'slug', maxlength: 64, pattern: '[A-Za-z0-9_-]+', autocomplete: 'off', 'aria-describedby': 'new-slug-hint' });
  const formError = h('p', { class: 'error', role: 'alert', hidden: true });
  const form = h('form', { id: 'provision-form', novalidate: true },
    h('div', { class: 'row' },
      h('div', {}, h('label', { for: 'new-name' }, 'Name'), name),
      h('div', {}, h('label', { for: 'new-slug' }, 'Slug (optional)'), slug),
      h('div', { style: 'flex: 0 0 auto' }, h('button', { type: 'submit' }, 'Add device'))),
    h('p', { class: 'hint', id: 'new-slug-hint' }, 'Letters, digits, - and _. Made from the name when empty.'),
    formError);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.hidden = true;
    const body = { name: name.value.trim() };
    if (slug.value.trim()) body.slug = slug.value.trim();
    try {
      const res = await api('POST', '/v3/provisioning/standalone', body);
      const id = res.device_id || (res.device && res.device.id);
      name.value = ''; slug.value = '';
      replace(created, provisioned(id, body.name));
      announce(`Device ${body.name} added`);
      refresh();
    } catch (err) {
      replace(formError, `Could not add the device: ${err.message}`);
      formError.hidden = false;
    }
  });

  replace(main,
    h('div', { class: 'spread' }, h('h1', {}, 'Devices'), count),
    error,
    h('section', { class: 'card', 'aria-labelledby': 'devices-title' },
      h('h2', { id: 'devices-title', class: 'sr-only' }, 'Device list'),
      h('div', { class: 'table-wrap' },
        h('table', { id: 'devices' },
          h('thead', {}, h('tr', {},
            ['Name', 'Slug', 'Connectivity', 'Active alerts', 'Last seen', 'Blueprint'].map((c) => h('th', { scope: 'col' }, c)))),
          tbody))),
    h('section', { class: 'card', 'aria-labelledby': 'add-title' },
      h('h2', { id: 'add-title' }, 'Add a device'), form, created));

  const refresh = async () => {
    // Pages of 100 (a limit every version of the API takes), up to 1000 devices.
    const devices = [];
    let res = {};
    for (let offset = 0; offset < 1000; offset += 100) {
      res = await api('GET', `/v3/devices?limit=100&offset=${offset}&expand=connectivity,manifest`);
      const page = Array.isArray(res.devices) ? res.devices : [];
      devices.push(...page);
      if (page.length < 100 || (typeof res.total_count === 'number' && devices.length >= res.total_count)) break;
    }
    error.hidden = true;
    let alerts = {};
    if (devices.length) {
      const q = devices.map((d) => `devices%5B${encodeURIComponent(d.id)}%5D=alerts`).join('&');
      try { alerts = (await api('GET', `/v3/telemetry/latest?${q}`)).telemetry || {}; } catch { alerts = {}; }
    }
    const total = typeof res.total_count === 'number' ? res.total_count : devices.length;
    replace(count, total > devices.length ? `${devices.length} of ${total} devices` : `${devices.length} device${devices.length === 1 ? '' : 's'}`);
    if (!devices.length) {
      replace(tbody, h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No devices yet. Add one below, or run edk demo.')));
      return;
    }
    patchRows(tbody, devices.map((d) => {
      const man = new Manifest(d.manifest);
      const st = connectivityOf(d);
      const a = alerts[d.id] && alerts[d.id].alerts;
      const active = a && Array.isArray(a.value) ? a.value : null;
      return h('tr', { dataset: { key: d.id, deviceId: d.id, slug: d.slug } },
        h('td', {}, h('a', { href: `#/devices/${encodeURIComponent(d.id)}` }, d.name || d.slug || d.id)),
        h('td', { class: 'mono' }, d.slug || ''),
        h('td', { class: 'connectivity' }, badge(st)),
        h('td', { class: 'alerts' }, active === null ? h('span', { class: 'muted' }, '—')
          : active.length === 0 ? h('span', { class: 'muted' }, 'none')
            : active.map((n) => badge((man.alerts[n] && man.alerts[n].display_name) || n, (man.alerts[n] && man.alerts[n].severity) || 'warning'))),
        h('td', {}, timeEl(lastSeenOf(d, [a && parseTime(a.timestamp)]))),
        h('td', {}, man.title || d.blueprint_id || h('span', { class: 'muted' }, 'none')));
    }));
    // How many refreshes the table has had: the browser test waits on it.
    tbody.dataset.refreshes = String(Number(tbody.dataset.refreshes || 0) + 1);
  };
  const stop = poll(async () => {
    try { await refresh(); } catch (err) {
      if (err.status !== 401) { replace(error, `Could not load the devices: ${err.message}`); error.hidden = false; }
    }
  }, POLL_LIST_MS);
  return stop;
}

// provisioned is the panel shown after adding a device: where to get its
// communication config.
function provisioned(id, name) {
  return h('div', { class: 'notice', id: 'provisioned' },
    h('p', {}, h('strong', {}, name), ' was added. ', h('a', { href: `#/devices/${encodeURIComponent(id)}` }, 'Open its page'),
      ', or download its communication config now:'),
    configDownloader(id, name));
}

// configDownloader offers the device's communication config as a file to
// run it with: edk run --config-file <file>.
function configDownloader(id, name) {
  const sel = h('select', { id: `proto-${id}`, 'aria-label': 'Protocol' },
    h('option', { value: 'MQTT' }, 'MQTT (password)'), h('option', { value: 'MQTTS' }, 'MQTTS (client certificate)'));
  const out = h('p', { class: 'hint', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'ghost' }, 'Download config');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      const res = await api('POST', `/v3/devices/${encodeURIComponent(id)}/generate_config`, { protocol: sel.value });
      const blob = res.blob || (res.config ? btoa(JSON.stringify(res.config)) : '');
      const file = `${(name || id).toLowerCase().replace(/[^a-z0-9_-]+/g, '-')}-${sel.value.toLowerCase()}.config`;
      const a = h('a', { href: URL.createObjectURL(new Blob([blob + '\n'], { type: 'text/plain' })), download: file });
      document.body.append(a);
      a.click();
      a.remove();
      replace(out, 'Saved ', h('code', {}, file), '. Run the device with ', h('code', {}, `edk run --config-file ${file}`),
        ', or put its content in ENAPTER_STANDALONE_COMMUNICATION_CONFIG.');
    } catch (err) {
      replace(out, `Could not make the config: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return h('div', {}, h('div', { class: 'row' }, h('div', { style: 'flex: 0 1 16rem' }, sel), h('div', { style: 'flex: 0 0 auto' }, button)),
    h('p', { class: 'hint' }, 'Each download issues new credentials: a device running with an older config will have to use the new one.'),
    out);
}

// ---------- device page ----------

const RANGES = [['15m', 15 * 60], ['1h', 3600], ['24h', 86400], ['7d', 7 * 86400], ['custom', 0]];
const STEPS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600];

function devicePage(id) {
  const enc = encodeURIComponent(id);
  const main = $('#main');
  const stops = [];
  let device = null;
  let man = new Manifest(null);
  let deleted = false;
  let latest = {}; // attribute → {value, time}
  let alertsNow = null; // null: never reported
  const series = new Map(); // attribute → {t: [], v: []}
  const view = { range: '15m', span: 900, from: 0, to: 0, agg: '' };
  let charts = []; // {attr, redraw, destroy}
  let logs = [];
  let logFilter = 'debug';

  const banner = h('div', { role: 'alert' });
  const title = h('h1', {}, 'Device');
  const facts = h('ul', { class: 'facts' });
  const head = h('section', { class: 'card device-head', 'aria-labelledby': 'device-title' },
    h('div', {}, title, facts), h('div', { id: 'config-box' }));
  title.id = 'device-title';
  const streamState = h('span', { class: 'muted', id: 'stream-state' }, 'connecting…');
  const chartsBox = h('div', { id: 'charts' });
  const rangeBox = rangeControls();
  const latestBody = h('tbody');
  const alertsBox = h('div', { id: 'alerts' });
  const propsBody = h('tbody');
  const commandsBox = h('div', { id: 'commands' });
  const execBody = h('tbody');
  const logList = h('ol', { class: 'logs', id: 'logs', 'aria-live': 'off' });
  const logEmpty = h('p', { class: 'muted' }, 'No log lines yet; new ones show here as the device sends them.');
  const filter = h('select', { id: 'log-filter' },
    [['debug', 'All'], ['info', 'Info and above'], ['warning', 'Warnings and errors'], ['error', 'Errors only']]
      .map(([v, t]) => h('option', { value: v }, t)));
  filter.addEventListener('change', () => { logFilter = filter.value; renderLogs(); });
  const disable = h('fieldset', { id: 'device-controls' },
    h('div', { class: 'grid' },
      h('div', {},
        h('section', { class: 'card', 'aria-labelledby': 'tele-title' },
          h('div', { class: 'spread' }, h('h2', { id: 'tele-title' }, 'Telemetry'), streamState),
          rangeBox, chartsBox),
        h('section', { class: 'card', 'aria-labelledby': 'cmd-title' }, h('h2', { id: 'cmd-title' }, 'Commands'), commandsBox),
        h('section', { class: 'card', 'aria-labelledby': 'exec-title' }, h('h2', { id: 'exec-title' }, 'Command history'),
          h('div', { class: 'table-wrap' }, h('table', { id: 'executions' },
            h('thead', {}, h('tr', {}, ['When', 'Command', 'State', 'Arguments', 'Response'].map((c) => h('th', { scope: 'col' }, c)))),
            execBody)))),
      h('div', {},
        h('section', { class: 'card', 'aria-labelledby': 'alerts-title' }, h('h2', { id: 'alerts-title' }, 'Active alerts'), alertsBox),
        h('section', { class: 'card', 'aria-labelledby': 'latest-title' }, h('h2', { id: 'latest-title' }, 'Latest values'),
          h('div', { class: 'table-wrap' }, h('table', { id: 'latest' },
            h('thead', {}, h('tr', {}, ['Attribute', 'Value', 'Updated'].map((c) => h('th', { scope: 'col' }, c)))), latestBody))),
        h('section', { class: 'card', 'aria-labelledby': 'props-title' }, h('h2', { id: 'props-title' }, 'Properties'),
          h('div', { class: 'table-wrap' }, h('table', { id: 'properties' }, propsBody))),
        h('section', { class: 'card', 'aria-labelledby': 'logs-title' },
          h('div', { class: 'spread' }, h('h2', { id: 'logs-title' }, 'Logs'),
            h('div', {}, h('label', { for: 'log-filter', class: 'sr-only' }, 'Show'), filter)),
          logEmpty, logList))));
  replace(main, h('p', {}, h('a', { href: '#/' }, '← All devices')), banner, head, disable);

  // --- device, properties, connectivity ---
  const renderHead = () => {
    document.title = `${device.name || device.slug} · edk hub`;
    replace(title, device.name || device.slug || device.id);
    replace(facts,
      h('li', {}, 'Slug ', h('code', {}, device.slug || '')),
      h('li', { id: 'connectivity' }, badge(connectivityOf(device))),
      h('li', {}, 'Last seen ', timeEl(lastSeenOf(device, Object.values(latest).map((p) => p.time)))),
      h('li', {}, 'Blueprint ', man.title || device.blueprint_id || 'none'));
    const props = device.properties && typeof device.properties === 'object' ? device.properties : {};
    const keys = [...new Set([...Object.keys(man.properties), ...Object.keys(props)])];
    replace(propsBody, keys.length ? keys.map((k) => h('tr', {},
      h('th', { scope: 'row' }, man.propName(k)),
      h('td', {}, formatValue(man.properties[k], props[k], man.properties[k] && man.properties[k].unit))))
      : h('tr', {}, h('td', { class: 'muted' }, 'The device has not sent properties.')));
  };
  const markDeleted = () => {
    if (deleted) return;
    deleted = true;
    replace(banner, h('div', { class: 'error', id: 'deleted' },
      h('strong', {}, 'This device was deleted. '), 'It is no longer on the hub; nothing here updates any more. ',
      h('a', { href: '#/' }, 'Back to the device list')));
    disable.disabled = true;
    streamState.textContent = 'stopped';
    for (const s of stops.splice(0)) s();
    announce('This device was deleted');
  };
  let firstLoad = true;
  const loadDevice = async () => {
    try {
      const res = await api('GET', `/v3/devices/${enc}?expand=properties,connectivity,manifest`);
      device = res.device || res;
    } catch (err) {
      if (err.status === 404) { markDeleted(); return; }
      throw err;
    }
    const before = man.raw ? JSON.stringify(man.raw) : '';
    if (before !== (device.manifest ? JSON.stringify(device.manifest) : '')) {
      man = new Manifest(device.manifest);
      if (!firstLoad) { buildCommands(); loadRange(); }
    }
    renderHead();
    if (firstLoad) {
      firstLoad = false;
      $('#config-box').replaceChildren(h('details', {}, h('summary', {}, 'Communication config'), configDownloader(id, device.slug || device.name)));
      buildCommands();
      await loadLatest();
      loadRange();
      loadExecutions();
      stops.push(stream(`/v3/devices/${enc}/telemetry`, onTelemetry, (s) => { streamState.textContent = s === 'live' ? '● live' : 'reconnecting…'; }));
      await loadLogHistory();
      stops.push(stream(`/v3/devices/${enc}/logs`, onLog, () => {}));
      stops.push(poll(loadExecutions, 5000));
    }
  };

  // --- telemetry ---
  const attributes = () => {
    const names = Object.keys(man.telemetry);
    for (const a of Object.keys(latest)) if (!names.includes(a)) names.push(a);
    return names;
  };
  const loadLatest = async () => {
    const res = await api('GET', `/v3/telemetry/latest?devices%5B${enc}%5D=`);
    const m = (res.telemetry && res.telemetry[id]) || {};
    for (const [a, p] of Object.entries(m)) {
      if (!p || p.timestamp === null || p.timestamp === undefined) continue;
      if (a === 'alerts') { alertsNow = Array.isArray(p.value) ? p.value : []; continue; }
      latest[a] = { value: p.value, time: parseTime(p.timestamp) };
    }
    renderLatest();
    renderAlerts();
  };
  const renderLatest = () => {
    const names = attributes();
    replace(latestBody, names.length ? names.map((a) => h('tr', { dataset: { attr: a } },
      h('th', { scope: 'row' }, man.attrName(a)),
      h('td', { class: 'num value' }, formatValue(man.telemetry[a], latest[a] && latest[a].value, man.attrUnit(a))),
      h('td', {}, timeEl(latest[a] && latest[a].time))))
      : h('tr', {}, h('td', { colspan: 3, class: 'muted' }, 'No telemetry yet.')));
  };
  const renderAlerts = () => {
    if (alertsNow === null) { replace(alertsBox, h('p', { class: 'muted' }, 'The device has not reported alerts.')); return; }
    if (!alertsNow.length) { replace(alertsBox, h('p', { class: 'muted', id: 'no-alerts' }, 'No active alerts.')); return; }
    replace(alertsBox, h('ul', { class: 'alerts' }, alertsNow.map((n) => {
      const a = man.alerts[n] || {};
      return h('li', { dataset: { alert: n } }, badge(a.severity || 'unknown', a.severity || 'unknown'), ' ',
        h('strong', {}, a.display_name || n), ' ', h('code', { class: 'muted' }, n),
        a.description ? h('div', { class: 'muted' }, a.description) : null,
        !man.alerts[n] && man.present ? h('div', { class: 'muted' }, 'Not declared in the manifest.') : null);
    })));
  };
  function rangeControls() {
    const group = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'Time range' },
      RANGES.map(([r]) => [
        h('input', { type: 'radio', name: 'range', id: `range-${r}`, value: r, checked: r === '15m' }),
        h('label', { for: `range-${r}` }, r === 'custom' ? 'Custom' : r)]));
    const agg = h('select', { id: 'agg' }, [['', 'auto'], ['avg', 'average'], ['min', 'minimum'], ['max', 'maximum'], ['last', 'last']]
      .map(([v, t]) => h('option', { value: v }, t)));
    const local = (t) => new Date(t.getTime() - t.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
    const from = h('input', { type: 'datetime-local', id: 'range-from', value: local(new Date(Date.now() - 3600000)) });
    const to = h('input', { type: 'datetime-local', id: 'range-to', value: local(new Date()) });
    const apply = h('button', { type: 'button', class: 'ghost', id: 'range-apply' }, 'Show');
    const custom = h('div', { class: 'controls', hidden: true },
      h('div', {}, h('label', { for: 'range-from' }, 'From'), from),
      h('div', {}, h('label', { for: 'range-to' }, 'To'), to), apply);
    const err = h('p', { class: 'error', role: 'alert', hidden: true });
    group.addEventListener('change', (ev) => {
      view.range = ev.target.value;
      custom.hidden = view.range !== 'custom';
      if (view.range !== 'custom') { view.span = RANGES.find(([r]) => r === view.range)[1]; loadRange(); }
    });
    agg.addEventListener('change', () => { view.agg = agg.value; loadRange(); });
    apply.addEventListener('click', () => {
      const f = new Date(from.value), t = new Date(to.value);
      if (isNaN(f) || isNaN(t) || f >= t) { replace(err, 'Pick a start before the end.'); err.hidden = false; return; }
      err.hidden = true;
      view.from = f.getTime() / 1000; view.to = t.getTime() / 1000;
      loadRange();
    });
    return h('div', {},
      h('div', { class: 'controls' }, h('div', {}, h('span', { class: 'sr-only' }, 'Time range'), group),
        h('div', {}, h('label', { for: 'agg' }, 'Aggregation'), agg)), custom, err);
  }
  const live = () => view.range !== 'custom';
  let loadSeq = 0;
  async function loadRange() {
    const seq = ++loadSeq;
    if (live()) { view.to = Date.now() / 1000; view.from = view.to - view.span; }
    const names = attributes();
    series.clear();
    let gran = 0;
    const span = view.to - view.from;
    if (span > 900) gran = STEPS.find((s) => span / s <= 500) || STEPS[STEPS.length - 1];
    if (names.length) {
      const q = new URLSearchParams({
        device: id, attributes: names.join(','),
        from: new Date(view.from * 1000).toISOString(), to: new Date(view.to * 1000 + 1000).toISOString(),
      });
      if (gran) q.set('granularity', `${gran}s`);
      if (gran && view.agg) q.set('aggregation', view.agg);
      try {
        const res = await api('GET', `/v3/telemetry?${q}`);
        if (seq !== loadSeq) return;
        const list = (res.telemetry && res.telemetry.series) || [];
        for (const s of list) {
          const pts = (s.points || []).filter((p) => p.value !== null && p.value !== undefined);
          series.set(s.attribute, { t: pts.map((p) => p.timestamp), v: pts.map((p) => p.value) });
        }
      } catch (err) {
        if (err.status === 404) { markDeleted(); return; }
        replace(chartsBox, h('p', { class: 'error' }, `Could not load telemetry: ${err.message}`));
        return;
      }
    }
    buildCharts();
  }
  function buildCharts() {
    for (const c of charts) c.destroy();
    charts = [];
    chartsBox.replaceChildren();
    const names = attributes();
    if (!names.length) { chartsBox.append(h('p', { class: 'muted' }, 'No telemetry yet.')); return; }
    for (const a of names) {
      const s = series.get(a) || { t: [], v: [] };
      series.set(a, s);
      const decl = man.telemetry[a];
      const sample = s.v.length ? s.v[s.v.length - 1] : latest[a] && latest[a].value;
      const c = isNumeric(decl, sample) ? lineChart(a, s) : stateBand(a, s);
      charts.push(c);
    }
  }
  function lineChart(a, s) {
    const unit = man.attrUnit(a);
    const now = h('span', { class: 'now' });
    const plot = h('div', { class: 'plot' });
    const fig = h('figure', { class: 'chart', dataset: { attr: a, kind: 'line' } },
      h('figcaption', {}, h('span', {}, man.attrName(a), unit ? ` (${unit})` : ''), now), plot);
    chartsBox.append(fig);
    const color = cssVar('--accent');
    const axis = { stroke: cssVar('--axis'), grid: { stroke: cssVar('--grid') }, ticks: { stroke: cssVar('--grid') } };
    const u = new uPlot({
      width: Math.max(plot.clientWidth, 200), height: 170,
      scales: { x: { time: true, range: () => [view.from, view.to] } },
      series: [{}, { label: man.attrName(a), stroke: color, width: 2, fill: color + '22', spanGaps: false, points: { show: false } }],
      axes: [{ ...axis }, { ...axis, size: 56 }],
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
    }, [s.t, s.v], plot);
    plot.setAttribute('role', 'img');
    const redraw = () => {
      u.setData([s.t, s.v]);
      const last = s.v.length ? s.v[s.v.length - 1] : null;
      const nums = s.v.filter((v) => typeof v === 'number');
      const lo = nums.length ? Math.min(...nums) : null, hi = nums.length ? Math.max(...nums) : null;
      fig.dataset.last = last === null ? '' : String(last);
      fig.dataset.points = String(s.t.length);
      fig.dataset.min = lo === null ? '' : String(lo);
      fig.dataset.max = hi === null ? '' : String(hi);
      now.textContent = last === null ? 'no data in this range' : `now ${formatValue(man.telemetry[a], last, unit)}`;
      const spread = lo === null ? '' : `, from ${formatValue(man.telemetry[a], lo, unit)} to ${formatValue(man.telemetry[a], hi, unit)}`;
      plot.setAttribute('aria-label', `${man.attrName(a)} over the chosen range${spread}; latest ${now.textContent}`);
    };
    redraw();
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(plot.clientWidth, 200), height: 170 }));
    ro.observe(plot);
    return { attr: a, redraw, destroy: () => { ro.disconnect(); u.destroy(); } };
  }
  function stateBand(a, s) {
    const decl = man.telemetry[a];
    const palette = ['#2e7d32', '#1565c0', '#ef6c00', '#6a1b9a', '#00838f', '#c62828', '#5d4037', '#546e7a'];
    const named = { green: '#2e9d4f', 'green-light': '#66bb6a', 'green-dark': '#1b5e20', blue: '#1565c0', 'blue-light': '#64a8f0',
      'blue-dark': '#0d3c78', red: '#c62828', 'red-light': '#ef7070', orange: '#ef6c00', yellow: '#f2c200', pink: '#d63384',
      purple: '#6a1b9a', cyan: '#00acc1', gray: '#8a939c', grey: '#8a939c' };
    const ev = enumValues(decl) || [];
    const colors = new Map();
    ev.forEach((e, i) => colors.set(String(e.value), named[e.color] || e.color && /^#[0-9a-f]{3,8}$/i.test(e.color) && e.color || palette[i % palette.length]));
    const colorOf = (v) => {
      const k = String(v);
      if (!colors.has(k)) colors.set(k, k === 'true' ? '#2e9d4f' : k === 'false' ? '#8a939c' : palette[colors.size % palette.length]);
      return colors.get(k);
    };
    const nameOf = (v) => formatValue(decl, v, '');
    const band = h('div', { class: 'band', role: 'img' });
    const legend = h('ul', { class: 'legend' });
    const now = h('span', { class: 'now' });
    const from = h('span'), to = h('span');
    const fig = h('figure', { class: 'chart', dataset: { attr: a, kind: 'state' } },
      h('figcaption', {}, h('span', {}, man.attrName(a)), now), band, h('div', { class: 'band-axis' }, from, to), legend);
    chartsBox.append(fig);
    const redraw = () => {
      const span = view.to - view.from || 1;
      const segs = [];
      for (let i = 0; i < s.t.length; i++) {
        const start = Math.max(s.t[i], view.from);
        const end = Math.min(i + 1 < s.t.length ? s.t[i + 1] : (live() ? view.to : s.t[i] + 1), view.to);
        if (end <= start) continue;
        const last = segs[segs.length - 1];
        if (last && String(last.v) === String(s.v[i]) && Math.abs(last.end - start) < 1e-6) last.end = end;
        else segs.push({ start, end, v: s.v[i] });
      }
      replace(band, segs.map((g) => h('span', {
        style: `left:${((g.start - view.from) / span) * 100}%;width:${Math.max(((g.end - g.start) / span) * 100, 0.3)}%;background:${colorOf(g.v)}`,
        title: `${nameOf(g.v)}: ${new Date(g.start * 1000).toLocaleTimeString()}–${new Date(g.end * 1000).toLocaleTimeString()}`,
      })));
      const seen = [...new Set(s.v.map(String))];
      const keys = ev.length ? ev.map((e) => e.value) : seen;
      replace(legend, keys.map((v) => h('li', {}, h('i', { style: `background:${colorOf(v)}` }), nameOf(v))));
      const last = s.v.length ? s.v[s.v.length - 1] : null;
      fig.dataset.last = last === null ? '' : String(last);
      now.textContent = last === null ? 'no data in this range' : `now ${nameOf(last)}`;
      band.setAttribute('aria-label', `${man.attrName(a)} over the chosen range: ${segs.map((g) => nameOf(g.v)).join(', then ') || 'no data'}`);
      from.textContent = new Date(view.from * 1000).toLocaleString();
      to.textContent = live() ? 'now' : new Date(view.to * 1000).toLocaleString();
    };
    redraw();
    return { attr: a, redraw, destroy: () => {} };
  }
  let redrawPending = false;
  const scheduleRedraw = () => {
    if (redrawPending) return;
    redrawPending = true;
    setTimeout(() => {
      redrawPending = false;
      if (live()) {
        view.to = Date.now() / 1000; view.from = view.to - view.span;
        for (const s of series.values()) {
          let drop = 0;
          while (drop < s.t.length && s.t[drop] < view.from) drop++;
          if (drop) { s.t.splice(0, drop); s.v.splice(0, drop); }
        }
      }
      for (const c of charts) c.redraw();
    }, 250);
  };
  function onTelemetry(msg) {
    if (!msg || typeof msg !== 'object') return;
    const t = typeof msg.timestamp === 'number' ? msg.timestamp : Date.now() / 1000;
    let fresh = false;
    for (const [a, v] of Object.entries(msg)) {
      if (a === 'timestamp' || a === 'device_id') continue;
      if (a === 'alerts') { alertsNow = Array.isArray(v) ? v : []; continue; }
      if (!latest[a]) fresh = true;
      latest[a] = { value: v, time: new Date(t * 1000) };
      if (live() && v !== null) {
        const s = series.get(a) || { t: [], v: [] };
        series.set(a, s);
        if (!s.t.length || t >= s.t[s.t.length - 1]) { s.t.push(t); s.v.push(v); }
      }
    }
    renderLatest();
    renderAlerts();
    if (fresh) buildCharts(); else scheduleRedraw();
  }
  const onTheme = () => buildCharts();
  window.addEventListener('edk-theme', onTheme);

  // --- logs ---
  const SEV = { debug: 0, info: 1, warning: 2, error: 3 };
  // What the store already holds, newest first, so the page does not open
  // on an empty list; the stream adds what comes next.
  async function loadLogHistory() {
    try {
      const res = await api('GET', `/v3/devices/${enc}/logs?order=RECEIVED_AT_DESC&limit=${MAX_LOGS}`);
      if (res && Array.isArray(res.logs)) {
        logs = res.logs.filter((l) => l && typeof l === 'object').concat(logs).slice(0, MAX_LOGS);
        renderLogs();
      }
    } catch (err) {
      if (err && err.status === 401) throw err;
    }
  }
  function onLog(entry) {
    if (!entry || typeof entry !== 'object') return;
    logs.unshift(entry);
    if (logs.length > MAX_LOGS) logs.length = MAX_LOGS;
    renderLogs();
  }
  function renderLogs() {
    const min = SEV[logFilter] || 0;
    const shown = logs.filter((l) => (SEV[String(l.severity).toLowerCase()] ?? 1) >= min);
    logEmpty.hidden = logs.length > 0;
    replace(logList, shown.map((l) => {
      const t = parseTime(l.timestamp);
      const sev = String(l.severity || 'info').toLowerCase();
      return h('li', { dataset: { severity: sev } },
        h('time', { datetime: t ? t.toISOString() : '', class: 'muted' }, t ? t.toLocaleTimeString() : ''),
        h('span', {}, badge(sev, sev)), h('span', { class: 'msg' }, l.message || ''));
    }));
  }

  // --- commands ---
  function buildCommands() {
    const names = Object.keys(man.commands);
    if (!man.present || !names.length) {
      replace(commandsBox,
        h('p', { class: 'muted' }, man.present ? 'The manifest declares no commands; any command can still be sent as JSON.'
          : 'This device has no blueprint manifest on the hub, so there are no forms: send any command as JSON.'),
        freeForm());
      return;
    }
    const byGroup = new Map();
    for (const n of names) {
      const g = man.commands[n].group || '';
      if (!byGroup.has(g)) byGroup.set(g, []);
      byGroup.get(g).push(n);
    }
    replace(commandsBox, [...byGroup].map(([g, cmds]) => h('div', {},
      g ? h('h3', {}, (man.groups[g] && man.groups[g].display_name) || g) : null,
      // A few commands are all open; with many, only the first.
      cmds.map((n, i) => commandForm(n, man.commands[n], names.length <= 4 || (i === 0 && g === [...byGroup.keys()][0]))))));
  }
  function commandForm(name, cmd, open) {
    const args = cmd.arguments && typeof cmd.arguments === 'object' ? cmd.arguments : {};
    const fields = Object.entries(args).map(([an, a]) => argField(name, an, a || {}));
    const status = h('div', { class: 'status', role: 'status', id: `status-${name}` });
    const button = h('button', { type: 'submit' }, cmd.display_name || name);
    const form = h('form', { novalidate: true, id: `cmd-${name}`, dataset: { command: name } },
      cmd.description ? h('p', { class: 'desc muted' }, cmd.description) : null,
      fields.map((f) => f.el),
      h('div', { class: 'buttons', style: 'justify-content:start' }, button), status);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const values = {};
      for (const f of fields) {
        const r = f.read();
        if (r.error) { replace(status, h('p', { class: 'error' }, r.error)); f.focus(); return; }
        if (r.set) values[f.name] = r.value;
      }
      if (cmd.confirmation && !(await confirmDialog(cmd.confirmation))) return;
      await run(name, values, status, button);
    });
    return h('details', { class: 'cmd', open }, h('summary', {}, cmd.display_name || name, ' ', h('code', { class: 'muted' }, name)), form);
  }
  function argField(cmd, name, a) {
    const id = `arg-${cmd}-${name}`;
    const descId = a.description ? `${id}-desc` : undefined;
    const ev = enumValues(a);
    const common = { id, name, 'aria-describedby': descId, required: !!a.required };
    let input;
    if (ev) {
      input = h('select', common, a.required && a.default === undefined ? h('option', { value: '' }, 'Choose…') : !a.required ? h('option', { value: '' }, '(not set)') : null,
        ev.map((e, i) => h('option', { value: String(i), selected: a.default !== undefined && String(a.default) === String(e.value) }, e.name)));
    } else if (a.type === 'integer' || a.type === 'float') {
      input = h('input', { ...common, type: 'number', inputmode: a.type === 'integer' ? 'numeric' : 'decimal',
        step: a.type === 'integer' ? '1' : 'any', min: a.min, max: a.max, value: a.default !== undefined ? String(a.default) : undefined });
    } else if (a.type === 'boolean') {
      input = h('select', common, !a.required ? h('option', { value: '' }, '(not set)') : null,
        h('option', { value: 'true', selected: a.default === true }, 'Yes'), h('option', { value: 'false', selected: a.default === false }, 'No'));
    } else if (a.type === 'json' || a.type === 'array_of_strings' || (a.type && a.type.endsWith('[]'))) {
      input = h('textarea', { ...common, spellcheck: 'false', placeholder: a.type === 'json' ? '{"key": "value"}' : '["a", "b"]' },
        a.default !== undefined ? JSON.stringify(a.default) : '');
    } else {
      input = h('input', { ...common, type: a.sensitive ? 'password' : 'text', autocomplete: 'off', spellcheck: 'false',
        value: a.default !== undefined ? String(a.default) : undefined });
    }
    const range = a.min !== undefined || a.max !== undefined ? ` (${a.min ?? '…'} to ${a.max ?? '…'})` : '';
    const label = h('label', { for: id }, a.display_name || name, a.required ? h('span', { 'aria-hidden': 'true' }, ' *') : null);
    const el = h('div', {}, label, input,
      h('p', { class: 'hint', id: descId }, a.description || '', range ? `${a.description ? ' ' : ''}Range${range}.` : ''));
    const read = () => {
      const v = input.value;
      if (v === '') return { set: false };
      if (ev) return { set: true, value: ev[Number(v)].value };
      if (a.type === 'integer' || a.type === 'float') {
        const n = Number(v);
        return isNaN(n) ? { set: true, value: v } : { set: true, value: n };
      }
      if (a.type === 'boolean') return { set: true, value: v === 'true' };
      if (input.tagName === 'TEXTAREA') {
        try { return { set: true, value: JSON.parse(v) }; } catch { return { error: `${a.display_name || name}: not valid JSON` }; }
      }
      return { set: true, value: v };
    };
    return { el, name, read, focus: () => input.focus() };
  }
  function sensitiveArgs(cmd) {
    const args = (cmd && cmd.arguments) || {};
    return new Set(Object.keys(args).filter((k) => args[k] && args[k].sensitive));
  }
  function freeForm() {
    const status = h('div', { class: 'status', role: 'status', id: 'status-free' });
    const name = h('input', { id: 'free-name', required: true, autocomplete: 'off', spellcheck: 'false' });
    const args = h('textarea', { id: 'free-args', spellcheck: 'false' }, '{}');
    const button = h('button', { type: 'submit' }, 'Send');
    const form = h('form', { id: 'cmd-free', novalidate: true },
      h('label', { for: 'free-name' }, 'Command name'), name,
      h('label', { for: 'free-args' }, 'Arguments (a JSON object)'), args,
      h('div', { class: 'buttons', style: 'justify-content:start' }, button), status);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!name.value.trim()) { replace(status, h('p', { class: 'error' }, 'Name the command.')); name.focus(); return; }
      let values;
      try { values = JSON.parse(args.value || '{}'); } catch { values = undefined; }
      if (!values || typeof values !== 'object' || Array.isArray(values)) {
        replace(status, h('p', { class: 'error' }, 'The arguments must be a JSON object, e.g. {"power": 1000}.'));
        args.focus();
        return;
      }
      await run(name.value.trim(), values, status, button);
    });
    return form;
  }
  function confirmDialog(c) {
    return new Promise((resolve) => {
      const ok = h('button', { type: 'button' }, 'Run it');
      const cancel = h('button', { type: 'button', class: 'ghost' }, 'Cancel');
      const dlg = h('dialog', { 'aria-labelledby': 'confirm-title' },
        h('h2', { id: 'confirm-title' }, badge(c.severity || 'info', c.severity || 'info'), ' ', c.title || 'Are you sure?'),
        c.description ? h('p', {}, c.description) : null, h('div', { class: 'buttons' }, cancel, ok));
      const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
      ok.addEventListener('click', () => done(true));
      cancel.addEventListener('click', () => done(false));
      dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
      document.body.append(dlg);
      dlg.showModal();
      cancel.focus();
    });
  }
  // run sends a command and shows its progress (the device's log
  // responses, read from the executions list while the request waits) and
  // its final state.
  async function run(name, values, status, button) {
    button.disabled = true;
    const progress = h('ol', { class: 'progress' });
    const state = h('p', {}, badge('NEW', 'new'), ' sending ', h('code', {}, name), '…');
    replace(status, state, progress);
    const known = new Set((lastExecutions || []).map((e) => e.id));
    const startedAt = Date.now() - 5000;
    let watching = true;
    const watch = async () => {
      while (watching) {
        await new Promise((r) => setTimeout(r, POLL_EXEC_MS));
        if (!watching) break;
        try {
          const res = await api('GET', `/v3/devices/${enc}/command_executions?limit=5&expand=log`);
          const ex = (res.executions || []).find((e) => !known.has(e.id) && e.request && e.request.name === name &&
            (!parseTime(e.created_at) || parseTime(e.created_at).getTime() >= startedAt));
          if (ex && watching) showExecution(ex, state, progress, true);
        } catch { /* the final answer reports errors */ }
      }
    };
    watch();
    try {
      const res = await api('POST', `/v3/devices/${enc}/execute_command?expand=log`, { name, arguments: values });
      watching = false;
      showExecution(res.execution || {}, state, progress, false);
      announce(`${name}: ${(res.execution && res.execution.state) || 'done'}`);
    } catch (err) {
      watching = false;
      if (err.status === 404 && err.code === 'not_found' && /device/i.test(err.message)) markDeleted();
      const why = err.code === 'rejected_by_manifest' ? 'Refused by the manifest: ' : err.status ? 'Refused: ' : '';
      replace(state, badge('ERROR', 'error'), ' ', h('span', { class: 'error-text' }, why + err.message));
      progress.replaceChildren();
      announce(`${name} refused: ${err.message}`);
    } finally {
      button.disabled = false;
      loadExecutions();
    }
  }
  function showExecution(ex, state, progress, running) {
    const st = ex.state || (running ? 'IN_PROGRESS' : 'UNKNOWN');
    const resp = ex.response;
    const msg = resp && resp.payload && typeof resp.payload === 'object' && resp.payload.message;
    replace(state, badge(st, st), ' ', running ? 'running…' : '',
      !running && resp ? h('span', {}, msg ? String(msg) : '', ' ', h('code', { class: 'payload' }, compactJSON(resp.payload))) : null,
      !running && !resp && st === 'TIMEOUT' ? 'the device did not answer in time' : null);
    const logEntries = Array.isArray(ex.log) ? ex.log.filter((l) => l.state === 'IN_PROGRESS') : [];
    replace(progress, logEntries.map((l) => h('li', {},
      (l.payload && l.payload.message) ? String(l.payload.message) : compactJSON(l.payload))));
  }

  // --- executions ---
  let lastExecutions = [];
  async function loadExecutions() {
    if (deleted) return;
    let res;
    try {
      res = await api('GET', `/v3/devices/${enc}/command_executions?limit=20&expand=log`);
    } catch (err) {
      if (err.status === 404) { markDeleted(); return; }
      throw err;
    }
    lastExecutions = res.executions || [];
    if (!lastExecutions.length) {
      replace(execBody, h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No commands sent yet.')));
      return;
    }
    patchRows(execBody, lastExecutions.map((e) => {
      const req = e.request || {};
      const hide = sensitiveArgs(man.commands[req.name]);
      const args = { ...(req.arguments || {}) };
      for (const k of hide) if (k in args) args[k] = '••••••';
      const log = Array.isArray(e.log) ? e.log : [];
      return h('tr', { dataset: { key: e.id, execution: e.id, state: e.state } },
        h('td', {}, timeEl(parseTime(e.created_at))),
        h('td', {}, (man.commands[req.name] && man.commands[req.name].display_name) || req.name || ''),
        h('td', {}, badge(e.state || 'UNKNOWN')),
        h('td', {}, h('code', { class: 'payload' }, compactJSON(args))),
        h('td', {}, e.response ? h('code', { class: 'payload' }, compactJSON(e.response.payload)) : h('span', { class: 'muted' }, '—'),
          log.length > 1 ? h('details', {}, h('summary', {}, `${log.length} responses`),
            h('ol', {}, log.map((l) => h('li', {}, badge(l.state || '', l.state), ' ', h('code', {}, compactJSON(l.payload)))))) : null));
    }));
  }

  stops.push(poll(loadDevice, POLL_DEVICE_MS));
  // Keep "x s ago" honest between updates.
  const tick = setInterval(() => { if (device && !deleted) { renderLatest(); } }, 5000);
  return () => {
    for (const s of stops) s();
    clearInterval(tick);
    window.removeEventListener('edk-theme', onTheme);
    for (const c of charts) c.destroy();
  };
}

// ---------- start ----------

function start() {
  setupTheme();
  takeTokenFromURL();
  $('#signout').addEventListener('click', () => signOut('Signed out.'));
  window.addEventListener('hashchange', () => {
    if (/^#token=/.test(location.hash)) takeTokenFromURL();
    route();
  });
  route();
}

start();
