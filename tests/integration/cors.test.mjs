// §2.2: the Origin check (CORS off, the default) and the CORS headers (--enable-cors-header).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';
import { request } from './lib/http.mjs';
import { RawWs } from './lib/ws-raw.mjs';

const T = { timeout: 20000 };
const CORS_HEADERS = {
  'access-control-allow-methods': 'POST, GET, DELETE, PUT, OPTIONS',
  'access-control-allow-headers': 'Content-Type, Authorization',
  'access-control-allow-credentials': 'true',
};

describe('origin check (no --enable-cors-header)', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.stop(); });

  const get = (host, origin, path = '/features', method = 'GET') => {
    const headers = { Host: host };
    if (origin !== undefined) headers.Origin = origin;
    return request(srv.port, { method, path, headers });
  };

  // [Host, Origin, expected status]; P is replaced by the server's port.
  const cases = [
    ['127.0.0.1:P', 'http://127.0.0.1:P', 200, 'same host and port'],
    ['localhost:P', 'http://localhost:P', 200, 'localhost on both sides'],
    ['LOCALHOST:P', 'http://localhost:P', 200, 'compared case-insensitively'],
    ['127.0.0.1', 'http://127.0.0.1:P', 200, 'Host without port: port stripped from Origin'],
    ['127.0.0.1:P', 'http://127.0.0.1', 200, 'Origin without port: port stripped from Host'],
    ['127.0.0.1:P', undefined, 200, 'no Origin header'],
    ['127.0.0.1:P', 'http://evil.example', 403, 'foreign origin'],
    ['127.0.0.1:P', 'http://evil.example:P', 403, 'foreign origin, same port'],
    ['127.0.0.1:P', 'http://127.0.0.1:1', 403, 'same host, other port'],
    ['localhost:P', 'http://127.0.0.1:P', 403, 'localhost vs 127.0.0.1 are different strings'],
    ['127.0.0.2:P', 'http://evil.example', 403, '127.0.0.2 is loopback too'],
    ['192.0.2.10:P', 'http://evil.example', 200, 'non-loopback Host: the check does not apply'],
  ];
  for (const [host, origin, status, why] of cases) {
    test(`Host ${host}, Origin ${origin ?? '(none)'} -> ${status} (${why})`, T, async () => {
      const h = host.replace('P', srv.port);
      const o = origin?.replace('P', srv.port);
      for (const path of ['/features', '/api/features']) {
        const res = await get(h, o, path);
        assert.equal(res.status, status, `${path}`);
        if (status === 403) assert.equal(res.body.length, 0, '403 has an empty body');
        else assert.equal(res.text, '{"supports_preview_metadata": true, "max_upload_size": 104857600}');
        assert.equal(res.headers['access-control-allow-origin'], undefined, 'no CORS headers without --enable-cors-header');
      }
    });
  }

  test('a cross-origin POST is refused before routing (403, not 404/405)', T, async () => {
    for (const path of ['/system_stats', '/api/prompt', '/nope']) {
      const res = await request(srv.port, {
        method: 'POST', path, body: '{}',
        headers: { Host: `127.0.0.1:${srv.port}`, Origin: 'http://evil.example', 'Content-Type': 'application/json' },
      });
      assert.equal(res.status, 403, path);
    }
  });

  test('a cross-origin WebSocket upgrade is refused with 403', T, async () => {
    await assert.rejects(
      RawWs.connect(srv.port, '/ws?clientId=x', { headers: { Origin: 'http://evil.example' } }),
      /status 403/,
    );
    // Same-origin upgrade works.
    const ws = await RawWs.connect(srv.port, '/ws?clientId=x', { headers: { Origin: `http://127.0.0.1:${srv.port}` } });
    ws.destroy();
  });

  test('OPTIONS gets an empty 200 without calling the handler', T, async () => {
    for (const path of ['/features', '/api/prompt', '/nope']) {
      const res = await request(srv.port, { method: 'OPTIONS', path });
      assert.equal(res.status, 200, path);
      assert.equal(res.body.length, 0, `${path}: empty body`);
    }
  });

  test('OPTIONS from a foreign origin is 403', T, async () => {
    const res = await get(`127.0.0.1:${srv.port}`, 'http://evil.example', '/features', 'OPTIONS');
    assert.equal(res.status, 403);
  });
});

describe('--enable-cors-header (default origin *)', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--enable-cors-header'] }); });
  after(async () => { await srv?.stop(); });

  const assertCors = (res, origin) => {
    assert.equal(res.headers['access-control-allow-origin'], origin);
    for (const [k, v] of Object.entries(CORS_HEADERS)) assert.equal(res.headers[k], v, k);
  };

  test('responses carry the CORS headers; a foreign Origin is not refused', T, async () => {
    for (const path of ['/features', '/api/features', '/system_stats', '/api/embeddings']) {
      const res = await request(srv.port, { path, headers: { Origin: 'http://evil.example' } });
      assert.equal(res.status, 200, path);
      assertCors(res, '*');
    }
  });

  test('responses without an Origin header carry them too', T, async () => {
    const res = await request(srv.port, { path: '/features' });
    assert.equal(res.status, 200);
    assertCors(res, '*');
  });

  test('OPTIONS preflight gets an empty 200 with the CORS headers', T, async () => {
    for (const path of ['/api/prompt', '/features', '/nope']) {
      const res = await request(srv.port, {
        method: 'OPTIONS', path,
        headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
      });
      assert.equal(res.status, 200, path);
      assert.equal(res.body.length, 0, `${path}: empty body`);
      assertCors(res, '*');
    }
  });
});

describe('--enable-cors-header ORIGIN', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--enable-cors-header', 'http://app.example:3000'] }); });
  after(async () => { await srv?.stop(); });

  test('Access-Control-Allow-Origin is the configured origin', T, async () => {
    for (const path of ['/features', '/api/system_stats']) {
      const res = await request(srv.port, { path, headers: { Origin: 'http://app.example:3000' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['access-control-allow-origin'], 'http://app.example:3000');
      for (const [k, v] of Object.entries(CORS_HEADERS)) assert.equal(res.headers[k], v, k);
    }
  });
});
