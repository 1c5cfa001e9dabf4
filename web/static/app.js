// The application shell: who is signed in, the header, the colour
// scheme, the error banner, and mounting one page at a time.

import { api, onUnauthorized, ApiError } from './api.js';
import { Router } from './router.js';
import { h, clear } from './util.js';
import { mountSignin } from './page_signin.js';
import { mountRuns } from './page_runs.js';
import { mountRun } from './page_run.js';
import { mountLogs } from './page_logs.js';
import { mountMetrics, mountHistory } from './page_metrics.js';
import { mountCompare } from './page_compare.js';
import { mountWorkflows, mountWorkflow } from './page_workflow.js';
import { mountAgents } from './page_agents.js';
import { mountSchedules } from './page_schedules.js';

const SEG = '([^/]+)';
const routes = [
  { pattern: /^\/ui\/runs\/?$/, page: mountRuns, nav: 'runs' },
  { pattern: new RegExp(`^/ui/runs/${SEG}/?$`), names: ['id'], page: mountRun, nav: 'runs' },
  { pattern: new RegExp(`^/ui/runs/${SEG}/tasks/${SEG}/logs/?$`), names: ['id', 'task'], page: mountLogs, nav: 'runs' },
  { pattern: new RegExp(`^/ui/runs/${SEG}/metrics/?$`), names: ['id'], page: mountMetrics, nav: 'runs' },
  { pattern: new RegExp(`^/ui/compare/${SEG}/${SEG}/?$`), names: ['a', 'b'], page: mountCompare, nav: 'runs' },
  { pattern: /^\/ui\/workflows\/?$/, page: mountWorkflows, nav: 'workflows' },
  { pattern: new RegExp(`^/ui/workflows/${SEG}/?$`), names: ['name'], page: mountWorkflow, nav: 'workflows' },
  { pattern: new RegExp(`^/ui/workflows/${SEG}/metrics/${SEG}/?$`), names: ['name', 'metric'], page: mountHistory, nav: 'workflows' },
  { pattern: /^\/ui\/agents\/?$/, page: mountAgents, nav: 'agents' },
  { pattern: /^\/ui\/schedules\/?$/, page: mountSchedules, nav: 'schedules' },
];

const main = document.getElementById('main');
const banner = document.getElementById('banner');
const bannerText = document.getElementById('banner-text');

export const app = {
  user: null,              // {kind, name, role}
  router: null,
  isAdmin() { return !!this.user && this.user.role === 'admin'; },
  error(err) {
    if (err && err.name === 'AbortError') return;
    const msg = err instanceof ApiError ? err.message : (err && err.message) || String(err);
    bannerText.textContent = msg;
    banner.hidden = false;
  },
  clearError() { banner.hidden = true; bannerText.textContent = ''; },
};

let current = null;     // the mounted page: {unmount()}

function unmountCurrent() {
  if (current && current.unmount) {
    try { current.unmount(); } catch (e) { console.error(e); }
  }
  current = null;
}

function render(found, query) {
  unmountCurrent();
  app.clearError();
  clear(main);
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', !!found && a.dataset.nav === found.route.nav);
  }
  if (!app.user) {
    current = mountSignin(main, {}, query, app, signedIn);
    return;
  }
  if (!found) {
    main.append(h('section', { class: 'page' }, h('h1', null, 'Not found'),
      h('p', null, 'No page here. ', h('a', { href: '/ui/runs' }, 'See the runs.'))));
    return;
  }
  try {
    current = found.route.page(main, found.params, query, app) || null;
  } catch (e) {
    console.error(e);
    app.error(e);
  }
}

function showUser() {
  const who = document.getElementById('whoami');
  const out = document.getElementById('signout');
  clear(who);
  if (app.user) {
    who.append(h('span', { class: 'user-name' }, app.user.name || '?'),
      h('span', { class: `role role-${app.user.role}`, 'data-test': 'role' }, app.user.role || ''));
    out.hidden = app.user.kind === 'local';     // --insecure: no session to end
  } else {
    out.hidden = true;
  }
}

function signedIn(user) {
  app.user = user;
  showUser();
  app.router.resolve();
}

async function signOut() {
  try { await api('/session', { method: 'DELETE', quiet401: true }); } catch (e) { /* signed out anyway */ }
  app.user = null;
  showUser();
  app.router.resolve();
}

// ---- colour scheme: auto (prefers-color-scheme), light or dark ----
const THEMES = ['auto', 'light', 'dark'];
function applyTheme(theme) {
  if (theme === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  document.getElementById('theme-toggle').textContent = `Theme: ${theme}`;
  window.dispatchEvent(new CustomEvent('qanat-theme'));
}
function initTheme() {
  let theme = 'auto';
  try { theme = localStorage.getItem('qanat-theme') || 'auto'; } catch { /* storage off */ }
  if (!THEMES.includes(theme)) theme = 'auto';
  applyTheme(theme);
  document.getElementById('theme-toggle').addEventListener('click', () => {
    const next = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
    theme = next;
    try { localStorage.setItem('qanat-theme', next); } catch { /* storage off */ }
    applyTheme(next);
  });
}

async function start() {
  initTheme();
  document.getElementById('banner-close').addEventListener('click', () => app.clearError());
  document.getElementById('signout').addEventListener('click', signOut);
  onUnauthorized(() => {
    if (!app.user) return;
    app.user = null;
    showUser();
    app.router.resolve();
    app.error(new Error('Your session ended: sign in again.'));
  });
  app.router = new Router(routes, render);
  try {
    app.user = await api('/whoami', { quiet401: true });
  } catch (e) {
    app.user = null;
    if (!(e instanceof ApiError && e.status === 401)) app.error(e);
  }
  showUser();
  app.router.resolve();
}

start();
