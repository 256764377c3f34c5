import { readFileSync } from 'node:fs';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { SecretStore } from '../../src/tls/secret-store';
import { ServerTlsContext } from '../../src/tls/server-context';
import { CountingSsl, cert, downstream, runClient, startTlsServer, validation } from './tls-peers';

// ServerTlsContext on real sockets: Envoy's rules for client certificates (required or not,
// verified against trusted_ca, SAN matchers), ALPN, versions and certificate choice by SNI.

let certs: TestCertificates;
let spiffeClient: IssuedCertificate;
let otherCaClient: IssuedCertificate;
let expiredClient: IssuedCertificate;
let expiredOtherClient: IssuedCertificate;
let wildServer: IssuedCertificate;
const store = new SecretStore();

beforeAll(() => {
  certs = makeTestCertificates();
  spiffeClient = issueCertificate(certs, 'spiffe-client', { san: 'URI:spiffe://cluster.local/ns/default/sa/client' });
  otherCaClient = issueCertificate(certs, 'other-client', { issuer: 'other-ca', san: 'URI:spiffe://cluster.local/ns/default/sa/client' });
  expiredClient = issueCertificate(certs, 'expired-client', { expired: true, san: 'URI:spiffe://cluster.local/ns/default/sa/client' });
  expiredOtherClient = issueCertificate(certs, 'expired-other', { expired: true, issuer: 'other-ca' });
  wildServer = issueCertificate(certs, 'wild-server', { san: 'DNS:*.wild.example.com' });
});
afterAll(() => {
  store.close();
  certs.remove();
});

const serverCert = () => cert(certs.serverCertFile, certs.serverKeyFile);
const client = (c: { certFile: string; keyFile: string } | null, extra: object = {}) => ({
  host: '127.0.0.1',
  rejectUnauthorized: false,
  ...(c ? { cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) } : {}),
  ...extra,
});

async function withServer<T>(ctx: ServerTlsContext, fn: (port: number, seen: { verdict: string }[]) => Promise<T>, offeredAlpn?: readonly string[] | null): Promise<T> {
  const server = await startTlsServer(ctx, offeredAlpn);
  try {
    return await fn(server.port, server.seen);
  } finally {
    await server.close();
    ctx.close();
  }
}

