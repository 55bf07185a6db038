// Helpers for the XMPP-FTW scenarios: bounded waits, buffered JSON clients (Socket.IO and
// the primus-emitter framing on /ftw), a raw Engine.IO client and a raw XML (/xmpp) client.
//
// Every incoming event or frame goes into the client's inbox as soon as it arrives, so a
// scenario can ask for it later (`next`) without racing the network. Every wait is bounded
// by WAIT_MS and names what it was waiting for; the whole scenario by HARD_MS.

import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

export { assert };

function envOrDie(name) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    console.error(
      `missing environment variable ${name}; run through tests/ftw.rs or set ` +
        'AOBA_PORT, AOBA_DOMAIN, AOBA_TOKENS (JSON user -> jwt, plus "bad") and AOBA_APART ("a,b")',
    );
    process.exit(2);
  }
  return v;
}

export const PORT = Number(envOrDie('AOBA_PORT'));
export const DOMAIN = process.env.AOBA_DOMAIN || 'localhost';
export const MUC = `conference.${DOMAIN}`;
export const TOKENS = JSON.parse(envOrDie('AOBA_TOKENS'));
export const [A, B] = envOrDie('AOBA_APART').split(',');
export const WAIT_MS = Number(process.env.AOBA_FTW_WAIT_MS || 5000);
export const HARD_MS = Number(process.env.AOBA_FTW_HARD_MS || 30000);
export const HTTP = `http://127.0.0.1:${PORT}`;
export const WS = `ws://127.0.0.1:${PORT}`;
/** Where XML clients connect: another node of a cluster with `AOBA_XML_PORT`. */
export const XML_WS = `ws://127.0.0.1:${Number(process.env.AOBA_XML_PORT || PORT)}`;

const t0 = Date.now();
let SEQ = 0;
const waits = new Map(); // id -> label of every pending wait
let waitIds = 0;
const clients = new Set();

export function log(...args) {
  console.log(`[${String(Date.now() - t0).padStart(5)} ms]`, ...args);
}

export function token(user) {
  const t = TOKENS[user];
  if (!t) throw new Error(`no token for ${user} in AOBA_TOKENS (have: ${Object.keys(TOKENS)})`);
  return t;
}

export const bare = (user) => `${user}@${DOMAIN}`;
export const jidObj = (user, resource) =>
  resource === undefined ? { user, domain: DOMAIN } : { user, domain: DOMAIN, resource };
export function jidStr(j) {
  if (typeof j === 'string') return j;
  if (!j || typeof j !== 'object') return String(j);
  return `${j.user ? `${j.user}@` : ''}${j.domain}${j.resource ? `/${j.resource}` : ''}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 20 ms until it returns a truthy value (bounded). */
export function poll(fn, label, ms = WAIT_MS) {
  let stop = false;
  return bounded(
    new Promise((resolve) => {
      const tick = () => {
        if (stop) return;
        const v = fn();
        if (v) resolve(v);
        else setTimeout(tick, 20);
      };
      tick();
    }),
    label,
    ms,
  ).finally(() => {
    stop = true;
  });
}

/** `promise`, or a rejection naming `label` after `ms`. */
export function bounded(promise, label, ms = WAIT_MS, detail = () => '') {
  const id = ++waitIds;
  waits.set(id, label);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      const d = detail();
      reject(new Error(`timed out after ${ms} ms waiting for ${label}${d ? `\n${d}` : ''}`));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
    waits.delete(id);
  });
}

const short = (v, n = 300) => {
  let s;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s === undefined ? 'undefined' : s.length > n ? `${s.slice(0, n)}…` : s;
};

/** Arrival-ordered buffer of (name, payload) with waiters. */
class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.waiters = [];
  }

  push(name, payload) {
    const item = { name, payload, seq: ++SEQ, taken: false };
    this.items.push(item);
    for (const w of this.waiters) {
      if (w.match(item)) {
        item.taken = true;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(item);
        break;
      }
    }
  }

  /** The first untaken item for which `match(item)` holds, now or when it arrives. */
  take(match, label, ms) {
    const found = this.items.find((i) => !i.taken && match(i));
    if (found) {
      found.taken = true;
      return Promise.resolve(found);
    }
    let waiter;
    const p = new Promise((resolve) => {
      waiter = { match, resolve };
      this.waiters.push(waiter);
    });
    return bounded(p, `${label} on ${this.label}`, ms, () => this.recent()).finally(() => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
    });
  }

  /** Untaken items that match, without taking them. */
  peek(match) {
    return this.items.filter((i) => !i.taken && match(i));
  }

  recent(n = 12) {
    const last = this.items.slice(-n);
    if (last.length === 0) return `  (${this.label} received nothing)`;
    return [
      `  last ${last.length} of ${this.items.length} received by ${this.label}:`,
      ...last.map((i) => `    #${i.seq}${i.taken ? ' (used)' : ''} ${i.name} ${short(i.payload)}`),
    ].join('\n');
  }
}

