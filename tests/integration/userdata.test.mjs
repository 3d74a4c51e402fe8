// ComfyUI's user data API (reference §3.20): /users, /settings, /userdata, /v2/userdata, with
// single- and multi-user mode, traversal attempts of every kind, concurrent writes and the
// front end's real calls (POST /userdata/workflows%2Fname.json?overwrite=true&full_info=true).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import net from 'node:net';
import { startServer } from './lib/server.mjs';

const T = { timeout: 60000 };

function client(srv, user) {
  const base = `http://127.0.0.1:${srv.port}`;
  return async (method, route, body, headers = {}) => {
    const h = { ...headers };
    if (user !== undefined) h['comfy-user'] = user;
    const r = await fetch(base + route, { method, body, headers: h });
    const buf = Buffer.from(await r.arrayBuffer());
    const text = buf.toString('utf8');
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    return { status: r.status, text, json, headers: r.headers, buf };
  };
}

// A request sent byte for byte (fetch would normalise "..", "%2e%2e" and the like).
function raw(srv, method, target, { headers = {}, body = '' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    let data = Buffer.alloc(0);
    const hs = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.on('connect', () => sock.write(`${method} ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${hs}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
    sock.on('data', (d) => { data = Buffer.concat([data, d]); });
    sock.on('end', () => {
      const s = data.toString('utf8');
      const status = Number(s.slice(9, 12));
      resolve({ status, body: s.slice(s.indexOf('\r\n\r\n') + 4) });
    });
    sock.on('error', reject);
  });
}

let srv, req, userRoot, outside;

before(async () => {
  outside = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-outside-'));
  fs.writeFileSync(path.join(outside, 'secret.txt'), 'SECRET');
  srv = await startServer();
  req = client(srv);
  userRoot = path.join(srv.baseDir, 'user', 'default');
});

after(async () => {
  await srv.stop();
  fs.rmSync(outside, { recursive: true, force: true });
});

test('GET /users in single-user mode reports migration', T, async () => {
  let r = await req('GET', '/users');
  assert.equal(r.status, 200);
  assert.equal(r.json.storage, 'server');
  assert.equal(typeof r.json.migrated, 'boolean');
  await req('POST', '/settings/x', '1');
  r = await req('GET', '/api/users');
  assert.deepEqual(r.json, { storage: 'server', migrated: true });
});

test('the front end saves, lists, reads, moves and deletes a workflow', T, async () => {
  const wf = JSON.stringify({ nodes: [], links: [], version: 0.4 });
  let r = await req('POST', '/api/userdata/workflows%2Fmy%20flow.json?overwrite=true&full_info=true', wf);
  assert.equal(r.status, 200);
  assert.equal(r.json.path, 'workflows/my flow.json');
  assert.equal(r.json.size, Buffer.byteLength(wf));
  assert.ok(Number.isInteger(r.json.modified) && r.json.modified > 1.6e12, 'modified is integer ms');
  assert.ok(Number.isInteger(r.json.created));
  assert.equal(fs.readFileSync(path.join(userRoot, 'workflows', 'my flow.json'), 'utf8'), wf);

  r = await req('GET', '/api/userdata/workflows%2Fmy%20flow.json');
  assert.equal(r.status, 200);
  assert.equal(r.text, wf);
  assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(r.headers.get('content-disposition'), 'attachment');

  r = await req('GET', '/api/userdata?dir=workflows&recurse=true&split=false&full_info=true');
  assert.equal(r.status, 200);
  assert.equal(r.json.length, 1);
  assert.equal(r.json[0].path, 'my flow.json');

  r = await req('POST', '/api/userdata/workflows%2Fmy%20flow.json/move/workflows%2Frenamed.json?overwrite=false&full_info=true');
  assert.equal(r.status, 200);
  assert.equal(r.json.path, 'workflows/renamed.json');
  assert.ok(!fs.existsSync(path.join(userRoot, 'workflows', 'my flow.json')));

  r = await req('DELETE', '/api/userdata/workflows%2Frenamed.json');
  assert.equal(r.status, 204);
  assert.equal(r.text, '');
  r = await req('DELETE', '/api/userdata/workflows%2Frenamed.json');
  assert.equal(r.status, 404);
  r = await req('GET', '/userdata/workflows%2Frenamed.json');
  assert.equal(r.status, 404);
});

test('POST /userdata: plain reply, overwrite, double-encoded names', T, async () => {
  let r = await req('POST', '/userdata/test.txt', 'one');
  assert.equal(r.status, 200);
  assert.equal(r.json, 'test.txt');
  r = await req('POST', '/userdata/test.txt?overwrite=false', 'two');
  assert.equal(r.status, 409);
  assert.equal(r.text, 'File already exists');
  assert.equal(fs.readFileSync(path.join(userRoot, 'test.txt'), 'utf8'), 'one');
  r = await req('POST', '/userdata/test.txt?overwrite=False', 'three'); // only the exact "false" refuses
  assert.equal(r.status, 200);
  assert.equal(fs.readFileSync(path.join(userRoot, 'test.txt'), 'utf8'), 'three');
  // %252F decodes to %2F in the router, then once more to '/'
  r = await req('POST', '/userdata/sub%252Fdeep%252Fx.json', '{}');
  assert.equal(r.status, 200);
  assert.equal(r.json, 'sub/deep/x.json');
  assert.ok(fs.existsSync(path.join(userRoot, 'sub', 'deep', 'x.json')));
  // "a/./b/../c" is normalised like os.path.abspath and stays inside
  r = await raw(srv, 'POST', '/userdata/n%2F.%2Fb%2F..%2Fc.txt', { body: 'c' });
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body), 'n/c.txt');
  // an empty body is an empty file
  r = await req('POST', '/userdata/empty.bin', '');
  assert.equal(r.status, 200);
  assert.equal(fs.statSync(path.join(userRoot, 'empty.bin')).size, 0);
  // binary content round-trips
  const bin = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
  r = await req('POST', '/userdata/bin.dat', bin);
  assert.equal(r.status, 200);
  r = await req('GET', '/userdata/bin.dat');
  assert.ok(r.buf.equals(bin));
  // writing onto a directory fails like an OS error in ComfyUI
  r = await req('POST', '/userdata/sub', 'x');
  assert.equal(r.status, 400);
});

test('GET /userdata listings', T, async () => {
  for (const f of ['lst/a.json', 'lst/b.txt', 'lst/.hidden', 'lst/d/e.json', 'lst/d/f/g.json', 'lst/.hd/h.json'])
    assert.equal((await req('POST', '/userdata/' + encodeURIComponent(f), 'x')).status, 200);
  let r = await req('GET', '/userdata?dir=lst');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.sort(), ['a.json', 'b.txt']);
  r = await req('GET', '/userdata?dir=lst&recurse=true');
  assert.deepEqual(r.json.sort(), ['a.json', 'b.txt', 'd/e.json', 'd/f/g.json']);
  r = await req('GET', '/userdata?dir=lst&recurse=TRUE&split=true');
  assert.deepEqual(r.json.map((x) => x.join('|')).sort(), ['a.json|a.json', 'b.txt|b.txt', 'd/e.json|d|e.json', 'd/f/g.json|d|f|g.json']);
  r = await req('GET', '/userdata?dir=lst&full_info=true&split=true');
  assert.deepEqual(Object.keys(r.json[0]).sort(), ['created', 'modified', 'path', 'size']);
  r = await req('GET', '/userdata?dir=lst%2Fd');
  assert.deepEqual(r.json, ['e.json']);
  r = await req('GET', '/userdata');
  assert.equal(r.status, 400);
  assert.equal(r.text, 'Directory not provided');
  r = await req('GET', '/userdata?dir=');
  assert.equal(r.status, 400);
  r = await req('GET', '/userdata?dir=nope');
  assert.equal(r.status, 404);
  assert.equal(r.text, 'Directory not found');
  r = await req('GET', '/userdata?dir=..');
  assert.equal(r.status, 403);
  assert.equal(r.text, 'Invalid directory');
  r = await req('GET', '/userdata?dir=%2Fetc');
  assert.equal(r.status, 403);
  r = await req('GET', '/userdata?dir=%252E%252E'); // decoded twice: ".."
  assert.equal(r.status, 403);
});

test('GET /v2/userdata', T, async () => {
  await req('POST', '/userdata/v2%2FZeta.txt', 'zz');
  await req('POST', '/userdata/v2%2Falpha.txt', 'a');
  await req('POST', '/userdata/v2%2Fsub%2Finner.txt', 'i');
  await req('POST', '/userdata/v2%2F.dot', 'd');
  let r = await req('GET', '/v2/userdata?path=v2');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json.map((e) => [e.type, e.path]), [
    ['directory', 'v2/sub'], ['file', 'v2/.dot'], ['file', 'v2/alpha.txt'], ['file', 'v2/sub/inner.txt'], ['file', 'v2/Zeta.txt'],
  ]);
  const zeta = r.json.find((e) => e.name === 'Zeta.txt');
  assert.equal(zeta.size, 2);
  assert.equal(typeof zeta.modified, 'number');
  assert.ok(zeta.modified > 1.6e9 && zeta.modified < 1e11, 'modified is seconds');
  assert.equal((await req('GET', '/v2/userdata?path=v2%2Fsub')).json[0].path, 'v2/sub/inner.txt');
  r = await req('GET', '/api/v2/userdata');
  assert.equal(r.status, 200);
  assert.ok(r.json.some((e) => e.path === 'v2' && e.type === 'directory'));
  assert.ok(!r.json.some((e) => e.path.includes('comfyd-history')), 'the engine history is not user data');
  r = await req('GET', '/v2/userdata?path=missing');
  assert.equal(r.status, 404);
  assert.equal(r.text, 'Requested path not found');
  r = await req('GET', '/v2/userdata?path=v2%2Falpha.txt');
  assert.equal(r.status, 400);
  assert.equal(r.text, 'Requested path is not a directory');
  r = await req('GET', '/v2/userdata?path=..%2F..');
  assert.equal(r.status, 400);
  assert.equal(r.text, 'Invalid path requested');
});

test('traversal attempts never leave the user root', T, async () => {
  const before = fs.readdirSync(path.join(srv.baseDir, 'user')).sort();
  // symlinks placed in the user root that point out
  fs.symlinkSync(outside, path.join(userRoot, 'escape'));
  fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(userRoot, 'secret-link.txt'));
  const attempts = [
    ['GET', '/userdata/..%2Fusers.json'],
    ['GET', '/userdata/..%2F..%2F..%2Fetc%2Fpasswd'],
    ['GET', '/userdata/%2Fetc%2Fpasswd'],
    ['GET', '/userdata/%252E%252E%252Fusers.json'],
    ['GET', '/userdata/%252e%252e%252fcomfyd-history.sqlite3'],
    ['GET', '/userdata/..%2Fcomfyd-history.sqlite3'],
    ['GET', '/userdata/a%2F..%2F..%2Fx'],
    ['GET', '/userdata/..%5Cx'],
    ['GET', '/userdata/escape%2Fsecret.txt'],
    ['GET', '/userdata/secret-link.txt'],
    ['POST', '/userdata/..%2Fevil.txt'],
    ['POST', '/userdata/%2Ftmp%2Fevil.txt'],
    ['POST', '/userdata/escape%2Fevil.txt'],
    ['POST', '/userdata/escape%2Fnew%2Fevil.txt'],
    ['POST', '/userdata/secret-link.txt'],
    ['DELETE', '/userdata/escape%2Fsecret.txt'],
    ['DELETE', '/userdata/..%2Fusers.json'],
    ['POST', '/userdata/test.txt/move/..%2Fmoved.txt'],
    ['POST', '/userdata/test.txt/move/escape%2Fmoved.txt'],
    ['POST', '/userdata/escape%2Fsecret.txt/move/stolen.txt'],
  ];
  for (const [method, target] of attempts) {
    for (const prefix of ['', '/api']) {
      const r = await raw(srv, method, prefix + target, { body: method === 'POST' ? 'EVIL' : '' });
      assert.equal(r.status, 403, `${method} ${prefix}${target} gave ${r.status}: ${r.body}`);
      assert.ok(!r.body.includes('SECRET'));
    }
  }
  assert.deepEqual(fs.readdirSync(outside), ['secret.txt']);
  assert.equal(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8'), 'SECRET');
  assert.deepEqual(fs.readdirSync(path.join(srv.baseDir, 'user')).sort(), before);
  assert.ok(!fs.existsSync('/tmp/evil.txt'));
  // listings do not follow the links out either
  let r = await req('GET', '/userdata?dir=.&recurse=true');
  assert.equal(r.status, 200);
  assert.ok(!r.json.some((p) => p.includes('secret')), JSON.stringify(r.json));
  r = await req('GET', '/userdata?dir=escape');
  assert.equal(r.status, 403);
  r = await req('GET', '/v2/userdata?path=escape');
  assert.equal(r.status, 400);
  r = await req('GET', '/v2/userdata');
  assert.ok(!r.json.some((e) => e.path.includes('secret') || e.path === 'escape'));
  fs.unlinkSync(path.join(userRoot, 'escape'));
  fs.unlinkSync(path.join(userRoot, 'secret-link.txt'));
});

test('a raw path segment with a slash or dot-dot does not reach the handler', T, async () => {
  let r = await raw(srv, 'GET', '/userdata/../users.json');
  assert.notEqual(r.status, 200);
  r = await raw(srv, 'GET', '/userdata/%2e%2e%2fusers.json');
  assert.equal(r.status, 403);
});

test('concurrent writes to one file leave exactly one of the bodies', T, async () => {
  const bodies = Array.from({ length: 40 }, (_, i) => `body-${i}-`.repeat(2000 + i * 37));
  const results = await Promise.all(bodies.map((b) => req('POST', '/userdata/race%2Fone.txt', b)));
  for (const r of results) assert.equal(r.status, 200);
  const content = fs.readFileSync(path.join(userRoot, 'race', 'one.txt'), 'utf8');
  assert.ok(bodies.includes(content), 'the file is one of the bodies, whole');
  assert.deepEqual(fs.readdirSync(path.join(userRoot, 'race')), ['one.txt'], 'no temp files left behind');
});

test('settings round trips', T, async () => {
  let r = await req('GET', '/settings/Comfy.Unset');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'null');
  r = await req('POST', '/settings', JSON.stringify({ 'Comfy.A': 1, 'Comfy.B': 'é' }));
  assert.equal(r.status, 200);
  assert.equal(r.text, '');
  r = await req('POST', '/api/settings/Comfy.C', JSON.stringify({ nested: [1, 2] }));
  assert.equal(r.status, 200);
  r = await req('POST', '/settings', JSON.stringify({ 'Comfy.A': 2 }));
  r = await req('GET', '/api/settings');
  assert.deepEqual(r.json, { 'x': 1, 'Comfy.A': 2, 'Comfy.B': 'é', 'Comfy.C': { nested: [1, 2] } });
  r = await req('GET', '/settings/Comfy.C');
  assert.deepEqual(r.json, { nested: [1, 2] });
  const file = fs.readFileSync(path.join(userRoot, 'comfy.settings.json'), 'utf8');
  assert.ok(file.includes('\n    "Comfy.A": 2,'), 'indent 4');
  assert.ok(file.includes('"\\u00e9"'), 'ASCII escapes as Python writes them');
  // a corrupt file counts as {}
  fs.writeFileSync(path.join(userRoot, 'comfy.settings.json'), '{not json');
  r = await req('GET', '/settings');
  assert.deepEqual(r.json, {});
  r = await req('POST', '/settings/k', '"v"');
  assert.deepEqual((await req('GET', '/settings')).json, { k: 'v' });
  // concurrent single-setting writes are not lost
  await Promise.all(Array.from({ length: 20 }, (_, i) => req('POST', `/settings/s${i}`, String(i))));
  r = await req('GET', '/settings');
  for (let i = 0; i < 20; i++) assert.equal(r.json[`s${i}`], i);
  // bad bodies
  r = await req('POST', '/settings', 'not json');
  assert.equal(r.status, 500);
  r = await req('POST', '/settings', '[1]');
  assert.equal(r.status, 500);
});

test('multi-user: users, isolation, unknown users', T, async () => {
  const m = await startServer({ args: ['--multi-user'], files: { 'user/comfyd-placeholder.txt': 'x' } });
  try {
    const anon = client(m);
    let r = await anon('GET', '/users');
    assert.deepEqual(r.json, { storage: 'server', users: {} });
    r = await anon('POST', '/users', JSON.stringify({ username: 'Alice Smith!' }));
    assert.equal(r.status, 200);
    const alice = r.json;
    assert.match(alice, /^Alice-Smith-_[0-9a-f-]{36}$/);
    r = await anon('POST', '/users', JSON.stringify({ username: 'Alice Smith!' }));
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: 'Duplicate username.' });
    r = await anon('POST', '/users', JSON.stringify({ username: '   ' }));
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: 'username not provided' });
    r = await anon('POST', '/users', JSON.stringify({ username: '__sys' }));
    assert.equal(r.status, 400);
    assert.deepEqual(r.json, { error: 'System User prefix not allowed' });
    r = await anon('POST', '/users', 'nope');
    assert.equal(r.status, 500);
    const bob = (await anon('POST', '/api/users', JSON.stringify({ username: 'bob' }))).json;
    r = await anon('GET', '/users');
    assert.deepEqual(r.json.users, { [alice]: 'Alice Smith!', [bob]: 'bob' });
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(m.baseDir, 'user', 'users.json'), 'utf8')), r.json.users);

    const A = client(m, alice), B = client(m, bob);
    assert.equal((await A('POST', '/userdata/workflows%2Fa.json', 'A-DATA')).status, 200);
    assert.ok(fs.existsSync(path.join(m.baseDir, 'user', alice, 'workflows', 'a.json')));
    assert.equal((await B('GET', '/userdata/workflows%2Fa.json')).status, 404);
    assert.equal((await B('GET', `/userdata/..%2F${encodeURIComponent(alice)}%2Fworkflows%2Fa.json`)).status, 403);
    // (ComfyUI creates parent directories on access, so B's GET above made B's workflows/)
    assert.deepEqual((await B('GET', '/userdata?dir=workflows')).json, []);
    assert.deepEqual((await A('GET', '/userdata?dir=workflows')).json, ['a.json']);
    await A('POST', '/settings/theme', '"dark"');
    assert.equal((await B('GET', '/settings/theme')).text, 'null');
    assert.equal((await A('GET', '/settings/theme')).json, 'dark');

    // unknown users: 500 on user data, 401 on settings, 403 on /v2/userdata
    for (const who of [undefined, 'mallory', '__manager', '', 'users.json', '..']) {
      const U = client(m, who);
      assert.equal((await U('GET', '/userdata/workflows%2Fa.json')).status, 500, `user ${who}`);
      assert.equal((await U('POST', '/userdata/x.json', '1')).status, 500);
      assert.equal((await U('DELETE', '/userdata/x.json')).status, 500);
      assert.equal((await U('POST', '/userdata/x.json/move/y.json')).status, 500);
      assert.equal((await U('GET', '/userdata?dir=workflows')).status, 500);
      assert.equal((await U('GET', '/settings')).status, 401);
      assert.equal((await U('POST', '/settings/a', '1')).status, 401);
      r = await U('GET', '/v2/userdata');
      assert.equal(r.status, 403);
      assert.equal(r.text, 'Invalid user specified in request');
    }
    assert.ok(!fs.existsSync(path.join(m.baseDir, 'user', 'mallory')));
    assert.ok(!fs.existsSync(path.join(m.baseDir, 'user', 'x.json')));
    // a new user without files yet lists []
    const carol = (await anon('POST', '/users', JSON.stringify({ username: 'carol' }))).json;
    r = await client(m, carol)('GET', '/v2/userdata');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, []);
    // users.json edited by another process is seen at once
    const users = JSON.parse(fs.readFileSync(path.join(m.baseDir, 'user', 'users.json'), 'utf8'));
    users.default = 'default';
    fs.writeFileSync(path.join(m.baseDir, 'user', 'users.json'), JSON.stringify(users));
    assert.equal((await anon('POST', '/userdata/d.txt', 'd')).status, 200);
    assert.ok(fs.existsSync(path.join(m.baseDir, 'user', 'default', 'd.txt')));
    // an id naming a file of the user directory (hand-edited table) reaches nothing
    users['comfyd-history.sqlite3'] = 'x';
    users['users.json'] = 'y';
    fs.writeFileSync(path.join(m.baseDir, 'user', 'users.json'), JSON.stringify(users));
    for (const who of ['comfyd-history.sqlite3', 'users.json']) {
      const U = client(m, who);
      for (const route of ['/userdata/.', '/userdata/x', '/userdata?dir=.']) // raw: fetch would drop the "."
        assert.equal((await raw(m, 'GET', route, { headers: { 'comfy-user': who } })).status, 403, `${who} ${route}`);
      assert.equal((await U('GET', '/v2/userdata')).status, 400);
      assert.equal((await U('GET', '/settings')).status, 403);
    }
  } finally {
    await m.stop();
  }
});

test('move: missing source, overwrite=false, plain reply', T, async () => {
  await req('POST', '/userdata/mv%2Fa.txt', 'a');
  await req('POST', '/userdata/mv%2Fb.txt', 'b');
  let r = await req('POST', '/userdata/mv%2Fnope.txt/move/mv%2Fz.txt');
  assert.equal(r.status, 404);
  r = await req('POST', '/userdata/mv%2Fa.txt/move/mv%2Fb.txt?overwrite=false');
  assert.equal(r.status, 409);
  assert.equal(fs.readFileSync(path.join(userRoot, 'mv', 'b.txt'), 'utf8'), 'b');
  r = await req('POST', '/userdata/mv%2Fa.txt/move/mv%2Fb.txt');
  assert.equal(r.status, 200);
  assert.equal(r.json, 'mv/b.txt');
  assert.equal(fs.readFileSync(path.join(userRoot, 'mv', 'b.txt'), 'utf8'), 'a');
  r = await req('POST', '/userdata/mv%2Fb.txt/move/mv2%2Fdeep%2Fc.txt');
  assert.equal(r.status, 200);
  assert.equal(r.json, 'mv2/deep/c.txt');
});

test('GET /userdata/{file} content types', T, async () => {
  await req('POST', '/userdata/page.html', '<script>alert(1)</script>');
  let r = await req('GET', '/userdata/page.html');
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  assert.equal(r.headers.get('content-disposition'), 'attachment');
  await req('POST', '/userdata/user.css', 'body{}');
  r = await req('GET', '/userdata/user.css');
  assert.equal(r.headers.get('content-type'), 'text/css');
  assert.equal(r.headers.get('content-disposition'), 'inline');
  r = await req('GET', '/userdata/test.txt');
  assert.match(r.headers.get('content-type'), /^text\/plain/);
  r = await req('GET', '/userdata/lst');
  assert.equal(r.status, 404);
});
