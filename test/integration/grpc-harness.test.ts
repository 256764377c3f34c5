// The gRPC harness itself, with no proxy between client and server: every call kind against the
// grpc-js echo server (metadata and trailers as the client sees them, and the server's record),
// TLS and mTLS, and the C-core server, including its refusal of a request without `te: trailers`.

import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { makeTestCertificates, type TestCertificates } from '../harness/certs';
import {
  chunked, echoClient, type EchoServer, makePayload, payloadRequests, type PythonEchoServer, rawGrpcCall, sha256Hex,
  startEchoServer, startPythonEchoServer,
} from '../harness/grpc';

const MiB = 1024 * 1024;
const pem = (file: string): string => readFileSync(file, 'utf8');

// One certificate set for the file: openssl key generation is most of its run time.
let certs: TestCertificates;
beforeAll(() => {
  certs = makeTestCertificates();
});
afterAll(() => certs?.remove());

describe('grpc-js echo server, h2c', () => {
  let server: EchoServer;
  let client: ReturnType<typeof echoClient>;
  beforeAll(async () => {
    server = await startEchoServer({ name: 'plain' });
    client = echoClient(`127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
  });

  test('unary echoes, sends initial and trailing metadata, records the call', async () => {
    const res = await client.unary({ message: 'hi', payload: Buffer.from('abc') }, { metadata: { 'echo-tag': 'one', 'x-other': 'two' } });
    expect(res.status.code).toBe(grpc.status.OK);
    expect(res.reply).toMatchObject({ message: 'hi', payload: Buffer.from('abc'), index: 0, server: 'plain', messagesReceived: 1, payloadBytes: 3 });
    expect(res.reply?.authority).toBe(`127.0.0.1:${server.port}`);
    expect(res.reply?.payloadSha256).toBe(sha256Hex(Buffer.from('abc')));
    expect(res.headers.get('x-echo-server')).toEqual(['plain']);
    expect(res.headers.get('echo-tag')).toEqual(['one']);
    expect(res.headers.get('x-other')).toEqual([]);
    expect(res.trailers.get('x-echo-trailer')).toEqual(['plain']);
    expect(res.trailers.get('x-echo-payload-sha256')).toEqual([sha256Hex(Buffer.from('abc'))]);
    const [rec] = (await server.waitForCalls(1)).slice(-1);
    expect(rec).toMatchObject({ method: 'Unary', path: '/sidemirror.test.v1.Echo/Unary', outcome: 'ok', code: 0, messages: 1, payloadBytes: 3 });
    expect(rec?.metadata['x-other']).toEqual(['two']);
    expect(rec?.authority).toBe(`127.0.0.1:${server.port}`);
  });

  test('the authority option is what the server sees', async () => {
    const other = echoClient(`127.0.0.1:${server.port}`, { authority: 'svc-shadow:8080' });
    try {
      const res = await other.unary({ message: 'a' });
      expect(res.reply?.authority).toBe('svc-shadow:8080');
      expect(server.calls[server.calls.length - 1]?.authority).toBe('svc-shadow:8080');
    } finally {
      other.close();
    }
  });

  test('failWithCode ends with that status, a message and the trailers', async () => {
    const res = await client.unary({ failWithCode: grpc.status.RESOURCE_EXHAUSTED });
    expect(res.reply).toBeNull();
    expect(res.status.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(res.status.details).toBe('failed as asked: 8');
    expect(res.trailers.get('x-echo-trailer')).toEqual(['plain']);
    const failed = await client.serverStream({ count: 3, failWithCode: grpc.status.UNAVAILABLE });
    expect(failed.status.code).toBe(grpc.status.UNAVAILABLE);
    expect(failed.trailers.get('x-echo-trailer')).toEqual(['plain']);
    expect(server.calls.slice(-2).map((c) => [c.outcome, c.code])).toEqual([['failed', 8], ['failed', 14]]);
  });

  test('server stream sends count replies, then trailers', async () => {
    const res = await client.serverStream({ message: 's', payload: Buffer.from('xy'), count: 5 });
    expect(res.status.code).toBe(grpc.status.OK);
    expect(res.replies.map((r) => r.index)).toEqual([0, 1, 2, 3, 4]);
    expect(res.replies.every((r) => r.payload.equals(Buffer.from('xy')))).toBe(true);
    expect(res.headers.get('x-echo-server')).toEqual(['plain']);
    expect(res.trailers.get('x-echo-messages')).toEqual(['1']);
  });

  test('client stream of 5 MB in 64 KiB messages arrives whole', async () => {
    const payload = makePayload(5 * MiB, 7);
    const res = await client.clientStream(payloadRequests(payload, 64 * 1024, { message: 'up' }));
    expect(res.status.code).toBe(grpc.status.OK);
    expect(res.reply).toMatchObject({ message: 'up', payloadBytes: 5 * MiB, messagesReceived: 80, payload: Buffer.alloc(0) });
    expect(res.reply?.payloadSha256).toBe(sha256Hex(payload));
    expect(res.trailers.get('x-echo-payload-sha256')).toEqual([sha256Hex(payload)]);
    const rec = server.calls[server.calls.length - 1];
    expect(rec).toMatchObject({ method: 'ClientStream', messages: 80, payloadBytes: 5 * MiB, payloadSha256: sha256Hex(payload), outcome: 'ok' });
  });

  test('bidi answers each message in order, the hash running along', async () => {
    const parts = chunked(makePayload(1 * MiB, 3), 256 * 1024);
    const res = await client.bidi(parts.map((p, i) => ({ message: `m${i}`, payload: p })));
    expect(res.status.code).toBe(grpc.status.OK);
    expect(res.replies.map((r) => r.message)).toEqual(['m0', 'm1', 'm2', 'm3']);
    expect(res.replies.map((r) => r.payloadSha256)).toEqual(parts.map((_p, i) => sha256Hex(...parts.slice(0, i + 1))));
    expect(Buffer.concat(res.replies.map((r) => r.payload)).equals(Buffer.concat(parts))).toBe(true);
    expect(res.trailers.get('x-echo-messages')).toEqual(['4']);
  });

  test('a cancelled call is recorded as cancelled; waitForCalls can wait for starts', async () => {
    const before = server.calls.length;
    const call = client.raw.ServerStream({ count: 100, delayMs: 50 });
    call.on('error', () => undefined);
    await new Promise((resolve) => call.once('data', resolve));
    call.cancel();
    await expect(server.waitForCalls(before + 1, 2000, 'started')).resolves.toHaveLength(before + 1);
    const calls = await server.waitForCalls(before + 1, 2000);
    expect(calls[calls.length - 1]).toMatchObject({ method: 'ServerStream', outcome: 'cancelled', code: grpc.status.CANCELLED });
  });

  test('waitForCalls rejects when the calls do not come', async () => {
    await expect(server.waitForCalls(server.calls.length + 5, 100)).rejects.toThrow(/within 100 ms/);
  });
});

describe('grpc-js echo server over TLS and mTLS', () => {
  let tlsServer: EchoServer;
  let mtlsServer: EchoServer;
  beforeAll(async () => {
    const tls = { cert: pem(certs.serverCertFile), key: pem(certs.serverKeyFile) };
    tlsServer = await startEchoServer({ name: 'tls', tls });
    mtlsServer = await startEchoServer({ name: 'mtls', tls: { ...tls, ca: certs.ca, requireClientCert: true } });
  });
  afterAll(async () => {
    await tlsServer?.stop();
    await mtlsServer?.stop();
  });

  test('TLS unary verifies the server against the CA', async () => {
    const client = echoClient(`localhost:${tlsServer.port}`, { tls: { ca: certs.ca } });
    try {
      const res = await client.unary({ message: 'secure' });
      expect(res.status.code).toBe(grpc.status.OK);
      expect(res.reply).toMatchObject({ message: 'secure', server: 'tls', authority: `localhost:${tlsServer.port}` });
    } finally {
      client.close();
    }
  });

  test('TLS against the wrong CA fails', async () => {
    const client = echoClient(`localhost:${tlsServer.port}`, { tls: { ca: pem(certs.otherCaFile) } });
    try {
      const res = await client.unary({ message: 'x' }, { deadlineMs: 3000 });
      expect(res.status.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      client.close();
    }
  });

  test('mTLS: a client certificate is required and its CN recorded', async () => {
    const withCert = echoClient(`127.0.0.1:${mtlsServer.port}`, {
      tls: { ca: certs.ca, cert: pem(certs.clientCertFile), key: pem(certs.clientKeyFile), servername: 'localhost' },
    });
    const without = echoClient(`127.0.0.1:${mtlsServer.port}`, { tls: { ca: certs.ca, servername: 'localhost' } });
    try {
      const ok = await withCert.bidi([{ message: 'a' }, { message: 'b' }]);
      expect(ok.status.code).toBe(grpc.status.OK);
      expect(ok.replies.map((r) => r.server)).toEqual(['mtls', 'mtls']);
      expect(mtlsServer.calls[mtlsServer.calls.length - 1]?.peerCertificateCn).toBe('client');
      const refused = await without.unary({ message: 'no cert' }, { deadlineMs: 3000 });
      expect(refused.status.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      withCert.close();
      without.close();
    }
  });
});

describe('C-core (python3-grpcio) echo server', () => {
  let py: PythonEchoServer;
  let client: ReturnType<typeof echoClient>;
  beforeAll(async () => {
    py = await startPythonEchoServer({ name: 'core' });
    client = echoClient(`127.0.0.1:${py.port}`);
  });
  afterAll(async () => {
    client?.close();
    await py?.stop();
  });

  test('unary echoes with metadata, trailers and the authority it saw', async () => {
    const res = await client.unary({ message: 'py', payload: Buffer.from('abc') }, { metadata: { 'echo-tag': 'x' } });
    expect(res.status.code).toBe(grpc.status.OK);
    expect(res.reply).toMatchObject({ message: 'py', payload: Buffer.from('abc'), server: 'core', payloadSha256: sha256Hex(Buffer.from('abc')) });
    expect(res.reply?.authority).toBe(`127.0.0.1:${py.port}`);
    expect(res.headers.get('echo-tag')).toEqual(['x']);
    expect(res.trailers.get('x-echo-trailer')).toEqual(['core']);
    const calls = await py.waitForCalls(1);
    expect(calls[0]).toMatchObject({ method: 'Unary', outcome: 'ok', messages: 1, payloadBytes: 3 });
    expect(calls[0]?.metadata['echo-tag']).toEqual(['x']);
  });

  test('the other call kinds and failWithCode work as on grpc-js', async () => {
    const payload = makePayload(5 * MiB, 11);
    const up = await client.clientStream(payloadRequests(payload, 128 * 1024));
    expect(up.status.code).toBe(grpc.status.OK);
    expect(up.reply).toMatchObject({ payloadBytes: 5 * MiB, messagesReceived: 40, payloadSha256: sha256Hex(payload) });
    const down = await client.serverStream({ message: 'd', count: 3 });
    expect(down.replies.map((r) => r.index)).toEqual([0, 1, 2]);
    const both = await client.bidi([{ message: 'a' }, { message: 'b' }]);
    expect(both.replies.map((r) => r.message)).toEqual(['a', 'b']);
    const failed = await client.unary({ failWithCode: grpc.status.PERMISSION_DENIED });
    expect(failed.status).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'failed as asked: 7' });
    expect(failed.trailers.get('x-echo-trailer')).toEqual(['core']);
  });

  test('C-core refuses a request without te: trailers and answers one with it', async () => {
    // The server's log of the previous test's calls can still be on its way: count from once it is quiet.
    let before = py.calls.length;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      if (py.calls.length === before) break;
      before = py.calls.length;
    }
    const without = await rawGrpcCall(py.port, { te: null, request: { message: 'no te' } });
    expect(without.grpcStatus).not.toBe(0);
    expect(without.grpcStatus).not.toBeNull();
    expect(without.replies).toEqual([]);
    const withTe = await rawGrpcCall(py.port, { request: { message: 'te' } });
    expect(withTe).toMatchObject({ status: 200, grpcStatus: 0, rstCode: 0 });
    expect(withTe.replies.map((r) => r.message)).toEqual(['te']);
    expect(withTe.trailers['x-echo-trailer']).toBe('core');
    // Only the request with te reached a handler (the server logs each call before it answers).
    const calls = await py.waitForCalls(before + 1);
    expect(calls.slice(before).map((c) => [c.method, c.outcome])).toEqual([['Unary', 'ok']]);
  });

  test('grpc-js, unlike C-core, answers without te', async () => {
    const server = await startEchoServer();
    try {
      const answer = await rawGrpcCall(server.port, { te: null, request: { message: 'no te' } });
      expect(answer.grpcStatus).toBe(0);
      expect(answer.replies[0]?.message).toBe('no te');
    } finally {
      await server.stop();
    }
  });
});

describe('C-core echo server over mTLS', () => {
  let py: PythonEchoServer;
  beforeAll(async () => {
    py = await startPythonEchoServer({ tls: { cert: pem(certs.serverCertFile), key: pem(certs.serverKeyFile), ca: certs.ca, requireClientCert: true } });
  });
  afterAll(async () => {
    await py?.stop();
  });

  test('answers a client with a certificate, refuses one without', async () => {
    const withCert = echoClient(`localhost:${py.port}`, { tls: { ca: certs.ca, cert: pem(certs.clientCertFile), key: pem(certs.clientKeyFile) } });
    const without = echoClient(`localhost:${py.port}`, { tls: { ca: certs.ca } });
    try {
      const ok = await withCert.unary({ message: 'core mtls' }, { metadata: { 'echo-data-bin': Buffer.from([0, 1, 2]) } });
      expect(ok.status.code).toBe(grpc.status.OK);
      expect(ok.reply).toMatchObject({ message: 'core mtls', server: 'python', authority: `localhost:${py.port}` });
      expect(ok.headers.get('echo-data-bin')).toEqual([Buffer.from([0, 1, 2])]);
      expect((await py.waitForCalls(1))[0]?.metadata['echo-data-bin']).toEqual([Buffer.from([0, 1, 2]).toString('base64')]);
      const refused = await without.unary({ message: 'no cert' }, { deadlineMs: 3000 });
      expect(refused.status.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      withCert.close();
      without.close();
    }
  });
});
