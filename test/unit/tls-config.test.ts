import { createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { Bootstrap, Listener } from '../../src/config/model';
import { messageType, protoRoot } from '../../src/config/proto';
import { REDACTED, isSensitive, redactedProto3Json } from '../../src/config/redact';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';

// Downstream TLS in config: filter chains (names, matches, TLS contexts), tls_inspector, the
// default chain, certificates and validation contexts, static secrets, and Envoy's errors, each
// by path, all in one report.

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
const L0 = 'static_resources.listeners[0]';
const CTX0 = `${L0}.filter_chains[0].transport_socket.typed_config.common_tls_context`;

let certs: TestCertificates;
let dir: string;
beforeAll(() => {
  certs = makeTestCertificates();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-tls-config-'));
});
afterAll(() => {
  certs.remove();
  fs.rmSync(dir, { recursive: true, force: true });
});

const serverCert = (): Json => ({ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.serverKeyFile } });
const tlsSocket = (ctx: Json): Json => ({ name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM, ...ctx } });
const serverTls = (common: Json = {}, extra: Json = {}): Json => tlsSocket({ common_tls_context: { tls_certificates: [serverCert()], ...common }, ...extra });

/** A bootstrap whose one listener has these chains (each gets the harness's HCM) and listener fields. */
function doc(chains: Json[], listenerExtra: Json = {}, extra: Json = {}): string {
  const base = listener(routeConfig([route('/', 'primary')]));
  const filters = (base.filter_chains as Json[])[0]!.filters;
  return bootstrap({
    listeners: [{ ...base, filter_chains: chains.map((c) => ({ filters, ...c })), ...listenerExtra }],
    clusters: [cluster('primary', [8081])],
    extra,
  });
}

function load(text: string): Bootstrap {
  return loadBootstrapText(text).bootstrap;
}

function issuesOf(text: string): string[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i: ConfigIssue) => `${i.path}: ${i.message}`);
  }
  throw new Error('the configuration was accepted');
}

