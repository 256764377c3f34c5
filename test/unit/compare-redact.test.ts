import { compareResponses } from '../../src/compare/diff/compare-responses';
import { keyedPath } from '../../src/compare/diff/json-path';
import { PathPatternSet } from '../../src/compare/path-pattern';
import { NOT_REDACTABLE, REDACTED, SampleRedactor } from '../../src/compare/redact';
import type { CapturedResponse, CompareRules } from '../../src/compare/types';
import { CompareRegistry } from '../../src/compare/store';
import { cutUtf8, utf8Prefix, withoutCutTail } from '../../src/compare/text-cut';
import { compared, diff, limits, patterns, response, settings } from '../harness/compare-results';

const SECRETS = ['Bearer s3cr3t-token', 'session=c00kie', 'sid=setc00kie', 'Basic cHJveHk=', 'api-key-4242', 'card-4111-1111', 'pw-hunter2'];

function registryWithSecrets(): CompareRegistry {
  const reg = new CompareRegistry();
  reg.configure('p', settings({ limits: limits({ redactHeaders: new Set(['X-Api-Key']), redactBodyPaths: patterns('body.card', 'body.users[*].password') }) }));
  const body = (card: string, total: number): string => JSON.stringify({ total, card, users: [{ name: 'a', password: 'pw-hunter2' }] });
  reg.record(
    compared({
      request: { method: 'GET', path: '/api', headers: { authorization: 'Bearer s3cr3t-token', cookie: 'session=c00kie', 'proxy-authorization': 'Basic cHJveHk=', 'x-api-key': 'api-key-4242' } },
      primary: response(body('card-4111-1111', 1), { headers: { 'content-type': 'application/json', 'set-cookie': ['sid=setc00kie', 'sid=setc00kie'], 'x-api-key': 'api-key-4242' } }),
      candidate: response(body('card-4111-1111', 2), { headers: { 'content-type': 'application/json', 'set-cookie': 'sid=setc00kie2' } }),
      reference: response('{"total":1,"card":"card-4111-1111", "cut', { bodyComplete: false, bodyBytes: 100 }),
      raw: [
        diff('body.total', 'changed', '1', '2'),
        diff('body.card', 'changed', 'card-4111-1111', 'card-4111-1111x'),
        diff('header.set-cookie', 'changed', 'sid=setc00kie', 'sid=setc00kie2'),
        diff('header.x-api-key', 'missing', 'api-key-4242', null),
        // A parent quoted whole: the rule reaches inside it.
        diff('body.users[*]', 'changed', '{"name":"a","password":"pw-hunter2"}', '{"name":"b","password":"pw-hunter2"}', 'body.users[0]'),
        // A whole-body text difference quotes lines of the bodies: they are taken again from the redacted bodies.
        diff('body', 'changed', 'garbled card-4111-1111', 'x'),
      ],
    }),
  );
  return reg;
}

test('secrets are never in the JSON report or the samples output', () => {
  const reg = registryWithSecrets();
  const report = JSON.stringify(reg.report());
  const fields = reg.report().policies[0]!.endpoints[0]!.fields.map((f) => f.path);
  expect(fields).toContain('body.total:changed');
  const all = fields.map((f) => JSON.stringify(reg.samples('p', 'GET /api', f))).join('\n');
  // The samples are there (the test must be able to fail) ...
  expect(all).toContain('"exactPath":"body.total","primary":"1"');
  expect(all).toContain(REDACTED);
  // ... and no secret is.
  for (const s of SECRETS) {
    expect([s, report.includes(s)]).toEqual([s, false]);
    expect([s, all.includes(s)]).toEqual([s, false]);
  }
});

