// WebSocket /ws (§4.1, §4.4): greeting, sid rules, feature_flags, ping/pong, fragmentation,
// close handshake, and clients that misbehave (never read, flood pings).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, withServer, sleep, probeStatus, rssBytes } from './lib/server.mjs';
import { RawWs, OP, closePayload } from './lib/ws-raw.mjs';

const T = { timeout: 30000 };
const FEATURES = '{"supports_preview_metadata": true, "max_upload_size": 104857600}';
const status = (sid) => `{"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "${sid}"}}`;

/** Opens a `ws` client and resolves with it and a queue of received messages. */
function open(port, path, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false, ...opts });
    const messages = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      const m = { data: isBinary ? data : data.toString('utf8'), isBinary };
      const w = waiters.shift();
      if (w) w(m); else messages.push(m);
    });
    ws.once('open', () => resolve({
      ws,
      next(timeoutMs = 5000) {
        if (messages.length) return Promise.resolve(messages.shift());
        return new Promise((res, rej) => {
          const timer = setTimeout(() => { const i = waiters.indexOf(fn); if (i >= 0) waiters.splice(i, 1); rej(new Error('timed out waiting for a WebSocket message')); }, timeoutMs);
          const fn = (m) => { clearTimeout(timer); res(m); };
          waiters.push(fn);
        });
      },
      pending: () => messages.length,
    }));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
  });
}

function closed(ws) {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) resolve({ code: null, reason: '' });
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

