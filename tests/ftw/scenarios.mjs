// XMPP-FTW scenarios against a running aoba: `node scenarios.mjs <scenario>`.
// Driven by tests/ftw.rs, which starts the server and sets AOBA_PORT, AOBA_DOMAIN,
// AOBA_TOKENS (JSON user -> JWT, plus "bad": a token signed with the wrong secret) and
// AOBA_APART ("a,b": two users on different shards). Exit 0 = pass.

import { randomUUID } from 'node:crypto';
import {
  A,
  B,
  DOMAIN,
  MUC,
  TOKENS,
  PrimusClient,
  RawSio,
  SioClient,
  XmlClient,
  assert,
  attr,
  bare,
  child,
  escapeXml,
  httpGet,
  jidObj,
  jidStr,
  log,
  poll,
  run,
  textOf,
  token,
  upgradeStatus,
} from './lib.mjs';

const C = 'carol';
const D = 'dave';
const CHATSTATES = 'http://jabber.org/protocol/chatstates';
const MUC_NS = 'http://jabber.org/protocol/muc';
const CAPS = 'http://jabber.org/protocol/caps';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const XHTML_IM = 'http://jabber.org/protocol/xhtml-im';
const XHTML = 'http://www.w3.org/1999/xhtml';
const NOTHING_WAITING = "No request with this 'id' from 'to' is waiting for an answer";

/** An XML ping with id `id` to `to`. */
const pingTo = (to, id) => `<iq type='get' id='${id}' to='${to}'><ping xmlns='urn:xmpp:ping'/></iq>`;

/** The condition element of the <error/> in an XML stanza, and the error's type. */
function xmlError(stanza) {
  const m = stanza.match(/<error[^>]*>\s*<([a-z-]+) xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/);
  return { type: attr(child(stanza, 'error') ?? '<x>', 'type'), condition: m?.[1] };
}

/** A logged-in Socket.IO client (cookie auth) for `user`. */
async function sio(user, resource, { available = false } = {}) {
  const c = await SioClient.connect({ user });
  await c.login(user, { resource });
  if (available) await c.available();
  return c;
}

/** Status codes of an xmpp.muc.roster payload, as numbers. */
const codes = (s) => (Array.isArray(s) ? s.map(Number) : []);

/** A field value of a data form as XMPP-FTW renders it (string, or array of strings). */
const fieldValue = (f) => (Array.isArray(f?.value) ? f.value[0] : f?.value);

