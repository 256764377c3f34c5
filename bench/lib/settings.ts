import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { COMPARE_PEERS, DEFAULT_COMPARE_RATE } from './compare-scenario';
import type { Protocol } from './drivers';
import { which } from './processes';
import type { Http1Codec } from '../../src/util/native-http';

// The bench's command line: what `npm run bench -- --help` prints, and its parse.

export const PROTOCOLS: readonly Protocol[] = ['h1', 'h2c', 'grpc'];
export const CODECS: readonly Http1Codec[] = ['fast', 'node'];
export const DEFAULT_RATE = 2000;

export const USAGE = `Usage: node dist/bench/run.js [options]
  --rounds N           measured rounds per peer and connection count (default 3)
  --duration S         seconds per round (default 3)
  --warmup S           warm-up seconds before the rounds (default 1)
  --conns 16,64        connection counts for the fast-shadow scenario (default 16,64)
  --rate N             the fast-shadow peers also at a fixed offered rate below saturation, req/s
                       (default ${DEFAULT_RATE}): p50/p99 at that rate and what each adds to direct's,
                       from a client pinned to the load core (bench/peers/rate-client.ts, 16
                       keep-alive connections), on a fresh peer after a wrk warm-up and one
                       unmeasured round at the rate
  --no-rate            skip those fixed-rate rows
  --codecs fast,node   sidemirror's HTTP/1.1 codecs for the fast-shadow rows (default fast,node):
                       fast is the default codec, node is the node:http fallback
                       (SIDEMIRROR_HTTP1_CODEC=node), whose rows are named sidemirror-node-http and
                       sidemirror-mirror-node-http. Every other sidemirror row runs the fast codec.
  --slow-conns N       connections for the slow-shadow scenario (default 64)
  --slow-delay-ms MS   delay of the slow shadow (default 2000)
  --only a,b           run only these peers (e.g. sidemirror-mirror,nginx-mirror)
  --no-slow            skip the slow-shadow scenario
  --no-compare         skip the compare scenario: sidemirror's mirror filter without and with
                       response comparison, at saturation and at a fixed rate (HTTP/1.1: only
                       with h1 in --protocols); its rows, for --only:
                       ${COMPARE_PEERS.join(', ')}
  --compare-rate N     the compare scenario's fixed offered rate, req/s (default ${DEFAULT_COMPARE_RATE})
  --empty-shadow-body  shadows answer an empty 200 instead of "ok\\n" (nginx's mirror can only
                       keep shadow connections alive when the response has no body)
  --with-concurrency   also run sidemirror-mirror-c2 (sidemirror --concurrency 2) in the fast and
                       slow scenarios; BENCH_WITH_CONCURRENCY=1 does the same
  --concurrency-mode   also run sidemirror-mirror at --concurrency N for each N of --workers, on
                       the fast shadow at c=64 (else the largest --conns), every core but the load core
                       given to the proxy; reports req/s against 1 worker and CPU µs/request of
                       the workers (each worker's user+sys from /proc/<pid>/stat over the round,
                       summed, over the requests) and of the supervisor apart. The model: Node 20
                       has no SO_REUSEPORT (it came in Node 22.12), so the cluster supervisor
                       accepts each connection and passes it to a worker over IPC, round-robin: a
                       cost per connection, not per request. With fewer cores than workers (a
                       2-core box gives the proxy one) req/s cannot scale; the µs/req still reads.
  --workers 1,2,4      the worker counts for --concurrency-mode (default 1,2,4)
  --protocols h1,h2c,grpc  which rows to run (default all three; h2c and grpc need h2load:
                       apt-get install -y nghttp2-client, and are skipped with a note without it)
  --h2-load 16x1       h2load connections x streams per connection for the h2c and grpc rows,
                       comma-separated (default 16x1: as many connections and requests in
                       flight as wrk's c=16; 16x4 multiplexes as many as wrk's c=64)

Before the rows, the machine is probed on the proxy's core (CPU model and MHz, versions, a fixed
JavaScript loop timed in CPU time, openssl speed sha256); after the tables, each goal of issue 13
is printed with its measured figure and met / not met. All of it goes to bench/results/*.json.
`;

