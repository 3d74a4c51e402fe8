// Files: POST /upload/image and /upload/mask, GET /view (preview, channel), GET /view_metadata,
// extra_model_paths.yaml, path confinement, and binary preview frames over the WebSocket.
// Images are built and decoded here with node:zlib, so every pixel can be checked.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import WebSocket from 'ws';
import { startServer, COMFYD_BIN } from './lib/server.mjs';
import { RawConn } from './lib/http.mjs';

const T = { timeout: 60000 };

// ---- PNG by hand ----

const CRC_TABLE = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
/** An 8-bit PNG: pixels is a flat array of w*h*channels values (channels 4: RGBA, 3: RGB). */
function makePng(w, h, pixels, { channels = 4, text = {} } = {}) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = channels === 4 ? 6 : channels === 3 ? 2 : 0;
  const rows = [];
  for (let y = 0; y < h; y++) {
    rows.push(Buffer.from([0]));
    rows.push(Buffer.from(pixels.slice(y * w * channels, (y + 1) * w * channels)));
  }
  const texts = Object.entries(text).map(([k, v]) => chunk('tEXt', Buffer.from(`${k}\0${v}`, 'latin1')));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), ...texts,
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0))]);
}
/** Decodes an 8-bit non-interlaced PNG (grey, RGB, grey+alpha, RGBA); returns {w, h, channels, data, text}. */
function decodePng(buf) {
  assert.equal(buf.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'a PNG signature');
  let off = 8, w, h, ct, idat = [];
  const text = {};
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = data.readUInt32BE(0); h = data.readUInt32BE(4); ct = data[9];
      assert.equal(data[8], 8, '8-bit');
      assert.equal(data[12], 0, 'not interlaced');
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'tEXt') {
      const z = data.indexOf(0);
      text[data.toString('latin1', 0, z)] = data.toString('latin1', z + 1);
    }
    off += 12 + len;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[ct];
  assert.ok(channels, `colour type ${ct}`);
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = w * channels;
  const out = Buffer.alloc(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? out[y * stride + x - channels] : 0;
      const b = y > 0 ? out[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? out[(y - 1) * stride + x - channels] : 0;
      let p;
      if (f === 0) p = 0;
      else if (f === 1) p = a;
      else if (f === 2) p = b;
      else if (f === 3) p = (a + b) >> 1;
      else {
        const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[y * stride + x] = (v + p) & 0xff;
    }
  }
  return { w, h, channels, data: out, text };
}

// 3x2 RGBA with distinct colours and alphas
const ORIG_PIXELS = [
  255, 0, 0, 255, 0, 255, 0, 200, 0, 0, 255, 100,
  10, 20, 30, 0, 40, 50, 60, 50, 70, 80, 90, 255,
];
const ORIG = makePng(3, 2, ORIG_PIXELS, { text: { prompt: '{"1": {}}' } });

// ---- HTTP helpers ----

/** A multipart body built byte by byte, so that tests control the file name exactly. */
function multipart(fields) {
  const boundary = '----comfydtest' + Math.random().toString(16).slice(2);
  const parts = [];
  for (const f of fields) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${f.name}"`;
    if (f.filename !== undefined) head += `; filename="${f.filename}"`;
    head += '\r\n';
    if (f.filename !== undefined) head += 'Content-Type: image/png\r\n';
    parts.push(Buffer.from(head + '\r\n', 'utf8'), Buffer.isBuffer(f.value) ? f.value : Buffer.from(String(f.value), 'utf8'), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

async function upload(port, fields, route = '/upload/image') {
  const { body, type } = multipart(fields);
  const r = await fetch(`http://127.0.0.1:${port}${route}`, { method: 'POST', headers: { 'Content-Type': type }, body });
  const text = await r.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: r.status, json, text, headers: r.headers };
}

async function get(port, p) {
  const r = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), headers: r.headers };
}

/** A GET sent byte for byte (fetch would normalise ../ and %2e%2e in the path). */
async function rawGet(port, target) {
  const c = await RawConn.open(port);
  c.sock.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
  await c.closedPromise;
  const all = Buffer.concat(c.chunks);
  const head = all.toString('latin1', 0, all.indexOf('\r\n\r\n'));
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)[1]), body: all.subarray(all.indexOf('\r\n\r\n') + 4), head };
}

