// The web UI in a real headless Chromium (playwright-core driving
// /usr/bin/chromium), against a live qanatd started by
// tests/integration/test_ui.py, which passes in the environment:
//   QANAT_URL             http://127.0.0.1:PORT
//   QANAT_ADMIN_TOKEN     an admin API token; QANAT_USER_TOKEN a user one
//   QANAT_AGENT           the name of the one agent
//   QANAT_CHAIN_SOURCE    a workflow: three chained tasks printing lines,
//                         the middle one reporting 5 points of "loss"
//   QANAT_TALK_SOURCE     a workflow: one task printing a line every 0.25 s
//   QANAT_SCREENSHOTS     where each page's screenshot goes
//   QANAT_CHROMIUM        the browser (default /usr/bin/chromium)
//   QANAT_PLAYWRIGHT      playwright-core's index.mjs (default: resolved here)
// Prints "ok NAME" / "FAIL NAME" per scenario and "N passed, N failed".
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// QANAT_PLAYWRIGHT: playwright-core's index.mjs when its node_modules is
// not next to this file (a build from the distribution tarball)
const { chromium } = await import(process.env.QANAT_PLAYWRIGHT
  ? pathToFileURL(process.env.QANAT_PLAYWRIGHT).href : 'playwright-core');

const URL = process.env.QANAT_URL;
const ADMIN = process.env.QANAT_ADMIN_TOKEN;
const USER = process.env.QANAT_USER_TOKEN;
const AGENT = process.env.QANAT_AGENT || 'a1';
const SHOTS = process.env.QANAT_SCREENSHOTS || 'screenshots';
fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0, failed = 0;
const pages = [];                            // every page, for their console notes
const ctx = {};                              // shared between scenarios

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// A page whose console errors and uncaught exceptions are collected.
// Network statuses the scenario expects (401 before sign-in, 403) are
// "Failed to load resource" lines and are only reported; a CSP violation
// or an exception fails the scenario.
async function newPage(context) {
  const page = await context.newPage();
  page.problems = [];
  page.notes = [];
  pages.push(page);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/Failed to load resource/.test(text) && !/Content Security Policy/i.test(text)) page.notes.push(text);
    else page.problems.push('console: ' + text);
  });
  page.on('pageerror', (err) => page.problems.push('exception: ' + err.message));
  return page;
}

function checkClean(page) {
  assert(page.problems.length === 0, 'console errors:\n  ' + page.problems.join('\n  '));
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name + '.png'), fullPage: true });
}

async function signIn(context, token) {
  const page = await newPage(context);
  await page.goto(URL + '/ui/runs');
  await page.locator('[data-test=token]').waitFor({ timeout: 10000 });
  await page.locator('[data-test=token]').fill(token);
  // [data-test=signin] is the sign-in button, or the form holding it
  const signin = page.locator('[data-test=signin]');
  if (await signin.evaluate((e) => e.tagName === 'FORM')) await signin.locator('[type=submit]').click();
  else await signin.click();
  await waitFor('the session cookie', async () =>
    (await context.cookies(URL)).find((c) => c.name === 'qanat_session'));
  await page.locator('[data-test=token]').waitFor({ state: 'hidden', timeout: 10000 });
  return page;
}

