import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { extRoute, mirrorHttpFilters } from '../harness/mirror-ext';
import { fetchText, startProxy, statValue, type TestProxy } from '../harness/proxy';
import { type Upstream, closedPort, sleep, startUpstream } from '../harness/upstream';

// Access logs with real sockets: a line per proxied request in Envoy's default format (HTTP/1.1
// and HTTP/2, local replies too), a line per shadow, JSON lines, filters, a line per connection
// for a listener's access_log, and the bound on what waits to be written.

type Json = Record<string, unknown>;

const FILE_LOG = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const SHADOW_LOG = 'type.googleapis.com/sidemirror.access_loggers.shadow.v1.ShadowAccessLog';
const ISO = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sm-al-')), name);
}

function fileLog(file: string, extra: Json = {}, name = 'envoy.access_loggers.file'): Json {
  const { filter, ...config } = extra;
  return { name, ...(filter ? { filter } : {}), typed_config: { '@type': FILE_LOG, path: file, ...config } };
}

const textFormat = (format: string): Json => ({ log_format: { text_format_source: { inline_string: format } } });

/** The file's lines once it has at least `n` (flushing the proxy's batches while waiting, at most 10 s). */
async function linesOf(p: TestProxy, file: string, n: number): Promise<string[]> {
  const until = Date.now() + 10_000;
  for (;;) {
    await p.proxy.accessLogs.flush();
    const lines = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : [];
    if (lines.length >= n || Date.now() > until) return lines;
    await sleep(20);
  }
}

function h2Post(url: string, pathname: string, authority: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': pathname, ':authority': authority, 'user-agent': 'h2-client' });
    stream.on('response', (h) => {
      stream.resume();
      stream.on('end', () => {
        session.close();
        resolve(Number(h[':status']));
      });
    });
    stream.on('error', reject);
    stream.end(body);
  });
}