describe('filter chains', () => {
  test('names, SNI/ALPN/transport matches, a TLS context, the default chain and the tls_inspector decode', () => {
    const l: Listener = load(doc(
      [
        { name: 'a', filter_chain_match: { server_names: ['A.Example.com', '*.b.example.com'], transport_protocol: 'tls' }, transport_socket: serverTls({ alpn_protocols: ['h2', 'http/1.1'] }) },
        { name: 'plain', filter_chain_match: { transport_protocol: 'raw_buffer', application_protocols: ['x'] }, transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } },
      ],
      {
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': INSPECTOR } }],
        default_filter_chain: { name: 'fallback', filters: (listener(routeConfig([route('/', 'primary')])).filter_chains as Json[])[0]!.filters, transport_socket: serverTls() },
      },
    )).listeners[0]!;
    expect(l.tlsInspector).toBe(true);
    expect(l.filterChains.map((c) => c.name)).toEqual(['a', 'plain']);
    expect(l.filterChains[0]!.match).toEqual({ serverNames: ['a.example.com', '*.b.example.com'], transportProtocol: 'tls', applicationProtocols: [] });
    expect(l.filterChains[1]!.match).toEqual({ serverNames: [], transportProtocol: 'raw_buffer', applicationProtocols: ['x'] });
    expect(l.filterChains[1]!.tls).toBeNull();
    const tls = l.filterChains[0]!.tls!;
    expect(tls.requireClientCertificate).toBe(false);
    expect(tls.common).toEqual({
      tlsParams: { minVersion: null, maxVersion: null, cipherSuites: [], ecdhCurves: [] },
      tlsCertificates: [{ certificateChain: { kind: 'filename', path: certs.serverCertFile }, privateKey: { kind: 'filename', path: certs.serverKeyFile }, password: null }],
      tlsCertificateSdsSecretConfigs: [],
      validationContext: null,
      validationContextSdsSecretConfig: null,
      alpnProtocols: ['h2', 'http/1.1'],
    });
    expect(l.defaultFilterChain!.name).toBe('fallback');
    expect(l.defaultFilterChain!.tls!.common.tlsCertificates).toHaveLength(1);
  });

  test('without listener_filters there is no tls_inspector (Envoy no longer adds one), and no chain match is any chain', () => {
    const l = load(doc([{ filter_chain_match: { server_names: ['a.example'] }, transport_socket: serverTls() }])).listeners[0]!;
    expect(l.tlsInspector).toBe(false);
    expect(l.filterChains[0]!.match.serverNames).toEqual(['a.example']);
    expect(load(doc([{}])).listeners[0]!.filterChains[0]!.match).toEqual({ serverNames: [], transportProtocol: null, applicationProtocols: [] });
  });

  test("Envoy's cross-chain errors, partial wildcards, other listener filters and match fields, by path", () => {
    expect(issuesOf(doc(
      [
        { name: 'one', filter_chain_match: { server_names: ['a.example'] } },
        { name: 'two', filter_chain_match: { server_names: ['a.example'] } },
        { name: 'three', filter_chain_match: { server_names: ['b.example', 'A.example'] } },
        { name: 'four', filter_chain_match: { server_names: ['a*.example', '*'] } },
        { name: 'five', filter_chain_match: { source_type: 'EXTERNAL' } },
      ],
      { listener_filters: [{ name: 'envoy.filters.listener.http_inspector' }, { name: 'x', typed_config: { '@type': DOWNSTREAM } }] },
    ))).toEqual([
      `${L0}.filter_chains[4].filter_chain_match.source_type: not supported by sidemirror`,
      `${L0}.filter_chains[3].filter_chain_match.server_names[0]: partial wildcards are not supported in "server_names"`,
      `${L0}.filter_chains[3].filter_chain_match.server_names[1]: partial wildcards are not supported in "server_names"`,
      `${L0}.filter_chains[1].filter_chain_match: filter chain 'two' has the same matching rules defined as 'one'`,
      `${L0}.filter_chains[2].filter_chain_match: multiple filter chains with overlapping matching rules are defined`,
      `${L0}.listener_filters[0].name: listener filter "envoy.filters.listener.http_inspector" is not supported by sidemirror (only envoy.filters.listener.tls_inspector is)`,
      `${L0}.listener_filters[1].typed_config: listener filter "${DOWNSTREAM}" is not supported by sidemirror (only envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector is)`,
    ]);
  });

  test('chains whose filters are refused keep their own matches in the cross-chain checks', () => {
    const refused = [{ name: 'envoy.filters.network.not_a_filter', typed_config: { '@type': DOWNSTREAM } }];
    expect(issuesOf(doc([
      { filter_chain_match: { server_names: ['a.example'] }, filters: refused },
      { filter_chain_match: { server_names: ['b.example'] }, filters: refused },
    ]))).toEqual([0, 1].map((i) => `${L0}.filter_chains[${i}].filters[0].typed_config: network filter "${DOWNSTREAM}" is not supported by sidemirror; only envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager and envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy are`));
  });

  test('two chains without a match are identical (Envoy refuses the second)', () => {
    expect(issuesOf(doc([{ name: 'x' }, { name: 'y' }]))).toEqual([`${L0}.filter_chains[1].filter_chain_match: filter chain 'y' has the same matching rules defined as 'x'`]);
  });

  test('a transport socket other than tls and raw_buffer, or the client context on a listener, is refused', () => {
    expect(issuesOf(doc([
      { name: 'a', filter_chain_match: { server_names: ['a'] }, transport_socket: { name: 'envoy.transport_sockets.alts' } },
      { name: 'b', filter_chain_match: { server_names: ['b'] }, transport_socket: { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext' } } },
    ]))).toEqual([
      `${L0}.filter_chains[0].transport_socket.name: transport socket "envoy.transport_sockets.alts" is not supported by sidemirror (envoy.transport_sockets.tls and envoy.transport_sockets.raw_buffer are)`,
      `${L0}.filter_chains[1].transport_socket.typed_config: transport socket type "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext" is not supported here (envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext is)`,
    ]);
  });
});

describe('DownstreamTlsContext', () => {
  test('mTLS: trusted CA, typed SAN matchers, the deprecated untyped ones (mapped to every type), expired allowed, TLS params', () => {
    const tls = load(doc([{ transport_socket: serverTls({
      tls_params: { tls_minimum_protocol_version: 'TLSv1_2', tls_maximum_protocol_version: 'TLSv1_3', cipher_suites: ['[ECDHE-ECDSA-AES128-GCM-SHA256|ECDHE-ECDSA-CHACHA20-POLY1305]', 'ECDHE-RSA-AES256-GCM-SHA384'], ecdh_curves: ['X25519', 'P-256'] },
      validation_context: {
        trusted_ca: { filename: certs.caFile },
        match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://cluster.local/' } }],
        match_subject_alt_names: [{ exact: 'client' }],
        allow_expired_certificate: true,
      },
    }, { require_client_certificate: true }) }])).listeners[0]!.filterChains[0]!.tls!;
    expect(tls.requireClientCertificate).toBe(true);
    expect(tls.common.tlsParams).toEqual({
      minVersion: 'TLSv1_2', maxVersion: 'TLSv1_3',
      cipherSuites: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-AES256-GCM-SHA384'],
      ecdhCurves: ['X25519', 'P-256'],
    });
    const exact = { kind: 'exact', value: 'client', ignoreCase: false };
    expect(tls.common.validationContext).toEqual({
      trustedCa: { kind: 'filename', path: certs.caFile },
      matchTypedSubjectAltNames: [
        { sanType: 'URI', matcher: { kind: 'prefix', value: 'spiffe://cluster.local/', ignoreCase: false } },
        { sanType: 'DNS', matcher: exact }, { sanType: 'URI', matcher: exact }, { sanType: 'EMAIL', matcher: exact }, { sanType: 'IP_ADDRESS', matcher: exact },
      ],
      allowExpiredCertificate: true,
    });
  });

  test("Envoy's context errors, and ours for what Envoy would silently not do", () => {
    const chain = (name: string, ctx: Json): Json => ({ name, filter_chain_match: { server_names: [name] }, transport_socket: tlsSocket(ctx) });
    expect(issuesOf(doc([
      chain('nocert', { common_tls_context: {} }),
      chain('mixed', { common_tls_context: { tls_certificates: [serverCert()], tls_certificate_sds_secret_configs: [{ name: 's' }] } }),
      chain('noca', { common_tls_context: { tls_certificates: [serverCert()] }, require_client_certificate: true }),
      chain('san', { common_tls_context: { tls_certificates: [serverCert()], validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'a' } }], allow_expired_certificate: true } } }),
      chain('types', { common_tls_context: { tls_certificates: [serverCert()], validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'OTHER_NAME', matcher: { exact: 'a' } }, { matcher: { exact: 'b' } }] } } }),
      chain('params', { common_tls_context: { tls_certificates: [serverCert()], alpn_protocols: [''], tls_params: { tls_minimum_protocol_version: 'TLSv1_3', tls_maximum_protocol_version: 'TLSv1_2', cipher_suites: ['NOPE-CIPHER', 'TLS_AES_128_GCM_SHA256'], ecdh_curves: ['P-999'] } } }),
      chain('more', { common_tls_context: { tls_certificates: [{ certificate_chain: { filename: certs.serverCertFile } }] }, session_timeout: '5s', require_sni: true }),
    ]))).toEqual([
      `${L0}.filter_chains[6].transport_socket.typed_config.session_timeout: not supported by sidemirror`,
      `${L0}.filter_chains[6].transport_socket.typed_config.require_sni: not supported by sidemirror`,
      `${L0}.filter_chains[0].transport_socket.typed_config.common_tls_context: No TLS certificates found for server context`,
      `${L0}.filter_chains[1].transport_socket.typed_config.common_tls_context: SDS and non-SDS TLS certificates may not be mixed in server contexts`,
      `${L0}.filter_chains[2].transport_socket.typed_config.require_client_certificate: needs a validation context with trusted_ca (without one Envoy asks for no client certificate)`,
      `${L0}.filter_chains[3].transport_socket.typed_config.common_tls_context.validation_context: SAN-based verification of peer certificates without trusted CA is insecure and not allowed`,
      `${L0}.filter_chains[3].transport_socket.typed_config.common_tls_context.validation_context: Certificate validity period is always ignored without trusted CA`,
      `${L0}.filter_chains[4].transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type: OTHER_NAME is not supported by sidemirror`,
      `${L0}.filter_chains[4].transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[1].san_type: one of DNS, URI, IP_ADDRESS or EMAIL is required`,
      `${L0}.filter_chains[5].transport_socket.typed_config.common_tls_context.tls_params: tls_minimum_protocol_version TLSv1_3 is above tls_maximum_protocol_version TLSv1_2: no handshake could succeed`,
      `${L0}.filter_chains[5].transport_socket.typed_config.common_tls_context.tls_params.cipher_suites[0]: unknown cipher suite "NOPE-CIPHER"`,
      `${L0}.filter_chains[5].transport_socket.typed_config.common_tls_context.tls_params.cipher_suites[1]: "TLS_AES_128_GCM_SHA256" is a TLS 1.3 suite; cipher_suites applies to TLS 1.0-1.2 only`,
      `${L0}.filter_chains[5].transport_socket.typed_config.common_tls_context.tls_params.ecdh_curves[0]: unknown ECDH curve "P-999"`,
      `${L0}.filter_chains[5].transport_socket.typed_config.common_tls_context.alpn_protocols[0]: Invalid ALPN protocol string (1 to 255 bytes)`,
      `${L0}.filter_chains[6].transport_socket.typed_config.common_tls_context.tls_certificates[0]: a certificate needs both certificate_chain and private_key`,
      `${L0}.filter_chains[1].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: Unknown static secret: s`,
    ]);
  });

  test('a name without typed_config is an empty DownstreamTlsContext, which has no certificate', () => {
    expect(issuesOf(doc([{ transport_socket: { name: 'envoy.transport_sockets.tls' } }]))).toEqual([
      `${L0}.filter_chains[0].transport_socket.typed_config.common_tls_context: No TLS certificates found for server context`,
    ]);
  });
});

