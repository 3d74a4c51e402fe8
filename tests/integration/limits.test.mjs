// Request limits: 413 (body, by Content-Length and by a growing chunked body), 414 (URL), 431
// (one header line, all headers), 400 (malformed). After each the connection is closed and the
// server still answers a new connection with 200.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep, probeStatus } from './lib/server.mjs';
import { RawConn, request, buildRequest, exchange, chunked } from './lib/http.mjs';

const T = { timeout: 30000 };
const MiB = 1024 * 1024;

async function assertHealthy(srv) {
  assert.equal(await probeStatus(srv.port), 200, 'a follow-up request on a new connection must get 200');
}

/** Sends bytes on a new connection, reads one response and checks the connection then closes. */
async function sendExpect(srv, bytes, status, { mustClose = true } = {}) {
  const conn = await RawConn.open(srv.port);
  try {
    await conn.write(bytes);
    const res = await conn.readResponse({ timeoutMs: 5000 });
    assert.equal(res.status, status, `status for ${JSON.stringify(bytes.toString('latin1').slice(0, 80))}`);
    if (mustClose) assert.ok(await conn.waitClosed(5000), `connection must be closed after a ${status}`);
    return res;
  } finally {
    conn.destroy();
  }
}

describe('body limit with --max-upload-size 1', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-upload-size', '1'] }); });
  after(async () => { await srv?.stop(); });

  test('Content-Length beyond 1 MiB gets 413 before the body is sent', T, async () => {
    for (const path of ['/prompt', '/api/prompt', '/upload/image', '/nope']) {
      await sendExpect(srv, buildRequest({
        method: 'POST', path, port: srv.port,
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(MiB + 1) },
      }), 413);
      await assertHealthy(srv);
    }
  });

  test('a body of exactly 1 MiB is not refused as too large', T, async () => {
    const body = Buffer.alloc(MiB, 0x61);
    const res = await request(srv.port, { method: 'POST', path: '/api/prompt', body, headers: { Connection: 'close' }, timeoutMs: 10000 });
    assert.notEqual(res.status, 413);
    await assertHealthy(srv);
  });

  test('a chunked body that grows past 1 MiB gets 413 (sent progressively)', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({
        method: 'POST', path: '/api/prompt', port: srv.port,
        headers: { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
      }));
      const piece = Buffer.alloc(64 * 1024, 0x62);
      const frame = Buffer.concat([Buffer.from(piece.length.toString(16) + '\r\n'), piece, Buffer.from('\r\n')]);
      let sent = 0;
      // Up to 3 MiB, stopping as soon as the server answers (so that it is not reset by unread data).
      while (sent < 3 * MiB && conn.length === 0 && !conn.closed && !conn.ended) {
        try { await conn.write(frame); } catch { break; }
        sent += piece.length;
        await sleep(5);
      }
      const res = await conn.readResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 413);
      assert.ok(sent > MiB, `server answered 413 after only ${sent} body bytes`);
      assert.ok(await conn.waitClosed(5000), 'connection must be closed after the 413');
    } finally {
      conn.destroy();
    }
    await assertHealthy(srv);
  });

  test('a chunked body just under 1 MiB is not refused as too large', T, async () => {
    const parts = [];
    for (let i = 0; i < 16; i++) parts.push(Buffer.alloc(64 * 1024 - 1, 0x63));
    const res = await request(srv.port, {
      method: 'POST', path: '/api/prompt', body: chunked(parts),
      headers: { 'Transfer-Encoding': 'chunked', Connection: 'close' }, timeoutMs: 10000,
    });
    assert.notEqual(res.status, 413);
    await assertHealthy(srv);
  });
});

