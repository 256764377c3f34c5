import { Readable } from 'node:stream';
import type { H1Exchange } from '../../src/upstream/h1/exchange';
import { idleTimeoutFor } from '../../src/upstream/h1/raw-headers';
import { type RequestHead, prepareRequest } from '../../src/upstream/h1/request-head';
import { bodyLength, requestHead } from '../../src/upstream/h1/request-writer';
import type { UpstreamDispatchOptions } from '../../src/upstream/h2-pool';

// The HTTP/1.1 pool's request checks and framing, as pure functions (the pool's integration tests
// send the same requests to real servers).

function head(opts: Partial<UpstreamDispatchOptions>): RequestHead {
  const into: RequestHead = { method: '', path: '', hostLine: null, lines: '', declaredLength: -1, reset: false, upgrade: null, body: null };
  prepareRequest(into, { method: 'GET', path: '/', ...opts } as UpstreamDispatchOptions);
  return into;
}

test('header values as undici takes them: lists as repeated lines, null as empty, numbers coerced; host and content-length taken out', () => {
  const h = head({ headers: { 'x-list': ['a', 'b'], 'x-null': null, 'x-num': 7, host: 'up.example', 'content-length': '12', 'x-skip': undefined } as unknown as Record<string, string> });
  expect(h.lines).toBe('x-list: a\r\nx-list: b\r\nx-null: \r\nx-num: 7\r\n');
  expect(h.hostLine).toBe('host: up.example\r\n');
  expect(h.declaredLength).toBe(12);
  expect(requestHead(h as H1Exchange, 'host: default\r\n', false)).toBe('GET / HTTP/1.1\r\nhost: up.example\r\nconnection: keep-alive\r\nx-list: a\r\nx-list: b\r\nx-null: \r\nx-num: 7\r\n');
});

test('objects and functions as values are refused; the pool\'s own headers are known in any case; `__proto__` is a header like any other', () => {
  expect(() => head({ headers: { 'x-obj': {} } as unknown as Record<string, string> })).toThrow('invalid x-obj header');
  expect(() => head({ headers: { 'x-fn': [() => 'x'] } as unknown as Record<string, string> })).toThrow('invalid x-fn header');
  expect(() => head({ headers: { 'Transfer-Encoding': 'chunked' } })).toThrow('invalid transfer-encoding header');
  const own: Record<string, string> = {};
  Object.defineProperty(own, '__proto__', { value: 'x', enumerable: true });
  expect(head({ headers: own }).lines).toBe('__proto__: x\r\n');
});

test('framing: GET sends no length, POST says 0, a Buffer its own length; a disagreeing declared length refuses only methods that must send one', () => {
  expect(bodyLength(head({}))).toBeNull();
  expect(bodyLength(head({ method: 'POST' }))).toBe(0);
  expect(bodyLength(head({ method: 'POST', body: Buffer.from('abc') }))).toBe(3);
  expect(bodyLength(head({ method: 'POST', body: 'héllo' }))).toBe(6);
  expect(bodyLength(head({ method: 'POST', body: Buffer.from('abc'), headers: { 'content-length': '4' } }))).toBeInstanceOf(Error);
  expect(bodyLength(head({ method: 'GET', body: Buffer.from('abc'), headers: { 'content-length': '4' } }))).toBe(3);
  expect(bodyLength(head({ method: 'POST', body: new Readable({ read() {} }) }))).toBeNull();
  expect(bodyLength(head({ method: 'POST', body: new Readable({ read() {} }), headers: { 'content-length': '9' } }))).toBe(9);
});

test('the upstream\'s keep-alive timeout, less 2 s, bounded by the configured one (0: none)', () => {
  expect(idleTimeoutFor(undefined, 4000)).toBe(4000);
  expect(idleTimeoutFor('timeout=5, max=100', 60_000)).toBe(3000);
  expect(idleTimeoutFor('timeout=5', 1000)).toBe(1000);
  expect(idleTimeoutFor('timeout=5', 0)).toBe(3000);
  expect(idleTimeoutFor('timeout=2', 60_000)).toBe(-1);
  expect(idleTimeoutFor('max=5', 60_000)).toBe(60_000);
});
