import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type IssuedCertificate, type TestCertificates, issueCertificate, makeTestCertificates } from '../harness/certs';
import { FileWatcher } from '../../src/tls/file-watcher';
import { SecretStore } from '../../src/tls/secret-store';
import { ServerTlsContext } from '../../src/tls/server-context';
import { cert, downstream, runClient, startTlsServer } from './tls-peers';

// A rotated certificate takes effect without a restart: files replaced by rename, Kubernetes'
// `..data` symlink swap, the polling fallback, and SDS pushes. Each waits a bounded time for the
// next handshake to present the new certificate.

let certs: TestCertificates;
let first: IssuedCertificate;
let second: IssuedCertificate;
let dir: string;

beforeAll(() => {
  certs = makeTestCertificates();
  first = issueCertificate(certs, 'rot-1', { san: 'DNS:localhost' });
  second = issueCertificate(certs, 'rot-2', { san: 'DNS:localhost' });
});
afterAll(() => certs.remove());
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'sidemirror-rotation-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const serial = (c: IssuedCertificate) => new X509Certificate(c.cert).serialNumber;

/** Serves `ctx` and returns a function that reports the serial the next handshake presents. */
async function serve(ctx: ServerTlsContext) {
  const server = await startTlsServer(ctx);
  const presented = async () => (await runClient({ host: '127.0.0.1', port: server.port, rejectUnauthorized: false })).peerSerial;
  return { presented, close: () => server.close() };
}

/** Polls `probe` until it returns `expected`, for at most `ms`. */
async function eventually<T>(probe: () => Promise<T>, expected: T, ms = 3000): Promise<T> {
  const deadline = Date.now() + ms;
  let last = await probe();
  while (last !== expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}

function replaceByRename(from: IssuedCertificate, crt: string, key: string): void {
  copyFileSync(from.keyFile, `${key}.tmp`);
  copyFileSync(from.certFile, `${crt}.tmp`);
  renameSync(`${key}.tmp`, key);
  renameSync(`${crt}.tmp`, crt);
}

test('files replaced by rename: the next handshakes present the new certificate', async () => {
  const crt = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  copyFileSync(first.certFile, crt);
  copyFileSync(first.keyFile, key);
  const store = new SecretStore({ files: { debounceMs: 20 } });
  const ctx = new ServerTlsContext(downstream({ tlsCertificates: [cert(crt, key)] }), { store });
  const updates: number[] = [];
  ctx.onUpdate(() => updates.push(Date.now()));
  const s = await serve(ctx);
  try {
    expect(await s.presented()).toBe(serial(first));
    replaceByRename(second, crt, key);
    expect(await eventually(s.presented, serial(second))).toBe(serial(second));
    expect(updates).toHaveLength(1);
  } finally {
    await s.close();
    ctx.close();
    store.close();
  }
});

test("Kubernetes' ..data symlink swap is seen", async () => {
  const mount = (name: string, from: IssuedCertificate) => {
    mkdirSync(path.join(dir, name));
    copyFileSync(from.certFile, path.join(dir, name, 'tls.crt'));
    copyFileSync(from.keyFile, path.join(dir, name, 'tls.key'));
  };
  mount('..2026_01', first);
  symlinkSync('..2026_01', path.join(dir, '..data'));
  symlinkSync('..data/tls.crt', path.join(dir, 'tls.crt'));
  symlinkSync('..data/tls.key', path.join(dir, 'tls.key'));
  const store = new SecretStore({ files: { debounceMs: 20 } });
  const ctx = new ServerTlsContext(downstream({ tlsCertificates: [cert(path.join(dir, 'tls.crt'), path.join(dir, 'tls.key'))] }), { store });
  const s = await serve(ctx);
  try {
    expect(await s.presented()).toBe(serial(first));
    mount('..2026_02', second);
    symlinkSync('..2026_02', path.join(dir, '..data_tmp'));
    renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    rmSync(path.join(dir, '..2026_01'), { recursive: true });
    expect(await eventually(s.presented, serial(second))).toBe(serial(second));
  } finally {
    await s.close();
    ctx.close();
    store.close();
  }
});

test('over the bound of directory watchers the directory is polled, and rotation is still seen', async () => {
  const crt = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  copyFileSync(first.certFile, crt);
  copyFileSync(first.keyFile, key);
  const files = new FileWatcher({ maxDirectoryWatchers: 0, pollIntervalMs: 50 });
  const store = new SecretStore({ files });
  const ctx = new ServerTlsContext(downstream({ tlsCertificates: [cert(crt, key)] }), { store });
  expect(files.counts).toEqual({ watched: 0, polled: 1 });
  const s = await serve(ctx);
  try {
    replaceByRename(second, crt, key);
    expect(await eventually(s.presented, serial(second))).toBe(serial(second));
  } finally {
    await s.close();
    ctx.close();
    expect(files.counts).toEqual({ watched: 0, polled: 0 });
    store.close();
  }
});

test('a broken rotation keeps the last good certificate until a good one follows', async () => {
  const crt = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  copyFileSync(first.certFile, crt);
  copyFileSync(first.keyFile, key);
  const store = new SecretStore({ files: { debounceMs: 20 } });
  const ctx = new ServerTlsContext(downstream({ tlsCertificates: [cert(crt, key)] }), { store });
  const s = await serve(ctx);
  try {
    writeFileSync(`${crt}.tmp`, second.cert);
    renameSync(`${crt}.tmp`, crt);
    // The key still belongs to the first certificate.
    const deadline = Date.now() + 3000;
    while (ctx.error === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(ctx.error).toMatch(/key values mismatch/);
    expect(await s.presented()).toBe(serial(first));
    copyFileSync(second.keyFile, `${key}.tmp`);
    renameSync(`${key}.tmp`, key);
    expect(await eventually(s.presented, serial(second))).toBe(serial(second));
    expect(ctx.error).toBeNull();
  } finally {
    await s.close();
    ctx.close();
    store.close();
  }
});

test('an SDS push of a new certificate takes effect at the next handshake', async () => {
  const store = new SecretStore();
  const ref = { name: 'default', source: 'ads' as const };
  store.setDynamic([{ name: 'default', kind: 'tls_certificate', tlsCertificate: cert(first.certFile, first.keyFile) }]);
  const ctx = new ServerTlsContext(downstream({ tlsCertificateSdsSecretConfigs: [ref] }), { store });
  const s = await serve(ctx);
  try {
    expect(await s.presented()).toBe(serial(first));
    store.setDynamic([{ name: 'default', kind: 'tls_certificate', tlsCertificate: cert(second.certFile, second.keyFile) }]);
    expect(await s.presented()).toBe(serial(second));
  } finally {
    await s.close();
    ctx.close();
    store.close();
  }
});
