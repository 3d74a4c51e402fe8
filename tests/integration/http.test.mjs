// HTTP/1.1 connection handling: keep-alive, Connection: close, HTTP/1.0, pipelining order,
// chunked request bodies.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep, probeStatus } from './lib/server.mjs';
import { RawConn, buildRequest, chunked, request } from './lib/http.mjs';

const T = { timeout: 30000 };
const FEATURES = '{"supports_preview_metadata": true, "max_upload_size": 104857600}';

describe('connection handling', () => {
  let srv;
  before(async () => {
    srv = await startServer({ files: { 'models/embeddings/e1.safetensors': 'x' } });
  });
  after(async () => { await srv?.stop(); });

  test('HTTP/1.1 keeps the connection open for several requests', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      for (let i = 0; i < 5; i++) {
        await conn.write(buildRequest({ path: i % 2 ? '/api/features' : '/features', port: srv.port }));
        const res = await conn.readResponse();
        assert.equal(res.status, 200);
        assert.equal(res.text, FEATURES);
        assert.notEqual((res.headers.connection || '').toLowerCase(), 'close');
      }
      assert.ok(!conn.closed && !conn.ended);
    } finally {
      conn.destroy();
    }
  });

  test('Connection: close is honoured', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({ path: '/features', port: srv.port, headers: { Connection: 'close' } }));
      const res = await conn.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.text, FEATURES);
      assert.ok(await conn.waitClosed(3000), 'server must close after Connection: close');
    } finally {
      conn.destroy();
    }
  });

  test('HTTP/1.0 without keep-alive gets its answer and a close', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(`GET /features HTTP/1.0\r\nHost: 127.0.0.1:${srv.port}\r\n\r\n`);
      const res = await conn.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.text, FEATURES);
      assert.ok(await conn.waitClosed(3000), 'server must close an HTTP/1.0 connection');
    } finally {
      conn.destroy();
    }
  });

  test('HTTP/1.0 with Connection: keep-alive may be kept open, and the answer is complete', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(`GET /features HTTP/1.0\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: keep-alive\r\n\r\n`);
      const res = await conn.readResponse();
      assert.equal(res.status, 200);
      assert.equal(res.text, FEATURES);
      assert.ok(!res.chunked, 'no chunked responses to an HTTP/1.0 client');
    } finally {
      conn.destroy();
    }
  });

  test('pipelined requests are answered in order', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const plan = [
        ['GET', '/system_stats', (r) => { assert.equal(r.status, 200); assert.ok(JSON.parse(r.text).system); }],
        ['GET', '/features', (r) => { assert.equal(r.status, 200); assert.equal(r.text, FEATURES); }],
        ['GET', '/nope', (r) => assert.equal(r.status, 404)],
        ['GET', '/api/embeddings', (r) => { assert.equal(r.status, 200); assert.equal(r.text, '["e1"]'); }],
        ['POST', '/features', (r) => assert.equal(r.status, 405)],
        ['HEAD', '/features', (r) => { assert.equal(r.status, 200); assert.equal(r.body.length, 0); }],
        ['GET', '/api/extensions', (r) => { assert.equal(r.status, 200); assert.ok(Array.isArray(JSON.parse(r.text))); }],
        ['GET', '/api/features', (r) => { assert.equal(r.status, 200); assert.equal(r.text, FEATURES); }],
      ];
      const bytes = Buffer.concat(plan.map(([method, path]) => buildRequest({ method, path, port: srv.port, body: method === 'POST' ? '{}' : null })));
      await conn.write(bytes); // all at once
      for (const [method, path, check] of plan) {
        const res = await conn.readResponse({ method });
        try { check(res); } catch (e) { e.message = `${method} ${path}: ${e.message}`; throw e; }
      }
      assert.ok(!conn.closed && !conn.ended, 'connection still open after the pipeline');
    } finally {
      conn.destroy();
    }
  });

  test('a long pipeline (200 requests in one write) is answered completely and in order', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const paths = [];
      for (let i = 0; i < 200; i++) paths.push(i % 3 === 0 ? '/features' : i % 3 === 1 ? '/embeddings' : `/nope${i}`);
      await conn.write(Buffer.concat(paths.map((path) => buildRequest({ path, port: srv.port }))));
      for (const path of paths) {
        const res = await conn.readResponse({ timeoutMs: 10000 });
        if (path === '/features') assert.equal(res.text, FEATURES, path);
        else if (path === '/embeddings') assert.equal(res.text, '["e1"]', path);
        else assert.equal(res.status, 404, path);
      }
    } finally {
      conn.destroy();
    }
  });

  test('pipelined requests split at odd byte boundaries are parsed correctly', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const bytes = Buffer.concat([
        buildRequest({ path: '/features', port: srv.port }),
        buildRequest({ method: 'POST', path: '/nope', port: srv.port, body: 'hello world', headers: { 'Content-Type': 'text/plain' } }),
        buildRequest({ path: '/api/features', port: srv.port }),
      ]);
      for (let i = 0; i < bytes.length; i += 7) {
        await conn.write(bytes.subarray(i, i + 7));
        if (i % 35 === 0) await sleep(2);
      }
      assert.equal((await conn.readResponse()).text, FEATURES);
      assert.equal((await conn.readResponse()).status, 404);
      assert.equal((await conn.readResponse()).text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('a chunked request body on an unknown POST route gets 404, not a hang', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({
        method: 'POST', path: '/api/nope', port: srv.port,
        headers: { 'Transfer-Encoding': 'chunked', 'Content-Type': 'application/json' },
      }));
      await conn.write(chunked(['{"a":', ' 1', '}']));
      const res = await conn.readResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 404);
      // The connection remains usable: the body was consumed, not mistaken for a request.
      await conn.write(buildRequest({ path: '/features', port: srv.port }));
      const next = await conn.readResponse({ timeoutMs: 5000 });
      assert.equal(next.status, 200);
      assert.equal(next.text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('chunked bodies with extensions and trailers, pipelined with a following GET', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const body = '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n';
      await conn.write(Buffer.concat([
        buildRequest({ method: 'POST', path: '/nope', port: srv.port, headers: { 'Transfer-Encoding': 'chunked' } }),
        Buffer.from(body),
        buildRequest({ path: '/features', port: srv.port }),
      ]));
      assert.equal((await conn.readResponse()).status, 404);
      assert.equal((await conn.readResponse()).text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('a chunked body sent slowly, chunk by chunk, is waited for', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({ method: 'POST', path: '/system_stats', port: srv.port, headers: { 'Transfer-Encoding': 'chunked' } }));
      for (const part of ['{"x"', ': ', '1}']) {
        await sleep(200);
        await conn.write(`${part.length.toString(16)}\r\n${part}\r\n`);
      }
      await sleep(200);
      await conn.write('0\r\n\r\n');
      assert.equal((await conn.readResponse()).status, 405);
      await conn.write(buildRequest({ path: '/features', port: srv.port }));
      assert.equal((await conn.readResponse()).text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('a Content-Length body on a GET route is consumed, not parsed as a request', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const smuggled = `GET /nope HTTP/1.1\r\nHost: x\r\n\r\n`;
      await conn.write(Buffer.concat([
        buildRequest({ path: '/features', port: srv.port, body: smuggled }),
        buildRequest({ path: '/api/features', port: srv.port }),
      ]));
      assert.equal((await conn.readResponse()).text, FEATURES);
      const second = await conn.readResponse();
      assert.equal(second.status, 200, 'the body was taken as a request');
      assert.equal(second.text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('both Content-Length and Transfer-Encoding: chunked is refused or handled as chunked', T, async () => {
    // RFC 9112 6.3: chunked wins, or the server rejects the message; it must never use the length.
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(
        `POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `0\r\n\r\nGET /features HTTP/1.1\r\nHost: x\r\n\r\n`);
      const first = await conn.readResponse();
      if (first.status === 400) return;
      assert.equal(first.status, 404);
      const second = await conn.readResponse();
      assert.equal(second.text, FEATURES);
    } finally {
      conn.destroy();
    }
  });

  test('the server is still healthy', T, async () => {
    assert.equal(await probeStatus(srv.port), 200);
    const res = await request(srv.port, { path: '/api/features' });
    assert.equal(res.text, FEATURES);
  });
});
