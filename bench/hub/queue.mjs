// The hub's admission queue (issue #13), side by side with Redis in one run.
//
// 1. Enqueue: USERS users (each with a project and its own `comfyd serve` instance) submit
//    PER_USER prompts each through the hub's proxy (POST /comfyui/{user}/{project}/prompt), all
//    users at once, each waiting for its answer before the next (as an SDK does). Every answer
//    means the prompt was validated by its instance and is on disk (the store's group commit).
//    Reference: the same loop (USERS connections, PER_USER prompts each, RPUSH + SET as in seed
//    003's plan, pipelined in one round trip) against Debian's redis-server, once as it ships
//    (no fsync) and once with appendfsync always (durable like the hub).
// 2. Memory: the hub's RSS with the prompts waiting.
// 3. Dispatch delay: with COMFY_MAX_CONCURRENT=1, the time from one prompt's execution_success
//    to the next prompt's execution_start, both as the instances stamp them (the slot frees, the
//    hub learns it, picks the next prompt and sends it to its instance), over DRAIN prompts.
// All three for the hub's store on SQLite (its default), on PostgreSQL (a throw-away server
// from tests/pg/start.sh, when Debian's postgresql is installed) with one hub, and with two hubs
// on that database (half the users open their instance and send their prompts through each;
// the store's dispatch keeps the one limit across both), in the same run.
// Targets: enqueue >= 5,000/s durable, dispatch delay p99 < 5 ms.
// Not a pass/fail test: it exits non-zero only when it could not measure.
//
// Env: COMFYD_BIN (default build/release/comfyd), BENCH_USERS (100), BENCH_PER_USER (100),
//      BENCH_DRAIN (2000), BENCH_STORES (sqlite,postgres,postgres2,redis: the columns to measure),
//      REDIS_SERVER (default redis-server on PATH; skipped when absent).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..', '..');
const require = createRequire(path.join(repo, 'tests', 'integration', 'package.json'));
const WebSocket = require('ws');
const BIN = process.env.COMFYD_BIN || path.join(repo, 'build', 'release', 'comfyd');
const USERS = Number(process.env.BENCH_USERS || 100);
const PER_USER = Number(process.env.BENCH_PER_USER || 100);
const DRAIN = Number(process.env.BENCH_DRAIN || 2000);
const STORES = (process.env.BENCH_STORES || 'sqlite,postgres,postgres2,redis').split(',');
const HOST = '127.0.0.1';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const freePort = () => new Promise((res, rej) => {
  const s = net.createServer().listen(0, HOST, () => { const p = s.address().port; s.close(() => res(p)); });
  s.on('error', rej);
});

/** The first port of the kernel's ephemeral range (outgoing connections take their local ports there). */
function ephemeralStart() {
  try { return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768; } catch { return 32768; }
}

/** n consecutive free ports below the ephemeral range: there, one of the hub's thousands of
 * outgoing connections could take an instance's port between the hub's check and its bind. */
async function freeRange(n) {
  const top = ephemeralStart() - n;
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = 20000 + Math.floor(Math.random() * Math.max(1, top - 20000));
    const ok = await Promise.all(Array.from({ length: n }, (_, i) => new Promise((res) => {
      const s = net.createServer().listen(first + i, HOST, () => s.close(() => res(true)));
      s.on('error', () => res(false));
    })));
    if (ok.every(Boolean)) return first;
  }
  throw new Error('no free port range');
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** CPU time a process has used (user + system), in ms. */
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in ticks of 1/100 s
}

/** The pids of a process's children (a hub's local instances). */
function childrenOf(pids) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
      if (pids.includes(ppid)) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

/** The machine's idle (and I/O wait) time so far, in ms over all CPUs. */
function machineIdleMs() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return ((f[3] + f[4]) * 1000) / 100; // idle, iowait in ticks of 1/100 s
}

