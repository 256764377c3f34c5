import { MAX_DIFFERENCES } from '../../src/compare/diff/difference-list';
import { MAX_JSON_DEPTH } from '../../src/compare/diff/json-parse';
import { diff, json, jsonText, names, patterns, response, rules } from '../harness/captured-response';

// The response diff: status, then headers, then body (by hash, JSON structure, text line or bytes),
// on captured shapes as capture.ts makes them.

test('equal responses: no difference', () => {
  const a = json({ a: 1 }, { headers: { 'content-type': 'application/json', date: 'Mon' } });
  expect(diff(a, json({ a: 1 }, { headers: { 'content-type': 'application/json', date: 'Tue' } }))).toEqual([]);
});

test('status first, with both values', () => {
  expect(diff(response({ status: 200 }), response({ status: 503 }))).toEqual([
    { path: 'status', kind: 'changed', exactPath: 'status', primary: '200', other: '503' },
  ]);
});

describe('headers', () => {
  test('values: changed, missing and added, each with its values as JSON', () => {
    const a = response({ headers: { 'content-type': 'text/html', 'x-a': '1', 'x-gone': 'g' } });
    const b = response({ headers: { 'content-type': 'text/plain', 'x-a': '1', 'x-new': 'n' } });
    expect(diff(a, b)).toEqual([
      { path: 'header.content-type', kind: 'changed', exactPath: 'header.content-type', primary: '"text/html"', other: '"text/plain"' },
      { path: 'header.x-gone', kind: 'missing', exactPath: 'header.x-gone', primary: '"g"', other: null },
      { path: 'header.x-new', kind: 'added', exactPath: 'header.x-new', primary: null, other: '"n"' },
    ]);
  });

  test('volatile: values never compared, presence is', () => {
    const dated = (d: string) => response({ headers: { date: d } });
    expect(diff(dated('Mon, 01 Jan 2024'), dated('Tue, 02 Jan 2024'))).toEqual([]);
    expect(names(diff(dated('Mon'), response()))).toEqual(['header.date:missing']);
    expect(names(diff(response(), dated('Mon')))).toEqual(['header.date:added']);
  });

  test('skipped: neither values nor presence', () => {
    expect(diff(response({ headers: { 'content-length': '5', connection: 'close' } }), response({ headers: { 'content-length': '7' } }))).toEqual([]);
  });

  test('ignoreAllHeaders: none compared, status and body still are', () => {
    const a = response({ status: 200, headers: { 'x-a': '1' }, body: 'x' });
    const b = response({ status: 201, headers: { 'x-b': '2' }, body: 'x' });
    expect(names(diff(a, b, rules({ ignoreAllHeaders: true })))).toEqual(['status:changed']);
  });

  test('multi-valued: compared as the ordered list', () => {
    const a = response({ headers: { 'set-cookie': ['a=1', 'b=2'] } });
    expect(diff(a, response({ headers: { 'set-cookie': ['a=1', 'b=2'] } }))).toEqual([]);
    expect(diff(a, response({ headers: { 'set-cookie': ['b=2', 'a=1'] } }))).toEqual([
      { path: 'header.set-cookie', kind: 'changed', exactPath: 'header.set-cookie', primary: '["a=1","b=2"]', other: '["b=2","a=1"]' },
    ]);
    expect(names(diff(a, response({ headers: { 'set-cookie': ['a=1'] } })))).toEqual(['header.set-cookie:changed']);
    // One value "a=1, b=2" is not the two values a=1 and b=2.
    expect(diff(a, response({ headers: { 'set-cookie': 'a=1, b=2' } }))[0].other).toBe('"a=1, b=2"');
  });

  test('rules name exact headers: volatile date leaves x-date-id compared, skipped content-length leaves content-length-x', () => {
    const a = response({ headers: { date: '1', 'x-date-id': 'a', 'content-length-x': '1', 'x-request-id-copy': 'r1' } });
    const b = response({ headers: { date: '2', 'x-date-id': 'b', 'content-length-x': '2', 'x-request-id-copy': 'r2' } });
    expect(names(diff(a, b))).toEqual(['header.x-date-id:changed', 'header.content-length-x:changed', 'header.x-request-id-copy:changed']);
  });
});

