import { type EncodingOffer, chooseEncoding, parseAcceptEncoding } from '../../src/http/filters/accept-encoding';

// Envoy's chooseEncoding, case by case: the q-value parse, what q=0 and * do, ties, and which
// compressors a content type leaves in the choice.

const TEXT = new Set(['text/plain', 'application/json']);
const gzip: EncodingOffer = { encoding: 'gzip', chooseFirst: false, contentTypes: TEXT };
const br: EncodingOffer = { encoding: 'br', chooseFirst: false, contentTypes: new Set(['application/json']) };
const choose = (header: string, type = 'application/json', offers: EncodingOffer[] = [gzip, br]): string =>
  `${chooseEncoding(header, type, offers).encoding}/${chooseEncoding(header, type, offers).verdict}`;

test('parse: names trimmed and lowercased, q-values read, an entry with a q-value that does not parse dropped', () => {
  expect(parseAcceptEncoding(' GZIP ;q=0.5, br, , deflate;q=x, *;Q=0 ,zstd;level=1')).toEqual([
    { name: 'gzip', q: 0.5 }, { name: 'br', q: 1 }, { name: '*', q: 0 }, { name: 'zstd', q: 1 },
  ]);
});

test('choice by q-value, then header order; choose_first wins a tie', () => {
  expect(choose('gzip;q=0.4, br;q=0.6')).toBe('br/valid');
  expect(choose('gzip, br')).toBe('gzip/valid');
  expect(choose('gzip, br', 'application/json', [gzip, { ...br, chooseFirst: true }])).toBe('br/valid');
});

test('identity, *, q=0 and encodings nobody offers', () => {
  expect(choose('identity')).toBe('identity/identity');
  expect(choose('identity;q=0.5, gzip')).toBe('gzip/valid');
  expect(choose('*')).toBe('gzip/wildcard');
  expect(choose('gzip;q=0, *')).toBe('br/wildcard');
  expect(choose('deflate')).toBe('identity/not_valid');
  expect(choose('')).toBe('identity/not_valid');
  expect(choose('gzip;q=0')).toBe('identity/not_valid');
});

test('a compressor that does not take the content type is out; without a content type all are in', () => {
  expect(choose('br, gzip', 'text/plain')).toBe('gzip/valid');
  expect(choose('br', 'text/plain')).toBe('identity/not_valid');
  expect(choose('br, gzip', '')).toBe('br/valid');
});