function rssKiB(pid, field = 'VmRSS') {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** A small prompt, different per seed (nothing cached). */
function prompt(seed) {
  return {
    1: { class_type: 'PrimitiveInt', inputs: { value: seed } },
    2: { class_type: 'IntAdd', inputs: { a: ['1', 0], b: 1 } },
    3: { class_type: 'PreviewAny', inputs: { source: ['2', 0] } },
  };
}

/** The text of { prompt: prompt(seed), client_id } (the same bytes, without JSON.stringify's walk). */
function promptBody(seed, clientId) {
  return `{"prompt":{"1":{"class_type":"PrimitiveInt","inputs":{"value":${seed}}},"2":{"class_type":"IntAdd",` +
    `"inputs":{"a":["1",0],"b":1}},"3":{"class_type":"PreviewAny","inputs":{"source":["2",0]}}},` +
    `"client_id":${JSON.stringify(clientId)}}`;
}
if (promptBody(7, 'c') !== JSON.stringify({ prompt: prompt(7), client_id: 'c' })) throw new Error('promptBody differs from prompt()');

// node:http with a keep-alive agent: Node's fetch, at a few dozen requests in flight, is slower
// than the servers measured here (seen: 180 requests/s where this client does 2,400).
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

class Api {
  constructor(base) { this.base = new URL(base); this.cookie = null; }
  req(method, p, body) {
    const data = body === undefined ? null : JSON.stringify(body);
    const headers = { 'content-type': 'application/json' };
    if (data !== null) headers['content-length'] = Buffer.byteLength(data);
    if (this.cookie) headers.cookie = this.cookie;
    return new Promise((resolve, reject) => {
      const r = http.request({ host: this.base.hostname, port: this.base.port, path: p, method, headers, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { text += d; });
        res.on('end', () => {
          const m = /comfyd_session=([^;]+)/.exec(String(res.headers['set-cookie'] || ''));
          if (m) this.cookie = `comfyd_session=${m[1]}`;
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, body: json, text });
        });
      });
      r.on('error', reject);
      r.end(data ?? undefined);
    });
  }
}

/**
 * One keep-alive connection sending a request at a time and reading its answer, on a raw socket:
 * the load generator shares the machine's cores with the hub and its instances, and Node's http
 * client costs about three times as much CPU per request as this (as the Redis loop, it writes
 * the protocol's bytes itself). Answers must carry Content-Length (the hub's do).
 */
class RawHttp {
  constructor(base, cookie) {
    this.url = new URL(base);
    this.cookie = cookie;
    this.socket = null;
    this.pending = null;
    this.data = Buffer.alloc(0);
  }
  connect() {
    return new Promise((resolve, reject) => {
      this.socket = net.connect(Number(this.url.port), this.url.hostname, resolve);
      this.socket.setNoDelay(true);
      this.socket.once('error', reject);
      this.socket.on('data', (d) => this.onData(d));
      this.socket.on('close', () => this.pending?.reject(new Error('the hub closed the connection')));
    });
  }
  /** body: the JSON text */
  post(target, data) {
    const head = `POST ${target} HTTP/1.1\r\nHost: ${this.url.host}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(data)}\r\nCookie: ${this.cookie}\r\n\r\n`;
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(head + data);
    });
  }
  onData(d) {
    this.data = this.data.length ? Buffer.concat([this.data, d]) : d;
    const end = this.data.indexOf('\r\n\r\n');
    if (end < 0 || !this.pending) return;
    const head = this.data.subarray(0, end).toString('latin1');
    const m = /\r\ncontent-length: *(\d+)/i.exec(head);
    if (!m) { this.pending.reject(new Error(`an answer without Content-Length: ${head}`)); return; }
    const total = end + 4 + Number(m[1]);
    if (this.data.length < total) return;
    const text = this.data.subarray(end + 4, total).toString('utf8');
    this.data = this.data.subarray(total);
    const p = this.pending;
    this.pending = null;
    p.resolve({ status: Number(head.slice(9, 12)), text });
  }
  close() { this.socket?.end(); }
}

async function pool(items, n, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) { const i = next++; await fn(items[i], i); }
  }));
}

// ---- the hub ----------------------------------------------------------------------------------

