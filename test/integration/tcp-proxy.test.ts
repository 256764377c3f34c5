import { bootstrap, cluster } from '../harness/bootstrap';
import { until } from '../harness/mirror-ext';
import { type TestProxy, startProxy } from '../harness/proxy';
import { allStats, echo, exchange, greeter, openClient, portOf, startTcpServer, type TcpServer, tcpListener } from '../harness/tcp';
import { closedPort, sleep } from '../harness/upstream';

// The TCP proxy with real sockets on loopback: echo round trips and half-closes, upstreams that
// refuse, are missing, unhealthy or never answer their TLS handshake, the circuit breaker,
// timeouts, weighted clusters and source-IP hashing. Bulk transfers: tcp-proxy-flow.test.ts;
// TLS: tcp-proxy-tls.test.ts.

const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

describe('TCP proxy: plaintext', () => {
  let p: TestProxy;
  let echoServer: TcpServer;
  let a: TcpServer;
  let b: TcpServer;
  let silent: TcpServer;
  const ring: TcpServer[] = [];

  beforeAll(async () => {
    echoServer = await startTcpServer(echo);
    a = await startTcpServer(greeter('A'));
    b = await startTcpServer(greeter('B'));
    // Reads and never says a word: a TLS client waiting for its ServerHello waits forever.
    silent = await startTcpServer((s) => {
      s.resume();
      s.on('end', () => s.destroy());
    });
    for (const name of ['r0', 'r1', 'r2']) ring.push(await startTcpServer(greeter(name)));
    const down = await closedPort();
    p = await startProxy(bootstrap({
      listeners: [
        tcpListener('echo', await closedPort(), { stat_prefix: 'echo', cluster: 'echo' }),
        tcpListener('down', await closedPort(), { stat_prefix: 'down', cluster: 'down', max_connect_attempts: 3 }),
        tcpListener('nowhere', await closedPort(), { stat_prefix: 'nowhere', cluster: 'no-such-cluster' }),
        tcpListener('empty', await closedPort(), { stat_prefix: 'empty', cluster: 'empty' }),
        tcpListener('hang', await closedPort(), { stat_prefix: 'hang', cluster: 'hang' }),
        tcpListener('idle', await closedPort(), { stat_prefix: 'idle', cluster: 'echo', idle_timeout: '1.5s' }),
        tcpListener('short', await closedPort(), { stat_prefix: 'short', cluster: 'echo', max_downstream_connection_duration: '0.3s' }),
        tcpListener('breaker', await closedPort(), { stat_prefix: 'breaker', cluster: 'one-conn' }),
        tcpListener('weighted', await closedPort(), { stat_prefix: 'weighted', weighted_clusters: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }] } }),
        tcpListener('hashed', await closedPort(), { stat_prefix: 'hashed', cluster: 'ring', hash_policy: [{ source_ip: {} }] }),
      ],
      clusters: [
        cluster('echo', [echoServer.port]),
        cluster('down', [down]),
        { ...cluster('empty', []), load_assignment: { cluster_name: 'empty', endpoints: [] } },
        cluster('hang', [silent.port], {
          connect_timeout: '0.3s',
          transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS } },
        }),
        cluster('one-conn', [echoServer.port], { circuit_breakers: { thresholds: [{ max_connections: 1 }] } }),
        cluster('a', [a.port]),
        cluster('b', [b.port]),
        cluster('ring', ring.map((s) => s.port), { lb_policy: 'RING_HASH' }),
      ],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    for (const s of [echoServer, a, b, silent, ...ring]) await s?.close();
  });

  test('a round trip through the proxy, counted with Envoy\'s names', async () => {
    const before = await allStats(p.adminUrl);
    const got = await exchange(portOf(p, 'echo'), 'hello, tcp', { end: true });
    expect(got.received.toString()).toBe('hello, tcp');
    expect(got.ended).toBe(true);
    await until('stats settle', async () => ((await allStats(p.adminUrl)).get('cluster.echo.upstream_cx_active') ?? -1) === 0);
    const after = await allStats(p.adminUrl);
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect({
      cx: delta('tcp.echo.downstream_cx_total'),
      rx: delta('tcp.echo.downstream_cx_rx_bytes_total'),
      tx: delta('tcp.echo.downstream_cx_tx_bytes_total'),
      upstreamCx: delta('cluster.echo.upstream_cx_total'),
      upstreamTx: delta('cluster.echo.upstream_cx_tx_bytes_total'),
      upstreamRx: delta('cluster.echo.upstream_cx_rx_bytes_total'),
    }).toEqual({ cx: 1, rx: 10, tx: 10, upstreamCx: 1, upstreamTx: 10, upstreamRx: 10 });
  });

  test('half-close: the client\'s end reaches the upstream, whose answer still comes back', async () => {
    // The upstream answers only once it has seen the client's end.
    const late = await startTcpServer((s) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => s.end(`got ${got.length} bytes, then your end`));
    });
    const q = await startProxy(bootstrap({ listeners: [tcpListener('late', await closedPort(), { stat_prefix: 'late', cluster: 'late' })], clusters: [cluster('late', [late.port])] }));
    try {
      const got = await exchange(q.port, 'x'.repeat(1000), { end: true });
      expect(got.received.toString()).toBe('got 1000 bytes, then your end');
      expect(got.ended).toBe(true);
    } finally {
      await q.stop();
      await late.close();
    }
  });

  test('an upstream that refuses: each attempt counted, then the downstream is closed', async () => {
    const got = await exchange(portOf(p, 'down'), 'anyone?');
    expect(got.received.length).toBe(0);
    const s = await allStats(p.adminUrl);
    expect([s.get('cluster.down.upstream_cx_connect_fail'), s.get('cluster.down.upstream_cx_connect_attempts_exceeded')]).toEqual([3, 1]);
  });

  test('no such cluster: downstream_cx_no_route, and the connection is closed', async () => {
    const got = await exchange(portOf(p, 'nowhere'), 'hello');
    expect(got.received.length).toBe(0);
    expect((await allStats(p.adminUrl)).get('tcp.nowhere.downstream_cx_no_route')).toBe(1);
  });

  test('no healthy host: upstream_cx_none_healthy, and the connection is closed', async () => {
    const got = await exchange(portOf(p, 'empty'), 'hello');
    expect(got.received.length).toBe(0);
    expect((await allStats(p.adminUrl)).get('cluster.empty.upstream_cx_none_healthy')).toBe(1);
  });

  test('connect_timeout covers the upstream TLS handshake', async () => {
    const got = await exchange(portOf(p, 'hang'), 'hello');
    expect(got.received.length).toBe(0);
    const s = await allStats(p.adminUrl);
    expect([s.get('cluster.hang.upstream_cx_connect_timeout'), s.get('cluster.hang.upstream_cx_connect_fail')]).toEqual([1, 1]);
    await until('the silent upstream sees its connection go', () => silent.open === 0);
  });

  test('idle_timeout: traffic keeps a connection open; silence closes both sides', async () => {
    const upstreamsBefore = echoServer.accepted;
    const c = await openClient(portOf(p, 'idle'));
    // 1. Bytes every 100 ms for 2 s, longer than the 1.5 s timeout: still open.
    for (let i = 0; i < 20; i++) {
      c.socket.write('.');
      await sleep(100);
    }
    await until('all 20 bytes echoed', () => c.received().length === 20);
    expect(c.socket.destroyed).toBe(false);
    // 2. Then nothing: the proxy closes the connection and the upstream's.
    await c.closed;
    expect((await allStats(p.adminUrl)).get('tcp.idle.idle_timeout')).toBe(1);
    expect(echoServer.accepted).toBe(upstreamsBefore + 1);
    await until('the upstream connection is closed too', () => echoServer.open === 0);
  });

  test('max_downstream_connection_duration closes a busy connection', async () => {
    const c = await openClient(portOf(p, 'short'));
    c.socket.write('still here');
    await c.closed;
    expect((await allStats(p.adminUrl)).get('tcp.short.max_downstream_connection_duration')).toBe(1);
  });

  test('the max_connections circuit breaker refuses a second connection while the first is open', async () => {
    const first = await openClient(portOf(p, 'breaker'));
    first.socket.write('one');
    await until('the first is proxied', () => first.received() === 'one');
    const second = await exchange(portOf(p, 'breaker'), 'two');
    expect(second.received.length).toBe(0);
    expect((await allStats(p.adminUrl)).get('cluster.one-conn.upstream_cx_overflow')).toBe(1);
    first.socket.end();
    await first.closed;
    // 3. The first one gone, a new connection goes through.
    await until('the slot is free', async () => ((await allStats(p.adminUrl)).get('cluster.one-conn.upstream_cx_active') ?? -1) === 0);
    expect((await exchange(portOf(p, 'breaker'), 'three', { end: true })).received.toString()).toBe('three');
  });

  test('weighted_clusters: each connection picks a cluster by weight (1:3)', async () => {
    const seen = { A: 0, B: 0 };
    for (let i = 0; i < 120; i++) {
      const got = await exchange(portOf(p, 'weighted'), '', { end: true });
      const name = got.received.toString().split('\n')[0] as 'A' | 'B';
      seen[name]++;
    }
    expect(seen.A + seen.B).toBe(120);
    // Expected 30 and 90; each bound is more than four standard deviations away.
    expect(seen.A).toBeGreaterThanOrEqual(10);
    expect(seen.A).toBeLessThanOrEqual(55);
  });

  test('hash_policy source_ip: every connection from one address reaches the same ring_hash host', async () => {
    const hosts = new Set<string>();
    for (let i = 0; i < 12; i++) hosts.add((await exchange(portOf(p, 'hashed'), '', { end: true })).received.toString().split('\n')[0]!);
    expect(hosts.size).toBe(1);
  });
});