describe('body by hash', () => {
  test('equal hashes: nothing is parsed, even bodies that are not JSON and differ', () => {
    const a = jsonText('{"a": 1', { hash: 'same' });
    const b = jsonText('{"a": [', { hash: 'same' });
    expect(diff(a, b, rules({ bodyFormat: 'json' }))).toEqual([]);
    expect(diff(a, b, rules({ bodyFormat: 'text' }))).toEqual([]);
  });

  test('a body the capture bound cut: one body:changed by hash, no field paths', () => {
    const a = jsonText('{"a":1,"b":', { complete: false, hash: 'h1' });
    const b = jsonText('{"a":2,"b":', { complete: false, hash: 'h2' });
    const whole = jsonText('{"a":2,"b":3}');
    const expected = [{ path: 'body', kind: 'changed', exactPath: 'body', primary: null, other: null }];
    expect(diff(a, b)).toEqual(expected);
    expect(diff(a, whole, rules({ bodyFormat: 'json' }))).toEqual(expected);
    expect(diff(whole, b, rules({ bodyFormat: 'text' }))).toEqual(expected);
  });

  test('a body that did not decode: one body:changed by hash', () => {
    const a = json({ a: 1 });
    const b = json({ a: 2 }, { decodeError: true });
    expect(names(diff(a, b))).toEqual(['body:changed']);
    expect(diff(a, b)[0].primary).toBeNull();
  });
});

describe('JSON structure', () => {
  test('nested changes: counting paths with [*], exact paths with indices', () => {
    const a = json({ user: { name: 'ann', age: 30 }, items: [{ id: 1, price: 2 }, { id: 2, price: 3 }] });
    const b = json({ user: { name: 'bob', age: 30 }, items: [{ id: 1, price: 2 }, { id: 2, price: 4 }] });
    expect(diff(a, b)).toEqual([
      { path: 'body.user.name', kind: 'changed', exactPath: 'body.user.name', primary: '"ann"', other: '"bob"' },
      { path: 'body.items[*].price', kind: 'changed', exactPath: 'body.items[1].price', primary: '3', other: '4' },
    ]);
  });

  test('key order, whitespace and number spelling are not differences', () => {
    expect(diff(jsonText('{"a": 1.0, "b": [1e2, -0]}'), jsonText('{"b":[100,0],"a":1}'))).toEqual([]);
  });

  test('missing, added and type', () => {
    const a = json({ gone: 1, s: '1', o: {}, n: null, v: 5, b: true });
    const b = json({ s: 1, o: [], n: 0, v: null, b: 'true', extra: { x: 1 } });
    expect(diff(a, b)).toEqual([
      { path: 'body.gone', kind: 'missing', exactPath: 'body.gone', primary: '1', other: null },
      { path: 'body.s', kind: 'type', exactPath: 'body.s', primary: '"1"', other: '1' },
      { path: 'body.o', kind: 'type', exactPath: 'body.o', primary: '{}', other: '[]' },
      { path: 'body.n', kind: 'type', exactPath: 'body.n', primary: 'null', other: '0' },
      { path: 'body.v', kind: 'type', exactPath: 'body.v', primary: '5', other: 'null' },
      { path: 'body.b', kind: 'type', exactPath: 'body.b', primary: 'true', other: '"true"' },
      { path: 'body.extra', kind: 'added', exactPath: 'body.extra', primary: null, other: '{"x":1}' },
    ]);
  });

  test('a whole-body change at the root', () => {
    expect(names(diff(jsonText('1'), jsonText('2')))).toEqual(['body:changed']);
    expect(names(diff(jsonText('{}'), jsonText('[]')))).toEqual(['body:type']);
  });

  test('each (path, kind) once: the first exact path and values are kept', () => {
    const items = (f: (i: number) => number) => Array.from({ length: 100 }, (_, i) => ({ price: f(i) }));
    const d = diff(json({ items: items((i) => i) }), json({ items: items((i) => (i >= 7 ? i + 1 : i)) }));
    expect(d).toEqual([{ path: 'body.items[*].price', kind: 'changed', exactPath: 'body.items[7].price', primary: '7', other: '8' }]);
  });

  test(`at most ${MAX_DIFFERENCES} differences, then the list stops`, () => {
    const wide = (v: number) => {
      const o: Record<string, Record<string, number>> = {};
      for (let i = 0; i < 40; i++) {
        const inner: Record<string, number> = {};
        for (let j = 0; j < 40; j++) inner[`k${j}`] = v;
        o[`o${i}`] = inner;
      }
      return o;
    };
    const d = diff(json(wide(1)), json(wide(2)));
    expect(d).toHaveLength(MAX_DIFFERENCES);
    expect(d[0].path).toBe('body.o0.k0');
    expect(new Set(names(d)).size).toBe(MAX_DIFFERENCES);
  });
});