test('redacted places are replaced, the rest of the body kept', () => {
  const reg = registryWithSecrets();
  const s = reg.samples('p', 'GET /api', 'body.total:changed')!.samples[0]!;
  expect(JSON.parse(s.primary.body.text)).toEqual({ total: 1, card: REDACTED, users: [{ name: 'a', password: REDACTED }] });
  expect(s.request.headers).toEqual({ authorization: REDACTED, cookie: REDACTED, 'proxy-authorization': REDACTED, 'x-api-key': REDACTED });
  expect(s.primary.headers['set-cookie']).toEqual([REDACTED, REDACTED]);
  expect(s.primary.headers['content-type']).toEqual(['application/json']);
  // The cut reference body could not be checked: not stored.
  expect(s.reference!.body.text).toBe(NOT_REDACTABLE);
  const byPath = new Map(s.differences.map((d) => [d.exactPath, d]));
  expect(byPath.get('body.total')).toMatchObject({ primary: '1', other: '2' });
  expect(byPath.get('body.card')).toMatchObject({ primary: REDACTED, other: REDACTED });
  expect(byPath.get('header.x-api-key')).toMatchObject({ primary: REDACTED, other: null });
  expect(JSON.parse(byPath.get('body.users[0]')!.primary!)).toEqual({ name: 'a', password: REDACTED });
  expect(JSON.parse(byPath.get('body')!.primary!)).toBe(`{"total":1,"card":"${REDACTED}","users":[{"name":"a","password":"${REDACTED}"}]}`);
  expect(JSON.parse(byPath.get('body')!.other!)).toMatch(/^\{"total":2,"card":"\[redacted\]"/);
});

describe('SampleRedactor.body', () => {
  test('with redact paths configured, a body that does not parse is not stored', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.token') }));
    expect(r.body(response('token=abc; not json')).text).toBe(NOT_REDACTABLE);
    expect(r.body(response(Buffer.from([0xff, 0xfe, 0x00]))).text).toBe(NOT_REDACTABLE);
    expect(r.body(response('{"token":"abc"}')).text).toBe(`{"token":"${REDACTED}"}`);
    expect(r.body(response('')).text).toBe('');
  });

  test('nothing redacted: the upstream text is kept byte for byte (integers past 2^53 intact)', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.token') }));
    const text = '{ "id": 12345678901234567890123 }';
    expect(r.body(response(text)).text).toBe(text);
  });

  test('a "__proto__" key stays a key', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.__proto__.token') }));
    expect(JSON.parse(r.body(response('{"__proto__":{"token":"x","a":1}}')).text)).toEqual(JSON.parse(`{"__proto__":{"token":"${REDACTED}","a":1}}`));
  });

  test('map-like keys are matched by * rules', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.sessions.*.secret') }));
    const out = JSON.parse(r.body(response('{"sessions":{"user 1":{"secret":"a"},"u2":{"secret":"b","n":1}}}')).text);
    expect(out).toEqual({ sessions: { 'user 1': { secret: REDACTED }, u2: { secret: REDACTED, n: 1 } } });
  });

  test('nesting too deep to walk where a rule reaches: not stored; deep where none reaches: kept', () => {
    const deep = '['.repeat(1000) + ']'.repeat(1000);
    const reaching = new SampleRedactor(limits({ redactBodyPaths: patterns(`body${'[*]'.repeat(300)}.x`) }));
    expect(reaching.body(response(deep)).text).toBe(NOT_REDACTABLE);
    const elsewhere = new SampleRedactor(limits({ redactBodyPaths: patterns('body.x') }));
    expect(elsewhere.body(response(deep)).text).toBe(deep);
  });

  test('only the redacted values change: big integers, spacing, escaped and repeated keys as written', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.token', 'body.items[*].card') }));
    const text = '{ "id": 9007199254740993, "t\\u006fken": "abc",\n  "items": [ {"card": {"n": "4111"}, "x": 1.50}, {"card": null} ], "token": [1, 2] }';
    expect(r.body(response(text)).text).toBe(
      `{ "id": 9007199254740993, "t\\u006fken": "${REDACTED}",\n  "items": [ {"card": "${REDACTED}", "x": 1.50}, {"card": "${REDACTED}"} ], "token": "${REDACTED}" }`);
    // Strings holding quotes, backslashes and brackets are skipped whole.
    const tricky = '{"a":"x\\"}]{[\\\\","token":"s","b":["]\\""]}';
    expect(JSON.parse(r.body(response(tricky)).text)).toEqual({ a: 'x"}]{[\\', token: REDACTED, b: [']"'] });
  });

  test('cut to sampleBodyBytes on a character boundary', () => {
    const r = new SampleRedactor(limits({ sampleBodyBytes: 5 }));
    const b = r.body(response('aé€😀', { headers: { 'content-type': 'text/plain' } }));
    // a(1) é(2) €(3): 6 bytes would split the euro sign; 3 bytes fit.
    expect(b).toEqual({ text: 'aé', bytes: 10, cut: true });
  });

  test('a body the capture bound cut loses its cut last character and says it was cut', () => {
    const r = new SampleRedactor(limits());
    const whole = Buffer.from('ab€', 'utf8');
    const b = r.body(response(whole.subarray(0, 4), { bodyComplete: false, bodyBytes: 5 }));
    expect(b).toEqual({ text: 'ab', bytes: 5, cut: true });
  });

  test('binary bodies are described, not stored as garbage', () => {
    const r = new SampleRedactor(limits());
    expect(r.body(response(Buffer.from([0xff, 0x00, 0x81]))).text).toBe('[binary body: 3 bytes]');
  });
});

test('text cutting helpers never split a character', () => {
  const buf = Buffer.from('x😀', 'utf8');
  for (let n = 0; n <= buf.length; n++) expect(Buffer.from(utf8Prefix(buf, n).toString('utf8'), 'utf8').equals(utf8Prefix(buf, n))).toBe(true);
  expect(utf8Prefix(buf, 4).toString()).toBe('x');
  expect(withoutCutTail(buf.subarray(0, 3)).toString()).toBe('x');
  expect(withoutCutTail(buf).toString()).toBe('x😀');
  expect(cutUtf8('😀😀', 7)).toEqual({ text: '😀', cut: true });
});