function listTree(dir) {
  const out = [];
  const walk = (d, rel) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

describe('uploads and /view', () => {
  let srv, port, outside;
  before(async () => {
    srv = await startServer();
    port = srv.port;
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-outside-'));
    fs.writeFileSync(path.join(outside, 'secret.png'), ORIG);
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
  });
  after(async () => {
    await srv.stop();
    fs.rmSync(outside, { recursive: true, force: true });
  });

  test('upload then /view gives the same bytes back', T, async () => {
    const r = await upload(port, [{ name: 'image', filename: 'round.png', value: ORIG }]);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, '{"name": "round.png", "subfolder": "", "type": "input"}');
    assert.deepEqual(fs.readFileSync(path.join(srv.baseDir, 'input', 'round.png')), ORIG);
    for (const prefix of ['', '/api']) {
      const v = await get(port, `${prefix}/view?filename=round.png&type=input`);
      assert.equal(v.status, 200);
      assert.deepEqual(v.body, ORIG);
      assert.equal(v.headers.get('content-type'), 'image/png');
      assert.equal(v.headers.get('content-disposition'), 'filename="round.png"');
    }
    // a bigger file with every byte value streams back intact
    const big = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    const r2 = await upload(port, [{ name: 'image', filename: 'big.bin', value: big }, { name: 'type', value: 'output' }]);
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.json.type, 'output');
    const v2 = await get(port, '/view?filename=big.bin');
    assert.equal(v2.status, 200);
    assert.ok(v2.body.equals(big));
    assert.equal(v2.headers.get('content-type'), 'application/octet-stream');
  });

  test('overwrite off: identical content keeps the name, different content gets "name (N).ext"', T, async () => {
    const a = makePng(1, 1, [1, 2, 3, 255]);
    const b = makePng(1, 1, [4, 5, 6, 255]);
    const c = makePng(1, 1, [7, 8, 9, 255]);
    assert.equal((await upload(port, [{ name: 'image', filename: 'dup.png', value: a }])).json.name, 'dup.png');
    assert.equal((await upload(port, [{ name: 'image', filename: 'dup.png', value: a }])).json.name, 'dup.png');
    assert.equal((await upload(port, [{ name: 'image', filename: 'dup.png', value: b }])).json.name, 'dup (1).png');
    assert.equal((await upload(port, [{ name: 'image', filename: 'dup.png', value: c }])).json.name, 'dup (2).png');
    // b again is found as a duplicate of dup (1).png
    assert.equal((await upload(port, [{ name: 'image', filename: 'dup.png', value: b }])).json.name, 'dup (1).png');
    const input = path.join(srv.baseDir, 'input');
    assert.deepEqual(fs.readFileSync(path.join(input, 'dup.png')), a);
    assert.deepEqual(fs.readFileSync(path.join(input, 'dup (1).png')), b);
    assert.deepEqual(fs.readFileSync(path.join(input, 'dup (2).png')), c);
    // overwrite=true (or 1) replaces in place
    for (const ow of ['true', '1']) {
      const r = await upload(port, [{ name: 'image', filename: 'dup.png', value: ow === '1' ? a : c }, { name: 'overwrite', value: ow }]);
      assert.equal(r.json.name, 'dup.png');
    }
    assert.deepEqual(fs.readFileSync(path.join(input, 'dup.png')), a);
    // no extension, and a dotted name
    await upload(port, [{ name: 'image', filename: 'noext', value: a }]);
    assert.equal((await upload(port, [{ name: 'image', filename: 'noext', value: b }])).json.name, 'noext (1)');
    await upload(port, [{ name: 'image', filename: 'a.b.png', value: a }]);
    assert.equal((await upload(port, [{ name: 'image', filename: 'a.b.png', value: b }])).json.name, 'a.b (1).png');
    // no temporary files are left behind
    assert.deepEqual(listTree(input).filter((f) => f.includes('comfyd-upload')), []);
  });

  test('subfolders, types, and the fields that are required', T, async () => {
    const r = await upload(port, [{ name: 'image', filename: 'sub.png', value: ORIG }, { name: 'subfolder', value: 'a/b' }, { name: 'type', value: 'temp' }]);
    assert.equal(r.text, '{"name": "sub.png", "subfolder": "a/b", "type": "temp"}');
    assert.deepEqual(fs.readFileSync(path.join(srv.baseDir, 'temp', 'a', 'b', 'sub.png')), ORIG);
    const v = await get(port, '/view?filename=sub.png&type=temp&subfolder=a/b');
    assert.deepEqual(v.body, ORIG);
    // annotated filename chooses the directory
    assert.deepEqual((await get(port, '/view?filename=sub.png%20%5Btemp%5D&subfolder=a%2Fb')).body, ORIG);
    assert.equal((await get(port, '/view?filename=sub.png&type=input&subfolder=a/b')).status, 404);
    assert.equal((await get(port, '/view?filename=sub.png&type=bogus')).status, 400);
    assert.equal((await get(port, '/view?type=input')).status, 404);
    assert.equal((await upload(port, [{ name: 'image', filename: 'x.png', value: ORIG }, { name: 'type', value: 'models' }])).status, 500);
    assert.equal((await upload(port, [{ name: 'other', filename: 'x.png', value: ORIG }])).status, 400);
    assert.equal((await upload(port, [{ name: 'image', filename: '', value: ORIG }])).status, 400);
    assert.equal((await upload(port, [{ name: 'image', value: 'not a file' }])).status, 400);
    const notMultipart = await fetch(`http://127.0.0.1:${port}/upload/image`, { method: 'POST', body: 'x' });
    assert.equal(notMultipart.status, 400);
    // a malformed body: the closing boundary never comes
    const bad = await fetch(`http://127.0.0.1:${port}/upload/image`, {
      method: 'POST', headers: { 'Content-Type': 'multipart/form-data; boundary=zz' },
      body: '--zz\r\nContent-Disposition: form-data; name="image"; filename="t.png"\r\n\r\nabc' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /closing boundary/);
    // names that are not UTF-8 cannot be answered in JSON: refused before anything is written
    const latin1 = await upload(port, [{ name: 'image', filename: Buffer.from('caf\xe9.png', 'latin1').toString('latin1'), value: ORIG }]);
    assert.equal(latin1.status, 200, 'a Latin-1 name sent by a JS string is UTF-8 on the wire');
    const { body: rawBody, type: rawType } = multipart([{ name: 'image', filename: 'PLACEHOLDER', value: ORIG }]);
    const i = rawBody.indexOf('PLACEHOLDER');
    const badName = Buffer.concat([rawBody.subarray(0, i), Buffer.from([0x63, 0xe9, 0x2e, 0x70, 0x6e, 0x67]), rawBody.subarray(i + 11)]);
    const notUtf8 = await fetch(`http://127.0.0.1:${port}/upload/image`, { method: 'POST', headers: { 'Content-Type': rawType }, body: badName });
    assert.equal(notUtf8.status, 400);
    assert.match(await notUtf8.text(), /UTF-8/);
    // a file name with a folder in it is written there, as ComfyUI does
    const nested = await upload(port, [{ name: 'image', filename: 'in/side.png', value: ORIG }]);
    assert.equal(nested.json.name, 'in/side.png');
    assert.ok(fs.existsSync(path.join(srv.baseDir, 'input', 'in', 'side.png')));
  });

  test('preview conversion returns real WEBP and JPEG; channel=rgb and channel=a', T, async () => {
    await upload(port, [{ name: 'image', filename: 'conv.png', value: ORIG }, { name: 'overwrite', value: 'true' }]);
    const webp = await get(port, '/view?filename=conv.png&type=input&preview=webp;50');
    assert.equal(webp.status, 200);
    assert.equal(webp.headers.get('content-type'), 'image/webp');
    assert.equal(webp.body.toString('latin1', 0, 4), 'RIFF');
    assert.equal(webp.body.toString('latin1', 8, 12), 'WEBP');
    assert.equal(webp.headers.get('content-disposition'), 'filename="conv.png"');
    const jpeg = await get(port, '/view?filename=conv.png&type=input&preview=jpeg;80');
    assert.equal(jpeg.headers.get('content-type'), 'image/jpeg');
    assert.equal(jpeg.body.subarray(0, 3).toString('hex'), 'ffd8ff');
    // an unknown format, or a channel with an "a" in it, gives webp (server.py's rule)
    assert.equal((await get(port, '/view?filename=conv.png&type=input&preview=gif')).headers.get('content-type'), 'image/webp');
    assert.equal((await get(port, '/view?filename=conv.png&type=input&preview=jpeg;80&channel=rgba')).headers.get('content-type'), 'image/webp');
    const rgb = await get(port, '/view?filename=conv.png&type=input&channel=rgb');
    assert.equal(rgb.headers.get('content-type'), 'image/png');
    const drgb = decodePng(rgb.body);
    assert.equal(drgb.channels, 3);
    for (let i = 0; i < 6; i++) assert.deepEqual([...drgb.data.subarray(i * 3, i * 3 + 3)], ORIG_PIXELS.slice(i * 4, i * 4 + 3));
    const a = decodePng((await get(port, '/view?filename=conv.png&type=input&channel=a')).body);
    assert.equal(a.channels, 4);
    for (let i = 0; i < 6; i++) assert.deepEqual([...a.data.subarray(i * 4, i * 4 + 4)], [0, 0, 0, ORIG_PIXELS[i * 4 + 3]]);
    // without alpha in the source, channel=a is opaque
    await upload(port, [{ name: 'image', filename: 'rgb.png', value: makePng(2, 1, [1, 2, 3, 4, 5, 6], { channels: 3 }) }]);
    const a2 = decodePng((await get(port, '/view?filename=rgb.png&type=input&channel=a')).body);
    assert.deepEqual([...a2.data], [0, 0, 0, 255, 0, 0, 0, 255]);
    // a file that is not an image cannot be converted, but is served as it is
    await upload(port, [{ name: 'image', filename: 'page.html', value: '<script>alert(1)</script>' }]);
    assert.equal((await get(port, '/view?filename=page.html&type=input&preview=webp')).status, 500);
    const html = await get(port, '/view?filename=page.html&type=input');
    assert.equal(html.headers.get('content-type'), 'application/octet-stream', 'never served as HTML');
  });

  test('/upload/mask puts the mask\'s alpha onto the original, pixel by pixel', T, async () => {
    fs.writeFileSync(path.join(srv.baseDir, 'output', 'orig.png'), ORIG);
    const maskAlphas = [0, 64, 128, 192, 255, 7];
    const mask = makePng(3, 2, maskAlphas.flatMap((al) => [9, 9, 9, al]));
    const r = await upload(port, [{ name: 'image', filename: 'mask.png', value: mask }, { name: 'type', value: 'input' },
      { name: 'subfolder', value: 'clipspace' }, { name: 'original_ref', value: JSON.stringify({ filename: 'orig.png', type: 'output', subfolder: '' }) }], '/upload/mask');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, '{"name": "mask.png", "subfolder": "clipspace", "type": "input"}');
    const out = decodePng(fs.readFileSync(path.join(srv.baseDir, 'input', 'clipspace', 'mask.png')));
    assert.equal(out.w, 3);
    assert.equal(out.h, 2);
    assert.equal(out.channels, 4);
    for (let i = 0; i < 6; i++) {
      assert.deepEqual([...out.data.subarray(i * 4, i * 4 + 4)], [...ORIG_PIXELS.slice(i * 4, i * 4 + 3), maskAlphas[i]], `pixel ${i}`);
    }
    assert.equal(out.text.prompt, '{"1": {}}', 'the PNG text chunks of the original are kept');
    // an RGB original, annotated filename, and an RGB mask: alpha becomes opaque
    fs.writeFileSync(path.join(srv.baseDir, 'temp', 'o3.png'), makePng(1, 1, [1, 2, 3], { channels: 3 }));
    const r2 = await upload(port, [{ name: 'image', filename: 'm2.png', value: makePng(1, 1, [0, 0, 0], { channels: 3 }) },
      { name: 'original_ref', value: JSON.stringify({ filename: 'o3.png [temp]' }) }], '/upload/mask');
    assert.equal(r2.status, 200, r2.text);
    assert.deepEqual([...decodePng(fs.readFileSync(path.join(srv.baseDir, 'input', 'm2.png'))).data], [1, 2, 3, 255]);
  });

  test('a corrupt PNG gets a clear error and nothing is written', T, async () => {
    fs.writeFileSync(path.join(srv.baseDir, 'output', 'orig2.png'), ORIG);
    const good = makePng(3, 2, new Array(24).fill(128));
    const corrupt = [
      good.subarray(0, good.length - 20), // truncated inside IDAT
      Buffer.concat([good.subarray(0, 40), Buffer.from('garbage garbage garbage'), good.subarray(63)]),
      Buffer.from('this is not an image at all'),
    ];
    for (const [i, bytes] of corrupt.entries()) {
      const r = await upload(port, [{ name: 'image', filename: `bad${i}.png`, value: bytes },
        { name: 'original_ref', value: JSON.stringify({ filename: 'orig2.png' }) }], '/upload/mask');
      assert.equal(r.status, 400, `corrupt mask ${i}: ${r.text}`);
      assert.match(r.text, /mask/);
      assert.ok(!fs.existsSync(path.join(srv.baseDir, 'input', `bad${i}.png`)));
    }
    // a corrupt original
    fs.writeFileSync(path.join(srv.baseDir, 'output', 'broken.png'), corrupt[0]);
    const r = await upload(port, [{ name: 'image', filename: 'mb.png', value: good },
      { name: 'original_ref', value: JSON.stringify({ filename: 'broken.png' }) }], '/upload/mask');
    assert.equal(r.status, 400);
    assert.match(r.text, /original image/);
    // a mask of another size
    const r3 = await upload(port, [{ name: 'image', filename: 'ms.png', value: makePng(1, 1, [0, 0, 0, 0]) },
      { name: 'original_ref', value: JSON.stringify({ filename: 'orig2.png' }) }], '/upload/mask');
    assert.equal(r3.status, 400);
    assert.match(r3.text, /1x1 but the original image is 3x2/);
    // a missing original, and original_ref that is not JSON
    assert.equal((await upload(port, [{ name: 'image', filename: 'mm.png', value: good },
      { name: 'original_ref', value: JSON.stringify({ filename: 'nope.png' }) }], '/upload/mask')).status, 404);
    assert.equal((await upload(port, [{ name: 'image', filename: 'mm.png', value: good },
      { name: 'original_ref', value: '{not json' }], '/upload/mask')).status, 400);
    // /view of a corrupt PNG with a conversion fails instead of sending a half-black image
    assert.equal((await get(port, '/view?filename=broken.png&preview=webp')).status, 500);
  });

  test('traversal of every kind is refused and nothing outside is read or written', T, async () => {
    const input = path.join(srv.baseDir, 'input');
    const rel = path.relative(input, outside);
    fs.symlinkSync(outside, path.join(input, 'link-out'));
    fs.symlinkSync(path.join(outside, 'secret.png'), path.join(input, 'secret-link.png'));
    fs.mkdirSync(path.join(input, 'inner'), { recursive: true });
    fs.symlinkSync(path.join(input, 'inner'), path.join(input, 'link-in'));
    fs.writeFileSync(path.join(input, 'inner', 'ok.png'), ORIG);
    const cases = [
      // [target, status]
      [`/view?filename=../../${rel}/secret.txt&type=input`, 400],
      [`/view?filename=%2e%2e%2f%2e%2e%2fsecret.txt&type=input`, 400],
      [`/view?filename=..%2f..%2fsecret.txt&type=input`, 400],
      [`/view?filename=${encodeURIComponent(path.join(outside, 'secret.txt'))}&type=input`, 400],
      [`/view?filename=secret.txt&type=input&subfolder=../../${rel}`, 403],
      [`/view?filename=secret.txt&type=input&subfolder=%2e%2e%2f%2e%2e%2f${encodeURIComponent(rel)}`, 403],
      [`/view?filename=secret.txt&type=input&subfolder=${encodeURIComponent(outside)}`, 403],
      [`/view?filename=secret.txt&type=input&subfolder=..`, 403],
      [`/view?filename=secret.txt&type=input&subfolder=link-out`, 403],
      [`/view?filename=secret-link.png&type=input`, 403],
      [`/view?filename=secret-link.png&type=input&channel=a`, 403],
      [`/view?filename=secret.txt%20%5Binput%5D&subfolder=link-out`, 403],
      [`/view?filename=secret.png&type=input&subfolder=link-out&preview=webp`, 403],
      [`/view/../../${rel}/secret.txt`, 404],
      [`/view?filename=%00secret.txt&type=input`, 404],
    ];
    for (const [target, status] of cases) {
      const r = await rawGet(port, target);
      assert.equal(r.status, status, `${target}: ${r.head}`);
      assert.ok(!r.body.includes('top secret'), `${target} leaked the file`);
    }
    // a symlink that stays inside is fine, and a subfolder with ".." that stays inside too
    assert.equal((await rawGet(port, '/view?filename=ok.png&type=input&subfolder=link-in')).status, 200);
    assert.equal((await rawGet(port, '/view?filename=ok.png&type=input&subfolder=x/../inner')).status, 200);

    const before = listTree(outside);
    const uploads = [
      [{ name: 'subfolder', value: `../../${rel}` }],
      [{ name: 'subfolder', value: outside }],
      [{ name: 'subfolder', value: 'link-out' }],
      [{ name: 'subfolder', value: 'link-out/deeper' }],
      [{ name: 'subfolder', value: '..' }],
    ];
    for (const extra of uploads) {
      const r = await upload(port, [{ name: 'image', filename: 'evil.png', value: ORIG }, ...extra]);
      assert.equal(r.status, 400, `${JSON.stringify(extra)}: ${r.text}`);
    }
    for (const name of [`../../${rel}/evil.png`, `${outside}/evil.png`, 'link-out/evil.png', '../evil.png']) {
      const r = await upload(port, [{ name: 'image', filename: name, value: ORIG }]);
      assert.equal(r.status, 400, `${name}: ${r.text}`);
    }
    // overwriting a symlink that points out replaces the link, never the file behind it
    const r = await upload(port, [{ name: 'image', filename: 'secret-link.png', value: makePng(1, 1, [1, 1, 1, 1]) }, { name: 'overwrite', value: 'true' }]);
    assert.equal(r.status, 400, 'a name that resolves outside is refused');
    // a mask whose original lies outside
    const m1 = await upload(port, [{ name: 'image', filename: 'm.png', value: ORIG },
      { name: 'original_ref', value: JSON.stringify({ filename: 'secret.png', type: 'input', subfolder: 'link-out' }) }], '/upload/mask');
    assert.equal(m1.status, 403);
    const m2 = await upload(port, [{ name: 'image', filename: 'm.png', value: ORIG },
      { name: 'original_ref', value: JSON.stringify({ filename: `../${rel}/secret.png`, type: 'input' }) }], '/upload/mask');
    assert.equal(m2.status, 400);
    assert.deepEqual(listTree(outside), before, 'nothing was written outside');
    assert.equal(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8'), 'top secret');
    assert.deepEqual(fs.readFileSync(path.join(outside, 'secret.png')), ORIG);
    assert.ok(!fs.existsSync(path.join(srv.baseDir, 'evil.png')));
  });
});

