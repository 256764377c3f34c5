import { execFile } from 'node:child_process';
import * as http2 from 'node:http2';
import { promisify } from 'node:util';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { fetchText, startProxy, statValue, type TestProxy } from '../harness/proxy';
import { type Upstream, closedPort, startUpstream } from '../harness/upstream';

// HTTP/2 from the client side over cleartext: AUTO serves HTTP/1.1 and h2c (prior knowledge) on
// one port, HTTP2 only h2c; either reaches HTTP/1.1 upstreams and mirrors like HTTP/1.1 does.

const run = promisify(execFile);

function h2Request(url: string, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let got: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      got = h;
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      session.close();
      resolve({ status, headers: got, body: Buffer.concat(chunks).toString() });
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

describe('h2c downstream', () => {
  let primary: Upstream;
  let mirror: Upstream;
  let p: TestProxy;

  beforeAll(async () => {
    primary = await startUpstream({ name: 'primary' });
    mirror = await startUpstream({ name: 'mirror' });
    p = await startProxy(bootstrap({
      listeners: [
        listener(routeConfig([route('/', 'primary', { request_mirror_policies: [{ cluster: 'mirror' }] })])),
        listener(routeConfig([route('/', 'primary')]), { name: 'h2only', port: await closedPort(), hcm: { codec_type: 'HTTP2', stat_prefix: 'h2only' } }),
      ],
      clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    }));
  });

  afterAll(async () => {
    await p.stop();
    await primary.close();
    await mirror.close();
  });

  test('AUTO: HTTP/1.1 and h2c on one port, the h2c request mirrored with -shadow on its authority', async () => {
    const h1 = await fetchText(`${p.url}/one`);
    expect(h1.status).toBe(200);
    const body = Buffer.alloc(200_000, 7);
    const h2 = await h2Request(p.url, { ':method': 'POST', ':path': '/two?q=1', ':authority': 'svc.local:80', 'x-test': 'a' }, body);
    expect(h2.status).toBe(200);
    expect(h2.body).toBe('primary');
    const up = primary.requests.find((r) => r.url === '/two?q=1')!;
    expect(up.headers.host).toBe('svc.local:80');
    expect(up.headers['x-test']).toBe('a');
    expect(up.body.length).toBe(body.length);
    const shadows = await mirror.waitForRequests(2);
    const shadow = shadows.find((r) => r.url === '/two?q=1')!;
    expect(shadow.headers.host).toBe('svc.local-shadow:80');
    expect(shadow.body.equals(body)).toBe(true);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_cx_http2_total')).toBeGreaterThanOrEqual(1);
    expect(await statValue(p.adminUrl, 'http.ingress_http.downstream_rq_http2_total')).toBe(1);
  });

  test('curl --http2-prior-knowledge gets the primary over h2c; HTTP2 codec listener too', async () => {
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${p.url}/curl`]);
    expect(stdout).toBe('2 200');
    const h2only = `http://127.0.0.1:${p.proxy.listeners.address('h2only')!.port}`;
    const viaH2 = await run('curl', ['-sS', '--http2-prior-knowledge', '-w', ' %{http_version}', `${h2only}/only`]);
    expect(viaH2.stdout).toBe('primary 2');
  });

  test('curl --http2 over cleartext (Upgrade: h2c) is served as HTTP/1.1, as Envoy does, not refused', async () => {
    const { stdout } = await run('curl', ['-sS', '--http2', '-w', ' %{http_version} %{http_code}', `${p.url}/upgrade`]);
    expect(stdout).toBe('primary 1.1 200');
    const up = primary.requests.find((r) => r.url === '/upgrade')!;
    expect(up.headers.upgrade).toBeUndefined();
    expect(up.headers['http2-settings']).toBeUndefined();
  });
});
