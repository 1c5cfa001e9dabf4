// Layered layout of a run's task graph, left to right, with no DOM so it
// can be tested under node.
//
//   layout(tasks, options) -> {nodes, edges, width, height}
//
// tasks: [{name, needs: [names]}].  Layers by longest path from the tasks
// that need nothing (a task sits one layer right of its latest need).
// Edges that span several layers get dummy points in the layers between,
// so they can bend around nodes and take part in ordering.  Order within
// a layer: a few down and up sweeps placing each node at the barycentre
// of its neighbours in the layer before, keeping the order with the
// fewest crossings seen.

const DEFAULTS = { nodeW: 150, nodeH: 32, gapX: 56, gapY: 14, dummyH: 6, sweeps: 6 };

export function layout(tasks, options = {}) {
  const o = { ...DEFAULTS, ...options };
  const n = tasks.length;
  const index = new Map();
  tasks.forEach((t, i) => { if (!index.has(t.name)) index.set(t.name, i); });

  // needs as index lists, unknown names and self-needs dropped
  const preds = tasks.map((t, i) => {
    const out = [];
    for (const need of t.needs || []) {
      const j = index.get(need);
      if (j !== undefined && j !== i && !out.includes(j)) out.push(j);
    }
    return out;
  });

  const layerOf = longestPathLayers(preds);
  pullSourcesRight(preds, layerOf);
  const layerCount = n ? Math.max(...layerOf) + 1 : 0;

  // vertices: real tasks first, then dummies; each edge becomes a chain
  const vLayer = layerOf.slice();
  const vReal = tasks.map(() => true);
  const vUp = tasks.map(() => []);      // neighbours one layer to the left
  const vDown = tasks.map(() => []);    // neighbours one layer to the right
  const chains = [];                    // per edge: [from, dummies..., to]
  for (let to = 0; to < n; to++) {
    for (const from of preds[to]) {
      if (layerOf[from] >= layerOf[to]) continue;     // a cycle's back edge: not drawn
      const chain = [from];
      for (let l = layerOf[from] + 1; l < layerOf[to]; l++) {
        const d = vLayer.length;
        vLayer.push(l); vReal.push(false); vUp.push([]); vDown.push([]);
        chain.push(d);
      }
      chain.push(to);
      for (let k = 0; k + 1 < chain.length; k++) {
        vDown[chain[k]].push(chain[k + 1]);
        vUp[chain[k + 1]].push(chain[k]);
      }
      chains.push({ from, to, chain });
    }
  }

  const layers = Array.from({ length: layerCount }, () => []);
  for (let v = 0; v < vLayer.length; v++) layers[vLayer[v]].push(v);
  const order = orderLayers(layers, vUp, vDown, o.sweeps);

  // coordinates: columns per layer, each column centred vertically
  const pos = new Array(vLayer.length);
  let height = 0;
  const colHeights = order.map((layer) => layer.reduce((sum, v, k) =>
    sum + (vReal[v] ? o.nodeH : o.dummyH) + (k ? o.gapY : 0), 0));
  height = colHeights.length ? Math.max(...colHeights) : 0;
  order.forEach((layer, l) => {
    let y = (height - colHeights[l]) / 2;
    const x = l * (o.nodeW + o.gapX);
    for (const v of layer) {
      const hgt = vReal[v] ? o.nodeH : o.dummyH;
      pos[v] = { x, y, h: hgt };
      y += hgt + o.gapY;
    }
  });

  const nodes = tasks.map((t, i) => ({
    name: t.name, index: i, layer: layerOf[i],
    order: order[layerOf[i]].indexOf(i),
    x: pos[i].x, y: pos[i].y, w: o.nodeW, h: o.nodeH,
  }));
  const edges = chains.map(({ from, to, chain }) => {
    const points = [[pos[from].x + o.nodeW, pos[from].y + o.nodeH / 2]];
    for (const d of chain.slice(1, -1)) {
      points.push([pos[d].x, pos[d].y + o.dummyH / 2], [pos[d].x + o.nodeW, pos[d].y + o.dummyH / 2]);
    }
    points.push([pos[to].x, pos[to].y + o.nodeH / 2]);
    return { from: tasks[from].name, to: tasks[to].name, points };
  });
  const width = layerCount ? layerCount * o.nodeW + (layerCount - 1) * o.gapX : 0;
  return { nodes, edges, width, height, crossings: countAll(order, vDown) };
}

