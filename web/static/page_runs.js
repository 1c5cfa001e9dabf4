// The run list: newest first, filters in the URL, paging by the server's
// cursor, kept live by the run-list event stream.  Rows are keyed by run
// id and only touched when their content changed.

import { api, stream } from './api.js';
import { h, clear, timeEl, badge, formatDuration, refreshTimes, enc, parseTime, toRfc3339, toLocalInput } from './util.js';

const STATUSES = ['', 'queued', 'running', 'succeeded', 'succeeded_with_warnings', 'failed', 'canceled'];
const PAGE = 50;

export function mountRuns(root, params, query, app) {
  // after/before bound the creation time; the URL and the API both carry
  // them as RFC 3339 UTC, the inputs show local time.  A value in the URL
  // that is no time is dropped rather than sent on to fail.
  const filters = {
    workflow: query.get('workflow') || '', status: query.get('status') || '', owner: query.get('owner') || '',
    after: toRfc3339(parseTime(query.get('after'))), before: toRfc3339(parseTime(query.get('before'))),
  };
  let cursor = query.get('cursor') || '';
  const prevCursors = [];        // cursors of the newer pages we came through
  let next = null;
  let loading = null;            // AbortController of the fetch in flight
  let again = false;

  const wf = h('input', { type: 'search', name: 'workflow', value: filters.workflow, placeholder: 'any', list: 'workflow-names', 'data-test': 'filter-workflow' });
  const names = h('datalist', { id: 'workflow-names' });
  api('/workflows').then((d) => { for (const w of d.workflows || []) names.append(h('option', { value: w.name })); }).catch(() => {});
  const st = h('select', { name: 'status', 'data-test': 'filter-status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s ? s.replace(/_/g, ' ') : 'any')));
  const ow = h('input', { type: 'search', name: 'owner', value: filters.owner, placeholder: 'any', 'data-test': 'filter-owner' });
  // step 1: seconds are kept, and a URL time with seconds is no step mismatch
  const af = h('input', { type: 'datetime-local', name: 'after', 'aria-label': 'started after', step: 1, value: toLocalInput(parseTime(filters.after)), 'data-test': 'filter-after' });
  const bf = h('input', { type: 'datetime-local', name: 'before', 'aria-label': 'started before', step: 1, value: toLocalInput(parseTime(filters.before)), 'data-test': 'filter-before' });
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', null, 'Workflow ', wf, names), h('label', null, 'Status ', st), h('label', null, 'Owner ', ow),
    // one group, so the range wraps as a whole on a narrow screen
    h('span', { class: 'range', role: 'group', 'aria-label': 'started between' },
      h('label', null, 'Started after ', af), h('label', null, 'before ', bf)),
    h('button', { type: 'submit' }, 'Filter'),
    h('button', { type: 'button', class: 'ghost', onclick: () => { wf.value = ''; st.value = ''; ow.value = ''; af.value = ''; bf.value = ''; apply(); } }, 'Clear'));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  st.addEventListener('change', apply);

  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No runs match.');
  const newer = h('button', { type: 'button', 'data-test': 'newer', onclick: goNewer }, '← Newer');
  const older = h('button', { type: 'button', 'data-test': 'next', onclick: goOlder }, 'Older →');
  const live = h('span', { class: 'live', title: 'live updates' }, '');
  const compareBtn = h('button', { type: 'button', disabled: true, onclick: compare }, 'Compare selected');

  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Runs'), live),
    form,
    h('table', { class: 'grid runs', 'data-test': 'runs-table' },
      h('thead', null, h('tr', null,
        h('th', { class: 'pick' }, h('span', { class: 'sr-only' }, 'Select')),
        h('th', null, 'Run'), h('th', null, 'Workflow'), h('th', null, 'Status'),
        h('th', null, 'Owner'), h('th', null, 'Started'), h('th', { class: 'num' }, 'Duration'))),
      tbody),
    empty,
    h('div', { class: 'pager' }, newer, older, h('span', { class: 'spacer' }), compareBtn)));

  function queryFor(c) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (c) q.set('cursor', c);
    return q;
  }

  function apply() {
    filters.workflow = wf.value.trim();
    filters.status = st.value;
    filters.owner = ow.value.trim();
    // a datetime-local value has no zone: Date reads it as local time
    filters.after = af.value ? toRfc3339(new Date(af.value).getTime()) : '';
    filters.before = bf.value ? toRfc3339(new Date(bf.value).getTime()) : '';
    cursor = '';
    prevCursors.length = 0;
    app.router.setQuery(queryFor(''));
    load();
  }

  function goOlder() {
    if (!next) return;
    prevCursors.push(cursor);
    cursor = next;
    app.router.setQuery(queryFor(cursor));
    load();
  }

  function goNewer() {
    cursor = prevCursors.length ? prevCursors.pop() : '';
    app.router.setQuery(queryFor(cursor));
    load();
  }

  async function load() {
    if (loading) { again = true; return; }
    loading = new AbortController();
    const q = queryFor(cursor);
    q.set('limit', String(PAGE));
    try {
      const data = await api(`/runs?${q}`, { signal: loading.signal });
      next = data.next || null;
      renderRows(data.runs || []);
      app.clearError();
    } catch (e) {
      // A workflow never stored is 404: no rows, and the message says why
      if (e.status === 404) { next = null; renderRows([]); }
      app.error(e);
    } finally {
      loading = null;
      if (again) { again = false; load(); }
    }
  }

  const rows = new Map();        // run id -> {tr, sig}
  function rowSig(r) {
    return [r.status, r.workflow, r.version, r.owner, r.created, r.finished, r.duration_s].join('|');
  }
  function renderRows(runs) {
    const seen = new Set();
    let prev = null;
    for (const r of runs) {
      const id = String(r.run_id);
      seen.add(id);
      const sig = rowSig(r);
      let row = rows.get(id);
      if (!row || row.sig !== sig) {
        const tr = buildRow(r);
        if (row) row.tr.replaceWith(tr);
        if (row && row.tr.querySelector('input:checked')) tr.querySelector('input').checked = true;
        row = { tr, sig };
        rows.set(id, row);
      }
      // keep DOM order = list order, moving only rows that are out of place
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    }
    empty.hidden = runs.length > 0;
    newer.disabled = !cursor;
    older.disabled = !next;
    updateCompare();
  }

  function buildRow(r) {
    const id = r.run_id;
    const pick = h('input', { type: 'checkbox', 'aria-label': `select run ${id}`, value: String(id), onchange: updateCompare });
    return h('tr', { 'data-test': 'run-row', 'data-run-id': String(id), 'data-status': r.status },
      h('td', { class: 'pick' }, pick),
      h('td', null, h('a', { href: `/ui/runs/${id}` }, `#${id}`)),
      h('td', null, h('a', { href: `/ui/workflows/${enc(r.workflow)}` }, r.workflow), h('span', { class: 'muted' }, `@${r.version}`)),
      h('td', null, badge(r.status)),
      h('td', null, r.owner || h('span', { class: 'muted' }, '—')),
      h('td', null, timeEl(r.created)),
      h('td', { class: 'num' }, formatDuration(r.duration_s)));
  }

  function picked() {
    return [...tbody.querySelectorAll('input[type=checkbox]:checked')].map((i) => i.value);
  }
  function updateCompare() {
    const p = picked();
    compareBtn.disabled = p.length !== 2;
    compareBtn.title = p.length === 2 ? '' : 'select two runs';
  }
  function compare() {
    const p = picked();
    if (p.length === 2) app.router.go(`/ui/compare/${p[1]}/${p[0]}`);
  }

  load();
  // The stream carries the first page; we re-read the page we show instead.
  const sse = stream('/runs/events', { runs: () => load() }, {
    onUp: () => { live.textContent = '● live'; live.classList.add('on'); },
    onDown: () => { live.textContent = '○ reconnecting'; live.classList.remove('on'); },
  });
  const tick = setInterval(() => refreshTimes(tbody), 15000);
  return {
    unmount() {
      sse.close();
      clearInterval(tick);
      if (loading) loading.abort();
    },
  };
}
