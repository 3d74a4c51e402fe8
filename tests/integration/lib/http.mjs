// Raw HTTP/1.1 over node:net, so that tests control every byte that is sent and see every byte
// that comes back (status line, header order and spelling, chunked framing, connection close).
import net from 'node:net';
import { HOST, sleep } from './server.mjs';

export class TimeoutError extends Error {}

/** One TCP connection with a byte buffer that responses are parsed from. */
export class RawConn {
  /** Connects to 127.0.0.1:port. */
  static open(port, { timeoutMs = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: HOST, port });
      const timer = setTimeout(() => { sock.destroy(); reject(new TimeoutError(`connect to ${port} timed out`)); }, timeoutMs);
      sock.once('connect', () => { clearTimeout(timer); sock.removeListener('error', onErr); resolve(new RawConn(sock)); });
      const onErr = (e) => { clearTimeout(timer); reject(e); };
      sock.once('error', onErr);
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.chunks = [];
    this.length = 0;
    this.closed = false; // the peer ended or reset the connection (or we destroyed it)
    this.ended = false; // FIN received
    this.error = null;
    this.received = 0; // total bytes received, ever
    this._notify = null;
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.chunks.push(d);
      this.length += d.length;
      this.received += d.length;
      this._wake();
    });
    sock.on('end', () => { this.ended = true; this._wake(); });
    sock.on('error', (e) => { this.error = e; this._wake(); });
    sock.on('close', () => { this.closed = true; this._wake(); });
    this.closedPromise = new Promise((r) => sock.once('close', r));
  }

  _wake() {
    const n = this._notify;
    this._notify = null;
    if (n) n();
  }

  /** Resolves when more data or a close arrives, or rejects at the deadline. */
  _wait(deadline, what) {
    if (this.closed || this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const ms = deadline - Date.now();
      if (ms <= 0) { reject(new TimeoutError(`timed out waiting for ${what}`)); return; }
      const timer = setTimeout(() => { this._notify = null; reject(new TimeoutError(`timed out waiting for ${what}`)); }, ms);
      this._notify = () => { clearTimeout(timer); resolve(); };
    });
  }

  /** The buffered bytes as one Buffer. */
  buffer() {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] || Buffer.alloc(0);
  }

  consume(n) {
    const b = this.buffer();
    this.chunks = n >= b.length ? [] : [b.subarray(n)];
    this.length = b.length - Math.min(n, b.length);
  }

  /** Writes bytes; resolves once they were handed to the kernel (or rejects on error). */
  write(data) {
    return new Promise((resolve, reject) => {
      this.sock.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Writes without waiting; returns false when node's buffer is full (see 'drain'). */
  writeNoWait(data) {
    return this.sock.write(data);
  }

  /**
   * Reads one response. method tells whether a body follows (HEAD: none). Interim 1xx responses
   * other than 101 are skipped. Resolves to
   * { version, status, reason, headers: {lowercase: value}, rawHeaders: [[name, value]...],
   *   body: Buffer, text, chunked, trailers }.
   */
  async readResponse({ method = 'GET', timeoutMs = 5000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this._readOne(method, deadline);
      if (res.status >= 100 && res.status < 200 && res.status !== 101) continue;
      return res;
    }
  }

  async _readOne(method, deadline) {
    // Head.
    let headEnd;
    for (;;) {
      const b = this.buffer();
      headEnd = b.indexOf('\r\n\r\n');
      if (headEnd >= 0) break;
      if (this.closed || this.ended) {
        throw new Error(`connection closed before a complete response head (got ${b.length} bytes: ${JSON.stringify(b.toString('latin1').slice(0, 200))})`);
      }
      await this._wait(deadline, 'response head');
    }
    const head = this.buffer().subarray(0, headEnd).toString('latin1');
    this.consume(headEnd + 4);
    const lines = head.split('\r\n');
    const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]);
    if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
    const res = {
      version: m[1],
      status: Number(m[2]),
      reason: m[3] ?? '',
      headers: {},
      rawHeaders: [],
      body: Buffer.alloc(0),
      chunked: false,
      trailers: {},
      rawHead: head,
    };
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) throw new Error(`bad header line ${JSON.stringify(line)}`);
      const name = line.slice(0, i);
      const value = line.slice(i + 1).trim();
      res.rawHeaders.push([name, value]);
      const k = name.toLowerCase();
      res.headers[k] = k in res.headers ? `${res.headers[k]}, ${value}` : value;
    }
    const noBody = method === 'HEAD' || (res.status >= 100 && res.status < 200) || res.status === 204 || res.status === 304;
    const te = (res.headers['transfer-encoding'] || '').toLowerCase();
    if (noBody) {
      // nothing
    } else if (te.split(',').map((s) => s.trim()).includes('chunked')) {
      res.chunked = true;
      res.body = await this._readChunked(deadline, res);
    } else if ('content-length' in res.headers) {
      const n = Number(res.headers['content-length']);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`bad Content-Length ${res.headers['content-length']}`);
      while (this.length < n) {
        if (this.closed || this.ended) throw new Error(`connection closed after ${this.length} of ${n} body bytes`);
        await this._wait(deadline, 'response body');
      }
      res.body = Buffer.from(this.buffer().subarray(0, n));
      this.consume(n);
    } else {
      // Delimited by the connection's end.
      while (!(this.closed || this.ended)) await this._wait(deadline, 'end of a close-delimited body');
      res.body = Buffer.from(this.buffer());
      this.consume(res.body.length);
    }
    res.text = res.body.toString('utf8');
    return res;
  }

  async _readChunked(deadline, res) {
    const parts = [];
    // Chunks are consumed one by one so that a slow body costs O(n).
    for (;;) {
      let b = this.buffer();
      const lineEnd = b.indexOf('\r\n');
      if (lineEnd < 0) {
        if (this.closed || this.ended) throw new Error('connection closed inside chunked body');
        await this._wait(deadline, 'chunk size line');
        continue;
      }
      const sizeText = b.subarray(0, lineEnd).toString('latin1').split(';')[0].trim();
      if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw new Error(`bad chunk size line ${JSON.stringify(sizeText)}`);
      const size = parseInt(sizeText, 16);
      if (size === 0) {
        // Trailers, then an empty line.
        for (;;) {
          b = this.buffer();
          const end = b.indexOf('\r\n\r\n', lineEnd);
          if (b.length >= lineEnd + 4 && b.subarray(lineEnd, lineEnd + 4).toString('latin1') === '\r\n\r\n') {
            this.consume(lineEnd + 4);
            return Buffer.concat(parts);
          }
          if (end >= 0) {
            const trailerText = b.subarray(lineEnd + 2, end).toString('latin1');
            for (const line of trailerText.split('\r\n')) {
              const i = line.indexOf(':');
              if (i > 0) res.trailers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
            }
            this.consume(end + 4);
            return Buffer.concat(parts);
          }
          if (this.closed || this.ended) throw new Error('connection closed inside chunked trailer');
          await this._wait(deadline, 'chunked trailer');
        }
      }
      const need = lineEnd + 2 + size + 2;
      while (this.length < need) {
        if (this.closed || this.ended) throw new Error('connection closed inside a chunk');
        await this._wait(deadline, 'chunk data');
      }
      b = this.buffer();
      if (b.subarray(lineEnd + 2 + size, need).toString('latin1') !== '\r\n') throw new Error('chunk not followed by CRLF');
      parts.push(Buffer.from(b.subarray(lineEnd + 2, lineEnd + 2 + size)));
      this.consume(need);
    }
  }

  /** Resolves true if the peer closes (FIN or reset) within timeoutMs, else false. Data is kept. */
  async waitClosed(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!(this.closed || this.ended)) {
      try {
        await this._wait(deadline, 'close');
      } catch (e) {
        if (e instanceof TimeoutError) return false;
        throw e;
      }
    }
    return true;
  }

  /** Waits until at least n bytes are buffered, or throws at the deadline / on close. */
  async waitBytes(n, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.length < n) {
      if (this.closed || this.ended) throw new Error(`closed with ${this.length} of ${n} bytes`);
      await this._wait(deadline, `${n} bytes`);
    }
  }

  destroy() {
    this.sock.destroy();
  }
}

