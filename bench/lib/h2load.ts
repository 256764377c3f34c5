import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnTracked, sleep, stopProcess } from './processes';

// Runs h2load (Debian's nghttp2-client) for the HTTP/2 rows and reads its report. h2load prints
// min/max/mean but no percentiles, so every request's time comes from its --log-file
// (start µs, status, µs until the response ended; status -1 for a failed stream).

export interface H2loadResult {
  /** Requests that completed with a response (h2load's "succeeded"). */
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** 4xx and 5xx responses (wrk's "Non-2xx or 3xx" counts the same ones). */
  non2xx: number;
  /** Streams that failed (reset, refused, cut by a closed connection, timed out). */
  socketErrors: number;
  /** h2load's own breakdown, when there were errors. */
  errorDetail?: string;
}

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1 };

/** Reads h2load's summary; null when it did not finish. */
export function parseH2load(out: string): Omit<H2loadResult, 'p50Ms' | 'p99Ms'> | null {
  const finished = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(out);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  if (!finished || !reqs || !codes) return null;
  const n = (m: RegExpExecArray, i: number): number => Number(m[i]);
  // A failed stream is counted as failed and again as errored (and timeout, if it timed out).
  const socketErrors = n(reqs, 5);
  const non2xx = n(codes, 3) + n(codes, 4);
  return {
    requests: n(reqs, 4),
    seconds: Number(finished[1]) * (UNIT_S[finished[2] as string] as number),
    rps: Number(finished[3]),
    non2xx,
    socketErrors,
    ...(socketErrors + non2xx > 0 ? { errorDetail: `${reqs[0]}; ${codes[0]}` } : {}),
  };
}

/** p50 and p99 (ms) of the response times in an h2load --log-file, failed streams left out. */
export function logPercentiles(text: string): { p50Ms: number | null; p99Ms: number | null } {
  const times: number[] = [];
  for (const line of text.split('\n')) {
    const cols = line.split('\t');
    if (cols.length < 3 || cols[1] === '-1') continue;
    const us = Number(cols[2]);
    if (Number.isFinite(us)) times.push(us);
  }
  if (times.length === 0) return { p50Ms: null, p99Ms: null };
  times.sort((a, b) => a - b);
  const at = (q: number): number => (times[Math.min(times.length - 1, Math.floor(q * times.length))] as number) / 1000;
  return { p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** What an HTTP/2 row sends: a GET, or a gRPC unary call (a POST of a framed message). */
export interface H2Request {
  readonly path: string;
  readonly headers?: readonly string[];
  /** File whose bytes are every request's body (makes it a POST). */
  readonly bodyFile?: string;
}

export interface H2loadOptions {
  port: number;
  conns: number;
  /** Streams in flight per connection (h2load -m). */
  streams: number;
  /** Exactly this many requests (h2load -n); at least conns × streams. */
  requests: number;
  /** h2load is killed after this long (the run then counts as failed). */
  timeCapS: number;
  request: H2Request;
  /** Where the per-request log goes (removed after reading). */
  logDir: string;
  cpus?: string;
}

/** One h2load run over prior-knowledge h2c. Null when h2load fails, overruns or prints nothing readable. */
export async function runH2load(o: H2loadOptions): Promise<{ result: H2loadResult | null; output: string }> {
  const logFile = path.join(o.logDir, `h2load-${process.pid}-${Date.now()}.tsv`);
  const args = ['-t', '1', '-c', String(o.conns), '-m', String(o.streams), '-n', String(Math.max(o.requests, o.conns * o.streams)),
    '--log-file', logFile, '--connection-inactivity-timeout', '10'];
  for (const h of o.request.headers ?? []) args.push('-H', h);
  if (o.request.bodyFile !== undefined) args.push('-d', o.request.bodyFile);
  args.push(`http://127.0.0.1:${o.port}${o.request.path}`);
  const p = spawnTracked('h2load', args, { cpus: o.cpus });
  const code = await Promise.race([p.exited, sleep(o.timeCapS * 1000).then(() => 'overrun')]);
  if (code === 'overrun') await stopProcess(p, 500);
  const output = p.stdout();
  let result: H2loadResult | null = null;
  const summary = code === 0 ? parseH2load(output) : null;
  if (summary) {
    let log = '';
    try {
      log = fs.readFileSync(logFile, 'utf8');
    } catch {
      /* no log: percentiles stay null */
    }
    result = { ...summary, ...logPercentiles(log) };
  }
  fs.rmSync(logFile, { force: true });
  return { result, output: code === 'overrun' ? `${output}\nkilled after ${o.timeCapS} s` : output };
}
