import * as path from 'node:path';
import { sleep, spawnTracked, stopProcess } from './processes';
import type { RateLoadResult } from './rate-load';

// Runs the fixed-rate client (bench/peers/rate-client.ts) as a process of its own, pinned to the
// load core, and reads the one JSON line it prints.

export type RateClientResult = RateLoadResult & { elapsedS: number };

export async function runRateClient(port: number, rate: number, seconds: number, connections: number, cpus: string | undefined): Promise<{ result: RateClientResult | null; output: string }> {
  const script = path.join(__dirname, '..', 'peers', 'rate-client.js');
  const args = [script, '--port', String(port), '--rate', String(rate), '--seconds', String(seconds), '--connections', String(connections)];
  const p = spawnTracked(process.execPath, args, { cpus });
  // The client drains for at most 10 s after its schedule ends.
  const code = await Promise.race([p.exited, sleep((seconds + 20) * 1000).then(() => 'overrun')]);
  if (code === 'overrun') await stopProcess(p, 500);
  const output = p.stdout();
  const last = output.trim().split('\n').pop() ?? '';
  try {
    return { result: code === 0 ? (JSON.parse(last) as RateClientResult) : null, output };
  } catch {
    return { result: null, output };
  }
}
