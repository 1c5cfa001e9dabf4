// Line charts with the Debian Chart.js (global `Chart`, loaded by a classic
// script before the modules).  Colours come from the CSS variables so the
// charts follow the light/dark scheme.

const PALETTE = ['--c1', '--c2', '--c3', '--c4', '--c5', '--c6', '--c7', '--c8'];

export function chartAvailable() {
  return typeof window.Chart === 'function';
}

// The variables hold light-dark(...) pairs, which only an element's
// computed colour resolves: read them through a hidden probe.
let probe = null;
export function cssVar(name) {
  if (!probe) {
    probe = document.createElement('span');
    probe.hidden = true;
    document.body.append(probe);
  }
  probe.style.color = `var(${name})`;
  return getComputedStyle(probe).color;
}

export function seriesColour(i) {
  return cssVar(PALETTE[i % PALETTE.length]) || '#3366cc';
}

// datasets: [{label, points: [{x, y, ...}]}]; xTitle; xFormat(value) for ticks.
export function lineChart(canvas, { datasets, xTitle, yTitle, xFormat, onPointClick, showLine = true }) {
  const fg = cssVar('--fg-muted') || '#666', grid = cssVar('--border') || '#ddd';
  const config = {
    type: 'line',
    data: {
      datasets: datasets.map((d, i) => ({
        label: d.label, data: d.points, parsing: false, showLine,
        borderColor: seriesColour(i), backgroundColor: seriesColour(i),
        borderWidth: 1.5, pointRadius: showLine && d.points.length > 200 ? 0 : 2.5, pointHoverRadius: 5, tension: 0,
      })),
    },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: 'nearest', intersect: false },
      scales: {
        x: { type: 'linear', title: { display: !!xTitle, text: xTitle, color: fg },
          ticks: { color: fg, callback: xFormat ? (v) => xFormat(v) : undefined, maxRotation: 0 }, grid: { color: grid } },
        y: { title: { display: !!yTitle, text: yTitle, color: fg }, ticks: { color: fg }, grid: { color: grid } },
      },
      plugins: {
        legend: { display: datasets.length > 1, labels: { color: fg, boxWidth: 12 } },
        tooltip: { callbacks: { title: (items) => (items.length && xFormat ? xFormat(items[0].parsed.x) : undefined) } },
      },
      onClick: onPointClick ? (ev, elements, chart) => {
        const hit = chart.getElementsAtEventForMode(ev, 'nearest', { intersect: true }, false)[0];
        if (hit) onPointClick(chart.data.datasets[hit.datasetIndex].data[hit.index]);
      } : undefined,
      onHover: onPointClick ? (ev, elements) => {
        ev.native.target.classList.toggle('clickable', elements.length > 0);
      } : undefined,
    },
  };
  return new window.Chart(canvas, config);
}

export function restyle(chart) {
  const fg = cssVar('--fg-muted'), grid = cssVar('--border');
  for (const axis of Object.values(chart.options.scales)) {
    axis.ticks.color = fg; axis.grid.color = grid; axis.title.color = fg;
  }
  chart.options.plugins.legend.labels.color = fg;
  chart.data.datasets.forEach((d, i) => { d.borderColor = seriesColour(i); d.backgroundColor = seriesColour(i); });
  chart.update('none');
}