describe('WebSocket', () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.stop(); });

  for (const prefix of ['', '/api']) {
    test(`${prefix}/ws?clientId=X greets with a status message carrying sid X`, T, async () => {
      const c = await open(srv.port, `${prefix}/ws?clientId=abc-123`);
      try {
        const m = await c.next();
        assert.equal(m.isBinary, false, 'status is a text frame');
        assert.equal(m.data, status('abc-123'));
      } finally {
        c.ws.terminate();
      }
    });

    test(`${prefix}/ws without clientId gets a fresh 32-hex sid`, T, async () => {
      const a = await open(srv.port, `${prefix}/ws`);
      const b = await open(srv.port, `${prefix}/ws`);
      try {
        const ma = JSON.parse((await a.next()).data);
        const mb = JSON.parse((await b.next()).data);
        for (const m of [ma, mb]) {
          assert.equal(m.type, 'status');
          assert.deepEqual(m.data.status, { exec_info: { queue_remaining: 0 } });
          assert.match(m.data.sid, /^[0-9a-f]{32}$/);
        }
        assert.notEqual(ma.data.sid, mb.data.sid, 'each connection gets its own sid');
      } finally {
        a.ws.terminate();
        b.ws.terminate();
      }
    });
  }

  test('an empty clientId is treated as absent', T, async () => {
    const c = await open(srv.port, '/ws?clientId=');
    try {
      const m = JSON.parse((await c.next()).data);
      assert.match(m.data.sid, /^[0-9a-f]{32}$/);
    } finally {
      c.ws.terminate();
    }
  });

  test('a percent-encoded clientId is decoded and JSON-escaped in the greeting', T, async () => {
    const c = await open(srv.port, '/ws?clientId=' + encodeURIComponent('a b"\\é'));
    try {
      const m = await c.next();
      assert.equal(m.data, status('a b\\"\\\\\\u00e9'));
      assert.equal(JSON.parse(m.data).data.sid, 'a b"\\é');
    } finally {
      c.ws.terminate();
    }
  });

  test('a first feature_flags message gets the server features in reply', T, async () => {
    const c = await open(srv.port, '/ws?clientId=ff');
    try {
      await c.next();
      c.ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
      const m = await c.next();
      assert.equal(m.data, `{"type": "feature_flags", "data": ${FEATURES}}`);
    } finally {
      c.ws.terminate();
    }
  });

  test('feature_flags is only answered as the first client message', T, async () => {
    const c = await open(srv.port, '/ws?clientId=ff2');
    try {
      await c.next();
      c.ws.send(JSON.stringify({ type: 'hello', data: {} }));
      c.ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
      // A ping after both: once its pong is back the server has read both messages.
      await new Promise((resolve) => { c.ws.once('pong', resolve); c.ws.ping('sync'); });
      await sleep(300);
      assert.equal(c.pending(), 0, 'no reply to a feature_flags message that is not the first');
    } finally {
      c.ws.terminate();
    }
  });

  test('invalid JSON from the client is ignored; the socket stays usable', T, async () => {
    const c = await open(srv.port, '/ws?clientId=bad');
    try {
      await c.next();
      c.ws.send('{not json');
      c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      const payload = await new Promise((resolve) => { c.ws.once('pong', resolve); c.ws.ping('still-there'); });
      assert.equal(payload.toString(), 'still-there');
      assert.equal(c.ws.readyState, WebSocket.OPEN);
    } finally {
      c.ws.terminate();
    }
  });

  test('ping is answered with a pong carrying the same payload', T, async () => {
    const c = await open(srv.port, '/ws?clientId=pp');
    try {
      await c.next();
      for (const p of ['', 'x', 'a'.repeat(125)]) {
        const payload = await new Promise((resolve) => { c.ws.once('pong', resolve); c.ws.ping(p); });
        assert.equal(payload.toString(), p);
      }
    } finally {
      c.ws.terminate();
    }
  });

  test('close handshake: the server echoes the close code', T, async () => {
    const c = await open(srv.port, '/ws?clientId=cl');
    await c.next();
    const done = closed(c.ws);
    c.ws.close(4321, 'bye');
    const { code } = await done;
    assert.equal(code, 4321);
  });

  test('close handshake on raw frames: close frame echoed, then TCP closed by the server', T, async () => {
    const ws = await RawWs.connect(srv.port, '/ws?clientId=rawclose');
    try {
      const greet = await ws.readMessage();
      assert.equal(greet.text, status('rawclose'));
      await ws.send(OP.CLOSE, closePayload(1000, 'done'));
      const f = await ws.readFrame();
      assert.equal(f.opcode, OP.CLOSE);
      assert.ok(f.payload.length >= 2, 'close frame carries a code');
      assert.equal(f.payload.readUInt16BE(0), 1000);
      assert.ok(await ws.conn.waitClosed(5000), 'server closes the TCP connection after the close handshake');
    } finally {
      ws.destroy();
    }
  });

  test('a fragmented first message (with a ping between fragments) is reassembled', T, async () => {
    const ws = await RawWs.connect(srv.port, '/ws?clientId=frag');
    try {
      assert.equal((await ws.readMessage()).text, status('frag'));
      const text = JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: false } });
      const a = text.slice(0, 10), b = text.slice(10, 25), c = text.slice(25);
      await ws.send(OP.TEXT, a, { fin: false });
      await ws.send(OP.PING, 'mid');
      await ws.send(OP.CONT, b, { fin: false });
      await ws.send(OP.CONT, c, { fin: true });
      const controls = [];
      const m = await ws.readMessage(5000, (f) => controls.push(f));
      assert.equal(m.text, `{"type": "feature_flags", "data": ${FEATURES}}`);
      assert.ok(controls.some((f) => f.opcode === OP.PONG && f.text === 'mid'), 'the ping between fragments is answered');
    } finally {
      ws.destroy();
    }
  });

  test('a protocol violation (unmasked client frame) closes the connection; the server lives on', T, async () => {
    const ws = await RawWs.connect(srv.port, '/ws?clientId=viol');
    try {
      await ws.readMessage();
      await ws.send(OP.TEXT, 'unmasked', { mask: false });
      assert.ok(await ws.conn.waitClosed(5000), 'connection must be closed after an unmasked frame');
    } finally {
      ws.destroy();
    }
    assert.equal(await probeStatus(srv.port), 200);
  });

  test('GET /ws without an upgrade is 400; an unsupported WebSocket version is refused', T, async () => {
    const { request } = await import('./lib/http.mjs');
    for (const p of ['/ws', '/api/ws?clientId=x']) {
      const res = await request(srv.port, { path: p });
      assert.equal(res.status, 400, `plain GET ${p}`);
    }
    await assert.rejects(RawWs.connect(srv.port, '/ws', { headers: { 'Sec-WebSocket-Version': '8' } }), /status (400|426)/);
    assert.equal(await probeStatus(srv.port), 200);
  });

  test('a message of 3 MiB is accepted; one beyond 4 MiB closes the connection (1009)', T, async () => {
    const ws = await RawWs.connect(srv.port, '/ws?clientId=big');
    try {
      await ws.readMessage();
      await ws.send(OP.TEXT, Buffer.alloc(3 * 1024 * 1024, 0x20));
      await ws.send(OP.PING, 'after-3MiB');
      const pong = await ws.readFrame(10000);
      assert.equal(pong.opcode, OP.PONG);
      assert.equal(pong.text, 'after-3MiB');
      // 5 MiB in fragments: the reassembled message is what counts.
      const piece = Buffer.alloc(1024 * 1024, 0x20);
      let closedEarly = false;
      for (let i = 0; i < 5 && !closedEarly; i++) {
        try {
          await ws.send(i === 0 ? OP.TEXT : OP.CONT, piece, { fin: i === 4 });
        } catch {
          closedEarly = true;
        }
      }
      const deadline = Date.now() + 5000;
      let closeCode = null;
      while (Date.now() < deadline) {
        let f;
        try { f = await ws.readFrame(Math.max(1, deadline - Date.now())); } catch { break; }
        if (f.opcode === OP.CLOSE) { closeCode = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005; break; }
      }
      if (closeCode !== null) assert.equal(closeCode, 1009, 'close code for a message that is too big');
      assert.ok(await ws.conn.waitClosed(5000), 'connection must be closed after a message beyond 4 MiB');
    } finally {
      ws.destroy();
    }
    assert.equal(await probeStatus(srv.port), 200);
  });

  test('a WebSocket client that never reads does not break the server', T, async () => {
    const ws = await RawWs.connect(srv.port, '/ws?clientId=lazy');
    try {
      ws.conn.sock.pause(); // never read again
      // It holds its connection; others still connect, get greeted, and HTTP still works.
      const c = await open(srv.port, '/ws?clientId=other');
      assert.equal((await c.next()).data, status('other'));
      c.ws.terminate();
      assert.equal(await probeStatus(srv.port), 200);
    } finally {
      ws.destroy();
    }
  });

});

