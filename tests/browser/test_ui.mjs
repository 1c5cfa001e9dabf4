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
// The wide (100 tasks) and bulk (10,000 lines) workflows are built here.
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
  // the run ending while watched takes "live" away, without a reload
  await waitFor('"live" to go', async () => !/live/.test(await page.locator('[data-test=live]').textContent()), 10000);
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

const NIGHTLY_SOURCE = `name: ui-nightly
schedule: {cron: "0 3 * * *", timezone: "Europe/Berlin"}
tasks:
  t: {run: "true"}
`;

await scenario('schedules_page_pauses_and_resumes', async () => {
  const page = ctx.admin;
  const pub = await api(page, 'POST', '/api/v1/workflows', { source: NIGHTLY_SOURCE, filename: 'nightly.yaml' });
  assert(pub.status === 201 || pub.status === 200, 'publish: ' + JSON.stringify(pub));
  await page.goto(`${URL}/ui/schedules`);
  const row = page.locator('[data-test=schedule-row][data-workflow=ui-nightly]');
  await row.waitFor({ timeout: 15000 });
  const text = await row.textContent();
  assert(/0 3 \* \* \*/.test(text) && /Europe\/Berlin/.test(text), 'row: ' + text);
  await waitFor('the next tick', async () => (await row.locator('[data-test=schedule-next] time').count()) === 1, 10000);
  await row.locator('[data-test=schedule-pause]').click();
  await waitFor('the row to show paused', async () => (await row.getAttribute('data-paused')) === 'true', 10000);
  const listed = await api(page, 'GET', '/api/v1/schedules');
  assert(listed.json.schedules.find((x) => x.workflow === 'ui-nightly').paused, 'the API does not show the pause');
  await shot(page, 'schedules');
  await row.locator('[data-test=schedule-resume]').click();
  await waitFor('the row to show resumed', async () => (await row.getAttribute('data-paused')) === 'false', 10000);
  checkClean(page);
});

