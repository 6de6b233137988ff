// End-to-end test of the login and chat pages in a real Chromium (Debian's
// /usr/bin/chromium, driven by playwright-core; never a downloaded browser).
//
//   node tests/browser/chat.spec.mjs [--out DIR] SERVER_BINARY...
//
// For each server binary (chat-async, chat-threaded, chat-forked, chat-uring): start it on
// a free port, log two users in through the real form, watch them join, chat
// (markup and non-ASCII text must show literally), restart the server and
// watch the pages reconnect, log one out and watch the other see the leave,
// and check that a wrong password shows the error in place. Screenshots go to
// DIR (default: a new temporary directory, printed at the end).
//
// Every wait is on a page event or a DOM state, with a timeout; the whole run
// is bounded by TOTAL_MS, and every server started is killed on any exit.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';

const TOTAL_MS = 200_000;        // the whole run, all four models
const WAIT_MS = 15_000;          // any one wait on the page
const START_MS = 15_000;         // a server's listening line
const RECONNECT_MS = 30_000;     // the page's back-off is 1, 2, 4 ... s
const BROWSER = process.env.C10K_CHROMIUM || '/usr/bin/chromium';
const PASSWORD = '123456';       // the demo accounts' (CONTRACT.md, --users)
const HOSTILE = '<img src=x onerror=alert(1)>';
const NON_ASCII = 'Grüße, 世界 — naïve café ½';
const EMOJI = 'back again 🚀 (an astral character: two UTF-16 units, four UTF-8 bytes)';

// ---- arguments -------------------------------------------------------------

let outDir = null;
const servers = [];
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === '--out') outDir = process.argv[++i];
  else servers.push(resolve(process.argv[i]));
}
if (servers.length === 0 && process.env.C10K_SERVER) servers.push(resolve(process.env.C10K_SERVER));
if (servers.length === 0) {
  console.error('usage: node chat.spec.mjs [--out DIR] SERVER_BINARY...');
  process.exit(2);
}
outDir = outDir ? resolve(outDir) : mkdtempSync(join(tmpdir(), 'c10k-browser-'));
mkdirSync(outDir, { recursive: true });
const work = mkdtempSync(join(tmpdir(), 'c10k-browser-work-'));

// ---- servers ---------------------------------------------------------------

const running = new Set();       // child processes to kill whatever happens

function killAll() {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  running.clear();
}
process.on('exit', () => { killAll(); rmSync(work, { recursive: true, force: true }); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(1));

// Starts BIN listening on PORT (0: any) and resolves with {child, port} once
// it prints its listening line; rejects if it exits or stays silent.
function startServer(bin, port, secretFile) {
  return new Promise((resolveStart, rejectStart) => {
    const child = spawn(bin, ['--listen', `127.0.0.1:${port}`, '--secret', secretFile],
                        { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let out = '', err = '', done = false;
    const finish = (e, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) { child.kill('SIGKILL'); rejectStart(new Error(`${e}\nstderr:\n${err}`)); }
      else resolveStart(v);
    };
    const timer = setTimeout(() => finish(`${basename(bin)} printed no listening line in ${START_MS} ms`), START_MS);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) finish(null, { child, port: Number(m[1]), stderr: () => err });
    });
    child.stderr.on('data', (d) => { err += d; });
    child.on('exit', (code, sig) => {
      running.delete(child);
      child.exitInfo = { code, sig };
      finish(`${basename(bin)} exited (${code ?? sig}) before listening`);
    });
    child.on('error', (e) => finish(`cannot run ${bin}: ${e.message}`));
  });
}

// SIGTERM, then wait for the exit the contract promises (0, within 5 s).
function stopServer(server) {
  const { child } = server;
  return new Promise((resolveStop, rejectStop) => {
    if (child.exitInfo) { resolveStop(child.exitInfo); return; }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rejectStop(new Error('server did not exit within 10 s of SIGTERM'));
    }, 10_000);
    child.once('exit', (code, sig) => { clearTimeout(timer); resolveStop({ code, sig }); });
    child.kill('SIGTERM');
  });
}

// ---- small assertions ------------------------------------------------------

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// Waits until FN (run in the page with ARG) returns true.
async function until(page, what, fn, arg, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    throw new Error(`timed out waiting for ${what} (${page.url()}): ${e.message.split('\n')[0]}`);
  }
}