describe('arrays', () => {
  test('ordered: the same elements in another order are one order difference', () => {
    const d = diff(json({ a: [1, 2, { x: [1] }] }), jsonText('{"a": [{"x": [1.0]}, 2, 1]}'));
    expect(d).toEqual([{ path: 'body.a', kind: 'order', exactPath: 'body.a', primary: '[1,2,{"x":[1]}]', other: '[{"x":[1]},2,1]' }]);
  });

  test('ordered: otherwise element by element, then surplus elements as missing or added', () => {
    expect(names(diff(json({ a: [1, 2, 3] }), json({ a: [1, 2, 4] })))).toEqual(['body.a[*]:changed']);
    const longer = diff(json({ a: [1, 2, 3] }), json({ a: [1, 2] }));
    expect(longer).toEqual([{ path: 'body.a[*]', kind: 'missing', exactPath: 'body.a[2]', primary: '3', other: null }]);
    const shorter = diff(json({ a: [9, 2] }), json({ a: [1, 2, 3, 4] }));
    expect(shorter).toEqual([
      { path: 'body.a[*]', kind: 'changed', exactPath: 'body.a[0]', primary: '9', other: '1' },
      { path: 'body.a[*]', kind: 'added', exactPath: 'body.a[2]', primary: null, other: '3' },
    ]);
  });

  test('unordered per path: compared as multisets, unmatched elements missing or added, no order kind', () => {
    const r = rules({ unorderedArrays: patterns('body.tags', 'body.users[*].roles') });
    expect(diff(json({ tags: ['a', 'b', 'b'] }), json({ tags: ['b', 'a', 'b'] }), r)).toEqual([]);
    expect(diff(json({ tags: ['a', 'b', 'b'] }), json({ tags: ['b', 'c', 'b'] }), r)).toEqual([
      { path: 'body.tags[*]', kind: 'missing', exactPath: 'body.tags[0]', primary: '"a"', other: null },
      { path: 'body.tags[*]', kind: 'added', exactPath: 'body.tags[1]', primary: null, other: '"c"' },
    ]);
    // Multiplicity counts: two b's are not one.
    expect(names(diff(json({ tags: ['a', 'b', 'b'] }), json({ tags: ['b', 'a'] }), r))).toEqual(['body.tags[*]:missing']);
    // Elements are matched whole, keys in any order and numbers by value.
    expect(diff(jsonText('{"tags": [{"a": 1, "b": 2.0}, 3]}'), jsonText('{"tags": [3, {"b": 2, "a": 1}]}'), r)).toEqual([]);
    // The rule is per path: another array keeps its order.
    expect(names(diff(json({ tags: [1, 2], other: [1, 2] }), json({ tags: [2, 1], other: [2, 1] }), r))).toEqual(['body.other:order']);
    // A nested unordered array is unordered inside an ordered one, and its reordering is no difference.
    const users = (roles: string[]) => json({ users: [{ id: 1, roles }, { id: 2, roles: [] }] });
    expect(diff(users(['r', 'w']), users(['w', 'r']), r)).toEqual([]);
    expect(names(diff(users(['r', 'w']), users(['w', 'x']), r))).toEqual(['body.users[*].roles[*]:missing', 'body.users[*].roles[*]:added']);
  });

  test('unordered inside unordered: elements match when only their inner unordered arrays are reordered', () => {
    const r = rules({ unorderedArrays: patterns('body.groups') });
    // body.groups covers its subtree, so body.groups[*].members is unordered too.
    const a = json({ groups: [{ members: [1, 2] }, { members: [3] }] });
    const b = json({ groups: [{ members: [3] }, { members: [2, 1] }] });
    expect(diff(a, b, r)).toEqual([]);
  });
});