await scenario('run_page_shows_its_notifications', async () => {
  const page = ctx.admin;
  // Nothing listens on the discard port: the webhook stays pending with its error
  const source = 'name: ui-notify\nnotify: {on: [succeeded], webhook: {url: "http://127.0.0.1:9/hook"}}\n' +
    'tasks:\n  t: {run: "true"}\n';
  const r = await api(page, 'POST', '/api/v1/runs', { source, filename: 'notify.yaml' });
  assert(r.status === 201, 'start: ' + JSON.stringify(r));
  await page.goto(`${URL}/ui/runs/${r.json.run_id}`);
  const row = page.locator('[data-test=notification-row]');
  await row.first().waitFor({ timeout: 15000 });
  assert((await row.count()) === 1, 'notification rows: ' + (await row.count()));
  await waitFor('the failed attempt to show', async () => /refused|connect|Couldn't/i.test(await row.textContent()), 15000);
  const text = await row.textContent();
  assert((await row.getAttribute('data-state')) === 'pending' && /webhook/.test(text) && /127\.0\.0\.1:9\/hook/.test(text),
    'row: ' + text);
  await shot(page, 'run-notifications');
  checkClean(page);
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

// ---- scale, time filters, live badge, dark scheme, keyboard ----

// 10 layers of 10 tasks, each needing two of the layer before
function wideSource() {
  const out = ['name: ui-wide', 'tasks:'];
  for (let l = 0; l < 10; l++) {
    for (let t = 0; t < 10; t++) {
      out.push(`  l${l}_t${t}:`, '    run: "true"');
      if (l) out.push(`    needs: [l${l - 1}_t${t}, l${l - 1}_t${(t + 1) % 10}]`);
    }
  }
  return out.join('\n') + '\n';
}

const BULK_SOURCE = `name: ui-bulk
tasks:
  bulk:
    run: sh -c 'seq -f "bulk line %g" 1 10000'
`;

// WCAG relative luminance and contrast of computed "rgb(...)" colours
function luminance(css) {
  const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/.exec(css);
  assert(m, 'not an rgb colour: ' + css);
  const [r, g, b] = m.slice(1, 4).map((v) => {
    const c = Number(v) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

const liveText = (page) => page.locator('[data-test=live]').textContent();

await scenario('finished_run_and_log_are_not_live', async () => {
  const page = ctx.admin;
  assert(ctx.chain, 'no chain run');
  await waitFor('the chain run to finish', async () =>
    (await api(page, 'GET', `/api/v1/runs/${ctx.chain}`)).json?.status === 'succeeded', 30000, 200);
  await page.goto(`${URL}/ui/runs/${ctx.chain}`);
  await page.locator('[data-test=run-status][data-status=succeeded]').waitFor({ timeout: 10000 });
  await sleep(700);                          // past the stream's connect
  assert(!/live/.test(await liveText(page)), 'a finished run shows: ' + (await liveText(page)));
  await shot(page, 'run-finished');
  await page.goto(`${URL}/ui/runs/${ctx.chain}/tasks/report/logs`);
  await waitFor('the log to end', async () => /finished/.test(await liveText(page)), 10000);
  // the lines of the last page may be drawn a moment after the stream ends
  await waitFor('all 8 lines', async () =>
    /8 lines — end of log/.test(await page.locator('.log-info').textContent()), 5000).catch(() => {});
  assert(/8 lines — end of log/.test(await page.locator('.log-info').textContent()),
    'log info: ' + (await page.locator('.log-info').textContent()));
  checkClean(page);
});

await scenario('runs_time_filters_in_url_and_api', async () => {
  const page = ctx.admin;
  const asked = [];
  const onRequest = (req) => { if (/\/api\/v1\/runs\?/.test(req.url())) asked.push(req.url()); };
  page.on('request', onRequest);
  try {
    await page.goto(`${URL}/ui/runs`);
    await page.locator('[data-test=run-row]').first().waitFor({ timeout: 10000 });
    // an hour ahead, as the local time the input shows
    const ahead = new Date(Date.now() + 3600e3);
    const p = (n) => String(n).padStart(2, '0');
    const local = `${ahead.getFullYear()}-${p(ahead.getMonth() + 1)}-${p(ahead.getDate())}T${p(ahead.getHours())}:${p(ahead.getMinutes())}:00`;
    const iso = new Date(local).toISOString().replace(/\.\d+Z$/, 'Z');
    await page.locator('[data-test=filter-after]').fill(local);
    await page.locator('form.filters [type=submit]').click();
    await waitFor('no rows after the future time', async () => (await page.locator('[data-test=run-row]').count()) === 0, 10000);
    assert(new globalThis.URL(page.url()).searchParams.get('after') === iso, 'URL ' + page.url());
    assert(asked.some((u) => new globalThis.URL(u).searchParams.get('after') === iso), 'API asked ' + JSON.stringify(asked));
    // the filter survives a reload from its URL
    await page.goto(`${URL}/ui/runs?before=${encodeURIComponent(iso)}`);
    await page.locator('[data-test=run-row]').first().waitFor({ timeout: 10000 });
    // Chromium drops ":00" seconds from the value: compare the times
    const shown = await page.locator('[data-test=filter-before]').inputValue();
    assert(new Date(shown).getTime() === new Date(local).getTime(), `before input ${shown}, want ${local}`);
    assert(asked.some((u) => new globalThis.URL(u).searchParams.get('before') === iso), 'API asked ' + JSON.stringify(asked));
    // a URL value that is no time is dropped, not sent on
    await page.goto(`${URL}/ui/runs?after=yesterday`);
    await page.locator('[data-test=run-row]').first().waitFor({ timeout: 10000 });
    assert(!asked.some((u) => /after=yesterday/.test(u)), 'sent a bad time');
    await page.goto(`${URL}/ui/runs?after=${encodeURIComponent(iso)}`);
    await page.locator('[data-test=filter-after]').waitFor();
    await sleep(300);
    await shot(page, 'runs-time-filter');
  } finally {
    page.off('request', onRequest);
  }
  checkClean(page);
});

await scenario('run_page_lays_out_100_tasks', async () => {
  const page = ctx.admin;
  const r = await api(page, 'POST', '/api/v1/runs', { source: wideSource(), filename: 'wide.yaml' });
  assert(r.status === 201, 'start run: ' + JSON.stringify(r));
  const id = r.json.run_id;
  try {
    await page.goto(`${URL}/ui/runs/${id}`);
    await waitFor('100 DAG nodes', async () => (await page.locator('[data-test=dag-node]').count()) === 100, 10000);
    const boxes = await page.$$eval('[data-test=dag-node] rect', (els) =>
      els.map((e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; }));
    assert(boxes.length === 100, 'node boxes ' + boxes.length);
    for (let i = 0; i < boxes.length; i++) {
      const [l, t, rr, b] = boxes[i];
      assert(rr > l && b > t, `node ${i} has no size`);
      for (let j = i + 1; j < boxes.length; j++) {
        const [l2, t2, r2, b2] = boxes[j];
        assert(l >= r2 || l2 >= rr || t >= b2 || t2 >= b, `nodes ${i} and ${j} overlap: ${boxes[i]} / ${boxes[j]}`);
      }
    }
    const [docW, viewW] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
    assert(docW <= viewW, `the page scrolls sideways: ${docW} > ${viewW}`);
    const box = await page.locator('.dag-box').evaluate((e) => [e.scrollWidth, e.clientWidth]);
    console.log(`  dag scroll ${box[0]} in ${box[1]} px; page ${docW} in ${viewW} px`);
    await shot(page, 'run-100-tasks');
    checkClean(page);
  } finally {
    await api(page, 'POST', `/api/v1/runs/${id}/cancel`);    // free the agent's slots
  }
});

await scenario('logs_page_virtualises_10000_lines', async () => {
  const page = ctx.admin;
  const r = await api(page, 'POST', '/api/v1/runs', { source: BULK_SOURCE, filename: 'bulk.yaml' });
  assert(r.status === 201, 'start run: ' + JSON.stringify(r));
  await page.goto(`${URL}/ui/runs/${r.json.run_id}/tasks/bulk/logs`);
  const info = page.locator('.log-info');
  await waitFor('10000 lines', async () => /^10000 lines/.test(await info.textContent()), 30000, 200);
  const inDom = await page.locator('[data-test=log-line]').count();
  assert(inDom > 0 && inDom < 300, `log lines in the DOM: ${inDom}`);
  // from the top, so the match is out of view until the search scrolls to it
  await page.locator('[data-test=log-view]').evaluate((e) => { e.scrollTop = 0; });
  await waitFor('the top of the log', async () =>
    (await page.locator('[data-test=log-line]').first().textContent()).endsWith('bulk line 1'), 5000);
  await page.locator('[data-test=log-search]').fill('bulk line 9990');
  await waitFor('the match', async () => (await page.locator('[data-test=match-count]').textContent()) === '1 / 1', 5000);
  const current = page.locator('.log-line.current');
  await current.waitFor({ timeout: 5000 });
  assert(/bulk line 9990$/.test(await current.textContent()), 'current line ' + (await current.textContent()));
  const [lineBox, viewBox] = await Promise.all([current.boundingBox(), page.locator('[data-test=log-view]').boundingBox()]);
  assert(lineBox.y >= viewBox.y && lineBox.y + lineBox.height <= viewBox.y + viewBox.height,
    `the match is not in view: ${JSON.stringify(lineBox)} in ${JSON.stringify(viewBox)}`);
  assert((await page.locator('[data-test=log-line]').count()) < 300, 'the DOM grew after the search');
  console.log(`  log lines in the DOM: ${inDom}`);
  await shot(page, 'logs-10000-lines');
  checkClean(page);
});

await scenario('runs_page_in_the_dark_scheme', async () => {
  const page = ctx.admin;
  await page.emulateMedia({ colorScheme: 'dark' });
  try {
    await page.goto(`${URL}/ui/runs`);
    await page.locator('[data-test=run-row]').first().waitFor({ timeout: 10000 });
    const [bg, fg, cell] = await page.evaluate(() => {
      const b = getComputedStyle(document.body);
      const td = document.querySelector('[data-test=run-row] td:nth-child(5)');
      return [b.backgroundColor, b.color, getComputedStyle(td).color];
    });
    assert(luminance(bg) < 0.05, 'the background is not dark: ' + bg);
    const ratio = contrast(fg, bg);
    assert(ratio >= 4.5, `body text contrast ${ratio.toFixed(2)} (${fg} on ${bg})`);
    assert(contrast(cell, bg) >= 4.5, `table text contrast ${contrast(cell, bg).toFixed(2)} (${cell} on ${bg})`);
    console.log(`  dark: ${fg} on ${bg}, contrast ${ratio.toFixed(1)}`);
    await shot(page, 'runs-dark');
    checkClean(page);
  } finally {
    await page.emulateMedia({ colorScheme: null });
  }
});

await scenario('keyboard_reaches_nav_and_dag_node', async () => {
  const page = ctx.admin;
  assert(ctx.chain, 'no chain run');
  await page.goto(`${URL}/ui/runs/${ctx.chain}`);
  await page.locator('[data-test=dag-node]').first().waitFor({ timeout: 10000 });
  const seen = [];
  let node = null;
  for (let i = 0; i < 40 && !node; i++) {
    await page.keyboard.press('Tab');
    const what = await page.evaluate(() => {
      const e = document.activeElement;
      return e ? [e.getAttribute('data-nav') || '', e.getAttribute('data-test') || '', e.getAttribute('data-task') || ''] : null;
    });
    seen.push(what);
    if (what && what[1] === 'dag-node') node = what[2];
  }
  const navs = seen.filter((w) => w && w[0]).map((w) => w[0]);
  assert(['runs', 'workflows', 'schedules', 'agents'].every((n) => navs.includes(n)), 'nav links reached: ' + JSON.stringify(navs));
  assert(node, 'no DAG node reached in 40 Tabs: ' + JSON.stringify(seen));
  await page.keyboard.press('Enter');
  await page.waitForURL(`**/ui/runs/${ctx.chain}/tasks/${node}/logs`, { timeout: 5000 });
  await page.locator('[data-test=log-line]').first().waitFor({ timeout: 10000 });
  checkClean(page);
});

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
