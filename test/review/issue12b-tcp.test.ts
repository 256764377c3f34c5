import * as net from 'node:net';
import { bootstrap, cluster } from '../harness/bootstrap';
import { type TestProxy, startProxy } from '../harness/proxy';
import { allStats, echo, exchange, portOf, startTcpServer, tcpListener } from '../harness/tcp';
import { closedPort, sleep } from '../harness/upstream';

// Issue 12 review (second pass), the TCP proxy against connections that send nothing, a crowd
// of 500 at once, a half-close, and an upstream that never reads.

jest.setTimeout(30_000);

const running: TestProxy[] = [];
afterEach(async () => { for (const p of running.splice(0)) await p.stop(); });

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await sleep(50);
  }
  return check();
}

test('200 connections that send nothing: idle_timeout closes every one, and the upstream side with it', async () => {
  // The upstream answers a FIN with its own, as a plain server does.
  const up = await startTcpServer((s) => s.on('end', () => s.end()));
  try {
    const p = await startProxy(bootstrap({ listeners: [tcpListener('t', await closedPort(), { stat_prefix: 't', cluster: 'c', idle_timeout: '1s' })], clusters: [cluster('c', [up.port])] }));
    running.push(p);
    const port = portOf(p, 't');
    let closed = 0;
    const socks = Array.from({ length: 200 }, () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.on('end', () => s.end());
      s.once('close', () => closed++);
      return s;
    });
    expect(await until(() => closed === 200, 15_000)).toBe(true);
    expect(await until(() => up.open === 0, 5000)).toBe(true);
    expect((await allStats(p.adminUrl)).get('tcp.t.idle_timeout')).toBe(200);
    socks.forEach((s) => s.destroy());
  } finally {
    await up.close();
  }
});

test('500 connections at once with max_connections 50: the upstream never holds more than 50, the rest overflow', async () => {
  let maxOpen = 0;
  const up = await startTcpServer((s) => { maxOpen = Math.max(maxOpen, up.open); s.resume(); s.on('end', () => s.end()); });
  try {
    const p = await startProxy(bootstrap({
      listeners: [tcpListener('t', await closedPort(), { stat_prefix: 't', cluster: 'c' })],
      clusters: [cluster('c', [up.port], { circuit_breakers: { thresholds: [{ max_connections: 50 }] } })],
    }));
    running.push(p);
    const port = portOf(p, 't');
    let closed = 0;
    const socks: net.Socket[] = [];
    for (let i = 0; i < 500; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => undefined);
      s.once('close', () => closed++);
      socks.push(s);
    }
    expect(await until(() => up.accepted >= 50 && closed >= 450, 15_000)).toBe(true);
    await sleep(300);
    expect(up.accepted).toBe(50);
    expect(maxOpen).toBeLessThanOrEqual(50);
    const stats = await allStats(p.adminUrl);
    expect(stats.get('cluster.c.upstream_cx_overflow')).toBe(450);
    socks.forEach((s) => s.destroy());
    expect(await until(() => up.open === 0, 5000)).toBe(true);
  } finally {
    await up.close();
  }
});

test('a half-open client: its FIN reaches the echo upstream, whose answer and FIN come back', async () => {
  const up = await startTcpServer(echo);
  try {
    const p = await startProxy(bootstrap({ listeners: [tcpListener('t', await closedPort(), { stat_prefix: 't', cluster: 'c' })], clusters: [cluster('c', [up.port])] }));
    running.push(p);
    const got = await exchange(portOf(p, 't'), 'half open\n', { end: true });
    expect(got.received.toString()).toBe('half open\n');
    expect(got.ended).toBe(true);
  } finally {
    await up.close();
  }
});

test('an upstream that never reads: the proxy stops taking the client\'s bytes, a few MB in of 64 MB', async () => {
  const up = await startTcpServer((s) => s.pause());
  try {
    const p = await startProxy(bootstrap({
      listeners: [tcpListener('t', await closedPort(), { stat_prefix: 't', cluster: 'c' }, { per_connection_buffer_limit_bytes: 65536 })],
      clusters: [cluster('c', [up.port])],
    }));
    running.push(p);
    const c = net.connect(portOf(p, 't'), '127.0.0.1');
    c.on('error', () => undefined);
    await new Promise<void>((r) => c.once('connect', () => r()));
    const chunk = Buffer.alloc(1 << 20, 1);
    let queued = 0;
    // Writes until the client's own socket refuses more (bounded to 64 MB).
    const pump = (): void => {
      while (queued < 64 << 20) {
        queued += chunk.length;
        if (!c.write(chunk)) { c.once('drain', pump); return; }
      }
    };
    pump();
    await sleep(3000);
    const taken = c.bytesWritten - c.writableLength;
    // Loopback socket buffers on both hops hold some MB; the proxy's own share is bounded.
    expect(taken).toBeLessThan(24 << 20);
    expect(queued).toBeLessThan(64 << 20);
    const rss = process.memoryUsage().rss;
    await sleep(1000);
    expect(c.bytesWritten - c.writableLength).toBeLessThan(taken + (2 << 20));
    expect(process.memoryUsage().rss - rss).toBeLessThan(16 << 20);
    c.destroy();
  } finally {
    await up.close();
  }
});
