// The request checks as pure functions over a request head (what Node's parser hands us).
import { type RequestHead, type ValidationSettings, absoluteTarget, authorityIsValid, checkRequest } from '../../src/http/request-validation';

const DEFAULTS: ValidationSettings = {
  http1: { allowAbsoluteUrl: true, acceptHttp10: false, defaultHostForHttp10: '' },
  validateScheme: false,
  paths: { normalizePath: false, mergeSlashes: false, escapedSlashesAction: 'KEEP_UNCHANGED' },
};

const head = (url: string, rawHeaders: string[] = ['Host', 'example.com'], httpVersion = '1.1', method = 'GET'): RequestHead => ({ url, rawHeaders, httpVersion, method });

describe('authorityIsValid', () => {
  test.each(['example.com', 'example.com:8080', 'a', 'localhost:10000', '127.0.0.1', '127.0.0.1:1', '[::1]', '[::1]:8080', '[2001:db8::7]', 'a-b.c_d~e', 'xn--9ca.com', '%41bc', "sub!$&'()*+,;=.x"])('%j is valid', (a) => {
    expect(authorityIsValid(a)).toBe(true);
  });
  test.each(['', 'a b', 'evil.com/x?@a', 'user@host', '[::1', '[::1]x', '[nothex]', 'a:b:c', 'a:', 'a:123456', 'a:65536', ':80', 'a]', 'a[b', '%zz', 'a%4', 'é', 'a\tb', 'a"b'])('%j is refused', (a) => {
    expect(authorityIsValid(a)).toBe(false);
  });
});

describe('absoluteTarget', () => {
  test.each([
    ['http://x/secret', { scheme: 'http', authority: 'x', path: '/secret' }],
    ['http://X.example:80/a?b=1', { scheme: 'http', authority: 'x.example', path: '/a?b=1' }],
    ['http://x.example:8080', { scheme: 'http', authority: 'x.example:8080', path: '/' }],
    ['https://user:pw@x/a', { scheme: 'https', authority: 'x', path: '/a' }],
  ])('%s', (target, expected) => {
    expect(absoluteTarget(target)).toEqual(expected);
  });
  test.each(['ftp://x/', 'http://', 'http://foobar.com:1000000/', 'www.example.com', 'localhost:80/x', '*'])('%j is refused', (t) => {
    expect(absoluteTarget(t)).toBeNull();
  });
});

describe('checkRequest', () => {
  test('a plain HTTP/1.1 request passes unchanged', () => {
    expect(checkRequest(head('/a?b'), DEFAULTS)).toEqual({ ok: true, authority: 'example.com', path: '/a?b' });
  });

  test.each([
    ['Host: a b', head('/', ['Host', 'a b']), 400],
    ['Host: evil.com/x?@a', head('/', ['Host', 'evil.com/x?@a']), 400],
    ['Host: [::1', head('/', ['Host', '[::1']), 400],
    ['two Host lines', head('/', ['Host', 'a', 'host', 'a']), 400],
    ['HTTP/1.0', head('/', ['Host', 'a'], '1.0'), 426],
    ['HTTP/1.0 without Host', head('/', [], '1.0'), 426],
    ['no version (HTTP/0.9)', head('/', [], '0.9'), 426],
    ['HTTP/2.0 on an HTTP/1 connection', head('/', ['Host', 'a'], '2.0'), 426],
    ['absolute-form with a bad port', head('http://a:99999/'), 400],
    ['absolute-form ftp', head('ftp://a/'), 400],
    ['GET *', head('*'), 400],
  ])('%s: codec error %d, connection closed, counted as a protocol error', (_name, req, status) => {
    expect(checkRequest(req, DEFAULTS)).toMatchObject({ ok: false, status, counter: 'protocol_error', close: true });
  });

  test('HTTP/1.1 without Host: 400 from the connection manager, connection kept', () => {
    expect(checkRequest(head('/', []), DEFAULTS)).toEqual({ ok: false, status: 400, body: '', counter: null, close: false });
  });

  test('OPTIONS * is not a relative path: 404, counted', () => {
    expect(checkRequest(head('*', ['Host', 'a'], '1.1', 'OPTIONS'), DEFAULTS)).toMatchObject({ ok: false, status: 404, counter: 'non_relative_path' });
  });

  test('without allow_absolute_url an absolute target is a non-relative path: 404', () => {
    const s = { ...DEFAULTS, http1: { ...DEFAULTS.http1, allowAbsoluteUrl: false } };
    expect(checkRequest(head('http://x/secret'), s)).toMatchObject({ ok: false, status: 404, counter: 'non_relative_path' });
  });

  test('absolute-form: routed by the URI authority, origin-form path; the Host line is ignored', () => {
    expect(checkRequest(head('http://x:8080/secret?q=1', ['Host', 'other']), DEFAULTS)).toEqual({ ok: true, authority: 'x:8080', path: '/secret?q=1' });
  });

  test('an edge proxy refuses https:// targets over plaintext with 403', () => {
    expect(checkRequest(head('https://x/'), { ...DEFAULTS, validateScheme: true })).toMatchObject({ ok: false, status: 403, close: true });
    expect(checkRequest(head('https://x/'), DEFAULTS)).toMatchObject({ ok: true, authority: 'x', path: '/' });
  });

  test('accept_http_10: served; default_host_for_http_10 fills a missing Host only', () => {
    const s = { ...DEFAULTS, http1: { allowAbsoluteUrl: true, acceptHttp10: true, defaultHostForHttp10: 'default.local' } };
    expect(checkRequest(head('/', [], '1.0'), s)).toEqual({ ok: true, authority: 'default.local', path: '/' });
    expect(checkRequest(head('/', ['Host', 'given'], '1.0'), s)).toEqual({ ok: true, authority: 'given', path: '/' });
    const noDefault = { ...s, http1: { ...s.http1, defaultHostForHttp10: '' } };
    expect(checkRequest(head('/', [], '1.0'), noDefault)).toMatchObject({ ok: false, status: 400, counter: null });
    // HTTP/1.1 gets no default host.
    expect(checkRequest(head('/', [], '1.1'), s)).toMatchObject({ ok: false, status: 400 });
  });

  test('path normalization: refusal 400, redirect 307 with the new path, gRPC never redirected', () => {
    const redirect = { ...DEFAULTS, paths: { normalizePath: true, mergeSlashes: true, escapedSlashesAction: 'UNESCAPE_AND_REDIRECT' as const } };
    expect(checkRequest(head('/a%2F%2Fb'), redirect)).toEqual({ ok: false, status: 307, body: '', counter: 'redirected_with_normalized_path', close: false, location: '/a/b' });
    const grpc: RequestHead = { ...head('/a%2Fb'), headers: { 'content-type': 'application/grpc' } };
    expect(checkRequest(grpc, redirect)).toMatchObject({ ok: false, status: 400, counter: 'failed_path_normalization' });
    expect(checkRequest(head('/a%00'), redirect)).toMatchObject({ ok: false, status: 400, counter: 'failed_path_normalization' });
    expect(checkRequest(head('/a/./b/../c'), redirect)).toEqual({ ok: true, authority: 'example.com', path: '/a/c' });
    expect(checkRequest(head('/a#frag'), DEFAULTS)).toMatchObject({ ok: false, status: 400, counter: 'failed_path_normalization' });
  });
});
