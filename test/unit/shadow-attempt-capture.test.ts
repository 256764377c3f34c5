import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { Attempt, type AttemptOwner } from '../../src/shadow/attempt';
import { ENVOY_SHADOW, type ShadowOptions } from '../../src/shadow/writer';
import type { Host } from '../../src/upstream/host';

// What a shadow keeps of its response for afterMirror (max_response_body_bytes), seen through the
// undici handler alone: the host and the exchange are stand-ins that only record.

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const host = { outlier: null } as unknown as Host;

function attempt(captureBodyBytes: number): { a: Attempt; ended: number[] } {
  const ended: number[] = [];
  const owner: AttemptOwner = { timeout: () => undefined, attemptEnded: (_a, status) => ended.push(status), bodyConsumed: () => true };
  const o: ShadowOptions = { ...ENVOY_SHADOW, captureBodyBytes };
  return { a: new Attempt(owner, host, o, captureBodyBytes + 64 * 1024), ended };
}

// Proves: a shadow response arriving in 1-byte chunks costs the hook's capture its bytes, not an
// object per chunk. Ten attempts each fed 65,536 one-byte chunks (kept: 64 KiB each) must not
// grow the heap by anything like the ~60 MB a Buffer view per chunk took.
test('afterMirror\'s copy of a response of 1-byte chunks is one buffer', () => {
  const CHUNKS = 65_536;
  // Each chunk its own view, as undici hands them over.
  const body = Buffer.alloc(CHUNKS, 'x');
  const held: Attempt[] = [];
  const before = heapAfterGc();
  for (let n = 0; n < 10; n++) {
    const { a } = attempt(64 * 1024);
    a.onHeaders(200, []);
    for (let i = 0; i < CHUNKS; i++) a.onData(body.subarray(i, i + 1));
    held.push(a);
  }
  const grown = heapAfterGc() - before;
  expect(grown).toBeLessThan(8 * 1024 * 1024);
  const r = held[0]!.result(1);
  expect([r.body.length, r.truncated, r.body.every((b) => b === 0x78)]).toEqual([CHUNKS, false, true]);
});

// Proves: the copy stops at max_response_body_bytes and says it was truncated; a response that
// fits is kept whole.
test('afterMirror\'s copy is cut at its bound', () => {
  const { a, ended } = attempt(10);
  a.onHeaders(200, [Buffer.from('x-a'), Buffer.from('1')]);
  for (const piece of ['hello', ' ', 'world', '!']) a.onData(Buffer.from(piece));
  a.onComplete();
  const r = a.result(1);
  expect([r.body.toString(), r.truncated, r.headers['x-a'], ended]).toEqual(['hello worl', true, '1', [200]]);
  const { a: whole } = attempt(100);
  whole.onHeaders(204, []);
  whole.onData(Buffer.from('abc'));
  whole.onComplete();
  expect([whole.result(1).body.toString(), whole.result(1).truncated]).toEqual(['abc', false]);
});

// Proves: the shadow response afterMirror sees keeps headers named like Object.prototype's members.
test('afterMirror sees headers named __proto__ and constructor', () => {
  const { a } = attempt(10);
  const raw = ['__proto__', 'p', 'constructor', 'c1', 'constructor', 'c2'].map((x) => Buffer.from(x));
  a.onHeaders(200, raw);
  a.onComplete();
  const h = a.result(1).headers;
  expect(Object.entries(h)).toEqual([['__proto__', 'p'], ['constructor', ['c1', 'c2']]]);
  expect(Object.getPrototypeOf(h)).toBe(Object.prototype);
});