const RULES: CompareRules = {
  volatileHeaders: new Set(), skippedHeaders: new Set(), ignoreAllHeaders: false,
  bodyFormat: 'auto', unorderedArrays: new PathPatternSet(), numberTolerance: 0,
};

/** The differences the real diff engine finds, as a sample under `rules` stores them. */
function stored(primary: CapturedResponse, other: CapturedResponse, ...rules: string[]): Array<{ path: string; primary: string | null; other: string | null }> {
  const r = new SampleRedactor(limits({ redactBodyPaths: patterns(...rules) }));
  return compareResponses(primary, other, RULES).map((d) => r.difference(d, primary, other)).map((d) => ({ path: `${d.path}:${d.kind}`, primary: d.primary, other: d.other }));
}

// Proves: a rule naming a key reaches it inside an object counted as a map (more than 50 keys,
// so every difference under it is `body.*…`): the values are redacted by the place they came from.
test('differences under a map-like object are redacted by their real place', () => {
  const filler = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, i]));
  const body = (user: unknown): CapturedResponse => response(JSON.stringify({ ...filler, user }));
  const alice = { email: 'alice@example.com', name: 'Alice' };
  expect(stored(body(alice), body(null), 'body.user.email')).toEqual([
    { path: 'body.*:type', primary: `{"email":"${REDACTED}","name":"Alice"}`, other: 'null' },
  ]);
  expect(stored(body(alice), body({ ...alice, email: 'bob@example.com' }), 'body.user.email')).toEqual([
    { path: 'body.*.email:changed', primary: REDACTED, other: REDACTED },
  ]);
  // A `*` rule still names any key.
  expect(stored(body(alice), body({ ...alice, name: 'Bob' }), 'body.*.name')).toEqual([
    { path: 'body.*.name:changed', primary: REDACTED, other: REDACTED },
  ]);
});

// Proves: a body compared as text (the candidate's is not JSON) quotes the primary's first
// differing line only as redacted, and the line of a body that cannot be redacted not at all;
// without body rules both lines are kept as they are.
test('the first differing line of a text comparison is redacted', () => {
  const primary = response('{"user":{"email":"alice@example.com"},"n":1}');
  const candidate = response('upstream degraded, try again');
  expect(stored(primary, candidate, 'body.user.email')).toEqual([
    { path: 'body:changed', primary: JSON.stringify(`{"user":{"email":"${REDACTED}"},"n":1}`), other: NOT_REDACTABLE },
  ]);
  expect(stored(primary, candidate)).toEqual([
    { path: 'body:changed', primary: JSON.stringify('{"user":{"email":"alice@example.com"},"n":1}'), other: JSON.stringify('upstream degraded, try again') },
  ]);
  // Two JSON bodies compared as text (text/plain) that differ only inside a redacted value.
  const text = { headers: { 'content-type': 'text/plain' } };
  expect(stored(response('{"token":"a"}', text), response('{"token":"b"}', text), 'body.token')).toEqual([
    { path: 'body:changed', primary: REDACTED, other: REDACTED },
  ]);
});

// Proves: a difference's value holding a number past 2^53 keeps it as written when a rule
// redacts inside it.
test('a redacted difference value keeps big integers as written', () => {
  const a = response('{"user":{"id":9007199254740993,"email":"a@example.com"}}');
  const b = response('{"user":[]}');
  expect(stored(a, b, 'body.user.email')).toEqual([
    { path: 'body.user:type', primary: `{"id":9007199254740993,"email":"${REDACTED}"}`, other: '[]' },
  ]);
});

test('keyedPath keeps every plain key, whatever its object', () => {
  expect(keyedPath('body.prices.USD')).toBe('body.prices.USD');
  expect(keyedPath('body.items[3]["a b"].x[0]')).toBe('body.items[*].*.x[*]');
  // Quoted keys (not plain) with a backslash, a quote and a bracket in them, as exactKeySegment writes them.
  expect(keyedPath(`body[${JSON.stringify('q\\')}][${JSON.stringify('x"]')}].a`)).toBe('body.*.*.a');
  expect(keyedPath('body[12]')).toBe('body[*]');
  expect(keyedPath('header.x-a')).toBe('header.x-a');
  expect(keyedPath('body')).toBe('body');
});

// Proves: headers named like Object.prototype's members are kept as headers in samples.
test('a header named __proto__ or constructor is kept', () => {
  const r = new SampleRedactor(limits());
  const res = r.responseHeaders(new Map([['__proto__', ['v']], ['constructor', ['c']]]));
  expect(Object.keys(res)).toEqual(['__proto__', 'constructor']);
  expect(JSON.parse(JSON.stringify(res))).toEqual(JSON.parse('{"__proto__":["v"],"constructor":["c"]}'));
  const req = r.requestHeaders(JSON.parse('{"__proto__":"x","host":"h"}') as Record<string, string>);
  expect(Object.entries(req)).toEqual([['__proto__', 'x'], ['host', 'h']]);
});
