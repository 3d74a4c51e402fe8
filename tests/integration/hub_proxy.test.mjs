// comfyd hub, part 2: the proxy /comfyui/{user}/{project}/, WebSocket included, with real
// `comfyd serve` instances, the stock npm ComfyUI clients, and a stand-in instance that echoes
// what it receives (lib/echo-instance.mjs).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ComfyApi } from '@saintno/comfyui-sdk';
import { Client } from '@stable-canvas/comfyui-client';
import { HOST, sleep, rssBytes } from './lib/server.mjs';
import { startHub, waitFor, trackInstancePid } from './lib/hub.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ECHO = path.join(here, 'lib', 'echo-instance.mjs');

/** Opens a WebSocket; resolves { ws, messages, status } or { error status } for a refused upgrade. */
function openWs(url, headers = {}) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers });
    const messages = [];
    ws.on('message', (data, isBinary) => messages.push(isBinary ? { binary: Buffer.from(data) } : JSON.parse(data.toString())));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ refused: res.statusCode, body }));
    });
    ws.once('error', (e) => resolve({ error: e }));
  });
}

const imageWorkflow = {
  1: { class_type: 'EmptyImage', inputs: { width: 32, height: 16, batch_size: 3, color: 0xff8000 } },
  2: { class_type: 'SaveImage', inputs: { images: ['1', 0], filename_prefix: 'proxied' } },
  3: { class_type: 'SaveImageWebsocket', inputs: { images: ['1', 0] } },
};