function predicate(pred) {
  if (pred === undefined) return () => true;
  if (typeof pred === 'function') return pred;
  // An object: every given key deep-equals (a subset match of the payload's top level).
  return (p) =>
    p !== null &&
    typeof p === 'object' &&
    Object.entries(pred).every(([k, v]) => {
      try {
        assert.deepEqual(p[k], v);
        return true;
      } catch {
        return false;
      }
    });
}

function describe(pred) {
  if (pred === undefined) return '';
  if (typeof pred === 'function') return ' (matching a predicate)';
  return ` ${short(pred)}`;
}

/** Common part of the Socket.IO and primus JSON clients. */
class JsonClient {
  constructor(label) {
    this.label = label;
    this.inbox = new Inbox(label);
    this.closedReason = null;
    this.closed = new Promise((r) => {
      this._closed = r;
    });
    clients.add(this);
  }

  _markClosed(reason) {
    if (this.closedReason === null) {
      this.closedReason = String(reason);
      this._closed(this.closedReason);
    }
  }

  /** The next event `name` whose payload matches `pred` (function or subset object). */
  async next(name, pred, ms = WAIT_MS) {
    const m = predicate(pred);
    const item = await this.inbox.take(
      (i) => i.name === name && m(i.payload),
      `event ${name}${describe(pred)}`,
      ms,
    );
    return item.payload;
  }

  /** Like next, but also gives the arrival sequence number. */
  async nextSeq(name, pred, ms = WAIT_MS) {
    const m = predicate(pred);
    const item = await this.inbox.take(
      (i) => i.name === name && m(i.payload),
      `event ${name}${describe(pred)}`,
      ms,
    );
    return { payload: item.payload, seq: item.seq };
  }

  /** The next of several event names: {name, payload}. */
  async nextOf(names, ms = WAIT_MS) {
    const item = await this.inbox.take(
      (i) => names.includes(i.name),
      `one of ${names.join(', ')}`,
      ms,
    );
    return { name: item.name, payload: item.payload };
  }

  /** Events `name` received so far and not yet used, matching `pred`. */
  pending(name, pred) {
    const m = predicate(pred);
    return this.inbox.peek((i) => i.name === name && m(i.payload)).map((i) => i.payload);
  }

  /** Takes every unused event `name` received so far: [{payload, seq}] in arrival order. */
  drain(name) {
    return this.inbox.peek((i) => i.name === name).map((i) => {
      i.taken = true;
      return { payload: i.payload, seq: i.seq };
    });
  }

  async call(name, payload, ms = WAIT_MS) {
    return (await this.callSeq(name, payload, ms)).args;
  }

  /** Resolves when the transport is closed (by either side). */
  waitClosed(ms = WAIT_MS) {
    return bounded(this.closed, `${this.label} to be closed by the server`, ms);
  }

