import * as path from 'node:path';
import { jsonUpstreamConf, startNginx, parseStubRequests, upstreamConf, type NginxInstance } from './nginx';
import { freePort, httpGetText, startServer } from './processes';

// The upstreams every peer talks to: PRIMARY and SHADOW (nginx, `ok\n`) and the SLOW shadow
// (node, answers after 2 s); for the HTTP/2 rows the same nginx on h2c and a grpc-js echo server
// (bench/peers/grpc-echo.ts); for the comparison rows nginx answering JSON. Each upstream can say
// how many requests reached it.

/** An upstream that counts the requests reaching it. */
export interface Upstream {
  readonly port: number;
  readonly pid: number;
  /** A counter reading; `delta(before, after)` is the number of requests served in between. */
  read(): Promise<number>;
  delta(before: number, after: number): number;
  stop(): Promise<void>;
}
export type Shadow = Upstream;

type CountedConf = (prefix: string, port: number, statusPort: number) => string;

/** nginx answering `ok\n` (or an empty 200), with stub_status on a second port to count requests. */
function countedNginx(label: string, cpus?: string, emptyBody = false, http2 = false): Promise<Upstream> {
  return countedNginxWith(label, (prefix, port, statusPort) => upstreamConf(prefix, port, statusPort, emptyBody, http2), cpus);
}

/** nginx with `conf`, whose stub_status on `statusPort` counts the requests. */
async function countedNginxWith(label: string, conf: CountedConf, cpus?: string): Promise<Upstream> {
  const port = await freePort();
  const statusPort = await freePort();
  const n: NginxInstance = await startNginx(label, (prefix) => conf(prefix, port, statusPort), port, cpus);
  return {
    port,
    pid: n.proc.pid,
    read: async () => parseStubRequests(await httpGetText(statusPort, '/status')),
    // stub_status counts itself: the second reading includes one status request.
    delta: (before, after) => after - before - 1,
    stop: () => n.stop(),
  };
}

export const startPrimary = (cpus?: string): Promise<Upstream> => countedNginx('primary', cpus);
export const startNginxShadow = (cpus?: string, emptyBody = false): Promise<Shadow> => countedNginx('shadow', cpus, emptyBody);

/** nginx answering `body` as application/json on every path, counted like the others. */
export const startJsonUpstream = (label: string, body: string, cpus?: string): Promise<Upstream> =>
  countedNginxWith(label, (prefix, port, statusPort) => jsonUpstreamConf(prefix, port, statusPort, body), cpus);

/** nginx answering `ok\n` over h2c (prior knowledge), counted like the HTTP/1.1 ones. */
export const startH2cUpstream = (label: string, cpus?: string): Promise<Upstream> => countedNginx(label, cpus, false, true);

/** A grpc-js server echoing unary calls, counting the calls it answered. */
export async function startGrpcUpstream(label: string, cpus?: string): Promise<Upstream> {
  const port = await freePort();
  const countPort = await freePort();
  const script = path.join(__dirname, '..', 'peers', 'grpc-echo.js');
  const args = [script, '--port', String(port), '--count-port', String(countPort)];
  const { proc, stop } = await startServer({ label, port, cpus, logs: ['out.log'], command: () => ({ cmd: process.execPath, args }) });
  return {
    port,
    pid: proc.pid,
    read: async () => Number((await httpGetText(countPort, '/__bench_count')).trim()),
    delta: (before, after) => after - before,
    stop,
  };
}

export async function startSlowShadow(delayMs: number, cpus?: string, emptyBody = false): Promise<Shadow> {
  const port = await freePort();
  const script = path.join(__dirname, '..', 'peers', 'slow-shadow.js');
  const args = [script, '--port', String(port), '--delay-ms', String(delayMs), ...(emptyBody ? ['--empty-body'] : [])];
  const { proc, stop } = await startServer({ label: 'slow', port, cpus, logs: ['out.log'], command: () => ({ cmd: process.execPath, args }) });
  return {
    port,
    pid: proc.pid,
    read: async () => Number((await httpGetText(port, '/__bench_count')).trim()),
    delta: (before, after) => after - before,
    stop,
  };
}
