import * as net from 'node:net';
import { http1CodecChoice, nodeInTestedRange, processCodec } from '../../src/util/native-http';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { until } from '../harness/mirror-ext';
import { type TestProxy, startProxy } from '../harness/proxy';
import { type Upstream, sleep, startUpstream } from '../harness/upstream';

// The HTTP/1.1 codec choice, and what either codec must do that the rest of the suite does not
// look at: pipelined requests answered in order with bounded read-ahead, and an upload held back
// when the upstream does not read it. The whole suite runs once per codec (npm test).

describe('the codec choice', () => {
  test('fast unless SIDEMIRROR_HTTP1_CODEC=node; this process runs the one its environment asks for', () => {
    expect(http1CodecChoice({}).codec).toBe('fast');
    expect(http1CodecChoice({ SIDEMIRROR_HTTP1_CODEC: 'node' })).toEqual({ codec: 'node', fallbackReason: null });
    expect(processCodec().codec).toBe(process.env.SIDEMIRROR_HTTP1_CODEC === 'node' ? 'node' : 'fast');
  });

  test('the native parser is only taken on the tested Node range', () => {
    expect(nodeInTestedRange('20.20.2')).toBe(true);
    expect(nodeInTestedRange('20.17.0')).toBe(false);
    expect(nodeInTestedRange('22.12.0')).toBe(false);
    expect(nodeInTestedRange('18.20.0')).toBe(false);
  });
});

describe('HTTP/1.1 on either codec', () => {
  let up: Upstream;
  let p: TestProxy;
  afterEach(async () => {
    await p?.stop();
    await up?.close();
  });

  test('200 pipelined requests in one write are answered once each, in order', async () => {
    up = await startUpstream({ respond: (req, res) => res.end(`seen ${req.url}`) });
    p = await startProxy(bootstrap({ listeners: [listener(routeConfig([route('/', 'up')]))], clusters: [cluster('up', [up.port])] }));
    const s = net.connect(p.port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    const n = 200;
    s.write(Array.from({ length: n }, (_v, i) => `GET /r${i} HTTP/1.1\r\nhost: x\r\n\r\n`).join(''));
    await until('all answered', () => (got.match(/HTTP\/1\.1 200 /g) ?? []).length === n, 10_000);
    const bodies = [...got.matchAll(/seen (\/r\d+)/g)].map((m) => m[1]);
    expect(bodies).toEqual(Array.from({ length: n }, (_v, i) => `/r${i}`));
    s.destroy();
  });

  test('an upload the upstream does not read is held back: the proxy reads ahead a bounded amount', async () => {
    up = await startUpstream({ neverReadBody: true });
    p = await startProxy(bootstrap({
      listeners: [{ ...listener(routeConfig([route('/', 'up', { timeout: '0s' })])), per_connection_buffer_limit_bytes: 65536 }],
      clusters: [cluster('up', [up.port])],
    }));
    const total = 64 * 1024 * 1024;
    const s = net.connect(p.port, '127.0.0.1');
    s.on('error', () => undefined);
    await new Promise<void>((resolve) => s.once('connect', resolve));
    s.write(`POST /up HTTP/1.1\r\nhost: x\r\ncontent-length: ${total}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 97);
    let queued = 0;
    // Bounded: at most `total` bytes are offered; what the client cannot hand to its kernel stays with it.
    while (queued < total) {
      s.write(chunk);
      queued += chunk.length;
    }
    await up.waitForRequests(1, 5000, true);
    await sleep(1000);
    // What left the client: the proxy's read-ahead plus the kernel's socket buffers on the way
    // (several MB on loopback), far from the 64 MiB offered.
    const left = total - s.writableLength;
    expect(left).toBeLessThan(24 * 1024 * 1024);
    s.destroy();
  });
});