describe('numbers', () => {
  test('tolerance: |a − b| <= tolerance is equal, beyond it changed', () => {
    const r = rules({ numberTolerance: 0.5 });
    expect(diff(json({ p: 10.25 }), json({ p: 10 }), r)).toEqual([]);
    expect(diff(json({ p: 10 }), json({ p: 10.5 }), r)).toEqual([]);
    expect(names(diff(json({ p: 10 }), json({ p: 10.5001 }), r))).toEqual(['body.p:changed']);
    expect(names(diff(json({ p: 10 }), json({ p: 10.25 })))).toEqual(['body.p:changed']);
    // In unordered arrays too: elements within the tolerance match.
    const u = rules({ numberTolerance: 0.5, unorderedArrays: patterns('body.v') });
    expect(diff(json({ v: [{ x: 1 }, { x: 5 }] }), json({ v: [{ x: 5.001 }, { x: 1.002 }] }), u)).toEqual([]);
  });

  test('integers past 2^53 compare exactly (JSON.parse makes these equal), and never within a tolerance', () => {
    expect(JSON.parse('9007199254740993')).toBe(JSON.parse('9007199254740992'));
    expect(diff(jsonText('{"id": 9007199254740993}'), jsonText('{"id": 9007199254740992}'))).toEqual([
      { path: 'body.id', kind: 'changed', exactPath: 'body.id', primary: '9007199254740993', other: '9007199254740992' },
    ]);
    expect(diff(jsonText('{"id": 12345678901234567890}'), jsonText('{"id": 12345678901234567891}'))).toEqual([
      { path: 'body.id', kind: 'changed', exactPath: 'body.id', primary: '12345678901234567890', other: '12345678901234567891' },
    ]);
    const r = rules({ numberTolerance: 1000 });
    expect(names(diff(jsonText('[9007199254740993]'), jsonText('[9007199254740992]'), r))).toEqual(['body[*]:changed']);
    expect(diff(jsonText('[12345678901234567890, 1e21]'), jsonText('[12345678901234567890, 1000000000000000000000]'))).toEqual([]);
    // Big ids reordered are an order difference, not two changes.
    expect(names(diff(jsonText('[9007199254740993, 9007199254740992]'), jsonText('[9007199254740992, 9007199254740993]')))).toEqual(['body:order']);
  });

  test('a decimal a double would round is kept exact too', () => {
    expect(JSON.parse('0.30000000000000000001')).toBe(JSON.parse('0.3'));
    expect(names(diff(jsonText('[0.30000000000000000001]'), jsonText('[0.3]')))).toEqual(['body[*]:changed']);
  });
});

