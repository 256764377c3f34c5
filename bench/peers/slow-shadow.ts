import * as http from 'node:http';
import { parseArgs } from 'node:util';

// A shadow that answers `ok` only after --delay-ms and counts the requests it received
// (counted on arrival). GET /__bench_count returns the count and is not counted itself.
// Usage: node slow-shadow.js --port P [--delay-ms 2000] [--empty-body]

const { values } = parseArgs({
  options: { port: { type: 'string' }, 'delay-ms': { type: 'string', default: '2000' }, 'empty-body': { type: 'boolean', default: false } },
});
const delayMs = Number(values['delay-ms']);
const body = values['empty-body'] ? '' : 'ok\n';
let count = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/__bench_count') {
    res.end(`${count}\n`);
    return;
  }
  count++;
  req.resume();
  const timer = setTimeout(() => res.end(body), delayMs);
  res.on('close', () => clearTimeout(timer));
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(Number(values.port), '127.0.0.1');

process.on('SIGTERM', () => process.exit(0));
