// bench/images: an image pipeline through the server against the same pipeline done by the
// `vips` command-line tool, in the same run; and the server's peak memory on a 16-image batch.
//
//   node bench/images/run.mjs          (COMFYD_BIN, default build/release/comfyd; BENCH_RUNS=3)
//
// Pipeline, on a 2048x2048 RGB PNG: load → scale by 0.5 (bilinear) → gaussian blur (sigma 1) →
// invert → save as PNG (zlib level 4, as SaveImage). comfyd: LoadImage → ImageScaleBy →
// ImageBlur → ImageInvert → SaveImage, timed from POST /prompt to the final `executing` with node
// null (caching off, so every run does the work). vips: `vips resize`, `gaussblur`, `invert`,
// `pngsave`, one command each through .v files, timed end to end. Target: comfyd within 1.3x.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync } from 'node:fs';
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
const RUNS = Number(process.env.BENCH_RUNS || 3);
const SIZE = 2048;

const freePort = () => new Promise((res, rej) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
  s.on('error', rej);
});
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

function vips(...args) {
  execFileSync('vips', args, { stdio: ['ignore', 'ignore', 'inherit'] });
}

// A 2048x2048 RGB picture with detail everywhere (PNG compresses it like a photo, not like a
// flat colour): perlin noise in each band.
function makeInput(dir) {
  const bands = ['r', 'g', 'b'].map((b, i) => {
    vips('perlin', join(dir, `${b}.v`), String(SIZE), String(SIZE), '--cell-size', String(64 + 32 * i));
    vips('linear', join(dir, `${b}.v`), join(dir, `${b}8.v`), '127', '128', '--uchar');
    return join(dir, `${b}8.v`);
  });
  vips('bandjoin', bands.join(' '), join(dir, 'rgb.v'));
  vips('copy', join(dir, 'rgb.v'), join(dir, 'in.png[compression=4]'));
  return join(dir, 'in.png');
}

function vipsPipeline(dir, input) {
  const t0 = process.hrtime.bigint();
  vips('resize', input, join(dir, 's.v'), '0.5', '--kernel', 'linear');
  vips('gaussblur', join(dir, 's.v'), join(dir, 'b.v'), '1');
  vips('invert', join(dir, 'b.v'), join(dir, 'i.v'));
  vips('pngsave', join(dir, 'i.v'), join(dir, 'out.png'), '--compression', '4');
  return ms(t0);
}

async function startComfyd(base, extra = []) {
  const port = await freePort();
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1', '--port', String(port), '--base-directory', base,
    '--verbose', 'WARNING', ...extra], { stdio: ['ignore', 'ignore', 'inherit'] });
  const failed = new Promise((_, rej) => child.on('error', (e) => rej(new Error(`cannot start ${bin}: ${e.message} (make release)`))));
  failed.catch(() => {});
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    await Promise.race([failed, Promise.resolve()]);
    try { if ((await fetch(`${url}/system_stats`)).ok) break; } catch {}
    if (i > 200) throw new Error('comfyd did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=bench`);
  await new Promise((res, rej) => { ws.on('open', res); ws.on('error', rej); });
  let waiter = null;
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    const m = JSON.parse(data.toString());
    if (m.type === 'execution_error') waiter?.reject(new Error(m.data.exception_message));
    if (m.type === 'executing' && m.data.node === null && waiter && m.data.prompt_id === waiter.id) waiter.resolve();
  });
  return {
    child,
    async run(prompt) {
      const t0 = process.hrtime.bigint();
      const done = new Promise((resolve, reject) => { waiter = { resolve, reject }; });
      const r = await fetch(`${url}/prompt`, { method: 'POST', body: JSON.stringify({ prompt, client_id: 'bench' }) });
      const body = await r.json();
      if (r.status !== 200) throw new Error(`POST /prompt: ${JSON.stringify(body)}`);
      waiter.id = body.prompt_id;
      await done;
      return ms(t0);
    },
    peakKiB() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+)/.exec(status)[1]);
    },
    rssKiB() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
    },
    stop() { ws.close(); child.kill('SIGTERM'); return new Promise((r) => child.on('exit', r)); },
  };
}

const pipeline = (prefix) => ({
  1: { class_type: 'LoadImage', inputs: { image: 'in.png' } },
  2: { class_type: 'ImageScaleBy', inputs: { image: ['1', 0], upscale_method: 'bilinear', scale_by: 0.5 } },
  3: { class_type: 'ImageBlur', inputs: { image: ['2', 0], blur_radius: 3, sigma: 1.0 } },
  4: { class_type: 'ImageInvert', inputs: { image: ['3', 0] } },
  5: { class_type: 'SaveImage', inputs: { images: ['4', 0], filename_prefix: prefix } },
});

const batch16 = {
  1: { class_type: 'LoadImage', inputs: { image: 'in.png' } },
  2: { class_type: 'RepeatImageBatch', inputs: { image: ['1', 0], amount: 16 } },
  3: { class_type: 'ImageInvert', inputs: { image: ['2', 0] } },
  4: { class_type: 'SaveImage', inputs: { images: ['3', 0], filename_prefix: 'batch16' } },
};

async function main() {
  try { execFileSync('vips', ['--version'], { stdio: 'ignore' }); } catch {
    throw new Error('the vips command is missing (Debian package libvips-tools)');
  }
  const work = mkdtempSync(join(tmpdir(), 'comfyd-bench-images-'));
  const base = join(work, 'base');
  mkdirSync(join(base, 'input'), { recursive: true });
  try {
    const input = makeInput(work);
    vips('copy', input, join(base, 'input', 'in.png'));
    const refs = [], ours = [];
    const srv = await startComfyd(base, ['--cache-none']);
    try {
      await srv.run(pipeline('warm')); // first run: page cache, libvips start-up
      for (let i = 0; i < RUNS; i++) {
        refs.push(vipsPipeline(work, input));
        ours.push(await srv.run(pipeline(`run${i}`)));
      }
    } finally {
      await srv.stop();
    }
    const ref = median(refs), our = median(ours), ratio = our / ref;
    console.log(`bench/images: ${SIZE}x${SIZE} load → scale 0.5 → blur → invert → save PNG, median of ${RUNS}`);
    console.log(`  vips CLI (reference)   ${ref.toFixed(0).padStart(7)} ms`);
    console.log(`  comfyd (HTTP + WS)     ${our.toFixed(0).padStart(7)} ms   ratio ${ratio.toFixed(2)}  target ≤ 1.30: ${ratio <= 1.3 ? 'met' : 'NOT met'}`);

    const mem = await startComfyd(base, ['--cache-none']);
    try {
      const idle = mem.rssKiB();
      const t = await mem.run(batch16);
      const peak = mem.peakKiB();
      const tensorMiB = (16 * SIZE * SIZE * 3 * 4) / 1048576;
      console.log(`bench/images: 16 x ${SIZE}x${SIZE} batch (LoadImage → RepeatImageBatch 16 → ImageInvert → SaveImage), ${t.toFixed(0)} ms`);
      console.log(`  server peak RSS ${(peak / 1024).toFixed(0)} MiB (idle ${(idle / 1024).toFixed(0)} MiB); one float32 batch tensor is ${tensorMiB.toFixed(0)} MiB`);
    } finally {
      await mem.stop();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(`bench/images: ${e.message}`); process.exit(1); });