test('an upload larger than --max-upload-size gets 413', T, async () => {
  const srv = await startServer({ args: ['--max-upload-size', '1'] });
  try {
    const small = await upload(srv.port, [{ name: 'image', filename: 's.bin', value: Buffer.alloc(1000) }]);
    assert.equal(small.status, 200);
    const big = await upload(srv.port, [{ name: 'image', filename: 'b.bin', value: Buffer.alloc(1024 * 1024 + 10) }]).catch(() => ({ status: 413 }));
    assert.equal(big.status, 413);
    assert.ok(!fs.existsSync(path.join(srv.baseDir, 'input', 'b.bin')));
  } finally {
    await srv.stop();
  }
});

function safetensors(header) {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(16)]);
}

test('/view_metadata reads a safetensors header; extra_model_paths.yaml adds folders', T, async () => {
  const extra = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-extra-'));
  fs.mkdirSync(path.join(extra, 'ckpts', 'deep'), { recursive: true });
  fs.mkdirSync(path.join(extra, 'more'), { recursive: true });
  fs.writeFileSync(path.join(extra, 'ckpts', 'extra_model.safetensors'), safetensors({ __metadata__: { a: 'b', 'ss_x': '1' }, w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }));
  fs.writeFileSync(path.join(extra, 'ckpts', 'deep', 'nested.ckpt'), 'x');
  fs.writeFileSync(path.join(extra, 'more', 'second.safetensors'), safetensors({}));
  fs.writeFileSync(path.join(extra, 'more', 'notes.txt'), 'not a model');
  const yamlPath = path.join(extra, 'paths.yaml');
  fs.writeFileSync(yamlPath, [
    'mine:',
    `  base_path: ${extra}`,
    '  checkpoints: |',
    '    ckpts',
    '    more',
    '  my_new_folder: more',
    'relative:',
    '  loras: more   # relative to the YAML file without base_path',
    'empty:',
    '',
  ].join('\n'));
  const srv = await startServer({
    args: ['--extra-model-paths-config', yamlPath],
    files: {
      'models/checkpoints/local.safetensors': safetensors({ __metadata__: { local: 'yes' } }),
      'models/checkpoints/nometa.safetensors': safetensors({ w: {} }),
      'models/checkpoints/bad.safetensors': Buffer.from('\xff\xff\xff\xff\xff\xff\xff\xff', 'latin1'),
      // the default extra_model_paths.yaml in the base directory is read too
      'extra_model_paths.yaml': 'defaults:\n  base_path: ./shared\n  is_default: true\n  vae: vae_dir\n',
      'shared/vae_dir/v.safetensors': 'x',
    },
  });
  try {
    const base = `http://127.0.0.1:${srv.port}`;
    const ck = await (await fetch(`${base}/models/checkpoints`)).json();
    assert.deepEqual(ck, ['bad.safetensors', 'deep/nested.ckpt', 'extra_model.safetensors', 'local.safetensors', 'nometa.safetensors', 'second.safetensors']);
    assert.deepEqual(await (await fetch(`${base}/models/loras`)).json(), ['second.safetensors']);
    assert.deepEqual(await (await fetch(`${base}/models/vae`)).json(), ['v.safetensors']);
    const models = await (await fetch(`${base}/models`)).json();
    assert.equal(models.at(-1), 'my_new_folder', 'a new folder name is added at the end');
    assert.deepEqual(await (await fetch(`${base}/models/my_new_folder`)).json(), ['notes.txt', 'second.safetensors'], 'a new folder counts every file');

    const meta = await fetch(`${base}/view_metadata/checkpoints?filename=extra_model.safetensors`);
    assert.equal(meta.status, 200);
    assert.equal(await meta.text(), '{"a": "b", "ss_x": "1"}');
    assert.deepEqual(await (await fetch(`${base}/api/view_metadata/checkpoints?filename=local.safetensors`)).json(), { local: 'yes' });
    for (const q of ['checkpoints?filename=nometa.safetensors', 'checkpoints?filename=bad.safetensors',
      'checkpoints?filename=missing.safetensors', 'checkpoints?filename=deep/nested.ckpt', 'checkpoints',
      'nosuchfolder?filename=local.safetensors', `checkpoints?filename=../../../${'x'.repeat(3)}.safetensors`]) {
      const r = await fetch(`${base}/view_metadata/${q}`);
      assert.equal(r.status, 404, q);
      assert.equal((await r.text()), '');
    }
  } finally {
    await srv.stop();
    fs.rmSync(extra, { recursive: true, force: true });
  }
});

