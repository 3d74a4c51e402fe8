// Load and life-cycle: clients that pipeline and never read, 1,000 concurrent keep-alive
// connections, SIGKILL then an immediate restart on the same port, SIGTERM during a download.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startServer, withServer, sleep, probeStatus, rssBytes, HOST } from './lib/server.mjs';
import { RawConn, buildRequest } from './lib/http.mjs';

const MiB = 1024 * 1024;
const mb = (n) => Math.round(n / MiB);
const RSS_LIMIT = 200 * MiB;
const FEATURES = '{"supports_preview_metadata": true, "max_upload_size": 104857600}';
// ASan keeps freed memory in quarantine (256 MB by default), which would hide what the server
// itself holds; a small quarantine makes RSS mean what these tests measure.
const ASAN_SMALL_QUARANTINE = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0'}:quarantine_size_mb=16` };

/** Makes a client that writes `bytes` (pipelined requests) and never reads. */
async function nonReader(port, bytes) {
  const sock = net.connect({ host: HOST, port });
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.on('error', () => {});
  sock.pause(); // never read: responses pile up in the kernel, then on the server
  let written = 0;
  let stalled = false;
  const deadline = Date.now() + 10000;
  for (let off = 0; off < bytes.length && Date.now() < deadline && !sock.destroyed; off += 64 * 1024) {
    const part = bytes.subarray(off, off + 64 * 1024);
    written += part.length;
    if (!sock.write(part)) {
      const drained = await Promise.race([new Promise((r) => sock.once('drain', () => r(true))), sleep(1500).then(() => false)]);
      if (!drained) { stalled = true; break; }
    }
  }
  return { sock, written, stalled };
}

describe('clients that pipeline requests and never read the responses', () => {
  const file = crypto.randomBytes(256 * 1024);
  test('big static responses: 8 clients x 400 pipelined GETs of a 256 KB file', { timeout: 60000 }, (t) => withServer({ frontEnd: { 'chunk.bin': file }, env: ASAN_SMALL_QUARANTINE }, async (srv) => {
    const before = rssBytes(srv.pid);
    const one = buildRequest({ path: '/chunk.bin', port: srv.port });
    const clients = [];
    // 8 x 400 x 256 KB = 800 MB of responses if the server generated them all.
    for (let i = 0; i < 8; i++) clients.push(await nonReader(srv.port, Buffer.concat(Array(400).fill(one))));
    let peak = before;
    for (let i = 0; i < 30; i++) {
      await sleep(100);
      peak = Math.max(peak, rssBytes(srv.pid));
    }
    t.diagnostic(`RSS ${mb(before)} -> peak ${mb(peak)} MB`);
    try {
      const t0 = Date.now();
      assert.equal(await probeStatus(srv.port, '/system_stats', 3000), 200, 'another client is served');
      assert.ok(Date.now() - t0 < 2000, 'promptly');
      assert.ok(peak < RSS_LIMIT, `server RSS ${mb(peak)} MB (from ${mb(before)} MB) with clients that do not read`);
      // A well-behaved client downloading the same file meanwhile gets all of it.
      const conn = await RawConn.open(srv.port);
      try {
        await conn.write(buildRequest({ path: '/chunk.bin', port: srv.port }));
        const res = await conn.readResponse({ timeoutMs: 10000 });
        assert.equal(res.status, 200);
        assert.ok(Buffer.compare(res.body, file) === 0);
      } finally {
        conn.destroy();
      }
    } finally {
      for (const c of clients) c.sock.destroy();
    }
    await sleep(200);
    assert.equal(await probeStatus(srv.port), 200);
  }));

  test('small responses: 20,000 pipelined GET /system_stats, never read', { timeout: 60000 }, (t) => withServer({ env: ASAN_SMALL_QUARANTINE }, async (srv) => {
    const before = rssBytes(srv.pid);
    const one = buildRequest({ path: '/system_stats', port: srv.port });
    const c = await nonReader(srv.port, Buffer.concat(Array(20000).fill(one)));
    let peak = before;
    for (let i = 0; i < 20; i++) {
      await sleep(100);
      peak = Math.max(peak, rssBytes(srv.pid));
    }
    t.diagnostic(`wrote ${c.written} request bytes, stalled=${c.stalled}; RSS ${mb(before)} -> peak ${mb(peak)} MB`);
    try {
      assert.equal(await probeStatus(srv.port, '/system_stats', 3000), 200, 'another client is served');
      assert.ok(peak < RSS_LIMIT, `server RSS ${mb(peak)} MB (from ${mb(before)} MB)`);
    } finally {
      c.sock.destroy();
    }
    await sleep(200);
    assert.equal(await probeStatus(srv.port), 200);
  }));
});

