import { headlineConns, parseSettings } from '../../bench/lib/settings';

// The bench's options: the defaults of the new ones, and a bad value refused with its name.

test('defaults: a fixed 2,000 req/s, both codecs, no multi-core mode', () => {
  const s = parseSettings([]);
  expect(s.rate).toBe(2000);
  expect(s.codecs).toEqual(['fast', 'node']);
  expect(s.concurrencyMode).toBeNull();
  expect(s.conns).toEqual([16, 64]);
});

test('--rate, --no-rate, --codecs, --concurrency-mode with --workers', () => {
  expect(parseSettings(['--rate', '500']).rate).toBe(500);
  expect(parseSettings(['--no-rate']).rate).toBeNull();
  expect(parseSettings(['--codecs', 'node']).codecs).toEqual(['node']);
  expect(parseSettings(['--concurrency-mode']).concurrencyMode).toEqual([1, 2, 4]);
  expect(parseSettings(['--concurrency-mode', '--workers', '1,3,3']).concurrencyMode).toEqual([1, 3]);
  // --workers alone does not turn the mode on.
  expect(parseSettings(['--workers', '2']).concurrencyMode).toBeNull();
});

test('bad values are refused, naming the option', () => {
  expect(() => parseSettings(['--codecs', 'fast,undici'])).toThrow(/--codecs takes fast, node, not "undici"/);
  expect(() => parseSettings(['--rate', '0'])).toThrow(/--rate must be a positive integer/);
  expect(() => parseSettings(['--concurrency-mode', '--workers', '2,x'])).toThrow(/--workers/);
});

test('the goals and the multi-core mode use c=64 when it ran, else the largest count', () => {
  expect(headlineConns([16, 64, 256])).toBe(64);
  expect(headlineConns([16, 32])).toBe(32);
});