describe('DataSource at load', () => {
  const withCert = (cert: Json): string => doc([{ transport_socket: tlsSocket({ common_tls_context: { tls_certificates: [cert] } }) }]);
  const TC = `${CTX0}.tls_certificates[0]`;

  test('inline PEM, an environment variable and a file decode; the model keeps the source', () => {
    process.env.SIDEMIRROR_TEST_KEY = fs.readFileSync(certs.serverKeyFile, 'utf8');
    try {
      const c = load(withCert({
        certificate_chain: { inline_string: fs.readFileSync(certs.serverCertFile, 'utf8') },
        private_key: { environment_variable: 'SIDEMIRROR_TEST_KEY' },
      })).listeners[0]!.filterChains[0]!.tls!.common.tlsCertificates[0]!;
      expect(c.certificateChain.kind).toBe('inline');
      expect(c.certificateChain.kind === 'inline' && c.certificateChain.bytes.toString()).toContain('BEGIN CERTIFICATE');
      expect(c.privateKey).toEqual({ kind: 'environment_variable', name: 'SIDEMIRROR_TEST_KEY' });
    } finally {
      delete process.env.SIDEMIRROR_TEST_KEY;
    }
  });

  test('a missing file, a directory, an unset variable, bad PEM and a key of another certificate are refused by path', () => {
    expect(issuesOf(withCert({ certificate_chain: { filename: path.join(dir, 'missing.pem') }, private_key: { filename: dir } }))).toEqual([
      expect.stringMatching(new RegExp(`^${escape(TC)}\\.certificate_chain\\.filename: cannot read ".*missing\\.pem": ENOENT`)),
      `${TC}.private_key.filename: cannot read "${dir}": not a regular file`,
    ]);
    expect(issuesOf(withCert({ certificate_chain: { inline_string: 'not a certificate' }, private_key: { environment_variable: 'SIDEMIRROR_UNSET_VAR_4711' } }))).toEqual([
      `${TC}.private_key.environment_variable: environment variable SIDEMIRROR_UNSET_VAR_4711 is not set`,
      `${TC}.certificate_chain: holds no PEM certificate`,
    ]);
    expect(issuesOf(withCert({ certificate_chain: { filename: certs.serverCertFile }, private_key: { filename: certs.clientKeyFile } }))).toEqual([
      `${TC}.private_key: is not the key of certificate_chain's certificate`,
    ]);
    expect(issuesOf(withCert({ certificate_chain: { filename: certs.serverCertFile }, private_key: { inline_string: 'garbage' } }))).toEqual([
      `${TC}.private_key: holds no unencrypted PEM private key (an encrypted one needs password)`,
    ]);
  });

  test('an encrypted key is checked with its password', () => {
    const encrypted = createPrivateKey(fs.readFileSync(certs.serverKeyFile, 'utf8')).export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
    const cert = { certificate_chain: { filename: certs.serverCertFile }, private_key: { inline_string: encrypted } };
    const c = load(withCert({ ...cert, password: { inline_string: 'pw' } })).listeners[0]!.filterChains[0]!.tls!.common.tlsCertificates[0]!;
    expect(c.password).toEqual({ kind: 'inline', bytes: Buffer.from('pw') });
    expect(issuesOf(withCert({ ...cert, password: { inline_string: 'wrong' } }))).toEqual([`${TC}.private_key: holds no PEM private key that password decrypts`]);
    expect(issuesOf(withCert(cert))).toEqual([`${TC}.private_key: holds no unencrypted PEM private key (an encrypted one needs password)`]);
  });

  test('a trusted_ca that is not a certificate is refused', () => {
    expect(issuesOf(doc([{ transport_socket: serverTls({ validation_context: { trusted_ca: { inline_string: 'nope' } } }) }]))).toEqual([
      `${CTX0}.validation_context.trusted_ca: holds no PEM certificate`,
    ]);
  });
});

