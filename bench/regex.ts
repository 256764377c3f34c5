#!/usr/bin/env node
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { compileRe2, compileRe2Rewrite } from '../src/util/re2';

// `npm run bench:regex`: what one regex match costs on the hot path, RE2 (re2js, what sidemirror
// runs) against JavaScript's backtracking RegExp (what it ran before), for a few typical route,
// header and rewrite regexes and one hostile one. In-process, no servers; bounded in time.

interface Case {
  readonly name: string;
  readonly pattern: string;
  readonly input: string;
  /** 'full': safe_regex/header full match; 'search': admin filter; 'rewrite': regex_rewrite. */
  readonly kind: 'full' | 'search' | 'rewrite';
  readonly substitution?: string;
  /** The JS RegExp case is skipped: it would not finish. */
  readonly jsSkip?: string;
}

const UUID = '3f2c1a9e-8b7d-4c6e-9f10-2a3b4c5d6e7f';
const CASES: readonly Case[] = [
  { name: 'path id', pattern: '/re/[0-9]+', input: '/re/123456', kind: 'full' },
  { name: 'path id (miss)', pattern: '/re/[0-9]+', input: '/re/123456/more', kind: 'full' },
  { name: 'other route (miss)', pattern: '/re/[0-9]+', input: '/static/app/bundle.min.js', kind: 'full' },
  { name: 'REST path', pattern: '^/api/v1/users/[0-9]+/orders/[a-f0-9-]{36}$', input: `/api/v1/users/42/orders/${UUID}`, kind: 'full' },
  { name: 'alternation', pattern: '/(v1|v2|v3)/[^/]+/items(/[0-9]+)?', input: '/v2/catalog/items/991', kind: 'full' },
  { name: 'static suffix', pattern: '.*\\.(css|js|png|svg)', input: '/static/app/bundle.min.js', kind: 'full' },
  { name: 'header value', pattern: 'v[0-9]+(\\.[0-9]+)*', input: 'v12.3.4', kind: 'full' },
  { name: 'stats filter', pattern: 'upstream_rq', input: 'cluster.service1.upstream_rq_total', kind: 'search' },
  { name: 'rewrite', pattern: '^/rx/([0-9]+)/item$', input: '/rx/4242/item', kind: 'rewrite', substitution: '/items/\\1' },
  { name: '(a+)+b, 22 a', pattern: '/(a+)+b', input: `/${'a'.repeat(22)}`, kind: 'full' },
  { name: '(a+)+b, 10 KB', pattern: '/(a+)+b', input: `/${'a'.repeat(10 * 1024)}`, kind: 'full', jsSkip: 'exponential: would not finish' },
];

type Fn = () => unknown;

function re2Fn(c: Case): Fn {
  if (c.kind === 'rewrite') {
    const r = compileRe2Rewrite(c.pattern, c.substitution!, { maxProgramSize: Infinity });
    if (!r.ok) throw new Error(r.error);
    return () => r.rewrite.replaceAll(c.input);
  }
  const r = compileRe2(c.pattern, { maxProgramSize: Infinity });
  if (!r.ok) throw new Error(r.error);
  const re = r.re;
  return c.kind === 'full' ? () => re.fullMatch(c.input) : () => re.search(c.input);
}

/** How sidemirror used RegExp before RE2: anchored for a full match, `$1` for `\1`. */
function jsFn(c: Case): Fn {
  if (c.kind === 'rewrite') {
    const re = new RegExp(c.pattern, 'g');
    const sub = c.substitution!.replace(/\\(\d)/g, '$$$1');
    return () => c.input.replace(re, sub);
  }
  const re = c.kind === 'full' ? new RegExp(`^(?:${c.pattern})$`) : new RegExp(c.pattern);
  return () => re.test(c.input);
}

let sink: unknown;

