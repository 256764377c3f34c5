import { compareResponses } from '../../src/compare/diff/compare-responses';
import type { CompareRules } from '../../src/compare/types';
import { diff, json, jsonText, names, patterns, response, rules } from '../harness/captured-response';

// The response diff on random input: it never throws, and on random JSON trees it agrees with
// what the trees are (respelled: equal; one leaf changed: unequal). Fixed seeds: a failure repeats.

describe('never throws', () => {
  function random(seed: number): () => number {
    let s = seed >>> 0;
    return () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    };
  }
  const next = random(20240601);
  const TOKENS = ['{', '}', '[', ']', ',', ':', '"a"', '"\\u', '"\\ud83d"', '1', '-', '0.5e', '9007199254740993', 'true', 'nul', ' ', '\n', '"', '\\', '\u0000', 'é', '😀'];

  function garbage(): Buffer {
    const n = Math.floor(next() * 64);
    if (next() < 0.5) return Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256)));
    return Buffer.from(Array.from({ length: n }, () => TOKENS[Math.floor(next() * TOKENS.length)]).join(''), 'utf8');
  }

  test('300 random bodies under every format and type, each compared to another', () => {
    const types = ['application/json', 'text/plain', 'application/octet-stream', 'application/x+json'];
    const formats: CompareRules['bodyFormat'][] = ['auto', 'json', 'text', 'bytes'];
    const started = Date.now();
    for (let i = 0; i < 300; i++) {
      const type = types[i % types.length];
      const format = formats[(i >> 2) % formats.length];
      const a = response({ headers: { 'content-type': type }, body: garbage() });
      const b = response({ headers: { 'content-type': type }, body: garbage() });
      const r = rules({ bodyFormat: format, unorderedArrays: patterns('body'), numberTolerance: i % 3 });
      const d = compareResponses(a, b, r);
      for (const x of d) expect(x.path.startsWith('body')).toBe(true);
      // Text and bytes decide by the hash alone: differing bytes are always one body:changed.
      if (format === 'text' || format === 'bytes') expect(names(d)).toEqual(a.body.equals(b.body) ? [] : ['body:changed']);
    }
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  // Random JSON trees: a tree against itself respelled (keys shuffled, whitespace) has no
  // difference; against itself with one leaf changed it has at least one.
  function tree(depth: number): unknown {
    const pick = next();
    if (depth <= 0 || pick < 0.3) {
      const leaves = [null, true, false, 0, -1.5, 1e21, 'x', '', '😀', Math.floor(next() * 100)];
      return leaves[Math.floor(next() * leaves.length)];
    }
    const n = Math.floor(next() * 5);
    if (pick < 0.6) return Array.from({ length: n }, () => tree(depth - 1));
    return Object.fromEntries(Array.from({ length: n }, (_, i) => [next() < 0.8 ? `k${i}` : `key ${i}`, tree(depth - 1)]));
  }
  function respell(v: unknown): string {
    if (Array.isArray(v)) return `[ ${v.map(respell).join(' ,\n')} ]`;
    if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v).reverse();
      return `{${entries.map(([k, x]) => `${JSON.stringify(k)} : ${respell(x)}`).join(',')}}`;
    }
    return typeof v === 'number' && Number.isSafeInteger(v) ? `${v}.0` : JSON.stringify(v);
  }
  function changeOneLeaf(v: unknown, path: { done: boolean }): unknown {
    if (path.done) return v;
    if (Array.isArray(v)) return v.map((x) => changeOneLeaf(x, path));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, changeOneLeaf(x, path)]));
    path.done = true;
    return typeof v === 'number' ? -v - 1 : `${String(v)}!`;
  }

  test('200 random JSON trees: respelled equal, one leaf changed unequal', () => {
    for (let i = 0; i < 200; i++) {
      const t = tree(6);
      const a = jsonText(JSON.stringify(t));
      expect(diff(a, jsonText(respell(t)))).toEqual([]);
      const mark = { done: false };
      const changed = changeOneLeaf(t, mark);
      if (mark.done) expect(diff(a, json(changed)).length).toBeGreaterThan(0);
    }
  });
});
