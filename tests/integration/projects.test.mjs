// Projects, workflows and the shared library (ComfyTavern's API, manager-and-tavern.md Part B)
// through the real server: every route and its error codes, traversal attempts in ids,
// ETag/If-Match under concurrent writers, crash safety of writes (SIGKILL mid-write), and the
// UI-to-API conversion on the hand-written fixtures in tests/fixtures/workflows/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, REPO_ROOT, sleep } from './lib/server.mjs';
import { request } from './lib/http.mjs';

const T = { timeout: 120000 };
const FIXTURES = path.join(REPO_ROOT, 'tests', 'fixtures', 'workflows');

function api(srv) {
  const base = `http://127.0.0.1:${srv.port}`;
  return async (method, route, body, headers = {}) => {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(base + route, init);
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch {}
    return { status: r.status, json, text, etag: r.headers.get('etag'), headers: r.headers };
  };
}

function assertError(res, status) {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text}`);
  assert.equal(typeof res.json?.error, 'string', `error body: ${res.text}`);
}

test('project routes and their error codes', T, async () => {
  const srv = await startServer();
  const call = api(srv);
  try {
    let r = await call('GET', '/api/projects');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, []);

    r = await call('POST', '/api/projects', { name: 'My Project', description: 'first' });
    assert.equal(r.status, 201);
    assert.equal(r.json.id, 'My Project');
    assert.equal(r.json.name, 'My Project');
    assert.equal(r.json.description, 'first');
    assert.ok(r.json.createdAt && r.json.updatedAt);
    assert.match(r.etag, /^"[0-9a-f]{64}"$/);
    assert.ok(fs.existsSync(path.join(srv.baseDir, 'projects', 'My Project', 'project.json')));
    assert.ok(fs.statSync(path.join(srv.baseDir, 'projects', 'My Project', 'workflows')).isDirectory());

    assertError(await call('POST', '/api/projects', { name: 'My Project' }), 409);
    assertError(await call('POST', '/api/projects', { name: '' }), 400);
    assertError(await call('POST', '/api/projects', { description: 'no name' }), 400);
    assertError(await call('POST', '/api/projects', '{broken'), 400);
    assertError(await call('POST', '/api/projects', '[1]'), 400);
    assertError(await call('POST', '/api/projects', { name: '..' }), 400);
    assertError(await call('POST', '/api/projects', { name: 'x', id: '../escape' }), 400);

    r = await call('GET', '/api/projects');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.map((p) => p.id), ['My Project']);

    const pid = encodeURIComponent('My Project');
    r = await call('GET', `/api/projects/${pid}/metadata`);
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'My Project');
    const metaTag = r.etag;
    assert.match(metaTag, /^"[0-9a-f]{64}"$/);
    r = await call('GET', `/api/projects/${pid}/metadata`, undefined, { 'If-None-Match': metaTag });
    assert.equal(r.status, 304);
    assertError(await call('GET', '/api/projects/nope/metadata'), 404);

    // metadata update: partial, id/createdAt kept, stale If-Match refused
    const created = (await call('GET', `/api/projects/${pid}/metadata`)).json.createdAt;
    r = await call('PUT', `/api/projects/${pid}/metadata`, { description: 'second', createdAt: 'x' }, { 'If-Match': metaTag });
    assert.equal(r.status, 200);
    assert.equal(r.json.description, 'second');
    assert.equal(r.json.name, 'My Project');
    assert.equal(r.json.createdAt, created);
    assert.notEqual(r.etag, metaTag);
    assertError(await call('PUT', `/api/projects/${pid}/metadata`, { description: 'third' }, { 'If-Match': metaTag }), 412);
    assertError(await call('PUT', `/api/projects/${pid}/metadata`, { id: 'other' }), 400);
    assertError(await call('PUT', `/api/projects/${pid}/metadata`, { name: 42 }), 400);
    assertError(await call('PUT', '/api/projects/nope/metadata', { description: 'x' }), 404);
    r = await call('PUT', `/api/projects/${pid}`, { description: 'tavern path' }); // ComfyTavern's own route
    assert.equal(r.status, 200);
    assert.equal(r.json.description, 'tavern path');

    // delete: into the recycle bin
    assertError(await call('DELETE', `/api/projects/${pid}`, undefined, { 'If-Match': metaTag }), 412);
    r = await call('DELETE', `/api/projects/${pid}`);
    assert.equal(r.status, 204);
    assertError(await call('DELETE', `/api/projects/${pid}`), 404);
    assert.deepEqual((await call('GET', '/api/projects')).json, []);
    const bin = fs.readdirSync(path.join(srv.baseDir, 'projects', '.recycle_bin'));
    assert.equal(bin.length, 1);
    assert.match(bin[0], /^My Project_\d+$/);
  } finally {
    await srv.stop();
  }
});

test('workflow routes and their error codes', T, async () => {
  const srv = await startServer();
  const call = api(srv);
  try {
    assert.equal((await call('POST', '/api/projects', { name: 'p' })).status, 201);
    let r = await call('GET', '/api/projects/p/workflows');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, []);
    assertError(await call('GET', '/api/projects/nope/workflows'), 404);

    const ui = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'basic.ui.json'), 'utf8'));
    r = await call('POST', '/api/projects/p/workflows', { name: 'Basic', description: 'd', ...ui });
    assert.equal(r.status, 201);
    const wid = r.json.id;
    assert.match(wid, /^[0-9a-f-]{36}$/);
    assert.equal(r.json.name, 'Basic');
    assert.deepEqual(r.json.nodes, ui.nodes);
    assert.deepEqual(r.json.links, ui.links);
    assert.ok(r.json.createdAt && r.json.updatedAt);
    const tag1 = r.etag;
    assert.ok(fs.existsSync(path.join(srv.baseDir, 'projects', 'p', 'workflows', `${wid}.json`)));

    // an API-format workflow as well
    const apiDoc = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'basic.api.json'), 'utf8'));
    r = await call('POST', '/api/projects/p/workflows', { id: 'api-one', name: 'As API', prompt: apiDoc });
    assert.equal(r.status, 201);
    assert.equal(r.json.id, 'api-one');

    assertError(await call('POST', '/api/projects/p/workflows', { name: 'Basic' }), 409); // name taken
    assertError(await call('POST', '/api/projects/p/workflows', { id: 'api-one', name: 'Other' }), 409); // id taken
    assertError(await call('POST', '/api/projects/p/workflows', { nodes: [] }), 400); // no name
    assertError(await call('POST', '/api/projects/p/workflows', { name: 'n', nodes: {} }), 400);
    assertError(await call('POST', '/api/projects/p/workflows', { name: 'n', prompt: { 1: { inputs: {} } } }), 400);
    assertError(await call('POST', '/api/projects/p/workflows', { id: '../../x', name: 'n' }), 400);
    assertError(await call('POST', '/api/projects/p/workflows', 'nope'), 400);
    assertError(await call('POST', '/api/projects/nope/workflows', { name: 'n' }), 404);

    r = await call('GET', '/api/projects/p/workflows');
    assert.equal(r.status, 200);
    const byId = Object.fromEntries(r.json.map((w) => [w.id, w]));
    assert.equal(byId[wid].name, 'Basic');
    assert.equal(byId[wid].description, 'd');
    assert.equal(byId[wid].format, 'ui');
    assert.equal(byId['api-one'].format, 'api');

    r = await call('GET', `/api/projects/p/workflows/${wid}`);
    assert.equal(r.status, 200);
    assert.equal(r.etag, tag1);
    assert.equal(r.json.name, 'Basic');
    assertError(await call('GET', '/api/projects/p/workflows/missing'), 404);
    assertError(await call('GET', '/api/projects/nope/workflows/missing'), 404);

    // PUT: If-Match, rename, createdAt kept, id mismatch, name clash
    r = await call('PUT', `/api/projects/p/workflows/${wid}`, { ...r.json, name: 'Basic 2', createdAt: 'ignored' }, { 'If-Match': tag1 });
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'Basic 2');
    const tag2 = r.etag;
    assert.notEqual(tag2, tag1);
    assert.notEqual(r.json.createdAt, 'ignored');
    assertError(await call('PUT', `/api/projects/p/workflows/${wid}`, { name: 'Basic 3' }, { 'If-Match': tag1 }), 412);
    assertError(await call('PUT', `/api/projects/p/workflows/${wid}`, { id: 'api-one', name: 'x' }), 400);
    assertError(await call('PUT', `/api/projects/p/workflows/${wid}`, { name: 'As API' }), 409);
    assertError(await call('PUT', `/api/projects/p/workflows/${wid}`, '{'), 400);
    assertError(await call('PUT', '/api/projects/p/workflows/missing', { name: 'x' }), 404);
    r = await call('GET', `/api/projects/p/workflows/${wid}`, undefined, { 'If-None-Match': tag2 });
    assert.equal(r.status, 304);
    r = await call('PUT', `/api/projects/p/workflows/${wid}`, { name: 'Basic 2', nodes: [] }, { 'If-Match': `"nope", ${tag2}` });
    assert.equal(r.status, 200);

    // DELETE
    assertError(await call('DELETE', `/api/projects/p/workflows/${wid}`, undefined, { 'If-Match': tag2 }), 412);
    assert.equal((await call('DELETE', `/api/projects/p/workflows/${wid}`)).status, 204);
    assertError(await call('DELETE', `/api/projects/p/workflows/${wid}`), 404);
    assertError(await call('GET', `/api/projects/p/workflows/${wid}`), 404);
    const binDir = path.join(srv.baseDir, 'projects', '.recycle_bin', 'p', 'workflows');
    assert.equal(fs.readdirSync(binDir).length, 1);
    assert.deepEqual((await call('GET', '/api/projects/p/workflows')).json.map((w) => w.id), ['api-one']);
  } finally {
    await srv.stop();
  }
});

test('ids cannot escape their folder', T, async () => {
  const srv = await startServer();
  const call = api(srv);
  try {
    assert.equal((await call('POST', '/api/projects', { name: 'p' })).status, 201);
    fs.writeFileSync(path.join(srv.baseDir, 'secret.json'), '{"name":"secret"}');
    // sent on a raw socket: fetch() would turn %2e%2e and . segments into path navigation
    const raw = async (method, route, body) => {
      const res = await request(srv.port, { method, path: route, body: body === undefined ? null : JSON.stringify(body) });
      let json = null;
      try { json = JSON.parse(res.text); } catch {}
      return { status: res.status, text: res.text, json };
    };
    const bad = ['%2e%2e', '.', '..', '%2e', '..%2F..%2Fsecret', 'a%2Fb', 'a%5Cb', '.recycle_bin',
      '%2e%2e%2f%2e%2e', 'a%3Ab', '%FF', 'x.', '%20'];
    for (const id of bad) {
      assertError(await raw('GET', `/api/projects/${id}/metadata`), 400);
      assertError(await raw('GET', `/api/projects/${id}/workflows`), 400);
      assertError(await raw('POST', `/api/projects/${id}/workflows`, { name: 'x' }), 400);
      assertError(await raw('PUT', `/api/projects/${id}/metadata`, { name: 'x' }), 400);
      assertError(await raw('DELETE', `/api/projects/${id}`), 400);
      assertError(await raw('GET', `/api/projects/p/workflows/${id}`), 400);
      assertError(await raw('PUT', `/api/projects/p/workflows/${id}`, { name: 'x' }), 400);
      assertError(await raw('DELETE', `/api/projects/p/workflows/${id}`), 400);
      assertError(await raw('GET', `/api/workflows/${id}`), 400);
    }
    // the router itself refuses a NUL in a segment (404); either way nothing is touched
    for (const id of ['%00', 'x%00y']) {
      for (const p of [`/api/projects/${id}/metadata`, `/api/projects/p/workflows/${id}`]) {
        const res = await raw('GET', p);
        assert.ok([400, 404].includes(res.status), `${p}: ${res.status}`);
      }
    }
    for (const p of ['/api/projects/../../secret/metadata', '/api/projects/p/workflows/../../../secret']) {
      const res = await request(srv.port, { path: p });
      assert.ok([400, 404].includes(res.status), `${p}: ${res.status}`);
      assert.ok(!res.text.includes('secret"'), `${p} leaked: ${res.text}`);
    }
    // a symlinked project folder that leads out is refused
    fs.symlinkSync(srv.baseDir, path.join(srv.baseDir, 'projects', 'evil'));
    assertError(await call('GET', '/api/projects/evil/metadata'), 400);
    assert.ok(fs.existsSync(path.join(srv.baseDir, 'secret.json')));
  } finally {
    await srv.stop();
  }
});

test('shared workflow library', T, async () => {
  const srv = await startServer({
    files: {
      'library/workflows/alpha.json': JSON.stringify({ id: 'alpha', name: 'Alpha', nodes: [] }),
      'library/workflows/beta.json': JSON.stringify({ name: 'Beta', nodes: [], links: [] }),
      'library/workflows/broken.json': '{not json',
      'library/workflows/notes.txt': 'ignored',
    },
  });
  const call = api(srv);
  try {
    let r = await call('GET', '/api/workflows');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, [{ id: 'alpha', name: 'Alpha' }, { id: 'beta', name: 'Beta' }]);
    r = await call('GET', '/api/workflows/alpha');
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'Alpha');
    assert.match(r.etag, /^"[0-9a-f]{64}"$/);
    assertError(await call('GET', '/api/workflows/missing'), 404);
    assert.equal((await call('POST', '/api/workflows', { name: 'x' })).status, 405);
  } finally {
    await srv.stop();
  }
});

test('concurrent writers with If-Match: exactly one wins', T, async () => {
  const srv = await startServer();
  const call = api(srv);
  try {
    assert.equal((await call('POST', '/api/projects', { name: 'p' })).status, 201);
    const r0 = await call('POST', '/api/projects/p/workflows', { id: 'w', name: 'W', nodes: [] });
    assert.equal(r0.status, 201);
    for (let round = 0; round < 3; round++) {
      const { etag } = await call('GET', '/api/projects/p/workflows/w');
      const N = 24;
      const results = await Promise.all(Array.from({ length: N }, (_, i) =>
        call('PUT', '/api/projects/p/workflows/w', { name: 'W', nodes: [], writer: i }, { 'If-Match': etag })));
      const ok = results.filter((x) => x.status === 200);
      const stale = results.filter((x) => x.status === 412);
      assert.equal(ok.length, 1, `statuses: ${results.map((x) => x.status)}`);
      assert.equal(stale.length, N - 1);
      const now = await call('GET', '/api/projects/p/workflows/w');
      assert.equal(now.json.writer, ok[0].json.writer);
      assert.equal(now.etag, ok[0].etag);
    }
    // two projects created at once under the same name: one 201, one 409
    const both = await Promise.all([call('POST', '/api/projects', { name: 'twin' }), call('POST', '/api/projects', { name: 'twin' })]);
    assert.deepEqual(both.map((x) => x.status).sort(), [201, 409]);
  } finally {
    await srv.stop();
  }
});

// The content of version k of workflow w: big enough that a write takes a while.
function bigWorkflow(w, k) {
  const nodes = [];
  for (let i = 0; i < 6000; i++) {
    nodes.push({ id: i, type: 'IntAdd', mode: 0, widgets_values: [k, i], properties: { pad: `w${w}-v${k}-`.repeat(8) } });
  }
  return { name: `wf${w}`, nodes, links: [], marker: k };
}

test('a process killed during writes leaves every workflow whole', T, async (t) => {
  const baseDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'comfyd-it-proj-'));
  const W = 4;
  const dir = path.join(baseDir, 'projects', 'crash', 'workflows');
  try {
    let srv = await startServer({ baseDir });
    let call = api(srv);
    assert.equal((await call('POST', '/api/projects', { name: 'crash' })).status, 201);
    for (let w = 0; w < W; w++) {
      assert.equal((await call('POST', '/api/projects/crash/workflows', { id: `w${w}`, ...bigWorkflow(w, 0) })).status, 201);
    }
    let interrupted = 0;
    let completed = 0;
    // Several rounds: writers keep PUTting new versions of every workflow, the server is
    // SIGKILLed at a varying moment, restarted on the same directory, and checked.
    for (let round = 1; round <= 4; round++) {
      let stop = false;
      let done = 0;
      const writer = async (w, c) => {
        for (let k = round * 100000 + c * 10000 + 1; !stop; k++) {
          try {
            const r = await call('PUT', `/api/projects/crash/workflows/w${w}`, bigWorkflow(w, k));
            if (r.status === 200) done++;
          } catch { return; }
        }
      };
      const writers = [];
      for (let w = 0; w < W; w++) for (let c = 0; c < 3; c++) writers.push(writer(w, c));
      while (done < 4) await sleep(5);
      await sleep(20 + round * 37);
      await srv.kill();
      stop = true;
      await Promise.all(writers);
      completed += done;
      interrupted += fs.readdirSync(dir).filter((f) => f.startsWith('.')).length;

      srv = await startServer({ baseDir });
      call = api(srv);
      const all = fs.readdirSync(dir);
      assert.deepEqual(all.filter((f) => f.startsWith('.')), [], 'the restart sweeps interrupted temp files');
      const files = all.filter((f) => !f.startsWith('.'));
      assert.deepEqual(files.sort(), Array.from({ length: W }, (_, w) => `w${w}.json`));
      for (let w = 0; w < W; w++) {
        const doc = JSON.parse(fs.readFileSync(path.join(dir, `w${w}.json`), 'utf8'));
        const want = bigWorkflow(w, doc.marker);
        assert.deepEqual(doc.nodes, want.nodes, `w${w} is not any written version`);
        assert.equal(doc.name, want.name);
        const r = await call('GET', `/api/projects/crash/workflows/w${w}`);
        assert.equal(r.status, 200);
        assert.equal(r.json.marker, doc.marker);
      }
      assert.equal((await call('GET', '/api/projects/crash/workflows')).json.length, W);
    }
    // temp files left by the writes the kills cut short show that they hit mid-write
    t.diagnostic(`${completed} PUTs completed; ${interrupted} interrupted writes left temp files`);
    await srv.stop();
  } finally {
    await fsp.rm(baseDir, { recursive: true, force: true });
  }
});

test('POST /api/workflow/convert on the fixtures', T, async () => {
  const srv = await startServer();
  const call = api(srv);
  try {
    for (const stem of ['basic', 'mute_bypass', 'reroute_primitive']) {
      const ui = fs.readFileSync(path.join(FIXTURES, `${stem}.ui.json`), 'utf8');
      const want = JSON.parse(fs.readFileSync(path.join(FIXTURES, `${stem}.api.json`), 'utf8'));
      const r = await call('POST', '/api/workflow/convert', ui);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, want, stem);
      // the route is also served without /api, as every ComfyUI route
      assert.deepEqual((await call('POST', '/workflow/convert', ui)).json, want);
      // wrapped in {"workflow": ...} too
      assert.deepEqual((await call('POST', '/api/workflow/convert', `{"workflow": ${ui}}`)).json, want);
    }
    // the converted graphs are prompts the server accepts
    for (const stem of ['basic', 'reroute_primitive']) {
      const prompt = JSON.parse(fs.readFileSync(path.join(FIXTURES, `${stem}.api.json`), 'utf8'));
      const r = await call('POST', '/prompt', { prompt });
      assert.equal(r.status, 200, `${stem}: ${r.text}`);
    }
    const unknown = fs.readFileSync(path.join(FIXTURES, 'unknown_node.ui.json'), 'utf8');
    let r = await call('POST', '/api/workflow/convert', unknown);
    assertError(r, 400);
    assert.match(r.json.error, /FancySamplerThatDoesNotExist/);
    assertError(await call('POST', '/api/workflow/convert', '{'), 400);
    assertError(await call('POST', '/api/workflow/convert', { hello: 1 }), 400);
    // API format passes through unchanged
    const apiDoc = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'basic.api.json'), 'utf8'));
    r = await call('POST', '/api/workflow/convert', apiDoc);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, apiDoc);
  } finally {
    await srv.stop();
  }
});
