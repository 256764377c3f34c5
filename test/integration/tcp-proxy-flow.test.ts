import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { bootstrap, cluster } from '../harness/bootstrap';
import { until } from '../harness/mirror-ext';
import { type TestProxy, startProxy } from '../harness/proxy';
import { allStats, pattern, portOf, settledStat, startTcpServer, type TcpServer, tcpListener } from '../harness/tcp';
import { closedPort } from '../harness/upstream';

// The TCP proxy's flow control with real sockets: tens of MiB each way through a peer that stops
// reading, with Envoy's watermarks keeping what the proxy reads bounded, every byte intact, and
// the upstream flushed after the client has gone.

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