describe('default limits', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.stop(); });

  test('Content-Length beyond the default 100 MiB gets 413', T, async () => {
    await sendExpect(srv, buildRequest({
      method: 'POST', path: '/api/prompt', port: srv.port,
      headers: { 'Content-Length': String(100 * MiB + 1) },
    }), 413);
    await assertHealthy(srv);
  });

  test('a URL of about 7 KB is fine', T, async () => {
    const res = await request(srv.port, { path: '/system_stats?pad=' + 'a'.repeat(7000) });
    assert.equal(res.status, 200);
  });

  test('a URL longer than 8 KiB gets 414', T, async () => {
    await sendExpect(srv, buildRequest({ path: '/system_stats?pad=' + 'a'.repeat(9000), port: srv.port }), 414);
    await assertHealthy(srv);
  });

  test('a huge URL (1 MB) gets 414 without the server reading it all', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      const head = Buffer.from('GET /system_stats?pad=');
      const pad = Buffer.alloc(1024 * 1024, 0x61);
      conn.writeNoWait(Buffer.concat([head, pad]));
      const res = await conn.readResponse({ timeoutMs: 5000 });
      assert.equal(res.status, 414);
      assert.ok(await conn.waitClosed(5000), 'connection must be closed after the 414');
    } finally {
      conn.destroy();
    }
    await assertHealthy(srv);
  });

  test('a header line of about 7 KB is fine', T, async () => {
    const res = await request(srv.port, { path: '/features', headers: { 'X-Pad': 'b'.repeat(7000) } });
    assert.equal(res.status, 200);
  });

  test('a header line longer than 8 KiB gets 431', T, async () => {
    await sendExpect(srv, buildRequest({ path: '/features', port: srv.port, headers: { 'X-Pad': 'b'.repeat(9000) } }), 431);
    await assertHealthy(srv);
  });

  test('headers of 56 KB in total are fine', T, async () => {
    const headers = [];
    for (let i = 0; i < 8; i++) headers.push([`X-Pad-${i}`, 'c'.repeat(7000)]);
    const res = await request(srv.port, { path: '/features', headers });
    assert.equal(res.status, 200);
  });

  test('headers beyond 64 KiB in total get 431', T, async () => {
    const headers = [];
    for (let i = 0; i < 10; i++) headers.push([`X-Pad-${i}`, 'c'.repeat(7000)]);
    await sendExpect(srv, buildRequest({ path: '/features', port: srv.port, headers }), 431);
    await assertHealthy(srv);
  });

  test('many small headers beyond 64 KiB in total get 431', T, async () => {
    const headers = [];
    for (let i = 0; i < 3000; i++) headers.push([`X-H${i}`, 'd'.repeat(20)]);
    await sendExpect(srv, buildRequest({ path: '/features', port: srv.port, headers }), 431);
    await assertHealthy(srv);
  });

  const malformed = [
    ['garbage request line', 'HELLO\r\n\r\n'],
    ['two words only', 'GET /system_stats\r\nHost: x\r\n\r\n'],
    ['binary junk', '\x00\x01\x02\x03\xff\xfe\r\n\r\n'],
    ['bad HTTP version token', 'GET /system_stats HTTX/1.1\r\nHost: x\r\n\r\n'],
    ['space inside the method', 'G ET /system_stats HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['control character in the URL', 'GET /sys\x01tem_stats HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['header without a colon', 'GET /system_stats HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n'],
    ['non-numeric Content-Length', 'POST /api/prompt HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n'],
    ['bad chunk size', 'POST /api/prompt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [why, raw] of malformed) {
    test(`malformed request (${why}) gets 400`, T, async () => {
      await sendExpect(srv, Buffer.from(raw, 'latin1'), 400);
      await assertHealthy(srv);
    });
  }

  test('a 400 on one connection does not disturb a keep-alive connection in use', T, async () => {
    const good = await RawConn.open(srv.port);
    try {
      await good.write(buildRequest({ path: '/features', port: srv.port }));
      assert.equal((await good.readResponse()).status, 200);
      const bad = await exchange(srv.port, Buffer.from('HELLO\r\n\r\n'));
      assert.equal(bad.status, 400);
      await good.write(buildRequest({ path: '/features', port: srv.port }));
      assert.equal((await good.readResponse()).status, 200);
    } finally {
      good.destroy();
    }
  });
});