// fetch from inside the page: the session cookie and the page's Origin
async function api(page, method, route, body) {
  return page.evaluate(async ([method, route, body]) => {
    const r = await fetch(route, {
      method, credentials: 'same-origin',
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    let json = null;
    try { json = await r.json(); } catch (e) { /* not JSON */ }
    return { status: r.status, json };
  }, [method, route, body]);
}

async function scenario(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name} (${((Date.now() - started) / 1000).toFixed(1)}s)\n  ${e.stack || e}`);
    for (const page of pages) {
      if (page.isClosed()) continue;
      const notes = page.notes.splice(0);
      if (notes.length) console.log(`  console of ${page.url()}:\n    ` + notes.join('\n    '));
    }
  }
}

const browser = await chromium.launch({
  executablePath: process.env.QANAT_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
const adminContext = await browser.newContext({ viewport: { width: 1366, height: 850 } });

await scenario('sign_in_with_a_pasted_token', async () => {
  const page = await signIn(adminContext, ADMIN);
  const cookie = (await adminContext.cookies(URL)).find((c) => c.name === 'qanat_session');
  assert(cookie.httpOnly, 'the session cookie is not HttpOnly');
  assert(cookie.sameSite === 'Strict', 'SameSite ' + cookie.sameSite);
  assert(!(await page.evaluate(() => document.cookie)).includes('qanat_session'), 'cookie readable from script');
  assert(!(await page.evaluate(() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage))).includes(ADMIN),
    'the token is kept in web storage');
  const me = await api(page, 'GET', '/api/v1/whoami');
  assert(me.status === 200 && me.json.role === 'admin', 'whoami ' + JSON.stringify(me));
  await shot(page, 'runs');
  checkClean(page);
  ctx.admin = page;
});

await scenario('dag_goes_live_from_queued_to_succeeded', async () => {
  const page = ctx.admin;
  assert(page, 'not signed in');
  const r = await api(page, 'POST', '/api/v1/runs', { source: process.env.QANAT_CHAIN_SOURCE, filename: 'chain.yaml' });
  assert(r.status === 201, 'start run: ' + JSON.stringify(r));
  ctx.chain = r.json.run_id;
  await page.goto(`${URL}/ui/runs/${ctx.chain}`);
  await page.locator('[data-test=dag-node]').first().waitFor({ timeout: 10000 });
  await page.evaluate(() => { window.__noReload = true; });
  const history = {};
  await waitFor('every DAG node to succeed', async () => {
    const nodes = await page.$$eval('[data-test=dag-node]', (els) =>
      els.map((e) => [e.getAttribute('data-task') || e.getAttribute('data-name') || e.textContent.trim(),
                      e.getAttribute('data-status')]));
    for (const [name, status] of nodes) {
      const h = (history[name] ||= []);
      if (h[h.length - 1] !== status) h.push(status);
    }
    return nodes.length === 3 && nodes.every(([, s]) => s === 'succeeded');
  }, 60000, 50);
  assert(await page.evaluate(() => window.__noReload === true), 'the page reloaded');
  const seqs = Object.values(history);
  assert(seqs.length === 3, 'nodes ' + JSON.stringify(history));
  for (const h of seqs) {
    assert(h.includes('running'), 'a node never showed running: ' + JSON.stringify(history));
    assert(h[h.length - 1] === 'succeeded', 'ended ' + JSON.stringify(history));
  }
  assert(seqs.filter((h) => ['queued', 'pending'].includes(h[0])).length >= 2,
    'at least the two later nodes start queued/pending: ' + JSON.stringify(history));
  console.log('  dag states seen: ' + JSON.stringify(history));
  await shot(page, 'run');
  checkClean(page);
});

await scenario('logs_page_tails_a_running_task', async () => {
  const page = ctx.admin;
  const r = await api(page, 'POST', '/api/v1/runs', { source: process.env.QANAT_TALK_SOURCE, filename: 'talk.yaml' });
  assert(r.status === 201, 'start run: ' + JSON.stringify(r));
  const id = r.json.run_id;
  await waitFor('the talk task to run', async () =>
    (await api(page, 'GET', `/api/v1/runs/${id}`)).json?.tasks?.[0]?.status === 'running', 20000, 100);
  await page.goto(`${URL}/ui/runs/${id}/tasks/talk/logs`);
  await page.locator('[data-test=log-line]').first().waitFor({ timeout: 10000 });
  const first = await page.locator('[data-test=log-line]').count();
  const later = await waitFor('new log lines', async () => {
    const n = await page.locator('[data-test=log-line]').count();
    return n >= first + 3 ? n : 0;
  }, 15000, 200);
  console.log(`  log lines ${first} -> ${later}`);
  const numbers = await page.$$eval('[data-test=log-line]', (els) =>
    els.map((e) => (/talk line (\d+)/.exec(e.textContent) || [])[1]).filter(Boolean).map(Number));
  assert(numbers.every((n, i) => i === 0 || n === numbers[i - 1] + 1),
    'log lines out of order, missing or repeated: ' + JSON.stringify(numbers));
  await shot(page, 'logs');
  checkClean(page);
});

await scenario('metrics_page_charts_five_points', async () => {
  const page = ctx.admin;
  assert(ctx.chain, 'no chain run');
  await page.goto(`${URL}/ui/runs/${ctx.chain}/metrics`);
  await page.locator('[data-test=metric-chart][data-points="5"]').first().waitFor({ timeout: 15000 });
  const charts = await page.$$eval('[data-test=metric-chart]', (els) => els.map((e) => e.getAttribute('data-points')));
  assert(charts.includes('5'), 'charts ' + JSON.stringify(charts));
  await sleep(500);                          // let the chart draw for the screenshot
  await shot(page, 'metrics');
  checkClean(page);
});

function agentRow(page) {
  return page.locator('[data-test=agent-row]').filter({ hasText: AGENT }).first();
}

async function draining(row) {
  const [state, flag] = await row.evaluate((e) => [e.getAttribute('data-state') || '', e.getAttribute('data-draining') || '']);
  return flag === 'true' || /drain/.test(state);
}

await scenario('admin_drains_and_undrains_an_agent', async () => {
  const page = ctx.admin;
  await page.goto(`${URL}/ui/agents`);
  const row = agentRow(page);
  await row.waitFor({ timeout: 10000 });
  assert(!(await draining(row)), 'already draining');
  await row.locator('[data-test=drain]').click();
  await waitFor('the row to show draining', () => draining(row), 10000);
  const listed = await api(page, 'GET', '/api/v1/agents');
  assert(listed.json.agents.find((a) => a.name === AGENT).draining, 'the API does not show the drain');
  await shot(page, 'agents');
  const undrain = row.locator('[data-test=undrain]');
  await ((await undrain.count()) ? undrain : row.locator('[data-test=drain]')).click();
  await waitFor('the row to show not draining', async () => !(await draining(row)), 10000);
  checkClean(page);
});

await scenario('user_sees_no_drain_and_gets_403', async () => {
  const context = await browser.newContext({ viewport: { width: 1366, height: 850 } });
  const page = await signIn(context, USER);
  await page.goto(`${URL}/ui/agents`);
  await agentRow(page).waitFor({ timeout: 10000 });
  await sleep(500);
  assert((await page.locator('[data-test=drain]').count()) === 0, 'a user sees a drain button');
  const r = await api(page, 'POST', `/api/v1/agents/${AGENT}/drain`);
  assert(r.status === 403, 'user drain: ' + JSON.stringify(r));
  await shot(page, 'agents-user');
  checkClean(page);
  await context.close();
});

await scenario('headers_and_csp_on_static_files', async () => {
  const page = ctx.admin;
  const resp = await page.goto(`${URL}/ui/runs/${ctx.chain || 1}`);
  const h = resp.headers();
  assert(/default-src 'self'/.test(h['content-security-policy'] || ''), 'CSP ' + h['content-security-policy']);
  assert(h['x-content-type-options'] === 'nosniff', 'nosniff');
  const scripts = await page.$$eval('script', (els) => els.map((e) => e.src ? '' : e.textContent.trim()).filter(Boolean));
  assert(scripts.length === 0, 'inline scripts: ' + scripts.length);
  checkClean(page);
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