async function startHub(tmp, store, name = 'hub') {
  const port = await freePort();
  const first = await freeRange(USERS + 10);
  const log = path.join(tmp, `${name}.log`);
  const hub = spawn(BIN, ['hub', '--listen', HOST, '--port', String(port), '--data-dir', path.join(tmp, name)], {
    env: {
      ...process.env,
      ...(store ? { COMFYD_HUB_STORE: store } : {}),
      COMFYD_ADMIN_PASSWORD: 'bench-password-1',
      COMFYUI_PORT_RANGE: `${first}-${first + USERS + 9}`,
      COMFYUI_IDLE_STOP_SECONDS: '0',
      COMFY_MAX_CONCURRENT: '1',
      COMFY_MAX_WAITING_PER_USER: String(PER_USER + 10),
    },
    stdio: ['ignore', fs.openSync(log, 'w'), fs.openSync(log, 'a')],
  });
  const base = `http://${HOST}:${port}`;
  for (let i = 0; i < 200; i++) {
    try { if ((await new Api(base).req('GET', '/api/me')).status === 401) return { hub, base }; } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error(`the hub did not start: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
}

/** Users with a project each, opened (and later sent to) through the hubs in turn. */
async function setUpUsers(base, bases = [base]) {
  const admin = new Api(base);
  if ((await admin.req('POST', '/api/login', { username: 'admin', password: 'bench-password-1' })).status !== 200)
    throw new Error('admin login failed');
  const users = Array.from({ length: USERS }, (_, i) => ({ name: `u${String(i).padStart(3, '0')}` }));
  await pool(users, 4, async (u) => {
    const r = await admin.req('POST', '/api/users', { name: u.name, password: `${u.name}-password` });
    if (r.status !== 201) throw new Error(`create ${u.name}: ${r.text}`);
    u.api = new Api(bases[users.indexOf(u) % bases.length]);
    await u.api.req('POST', '/api/login', { username: u.name, password: `${u.name}-password` });
    u.project = (await u.api.req('POST', '/api/projects', { name: 'bench' })).body;
  });
  process.stdout.write(`  ${USERS} users; opening their instances`);
  await pool(users, 8, async (u) => {
    const r = await u.api.req('POST', `/api/projects/${u.project.id}/open_comfy`);
    if (r.status !== 200) throw new Error(`open ${u.name}: ${r.text}`);
    u.port = r.body.instance.port;
    u.base = `/comfyui/${u.name}/${u.project.id}`;
  });
  process.stdout.write(' - done\n');
  return { admin, users };
}

/** Each instance's execution_start / execution_success stamps for the user's client id. */
async function listen(users) {
  const stamps = { start: new Map(), success: new Map() };
  await Promise.all(users.map((u) => new Promise((resolve, reject) => {
    u.ws = new WebSocket(`ws://${HOST}:${u.port}/ws?clientId=bench-${u.name}`);
    u.ws.on('message', (d, bin) => {
      if (bin) return;
      const m = JSON.parse(d.toString());
      if (m.type === 'execution_start') stamps.start.set(m.data.prompt_id, m.data.timestamp);
      if (m.type === 'execution_success') stamps.success.set(m.data.prompt_id, m.data.timestamp);
    });
    u.ws.once('open', resolve);
    u.ws.once('error', reject);
  })));
  return stamps;
}

async function submitAll(users, seedBase, count) {
  const latencies = [];
  let refused = 0;
  const clients = users.map((u) => new RawHttp(u.api.base.href, u.api.cookie));
  await Promise.all(clients.map((c) => c.connect()));
  const t0 = performance.now();
  await Promise.all(users.map(async (u, ui) => {
    for (let k = 0; k < count; k++) {
      const t = performance.now();
      const r = await clients[ui].post(`${u.base}/prompt`, promptBody(seedBase + ui * count + k, `bench-${u.name}`));
      latencies.push(performance.now() - t);
      if (r.status !== 200) refused++;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();
  latencies.sort((a, b) => a - b);
  return { rate: (users.length * count) / seconds, seconds, refused, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function queueStatus(admin) { return (await admin.req('GET', '/api/queue/status')).body; }

// ---- Redis ------------------------------------------------------------------------------------

function redisBin() {
  const bin = process.env.REDIS_SERVER || 'redis-server';
  try { execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }); return bin; } catch { return null; }
}

async function startRedis(bin, dir, durable) {
  const port = await freePort();
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--daemonize', 'no',
    ...(durable ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])];
  const child = spawn(bin, args, { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise((res) => { const s = net.connect(port, HOST, () => { s.end(); res(true); }); s.on('error', () => res(false)); });
    if (ok) return { child, port };
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

function resp(...args) {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/** One connection: PER_USER times RPUSH queue id + SET prompt:id body, waiting for both replies. */
function redisUser(port, ui) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, HOST);
    let k = 0, lines = 0;
    const send = () => {
      const id = `p-${ui}-${k}`;
      const body = JSON.stringify({ prompt: prompt(ui * PER_USER + k), client_id: `bench-${ui}`, prompt_id: id });
      s.write(resp('RPUSH', 'comfy:queue', id) + resp('SET', `comfy:prompt:${id}`, body));
    };
    s.on('connect', send);
    s.on('data', (d) => {
      for (const b of d) if (b === 10) lines++;
      while (lines >= 2) {
        lines -= 2;
        if (++k === PER_USER) { s.end(); resolve(); return; }
        send();
      }
    });
    s.on('error', reject);
  });
}

async function redisRate(bin, dir, durable) {
  const r = await startRedis(bin, dir, durable);
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: USERS }, (_, ui) => redisUser(r.port, ui)));
    return (USERS * PER_USER) / ((performance.now() - t0) / 1000);
  } finally {
    r.child.kill('SIGKILL');
  }
}

