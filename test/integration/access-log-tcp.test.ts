import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrap, cluster } from '../harness/bootstrap';
import { until } from '../harness/mirror-ext';
import { type TestProxy, startProxy } from '../harness/proxy';
import { echo, exchange, portOf, startTcpServer, type TcpServer, tcpListener } from '../harness/tcp';
import { closedPort } from '../harness/upstream';

// The TCP proxy's access_log with real sockets: one line per proxied connection, written once
// both sides have closed, with the connection's bytes, its upstream, and Envoy's flags.

const FILE_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const FORMAT = '%UPSTREAM_CLUSTER% %UPSTREAM_HOST% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% flags=%RESPONSE_FLAGS% from=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%\n';

let p: TestProxy;
let server: TcpServer;
let dir: string;
let file: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-tcp-log-'));
  file = path.join(dir, 'tcp.log');
  server = await startTcpServer(echo);
  const accessLog = [{ name: 'envoy.access_loggers.file', typed_config: { '@type': FILE_LOG, path: file, log_format: { text_format_source: { inline_string: FORMAT } } } }];
  p = await startProxy(bootstrap({
    listeners: [
      tcpListener('echo', await closedPort(), { stat_prefix: 'echo', cluster: 'echo', access_log: accessLog }),
      tcpListener('down', await closedPort(), { stat_prefix: 'down', cluster: 'down', access_log: accessLog }),
    ],
    clusters: [cluster('echo', [server.port]), cluster('down', [await closedPort()])],
  }));
});

afterAll(async () => {
  await p?.stop();
  await server?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const lines = (): string[] => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

test('a proxied connection: its cluster, host and bytes each way', async () => {
  const r = await exchange(portOf(p, 'echo'), 'hello', { end: true });
  expect(r.received.toString()).toBe('hello');
  await until('the line', async () => lines().some((l) => l.startsWith('echo ')), 5000);
  expect(lines().find((l) => l.startsWith('echo '))).toBe(`echo 127.0.0.1:${server.port} rx=5 tx=5 flags=- from=127.0.0.1`);
});

test('an upstream that refuses: UF and, the one attempt spent, URX; no host reached, no bytes', async () => {
  await exchange(portOf(p, 'down'), 'x', { end: true });
  await until('the line', async () => lines().some((l) => l.startsWith('down ')), 5000);
  const line = lines().find((l) => l.startsWith('down '))!;
  expect(line).toBe("down - rx=0 tx=0 flags=UF,URX from=127.0.0.1");
});
