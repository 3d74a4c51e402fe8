// Static files of --front-end-root (§2.2, §2.3): Content-Type, ETag / If-None-Match, Range,
// Cache-Control rules, HEAD, no /api prefix, and no way out of the root.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { startServer } from './lib/server.mjs';
import { RawConn, request, buildRequest, exchange } from './lib/http.mjs';

const T = { timeout: 20000 };
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000' + '1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082', 'hex');
const BIG = crypto.randomBytes(3 * 1024 * 1024 + 17);
const TEXT = 'abcdefghijklmnopqrstuvwxyz0123456789\n';

const FILES = {
  'index.html': '<!doctype html><title>x</title>\n',
  'page.html': '<!doctype html><title>page</title>\n',
  'main.js': 'console.log("main");\n',
  'mod.mjs': 'export const x = 1;\n',
  'style.css': 'body { color: red; }\n',
  'img.png': PNG,
  'PHOTO.PNG': PNG,
  'pic.jpg': PNG,
  'pic.webp': PNG,
  'icon.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>\n',
  'data.json': '{"a": 1}\n',
  'templates/index.json': '[]\n',
  'templates/index_en.json': '[]\n',
  'notes.txt': TEXT,
  'blob.qqqunknown': 'zzz',
  'code.wasm': Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]),
  'with space.txt': 'spaced\n',
  'extensions/core/a.js': '// a\n',
  'sub/deep/file.txt': 'deep\n',
  'big.bin': BIG,
};

