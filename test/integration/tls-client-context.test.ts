import * as http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { Client } from 'undici';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { ClientTlsContext } from '../../src/tls/client-context';
import { SecretStore } from '../../src/tls/secret-store';
import { CountingSsl, cert, runClient, startPlainTlsServer, upstream, validation } from './tls-peers';

// ClientTlsContext against real TLS servers: Envoy's upstream rules, which differ from Node's
// defaults (no verification without trusted_ca, no host name check, no SNI unless configured,
// TLS 1.2 at most), mTLS, and the connectors for undici and http2.

let certs: TestCertificates;
let selfSigned: IssuedCertificate;
let spiffeServer: IssuedCertificate;
const store = new SecretStore();
const tlsServer = (o: object = {}) => ({ cert: readFileSync(certs.serverCertFile), key: readFileSync(certs.serverKeyFile), ...o });

beforeAll(() => {
  certs = makeTestCertificates();
  // Signed by the other CA: to a client trusting `ca`, as good as self-signed.
  selfSigned = issueCertificate(certs, 'self-server', { issuer: 'other-ca', san: 'DNS:localhost' });
  spiffeServer = issueCertificate(certs, 'spiffe-server', { san: 'DNS:backend.internal,URI:spiffe://cluster.local/ns/default/sa/backend' });
});
afterAll(() => {
  store.close();
  certs.remove();
});

async function withTlsServer<T>(options: object, fn: (port: number, snis: (string | false)[]) => Promise<T>): Promise<T> {
  const s = await startPlainTlsServer(options);
  try {
    return await fn(s.port, s.snis);
  } finally {
    await s.close();
  }
}

function connectWith(ctx: ClientTlsContext, port: number, host = '127.0.0.1', alpn?: readonly string[]) {
  return runClient(() => ctx.connect({ host, port, alpn }));
}

describe('verification (Envoy upstream defaults)', () => {
  test('without trusted_ca any server certificate is accepted', async () => {
    const ctx = new ClientTlsContext(upstream({}), { store });
    expect(ctx.connectOptions()).toMatchObject({ rejectUnauthorized: false });
    await withTlsServer({ cert: readFileSync(selfSigned.certFile), key: readFileSync(selfSigned.keyFile) }, async (port) => {
      expect((await connectWith(ctx, port)).ok).toBe(true);
    });
    ctx.close();
  });

  test('with trusted_ca: a server of another CA fails; the right CA passes whatever the host name', async () => {
    const counters = new CountingSsl();
    const ctx = new ClientTlsContext(upstream({ validationContext: validation(certs.caFile) }), { store, counters });
    await withTlsServer({ cert: readFileSync(selfSigned.certFile), key: readFileSync(selfSigned.keyFile) }, async (port) => {
      const r = await connectWith(ctx, port, 'localhost');
      expect(r.ok).toBe(false);
      expect(r.error).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    });
    // The certificate names localhost and 127.0.0.1; the host connected to is neither.
    await withTlsServer({ cert: readFileSync(spiffeServer.certFile), key: readFileSync(spiffeServer.keyFile) }, async (port) => {
      expect((await connectWith(ctx, port, 'localhost')).ok).toBe(true);
      expect((await connectWith(ctx, port, '127.0.0.1')).ok).toBe(true);
    });
    expect(counters.get('ssl.fail_verify_error')).toBe(1);
    expect(counters.get('ssl.connection_error')).toBe(1);
    expect(counters.get('ssl.handshake')).toBe(2);
    expect(counters.get('ssl.versions.TLSv1.2')).toBe(2);
    expect(counters.get('ssl.curves.X25519')).toBe(2);
    ctx.close();
  });

  test('match_typed_subject_alt_names: one SAN must match one matcher', async () => {
    const exact = (sanType: 'DNS' | 'URI', value: string) => ({ sanType, matcher: { kind: 'exact' as const, value, ignoreCase: false } });
    const counters = new CountingSsl();
    const good = new ClientTlsContext(upstream({ validationContext: validation(certs.caFile, [exact('URI', 'spiffe://cluster.local/ns/default/sa/backend')]) }), { store });
    const bad = new ClientTlsContext(upstream({ validationContext: validation(certs.caFile, [exact('URI', 'spiffe://cluster.local/ns/default/sa/other'), exact('DNS', 'localhost')]) }), { store, counters });
    await withTlsServer({ cert: readFileSync(spiffeServer.certFile), key: readFileSync(spiffeServer.keyFile) }, async (port) => {
      expect((await connectWith(good, port)).ok).toBe(true);
      const r = await connectWith(bad, port);
      expect(r.ok).toBe(false);
      expect(r.error).toBe('ERR_TLS_SAN_MISMATCH');
    });
    expect(counters.get('ssl.fail_verify_san')).toBe(1);
    good.close();
    bad.close();
  });
});

