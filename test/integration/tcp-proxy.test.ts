import { createHash } from 'node:crypto';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { bootstrap, cluster, listener, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { until } from '../harness/mirror-ext';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { allStats, echo, exchange, greeter, openClient, startTcpServer, type TcpServer, tcpListener, tcpProxyFilter } from '../harness/tcp';
import { closedPort, sleep } from '../harness/upstream';

// The TCP proxy with real sockets on loopback: echo round trips and half-closes, upstreams that
// refuse or never answer, the circuit breaker, timeouts, weighted clusters and source-IP
// hashing, bulk transfers under back-pressure, and TLS passed through by SNI, terminated, or
// originated towards the upstream. Certificates are made at test time.

type Json = Record<string, unknown>;
const TLS_INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } };
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

function portOf(p: TestProxy, name: string): number {
  const found = p.proxy.listeners.listeners().find((l) => l.name === name);
  if (!found) throw new Error(`no listener ${name}`);
  return found.address.port;
}

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

describe('TCP proxy: bulk transfers under back-pressure', () => {
  const TOTAL = 48 * 1024 * 1024;
  /** Far below TOTAL: a proxy that read on without back-pressure would pass it. */
  const BOUND = 32 * 1024 * 1024;
  let p: TestProxy;
  let sink: TcpServer;
  let source: TcpServer;
  let lateSink: TcpServer;
  const sinkState = { socket: null as net.Socket | null, bytes: 0, hash: createHash('sha256') };
  const lateState = { socket: null as net.Socket | null, bytes: 0, ended: false };

  beforeAll(async () => {
    // Reads nothing until told to, then hashes everything.
    sink = await startTcpServer((s) => {
      sinkState.socket = s;
      s.pause();
      s.on('data', (d: Buffer) => {
        sinkState.bytes += d.length;
        sinkState.hash.update(d);
      });
    });
    // Streams TOTAL pseudo-random bytes as fast as the connection takes them, then ends.
    source = await startTcpServer((s) => {
      const block = pattern(1024 * 1024);
      let sent = 0;
      const pump = (): void => {
        while (sent < TOTAL) {
          sent += block.length;
          if (!s.write(block)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    // Says goodbye at once (its end included) and reads nothing until told to, then trickles:
    // one read every 10 ms.
    lateSink = await startTcpServer((s) => {
      lateState.socket = s;
      s.pause();
      s.end('bye\n');
      s.on('data', (d: Buffer) => {
        lateState.bytes += d.length;
        s.pause();
        setTimeout(() => s.resume(), 10);
      });
      s.on('end', () => (lateState.ended = true));
    });
    p = await startProxy(bootstrap({
      listeners: [
        tcpListener('upload', await closedPort(), { stat_prefix: 'upload', cluster: 'sink' }),
        tcpListener('download', await closedPort(), { stat_prefix: 'download', cluster: 'source' }),
        tcpListener('flush', await closedPort(), { stat_prefix: 'flush', cluster: 'late-sink' }),
      ],
      clusters: [cluster('sink', [sink.port]), cluster('source', [source.port]), cluster('late-sink', [lateSink.port])],
    }));
  });

  afterAll(async () => {
    await p?.stop();
    await sink?.close();
    await source?.close();
    await lateSink?.close();
  });

  test('upload: a stalled upstream stops the proxy reading the client; every byte arrives once it reads', async () => {
    const client = net.connect({ host: '127.0.0.1', port: portOf(p, 'upload') });
    client.on('error', () => undefined);
    const sentHash = createHash('sha256');
    const block = pattern(1024 * 1024);
    let written = 0;
    const pump = (): void => {
      while (written < TOTAL) {
        written += block.length;
        sentHash.update(block);
        if (!client.write(block)) return void client.once('drain', pump);
      }
      client.end();
    };
    client.once('connect', pump);
    // 1. The sink reads nothing: the proxy pauses the client and stops reading well short of it all.
    await until('flow control paused reading', async () => ((await allStats(p.adminUrl)).get('tcp.upload.downstream_flow_control_paused_reading_total') ?? 0) >= 1, 10_000);
    const settled = await settledStat(p, 'tcp.upload.downstream_cx_rx_bytes_total');
    expect(settled).toBeLessThan(BOUND);
    expect(sinkState.bytes).toBe(0);
    // 2. The sink reads: everything arrives, intact.
    sinkState.socket!.resume();
    await until('all bytes at the sink', () => sinkState.bytes === TOTAL, 20_000);
    expect(sinkState.hash.digest('hex')).toBe(sentHash.digest('hex'));
    const s = await allStats(p.adminUrl);
    expect(s.get('tcp.upload.downstream_flow_control_resumed_reading_total')).toBeGreaterThanOrEqual(1);
    expect(s.get('cluster.sink.upstream_cx_tx_bytes_total')).toBe(TOTAL);
    client.destroy();
  });

  test('download: a client that stops reading stops the proxy reading the upstream', async () => {
    const client = net.connect({ host: '127.0.0.1', port: portOf(p, 'download') });
    client.on('error', () => undefined);
    client.pause();
    const hash = createHash('sha256');
    let received = 0;
    client.on('data', (d: Buffer) => {
      received += d.length;
      hash.update(d);
    });
    const ended = new Promise<void>((r) => client.once('end', () => r()));
    await until('upstream reading paused', async () => ((await allStats(p.adminUrl)).get('cluster.source.upstream_flow_control_paused_reading_total') ?? 0) >= 1, 10_000);
    expect(await settledStat(p, 'cluster.source.upstream_cx_rx_bytes_total')).toBeLessThan(BOUND);
    client.resume();
    await ended;
    expect(received).toBe(TOTAL);
    const expected = createHash('sha256');
    const block = pattern(1024 * 1024);
    for (let n = 0; n < TOTAL; n += block.length) expected.update(block);
    expect(hash.digest('hex')).toBe(expected.digest('hex'));
    client.destroy();
  });

  test('the client closes while the upstream still owes bytes: an upstream flush, and every byte arrives', async () => {
    const client = net.connect({ host: '127.0.0.1', port: portOf(p, 'flush') });
    client.on('error', () => undefined);
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString()));
    const closed = new Promise<void>((r) => client.once('close', () => r()));
    const block = pattern(1024 * 1024);
    client.once('connect', () => {
      for (let i = 0; i < 16; i++) client.write(block);
      client.end();
    });
    // 1. The upstream said goodbye and stalls: the client has its answer and its end, the proxy
    //    stops reading it, so the client's end waits behind its bytes.
    await until('flow control paused reading', async () => ((await allStats(p.adminUrl)).get('tcp.flush.downstream_flow_control_paused_reading_total') ?? 0) >= 1, 10_000);
    expect(reply).toBe('bye\n');
    // 2. The upstream trickles: the client's end reaches the proxy while bytes for the upstream
    //    are still waiting, so the client's connection closes first and the upstream is flushed.
    lateState.socket!.resume();
    await closed;
    await until('flushed and ended', () => lateState.ended, 20_000);
    const s = await allStats(p.adminUrl);
    expect([lateState.bytes, s.get('tcp.flush.downstream_cx_rx_bytes_total'), s.get('cluster.late-sink.upstream_cx_tx_bytes_total')]).toEqual([16 * 1024 * 1024, 16 * 1024 * 1024, 16 * 1024 * 1024]);
    expect(s.get('tcp.flush.upstream_flush_total')).toBe(1);
    await until('flush over', async () => ((await allStats(p.adminUrl)).get('tcp.flush.upstream_flush_active') ?? -1) === 0);
  });
});

describe('TCP proxy: TLS', () => {
  let certs: TestCertificates;
  let p: TestProxy;
  const servers: TcpServer[] = [];
  let plainEcho: TcpServer;
  let tlsEcho: TcpServer;

  beforeAll(async () => {
    certs = makeTestCertificates();
    const aCert = issueCertificate(certs, 'a', { san: 'DNS:a.example' });
    const bCert = issueCertificate(certs, 'b', { san: 'DNS:b.example' });
    const backend = issueCertificate(certs, 'backend', { san: 'DNS:backend.internal' });
    const tlsServer = (c: { certFile: string; keyFile: string }, name: string) =>
      startTcpServer(greeter(name), { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) });
    const serverA = await tlsServer(aCert, 'A');
    const serverB = await tlsServer(bCert, 'B');
    plainEcho = await startTcpServer(echo);
    tlsEcho = await startTcpServer(echo, { cert: readFileSync(backend.certFile), key: readFileSync(backend.keyFile) });
    servers.push(serverA, serverB, plainEcho, tlsEcho);
    const sniChain = (server: string, cluster: string): Json => ({ filter_chain_match: { server_names: [server] }, filters: [tcpProxyFilter({ stat_prefix: 'passthrough', cluster })] });
    const httpChain = (listener(routeConfig([{ match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'the HTTP chain' } } }])).filter_chains as Json[])[0]!;
    p = await startProxy(bootstrap({
      listeners: [
        {
          name: 'sni',
          address: { socket_address: { address: '127.0.0.1', port_value: await closedPort() } },
          listener_filters: [TLS_INSPECTOR],
          filter_chains: [
            sniChain('a.example', 'to-a'),
            sniChain('*.example', 'to-b'),
            { ...httpChain, filter_chain_match: { transport_protocol: 'raw_buffer' } },
          ],
        },
        tcpListener('terminate', await closedPort(), { stat_prefix: 'terminate', cluster: 'plain-echo' }, {
          filter_chains: [{
            filters: [tcpProxyFilter({ stat_prefix: 'terminate', cluster: 'plain-echo' })],
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: { tls_certificates: [{ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.serverKeyFile } }] } },
            },
          }],
        }),
        tcpListener('originate', await closedPort(), { stat_prefix: 'originate', cluster: 'tls-echo' }),
        tcpListener('originate-bad', await closedPort(), { stat_prefix: 'originate_bad', cluster: 'tls-echo-wrong-name' }),
      ],
      clusters: [
        cluster('to-a', [serverA.port]),
        cluster('to-b', [serverB.port]),
        cluster('plain-echo', [plainEcho.port]),
        cluster('tls-echo', [tlsEcho.port], { transport_socket: upstreamTls('backend.internal', 'backend.internal') }),
        cluster('tls-echo-wrong-name', [tlsEcho.port], { transport_socket: upstreamTls('backend.internal', 'someone.else') }),
      ],
    }));

    function upstreamTls(sni: string, san: string): Json {
      return {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': UPSTREAM_TLS,
          sni,
          common_tls_context: { validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: san } }] } },
        },
      };
    }
  });

  afterAll(async () => {
    await p?.stop();
    for (const s of servers) await s.close();
    certs?.remove();
  });

  /** A TLS client verifying against the test CA: the certificate it got and the first line it read. */
  function tlsHello(port: number, servername: string): Promise<{ subject: string; line: string }> {
    return new Promise((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port, servername, ca: certs.ca });
      const timer = setTimeout(() => c.destroy(new Error('no greeting within 5 s')), 5000);
      let text = '';
      c.on('data', (d: Buffer) => {
        text += d.toString();
        if (!text.includes('\n')) return;
        clearTimeout(timer);
        resolve({ subject: String(c.getPeerCertificate().subject?.CN ?? ''), line: text.split('\n')[0]! });
        c.destroy();
      });
      c.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  test('passthrough by SNI: the ClientHello goes untouched to the backend its server name picks', async () => {
    // The client verifies the backend's own certificate: the proxy never terminated TLS.
    expect(await tlsHello(portOf(p, 'sni'), 'a.example')).toEqual({ subject: 'a', line: 'A' });
    expect(await tlsHello(portOf(p, 'sni'), 'b.example')).toEqual({ subject: 'b', line: 'B' });
    // Plaintext on the same port takes the HTTP chain.
    const res = await fetchText(`http://127.0.0.1:${portOf(p, 'sni')}/`);
    expect([res.status, res.body]).toEqual([200, 'the HTTP chain']);
    expect((await allStats(p.adminUrl)).get('tcp.passthrough.downstream_cx_total')).toBe(2);
  });

  test('a chain with a transport socket terminates TLS and proxies the plaintext', async () => {
    const got = await new Promise<string>((resolve, reject) => {
      const c = tls.connect({ host: '127.0.0.1', port: portOf(p, 'terminate'), servername: 'localhost', ca: certs.ca });
      let text = '';
      c.on('secureConnect', () => c.write('over tls'));
      c.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.length >= 8) {
          c.destroy();
          resolve(text);
        }
      });
      c.on('error', reject);
    });
    expect(got).toBe('over tls');
  });

  test('a cluster with an UpstreamTlsContext: TLS to the upstream, verified as configured', async () => {
    expect((await exchange(portOf(p, 'originate'), 'plain in, TLS out', { end: true })).received.toString()).toBe('plain in, TLS out');
    // A SAN that does not match: the handshake fails and the downstream is closed.
    expect((await exchange(portOf(p, 'originate-bad'), 'hello')).received.length).toBe(0);
    const s = await allStats(p.adminUrl);
    expect([s.get('cluster.tls-echo.ssl.handshake'), s.get('cluster.tls-echo-wrong-name.ssl.connection_error'), s.get('cluster.tls-echo-wrong-name.upstream_cx_connect_fail')])
      .toEqual([1, 1, 1]);
  });
});

/** Pseudo-random bytes (fixed), so that a reordering or a lost chunk changes the hash. */
function pattern(size: number): Buffer {
  const out = Buffer.alloc(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

/** A counter's value once it stopped moving for 300 ms (bounded: 10 s). */
async function settledStat(p: TestProxy, name: string): Promise<number> {
  let last = -1;
  for (let i = 0; i < 33; i++) {
    const now = (await allStats(p.adminUrl)).get(name) ?? 0;
    if (now === last) return now;
    last = now;
    await sleep(300);
  }
  throw new Error(`${name} still moving after 10 s`);
}
