// The pure path transformations against the cases Envoy's own path_utility_test.cc checks.
import {
  canonicalPath,
  mergeSlashes,
  normalizeRequestPath,
  stripDotSegmentParameters,
  unescapeSlashes,
} from '../../src/http/path-normalization';

describe('canonicalPath (normalize_path: RFC 3986, Chromium/Envoy style)', () => {
  test.each([
    ['/xyz', '/xyz'],
    ['/x/y/z', '/x/y/z'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/./c', '/a/b/c'],
    ['a/b/../c', '/a/c'],
    ['/a/b/../../../../c', '/c'],
    ['/a/..\\c', '/c'],
    ['/%c0%af', '/%c0%af'],
    ['/%5c%25', '/%5c%25'],
    ['/a/b/%2E%2E/c', '/a/c'],
    ['/a/b/%2e%2e/c', '/a/c'],
    ['/a/b/%2E./c', '/a/c'],
    ['/a/b/%2E/c', '/a/b/c'],
    ['..', '/'],
    ['/../a/b', '/a/b'],
    ['/./a/b', '/a/b'],
    ['/A/B/C', '/A/B/C'],
    ['/a/%2F%2f/c', '/a/%2F%2f/c'],
    ['/xyz/..;foo=bar/abc', '/abc'],
    ['/..;foo=bar/abc', '/abc'],
    ['/xyz/..;foo=bar', '/'],
    ['/xyz/.;foo=bar/abc', '/xyz/abc'],
    ['/xyz/.;foo=bar', '/xyz/'],
    ['/..;foo=bar/abc/.;mmm', '/abc/'],
    ['/xyz/..;foo=bar/.;fff=zzz?blah=woops', '/?blah=woops'],
    ['/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query', '/remain;blah-bluh?query'],
    // Unreserved characters are decoded, others kept as sent; characters a path may not hold are encoded.
    ['/%41%7e%2d', '/A~-'],
    ['/a%20b', '/a%20b'],
    ['/a"b<c>', '/a%22b%3Cc%3E'],
    ['/a%zz', '/a%zz'],
    // The query is not touched.
    ['/a/../b?x=/../y', '/b?x=/../y'],
    // The brief's example: every dot segment resolved, %2e%2e included.
    ['/a//b/../../admin/%2e%2e/x', '/a/x'],
  ])('%s -> %s', (input, expected) => {
    expect(canonicalPath(input)).toBe(expected);
  });

  test.each(['/xyz/.%00../abc', '/xyz/%00.%00./abc', '/xyz/AAAAA%%0000/abc', '/a\u0000b'])('%j cannot be normalized', (input) => {
    expect(canonicalPath(input)).toBeNull();
  });
});

describe('mergeSlashes', () => {
  test.each([
    ['', ''],
    ['a//b/c', 'a/b/c'],
    ['/a//b/c/', '/a/b/c/'],
    ['a//b/c/', 'a/b/c/'],
    ['/a', '/a'],
    ['//a/b/c', '/a/b/c'],
    ['/a//b/c', '/a/b/c'],
    ['/a/b/c//', '/a/b/c/'],
    ['/a////b/c', '/a/b/c'],
    ['/a//b?a=///c', '/a/b?a=///c'],
    ['/a//b?', '/a/b?'],
    ['//a/?b', '/a/?b'],
  ])('%j -> %j', (input, expected) => {
    expect(mergeSlashes(input)).toBe(expected);
  });
});

describe('unescapeSlashes', () => {
  test.each([
    ['', ''],
    ['%2f%2F', '//'],
    ['/a%2Fb%2fc/', '/a/b/c/'],
    ['%2b', '%2b'],
    ['%2', '%2'],
    ['%%2fa/', '%/a/'],
    ['%2%2fa/', '%2/a/'],
    ['%5c%5C', '\\\\'],
    ['/x/%2E%2e/z%2f%2Fabc%5C../def', '/x/%2E%2e/z//abc\\../def'],
    ['%2fa%5Cb%2fc%5c?%2fabcd%5C%%2f%', '/a\\b/c\\?%2fabcd%5C%%2f%'],
  ])('%j -> %j', (input, expected) => {
    expect(unescapeSlashes(input)).toBe(expected);
  });
});

describe('stripDotSegmentParameters', () => {
  test.each([
    ['/xyz/..;foo=bar/abc', '/xyz/../abc'],
    ['/a/..;param1;param2/b', '/a/../b'],
    ['/xyz/..foo', '/xyz/..foo'],
    ['/xyz/...;foo', '/xyz/...;foo'],
    ['/xyz/remove/..;foo?param=/.;foo', '/xyz/remove/..?param=/.;foo'],
    ['/xyz?param=/..;foo', '/xyz?param=/..;foo'],
    ['/a/.;foo/b/.;bar/c', '/a/./b/./c'],
  ])('%j -> %j', (input, expected) => {
    expect(stripDotSegmentParameters(input)).toBe(expected);
  });
});

describe('normalizeRequestPath (maybeNormalizePath order)', () => {
  const off = { normalizePath: false, mergeSlashes: false, escapedSlashesAction: 'KEEP_UNCHANGED' } as const;

  test('nothing configured: the path is forwarded byte for byte', () => {
    expect(normalizeRequestPath('/a//b/../../admin/%2e%2e/x', off)).toEqual({ action: 'continue', path: '/a//b/../../admin/%2e%2e/x' });
  });

  test('a fragment is refused whatever the settings', () => {
    expect(normalizeRequestPath('/a#b', off)).toEqual({ action: 'reject' });
  });

  test.each([
    // [path, normalize_path, merge_slashes, action, expected]
    ['/a//b', false, true, 'KEEP_UNCHANGED', { action: 'continue', path: '/a/b' }],
    ['/a/%2F/b', false, false, 'KEEP_UNCHANGED', { action: 'continue', path: '/a/%2F/b' }],
    ['/a/%2F/b', false, false, 'REJECT_REQUEST', { action: 'reject' }],
    ['/a/b', false, false, 'REJECT_REQUEST', { action: 'continue', path: '/a/b' }],
    ['/a/%2F/b', false, false, 'UNESCAPE_AND_FORWARD', { action: 'continue', path: '/a///b' }],
    ['/a/%2F/b', false, true, 'UNESCAPE_AND_FORWARD', { action: 'continue', path: '/a/b' }],
    ['/a/%2F/b', false, true, 'UNESCAPE_AND_REDIRECT', { action: 'redirect', path: '/a/b' }],
    ['/a/b', true, true, 'UNESCAPE_AND_REDIRECT', { action: 'continue', path: '/a/b' }],
    // Unescaping runs before normalization: %5C becomes '\', which normalization makes a slash.
    ['/admin%5C..%5Cx', true, false, 'UNESCAPE_AND_FORWARD', { action: 'continue', path: '/x' }],
    ['/a/%2e%2e%2Fsecret', true, false, 'UNESCAPE_AND_FORWARD', { action: 'continue', path: '/secret' }],
    ['/a/%2e%2e%2Fsecret', true, false, 'KEEP_UNCHANGED', { action: 'continue', path: '/a/..%2Fsecret' }],
    ['/a//../b', true, true, 'KEEP_UNCHANGED', { action: 'continue', path: '/a/b' }],
    ['/x/%00', true, false, 'KEEP_UNCHANGED', { action: 'reject' }],
  ] as const)('%s normalize=%s merge=%s %s', (path, normalizePath, merge, action, expected) => {
    expect(normalizeRequestPath(path, { normalizePath, mergeSlashes: merge, escapedSlashesAction: action })).toEqual(expected);
  });
});
