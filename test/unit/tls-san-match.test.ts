import { X509Certificate } from 'node:crypto';
import { type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import type { SanMatcher } from '../../src/config/transport-model';
import { certificateDetails } from '../../src/tls/certificates';
import { compileSanMatchers, dnsNameMatch, parseSubjectAltNames } from '../../src/tls/san-match';

// Subject alternative names as Node prints them, Envoy's DNS name matching, SAN matchers and the
// `/certs` details of a certificate.

let certs: TestCertificates;
beforeAll(() => (certs = makeTestCertificates()));
afterAll(() => certs.remove());

describe('parseSubjectAltNames', () => {
  test("Node's string, with its JSON-quoted values and uncompressed IPv6", () => {
    expect(parseSubjectAltNames('DNS:"a\\u002cb.example.com", DNS:*.example.com, URI:spiffe://td/ns/q, email:x@y.z, IP Address:0:0:0:0:0:0:0:1, IP Address:10.0.0.1')).toEqual([
      { type: 'DNS', value: 'a,b.example.com' },
      { type: 'DNS', value: '*.example.com' },
      { type: 'URI', value: 'spiffe://td/ns/q' },
      { type: 'EMAIL', value: 'x@y.z' },
      { type: 'IP_ADDRESS', value: '::1' },
      { type: 'IP_ADDRESS', value: '10.0.0.1' },
    ]);
  });

  test('a SAN with a comma cannot pose as two (from a real certificate)', () => {
    const c = issueCertificate(certs, 'comma', { sanEntries: [['DNS', 'evil.test, DNS:good.test'], ['URI', 'spiffe://td/ns/a']] });
    const sans = parseSubjectAltNames(new X509Certificate(c.cert).subjectAltName);
    expect(sans.filter((s) => s.type === 'DNS').map((s) => s.value)).toEqual(['evil.test, DNS:good.test']);
    expect(sans).toContainEqual({ type: 'URI', value: 'spiffe://td/ns/a' });
  });

  test('empty, absent and broken strings', () => {
    expect(parseSubjectAltNames(undefined)).toEqual([]);
    expect(parseSubjectAltNames('')).toEqual([]);
    expect(parseSubjectAltNames('DNS:a.test, DNS:"unterminated')).toEqual([{ type: 'DNS', value: 'a.test' }]);
    expect(parseSubjectAltNames('othername:<unsupported>, DNS:b.test')).toEqual([
      { type: 'OTHER', value: '<unsupported>' },
      { type: 'DNS', value: 'b.test' },
    ]);
  });
});

describe('dnsNameMatch (config name against a certificate pattern)', () => {
  test.each([
    ['a.example.com', 'a.example.com', true],
    ['A.Example.com', 'a.EXAMPLE.com', true],
    ['a.example.com', '*.example.com', true],
    ['a.b.example.com', '*.example.com', false],
    ['example.com', '*.example.com', false],
    ['foobaz.example.com', '*baz.example.com', true],
    ['baz1.example.com', 'baz*.example.com', true],
    ['buzz.example.com', 'b*z.example.com', true],
    ['bz.example.com', 'b*z.example.com', true],
    ['b.example.com', 'b*z.example.com', false],
    ['xn--abc.example.com', 'xn--*.example.com', false],
    ['a.example.com', 'a.*.com', false],
    ['a.example.com', '*.*.com', false],
    ['a', '*', false],
  ])('%s vs %s → %s', (name, pattern, expected) => {
    expect(dnsNameMatch(name, pattern)).toBe(expected);
  });
});

describe('compileSanMatchers', () => {
  const m = (sanType: SanMatcher['sanType'], kind: 'exact' | 'prefix' | 'suffix' | 'contains' | 'regex', value: string, ignoreCase = false): SanMatcher =>
    ({ sanType, matcher: kind === 'regex' ? { kind, value, ignoreCase: false } : { kind, value, ignoreCase } });
  const sans = parseSubjectAltNames('DNS:*.svc.cluster.local, URI:spiffe://cluster.local/ns/prod/sa/api, IP Address:10.1.2.3, email:ops@example.com');

  test('empty: any certificate', () => {
    expect(compileSanMatchers([])).toBeNull();
  });

  test.each<[string, SanMatcher[], boolean]>([
    ['DNS exact against a wildcard SAN', [m('DNS', 'exact', 'api.svc.cluster.local')], true],
    ['DNS exact two labels deep', [m('DNS', 'exact', 'a.api.svc.cluster.local')], false],
    ['DNS suffix is a plain string match', [m('DNS', 'suffix', '.cluster.local')], true],
    ['URI prefix', [m('URI', 'prefix', 'spiffe://cluster.local/ns/prod/')], true],
    ['URI regex (whole value)', [m('URI', 'regex', 'spiffe://cluster\\.local/ns/[a-z]+/sa/api')], true],
    ['URI regex not anchored at the end fails', [m('URI', 'regex', 'spiffe://cluster\\.local/ns/prod')], false],
    ['URI exact, other namespace', [m('URI', 'exact', 'spiffe://cluster.local/ns/dev/sa/api')], false],
    ['ignore_case (the decoder lowers the value)', [m('EMAIL', 'exact', 'ops@example.com', true)], true],
    ['IP exact', [m('IP_ADDRESS', 'exact', '10.1.2.3')], true],
    ['a type the certificate lacks never matches', [m('DNS', 'contains', 'spiffe')], false],
    ['one of several suffices', [m('URI', 'exact', 'spiffe://x/y'), m('IP_ADDRESS', 'prefix', '10.1.')], true],
  ])('%s', (_label, matchers, expected) => {
    expect(compileSanMatchers(matchers)!(sans)).toBe(expected);
  });
});

describe('certificateDetails (admin /certs)', () => {
  test('Envoy field names and forms: lower-case serial, SANs by kind, days as a string, RFC 3339 times', () => {
    const c = issueCertificate(certs, 'details', { san: 'URI:spiffe://td/x,DNS:b.test,IP:::1,DNS:a.test' });
    const x = new X509Certificate(c.cert);
    const now = Date.parse(x.validFrom) + 60_000;
    const d = certificateDetails(x, c.certFile, now);
    expect(d).toEqual({
      path: c.certFile,
      serial_number: x.serialNumber.toLowerCase().replace(/^(00)+/, ''),
      subject_alt_names: [{ dns: 'b.test' }, { dns: 'a.test' }, { uri: 'spiffe://td/x' }, { ip_address: '::1' }],
      days_until_expiration: '1',
      valid_from: new Date(Date.parse(x.validFrom)).toISOString().replace('.000Z', 'Z'),
      expiration_time: new Date(Date.parse(x.validTo)).toISOString().replace('.000Z', 'Z'),
    });
    expect(d.valid_from).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  test('an expired certificate has 0 days left', () => {
    const c = issueCertificate(certs, 'old', { expired: true });
    const d = certificateDetails(new X509Certificate(c.cert), c.certFile);
    expect(d.days_until_expiration).toBe('0');
    expect(d.expiration_time).toBe('2020-01-02T00:00:00Z');
  });
});
