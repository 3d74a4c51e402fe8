// A stand-in instance for the hub's proxy tests, started by the hub through COMFYUI_COMMAND
// (`node echo-instance.mjs --listen {listen} --port {port} [--log-requests]`): it answers /system_stats as an
// instance does, and every other request with what it received (method, raw target, headers,
// body size and SHA-256), so that the tests see exactly what the hub forwarded.
//   /chunked?n=N   answers N pieces of 1 KiB, chunked, with a pause between them
//   /slow?ms=N     answers after N ms
//   /history/ID    {} (it runs nothing)
//   /ws            a WebSocket that sends one status message
//   POST /prompt   ComfyUI's answer: 400 for a graph with a NoSuchNode, else accepted (runs nothing)
// With --runs, an accepted prompt "runs" for 50 ms, in the order comfyd serve and ComfyUI keep:
// execution_success on /ws, then (30 ms later) the history has it, then (5 ms later) a status
// message. /history/{id} answers 100 ms after it is asked, as it was when asked, so a look-up
// started by the success misses and the status comes while it is under way. /queue keeps listing
// every prompt as running (a stale queue: only the event stream and the history can tell a hub
// that it ended).
import http from 'node:http';
import crypto from 'node:crypto';
import { WebSocketServer } from 'ws';

const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const host = arg('--listen', '127.0.0.1');
const port = Number(arg('--port', '0'));

const logRequests = process.argv.includes('--log-requests');
const runs = process.argv.includes('--runs');
const received = []; // --runs: every prompt id accepted
const history = {}; // --runs: prompt id -> its entry, once "stored"

const server = http.createServer((req, res) => {
  if (logRequests) console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${'x'.repeat(100)}`);
  if (req.url === '/system_stats') {
    res.setHeader('content-type', 'application/json');
    // argv as an instance reports it: the hub tells its own instance by it
    res.end(JSON.stringify({ system: { os: 'echo', argv: process.argv.slice(1) }, devices: [] }));
    return;
  }
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/chunked') {
    const n = Number(url.searchParams.get('n') || 3);
    let i = 0;
    res.setHeader('content-type', 'application/octet-stream');
    const next = () => {
      if (i++ === n) { res.end(); return; }
      res.write(Buffer.alloc(1024, i % 256));
      setTimeout(next, 5);
    };
    next();
    return;
  }
  if (url.pathname === '/slow') {
    setTimeout(() => res.end('late'), Number(url.searchParams.get('ms') || 1000));
    return;
  }
  if (url.pathname.startsWith('/history/')) { // it runs nothing: no history (--runs: see above)
    res.setHeader('content-type', 'application/json');
    if (!runs) { res.end('{}'); return; }
    const id = decodeURIComponent(url.pathname.slice('/history/'.length));
    const text = JSON.stringify(history[id] ? { [id]: history[id] } : {});
    setTimeout(() => res.end(text), 100);
    return;
  }
  if (runs && url.pathname === '/queue') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ queue_running: received.map((id, i) => [i, id, {}, {}, []]), queue_pending: [] }));
    return;
  }
  if (url.pathname === '/prompt' && req.method === 'POST') {
    answerPrompt(req, res);
    return;
  }
  const hash = crypto.createHash('sha256');
  let size = 0;
  req.on('data', (d) => { size += d.length; hash.update(d); });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('x-echo', 'yes');
    if (url.pathname === '/redirect') res.setHeader('location', '/elsewhere');
    if (url.pathname === '/setcookie') res.setHeader('set-cookie', ['comfyd_session=stolen; Path=/', 'theme=dark; Path=/']);
    res.statusCode = url.pathname === '/redirect' ? 302 : 200;
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, size, sha256: hash.digest('hex') }));
  });
});
// POST /prompt as ComfyUI answers it for a graph with an unknown node (400, node_errors), else
// queued; it runs nothing, so /history stays empty.
function answerPrompt(req, res) {
  let text = '';
  req.on('data', (d) => { text += d; });
  req.on('end', () => {
    let body = {};
    try { body = JSON.parse(text); } catch { /* answered as no prompt */ }
    const unknown = Object.entries(body.prompt || {}).find(([, n]) => n.class_type === 'NoSuchNode');
    res.setHeader('content-type', 'application/json');
    if (unknown) {
      const [id] = unknown;
      res.statusCode = 400;
      res.end(JSON.stringify({
        error: { type: 'invalid_prompt', message: 'Cannot execute because node NoSuchNode does not exist.', details: `Node ID '#${id}'`, extra_info: {} },
        node_errors: { [id]: { errors: [{ type: 'invalid_prompt', message: 'node does not exist' }], dependent_outputs: [], class_type: 'NoSuchNode' } },
      }));
      return;
    }
    res.end(JSON.stringify({ prompt_id: body.prompt_id, number: 0, node_errors: {} }));
    if (runs) run(body.prompt_id);
  });
}

function broadcast(type, data) {
  for (const ws of sockets.clients) ws.send(JSON.stringify({ type, data }));
}

function run(id) {
  received.push(id);
  setTimeout(() => {
    broadcast('execution_start', { prompt_id: id, timestamp: Date.now() });
    broadcast('execution_success', { prompt_id: id, timestamp: Date.now() });
    setTimeout(() => {
      history[id] = { prompt: [0, id, {}, {}, []], outputs: {}, status: { status_str: 'success', completed: true, messages: [] } };
    }, 30);
    setTimeout(() => broadcast('status', { status: { exec_info: { queue_remaining: 0 } } }), 35);
  }, 50);
}

// /ws: ComfyUI's event stream, reduced to the first status message.
const sockets = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  if (!req.url.startsWith('/ws')) { socket.destroy(); return; }
  sockets.handleUpgrade(req, socket, head, (ws) => {
    ws.send(JSON.stringify({ type: 'status', data: { status: { exec_info: { queue_remaining: 0 } }, sid: 'echo' } }));
  });
});

server.listen(port, host, () => console.log(`echo instance on ${host}:${port}`));
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