describe('request lines', () => {
  let primary: Upstream;
  beforeAll(async () => {
    primary = await startUpstream({ name: 'primary' });
  });
  afterAll(() => primary.close());

  test('a proxied request is one line in Envoy\'s default format, HTTP/1.1 and HTTP/2, body sizes and ids as sent', async () => {
    const file = tmpFile('access.log');
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary')]), { hcm: { access_log: [fileLog(file)] } })],
      clusters: [cluster('primary', [primary.port])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      const before = Date.now();
      const get = await fetchText(`${p.url}/hello?x=1`, { headers: { host: 'example.com', 'user-agent': 'test-agent' } });
      const post = await fetchText(`${p.url}/upload`, { method: 'POST', body: 'abcdef', headers: { host: 'example.com', 'x-forwarded-for': '10.1.2.3' } });
      expect(await h2Post(p.url, '/two', 'h2.example', 'hello')).toBe(200);
      const lines = await linesOf(p, file, 3);
      expect(lines).toHaveLength(3);
      const up = `"127\\.0\\.0\\.1:${primary.port}"`;
      const [l1, l2, l3] = ['/hello', '/upload', '/two'].map((at) => lines.find((l) => l.includes(` ${at}`)));
      const m = new RegExp(`^\\[(${ISO})\\] "GET /hello\\?x=1 HTTP/1\\.1" 200 - 0 7 (\\d+) (\\d+) "-" "test-agent" "(${UUID})" "example\\.com" ${up}$`).exec(l1!);
      expect(m).not.toBeNull();
      const started = Date.parse(m![1]!);
      expect(started).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
      expect(started).toBeLessThanOrEqual(Date.now());
      // The upstream's service time is the one the client got; the request id the one the upstream got.
      expect(m![3]).toBe(get.headers['x-envoy-upstream-service-time']);
      expect(m![4]).toBe(primary.requests.find((r) => r.url === '/hello?x=1')!.headers['x-request-id']);
      expect(Number(m![2])).toBeGreaterThanOrEqual(Number(m![3]));
      expect(post.status).toBe(200);
      expect(l2).toMatch(new RegExp(`^\\[${ISO}\\] "POST /upload HTTP/1\\.1" 200 - 6 7 \\d+ \\d+ "10\\.1\\.2\\.3" "-" "${UUID}" "example\\.com" ${up}$`));
      expect(l3).toMatch(new RegExp(`^\\[${ISO}\\] "POST /two HTTP/2" 200 - 5 7 \\d+ \\d+ "-" "h2-client" "${UUID}" "h2\\.example" ${up}$`));
    } finally {
      await p.stop();
    }
  });

  test('local replies are logged with Envoy\'s response flags and details: NR, NC, UF (with the transport\'s reason), direct responses', async () => {
    const file = tmpFile('local.log');
    const dead = await closedPort();
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([
        { name: 'to-dead', ...route('/dead', 'dead') },
        { name: 'to-nowhere', ...route('/nowhere', 'nowhere') },
        { name: 'direct', match: { prefix: '/direct' }, direct_response: { status: 418, body: { inline_string: 'teapot' } } },
      ], {}, { validate_clusters: false }), { hcm: { access_log: [fileLog(file, textFormat(
        '%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %ROUTE_NAME% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% %UPSTREAM_TRANSPORT_FAILURE_REASON% [%LOCAL_REPLY_BODY%] %BYTES_SENT%\n'))] } })],
      clusters: [cluster('dead', [dead])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      expect((await fetchText(`${p.url}/missing`)).status).toBe(404);
      expect((await fetchText(`${p.url}/nowhere`)).status).toBe(503);
      const failure = (await fetchText(`${p.url}/dead`)).body;
      expect(failure).toBe('upstream connect error or disconnect/reset before headers. reset reason: connection failure');
      expect((await fetchText(`${p.url}/direct`)).body).toBe('teapot');
      const lines = await linesOf(p, file, 4);
      expect(lines).toEqual([
        '/missing 404 NR route_not_found - - - - [] 0',
        '/nowhere 503 NC cluster_not_found to-nowhere - - - [] 0',
        `/dead 503 UF upstream_reset_before_response_started{connection_failure} to-dead dead 127.0.0.1:${dead} ECONNREFUSED [${failure}] ${failure.length}`,
        '/direct 418 - direct_response direct - - - [teapot] 6',
      ]);
    } finally {
      await p.stop();
    }
  });

  test('JSON lines: nested objects, typed values, null for what is missing, omitted with omit_empty_values', async () => {
    const typed = tmpFile('typed.json');
    const omitted = tmpFile('omitted.json');
    const json = {
      status: '%RESPONSE_CODE%', bytes: '%BYTES_SENT%', protocol: '%PROTOCOL%', fixed: 5,
      request: { method: '%REQ(:METHOD)%', path: '%REQ(:PATH)%', nope: '%REQ(X-NOPE)%' },
      summary: '%REQ(:METHOD)% -> %RESPONSE_CODE%',
    };
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary')]), { hcm: { access_log: [
        fileLog(typed, { log_format: { json_format: json } }),
        fileLog(omitted, { log_format: { json_format: json, omit_empty_values: true } }),
      ] } })],
      clusters: [cluster('primary', [primary.port])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      await fetchText(`${p.url}/j?1`);
      const [line] = await linesOf(p, typed, 1);
      // Envoy's JSON formatter sorts the keys.
      expect(line).toBe('{"bytes":7,"fixed":5,"protocol":"HTTP/1.1","request":{"method":"GET","nope":null,"path":"/j?1"},"status":200,"summary":"GET -> 200"}');
      const [other] = await linesOf(p, omitted, 1);
      expect(JSON.parse(other!)).toEqual({ bytes: 7, fixed: 5, protocol: 'HTTP/1.1', request: { method: 'GET', path: '/j?1' }, status: 200, summary: 'GET -> 200' });
    } finally {
      await p.stop();
    }
  });

  test('filters: status code and duration with runtime overrides, headers, response flags, runtime sampling, gRPC status, and/or', async () => {
    const files: Record<string, string> = {};
    const logger = (key: string, filter: Json): Json => fileLog((files[key] = tmpFile(`${key}.log`)), { filter, ...textFormat('%REQ(:PATH)%\n') });
    const logs = [
      logger('status', { status_code_filter: { comparison: { op: 'GE', value: { default_value: 400, runtime_key: 'al.min_status' } } } }),
      logger('header', { header_filter: { header: { name: 'x-log', present_match: true } } }),
      logger('flag', { response_flag_filter: { flags: ['NR'] } }),
      logger('and', { and_filter: { filters: [
        { status_code_filter: { comparison: { op: 'GE', value: { default_value: 400, runtime_key: 'al.unset' } } } },
        { header_filter: { header: { name: 'x-log', present_match: true } } },
      ] } }),
      logger('or', { or_filter: { filters: [
        { duration_filter: { comparison: { op: 'GE', value: { default_value: 600_000, runtime_key: 'al.unset' } } } },
        { header_filter: { header: { name: 'x-log', present_match: true } } },
      ] } }),
      logger('runtime', { runtime_filter: { runtime_key: 'al.sample', percent_sampled: { numerator: 100, denominator: 'HUNDRED' } } }),
      logger('all', { not_health_check_filter: {} }),
      logger('grpc', { grpc_status_filter: { statuses: ['UNAVAILABLE'] } }),
    ];
    const direct = (status: number): Json => ({ match: { prefix: `/s/${status}` }, direct_response: { status } });
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/ok', 'primary'), direct(418), direct(500), direct(503)]), { hcm: { access_log: logs } })],
      clusters: [cluster('primary', [primary.port])],
      extra: { layered_runtime: { layers: [{ name: 'static', static_layer: { 'al.min_status': 450, 'al.sample': 0 } }, { name: 'admin', admin_layer: {} }] } },
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      await fetchText(`${p.url}/ok/1`);
      await fetchText(`${p.url}/ok/2`, { headers: { 'x-log': '1' } });
      await fetchText(`${p.url}/missing`);
      await fetchText(`${p.url}/s/418`, { headers: { 'x-log': '1' } });
      await fetchText(`${p.url}/s/500`);
      await fetchText(`${p.url}/s/503`);
      // Sampling the runtime turned off, turned on again at run time.
      expect((await fetchText(`${p.adminUrl}/runtime_modify?al.sample=100`, { method: 'POST' })).status).toBe(200);
      await fetchText(`${p.url}/ok/after`);
      const all = await linesOf(p, files.all!, 7);
      expect(all).toEqual(['/ok/1', '/ok/2', '/missing', '/s/418', '/s/500', '/s/503', '/ok/after']);
      const got: Record<string, string[]> = {};
      for (const key of Object.keys(files)) got[key] = await linesOf(p, files[key]!, 0);
      expect(got).toEqual({
        status: ['/s/500', '/s/503'],
        header: ['/ok/2', '/s/418'],
        flag: ['/missing'],
        and: ['/s/418'],
        or: ['/ok/2', '/s/418'],
        runtime: ['/ok/after'],
        all,
        grpc: ['/s/503'],
      });
    } finally {
      await p.stop();
    }
  });
});