export interface Settings {
  rounds: number;
  duration: number;
  warmup: number;
  conns: number[];
  /** The fixed offered rate of the fast-shadow rows, or null (--no-rate). */
  rate: number | null;
  codecs: Http1Codec[];
  slowConns: number;
  slowDelayMs: number;
  only: string[] | undefined;
  slow: boolean;
  compare: boolean;
  compareRate: number;
  emptyShadowBody: boolean;
  withConcurrency: boolean;
  /** The --concurrency values of the multi-core mode, or null when it is off. */
  concurrencyMode: number[] | null;
  protocols: Protocol[];
  h2Load: { conns: number; streams: number }[];
  pinned: boolean;
}

const int = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not "${v}"`);
  return n;
};
const list = (v: string): string[] => v.split(',').map((x) => x.trim()).filter((x) => x !== '');

/** The settings of `argv`; throws with the reason for a bad option, exits after printing --help. */
export function parseSettings(argv: string[] = process.argv.slice(2)): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      conns: { type: 'string', default: '16,64' },
      rate: { type: 'string', default: String(DEFAULT_RATE) },
      'no-rate': { type: 'boolean', default: false },
      codecs: { type: 'string', default: CODECS.join(',') },
      'slow-conns': { type: 'string', default: '64' },
      'slow-delay-ms': { type: 'string', default: '2000' },
      only: { type: 'string' },
      'no-slow': { type: 'boolean', default: false },
      'no-compare': { type: 'boolean', default: false },
      'compare-rate': { type: 'string', default: String(DEFAULT_COMPARE_RATE) },
      'empty-shadow-body': { type: 'boolean', default: false },
      'with-concurrency': { type: 'boolean', default: false },
      'concurrency-mode': { type: 'boolean', default: false },
      workers: { type: 'string', default: '1,2,4' },
      protocols: { type: 'string', default: PROTOCOLS.join(',') },
      'h2-load': { type: 'string', default: '16x1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const protocols = list(values.protocols);
  for (const p of protocols) if (!PROTOCOLS.includes(p as Protocol)) throw new Error(`--protocols takes ${PROTOCOLS.join(', ')}, not "${p}"`);
  const codecs = list(values.codecs);
  for (const c of codecs) if (!CODECS.includes(c as Http1Codec)) throw new Error(`--codecs takes ${CODECS.join(', ')}, not "${c}"`);
  const h2Load = list(values['h2-load']).map((spec) => {
    const m = /^(\d+)x(\d+)$/.exec(spec);
    if (!m) throw new Error(`--h2-load takes CONNSxSTREAMS (16x4), not "${spec}"`);
    return { conns: int('h2-load', m[1] as string), streams: int('h2-load', m[2] as string) };
  });
  return {
    rounds: int('rounds', values.rounds),
    duration: int('duration', values.duration),
    warmup: int('warmup', values.warmup),
    conns: list(values.conns).map((c) => int('conns', c)),
    rate: values['no-rate'] ? null : int('rate', values.rate),
    codecs: [...new Set(codecs)] as Http1Codec[],
    slowConns: int('slow-conns', values['slow-conns']),
    slowDelayMs: int('slow-delay-ms', values['slow-delay-ms']),
    only: values.only === undefined ? undefined : list(values.only),
    slow: !values['no-slow'],
    compare: !values['no-compare'],
    compareRate: int('compare-rate', values['compare-rate']),
    emptyShadowBody: values['empty-shadow-body'],
    withConcurrency: values['with-concurrency'] || process.env.BENCH_WITH_CONCURRENCY === '1',
    concurrencyMode: values['concurrency-mode'] ? [...new Set(list(values.workers).map((w) => int('workers', w)))] : null,
    protocols: protocols as Protocol[],
    h2Load,
    pinned: which('taskset') && os.cpus().length >= 2,
  };
}

/** The connection count the goals and the multi-core mode use: 64 when run, else the largest. */
export function headlineConns(conns: number[]): number {
  return conns.includes(64) ? 64 : Math.max(...conns);
}
