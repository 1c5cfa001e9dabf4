// Metric charts: a run's series (one chart per metric, one line per
// task), and one metric's history across a workflow's runs (points link
// to their runs).

import { api, stream } from './api.js';
import { h, clear, enc, parseTime } from './util.js';
import { chartAvailable, lineChart, restyle } from './charts.js';

function noChartLib(root) {
  root.append(h('p', { class: 'notice' }, 'Charts need Chart.js (Debian libjs-chart.js, served at /javascript/chart.js/). Values are listed instead.'));
}

// x = step when every point has one, else seconds since the first point.
export function toPoints(series) {
  const all = series.flatMap((s) => s.points || []);
  const useStep = all.length > 0 && all.every((p) => p.has_step === true || (p.has_step === undefined && Number.isFinite(p.step)));
  const t0 = Math.min(...all.map((p) => parseTime(p.time) ?? Infinity));
  return {
    useStep,
    datasets: series.slice().sort((a, b) => String(a.task).localeCompare(String(b.task))).map((s) => ({
      label: s.task || `run ${s.run_id}`,
      points: (s.points || []).map((p) => ({
        x: useStep ? p.step : ((parseTime(p.time) ?? t0) - t0) / 1000, y: p.value,
      })),
    })),
  };
}

function pointCount(datasets) {
  return datasets.reduce((n, d) => n + d.points.length, 0);
}

export function mountMetrics(root, params, query, app) {
  const id = params.id;
  const box = h('div', { class: 'charts' });
  const live = h('span', { class: 'live' });
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, h('a', { href: `/ui/runs/${enc(id)}` }, `Run #${id}`), ' / metrics'), live), box));
  const charts = new Map();      // metric name -> {chart, fig, sig}
  let workflow = '';

  async function load() {
    let data;
    try { data = await api(`/runs/${enc(id)}/metrics`); } catch (e) { app.error(e); return; }
    const byName = new Map();
    for (const s of data.series || []) {
      if (!byName.has(s.name)) byName.set(s.name, []);
      byName.get(s.name).push(s);
    }
    if (!byName.size) {
      if (!box.querySelector('.muted')) box.append(h('p', { class: 'muted' }, 'No metrics recorded yet.'));
      return;
    }
    const placeholder = box.querySelector('p.muted');
    if (placeholder) placeholder.remove();
    if (!chartAvailable()) { if (!box.firstChild) noChartLib(box); listValues(byName); return; }
    for (const name of [...byName.keys()].sort()) {
      const { useStep, datasets } = toPoints(byName.get(name));
      const sig = JSON.stringify(datasets);
      let c = charts.get(name);
      if (c && c.sig === sig) continue;
      if (!c) {
        const canvas = h('canvas', { 'aria-label': `chart of ${name}`, role: 'img' });
        const fig = h('figure', { class: 'chart', 'data-test': 'metric-chart', 'data-metric': name },
          h('figcaption', null, name, workflow ? h('a', { class: 'small', href: `/ui/workflows/${enc(workflow)}/metrics/${enc(name)}` }, ' history across runs') : null),
          h('div', { class: 'chart-box' }, canvas));
        box.append(fig);
        c = { fig, chart: lineChart(canvas, { datasets, xTitle: useStep ? 'step' : 'seconds', yTitle: name }) };
        charts.set(name, c);
      } else {
        c.chart.data.datasets.forEach((d, i) => { if (datasets[i]) d.data = datasets[i].points; });
        if (c.chart.data.datasets.length !== datasets.length) {
          c.chart.destroy();
          const canvas = c.fig.querySelector('canvas');
          c.chart = lineChart(canvas, { datasets, xTitle: useStep ? 'step' : 'seconds', yTitle: name });
        } else c.chart.update('none');
      }
      c.sig = sig;
      c.fig.setAttribute('data-points', String(pointCount(datasets)));
    }
  }

  function listValues(byName) {
    clear(box); noChartLib(box);
    for (const [name, series] of byName) {
      box.append(h('figure', { class: 'chart', 'data-test': 'metric-chart', 'data-metric': name,
        'data-points': String(series.reduce((n, s) => n + (s.points || []).length, 0)) },
      h('figcaption', null, name),
      h('pre', null, series.map((s) => `${s.task}: ${(s.points || []).map((p) => p.value).join(', ')}`).join('\n'))));
    }
  }

  let pending = 0;
  const sse = stream(`/runs/${enc(id)}/events`, {
    run: (r) => {
      if (r && r.workflow && !workflow) { workflow = r.workflow; }
      clearTimeout(pending);
      pending = setTimeout(load, 300);       // batch bursts of points
    },
  }, {
    onUp: () => { live.textContent = '● live'; live.classList.add('on'); },
    onDown: () => { live.textContent = '○ reconnecting'; live.classList.remove('on'); },
  });
  const onTheme = () => { for (const c of charts.values()) restyle(c.chart); };
  window.addEventListener('qanat-theme', onTheme);
  api(`/runs/${enc(id)}`).then((r) => { workflow = r.workflow || ''; }).catch(() => {}).finally(load);
  return {
    unmount() {
      sse.close(); clearTimeout(pending);
      window.removeEventListener('qanat-theme', onTheme);
      for (const c of charts.values()) c.chart.destroy();
    },
  };
}

export function mountHistory(root, params, query, app) {
  const { name, metric } = params;
  const box = h('div', { class: 'charts' });
  root.append(h('section', { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, h('a', { href: `/ui/workflows/${enc(name)}` }, name), ` / ${metric} across runs`)),
    h('p', { class: 'muted' }, 'Every point of every run; click a point to open its run.'), box));
  let chart = null;
  const fmt = (v) => new Date(v).toISOString().replace('T', ' ').slice(0, 16);
  api(`/workflows/${enc(name)}/metrics/${enc(metric)}`).then((data) => {
    const series = (data.series || []).slice().sort((a, b) => a.run_id - b.run_id);
    const points = [];
    for (const s of series) for (const p of s.points || []) {
      const t = parseTime(p.time);
      if (t !== null) points.push({ x: t, y: p.value, run: s.run_id, task: s.task, step: p.step });
    }
    const fig = h('figure', { class: 'chart wide', 'data-test': 'metric-chart', 'data-metric': metric, 'data-points': String(points.length) },
      h('figcaption', null, `${metric} — ${series.length} run${series.length === 1 ? '' : 's'}, ${points.length} points`));
    box.append(fig);
    if (!points.length) { fig.append(h('p', { class: 'muted' }, 'No points recorded for this metric.')); return; }
    if (!chartAvailable()) { noChartLib(fig); return; }
    const canvas = h('canvas', { role: 'img', 'aria-label': `history of ${metric}` });
    fig.append(h('div', { class: 'chart-box tall' }, canvas));
    chart = lineChart(canvas, {
      datasets: [{ label: metric, points }], xTitle: 'time', yTitle: metric, xFormat: fmt, showLine: false,
      // leave Chart.js's click handler before the page (and chart) goes away
      onPointClick: (p) => setTimeout(() => app.router.go(`/ui/runs/${p.run}`), 0),
    });
    chart.options.plugins.tooltip.callbacks.label = (item) => `run #${item.raw.run} ${item.raw.task}: ${item.raw.y}`;
    chart.update('none');
  }).catch((e) => app.error(e));
  const onTheme = () => { if (chart) restyle(chart); };
  window.addEventListener('qanat-theme', onTheme);
  return { unmount() { window.removeEventListener('qanat-theme', onTheme); if (chart) chart.destroy(); } };
}
