// --header-timeout (slow-loris defence) and --idle-timeout (keep-alive connections).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sleep, probeStatus } from './lib/server.mjs';
import { RawConn, buildRequest } from './lib/http.mjs';

const T = { timeout: 30000 };

describe('--header-timeout 2 --idle-timeout 5', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--header-timeout', '2', '--idle-timeout', '5'] }); });
  after(async () => { await srv?.stop(); });

  test('slow-loris: a client dripping header bytes is cut off after ~2 s while others are served', T, async () => {
    const conn = await RawConn.open(srv.port);
    const started = Date.now();
    const header = Buffer.from(`GET /system_stats HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nX-Slow: ${'s'.repeat(200)}`);
    let dripping = true;
    let i = 0;
    // One byte every 100 ms: the connection is never silent, yet its headers never complete.
    const drip = (async () => {
      while (dripping && !conn.closed && !conn.ended && i < header.length) {
        try { await conn.write(header.subarray(i, i + 1)); } catch { break; }
        i++;
        await sleep(100);
      }
    })();
    try {
      await sleep(1000);
      assert.ok(!conn.closed && !conn.ended, 'the slow client should not be cut off before the timeout');
      const t0 = Date.now();
      assert.equal(await probeStatus(srv.port, '/system_stats', 2000), 200, 'another client gets 200 meanwhile');
      assert.ok(Date.now() - t0 < 1500, 'and promptly');
      const closed = await conn.waitClosed(7000 - (Date.now() - started));
      const elapsed = Date.now() - started;
      assert.ok(closed, `the slow client was still connected after ${elapsed} ms (header timeout 2 s)`);
      assert.ok(elapsed >= 1500, `closed after only ${elapsed} ms`);
      // If the server answered anything before closing, it must not be a 200.
      const text = conn.buffer().toString('latin1');
      assert.ok(!/^HTTP\/1\.1 200/.test(text), `slow client got a 200: ${text.slice(0, 100)}`);
    } finally {
      dripping = false;
      conn.destroy();
      await drip;
    }
    assert.equal(await probeStatus(srv.port), 200);
  });

  test('a connection that sends nothing at all is closed by a timeout', T, async () => {
    const conn = await RawConn.open(srv.port);
    const started = Date.now();
    try {
      const closed = await conn.waitClosed(9000);
      assert.ok(closed, 'a silent connection must be closed within the header (2 s) or idle (5 s) timeout');
      assert.ok(Date.now() - started >= 1500, 'but not at once');
    } finally {
      conn.destroy();
    }
  });

  test('a partial second request on a keep-alive connection is cut off by the header timeout', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({ path: '/features', port: srv.port }));
      assert.equal((await conn.readResponse()).status, 200);
      const started = Date.now();
      await conn.write('GET /features HTTP/1.1\r\nHost: x\r\n');
      const closed = await conn.waitClosed(6000);
      assert.ok(closed, 'incomplete headers must not keep the connection beyond ~2 s');
      assert.ok(Date.now() - started < 6000);
    } finally {
      conn.destroy();
    }
  });

  test('an idle keep-alive connection stays open past the header timeout and is closed by the idle timeout', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(buildRequest({ path: '/features', port: srv.port }));
      const res = await conn.readResponse();
      assert.equal(res.status, 200);
      assert.notEqual((res.headers.connection || '').toLowerCase(), 'close');
      await sleep(3000);
      assert.ok(!conn.closed && !conn.ended, 'closed after 3 s idle although --idle-timeout is 5');
      // Still usable.
      await conn.write(buildRequest({ path: '/features', port: srv.port }));
      assert.equal((await conn.readResponse()).status, 200);
      const idle2 = Date.now();
      const closed = await conn.waitClosed(9000);
      assert.ok(closed, 'an idle keep-alive connection must be closed by --idle-timeout 5');
      const waited = Date.now() - idle2;
      assert.ok(waited >= 3500, `closed after ${waited} ms idle, before the 5 s idle timeout`);
    } finally {
      conn.destroy();
    }
  });
});
