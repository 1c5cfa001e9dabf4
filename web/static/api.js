// The HTTP API seen from the browser: JSON requests with the session
// cookie, API errors as ApiError, and Server-Sent Event streams that the
// page closes when it goes away.

export const API = '/api/v1';

export class ApiError extends Error {
  constructor(status, message, code, field) {
    super(message);
    this.status = status;
    this.code = code || '';
    this.field = field || '';
  }
}

let unauthorizedHandler = null;
export function onUnauthorized(fn) { unauthorizedHandler = fn; }

export async function api(path, { method = 'GET', body, signal, quiet401 = false } = {}) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' }, signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server: ${e.message}`, 'unavailable');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    const message = err.message || `${res.status} ${res.statusText || 'error'}`;
    const error = new ApiError(res.status, message, err.code, err.field);
    if (res.status === 401 && !quiet401 && unauthorizedHandler) unauthorizedHandler();
    throw error;
  }
  if (data === null && text) throw new ApiError(res.status, 'the server sent a reply that is not JSON', 'bad_reply');
  return data;
}

// An EventSource with named handlers.  The browser reconnects by itself
// after a network error (sending Last-Event-ID); when the server refuses
// (the source is CLOSED) we retry after a pause, and tell onDown.  `path`
// may be a function, called again on each retry (to resume from a cursor).
export function stream(path, handlers, { onDown, onUp, retryMs = 3000 } = {}) {
  let source = null, timer = null, closed = false;
  const open = () => {
    if (closed) return;
    const where = typeof path === 'function' ? path() : path;
    source = new EventSource(API + where, { withCredentials: true });
    for (const [name, fn] of Object.entries(handlers)) {
      source.addEventListener(name, (ev) => {
        let data = null;
        try { data = ev.data ? JSON.parse(ev.data) : null; } catch { data = ev.data; }
        fn(data, ev);
      });
    }
    source.onopen = () => { if (onUp) onUp(); };
    source.onerror = () => {
      if (closed || !source) return;
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        if (onDown) onDown();
        timer = setTimeout(open, retryMs);
      }
    };
  };
  open();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (source) source.close();
      source = null;
    },
  };
}

// Status of a GET without reading its body (used to tell "no such
// stream" from "stream broke").
export async function probe(path) {
  const ctl = new AbortController();
  try {
    const res = await fetch(API + path, { credentials: 'same-origin', signal: ctl.signal });
    return res.status;
  } catch {
    return 0;
  } finally {
    ctl.abort();
  }
}
