// Timeline of a run's attempts: one row per task, one bar per attempt from
// its start to its end (or now), coloured by how it ended.

import { s, clear, parseTime, attemptEnd, attemptDone, formatDuration } from './util.js';

const ROW = 22, LABEL = 160, AXIS = 20;

export function outcome(a) {
  if (!attemptDone(a)) return 'running';
  if (a.end === 'cached') return 'cached';
  if (a.end === 'canceled') return 'canceled';
  if ((a.end === 'exit' || !a.end) && a.exit_code === 0 && !a.signal) return 'succeeded';
  return 'failed';
}

export function drawGantt(container, run, now = Date.now()) {
  const WIDTH = Math.max(600, (container.clientWidth || 900) - 20);   // fill the box
  clear(container);
  const rows = (run.tasks || []).filter((t) => (t.attempts || []).some((a) => parseTime(a.started) !== null));
  if (!rows.length) {
    container.append(s('svg', { class: 'gantt', width: 300, height: 24 },
      s('text', { x: 0, y: 16, class: 'muted-text' }, 'No attempt has started yet.')));
    return;
  }
  let t0 = Infinity, t1 = -Infinity;
  for (const t of rows) for (const a of t.attempts) {
    const st = parseTime(a.started);
    if (st === null) continue;
    const en = attemptEnd(a) ?? (attemptDone(a) ? st : now);
    t0 = Math.min(t0, st); t1 = Math.max(t1, en, st);
  }
  const span = Math.max(1, t1 - t0);
  const scale = (WIDTH - LABEL - 10) / span;
  const hgt = rows.length * ROW + AXIS;
  const svg = s('svg', { class: 'gantt', viewBox: `0 0 ${WIDTH} ${hgt}`, width: WIDTH, height: hgt, role: 'img', 'aria-label': 'attempt timeline', 'data-test': 'gantt' });
  for (let k = 0; k <= 4; k++) {
    const x = LABEL + (k / 4) * (WIDTH - LABEL - 10);
    svg.append(s('line', { x1: x, x2: x, y1: 0, y2: hgt - AXIS, class: 'gantt-grid' }),
      s('text', { x, y: hgt - 6, class: 'gantt-tick', 'text-anchor': k === 0 ? 'start' : k === 4 ? 'end' : 'middle' },
        `+${formatDuration((span * k) / 4000)}`));
  }
  rows.forEach((t, r) => {
    const y = r * ROW;
    svg.append(s('text', { x: LABEL - 8, y: y + ROW / 2 + 4, class: 'gantt-label', 'text-anchor': 'end' },
      t.name.length > 22 ? `${t.name.slice(0, 21)}…` : t.name));
    for (const a of t.attempts) {
      const st = parseTime(a.started);
      if (st === null) continue;
      const en = attemptEnd(a) ?? (attemptDone(a) ? st : now);
      const oc = outcome(a);
      const tip = [`${t.name} attempt ${a.attempt}: ${oc}${a.end ? ` (${a.end})` : ''}`,
        `agent ${a.agent || '—'}, environment ${a.environment || '—'}${a.backend ? `, backend ${a.backend}` : ''}`,
        `${a.started} → ${typeof a.finished === 'string' ? a.finished : 'now'} (${formatDuration((en - st) / 1000)})`].join('\n');
      svg.append(s('rect', {
        x: LABEL + (st - t0) * scale, y: y + 4, width: Math.max(2, (en - st) * scale), height: ROW - 8, rx: 3,
        class: `gantt-bar oc-${oc}`, 'data-test': 'gantt-bar', 'data-task': t.name, 'data-attempt': a.attempt,
      }, s('title', null, tip)));
    }
  });
  container.append(svg);
}
