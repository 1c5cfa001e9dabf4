// node --test web/tests/ : the DAG layout respects needs, never overlaps
// nodes, reduces crossings, and lays out 200 tasks quickly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layout, longestPathLayers } from '../static/dag_layout.js';

function rng(seed) {
  let x = seed >>> 0;
  return () => { x = (x * 1664525 + 1013904223) >>> 0; return x / 2 ** 32; };
}

function randomDag(n, seed, maxNeeds = 3) {
  const r = rng(seed);
  const tasks = [];
  for (let i = 0; i < n; i++) {
    const needs = new Set();
    const k = i === 0 ? 0 : Math.floor(r() * (maxNeeds + 1));
    for (let j = 0; j < k; j++) needs.add(`t${Math.floor(r() * i)}`);
    tasks.push({ name: `t${i}`, needs: [...needs] });
  }
  return tasks;
}

function checkLayout(tasks, res) {
  const by = new Map(res.nodes.map((nd) => [nd.name, nd]));
  assert.equal(res.nodes.length, tasks.length);
  for (const t of tasks) {
    for (const need of t.needs) {
      assert.ok(by.get(need).layer < by.get(t.name).layer, `${need} left of ${t.name}`);
      assert.ok(by.get(need).x + by.get(need).w <= by.get(t.name).x, `${need} drawn left of ${t.name}`);
    }
  }
  const nodes = res.nodes;
  for (let i = 0; i < nodes.length; i++) {
    const a = nodes[i];
    assert.ok(a.x >= 0 && a.y >= 0 && a.x + a.w <= res.width + 1e-9 && a.y + a.h <= res.height + 1e-9, `${a.name} inside`);
    for (let j = i + 1; j < nodes.length; j++) {
      const b = nodes[j];
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      assert.ok(apart, `${a.name} and ${b.name} overlap`);
    }
  }
  const edgeCount = tasks.reduce((s, t) => s + t.needs.length, 0);
  assert.equal(res.edges.length, edgeCount);
}

test('layers follow needs (longest path)', () => {
  const tasks = [
    { name: 'prep', needs: [] },
    { name: 'train', needs: ['prep'] },
    { name: 'eval', needs: ['train', 'prep'] },
    { name: 'report', needs: ['eval'] },
    { name: 'lint', needs: [] },
  ];
  const res = layout(tasks);
  const layer = Object.fromEntries(res.nodes.map((nd) => [nd.name, nd.layer]));
  assert.deepEqual(layer, { prep: 0, train: 1, eval: 2, report: 3, lint: 0 });
  checkLayout(tasks, res);
});

test('random graphs: needs respected, no overlaps', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const tasks = randomDag(40 + seed, seed);
    checkLayout(tasks, layout(tasks));
  }
});

test('barycentre ordering removes avoidable crossings', () => {
  // two chains whose input order crosses: a1->b2, a2->b1
  const tasks = [
    { name: 'a1', needs: [] }, { name: 'a2', needs: [] },
    { name: 'b2', needs: ['a2'] }, { name: 'b1', needs: ['a1'] },
    { name: 'c2', needs: ['b1'] }, { name: 'c1', needs: ['b2'] },
  ];
  assert.equal(layout(tasks).crossings, 0);
  assert.equal(layout(tasks, { sweeps: 0 }).crossings > 0, true);
});

test('cycles and unknown needs do not hang or throw', () => {
  const tasks = [
    { name: 'a', needs: ['c', 'ghost', 'a'] },
    { name: 'b', needs: ['a'] },
    { name: 'c', needs: ['b'] },
  ];
  const res = layout(tasks);
  assert.equal(res.nodes.length, 3);
  assert.deepEqual(longestPathLayers([[], [0], [1]]), [0, 1, 2]);
  assert.deepEqual(layout([]).nodes, []);
});

test('a 2,000-deep chain does not overflow the stack', () => {
  const tasks = Array.from({ length: 2000 }, (_, i) => ({ name: `s${i}`, needs: i ? [`s${i - 1}`] : [] }));
  assert.equal(layout(tasks).nodes[1999].layer, 1999);
});

test('200 tasks in under 100 ms', () => {
  const tasks = randomDag(200, 42, 4);
  layout(tasks);                       // warm up the JIT
  const t0 = performance.now();
  const res = layout(randomDag(200, 7, 4));
  const ms = performance.now() - t0;
  checkLayout(randomDag(200, 7, 4), res);
  assert.ok(ms < 100, `took ${ms.toFixed(1)} ms`);
});
