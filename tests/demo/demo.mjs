// The /demo page in a real browser: Debian's chromium driven by playwright-core (no browser
// download), two browser contexts (two users with their own cookie jars) on one server,
// asserting only through the page's DOM. Run by tests/demo.rs:
//
//   node demo.mjs <xml|ftw|mixed|paste>
//
// with AOBA_PORT (the server's HTTP port), AOBA_DOMAIN, AOBA_MUC (its MUC service),
// AOBA_TOKENS (JSON: user -> JWT, plus "bad": a JWT the server refuses) and AOBA_USERS
// ("a,b"); AOBA_DEMO_SCREENSHOTS=DIR keeps a screenshot of each page. Exits 0 on success;
// otherwise prints what it waited for, the page's state and the end of its raw log, and
// exits 1. Every wait is on a DOM condition, bounded by AOBA_DEMO_WAIT_MS; nothing is timed.

import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`missing ${name}: run through tests/demo.rs (cargo test --test demo)`);
    process.exit(2);
  }
  return v;
}

const PORT = Number(env('AOBA_PORT'));
const DOMAIN = env('AOBA_DOMAIN');
const MUC = env('AOBA_MUC');
const TOKENS = JSON.parse(env('AOBA_TOKENS'));
const [A, B] = env('AOBA_USERS').split(',');
const WAIT_MS = Number(process.env.AOBA_DEMO_WAIT_MS || 20000);
const CHROMIUM = process.env.AOBA_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.AOBA_DEMO_SCREENSHOTS; // a directory for screenshots, if set
const BASE = `http://127.0.0.1:${PORT}`;
const t0 = Date.now();
const bare = (user) => `${user}@${DOMAIN}`;

function log(...args) {
  console.log(`[${String(Date.now() - t0).padStart(6)} ms]`, ...args);
}

class Failure extends Error {}

/** One browser context (its own cookies) with the demo page open. */
class Tab {
  constructor(context, page, label) {
    this.context = context;
    this.page = page;
    this.label = label;
    this.problems = [];
    page.on('pageerror', (e) => this.problems.push(`uncaught exception: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) this.problems.push(`CSP: ${m.text()}`);
    });
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(`${BASE}/`) && !u.startsWith(`ws://127.0.0.1:${PORT}/`)) this.problems.push(`request off this server: ${u}`);
    });
  }

  /** `user`: its cookie is set before the page opens; `httpOnly`: as an application that
   *  keeps it out of the page's reach would set it (the page cannot read it, only use it). */
  static async open(browser, { user, variant, label, httpOnly = false }) {
    const context = await browser.newContext();
    if (user) {
      await context.addCookies([
        { name: 'auth_token', value: TOKENS[user], domain: '127.0.0.1', path: '/', sameSite: 'Strict', httpOnly },
      ]);
    }
    const page = await context.newPage();
    const tab = new Tab(context, page, label || `${user}/${variant}`);
    await tab.goto(variant);
    return tab;
  }

  async goto(variant) {
    this.variant = variant;
    const resp = await this.page.goto(`${BASE}/demo${variant === 'ftw' ? '?transport=ftw' : ''}`);
    if (resp.status() !== 200) throw new Failure(`${this.label}: GET /demo answered ${resp.status()}`);
  }

  /** Waits until `selector` (optionally with `text`) is in the page. */
  async see(selector, what, text) {
    const loc = this.page.locator(selector, text === undefined ? {} : { hasText: text }).first();
    try {
      await loc.waitFor({ state: 'attached', timeout: WAIT_MS });
    } catch {
      const sel = `${selector}${text === undefined ? '' : ` with text "${text}"`}`;
      throw new Failure(`${this.label}: timed out after ${WAIT_MS} ms waiting for ${what} (${sel})\n${await this.dump()}`);
    }
    return loc;
  }

  async fill(testid, value) {
    await this.page.getByTestId(testid).fill(value);
  }

  async click(testid) {
    await this.page.getByTestId(testid).click();
  }

  async text(testid) {
    return (await this.page.getByTestId(testid).textContent()) ?? '';
  }