describe('shadow lines', () => {
  test('one line per shadow, with its cluster, outcome and reason, beside the request\'s own line in the same file', async () => {
    const primary = await startUpstream({ name: 'primary' });
    const mirror = await startUpstream({ name: 'mirror' });
    const dead = await closedPort();
    const file = tmpFile('both.log');
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary', { request_mirror_policies: [
        { cluster: 'mirror' }, { cluster: 'dead' }, { cluster_header: 'x-mirror-cluster' },
        { cluster: 'mirror', runtime_fraction: { default_value: { numerator: 0, denominator: 'HUNDRED' } } },
      ] })]), { hcm: { access_log: [
        fileLog(file),
        { name: 'sidemirror.access_loggers.shadow', typed_config: { '@type': SHADOW_LOG, path: file } },
      ] } })],
      clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port]), cluster('dead', [dead])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      const res = await fetchText(`${p.url}/shadowed`, { headers: { host: 'svc.local' } });
      expect(res.body).toBe('primary');
      const lines = await linesOf(p, file, 5);
      expect(lines).toHaveLength(5);
      const shadowLines = lines.filter((l) => / shadow "/.test(l)).sort();
      const id = primary.requests[0]!.headers['x-request-id'] as string;
      const shadow = (rest: string): RegExp => new RegExp(`^\\[${ISO}\\] shadow "GET /shadowed HTTP/1\\.1" ${rest}$`);
      expect(shadowLines).toHaveLength(4);
      const byCluster = (c: string, outcome: string): string | undefined => shadowLines.find((l) => l.includes(`"${c}"`) && l.includes(` ${outcome} `));
      expect(byCluster('mirror', 'succeeded')).toMatch(shadow(`200 succeeded 2xx \\d+ "${id}" "svc\\.local" "mirror" "127\\.0\\.0\\.1:${mirror.port}" "-"`));
      expect(byCluster('dead', 'failed')).toMatch(shadow(`0 failed connect_failure \\d+ "${id}" "svc\\.local" "dead" "127\\.0\\.0\\.1:${dead}" "-"`));
      expect(byCluster('header:x-mirror-cluster', 'skipped')).toMatch(shadow(`0 skipped missing_header 0 "${id}" "svc\\.local" "header:x-mirror-cluster" "-" "-"`));
      expect(byCluster('mirror', 'skipped')).toMatch(shadow(`0 skipped sampling 0 "${id}" "svc\\.local" "mirror" "-" "-"`));
      expect(lines.filter((l) => !/ shadow "/.test(l))[0]).toMatch(new RegExp(`^\\[${ISO}\\] "GET /shadowed HTTP/1\\.1" 200 - 0 7 \\d+ \\d+ "-" "-" "${id}" "svc\\.local" "127\\.0\\.0\\.1:${primary.port}"$`));
    } finally {
      await p.stop();
      await primary.close();
      await mirror.close();
    }
  });
});

