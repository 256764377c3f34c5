import * as path from 'node:path';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { ensureCliBuilt, runCli } from '../harness/cli';

// Every flag is checked before anything starts: one line saying what is wrong, exit code 2, no
// stack trace, nothing listening.

const ROOT = path.resolve(__dirname, '..', '..');
const CONFIG = path.join(ROOT, 'examples', 'route-mirror', 'envoy.yaml');

beforeAll(ensureCliBuilt);

test.each([
  [['proxy', '--log-level', 'bogus'], '--log-level must be one of fatal, error, warn, info, debug, trace, silent; got "bogus"'],
  [['proxy', '--drain-time-s', 'abc'], '--drain-time-s must be a number of seconds (0 or more); got "abc"'],
  [['proxy', '--drain-time-s=-1'], '--drain-time-s must be a number of seconds (0 or more); got "-1"'],
  [['proxy', '--concurrency', 'two'], '--concurrency must be a positive integer'],
  [['proxy', '--shadow-max-inflight', '0'], '--shadow-max-inflight must be a positive integer'],
  [['proxy', '--hooks-dir', '/nonexistent-dir'], '--hooks-dir /nonexistent-dir: no such directory'],
  [['validate', '--hooks-dir', CONFIG], `--hooks-dir ${CONFIG}: not a directory`],
  [['control-plane', '--listen', 'localhost'], '--listen: expected HOST:PORT (e.g. 127.0.0.1:18000), got "localhost"'],
  [['control-plane', '--admin', '127.0.0.1:99999'], '--admin: expected HOST:PORT (e.g. 127.0.0.1:18000), got "127.0.0.1:99999"'],
])('%j → one line, exit 2', async (args, message) => {
  const r = await runCli([...args, '-c', CONFIG]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`${message}\n`);
});

describe('control-plane TLS flags', () => {
  let certs: TestCertificates;
  let other: IssuedCertificate;
  // Flags are checked before the resources file is read: it need not exist.
  const RESOURCES = '/nonexistent/resources.yaml';
  beforeAll(() => {
    certs = makeTestCertificates();
    other = issueCertificate(certs, 'other');
  });
  afterAll(() => certs.remove());

  test('each wrong TLS flag → one line, exit 2', async () => {
    const cases: Array<[string[], string]> = [
      [['--tls-cert', certs.serverCertFile], '--tls-cert needs --tls-key'],
      [['--tls-key', certs.serverKeyFile], '--tls-key needs --tls-cert'],
      [['--client-ca', certs.caFile], '--client-ca needs --tls-cert and --tls-key'],
      [['--tls-cert', '/nonexistent.crt', '--tls-key', certs.serverKeyFile], '--tls-cert /nonexistent.crt: ENOENT'],
      [['--tls-cert', certs.serverKeyFile, '--tls-key', certs.serverKeyFile], `--tls-cert ${certs.serverKeyFile}: holds no PEM certificate`],
      [['--tls-cert', certs.serverCertFile, '--tls-key', certs.serverCertFile], `--tls-key ${certs.serverCertFile}: holds no unencrypted PEM private key (an encrypted one needs password)`],
      [['--tls-cert', certs.serverCertFile, '--tls-key', other.keyFile], `--tls-key ${other.keyFile} is not the key of the certificate in --tls-cert ${certs.serverCertFile}`],
      [['--tls-cert', certs.serverCertFile, '--tls-key', certs.serverKeyFile, '--client-ca', certs.serverKeyFile], `--client-ca ${certs.serverKeyFile}: holds no PEM certificate`],
      [['--tls-cert', certs.serverCertFile, '--tls-key', certs.serverKeyFile, '--client-ca', '/nonexistent-ca.crt'], '--client-ca /nonexistent-ca.crt: ENOENT'],
    ];
    for (const [flags, message] of cases) {
      const r = await runCli(['control-plane', '-c', RESOURCES, '--listen', '127.0.0.1:0', ...flags]);
      expect({ flags, code: r.code, stderr: r.stderr }).toEqual({ flags, code: 2, stderr: `${message}\n` });
    }
  });
});
