// Client-side routes on /ui/... paths: history.pushState for same-origin
// links, so every page has a URL that can be shared and reloaded.

export class Router {
  constructor(routes, render) {
    this.routes = routes;       // [{pattern: RegExp, page, names: [...]}]
    this.render = render;       // (route, params, query) => void
    document.addEventListener('click', (ev) => this.onClick(ev));
    window.addEventListener('popstate', () => this.resolve());
  }

  onClick(ev) {
    if (ev.defaultPrevented || ev.button !== 0) return;
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest ? ev.target.closest('a[href]') : null;
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith('/ui/')) return;
    ev.preventDefault();
    this.go(url.pathname + url.search);
  }

  go(path, { replace = false } = {}) {
    if (path === location.pathname + location.search) {
      if (!replace) return this.resolve();
    }
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    this.resolve();
  }

  // Change the query string only (filters): no new page instance.
  setQuery(query, { replace = false } = {}) {
    const qs = query.toString();
    const path = location.pathname + (qs ? `?${qs}` : '');
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
  }

  match(pathname) {
    for (const route of this.routes) {
      const m = route.pattern.exec(pathname);
      if (m) {
        const params = {};
        try {
          (route.names || []).forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
        } catch {
          return null;                    // a malformed %-escape: no such page
        }
        return { route, params };
      }
    }
    return null;
  }

  resolve() {
    let path = location.pathname;
    if (path === '/' || path === '/ui' || path === '/ui/' || path === '/index.html') {
      history.replaceState(null, '', '/ui/runs' + location.search);
      path = '/ui/runs';
    }
    const found = this.match(path);
    this.render(found, new URLSearchParams(location.search));
  }
}
