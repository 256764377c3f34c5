import { ConfigError } from '../../src/config/errors';
import { bootstrap, cluster, listener, route } from '../harness/bootstrap';
import { type TestProxy, fetchText, startProxy } from '../harness/proxy';
import { type RecordedRequest, type Upstream, startUpstream } from '../harness/upstream';

// Config and admin regexes run on RE2 (linear time) end to end: a route regex that would stall a
// backtracking engine, regex_rewrite, a refused pattern, and the admin /stats?filter=. Real
// sockets on 127.0.0.1; servers stopped by their handles.

type Json = Record<string, unknown>;

/** Far below a backtracking blow-up (seconds to hours), generous for a loaded two-core box. */
const FAST_MS = 500;
/** A cluster name of 30 a's: `(a+)+b` searched in its stat names backtracks 2^30 ways in JavaScript. */
const A30 = 'a'.repeat(30);

const echo = (): Promise<Upstream> => startUpstream({
  respond: (req: RecordedRequest, res) => {
    const body = JSON.stringify({ url: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
});

const direct = (match: Json, body: string): Json => ({ match, direct_response: { status: 200, body: { inline_string: body } } });

describe('RE2 regexes in a running proxy', () => {
  let up: Upstream;
  let p: TestProxy;

  beforeAll(async () => {
    up = await echo();
    const rc = {
      name: 'local_route',
      virtual_hosts: [{
        name: 'all',
        domains: ['*'],
        routes: [
          direct({ safe_regex: { regex: '/(a+)+b' } }, 'hostile-matched'),
          direct({ safe_regex: { regex: '/CaSe/[0-9]+' }, case_sensitive: false }, 'regex-case'),
          direct({ prefix: '/hdr', headers: [{ name: 'x-v', string_match: { safe_regex: { regex: 'v[0-9]+' } } }] }, 'hdr-regex'),
          direct({ prefix: '/q', query_parameters: [{ name: 'id', string_match: { safe_regex: { regex: '[0-9]{3}' } } }] }, 'query-regex'),
          { match: { prefix: '/rx/' }, route: { cluster: 'main', regex_rewrite: { pattern: { regex: '^/rx/([0-9]+)/(item|part)$' }, substitution: '/\\2s/\\1' } } },
          { match: { prefix: '/all/' }, route: { cluster: 'main', regex_rewrite: { pattern: { regex: 'one' }, substitution: 'two' } } },
          route('/to-a30', A30),
          route('/', 'main', { request_mirror_policies: [{ cluster_header: 'x-mirror-to' }] }),
        ],
      }],
    };
    p = await startProxy(bootstrap({ listeners: [listener(rc)], clusters: [cluster('main', [up.port]), cluster(A30, [up.port])] }));
  });

  afterAll(async () => {
    await p?.stop();
    await up?.close();
  });

  test('route safe_regex (a+)+b against a 10 KB path answers in milliseconds, and still matches whole', async () => {
    const path = `/${'a'.repeat(10 * 1024)}`;
    const miss = await fetchText(`${p.url}${path}`);
    expect(miss.status).toBe(200);
    expect(JSON.parse(miss.body)).toEqual({ url: path }); // no "b": falls through to the "/" route
    expect(miss.ms).toBeLessThan(FAST_MS);
    const hit = await fetchText(`${p.url}${path}b`);
    expect(hit.body).toBe('hostile-matched');
    expect(hit.ms).toBeLessThan(FAST_MS);
    expect(JSON.parse((await fetchText(`${p.url}/aab/x`)).body)).toEqual({ url: '/aab/x' }); // a full match, not a prefix
  });

  test('case_sensitive: false is ignored for safe_regex, as in Envoy', async () => {
    expect((await fetchText(`${p.url}/CaSe/1`)).body).toBe('regex-case');
    expect(JSON.parse((await fetchText(`${p.url}/case/1`)).body)).toEqual({ url: '/case/1' });
  });

  test('header and query parameter regexes match the whole value', async () => {
    expect((await fetchText(`${p.url}/hdr`, { headers: { 'x-v': 'v12' } })).body).toBe('hdr-regex');
    expect(JSON.parse((await fetchText(`${p.url}/hdr`, { headers: { 'x-v': 'xv12' } })).body)).toEqual({ url: '/hdr' });
    expect((await fetchText(`${p.url}/q?id=123`)).body).toBe('query-regex');
    expect(JSON.parse((await fetchText(`${p.url}/q?id=1234`)).body)).toEqual({ url: '/q?id=1234' });
  });

  test('regex_rewrite: RE2 \\N references, every match replaced, the query kept', async () => {
    expect(JSON.parse((await fetchText(`${p.url}/rx/42/item?x=1`)).body)).toEqual({ url: '/items/42?x=1' });
    expect(JSON.parse((await fetchText(`${p.url}/rx/7/part`)).body)).toEqual({ url: '/parts/7' });
    expect(JSON.parse((await fetchText(`${p.url}/rx/7/other`)).body)).toEqual({ url: '/rx/7/other' }); // no match: unchanged
    expect(JSON.parse((await fetchText(`${p.url}/all/one/x/one?one=1`)).body)).toEqual({ url: '/all/two/x/two?one=1' });
  });

  describe('admin /stats?filter=', () => {
    const admin = (path: string): ReturnType<typeof fetchText> => fetchText(`${p.adminUrl}${path}`);

    beforeAll(async () => {
      expect((await fetchText(`${p.url}/to-a30`)).status).toBe(200);
      // No x-mirror-to header: the miss is counted under cluster.header:x-mirror-to.
      expect((await fetchText(`${p.url}/plain`)).status).toBe(200);
    });

    test('a hostile filter answers quickly', async () => {
      expect((await admin('/stats')).body).toContain(`cluster.${A30}.upstream_rq_total: 1`);
      const r = await admin(`/stats?filter=${encodeURIComponent('(a+)+b')}`);
      expect(r.status).toBe(200);
      expect(r.ms).toBeLessThan(FAST_MS);
      for (const line of r.body.trim().split('\n').filter(Boolean)) expect(line.slice(0, line.lastIndexOf(': '))).toMatch(/a+b/);
    });

    test('the filter sees the whole stat name, ":" included, and searches anywhere in it', async () => {
      const lines = (await admin(`/stats?filter=${encodeURIComponent('header:x-mirror-to')}`)).body.trim().split('\n');
      expect(lines).toEqual(expect.arrayContaining([expect.stringMatching(/^cluster\.header:x-mirror-to\.shadow\.skipped\.missing_header: [1-9]\d*$/)]));
      for (const line of lines) expect(line).toContain('header:x-mirror-to');
      expect((await admin(`/stats?filter=${encodeURIComponent('^cluster\\.header:')}`)).body.trim().split('\n').length).toBe(lines.length);
    });

    test('format=json honours the filter', async () => {
      const r = await admin(`/stats?format=json&filter=${encodeURIComponent('^cluster\\.main\\.upstream_rq_total$')}`);
      expect(r.status).toBe(200);
      const stats = (JSON.parse(r.body) as { stats: Array<{ name: string; value: number }> }).stats;
      expect(stats).toEqual([{ name: 'cluster.main.upstream_rq_total', value: expect.any(Number) }]);
      expect(stats[0]!.value).toBeGreaterThan(0);
      const all = (JSON.parse((await admin('/stats?format=json')).body) as { stats: unknown[] }).stats;
      expect(all.length).toBeGreaterThan(stats.length);
    });

    test('a filter RE2 refuses is a 400 with the reason', async () => {
      const r = await admin(`/stats?filter=${encodeURIComponent('(a)\\1')}`);
      expect(r.status).toBe(400);
      expect(r.body).toMatch(/^Invalid re2 regex: .*invalid escape sequence/);
      const lookahead = await admin(`/stats?format=json&filter=${encodeURIComponent('x(?=y)')}`);
      expect(lookahead.status).toBe(400);
      expect(lookahead.body).toMatch(/unsupported Perl syntax/);
      // A pattern that would take re2js a second to build is refused before it is built.
      const heavy = await admin(`/stats?filter=${encodeURIComponent('[^x]{1000}'.repeat(16))}`);
      expect(heavy.status).toBe(400);
      expect(heavy.body).toMatch(/more than 50000 instructions/);
      expect(heavy.ms).toBeLessThan(FAST_MS);
    });
  });
});

test('a route regex RE2 refuses stops the proxy from starting, naming the field', async () => {
  const rc = { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [direct({ safe_regex: { regex: '/(x)\\1' } }, 'never')] }] };
  const started = startProxy(bootstrap({ listeners: [listener(rc)], clusters: [] }));
  await expect(started).rejects.toBeInstanceOf(ConfigError);
  await expect(started).rejects.toThrow(
    /^static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.route_config\.virtual_hosts\[0\]\.routes\[0\]\.match\.safe_regex\.regex: error parsing regexp: invalid escape sequence/,
  );
});