// ---- the run ----------------------------------------------------------------------------------

/** `count` hubs on a store (undefined: one hub's SQLite file; else a postgres:// URI), measured. */
async function measureHub(tmp, store, count = 1) {
  fs.mkdirSync(tmp, { recursive: true });
  let hubs = [], users = [];
  try {
    for (let i = 0; i < count; i++) hubs.push(await startHub(tmp, store, `hub${i}`));
    const hub = { pids: hubs.map((h) => h.hub.pid) };
    const setUp = await setUpUsers(hubs[0].base, hubs.map((h) => h.base));
    const admin = setUp.admin;
    users = setUp.users;
    const stamps = await listen(users);
    // warm-up: one prompt per user (connections, each instance's first validation), then idle
    await submitAll(users, 1, 1);
    for (let i = 0; i < 600 && ((await queueStatus(admin)).queue_length > 0 || (await queueStatus(admin)).processing_count > 0); i++) await sleep(100);
    const sum = (fn) => hub.pids.reduce((t, pid) => t + fn(pid), 0);
    const m = { rssBefore: sum(rssKiB) };
    const instances = childrenOf(hub.pids);
    const instancesCpu = () => instances.reduce((t, pid) => { try { return t + cpuMs(pid); } catch { return t; } }, 0);
    const cpuBefore = sum(cpuMs), instancesBefore = instancesCpu(), clientBefore = process.cpuUsage();
    const idleBefore = machineIdleMs();
    process.stdout.write(`  enqueue: ${USERS * PER_USER} prompts`);
    m.enqueue = await submitAll(users, 100000, PER_USER);
    process.stdout.write(' - done\n');
    const n = USERS * PER_USER;
    m.idleShare = (machineIdleMs() - idleBefore) / (m.enqueue.seconds * 1000 * os.cpus().length);
    m.cpuPerPrompt = (sum(cpuMs) - cpuBefore) / n;
    m.instancesCpuPerPrompt = (instancesCpu() - instancesBefore) / n;
    const client = process.cpuUsage(clientBefore);
    m.clientCpuPerPrompt = (client.user + client.system) / 1000 / n;
    m.waiting = (await queueStatus(admin)).queue_length;
    m.rssAfter = sum(rssKiB);
    // drain: the stamps of the next DRAIN prompts
    const finishedBefore = stamps.success.size;
    const t0 = Date.now();
    while (stamps.success.size - finishedBefore < DRAIN && Date.now() - t0 < 600000) await sleep(200);
    m.drainRate = (stamps.success.size - finishedBefore) / ((Date.now() - t0) / 1000);
    const runs = [...stamps.start.entries()].filter(([id]) => stamps.success.has(id))
      .map(([id, start]) => ({ start, end: stamps.success.get(id) })).sort((a, b) => a.start - b.start);
    const delays = [];
    for (let i = 1; i < runs.length; i++) {
      const gap = runs[i].start - runs[i - 1].end;
      if (gap >= 0 && gap < 10000) delays.push(gap); // consecutive: the slot freed, the next started
      if (process.env.BENCH_SHOW_GAPS && gap > 20 && gap < 10000) console.log(`  gap ${gap} ms at ${runs[i - 1].end} (${i})`);
    }
    m.delays = delays.slice(-Math.min(delays.length, DRAIN)).sort((a, b) => a - b);
    return m;
  } catch (e) {
    for (let i = 0; i < count; i++) { // what the hubs said, before their directory goes
      const log = path.join(tmp, `hub${i}.log`);
      if (fs.existsSync(log)) console.error(`--- the end of hub${i}.log\n${fs.readFileSync(log, 'utf8').split('\n').slice(-40).join('\n')}`);
    }
    throw e;
  } finally {
    for (const u of users) u.ws?.close();
    const instancePids = childrenOf(hubs.map(({ hub }) => hub.pid));
    await Promise.all(hubs.map(({ hub }) => {
      hub.kill('SIGTERM');
      return new Promise((r) => { const t = setTimeout(() => { hub.kill('SIGKILL'); r(); }, 30000); hub.on('exit', () => { clearTimeout(t); r(); }); });
    }));
    // Two hubs stopped at once each leave their instances to the other (a rolling restart's
    // hand-over; the next hub to start adopts them): here nobody comes back, so they go.
    for (const pid of instancePids) try { process.kill(pid, 'SIGKILL'); } catch { /* stopped by its hub */ }
  }
}

