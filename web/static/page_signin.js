// Sign-in: paste an API token once; the server answers with an HttpOnly
// session cookie, so the token is not kept by this page.

import { api } from './api.js';
import { h } from './util.js';

export function mountSignin(root, params, query, app, done) {
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'qat_…', required: true, 'data-test': 'token',
  });
  const msg = h('p', { class: 'form-error', role: 'status' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h('form', { class: 'signin', 'data-test': 'signin' },
    h('h1', null, 'Sign in to qanat'),
    h('p', { class: 'muted' }, 'Paste an API token (', h('code', null, 'qanat apitoken create NAME'), ').'),
    h('label', { for: 'token' }, 'API token'), input, submit, msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.textContent = '';
    submit.disabled = true;
    try {
      const token = input.value.trim();
      if (!token) throw new Error('Paste a token first.');
      await api('/session', { method: 'POST', body: { token }, quiet401: true });
      const who = await api('/whoami', { quiet401: true });
      input.value = '';
      app.clearError();
      done(who);
    } catch (e) {
      msg.textContent = e.status === 401 ? 'That token is unknown, revoked or expired.' : e.message;
      submit.disabled = false;
    }
  });
  root.append(h('section', { class: 'page signin-page' }, form));
  input.focus();
  return { unmount() {} };
}
