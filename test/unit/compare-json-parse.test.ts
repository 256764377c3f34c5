import { MAX_JSON_DEPTH, parseJsonBody, parseJsonText } from '../../src/compare/diff/json-parse';
import { decimalForm, numberFromToken } from '../../src/compare/diff/json-number';
import { ExactNumber, type JsonValue } from '../../src/compare/diff/json-value';

// The body parser: RFC 8259's grammar exactly, numbers kept exact where a double would change them,
// bounded depth, and a result (never an exception) for any input.

function value(text: string): JsonValue {
  const r = parseJsonText(text);
  if (!r.ok) throw new Error(`did not parse: ${r.error} at ${r.offset}`);
  return r.value;
}

test('values of every type; objects keep key order and take __proto__ as a plain key', () => {
  const v = value(' {"b": [1, -2.5e1, true, false, null], "a": "x\\u00e9\\n\\ud83d\\ude00", "__proto__": {}} ');
  expect(v).toBeInstanceOf(Map);
  const m = v as Map<string, JsonValue>;
  expect([...m.keys()]).toEqual(['b', 'a', '__proto__']);
  expect(m.get('b')).toEqual([1, -25, true, false, null]);
  expect(m.get('a')).toBe('xé\n😀');
  expect(m.get('__proto__')).toEqual(new Map());
});

test.each([
  ['', 'unexpected end'],
  ['{', 'expected a key'],
  ['[1,]', 'unexpected character'],
  ['{"a":1,}', 'expected a key'],
  ['01', 'bad number'],
  ['1.', 'bad number'],
  ['1e', 'bad number'],
  ['-', 'bad number'],
  ['+1', 'unexpected character'],
  ['.5', 'unexpected character'],
  ['NaN', 'unexpected character'],
  ["'a'", 'unexpected character'],
  ['"a\tb"', 'control character in a string'],
  ['"\\x"', 'bad escape'],
  ['"\\u12"', 'bad \\u escape'],
  ['"abc', 'unterminated string'],
  ['tru', 'unexpected character'],
  ['{"a":1}x', 'text after the JSON value'],
  ['{"a":1,"a":2}', 'duplicate key'],
  ['[1 2]', 'expected "," or "]"'],
])('%j is not JSON (%s)', (text, error) => {
  const r = parseJsonText(text);
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.error).toBe(error);
});

test('invalid UTF-8 is not JSON; a leading BOM is skipped', () => {
  expect(parseJsonBody(Buffer.from([0x22, 0xff, 0x22])).ok).toBe(false);
  expect(parseJsonBody(Buffer.from('\ufeff[1]', 'utf8'))).toEqual({ ok: true, value: [1] });
});

test(`nesting: ${MAX_JSON_DEPTH} containers parse, one more does not, and 100k opening brackets end quickly`, () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  expect(parseJsonText(deep(MAX_JSON_DEPTH)).ok).toBe(true);
  const over = parseJsonText(deep(MAX_JSON_DEPTH + 1));
  expect(over).toEqual({ ok: false, error: `nested deeper than ${MAX_JSON_DEPTH}`, offset: MAX_JSON_DEPTH });
  expect(parseJsonText('{"a":'.repeat(100_000)).ok).toBe(false);
});

describe('numbers', () => {
  test.each(['1', '-0', '1.0', '1e0', '0.1', '123.456', '-2.5e-3', '9007199254740991', '-9007199254740991', '1.5e-7', '5e-324'])(
    '%s is a double',
    (token) => {
      expect(typeof numberFromToken(token)).toBe('number');
      expect(numberFromToken(token)).toBe(Number(token));
    },
  );

  test.each([
    '9007199254740992', '9007199254740993', '-9007199254740993', '12345678901234567890', '1e21', '1e300',
    '0.10000000000000000001', '1e400', '1e-400', '3.141592653589793238462643383279',
  ])('%s is kept exact, as its text', (token) => {
    const n = numberFromToken(token);
    expect(n).toBeInstanceOf(ExactNumber);
    expect((n as ExactNumber).text).toBe(token);
  });

  test('the decimal form is one spelling per value', () => {
    expect(decimalForm('1.50e2')).toBe('15e1');
    expect(decimalForm('150')).toBe('15e1');
    expect(decimalForm('-0.00')).toBe('0');
    expect(decimalForm('0')).toBe('0');
    expect(decimalForm('1e+21')).toBe('1e21');
    expect(decimalForm('000.0012300')).toBe('123e-5');
    expect(decimalForm('1e99999999999999999999')).not.toBe(decimalForm('1e99999999999999999998'));
  });
});
