// One run: header, params, the live DAG, the attempt timeline, checks,
// stack traces, cached-from links, artifacts and the notifications of its
// end (read again every 5 s while one is pending).  The run's event stream
// sends the whole Run on every change; sections are rebuilt only when
// their own content changed.

import { api, stream } from './api.js';
import { h, clear, timeEl, badge, formatDuration, formatValue, formatBytes, refreshTimes, ACTIVE_RUN, enc } from './util.js';
import { DagView } from './dag_view.js';
import { drawGantt } from './gantt.js';

export function mountRun(root, params, query, app) {
  const id = params.id;
  let run = null;
  const sig = {};              // section -> last rendered content signature

  const head = h('div', { class: 'run-head' });
  const dagBox = h('div', { class: 'dag-box' });
  const ganttBox = h('div', { class: 'gantt-box' });
  const paramsBox = h('div');
  const checksBox = h('div');
  const tracesBox = h('div');
  const cachedBox = h('div');
  const enginesBox = h('div');
  const artifactsBox = h('div');
  const notifsBox = h('div');
  const live = h('span', { class: 'live', 'data-test': 'live' });
  const dag = new DagView(dagBox, { onOpen: (task) => app.router.go(`/ui/runs/${enc(id)}/tasks/${enc(task)}/logs`) });

  root.append(h('section', { class: 'page run-page' },
    h('div', { class: 'page-head' }, h('h1', null, `Run #${id}`), live,
      h('span', { class: 'spacer' }),
      h('a', { href: `/ui/runs/${enc(id)}/metrics`, class: 'button' }, 'Metrics')),
    head,
    h('div', { class: 'section-head' }, h('h2', null, 'Tasks'),
      h('button', { type: 'button', class: 'ghost small', 'aria-pressed': 'false', 'data-test': 'dag-fit', onclick: toggleFit }, 'Fit to width')),
    dagBox,
    h('h2', null, 'Timeline'), ganttBox,
    h('div', { class: 'two-col' },
      h('div', null, h('h2', null, 'Params'), paramsBox),
      h('div', null, h('h2', null, 'Checks'), checksBox)),
    tracesBox, cachedBox, enginesBox,
    h('h2', null, 'Artifacts'), artifactsBox,
    notifsBox));

  function toggleFit(ev) {
    const on = dagBox.classList.toggle('fit');
    ev.currentTarget.setAttribute('aria-pressed', String(on));
  }

  function changed(key, value) {
    const v = JSON.stringify(value);
    if (sig[key] === v) return false;
    sig[key] = v;
    return true;
  }

  function show(r) {
    run = r;
    settle(r);
    if (changed('head', [r.status, r.workflow, r.version, r.owner, r.created, r.finished, r.duration_s, r.cancel_requested, r.filename, r.no_cache])) renderHead(r);
    dag.update(r.tasks || []);
    if (changed('gantt', (r.tasks || []).map((t) => [t.name, t.attempts]))) drawGantt(ganttBox, r);
    if (changed('params', r.params)) renderParams(r.params || {});
    if (changed('checks', (r.tasks || []).map((t) => t.checks))) renderChecks(r);
    if (changed('traces', (r.tasks || []).map((t) => (t.attempts || []).map((a) => a.stack_trace)))) renderTraces(r);
    if (changed('cached', (r.tasks || []).map((t) => t.cached_from))) renderCached(r);
    if (changed('engines', (r.tasks || []).map((t) => (t.attempts || []).map((a) => [a.engine_job_id, a.engine_url])))) renderEngines(r);
    if (changed('outputs', [r.artifacts, (r.tasks || []).map((t) => (t.attempts || []).map((a) => a.outputs))])) loadArtifacts();
    if (changed('ended', r.status) && !ACTIVE_RUN.has(r.status)) loadNotifications();
  }

  // The notifications of the run's end: one row per channel, its state
  let notifsPending = false;
  async function loadNotifications() {
    let entries;
    try {
      entries = (await api(`/runs/${enc(id)}/notifications`)).entries || [];
    } catch (e) { if (e.status !== 404) app.error(e); return; }
    notifsPending = entries.some((n) => n.state === 'pending');
    if (!changed('notifs', entries)) return;
    clear(notifsBox);
    if (!entries.length) return;
    notifsBox.append(h('h2', null, 'Notifications'), h('table', { class: 'grid', 'data-test': 'notifications' },
      h('thead', null, h('tr', null, h('th', null, 'Channel'), h('th', null, 'Event'), h('th', null, 'Target'), h('th', null, 'State'),
        h('th', { class: 'num' }, 'Attempts'), h('th', null, 'Last error'), h('th', null, 'Done'))),
      h('tbody', null, entries.map((n) => h('tr', { 'data-test': 'notification-row', 'data-state': n.state },
        h('td', null, n.kind), h('td', null, (n.event || '').replace(/_/g, ' ')), h('td', null, h('code', null, n.target || '')),
        h('td', null, h('span', { class: `badge ${n.state === 'delivered' ? 'st-succeeded' : n.state === 'failed' ? 'st-failed' : 'st-queued'}` }, n.state)),
        h('td', { class: 'num' }, String(n.attempts || 0)), h('td', null, n.last_error || ''),
        h('td', null, n.state === 'pending' ? h('span', { class: 'muted' }, 'next ', timeEl(n.next_attempt)) : timeEl(n.done)))))));
  }

  function renderHead(r) {
    clear(head);
    const mayCancel = ACTIVE_RUN.has(r.status) && !r.cancel_requested && app.user &&
      (app.isAdmin() || app.user.name === r.owner);
    const cancel = mayCancel ? h('button', { type: 'button', class: 'danger', 'data-test': 'cancel', onclick: doCancel }, 'Cancel run') : null;
    head.append(h('dl', { class: 'facts' },
      h('dt', null, 'Status'), h('dd', { 'data-test': 'run-status', 'data-status': r.status }, badge(r.status),
        r.cancel_requested && ACTIVE_RUN.has(r.status) ? h('span', { class: 'muted' }, ' cancel requested') : null),
      h('dt', null, 'Workflow'), h('dd', null, h('a', { href: `/ui/workflows/${enc(r.workflow)}?v=${r.version}` }, `${r.workflow}@${r.version}`),
        r.filename ? h('span', { class: 'muted' }, ` (${r.filename})`) : null),
      h('dt', null, 'Owner'), h('dd', null, r.owner || '—'),
      h('dt', null, 'Created'), h('dd', null, timeEl(r.created)),
      h('dt', null, 'Finished'), h('dd', null, timeEl(r.finished)),
      h('dt', null, 'Duration'), h('dd', null, formatDuration(r.duration_s)),
      r.no_cache ? [h('dt', null, 'Cache'), h('dd', null, 'off for this run')] : null));
    if (cancel) head.append(cancel);
  }

  async function doCancel(ev) {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      const r = await api(`/runs/${enc(id)}/cancel`, { method: 'POST', body: {} });
      if (r && r.run_id !== undefined) show(r);
    } catch (e) {
      app.error(e);
      btn.disabled = false;
    }
  }

  function renderParams(p) {
    clear(paramsBox);
    const keys = Object.keys(p);
    if (!keys.length) { paramsBox.append(h('p', { class: 'muted' }, 'No params.')); return; }
    paramsBox.append(h('table', { class: 'grid kv', 'data-test': 'params' },
      h('tbody', null, keys.sort().map((k) => h('tr', null, h('th', null, k),
        h('td', { class: `val t-${typeof p[k]}` }, formatValue(p[k])))))));
  }

  function renderChecks(r) {
    clear(checksBox);
    const rows = [];
    for (const t of r.tasks || []) for (const c of t.checks || []) rows.push([t, c]);
    if (!rows.length) { checksBox.append(h('p', { class: 'muted' }, 'No checks.')); return; }
    checksBox.append(h('table', { class: 'grid', 'data-test': 'checks' },
      h('thead', null, h('tr', null, h('th', null, 'Task'), h('th', null, 'Check'), h('th', null, 'Severity'), h('th', null, 'Result'), h('th', null, 'Detail'))),
      h('tbody', null, rows.map(([t, c]) => h('tr', { class: c.passed ? 'check-pass' : `check-fail sev-${c.severity}` },
        h('td', null, t.name), h('td', null, h('code', null, c.expr)), h('td', null, c.severity),
        h('td', null, h('span', { class: `badge ${c.passed ? 'st-succeeded' : c.severity === 'warning' ? 'st-succeeded_with_warnings' : 'st-failed'}` }, c.passed ? 'passed' : 'failed')),
        h('td', null, c.detail || ''))))));
  }

  function renderTraces(r) {
    clear(tracesBox);
    const items = [];
    for (const t of r.tasks || []) for (const a of t.attempts || []) {
      if (a.stack_trace) items.push(h('details', { class: 'trace', open: true },
        h('summary', null, `${t.name} attempt ${a.attempt}${a.reason ? ` — ${a.reason}` : ''}`),
        h('pre', { 'data-test': 'stack-trace' }, a.stack_trace)));
    }
    if (items.length) tracesBox.append(h('h2', null, 'Stack traces'), ...items);
  }

  function renderCached(r) {
    clear(cachedBox);
    const items = (r.tasks || []).filter((t) => t.cached_from).map((t) =>
      h('li', null, h('code', null, t.name), ' reused the outputs of ', h('a', { href: `/ui/runs/${t.cached_from}`, 'data-test': 'cached-from' }, `run #${t.cached_from}`)));
    if (items.length) cachedBox.append(h('h2', null, 'Cached'), h('ul', { class: 'plain' }, items));
  }

  // Each attempt's job on its engine, linked to the engine's page where
  // the engine has one (the coordinator keeps only http(s) links)
  function renderEngines(r) {
    clear(enginesBox);
    const items = [];
    for (const t of r.tasks || []) for (const a of t.attempts || []) {
      if (!a.engine_url || !/^https?:\/\//.test(a.engine_url)) continue;
      items.push(h('li', null, `${t.name} attempt ${a.attempt}: `,
        h('a', { href: a.engine_url, target: '_blank', rel: 'noopener noreferrer', 'data-test': 'engine-link' },
          `${a.backend || 'engine'} ${a.engine_job_id || 'page'}`)));
    }
    if (items.length) enginesBox.append(h('h2', null, 'Engine pages'), h('ul', { class: 'plain' }, items));
  }

  async function loadArtifacts() {
    let list = null;
    try {
      const data = await api(`/runs/${enc(id)}/artifacts`);
      list = data.artifacts || [];
    } catch (e) {
      if (e.status !== 404) { app.error(e); return; }
      list = fromAttempts(run);       // no artifact route: what the attempts produced
    }
    clear(artifactsBox);
    if (!list.length) { artifactsBox.append(h('p', { class: 'muted' }, 'No artifacts.')); return; }
    artifactsBox.append(h('table', { class: 'grid', 'data-test': 'artifacts' },
      h('thead', null, h('tr', null, h('th', null, 'Task'), h('th', null, 'Name'), h('th', null, 'Kind'), h('th', { class: 'num' }, 'Size'), h('th', null, 'SHA-256'), h('th', null, ''))),
      h('tbody', null, list.map((a) => h('tr', null, h('td', null, a.task), h('td', null, a.name), h('td', null, a.kind),
        h('td', { class: 'num' }, a.kind === 'value' ? '' : formatBytes(a.size)),
        h('td', null, h('code', { class: 'hash', title: a.hash || '' }, (a.hash || '').slice(0, 12))),
        h('td', null, a.kind === 'value' ? h('code', null, a.value ?? '') :
          h('a', { href: a.download || `/api/v1/runs/${enc(id)}/artifacts/${enc(a.task)}/${enc(a.name)}`, download: '', 'data-test': 'artifact-download' }, 'download')))))));
  }

  function fromAttempts(r) {
    const out = [];
    for (const t of (r && r.tasks) || []) {
      const done = (t.attempts || []).filter((a) => (a.outputs || []).length);
      const last = done[done.length - 1];
      if (last) for (const o of last.outputs) out.push({ task: t.name, ...o });
    }
    return out;
  }

  // A finished run changes no more: its stream is closed (it would hold
  // one of the token's stream slots for nothing) and "live" goes away.
  let over = false;
  function settle(r) {
    if (over || ACTIVE_RUN.has(r.status)) return;
    over = true;
    if (sse) sse.close();
    live.textContent = '';
    live.classList.remove('on');
  }

  // First paint from a plain GET (its errors show), then the stream.
  let sse = null;
  api(`/runs/${enc(id)}`).then(show).catch((e) => { app.error(e); if (e.status === 404) sse.close(); });
  sse = stream(`/runs/${enc(id)}/events`, { run: (r) => { if (r && r.tasks) show(r); } }, {
    onUp: () => { if (!over) { live.textContent = '● live'; live.classList.add('on'); } },
    onDown: () => { if (!over) { live.textContent = '○ reconnecting'; live.classList.remove('on'); } },
  });
  // running bars grow with the clock
  const tick = setInterval(() => {
    refreshTimes(head);
    if (run && ACTIVE_RUN.has(run.status)) drawGantt(ganttBox, run);
    if (notifsPending) loadNotifications();
  }, 5000);
  return { unmount() { sse.close(); clearInterval(tick); } };
}

