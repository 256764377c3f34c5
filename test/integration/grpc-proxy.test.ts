import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { until } from '../harness/mirror-ext';
import { startProxy, statValue, type TestProxy } from '../harness/proxy';
import { closedPort } from '../harness/upstream';
import {
  type EchoClient,
  type EchoServer,
  type PythonEchoServer,
  echoClient,
  makePayload,
  payloadRequests,
  sha256Hex,
  startEchoServer,
  startPythonEchoServer,
} from '../harness/grpc';

// gRPC through the proxy with a mirror: grpc-js clients and servers for the four call kinds,
// HTTP/2 on both sides (h2c), trailers and metadata intact at the client and at the shadow.

const H2 = {
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
};

describe('gRPC through the proxy, mirrored', () => {
  let primary: EchoServer;
  let shadow: EchoServer;
  let python: PythonEchoServer;
  let p: TestProxy;
  let client: EchoClient;
  let pyClient: EchoClient;
  let deadPort: number;
  /** HTTP/2 shadows that misbehave: one resets every stream, one never answers nor reads. */
  let resetting: http2.Http2Server;
  let stalling: http2.Http2Server;

  beforeAll(async () => {
    primary = await startEchoServer({ name: 'primary' });
    shadow = await startEchoServer({ name: 'shadow' });
    python = await startPythonEchoServer({ name: 'python' });
    deadPort = await closedPort();
    resetting = await h2Server((stream) => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    stalling = await h2Server((stream) => stream.pause());
    const mirrorTo = (c: string) => ({ request_mirror_policies: [{ cluster: c }] });
    p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([
        route('/sidemirror.test.v1.Echo/', 'primary', mirrorTo('shadow'), { headers: [{ name: 'x-target', present_match: false }] }),
        route('/', 'python', {}, { headers: [{ name: 'x-target', string_match: { exact: 'python' } }] }),
        route('/', 'dead', mirrorTo('dead'), { headers: [{ name: 'x-target', string_match: { exact: 'dead' } }] }),
        route('/', 'primary', mirrorTo('dead'), { headers: [{ name: 'x-target', string_match: { exact: 'dead-mirror' } }] }),
        route('/', 'primary', mirrorTo('resetting'), { headers: [{ name: 'x-target', string_match: { exact: 'reset-mirror' } }] }),
        route('/', 'primary', mirrorTo('stalling'), { headers: [{ name: 'x-target', string_match: { exact: 'slow-mirror' } }] }),
        route('/', 'primary', { timeout: '1s' }, { headers: [{ name: 'x-target', string_match: { exact: 'short-timeout' } }] }),
        route('/', 'stalling', { timeout: '1s' }, { headers: [{ name: 'x-target', string_match: { exact: 'short-timeout-stall' } }] }),
        route('/', 'stalling', { max_stream_duration: { grpc_timeout_header_max: '0.3s' } }, { headers: [{ name: 'x-target', string_match: { exact: 'grpc-deadline' } }], grpc: {} }),
      ]))],
      clusters: [
        cluster('primary', [primary.port], H2),
        cluster('shadow', [shadow.port], H2),
        cluster('python', [python.port], H2),
        cluster('dead', [deadPort], H2),
        cluster('resetting', [port(resetting)], H2),
        cluster('stalling', [port(stalling)], H2),
      ],
    }));
    client = echoClient(`127.0.0.1:${p.port}`, { authority: 'echo.svc:50051' });
    pyClient = echoClient(`127.0.0.1:${p.port}`, { authority: 'echo.svc:50051' });
  });

  afterAll(async () => {
    client.close();
    pyClient.close();
    await p.stop();
    await primary.stop();
    await shadow.stop();
    await python.stop();
    resetting.close();
    stalling.close();
  });

  test('unary: reply, initial metadata and trailers at the client; the shadow sees the same call on a -shadow authority', async () => {
    const r = await client.unary({ message: 'hello', payload: Buffer.from('abc') }, { metadata: { 'echo-x': 'y' } });
    expect(r.status.code).toBe(0);
    expect(r.reply!.message).toBe('hello');
    expect(r.headers.get('x-echo-server')).toEqual(['primary']);
    expect(r.headers.get('echo-x')).toEqual(['y']);
    expect(r.trailers.get('x-echo-trailer')).toEqual(['primary']);
    const calls = await shadow.waitForCalls(1);
    expect(calls[0]!.method).toBe('Unary');
    expect(calls[0]!.authority).toBe('echo.svc-shadow:50051');
    expect(calls[0]!.metadata['echo-x']).toEqual(['y']);
    expect(calls[0]!.outcome).toBe('ok');
    expect(primary.calls.at(-1)!.authority).toBe('echo.svc:50051');
  });

  test('server streaming, client streaming and bidi: every message both ways, trailers intact, mirrored', async () => {
    const before = shadow.calls.length;
    const server = await client.serverStream({ message: 's', count: 5 });
    expect(server.status.code).toBe(0);
    expect(server.replies.map((x) => x.index)).toEqual([0, 1, 2, 3, 4]);
    expect(server.trailers.get('x-echo-trailer')).toEqual(['primary']);
    const payload = makePayload(5 * 1024 * 1024);
    const upload = await client.clientStream(payloadRequests(payload, 64 * 1024));
    expect(upload.status.code).toBe(0);
    expect(upload.reply!.payloadSha256).toBe(sha256Hex(payload));
    const bidi = await client.bidi([{ message: 'a' }, { message: 'b' }, { message: 'c' }]);
    expect(bidi.status.code).toBe(0);
    expect(bidi.replies.map((x) => x.message)).toEqual(['a', 'b', 'c']);
    const calls = (await shadow.waitForCalls(before + 3, 10_000)).slice(before);
    const byMethod = new Map(calls.map((c) => [c.method, c]));
    expect(byMethod.get('ServerStream')!.outcome).toBe('ok');
    // The 5 MB client-streaming upload reached the shadow byte-identical.
    expect(byMethod.get('ClientStream')!.payloadSha256).toBe(sha256Hex(payload));
    expect(byMethod.get('ClientStream')!.payloadBytes).toBe(payload.length);
    expect(byMethod.get('Bidi')!.messages).toBe(3);
  });

  test('a gRPC error passes through as the server sent it (status, message, trailing metadata)', async () => {
    const r = await client.unary({ message: 'x', failWithCode: 9 });
    expect(r.status.code).toBe(9);
    expect(r.status.details).toBe('failed as asked: 9');
    expect(r.trailers.get('x-echo-trailer')).toEqual(['primary']);
  });

  test('a C-core server (python3-grpcio) as primary: te: trailers reaches it', async () => {
    const r = await pyClient.unary({ message: 'py' }, { metadata: { 'x-target': 'python' } });
    expect(r.status.code).toBe(0);
    expect(r.reply!.message).toBe('py');
    expect(r.trailers.get('x-echo-trailer')).toEqual(['python']);
  });

  test('no upstream: the proxy answers as a gRPC error (UNAVAILABLE), not an HTTP 503', async () => {
    const r = await client.unary({ message: 'x' }, { metadata: { 'x-target': 'dead' } });
    expect(r.status.code).toBe(14);
    expect(r.status.details).toMatch(/upstream connect error/);
  });

  test.each([
    ['dead', 'dead-mirror', 'cluster.dead.shadow.failed.connect_failure'],
    ['resetting', 'reset-mirror', 'cluster.resetting.shadow.failed.reset'],
  ])('a %s HTTP/2 mirror leaves unary and streaming calls untouched, and is counted', async (_kind, target, counter) => {
    const metadata = { 'x-target': target };
    const r = await client.unary({ message: 'still' }, { metadata });
    expect(r.status.code).toBe(0);
    expect(r.reply!.message).toBe('still');
    const payload = makePayload(512 * 1024);
    const upload = await client.clientStream(payloadRequests(payload, 32 * 1024), { metadata });
    expect(upload.reply!.payloadSha256).toBe(sha256Hex(payload));
    await until(counter, async () => (await statValue(p.adminUrl, counter)) >= 2, 5000);
  });

  test('route timeout 1 s: a bidi call still sending after 1.6 s is not cut (the timer starts when the request ends); a slower unary answer is (UNAVAILABLE)', async () => {
    const call = client.raw.Bidi(meta({ 'x-target': 'short-timeout' }));
    const replies: string[] = [];
    call.on('data', (r: { message: string }) => replies.push(r.message));
    const status = new Promise<{ code: number }>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    for (const m of ['a', 'b', 'c', 'd', 'e']) {
      call.write({ message: m });
      await new Promise((r) => setTimeout(r, 400));
    }
    call.end();
    expect((await status).code).toBe(0);
    expect(replies).toEqual(['a', 'b', 'c', 'd', 'e']);
    // An upstream that sends nothing: the proxy's 504 becomes a gRPC UNAVAILABLE.
    const slow = await client.unary({ message: 'late' }, { metadata: { 'x-target': 'short-timeout-stall' } });
    expect(slow.status.code).toBe(14);
    expect(slow.status.details).toBe('upstream request timeout');
  });

  test('max_stream_duration.grpc_timeout_header_max caps the grpc-timeout the client sent: DEADLINE_EXCEEDED from the proxy', async () => {
    const started = Date.now();
    const r = await client.unary({ message: 'x' }, { metadata: { 'x-target': 'grpc-deadline' }, deadlineMs: 10_000 });
    expect({ code: r.status.code, details: r.status.details }).toEqual({ code: 4, details: 'downstream duration timeout' });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('a mirror that never reads nor answers adds no wait: a 2 MB upload and bidi calls complete at once', async () => {
    const metadata = { 'x-target': 'slow-mirror' };
    const started = Date.now();
    const payload = makePayload(2 * 1024 * 1024);
    const upload = await client.clientStream(payloadRequests(payload, 64 * 1024), { metadata });
    expect(upload.reply!.payloadSha256).toBe(sha256Hex(payload));
    const bidi = await client.bidi([{ message: '1' }, { message: '2' }], { metadata });
    expect(bidi.replies.map((x) => x.message)).toEqual(['1', '2']);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});

function h2Server(onStream: (stream: http2.ServerHttp2Stream) => void): Promise<http2.Http2Server> {
  const server = http2.createServer();
  server.on('stream', (stream: http2.ServerHttp2Stream) => {
    // A stream this server resets reports its own reset as an error.
    stream.on('error', () => undefined);
    onStream(stream);
  });
  server.on('sessionError', () => undefined);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function port(server: http2.Http2Server): number {
  return (server.address() as AddressInfo).port;
}

function meta(values: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(values)) md.set(k, v);
  return md;
}