/** The parsed Socket.IO EVENT in a raw frame `42[...]` (namespace '/'), or null. */
function sioEvent(frame) {
  const m = /^42(\d*)(\[[\s\S]*)$/.exec(frame);
  if (!m) return null;
  try {
    return JSON.parse(m[2]);
  } catch {
    return null;
  }
}

function assertClientError(err, description, request, what) {
  assert.equal(err?.type, 'modify', `${what}: ${JSON.stringify(err)}`);
  assert.equal(err?.condition, 'client-error', `${what}: ${JSON.stringify(err)}`);
  assert.equal(err?.description, description, `${what}: ${JSON.stringify(err)}`);
  if (request !== null && typeof request === 'object') {
    assert.deepEqual(err.request, request, `${what}: request echo`);
  }
}

const scenarios = {
  // Engine.IO v4 / Socket.IO v5 on the wire, by hand.
  async engine_io() {
    const c = await RawSio.connect({ user: A });
    const open = await c.frame('0', 'Engine.IO open packet');
    const o = JSON.parse(open.slice(1));
    assert.equal(typeof o.sid, 'string', open);
    assert.ok(o.sid.length > 0, open);
    assert.deepEqual(o.upgrades, [], `no upgrades: ${open}`);
    for (const k of ['pingInterval', 'pingTimeout', 'maxPayload']) {
      assert.ok(Number.isInteger(o[k]) && o[k] > 0, `${k} in ${open}`);
    }
    c.send('40');
    const conn = await c.frame((t) => t.startsWith('40') || t.startsWith('44'), 'CONNECT answer for /');
    assert.match(conn, /^40\{/, conn);
    assert.equal(typeof JSON.parse(conn.slice(2)).sid, 'string', conn);
    log('namespace / connected:', conn);
    c.send('40/nope,');
    const bad = await c.frame((t) => t.startsWith('44/nope,'), 'CONNECT_ERROR for /nope');
    assert.deepEqual(JSON.parse(bad.slice('44/nope,'.length)), { message: 'Invalid namespace' });
    // An acknowledged event before login: the ack carries the error.
    c.send('421["xmpp.roster.get",{}]');
    const ack = await c.frame('431', 'ACK 1 of xmpp.roster.get');
    const args = JSON.parse(ack.slice(3));
    assert.equal(args[0]?.type, 'connection', ack);
    assert.equal(args[0]?.condition, 'not-connected', ack);
    // Without an ack id: an xmpp.error event.
    c.send(`42["xmpp.chat.message",{"to":"${bare(B)}","content":"early"}]`);
    const ev = await c.frame((t) => sioEvent(t)?.[0] === 'xmpp.error', 'event xmpp.error');
    assert.equal(sioEvent(ev)[1]?.condition, 'not-connected', ev);
    // And then a login over the raw wire.
    c.send(`42["xmpp.login",{"jid":"${bare(A)}","resource":"raw"}]`);
    const online = sioEvent(await c.frame((t) => sioEvent(t)?.[0] === 'xmpp.connection', 'xmpp.connection'));
    assert.deepEqual(online[1], { status: 'online', jid: jidObj(A, 'raw') });
    // socket.io-client sees the refused namespace as connect_error.
    const e = await SioClient.refused({ user: A, ns: '/nope', label: 'socket.io:/nope' });
    assert.equal(e.message, 'Invalid namespace');
  },

  async login_cookie() {
    const c1 = await SioClient.connect({ user: A });
    c1.emit('xmpp.login', { jid: bare(A), resource: 'web' });
    const online = await c1.next('xmpp.connection');
    assert.deepEqual(online, { status: 'online', jid: jidObj(A, 'web') });
    // The localpart alone, no resource, no password: the cookie is the credential.
    const c2 = await SioClient.connect({ user: A, label: 'socket.io:second' });
    const o2 = await c2.login(A, { jid: A });
    assert.notEqual(o2.jid.resource, 'web', 'a second session gets its own resource');
    assert.ok(c1.connected, 'the first session is still connected');
    // A cookie for A cannot log in as B.
    const c3 = await SioClient.connect({ user: A, label: 'socket.io:impostor' });
    c3.emit('xmpp.login', { jid: bare(B) });
    const e = await c3.next('xmpp.error');
    assert.equal(e.type, 'auth', JSON.stringify(e));
    assert.equal(e.condition, 'login-fail', JSON.stringify(e));
    assert.equal(c3.pending('xmpp.connection').length, 0, 'no xmpp.connection for the impostor');
  },

  async login_password() {
    const c = await SioClient.connect({ cookie: false, label: 'socket.io:no-cookie' });
    const fail = { type: 'auth', condition: 'login-fail', description: 'XMPP authentication fail' };
    c.emit('xmpp.login', { jid: bare(A), password: TOKENS.bad });
    assert.deepEqual(await c.next('xmpp.error'), fail, 'token signed with the wrong secret');
    c.emit('xmpp.login', { jid: bare(A), password: token(B) });
    assert.deepEqual(await c.next('xmpp.error'), fail, "another user's token");
    assert.ok(c.connected, 'the socket stays open after a failed login');
    const ok = await c.login(A, { password: token(A), resource: 'pw' });
    assert.deepEqual(ok, { status: 'online', jid: jidObj(A, 'pw') });
    assert.equal(c.pending('xmpp.error').length, 0);
    // The same over /ftw.
    const p = await PrimusClient.connect({ cookie: false, label: 'ftw:no-cookie' });
    p.emit('xmpp.login', { jid: bare(B), password: TOKENS.bad });
    assert.deepEqual(await p.next('xmpp.error'), fail);
    await p.login(B, { password: token(B) });
  },

  async bad_cookie() {
    const e = await SioClient.refused({ cookie: TOKENS.bad, label: 'socket.io:bad-cookie' });
    log('socket.io-client connect_error:', e.message);
    const sioPath = '/socket.io/?EIO=4&transport=websocket';
    assert.equal(await upgradeStatus(sioPath, { cookie: TOKENS.bad }), 401, `${sioPath} bad cookie`);
    assert.equal(await upgradeStatus(sioPath, { cookie: 'not-a-jwt' }), 401, `${sioPath} garbage cookie`);
    assert.equal(await upgradeStatus('/ftw', { cookie: TOKENS.bad }), 401, '/ftw bad cookie');
    // The same upgrades with a good cookie (or none) succeed: the 401 is about the cookie.
    assert.equal(await upgradeStatus(sioPath, { cookie: token(A) }), 101, `${sioPath} good cookie`);
    assert.equal(await upgradeStatus('/ftw', { cookie: token(A) }), 101, '/ftw good cookie');
    assert.equal(await upgradeStatus('/ftw', {}), 101, '/ftw without cookie');
  },

  async not_connected() {
    for (const [c, user] of [
      [await SioClient.connect({ user: A }), A],
      [await PrimusClient.connect({ user: B }), B],
    ]) {
      const r = await c.call('xmpp.roster.get', {});
      assert.equal(r[0]?.type, 'connection', `${c.label}: ${JSON.stringify(r)}`);
      assert.equal(r[0]?.condition, 'not-connected', `${c.label}: ${JSON.stringify(r)}`);
      c.emit('xmpp.chat.message', { to: bare(C), content: 'too early' });
      const e = await c.next('xmpp.error');
      assert.equal(e.type, 'connection', JSON.stringify(e));
      assert.equal(e.condition, 'not-connected', JSON.stringify(e));
      assert.ok(c.connected, `${c.label} stays open`);
      await c.login(user);
    }
  },

  async polling_refused() {
    const cookie = { Cookie: `auth_token=${token(A)}` };
    const r4 = await httpGet('/socket.io/?EIO=4&transport=polling', cookie);
    assert.equal(r4.status, 400, `EIO=4 polling: ${r4.status} ${r4.body}`);
    assert.deepEqual(JSON.parse(r4.body), { code: 0, message: 'Transport unknown' });
    const r3 = await httpGet('/socket.io/?EIO=3&transport=polling', cookie);
    assert.equal(r3.status, 400, `EIO=3 polling: ${r3.status} ${r3.body}`);
    assert.deepEqual(JSON.parse(r3.body), { code: 5, message: 'Unsupported protocol version' });
    // socket.io-client restricted to polling cannot connect.
    const e = await SioClient.refused({ user: A, transports: ['polling'], label: 'socket.io:polling' });
    log('polling-only client:', e.message);
  },

  async primus() {
    const a = await PrimusClient.connect({ user: A });
    await a.login(A, { resource: 'ftw-a' });
    const b = await PrimusClient.connect({ cookie: false, label: `ftw:${B} (password)` });
    await b.login(B, { password: token(B), resource: 'ftw-b' });
    // With a callback: the ack carries (null, {id}).
    const r = await a.call('xmpp.chat.message', { to: b.full, content: 'over primus' });
    assert.equal(r[0], null, JSON.stringify(r));
    assert.equal(typeof r[1]?.id, 'string', JSON.stringify(r));
    const m = await b.next('xmpp.chat.message', { content: 'over primus' });
    assert.deepEqual(m.from, jidObj(A, 'ftw-a'));
    assert.equal(m.id, r[1].id, 'the id in the ack is the id the recipient sees');
    // Without a callback.
    b.emit('xmpp.chat.message', { to: a.full, content: 'no ack wanted' });
    const m2 = await a.next('xmpp.chat.message', { content: 'no ack wanted' });
    assert.deepEqual(m2.from, jidObj(B, 'ftw-b'));
    // To the bare JID once available.
    await b.available();
    const r3 = await a.call('xmpp.chat.message', { to: bare(B), content: 'to the bare JID' });
    assert.equal(r3[0], null);
    assert.equal((await b.next('xmpp.chat.message', { content: 'to the bare JID' })).id, r3[1].id);
    // Frame shapes: events {type:0, data:[name, payload]} without id, acks {type:1, id, data}.
    for (const c of [a, b]) {
      assert.deepEqual(c.badFrames, [], `${c.label}: frames that are not primus-emitter packets`);
      for (const f of c.frames) {
        if (f.type === 0) {
          assert.ok(Array.isArray(f.data) && f.data.length === 2, JSON.stringify(f));
          assert.equal(typeof f.data[0], 'string', JSON.stringify(f));
          assert.ok(!('id' in f), `server events carry no id: ${JSON.stringify(f)}`);
        } else {
          assert.equal(f.type, 1, JSON.stringify(f));
          assert.ok(Number.isInteger(f.id) && Array.isArray(f.data), JSON.stringify(f));
        }
      }
    }
    for (const c of [a, b]) {
      assert.equal(c.frames.filter((f) => f.type === 1).length, c.nextId, `${c.label}: one ack per callback`);
    }
  },

  /**
   * Logins with the token in the JSON (no cookie) on a node that is not the user's home
   * (issue 14): relayed to the home with the login event, which answers it; a bad token is
   * refused where the client landed and the socket stays usable. Then the session works:
   * presence, a message each way with an XML client of another node. The same over /ftw.
   */
  async login_in_json_relayed() {
    const fail = { type: 'auth', condition: 'login-fail', description: 'XMPP authentication fail' };
    const c = await SioClient.connect({ cookie: false, label: 'socket.io:json-login' });
    c.emit('xmpp.login', { jid: bare(A), password: TOKENS.bad });
    assert.deepEqual(await c.next('xmpp.error'), fail, 'token signed with the wrong secret');
    const ok = await c.login(A, { password: token(A), resource: 'pw' });
    assert.deepEqual(ok, { status: 'online', jid: jidObj(A, 'pw') });
    await c.available();
    const x = await XmlClient.login(B, 'xml');
    x.send(`<message to='${c.full}' type='chat' id='jl-1'><body>to json</body></message>`);
    const m = await c.next('xmpp.chat.message', { id: 'jl-1' });
    assert.equal(m.content, 'to json');
    const r = await c.call('xmpp.chat.message', { to: x.full, content: 'from json' });
    assert.equal(r[0], null, JSON.stringify(r));
    const s = await x.stanza('message', { id: r[1].id });
    assert.equal(attr(s, 'from'), c.full, s);
    assert.equal(textOf(s, 'body'), 'from json', s);
    const p = await PrimusClient.connect({ cookie: false, label: 'ftw:json-login' });
    p.emit('xmpp.login', { jid: bare(A), password: TOKENS.bad });
    assert.deepEqual(await p.next('xmpp.error'), fail);
    const okp = await p.login(A, { password: token(A), resource: 'pr' });
    assert.deepEqual(okp, { status: 'online', jid: jidObj(A, 'pr') });
    const r2 = await p.call('xmpp.chat.message', { to: x.full, content: 'from primus' });
    assert.equal(r2[0], null, JSON.stringify(r2));
    const s2 = await x.stanza('message', { id: r2[1].id });
    assert.equal(textOf(s2, 'body'), 'from primus', s2);
  },

  async chat_with_xml() {
    const a = await sio(A, 'json');
    const x = await XmlClient.login(B, 'xml');
    // Before its initial presence the JSON session gets full-JID messages only.
    x.send(`<message to='${bare(A)}' type='chat' id='off-1'><body>while unavailable</body></message>`);
    x.send(`<message to='${a.full}' type='chat' id='direct-1'><body>to the resource</body></message>`);
    const d = await a.next('xmpp.chat.message', { id: 'direct-1' });
    assert.deepEqual(d.from, jidObj(B, 'xml'));
    assert.equal(d.content, 'to the resource');
    assert.deepEqual(a.pending('xmpp.chat.message', { id: 'off-1' }), [], 'bare JID message before presence');
    await a.available();
    const off = await a.next('xmpp.chat.message', { id: 'off-1' });
    assert.equal(off.content, 'while unavailable');
    assert.deepEqual(off.from, jidObj(B, 'xml'));
    assert.equal(typeof off.delay?.when, 'string', `offline message has delay.when: ${JSON.stringify(off)}`);
    // XML -> JSON: escaping and non-ASCII survive, id and from are kept.
    const text = `Hi & <bye> "x" 'y' — こんにちは 🌸`;
    x.send(`<message to='${bare(A)}' type='chat' id='x-1'><body>${escapeXml(text)}</body></message>`);
    const m = await a.next('xmpp.chat.message', { id: 'x-1' });
    assert.deepEqual(m.from, jidObj(B, 'xml'));
    assert.equal(m.content, text);
    assert.equal(m.delay, undefined, 'a live message has no delay');
    // JSON -> XML, full JID.
    const back = 'Back & <forth> ☃ "q"';
    const r = await a.call('xmpp.chat.message', { to: x.full, content: back });
    assert.equal(r[0], null, JSON.stringify(r));
    const id = r[1]?.id;
    assert.ok(typeof id === 'string' && id.length > 0, JSON.stringify(r));
    const s = await x.stanza('message', { id });
    assert.equal(attr(s, 'from'), a.full, s);
    assert.equal(attr(s, 'to'), x.full, s);
    assert.equal(attr(s, 'type'), 'chat', s);
    assert.equal(textOf(s, 'body'), back, s);
    // JSON -> XML, bare JID.
    const r2 = await a.call('xmpp.chat.message', { to: bare(B), content: 'to your bare JID' });
    assert.equal(r2[0], null);
    assert.notEqual(r2[1].id, id, 'every message gets a fresh id');
    const s2 = await x.stanza('message', { id: r2[1].id });
    assert.equal(attr(s2, 'from'), a.full, s2);
    assert.equal(attr(s2, 'to'), bare(B), s2);
    assert.equal(textOf(s2, 'body'), 'to your bare JID', s2);
  },

  async receipts() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    // JSON asks for a receipt, XML sends it.
    const r = await a.call('xmpp.chat.message', { to: x.full, content: 'please confirm', receipt: true });
    assert.equal(r[0], null, JSON.stringify(r));
    const id = r[1].id;
    const s = await x.stanza('message', { id });
    assert.ok(child(s, 'request')?.includes('urn:xmpp:receipts'), `receipt request in ${s}`);
    assert.equal(textOf(s, 'body'), 'please confirm', s);
    x.send(`<message to='${a.full}' id='rcpt-1'><received xmlns='urn:xmpp:receipts' id='${id}'/></message>`);
    assert.deepEqual(await a.next('xmpp.chat.receipt'), { from: jidObj(B, 'xml'), id });
    // XML asks, JSON sends the receipt.
    x.send(
      `<message to='${a.full}' type='chat' id='x-r1'><body>confirm this</body><request xmlns='urn:xmpp:receipts'/></message>`,
    );
    const m = await a.next('xmpp.chat.message', { id: 'x-r1' });
    assert.equal(m.receipt, true, JSON.stringify(m));
    assert.equal(m.content, 'confirm this');
    a.emit('xmpp.chat.receipt', { to: x.full, id: 'x-r1' });
    const got = await x.next(
      (t) => t.startsWith('<message') && attr(child(t, 'received') ?? '<x>', 'id') === 'x-r1',
      'a <received id=x-r1/> message',
    );
    assert.ok(child(got, 'received').includes('urn:xmpp:receipts'), got);
    assert.equal(attr(got, 'from'), a.full, got);
    assert.equal(attr(got, 'to'), x.full, got);
    assert.equal(textOf(got, 'body'), undefined, `a receipt has no body: ${got}`);
    // A plain message does not ask for one.
    x.send(`<message to='${a.full}' type='chat' id='x-r2'><body>no receipt</body></message>`);
    const m2 = await a.next('xmpp.chat.message', { id: 'x-r2' });
    assert.ok(m2.receipt === undefined || m2.receipt === false, JSON.stringify(m2));
  },

  async chat_state_and_correction() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    // JSON -> XML: a state alone, content with a state, a correction.
    const r0 = await a.call('xmpp.chat.message', { to: x.full, state: 'composing' });
    assert.equal(r0[0], null, JSON.stringify(r0));
    const s0 = await x.stanza('message', { id: r0[1].id });
    assert.ok(child(s0, 'composing')?.includes(CHATSTATES), s0);
    assert.equal(textOf(s0, 'body'), undefined, `no body in a bare chat state: ${s0}`);
    const r1 = await a.call('xmpp.chat.message', { to: x.full, content: 'teh typo', state: 'active' });
    const s1 = await x.stanza('message', { id: r1[1].id });
    assert.equal(textOf(s1, 'body'), 'teh typo', s1);
    assert.ok(child(s1, 'active')?.includes(CHATSTATES), s1);
    const r2 = await a.call('xmpp.chat.message', { to: x.full, content: 'the typo', replace: r1[1].id });
    assert.notEqual(r2[1].id, r1[1].id, 'a correction is a new message');
    const s2 = await x.stanza('message', { id: r2[1].id });
    assert.equal(textOf(s2, 'body'), 'the typo', s2);
    const rep = child(s2, 'replace');
    assert.ok(rep?.includes('urn:xmpp:message-correct:0'), s2);
    assert.equal(attr(rep, 'id'), r1[1].id, s2);
    // XML -> JSON.
    x.send(`<message to='${a.full}' type='chat' id='st-1'><paused xmlns='${CHATSTATES}'/></message>`);
    const m0 = await a.next('xmpp.chat.message', { id: 'st-1' });
    assert.equal(m0.state, 'paused', JSON.stringify(m0));
    assert.ok(!('content' in m0), `no content for a bare chat state: ${JSON.stringify(m0)}`);
    assert.deepEqual(m0.from, jidObj(B, 'xml'));
    x.send(
      `<message to='${a.full}' type='chat' id='c-1'><body>colour</body><active xmlns='${CHATSTATES}'/></message>`,
    );
    const m1 = await a.next('xmpp.chat.message', { id: 'c-1' });
    assert.equal(m1.content, 'colour');
    assert.equal(m1.state, 'active');
    x.send(
      `<message to='${a.full}' type='chat' id='c-2'><body>color</body><replace xmlns='urn:xmpp:message-correct:0' id='c-1'/></message>`,
    );
    const m2 = await a.next('xmpp.chat.message', { id: 'c-2' });
    assert.equal(m2.content, 'color');
    assert.equal(m2.replace, 'c-1');
  },

  async presence() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const fromX = (p) => jidStr(p.from) === x.full;
    const fromA = (full) => (t) => t.startsWith('<presence') && attr(t, 'from') === full;
    // B (XML) subscribes to A (JSON), A approves.
    x.send(`<presence to='${bare(A)}' type='subscribe'/>`);
    const req = await a.next('xmpp.presence.subscribe');
    assert.deepEqual(req.from, jidObj(B), JSON.stringify(req));
    a.emit('xmpp.presence.subscribed', { to: bare(B) });
    await x.stanza('presence', { type: 'subscribed', from: bare(A) });
    const ap = await x.next((t) => fromA(a.full)(t) && attr(t, 'type') === undefined, "A's presence after approval");
    log('XML sees JSON presence:', ap);
    // A subscribes to B, B approves.
    a.emit('xmpp.presence.subscribe', { to: bare(B) });
    await x.stanza('presence', { type: 'subscribe', from: bare(A) });
    x.send(`<presence to='${bare(A)}' type='subscribed'/>`);
    assert.deepEqual((await a.next('xmpp.presence.subscribed')).from, jidObj(B));
    await a.next('xmpp.presence', (p) => fromX(p) && p.show !== 'offline');
    // XML -> JSON presence changes.
    x.send('<presence><show>away</show><status>lunch</status></presence>');
    const away = await a.next('xmpp.presence', (p) => fromX(p) && p.show === 'away');
    assert.equal(away.status, 'lunch', JSON.stringify(away));
    x.send("<presence type='unavailable'/>");
    await a.next('xmpp.presence', (p) => fromX(p) && p.show === 'offline');
    x.send('<presence/>');
    const back = await a.next('xmpp.presence', fromX);
    assert.notEqual(back.show, 'offline', JSON.stringify(back));
    // B's new initial presence probes A: the JSON session's presence answers.
    await x.next(fromA(a.full), "A's presence (probe answer) after B's new initial presence");
    // JSON -> XML presence changes.
    a.emit('xmpp.presence', { show: 'dnd', status: 'busy', priority: 3 });
    const dnd = await x.next((t) => fromA(a.full)(t) && textOf(t, 'show') === 'dnd', "A's <show>dnd</show>");
    assert.equal(textOf(dnd, 'status'), 'busy', dnd);
    assert.equal(textOf(dnd, 'priority'), '3', dnd);
    assert.equal(attr(dnd, 'type'), undefined, dnd);
    // xmpp.presence.get: A's presence sent to B (directed), or B's presence read back.
    assert.deepEqual(a.pending('xmpp.presence', fromX), [], 'nothing left over from B before presence.get');
    assert.deepEqual(x.inbox.peek((i) => fromA(a.full)(i.payload)), [], 'nothing left over from A');
    a.emit('xmpp.presence.get', { to: x.full });
    const how = await poll(
      () =>
        (x.inbox.peek((i) => fromA(a.full)(i.payload)).length && 'directed presence reached B') ||
        (a.pending('xmpp.presence', fromX).length && "B's presence came back to A"),
      'a result of xmpp.presence.get',
    );
    log('xmpp.presence.get:', how);
    // xmpp.logout with a callback: (null, true), then the socket closes; B sees A go.
    assert.deepEqual(await a.call('xmpp.logout', {}), [null, true]);
    await a.waitClosed();
    await x.next((t) => fromA(a.full)(t) && attr(t, 'type') === 'unavailable', "A's unavailable after logout");
    // A second session that just disconnects.
    const a2 = await sio(A, 'json2', { available: true });
    await x.next((t) => fromA(a2.full)(t) && attr(t, 'type') === undefined, "A's second session online");
    a2.close();
    await x.next((t) => fromA(a2.full)(t) && attr(t, 'type') === 'unavailable', "A's second session offline");
  },

  async roster() {
    const a = await sio(A, 'ra', { available: true });
    const b = await sio(B, 'rb', { available: true });
    assert.deepEqual(await a.call('xmpp.roster.get', {}), [null, []]);
    assert.deepEqual(await b.call('xmpp.roster.get', {}), [null, []]);
    const isB = (extra = {}) => ({ jid: jidObj(B), ...extra });
    const isA = (extra = {}) => ({ jid: jidObj(A), ...extra });
    // add -> push and get
    assert.deepEqual(await a.call('xmpp.roster.add', { jid: bare(B), name: 'Bob', groups: ['Friends'] }), [
      null,
      true,
    ]);
    assert.deepEqual(await a.next('xmpp.roster.push', isB()), {
      jid: jidObj(B),
      subscription: 'none',
      name: 'Bob',
      groups: ['Friends'],
    });
    const g1 = await a.call('xmpp.roster.get', {});
    assert.equal(g1[0], null);
    assert.deepEqual(g1[1], [{ jid: jidObj(B), subscription: 'none', name: 'Bob', groups: ['Friends'] }]);
    // edit replaces name and groups
    assert.deepEqual(
      await a.call('xmpp.roster.edit', { jid: bare(B), name: 'Bobby', groups: ['Work', 'Friends'] }),
      [null, true],
    );
    const e = await a.next('xmpp.roster.push', isB({ name: 'Bobby' }));
    assert.deepEqual([...e.groups].sort(), ['Friends', 'Work']);
    // A subscribes to B; B approves.
    a.emit('xmpp.presence.subscribe', { to: bare(B) });
    await a.next('xmpp.roster.push', isB({ subscription: 'none', ask: 'subscribe' }));
    assert.deepEqual((await b.next('xmpp.presence.subscribe')).from, jidObj(A));
    b.emit('xmpp.presence.subscribed', { to: bare(A) });
    await b.next('xmpp.roster.push', isA({ subscription: 'from' }));
    const to = await a.next('xmpp.roster.push', isB({ subscription: 'to' }));
    assert.ok(!('ask' in to), `no ask after approval: ${JSON.stringify(to)}`);
    assert.deepEqual((await a.next('xmpp.presence.subscribed')).from, jidObj(B));
    await a.next('xmpp.presence', { from: jidObj(B, 'rb') });
    // B subscribes back; A approves.
    b.emit('xmpp.presence.subscribe', { to: bare(A) });
    assert.deepEqual((await a.next('xmpp.presence.subscribe')).from, jidObj(B));
    a.emit('xmpp.presence.subscribed', { to: bare(B) });
    await a.next('xmpp.roster.push', isB({ subscription: 'both' }));
    await b.next('xmpp.roster.push', isA({ subscription: 'both' }));
    await b.next('xmpp.presence', { from: jidObj(A, 'ra') });
    const g2 = await a.call('xmpp.roster.get', {});
    const item = g2[1].find((i) => i.jid?.user === B);
    assert.equal(item?.subscription, 'both', JSON.stringify(g2));
    assert.equal(item.name, 'Bobby');
    assert.deepEqual([...(item.groups ?? [])].sort(), ['Friends', 'Work']);
    // A unsubscribes from B.
    a.emit('xmpp.presence.unsubscribe', { to: bare(B) });
    await a.next('xmpp.roster.push', isB({ subscription: 'from' }));
    assert.deepEqual((await b.next('xmpp.presence.unsubscribe')).from, jidObj(A));
    await b.next('xmpp.roster.push', isA({ subscription: 'to' }));
    await a.next('xmpp.presence', { from: jidObj(B, 'rb'), show: 'offline' });
    // A cancels B's subscription.
    a.emit('xmpp.presence.unsubscribed', { to: bare(B) });
    await a.next('xmpp.roster.push', isB({ subscription: 'none' }));
    assert.deepEqual((await b.next('xmpp.presence.unsubscribed')).from, jidObj(A));
    await b.next('xmpp.roster.push', isA({ subscription: 'none' }));
    // remove
    assert.deepEqual(await a.call('xmpp.roster.remove', { jid: bare(B) }), [null, true]);
    await a.next('xmpp.roster.push', isB({ subscription: 'remove' }));
    assert.deepEqual(await a.call('xmpp.roster.get', {}), [null, []]);
  },

  async muc() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const fromRoom = (nick, pred = () => true) => (t) => attr(t, 'from') === `${room}/${nick}` && pred(t);
    // JSON creates and joins (the test config creates rooms unlocked).
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    const me = await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    assert.ok(codes(me.status).includes(110), `own presence has 110: ${JSON.stringify(me)}`);
    assert.equal(me.role, 'moderator', JSON.stringify(me));
    assert.equal(me.affiliation, 'owner', JSON.stringify(me));
    // XML joins: it sees alice, alice sees it.
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    const seeA = await x.next(fromRoom('alice', (t) => t.startsWith('<presence')), 'presence of alice');
    assert.equal(attr(child(seeA, 'item'), 'affiliation'), 'owner', seeA);
    await x.next('<subject', 'the subject that ends the join');
    const bob = await a.next('xmpp.muc.roster', { room, nick: 'bob' });
    assert.equal(bob.role, 'participant', JSON.stringify(bob));
    assert.equal(bob.affiliation, 'none', JSON.stringify(bob));
    if (bob.jid !== undefined) assert.deepEqual(bob.jid, jidObj(B, 'xml'));
    // Room messages both ways.
    a.emit('xmpp.muc.message', { room, content: 'hello room' });
    const gx = await x.next(
      fromRoom('alice', (t) => t.startsWith('<message') && textOf(t, 'body') === 'hello room'),
      'groupchat from alice',
    );
    assert.equal(attr(gx, 'type'), 'groupchat', gx);
    const ga = await a.next('xmpp.muc.message', { room, nick: 'alice', content: 'hello room' });
    assert.equal(ga.private, false, JSON.stringify(ga));
    assert.equal(ga.id, attr(gx, 'id'), 'both occupants see the same id');
    x.send(`<message to='${room}' type='groupchat' id='g-1'><body>hi from XML &amp; co</body></message>`);
    const gb = await a.next('xmpp.muc.message', { room, nick: 'bob' });
    assert.equal(gb.content, 'hi from XML & co');
    assert.equal(gb.private, false);
    assert.equal(gb.id, 'g-1');
    // Private messages both ways.
    x.send(`<message to='${room}/alice' type='chat' id='pm-1'><body>psst</body></message>`);
    const pm = await a.next('xmpp.muc.message', { room, nick: 'bob', private: true });
    assert.equal(pm.content, 'psst');
    a.emit('xmpp.muc.message', { room, to: 'bob', content: 'psst back' });
    const px = await x.next(
      fromRoom('alice', (t) => t.startsWith('<message') && textOf(t, 'body') === 'psst back'),
      'private message from alice',
    );
    assert.equal(attr(px, 'type'), 'chat', px);
    // Subject both ways.
    a.emit('xmpp.muc.subject', { room, subject: 'Topic one' });
    await x.next(fromRoom('alice', (t) => textOf(t, 'subject') === 'Topic one'), 'subject Topic one');
    await a.next('xmpp.muc.subject', { room, subject: 'Topic one' });
    x.send(`<message to='${room}' type='groupchat'><subject>Topic two</subject></message>`);
    await a.next('xmpp.muc.subject', { room, subject: 'Topic two' });
    // Configuration.
    const cfg = await a.call('xmpp.muc.room.config.get', { room });
    assert.equal(cfg[0], null, JSON.stringify(cfg));
    assert.ok(Array.isArray(cfg[1]?.fields), JSON.stringify(cfg));
    assert.ok(
      cfg[1].fields.some((f) => f.var === 'muc#roomconfig_roomname'),
      JSON.stringify(cfg[1].fields.map((f) => f.var)),
    );
    assert.deepEqual(
      await a.call('xmpp.muc.room.config.set', {
        room,
        form: [{ var: 'muc#roomconfig_roomname', value: 'FTW room' }],
      }),
      [null, true],
    );
    const cfg2 = await a.call('xmpp.muc.room.config.get', { room });
    assert.equal(fieldValue(cfg2[1].fields.find((f) => f.var === 'muc#roomconfig_roomname')), 'FTW room');
    // Affiliation, then role.
    assert.deepEqual(
      await a.call('xmpp.muc.affiliation', { room, jid: bare(B), affiliation: 'member' }),
      [null, true],
    );
    await a.next('xmpp.muc.roster', { room, nick: 'bob', affiliation: 'member' });
    await x.next(
      fromRoom('bob', (t) => attr(child(t, 'item') ?? '<x>', 'affiliation') === 'member'),
      'own presence as member',
    );
    assert.deepEqual(await a.call('xmpp.muc.role.set', { room, nick: 'bob', role: 'visitor' }), [null, true]);
    await a.next('xmpp.muc.roster', { room, nick: 'bob', role: 'visitor' });
    await x.next(
      fromRoom('bob', (t) => attr(child(t, 'item') ?? '<x>', 'role') === 'visitor'),
      'own presence as visitor',
    );
    // Leaving: XML, then JSON.
    x.send(`<presence to='${room}/bob' type='unavailable'/>`);
    await a.next('xmpp.muc.roster', { room, nick: 'bob', status: 'unavailable' });
    a.emit('xmpp.muc.leave', { room });
    await a.next('xmpp.muc.roster', { room, nick: 'alice', status: 'unavailable' });
    // Destroy a second room with the XML occupant in it.
    const room2 = `group-${randomUUID()}@${MUC}`;
    a.emit('xmpp.muc.join', { room: room2, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room: room2, nick: 'alice' });
    x.send(`<presence to='${room2}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room2, 'subject of room2');
    await a.next('xmpp.muc.roster', { room: room2, nick: 'bob' });
    assert.deepEqual(await a.call('xmpp.muc.destroy', { room: room2, reason: 'done here' }), [null, true]);
    const d = await x.next(
      (t) => attr(t, 'from') === `${room2}/bob` && attr(t, 'type') === 'unavailable',
      'unavailable from the destroyed room',
    );
    assert.ok(child(d, 'destroy'), `destroy element: ${d}`);
    const dd = await a.next('xmpp.muc.destroy', { room: room2 });
    assert.equal(dd.reason, 'done here', JSON.stringify(dd));
    // One destroy per occupant (XEP-0045 §10.9), checked after a round trip.
    assert.deepEqual(await a.call('xmpp.ping', {}), [null, true]);
    assert.equal(a.drain('xmpp.muc.destroy').length, 0, 'a second xmpp.muc.destroy');
    // Having left, the session may not talk to the room.
    const gone = await a.call('xmpp.muc.message', { room, content: 'anyone?' });
    assertClientError(gone[0], 'Not in room', { room, content: 'anyone?' }, 'message after leaving');
  },

  async muc_invite_and_errors() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    // JSON invites XML (mediated, XEP-0045 §7.8.2): it comes from the room, naming alice.
    a.emit('xmpp.muc.invite', { room, to: bare(B), reason: 'come in' });
    const inv = await x.next((t) => t.includes('<invite') && attr(t, 'from') === room, 'invitation');
    assert.equal(attr(child(inv, 'invite'), 'from'), a.full, inv);
    assert.equal(textOf(inv, 'reason'), 'come in', inv);
    // XML declines: the JSON inviter gets xmpp.muc.invite.decline.
    x.send(`<message to='${room}'><x xmlns='${MUC_NS}#user'><decline to='${a.full}'><reason>busy</reason></decline></x></message>`);
    const dec = await a.next('xmpp.muc.invite.decline', { room });
    assert.deepEqual(dec.from, jidObj(B, 'xml'), JSON.stringify(dec));
    assert.equal(dec.reason, 'busy', JSON.stringify(dec));
    // XML joins and invites a second JSON user, who sees xmpp.muc.invite and declines.
    const c = await sio(C, 'json', { available: true });
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'subject after join');
    x.send(`<message to='${room}'><x xmlns='${MUC_NS}#user'><invite to='${bare(C)}'><reason>hi carol</reason></invite></x></message>`);
    const got = await c.next('xmpp.muc.invite', { room });
    assert.deepEqual(got.from, jidObj(B, 'xml'), JSON.stringify(got));
    assert.equal(got.reason, 'hi carol', JSON.stringify(got));
    c.emit('xmpp.muc.invite.decline', { room, to: x.full, reason: 'no thanks' });
    const xd = await x.next((t) => t.includes('<decline') && attr(t, 'from') === room, 'decline');
    assert.equal(attr(child(xd, 'decline'), 'from'), c.full, xd);
    assert.equal(textOf(xd, 'reason'), 'no thanks', xd);
    // A nick that is taken: xmpp.muc.error for the presence, with the XMPP error.
    c.emit('xmpp.muc.join', { room, nick: 'bob' });
    const e = await c.next('xmpp.muc.error', { room });
    assert.equal(e.type, 'presence', JSON.stringify(e));
    assert.equal(e.error.condition, 'conflict', JSON.stringify(e));
    assert.equal(e.error.type, 'cancel', JSON.stringify(e));
    // A visitor speaking: xmpp.muc.error for the message.
    c.emit('xmpp.muc.join', { room, nick: 'carol' });
    await c.next('xmpp.muc.roster', { room, nick: 'carol' });
    assert.deepEqual(await a.call('xmpp.muc.role.set', { room, nick: 'carol', role: 'visitor' }), [null, true]);
    await c.next('xmpp.muc.roster', { room, nick: 'carol', role: 'visitor' });
    c.emit('xmpp.muc.message', { room, content: 'can anyone hear me?' });
    const me = await c.next('xmpp.muc.error', { room, type: 'message' });
    assert.equal(me.error.condition, 'forbidden', JSON.stringify(me));
  },

  // XEP-0045 §7.6 both ways: a JSON occupant changes its nick with xmpp.muc.join (as the
  // original gateway), an XML occupant with a presence to its new occupant JID.
  async muc_nick_change() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const fromRoom = (nick, pred = () => true) => (t) => attr(t, 'from') === `${room}/${nick}` && pred(t);
    const presence = (type) => (t) => t.startsWith('<presence') && attr(t, 'type') === type;
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'the subject that ends the join');
    await a.next('xmpp.muc.roster', { room, nick: 'bob' });
    // JSON changes its nick: XML gets the old nick's unavailable with 303 and the new nick,
    // then the new nick's presence.
    a.emit('xmpp.muc.join', { room, nick: 'alicia' });
    const gone = await x.next(fromRoom('alice', presence('unavailable')), 'alice unavailable');
    assert.ok(gone.includes("code='303'"), `303: ${gone}`);
    assert.equal(attr(child(gone, 'item'), 'nick'), 'alicia', gone);
    const back = await x.next(fromRoom('alicia', presence(undefined)), 'presence of alicia');
    assert.equal(attr(child(back, 'item'), 'role'), 'moderator', back);
    // ... and its own session sees the same, with 110: the new nick as `nick`, 303 in status.
    const own = await a.nextSeq('xmpp.muc.roster', { room, oldNick: 'alice' });
    assert.equal(own.payload.nick, 'alicia', JSON.stringify(own.payload));
    assert.ok(codes(own.payload.status).includes(303), JSON.stringify(own.payload));
    assert.ok(codes(own.payload.status).includes(110), JSON.stringify(own.payload));
    const ownNew = await a.nextSeq('xmpp.muc.roster', { room, nick: 'alicia' });
    assert.ok(own.seq < ownNew.seq, 'the 303 comes first');
    assert.deepEqual(codes(ownNew.payload.status), [110], JSON.stringify(ownNew.payload));
    assert.equal(ownNew.payload.role, 'moderator', JSON.stringify(ownNew.payload));
    assert.equal(ownNew.payload.oldNick, undefined, JSON.stringify(ownNew.payload));
    // The session speaks under its new nick.
    a.emit('xmpp.muc.message', { room, content: 'renamed' });
    await x.next(fromRoom('alicia', (t) => textOf(t, 'body') === 'renamed'), 'groupchat from alicia');
    await a.next('xmpp.muc.message', { room, nick: 'alicia', content: 'renamed' });
    // XML changes its nick: JSON gets xmpp.muc.roster with 303 and the new nick, then the
    // new nick's presence.
    x.send(`<presence to='${room}/robert'/>`);
    const bob = await a.nextSeq('xmpp.muc.roster', { room, oldNick: 'bob' });
    assert.deepEqual(
      bob.payload,
      {
        room,
        nick: 'robert',
        oldNick: 'bob',
        status: [303],
        role: 'participant',
        affiliation: 'none',
        jid: jidObj(B, 'xml'),
      },
      JSON.stringify(bob.payload),
    );
    const robert = await a.nextSeq('xmpp.muc.roster', { room, nick: 'robert' });
    assert.ok(bob.seq < robert.seq, 'the 303 comes first');
    assert.deepEqual(robert.payload.status, [], JSON.stringify(robert.payload));
    assert.equal(robert.payload.role, 'participant', JSON.stringify(robert.payload));
    assert.deepEqual(a.pending('xmpp.muc.roster', { room, nick: 'bob' }), [], 'nothing more for bob');
    x.send(`<message to='${room}' type='groupchat' id='r-1'><body>I am robert now</body></message>`);
    await a.next('xmpp.muc.message', { room, nick: 'robert', id: 'r-1' });
    // A nick someone has: the room refuses (conflict) and the session keeps its nick.
    a.emit('xmpp.muc.join', { room, nick: 'robert' });
    const e = await a.next('xmpp.muc.error', { room, type: 'presence' });
    assert.equal(e.error.condition, 'conflict', JSON.stringify(e));
    a.emit('xmpp.muc.message', { room, content: 'still alicia' });
    await a.next('xmpp.muc.message', { room, nick: 'alicia', content: 'still alicia' });
    // Leaving after all that takes the session out under the nick it has.
    a.emit('xmpp.muc.leave', { room });
    await x.next(fromRoom('alicia', presence('unavailable')), 'alicia leaving');
    await a.next('xmpp.muc.roster', { room, nick: 'alicia', status: 'unavailable' });
  },

  // Rooms are created locked here (XEP-0045 §10.1): xmpp.muc.create with `instant` opens
  // the room (§10.1.2), without it the room waits for its configuration (§10.1.3) or its
  // cancellation.
  async muc_create() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const newRoom = () => `group-${randomUUID()}@${MUC}`;
    const xmlJoin = (room) => {
      x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
      return x.next(
        (t) =>
          (t.includes('<subject') && attr(t, 'from') === room) ||
          (t.startsWith('<presence') && attr(t, 'from') === `${room}/bob` && attr(t, 'type') === 'error'),
        `the outcome of joining ${room}`,
      );
    };
    const created = async (room) => {
      const me = await a.next('xmpp.muc.roster', { room, nick: 'alice' });
      assert.ok(codes(me.status).includes(201), `201: ${JSON.stringify(me)}`);
      assert.ok(codes(me.status).includes(110), `110: ${JSON.stringify(me)}`);
      assert.equal(me.affiliation, 'owner', JSON.stringify(me));
      return me;
    };
    // Instant: the session submits the empty form when the 201 arrives.
    const r1 = newRoom();
    a.emit('xmpp.muc.create', { room: r1, nick: 'alice', instant: true });
    await created(r1);
    // The session's next request to the room goes after the form sent for it.
    const cfg = await a.call('xmpp.muc.room.config.get', { room: r1 });
    assert.equal(cfg[0], null, JSON.stringify(cfg));
    const j1 = await xmlJoin(r1);
    assert.ok(j1.includes('<subject'), `the instant room is open: ${j1}`);
    await a.next('xmpp.muc.roster', { room: r1, nick: 'bob' });
    // Without `instant`, a locked room: XML is refused until the owner configures it.
    const r2 = newRoom();
    a.emit('xmpp.muc.create', { room: r2, nick: 'alice' });
    await created(r2);
    const j2 = await xmlJoin(r2);
    assert.equal(xmlError(j2).condition, 'item-not-found', `locked: ${j2}`);
    assert.deepEqual(
      await a.call('xmpp.muc.room.config.set', {
        room: r2,
        form: [{ var: 'muc#roomconfig_roomname', value: 'Configured' }],
      }),
      [null, true],
    );
    const j2b = await xmlJoin(r2);
    assert.ok(j2b.includes('<subject'), `the configured room is open: ${j2b}`);
    // Cancelled: the room is destroyed, its owner gets xmpp.muc.destroy, and the next join
    // creates it afresh.
    const r3 = newRoom();
    a.emit('xmpp.muc.create', { room: r3, nick: 'alice' });
    await created(r3);
    const cancel = await a.callSeq('xmpp.muc.cancel', { room: r3 });
    assert.deepEqual(cancel.args, [null, true]);
    const d = await a.nextSeq('xmpp.muc.destroy', { room: r3 });
    assert.ok(d.seq < cancel.seq, 'the destroy arrives before the callback, as the room sends them');
    assert.deepEqual(d.payload, { room: r3 }, JSON.stringify(d.payload));
    x.send(`<presence to='${r3}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    const j3 = await x.next(
      (t) => t.startsWith('<presence') && attr(t, 'from') === `${r3}/bob`,
      'own presence in the room created afresh',
    );
    assert.ok(j3.includes("code='201'"), `created afresh: ${j3}`);
    assert.equal(attr(child(j3, 'item'), 'affiliation'), 'owner', j3);
    // Now XML owns it: the JSON session may not cancel it.
    const notOwner = await a.call('xmpp.muc.cancel', { room: r3 });
    assert.equal(notOwner[0]?.condition, 'forbidden', JSON.stringify(notOwner));
    // A room that exists already: create joins it (no 201, nothing submitted).
    a.emit('xmpp.muc.leave', { room: r1 });
    await a.next('xmpp.muc.roster', { room: r1, nick: 'alice', status: 'unavailable' });
    a.emit('xmpp.muc.create', { room: r1, nick: 'alice', instant: true });
    const again = await a.next('xmpp.muc.roster', { room: r1, nick: 'alice' });
    assert.ok(codes(again.status).includes(110), JSON.stringify(again));
    assert.ok(!codes(again.status).includes(201), JSON.stringify(again));
    // Client errors, without and with a callback.
    a.emit('xmpp.muc.create', { room: r1 });
    assertClientError(await a.next('xmpp.error.client'), "Missing 'nick' key", { room: r1 }, 'create');
    a.emit('xmpp.muc.cancel', { room: r1 });
    assertClientError(await a.next('xmpp.error.client'), 'Missing callback', { room: r1 }, 'cancel');
    const bad = { room: r1, nick: 'n', instant: 'yes' };
    assertClientError((await a.call('xmpp.muc.create', bad))[0], "Invalid 'instant' value", bad, 'create');
    assert.deepEqual(a.pending('xmpp.muc.error'), [], 'no room error');
  },

  // The shared configuration creates rooms unlocked: create still says 201 and `instant`
  // still submits the empty form, which changes nothing; cancelling an open room's
  // configuration destroys nothing.
  async muc_create_unlocked() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    a.emit('xmpp.muc.create', { room, nick: 'alice', instant: true });
    const me = await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    assert.ok(codes(me.status).includes(201), JSON.stringify(me));
    const cfg = await a.call('xmpp.muc.room.config.get', { room });
    assert.equal(cfg[0], null, JSON.stringify(cfg));
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'the subject that ends the join');
    await a.next('xmpp.muc.roster', { room, nick: 'bob' });
    assert.deepEqual(await a.call('xmpp.muc.cancel', { room }), [null, true]);
    a.emit('xmpp.muc.message', { room, content: 'still here' });
    await x.next((t) => t.startsWith('<message') && textOf(t, 'body') === 'still here', 'the message after cancel');
    await a.next('xmpp.muc.message', { room, nick: 'alice', content: 'still here' });
    assert.deepEqual(a.pending('xmpp.muc.destroy'), [], 'the open room was not destroyed');
    assert.deepEqual(a.pending('xmpp.muc.error'), [], 'no room error');
    assert.deepEqual(a.pending('xmpp.error'), [], 'no error');
  },

  // XEP-0045 §7.10 and §7.12: registering with a room reserves a nick.
  async muc_room_config() {
    // XEP-0045 §10.2.1: a configuration change reaches JSON occupants as
    // xmpp.muc.room.config with the status codes, XML occupants as example 172.
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'the subject that ends the join');
    assert.deepEqual(
      await a.call('xmpp.muc.room.config.set', {
        room,
        form: [{ var: 'muc#roomconfig_whois', value: 'anyone', type: 'list-single' }],
      }),
      [null, true],
    );
    const ev = await a.next('xmpp.muc.room.config', { room });
    assert.deepEqual(ev, { room, status: [104, 172] });
    const m = await x.next((t) => t.startsWith('<message') && t.includes("code='104'"), 'the 104 notice');
    assert.ok(m.includes("<status code='172'/>") && attr(m, 'from') === room, m);
  },

  async muc_register() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    const c = await sio(C, 'json', { available: true });
    // Before: the form, and no reserved nick.
    const info = await c.call('xmpp.muc.register.info', { room });
    assert.equal(info[0], null, JSON.stringify(info));
    assert.equal(info[1].registered, undefined, JSON.stringify(info));
    assert.equal(typeof info[1].instructions, 'string', JSON.stringify(info));
    assert.ok(Array.isArray(info[1].form?.fields), JSON.stringify(info));
    const nickField = info[1].form.fields.find((f) => f.var === 'muc#register_roomnick');
    assert.equal(nickField?.required, true, JSON.stringify(info[1].form));
    assert.equal(
      fieldValue(info[1].form.fields.find((f) => f.var === 'FORM_TYPE')),
      'http://jabber.org/protocol/muc#register',
    );
    assert.deepEqual(await c.call('xmpp.muc.room.nick', { room }), [
      { type: 'cancel', condition: 'item-not-found' },
    ]);
    // A form without the nick: the room's error.
    const noNick = await c.call('xmpp.muc.register', { room, form: [] });
    assert.equal(noNick[0]?.condition, 'bad-request', JSON.stringify(noNick));
    assert.deepEqual(
      await c.call('xmpp.muc.register', { room, form: [{ var: 'muc#register_roomnick', value: 'caz' }] }),
      [null, true],
    );
    // After.
    assert.deepEqual(await c.call('xmpp.muc.register.info', { room }), [null, { registered: true, nick: 'caz' }]);
    assert.deepEqual(await c.call('xmpp.muc.room.nick', { room }), [null, { nick: 'caz' }]);
    // The nick is carol's: an XML user may not enter with it.
    const x = await XmlClient.login(B, 'xml');
    x.send(`<presence to='${room}/caz'><x xmlns='${MUC_NS}'/></presence>`);
    const refused = await x.next(
      (t) => t.startsWith('<presence') && attr(t, 'from') === `${room}/caz`,
      'the answer to joining as caz',
    );
    assert.equal(xmlError(refused).condition, 'conflict', refused);
    // The owner's reserved nick: none; a room that does not exist: its error.
    assert.deepEqual(await a.call('xmpp.muc.room.nick', { room }), [
      { type: 'cancel', condition: 'item-not-found' },
    ]);
    const nowhere = await c.call('xmpp.muc.register.info', { room: `group-${randomUUID()}@${MUC}` });
    assert.equal(nowhere[0]?.condition, 'item-not-found', JSON.stringify(nowhere));
    assert.equal(nowhere.length, 1, JSON.stringify(nowhere));
    // Client errors.
    assertClientError((await c.call('xmpp.muc.register', { room }))[0], "Missing 'form' key", { room }, 'register');
    for (const ev of ['xmpp.muc.register.info', 'xmpp.muc.register', 'xmpp.muc.room.nick']) {
      c.emit(ev, { room });
      assertClientError(await c.next('xmpp.error.client'), 'Missing callback', { room }, ev);
    }
  },

  // XEP-0045 §7.13 and §8.6: voice requests between JSON and XML visitors and moderators;
  // §8.5 and §9.8: the lists of a role.
  async muc_voice_and_roles() {
    const room = `group-${randomUUID()}@${MUC}`;
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const c = await sio(C, 'json', { available: true });
    const fromRoom = (nick, pred = () => true) => (t) => attr(t, 'from') === `${room}/${nick}` && pred(t);
    const withRole = (role) => (t) => t.startsWith('<presence') && attr(child(t, 'item') ?? '<x>', 'role') === role;
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    assert.deepEqual(
      await a.call('xmpp.muc.room.config.set', {
        room,
        form: [{ var: 'muc#roomconfig_moderatedroom', value: true, type: 'boolean' }],
      }),
      [null, true],
    );
    // An XML visitor asks for voice (example 79): the JSON moderator gets xmpp.muc.voice.
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'the subject that ends the join');
    const bob = await a.next('xmpp.muc.roster', { room, nick: 'bob' });
    assert.equal(bob.role, 'visitor', JSON.stringify(bob));
    x.send(
      `<message id='voice1' to='${room}'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>` +
        `<field var='muc#role' type='list-single' label='Requested role'><value>participant</value></field>` +
        `</x></message>`,
    );
    const v = await a.next('xmpp.muc.voice', { room });
    assert.deepEqual(v, { room, nick: 'bob', role: 'participant', jid: jidObj(B, 'xml') });
    // The moderator reads the visitors, then grants voice with xmpp.muc.role.set.
    const bobItem = (role) => ({ affiliation: 'none', jid: jidObj(B, 'xml'), nick: 'bob', role });
    assert.deepEqual(await a.call('xmpp.muc.role.get', { room, role: 'visitor' }), [null, [bobItem('visitor')]]);
    assert.deepEqual(await a.call('xmpp.muc.role.set', { room, nick: 'bob', role: 'participant' }), [null, true]);
    await x.next(fromRoom('bob', withRole('participant')), 'own presence as participant');
    assert.deepEqual(await a.call('xmpp.muc.role.get', { room, role: 'visitor' }), [null, []]);
    assert.deepEqual(
      await a.call('xmpp.muc.role.get', { room, role: 'participant' }),
      [null, [bobItem('participant')]],
    );
    // The XML occupant becomes a moderator.
    assert.deepEqual(await a.call('xmpp.muc.role.set', { room, nick: 'bob', role: 'moderator' }), [null, true]);
    await x.next(fromRoom('bob', withRole('moderator')), 'own presence as moderator');
    const mods = await a.call('xmpp.muc.role.get', { room, role: 'moderator' });
    assert.equal(mods[0], null, JSON.stringify(mods));
    assert.deepEqual(
      [...mods[1]].sort((p, q) => p.nick.localeCompare(q.nick)),
      [{ affiliation: 'owner', jid: a.jid, nick: 'alice', role: 'moderator' }, bobItem('moderator')],
    );
    // A JSON visitor asks for voice: the XML moderator gets the approval form (example
    // 108), and so does the JSON one.
    c.emit('xmpp.muc.join', { room, nick: 'carol' });
    const carol = await c.next('xmpp.muc.roster', { room, nick: 'carol' });
    assert.equal(carol.role, 'visitor', JSON.stringify(carol));
    c.emit('xmpp.muc.voice', { room, role: 'participant' });
    const form = await x.next(
      (t) => t.startsWith('<message') && attr(t, 'from') === room && t.includes('muc#request'),
      'the approval form',
    );
    const field = (name) => {
      const m = form.match(new RegExp(`<field var='${name}'[^>]*>\\s*<value>([^<]*)</value>`));
      return m ? m[1] : undefined;
    };
    assert.equal(field('muc#roomnick'), 'carol', form);
    assert.equal(field('muc#role'), 'participant', form);
    assert.equal(field('muc#jid'), c.full, form);
    const v2 = await a.next('xmpp.muc.voice', { room, nick: 'carol' });
    assert.deepEqual(v2, { room, nick: 'carol', role: 'participant', jid: c.jid });
    // The XML moderator approves (example 109): the JSON visitor has voice.
    x.send(
      `<message id='approve' to='${room}'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#request</value></field>` +
        `<field var='muc#role'><value>participant</value></field>` +
        `<field var='muc#jid'><value>${escapeXml(c.full)}</value></field>` +
        `<field var='muc#roomnick'><value>carol</value></field>` +
        `<field var='muc#request_allow'><value>true</value></field></x></message>`,
    );
    await c.next('xmpp.muc.roster', { room, nick: 'carol', role: 'participant' });
    await a.next('xmpp.muc.roster', { room, nick: 'carol', role: 'participant' });
    c.emit('xmpp.muc.message', { room, content: 'I have a voice' });
    await a.next('xmpp.muc.message', { room, nick: 'carol', content: 'I have a voice' });
    // Only moderators got the requests; a participant may not read the moderators.
    assert.deepEqual(c.pending('xmpp.muc.voice'), [], 'the visitor got no voice request');
    const no = await c.call('xmpp.muc.role.get', { room, role: 'moderator' });
    assert.equal(no[0]?.condition, 'forbidden', JSON.stringify(no));
    // Client errors.
    c.emit('xmpp.muc.voice', { room });
    assertClientError(await c.next('xmpp.error.client'), "Missing 'role' key", { room }, 'voice');
    const bad = { room, role: 'king' };
    assertClientError((await c.call('xmpp.muc.role.get', bad))[0], "Invalid 'role' value", bad, 'role.get');
  },

  // The server runs with limits.max_directed_presence = 1.
  async presence_error() {
    const a = await sio(A, 'json', { available: true });
    a.emit('xmpp.presence', { to: `${C}@${DOMAIN}`, status: 'one' });
    a.emit('xmpp.presence', { to: `${D}@${DOMAIN}`, status: 'two' });
    const e = await a.next('xmpp.presence.error');
    assert.equal(e.error, 'policy-violation', JSON.stringify(e));
    assert.deepEqual(e.from, { user: D, domain: DOMAIN }, JSON.stringify(e));
  },

  async disco() {
    const a = await sio(A, 'json');
    const info = await a.call('xmpp.discover.info', { of: DOMAIN });
    assert.equal(info[0], null, JSON.stringify(info));
    assert.ok(Array.isArray(info[1]), JSON.stringify(info));
    assert.ok(
      info[1].some((f) => f.kind === 'feature' && f.var === 'urn:xmpp:ping'),
      `urn:xmpp:ping among ${JSON.stringify(info[1])}`,
    );
    assert.ok(
      info[1].some((f) => f.kind === 'identity' && f.category === 'server' && f.type === 'im'),
      `server identity among ${JSON.stringify(info[1])}`,
    );
    const items = await a.call('xmpp.discover.items', { of: DOMAIN });
    assert.equal(items[0], null, JSON.stringify(items));
    assert.ok(Array.isArray(items[1]), JSON.stringify(items));
    assert.ok(
      items[1].some((i) => jidStr(i.jid) === MUC),
      `${MUC} among ${JSON.stringify(items[1])}`,
    );
    const muc = await a.call('xmpp.discover.info', { of: MUC });
    assert.equal(muc[0], null, JSON.stringify(muc));
    assert.ok(
      muc[1].some((f) => f.kind === 'identity' && f.category === 'conference'),
      `conference identity among ${JSON.stringify(muc[1])}`,
    );
  },

  // XEP-0059 paging of the room directory (the server's pages hold 2: tests/ftw.rs).
  async disco_rsm() {
    const a = await sio(A, 'json', { available: true });
    const rooms = ['c', 'a', 'e', 'b', 'd'].map((n) => `rsm-${n}@${MUC}`);
    for (const room of rooms) {
      a.emit('xmpp.muc.join', { room, nick: 'alice' });
      await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    }
    const sorted = [...rooms].sort();
    // The directory is updated by messages between shards: ask for the count alone
    // (XEP-0059 §2.7) until it has settled.
    let count;
    for (let i = 0; i < 100; i++) {
      count = await a.call('xmpp.discover.items', { of: MUC, rsm: { max: 0 } });
      if (count[2]?.count === rooms.length) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.deepEqual(count, [null, [], { count: 5 }], JSON.stringify(count));
    const jids = (args) => args[1].map((i) => i.jid);
    const page = (from, n) => ({
      count: 5,
      first: sorted[from],
      'first-index': from,
      last: sorted[from + n - 1],
    });
    // Without rsm: the first page, and its RSM data as the third argument.
    const first = await a.call('xmpp.discover.items', { of: MUC });
    assert.equal(first[0], null, JSON.stringify(first));
    assert.deepEqual(jids(first), sorted.slice(0, 2), JSON.stringify(first));
    assert.deepEqual(first[2], page(0, 2), JSON.stringify(first));
    // Forwards with `after`: every room once, in order, then an empty page.
    const seen = [];
    let after;
    for (let i = 0; i < 5; i++) {
      const r = await a.call('xmpp.discover.items', { of: MUC, rsm: { max: 2, after } });
      assert.equal(r[0], null, JSON.stringify(r));
      if (r[1].length === 0) {
        assert.deepEqual(r[2], { count: 5 }, JSON.stringify(r));
        break;
      }
      assert.deepEqual(r[2], page(seen.length, r[1].length), JSON.stringify(r));
      seen.push(...jids(r));
      after = r[2].last;
    }
    assert.deepEqual(seen, sorted);
    // The last page (`before: true`), and the page before a room.
    const lastPage = await a.call('xmpp.discover.items', { of: MUC, rsm: { max: 2, before: true } });
    assert.deepEqual(jids(lastPage), sorted.slice(3), JSON.stringify(lastPage));
    assert.deepEqual(lastPage[2], page(3, 2), JSON.stringify(lastPage));
    const back = await a.call('xmpp.discover.items', { of: MUC, rsm: { max: 2, before: sorted[3] } });
    assert.deepEqual(back[2], page(1, 2), JSON.stringify(back));
    // A larger max is capped by the server.
    const big = await a.call('xmpp.discover.items', { of: MUC, rsm: { max: 1000 } });
    assert.deepEqual(jids(big), sorted.slice(0, 2), JSON.stringify(big));
    // Refused by the gateway before anything reaches XMPP.
    const bad = { of: MUC, rsm: { max: 'many' } };
    assertClientError((await a.call('xmpp.discover.items', bad))[0], "Invalid 'max' value", bad, 'max');
    // No <set/> in the answer: no third argument.
    const info = await a.call('xmpp.discover.info', { of: MUC });
    assert.equal(info.length, 2, JSON.stringify(info));
    assert.ok(
      info[1].some((f) => f.kind === 'feature' && f.var === 'http://jabber.org/protocol/rsm'),
      `rsm among ${JSON.stringify(info[1])}`,
    );
    const services = await a.call('xmpp.discover.items', { of: DOMAIN });
    assert.equal(services.length, 2, JSON.stringify(services));
  },

  async ping() {
    const a = await sio(A, 'json');
    const x = await XmlClient.login(B, 'xml');
    assert.deepEqual(await a.call('xmpp.ping', {}), [null, true]);
    assert.deepEqual(await a.call('xmpp.ping', { to: DOMAIN }), [null, true]);
    // XML pings JSON: answered by the server for the session, and shown to the browser.
    x.send(`<iq type='get' id='p-1' to='${a.full}'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const res = await x.stanza('iq', { id: 'p-1' });
    assert.equal(attr(res, 'type'), 'result', res);
    assert.equal(attr(res, 'from'), a.full, res);
    assert.deepEqual(await a.next('xmpp.ping', { id: 'p-1' }), { from: jidObj(B, 'xml'), id: 'p-1' });
    // JSON pings XML.
    const p = a.call('xmpp.ping', { to: x.full });
    const req = await x.next(
      (t) => t.startsWith('<iq') && attr(t, 'type') === 'get' && child(t, 'ping')?.includes('urn:xmpp:ping'),
      'a ping from A',
    );
    assert.equal(attr(req, 'from'), a.full, req);
    x.send(`<iq type='result' id='${attr(req, 'id')}' to='${a.full}'/>`);
    assert.deepEqual(await p, [null, true]);
    // ...and an error answer becomes the callback's error.
    const p2 = a.call('xmpp.ping', { to: x.full });
    const req2 = await x.next(
      (t) => t.startsWith('<iq') && attr(t, 'type') === 'get' && child(t, 'ping') !== undefined,
      'a second ping from A',
    );
    x.send(
      `<iq type='error' id='${attr(req2, 'id')}' to='${a.full}'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
    );
    const r2 = await p2;
    assert.equal(r2[0]?.type, 'cancel', JSON.stringify(r2));
    assert.equal(r2[0]?.condition, 'service-unavailable', JSON.stringify(r2));
  },

  // The server runs with ftw.max_pending_incoming_iqs = 2.
  async ping_pong() {
    const a = await SioClient.connect({ user: A });
    // Only the two answerable event names are accepted.
    a.emit('xmpp.login', { jid: bare(A), answers: ['xmpp.ping', 'everything'] });
    const bad = await a.next('xmpp.error');
    assert.equal(bad.condition, 'client-error', JSON.stringify(bad));
    assert.equal(bad.description, "Invalid 'answers' value", JSON.stringify(bad));
    await a.login(A, { resource: 'json', answers: ['xmpp.ping'] });
    const x = await XmlClient.login(B, 'xml');
    // XML pings JSON: the browser sees it and answers it itself.
    x.send(pingTo(a.full, 'p-1'));
    const ev = await a.next('xmpp.ping', { id: 'p-1' });
    assert.deepEqual(ev, { from: jidObj(B, 'xml'), id: 'p-1' });
    // The answer must name the asker and the id (the JID object of the event will do).
    const wrong = { to: bare(C), id: 'p-1' };
    assertClientError((await a.call('xmpp.ping.pong', wrong))[0], NOTHING_WAITING, wrong, 'pong to the wrong JID');
    assert.deepEqual(await a.call('xmpp.ping.pong', { to: ev.from, id: ev.id }), [null, true]);
    const res = await x.stanza('iq', { id: 'p-1' });
    assert.equal(attr(res, 'type'), 'result', res);
    assert.equal(attr(res, 'from'), a.full, res);
    // Answered once: it no longer waits.
    const again = { to: x.full, id: 'p-1' };
    assertClientError((await a.call('xmpp.ping.pong', again))[0], NOTHING_WAITING, again, 'second pong');
    a.emit('xmpp.ping.pong', again);
    assertClientError(await a.next('xmpp.error.client'), NOTHING_WAITING, again, 'second pong, no callback');
    // Two may wait; the third is refused at once and never shown.
    for (const id of ['p-2', 'p-3', 'p-4']) x.send(pingTo(a.full, id));
    const refused = await x.stanza('iq', { id: 'p-4' });
    assert.deepEqual(xmlError(refused), { type: 'wait', condition: 'resource-constraint' }, refused);
    assert.equal(attr(refused, 'type'), 'error', refused);
    await a.next('xmpp.ping', { id: 'p-2' });
    await a.next('xmpp.ping', { id: 'p-3' });
    assert.deepEqual(await a.call('xmpp.ping', {}), [null, true]);
    assert.deepEqual(a.pending('xmpp.ping', { id: 'p-4' }), [], 'the refused ping is not shown');
    // Answered in any order, with or without a callback.
    assert.deepEqual(await a.call('xmpp.ping.pong', { to: x.full, id: 'p-3' }), [null, true]);
    assert.equal(attr(await x.stanza('iq', { id: 'p-3' }), 'type'), 'result');
    a.emit('xmpp.ping.pong', { to: jidObj(B, 'xml'), id: 'p-2' });
    assert.equal(attr(await x.stanza('iq', { id: 'p-2' }), 'type'), 'result');
    // Disco#info is not among its answers: the server answers for it.
    x.send(`<iq type='get' id='d-1' to='${a.full}'><query xmlns='${DISCO_INFO}'/></iq>`);
    const d = await x.stanza('iq', { id: 'd-1' });
    assert.equal(attr(d, 'type'), 'result', d);
    assert.ok(d.includes("var='urn:xmpp:ping'"), d);
    await a.next('xmpp.discover.client', { id: 'd-1' });
    // The session ends with a ping still waiting: the asker gets service-unavailable.
    x.send(pingTo(a.full, 'p-5'));
    await a.next('xmpp.ping', { id: 'p-5' });
    assert.deepEqual(await a.call('xmpp.logout', {}), [null, true]);
    const gone = await x.stanza('iq', { id: 'p-5' });
    assert.deepEqual(xmlError(gone), { type: 'cancel', condition: 'service-unavailable' }, gone);
  },

  async discover_client() {
    const a = await SioClient.connect({ user: A });
    await a.login(A, { resource: 'json', answers: ['xmpp.discover.client'] });
    const x = await XmlClient.login(B, 'xml');
    // XML asks JSON for its features on a XEP-0115 node; the browser answers.
    const node = 'https://app.example/#QgayPKawpkPSDYmwT/WM94uAlu0=';
    x.send(`<iq type='get' id='d-1' to='${a.full}'><query xmlns='${DISCO_INFO}' node='${node}'/></iq>`);
    const ev = await a.next('xmpp.discover.client', { id: 'd-1' });
    assert.deepEqual(ev, { from: x.full, id: 'd-1', node });
    const badly = { to: ev.from, id: ev.id, features: 'urn:xmpp:ping' };
    const b = await a.call('xmpp.discover.client', badly);
    assertClientError(b[0], "Badly formatted 'features' key", badly, 'features not an array');
    const features = [
      { kind: 'identity', category: 'client', type: 'web', name: 'Test <app>' },
      { kind: 'feature', var: DISCO_INFO },
      { kind: 'feature', var: 'urn:example:custom' },
    ];
    assert.deepEqual(await a.call('xmpp.discover.client', { to: ev.from, id: ev.id, features }), [null, true]);
    const res = await x.stanza('iq', { id: 'd-1' });
    assert.equal(attr(res, 'type'), 'result', res);
    assert.equal(attr(res, 'from'), a.full, res);
    const q = child(res, 'query');
    assert.ok(q.includes(DISCO_INFO), res);
    assert.equal(attr(q, 'node'), node, `the node is echoed: ${res}`);
    const id = child(res, 'identity');
    assert.deepEqual(
      [attr(id, 'category'), attr(id, 'type'), attr(id, 'name')],
      ['client', 'web', 'Test <app>'],
      res,
    );
    assert.ok(res.includes("<feature var='urn:example:custom'/>"), res);
    assert.ok(!res.includes('urn:xmpp:receipts'), `only the browser's features: ${res}`);
    const late = { to: x.full, id: 'd-1', features };
    assertClientError((await a.call('xmpp.discover.client', late))[0], NOTHING_WAITING, late, 'answered twice');
    // Pings are not among its answers: the server answers them.
    x.send(pingTo(a.full, 'p-1'));
    assert.equal(attr(await x.stanza('iq', { id: 'p-1' }), 'type'), 'result');
    await a.next('xmpp.ping', { id: 'p-1' });
    // A session that answers nothing itself: the server answers with the gateway's
    // features at once, and shows the query.
    const c = await sio(C, 'plain');
    x.send(`<iq type='get' id='d-2' to='${c.full}'><query xmlns='${DISCO_INFO}'/></iq>`);
    const auto = await x.stanza('iq', { id: 'd-2' });
    assert.equal(attr(auto, 'type'), 'result', auto);
    for (const f of ['urn:xmpp:ping', XHTML_IM, 'urn:xmpp:receipts']) {
      assert.ok(auto.includes(`<feature var='${f}'/>`), `${f} in ${auto}`);
    }
    assert.deepEqual(await c.next('xmpp.discover.client', { id: 'd-2' }), { from: x.full, id: 'd-2' });
    const notMine = { to: x.full, id: 'd-2', features: [] };
    assertClientError((await c.call('xmpp.discover.client', notMine))[0], NOTHING_WAITING, notMine, 'not opted in');
  },

  // The server runs with ftw.incoming_iq_timeout_ms = 200.
  async incoming_iq_timeout() {
    const a = await SioClient.connect({ user: A });
    await a.login(A, { resource: 'json', answers: ['xmpp.ping', 'xmpp.discover.client'] });
    const x = await XmlClient.login(B, 'xml');
    // The browser does not answer: the askers get service-unavailable once the wait is over.
    x.send(pingTo(a.full, 't-1'));
    x.send(`<iq type='get' id='t-2' to='${a.full}'><query xmlns='${DISCO_INFO}'/></iq>`);
    await a.next('xmpp.ping', { id: 't-1' });
    await a.next('xmpp.discover.client', { id: 't-2' });
    for (const id of ['t-1', 't-2']) {
      const r = await x.stanza('iq', { id });
      assert.equal(attr(r, 'type'), 'error', r);
      assert.deepEqual(xmlError(r), { type: 'cancel', condition: 'service-unavailable' }, r);
    }
    // Too late to answer.
    const late = { to: x.full, id: 't-1' };
    assertClientError((await a.call('xmpp.ping.pong', late))[0], NOTHING_WAITING, late, 'pong after the timeout');
    assert.ok(a.connected, 'the session goes on');
    // And the next request waits again, and is answered.
    x.send(pingTo(a.full, 't-3'));
    const ev = await a.next('xmpp.ping', { id: 't-3' });
    const p = await a.call('xmpp.ping.pong', { to: ev.from, id: ev.id });
    // Answered before its timeout, or refused after it: never both, never neither.
    const r3 = await x.stanza('iq', { id: 't-3' });
    if (p[0] === null) assert.equal(attr(r3, 'type'), 'result', r3);
    else assert.deepEqual(xmlError(r3), { type: 'cancel', condition: 'service-unavailable' }, r3);
  },

  async caps() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    const client = { node: 'https://app.example/', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=', hash: 'sha-1' };
    // JSON -> XML: <c/> in the presence.
    a.emit('xmpp.presence', { to: x.full, status: 'with caps', client });
    const p = await x.next(
      (t) => t.startsWith('<presence') && attr(t, 'from') === a.full && textOf(t, 'status') === 'with caps',
      "A's presence with caps",
    );
    const c = child(p, 'c');
    assert.ok(c?.includes(CAPS), p);
    assert.deepEqual([attr(c, 'node'), attr(c, 'ver'), attr(c, 'hash')], [client.node, client.ver, client.hash], p);
    // XML -> JSON: client {node, ver, hash}.
    x.send(
      `<presence to='${a.full}'><status>xml caps</status><c xmlns='${CAPS}' hash='sha-1' node='https://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>`,
    );
    const got = await a.next('xmpp.presence', (q) => jidStr(q.from) === x.full && q.status === 'xml caps');
    assert.deepEqual(got.client, { node: 'https://psi-im.org', ver: 'q07IKJEyjvHSyhy//CH0CxmKi8w=', hash: 'sha-1' });
    // Without <c/>, no client key.
    x.send(`<presence to='${a.full}'><status>no caps</status></presence>`);
    const plain = await a.next('xmpp.presence', (q) => jidStr(q.from) === x.full && q.status === 'no caps');
    assert.equal(plain.client, undefined, JSON.stringify(plain));
    // All three keys are required.
    const missing = { to: x.full, client: { node: 'n', hash: 'sha-1' } };
    assertClientError((await a.call('xmpp.presence', missing))[0], "Missing 'ver' key", missing, 'caps without ver');
    const notObj = { client: 'sha-1' };
    a.emit('xmpp.presence', notObj);
    assertClientError(await a.next('xmpp.error.client'), "Invalid 'client' value", notObj, 'caps not an object');
  },

  async xhtml() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    // JSON -> XML: a plain <body/> and the sanitized XHTML beside it.
    const content =
      '<p onclick="steal()">Hello <strong>you</strong> <a href="javascript:alert(1)">bad</a> ' +
      '<a href="https://example.com/" onmouseover="steal()">good</a><script>alert(1)</script></p>';
    const r = await a.call('xmpp.chat.message', { to: x.full, content, format: 'xhtml', state: 'active' });
    assert.equal(r[0], null, JSON.stringify(r));
    const s = await x.stanza('message', { id: r[1].id });
    assert.equal(textOf(s, 'body'), 'Hello you bad good', s);
    assert.ok(
      s.includes(
        `<html xmlns='${XHTML_IM}'><body xmlns='${XHTML}'><p>Hello <strong>you</strong> bad ` +
          "<a href='https://example.com/'>good</a></p></body></html>",
      ),
      s,
    );
    for (const hostile of ['script', 'onclick', 'onmouseover', 'javascript', 'steal']) {
      assert.ok(!s.includes(hostile), `${hostile} in ${s}`);
    }
    assert.ok(child(s, 'active')?.includes(CHATSTATES), s);
    // Malformed XHTML is refused, with or without a callback.
    const bad = { to: x.full, content: 'This will <strong>fail', format: 'xhtml' };
    assertClientError((await a.call('xmpp.chat.message', bad))[0], 'Can not parse XHTML message', bad, 'malformed');
    a.emit('xmpp.chat.message', bad);
    assertClientError(await a.next('xmpp.error.client'), 'Can not parse XHTML message', bad, 'malformed, no callback');
    const empty = { to: x.full, content: '<script>alert(1)</script>', format: 'xhtml' };
    assertClientError((await a.call('xmpp.chat.message', empty))[0], 'XHTML message is empty once sanitized', empty, 'only a script');
    // XML -> JSON: format "xhtml" and the sanitized content (the original gateway's fixture, made hostile).
    x.send(
      `<message to='${a.full}' type='chat' id='h-1'><body>hi!</body><html xmlns='${XHTML_IM}'>` +
        `<body xmlns='${XHTML}'>\n  <p style='color: red; background-image: url(http://evil.example/t.png)' ` +
        `onmouseover='steal()'>Hello to <strong>you!</strong><script>steal()</script></p>\n</body></html></message>`,
    );
    const m = await a.next('xmpp.chat.message', { id: 'h-1' });
    assert.equal(m.format, 'xhtml', JSON.stringify(m));
    assert.equal(m.content, "<p style='color: red'>Hello to <strong>you!</strong></p>", JSON.stringify(m));
    x.send(`<message to='${a.full}' type='chat' id='h-2'><body>plain</body></message>`);
    const plain = await a.next('xmpp.chat.message', { id: 'h-2' });
    assert.deepEqual([plain.content, plain.format], ['plain', undefined], JSON.stringify(plain));
    // Rooms use the same code both ways.
    const room = `group-${randomUUID()}@${MUC}`;
    a.emit('xmpp.muc.join', { room, nick: 'alice' });
    await a.next('xmpp.muc.roster', { room, nick: 'alice' });
    x.send(`<presence to='${room}/bob'><x xmlns='${MUC_NS}'/></presence>`);
    await x.next((t) => t.includes('<subject') && attr(t, 'from') === room, 'subject after join');
    const g = await a.call('xmpp.muc.message', { room, content: '<em>hi</em> <img src="x" onerror="steal()" alt="all"/>', format: 'xhtml' });
    const gs = await x.stanza('message', { id: g[1].id });
    assert.equal(attr(gs, 'from'), `${room}/alice`, gs);
    assert.equal(textOf(gs, 'body'), 'hi all', gs);
    assert.ok(gs.includes(`<body xmlns='${XHTML}'><em>hi</em> all</body>`), gs);
    const echo = await a.next('xmpp.muc.message', { room, id: g[1].id });
    assert.deepEqual([echo.content, echo.format], ['<em>hi</em> all', 'xhtml'], JSON.stringify(echo));
    x.send(
      `<message to='${room}' type='groupchat' id='g-2'><body>bold</body><html xmlns='${XHTML_IM}'>` +
        `<body xmlns='${XHTML}'><p><strong onclick='steal()'>bold</strong></p></body></html></message>`,
    );
    const gm = await a.next('xmpp.muc.message', { room, id: 'g-2' });
    assert.deepEqual(
      [gm.nick, gm.content, gm.format],
      ['bob', '<p><strong>bold</strong></p>', 'xhtml'],
      JSON.stringify(gm),
    );
  },

  async not_allowed() {
    const events = [
      ['xmpp.login.anonymous', { jid: DOMAIN }],
      ['xmpp.register.get', { to: DOMAIN }],
      ['xmpp.register.set', { to: DOMAIN, username: 'eve', password: 'x' }],
      ['xmpp.register.password', { to: DOMAIN, password: 'x' }],
      ['xmpp.register.unregister', { to: DOMAIN }],
    ];
    const check = (e, what) => {
      assert.equal(e?.type, 'cancel', `${what}: ${JSON.stringify(e)}`);
      assert.equal(e?.condition, 'not-allowed', `${what}: ${JSON.stringify(e)}`);
      assert.match(e?.description ?? '', /xmpp\.login.*JWT/, `${what}: ${JSON.stringify(e)}`);
    };
    for (const c of [
      await SioClient.connect({ user: A }),
      await PrimusClient.connect({ cookie: false, label: 'ftw:no-cookie' }),
    ]) {
      // Before login, as a callback's error or as xmpp.error.
      for (const [name, payload] of events) {
        check((await c.call(name, payload))[0], `${c.label} ${name} with callback`);
        c.emit(name, payload);
        check(await c.next('xmpp.error'), `${c.label} ${name} without callback`);
      }
      assert.ok(c.connected, `${c.label} stays open`);
    }
    // After login too; other unimplemented events still say so.
    const a = await sio(A, 'json');
    for (const [name, payload] of events) {
      check((await a.call(name, payload))[0], `${name} after login`);
    }
    const ni = await a.call('xmpp.pubsub.publish', { to: `pubsub.${DOMAIN}`, node: 'n', content: 'x' });
    assert.equal(ni[0]?.condition, 'feature-not-implemented', JSON.stringify(ni));
    assert.deepEqual(await a.call('xmpp.ping', {}), [null, true]);
  },

  async mam() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    for (const body of ['m1', 'm2']) {
      const r = await a.call('xmpp.chat.message', { to: bare(B), content: body });
      await x.stanza('message', { id: r[1].id });
    }
    x.send(`<message to='${bare(A)}' type='chat' id='m3'><body>m3</body></message>`);
    const live = await a.next('xmpp.chat.message', { id: 'm3' });
    // First page, filtered by 'with'.
    const q1 = await a.callSeq('xmpp.mam.query', { with: bare(B), rsm: { max: 2 } });
    assert.equal(q1.args[0], null, JSON.stringify(q1.args));
    assert.equal(q1.args[1]?.with, bare(B), JSON.stringify(q1.args));
    const rsm = q1.args[2];
    const page = a.drain('xmpp.mam.message');
    assert.deepEqual(
      page.map((e) => e.payload.content),
      ['m1', 'm2'],
      JSON.stringify(page),
    );
    for (const e of page) {
      assert.ok(e.seq < q1.seq, 'archived messages come before the callback');
      assert.equal(typeof e.payload.mam?.id, 'string', JSON.stringify(e.payload));
      assert.equal(typeof e.payload.mam?.queryId, 'string', JSON.stringify(e.payload));
    }
    assert.equal(page[0].payload.mam.queryId, page[1].payload.mam.queryId);
    assert.equal(rsm?.first, page[0].payload.mam.id, JSON.stringify(rsm));
    assert.equal(rsm?.last, page[1].payload.mam.id, JSON.stringify(rsm));
    // Everything.
    const q2 = await a.callSeq('xmpp.mam.query', { rsm: { max: 10 } });
    assert.equal(q2.args[0], null, JSON.stringify(q2.args));
    const all = a.drain('xmpp.mam.message');
    assert.deepEqual(
      all.map((e) => e.payload.content),
      ['m1', 'm2', 'm3'],
    );
    assert.ok(all.every((e) => e.seq < q2.seq));
    assert.deepEqual(all[2].payload.from, jidObj(B, 'xml'));
    assert.notEqual(all[0].payload.mam.queryId, page[0].payload.mam.queryId, 'each query has its own queryId');
    assert.equal(all[0].payload.mam.id, page[0].payload.mam.id, 'archive ids are stable');
    if (live.archived !== undefined) {
      assert.ok(
        live.archived.some((s) => s.id === all[2].payload.mam.id),
        `live archived ${JSON.stringify(live.archived)} names the archive id`,
      );
    }
  },

  async client_errors() {
    const a = await sio(A, 'json');
    const room = `group-${randomUUID()}@${MUC}`;
    const cases = [
      ['xmpp.chat.message', 'hello', 'Message not an object'],
      ['xmpp.chat.message', { content: 'no address' }, "Missing 'to' key"],
      ['xmpp.chat.message', { to: 'a@b@c', content: 'x' }, 'Invalid JID'],
      ['xmpp.chat.message', { to: bare(B), state: 'dancing' }, "Invalid 'state' value"],
      ['xmpp.chat.message', { to: bare(B) }, 'Message content or chat state not provided'],
      ['xmpp.muc.join', { room }, "Missing 'nick' key"],
    ];
    for (const [event, payload, description] of cases) {
      const r = await a.call(event, payload);
      assertClientError(r[0], description, payload, `${event} ${JSON.stringify(payload)} with callback`);
      a.emit(event, payload);
      const e = await a.next('xmpp.error.client', { description });
      assertClientError(e, description, payload, `${event} ${JSON.stringify(payload)} without callback`);
    }
    for (const [event, payload] of [
      ['xmpp.roster.get', {}],
      ['xmpp.discover.info', { of: DOMAIN }],
      ['xmpp.ping', {}],
      ['xmpp.mam.query', {}],
    ]) {
      a.emit(event, payload);
      const e = await a.next('xmpp.error.client', { description: 'Missing callback' });
      assertClientError(e, 'Missing callback', payload, `${event} without callback`);
    }
    const ni = await a.call('xmpp.pubsub.publish', { to: `pubsub.${DOMAIN}`, node: 'n', content: { t: 1 } });
    assert.equal(ni[0]?.type, 'cancel', JSON.stringify(ni));
    assert.equal(ni[0]?.condition, 'feature-not-implemented', JSON.stringify(ni));
    // None of that hurt the session.
    assert.ok(a.connected);
    assert.deepEqual(await a.call('xmpp.ping', {}), [null, true]);
    assert.deepEqual(a.pending('xmpp.error'), [], 'no xmpp.error for client errors');
    // A room message to a room the session has not joined.
    const notIn = { room, content: 'x' };
    assertClientError((await a.call('xmpp.muc.message', notIn))[0], 'Not in room', notIn, 'with callback');
    a.emit('xmpp.muc.message', notIn);
    const e = await a.next('xmpp.error.client', { description: 'Not in room' });
    assertClientError(e, 'Not in room', notIn, 'without callback');
  },

  async malformed_frame() {
    const a = await sio(A, 'json', { available: true });
    const x = await XmlClient.login(B, 'xml');
    // Three more sessions, each of which sends one broken frame.
    const c = await RawSio.connect({ user: C });
    await c.handshake();
    c.send(`42["xmpp.login",{"jid":"${bare(C)}"}]`);
    await c.frame((t) => sioEvent(t)?.[0] === 'xmpp.connection', 'xmpp.connection for carol');
    const d = await PrimusClient.connect({ user: D });
    await d.login(D);
    const e = await RawSio.connect({ user: A, label: `raw-socket.io:${A} (second)` });
    await e.handshake();
    c.send('42["xmpp.chat.message",{');
    log('carol closed:', await c.waitClosed());
    d.send('{"type":0,"data":["xmpp.chat.message",{');
    log('dave closed:', await d.waitClosed());
    e.send('42{"not":"an event array"}');
    log('second socket.io closed:', await e.waitClosed());
    // The others go on chatting.
    assert.ok(a.connected, 'the JSON client is still connected');
    const r = await a.call('xmpp.chat.message', { to: bare(B), content: 'still here' });
    assert.equal(r[0], null, JSON.stringify(r));
    const s = await x.stanza('message', { id: r[1].id });
    assert.equal(textOf(s, 'body'), 'still here', s);
    x.send(`<message to='${bare(A)}' type='chat' id='after-1'><body>me too</body></message>`);
    const m = await a.next('xmpp.chat.message', { id: 'after-1' });
    assert.equal(m.content, 'me too');
    assert.deepEqual(a.pending('xmpp.error'), []);
  },
};

const name = process.argv[2];
if (!name || !(name in scenarios)) {
  console.error(`usage: node scenarios.mjs <scenario>\nscenarios: ${Object.keys(scenarios).join(' ')}`);
  process.exit(2);
}
run(name, scenarios[name]);
