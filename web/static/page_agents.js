// Agents: state, labels, backends, slots, last seen; drain and undrain
// for admins.  Live from the agents event stream; only when the server
// has no such stream (404) it falls back to reading the list every 5 s.

import { api, stream, probe } from './api.js';
import { h, clear, timeEl, refreshTimes, enc, formatBytes } from './util.js';

export function mountAgents(root, params, query, app) {
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No agent has registered yet.');
  const live = h('span', { class: 'live' });
  const admin = app.isAdmin();
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Agents'), live),
    h('table', { class: 'grid agents', 'data-test': 'agents-table' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'State'), h('th', null, 'Env'), h('th', null, 'Labels'),
        h('th', null, 'Backends'), h('th', { class: 'num' }, 'Slots'), h('th', null, 'Resources'), h('th', null, 'Last seen'),
        h('th', null, 'Draining'), admin ? h('th', null, '') : null)),
      tbody),
    empty));

  const rows = new Map();
  let loading = false, again = false;
  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const data = await api('/agents');
      render(data.agents || []);
    } catch (e) { app.error(e); } finally {
      loading = false;
      if (again) { again = false; load(); }
    }
  }

  function render(agents) {
    agents = agents.slice().sort((x, y) => x.name.localeCompare(y.name));
    const seen = new Set();
    let prev = null;
    for (const a of agents) {
      seen.add(a.name);
      const sig = JSON.stringify(a);
      let row = rows.get(a.name);
      if (!row || row.sig !== sig) {
        const tr = buildRow(a);
        if (row) row.tr.replaceWith(tr);
        row = { tr, sig };
        rows.set(a.name, row);
      }
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== row.tr) tbody.insertBefore(row.tr, want);
      prev = row.tr;
    }
    for (const [name, row] of rows) if (!seen.has(name)) { row.tr.remove(); rows.delete(name); }
    empty.hidden = agents.length > 0;
  }

  function buildRow(a) {
    const labels = a.labels || {};
    const other = Object.entries(labels).filter(([k]) => k !== 'env');
    const state = a.state || (a.connected ? 'connected' : 'disconnected');
    const used = a.running ?? 0, cap = a.capacity ?? 0;
    const action = !admin ? null : h('td', null, a.draining
      ? h('button', { type: 'button', 'data-test': 'undrain', onclick: (ev) => act(ev, a.name, 'undrain') }, 'Undrain')
      : h('button', { type: 'button', 'data-test': 'drain', onclick: (ev) => act(ev, a.name, 'drain') }, 'Drain'));
    return h('tr', { 'data-test': 'agent-row', 'data-agent': a.name, 'data-state': state, 'data-draining': a.draining ? 'true' : 'false' },
      h('td', null, h('strong', null, a.name)),
      h('td', null, h('span', { class: `badge ag-${state}` }, state)),
      h('td', null, labels.env ? h('span', { class: 'chip' }, labels.env) : h('span', { class: 'muted' }, '—')),
      h('td', null, other.map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))),
      h('td', null, (a.backends || []).join(', ')),
      h('td', { class: 'num' }, h('span', { class: 'slots', title: `${used} running of ${cap} slots` },
        h('meter', { min: 0, max: Math.max(cap, 1), value: used }), ` ${used}/${cap}`)),
      h('td', { 'data-test': 'agent-resources' }, resources(a)),
      h('td', null, timeEl(a.last_seen)),
      h('td', null, a.draining ? h('span', { class: 'badge st-canceled' }, a.drained_by_admin ? 'by admin' : 'yes') : 'no', ' ',
        a.spool_full ? h('span', { class: 'badge st-failed', title: `spool ${formatBytes(a.spool_bytes)}` }, 'spool full') : null),
      action);
  }

  // Used/total of each resource the agent reported (none: it counts slots only)
  function resources(a) {
    const t = a.total, u = a.used || {};
    if (!t || typeof t !== 'object') return h('span', { class: 'muted', title: 'slots only' }, '—');
    const mem = (mb) => (mb ? formatBytes(mb * 1048576) : '0');
    const models = [...new Set((a.gpus || []).map((g) => g.name).filter(Boolean))].join(', ');
    const chip = (text, title) => h('span', { class: 'chip', title }, text);
    return [
      chip(`cpu ${u.cpus ?? 0}/${t.cpus ?? 0}`, 'CPUs in use / offered'),
      chip(`mem ${mem(u.memory_mb)}/${mem(t.memory_mb)}`, 'memory in use / offered'),
      t.gpus ? chip(`gpu ${u.gpus ?? 0}/${t.gpus}`, models || 'GPUs in use / offered') : null,
      a.confinement && a.confinement !== 'cgroup'
        ? h('span', { class: 'muted', title: a.confinement }, ' not confined') : null,
    ];
  }

  async function act(ev, name, what) {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      await api(`/agents/${enc(name)}/${what}`, { method: 'POST', body: {} });
      await load();
    } catch (e) { app.error(e); btn.disabled = false; }
  }

  let poll = 0, sse = null, gone = false;
  function startStream() {
    // whatever an event carries, the list is read again (one shape to trust)
    sse = stream('/agents/events', { agents: () => load(), message: () => load() }, {
      onUp: () => { live.textContent = '● live'; live.classList.add('on'); },
      onDown: async () => {
        live.textContent = '○ reconnecting'; live.classList.remove('on');
        if (await probe('/agents/events') === 404 && !gone) {
          sse.close();
          live.textContent = 'refreshing every 5 s';
          poll = setInterval(load, 5000);
        }
      },
    });
  }
  load();
  startStream();
  const tick = setInterval(() => refreshTimes(tbody), 5000);
  return { unmount() { gone = true; if (sse) sse.close(); clearInterval(poll); clearInterval(tick); } };
}