describe('hub proxy with real instances', () => {
  let hub, admin, alice, bob, aliceUser, project, inst, token, base;
  before(async () => {
    hub = await startHub({
      env: {
        COMFYD_PROXY_WS_PING_SECONDS: '1',
        COMFYD_PROXY_TIMEOUT_SECONDS: '2',
        // ASan keeps freed memory in a 256 MB quarantine by default, which would hide what the hub
        // itself holds: a small one makes RSS mean what the streaming test measures.
        ASAN_OPTIONS: `${process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0'}:quarantine_size_mb=8`,
      },
    });
    admin = await hub.login('admin', hub.adminPassword);
    ({ user: aliceUser, client: alice } = await hub.addUser(admin, 'alice'));
    bob = (await hub.addUser(admin, 'bob')).client;
    project = (await alice.post('/api/projects', { name: 'p1' })).body;
    inst = (await alice.post(`/api/projects/${project.id}/open_comfy`)).body.instance;
    trackInstancePid(inst.pid);
    token = (await alice.post('/api/tokens', { name: 'sdk' })).body.token;
    base = `/comfyui/alice/${project.id}`;
  });
  after(async () => { await hub?.stop(); });

  test('without the trailing slash: a redirect to the slash form, query kept', async () => {
    const r = await alice.get(`${base}?a=1&b=%2F`);
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), `${base}/?a=1&b=%2F`);
    assert.equal((await alice.post(base, {})).status, 308);
    const page = await alice.get(`${base}/`);
    assert.equal(page.status, 200);
  });

  test('not logged in: a redirect to the login page for pages, 401 for the API and the WebSocket', async () => {
    const anon = hub.client();
    const page = await anon.get(`${base}/`, { accept: 'text/html,application/xhtml+xml' });
    assert.equal(page.status, 302);
    assert.equal(page.headers.get('location'), `/login?next=${encodeURIComponent(`${base}/`).replace(/%2F/g, '/')}`);
    const login = await anon.get('/login');
    assert.equal(login.status, 200);
    assert.match(login.text, /<form/);
    const api = await anon.get(`${base}/system_stats`);
    assert.equal(api.status, 401);
    assert.equal(api.body.error.type, 'unauthorized');
    const ws = await openWs(`ws://${HOST}:${hub.port}${base}/ws?clientId=x`);
    assert.equal(ws.refused, 401);
  });

  test("another user gets 403, for HTTP and WebSocket; unknown places 404", async () => {
    assert.equal((await bob.get(`${base}/system_stats`)).status, 403);
    const ws = await openWs(`ws://${HOST}:${hub.port}${base}/ws`, { cookie: bob.cookie });
    assert.equal(ws.refused, 403);
    assert.equal((await alice.get(`/comfyui/bob/${project.id}/system_stats`)).status, 404);
    assert.equal((await alice.get(`/comfyui/alice/999999/system_stats`)).status, 404);
    assert.equal((await alice.get(`/comfyui/alice/x1/system_stats`)).status, 404);
    assert.equal((await alice.get(`/comfyui/alice/`)).status, 404);
    // teachers and admins may
    assert.equal((await admin.get(`${base}/system_stats`)).status, 200);
  });

  test('manager routes through the proxy are for admins only', async () => {
    for (const p of ['/manager/version', '/api/manager/version', '/v2/manager/version', '/customnode/getlist?mode=local']) {
      const r = await alice.get(`${base}${p}`);
      assert.equal(r.status, 403, p);
      assert.match(r.body.error.message, /admins/);
    }
    assert.equal((await admin.get(`${base}/manager/version`)).status, 200);
    // encoded or folded paths that an instance would route to the manager count as such
    for (const p of ['/%6Danager/version', '/api//manager/version', '/x/../manager/version', '/customnode%2Fgetlist']) {
      assert.equal((await alice.get(`${base}${p}`)).status, 403, p);
    }
  });

  test('@saintno/comfyui-sdk with a Bearer token runs a workflow with progress and previews, and downloads the image', async () => {
    const api = new ComfyApi(`http://${HOST}:${hub.port}${base}`, 'sdk-through-hub', {
      credentials: { type: 'bearer_token', token },
    });
    try {
      await api.init().waitForReady();
      const progress = [], previews = [];
      api.on('progress', (e) => progress.push(e.detail));
      api.on('b_preview', (e) => previews.push(e.detail));
      const done = new Promise((resolve) => api.on('executed', (e) => { if (e.detail.node === '2') resolve(e.detail); }));
      const queued = await api.queuePrompt(null, imageWorkflow);
      assert.ok(queued.prompt_id);
      const executed = await done;
      const images = executed.output.images;
      assert.equal(images.length, 3);
      await waitFor(() => progress.length >= 3 && previews.length >= 3, 5000, 'progress and previews');
      assert.deepEqual(progress.map((p) => [p.value, p.max]), [[0, 3], [1, 3], [2, 3]]);
      const blob = await api.getImage(images[0]);
      const bytes = Buffer.from(await blob.arrayBuffer());
      const onDisk = fs.readFileSync(path.join(hub.dataDir, 'instances', `u${aliceUser.id}`, `p${project.id}`, 'output', images[0].filename));
      assert.ok(bytes.equals(onDisk), 'the downloaded image is the file the instance wrote');
      const history = await api.getHistory(queued.prompt_id);
      assert.equal(history.status.completed, true);
    } finally {
      api.destroy();
    }
  });

  test('@stable-canvas/comfyui-client through the hub (api_base, a fetch and a WebSocket that carry the token)', async () => {
    const auth = { authorization: `Bearer ${token}` };
    class HubWebSocket extends WebSocket {
      constructor(url) {
        const u = new URL(url);
        u.pathname = `${base}${u.pathname}`;
        super(u.toString(), { headers: auth });
      }
    }
    const client = new Client({
      api_host: `${HOST}:${hub.port}`, api_base: base, clientId: 'sc-through-hub', WebSocket: HubWebSocket,
      fetch: (url, init = {}) => fetch(url, { ...init, headers: { ...(init.headers || {}), ...auth } }),
    });
    client.connect();
    try {
      // enqueue() follows the prompt on the WebSocket: let it open first
      await waitFor(() => client.socket?.readyState === WebSocket.OPEN, 5000, 'the client WebSocket');
      const stats = await client.getSystemStats();
      assert.equal(stats.devices[0].type, 'cpu');
      // enqueue() resolves at the first output node's result; the prompt then finishes
      const { prompt_id, images } = await client.enqueue(imageWorkflow, {});
      assert.ok(images.length >= 1, 'images came over the proxied WebSocket or from /view');
      const outputs = await waitFor(() => client.getPromptOutputs(prompt_id).catch(() => null), 5000, 'history');
      assert.equal(outputs['2'].images.length, 3);
    } finally {
      client.close();
    }
  });

  test('a 50 MB upload and download stream through the proxy; the hub stays small', async () => {
    const size = 50 * 1024 * 1024;
    const data = crypto.randomBytes(size);
    const sha = crypto.createHash('sha256').update(data).digest('hex');
    const rssBefore = rssBytes(hub.pid);
    let peak = rssBefore;
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssBytes(hub.pid)); } catch { /* gone */ } }, 10);
    try {
      const form = new FormData();
      form.append('image', new Blob([data]), 'big.bin');
      const up = await fetch(`${hub.base}${base}/upload/image`, { method: 'POST', body: form, headers: { authorization: `Bearer ${token}` } });
      assert.equal(up.status, 200, await up.clone().text());
      const { name } = await up.json();
      const down = await fetch(`${hub.base}${base}/view?filename=${encodeURIComponent(name)}&type=input`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(down.status, 200);
      const got = Buffer.from(await down.arrayBuffer());
      assert.equal(got.length, size);
      assert.equal(crypto.createHash('sha256').update(got).digest('hex'), sha);
      // ETag and If-None-Match pass through
      const etag = down.headers.get('etag');
      assert.ok(etag, 'the instance sent an ETag');
      const again = await fetch(`${hub.base}${base}/view?filename=${encodeURIComponent(name)}&type=input`, {
        headers: { authorization: `Bearer ${token}`, 'if-none-match': etag },
      });
      assert.equal(again.status, 304);
      // a range passes through too
      const part = await fetch(`${hub.base}${base}/view?filename=${encodeURIComponent(name)}&type=input`, {
        headers: { authorization: `Bearer ${token}`, range: 'bytes=100-199' },
      });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(100, 200)));
    } finally {
      clearInterval(sampler);
    }
    const growth = peak - rssBefore;
    assert.ok(growth < 32 * 1024 * 1024, `the hub grew by ${(growth / 1048576).toFixed(1)} MiB while 100 MB passed`);
  });

  test('the WebSocket: frames both ways, and pings from the hub', async () => {
    const { ws, messages } = await openWs(`ws://${HOST}:${hub.port}${base}/ws?clientId=both-ways`, { cookie: alice.cookie, origin: hub.base });
    assert.ok(ws, 'the upgrade went through');
    await waitFor(() => messages.find((m) => m.type === 'status'), 5000, 'the status greeting');
    assert.equal(messages.find((m) => m.type === 'status').data.sid, 'both-ways');
    // our ping reaches the instance, its pong comes back
    const pong = new Promise((r) => ws.once('pong', (d) => r(d.toString())));
    ws.ping('from-the-client');
    assert.equal(await pong, 'from-the-client');
    // the hub's own ping toward the browser
    const hubPing = await new Promise((r) => ws.once('ping', (d) => r(d.toString())));
    assert.equal(hubPing, 'comfyd');
    // a message the instance understands: its feature flags answer
    ws.send(JSON.stringify({ type: 'feature_flags', data: { supports_preview_metadata: true } }));
    const r = await alice.post(`${base}/prompt`, { prompt: imageWorkflow, client_id: 'both-ways' }, { origin: hub.base });
    assert.equal(r.status, 200);
    await waitFor(() => messages.some((m) => m.binary), 5000, 'binary preview frames');
    await waitFor(() => messages.some((m) => m.type === 'executing' && m.data.node === null), 5000, 'the end of the prompt');
    ws.close();
  });

  test('%2F and other encoded bytes in the path reach the instance as they were', async () => {
    const r = await alice.request('POST', `${base}/userdata/dir%2Fnote%20one.json?overwrite=true`, '{"x": 1}');
    assert.equal(r.status, 200, r.text);
    const file = path.join(hub.dataDir, 'instances', `u${aliceUser.id}`, `p${project.id}`, 'user', 'default', 'dir', 'note one.json');
    assert.equal(fs.readFileSync(file, 'utf8'), '{"x": 1}');
    const back = await alice.get(`${base}/userdata/dir%2Fnote%20one.json`);
    assert.equal(back.text, '{"x": 1}');
  });

  test('Origin: the hub refuses foreign origins on the cookie, instances keep their own check', async () => {
    const ok = await alice.post(`${base}/prompt`, { prompt: {} }, { origin: hub.base });
    assert.equal(ok.status, 400, 'passes the hub and the instance (which then finds no outputs)');
    assert.equal(ok.body.error.type, 'prompt_no_outputs');
    const evil = await alice.post(`${base}/prompt`, { prompt: {} }, { origin: 'http://evil.example' });
    assert.equal(evil.status, 403);
    const wsEvil = await openWs(`ws://${HOST}:${hub.port}${base}/ws`, { cookie: alice.cookie, origin: 'http://evil.example' });
    assert.equal(wsEvil.refused, 403);
    // direct access to the instance: its own check still refuses a foreign origin on loopback
    const direct = await fetch(`http://${HOST}:${inst.port}/prompt`, {
      method: 'POST', body: '{}', headers: { origin: 'http://evil.example', 'content-type': 'application/json' },
    });
    assert.equal(direct.status, 403);
  });

  test('an instance that does not answer in time gives 504, not a hang', async () => {
    process.kill(inst.pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const r = await alice.get(`${base}/system_stats`);
      assert.equal(r.status, 504);
      assert.match(r.body.error.message, /did not answer within 2 s/);
      assert.ok(Date.now() - t0 < 6000);
      assert.equal((await alice.get('/api/me')).status, 200, 'the hub itself answers meanwhile');
    } finally {
      process.kill(inst.pid, 'SIGCONT');
    }
  });

  test('a killed instance: 502 with the reason, its sockets closed with a reason, the hub healthy', async () => {
    const p = (await alice.post('/api/projects', { name: 'doomed' })).body;
    const victim = (await alice.post(`/api/projects/${p.id}/open_comfy`)).body.instance;
    trackInstancePid(victim.pid);
    const { ws } = await openWs(`ws://${HOST}:${hub.port}/comfyui/alice/${p.id}/ws`, { cookie: alice.cookie });
    const closed = new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    process.kill(victim.pid, 'SIGKILL');
    const c = await closed;
    assert.equal(c.code, 1011);
    assert.match(c.reason, /instance stopped/);
    await waitFor(async () => (await alice.get(`/api/projects/${p.id}`)).body.status === 'offline', 3000, 'offline');
    const r = await alice.get(`/comfyui/alice/${p.id}/system_stats`);
    assert.equal(r.status, 502);
    assert.match(r.body.error.message, /signal 9/);
    assert.equal((await alice.get('/api/me')).status, 200);
    // stopped on purpose: 503 with what to do
    await alice.post(`/api/projects/${p.id}/stop_comfy`);
    const s = await alice.get(`/comfyui/alice/${p.id}/system_stats`);
    assert.equal(s.status, 503);
    assert.match(s.body.error.message, /open_comfy/);
  });
});

