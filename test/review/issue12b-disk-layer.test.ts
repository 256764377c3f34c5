import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readDiskLayer } from '../../src/runtime/disk-layer';

// Issue 12 review (second pass), a runtime disk layer a peer can grow: a symlink loop, a
// 100 MB file, 20,000 files. Each read ends, bounded, with the trouble named.

jest.setTimeout(30_000);

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rt12b-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a symlink loop: the read ends, the loop is reported as too deep, the real key is kept', () => {
  fs.mkdirSync(path.join(dir, 'a'));
  fs.writeFileSync(path.join(dir, 'a', 'k'), 'v\n');
  fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'a', 'loop'));
  const r = readDiskLayer(dir);
  expect(r.values.get('a.k')).toBe('v');
  expect(r.errors.some((e) => e.includes('deeper than'))).toBe(true);
  expect(r.values.size).toBeLessThanOrEqual(17);
});

test('a 100 MB file: skipped by its size, nothing of it read', () => {
  const big = path.join(dir, 'big');
  fs.writeFileSync(big, '');
  fs.truncateSync(big, 100 << 20);
  fs.writeFileSync(path.join(dir, 'small'), '1');
  const heap = process.memoryUsage().heapUsed;
  const r = readDiskLayer(dir);
  expect(r.values.has('big')).toBe(false);
  expect(r.values.get('small')).toBe('1');
  expect(r.errors.some((e) => e.startsWith(big) && e.includes('over the'))).toBe(true);
  expect(process.memoryUsage().heapUsed - heap).toBeLessThan(50 << 20);
});

test('20,000 files: the first 10,000 are kept, the rest reported once', () => {
  for (let i = 0; i < 20_000; i++) fs.writeFileSync(path.join(dir, `k${String(i).padStart(5, '0')}`), String(i));
  const r = readDiskLayer(dir);
  expect(r.values.size).toBe(10_000);
  expect(r.errors.filter((e) => e.includes('more than 10000 files'))).toHaveLength(1);
});