/** ns per call: the median of `samples` timed batches, each sized to take about `batchMs`. */
function nsPerCall(fn: Fn, batchMs: number, samples: number): number {
  // Warm up first, so that the JIT has compiled both engines before anything is timed.
  const warmUntil = Date.now() + batchMs;
  while (Date.now() < warmUntil) for (let i = 0; i < 100; i++) sink = fn();
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= batchMs / 4 || n >= 1 << 24) break;
    n *= 4;
  }
  const ns: number[] = [];
  for (let s = 0; s < samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) sink = fn();
    ns.push(Number(process.hrtime.bigint() - t0) / n);
  }
  ns.sort((a, b) => a - b);
  return ns[Math.floor(ns.length / 2)]!;
}

interface Result {
  name: string;
  pattern: string;
  inputChars: number;
  kind: Case['kind'];
  re2NsPerMatch: number;
  jsNsPerMatch: number | null;
  jsSkipped?: string;
  re2OverJs: number | null;
  sameAnswer: boolean | null;
}

function fmtNs(v: number | null): string {
  if (v === null) return '-';
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} ms`;
  if (v >= 1e4) return `${(v / 1e3).toFixed(1)} µs`;
  return `${v.toFixed(0)} ns`;
}

function table(rows: readonly Result[]): string {
  const head = ['case', 'kind', 'input', 'RE2 (re2js)', 'JS RegExp', 'RE2/JS'];
  const body = rows.map((r) => [r.name, r.kind, `${r.inputChars} ch`, fmtNs(r.re2NsPerMatch), r.jsSkipped ? 'skipped' : fmtNs(r.jsNsPerMatch), r.re2OverJs === null ? '-' : `${r.re2OverJs.toFixed(1)}x`]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export interface RegexBench {
  readonly settings: { batchMs: number; samples: number; engine: string; baseline: string };
  readonly rows: readonly Result[];
  readonly table: string;
}

/** Times every case; `quick` trades precision for time. Runs in this process, bounded in time. */
export function runRegexBench(quick: boolean, progress: (line: string) => void = () => undefined): RegexBench {
  const batchMs = quick ? 20 : 100;
  const samples = quick ? 3 : 7;
  const rows: Result[] = [];
  for (const c of CASES) {
    const re2 = re2Fn(c);
    const js = c.jsSkip ? null : jsFn(c);
    const re2Ns = nsPerCall(re2, batchMs, samples);
    const jsNs = js ? nsPerCall(js, batchMs, samples) : null;
    rows.push({
      name: c.name,
      pattern: c.pattern,
      inputChars: c.input.length,
      kind: c.kind,
      re2NsPerMatch: Math.round(re2Ns),
      jsNsPerMatch: jsNs === null ? null : Math.round(jsNs),
      ...(c.jsSkip ? { jsSkipped: c.jsSkip } : {}),
      re2OverJs: jsNs === null ? null : re2Ns / jsNs,
      sameAnswer: js ? re2() === js() : null,
    });
    progress(`regex ${c.name}: RE2 ${fmtNs(re2Ns)}, JS ${c.jsSkip ? 'skipped' : fmtNs(jsNs)}`);
  }
  void sink;
  return { settings: { batchMs, samples, engine: 're2js', baseline: 'RegExp (anchored ^(?:…)$ for full match)' }, rows, table: table(rows) };
}

function main(): void {
  const bench = runRegexBench(process.argv.includes('--quick'), (line) => process.stdout.write(`${line}\n`));
  process.stdout.write(`\n${bench.table}\n\n`);
  const report = {
    machine: { cpuModel: os.cpus()[0]?.model ?? 'unknown', cpuCount: os.cpus().length, node: process.version, loadavg1m: os.loadavg()[0] ?? 0 },
    date: new Date().toISOString(),
    settings: bench.settings,
    rows: bench.rows,
  };
  // dist/bench/regex.js → <repo>/bench/results
  const dir = path.join(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const file = path.join(dir, `regex-${report.date.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, json);
  fs.writeFileSync(path.join(dir, 'regex-latest.json'), json);
  process.stdout.write(`results: ${path.relative(process.cwd(), file) || file} (and regex-latest.json)\n`);
}

if (require.main === module) main();
