// Two runs side by side: params, the last value of each metric, checks
// and task durations, with the rows that differ marked.

import { api } from './api.js';
import { h, enc, formatValue, formatDuration, parseTime, attemptEnd, badge } from './util.js';

export function lastValues(series) {
  const out = {};
  for (const s of series || []) {
    const pts = s.points || [];
    if (pts.length) out[`${s.name} (${s.task})`] = pts[pts.length - 1].value;
  }
  return out;
}

export function taskDurations(run) {
  const out = {};
  for (const t of run.tasks || []) {
    const a = (t.attempts || [])[t.attempts.length - 1];
    const st = a ? parseTime(a.started) : null, en = a ? attemptEnd(a) : null;
    out[t.name] = st !== null && en !== null ? (en - st) / 1000 : null;
  }
  return out;
}

function checkResults(run) {
  const out = {};
  for (const t of run.tasks || []) for (const c of t.checks || []) {
    out[`${t.name}: ${c.expr}`] = `${c.passed ? 'passed' : 'failed'}${c.detail ? ` — ${c.detail}` : ''}`;
  }
  return out;
}

// One tbody per section in a single table, so the two run columns line up.
function section(title, a, b, fmt, testName) {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const head = h('tr', { class: 'section' }, h('th', { colspan: 3 }, title));
  if (!keys.length) return h('tbody', { 'data-test': testName }, head, h('tr', null, h('td', { colspan: 3, class: 'muted' }, 'Nothing to compare.')));
  return h('tbody', { 'data-test': testName }, head, keys.map((k) => {
    const va = k in a ? fmt(a[k]) : '—', vb = k in b ? fmt(b[k]) : '—';
    const diff = va !== vb;
    return h('tr', { class: diff ? 'differs' : null, 'data-differs': diff ? 'true' : 'false' },
      h('th', null, k), h('td', null, va), h('td', null, vb));
  }));
}

export function mountCompare(root, params, query, app) {
  const { a, b } = params;
  const box = h('div');
  root.append(h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', null, `Compare run #${a} and run #${b}`)), box));
  Promise.all([api(`/runs/${enc(a)}`), api(`/runs/${enc(b)}`),
    api(`/runs/${enc(a)}/metrics`).catch(() => ({ series: [] })), api(`/runs/${enc(b)}/metrics`).catch(() => ({ series: [] }))])
    .then(([ra, rb, ma, mb]) => {
      const headRow = (r) => h('th', null, h('a', { href: `/ui/runs/${r.run_id}` }, `#${r.run_id}`), ' ',
        h('span', { class: 'muted' }, `${r.workflow}@${r.version}`), ' ', badge(r.status), ' ', formatDuration(r.duration_s));
      box.append(h('table', { class: 'grid compare' },
        h('thead', null, h('tr', null, h('th', null, ''), headRow(ra), headRow(rb))),
        section('Params', ra.params || {}, rb.params || {}, formatValue, 'compare-params'),
        section('Metrics (last value)', lastValues(ma.series), lastValues(mb.series), formatValue, 'compare-metrics'),
        section('Checks', checkResults(ra), checkResults(rb), String, 'compare-checks'),
        section('Task durations', taskDurations(ra), taskDurations(rb), formatDuration, 'compare-durations')));
    })
    .catch((e) => app.error(e));
  return { unmount() {} };
}