const stateIs = (page, cls, timeout) =>
  until(page, `connection state "${cls}"`, (c) => document.getElementById('state').className === c,
        cls, timeout);

const usersAre = (page, names) =>
  until(page, `online users = ${names.join(',')}`,
        (want) => [...document.querySelectorAll('#users li')].map((li) => li.textContent).join(',') === want,
        names.join(','));

// A notice such as "cc joined": the last system line that contains TEXT.
const noticeShown = (page, text) =>
  until(page, `notice "${text}"`,
        (t) => [...document.querySelectorAll('#log li.sys')].some((li) => li.textContent.includes(t)),
        text);

// A chat message shown with exactly this author and text (textContent, so
// markup would show here as characters, and a parsed <img> would not).
const messageShown = (page, user, text) =>
  until(page, `message ${user}: ${text}`,
        ([u, t]) => [...document.querySelectorAll('#log li.msg')].some((li) =>
          li.querySelector('.author')?.textContent === u && li.querySelector('.text')?.textContent === t),
        [user, text]);

// ---- the pages -------------------------------------------------------------

// Watches a page for what must never happen: an alert (the hostile message
// ran), an uncaught script error, or a CSP violation.
function guard(page, problems, who) {
  page.on('dialog', (d) => { problems.push(`${who}: dialog "${d.message()}"`); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => problems.push(`${who}: page error ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) problems.push(`${who}: ${m.text()}`);
  });
}

const focusIs = (page, id) =>
  until(page, `focus in #${id}`, (i) => document.activeElement?.id === i, id);

// Logs USER in through the form with the keyboard only, first with a wrong
// password: the user name field has the focus on arrival, Tab reaches the
// password, Enter submits; after the 401 the name is kept and the focus
// waits in the password field.
async function loginByKeyboard(page, base, user, password) {
  await page.goto(`${base}/login`);
  await focusIs(page, 'username');
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await focusIs(page, 'password');
  await page.keyboard.type('not-' + password);
  const [bad] = await Promise.all([
    page.waitForNavigation({ timeout: WAIT_MS }),
    page.keyboard.press('Enter'),
  ]);
  check(bad.status() === 401, `a wrong password answered ${bad.status()}, not 401`);
  await page.locator('#error').waitFor({ state: 'visible' });
  check((await page.locator('#username').inputValue()) === user, 'the name is kept after a 401');
  await focusIs(page, 'password');
  await page.keyboard.type(password);
  const [resp] = await Promise.all([
    page.waitForNavigation({ timeout: WAIT_MS }),
    page.keyboard.press('Enter'),
  ]);
  return resp;
}

// Logs USER in by the labels, as a screen-reader user would find the fields.
async function loginByLabel(page, base, user, password) {
  await page.goto(`${base}/login`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  const [resp] = await Promise.all([
    page.waitForNavigation({ timeout: WAIT_MS }),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  return resp;
}

async function sendByEnter(page, text) {
  const input = page.locator('#text');
  await input.fill(text);
  await input.press('Enter');
  // Enter sends: the input empties and keeps the focus for the next line.
  await until(page, 'the input cleared and focused after Enter',
              () => document.activeElement?.id === 'text' && document.getElementById('text').value === '');
}

// Lays the two users' views out side by side in one image, for the README
// (drawn by the browser itself: no image library needed).
async function sideBySide(browser, views, path) {
  const page = await browser.newPage({ viewport: { width: 1660, height: 400 }, colorScheme: 'light' });
  try {
    await page.setContent(`<!doctype html><style>
      body { margin: 0; padding: 12px; display: flex; gap: 16px; background: #d9dde3;
             font: 600 15px system-ui, sans-serif; color: #3c4048; }
      figure { margin: 0; } figcaption { margin: 0 0 6px 2px; }
      img { display: block; width: 800px; border: 1px solid #9aa0a6; border-radius: 6px; }
      </style>` + views.map(([who, png]) =>
        `<figure><figcaption>${who}'s window</figcaption>` +
        `<img src="data:image/png;base64,${png.toString('base64')}"></figure>`).join(''));
    await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    await page.locator('body').screenshot({ path });
  } finally {
    await page.close();
  }
}

async function runModel(browser, bin) {
  const model = basename(bin);                      // chat-async, chat-threaded, chat-forked, chat-uring
  const shot = (page, name) => page.screenshot({ path: join(outDir, `${model}-${name}.png`) });
  const secretFile = join(work, `${model}.secret`);
  // A fixed secret lets the sessions survive the restart below.
  writeFileSync(secretFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  let server = await startServer(bin, 0, secretFile);
  const port = server.port;
  const base = `http://127.0.0.1:${port}`;
  const problems = [];
  const desktop = { viewport: { width: 800, height: 520 }, colorScheme: 'light' };
  const contexts = [];
  const newPage = async (who, opts) => {
    const ctx = await browser.newContext(opts);
    contexts.push(ctx);
    ctx.setDefaultTimeout(WAIT_MS);
    const page = await ctx.newPage();
    guard(page, problems, who);
    return page;
  };
  try {
    // 1. A wrong password, with scripting off: the form is a plain POST and
    //    the 401 page shows the error in place of the form's empty error box.
    const noJs = await newPage('nojs', { ...desktop, javaScriptEnabled: false });
    await noJs.goto(`${base}/login`);
    check(!(await noJs.locator('#error').isVisible()), 'no error box before a failed login');
    await shot(noJs, 'login');
    const bad = await loginByLabel(noJs, base, 'coco', 'wrong-password');
    check(bad.status() === 401, `wrong password answered ${bad.status()}, not 401`);
    check(new URL(noJs.url()).pathname === '/login', `wrong password went to ${noJs.url()}`);
    const err = noJs.locator('#error');
    await err.waitFor({ state: 'visible' });
    check((await err.textContent()).includes('Wrong user name or password'), 'the error text is shown');
    check(await noJs.getByRole('alert').isVisible(), 'the error is announced (role=alert)');
    check((await noJs.getByLabel('User name').inputValue()) === 'coco', 'the name is kept after a 401');
    await shot(noJs, 'login-error');
    // The same form logs in without any script.
    const ok = await loginByLabel(noJs, base, 'aa', PASSWORD);
    check(ok.status() === 200 && new URL(noJs.url()).pathname === '/chat', 'no-JS login reaches /chat');
    check((await noJs.locator('#me').textContent()) === 'aa', 'the no-JS chat page names aa');
    await noJs.context().close();

    // 2. coco signs in with the keyboard alone and is live on the chat page.
    const a = await newPage('coco', desktop);
    await loginByKeyboard(a, base, 'coco', PASSWORD);
    check(new URL(a.url()).pathname === '/chat', `coco landed on ${a.url()}`);
    await stateIs(a, 'live');
    check((await a.locator('#me').textContent()) === 'coco', 'the chat page names coco');
    check(await a.getByRole('button', { name: 'Log out' }).isVisible(), 'a Log out button');
    check((await a.locator('footer').textContent()).includes(model), `the footer names ${model}`);
    await usersAre(a, ['coco']);

    // 3. cc signs in; each sees the other join.
    const b = await newPage('cc', desktop);
    await loginByLabel(b, base, 'cc', PASSWORD);
    await stateIs(b, 'live');
    await usersAre(b, ['cc', 'coco']);
    await noticeShown(a, 'cc joined');
    await usersAre(a, ['cc', 'coco']);

    // 4. Messages both ways: markup shows as characters, never runs, and
    //    non-ASCII text arrives intact. The sender's own lines stand apart.
    await sendByEnter(a, 'Hello cc!');
    await sendByEnter(a, HOSTILE);
    await sendByEnter(b, NON_ASCII);
    await sendByEnter(b, 'Hi coco, markup stays text: <b>not bold</b> & co.');
    for (const p of [a, b]) {
      await messageShown(p, 'coco', 'Hello cc!');
      await messageShown(p, 'coco', HOSTILE);
      await messageShown(p, 'cc', NON_ASCII);
      await messageShown(p, 'cc', 'Hi coco, markup stays text: <b>not bold</b> & co.');
      check(await p.locator('#log img, #log b').count() === 0, 'no element parsed from chat text');
    }
    const ownA = await a.locator('#log li.msg.own .author').allTextContents();
    check(ownA.length === 2 && ownA.every((u) => u === 'coco'), `coco's own lines marked own: ${ownA}`);
    const ownB = await b.locator('#log li.msg.own .author').allTextContents();
    check(ownB.length === 2 && ownB.every((u) => u === 'cc'), `cc's own lines marked own: ${ownB}`);
    check(await a.locator('#log li.msg time').count() >= 4, 'every message shows its time');
    // Too long for the server (4096 bytes): refused in the page, text kept.
    await a.locator('#text').fill('é'.repeat(2100));
    await a.locator('#text').press('Enter');
    await until(a, 'the too-long hint', () => document.getElementById('hint').textContent.includes('Too long'));
    check((await a.locator('#text').inputValue()).length === 2100, 'the too-long text is kept');
    await a.locator('#text').fill('');
    await until(a, 'the hint cleared', () => document.getElementById('hint').textContent === '');
    await shot(a, 'chat');
    await sideBySide(browser, [['coco', await a.screenshot()], ['cc', await b.screenshot()]],
                     join(outDir, `${model}-chat-two-users.png`));

    // 5. A newcomer on a phone gets the history from welcome on entry.
    const phone = await newPage('aa', { viewport: { width: 390, height: 760 }, isMobile: true,
                                        hasTouch: true, deviceScaleFactor: 2, colorScheme: 'light' });
    await loginByLabel(phone, base, 'aa', PASSWORD);
    await stateIs(phone, 'live');
    await messageShown(phone, 'coco', HOSTILE);
    await messageShown(phone, 'cc', NON_ASCII);
    await usersAre(phone, ['aa', 'cc', 'coco']);
    await noticeShown(a, 'aa joined');
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 0, `the phone page scrolls sideways by ${overflow}px`);
    await shot(phone, 'chat-phone');
    await phone.goto(`${base}/login`);
    await shot(phone, 'login-phone');
    await phone.context().close();
    await noticeShown(a, 'aa left');
    await usersAre(a, ['cc', 'coco']);

    // 6. The server restarts on the same port (same secret, so the cookies
    //    hold): the pages explain the 1001, go reconnecting, then live again.
    const stopped = await stopServer(server);
    check(stopped.code === 0, `server exit after SIGTERM: ${JSON.stringify(stopped)}`);
    for (const p of [a, b]) {
      await noticeShown(p, 'shutting down');
      await until(p, 'state reconnecting or connecting',
                  () => /^(reconnecting|connecting)$/.test(document.getElementById('state').className));
    }
    await shot(a, 'reconnecting');
    server = await startServer(bin, port, secretFile);
    for (const p of [a, b]) {
      await stateIs(p, 'live', RECONNECT_MS);
      await usersAre(p, ['cc', 'coco']);
      // What was on screen stays there across the reconnect.
      await noticeShown(p, 'Connected again');
      await messageShown(p, 'coco', HOSTILE);
    }
    await sendByEnter(b, EMOJI);
    await messageShown(a, 'cc', EMOJI);

    // 7. cc logs out: back on the sign-in page, and coco sees the leave.
    const [out] = await Promise.all([
      b.waitForNavigation({ timeout: WAIT_MS }),
      b.getByRole('button', { name: 'Log out' }).click(),
    ]);
    check(new URL(b.url()).pathname === '/login', `logout went to ${b.url()} (${out && out.status()})`);
    await noticeShown(a, 'cc left');
    await usersAre(a, ['coco']);
    await b.goto(`${base}/chat`);
    check(new URL(b.url()).pathname === '/login', 'after logout /chat sends back to /login');

    check(problems.length === 0, `the pages misbehaved:\n  ${problems.join('\n  ')}`);
  } catch (e) {
    e.message += `\nserver stderr (${model}):\n${server.stderr()}`;
    throw e;
  } finally {
    for (const ctx of contexts) await ctx.close().catch(() => {});
    await stopServer(server).catch(() => {});
  }
}

// ---- main ------------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.error(`browser test: gave up after ${TOTAL_MS / 1000} s`);
  process.exit(1);
}, TOTAL_MS);

let passed = 0, failed = 0;
const browser = await chromium.launch({
  executablePath: BROWSER,
  headless: true,
  // CI runs as root, where Chromium refuses to start with its sandbox.
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
  timeout: WAIT_MS,
});
try {
  for (const bin of servers) {
    const t0 = Date.now();
    try {
      await runModel(browser, bin);
      passed++;
      console.log(`ok   browser ${basename(bin)} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed++;
      console.log(`FAIL browser ${basename(bin)}: ${e.stack || e}`);
    }
  }
} finally {
  await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
console.log(`screenshots in ${outDir}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
