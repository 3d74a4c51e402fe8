// A minimal WebSocket client over RawConn, for tests that need exact frames (fragmentation,
// interleaved control frames, a client that stops reading). The `ws` package covers the rest.
import crypto from 'node:crypto';
import { RawConn, buildRequest } from './http.mjs';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** Encodes one client frame (always masked, as RFC 6455 requires of clients). */
export function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = data[i] ^ key[i & 3];
  return Buffer.concat([header, key, masked]);
}

export function closePayload(code, reason = '') {
  const r = Buffer.from(reason);
  const b = Buffer.alloc(2 + r.length);
  b.writeUInt16BE(code, 0);
  r.copy(b, 2);
  return b;
}

export class RawWs {
  /** Opens a WebSocket to path on 127.0.0.1:port; resolves after the 101 response. */
  static async connect(port, path = '/ws', { headers = {} } = {}) {
    const conn = await RawConn.open(port);
    const key = crypto.randomBytes(16).toString('base64');
    await conn.write(buildRequest({
      port,
      path,
      headers: {
        Upgrade: 'websocket',
        Connection: 'Upgrade',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
        ...headers,
      },
    }));
    const res = await conn.readResponse({ timeoutMs: 5000 });
    if (res.status !== 101) {
      conn.destroy();
      throw new Error(`WebSocket handshake to ${path}: status ${res.status} ${res.text}`);
    }
    const expected = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    if (res.headers['sec-websocket-accept'] !== expected) {
      conn.destroy();
      throw new Error(`bad Sec-WebSocket-Accept ${res.headers['sec-websocket-accept']} (want ${expected})`);
    }
    const ws = new RawWs(conn);
    ws.handshake = res;
    return ws;
  }

  constructor(conn) {
    this.conn = conn;
  }

  send(opcode, payload, opts) {
    return this.conn.write(encodeFrame(opcode, payload, opts));
  }

  sendText(text) {
    return this.send(OP.TEXT, Buffer.from(text));
  }

  /** Reads one frame: { fin, opcode, payload, text }. */
  async readFrame(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const b = this.conn.buffer();
      if (b.length >= 2) {
        const fin = (b[0] & 0x80) !== 0;
        const rsv = b[0] & 0x70;
        const opcode = b[0] & 0x0f;
        const masked = (b[1] & 0x80) !== 0;
        let len = b[1] & 0x7f;
        let off = 2;
        let ok = true;
        if (len === 126) {
          if (b.length < 4) ok = false;
          else { len = b.readUInt16BE(2); off = 4; }
        } else if (len === 127) {
          if (b.length < 10) ok = false;
          else { len = Number(b.readBigUInt64BE(2)); off = 10; }
        }
        if (ok) {
          if (masked) throw new Error('server frame is masked (RFC 6455 5.1 forbids it)');
          if (rsv) throw new Error(`server frame has RSV bits ${rsv.toString(16)}`);
          if (b.length >= off + len) {
            const payload = Buffer.from(b.subarray(off, off + len));
            this.conn.consume(off + len);
            return { fin, opcode, payload, text: payload.toString('utf8') };
          }
        }
      }
      if (this.conn.closed || this.conn.ended) throw new Error(`connection closed while waiting for a frame (${b.length} bytes buffered)`);
      await this.conn._wait(deadline, 'WebSocket frame');
    }
  }

  /** Reads frames until a whole (possibly fragmented) data message; control frames go to onControl. */
  async readMessage(timeoutMs = 5000, onControl = () => {}) {
    const deadline = Date.now() + timeoutMs;
    const parts = [];
    let opcode = null;
    for (;;) {
      const f = await this.readFrame(Math.max(1, deadline - Date.now()));
      if (f.opcode >= 8) { onControl(f); continue; }
      if (opcode === null) opcode = f.opcode;
      parts.push(f.payload);
      if (f.fin) {
        const payload = Buffer.concat(parts);
        return { opcode, payload, text: payload.toString('utf8') };
      }
    }
  }

  destroy() {
    this.conn.destroy();
  }
}
