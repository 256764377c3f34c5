import { DEFAULT_THRESHOLDS, absoluteDifference, relativeDifference, requestOutcome, verdict } from '../../src/compare/noise';
import { PathPatternSet } from '../../src/compare/path-pattern';
import { diff, patterns } from '../harness/compare-results';

const T = DEFAULT_THRESHOLDS;

test("Diffy's defaults: 20 % relative, 0.03 % absolute", () => {
  expect(DEFAULT_THRESHOLDS).toEqual({ relative: 20, absolute: 0.03 });
});

test('a field differing only in the candidate is a diff', () => {
  expect(verdict(10, 0, 100, T)).toBe('diff');
});

test('raw must exceed noise: equal or fewer raw diffs are noise', () => {
  expect(verdict(10, 10, 100, T)).toBe('noise');
  expect(verdict(5, 10, 100, T)).toBe('noise');
});

test('relative difference must exceed the threshold (strictly)', () => {
  // 12 vs 8: |4| / 20 = 20 % — not above 20.
  expect(relativeDifference(12, 8)).toBeCloseTo(20);
  expect(verdict(12, 8, 100, T)).toBe('noise');
  // 13 vs 8: 5 / 21 = 23.8 %.
  expect(verdict(13, 8, 100, T)).toBe('diff');
});

test('absolute difference must exceed the threshold, as a share of all requests', () => {
  // 1 raw of 10,000 requests: 0.01 % — below 0.03 %.
  expect(absoluteDifference(1, 0, 10_000)).toBeCloseTo(0.01);
  expect(verdict(1, 0, 10_000, T)).toBe('noise');
  // 4 of 10,000: 0.04 %.
  expect(verdict(4, 0, 10_000, T)).toBe('diff');
  // With exactly 3 of 10,000 it is equal, not above.
  expect(verdict(3, 0, 10_000, T)).toBe('noise');
});

test('configurable thresholds are used', () => {
  expect(verdict(13, 8, 100, { relative: 30, absolute: 0 })).toBe('noise');
  expect(verdict(1, 0, 10_000, { relative: 20, absolute: 0 })).toBe('diff');
});

test('no requests, no differences: noise, and no division by zero', () => {
  expect(verdict(0, 0, 0, T)).toBe('noise');
  expect(relativeDifference(0, 0)).toBe(0);
  expect(absoluteDifference(1, 0, 0)).toBe(0);
});

describe('requestOutcome', () => {
  const none = new PathPatternSet();

  test('no raw differences: match (noise alone does not matter)', () => {
    expect(requestOutcome([], [diff('header.date', 'changed', 'a', 'b')], none)).toBe('match');
  });

  test('a raw difference not explained: diff', () => {
    expect(requestOutcome([diff('body.total', 'changed', '1', '2')], [], none)).toBe('diff');
  });

  test('a raw difference also in this request\'s noise (same path and kind): noise_only', () => {
    const d = diff('body.ts', 'changed', '1', '2');
    expect(requestOutcome([d], [diff('body.ts', 'changed', '1', '3')], none)).toBe('noise_only');
  });

  test('same path but another kind in the noise does not explain it', () => {
    expect(requestOutcome([diff('body.ts', 'missing', '1', null)], [diff('body.ts', 'changed', '1', '3')], none)).toBe('diff');
  });

  test('ignored on its counting path: noise_only; a rule covers its subtree, never a substring', () => {
    const rules = patterns('body.meta', 'header.date');
    expect(requestOutcome([diff('body.meta.ts', 'changed', '1', '2'), diff('header.date', 'changed', 'x', 'y')], [], rules)).toBe('noise_only');
    expect(requestOutcome([diff('body.metadata', 'changed', '1', '2')], [], rules)).toBe('diff');
  });

  test('one unexplained difference among explained ones: diff', () => {
    const rules = patterns('header.date');
    expect(requestOutcome([diff('header.date', 'changed', 'x', 'y'), diff('status', 'changed', '200', '500')], [], rules)).toBe('diff');
  });
});
