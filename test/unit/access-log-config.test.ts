import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AccessLogConfig } from '../../src/config/access-log-model';
import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { hcmOf } from '../harness/model';

// access_log decoding: what is accepted becomes the model; every problem is one issue by path.

type Json = Record<string, unknown>;

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const FILE = 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const SHADOW = 'type.googleapis.com/sidemirror.access_loggers.shadow.v1.ShadowAccessLog';

function text(hcmLogs: Json[], listenerLogs: Json[] = []): string {
  const l = listener(routeConfig([route('/', 'primary')]), { hcm: { access_log: hcmLogs } });
  return bootstrap({ listeners: [{ ...l, access_log: listenerLogs }], clusters: [cluster('primary', [8081])] });
}

function issuesOf(hcmLogs: Json[], listenerLogs: Json[] = []): readonly ConfigIssue[] {
  try {
    loadBootstrapText(text(hcmLogs, listenerLogs));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

function hcmLogsOf(hcmLogs: Json[]): readonly AccessLogConfig[] {
  return hcmOf(loadBootstrapText(text(hcmLogs)).bootstrap.listeners[0]!.filterChains[0]).accessLog;
}

test('file, stdout and shadow loggers with their formats and filters become the model', () => {
  const logs = hcmLogsOf([
    { name: 'envoy.access_loggers.file', typed_config: { '@type': FILE, path: '/tmp/a.log' } },
    {
      name: 'envoy.access_loggers.stdout',
      filter: { and_filter: { filters: [
        { status_code_filter: { comparison: { op: 'GE', value: { default_value: 400, runtime_key: 'log.min_status' } } } },
        { not_health_check_filter: {} },
      ] } },
      typed_config: { '@type': STDOUT, log_format: { json_format: { code: '%RESPONSE_CODE%', fixed: 1 }, omit_empty_values: true } },
    },
    { name: 'sidemirror.access_loggers.shadow', typed_config: { '@type': SHADOW, path: '/dev/stderr', log_format: { text_format_source: { inline_string: '%SHADOW_CLUSTER%\n' } } } },
  ]);
  expect(logs.map((l) => [l.target.path, l.shadows, l.format?.kind ?? 'default'])).toEqual([
    ['/tmp/a.log', false, 'default'], ['/dev/stdout', false, 'json'], ['/dev/stderr', true, 'text'],
  ]);
  expect(logs[1]!.filter).toEqual({ kind: 'and', filters: [
    { kind: 'status_code', op: 'GE', value: { defaultValue: 400, runtimeKey: 'log.min_status' } }, { kind: 'not_health_check' },
  ] });
  expect(logs[1]!.format).toMatchObject({ kind: 'json', typed: true, omitEmptyValues: true });
});

test('a format read from a file (text_format_source.filename)', () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sm-alc-')), 'format.txt');
  fs.writeFileSync(file, '%REQ(:PATH)% %RESPONSE_CODE%\n');
  const [log] = hcmLogsOf([{ name: 'x', typed_config: { '@type': STDOUT, log_format: { text_format_source: { filename: file } } } }]);
  expect(log!.format).toMatchObject({ kind: 'text', tokens: [{ kind: 'operator', name: 'REQ' }, { kind: 'text', text: ' ' }, { kind: 'operator', name: 'RESPONSE_CODE' }, { kind: 'text', text: '\n' }] });
});

test('every problem is reported, each at its path', () => {
  const issues = issuesOf([
    { name: 'a', typed_config: { '@type': FILE, path: '/tmp/a.log', log_format: { text_format: '%REQ(:PATH)% %NOPE%' } } },
    { name: 'b', typed_config: { '@type': STDOUT, log_format: { json_format: { outer: { inner: '%BYTES_SENT(x)%' } } } } },
    { name: 'c', typed_config: { '@type': FILE } },
    { name: 'd', filter: { traceable_filter: {} }, typed_config: { '@type': STDOUT } },
    { name: 'e', filter: { or_filter: { filters: [{ duration_filter: { comparison: { op: 'GE', value: { default_value: 10 } } } }] } }, typed_config: { '@type': STDOUT } },
    { name: 'f', filter: { response_flag_filter: { flags: ['UF', 'XX'] } }, typed_config: { '@type': STDOUT } },
    { name: 'g', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig' } },
    { name: 'h', typed_config: { '@type': STDOUT, log_format: { text_format: '%SHADOW_OUTCOME%' } } },
  ], [
    { name: 'i', typed_config: { '@type': SHADOW, path: '/tmp/s.log' } },
  ]);
  const al = `${HCM}.access_log`;
  expect(issues).toEqual(expect.arrayContaining([
    { path: `${al}[0].typed_config.log_format.text_format`, message: 'Not supported field in StreamInfo: NOPE (command operator %NOPE% is not supported by sidemirror)' },
    { path: `${al}[1].typed_config.log_format.json_format["outer"]["inner"]`, message: 'BYTES_SENT does not take any parameters or length' },
    { path: `${al}[2].typed_config.path`, message: 'path is required' },
    { path: `${al}[3].filter.traceable_filter`, message: 'not supported by sidemirror (it has no tracing)' },
    { path: `${al}[4].filter.or_filter.filters`, message: 'at least 2 filters are required' },
    { path: `${al}[4].filter.or_filter.filters[0].duration_filter.comparison.value.runtime_key`, message: 'runtime_key is required' },
    { path: `${al}[5].filter.response_flag_filter.flags[1]`, message: '"XX" is not a response flag' },
    { path: `${al}[7].typed_config.log_format.text_format`, message: expect.stringContaining('outside sidemirror.access_loggers.shadow') },
    { path: 'static_resources.listeners[0].access_log[0].typed_config', message: expect.stringContaining('list it in an HTTP connection manager') },
  ]));
  // A logger type proto/ does not declare is refused where its @type is, before decoding.
  expect(issues).toContainEqual({ path: `${al}[6].typed_config.@type`, message: 'unknown type "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig"' });
  expect(issues).toHaveLength(10);
});
