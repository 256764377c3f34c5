import { spawnTracked, sleep, stopProcess } from './processes';

// Runs wrk and parses its text report (`--latency` gives the percentile lines).

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  non2xx: number;
  socketErrors: number;
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };

/** "812.00us" | "1.23ms" | "2.01s" | "1.00m" → milliseconds. */
export function toMs(text: string): number | null {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

export function parseWrk(out: string): WrkResult | null {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!total || !rps) return null;
  const pct = (p: string): number | null => {
    const m = new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out);
    return m ? toMs(m[1] as string) : null;
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requests: Number(total[1]),
    seconds: (toMs(`${total[2]}${total[3]}`) ?? 0) / 1000,
    rps: Number(rps[1]),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

export interface WrkOptions {
  port: number;
  conns: number;
  seconds: number;
  cpus?: string;
}

/** One wrk run, killed if it overruns by 15 s. Null when wrk fails or its output is unreadable. */
export async function runWrk(o: WrkOptions): Promise<{ result: WrkResult | null; output: string }> {
  const args = ['-t1', `-c${o.conns}`, `-d${o.seconds}s`, '--timeout', '10s', '--latency', `http://127.0.0.1:${o.port}/`];
  const p = spawnTracked('wrk', args, { cpus: o.cpus });
  const code = await Promise.race([p.exited, sleep((o.seconds + 15) * 1000).then(() => 'overrun')]);
  if (code === 'overrun') await stopProcess(p, 500);
  const output = p.stdout();
  return { result: code === 0 ? parseWrk(output) : null, output };
}
