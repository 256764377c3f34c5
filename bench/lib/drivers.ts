import { preflight } from './h2-requests';
import { type H2Request, runH2load } from './h2load';
import { runWrk } from './wrk';

// A load driver is what one row loads its peer with: wrk for HTTP/1.1, h2load for h2c and gRPC.
// A round asks it for "about `seconds` of load"; wrk runs for that long, h2load sends a count
// sized from the rate it measured last (h2load -n), so every run is bounded in count and in time.

export type Protocol = 'h1' | 'h2c' | 'grpc';

export interface LoadResult {
  requests: number;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  non2xx: number;
  socketErrors: number;
  /** What the errors were, in the tool's words, when there were any. */
  errorDetail?: string;
}

export interface LoadDriver {
  readonly protocol: Protocol;
  readonly conns: number;
  /** Requests in flight per connection (1 for HTTP/1.1). */
  readonly streams: number;
  /** Rejects, saying why, when the peer does not answer one request properly. */
  check(port: number): Promise<void>;
  /** About `seconds` of load; a null result when the tool failed (`output` says how). */
  run(port: number, seconds: number): Promise<{ result: LoadResult | null; output: string }>;
  /** Load for `seconds` before the rounds (a JIT warms up; h2load also learns the rate). */
  warmUp(port: number, seconds: number): Promise<void>;
}

export function wrkDriver(conns: number, cpus?: string): LoadDriver {
  return {
    protocol: 'h1',
    conns,
    streams: 1,
    check: async () => undefined,
    run: (port, seconds) => runWrk({ port, conns, seconds, cpus }),
    warmUp: async (port, seconds) => void (await runWrk({ port, conns, seconds, cpus })),
  };
}

/** Requests h2load sends before any rate is known. */
const PROBE_REQUESTS = 1000;
/** The most one h2load run sends (its per-request log holds ~35 bytes each). */
const MAX_REQUESTS = 300_000;

export interface H2DriverOptions {
  readonly protocol: Exclude<Protocol, 'h1'>;
  readonly request: H2Request;
  readonly conns: number;
  readonly streams: number;
  /** Where h2load's per-request logs go. */
  readonly logDir: string;
  readonly cpus?: string;
}

export function h2loadDriver(o: H2DriverOptions): LoadDriver {
  let rate: number | null = null;
  const inFlight = o.conns * o.streams;
  const once = async (port: number, requests: number, timeCapS: number) => {
    const r = await runH2load({ port, conns: o.conns, streams: o.streams, requests, timeCapS, request: o.request, logDir: o.logDir, cpus: o.cpus });
    if (r.result && r.result.rps > 0) rate = r.result.rps;
    return r;
  };
  const run = async (port: number, seconds: number) => {
    if (rate === null) {
      // A first, fixed-size run tells the rate; when it alone lasted `seconds`, it was the load.
      const probe = await once(port, Math.max(PROBE_REQUESTS, inFlight), seconds + 15);
      if (!probe.result || probe.result.rps <= 0 || probe.result.requests / probe.result.rps >= seconds) return probe;
    }
    const perSecond = rate ?? 0;
    const requests = Math.min(MAX_REQUESTS, Math.max(inFlight, Math.round(perSecond * seconds)));
    // Three times the planned time: a peer that slows down that much mid-run is not measured.
    return once(port, requests, seconds * 3 + 15);
  };
  return {
    protocol: o.protocol,
    conns: o.conns,
    streams: o.streams,
    check: (port) => preflight(port, o.request),
    run,
    async warmUp(port, seconds) {
      // Runs until the time is spent: a peer still warming up answers faster each run, so one
      // run sized from the probe's rate would end early.
      const until = performance.now() + seconds * 1000;
      do {
        const left = Math.max(0.25, (until - performance.now()) / 1000);
        const r = await run(port, left);
        if (!r.result) return;
      } while (performance.now() < until - 100);
    },
  };
}
