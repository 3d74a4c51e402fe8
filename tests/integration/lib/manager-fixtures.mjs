// Fixtures for the node-pack manager tests: comfyd packs (C source + manifest + Makefile) in
// local bare git repositories (file://), tar.gz archives written byte by byte (so that an
// archive can hold "../" entries), an HTTP server that serves a catalog channel, archives and
// model files (with Range, and a way to cut a download half-way), and a WebSocket collector.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { sleep } from './server.mjs';

const GIT_ENV = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@t', GIT_CONFIG_NOSYSTEM: '1', HOME: process.env.HOME || '/tmp' };
export const git = (cwd, ...args) => execFileSync('git', args, { cwd, env: GIT_ENV, stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();

/** The files of a comfyd pack whose nodes are `nodes` (names); each outputs its own name. */
export function packFiles({ id, version = '1.0.0', nodes, broken = false, abi = 2 }) {
  const defs = nodes.map((n) => `
static int run_${n}(cd_node_call *call) { return cd_call_set_output(call, 0, cd_value_string("${n}")); }
static const cd_output_def out_${n}[] = {{"STRING", "text", 0, "", NULL}};`).join('\n');
  const table = nodes.map((n) => `    {.abi_version = CD_NODE_ABI_VERSION, .name = "${n}", .display_name = "${n}", .category = "test",
     .inputs = "{\\"required\\": {}}", .outputs = out_${n}, .n_outputs = 1, .execute = run_${n}},`).join('\n');
  const src = `#include <comfyd/node.h>
${defs}
static const cd_node_def defs[] = {
${table}
};
int comfyd_pack_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
${broken ? 'this is not C;' : ''}
`;
  return {
    'comfyd-pack.json': JSON.stringify({ id, version, description: `test pack ${id}`, abi }),
    'pack.c': src,
    Makefile: 'pack.so: pack.c\n\t$(CC) $(CFLAGS) -shared -fPIC -I$(COMFYD_INCLUDE) -o $@ pack.c\n',
  };
}

function writeFiles(dir, files) {
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), content);
  }
}

/** A bare repository at root/<name>.git holding one commit of `files`; returns helpers. */
export function makeRepo(root, name, files) {
  const work = path.join(root, `${name}-work`);
  const bare = path.join(root, `${name}.git`);
  fs.mkdirSync(work, { recursive: true });
  git(work, 'init', '-q', '-b', 'main');
  writeFiles(work, files);
  git(work, 'add', '-A');
  git(work, 'commit', '-qm', 'first');
  git(root, 'clone', '-q', '--bare', work, bare);
  git(work, 'remote', 'add', 'origin', bare);
  return {
    url: `file://${bare}`,
    head: () => git(work, 'rev-parse', 'HEAD'),
    /** Commits new files (replacing same names) and pushes them. */
    commit(newFiles, msg = 'next') {
      writeFiles(work, newFiles);
      git(work, 'add', '-A');
      git(work, 'commit', '-qm', msg);
      git(work, 'push', '-q', 'origin', 'main');
      return git(work, 'rev-parse', 'HEAD');
    },
    tag(t) { git(work, 'tag', t); git(work, 'push', '-q', 'origin', t); },
  };
}

/** A gzipped tar of [name, content] pairs, names written as given (even "../x"). */
export function tarGz(entries) {
  const blocks = [];
  for (const [name, content] of entries) {
    const data = Buffer.from(content);
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write(Math.floor(Date.now() / 1000).toString(8).padStart(11, '0') + '\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return zlib.gzipSync(Buffer.concat(blocks));
}

export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

/**
 * An HTTP server for the tests. files: { '/path': Buffer|string }. cutOnce: { '/path': bytes }
 * sends the full Content-Length but closes after that many bytes, the first time only.
 * Requests are logged in srv.log as { url, range }.
 */
export async function startFileServer() {
  const files = new Map();
  const cutOnce = new Map();
  const log = [];
  const server = http.createServer((req, res) => {
    const url = req.url.split('?')[0];
    log.push({ url, range: req.headers.range || null });
    const body = files.get(url);
    if (body === undefined) { res.writeHead(404); res.end('not found'); return; }
    const buf = Buffer.from(body);
    const m = /^bytes=(\d+)-$/.exec(req.headers.range || '');
    if (m) {
      const start = Number(m[1]);
      if (start >= buf.length) { res.writeHead(416, { 'Content-Range': `bytes */${buf.length}` }); res.end(); return; }
      res.writeHead(206, { 'Content-Length': buf.length - start, 'Content-Range': `bytes ${start}-${buf.length - 1}/${buf.length}` });
      res.end(buf.subarray(start));
      return;
    }
    res.writeHead(200, { 'Content-Length': buf.length });
    const cut = cutOnce.get(url);
    if (cut !== undefined) {
      cutOnce.delete(url);
      res.write(buf.subarray(0, cut), () => setTimeout(() => req.socket.destroy(), 50));
      return;
    }
    res.end(buf);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base, files, cutOnce, log,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

/** Collects WebSocket messages of the given types. */
export async function collectWs(port, types) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=mgr-test`, { perMessageDeflate: false });
  const msgs = [];
  ws.on('message', (d, bin) => {
    if (bin) return;
    const m = JSON.parse(d.toString());
    if (types.includes(m.type)) msgs.push(m);
  });
  await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
  return {
    msgs,
    async waitFor(pred, timeoutMs = 60000) {
      const t0 = Date.now();
      for (;;) {
        const hit = msgs.find(pred);
        if (hit) return hit;
        if (Date.now() - t0 > timeoutMs) throw new Error(`timed out; got ${JSON.stringify(msgs)}`);
        await sleep(50);
      }
    },
    close: () => ws.close(),
  };
}