test('a broken extra_model_paths.yaml stops the start with a message', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-yaml-'));
  const y = path.join(dir, 'bad.yaml');
  fs.writeFileSync(y, 'a: [unclosed\n');
  try {
    await assert.rejects(startServer({ args: ['--extra-model-paths-config', y] }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('binary preview frames', () => {
  let srv, port;
  before(async () => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'comfyd-preview-'));
    fs.mkdirSync(path.join(base, 'custom_nodes', 'preview'), { recursive: true });
    fs.copyFileSync(path.join(path.dirname(COMFYD_BIN), 'tests', 'packs', 'preview_pack.so'), path.join(base, 'custom_nodes', 'preview', 'preview_pack.so'));
    srv = await startServer({ baseDir: base });
    port = srv.port;
  });
  after(async () => {
    const base = srv.baseDir;
    await srv.stop();
    fs.rmSync(base, { recursive: true, force: true });
  });

  async function runWith(clientId, flags, format, seed) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=${clientId}`, { perMessageDeflate: false });
    const binaries = [];
    const texts = [];
    ws.on('message', (data, isBinary) => (isBinary ? binaries.push(Buffer.from(data)) : texts.push(JSON.parse(data.toString()))));
    await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
    if (flags) {
      ws.send(JSON.stringify({ type: 'feature_flags', data: flags }));
      for (let i = 0; i < 100 && !texts.some((t) => t.type === 'feature_flags'); i++) await new Promise((r) => setTimeout(r, 20));
    }
    const r = await fetch(`http://127.0.0.1:${port}/prompt`, { method: 'POST', body: JSON.stringify({ client_id: clientId,
      prompt: { 7: { class_type: 'TestSendPreview', inputs: { format, seed } } } }) });
    const { prompt_id: promptId } = await r.json();
    for (let i = 0; i < 200 && !texts.some((t) => t.type === 'execution_success'); i++) await new Promise((res) => setTimeout(res, 20));
    ws.close();
    return { binaries, texts, promptId };
  }

  test('type 1 PREVIEW_IMAGE: event, then format (1 JPEG, 2 PNG), big-endian, then the image', T, async () => {
    const png = await runWith('plain1', null, 'PNG', 1);
    assert.equal(png.binaries.length, 1);
    const f = png.binaries[0];
    assert.equal(f.readUInt32BE(0), 1);
    assert.equal(f.readUInt32BE(4), 2);
    assert.equal(f.subarray(8).toString('latin1'), '\x89PNG\r\n\x1a\ncomfyd');
    const jpg = await runWith('plain2', { supports_preview_metadata: false }, 'JPEG', 2);
    assert.equal(jpg.binaries.length, 1);
    assert.equal(jpg.binaries[0].readUInt32BE(0), 1);
    assert.equal(jpg.binaries[0].readUInt32BE(4), 1);
    assert.equal(jpg.binaries[0].subarray(8).toString('hex'), 'ffd8ffe0636f6d667964ffd9');
  });

  test('type 4 PREVIEW_IMAGE_WITH_METADATA for a client that asked for it', T, async () => {
    const r = await runWith('meta1', { supports_preview_metadata: true }, 'PNG', 3);
    assert.equal(r.binaries.length, 1, 'exactly one preview frame');
    const f = r.binaries[0];
    assert.equal(f.readUInt32BE(0), 4);
    const jlen = f.readUInt32BE(4);
    const meta = JSON.parse(f.subarray(8, 8 + jlen).toString('utf8'));
    assert.deepEqual(meta, { node_id: '7', prompt_id: r.promptId, display_node_id: '7', parent_node_id: null, real_node_id: '7', image_type: 'image/png' });
    assert.equal(f.subarray(8 + jlen).toString('latin1'), '\x89PNG\r\n\x1a\ncomfyd');
  });

  test('a prompt without client_id broadcasts its preview: each client gets the kind it asked for', T, async () => {
    const open = async (id, flags) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?clientId=${id}`, { perMessageDeflate: false });
      const got = { ws, binaries: [], texts: [] };
      ws.on('message', (data, isBinary) => (isBinary ? got.binaries.push(Buffer.from(data)) : got.texts.push(JSON.parse(data.toString()))));
      await new Promise((res, rej) => { ws.once('open', res); ws.once('error', rej); });
      if (flags) {
        ws.send(JSON.stringify({ type: 'feature_flags', data: flags }));
        for (let i = 0; i < 100 && !got.texts.some((t) => t.type === 'feature_flags'); i++) await new Promise((r) => setTimeout(r, 20));
      }
      return got;
    };
    const plain = await open('bc-plain', null);
    const meta = await open('bc-meta', { supports_preview_metadata: true });
    const r = await fetch(`http://127.0.0.1:${port}/prompt`, { method: 'POST', body: JSON.stringify({
      prompt: { 12: { class_type: 'TestSendPreview', inputs: { format: 'JPEG', seed: 99 } } } }) });
    const { prompt_id: promptId } = await r.json();
    for (let i = 0; i < 200 && (plain.binaries.length < 1 || meta.binaries.length < 1); i++) await new Promise((res) => setTimeout(res, 20));
    plain.ws.close();
    meta.ws.close();
    assert.equal(plain.binaries.length, 1);
    assert.equal(plain.binaries[0].readUInt32BE(0), 1);
    assert.equal(plain.binaries[0].readUInt32BE(4), 1);
    assert.equal(meta.binaries.length, 1);
    const f = meta.binaries[0];
    assert.equal(f.readUInt32BE(0), 4);
    const jlen = f.readUInt32BE(4);
    assert.deepEqual(JSON.parse(f.subarray(8, 8 + jlen).toString('utf8')), { node_id: '12', prompt_id: promptId,
      display_node_id: '12', parent_node_id: null, real_node_id: '12', image_type: 'image/jpeg' });
    assert.equal(f.subarray(8 + jlen).toString('hex'), 'ffd8ffe0636f6d667964ffd9');
  });
});