describe('hub proxy: what passes, with a stand-in instance', () => {
  let hub, alice, project, base, token;
  before(async () => {
    hub = await startHub({
      env: {
        COMFYUI_COMMAND: `${process.execPath} ${ECHO} --listen {listen} --port {port} --log-requests`,
        COMFYUI_LOG_MAX_BYTES: '4096',
        COMFYD_PROXY_AUTOSTART: '1',
        COMFYD_PROXY_MAX_BODY_BYTES: '100000',
      },
    });
    const admin = await hub.login('admin', hub.adminPassword);
    alice = (await hub.addUser(admin, 'alice')).client;
    project = (await alice.post('/api/projects', { name: 'echo' })).body;
    base = `/comfyui/alice/${project.id}`;
    token = (await alice.post('/api/tokens', {})).body.token;
  });
  after(async () => { await hub?.stop(); });

  test('a request to a stopped project starts it when COMFYD_PROXY_AUTOSTART is on', async () => {
    const r = await alice.get(`${base}/anything`);
    assert.equal(r.status, 200, r.text);
    trackInstancePid((await alice.get(`/api/projects/${project.id}`)).body.instance.pid);
  });

  test("the hub's credentials stay with the hub; other headers and the raw target pass", async () => {
    const r = await hub.client({ token }).get(`${base}/a%2Fb/c%20d?x=%2F&y=1`, {
      cookie: 'theme=dark; other=1', 'x-custom': 'kept', 'x-forwarded-for': '10.1.2.3',
    });
    assert.equal(r.status, 200);
    const e = r.body;
    assert.equal(e.url, '/a%2Fb/c%20d?x=%2F&y=1');
    assert.equal(e.headers.authorization, undefined, 'the Bearer token is not forwarded');
    assert.equal(e.headers['x-custom'], 'kept');
    assert.equal(e.headers.cookie, 'theme=dark; other=1');
    assert.equal(e.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
    assert.equal(e.headers['x-forwarded-prefix'], base);
    assert.equal(e.headers.host, `${HOST}:${hub.port}`, 'Host passes unchanged');
    const withCookie = await alice.get(`${base}/x`, { cookie: `${alice.cookie}; theme=light` });
    assert.equal(withCookie.body.headers.cookie, 'theme=light', 'the session cookie is removed');
    assert.equal(r.headers.get('x-echo'), 'yes');
  });

  test('bodies: Content-Length and chunked requests, a chunked streamed answer, redirects kept inside the prefix', async () => {
    const body = crypto.randomBytes(50000);
    const r = await hub.client({ token }).request('PUT', `${base}/put`, body, { 'content-type': 'application/octet-stream' });
    assert.equal(r.body.method, 'PUT');
    assert.equal(r.body.size, body.length);
    assert.equal(r.body.sha256, crypto.createHash('sha256').update(body).digest('hex'));
    // chunked: a stream body
    const stream = new ReadableStream({
      start(c) { c.enqueue(body.subarray(0, 1000)); c.enqueue(body.subarray(1000, 3000)); c.close(); },
    });
    const ch = await fetch(`${hub.base}${base}/chunked-in`, {
      method: 'POST', body: stream, duplex: 'half', headers: { authorization: `Bearer ${token}` },
    });
    const che = await ch.json();
    assert.equal(che.size, 3000);
    assert.equal(che.headers['transfer-encoding'], 'chunked');
    assert.equal(che.sha256, crypto.createHash('sha256').update(body.subarray(0, 3000)).digest('hex'));
    const out = await fetch(`${hub.base}${base}/chunked?n=20`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(out.headers.get('transfer-encoding'), 'chunked');
    assert.equal((await out.arrayBuffer()).byteLength, 20 * 1024);
    const redir = await hub.client({ token }).get(`${base}/redirect`);
    assert.equal(redir.status, 302);
    assert.equal(redir.headers.get('location'), `${base}/elsewhere`);
    // HEAD has no body
    const head = await fetch(`${hub.base}${base}/x`, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
    assert.equal(head.status, 200);
  });

  test('the body limit: 413, by Content-Length or while a chunked body streams', async () => {
    const big = Buffer.alloc(200000, 1);
    const r = await hub.client({ token }).request('POST', `${base}/big`, big);
    assert.equal(r.status, 413);
    const stream = new ReadableStream({
      start(c) { for (let i = 0; i < 20; i++) c.enqueue(Buffer.alloc(10000, i)); c.close(); },
    });
    const ch = await fetch(`${hub.base}${base}/big`, {
      method: 'POST', body: stream, duplex: 'half', headers: { authorization: `Bearer ${token}` },
    }).catch((e) => ({ status: 'cut', e }));
    assert.ok(ch.status === 413 || ch.status === 'cut', `got ${ch.status}`);
    assert.equal((await hub.client({ token }).get(`${base}/after`)).status, 200, 'the hub carries on');
  });

  test('keep-alive connections to the instance are reused', async () => {
    const ports = new Set();
    for (let i = 0; i < 20; i++) {
      const r = await hub.client({ token }).get(`${base}/k${i}`);
      assert.equal(r.status, 200);
      ports.add(r.body.headers['x-forwarded-for']);
    }
    // the echo server sees the same upstream connection: count sockets the hub holds to it
    const inst = (await alice.get(`/api/projects/${project.id}`)).body.instance;
    const fd = fs.readdirSync(`/proc/${hub.pid}/fd`).length;
    assert.ok(fd < 200, `the hub holds ${fd} descriptors`);
    assert.ok(inst.port);
  });

  test('the instance log is rotated past COMFYUI_LOG_MAX_BYTES', async () => {
    const inst = (await alice.get(`/api/projects/${project.id}`)).body.instance;
    for (let i = 0; i < 60; i++) await hub.client({ token }).get(`${base}/log-${i}`);
    const log = path.join(hub.dataDir, 'logs', `comfy_u${inst.user_id}_p${project.id}_${inst.port}.log`);
    // the once-a-second check rotates whenever the log passed 4 KiB, earlier traffic included:
    // wait for a rotated file that holds these requests
    const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
    const rotated = await waitFor(() => [1, 2, 3].map((i) => `${log}.${i}`).find((f) => /GET \/log-/.test(read(f))),
      5000, 'a rotated log with these requests');
    assert.ok(fs.statSync(rotated).size > 4096);
    assert.ok(fs.statSync(log).size < 4096 + 60 * 140, 'the current log was cut');
    const tail = await alice.get(`/api/instances/${inst.id}/log?tail=5`);
    assert.equal(tail.status, 200);
  });

  test('an instance cannot set the hub\'s session cookie; a broken chunked body leaves the hub healthy', async () => {
    const r = await fetch(`${hub.base}${base}/setcookie`, { headers: { authorization: `Bearer ${token}` } });
    const cookies = r.headers.getSetCookie();
    assert.deepEqual(cookies, ['theme=dark; Path=/']);
    const sock = net.connect(hub.port, HOST);
    await new Promise((res) => sock.once('connect', res));
    sock.write(`POST ${base}/prompt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n`);
    await new Promise((res) => { sock.on('close', res); sock.on('error', res); setTimeout(res, 3000); });
    sock.destroy();
    assert.equal((await hub.client({ token }).get(`${base}/after-broken`)).status, 200);
  });

  test('pipelined and raw requests through the proxy', async () => {
    const sock = net.connect(hub.port, HOST);
    await new Promise((r) => sock.once('connect', r));
    let data = '';
    sock.on('data', (d) => { data += d; });
    const req = (p) => `GET ${base}${p} HTTP/1.1\r\nHost: ${HOST}:${hub.port}\r\nAuthorization: Bearer ${token}\r\n\r\n`;
    sock.write(req('/one') + req('/two') + req('/three'));
    await waitFor(() => (data.match(/HTTP\/1\.1 200/g) || []).length === 3 && data.includes('/three'), 5000, 'three answers');
    assert.ok(data.indexOf('/one') < data.indexOf('/two') && data.indexOf('/two') < data.indexOf('/three'));
    sock.destroy();
    await sleep(50);
  });
});
