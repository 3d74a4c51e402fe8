// bench/engine: the engine over HTTP + WebSocket, as a client sees it. For each workload, the
// time from POST /prompt to the final `executing` with node null, and the WebSocket bytes the
// client received. Prints a table; exits non-zero only when it could not measure.
//
//   node bench/engine/run.mjs            (COMFYD_BIN, default build/release/comfyd)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const require = createRequire(join(repo, 'tests', 'integration', 'package.json'));
const WebSocket = require('ws');
const bin = process.env.COMFYD_BIN || join(repo, 'build', 'release', 'comfyd');
const REPEAT = Math.max(1, Number(process.env.BENCH_REPEAT || 8));

const freePort = () => new Promise((res, rej) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  s.on('error', rej);
});

// seed: the first node's value, so that every round is a prompt the server has never seen (no
// cached results, no remembered request body) and measures a true first run.
function chain(n, seed = 1) {
  const p = { '0': { class_type: 'PrimitiveInt', inputs: { value: seed } } };
  for (let i = 1; i < n; i++) p[String(i)] = { class_type: 'IntAdd', inputs: { a: [String(i - 1), 0], b: 1 } };
  p.out = { class_type: 'PreviewAny', inputs: { source: [String(n - 1), 0] } };
  return p;
}
function pairs(n) {
  const p = {};
  for (let i = 0; i < n; i++) {
    p[`v${i}`] = { class_type: 'PrimitiveInt', inputs: { value: i } };
    p[`o${i}`] = { class_type: 'PreviewAny', inputs: { source: [`v${i}`, 0] } };
  }
  return p;
}

async function main() {
  const port = await freePort();
  const base = mkdtempSync(join(tmpdir(), 'comfyd-bench-'));
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1', '--port', String(port), '--base-directory', base,
    '--verbose', 'WARNING'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const spawnFailed = new Promise((_, rej) => child.on('error', (e) => rej(new Error(`cannot start ${bin}: ${e.message} (make release)`))));
  spawnFailed.catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      await Promise.race([spawnFailed, Promise.resolve()]);
      try { if ((await fetch(`${url}/system_stats`)).ok) break; } catch {}
      if (i > 200) throw new Error('comfyd did not start');
      await new Promise(r => setTimeout(r, 50));
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=bench`);
    let bytes = 0, waiter = null;
    const finished = new Set();
    ws.on('message', (data, isBinary) => {
      bytes += data.length;
      if (isBinary) return;
      const m = JSON.parse(data.toString());
      if (m.type !== 'executing' || m.data.node !== null) return;
      // a fully cached prompt can finish before its POST reply has been read
      finished.add(m.data.prompt_id);
      if (waiter && m.data.prompt_id === waiter.id) waiter.done();
    });
    await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
    await new Promise(r => setTimeout(r, 100));

    async function run(prompt) {
      const body = JSON.stringify({ prompt, client_id: 'bench' });
      bytes = 0;
      const t0 = performance.now();
      const r = await fetch(`${url}/prompt`, { method: 'POST', body });
      const j = await r.json();
      if (r.status !== 200) throw new Error(`POST /prompt: ${r.status} ${JSON.stringify(j).slice(0, 300)}`);
      if (!finished.has(j.prompt_id)) await new Promise(res => { waiter = { id: j.prompt_id, done: res }; });
      return { ms: performance.now() - t0, bytes, size: body.length };
    }
    const rows = [];
    let chain5k = null;
    for (const n of [100, 1000, 5000, 100000]) {
      // the best of REPEAT rounds, each with a prompt new to the server: on a shared machine a
      // single round mostly measures what else runs at the time, and the first rounds of a
      // fresh process also pay for growing its heap to the prompt's size
      let first = null, again = null;
      for (let round = 0; round < (n > 5000 ? 1 : REPEAT); round++) {
        const p = chain(n, 1000 + round);
        const f = await run(p), a = await run(p);
        if (!first || f.ms < first.ms) first = f;
        if (!again || a.ms < again.ms) again = a;
      }
      rows.push([`chain of ${n}`, first.ms, again.ms, first.bytes, (first.bytes / (n + 1)).toFixed(1)]);
      if (n === 5000) chain5k = [first.ms, again.ms];
    }
    const pr = await run(pairs(5000));
    rows.push(['5,000 independent pairs', pr.ms, NaN, pr.bytes, (pr.bytes / 10000).toFixed(1)]);
    // validation alone: a 5,000 chain whose next-to-last node has an input that is not a number
    // is rejected with node_errors after the whole chain was validated (best of REPEAT)
    let vms = Infinity, vstatus = 0;
    for (let round = 0; round < REPEAT; round++) {
      const bad = chain(5000, 2000 + round);
      bad['4998'].inputs.b = 'not a number';
      const t0 = performance.now();
      const vr = await fetch(`${url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt: bad }) });
      await vr.text();
      vms = Math.min(vms, performance.now() - t0);
      vstatus = vr.status;
    }

    console.log('workload                   first run ms   cached ms   ws bytes   bytes/node');
    for (const [name, a, b, c, d] of rows)
      console.log(`${name.padEnd(26)} ${a.toFixed(1).padStart(12)} ${isNaN(b) ? '         -' : b.toFixed(1).padStart(11)} ${String(c).padStart(10)} ${String(d).padStart(12)}`);
    console.log(`validation of the 5,000 chain (rejected, status ${vstatus}): ${vms.toFixed(1)} ms`);
    const met = (ok) => ok ? 'met' : 'not met';
    console.log(`targets: 5,000-chain < 50 ms (${chain5k[0].toFixed(1)} ms: ${met(chain5k[0] < 50)}); ` +
      `cached resubmission < 5 ms (${chain5k[1].toFixed(1)} ms: ${met(chain5k[1] < 5)}); WebSocket bytes linear in N`);
    console.log(`(best of ${REPEAT} rounds for chains up to 5,000 nodes; BENCH_REPEAT to change)`);
    console.log('for scale, ComfyUI 0.8.0 here: 100-chain 79 ms, 300-chain 1.5 s, no chain past ~960 nodes');
    ws.close();
  } finally {
    child.kill('SIGTERM');
    await new Promise(r => child.on('exit', r));
    rmSync(base, { recursive: true, force: true });
  }
}
main().catch(e => { console.error(`bench/engine: ${e.message}`); process.exit(1); });
