// HTTP/1.1 upgrades (WebSocket) through the proxy, Envoy's way: upgrade_configs on the connection
// manager and on routes decide (403 otherwise), an allowed upgrade is routed like any request and
// tunnelled after the upstream's 101, a refusal is relayed, and upgrades are never mirrored.
// Real sockets only: a tiny RFC 6455 echo server upstream, Node's HTTP client for the handshake.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { makeTestCertificates } from '../harness/certs';
import { startProxy, statValue, type TestProxy } from '../harness/proxy';
import { closedPort, sleep, startUpstream } from '../harness/upstream';
import { FrameReader, OPCODE, type WsHandshake, type WsServer, acceptFor, encodeFrame, startWsServer, wsConnect } from '../harness/websocket';

type Json = Record<string, unknown>;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => undefined);
});

const WEBSOCKET = [{ upgrade_type: 'websocket' }];

async function wsServer(o: Parameters<typeof startWsServer>[0] = {}): Promise<WsServer> {
  const s = await startWsServer(o);
  cleanups.push(() => s.close());
  return s;
}

async function proxy(routes: Json[], clusters: Json[], hcm: Json = { upgrade_configs: WEBSOCKET }): Promise<TestProxy> {
  const p = await startProxy(bootstrap({ listeners: [listener(routeConfig(routes), { hcm })], clusters }));
  cleanups.push(() => p.stop());
  return p;
}

function upgraded(h: WsHandshake): Extract<WsHandshake, { kind: 'upgraded' }> {
  if (h.kind !== 'upgraded') throw new Error(`expected a 101, got ${h.status}: ${h.body}`);
  cleanups.push(async () => h.client.close());
  return h;
}

function refused(h: WsHandshake): Extract<WsHandshake, { kind: 'response' }> {
  if (h.kind !== 'response') throw new Error('expected a plain response, got a 101');
  return h;
}

/** Polls `check` until it holds or `ms` pass. */
async function eventually(check: () => boolean | Promise<boolean>, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await sleep(20);
  }
}