  async online(user) {
    await this.see('[data-testid=status][data-state=online]', 'online status');
    const jid = await this.page.getByTestId('me').getAttribute('data-jid');
    if (!jid?.startsWith(`${bare(user)}/`)) throw new Failure(`${this.label}: logged in as ${jid}, expected ${bare(user)}/…`);
    log(`${this.label}: online as ${jid}`);
  }

  async dump() {
    const state = await this.page
      .evaluate(() => ({
        status: document.getElementById('status').textContent,
        loginError: document.getElementById('login-error').textContent,
        contacts: [...document.querySelectorAll('[data-testid=contact]')].map((c) => `${c.dataset.jid} ${c.dataset.presence} ${c.dataset.subscription}`),
        room: document.getElementById('room-state').textContent,
        log: [...document.querySelectorAll('#log li')].slice(-25).map((l) => l.textContent),
      }))
      .catch((e) => ({ error: String(e) }));
    const problems = this.problems.length ? `\nproblems:\n${this.problems.join('\n')}` : '';
    return `--- ${this.label} (${this.page.url()}) ---\n${JSON.stringify(state, null, 1)}${problems}`;
  }

  check() {
    if (this.problems.length) throw new Failure(`${this.label}: ${this.problems.join('\n')}`);
  }
}

async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** A's user and B's user, each on its variant: contacts, presence, chat with receipts
 *  both ways, and a group room. */
async function pair(browser, va, vb) {
  const a = await Tab.open(browser, { user: A, variant: va, httpOnly: true });
  const b = await Tab.open(browser, { user: B, variant: vb });
  await a.online(A);
  await b.online(B);

  // Contacts: A asks B (a bare localpart is completed with the domain); B accepts, which
  // asks A back; A approves at once as it asked first. Both see each other online.
  await a.fill('add-jid', B);
  await a.click('add-button');
  const request = await b.see(`[data-testid=request][data-jid="${bare(A)}"]`, `A's subscription request`);
  await request.getByTestId('accept').click();
  await a.see(`[data-testid=contact][data-jid="${bare(B)}"][data-presence=online][data-subscription=both]`, 'B online, subscription both');
  await b.see(`[data-testid=contact][data-jid="${bare(A)}"][data-presence=online][data-subscription=both]`, 'A online, subscription both');
  log('contacts: both online, subscription both');

  // 1:1 chat both ways, each with its delivery receipt.
  const chat = async (from, to, toUser, body) => {
    await from.page.locator(`[data-testid=contact][data-jid="${bare(toUser)}"]`).click();
    const target = await from.page.getByTestId('chat-to').inputValue();
    if (target !== bare(toUser)) throw new Failure(`${from.label}: clicking the contact set chat-to to ${target}`);
    await from.fill('chat-text', body);
    await from.click('chat-send');
    await to.see(`[data-testid=message][data-dir=in][data-peer="${bare(from === a ? A : B)}"]`, `"${body}" received`, body);
    const sent = await from.see('[data-testid=message][data-dir=out][data-receipt=received]', `the receipt tick of "${body}"`, body);
    const tick = await sent.getByTestId('tick').textContent();
    if (tick !== '✓') throw new Failure(`${from.label}: tick is ${tick}`);
    log(`chat: ${from.label} -> ${to.label} delivered and acknowledged`);
  };
  await chat(a, b, B, `hello from ${A} over ${va}`);
  await chat(b, a, A, `hi back from ${B} over ${vb}`);

  // The group room group-{uuid}: A creates it, B joins; a message each way.
  const id = randomUUID();
  const roomJid = `group-${id}@${MUC}`;
  for (const t of [a, b]) {
    await t.fill('room-uuid', id);
    await t.click('room-join');
    await t.see('[data-testid=room-state][data-state=joined]', `joined ${roomJid}`, roomJid);
  }
  await a.see(`[data-testid=occupant][data-nick="${B}"]`, `${B} among the occupants`);
  await b.see(`[data-testid=occupant][data-nick="${A}"]`, `${A} among the occupants`);
  const say = async (from, nick, to, body) => {
    await from.fill('room-text', body);
    await from.click('room-send');
    await to.see(`[data-testid=room-message][data-nick="${nick}"][data-history=no]`, `groupchat "${body}"`, body);
    await from.see(`[data-testid=room-message][data-nick="${nick}"]`, `own groupchat "${body}" reflected`, body);
  };
  await say(a, A, b, `room hello from ${A} (${va})`);
  await say(b, B, a, `room hello from ${B} (${vb})`);
  log(`room ${roomJid}: messages both ways`);

  // The raw log shows what went over the wire.
  for (const t of [a, b]) {
    if (SHOTS) await t.page.screenshot({ path: `${SHOTS}/${t.label.replace('/', '-')}.png`, fullPage: true });
    const marker = t.variant === 'ftw' ? '← xmpp.chat.receipt' : "<received xmlns='urn:xmpp:receipts'";
    await t.see('#log li', `"${marker}" in the raw log`, marker);
    t.check();
  }
  await a.context.close();
  await b.context.close();
}

