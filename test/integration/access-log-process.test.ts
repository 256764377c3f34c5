import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { CLI, ensureCliBuilt, killCli } from '../harness/cli';
import { fetchText } from '../harness/proxy';
import { freePort } from '../harness/redis';
import { sleep, startUpstream } from '../harness/upstream';

// The access log of a real `sidemirror proxy` process: lines on its own standard output
// (envoy.access_loggers.stdout), a file reopened on SIGUSR1 after logrotate renamed it, and
// what is still queued written out when SIGTERM stops the process.

const FILE_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** Polls `check` every 20 ms for at most 10 s; returns its last answer. */
async function eventually<T>(check: () => T | null | Promise<T | null>): Promise<T | null> {
  const until = Date.now() + 10_000;
  for (;;) {
    const v = await check();
    if (v !== null || Date.now() > until) return v;
    await sleep(20);
  }
}

const readLines = (file: string): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []);

test('stdout lines, a SIGUSR1 reopen after the file was renamed, and a flush on SIGTERM', async () => {
  ensureCliBuilt();
  const primary = await startUpstream({ name: 'primary' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-al-proc-'));
  const logFile = path.join(dir, 'access.log');
  const [port, adminPort] = [await freePort(), await freePort()];
  const doc = JSON.parse(bootstrap({
    listeners: [listener(routeConfig([route('/', 'primary')]), { port, hcm: { access_log: [
      { name: 'envoy.access_loggers.stdout', typed_config: { '@type': STDOUT_LOG } },
      { name: 'envoy.access_loggers.file', typed_config: { '@type': FILE_LOG, path: logFile, log_format: { text_format_source: { inline_string: '%REQ(:PATH)%\n' } } } },
    ] } })],
    clusters: [cluster('primary', [primary.port])],
  })) as Record<string, unknown>;
  doc.admin = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
  const config = path.join(dir, 'envoy.json');
  fs.writeFileSync(config, JSON.stringify(doc));
  let child: ChildProcess | null = null;
  try {
    child = spawn(process.execPath, [CLI, 'proxy', '-c', config, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.resume();
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    expect(await eventually(() => fetchText(`http://127.0.0.1:${adminPort}/ready`).then((r) => (r.status === 200 ? true : null), () => null))).toBe(true);
    const url = `http://127.0.0.1:${port}`;

    // 1. A line on the process's standard output, in Envoy's default format.
    await fetchText(`${url}/one`, { headers: { 'user-agent': 'proc-test' } });
    const line = await eventually(() => stdout.split('\n').find((l) => l.includes('"GET /one HTTP/1.1"')) ?? null);
    expect(line).toMatch(new RegExp(`^\\[[^\\]]+\\] "GET /one HTTP/1\\.1" 200 - 0 7 \\d+ \\d+ "-" "proc-test" "[0-9a-f-]{36}" "127\\.0\\.0\\.1:${port}" "127\\.0\\.0\\.1:${primary.port}"$`));
    expect(await eventually(() => (readLines(logFile).includes('/one') ? true : null))).toBe(true);

    // 2. logrotate renames the file and sends SIGUSR1: the proxy opens a new file by the same name.
    fs.renameSync(logFile, `${logFile}.1`);
    child.kill('SIGUSR1');
    expect(await eventually(() => (fs.existsSync(logFile) ? true : null))).toBe(true);
    await fetchText(`${url}/two`);
    expect(await eventually(() => (readLines(logFile).includes('/two') ? true : null))).toBe(true);
    expect(readLines(`${logFile}.1`)).toEqual(['/one']);
    expect(readLines(logFile)).toEqual(['/two']);

    // 3. A line still in the batch when SIGTERM comes is written before the process exits.
    await fetchText(`${url}/three`, { headers: { connection: 'close' } });
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(readLines(logFile)).toEqual(['/two', '/three']);
    expect(stdout).toContain('"GET /three HTTP/1.1" 200');
  } finally {
    await killCli(child);
    await primary.close();
  }
});
