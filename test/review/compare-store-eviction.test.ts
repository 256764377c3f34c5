import { closeAll, jsonReply, rig } from './compare-rig';

// The result store under a client that chooses its paths: every compared request leaves an
// endpoint record, and those records must not push the differences out of store.max_bytes
// (review finding 5, issue 11).

jest.setTimeout(90_000);

afterEach(closeAll);

const KiB = 1024;

// Proves: a client cannot blind the comparison by visiting many distinct paths. Every compared
// request (a match too) leaves an endpoint record, and the store evicts fields before any endpoint
// record: once such records fill store.max_bytes, each new difference is evicted by the very
// request that found it. Here 600 matching requests to distinct words, then 5 requests whose
// candidate differs: the report should hold that field, with its verdict and a sample.
test('endpoint records left by many distinct paths do not evict every new field', async () => {
  const r = await rig({
    primary: { http: jsonReply({ v: 1 }) },
    candidate: { http: (req, res) => jsonReply({ v: req.url === '/real' ? 2 : 1 })(req, res) },
    compare: { store: { max_bytes: 64 * KiB } },
  });
  const word = (i: number): string => [...i.toString(26)].map((c) => String.fromCharCode(97 + parseInt(c, 26))).join('');
  for (let i = 0; i < 600; i++) await r.get(`/w${word(i)}`);
  for (let i = 0; i < 5; i++) await r.get('/real');
  const p = await r.report(605);
  expect([p.outcomes.match, p.outcomes.diff]).toEqual([600, 5]);
  const real = p.endpoints.find((e) => e.name === 'GET /real');
  expect(real?.fields.map((f) => [f.path, f.diffs, f.verdict])).toEqual([['body.v:changed', 5, 'diff']]);
});