describe('client certificates', () => {
  test('without a validation context no client certificate is asked for, and none is verified', async () => {
    const counters = new CountingSsl();
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()] }), { store, counters });
    expect(ctx.socketOptions()).toMatchObject({ requestCert: false, rejectUnauthorized: false });
    await withServer(ctx, async (port) => {
      expect((await runClient({ ...client(null), port })).ok).toBe(true);
      expect((await runClient({ ...client(otherCaClient), port })).ok).toBe(true);
    });
    expect(counters.get('ssl.handshake')).toBe(2);
    expect(counters.get('ssl.no_certificate')).toBe(2);
  });

  test('require_client_certificate without a validation context: any certificate, but one is needed', async () => {
    const counters = new CountingSsl();
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()] }, true), { store, counters });
    await withServer(ctx, async (port) => {
      const none = await runClient({ ...client(null), port });
      expect(none.ok).toBe(false);
      expect(none.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
      expect((await runClient({ ...client(otherCaClient), port })).ok).toBe(true);
    });
    expect(counters.get('ssl.fail_verify_no_cert')).toBe(1);
    expect(counters.get('ssl.connection_error')).toBe(1);
    expect(counters.get('ssl.handshake')).toBe(1);
  });

  test('required and verified: no certificate, another CA, an expired one are refused; the right one passes', async () => {
    const counters = new CountingSsl();
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile) }, true), { store, counters });
    expect(ctx.socketOptions()).toMatchObject({ requestCert: true, rejectUnauthorized: true });
    await withServer(ctx, async (port, seen) => {
      expect((await runClient({ ...client(null), port })).ok).toBe(false);
      expect((await runClient({ ...client(otherCaClient), port })).ok).toBe(false);
      expect((await runClient({ ...client(expiredClient), port })).ok).toBe(false);
      expect((await runClient({ ...client(spiffeClient), port })).ok).toBe(true);
      expect(seen.map((s) => s.verdict)).toEqual(['fail_verify_error', 'fail_verify_error', 'ok']);
    });
    expect(counters.get('ssl.fail_verify_no_cert')).toBe(1);
    expect(counters.get('ssl.fail_verify_error')).toBe(2);
    expect(counters.get('ssl.connection_error')).toBe(3);
    expect(counters.get('ssl.handshake')).toBe(1);
    expect(counters.get('ssl.versions.TLSv1.3')).toBe(1);
  });

  test('a validation context without require_client_certificate: a certificate is optional, but verified when sent', async () => {
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile) }), { store });
    expect(ctx.socketOptions()).toMatchObject({ requestCert: true, rejectUnauthorized: false });
    await withServer(ctx, async (port) => {
      expect((await runClient({ ...client(null), port })).ok).toBe(true);
      expect((await runClient({ ...client(otherCaClient), port })).ok).toBe(false);
      expect((await runClient({ ...client(spiffeClient), port })).ok).toBe(true);
    });
  });

  test('match_typed_subject_alt_names: a SAN must match; a mismatch is refused', async () => {
    const counters = new CountingSsl();
    const san = (value: string) => ({ sanType: 'URI' as const, matcher: { kind: 'prefix' as const, value, ignoreCase: false } });
    const good = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile, [san('spiffe://cluster.local/ns/default/')]) }, true), { store });
    await withServer(good, async (port) => expect((await runClient({ ...client(spiffeClient), port })).ok).toBe(true));
    const bad = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile, [san('spiffe://cluster.local/ns/other/')]) }, true), { store, counters });
    await withServer(bad, async (port, seen) => {
      expect((await runClient({ ...client(spiffeClient), port })).ok).toBe(false);
      expect(seen.map((s) => s.verdict)).toEqual(['fail_verify_san']);
    });
    expect(counters.get('ssl.fail_verify_san')).toBe(1);
  });

  test('allow_expired_certificate lets an expired certificate of the trusted CA through, never one of another CA', async () => {
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile, [], true) }, true), { store });
    await withServer(ctx, async (port, seen) => {
      expect((await runClient({ ...client(expiredClient), port })).ok).toBe(true);
      // OpenSSL reports only CERT_HAS_EXPIRED for this one, though its issuer is unknown too.
      expect((await runClient({ ...client(expiredOtherClient), port })).ok).toBe(false);
      expect((await runClient({ ...client(otherCaClient), port })).ok).toBe(false);
      expect(seen.map((s) => s.verdict)).toEqual(['ok', 'fail_verify_error', 'fail_verify_error']);
    });
  });

  test('SAN matchers without trusted_ca are refused, as Envoy refuses them', () => {
    const sans = [{ sanType: 'DNS' as const, matcher: { kind: 'exact' as const, value: 'a', ignoreCase: false } }];
    expect(() => new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(null, sans) }), { store })).toThrow(/without trusted CA is insecure/);
  });
});