describe('downloads abandoned midway', () => {
  // Larger than what the kernel buffers on loopback, so that the server's transfer ends up
  // waiting for the client to read (parked on back-pressure) when the client goes away.
  const file = Buffer.alloc(32 * MiB, 0x5a);
  const fdCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).length;

  test('20 clients that stop reading a large download and then disconnect leak no file descriptors', { timeout: 60000 }, (t) => withServer({ frontEnd: { 'big.bin': file } }, async (srv) => {
    // Warm up (lazy allocations, log files) before counting.
    const warm = await RawConn.open(srv.port);
    await warm.write(buildRequest({ path: '/big.bin', port: srv.port }));
    await warm.readResponse({ timeoutMs: 10000 });
    warm.destroy();
    await sleep(300);
    const before = fdCount(srv.pid);
    const N = 20;
    for (let i = 0; i < N; i++) {
      const c = await RawConn.open(srv.port);
      await c.write(buildRequest({ path: '/big.bin', port: srv.port }));
      await c.waitBytes(64 * 1024, 10000); // the transfer is under way
      c.sock.pause(); // stop reading: the kernel buffers fill and the server has to wait
      await sleep(250);
      c.destroy();
    }
    let after = fdCount(srv.pid);
    for (let i = 0; i < 20 && after > before + 2; i++) {
      await sleep(100);
      after = fdCount(srv.pid);
    }
    t.diagnostic(`server fds: ${before} before, ${after} after ${N} abandoned downloads`);
    assert.ok(after <= before + 2, `server holds ${after - before} more file descriptors after ${N} abandoned downloads (${before} -> ${after})`);
    assert.equal(await probeStatus(srv.port), 200);
  }));
});