describe('secrets', () => {
  const secrets = (): Json[] => [
    { name: 'server', tls_certificate: serverCert() },
    { name: 'ca', validation_context: { trusted_ca: { filename: certs.caFile }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'client' } }] } },
  ];
  const withSecrets = (common: Json, list: Json[] = secrets(), extra: Json = {}): string => {
    const d = JSON.parse(doc([{ transport_socket: tlsSocket({ common_tls_context: common, require_client_certificate: true }) }], {}, extra)) as Json;
    d.static_resources.secrets = list;
    return JSON.stringify(d);
  };

  test('static secrets decode and are found by name; a combined context merges over its default', () => {
    const b = load(withSecrets({
      tls_certificate_sds_secret_configs: [{ name: 'server' }],
      combined_validation_context: {
        default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://a' } }] },
        validation_context_sds_secret_config: { name: 'ca' },
      },
    }));
    expect(b.secrets.map((s) => [s.name, s.kind])).toEqual([['server', 'tls_certificate'], ['ca', 'validation_context']]);
    const common = b.listeners[0]!.filterChains[0]!.tls!.common;
    expect(common.tlsCertificateSdsSecretConfigs).toEqual([{ name: 'server', source: 'static' }]);
    expect(common.validationContextSdsSecretConfig).toEqual({ name: 'ca', source: 'static' });
    expect(common.validationContext!.matchTypedSubjectAltNames).toHaveLength(1);
  });

  test('unknown static secrets, the wrong kind, duplicates per kind, and a merged context with SANs but no CA are refused', () => {
    const noCa = { name: 'sans', validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'x' } }] } };
    expect(issuesOf(withSecrets(
      { tls_certificate_sds_secret_configs: [{ name: 'ca' }], combined_validation_context: { default_validation_context: {}, validation_context_sds_secret_config: { name: 'sans' } } },
      [...secrets(), { name: 'server', tls_certificate: serverCert() }, { name: 'server', validation_context: { trusted_ca: { filename: certs.caFile } } }, noCa],
    ))).toEqual([
      'static_resources.secrets[2].name: Duplicate static TlsCertificate secret name server',
      `${CTX0}.tls_certificate_sds_secret_configs[0].name: Unknown static secret: ca`,
      `${CTX0}.combined_validation_context.validation_context_sds_secret_config: SAN-based verification of peer certificates without trusted CA is insecure and not allowed`,
      `${CTX0}.combined_validation_context.validation_context_sds_secret_config: secret "sans" has no trusted_ca, which require_client_certificate needs`,
    ]);
    expect(issuesOf(withSecrets({ tls_certificate_sds_secret_configs: [{ name: 'server' }], validation_context_sds_secret_config: { name: 'nowhere' } }))).toEqual([
      `${CTX0}.validation_context_sds_secret_config.name: Unknown static certificate validation context: nowhere`,
    ]);
  });

  test('sds_config: only { ads: {} }, which needs the bootstrap ADS; other secret types are refused by name', () => {
    expect(issuesOf(withSecrets({
      tls_certificate_sds_secret_configs: [{ name: 'a', sds_config: { ads: {} } }, { name: 'b', sds_config: { path_config_source: { path: '/etc/sds.yaml' } } }, { name: 'c', sds_config: { resource_api_version: 'V3' } }],
      validation_context_sds_secret_config: { name: 'ca' },
    }, [...secrets(), { name: 'k', session_ticket_keys: { keys: [{ inline_string: 'x' }] } }, { name: 'g', generic_secret: { secret: { inline_string: 'x' } } }]))).toEqual([
      'static_resources.secrets[2].session_ticket_keys: not supported by sidemirror',
      'static_resources.secrets[3].generic_secret: not supported by sidemirror',
      `${CTX0}.tls_certificate_sds_secret_configs[1].sds_config.path_config_source: not supported by sidemirror`,
      `${CTX0}.tls_certificate_sds_secret_configs[2].sds_config: sds_config must be { ads: {} }, or left out for a static secret of static_resources.secrets`,
      'static_resources.secrets[2]: one of tls_certificate or validation_context is required',
      'static_resources.secrets[3]: one of tls_certificate or validation_context is required',
      `${CTX0}.tls_certificate_sds_secret_configs[0].sds_config: sds_config { ads: {} } needs dynamic_resources.ads_config in the bootstrap`,
      `${CTX0}.tls_certificate_sds_secret_configs[1].sds_config: sds_config { ads: {} } needs dynamic_resources.ads_config in the bootstrap`,
      `${CTX0}.tls_certificate_sds_secret_configs[2].sds_config: sds_config { ads: {} } needs dynamic_resources.ads_config in the bootstrap`,
    ]);
  });

  test('an ADS secret with the bootstrap on ADS decodes as source "ads"', () => {
    const ads = { dynamic_resources: {
      ads_config: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'primary' } }] }, cds_config: { ads: {} }, lds_config: { ads: {} },
    } };
    const common = load(withSecrets({ tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }], validation_context_sds_secret_config: { name: 'ca' } }, secrets(), ads))
      .listeners[0]!.filterChains[0]!.tls!.common;
    expect(common.tlsCertificateSdsSecretConfigs).toEqual([{ name: 'default', source: 'ads' }]);
  });

  test('the sensitive fields of our protos are the ones Envoy marks (and the mirror filter\'s Redis secrets)', () => {
    const found: string[] = [];
    const walk = (ns: protobuf.NamespaceBase): void => {
      for (const o of ns.nestedArray) {
        if (o instanceof protobuf.Type) found.push(...o.fieldsArray.filter(isSensitive).map((f) => `${o.fullName.slice(1)}.${f.name}`));
        if (o instanceof protobuf.Namespace) walk(o);
      }
    };
    walk(protoRoot());
    expect(found.sort()).toEqual([
      'envoy.extensions.transport_sockets.tls.v3.TlsCertificate.password',
      'envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key',
      'sidemirror.filters.http.mirror.v1.RedisConnection.password',
      'sidemirror.filters.http.mirror.v1.RedisConnection.username',
    ]);
  });

  test('private keys and passwords show as [redacted] in a config dump, certificates and CAs do not', () => {
    const text = withSecrets({ tls_certificate_sds_secret_configs: [{ name: 'server' }], validation_context_sds_secret_config: { name: 'ca' } }, [
      { name: 'server', tls_certificate: { certificate_chain: { filename: certs.serverCertFile }, private_key: { inline_string: fs.readFileSync(certs.serverKeyFile, 'utf8') } } },
      secrets()[1]!,
    ]);
    const json = redactedProto3Json(loadBootstrapText(text).message) as Json;
    const cert = json.static_resources.secrets[0].tls_certificate;
    expect(cert.private_key).toEqual({ inline_string: REDACTED });
    expect(cert.certificate_chain).toEqual({ filename: certs.serverCertFile });
    const Secret = messageType('envoy.extensions.transport_sockets.tls.v3.Secret');
    const withPassword = redactedProto3Json(Secret.fromObject({ name: 's', tls_certificate: { private_key: { filename: '/k' }, password: { inline_bytes: Buffer.from('pw') } } })) as Json;
    expect(withPassword.tls_certificate).toEqual({ private_key: { filename: REDACTED }, password: { inline_bytes: REDACTED } });
    expect(JSON.stringify(json)).not.toContain('PRIVATE KEY');
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