/** Without a cookie the page asks for a token: a refused one shows why, a good one logs
 *  in and is kept as the cookie, so the next visit logs in at once; "Forget token" drops it. */
async function paste(browser, variant, user) {
  const t = await Tab.open(browser, { variant, label: `paste/${variant}` });
  await t.see('[data-testid=login]:not([hidden])', 'the token form');
  await t.see('[data-testid=status][data-state=offline]', 'offline status');
  const first = await t.text('login-error');
  if (!first.includes('paste a token')) throw new Failure(`${t.label}: without a cookie the page says "${first}"`);
  await t.fill('token', 'not a token');
  await t.click('login-button');
  await t.see('[data-testid=login-error]', 'the JWT shape error', 'three base64url parts');
  await t.fill('token', TOKENS.bad);
  await t.click('login-button');
  await t.see('[data-testid=login-error]', 'the refused token explained', 'refused');
  await t.see('[data-testid=login]:not([hidden])', 'the token form again');
  await t.fill('token', TOKENS[user]);
  await t.click('login-button');
  await t.online(user);
  const cookie = (await t.context.cookies(BASE)).find((c) => c.name === 'auth_token');
  if (cookie?.value !== TOKENS[user] || cookie.path !== '/' || cookie.sameSite !== 'Strict') {
    throw new Failure(`${t.label}: the cookie set is ${JSON.stringify(cookie)}`);
  }
  log(`${t.label}: pasted token kept as ${JSON.stringify({ path: cookie.path, sameSite: cookie.sameSite })}`);
  // The next visit logs in with the cookie, without the form.
  await t.goto(variant);
  await t.online(user);
  if (await t.page.getByTestId('login').isVisible()) throw new Failure(`${t.label}: the form shows with a cookie`);
  await t.click('forget');
  await t.see('[data-testid=login]:not([hidden])', 'the token form after "Forget token"');
  if ((await t.context.cookies(BASE)).some((c) => c.name === 'auth_token')) throw new Failure(`${t.label}: the cookie is still there`);
  t.check();
  await t.context.close();
}

const SCENARIOS = {
  xml: (br) => pair(br, 'xml', 'xml'),
  ftw: (br) => pair(br, 'ftw', 'ftw'),
  mixed: (br) => pair(br, 'xml', 'ftw'),
  paste: async (br) => {
    await paste(br, 'xml', A);
    await paste(br, 'ftw', B);
  },
};

const name = process.argv[2];
if (!SCENARIOS[name]) {
  console.error(`usage: node demo.mjs <${Object.keys(SCENARIOS).join('|')}>`);
  process.exit(2);
}
let browser;
try {
  browser = await launch();
  log(`chromium ${browser.version()}; scenario ${name}; users ${A}, ${B}`);
  await SCENARIOS[name](browser);
  log(`scenario ${name}: passed`);
} catch (e) {
  console.error(`scenario ${name} FAILED: ${e instanceof Failure ? e.message : e.stack}`);
  process.exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
}