/** A throw-away PostgreSQL (tests/pg/start.sh), or null when the server is not installed. */
function startPostgres(tmp) {
  const dir = path.join(tmp, 'pg');
  try {
    const uri = execFileSync(path.join(repo, 'tests', 'pg', 'start.sh'), [dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return { uri, stop: () => execFileSync(path.join(repo, 'tests', 'pg', 'stop.sh'), [dir], { stdio: 'ignore' }) };
  } catch {
    return null;
  }
}

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`no ${BIN}: run make release`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-bench-queue-'));
  fs.chmodSync(tmp, 0o755); // PostgreSQL's server (as nobody under root) makes its directory inside
  try {
    console.log(`queue bench: ${USERS} users x ${PER_USER} prompts through the hub's proxy (${BIN})`);
    const sqlite = STORES.includes('sqlite') ? await measureHub(path.join(tmp, 'sqlite'), undefined) : null;
    let postgres = null, postgres2 = null;
    const pg = STORES.includes('postgres') ? startPostgres(tmp) : null;
    if (pg) {
      try { postgres = await measureHub(path.join(tmp, 'postgres'), pg.uri); } finally { pg.stop(); }
    }
    const pg2 = STORES.includes('postgres2') ? startPostgres(path.join(tmp, 'two')) : null; // a fresh database: the same starting point
    if (pg2) {
      try { postgres2 = await measureHub(path.join(tmp, 'postgres2'), pg2.uri, 2); } finally { pg2.stop(); }
    }
    let redisPlain = NaN, redisDurable = NaN;
    const redis = STORES.includes('redis') ? redisBin() : null;
    if (redis) {
      redisPlain = await redisRate(redis, path.join(tmp, 'redis-plain'), false);
      redisDurable = await redisRate(redis, path.join(tmp, 'redis-durable'), true);
    }
    const f = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');
    const both = (fn) => [sqlite, postgres, postgres2].map((m) => (m ? fn(m) : 'n/a')).join(' | ');
    console.log('');
    console.log('| measure | hub on SQLite | hub on PostgreSQL | two hubs on PostgreSQL | redis-server (no fsync) | redis-server (appendfsync always) | target |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(`| enqueue, ${USERS} clients x ${PER_USER} (prompts/s) | ${both((m) => f(m.enqueue.rate))} | ${f(redisPlain)} | ${f(redisDurable)} | >= 5,000 durable |`);
    console.log(`| enqueue answer p50 / p99 (ms) | ${both((m) => `${f(m.enqueue.p50, 2)} / ${f(m.enqueue.p99, 2)}`)} | | | |`);
    console.log(`| hub CPU per prompt enqueued (ms; its instances' validation not counted) | ${both((m) => f(m.cpuPerPrompt, 3))} | | | |`);
    console.log(`| instances' CPU per prompt (ms; validate_only) | ${both((m) => f(m.instancesCpuPerPrompt, 3))} | | | |`);
    console.log(`| this client's CPU per prompt (ms) | ${both((m) => f(m.clientCpuPerPrompt, 3))} | | | |`);
    console.log(`| machine idle during the enqueue (all CPUs) | ${both((m) => `${f(m.idleShare * 100)}%`)} | | | |`);
    console.log(`| waiting after enqueue | ${both((m) => f(m.waiting))} | | | ~${USERS * PER_USER} |`);
    console.log(`| hub RSS before / with the queue (MiB) | ${both((m) => `${f(m.rssBefore / 1024, 1)} / ${f(m.rssAfter / 1024, 1)}`)} | | | |`);
    console.log(`| dispatch delay p50 / p99 / max (ms) | ${both((m) => `${f(percentile(m.delays, 50), 1)} / ${f(percentile(m.delays, 99), 1)} / ${f(m.delays[m.delays.length - 1], 1)}`)} | | | p99 < 5 |`);
    console.log(`| drain rate, one at a time (prompts/s) | ${both((m) => f(m.drainRate))} | | | |`);
    for (const [name, m] of [['SQLite', sqlite], ['PostgreSQL', postgres], ['two hubs on PostgreSQL', postgres2]])
      if (m?.enqueue.refused) console.log(`\n${m.enqueue.refused} submissions were refused on ${name}`);
    if (!pg && STORES.includes('postgres')) console.log('\nno PostgreSQL server (apt-get install postgresql): its columns are empty');
    if (!redis && STORES.includes('redis')) console.log('\nredis-server not found: the Redis columns are empty (scripts/setup-debian.sh --bench installs it)');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