describe('1,000 concurrent keep-alive connections', () => {
  test('each of 1,000 connections sends 2 requests on its socket; all succeed', { timeout: 120000 }, (t) => withServer({}, async (srv) => {
    const N = 1000;
    const conns = [];
    try {
      // Connect in waves so that the listen backlog never overflows (SYN retries take seconds).
      for (let i = 0; i < N; i += 100) {
        const wave = await Promise.all(Array.from({ length: Math.min(100, N - i) }, () => RawConn.open(srv.port, { timeoutMs: 10000 })));
        conns.push(...wave);
      }
      assert.equal(conns.length, N);
      const t0 = Date.now();
      const results = await Promise.all(conns.map(async (c, i) => {
        const paths = i % 2 ? ['/features', '/api/features'] : ['/api/features', '/features'];
        for (const p of paths) {
          await c.write(buildRequest({ path: p, port: srv.port }));
          const res = await c.readResponse({ timeoutMs: 30000 });
          if (res.status !== 200 || res.text !== FEATURES) return `conn ${i} ${p}: ${res.status} ${res.text.slice(0, 60)}`;
          if ((res.headers.connection || '').toLowerCase() === 'close') return `conn ${i} ${p}: Connection: close`;
        }
        if (c.closed || c.ended) return `conn ${i}: closed by the server`;
        return null;
      }));
      t.diagnostic(`2,000 requests on 1,000 connections in ${Date.now() - t0} ms`);
      const failures = results.filter(Boolean);
      assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${N} connections failed`);
      assert.equal(await probeStatus(srv.port), 200);
    } finally {
      for (const c of conns) c.destroy();
    }
  }));
});

/** Local-port sockets in TIME_WAIT (state 06) for port, from /proc/net/tcp. */
function timeWaitCount(port) {
  try {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[1]?.endsWith(':' + hex) && f[3] === '06';
    }).length;
  } catch {
    return -1;
  }
}

describe('life cycle', () => {
  test('SIGKILL, then a new instance binds the same port at once', { timeout: 60000 }, async (t) => {
    const first = await startServer();
    let second;
    const conns = [];
    try {
      // Live connections at the moment of the kill leave the port's sockets in TIME_WAIT on the
      // server side; only SO_REUSEADDR lets a new listener bind then.
      for (let i = 0; i < 5; i++) {
        const c = await RawConn.open(first.port);
        await c.write(buildRequest({ path: '/features', port: first.port }));
        assert.equal((await c.readResponse()).status, 200);
        conns.push(c);
      }
      await first.kill();
      assert.equal(first.exitInfo.signal, 'SIGKILL');
      await Promise.all(conns.map((c) => c.waitClosed(2000)));
      t.diagnostic(`${timeWaitCount(first.port)} sockets in TIME_WAIT on port ${first.port} at restart`);
      second = await startServer({ port: first.port, baseDir: first.baseDir, readyTimeoutMs: 10000 });
      assert.equal(second.port, first.port);
      const res = await RawConn.open(second.port).then(async (c) => {
        try {
          await c.write(buildRequest({ path: '/features', port: second.port }));
          return await c.readResponse();
        } finally { c.destroy(); }
      });
      assert.equal(res.text, FEATURES);
    } finally {
      for (const c of conns) c.destroy();
      await first.kill();
      if (second) await second.stop();
      await first.removeBase();
    }
  });

  test('SIGTERM during a slow 50 MB static download: the download finishes, then exit 0', { timeout: 90000 }, async (t) => {
    const size = 50 * MiB;
    const srv = await startServer({ frontEnd: true });
    let sock;
    try {
      // The file, written in 1 MiB random blocks, with its hash.
      const want = crypto.createHash('sha256');
      const fd = fs.openSync(path.join(srv.frontEndRoot, 'big50.bin'), 'w');
      for (let i = 0; i < 50; i++) {
        const block = crypto.randomBytes(MiB);
        want.update(block);
        fs.writeSync(fd, block);
      }
      fs.closeSync(fd);
      const wantHash = want.digest('hex');

      sock = net.connect({ host: HOST, port: srv.port });
      await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
      let head = null;
      let headBuf = Buffer.alloc(0);
      let got = 0;
      const hash = crypto.createHash('sha256');
      let budget = 256 * 1024; // bytes we may take until the next tick: ~5 MB/s
      let finished;
      const done = new Promise((resolve, reject) => {
        finished = resolve;
        sock.on('error', reject);
        sock.on('close', () => resolve('closed'));
      });
      const onBody = (b) => { got += b.length; hash.update(b); if (got >= size) finished('complete'); };
      sock.on('data', (d) => {
        if (!head) {
          headBuf = Buffer.concat([headBuf, d]);
          const i = headBuf.indexOf('\r\n\r\n');
          if (i < 0) return;
          head = headBuf.subarray(0, i).toString('latin1');
          d = headBuf.subarray(i + 4);
        }
        onBody(d);
        budget -= d.length;
        if (budget <= 0) sock.pause();
      });
      const ticker = setInterval(() => { budget = 256 * 1024; if (sock.isPaused()) sock.resume(); }, 50);
      sock.write(buildRequest({ path: '/big50.bin', port: srv.port }));

      // Let the download start, then ask the server to stop.
      while (got < 2 * MiB) await sleep(20);
      assert.match(head, /^HTTP\/1\.1 200/);
      assert.match(head, new RegExp(`\\r\\ncontent-length: ${size}\\r?$`, 'im'));
      srv.child.kill('SIGTERM');
      const termAt = got;
      await sleep(1000);
      assert.equal(srv.exitInfo, null, 'the server must not exit while a response is in flight');

      const how = await done;
      clearInterval(ticker);
      t.diagnostic(`SIGTERM at ${mb(termAt)} MB; download ${how} with ${got} bytes`);
      assert.equal(got, size, `download ${how} after ${got} of ${size} bytes`);
      assert.equal(hash.digest('hex'), wantHash, 'downloaded bytes differ from the file');
    } finally {
      sock?.destroy();
      await srv.stop({ signalled: true, timeoutMs: 40000 });
    }
  });

  test('SIGTERM with idle keep-alive and WebSocket connections open exits 0 promptly', { timeout: 30000 }, async () => {
    const srv = await startServer();
    const conns = [];
    try {
      for (let i = 0; i < 3; i++) {
        const c = await RawConn.open(srv.port);
        await c.write(buildRequest({ path: '/features', port: srv.port }));
        await c.readResponse();
        conns.push(c);
      }
      const { RawWs } = await import('./lib/ws-raw.mjs');
      const ws = await RawWs.connect(srv.port, '/ws?clientId=term');
      await ws.readMessage();
      conns.push(ws.conn);
      const t0 = Date.now();
      srv.child.kill('SIGTERM');
      const info = await srv.waitExit(10000);
      assert.ok(info, 'did not exit within 10 s of SIGTERM with only idle connections');
      assert.ok(Date.now() - t0 < 10000);
      assert.equal(info.code, 0);
    } finally {
      for (const c of conns) c.destroy();
      await srv.stop({ signalled: true });
    }
  });
});
