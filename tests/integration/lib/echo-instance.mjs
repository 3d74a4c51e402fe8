// A stand-in instance for the hub's proxy tests, started by the hub through COMFYUI_COMMAND
// (`node echo-instance.mjs --listen {listen} --port {port} [--log-requests]`): it answers /system_stats as an
// instance does, and every other request with what it received (method, raw target, headers,
// body size and SHA-256), so that the tests see exactly what the hub forwarded.
//   /chunked?n=N   answers N pieces of 1 KiB, chunked, with a pause between them
//   /slow?ms=N     answers after N ms
import http from 'node:http';
import crypto from 'node:crypto';

const arg = (name, def) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : def; };
const host = arg('--listen', '127.0.0.1');
const port = Number(arg('--port', '0'));

const logRequests = process.argv.includes('--log-requests');

const server = http.createServer((req, res) => {
  if (logRequests) console.log(`${new Date().toISOString()} ${req.method} ${req.url} ${'x'.repeat(100)}`);
  if (req.url === '/system_stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ system: { os: 'echo' }, devices: [] }));
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
server.listen(port, host, () => console.log(`echo instance on ${host}:${port}`));
process.on('SIGTERM', () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
