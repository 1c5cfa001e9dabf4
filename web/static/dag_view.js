// Draws a laid-out task graph as SVG.  The layout is redone only when the
// graph's shape changes; a change of task states only swaps node classes.

import { layout } from './dag_layout.js';
import { s, clear } from './util.js';

const PAD = 12;

export class DagView {
  constructor(container, { onOpen }) {
    this.container = container;
    this.onOpen = onOpen;
    this.shape = '';
    this.nodes = new Map();      // task name -> {g, label}
  }

  update(tasks) {
    const shape = JSON.stringify(tasks.map((t) => [t.name, t.needs || []]));
    if (shape !== this.shape) {
      this.shape = shape;
      this.draw(tasks);
    }
    for (const t of tasks) {
      const node = this.nodes.get(t.name);
      if (!node) continue;
      const st = t.status || 'pending';
      if (node.g.getAttribute('data-status') !== st) {
        node.g.setAttribute('data-status', st);
        node.g.setAttribute('class', `dag-node st-${st}`);
        node.state.textContent = st;
      }
      const tip = `${t.name}: ${st}${t.waiting_reason ? ` (${t.waiting_reason})` : ''}`;
      if (node.title.textContent !== tip) {
        node.title.textContent = tip;
        node.g.setAttribute('aria-label', `task ${tip}; open logs`);
      }
    }
  }

  draw(tasks) {
    clear(this.container);
    this.nodes.clear();
    const res = layout(tasks.map((t) => ({ name: t.name, needs: t.needs || [] })));
    const w = res.width + 2 * PAD, hgt = res.height + 2 * PAD;
    const svg = s('svg', {
      class: 'dag', viewBox: `${-PAD} ${-PAD} ${w} ${hgt}`, width: w, height: hgt,
      role: 'group', 'aria-label': 'task graph', 'data-test': 'dag',
    });
    const defs = s('defs', null, s('marker', {
      id: 'arrow', viewBox: '0 0 8 8', refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
    }, s('path', { d: 'M0,0 L8,4 L0,8 z', class: 'dag-arrow' })));
    svg.append(defs);
    const edges = s('g', { class: 'dag-edges' });
    for (const e of res.edges) edges.append(s('path', { d: edgePath(e.points), 'marker-end': 'url(#arrow)' }));
    svg.append(edges);
    for (const nd of res.nodes) {
      const t = tasks[nd.index];
      const title = s('title', null, t.name);
      const label = s('text', { x: 10, y: nd.h / 2 - 2, class: 'dag-name' }, clip(t.name, 19));
      const state = s('text', { x: 10, y: nd.h / 2 + 11, class: 'dag-state' }, '');
      const g = s('g', {
        class: 'dag-node', transform: `translate(${nd.x},${nd.y})`, tabindex: 0, role: 'link',
        'data-test': 'dag-node', 'data-task': t.name, 'data-status': '',
      }, title, s('rect', { width: nd.w, height: nd.h, rx: 6 }), label, state);
      const open = () => this.onOpen(t.name);
      g.addEventListener('click', open);
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); }
      });
      svg.append(g);
      this.nodes.set(t.name, { g, title, state });
    }
    this.container.append(svg);
  }
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

// Horizontal S-curves between successive points.
function edgePath(points) {
  let d = `M${points[0][0]},${points[0][1]}`;
  for (let i = 1; i < points.length; i++) {
    const [x0, y0] = points[i - 1], [x1, y1] = points[i];
    if (y0 === y1) { d += ` L${x1},${y1}`; continue; }
    const mx = (x0 + x1) / 2;
    d += ` C${mx},${y0} ${mx},${y1} ${x1},${y1}`;
  }
  return d;
}