describe('WebSocket upgrades', () => {
  test('an HCM upgrade_config lets a WebSocket through: routed, headers kept, echoed both ways, counted', async () => {
    const ws = await wsServer();
    const p = await proxy([{
      ...route('/', 'ws'),
      request_headers_to_add: [{ header: { key: 'x-added', value: 'by-route' } }],
      response_headers_to_add: [{ header: { key: 'x-route', value: 'yes' } }],
    }], [cluster('ws', [ws.port])]);
    const h = upgraded(await wsConnect(p.port, '/chat?room=1'));
    // 1. The handshake: the upstream's 101, with the accept for our key.
    expect(h.status).toBe(101);
    expect(h.headers['sec-websocket-accept']).toBe(acceptFor(h.key));
    expect(String(h.headers.upgrade).toLowerCase()).toBe('websocket');
    expect(String(h.headers.connection).toLowerCase()).toBe('upgrade');
    expect(h.headers['x-route']).toBe('yes');
    expect(h.headers.server).toBe('envoy');
    // 2. What the upstream saw: the upgrade headers, the connection manager's and the route's.
    const seen = ws.upgrades[0]!;
    expect(seen.url).toBe('/chat?room=1');
    expect(String(seen.headers.upgrade)).toBe('websocket');
    expect(String(seen.headers.connection).toLowerCase()).toBe('upgrade');
    expect(seen.headers['sec-websocket-key']).toBe(h.key);
    expect(seen.headers['sec-websocket-version']).toBe('13');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(seen.headers['x-added']).toBe('by-route');
    // 3. Messages both ways, text and binary, in order.
    h.client.send('hello');
    h.client.send(Buffer.from([0, 1, 2, 255]));
    const first = await h.client.next();
    expect(first.opcode).toBe(OPCODE.text);
    expect(first.payload.toString()).toBe('hello');
    const second = await h.client.next();
    expect(second.opcode).toBe(OPCODE.binary);
    expect([...second.payload]).toEqual([0, 1, 2, 255]);
    h.client.send(Buffer.from('ping!'), OPCODE.ping);
    const pong = await h.client.next();
    expect(pong.opcode).toBe(OPCODE.pong);
    // 4. Envoy's counters: allowed and active now; the tunnel is one active upstream request.
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_upgrades_total')).toBe(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_upgrades_active')).toBe(1);
    expect(await statValue(p.adminUrl, 'cluster.ws.upstream_rq_active')).toBe(1);
    expect(await statValue(p.adminUrl, 'cluster.ws.upstream_rq_1xx')).toBe(1);
    h.client.close();
    await eventually(async () => (await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_upgrades_active')) === 0);
    await eventually(async () => (await statValue(p.adminUrl, 'cluster.ws.upstream_rq_active')) === 0);
    expect(await statValue(p.adminUrl, 'http.ingress_http.upgrades_failed')).toBe(0);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_1xx')).toBe(1);
  });

  test('large frames cross both ways with back-pressure: a client that does not read stops the upstream', async () => {
    const ws = await wsServer();
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port])]);
    const h = upgraded(await wsConnect(p.port));
    const frame = 4 * 1024 * 1024;
    const frames = 16;
    const sent = createHash('sha256');
    // 1. The client does not read: its socket stays paused while it writes 64 MiB.
    h.client.socket.pause();
    let written = 0;
    const writer = (async () => {
      for (let i = 0; i < frames; i++) {
        const payload = randomBytes(frame);
        sent.update(payload);
        written++;
        if (!h.client.send(payload)) await new Promise<void>((resolve) => h.client.socket.once('drain', () => resolve()));
      }
    })();
    // 2. Echoes pile up towards the client until every buffer on the way is full: the server stops
    //    reading, the proxy stops reading the client, and the client's writes stall.
    await sleep(1500);
    expect(written).toBeLessThan(frames);
    expect(ws.bytesReceived).toBeLessThan(frames * frame);
    // 3. Once the client reads, everything arrives, intact and in order.
    h.client.socket.resume();
    const got = createHash('sha256');
    for (let i = 0; i < frames; i++) {
      const f = await h.client.next(20_000);
      expect(f.payload.length).toBe(frame);
      got.update(f.payload);
    }
    await writer;
    expect(got.digest('hex')).toBe(sent.digest('hex'));
  }, 60_000);

  test('bytes the client sends right behind its handshake reach the upstream once it has switched', async () => {
    const ws = await wsServer();
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port])]);
    const key = randomBytes(16).toString('base64');
    const socket = net.connect(p.port, '127.0.0.1');
    cleanups.push(async () => void socket.destroy());
    socket.on('error', () => undefined);
    // 1. The handshake and a first frame in one write, before any answer.
    socket.write(Buffer.concat([
      Buffer.from(`GET /early HTTP/1.1\r\nhost: a\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`),
      encodeFrame(OPCODE.text, Buffer.from('early bird'), true),
    ]));
    // 2. The 101, then the echo of that frame.
    const reader = new FrameReader();
    const got = await new Promise<{ head: string; frames: string[] }>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      let head: string | null = null;
      const frames: string[] = [];
      const timer = setTimeout(() => reject(new Error('no echo in 5 s')), 5000);
      socket.on('data', (d: Buffer) => {
        if (head === null) {
          buf = Buffer.concat([buf, d]);
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          head = buf.subarray(0, end).toString();
          d = buf.subarray(end + 4);
        }
        for (const f of reader.push(d)) frames.push(f.payload.toString());
        if (frames.length > 0) {
          clearTimeout(timer);
          resolve({ head, frames });
        }
      });
    });
    expect(got.head).toMatch(/^HTTP\/1\.1 101 /);
    expect(got.head.toLowerCase()).toContain(`sec-websocket-accept: ${acceptFor(key).toLowerCase()}`);
    expect(got.frames).toEqual(['early bird']);
  });

  test('a route that disables the type gets 403 (downstream_rq_ws_on_non_ws_route); the upstream sees nothing', async () => {
    const ws = await wsServer();
    const p = await proxy([
      route('/off', 'ws', { upgrade_configs: [{ upgrade_type: 'websocket', enabled: false }] }),
      route('/', 'ws'),
    ], [cluster('ws', [ws.port])]);
    const off = refused(await wsConnect(p.port, '/off'));
    expect(off.status).toBe(403);
    expect(off.headers.connection).toBe('close');
    expect(ws.upgrades).toHaveLength(0);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_ws_on_non_ws_route')).toBe(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_upgrades_total')).toBe(0);
    // The same listener upgrades on the route that does not disable it.
    expect(upgraded(await wsConnect(p.port, '/on')).status).toBe(101);
  });

  test('without upgrade_configs on the HCM: 403, unless the route enables the type itself', async () => {
    const ws = await wsServer();
    const p = await proxy([
      route('/enabled', 'ws', { upgrade_configs: [{ upgrade_type: 'WebSocket' }] }),
      route('/', 'ws'),
    ], [cluster('ws', [ws.port])], {});
    expect(refused(await wsConnect(p.port, '/')).status).toBe(403);
    expect(ws.upgrades).toHaveLength(0);
    expect(upgraded(await wsConnect(p.port, '/enabled')).status).toBe(101);
    expect(ws.upgrades).toHaveLength(1);
    // Another type than the one enabled is still refused.
    expect(refused(await wsConnect(p.port, '/enabled', { upgrade: 'custom-proto' })).status).toBe(403);
  });

  test('a mirror policy on the route mirrors nothing of an upgrade (plain requests still are)', async () => {
    const ws = await wsServer();
    const mirror = await startUpstream({ name: 'mirror' });
    cleanups.push(() => mirror.close());
    const p = await proxy([route('/', 'ws', { request_mirror_policies: [{ cluster: 'mirror' }] })],
      [cluster('ws', [ws.port]), cluster('mirror', [mirror.port])]);
    const h = upgraded(await wsConnect(p.port, '/ws'));
    h.client.send('not for the mirror');
    expect((await h.client.next()).payload.toString()).toBe('not for the mirror');
    h.client.close();
    await sleep(300);
    expect(mirror.requests).toHaveLength(0);
    expect(await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')).toBe(0);
    // The control: a plain request on the same route is mirrored, and counted where we looked.
    const res = await fetch(`${p.url}/plain`);
    expect(await res.text()).toBe('plain');
    await mirror.waitForRequests(1);
    await eventually(async () => (await statValue(p.adminUrl, 'cluster.mirror.shadow.sent')) === 1);
  });

  test.each([
    [200, 'no websocket here'],
    [404, 'not found'],
  ])('an upstream that answers %i instead of 101 is relayed, and the connection closes', async (status, body) => {
    const ws = await wsServer({ refuse: () => ({ status, body }) });
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port])]);
    const r = refused(await wsConnect(p.port, '/x'));
    expect(r.status).toBe(status);
    expect(r.body).toBe(body);
    expect(r.headers['x-refused']).toBe('yes');
    expect(r.headers.connection).toBe('close');
    expect(r.headers.upgrade).toBeUndefined();
    expect(await statValue(p.adminUrl, 'http.ingress_http.upgrades_failed')).toBe(1);
    expect(await statValue(p.adminUrl, `cluster.ws.upstream_rq_${status}`)).toBe(1);
    await eventually(async () => (await statValue(p.adminUrl, 'cluster.ws.upstream_rq_active')) === 0);
  });

  test('an upstream that is down: 503 with Envoy\'s connect-failure text', async () => {
    const p = await proxy([route('/', 'ws')], [cluster('ws', [await closedPort()])]);
    const r = refused(await wsConnect(p.port));
    expect(r.status).toBe(503);
    expect(r.body).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
    expect(r.headers.connection).toBe('close');
    expect(await statValue(p.adminUrl, 'http.ingress_http.upgrades_failed')).toBe(1);
  });

  test('a client that closes closes the upstream socket, and an upstream that closes closes the client', async () => {
    const ws = await wsServer();
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port])]);
    // 1. The client goes: the upstream's tunnel socket closes too.
    const a = upgraded(await wsConnect(p.port));
    expect(ws.open.size).toBe(1);
    a.client.close();
    await eventually(() => ws.open.size === 0);
    // 2. The upstream goes: the client's socket closes.
    const b = upgraded(await wsConnect(p.port));
    b.client.send('still there?');
    await b.client.next();
    for (const s of ws.open) s.destroy();
    await b.client.closed;
    // 3. A clean close handshake ends both sides as well.
    const c = upgraded(await wsConnect(p.port));
    c.client.send(Buffer.alloc(0), OPCODE.close);
    expect((await c.client.next()).opcode).toBe(OPCODE.close);
    await c.client.closed;
    await eventually(() => ws.open.size === 0);
    await eventually(async () => (await statValue(p.adminUrl, 'cluster.ws.upstream_rq_active')) === 0);
    await eventually(async () => (await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_active')) === 0);
  });

  test('the route timeout covers the wait for the 101 (504), never the tunnel; stream_idle_timeout ends an idle tunnel', async () => {
    const ws = await wsServer({ refuse: (req) => (req.url === '/hang' ? 'hang' : null) });
    const p = await proxy([route('/', 'ws', { timeout: '0.3s' })], [cluster('ws', [ws.port])],
      { upgrade_configs: WEBSOCKET, stream_idle_timeout: '1s' });
    // 1. No answer to the upgrade: Envoy's 504 after the route timeout.
    const hung = refused(await wsConnect(p.port, '/hang'));
    expect(hung.status).toBe(504);
    expect(hung.body).toBe('upstream request timeout');
    expect(await statValue(p.adminUrl, 'cluster.ws.upstream_rq_timeout')).toBe(1);
    // 2. A tunnel with traffic outlives the route timeout many times over.
    const h = upgraded(await wsConnect(p.port, '/ok'));
    for (let i = 0; i < 6; i++) {
      await sleep(200);
      h.client.send(`tick ${i}`);
      expect((await h.client.next()).payload.toString()).toBe(`tick ${i}`);
    }
    // 3. Left idle, it is closed by stream_idle_timeout, both sides.
    const idleFrom = Date.now();
    await h.client.closed;
    expect(Date.now() - idleFrom).toBeGreaterThanOrEqual(800);
    await eventually(() => ws.open.size === 0);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_idle_timeout')).toBe(1);
  });

  test('max_stream_duration on the route bounds a busy tunnel', async () => {
    const ws = await wsServer();
    const p = await proxy([route('/', 'ws', { max_stream_duration: { max_stream_duration: '0.6s' } })], [cluster('ws', [ws.port])]);
    const started = Date.now();
    const h = upgraded(await wsConnect(p.port));
    // Traffic all along: only the duration can end it.
    const ticker = setInterval(() => h.client.send('tick'), 50);
    cleanups.push(async () => clearInterval(ticker));
    await h.client.closed;
    clearInterval(ticker);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
    expect(Date.now() - started).toBeLessThan(3000);
    await eventually(() => ws.open.size === 0);
  });

  test('an HTTP/2 cluster is refused with a 503 (no extended CONNECT upstream); nothing is sent', async () => {
    const ws = await wsServer();
    const h2 = { typed_extension_protocol_options: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    } } };
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port], h2)]);
    const r = refused(await wsConnect(p.port));
    expect(r.status).toBe(503);
    expect(ws.upgrades).toHaveLength(0);
  });

  test('a request the connection manager refuses never reaches the upstream (no Host: 400)', async () => {
    const ws = await wsServer();
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port])]);
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(p.port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n'));
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('close', () => resolve(got));
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400 /);
    expect(ws.upgrades).toHaveLength(0);
  });
});

describe('WebSocket upgrades to a TLS cluster', () => {
  test('the upgrade goes over the cluster\'s TLS (its SNI and CA), and echoes', async () => {
    const certs = makeTestCertificates();
    cleanups.push(async () => certs.remove());
    const ws = await wsServer({ tls: { cert: readFileSync(certs.serverCertFile, 'utf8'), key: readFileSync(certs.serverKeyFile, 'utf8') } });
    const tls = { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      sni: 'localhost',
      common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile } } },
    } } };
    const p = await proxy([route('/', 'ws')], [cluster('ws', [ws.port], tls)]);
    const h = upgraded(await wsConnect(p.port, '/secure'));
    expect(h.headers['sec-websocket-accept']).toBe(acceptFor(h.key));
    h.client.send('over tls');
    expect((await h.client.next()).payload.toString()).toBe('over tls');
    expect(await statValue(p.adminUrl, 'cluster.ws.ssl.handshake')).toBe(1);
  });
});