/** Builds request bytes. headers: object or array of [name, value]; a null value drops a default. */
export function buildRequest({ method = 'GET', path = '/', port, headers = {}, body = null, version = 'HTTP/1.1' }) {
  const list = Array.isArray(headers) ? [...headers] : Object.entries(headers);
  const names = new Set(list.map(([k]) => k.toLowerCase()));
  const out = [];
  if (!names.has('host')) out.push(['Host', `${HOST}:${port}`]);
  if (body !== null && !names.has('content-length') && !names.has('transfer-encoding')) {
    out.push(['Content-Length', String(Buffer.byteLength(body))]);
  }
  for (const [k, v] of list) if (v !== null && v !== undefined) out.push([k, v]);
  let head = `${method} ${path} ${version}\r\n`;
  for (const [k, v] of out) head += `${k}: ${v}\r\n`;
  head += '\r\n';
  const headBuf = Buffer.from(head, 'latin1');
  return body === null ? headBuf : Buffer.concat([headBuf, Buffer.from(body)]);
}

/** Sends bytes on a fresh connection and reads one response; the connection is then destroyed. */
export async function exchange(port, bytes, { method = 'GET', timeoutMs = 5000 } = {}) {
  const conn = await RawConn.open(port);
  try {
    await conn.write(bytes);
    return await conn.readResponse({ method, timeoutMs });
  } finally {
    conn.destroy();
  }
}

/** One request on a fresh connection. */
export function request(port, opts = {}) {
  const { timeoutMs, ...rest } = opts;
  return exchange(port, buildRequest({ port, ...rest }), { method: rest.method || 'GET', timeoutMs });
}

/** GET a path and parse the JSON body (res.json). */
export async function getJson(port, path, opts = {}) {
  const res = await request(port, { path, ...opts });
  try {
    res.json = JSON.parse(res.text);
  } catch (e) {
    throw new Error(`GET ${path}: status ${res.status}, body is not JSON: ${JSON.stringify(res.text.slice(0, 300))}`);
  }
  return res;
}

/** Encodes a body as chunked transfer coding with the given chunk sizes (last chunk added). */
export function chunked(parts) {
  const out = [];
  for (const p of parts) {
    const b = Buffer.from(p);
    if (b.length === 0) continue;
    out.push(Buffer.from(b.length.toString(16) + '\r\n', 'latin1'), b, Buffer.from('\r\n', 'latin1'));
  }
  out.push(Buffer.from('0\r\n\r\n', 'latin1'));
  return Buffer.concat(out);
}

/** Polls probeStatus-style until fn() resolves truthy or the deadline passes. */
export async function eventually(fn, { timeoutMs = 5000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) return last;
    await sleep(intervalMs);
  }
}