describe('shadow lines of the mirror filter', () => {
  test('a shadow of an extended policy names the policy; a method the policy skips and its sampling are lines too', async () => {
    const primary = await startUpstream({ name: 'primary' });
    const mirror = await startUpstream({ name: 'mirror' });
    const file = tmpFile('ext.log');
    const format = '%SHADOW_POLICY% %SHADOW_CLUSTER% %SHADOW_OUTCOME% %SHADOW_REASON% %RESPONSE_CODE% %UPSTREAM_CLUSTER% %REQ(:PATH)%\n';
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([extRoute('/', 'primary', [{ name: 'nth', cluster: 'mirror', sampling: { every_nth: 2 }, methods: ['GET'] }])]), {
        hcm: { http_filters: mirrorHttpFilters(), access_log: [{ name: 'shadows', typed_config: { '@type': SHADOW_LOG, path: file, ...textFormat(format) } }] },
      })],
      clusters: [cluster('primary', [primary.port]), cluster('mirror', [mirror.port])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      await fetchText(`${p.url}/a`);
      await fetchText(`${p.url}/b`);
      await fetchText(`${p.url}/c`, { method: 'POST', body: 'x' });
      await mirror.waitForRequests(1);
      const lines = await linesOf(p, file, 3);
      expect(lines.sort()).toEqual([
        'nth mirror skipped method 0 mirror /c',
        'nth mirror skipped sampling 0 mirror /b',
        'nth mirror succeeded 2xx 200 mirror /a',
      ]);
    } finally {
      await p.stop();
      await primary.close();
      await mirror.close();
    }
  });
});

