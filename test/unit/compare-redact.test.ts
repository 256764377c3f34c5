import { NOT_REDACTABLE, REDACTED, SampleRedactor } from '../../src/compare/redact';
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
        // A whole-body text difference cannot be checked: all of it goes.
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
  expect(byPath.get('body')).toMatchObject({ primary: REDACTED, other: REDACTED });
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

  test('nesting too deep to walk: not stored', () => {
    const r = new SampleRedactor(limits({ redactBodyPaths: patterns('body.x') }));
    expect(r.body(response('['.repeat(1000) + ']'.repeat(1000))).text).toBe(NOT_REDACTABLE);
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