  /**
   * Logs in: xmpp.login, then xmpp.connection (or throws with the xmpp.error). `answers`:
   * the requests this browser answers itself (["xmpp.ping", "xmpp.discover.client"]).
   */
  async login(user, { resource, password, jid, answers } = {}) {
    const req = { jid: jid ?? bare(user) };
    if (resource !== undefined) req.resource = resource;
    if (password !== undefined) req.password = password;
    if (answers !== undefined) req.answers = answers;
    this.emit('xmpp.login', req);
    const r = await this.nextOf(['xmpp.connection', 'xmpp.error']);
    if (r.name === 'xmpp.error') {
      throw new Error(`${this.label}: xmpp.login ${short(req)} failed: xmpp.error ${short(r.payload)}`);
    }
    const c = r.payload;
    assert.equal(c.status, 'online', `xmpp.connection status: ${short(c)}`);
    assert.equal(c.jid?.user, user, `xmpp.connection jid.user: ${short(c)}`);
    assert.equal(c.jid?.domain, DOMAIN, `xmpp.connection jid.domain: ${short(c)}`);
    assert.equal(typeof c.jid.resource, 'string', `xmpp.connection jid.resource: ${short(c)}`);
    assert.ok(c.jid.resource.length > 0, `empty resource: ${short(c)}`);
    if (resource !== undefined) assert.equal(c.jid.resource, resource, short(c));
    this.user = user;
    this.jid = c.jid;
    this.full = jidStr(c.jid);
    return c;
  }

  /**
   * Initial presence. The ping afterwards is a barrier: the session handles events in
   * order, so once it is answered the session is available for bare-JID messages.
   */
  async available(presence = {}) {
    this.emit('xmpp.presence', presence);
    const r = await this.call('xmpp.ping', {});
    assert.deepEqual(r, [null, true], `${this.label}: xmpp.ping after initial presence`);
  }
}

/** Socket.IO v4 client on /socket.io/ (WebSocket transport only). */
export class SioClient extends JsonClient {
  /** Connects; resolves when the namespace is connected, rejects with the connect_error. */
  static async connect({ user, cookie = true, ns = '/', label, transports = ['websocket'] } = {}) {
    const jwt = cookie === true ? token(user) : cookie || null;
    const c = new SioClient(label ?? `socket.io:${user ?? 'anonymous'}`);
    const socket = io(`${HTTP}${ns === '/' ? '' : ns}`, {
      transports,
      reconnection: false,
      forceNew: true,
      timeout: WAIT_MS,
      extraHeaders: jwt ? { Cookie: `auth_token=${jwt}` } : {},
    });
    c.socket = socket;
    socket.onAny((event, ...args) => c.inbox.push(event, args[0]));
    socket.on('disconnect', (reason) => c._markClosed(reason));
    await bounded(
      new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', (e) => {
          c._markClosed(`connect_error: ${e.message}`);
          const err = new Error(`${c.label}: connect_error: ${e.message}`);
          err.connectError = e;
          reject(err);
        });
      }),
      `${c.label} to connect`,
    );
    return c;
  }

  /** Connects expecting failure: resolves with the connect_error (throws if it connected). */
  static async refused(opts) {
    try {
      const c = await SioClient.connect(opts);
      c.close();
    } catch (e) {
      if (e.connectError) return e.connectError;
      throw e;
    }
    throw new Error(`socket.io connect ${short(opts)} succeeded but should have been refused`);
  }

  emit(name, payload) {
    if (payload === undefined) this.socket.emit(name);
    else this.socket.emit(name, payload);
  }

  async callSeq(name, payload, ms = WAIT_MS) {
    const p = new Promise((resolve) => {
      this.socket.emit(name, payload, (...args) => resolve({ args, seq: ++SEQ }));
    });
    return bounded(p, `the callback of ${name} ${short(payload, 120)} on ${this.label}`, ms, () =>
      this.inbox.recent(),
    );
  }

  get connected() {
    return this.socket.connected;
  }

  close() {
    if (this.socket) this.socket.disconnect();
    clients.delete(this);
  }
}