function mediaType(res) {
  return (res.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
}

describe('static files of the front-end root', () => {
  let srv;
  before(async () => {
    srv = await startServer({ frontEnd: FILES, files: { 'secret.txt': 'TOP-SECRET\n' } });
    // A symlink inside the root that points outside it.
    await fs.symlink(path.join(srv.baseDir, 'secret.txt'), path.join(srv.frontEndRoot, 'link-out.txt'));
  });
  after(async () => { await srv?.stop(); });

  test('files are served with their exact bytes', T, async () => {
    for (const [rel, content] of Object.entries(FILES)) {
      if (rel.includes(' ')) continue;
      const res = await request(srv.port, { path: '/' + rel, timeoutMs: 10000 });
      assert.equal(res.status, 200, rel);
      assert.ok(Buffer.compare(res.body, Buffer.from(content)) === 0, `${rel}: body differs`);
      assert.equal(Number(res.headers['content-length'] ?? res.body.length), res.body.length, `${rel}: Content-Length`);
    }
  });

  const types = [
    ['/index.html', ['text/html']],
    ['/page.html', ['text/html']],
    ['/main.js', ['application/javascript', 'text/javascript']],
    ['/mod.mjs', ['application/javascript', 'text/javascript']],
    ['/style.css', ['text/css']],
    ['/img.png', ['image/png']],
    ['/PHOTO.PNG', ['image/png']],
    ['/pic.jpg', ['image/jpeg']],
    ['/pic.webp', ['image/webp']],
    ['/icon.svg', ['image/svg+xml']],
    ['/data.json', ['application/json']],
    ['/notes.txt', ['text/plain']],
    ['/code.wasm', ['application/wasm']],
    ['/blob.qqqunknown', ['application/octet-stream']],
  ];
  for (const [p, allowed] of types) {
    test(`Content-Type of ${p} is ${allowed.join(' or ')}`, T, async () => {
      const res = await request(srv.port, { path: p });
      assert.equal(res.status, 200);
      assert.ok(allowed.includes(mediaType(res)), `${p}: Content-Type ${res.headers['content-type']}`);
    });
  }

  test('a percent-encoded file name is decoded', T, async () => {
    const res = await request(srv.port, { path: '/with%20space.txt' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'spaced\n');
  });

  test('a query string does not change the file', T, async () => {
    const res = await request(srv.port, { path: '/main.js?v=1.2.3' });
    assert.equal(res.status, 200);
    assert.equal(res.text, FILES['main.js']);
  });

  test('nested files and extension files are served', T, async () => {
    assert.equal((await request(srv.port, { path: '/sub/deep/file.txt' })).text, 'deep\n');
    assert.equal((await request(srv.port, { path: '/extensions/core/a.js' })).text, '// a\n');
  });

  test('a missing file is 404', T, async () => {
    assert.equal((await request(srv.port, { path: '/missing.js' })).status, 404);
    assert.equal((await request(srv.port, { path: '/sub/missing.txt' })).status, 404);
  });

  test('static files get no /api copy', T, async () => {
    assert.equal((await request(srv.port, { path: '/api/main.js' })).status, 404);
    assert.equal((await request(srv.port, { path: '/api/notes.txt' })).status, 404);
  });

  test('a directory is not listed', T, async () => {
    for (const p of ['/sub', '/sub/', '/extensions/']) {
      const res = await request(srv.port, { path: p });
      assert.ok([403, 404].includes(res.status), `${p}: status ${res.status}`);
      assert.ok(!res.text.includes('file.txt'), `${p}: directory listing leaked`);
    }
  });

  test('ETag and If-None-Match: 304 for the current tag, 200 for another', T, async () => {
    const first = await request(srv.port, { path: '/notes.txt' });
    assert.equal(first.status, 200);
    const etag = first.headers.etag;
    assert.ok(etag, 'ETag header present');
    assert.match(etag, /^(W\/)?"[^"]*"$/, 'ETag is a quoted entity tag');
    const again = await request(srv.port, { path: '/notes.txt' });
    assert.equal(again.headers.etag, etag, 'ETag is stable');

    const conn = await RawConn.open(srv.port);
    try {
      // 304 has no body: pipeline a second request to prove that nothing else was sent.
      await conn.write(Buffer.concat([
        buildRequest({ path: '/notes.txt', port: srv.port, headers: { 'If-None-Match': etag } }),
        buildRequest({ path: '/notes.txt', port: srv.port, headers: { 'If-None-Match': '"not-the-tag"' } }),
        buildRequest({ path: '/notes.txt', port: srv.port, headers: { 'If-None-Match': `"other", ${etag}` } }),
      ]));
      const r304 = await conn.readResponse();
      assert.equal(r304.status, 304);
      assert.equal(r304.headers.etag, etag, '304 repeats the ETag');
      const r200 = await conn.readResponse();
      assert.equal(r200.status, 200);
      assert.equal(r200.text, TEXT);
      const rList = await conn.readResponse();
      assert.equal(rList.status, 304, 'a list of tags that contains the current one');
    } finally {
      conn.destroy();
    }
  });

  test('the ETag changes when the file changes, and the old tag no longer gives 304', T, async () => {
    const p = path.join(srv.frontEndRoot, 'changing.txt');
    await fs.writeFile(p, 'version one\n');
    const a = await request(srv.port, { path: '/changing.txt' });
    assert.equal(a.status, 200);
    await fs.writeFile(p, 'version two, longer\n');
    const future = new Date(Date.now() + 5000);
    await fs.utimes(p, future, future);
    const b = await request(srv.port, { path: '/changing.txt', headers: { 'If-None-Match': a.headers.etag } });
    assert.equal(b.status, 200, 'stale ETag must not give 304');
    assert.equal(b.text, 'version two, longer\n');
    assert.notEqual(b.headers.etag, a.headers.etag);
  });

  test('Range: first bytes, open-ended, suffix', T, async () => {
    const size = Buffer.byteLength(TEXT);
    const cases = [
      ['bytes=0-9', 0, 9],
      ['bytes=10-', 10, size - 1],
      ['bytes=-5', size - 5, size - 1],
      ['bytes=3-3', 3, 3],
      [`bytes=5-${size + 100}`, 5, size - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await request(srv.port, { path: '/notes.txt', headers: { Range: range } });
      assert.equal(res.status, 206, range);
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${size}`, `${range}: Content-Range`);
      assert.equal(res.text, TEXT.slice(start, end + 1), `${range}: body`);
      assert.equal(Number(res.headers['content-length']), end - start + 1, `${range}: Content-Length`);
    }
  });

  test('Range in the middle of a large binary file', T, async () => {
    const start = 1024 * 1024 + 3, end = 2 * 1024 * 1024 + 100;
    const res = await request(srv.port, { path: '/big.bin', headers: { Range: `bytes=${start}-${end}` }, timeoutMs: 10000 });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${BIG.length}`);
    assert.ok(Buffer.compare(res.body, BIG.subarray(start, end + 1)) === 0, 'range body differs');
  });

  test('an unsatisfiable Range gets 416 with Content-Range bytes */size', T, async () => {
    const size = Buffer.byteLength(TEXT);
    const res = await request(srv.port, { path: '/notes.txt', headers: { Range: `bytes=${size + 10}-` } });
    assert.equal(res.status, 416);
    assert.equal(res.headers['content-range'], `bytes */${size}`);
  });

  test('HEAD gives the headers of GET and no body', T, async () => {
    const conn = await RawConn.open(srv.port);
    try {
      await conn.write(Buffer.concat([
        buildRequest({ method: 'HEAD', path: '/big.bin', port: srv.port }),
        buildRequest({ path: '/notes.txt', port: srv.port }),
      ]));
      const head = await conn.readResponse({ method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(Number(head.headers['content-length']), BIG.length);
      const next = await conn.readResponse();
      assert.equal(next.status, 200, 'the HEAD response carried no body (else this would be garbage)');
      assert.equal(next.text, TEXT);
    } finally {
      conn.destroy();
    }
  });

  // §2.2 cache_control middleware.
  const cacheCases = [
    ['/main.js', {}, 200, 'no-cache'],
    ['/mod.mjs', {}, 200, undefined],
    ['/style.css', {}, 200, 'no-cache'],
    ['/extensions/core/a.js', {}, 200, 'no-cache'],
    ['/templates/index.json', {}, 200, 'no-cache'],
    ['/templates/index_en.json', {}, 200, 'no-cache'],
    ['/img.png', {}, 200, 'public, max-age=86400'],
    ['/PHOTO.PNG', {}, 200, 'public, max-age=86400'],
    ['/pic.jpg', {}, 200, 'public, max-age=86400'],
    ['/pic.webp', {}, 200, 'public, max-age=86400'],
    ['/img.png', { Range: 'bytes=0-3' }, 206, 'public, max-age=86400'],
    ['/missing.png', {}, 404, 'public, max-age=3600'],
    ['/sub/missing.JPEG', {}, 404, 'public, max-age=3600'],
    ['/data.json', {}, 200, undefined],
    ['/notes.txt', {}, 200, undefined],
    ['/page.html', {}, 200, undefined],
    ['/icon.svg', {}, 200, undefined],
  ];
  for (const [p, headers, status, cc] of cacheCases) {
    test(`Cache-Control of ${p}${headers.Range ? ' (Range)' : ''} is ${cc ?? 'absent'}`, T, async () => {
      const res = await request(srv.port, { path: p, headers });
      assert.equal(res.status, status);
      assert.equal(res.headers['cache-control'], cc);
    });
  }

  test('/index.html is also served as a static file', T, async () => {
    const res = await request(srv.port, { path: '/index.html' });
    assert.equal(res.status, 200);
    assert.equal(res.text, FILES['index.html']);
  });

  const escapes = [
    '/../secret.txt',
    '/sub/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/secret.txt',
    '/sub/%2e%2e/%2e%2e/secret.txt',
    '/..%2fsecret.txt',
    '/sub%2f..%2f..%2fsecret.txt',
    '/..%5csecret.txt',
    '/.%2e/secret.txt',
    '//secret.txt',
    '/link-out.txt',
    '/' + encodeURIComponent(path.join('/', 'etc', 'passwd')),
  ];
  for (const p of escapes) {
    test(`no escape from the root: GET ${p}`, T, async () => {
      // Raw bytes: the path is sent exactly as written, not normalised by a client library.
      const res = await exchange(srv.port, Buffer.from(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nConnection: close\r\n\r\n`));
      assert.notEqual(res.status, 200, `${p} answered 200: ${res.text.slice(0, 80)}`);
      assert.ok(res.status >= 400 && res.status < 500, `${p}: status ${res.status}`);
      assert.ok(!res.text.includes('TOP-SECRET') && !res.text.includes('root:'), `${p} leaked a file outside the root`);
    });
  }
});
