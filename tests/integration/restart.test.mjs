// POST /api/server/restart: 202 first, then the server stops gracefully and runs again in
// place (same arguments, same port, same pid), with its state on disk intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startServer, sleep } from './lib/server.mjs';

test('restart in place answers 202 and comes back on the same port', { timeout: 60000 }, async () => {
  const srv = await startServer();
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    const p = await fetch(`${base}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: {
      '1': { class_type: 'PrimitiveInt', inputs: { value: 3 } },
      '2': { class_type: 'PreviewAny', inputs: { source: ['1', 0] } } } }) });
    const { prompt_id } = await p.json();
    for (let i = 0; i < 100 && !(await (await fetch(`${base}/history/${prompt_id}`)).json())[prompt_id]; i++) await sleep(50);
    const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/ws?clientId=r`);
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    const closed = new Promise((res) => ws.on('close', (code) => res(code)));
    const r = await fetch(`${base}/api/server/restart`, { method: 'POST' });
    assert.equal(r.status, 202);
    assert.equal(await closed, 1001, 'WebSocket clients are told the server is going away');
    let back = false;
    for (let i = 0; i < 200 && !back; i++) {
      try { back = (await fetch(`${base}/system_stats`)).status === 200; } catch { await sleep(50); }
    }
    assert.ok(back, 'the server answers again on the same port');
    assert.equal(srv.exitInfo, null, 'same process: it never exited');
    assert.equal((srv.stderr().match(/comfyd [0-9.]+ \(ComfyUI API [0-9.]+\) starting/g) || []).length, 2);
    assert.ok((await (await fetch(`${base}/history/${prompt_id}`)).json())[prompt_id], 'history survived');
  } finally {
    await srv.stop();
  }
});