describe('handshake parameters', () => {
  test('SNI is sent only when sni is set, whatever the host', async () => {
    const none = new ClientTlsContext(upstream({}), { store });
    const named = new ClientTlsContext(upstream({}, 'outbound_.8080_._.backend'), { store });
    await withTlsServer(tlsServer(), async (port, snis) => {
      await connectWith(none, port, 'localhost');
      await connectWith(none, port, '127.0.0.1');
      await connectWith(named, port, 'localhost');
      expect(snis).toEqual([false, false, 'outbound_.8080_._.backend']);
    });
    expect(none.connectOptions()).not.toHaveProperty('servername');
    none.close();
    named.close();
  });

  test('versions: the client stops at TLS 1.2 by default, so a TLS 1.3-only server fails; tls_params lifts it', async () => {
    const defaults = new ClientTlsContext(upstream({}), { store });
    const tls13 = new ClientTlsContext(upstream({ tlsParams: { minVersion: null, maxVersion: 'TLSv1_3', cipherSuites: [], ecdhCurves: [] } }), { store });
    await withTlsServer(tlsServer({ minVersion: 'TLSv1.3' }), async (port) => {
      expect((await connectWith(defaults, port)).ok).toBe(false);
      const r = await connectWith(tls13, port);
      expect(r.ok).toBe(true);
      expect(r.protocol).toBe('TLSv1.3');
    });
    defaults.close();
    tls13.close();
  });

  test('ALPN from alpn_protocols, or the override (h2); none when empty', async () => {
    const ctx = new ClientTlsContext(upstream({ alpnProtocols: ['http/1.1'] }), { store });
    const bare = new ClientTlsContext(upstream({}), { store });
    await withTlsServer(tlsServer({ ALPNCallback: ({ protocols }: { protocols: string[] }) => protocols[0] }), async (port) => {
      expect((await connectWith(ctx, port)).alpn).toBe('http/1.1');
      expect((await connectWith(ctx, port, '127.0.0.1', ['h2'])).alpn).toBe('h2');
      expect((await connectWith(bare, port)).alpn).toBe(false);
    });
    ctx.close();
    bare.close();
  });

  test('mTLS: the client certificate is presented', async () => {
    const ctx = new ClientTlsContext(upstream({ tlsCertificates: [cert(certs.clientCertFile, certs.clientKeyFile)] }), { store });
    const without = new ClientTlsContext(upstream({}), { store });
    await withTlsServer(tlsServer({ requestCert: true, rejectUnauthorized: true, ca: readFileSync(certs.caFile) }), async (port) => {
      expect((await connectWith(ctx, port)).ok).toBe(true);
      expect((await connectWith(without, port)).ok).toBe(false);
    });
    expect(ctx.certificates().cert_chain[0]!.path).toBe(certs.clientCertFile);
    ctx.close();
    without.close();
  });
});

describe('connectors', () => {
  test('undiciConnector: an HTTPS request through undici with Envoy rules (no SNI, no host check)', async () => {
    const https = await import('node:https');
    const snis: (string | false)[] = [];
    const server = https.createServer(tlsServer(), (req, res) => res.end(`hi ${req.url}`));
    server.on('secureConnection', (s) => snis.push((s as unknown as { servername: string | false }).servername));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const ctx = new ClientTlsContext(upstream({ validationContext: validation(certs.caFile) }), { store });
    // The origin's host is not on the certificate (Envoy does not check it) and undici's
    // servername for it is ignored; only the address is taken from the origin.
    const client = new Client(`https://not-on-the-cert.test:${port}`, {
      connect: (opts, cb) => ctx.undiciConnector({ timeoutMs: 2000 })({ ...opts, hostname: '127.0.0.1' }, cb),
    });
    try {
      const res = await client.request({ path: '/x', method: 'GET' });
      expect(await res.body.text()).toBe('hi /x');
      expect(snis).toEqual([false]);
    } finally {
      await client.close();
      server.close();
      ctx.close();
    }
  });

  test('connect() as http2 createConnection: h2 over ALPN', async () => {
    const server = http2.createSecureServer(tlsServer({ allowHTTP1: false }), (_req, res) => res.end('h2 ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const ctx = new ClientTlsContext(upstream({ validationContext: validation(certs.caFile) }), { store });
    const session = http2.connect(`https://backend:${port}`, { createConnection: () => ctx.connect({ host: '127.0.0.1', port, alpn: ['h2'] }) });
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = session.request({ ':path': '/' });
        let data = '';
        req.on('data', (d: Buffer) => (data += d));
        req.on('end', () => resolve(data));
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('h2 ok');
    } finally {
      session.close();
      server.close();
      ctx.close();
    }
  });

  test('a refused TCP connection is not counted as an SSL error', async () => {
    const net = await import('node:net');
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const counters = new CountingSsl();
    const ctx = new ClientTlsContext(upstream({}), { store, counters });
    const r = await connectWith(ctx, port);
    expect(r.error).toBe('ECONNREFUSED');
    expect(counters.get('ssl.connection_error')).toBe(0);
    ctx.close();
  });

  test('not ready (SDS validation context missing): connect throws, counted', () => {
    const counters = new CountingSsl();
    const ctx = new ClientTlsContext(upstream({ validationContextSdsSecretConfig: { name: 'ROOTCA', source: 'ads' } }), { store, counters });
    expect(ctx.connectOptions()).toBeNull();
    expect(() => ctx.connect({ host: '127.0.0.1', port: 1 })).toThrow(/not ready/);
    expect(counters.get('client_ssl_socket_factory.upstream_context_secrets_not_ready')).toBe(1);
    ctx.close();
  });
});
