// Every way the primary can fail before its response starts is answered with Envoy's local reply
// (status, body text, headers), on a connection that stays usable: a keep-alive client gets the
// reply, never a reset, and its next request on the same connection is served. Real sockets only.
import * as http from 'node:http';
import * as net from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { startProxy, statValue, type TestProxy } from '../harness/proxy';
import { closedPort, startUpstream } from '../harness/upstream';

const CONNECT_FAILURE = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';
const TERMINATION = 'upstream connect error or disconnect/reset before headers. reset reason: connection termination';
const PROTOCOL_ERROR = 'upstream connect error or disconnect/reset before headers. reset reason: protocol error';
const TIMEOUT = 'upstream request timeout';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

/** A TCP server that answers each connection's first bytes with `reply` (raw), then acts as told. */
async function rawUpstream(onData: (socket: net.Socket) => void): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.once('data', () => onData(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return (server.address() as net.AddressInfo).port;
}

/** A proxy routing everything to `primaryPort`, mirrored to a healthy shadow but for /unmirrored. */
async function proxyTo(primaryPort: number, timeout = '5s'): Promise<TestProxy> {
  const mirror = await startUpstream({ name: 'mirror' });
  cleanups.push(() => mirror.close());
  const p = await startProxy(bootstrap({
    listeners: [listener(routeConfig([
      route('/unmirrored', 'primary', { timeout }),
      route('/', 'primary', { timeout, request_mirror_policies: [{ cluster: 'mirror' }] }),
    ]))],
    clusters: [cluster('primary', [primaryPort]), cluster('mirror', [mirror.port])],
  }));
  cleanups.push(() => p.stop());
  return p;
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The request went out on a connection an earlier request had used. */
  reused: boolean;
}

/** One request on `agent` (one keep-alive connection per agent); a socket error rejects. */
function send(agent: http.Agent, port: number, method: string, body?: Buffer, path = '/x'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Envoy's local reply: the status, the text, text/plain with its length, and no upstream timing. */
function expectLocalReply(r: Reply, status: number, text: string): void {
  expect(r.status).toBe(status);
  expect(r.body).toBe(text);
  expect(r.headers['content-type']).toBe('text/plain');
  expect(r.headers['content-length']).toBe(String(Buffer.byteLength(text)));
  expect(r.headers.server).toBe('envoy');
  expect(r.headers.date).toBeDefined();
  expect(r.headers['x-envoy-upstream-service-time']).toBeUndefined();
}

// Proves: with a refusing primary, 20 keep-alive clients sending no body, a small body and a
// 100 KiB body (which the proxy has all read by the time the connect fails), mirrored or not, each
// get Envoy's 503, none a reset, and their next requests go out on the same connection and get a
// 503 too. (The proxy used to end such a connection when the refused primary had not taken the
// body, though its 503 said keep-alive: the client's next request met a reset.)
test('refusing primary, 20 keep-alive clients: each gets the 503, none a reset, and the connection serves the next request', async () => {
  const p = await proxyTo(await closedPort());
  const bodies = [undefined, Buffer.from('small'), Buffer.alloc(100 * 1024, 7)];
  const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const body = bodies[i % bodies.length];
      const path = i % 2 === 0 ? '/x' : '/unmirrored';
      const first = await send(agent, p.port, body ? 'POST' : 'GET', body, path);
      const second = await send(agent, p.port, 'GET', undefined, path);
      const third = await send(agent, p.port, 'POST', Buffer.alloc(100 * 1024, 9), path);
      return [first, second, third];
    } finally {
      agent.destroy();
    }
  }));
  for (const [first, second, third] of results) {
    expectLocalReply(first!, 503, CONNECT_FAILURE);
    expect(first!.headers.connection).toBe('keep-alive');
    expectLocalReply(second!, 503, CONNECT_FAILURE);
    expect(second!.reused).toBe(true);
    expectLocalReply(third!, 503, CONNECT_FAILURE);
    expect(third!.reused).toBe(true);
  }
});

// Proves: an upload still coming when the connect fails gets the 503 with `connection: close`
// (Envoy closes an HTTP/1 connection whose response started before its request was complete, and
// counts it); the client reads the whole reply, no reset, while its upload drains.
test('refusing primary during a large upload: the 503 says connection: close, arrives whole, and is counted', async () => {
  const p = await proxyTo(await closedPort());
  let closes = 0;
  for (const path of ['/x', '/unmirrored']) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const r = await send(agent, p.port, 'POST', Buffer.alloc(16 * 1024 * 1024, 3), path);
      expectLocalReply(r, 503, CONNECT_FAILURE);
      if (r.headers.connection === 'close') closes++;
      // Whatever the connection did, a next request (on it or on a new one) is answered.
      expectLocalReply(await send(agent, p.port, 'GET', undefined, path), 503, CONNECT_FAILURE);
    } finally {
      agent.destroy();
    }
  }
  expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_response_before_rq_complete')).toBe(closes);
});

describe('other primary failures before the response: Envoy local reply, connection reusable', () => {
  const cases: Array<[string, () => Promise<number>, number, string, string?]> = [
    ['reset in the middle of the headers', () => rawUpstream((s) => s.end('HTTP/1.1 200 OK\r\ncontent-le', () => s.destroy())), 503, TERMINATION],
    ['closed before any byte', () => rawUpstream((s) => s.destroy()), 503, TERMINATION],
    ['a reply that is not HTTP', () => rawUpstream((s) => s.write('SSH-2.0-OpenSSH_9.2\r\n\r\n')), 503, PROTOCOL_ERROR],
    ['no answer within the route timeout', () => rawUpstream(() => undefined), 504, TIMEOUT, '0.3s'],
  ];
  for (const [name, start, status, text, timeout] of cases) {
    // Proves: this failure is Envoy's local reply, and two more requests on the same keep-alive
    // connection (one with a body) are answered the same way.
    test(`${name}: ${status} "${text}"`, async () => {
      const p = await proxyTo(await start(), timeout);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await send(agent, p.port, 'GET');
        expectLocalReply(first, status, text);
        const second = await send(agent, p.port, 'POST', Buffer.from('{"a":1}'));
        expectLocalReply(second, status, text);
        expect(second.reused).toBe(true);
      } finally {
        agent.destroy();
      }
    });
  }
});