/** A WebSocket that refuses: resolves with the HTTP status of the refused upgrade. */
export function upgradeStatus(path, { cookie, protocol } = {}) {
  return bounded(
    new Promise((resolve, reject) => {
      const ws = new WebSocket(`${WS}${path}`, protocol ? [protocol] : [], {
        headers: cookie ? { Cookie: `auth_token=${cookie}` } : {},
      });
      ws.on('unexpected-response', (_req, res) => {
        resolve(res.statusCode);
        res.resume();
        ws.terminate();
      });
      ws.on('open', () => {
        resolve(101);
        ws.terminate();
      });
      ws.on('error', (e) => reject(new Error(`upgrade of ${path}: ${e.message}`)));
    }),
    `the upgrade answer of ${path}`,
  );
}

/**
 * Opens a raw WebSocket; rejects with the HTTP status if the upgrade is refused. `onMessage`
 * is attached before the handshake completes: a server may speak first (Engine.IO's open
 * packet), and its frame can be emitted before an `await` continuation runs.
 */
function openWs(url, protocols, headers, label, onMessage) {
  const ws = new WebSocket(url, protocols, { headers });
  if (onMessage) ws.on('message', onMessage);
  return bounded(
    new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => {
        res.resume();
        ws.terminate();
        reject(new Error(`${label}: upgrade refused with HTTP ${res.statusCode}`));
      });
      ws.once('error', (e) => reject(new Error(`${label}: ${e.message}`)));
    }),
    `${label} to open`,
  );
}

/** primus-emitter packets as JSON text frames on the plain WebSocket /ftw. */
export class PrimusClient extends JsonClient {
  static async connect({ user, cookie = true, label } = {}) {
    const jwt = cookie === true ? token(user) : cookie || null;
    const c = new PrimusClient(label ?? `ftw:${user ?? 'anonymous'}`);
    c.acks = new Map();
    c.nextId = 0;
    c.frames = []; // every parsed frame from the server, for shape checks
    c.badFrames = [];
    const onMessage = (data, isBinary) => {
      const text = data.toString();
      let f;
      try {
        f = JSON.parse(text);
      } catch {
        c.badFrames.push(text);
        c.inbox.push('(unparsable frame)', text);
        return;
      }
      if (isBinary) c.badFrames.push(`binary: ${text}`);
      c.frames.push(f);
      if (f && f.type === 1 && c.acks.has(f.id)) {
        const resolve = c.acks.get(f.id);
        c.acks.delete(f.id);
        resolve({ args: f.data, seq: ++SEQ });
      } else if (f && f.type === 0 && Array.isArray(f.data)) {
        c.inbox.push(f.data[0], f.data[1]);
      } else {
        c.badFrames.push(text);
        c.inbox.push('(unexpected frame)', f);
      }
    };
    const ws = await openWs(`${WS}/ftw`, [], jwt ? { Cookie: `auth_token=${jwt}` } : {}, c.label, onMessage);
    c.ws = ws;
    ws.on('close', (code) => c._markClosed(`close ${code}`));
    ws.on('error', () => {});
    return c;
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  emit(name, payload) {
    this.send({ type: 0, data: payload === undefined ? [name] : [name, payload] });
  }

  async callSeq(name, payload, ms = WAIT_MS) {
    const id = ++this.nextId;
    const p = new Promise((resolve) => this.acks.set(id, resolve));
    this.send({ type: 0, data: [name, payload], id });
    return bounded(p, `the ack (id ${id}) of ${name} ${short(payload, 120)} on ${this.label}`, ms, () =>
      this.inbox.recent(),
    );
  }

  get connected() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  close() {
    if (this.ws) this.ws.close();
    clients.delete(this);
  }
}

/** Engine.IO v4 / Socket.IO v5 spoken by hand, frame by frame (answers server pings). */
export class RawSio {
  static async connect({ user, cookie = true, label } = {}) {
    const jwt = cookie === true ? token(user) : cookie || null;
    const c = new RawSio();
    c.label = label ?? `raw-socket.io:${user ?? 'anonymous'}`;
    c.inbox = new Inbox(c.label);
    c.closedReason = null;
    c.closed = new Promise((r) => {
      c._closed = r;
    });
    clients.add(c);
    c.ws = await openWs(
      `${WS}/socket.io/?EIO=4&transport=websocket`,
      [],
      jwt ? { Cookie: `auth_token=${jwt}` } : {},
      c.label,
      (data) => {
        const text = data.toString();
        if (text === '2') c.ws.send('3'); // Engine.IO ping -> pong
        c.inbox.push('frame', text);
      },
    );
    c.ws.on('close', (code) => {
      if (c.closedReason === null) {
        c.closedReason = `close ${code}`;
        c._closed(c.closedReason);
      }
    });
    c.ws.on('error', () => {});
    return c;
  }

