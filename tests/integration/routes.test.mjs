// The informational routes (§3.12–3.15), GET /, 404 and 405, at both `/x` and `/api/x`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startServer, COMFYD_BIN } from './lib/server.mjs';
import { request, getJson } from './lib/http.mjs';
import { pyDumps } from './lib/pyjson.mjs';

const JSON_TYPE = 'application/json; charset=utf-8';
const PREFIXES = ['', '/api'];
const T = { timeout: 20000 };

const INDEX_HTML = '<!doctype html><html><head><title>test front end</title></head><body>front-end-root index</body></html>\n';

/** Asserts the common shape of a JSON answer and that it is formatted as Python's json.dumps. */
function assertPyJson(res, what) {
  assert.equal(res.status, 200, `${what}: status`);
  assert.equal(res.headers['content-type'], JSON_TYPE, `${what}: Content-Type`);
  assert.equal(res.text, pyDumps(res.json), `${what}: body is not formatted like Python json.dumps`);
}

function assertSystemStats(json, expectedArgv) {
  assert.equal(typeof json, 'object');
  const { system, devices } = json;
  assert.equal(typeof system, 'object', 'system');
  assert.equal(system.os, 'posix');
  for (const k of ['ram_total', 'ram_free']) {
    assert.ok(Number.isInteger(system[k]) && system[k] > 0, `${k} must be a positive integer, got ${system[k]}`);
  }
  assert.ok(system.ram_free <= system.ram_total, `ram_free ${system.ram_free} > ram_total ${system.ram_total}`);
  // comfyui_version: the ComfyUI release whose API comfyd follows (0.8.x); comfyd's own version
  // beside it, both as `comfyd --version` prints them.
  const [, ours, api] = execFileSync(COMFYD_BIN, ['--version'], { encoding: 'utf8' }).match(/^comfyd (\S+) \(ComfyUI API (\S+)\)/);
  assert.match(system.comfyui_version, /^0\.8\.\d+$/);
  assert.equal(system.comfyui_version, api);
  assert.equal(system.comfyd_version, ours);
  // The other keys of the snapshot's system dict, with their types.
  for (const k of ['required_frontend_version', 'installed_templates_version', 'required_templates_version']) {
    assert.ok(k in system, `system.${k} missing`);
    assert.ok(system[k] === null || typeof system[k] === 'string', `system.${k} must be a string or null`);
  }
  assert.equal(typeof system.python_version, 'string', 'system.python_version');
  assert.equal(typeof system.pytorch_version, 'string', 'system.pytorch_version');
  assert.equal(typeof system.embedded_python, 'boolean', 'system.embedded_python');
  assert.ok(Array.isArray(system.argv), 'system.argv must be an array');
  assert.equal(typeof system.argv[0], 'string');
  assert.deepEqual(system.argv.slice(1), expectedArgv, 'system.argv[1:] must be the arguments comfyd was started with');

  assert.ok(Array.isArray(devices), 'devices must be an array');
  assert.equal(devices.length, 1, 'exactly one device');
  const d = devices[0];
  assert.equal(d.name, 'cpu');
  assert.equal(d.type, 'cpu');
  assert.ok('index' in d, 'devices[0].index missing');
  assert.equal(d.index, null);
  for (const k of ['vram_total', 'vram_free', 'torch_vram_total', 'torch_vram_free']) {
    assert.ok(Number.isInteger(d[k]) && d[k] >= 0, `devices[0].${k} must be a non-negative integer, got ${d[k]}`);
  }
}

