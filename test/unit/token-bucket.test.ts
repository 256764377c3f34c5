import { TokenBucket } from '../../src/http/filters/token-bucket';

// The local rate limit's bucket on a clock the test drives: full at the start, continuous
// refill from elapsed time, capped at max_tokens, whole tokens only.

describe('TokenBucket', () => {
  test('starts full and refuses once empty', () => {
    const b = new TokenBucket(3, 3, 60_000, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.remaining(0)).toBe(0);
  });

  test('refills continuously: 2 per second is one token every 500 ms', () => {
    const b = new TokenBucket(2, 2, 1000, 0);
    b.take(0);
    b.take(0);
    expect(b.take(499)).toBe(false);
    expect(b.take(500)).toBe(true);
    expect(b.take(500)).toBe(false);
    // Half a token is not a token, and the half is kept.
    expect(b.take(750)).toBe(false);
    expect(b.take(1000)).toBe(true);
  });

  test('never holds more than max_tokens however long it idles', () => {
    const b = new TokenBucket(2, 1, 100, 0);
    b.take(0);
    expect(b.remaining(1_000_000)).toBe(2);
    expect([b.take(1_000_000), b.take(1_000_000), b.take(1_000_000)]).toEqual([true, true, false]);
  });

  test('a clock that goes back adds nothing', () => {
    const b = new TokenBucket(1, 1, 1000, 5000);
    b.take(5000);
    expect(b.take(4000)).toBe(false);
    expect(b.take(5999)).toBe(false);
    expect(b.take(6000)).toBe(true);
  });

  test('X-RateLimit-Reset: 0 while a token is there, else the whole seconds one token takes', () => {
    const b = new TokenBucket(1, 2, 5000, 0);
    expect(b.resetSeconds(0)).toBe(0);
    b.take(0);
    expect(b.resetSeconds(0)).toBe(2);
  });
});