  send(text) {
    this.ws.send(text);
  }

  /** The next text frame for which `pred` (string prefix or function) holds. */
  async frame(pred, what, ms = WAIT_MS) {
    const m = typeof pred === 'string' ? (t) => t.startsWith(pred) : pred ?? (() => true);
    const item = await this.inbox.take(
      (i) => m(i.payload),
      `frame ${what ?? (typeof pred === 'string' ? `starting ${JSON.stringify(pred)}` : '')}`,
      ms,
    );
    return item.payload;
  }

  /** Engine.IO open, then the Socket.IO connect of namespace '/'. */
  async handshake() {
    const open = await this.frame('0', 'Engine.IO open packet');
    this.send('40');
    const ok = await this.frame((t) => t.startsWith('40') || t.startsWith('44'), 'Socket.IO CONNECT answer');
    assert.ok(ok.startsWith('40'), `namespace / connect refused: ${ok}`);
    return { open, connect: ok };
  }

  waitClosed(ms = WAIT_MS) {
    return bounded(this.closed, `${this.label} to be closed by the server`, ms);
  }

  close() {
    if (this.ws) this.ws.close();
    clients.delete(this);
  }
}

// ---------------------------------------------------------------------------------------
// XML

export const OPEN = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='${DOMAIN}' version='1.0'/>`;

export function escapeXml(s) {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

export function unescapeXml(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e) => {
    switch (e) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** An attribute of the first (root) start tag, unescaped; undefined if absent. */
export function attr(xml, name) {
  const start = xml.match(/^\s*<[^>]*>/);
  if (!start) return undefined;
  const m = start[0].match(new RegExp(`\\s${name.replace(/[:.]/g, '\\$&')}=(?:'([^']*)'|"([^"]*)")`));
  return m ? unescapeXml(m[1] ?? m[2]) : undefined;
}

/** The start tag of the first descendant element `name` (e.g. `<received .../>`), or undefined. */
export function child(xml, name) {
  const m = xml.slice(1).match(new RegExp(`<${name}(?:\\s[^>]*)?/?>`));
  return m ? m[0] : undefined;
}

/** The unescaped text of the first <tag>…</tag> (or '' for <tag/>); undefined if absent. */
export function textOf(xml, tag) {
  const m = xml.match(new RegExp(`<${tag}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${tag}>)`));
  return m ? unescapeXml(m[1] ?? '') : undefined;
}

