import * as http from 'node:http';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

// The "do it yourself in Node" peer: node-http-proxy forwards to the primary, and every request is
// also sent, fire-and-forget, to the shadow; the shadow's response is drained and ignored, its
// errors too. Usage: node http-proxy-mirror.js --port P --primary P1 --shadow P2

const { values } = parseArgs({
  options: { port: { type: 'string' }, primary: { type: 'string' }, shadow: { type: 'string' } },
});
const port = Number(values.port);
const primaryPort = Number(values.primary);
const shadowPort = Number(values.shadow);

const primaryAgent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
const shadowAgent = new http.Agent({ keepAlive: true });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${primaryPort}`, agent: primaryAgent });

proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) {
    res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});

const ignore = (): void => undefined;

function mirror(req: http.IncomingMessage): void {
  const shadow = http.request({
    host: '127.0.0.1',
    port: shadowPort,
    method: req.method,
    path: req.url,
    headers: { ...req.headers, host: `127.0.0.1:${shadowPort}` },
    agent: shadowAgent,
  });
  shadow.on('error', ignore);
  shadow.on('response', (res) => {
    res.on('error', ignore);
    res.resume();
  });
  req.pipe(shadow);
}

const server = http.createServer((req, res) => {
  mirror(req);
  proxy.web(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1');

process.on('SIGTERM', () => process.exit(0));