describe('keys in counting paths', () => {
  test('a key that is not plain counts as *, with its real key quoted in the exact path', () => {
    const a = json({ users: { 'u 1': { n: 1 }, '2024-01-01': 5, ok: 1 } });
    const b = json({ users: { 'u 1': { n: 2 }, '2024-01-01': 6, ok: 2 } });
    expect(diff(a, b)).toEqual([
      { path: 'body.users.*.n', kind: 'changed', exactPath: 'body.users["u 1"].n', primary: '1', other: '2' },
      { path: 'body.users.*', kind: 'changed', exactPath: 'body.users["2024-01-01"]', primary: '5', other: '6' },
      { path: 'body.users.ok', kind: 'changed', exactPath: 'body.users.ok', primary: '1', other: '2' },
    ]);
  });

  test('every key of an object with more than 50 keys is *, on either side', () => {
    const obj = (n: number, v: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i === 7 ? v : i]));
    expect(diff(json({ m: obj(51, 0) }), json({ m: obj(51, 1) }))).toEqual([
      { path: 'body.m.*', kind: 'changed', exactPath: 'body.m.k7', primary: '0', other: '1' },
    ]);
    expect(names(diff(json({ m: obj(50, 0) }), json({ m: obj(50, 1) })))).toEqual(['body.m.k7:changed']);
    expect(names(diff(json({ m: obj(50, 7) }), json({ m: obj(51, 7) })))).toEqual(['body.m.*:added']);
  });
});

