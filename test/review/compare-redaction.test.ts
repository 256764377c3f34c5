import { closeAll, jsonReply, rig } from './compare-rig';

// What a stored sample may hold: no value a redact_body_paths rule names, wherever the
// comparison found it (under a map-like object, in a line of a body compared as text), and
// otherwise what the upstreams sent, as they sent it (review findings 2, 3, 9 and 10, issue 11).

jest.setTimeout(90_000);

afterEach(closeAll);

// Proves: redact_body_paths covers a difference's values when the path runs through an object
// with more than 50 keys (counted as a map, `body.*`): the candidate returning `user: null`
// gives `body.*:type` whose primary value is the whole user object, and a changed email gives
// `body.*.email:changed`; neither may store the email.
test('redact_body_paths also redacts differences under a map-like object', async () => {
  const filler = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, i]));
  const r = await rig({
    primary: { http: jsonReply({ ...filler, user: { email: 'alice@example.com', name: 'Alice' } }) },
    candidate: {
      http: (req, res) => jsonReply({ ...filler, user: req.url === '/null' ? null : { email: 'bob@example.com', name: 'Alice' } })(req, res),
    },
    compare: { store: { redact_body_paths: ['body.user.email'] } },
  });
  await r.get('/null');
  await r.get('/changed');
  const p = await r.report(2);
  expect(p.outcomes.diff).toBe(2);
  const text = await r.allSamplesText();
  expect(text).toContain('[redacted]');
  expect(text).not.toContain('alice@example.com');
  expect(text).not.toContain('bob@example.com');
});

// Proves: when the candidate's body is not JSON (an error text with status 200), the difference is
// the bodies' first differing line, and that line of the primary's minified JSON holds the value a
// redact_body_paths rule names; it must not be stored.
test('redact_body_paths also redacts the first differing line of a body that is compared as text', async () => {
  const r = await rig({
    primary: { http: jsonReply({ user: { email: 'alice@example.com' }, n: 1 }) },
    candidate: { http: jsonReply('upstream degraded, try again') },
    compare: { store: { redact_body_paths: ['body.user.email'] } },
  });
  await r.get('/u');
  const p = await r.report(1);
  expect(p.outcomes.diff).toBe(1);
  const text = await r.allSamplesText();
  expect(text).toContain('body:changed');
  expect(text).not.toContain('alice@example.com');
});

// Proves: a body redacted by redact_body_paths keeps its integers past 2^53 as the upstream wrote
// them. Redaction re-serialises the body through JSON.parse, so 9007199254740993 is stored as
// ...992: the sample shows values neither upstream sent, beside a difference that quotes the real ones.
test('redaction does not round integers past 2^53 in stored bodies', async () => {
  const r = await rig({
    primary: { http: jsonReply('{"id":9007199254740993,"user":{"email":"a@example.com"}}') },
    candidate: { http: jsonReply('{"id":9007199254740995,"user":{"email":"a@example.com"}}') },
    compare: { store: { redact_body_paths: ['body.user.email'] } },
  });
  await r.get('/b');
  await r.report(1);
  const s = (await r.samples('GET /b', 'body.id:changed')).samples[0]!;
  expect(s.differences.map((d) => [d.primary, d.other])).toEqual([['9007199254740993', '9007199254740995']]);
  expect(s.primary.body.text).toContain('9007199254740993');
  expect(s.candidate.body.text).toContain('9007199254740995');
  expect(s.primary.body.text).not.toContain('a@example.com');
});

// Proves: a response header named `__proto__` is kept in the stored sample like any other (the
// samples' header records are plain objects: assigning `__proto__` sets their prototype instead,
// so the header vanishes from the sample while the difference table lists it).
test('a response header named __proto__ is shown in the sample', async () => {
  const r = await rig({
    primary: { http: jsonReply({ a: 1 }) },
    candidate: {
      raw: (s) => {
        const body = '{"a":1}';
        s.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n__proto__: smuggled\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      },
    },
  });
  await r.get('/p');
  await r.report(1);
  const s = await r.samples('GET /p', 'header.__proto__:added');
  expect(s.samples[0]!.differences.map((d) => d.path)).toContain('header.__proto__');
  expect(Object.keys(s.samples[0]!.candidate.headers)).toContain('__proto__');
});
