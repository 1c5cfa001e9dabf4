// Schedules: each workflow's schedules and triggers as `qanat schedules`
// shows them (next and last tick, the last tick's run and its status,
// paused), with pause and resume for admins.  Read again every 5 s: ticks
// come from the coordinator's clock, not from an event stream.

import { api } from './api.js';
import { h, timeEl, refreshTimes, badge, enc } from './util.js';

export function mountSchedules(root, params, query, app) {
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', hidden: true }, 'No workflow has a schedule or a trigger.');
  const admin = app.isAdmin();
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Schedules')),
    h('table', { class: 'grid schedules', 'data-test': 'schedules-table' },
      h('thead', null, h('tr', null, h('th', null, 'Workflow'), h('th', null, 'Schedule'), h('th', null, 'Next tick'),
        h('th', null, 'Last tick'), h('th', null, 'Last run'), h('th', null, 'Paused'), admin ? h('th', null, '') : null)),
      tbody),
    empty));

  let last = '';
  async function load() {
    try {
      const data = await api('/schedules');
      const rows = data.schedules || [];
      const sig = JSON.stringify(rows);
      if (sig === last) return;
      last = sig;
      tbody.replaceChildren(...rows.map(buildRow));
      empty.hidden = rows.length > 0;
    } catch (e) { app.error(e); }
  }

  function what(s) {
    if (!s.cron) {
      return h('span', null, 'after ', (s.trigger_after || []).join(', '),
        (s.trigger_on || []).length ? h('span', { class: 'muted' }, ` on ${s.trigger_on.join(', ')}`) : null);
    }
    return h('span', null, h('code', null, s.cron), h('span', { class: 'muted' }, ` ${s.timezone || 'UTC'}`),
      s.catchup && s.catchup !== 'none' ? h('span', { class: 'muted' }, `, catchup ${s.catchup}`) : null,
      s.max_active ? h('span', { class: 'muted' }, `, max_active ${s.max_active}`) : null);
  }

  function lastRun(s) {
    if (s.last_run) {
      return h('span', null, h('a', { href: `/ui/runs/${s.last_run}`, 'data-test': 'schedule-last-run' }, `#${s.last_run}`), ' ',
        s.last_run_status ? badge(s.last_run_status) : null);
    }
    if (s.last_skipped) return h('span', { class: 'muted', 'data-test': 'schedule-skipped' }, `skipped: ${s.last_skipped}`);
    return h('span', { class: 'muted' }, '—');
  }

  function buildRow(s) {
    const action = !admin ? null : !s.cron ? h('td', null) : h('td', null, s.paused
      ? h('button', { type: 'button', 'data-test': 'schedule-resume', onclick: (ev) => act(ev, s.workflow, 'resume') }, 'Resume')
      : h('button', { type: 'button', 'data-test': 'schedule-pause', onclick: (ev) => act(ev, s.workflow, 'pause') }, 'Pause'));
    return h('tr', { 'data-test': 'schedule-row', 'data-workflow': s.workflow, 'data-paused': s.paused ? 'true' : 'false' },
      h('td', null, h('a', { href: `/ui/workflows/${enc(s.workflow)}` }, h('strong', null, s.workflow)),
        s.version ? h('span', { class: 'muted' }, `@${s.version}`) : null),
      h('td', null, what(s)),
      h('td', { 'data-test': 'schedule-next' }, s.paused ? h('span', { class: 'muted' }, 'paused') : timeEl(s.next_tick)),
      h('td', null, timeEl(s.last_tick)),
      h('td', null, lastRun(s)),
      h('td', null, s.paused ? h('span', { class: 'badge st-canceled' }, 'paused') : 'no'),
      action);
  }

  async function act(ev, workflow, what) {
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      await api(`/schedules/${enc(workflow)}/${what}`, { method: 'POST', body: {} });
      await load();
    } catch (e) { app.error(e); btn.disabled = false; }
  }

  load();
  const poll = setInterval(load, 5000);
  const tick = setInterval(() => refreshTimes(tbody), 5000);
  return { unmount() { clearInterval(poll); clearInterval(tick); } };
}
