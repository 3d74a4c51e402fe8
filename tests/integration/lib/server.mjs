// Starts and stops comfyd instances for the integration tests.
//
//   const srv = await startServer({ args: ['--max-upload-size', '1'], frontEnd: {...files} });
//   ... srv.port, srv.baseDir, srv.frontEndRoot, srv.argv, srv.stderr() ...
//   await srv.stop();   // SIGTERM, waits, asserts exit 0 and no sanitizer report
//
// Every child is tracked and SIGKILLed when the test process exits, whatever happened.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const COMFYD_BIN = process.env.COMFYD_BIN || path.join(REPO_ROOT, 'build', 'debug', 'comfyd');
export const HOST = '127.0.0.1';

const SANITIZER_PATTERNS = [
  'ERROR: AddressSanitizer',
  'runtime error:',
  'ERROR: LeakSanitizer',
  'WARNING: AddressSanitizer',
];

const live = new Set();
function killAll() {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAll(); process.exit(130); });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Writes a tree of files: { 'a/b.txt': 'text' | Buffer }. */
export async function writeTree(root, files) {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, content);
  }
}

/** One plain GET over a fresh connection; resolves to the status code (or 0 on a socket error). */
export function probeStatus(port, urlPath = '/system_stats', timeoutMs = 2000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    let data = '';
    let done = false;
    const finish = (v) => { if (!done) { done = true; clearTimeout(timer); sock.destroy(); resolve(v); } };
    const timer = setTimeout(() => finish(0), timeoutMs);
    sock.on('error', () => finish(0));
    sock.on('connect', () => sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n\r\n`));
    sock.setEncoding('latin1');
    sock.on('data', (d) => {
      data += d;
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      if (m) finish(Number(m[1]));
    });
    sock.on('close', () => finish(0));
  });
}

/** Resident set size of a process in bytes (VmRSS from /proc/<pid>/status). */
export function rssBytes(pid) {
  const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

export function sanitizerReports(stderrText) {
  return SANITIZER_PATTERNS.filter((p) => stderrText.includes(p));
}

export async function waitForBinary(timeoutMs = 0) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fs.accessSync(COMFYD_BIN, fs.constants.X_OK);
      return;
    } catch {
      if (Date.now() >= deadline) throw new Error(`comfyd binary not found or not executable: ${COMFYD_BIN} (set COMFYD_BIN)`);
      await sleep(500);
    }
  }
}

/**
 * Starts comfyd.
 * options:
 *   args      extra command-line arguments after the standard ones
 *   frontEnd  object of files for a fresh --front-end-root (or true for an empty one)
 *   files     object of files to create in the base directory before starting
 *   baseDir   reuse this base directory instead of making one
 *   port      use this port instead of a free one
 *   env       extra environment variables
 *   readyTimeoutMs  how long to wait for /system_stats 200 (default 20 s)
 */
export async function startServer(options = {}) {
  // The binary may be being rebuilt right now: wait for it a while.
  await waitForBinary(Number(process.env.COMFYD_WAIT_BINARY_MS ?? 120000));
  const ownsBase = !options.baseDir;
  const baseDir = options.baseDir || (await fsp.mkdtemp(path.join(os.tmpdir(), 'comfyd-it-')));
  if (options.files) await writeTree(baseDir, options.files);
  let frontEndRoot = null;
  if (options.frontEnd) {
    frontEndRoot = path.join(baseDir, 'front-end');
    await fsp.mkdir(frontEndRoot, { recursive: true });
    if (typeof options.frontEnd === 'object') await writeTree(frontEndRoot, options.frontEnd);
  }
  const fixedPort = options.port;
  let lastError;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = fixedPort || (await freePort());
    const argv = ['serve', '--listen', HOST, '--port', String(port), '--base-directory', baseDir];
    if (frontEndRoot) argv.push('--front-end-root', frontEndRoot);
    argv.push(...(options.args || []));
    try {
      const srv = await launch({ argv, port, baseDir, ownsBase, frontEndRoot, options });
      return srv;
    } catch (e) {
      lastError = e;
      // A port race (someone took the free port) or a binary being replaced by a rebuild is worth
      // another try; anything else is not.
      const msg = String(e.message);
      if (/ENOENT|ETXTBSY|EACCES|ENOEXEC/.test(msg) && !/ERROR: AddressSanitizer|runtime error:/.test(msg)) {
        await sleep(2000);
        await waitForBinary(Number(process.env.COMFYD_WAIT_BINARY_MS ?? 120000));
        continue;
      }
      if (fixedPort || !/address already in use|EADDRINUSE|cannot listen/i.test(msg)) break;
    }
  }
  if (ownsBase) await fsp.rm(baseDir, { recursive: true, force: true });
  throw lastError;
}

async function launch({ argv, port, baseDir, ownsBase, frontEndRoot, options }) {
  const env = { ...process.env };
  if (!env.ASAN_OPTIONS) env.ASAN_OPTIONS = 'detect_leaks=1:abort_on_error=0';
  if (!env.UBSAN_OPTIONS) env.UBSAN_OPTIONS = 'print_stacktrace=1:halt_on_error=1';
  Object.assign(env, options.env || {});
  const child = spawn(COMFYD_BIN, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  // A server that a failing test never stopped must not keep the test process alive: it is
  // SIGKILLed at exit. (Waits below always hold a timer, which keeps the loop running.)
  child.unref();
  child.stderr.unref?.();
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.COMFYD_TEST_VERBOSE) process.stderr.write(d);
  });
  const exited = new Promise((resolve) => {
    // 'close' (not 'exit'): stderr has been read to its end by then, sanitizer reports included.
    child.on('close', (code, signal) => { live.delete(child); resolve({ code, signal }); });
    child.on('error', (err) => { live.delete(child); resolve({ code: null, signal: null, error: err }); });
  });
  let exitInfo = null;
  exited.then((info) => { exitInfo = info; });

  const readyTimeoutMs = options.readyTimeoutMs ?? 20000;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitInfo) {
      await sleep(50); // let the last stderr bytes arrive
      throw new Error(`comfyd exited during startup (code ${exitInfo.code}, signal ${exitInfo.signal}${exitInfo.error ? ', ' + exitInfo.error.message : ''}); argv ${JSON.stringify(argv)}; stderr:\n${stderr}`);
    }
    const status = await probeStatus(port, '/system_stats', 1000);
    if (status === 200) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await Promise.race([exited, sleep(5000)]);
      throw new Error(`comfyd did not answer /system_stats with 200 within ${readyTimeoutMs} ms (last status ${status}); stderr:\n${stderr}`);
    }
    await sleep(100);
  }

  const srv = {
    port,
    baseDir,
    frontEndRoot,
    argv,
    child,
    get pid() { return child.pid; },
    get exitInfo() { return exitInfo; },
    exited,
    stderr: () => stderr,
    /** Sends SIGKILL and waits; the caller expects no clean exit. */
    async kill() {
      if (!exitInfo) child.kill('SIGKILL');
      await srv.waitExit(10000);
    },
    /** Removes the base directory if this helper made it (after kill()). */
    async removeBase() {
      if (ownsBase && !process.env.COMFYD_TEST_KEEP) await fsp.rm(baseDir, { recursive: true, force: true });
    },
    /** Waits for exit (up to timeoutMs), SIGKILLing on timeout. Resolves to the exit info. */
    async waitExit(timeoutMs) {
      let timer;
      const t = new Promise((r) => { timer = setTimeout(() => r(null), timeoutMs); });
      const r = await Promise.race([exited, t]);
      clearTimeout(timer);
      if (r === null) {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(5000)]);
        return null;
      }
      return r;
    },
    /** Asserts that stderr holds no sanitizer report so far. */
    assertNoSanitizerReport() {
      const found = sanitizerReports(stderr);
      assert.deepEqual(found, [], `sanitizer report in comfyd stderr:\n${stderr}`);
    },
    /**
     * Graceful stop: SIGTERM, wait (timeoutMs, default 40 s), then assert exit code 0 and no
     * sanitizer report. Removes the base directory when this helper made it. Safe to call twice.
     * With signalled: true the caller already sent SIGTERM: only wait and check.
     */
    async stop({ timeoutMs = 40000, keepBase = false, signalled = false } = {}) {
      if (srv._stopped) return srv._stopped;
      srv._stopped = (async () => {
        let info = exitInfo;
        const wasRunning = !info;
        if (wasRunning) {
          if (!signalled) child.kill('SIGTERM');
          info = await srv.waitExit(timeoutMs);
        }
        try {
          if (!wasRunning && !signalled) {
            assert.fail(`comfyd had already exited before stop() (code ${info.code}, signal ${info.signal}); stderr:\n${stderr}`);
          }
          assert.ok(info !== null, `comfyd did not exit within ${timeoutMs} ms of SIGTERM; stderr:\n${stderr}`);
          srv.assertNoSanitizerReport();
          assert.equal(info.signal, null, `comfyd died of signal ${info.signal}; stderr:\n${stderr}`);
          assert.equal(info.code, 0, `comfyd exit code ${info.code}; stderr:\n${stderr}`);
        } finally {
          if (ownsBase && !keepBase && !process.env.COMFYD_TEST_KEEP) {
            await fsp.rm(baseDir, { recursive: true, force: true });
          }
        }
      })();
      return srv._stopped;
    },
  };
  return srv;
}

/** Stops every server in the list (all of them, even when one fails), then throws the first failure. */
export async function stopAll(servers) {
  const errors = [];
  for (const s of servers.splice(0)) {
    try { await s?.stop(); } catch (e) { errors.push(e); }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('\n----\n'));
}

/**
 * Starts a server, runs fn(srv), then stops it (checking exit code and sanitizer reports) so that
 * a leak or crash is reported by the test that caused it. If fn failed too, both are reported.
 */
export async function withServer(options, fn) {
  const srv = await startServer(options);
  let failure = null;
  try {
    return await fn(srv);
  } catch (e) {
    failure = e;
    throw e;
  } finally {
    try {
      await srv.stop();
    } catch (stopError) {
      if (!failure) throw stopError;
      failure.message += `\n\nand stopping the server failed too: ${stopError.message}`;
    }
  }
}
