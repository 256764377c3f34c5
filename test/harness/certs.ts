// Certificates made at test time with openssl: a CA, a server certificate it signs (for
// `localhost` and 127.0.0.1) and a client certificate it signs, in a temp dir removed by handle.
// issueCertificate() adds more to the same dir: other SANs, the other CA, expired ones.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export interface TestCertificates {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** A second CA that signed none of these: verifying the server against it must fail. */
  readonly otherCaFile: string;
  /** PEM text of caFile. */
  readonly ca: string;
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
}

function makeCa(dir: string, name: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${name}`], dir);
}

function signed(dir: string, name: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
}

export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sidemirror-certs-'));
  try {
    makeCa(dir, 'ca');
    makeCa(dir, 'other-ca');
    signed(dir, 'server', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    signed(dir, 'client', 'extendedKeyUsage=clientAuth\n');
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`openssl could not make test certificates: ${(err as Error).message}`);
  }
  const f = (name: string): string => path.join(dir, name);
  return {
    dir,
    caFile: f('ca.crt'),
    serverCertFile: f('server.crt'),
    serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'),
    clientKeyFile: f('client.key'),
    otherCaFile: f('other-ca.crt'),
    ca: readFileSync(f('ca.crt'), 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface IssuedCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM text of certFile. */
  readonly cert: string;
}

export interface IssueOptions {
  /** openssl subjectAltName value, e.g. `DNS:a.example.com,URI:spiffe://td/ns/x`; none when absent. */
  readonly san?: string;
  /**
   * SANs one per entry, written in an openssl section so that a value may hold a comma:
   * [['DNS', 'a,b.test'], ['URI', 'spiffe://td/x']]. Used instead of `san`.
   */
  readonly sanEntries?: readonly (readonly [string, string])[];
  /** Which CA signs it: `ca` (the default) or `other-ca`. */
  readonly issuer?: 'ca' | 'other-ca';
  /** Valid for one day in 2020 only. */
  readonly expired?: boolean;
}

/**
 * Issues `<name>.crt`/`<name>.key` (P-256, fast to make) in `certs.dir`, signed by one of its two
 * CAs, usable for both server and client authentication.
 */
export function issueCertificate(certs: TestCertificates, name: string, options: IssueOptions = {}): IssuedCertificate {
  const dir = certs.dir;
  const issuer = options.issuer ?? 'ca';
  const db = path.join(dir, `${issuer}-db`);
  mkdirSync(db, { recursive: true });
  writeFileSync(path.join(db, 'index.txt'), '', { flag: 'a' });
  writeFileSync(path.join(db, 'serial'), `${randomBytes(8).toString('hex')}\n`);
  writeFileSync(
    path.join(dir, `${issuer}-ca.cnf`),
    [
      '[ca]', 'default_ca = d', '[d]', `database = ${db}/index.txt`, `new_certs_dir = ${db}`, `serial = ${db}/serial`,
      'default_md = sha256', 'policy = p', 'unique_subject = no', 'copy_extensions = none', '[p]', 'commonName = supplied', '',
    ].join('\n'),
  );
  const entries = options.sanEntries ?? [];
  const sanLines = entries.length > 0 ? ['subjectAltName = @alt', '[alt]', ...entries.map(([t, v], i) => `${t}.${i + 1} = ${v}`)] : options.san ? [`subjectAltName = ${options.san}`] : [];
  const ext = ['[x]', 'extendedKeyUsage = serverAuth,clientAuth', ...sanLines, ''].join('\n');
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
  const dates = options.expired ? ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'] : ['-days', '2'];
  openssl(
    ['ca', '-batch', '-notext', '-config', `${issuer}-ca.cnf`, '-cert', `${issuer}.crt`, '-keyfile', `${issuer}.key`, '-in', `${name}.csr`, '-out', `${name}.crt`, '-extfile', `${name}.ext`, '-extensions', 'x', ...dates],
    dir,
  );
  const certFile = path.join(dir, `${name}.crt`);
  return { certFile, keyFile: path.join(dir, `${name}.key`), cert: readFileSync(certFile, 'utf8') };
}
