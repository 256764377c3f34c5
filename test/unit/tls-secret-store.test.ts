import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Secret } from '../../src/config/transport-model';
import { MAX_LOCAL_FILE_BYTES } from '../../src/config/local-reads';
import { INLINE_PATH, dataSourcePath, readDataSource } from '../../src/tls/data-source';
import { FileWatcher } from '../../src/tls/file-watcher';
import { mergeValidation } from '../../src/tls/material';
import { SecretStore } from '../../src/tls/secret-store';

// DataSource reads, the secret store (static and ADS namespaces, readiness, notifications) and
// the file watcher's bounds.

let dir: string;
beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'sidemirror-secrets-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('readDataSource', () => {
  test('inline bytes, an environment variable, a file', () => {
    expect(readDataSource({ kind: 'inline', bytes: Buffer.from('pem') }).toString()).toBe('pem');
    expect(readDataSource({ kind: 'environment_variable', name: 'CERT' }, { CERT: 'from-env' }).toString()).toBe('from-env');
    const f = path.join(dir, 'a.pem');
    writeFileSync(f, 'from-file');
    expect(readDataSource({ kind: 'filename', path: f }).toString()).toBe('from-file');
    expect(dataSourcePath({ kind: 'filename', path: f })).toBe(f);
    expect(dataSourcePath({ kind: 'inline', bytes: Buffer.alloc(0) })).toBe(INLINE_PATH);
  });

  test('refused: a missing variable, a missing file, a directory, a FIFO (without blocking), an oversized file', () => {
    expect(() => readDataSource({ kind: 'environment_variable', name: 'NOPE' }, {})).toThrow(/NOPE is not set/);
    expect(() => readDataSource({ kind: 'filename', path: path.join(dir, 'missing') })).toThrow(/ENOENT/);
    expect(() => readDataSource({ kind: 'filename', path: dir })).toThrow(/not a regular file/);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readDataSource({ kind: 'filename', path: fifo })).toThrow(/not a regular file/);
    const big = path.join(dir, 'big');
    writeFileSync(big, Buffer.alloc(MAX_LOCAL_FILE_BYTES + 1));
    expect(() => readDataSource({ kind: 'filename', path: big })).toThrow(/larger than/);
  });
});

const certSecret = (name: string, pem = 'x'): Secret => ({
  name,
  kind: 'tls_certificate',
  tlsCertificate: { certificateChain: { kind: 'inline', bytes: Buffer.from(pem) }, privateKey: { kind: 'inline', bytes: Buffer.from('k') }, password: null },
});

describe('SecretStore', () => {
  test('static and ADS secrets are separate namespaces; ADS ones are ready once they arrive', () => {
    const store = new SecretStore();
    store.setStatic([certSecret('default', 'static')]);
    expect(store.ready({ name: 'default', source: 'static' })).toBe(true);
    expect(store.ready({ name: 'default', source: 'ads' })).toBe(false);
    expect(store.get({ name: 'default', source: 'ads' })).toBeNull();
    store.setDynamic([certSecret('default', 'dynamic')]);
    const got = store.get({ name: 'default', source: 'ads' });
    expect(got?.kind === 'tls_certificate' && got.tlsCertificate.certificateChain).toEqual({ kind: 'inline', bytes: Buffer.from('dynamic') });
    store.close();
  });

  test('subscribers hear about their secrets only, once per update, and not for an identical push', () => {
    const store = new SecretStore();
    const heard: string[] = [];
    const stop = store.subscribe([{ name: 'a', source: 'ads' }, { name: 'b', source: 'ads' }], () => heard.push('ab'));
    store.subscribe([{ name: 'c', source: 'ads' }], () => heard.push('c'));
    store.setDynamic([certSecret('a'), certSecret('b')]);
    expect(heard).toEqual(['ab']);
    store.setDynamic([certSecret('a'), certSecret('b')]);
    expect(heard).toEqual(['ab']);
    store.setDynamic([certSecret('a', 'rotated')]);
    expect(heard).toEqual(['ab', 'ab']);
    // A push leaving b out keeps it (SDS need not repeat unchanged secrets).
    expect(store.ready({ name: 'b', source: 'ads' })).toBe(true);
    store.removeDynamic(['b']);
    expect(heard).toEqual(['ab', 'ab', 'ab']);
    expect(store.ready({ name: 'b', source: 'ads' })).toBe(false);
    stop();
    store.setDynamic([certSecret('a', 'again'), certSecret('c')]);
    expect(heard).toEqual(['ab', 'ab', 'ab', 'c']);
    store.close();
  });

  test('setStatic replaces the whole static set, notifying removed ones too', () => {
    const store = new SecretStore();
    const heard: string[] = [];
    store.setStatic([certSecret('a'), certSecret('b')]);
    store.subscribe([{ name: 'b', source: 'static' }], () => heard.push('b'));
    store.setStatic([certSecret('a')]);
    expect(heard).toEqual(['b']);
    expect(store.ready({ name: 'b', source: 'static' })).toBe(false);
    store.close();
  });

  test('a throwing subscriber does not keep others from hearing', () => {
    const store = new SecretStore();
    const heard: string[] = [];
    store.subscribe([{ name: 'a', source: 'ads' }], () => {
      throw new Error('boom');
    });
    store.subscribe([{ name: 'a', source: 'ads' }], () => heard.push('second'));
    store.setDynamic([certSecret('a')]);
    expect(heard).toEqual(['second']);
    store.close();
  });
});