describe('default server with a front-end root and embeddings', () => {
  let srv;
  before(async () => {
    srv = await startServer({
      files: {
        // Created in an order unrelated to the sorted order the API returns.
        'models/embeddings/zeta.safetensors': 'z',
        'models/embeddings/sub/deeper/gamma.safetensors': 'g',
        'models/embeddings/alpha.pt': 'a',
        'models/embeddings/sub/beta.bin': 'b',
      },
      frontEnd: {
        'index.html': INDEX_HTML,
        'other.js': '// not an extension: outside extensions/\n',
        'extensions/top.js': '// top\n',
        'extensions/core/widgets.js': '// widgets\n',
        'extensions/core/deep/x.js': '// x\n',
        'extensions/core/style.css': 'body{}\n',
        'extensions/readme.md': '# not js\n',
      },
    });
  });
  after(async () => { await srv?.stop(); });

  for (const prefix of PREFIXES) {
    test(`GET ${prefix}/system_stats has the snapshot's shape`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/system_stats`);
      assertPyJson(res, `${prefix}/system_stats`);
      assertSystemStats(res.json, srv.argv);
    });

    test(`GET ${prefix}/features is exactly the default feature dict`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/features`);
      assertPyJson(res, `${prefix}/features`);
      assert.equal(res.text, '{"supports_preview_metadata": true, "max_upload_size": 104857600}');
    });

    test(`GET ${prefix}/embeddings lists model files recursively, extensions stripped, sorted`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/embeddings`);
      assertPyJson(res, `${prefix}/embeddings`);
      assert.deepEqual(res.json, ['alpha', 'sub/beta', 'sub/deeper/gamma', 'zeta']);
    });

    test(`GET ${prefix}/extensions lists every .js under <front-end-root>/extensions`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/extensions`);
      assertPyJson(res, `${prefix}/extensions`);
      assert.ok(Array.isArray(res.json));
      // glob order is the file system's; compare as sets.
      assert.deepEqual([...res.json].sort(), ['/extensions/core/deep/x.js', '/extensions/core/widgets.js', '/extensions/top.js']);
    });

    test(`GET ${prefix}/ serves the front-end root's index.html, not cached`, T, async () => {
      const res = await request(srv.port, { path: `${prefix}/` });
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'] || '', /^text\/html\b/);
      assert.equal(res.text, INDEX_HTML);
      assert.equal(res.headers['cache-control'], 'no-cache');
      assert.equal(res.headers['pragma'], 'no-cache');
      assert.equal(res.headers['expires'], '0');
    });

    test(`HEAD ${prefix}/system_stats answers 200 without a body`, T, async () => {
      const res = await request(srv.port, { method: 'HEAD', path: `${prefix}/system_stats`, headers: { Connection: 'close' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.body.length, 0);
    });
  }

  test('GET /system_stats numbers are live and consistent across prefixes', T, async () => {
    const a = (await getJson(srv.port, '/system_stats')).json;
    const b = (await getJson(srv.port, '/api/system_stats')).json;
    assert.equal(a.system.ram_total, b.system.ram_total, 'ram_total is a constant of the machine');
    assert.deepEqual(a.system.argv, b.system.argv);
    assert.equal(a.devices[0].vram_total, b.devices[0].vram_total);
  });

  test('embeddings only lists files with model extensions (a .txt is skipped)', T, async () => {
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    await fs.writeFile(path.join(srv.baseDir, 'models/embeddings/notes.txt'), 'not a model');
    try {
      const res = await getJson(srv.port, '/embeddings');
      assert.equal(res.status, 200);
      assert.ok(!res.json.includes('notes'), `notes.txt must not be listed: ${res.text}`);
    } finally {
      await fs.rm(path.join(srv.baseDir, 'models/embeddings/notes.txt'));
    }
  });

  test('embeddings reflect files added after startup', T, async () => {
    const fs = await import('node:fs/promises');
    const path = await import('node:path');
    const p = path.join(srv.baseDir, 'models/embeddings/later.safetensors');
    await fs.writeFile(p, 'l');
    try {
      const res = await getJson(srv.port, '/embeddings');
      assert.deepEqual(res.json, ['alpha', 'later', 'sub/beta', 'sub/deeper/gamma', 'zeta']);
    } finally {
      await fs.rm(p);
    }
  });

  for (const path of ['/nope', '/api/nope', '/system_stats/extra', '/api/api/system_stats', '/featuresx', '/SYSTEM_STATS']) {
    test(`GET ${path} is 404`, T, async () => {
      const res = await request(srv.port, { path });
      assert.equal(res.status, 404);
    });
  }

  test('POST to an unknown path is 404', T, async () => {
    const res = await request(srv.port, { method: 'POST', path: '/api/nope', body: '{}' });
    assert.equal(res.status, 404);
  });

  for (const [method, path] of [
    ['POST', '/system_stats'], ['POST', '/api/system_stats'], ['PUT', '/features'], ['DELETE', '/api/features'],
    ['POST', '/embeddings'], ['PATCH', '/api/embeddings'], ['POST', '/extensions'], ['DELETE', '/api/extensions'],
  ]) {
    test(`${method} ${path} is 405`, T, async () => {
      const res = await request(srv.port, { method, path, body: method === 'DELETE' ? null : '{}' });
      assert.equal(res.status, 405);
    });
  }

  test('the server still answers after the 404s and 405s', T, async () => {
    const res = await getJson(srv.port, '/system_stats');
    assert.equal(res.status, 200);
  });
});

