import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromProto3JSON } from 'proto3-json-serializer';
import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import type { RedisConnectionModel } from '../../src/config/model';
import { messageType } from '../../src/config/proto';
import { LISTENER_TYPE, decodeResource } from '../../src/config/resources';
import { cluster } from '../harness/bootstrap';
import { type TestCertificates, makeTestCertificates } from '../harness/certs';
import { type Json, extBootstrap, extListener, extRoute } from '../harness/mirror-ext';
import { hcmOf } from '../harness/model';

// Decoding a RedisConnection's secrets: a password inline, by file or by environment variable (a
// oneof), an ACL username, TLS files; every problem refused with its path, and nothing read where
// the config is only checked (the control plane).

const FILTER = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';
const MAIN = `${FILTER}.redis["main"]`;
const SECRET = 'Zq7-decode-SECRET-3a9d';

let dir: string;
let certs: TestCertificates;

beforeAll(() => {
  certs = makeTestCertificates();
});
afterAll(() => certs.remove());
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-redis-config-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A bootstrap whose mirror filter has one Redis connection, `main`, with `conn`'s fields. */
function withConnection(conn: Json): string {
  return extBootstrap({
    routes: [extRoute('/', 'primary', [{ name: 'p', cluster: 'mirror', limit: { count: 1, time_window: '1s', policy: 'REDIS', redis: 'main' } }])],
    clusters: [cluster('primary', [8081]), cluster('mirror', [8082])],
    filter: { redis: { main: { server: { host: '127.0.0.1', port: 6379 }, ...conn } } },
  });
}

function loaded(conn: Json): RedisConnectionModel {
  const l = loadBootstrapText(withConnection(conn)).bootstrap.listeners[0]!;
  return hcmOf(l.filterChains[0]).mirrorFilter!.config.redis.get('main')!;
}

function issuesOf(conn: Json): readonly ConfigIssue[] {
  try {
    loadBootstrapText(withConnection(conn));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

function file(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

test('password, password_file (one trailing newline dropped) and password_env give the same password', () => {
  expect(loaded({ password: SECRET })).toMatchObject({ password: SECRET, username: null, tls: null });
  expect(loaded({ password_file: file('pw', `${SECRET}\r\n`) }).password).toBe(SECRET);
  expect(loaded({ password_file: file('pw2', `${SECRET}\n\n`) }).password).toBe(`${SECRET}\n`);
  process.env.SIDEMIRROR_DECODE_TEST_PW = SECRET;
  try {
    expect(loaded({ password_env: 'SIDEMIRROR_DECODE_TEST_PW', username: 'budget' })).toMatchObject({ password: SECRET, username: 'budget' });
  } finally {
    delete process.env.SIDEMIRROR_DECODE_TEST_PW;
  }
});

test('the three are a oneof: two of them is refused by path', () => {
  const issues = issuesOf({ password: SECRET, password_env: 'X' });
  expect(issues).toHaveLength(1);
  expect(issues[0]!.path).toMatch(/^static_resources\.listeners\[0\].*redis\["main"\]/);
  expect(issues[0]!.message).toMatch(/password_specifier|oneof|only one/i);
  expect(JSON.stringify(issues)).not.toContain(SECRET);
});

test.each([
  ['a missing file', () => ({ password_file: path.join(dir, 'none') }), 'password_file', /cannot read ".*none": ENOENT/],
  ['an empty file', () => ({ password_file: file('empty', '\n') }), 'password_file', /is empty/],
  ['a directory', () => ({ password_file: dir }), 'password_file', /not a regular file/],
  ['an unset variable', () => ({ password_env: 'SIDEMIRROR_SURELY_UNSET_VARIABLE' }), 'password_env', /SIDEMIRROR_SURELY_UNSET_VARIABLE is not set/],
  ['a bad variable name', () => ({ password_env: 'A-B' }), 'password_env', /not an environment variable name/],
  ['a username without a password', () => ({ username: 'u' }), 'username', /needs a password/],
  ['a certificate without its key', () => ({ tls: { cert_file: certs.clientCertFile } }), 'tls', /cert_file and key_file go together/],
  ['a CA file that is not PEM', () => ({ tls: { ca_file: file('ca.pem', 'not a certificate') } }), 'tls.ca_file', /holds no PEM certificate/],
  ['a key that is not the certificate\'s', () => ({ tls: { cert_file: certs.clientCertFile, key_file: certs.serverKeyFile } }), 'tls.key_file', /is not the key/],
  ['a key file that is a certificate', () => ({ tls: { cert_file: certs.clientCertFile, key_file: certs.clientCertFile } }), 'tls.key_file', /holds no unencrypted PEM private key/],
  ['a bad server_name', () => ({ tls: { server_name: 'a b' } }), 'tls.server_name', /not a host name/],
])('%s is refused at its path', (_what, conn, field, message) => {
  const issues = issuesOf(conn());
  expect(issues).toEqual([{ path: `${MAIN}.${field}`, message: expect.stringMatching(message) }]);
});

test('a file that holds the password is never quoted in an error', () => {
  const f = file('cert-not-key', SECRET);
  const issues = issuesOf({ tls: { cert_file: certs.clientCertFile, key_file: f } });
  expect(issues).toHaveLength(1);
  expect(JSON.stringify(issues)).not.toContain(SECRET);
});

test('TLS: the PEM texts are read; server_name kept', () => {
  const conn = loaded({ tls: { ca_file: certs.caFile, cert_file: certs.clientCertFile, key_file: certs.clientKeyFile, server_name: 'localhost' } });
  expect(conn.tls).toEqual({
    ca: fs.readFileSync(certs.caFile, 'utf8'),
    cert: fs.readFileSync(certs.clientCertFile, 'utf8'),
    key: fs.readFileSync(certs.clientKeyFile, 'utf8'),
    serverName: 'localhost',
  });
  expect(loaded({ tls: {} }).tls).toEqual({ ca: null, cert: null, key: null, serverName: null });
});

test('the control plane (no local reads) checks the shape and reads nothing', () => {
  const type = messageType('envoy.config.listener.v3.Listener');
  const listenerJson = extListener([extRoute('/', 'primary', [])], {
    redis: {
      f: { server: { host: 'h' }, password_file: path.join(dir, 'only-on-the-sidecar') },
      e: { server: { host: 'h' }, password_env: 'SIDEMIRROR_SURELY_UNSET_VARIABLE', username: 'u' },
      t: { server: { host: 'h' }, tls: { ca_file: path.join(dir, 'ca-only-on-the-sidecar') } },
    },
  });
  const message = fromProto3JSON(type, { ...listenerJson, name: 'l' } as never) as never;
  const decoded = decodeResource(LISTENER_TYPE, message);
  expect(decoded.ok).toBe(true);
  const redis = decoded.ok ? hcmOf(decoded.value.filterChains[0]).mirrorFilter!.config.redis : new Map();
  expect(redis.get('f')).toMatchObject({ password: null });
  expect(redis.get('e')).toMatchObject({ password: null, username: 'u' });
  expect(redis.get('t')).toMatchObject({ tls: { ca: null } });
  // Shape is still checked.
  const bad = fromProto3JSON(type, { ...extListener([extRoute('/', 'primary', [])], { redis: { b: { server: { host: 'h' }, password_env: 'A-B' } } }), name: 'l' } as never) as never;
  const refused = decodeResource(LISTENER_TYPE, bad);
  expect(refused.ok ? [] : refused.issues.map((i) => i.message)).toEqual([expect.stringMatching(/not an environment variable name/)]);
});