// A task that needs nothing would sit in layer 0 even when its first
// dependant is far right; move it next to that dependant so its edge is
// short (layers still follow needs).
function pullSourcesRight(preds, layerOf) {
  const firstUser = new Array(preds.length).fill(Infinity);
  preds.forEach((ps, to) => { for (const p of ps) firstUser[p] = Math.min(firstUser[p], layerOf[to]); });
  preds.forEach((ps, v) => {
    if (!ps.length && firstUser[v] !== Infinity && firstUser[v] - 1 > layerOf[v]) layerOf[v] = firstUser[v] - 1;
  });
}

// Layer of each task = 1 + the highest layer of its needs; iterative DFS so
// a deep chain cannot overflow the stack; a cycle is cut where found.
export function longestPathLayers(preds) {
  const n = preds.length;
  const layer = new Array(n).fill(-1);
  const state = new Uint8Array(n);     // 0 new, 1 on the stack, 2 done
  for (let root = 0; root < n; root++) {
    if (state[root]) continue;
    const stack = [[root, 0]];
    state[root] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, k] = top;
      if (k < preds[v].length) {
        top[1]++;
        const p = preds[v][k];
        if (state[p] === 0) { state[p] = 1; stack.push([p, 0]); }
      } else {
        let l = 0;
        for (const p of preds[v]) if (state[p] === 2) l = Math.max(l, layer[p] + 1);
        layer[v] = l;
        state[v] = 2;
        stack.pop();
      }
    }
  }
  return layer;
}

function orderLayers(layers, up, down, sweeps) {
  let order = layers.map((l) => l.slice());
  let best = order.map((l) => l.slice());
  let bestCross = countAll(order, down);
  for (let s = 0; s < sweeps && bestCross > 0; s++) {
    const downward = s % 2 === 0;
    if (downward) {
      for (let l = 1; l < order.length; l++) order[l] = byBarycentre(order[l], order[l - 1], up);
    } else {
      for (let l = order.length - 2; l >= 0; l--) order[l] = byBarycentre(order[l], order[l + 1], down);
    }
    const c = countAll(order, down);
    if (c < bestCross) { bestCross = c; best = order.map((x) => x.slice()); }
  }
  return best;
}

function byBarycentre(layer, fixed, neighbours) {
  const at = new Map();
  fixed.forEach((v, i) => at.set(v, i));
  const keyed = layer.map((v, i) => {
    const ns = neighbours[v];
    if (!ns.length) return { v, key: i, i };     // no neighbour: stay near where it is
    let sum = 0;
    for (const u of ns) sum += at.get(u);
    return { v, key: sum / ns.length, i };
  });
  keyed.sort((a, b) => a.key - b.key || a.i - b.i);
  return keyed.map((k) => k.v);
}

// Crossings between every pair of adjacent layers.
function countAll(order, down) {
  let total = 0;
  for (let l = 0; l + 1 < order.length; l++) total += countBetween(order[l], order[l + 1], down);
  return total;
}

export function countBetween(left, right, down) {
  const at = new Map();
  right.forEach((v, i) => at.set(v, i));
  const ends = [];                    // right positions in left order
  for (const v of left) {
    const targets = down[v].map((u) => at.get(u)).filter((x) => x !== undefined).sort((a, b) => a - b);
    for (const t of targets) ends.push(t);
  }
  // inversions in ends = crossings (merge-sort count)
  return inversions(ends);
}

function inversions(a) {
  if (a.length < 2) return 0;
  const buf = new Array(a.length);
  let count = 0;
  const sort = (lo, hi) => {
    if (hi - lo < 2) return;
    const mid = (lo + hi) >> 1;
    sort(lo, mid); sort(mid, hi);
    let i = lo, j = mid, k = lo;
    while (i < mid && j < hi) {
      if (a[j] < a[i]) { count += mid - i; buf[k++] = a[j++]; } else buf[k++] = a[i++];
    }
    while (i < mid) buf[k++] = a[i++];
    while (j < hi) buf[k++] = a[j++];
    for (let x = lo; x < hi; x++) a[x] = buf[x];
  };
  sort(0, a.length);
  return count;
}
