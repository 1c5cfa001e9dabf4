// node --test web/tests/ : the run list's time filter conversions (RFC 3339
// UTC in the URL and the API, local time in the datetime-local inputs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTime, toRfc3339, toLocalInput } from '../static/util.js';

test('an RFC 3339 time comes back to the second, in UTC', () => {
  assert.equal(toRfc3339(parseTime('2026-12-07T18:00:30.250Z')), '2026-12-07T18:00:30Z');
  assert.equal(toRfc3339(parseTime('2026-12-07T19:00:00+01:00')), '2026-12-07T18:00:00Z');
});

test('no time, or a time the API cannot take, is empty', () => {
  for (const bad of [null, undefined, NaN, Infinity, 8.64e15 + 1]) assert.equal(toRfc3339(bad), '');
  assert.equal(toRfc3339(parseTime('yesterday')), '');
  assert.equal(toRfc3339(Date.UTC(10000, 0, 1)), '');       // a six-digit year
  assert.equal(toRfc3339(Date.UTC(-1, 0, 1)), '');
  assert.equal(toLocalInput(null), '');
  assert.equal(toLocalInput(NaN), '');
});

test('the local input value reads back as the same instant', () => {
  const ms = Date.UTC(2026, 11, 7, 18, 5, 9);
  const local = toLocalInput(ms);
  assert.match(local, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
  assert.equal(new Date(local).getTime(), ms);             // no zone: read as local time
  assert.equal(toRfc3339(new Date(local).getTime()), '2026-12-07T18:05:09Z');
});
