import * as net from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestProxy, startProxy } from '../harness/proxy';
import { type Upstream, startUpstream } from '../harness/upstream';

// Issue 13 review: a request that says `connection: close` is the connection's last; what the
// client pipelined after it is never read. Seen on the fast codec: the 200 (with
// `Connection: close`) was followed by "HTTP/1.1 400 Bad Request" on the same connection — llhttp
// refuses data after a close, and the 400 was written once the response finished, before the
// socket was ended. node:http and Envoy send the one response and close.

jest.setTimeout(30_000);

let upstream: Upstream;
let p: TestProxy;
beforeAll(async () => {
  upstream = await startUpstream({ respond: (_req, res) => { res.writeHead(200, { 'content-length': '2' }); res.end('ok'); } });
  p = await startProxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'backend')]))], clusters: [cluster('backend', [upstream.port])] }));
});
afterAll(async () => { await p?.stop(); await upstream?.close(); });

function raw(text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(p.port, '127.0.0.1', () => s.write(text));
    let got = '';
    const t = setTimeout(() => { s.destroy(); resolve(got); }, 5000);
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => { clearTimeout(t); resolve(got); });
    s.on('error', () => undefined);
  });
}

test.each([
  ['connection: close', 'close'],
  ['connection: keep-alive, close', 'keep-alive, close'],
])('a request with %s and one pipelined after it gets one response, then the close', async (_n, value) => {
  const got = await raw(`GET /a HTTP/1.1\r\nhost: x\r\nconnection: ${value}\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n`);
  expect(got.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200']);
  expect(got).toMatch(/\r\nconnection: close\r\n/i);
  expect(got.endsWith('\r\n\r\nok')).toBe(true);
});
