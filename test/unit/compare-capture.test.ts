import { createHash, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { BoundedCopy } from '../../src/compare/bounded-copy';
import { type CaptureEnd, MAX_BODY_CHUNKS, ResponseCapture } from '../../src/compare/capture';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const limits = { maxCaptureBytes: 1024, maxBytes: 1024 * 1024 };

/** Feeds `body` to a fresh capture in `pieces` chunks, with the given content-encoding. */
async function capture(body: Buffer, encoding: string | null, l = limits, pieces = 7): Promise<CaptureEnd> {
  const c = new ResponseCapture(l);
  c.head(200, encoding ? ['Content-Type', 'application/json', 'Content-Encoding', encoding] : ['Content-Type', 'application/json']);
  const step = Math.max(1, Math.ceil(body.length / pieces));
  for (let i = 0; i < body.length; i += step) if (!c.data(body.subarray(i, i + step))) break;
  c.end();
  return c.done;
}

function ok(end: CaptureEnd): Extract<CaptureEnd, { kind: 'ok' }>['response'] {
  if (end.kind !== 'ok') throw new Error(`capture ended ${end.kind}`);
  return end.response;
}

const json = Buffer.from(JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}` })) }));

// Proves: headers are kept lower-cased with every value; an identity body is hashed and kept whole.
test('an identity body is kept whole and hashed', async () => {
  const c = new ResponseCapture(limits);
  c.head(201, ['Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'X-Thing', 'v']);
  c.data(json);
  c.end();
  const r = ok(await c.done);
  expect(r.status).toBe(201);
  expect(r.headers.get('set-cookie')).toEqual(['a=1', 'b=2']);
  expect(r.headers.get('x-thing')).toEqual(['v']);
  expect(r.body.equals(json)).toBe(true);
  expect(r.bodyComplete).toBe(true);
  expect(r.bodyHash).toBe(sha(json));
  expect(r.bodyBytes).toBe(json.length);
  expect(r.decodedFrom).toBeNull();
});

// Proves: gzip, br and deflate (zlib-wrapped and raw) bodies are decoded before hashing, so two
// encodings of one body have one hash; the kept copy is the decoded bytes.
test.each([
  ['gzip', zlib.gzipSync(json)],
  ['x-gzip', zlib.gzipSync(json, { level: 1 })],
  ['br', zlib.brotliCompressSync(json)],
  ['deflate', zlib.deflateSync(json)],
  ['deflate', zlib.deflateRawSync(json)],
])('%s bodies are decoded first', async (encoding, encoded) => {
  const r = ok(await capture(encoded, encoding, { maxCaptureBytes: 64 * 1024, maxBytes: 1024 * 1024 }));
  expect(r.decodedFrom).toBe(encoding);
  expect(r.bodyHash).toBe(sha(json));
  expect(r.body.equals(json)).toBe(true);
  expect(r.bodyComplete).toBe(true);
});

// Proves: past the capture bound the copy is cut and says so, while the hash still covers every byte.
test('the kept copy is bounded, the hash is not', async () => {
  const big = randomBytes(50_000);
  const r = ok(await capture(big, null, { maxCaptureBytes: 1000, maxBytes: 1024 * 1024 }, 13));
  expect(r.body.length).toBe(1000);
  expect(r.body.equals(big.subarray(0, 1000))).toBe(true);
  expect(r.bodyComplete).toBe(false);
  expect(r.bodyHash).toBe(sha(big));
  expect(r.bodyBytes).toBe(50_000);
});

// Proves: a body past max_bytes, raw or decoded (a decompression bomb), ends too_large, and data()
// then says it wants no more.
test('too large raw or decoded', async () => {
  expect((await capture(randomBytes(5000), null, { maxCaptureBytes: 100, maxBytes: 4000 })).kind).toBe('too_large');
  const bomb = zlib.gzipSync(Buffer.alloc(10 * 1024 * 1024));
  expect(bomb.length).toBeLessThan(20_000);
  expect((await capture(bomb, 'gzip', { maxCaptureBytes: 100, maxBytes: 1024 * 1024 })).kind).toBe('too_large');
  const c = new ResponseCapture({ maxCaptureBytes: 10, maxBytes: 10 });
  c.head(200, []);
  expect(c.data(Buffer.alloc(11))).toBe(false);
});

// Proves: a body that says gzip but is not is still compared, by its raw bytes, as not decodable.
test('a body that does not decode falls back to its raw hash', async () => {
  const junk = Buffer.from('this is not gzip at all, not even close');
  const r = ok(await capture(junk, 'gzip'));
  expect(r.decodeError).toBe(true);
  expect(r.bodyComplete).toBe(false);
  expect(r.bodyHash).toBe(sha(junk));
});

// Proves: a retried shadow starts its capture over; fail() ends it with its kind, once.
test('restart forgets the first attempt; fail ends once', async () => {
  const c = new ResponseCapture(limits);
  c.head(503, ['x-a', '1']);
  c.data(Buffer.from('first'));
  c.restart();
  c.head(200, ['x-b', '2']);
  c.data(Buffer.from('second'));
  c.end();
  const r = ok(await c.done);
  expect(r.status).toBe(200);
  expect([...r.headers.keys()]).toEqual(['x-b']);
  expect(r.body.toString()).toBe('second');
  const f = new ResponseCapture(limits);
  f.fail('timeout');
  f.fail('error');
  f.end();
  expect((await f.done).kind).toBe('timeout');
});

// Proves: a body arriving in 1-byte chunks is kept as the same bytes as one arriving whole, cut at
// the same place (the copy is one buffer, not a list of chunks).
test('a body of 1-byte chunks is kept as the same bytes, cut at the bound', async () => {
  const body = randomBytes(3000);
  const whole = ok(await capture(body, null, { maxCaptureBytes: 2500, maxBytes: 1024 * 1024 }, 1));
  const bytewise = ok(await capture(body, null, { maxCaptureBytes: 2500, maxBytes: 1024 * 1024 }, 3000));
  expect(bytewise.body.equals(body.subarray(0, 2500))).toBe(true);
  expect(bytewise.body.equals(whole.body)).toBe(true);
  expect([bytewise.bodyComplete, bytewise.bodyHash, bytewise.bodyBytes]).toEqual([false, sha(body), 3000]);
  const fits = ok(await capture(body, null, { maxCaptureBytes: 3000, maxBytes: 1024 * 1024 }, 3000));
  expect([fits.bodyComplete, fits.body.equals(body)]).toEqual([true, true]);
});

// Proves: a response of more body chunks than MAX_BODY_CHUNKS ends too_large at the chunk past
// the bound (data() says it wants no more), however few bytes they carry; one at the bound is compared.
test('past MAX_BODY_CHUNKS chunks a response is too_large', async () => {
  const at = new ResponseCapture(limits);
  at.head(200, []);
  let taken = 0;
  for (let i = 0; i < MAX_BODY_CHUNKS; i++) if (at.data(Buffer.from('a'))) taken++;
  expect(taken).toBe(MAX_BODY_CHUNKS);
  at.end();
  expect(ok(await at.done).bodyBytes).toBe(MAX_BODY_CHUNKS);
  const past = new ResponseCapture(limits);
  past.head(200, []);
  let accepted = 0;
  while (accepted <= MAX_BODY_CHUNKS && past.data(Buffer.from('a'))) accepted++;
  expect(accepted).toBe(MAX_BODY_CHUNKS);
  expect((await past.done).kind).toBe('too_large');
  // A retry starts the count over.
  const retried = new ResponseCapture(limits);
  retried.head(200, []);
  for (let i = 0; i < MAX_BODY_CHUNKS; i++) retried.data(Buffer.from('a'));
  retried.restart();
  retried.head(200, []);
  expect(retried.data(Buffer.from('b'))).toBe(true);
  retried.end();
  expect(ok(await retried.done).bodyBytes).toBe(1);
});

// Proves: the bounded copy keeps exactly the first `limit` bytes whatever the chunking, says when
// it cut, grows its one buffer to no more than the limit, and forgets on clear.
test('BoundedCopy keeps the first bytes up to its limit', () => {
  const src = randomBytes(10_000);
  for (const step of [1, 7, 1000, 4096, 10_000]) {
    const c = new BoundedCopy(5000);
    let more = true;
    for (let i = 0; i < src.length && more; i += step) more = c.push(src.subarray(i, i + step));
    expect(c.bytes().equals(src.subarray(0, 5000))).toBe(true);
    expect([c.length, c.cut, more]).toEqual([5000, true, false]);
    expect(c.bytes().buffer.byteLength).toBeLessThanOrEqual(5000);
  }
  const exact = new BoundedCopy(3);
  expect([exact.push(Buffer.from('ab')), exact.push(Buffer.from('c')), exact.cut]).toEqual([true, true, false]);
  expect(exact.push(Buffer.from('d'))).toBe(false);
  const kept = exact.bytes();
  exact.clear();
  expect([exact.length, exact.cut, exact.bytes().length, kept.toString()]).toEqual([0, false, 0, 'abc']);
});

// Proves: giveUp ends a capture still streaming as a timeout and tells its sender once; a capture
// that ended first (or its sender's own timeout) tells nobody.
test('giveUp ends the capture and tells the sender, once', async () => {
  let told = 0;
  const streaming = new ResponseCapture(limits);
  streaming.onGiveUp(() => told++);
  streaming.head(200, []);
  streaming.data(Buffer.from('partial'));
  streaming.giveUp();
  streaming.giveUp();
  expect([(await streaming.done).kind, told, streaming.data(Buffer.from('more'))]).toEqual(['timeout', 1, false]);
  const ended = new ResponseCapture(limits);
  ended.onGiveUp(() => told++);
  ended.head(200, []);
  ended.end();
  ended.giveUp();
  const timedOut = new ResponseCapture(limits);
  timedOut.onGiveUp(() => told++);
  timedOut.fail('timeout');
  timedOut.giveUp();
  expect([(await ended.done).kind, (await timedOut.done).kind, told]).toEqual(['ok', 'timeout', 1]);
});
