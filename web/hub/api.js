// Calls to the hub's JSON API, and the words a person sees when one fails: the hub answers in
// ComfyUI's error shape, which is for programs; a student should read a sentence instead.
import { t } from './i18n.js';

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message || type || `HTTP ${status}`);
    this.status = status; // 0: the hub could not be reached
    this.type = type || '';
  }
}

/** method, path, optional JSON body → the parsed answer (or text). Throws ApiError. */
export async function api(method, path, body) {
  const init = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', '');
  }
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* a log is plain text */ }
  if (r.status === 401 && path !== '/api/login') {
    // The session ended (logged out elsewhere, disabled, expired): log in again and come back.
    location.href = `/login?next=${encodeURIComponent(location.pathname + location.hash)}`;
  }
  if (!r.ok) throw new ApiError(r.status, json?.error?.type, json?.error?.message);
  return json ?? text;
}

/** A sentence for an error, and the hub's own reason when it helps (else ''). */
export function explain(err) {
  if (!(err instanceof ApiError)) return { text: t('err.server'), detail: String(err?.message || '') };
  const detail = err.message && err.status !== 0 ? t('err.details', { message: err.message }) : '';
  switch (err.status) {
    case 0: return { text: t('err.network'), detail: '' };
    case 403: return { text: t('err.forbidden'), detail: '' };
    case 404: return { text: t('err.not_found'), detail: '' };
    case 409: return err.type === 'running' ? { text: t('q.cancel_running'), detail: '' } : { text: t('err.input'), detail };
    case 429: return { text: t('err.too_many'), detail: '' };
    case 503: return { text: t('err.busy'), detail };
    default: break;
  }
  if (err.status === 400) return { text: t(err.type === 'invalid_name' ? 'err.invalid_name' : 'err.input'), detail };
  if (err.type === 'instance_failed') return { text: t('err.start_failed'), detail };
  return { text: t('err.server'), detail };
}