/** A raw RFC 7395 client on /xmpp (subprotocol xmpp, cookie auth, SASL PLAIN). */
export class XmlClient {
  static async login(user, resource = 'xml', { presence = true } = {}) {
    const c = new XmlClient();
    c.user = user;
    c.label = `xml:${user}/${resource}`;
    c.inbox = new Inbox(c.label);
    c.closedReason = null;
    c.closed = new Promise((r) => {
      c._closed = r;
    });
    clients.add(c);
    c.ws = await openWs(`${XML_WS}/xmpp`, ['xmpp'], { Cookie: `auth_token=${token(user)}` }, c.label, (data) =>
      c.inbox.push('frame', data.toString()),
    );
    c.ws.on('close', (code) => {
      if (c.closedReason === null) {
        c.closedReason = `close ${code}`;
        c._closed(c.closedReason);
      }
    });
    c.ws.on('error', () => {});
    c.send(OPEN);
    await c.next('<open', 'the first <open/>');
    await c.next('<stream:features', 'the first stream features');
    const auth = Buffer.from(`\0${user}\0x`).toString('base64');
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${auth}</auth>`);
    const s = await c.next((t) => t.includes('<success') || t.includes('<failure'), 'SASL outcome');
    assert.ok(s.includes('<success'), `${c.label}: SASL: ${s}`);
    c.send(OPEN);
    await c.next('<open', 'the second <open/>');
    await c.next('<stream:features', 'the bind features');
    c.send(
      `<iq type='set' id='bind1' xmlns='jabber:client'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`,
    );
    const b = await c.next("id='bind1'", 'the bind result');
    assert.ok(b.includes("type='result'"), `${c.label}: bind: ${b}`);
    c.full = textOf(b, 'jid');
    c.jid = { user, domain: DOMAIN, resource: c.full.split('/')[1] };
    if (presence) {
      c.send('<presence/>');
      await c.next((t) => t.startsWith('<presence') && attr(t, 'from') === c.full, 'own presence echo');
    }
    return c;
  }

  send(xml) {
    this.ws.send(xml);
  }

  /** The next frame containing `pred` (string) or for which `pred(frame)` holds. */
  async next(pred, what, ms = WAIT_MS) {
    const m = typeof pred === 'string' ? (t) => t.includes(pred) : pred;
    const item = await this.inbox.take(
      (i) => m(i.payload),
      `XML ${what ?? (typeof pred === 'string' ? `containing ${JSON.stringify(pred)}` : 'frame')}`,
      ms,
    );
    return item.payload;
  }

  /** The next stanza of kind `name` (message|presence|iq) with the given attribute values. */
  stanza(name, attrs = {}, what) {
    return this.next(
      (t) => t.startsWith(`<${name}`) && Object.entries(attrs).every(([k, v]) => attr(t, k) === v),
      what ?? `<${name}> ${short(attrs)}`,
    );
  }

  waitClosed(ms = WAIT_MS) {
    return bounded(this.closed, `${this.label} to be closed`, ms);
  }

  close() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>");
    }
    if (this.ws) this.ws.close();
    clients.delete(this);
  }
}

// ---------------------------------------------------------------------------------------
// HTTP

export function httpGet(path, headers = {}) {
  return bounded(
    new Promise((resolve, reject) => {
      const req = http.get(`${HTTP}${path}`, { headers, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      });
      req.on('error', (e) => reject(new Error(`GET ${path}: ${e.message}`)));
    }),
    `the HTTP answer to GET ${path}`,
  );
}

// ---------------------------------------------------------------------------------------
// Running

export function closeAll() {
  for (const c of [...clients]) {
    try {
      c.close();
    } catch {
      // best effort
    }
  }
}

function dumpClients() {
  return [...clients].map((c) => c.inbox.recent(8)).join('\n');
}

/** Runs `fn` with the hard timeout; exits 0 on success, 1 on failure, 3 on timeout. */
export function run(name, fn) {
  const hard = setTimeout(() => {
    console.error(`\nFAIL ${name}: hard timeout of ${HARD_MS} ms`);
    console.error(`still waiting for: ${[...waits.values()].join('; ') || '(nothing tracked)'}`);
    console.error(dumpClients());
    closeAll();
    process.exit(3);
  }, HARD_MS);
  log(`scenario ${name} on port ${PORT} (users ${A}, ${B})`);
  Promise.resolve()
    .then(fn)
    .then(
      () => {
        clearTimeout(hard);
        log(`PASS ${name}`);
        closeAll();
        // Let close frames go out, then leave regardless of open handles.
        setTimeout(() => process.exit(0), 50);
      },
      (e) => {
        clearTimeout(hard);
        console.error(`\nFAIL ${name}: ${e && e.stack ? e.stack : e}`);
        if (waits.size) console.error(`still waiting for: ${[...waits.values()].join('; ')}`);
        console.error('recent traffic per client:');
        console.error(dumpClients());
        closeAll();
        setTimeout(() => process.exit(1), 50);
      },
    );
}