describe('WebSocket clients that never read (a fresh server each)', () => {
  for (const payloadLen of [125, 0]) {
    const env = { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0'}:quarantine_size_mb=16` };
    test(`a flood of ${payloadLen}-byte pings from a client that never reads: memory stays bounded, server responsive`, { timeout: 60000 }, (t) => withServer({ env }, async (srv) => {
      const r = await pingFlood(srv, payloadLen);
      t.diagnostic(`sent ${r.sent} bytes of pings, stalled=${r.stalled}, dropped=${r.dropped}, RSS ${mb(r.before)} -> peak ${mb(r.peak)} MB`);
      assert.ok(r.peak < RSS_LIMIT, `server RSS reached ${mb(r.peak)} MB after ${mb(r.sent)} MB of ${payloadLen}-byte pings from a client that reads nothing (start ${mb(r.before)} MB); the pongs must be bounded (back-pressure or dropping the client)`);
      assert.equal(r.statusDuring, 200, 'server responsive during the flood');
      await sleep(200);
      assert.equal(await probeStatus(srv.port), 200);
    }));
  }
});

const RSS_LIMIT = 200 * 1024 * 1024;
const mb = (n) => Math.round(n / 1048576);

/**
 * Opens a WebSocket, stops reading it, and writes ping frames (masked with a zero key, which is
 * valid and leaves the payload as is) until the server stops reading (back-pressure), drops the
 * connection, 64 MB were sent, 20 s passed, or the server's RSS passed RSS_LIMIT + 50 MB (then
 * the flood stops so that the machine is not put at risk).
 */
async function pingFlood(srv, payloadLen) {
  const ws = await RawWs.connect(srv.port, `/ws?clientId=flood${payloadLen}`);
  const sock = ws.conn.sock;
  const before = rssBytes(srv.pid);
  let peak = before, sent = 0, stalled = false, statusDuring = 0;
  try {
    await ws.readMessage();
    sock.pause(); // never read again: pongs pile up on the server's side
    const one = Buffer.concat([Buffer.from([0x89, 0x80 | payloadLen, 0, 0, 0, 0]), Buffer.alloc(payloadLen, 0x70)]);
    const batch = Buffer.concat(Array.from({ length: Math.ceil(65536 / one.length) }, () => one));
    const deadline = Date.now() + 20000;
    while (sent < 64 * 1048576 && Date.now() < deadline && !sock.destroyed) {
      const ok = sock.write(batch);
      sent += batch.length;
      peak = Math.max(peak, rssBytes(srv.pid));
      if (peak > RSS_LIMIT + 50 * 1048576) break;
      if (!ok) {
        const drained = await Promise.race([
          new Promise((r) => sock.once('drain', () => r(true))),
          sleep(2000).then(() => false),
        ]);
        if (!drained) { stalled = true; break; }
      }
    }
    peak = Math.max(peak, rssBytes(srv.pid));
    statusDuring = await probeStatus(srv.port, '/system_stats', 3000);
    return { sent, stalled, dropped: sock.destroyed, before, peak, statusDuring };
  } finally {
    ws.destroy();
  }
}
