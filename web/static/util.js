// Small DOM and formatting helpers shared by every page.  Elements are
// built with createElement and text nodes only (never innerHTML), so text
// from the API can never become markup.

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      node.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'value' && 'value' in node) {
      node.value = value;
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// ---- time ----

export function parseTime(value) {
  if (typeof value !== 'string' || !value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

// RFC 3339 UTC to the second ("2026-12-07T18:00:00Z"), '' for no time
export function toRfc3339(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  const text = d.toISOString().replace(/\.\d+Z$/, 'Z');
  return /^\d{4}-/.test(text) ? text : '';     // years past 9999 or before 0: the API takes none
}

// The local "YYYY-MM-DDTHH:MM:SS" a datetime-local input shows, '' for none
export function toLocalInput(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '';
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function relativeTime(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return '—';
  const diff = Math.round((now - ms) / 1000);
  const future = diff < 0;
  const a = Math.abs(diff);
  let text;
  if (a < 5) return 'just now';
  if (a < 60) text = `${a} s`;
  else if (a < 3600) text = `${Math.floor(a / 60)} min`;
  else if (a < 86400) text = `${Math.floor(a / 3600)} h`;
  else text = `${Math.floor(a / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

// A <time> element showing "3 min ago" with the RFC 3339 text as its title;
// refreshTimes() keeps the relative text current.
export function timeEl(value) {
  const ms = parseTime(value);
  if (ms === null) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: value, title: value, 'data-rel': '' }, relativeTime(ms));
}

export function refreshTimes(root) {
  for (const t of root.querySelectorAll('time[data-rel]')) {
    const text = relativeTime(parseTime(t.getAttribute('datetime')));
    if (t.textContent !== text) t.textContent = text;
  }
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const sec = Math.max(0, seconds);
  if (sec < 10) return `${sec.toFixed(1)} s`;
  if (sec < 60) return `${Math.round(sec)} s`;
  const m = Math.floor(sec / 60), r = Math.round(sec % 60);
  if (m < 60) return `${m} min ${r} s`;
  const hr = Math.floor(m / 60);
  return `${hr} h ${m % 60} min`;
}

// An attempt's end time: the contract maps finished_us to "finished", which
// collides with AttemptInfo's own bool "finished"; accept either shape.
export function attemptEnd(a) {
  if (typeof a.finished === 'string') return parseTime(a.finished);
  if (typeof a.finished_at === 'string') return parseTime(a.finished_at);
  return null;
}

export function attemptDone(a) {
  return a.finished === true || typeof a.finished === 'string' || !!a.end;
}

// ---- status ----

export const ACTIVE_RUN = new Set(['queued', 'running']);

export function badge(status) {
  const st = String(status || 'unknown');
  return h('span', { class: `badge st-${st}`, 'data-status': st }, st.replace(/_/g, ' '));
}

export function param(query, name) {
  const v = query.get(name);
  return v === null ? '' : v;
}

export function formatValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function formatBytes(n) {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function enc(s) {
  return encodeURIComponent(String(s));
}
