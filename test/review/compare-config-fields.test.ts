import type * as http from 'node:http';
import { redisCommand, startRedis } from '../harness/redis';
import type { RecordedRequest } from '../harness/upstream';
import type { Json } from '../harness/mirror-ext';
import { closeAll, fieldsOf, jsonReply, nonZero, rig, sleep } from './compare-rig';

// A new user's check of README's "Comparing responses": every field of `compare` it documents,
// set through the config (YAML/JSON decoded as a user's file is), changes what the comparison
// does. Each test runs the same requests with and without the field and expects a difference: a
// field accepted and then ignored fails here.

jest.setTimeout(60_000);

afterEach(closeAll);

type Respond = (req: RecordedRequest, res: http.ServerResponse) => void;

/** Outcomes and field paths of `paths` sent one after another, with `compare` set as given. */
async function run(primary: Respond, candidate: Respond, compare: Json, paths: string[], reference?: Respond): Promise<{ outcomes: Record<string, number>; fields: string[]; verdicts: Record<string, string> }> {
  const r = await rig({ primary: { http: primary }, candidate: { http: candidate }, ...(reference ? { reference: { http: reference } } : {}), compare });
  for (const p of paths) await r.get(p);
  const p = await r.report(paths.length);
  const verdicts = Object.fromEntries(p.endpoints.flatMap((e) => e.fields.map((f) => [f.path, f.verdict])));
  await closeAll();
  return { outcomes: nonZero(p.outcomes), fields: fieldsOf(p), verdicts };
}

const withHeaders = (headers: Record<string, string>, body: unknown = { a: 1 }): Respond => jsonReply(body, headers);

test('headers.ignore_all: no header is compared', async () => {
  const p = withHeaders({ 'x-a': '1' });
  const c = withHeaders({ 'x-a': '2', 'x-b': '3' });
  expect((await run(p, c, {}, ['/h'])).fields).toEqual(['header.x-a:changed', 'header.x-b:added']);
  expect((await run(p, c, { headers: { ignore_all: true } }, ['/h'])).outcomes).toEqual({ match: 1 });
});

test('headers.volatile: the value is not compared, presence still is', async () => {
  const p = withHeaders({ 'x-trace': 'aaa', 'x-gone': 'x' });
  const c = withHeaders({ 'x-trace': 'bbb' });
  expect((await run(p, c, {}, ['/v'])).fields).toEqual(['header.x-gone:missing', 'header.x-trace:changed']);
  expect((await run(p, c, { headers: { volatile: ['X-Trace', 'x-gone'] } }, ['/v'])).fields).toEqual(['header.x-gone:missing']);
});

test('headers.compare: a built-in volatile header (etag) and a framing one (content-length) are compared', async () => {
  const p: Respond = (_q, res) => { res.writeHead(200, { 'content-type': 'text/plain', etag: '"1"', 'content-length': '2' }); res.end('ab'); };
  const c: Respond = (_q, res) => { res.writeHead(200, { 'content-type': 'text/plain', etag: '"2"', 'content-length': '3' }); res.end('abc'); };
  expect((await run(p, c, {}, ['/e'])).fields).toEqual(['body:changed']);
  expect((await run(p, c, { headers: { compare: ['etag', 'content-length'] } }, ['/e'])).fields).toEqual(['body:changed', 'header.content-length:changed', 'header.etag:changed']);
});

test('body.format: JSON, TEXT and BYTES override the content type', async () => {
  const p = (type: string): Respond => (_q, res) => { res.writeHead(200, { 'content-type': type }); res.end('{"a":1,"b":2}'); };
  const c = (type: string): Respond => (_q, res) => { res.writeHead(200, { 'content-type': type }); res.end('{"a":1,"b":3}'); };
  expect((await run(p('text/plain'), c('text/plain'), {}, ['/f'])).fields).toEqual(['body:changed']);
  expect((await run(p('text/plain'), c('text/plain'), { body: { format: 'JSON' } }, ['/f'])).fields).toEqual(['body.b:changed']);
  expect((await run(p('application/json'), c('application/json'), {}, ['/f'])).fields).toEqual(['body.b:changed']);
  expect((await run(p('application/json'), c('application/json'), { body: { format: 'TEXT' } }, ['/f'])).fields).toEqual(['body:changed']);
  expect((await run(p('application/json'), c('application/json'), { body: { format: 'BYTES' } }, ['/f'])).fields).toEqual(['body:changed']);
});

test('body.unordered_arrays and body.number_tolerance', async () => {
  const p = jsonReply({ tags: ['a', 'b', 'c'], price: 1.0 });
  const c = jsonReply({ tags: ['c', 'a', 'b'], price: 1.0004 });
  expect((await run(p, c, {}, ['/u'])).fields).toEqual(['body.price:changed', 'body.tags:order']);
  expect((await run(p, c, { body: { unordered_arrays: ['body.tags'], number_tolerance: 0.001 } }, ['/u'])).outcomes).toEqual({ match: 1 });
});