describe('combined validation context merge', () => {
  test('the SDS part overrides trusted_ca, SAN matchers concatenate, allow_expired ORs', () => {
    const san = (v: string) => ({ sanType: 'URI' as const, matcher: { kind: 'exact' as const, value: v, ignoreCase: false } });
    const base = { trustedCa: { kind: 'filename' as const, path: '/base' }, matchTypedSubjectAltNames: [san('a')], allowExpiredCertificate: true };
    expect(mergeValidation(base, { trustedCa: { kind: 'filename', path: '/sds' }, matchTypedSubjectAltNames: [san('b')], allowExpiredCertificate: false })).toEqual({
      trustedCa: { kind: 'filename', path: '/sds' },
      matchTypedSubjectAltNames: [san('a'), san('b')],
      allowExpiredCertificate: true,
    });
    expect(mergeValidation(base, { trustedCa: null, matchTypedSubjectAltNames: [], allowExpiredCertificate: false }).trustedCa).toEqual({ kind: 'filename', path: '/base' });
  });
});

describe('FileWatcher', () => {
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!cond() && Date.now() < deadline) await wait(10);
    return cond();
  }

  test('a burst of writes is one notification; an untouched file in the directory is none', async () => {
    const w = new FileWatcher({ debounceMs: 50 });
    const a = path.join(dir, 'a');
    writeFileSync(a, '1');
    writeFileSync(path.join(dir, 'other'), '1');
    let calls = 0;
    w.watch([a], () => calls++);
    for (let i = 0; i < 5; i++) {
      writeFileSync(`${a}.tmp`, String(i));
      renameSync(`${a}.tmp`, a);
    }
    expect(await until(() => calls > 0)).toBe(true);
    await wait(150);
    expect(calls).toBe(1);
    writeFileSync(path.join(dir, 'other'), '2');
    await wait(150);
    expect(calls).toBe(1);
    w.close();
  });

  test('directories share one watcher; past the bound they are polled; unwatching frees them', () => {
    const w = new FileWatcher({ maxDirectoryWatchers: 2, pollIntervalMs: 1000 });
    const dirs = [0, 1, 2, 3].map((i) => mkdtempSync(path.join(dir, `d${i}-`)));
    const stops = dirs.map((d) => w.watch([path.join(d, 'a'), path.join(d, 'b')], () => {}));
    const again = w.watch([path.join(dirs[0]!, 'c')], () => {});
    expect(w.counts).toEqual({ watched: 2, polled: 2 });
    stops.forEach((s) => s());
    expect(w.counts).toEqual({ watched: 1, polled: 0 });
    again();
    expect(w.counts).toEqual({ watched: 0, polled: 0 });
    w.close();
  });

  test('a file that appears later is noticed; a missing directory falls back to polling', async () => {
    const w = new FileWatcher({ debounceMs: 20, pollIntervalMs: 30 });
    let calls = 0;
    w.watch([path.join(dir, 'late.pem')], () => calls++);
    writeFileSync(path.join(dir, 'late.pem'), 'x');
    expect(await until(() => calls === 1)).toBe(true);
    const gone = path.join(dir, 'not-yet');
    let later = 0;
    w.watch([path.join(gone, 'x.pem')], () => later++);
    expect(w.counts.polled).toBe(1);
    execFileSync('mkdir', [gone]);
    writeFileSync(path.join(gone, 'x.pem'), 'x');
    expect(await until(() => later === 1)).toBe(true);
    w.close();
  });
});
