// Workflows: the list, one workflow's versions with their source (line
// numbers), and a diff between two versions.

import { api } from './api.js';
import { h, clear, enc, timeEl } from './util.js';

export function mountWorkflows(root, params, query, app) {
  const box = h('div');
  root.append(h('section', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', null, 'Workflows')), box));
  api('/workflows').then((data) => {
    const list = data.workflows || [];
    if (!list.length) { box.append(h('p', { class: 'muted' }, 'No workflow stored yet.')); return; }
    box.append(h('table', { class: 'grid' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', { class: 'num' }, 'Latest'), h('th', { class: 'num' }, 'Runs'), h('th', null, 'Created'))),
      h('tbody', null, list.map((w) => h('tr', { 'data-test': 'workflow-row' },
        h('td', null, h('a', { href: `/ui/workflows/${enc(w.name)}` }, w.name)),
        h('td', { class: 'num' }, `v${w.latest}`), h('td', { class: 'num' }, w.runs ?? ''),
        h('td', null, timeEl(w.created)))))));
  }).catch((e) => app.error(e));
  return { unmount() {} };
}

export function sourceLines(text) {
  const lines = String(text).split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export function mountWorkflow(root, params, query, app) {
  const name = params.name;
  const versionsEl = h('ul', { class: 'versions', 'data-test': 'versions' });
  const sourceBox = h('div', { class: 'source-box' });
  const from = h('select', { 'aria-label': 'diff from' });
  const to = h('select', { 'aria-label': 'diff to' });
  const diffBox = h('div');
  const metricIn = h('input', { type: 'text', placeholder: 'metric name, e.g. loss', 'aria-label': 'metric name' });
  const metricForm = h('form', { class: 'inline' }, metricIn, h('button', { type: 'submit' }, 'History'));
  metricForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (metricIn.value.trim()) app.router.go(`/ui/workflows/${enc(name)}/metrics/${enc(metricIn.value.trim())}`);
  });
  const diffForm = h('form', { class: 'inline' }, 'Diff ', from, ' → ', to, h('button', { type: 'submit' }, 'Show diff'));
  diffForm.addEventListener('submit', (ev) => { ev.preventDefault(); showDiff(); });

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, name), h('span', { class: 'spacer' }),
      h('a', { class: 'button', href: `/ui/runs?workflow=${enc(name)}` }, 'Runs')),
    h('div', { class: 'wf-layout' },
      h('nav', { class: 'wf-side', 'aria-label': 'versions' }, h('h2', null, 'Versions'), versionsEl,
        h('h2', null, 'Metric history'), metricForm),
      h('div', { class: 'wf-main' }, sourceBox, h('h2', null, 'Compare versions'), diffForm, diffBox))));

  let versions = [];
  async function showVersion(v) {
    for (const a of versionsEl.querySelectorAll('a')) a.classList.toggle('active', a.dataset.v === String(v));
    clear(sourceBox);
    try {
      const src = await api(`/workflows/${enc(name)}/versions/${v}`);
      const lines = sourceLines(src.source || '');
      sourceBox.append(h('h2', null, `v${src.version}`, ' ', h('span', { class: 'muted' }, src.filename || ''), ' ', timeEl(src.created)),
        h('pre', { class: 'source numbered', 'data-test': 'source' },
          lines.map((ln) => h('span', { class: 'src-line' }, ln, '\n'))));
    } catch (e) { app.error(e); }
  }

  async function showDiff() {
    clear(diffBox);
    try {
      const d = await api(`/workflows/${enc(name)}/diff?from=${enc(from.value)}&to=${enc(to.value)}`);
      const text = d.diff || '';
      if (!text.trim()) { diffBox.append(h('p', { class: 'muted' }, 'No difference.')); return; }
      diffBox.append(h('pre', { class: 'diff', 'data-test': 'diff' }, sourceLines(text).map((ln) => {
        let cls = 'ctx';
        if (ln.startsWith('+++') || ln.startsWith('---')) cls = 'file';
        else if (ln.startsWith('@@')) cls = 'hunk';
        else if (ln.startsWith('+')) cls = 'add';
        else if (ln.startsWith('-')) cls = 'del';
        return h('span', { class: `diff-line ${cls}` }, ln, '\n');
      })));
    } catch (e) { app.error(e); }
  }

  api(`/workflows/${enc(name)}`).then((wf) => {
    versions = (wf.versions || []).slice().sort((x, y) => y - x);
    const pick = Number(query.get('v')) || wf.latest || versions[0];
    for (const v of versions) {
      const a = h('a', { href: `/ui/workflows/${enc(name)}?v=${v}`, 'data-v': String(v) }, `v${v}${v === wf.latest ? ' (latest)' : ''}`);
      a.addEventListener('click', (ev) => {
        if (ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
        ev.preventDefault(); ev.stopPropagation();
        const q = new URLSearchParams(location.search); q.set('v', String(v));
        app.router.setQuery(q, { replace: true });
        showVersion(v);
      });
      versionsEl.append(h('li', null, a));
    }
    for (const v of versions) { from.append(h('option', { value: String(v) }, `v${v}`)); to.append(h('option', { value: String(v) }, `v${v}`)); }
    to.value = String(pick);
    from.value = String(versions.find((v) => v < pick) ?? pick);
    if (pick) showVersion(pick);
    if (versions.length > 1) showDiff();
  }).catch((e) => app.error(e));
  return { unmount() {} };
}