describe('connection lines (a listener\'s access_log)', () => {
  test('one line per connection when it closes: one that never sent a byte, one that carried a request', async () => {
    const primary = await startUpstream({ name: 'primary' });
    const file = tmpFile('conn.log');
    const l = listener(routeConfig([route('/', 'primary')]));
    const p = await startProxy(bootstrap({
      listeners: [{ ...l, access_log: [fileLog(file, textFormat('%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %BYTES_RECEIVED% %BYTES_SENT% %RESPONSE_FLAGS% %PROTOCOL% %REQ(:PATH)% %CONNECTION_ID%\n'))] }],
      clusters: [cluster('primary', [primary.port])],
    }), { accessLogLimits: { flushIntervalMs: 50 } });
    try {
      const silent = net.connect(p.port, '127.0.0.1');
      await new Promise((r) => silent.once('connect', r));
      silent.end();
      await new Promise((r) => silent.once('close', r));
      const [first] = await linesOf(p, file, 1);
      expect(first).toMatch(/^127\.0\.0\.1 0 0 - - - \d+$/);
      // A request on its own connection, then the connection closed by the client.
      const sock = net.connect(p.port, '127.0.0.1');
      const request = 'GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n';
      let reply = '';
      sock.on('data', (d: Buffer) => (reply += d.toString()));
      sock.write(request);
      await new Promise((r) => sock.once('close', r));
      expect(reply).toMatch(/^HTTP\/1\.1 200/);
      const lines = await linesOf(p, file, 2);
      const [, , received, sent] = /^(\S+) (\d+) (\d+) - - - \d+$/.exec(lines[1]!)!;
      expect(Number(received)).toBe(request.length);
      expect(Number(sent)).toBe(Buffer.byteLength(reply));
    } finally {
      await p.stop();
      await primary.close();
    }
  });
});

describe('writing off the request path', () => {
  test('lines past the queue bound are dropped and counted while the file cannot take them; requests are unaffected; stop does not hang', async () => {
    const primary = await startUpstream({ name: 'primary' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-al-fifo-'));
    const fifo = path.join(dir, 'stalled');
    // A pipe whose reader never reads: once its 64 KiB buffer is full, every write waits.
    execFileSync('mkfifo', [fifo]);
    const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const maxQueuedBytes = 64 * 1024;
    const p = await startProxy(bootstrap({
      listeners: [listener(routeConfig([route('/', 'primary')]), { hcm: { access_log: [fileLog(fifo, textFormat('%REQ(X-PAD)%\n'))] } })],
      clusters: [cluster('primary', [primary.port])],
    }), { accessLogLimits: { flushIntervalMs: 20, flushBytes: 8 * 1024, maxQueuedBytes } });
    try {
      const pad = 'x'.repeat(1000);
      // 400 lines of 1 KB: well past the pipe's buffer and the bound together.
      for (let batch = 0; batch < 40; batch++) {
        const statuses = await Promise.all(Array.from({ length: 10 }, () => fetchText(`${p.url}/`, { headers: { 'x-pad': pad } }).then((r) => r.status)));
        expect(statuses).toEqual(Array(10).fill(200));
      }
      await sleep(100);
      const dropped = await statValue(p.adminUrl, 'access_log_file.dropped');
      const buffered = await statValue(p.adminUrl, 'access_log_file.write_buffered');
      expect(dropped).toBeGreaterThan(0);
      expect(dropped + buffered).toBe(400);
      expect(await statValue(p.adminUrl, 'access_log_file.write_total_buffered')).toBeLessThanOrEqual(maxQueuedBytes);
      // The proxy still answers at once.
      expect((await fetchText(`${p.url}/`)).status).toBe(200);
      // A stop does not wait on the stalled pipe for ever (it would time this test out).
      await p.stop();
    } finally {
      // The reader goes: the stalled write fails (EPIPE) and frees its thread.
      fs.closeSync(reader);
      await p.stop();
      await primary.close();
    }
  });
});
