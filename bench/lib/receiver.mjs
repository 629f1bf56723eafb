// Child process: a webhook receiver on loopback that reads each body and answers 200 at once.
// IPC: sends { type: 'ready', url }; answers { cmd: 'stats', reset? } with request counts; { cmd: 'stop' }.
import http from 'node:http';

let requests = 0;
let signed = 0;
let bytes = 0;
const server = http.createServer((req, res) => {
  let n = 0;
  req.on('data', (c) => (n += c.length));
  req.on('end', () => {
    requests++;
    bytes += n;
    if (req.headers['webhook-signature'] || req.headers['x-langfuse-signature']) signed++;
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.send({ type: 'ready', url: `http://127.0.0.1:${port}/hooks/langfuse` });
});

process.on('message', (m) => {
  if (m?.cmd === 'stats') {
    process.send({ id: m.id, requests, signed, bytes });
    if (m.reset) requests = signed = bytes = 0;
  } else if (m?.cmd === 'stop') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