describe('handshake parameters', () => {
  test('ALPN: the server picks from alpn_protocols; none configured means no ALPN', async () => {
    const withAlpn = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], alpnProtocols: ['h2', 'http/1.1'] }), { store });
    await withServer(withAlpn, async (port) => {
      expect((await runClient({ ...client(null), port, ALPNProtocols: ['http/1.1', 'h2'] })).alpn).toBe('h2');
    });
    const without = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()] }), { store });
    await withServer(without, async (port) => {
      expect((await runClient({ ...client(null), port, ALPNProtocols: ['h2'] })).alpn).toBe(false);
    });
  });

  test('a client offering no shared protocol: fails without the inspected offer, connects without ALPN with it (Envoy)', async () => {
    const ctx = () => new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], alpnProtocols: ['h2'] }), { store });
    await withServer(ctx(), async (port) => {
      const r = await runClient({ ...client(null), port, ALPNProtocols: ['http/1.1'] });
      expect(r.error).toBe('ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL');
    });
    await withServer(
      ctx(),
      async (port) => {
        const r = await runClient({ ...client(null), port, ALPNProtocols: ['http/1.1'] });
        expect(r.ok).toBe(true);
        expect(r.alpn).toBe(false);
      },
      ['http/1.1'],
    );
  });

  test('versions: Envoy server defaults are TLS 1.2 to 1.3; tls_params narrows them', async () => {
    const defaults = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()] }), { store });
    await withServer(defaults, async (port) => {
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2' })).protocol).toBe('TLSv1.2');
      expect((await runClient({ ...client(null), port })).protocol).toBe('TLSv1.3');
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' })).ok).toBe(false);
    });
    const only13 = new ServerTlsContext(
      downstream({ tlsCertificates: [serverCert()], tlsParams: { minVersion: 'TLSv1_3', maxVersion: null, cipherSuites: [], ecdhCurves: [] } }),
      { store },
    );
    await withServer(only13, async (port) => {
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2' })).ok).toBe(false);
    });
  });

  test('TLS 1.2 ciphers: Envoy defaults refuse a CBC-only client; cipher_suites replaces the list', async () => {
    const defaults = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()] }), { store });
    await withServer(defaults, async (port) => {
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA' })).ok).toBe(false);
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' })).ok).toBe(true);
    });
    const cbc = new ServerTlsContext(
      downstream({ tlsCertificates: [serverCert()], tlsParams: { minVersion: null, maxVersion: null, cipherSuites: ['[ECDHE-RSA-AES128-SHA|ECDHE-RSA-AES256-SHA]'], ecdhCurves: ['P-256'] } }),
      { store },
    );
    await withServer(cbc, async (port) => {
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA' })).ok).toBe(true);
      expect((await runClient({ ...client(null), port, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CHACHA20-POLY1305' })).ok).toBe(false);
      expect((await runClient({ ...client(null), port, ecdhCurve: 'X25519' })).ok).toBe(false);
    });
  });

  test('several certificates: chosen by SNI (exact, then wildcard), else the first', async () => {
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert(), cert(wildServer.certFile, wildServer.keyFile)] }), { store });
    const serial = (pem: string) => new (require('node:crypto').X509Certificate)(pem).serialNumber as string;
    await withServer(ctx, async (port) => {
      expect((await runClient({ ...client(null), port, servername: 'a.wild.example.com' })).peerSerial).toBe(serial(wildServer.cert));
      expect((await runClient({ ...client(null), port, servername: 'localhost' })).peerSerial).toBe(serial(readFileSync(certs.serverCertFile, 'utf8')));
      expect((await runClient({ ...client(null), port, servername: 'elsewhere.test' })).peerSerial).toBe(serial(readFileSync(certs.serverCertFile, 'utf8')));
      expect((await runClient({ ...client(null), port })).peerSerial).toBe(serial(readFileSync(certs.serverCertFile, 'utf8')));
    });
  });
});

describe('readiness and errors', () => {
  test('a certificate from an SDS secret: not ready (no options, counted) until the secret arrives', async () => {
    const sds = new SecretStore();
    const counters = new CountingSsl();
    const ctx = new ServerTlsContext(downstream({ tlsCertificateSdsSecretConfigs: [{ name: 'default', source: 'ads' }] }), { store: sds, counters });
    expect(ctx.ready).toBe(false);
    expect(ctx.error).toMatch(/waiting for secret\(s\) 'default'/);
    expect(ctx.socketOptions()).toBeNull();
    expect(counters.get('server_ssl_socket_factory.downstream_context_secrets_not_ready')).toBe(1);
    const updates: number[] = [];
    ctx.onUpdate(() => updates.push(1));
    sds.setDynamic([{ name: 'default', kind: 'tls_certificate', tlsCertificate: serverCert() }]);
    expect(ctx.ready).toBe(true);
    expect(updates).toHaveLength(1);
    expect(counters.get('server_ssl_socket_factory.ssl_context_update_by_sds')).toBe(1);
    await withServer(ctx, async (port) => expect((await runClient({ ...client(null), port })).ok).toBe(true));
    sds.close();
  });

  test('an unreadable file or a key that does not fit the certificate throws for a static context', () => {
    expect(() => new ServerTlsContext(downstream({ tlsCertificates: [cert('/nonexistent/x.crt', certs.serverKeyFile)] }), { store })).toThrow(/nonexistent/);
    expect(() => new ServerTlsContext(downstream({ tlsCertificates: [cert(certs.serverCertFile, certs.clientKeyFile)] }), { store })).toThrow(/key values mismatch/);
    expect(() => new ServerTlsContext(downstream({}), { store })).toThrow(/needs a certificate/);
  });

  test('/certs details: the CA and the leaf, with path, serial, SANs and dates', () => {
    const ctx = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], validationContext: validation(certs.caFile) }), { store });
    const entry = ctx.certificates();
    ctx.close();
    expect(entry.ca_cert).toHaveLength(1);
    expect(entry.ca_cert[0]!.path).toBe(certs.caFile);
    expect(entry.cert_chain).toEqual([
      expect.objectContaining({ path: certs.serverCertFile, subject_alt_names: [{ dns: 'localhost' }, { ip_address: '127.0.0.1' }], days_until_expiration: '1' }),
    ]);
    expect(entry.cert_chain[0]!.serial_number).toMatch(/^[0-9a-f]+$/);
    expect(entry.cert_chain[0]!.expiration_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });
});