describe('body formats', () => {
  const text = (body: string | Buffer, type = 'text/plain; charset=utf-8') => response({ headers: { 'content-type': type }, body });

  test('text: one body:changed with the first differing line of each side', () => {
    expect(diff(text('a\nb\nc\n'), text('a\nB\nc\n'))).toEqual([
      { path: 'body', kind: 'changed', exactPath: 'body', primary: '"b\\n"', other: '"B\\n"' },
    ]);
    expect(diff(text('a\r\nb'), text('a\nb'))[0]).toMatchObject({ primary: '"a\\r\\n"', other: '"a\\n"' });
    expect(diff(text('a\n'), text('a\nmore'))[0]).toMatchObject({ primary: null, other: '"more"' });
    for (const type of ['application/xml', 'application/javascript', 'application/x-www-form-urlencoded', 'text/csv', 'image/svg+xml']) {
      expect(diff(text('x=1', type), text('x=2', type))[0]).toMatchObject({ primary: '"x=1"', other: '"x=2"' });
    }
  });

  test('text: in a long line the value starts shortly before the difference', () => {
    const a = `${'x'.repeat(5000)}A${'y'.repeat(500)}`;
    const b = `${'x'.repeat(5000)}B${'y'.repeat(500)}`;
    const d = diff(text(a), text(b))[0];
    expect(d.primary).toMatch(/^"…x{40}Ay+…$/);
    expect(d.other).toMatch(/^"…x{40}By+…$/);
  });

  test('JSON that does not parse under auto is compared as text; a primary type that is not JSON is not parsed', () => {
    expect(diff(jsonText('{"a": 1,}'), jsonText('{"a": 2,}'))[0]).toMatchObject({ path: 'body', kind: 'changed', primary: '"{\\"a\\": 1,}"' });
    expect(names(diff(response({ headers: { 'content-type': 'text/html' }, body: '{"a":1}' }), json({ a: 2 })))).toEqual([
      'header.content-type:changed',
      'body:changed',
    ]);
  });

  test('+json types and parameters are JSON', () => {
    const pj = (v: unknown) => response({ headers: { 'content-type': 'Application/Problem+JSON; charset=utf-8' }, body: JSON.stringify(v) });
    expect(names(diff(pj({ title: 'a' }), pj({ title: 'b' })))).toEqual(['body.title:changed']);
  });

  test('bytes: other types, or no type, are one body:changed without values', () => {
    const bin = (b: Buffer) => response({ headers: { 'content-type': 'application/octet-stream' }, body: b });
    expect(diff(bin(Buffer.from([1, 2])), bin(Buffer.from([1, 3])))).toEqual([
      { path: 'body', kind: 'changed', exactPath: 'body', primary: null, other: null },
    ]);
    expect(diff(response({ body: '{"a":1}' }), response({ body: '{"a":2}' }))).toEqual([
      { path: 'body', kind: 'changed', exactPath: 'body', primary: null, other: null },
    ]);
  });

  test('bodyFormat forces the format: text, bytes, json', () => {
    const bin = (s: string) => response({ headers: { 'content-type': 'application/octet-stream' }, body: s });
    expect(diff(bin('a\nb'), bin('a\nc'), rules({ bodyFormat: 'text' }))[0]).toMatchObject({ primary: '"b"', other: '"c"' });
    expect(diff(json({ a: 1 }), json({ a: 2 }), rules({ bodyFormat: 'bytes' }))).toEqual([
      { path: 'body', kind: 'changed', exactPath: 'body', primary: null, other: null },
    ]);
    expect(names(diff(bin('{"a":1}'), bin('{"a":2}'), rules({ bodyFormat: 'json' })))).toEqual(['body.a:changed']);
  });

  test('json forced: a side that does not parse is a body type difference naming that side', () => {
    const r = rules({ bodyFormat: 'json', ignoreAllHeaders: true });
    expect(diff(json({ a: 1 }), response({ body: '<html>' }), r)).toEqual([
      { path: 'body', kind: 'type', exactPath: 'body', primary: '"json"', other: '"not json: unexpected character at 0"' },
    ]);
    expect(diff(response({ body: '{"a":' }), json({ a: 1 }), r)[0]).toMatchObject({ kind: 'type', primary: '"not json: unexpected end at 5"', other: '"json"' });
    // Neither parses: they differ as text.
    expect(diff(response({ body: 'oops 1' }), response({ body: 'oops 2' }), r)[0]).toMatchObject({ kind: 'changed', primary: '"oops 1"' });
  });

  test(`nesting past ${MAX_JSON_DEPTH} is not parsed: text under auto, a type difference under json`, () => {
    const nest = (n: number, leaf: string) => '['.repeat(n) + leaf + ']'.repeat(n);
    const a = jsonText(nest(MAX_JSON_DEPTH + 1, '1'));
    const b = jsonText(nest(MAX_JSON_DEPTH + 1, '2'));
    expect(names(diff(a, b))).toEqual(['body:changed']);
    expect(names(diff(a, jsonText(nest(MAX_JSON_DEPTH, '2')), rules({ bodyFormat: 'json' })))).toEqual(['body:type']);
    // At the bound itself the walk goes all the way down.
    const d = diff(jsonText(nest(MAX_JSON_DEPTH, '1')), jsonText(nest(MAX_JSON_DEPTH, '2')));
    expect(d).toHaveLength(1);
    expect(d[0].path).toBe(`body${'[*]'.repeat(MAX_JSON_DEPTH)}`);
    expect(d[0].exactPath).toBe(`body${'[0]'.repeat(MAX_JSON_DEPTH)}`);
  });
});

describe('values shown', () => {
  const loneSurrogate = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

  test('cut to 200 characters, never inside a surrogate pair', () => {
    // Rendered: a quote, 197 a's, then the emoji's two halves at 198 and 199: a cut at 199 would split it.
    const s = `${'a'.repeat(197)}😀${'b'.repeat(50)}`;
    const d = diff(json({ s }), json({ s: 'x' }))[0];
    expect(d.primary).toBe(`"${'a'.repeat(197)}…`);
    expect(d.other).toBe('"x"');
    for (let lead = 190; lead < 205; lead++) {
      const v = diff(json({ s: `${'a'.repeat(lead)}${'😀'.repeat(30)}` }), json({ s: '' }))[0].primary as string;
      expect(v.length).toBeLessThanOrEqual(200);
      expect(loneSurrogate.test(v)).toBe(false);
    }
  });

  test('a large subtree renders at most 200 characters', () => {
    const big = Array.from({ length: 20_000 }, (_, i) => ({ id: i, name: `item ${i}` }));
    const d = diff(json({ big }), json({ big: null }))[0];
    expect(d.kind).toBe('type');
    expect((d.primary as string).length).toBe(200);
    expect(d.primary).toMatch(/^\[\{"id":0,"name":"item 0"\},/);
  });
});