describe('server without a front-end root, --max-upload-size 100', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-upload-size', '100'] }); });
  after(async () => { await srv?.stop(); });

  for (const prefix of PREFIXES) {
    test(`GET ${prefix}/features reports max_upload_size as a float when the flag is given`, T, async () => {
      const res = await request(srv.port, { path: `${prefix}/features` });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-type'], JSON_TYPE);
      assert.equal(res.text, '{"supports_preview_metadata": true, "max_upload_size": 104857600.0}');
    });

    test(`GET ${prefix}/system_stats argv includes the extra flag`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/system_stats`);
      assertPyJson(res, `${prefix}/system_stats`);
      assertSystemStats(res.json, srv.argv);
      assert.ok(res.json.system.argv.includes('--max-upload-size'));
    });

    test(`GET ${prefix}/embeddings is [] when there is no embeddings folder`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/embeddings`);
      assertPyJson(res, `${prefix}/embeddings`);
      assert.equal(res.text, '[]');
    });

    test(`GET ${prefix}/extensions is a list of /extensions/*.js URLs`, T, async () => {
      const res = await getJson(srv.port, `${prefix}/extensions`);
      assertPyJson(res, `${prefix}/extensions`);
      assert.ok(Array.isArray(res.json));
      for (const e of res.json) assert.match(e, /^\/extensions\/.+\.js$/);
    });

    test(`GET ${prefix}/ serves an HTML page of comfyd's own`, T, async () => {
      const res = await request(srv.port, { path: `${prefix}/` });
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'] || '', /^text\/html\b/);
      assert.match(res.text, /<html/i);
    });
  }
});

describe('--max-upload-size 0.5', () => {
  let srv;
  before(async () => { srv = await startServer({ args: ['--max-upload-size', '0.5'] }); });
  after(async () => { await srv?.stop(); });

  test('GET /features reports 0.5 MB as 524288.0', T, async () => {
    const res = await request(srv.port, { path: '/features' });
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"supports_preview_metadata": true, "max_upload_size": 524288.0}');
  });
});

test('GET /models and /models/{folder} list the model folders and their files', { timeout: 30000 }, async () => {
  const srv = await startServer({ files: {
    'models/checkpoints/b.safetensors': 'x', 'models/checkpoints/sub/a.ckpt': 'x', 'models/checkpoints/notes.txt': 'x',
    'models/checkpoints/.git/c.safetensors': 'x', 'models/clip/t5.safetensors': 'x', 'models/classifiers/noext': 'x',
    'models/classifiers/with.ext': 'x',
  } });
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    const names = await (await fetch(`${base}/api/models`)).json();
    assert.deepEqual(names.slice(0, 5), ['checkpoints', 'configs', 'loras', 'vae', 'text_encoders']);
    assert.ok(names.includes('classifiers') && names.includes('audio_encoders'));
    assert.deepEqual(await (await fetch(`${base}/models/checkpoints`)).json(), ['b.safetensors', 'sub/a.ckpt']);
    assert.deepEqual(await (await fetch(`${base}/models/text_encoders`)).json(), ['t5.safetensors']);
    assert.deepEqual(await (await fetch(`${base}/models/classifiers`)).json(), ['noext']);
    assert.equal((await fetch(`${base}/models/clip`)).status, 404, 'legacy aliases are not folders here');
    assert.equal((await fetch(`${base}/models/..%2F..%2Fetc`)).status, 404);
  } finally {
    await srv.stop();
  }
});
