import { parseArgs } from 'node:util';
import { runRateLoad } from '../lib/rate-load';

// A fixed-rate HTTP/1.1 client (bench/lib/rate-load.ts) as a process of its own, so the bench can
// pin it to the load core: in the bench's own process it would share whichever core the scheduler
// picks, the peer's included. Prints one JSON line: the RateLoadResult and the seconds it took.
// A 1 ms tick by default: requests spread over each millisecond rather than in bursts of five.
// Usage: node rate-client.js --port P --rate N --seconds S [--connections C] [--tick-ms T]

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    rate: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string', default: '16' },
    'tick-ms': { type: 'string', default: '1' },
  },
});
const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, not "${v}"`);
  return n;
};

async function main(): Promise<void> {
  const o = {
    port: num('port', values.port),
    rate: num('rate', values.rate),
    seconds: num('seconds', values.seconds),
    connections: num('connections', values.connections),
    tickMs: num('tick-ms', values['tick-ms']),
  };
  const t0 = performance.now();
  const result = await runRateLoad(o);
  process.stdout.write(`${JSON.stringify({ ...result, elapsedS: (performance.now() - t0) / 1000 })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
});