describe('a listener path: inspect the ClientHello, pick the chain, then TLS', () => {
  test('SNI picks the chain and its certificate, the offered ALPN is honoured, plain text takes the raw chain', async () => {
    const net = await import('node:net');
    const { ClientHelloReader } = await import('../../src/listener/client-hello');
    const { selectFilterChain } = await import('../../src/listener/filter-chain-match');
    type Chain = import('../../src/config/model').FilterChain;
    const counters = new CountingSsl();
    const ctxA = new ServerTlsContext(downstream({ tlsCertificates: [serverCert()], alpnProtocols: ['h2'] }), { store, counters });
    const ctxB = new ServerTlsContext(downstream({ tlsCertificates: [cert(wildServer.certFile, wildServer.keyFile)] }), { store, counters });
    const chain = (name: string, serverNames: string[], transportProtocol: string | null): Chain =>
      ({ name, match: { serverNames, transportProtocol, applicationProtocols: [] }, tls: null, hcm: {} } as unknown as Chain);
    const chains = [chain('a', ['a.test'], 'tls'), chain('b', ['*.wild.example.com'], 'tls'), chain('raw', [], 'raw_buffer')];
    const contexts = new Map([['a', ctxA], ['b', ctxB]]);
    const server = net.createServer((raw) => {
      const reader = new ClientHelloReader();
      const chunks: Buffer[] = [];
      raw.on('data', function onData(d: Buffer) {
        chunks.push(d);
        const r = reader.feed(d);
        if (r.kind === 'need_more') return;
        raw.pause();
        raw.removeListener('data', onData);
        raw.unshift(Buffer.concat(chunks));
        const hello = r.kind === 'tls' ? r : null;
        const picked = selectFilterChain(chains, null, { serverName: hello?.serverName ?? null, transportProtocol: hello ? 'tls' : 'raw_buffer', alpn: hello?.alpn ?? [] });
        if (!picked) {
          raw.destroy();
          return;
        }
        const ctx = contexts.get(picked.name);
        if (!ctx) {
          raw.once('data', (line: Buffer) => raw.end(`raw:${picked.name}:${line.toString().split('\r\n')[0]}`));
          raw.resume();
          return;
        }
        ctx.accept(raw, (s) => s.end(`hello`), hello?.alpn);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as import('node:net').AddressInfo).port;
    const serial = (pem: string) => new (require('node:crypto').X509Certificate)(pem).serialNumber as string;
    try {
      const a = await runClient({ ...client(null), port, servername: 'a.test', ALPNProtocols: ['http/1.1'] });
      expect(a).toMatchObject({ ok: true, alpn: false, peerSerial: serial(readFileSync(certs.serverCertFile, 'utf8')) });
      expect((await runClient({ ...client(null), port, servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] })).alpn).toBe('h2');
      expect((await runClient({ ...client(null), port, servername: 'x.wild.example.com' })).peerSerial).toBe(serial(wildServer.cert));
      // A TLS client naming no chain: no chain matches (the raw one wants raw_buffer), so the connection is closed.
      expect((await runClient({ ...client(null), port, servername: 'nobody.test' })).ok).toBe(false);
      const plain = await new Promise<string>((resolve) => {
        const c = net.connect(port, '127.0.0.1', () => c.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n'));
        let got = '';
        c.on('data', (d) => (got += d));
        c.on('close', () => resolve(got));
      });
      expect(plain).toBe('raw:raw:GET / HTTP/1.1');
      expect(counters.get('ssl.handshake')).toBe(3);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      ctxA.close();
      ctxB.close();
    }
  });
});
