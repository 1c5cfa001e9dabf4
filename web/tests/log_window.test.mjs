// node --test web/tests/ : the virtualised log view's window arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { visibleWindow, scrollToLine, atBottom, nextMatch } from '../static/log_window.js';

test('top of a long log renders only the first screen plus overscan', () => {
  const w = visibleWindow(0, 600, 20, 10000, 10);
  assert.deepEqual(w, { first: 0, last: 40, offset: 0, height: 200000 });
});

test('middle of the log: window around the scroll position', () => {
  const w = visibleWindow(100000, 600, 20, 10000, 10);
  assert.equal(w.first, 4990);
  assert.equal(w.last, 5040);
  assert.equal(w.offset, 4990 * 20);
  assert.ok(w.last - w.first <= 600 / 20 + 2 * 10 + 1);
});

test('scrolled past the end is clamped to the last screen', () => {
  const w = visibleWindow(1e9, 600, 20, 10000, 0);
  assert.equal(w.last, 10000);
  assert.equal(w.first, 10000 - 30);
});

test('short and empty logs', () => {
  assert.deepEqual(visibleWindow(0, 600, 20, 5, 10), { first: 0, last: 5, offset: 0, height: 100 });
  assert.deepEqual(visibleWindow(0, 600, 20, 0), { first: 0, last: 0, offset: 0, height: 0 });
  assert.deepEqual(visibleWindow(0, 600, 0, 10), { first: 0, last: 0, offset: 0, height: 0 });
});

test('every line is rendered by some scroll position', () => {
  const total = 1234, lh = 17, vh = 400;
  const seen = new Uint8Array(total);
  for (let top = 0; top <= total * lh; top += vh) {
    const w = visibleWindow(top, vh, lh, total, 0);
    for (let i = w.first; i < w.last; i++) seen[i] = 1;
  }
  assert.equal(seen.reduce((a, b) => a + b, 0), total);
});

test('scrollToLine centres the line and stays in range', () => {
  assert.equal(scrollToLine(0, 600, 20, 10000), 0);
  assert.equal(scrollToLine(5000, 600, 20, 10000), 5000 * 20 - 290);
  assert.equal(scrollToLine(9999, 600, 20, 10000), 200000 - 600);
  const w = visibleWindow(scrollToLine(5000, 600, 20, 10000), 600, 20, 10000, 0);
  assert.ok(w.first <= 5000 && 5000 < w.last);
});

test('atBottom and nextMatch', () => {
  assert.equal(atBottom(199400, 600, 200000), true);
  assert.equal(atBottom(100000, 600, 200000), false);
  const m = [3, 10, 50];
  assert.equal(nextMatch(m, 3, true), 1);
  assert.equal(nextMatch(m, 50, true), 0);
  assert.equal(nextMatch(m, 10, false), 0);
  assert.equal(nextMatch(m, 3, false), 2);
  assert.equal(nextMatch([], 0, true), -1);
});
