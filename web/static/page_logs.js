// A task attempt's log: live tail over SSE (event ids are log seqs, so a
// reconnect resumes exactly), search, timestamps, follow, download.  Only
// the lines in view are in the DOM: a spacer gives the scroll height and
// a window of rows is placed at its offset (log_window.js).

import { api, stream } from './api.js';
import { h, clear, enc, badge, ACTIVE_RUN } from './util.js';
import { visibleWindow, scrollToLine, atBottom, nextMatch } from './log_window.js';

const LINE = 18;             // px, the same as .log-line in app.css

export function mountLogs(root, params, query, app) {
  const id = params.id, task = params.task;
  const asked = Number.parseInt(query.get('attempt') || '', 10);
  let attempt = Number.isFinite(asked) && asked > 0 ? asked : 0;
  const explicit = attempt > 0;

  const lines = [];            // {stream, text, time}
  let lastId = 0;              // highest log seq received
  let partial = false;         // the last line continues in the next chunk
  let matches = [], current = -1, needle = '';
  let follow = true, stamps = false, logSse = null, ended = false;
  let logUp = null;            // the log stream: null connecting, true open, false reconnecting
  let runActive = null;        // null until the run is known
  let painted = 0;             // the spacer height last painted (lines may have come since)

  const picker = h('select', { 'aria-label': 'attempt', 'data-test': 'attempt-picker' });
  const followBox = h('input', { type: 'checkbox', checked: true, 'data-test': 'follow' });
  const stampBox = h('input', { type: 'checkbox', 'data-test': 'timestamps' });
  const search = h('input', { type: 'search', placeholder: 'Search the log', 'aria-label': 'search the log', 'data-test': 'log-search' });
  const count = h('span', { class: 'muted match-count', 'data-test': 'match-count' });
  const download = h('a', { class: 'button', 'data-test': 'log-download' }, 'Download');
  const statusEl = h('span', { class: 'live', 'data-test': 'live' });
  const taskState = h('span');
  const spacer = h('div', { class: 'log-spacer' });
  const rowsEl = h('div', { class: 'log-lines' });
  const view = h('div', { class: 'log-view', tabindex: 0, role: 'log', 'aria-label': 'log lines', 'data-test': 'log-view' }, spacer, rowsEl);
  const info = h('p', { class: 'muted log-info' });

  root.append(h('section', { class: 'page logs-page' },
    h('div', { class: 'page-head' },
      h('h1', null, h('a', { href: `/ui/runs/${enc(id)}` }, `Run #${id}`), ' / ', task), taskState, statusEl),
    h('div', { class: 'toolbar' },
      h('label', null, 'Attempt ', picker),
      h('label', null, followBox, ' Follow'),
      h('label', null, stampBox, ' Timestamps'),
      search,
      h('button', { type: 'button', onclick: () => jump(false), 'aria-label': 'previous match' }, '↑'),
      h('button', { type: 'button', onclick: () => jump(true), 'aria-label': 'next match' }, '↓'),
      count, h('span', { class: 'spacer' }), download),
    info, view));

  // ---- rendering the window ----
  let frame = 0;
  function schedule() {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; paint(); });
  }
  function paint() {
    const total = lines.length;
    painted = total * LINE;
    spacer.style.height = `${painted}px`;
    if (follow) view.scrollTop = view.scrollHeight;
    const w = visibleWindow(view.scrollTop, view.clientHeight, LINE, total);
    rowsEl.style.transform = `translateY(${w.offset}px)`;
    clear(rowsEl);
    const hit = current >= 0 ? matches[current] : -1;
    for (let i = w.first; i < w.last; i++) rowsEl.append(row(i, i === hit));
    info.textContent = `${total} line${total === 1 ? '' : 's'}${ended ? ' — end of log' : ''}`;
  }
  function row(i, isCurrent) {
    const ln = lines[i];
    const div = h('div', { class: ['log-line', `s-${ln.stream}`, isCurrent && 'current'], 'data-test': 'log-line', 'data-line': i });
    if (stamps) div.append(h('span', { class: 'log-time' }, ln.time ? ln.time.slice(11, 23) : '            '));
    // the gutter is there for stdout too, so every line's text starts in one column
    div.append(h('span', { class: 'log-stream' }, ln.stream === 'stderr' ? 'err' : ln.stream === 'stdout' ? '' : 'sys'));
    if (needle) appendMarked(div, ln.text, needle); else div.append(ln.text);
    return div;
  }
  function appendMarked(div, text, q) {
    const lower = text.toLowerCase();
    let at = 0;
    for (let k = lower.indexOf(q); k >= 0; k = lower.indexOf(q, k + q.length)) {
      if (k > at) div.append(text.slice(at, k));
      div.append(h('mark', null, text.slice(k, k + q.length)));
      at = k + q.length;
    }
    if (at < text.length) div.append(text.slice(at));
  }

  view.addEventListener('scroll', () => {
    const bottom = atBottom(view.scrollTop, view.clientHeight, painted);
    if (follow !== bottom) { follow = bottom; followBox.checked = bottom; }
    schedule();
  }, { passive: true });
  window.addEventListener('resize', schedule);
  followBox.addEventListener('change', () => { follow = followBox.checked; schedule(); });
  stampBox.addEventListener('change', () => { stamps = stampBox.checked; view.classList.toggle('stamps', stamps); schedule(); });

  // ---- search ----
  function findAll() {
    matches = [];
    if (needle) lines.forEach((ln, i) => { if (ln.text.toLowerCase().includes(needle)) matches.push(i); });
    current = -1;
    showCount();
  }
  function showCount() {
    count.textContent = needle ? `${current >= 0 ? current + 1 : 0} / ${matches.length}` : '';
  }
  function jump(forward) {
    if (!matches.length) return;
    const from = current >= 0 ? matches[current] : (forward ? -1 : lines.length);
    current = nextMatch(matches, from, forward);
    follow = false; followBox.checked = false;
    view.scrollTop = scrollToLine(matches[current], view.clientHeight, LINE, lines.length);
    showCount();
    schedule();
  }
  let searchTimer = 0;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { needle = search.value.toLowerCase(); findAll(); if (matches.length) jump(true); else schedule(); }, 150);
  });
  search.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); jump(!ev.shiftKey); }
  });

  // ---- lines in ----
  function addLine(data, ev) {
    const seq = Number(ev.lastEventId || data.log_seq || 0);
    if (seq && seq <= lastId) return;          // already have it
    if (seq) lastId = seq;
    const pieces = String(data.text ?? '').split('\n');
    let first = 0;
    if (partial && lines.length) {
      lines[lines.length - 1].text += pieces[0];
      first = 1;
      if (needle) findAll();
    }
    for (let k = first; k < pieces.length; k++) {
      const i = lines.length;
      lines.push({ stream: data.stream || 'stdout', text: pieces[k], time: data.time || '' });
      if (needle && pieces[k].toLowerCase().includes(needle)) matches.push(i);
    }
    partial = !!data.partial;
    if (needle) showCount();
    schedule();
  }

  // "live" only while the run is active and the stream open; a finished
  // run's log is read to its end, then says so
  function showState() {
    let text = '…', on = false;
    if (ended) text = 'finished';
    else if (logUp === false) text = '○ reconnecting';
    else if (logUp && runActive) { text = '● live'; on = true; }
    else if (logUp && runActive === false) text = '';
    statusEl.textContent = text;
    statusEl.classList.toggle('on', on);
  }

  function openLog() {
    if (logSse) logSse.close();
    lines.length = 0; lastId = 0; partial = false; ended = false; logUp = null;
    findAll();
    download.setAttribute('href', `/api/v1/runs/${enc(id)}/logs.txt?task=${enc(task)}&attempt=${attempt}`);
    download.setAttribute('download', `run${id}-${task}-${attempt}.log`);
    showState();
    logSse = stream(() => `/runs/${enc(id)}/logs/stream?task=${enc(task)}&attempt=${attempt}${lastId ? `&after=${lastId}` : ''}`, {
      line: addLine,
      end: () => {
        ended = true;
        showState();
        if (logSse) logSse.close();
        schedule();
      },
    }, {
      onUp: () => { logUp = true; showState(); },
      onDown: () => { logUp = false; showState(); },
    });
    schedule();
  }

  // ---- the task's attempts, kept current by the run's stream ----
  let shownAttempts = '';
  function onRun(run) {
    const t = (run.tasks || []).find((x) => x.name === task);
    if (!t) { app.error(new Error(`run ${id} has no task "${task}"`)); return; }
    clear(taskState); taskState.append(badge(t.status));
    const nums = (t.attempts || []).map((a) => a.attempt);
    const key = nums.join(',');
    if (key !== shownAttempts) {
      shownAttempts = key;
      clear(picker);
      for (const n of nums) picker.append(h('option', { value: String(n) }, `#${n}`));
      if (!nums.length) picker.append(h('option', { value: '0' }, 'none yet'));
    }
    const latest = nums.length ? Math.max(...nums) : 0;
    if (!attempt && latest) {
      attempt = latest; picker.value = String(attempt); openLog();
    } else if (!explicit && follow && latest > attempt) {
      attempt = latest; picker.value = String(attempt); openLog();   // a retry started: tail it
    } else if (attempt) {
      picker.value = String(attempt);
    }
    runActive = ACTIVE_RUN.has(run.status);
    if (!latest && !attempt) info.textContent = runActive ? 'No attempt has started yet; waiting.' : 'This task never ran.';
    showState();
    // a finished run changes no more: free its stream slot
    if (!runActive && runSse) { runSse.close(); runSse = null; }
  }
  picker.addEventListener('change', () => {
    const n = Number(picker.value);
    if (n > 0 && n !== attempt) app.router.go(`/ui/runs/${enc(id)}/tasks/${enc(task)}/logs?attempt=${n}`, { replace: true });
  });

  api(`/runs/${enc(id)}`).then(onRun).catch((e) => {
    app.error(e);
    if (e.status === 404) { if (runSse) runSse.close(); if (logSse) logSse.close(); }
  });
  let runSse = null;
  runSse = stream(`/runs/${enc(id)}/events`, { run: (r) => { if (r && r.tasks) onRun(r); } });
  if (attempt) openLog();
  return {
    unmount() {
      if (logSse) logSse.close();
      if (runSse) runSse.close();
      cancelAnimationFrame(frame);
      clearTimeout(searchTimer);
      window.removeEventListener('resize', schedule);
    },
  };
}