test('body.max_capture_bytes: past it a body is compared by hash only', async () => {
  const p = jsonReply({ a: 1, pad: 'x'.repeat(400) });
  const c = jsonReply({ a: 2, pad: 'x'.repeat(400) });
  expect((await run(p, c, {}, ['/m'])).fields).toEqual(['body.a:changed']);
  expect((await run(p, c, { body: { max_capture_bytes: 100 } }, ['/m'])).fields).toEqual(['body:changed']);
});

test('ignore: a covered path makes the request noise_only', async () => {
  const p = jsonReply({ meta: { ts: 1 }, a: 1 });
  const c = jsonReply({ meta: { ts: 2 }, a: 1 });
  expect((await run(p, c, {}, ['/i'])).outcomes).toEqual({ diff: 1 });
  expect((await run(p, c, { ignore: ['body.meta'] }, ['/i'])).outcomes).toEqual({ noise_only: 1 });
});

test('relative_threshold and absolute_threshold change the verdict', async () => {
  // 10 requests: the candidate differs in all 10, the reference in 7 (relative 3/17 = 17.6 %, absolute 30 %).
  let n = 0;
  const p = jsonReply({ v: 1 });
  const c = jsonReply({ v: 2 });
  const ref: Respond = (q, res) => jsonReply({ v: n++ < 7 ? 2 : 1 })(q, res);
  const paths = Array.from({ length: 10 }, () => '/t');
  expect((await run(p, c, {}, paths, ref)).verdicts).toEqual({ 'body.v:changed': 'noise' });
  n = 0;
  expect((await run(p, c, { relative_threshold: 10 }, paths, ref)).verdicts).toEqual({ 'body.v:changed': 'diff' });
  n = 0;
  expect((await run(p, c, { relative_threshold: 10, absolute_threshold: 50 }, paths, ref)).verdicts).toEqual({ 'body.v:changed': 'noise' });
});

test('max_pending: comparisons past it are skipped_limit', async () => {
  const p = jsonReply({ a: 1 });
  const c: Respond = (q, res) => void setTimeout(() => jsonReply({ a: 1 })(q, res), 1500);
  const r = await rig({ primary: { http: p }, candidate: { http: c }, compare: { max_pending: 1 } });
  await Promise.all([r.get('/1'), r.get('/2'), r.get('/3')]);
  expect(nonZero((await r.report(3)).outcomes)).toEqual({ match: 1, skipped_limit: 2 });
});

test('sampling: numerator 0 compares none of the shadows', async () => {
  const r = await rig({ primary: { http: jsonReply({ a: 1 }) }, candidate: { http: jsonReply({ a: 1 }) }, compare: { sampling: { numerator: 0 } } });
  for (let i = 0; i < 5; i++) await r.get('/s');
  expect(nonZero((await r.report(5)).outcomes)).toEqual({ skipped_sampling: 5 });
});

test('store.samples_per_field and store.sample_body_bytes bound the samples', async () => {
  const r = await rig({
    primary: { http: jsonReply({ a: 1, pad: 'p'.repeat(500) }) },
    candidate: { http: jsonReply({ a: 2, pad: 'p'.repeat(500) }) },
    compare: { store: { samples_per_field: 2, sample_body_bytes: 64 } },
  });
  for (let i = 0; i < 5; i++) await r.get('/k');
  await r.report(5);
  const s = await r.samples('GET /k', 'body.a:changed');
  expect(s.samples).toHaveLength(2);
  for (const side of [s.samples[0]!.primary, s.samples[0]!.candidate]) {
    expect(side.body.cut).toBe(true);
    expect(Buffer.byteLength(side.body.text)).toBeLessThanOrEqual(64);
  }
});

test('fleet.key_prefix names the keys published to Redis', async () => {
  const redis = await startRedis();
  try {
    const r = await rig({
      primary: { http: jsonReply({ a: 1 }) },
      candidate: { http: jsonReply({ a: 2 }) },
      compare: { fleet: { redis: 'shared', interval: '0.1s', key_prefix: 'review:cmp:' } },
      filter: { redis: { shared: { server: { host: '127.0.0.1', port: redis.port } } } },
    });
    await r.get('/f');
    await r.report(1);
    let exists: string | null = null;
    for (let i = 0; i < 100 && exists !== '1'; i++) {
      await sleep(50);
      exists = await redisCommand(redis.port, ['EXISTS', 'review:cmp:{cand}:nodes']);
    }
    expect(exists).toBe('1');
    expect(await redisCommand(redis.port, ['EXISTS', 'sidemirror:compare:{cand}:nodes'])).toBe('0');
  } finally {
    await closeAll();
    await redis.stop();
  }
});
