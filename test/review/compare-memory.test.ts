import type * as net from 'node:net';
import { MAX_BODY_CHUNKS } from '../../src/compare/capture';
import { closeAll, heapAfterGc, jsonReply, rig, sleep } from './compare-rig';

// What a compared response may cost the proxy however its upstream chunks it: memory bounded by
// the capture bound, and event-loop work bounded by MAX_BODY_CHUNKS (review findings, issue 11).

jest.setTimeout(90_000);

afterEach(closeAll);

const KiB = 1024;
const MiB = 1024 * KiB;

// Proves: a candidate answering in many tiny chunks cannot make a compared response hold more
// memory than its capture bound. Each chunk is kept as its own Buffer view (about 100 bytes of heap
// for one byte of body), so 64 KiB of kept body costs some 7 MB; 20 hanging responses should hold
// at most 20 x 64 KiB of body (plus slack), not hundreds of MB. (A proxy started with
// --max-old-space-size=384 died of heap exhaustion within 40 such requests.)
test('a candidate sending 1-byte chunks keeps the capture within its bound in memory', async () => {
  const CHUNKS = 65_536;
  const flood = Buffer.from('1\r\na\r\n'.repeat(CHUNKS), 'latin1');
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      raw: (s) => {
        s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
        s.write(flood); // and never the last chunk: the response stays open
      },
    },
    compare: { timeout: '120s' },
    action: { timeout: '0s' },
  });
  expect((await r.get('/warm')).status).toBe(200);
  await sleep(500);
  const before = heapAfterGc();
  for (let i = 0; i < 20; i++) {
    const res = await r.get(`/x${i}`);
    expect(res.body.toString()).toBe('{"a":1}');
  }
  // The proxy reads each flood in a few hundred ms; give it time to take all of them in.
  await sleep(4000);
  const grown = heapAfterGc() - before;
  expect(grown).toBeLessThan(48 * MiB);
});

// Proves: a candidate that answers in an endless stream of 1-byte chunks is not read until
// compare.timeout (120 s here): past MAX_BODY_CHUNKS chunks the comparison ends too_large and the
// shadow's connection is closed. The candidate writes at most 2,000,000 chunks, and only as fast
// as the proxy reads them.
test('a candidate streaming endless tiny chunks is let go after MAX_BODY_CHUNKS', async () => {
  const LIMIT = 2_000_000;
  let written = 0;
  let closed = false;
  const batch = Buffer.from('1\r\na\r\n'.repeat(10_000), 'latin1');
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      raw: (s: net.Socket) => {
        s.on('close', () => (closed = true));
        s.write('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n');
        const pump = (): void => {
          while (!s.destroyed && written < LIMIT) {
            written += 10_000;
            if (!s.write(batch)) {
              s.once('drain', pump);
              return;
            }
          }
        };
        pump();
      },
    },
    compare: { timeout: '120s' },
    action: { timeout: '0s' },
  });
  const res = await r.get('/stream');
  expect(res.body.toString()).toBe('{"a":1}');
  const p = await r.report(1, 30_000);
  expect(p.outcomes.too_large).toBe(1);
  for (let i = 0; i < 200 && !closed; i++) await sleep(50);
  expect(closed).toBe(true);
  // Let go soon after the bound, not after reading all the candidate had (allowing for what
  // sat in socket buffers when the connection was closed).
  expect(written).toBeGreaterThan(MAX_BODY_CHUNKS);
  expect(written).toBeLessThan(LIMIT);
});
