import type { LogFormat } from '../../src/config/access-log-model';
import type { LogEntry } from '../../src/access-log/entry';
import { compileFormat } from '../../src/access-log/format';
import { ENVOY_DEFAULT_FORMAT, SHADOW_DEFAULT_FORMAT, parseFormat } from '../../src/access-log/parse';
import { bitOf, longFlags, shortFlags } from '../../src/access-log/response-flags';
import { timeFormatter } from '../../src/access-log/time-format';

// 2016-04-15T20:17:00.310Z, with 123 µs more.
const T0 = Date.UTC(2016, 3, 15, 20, 17, 0, 310) + 0.123;

function entry(over: Partial<LogEntry> = {}): LogEntry {
  const req: Record<string, string> = {
    ':method': 'POST', ':path': '/api/v1/locations', ':authority': 'locations', 'x-forwarded-for': '10.0.35.28',
    'user-agent': 'nsq2http', 'x-request-id': 'cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2',
  };
  const resp: Record<string, string> = { ':status': '204', 'x-envoy-upstream-service-time': '100' };
  return {
    startEpochMs: T0, durationMs: 226.7, requestDurationMs: 3.2, responseDurationMs: 120.9, protocol: 'HTTP/2',
    requestHeader: (n) => req[n], responseHeader: (n) => resp[n], responseTrailer: () => undefined,
    responseCode: 204, responseCodeDetails: 'via_upstream', responseFlags: 0, bytesReceived: 154, bytesSent: 0,
    upstreamHost: { address: '10.0.2.1', port: 80 }, upstreamCluster: 'locations', upstreamTransportFailureReason: null, upstreamAttempts: 1,
    routeName: null, downstreamRemote: { address: '10.0.35.28', port: 0 }, downstreamDirectRemote: { address: '127.0.0.1', port: 5000 },
    downstreamLocal: { address: '::1', port: 10000 }, connectionId: 7, requestedServerName: null, localReplyBody: null, shadow: null,
    ...over,
  };
}

function text(format: string, omitEmptyValues = false, shadow = false): (e: LogEntry) => string {
  const parsed = parseFormat(format, { shadow });
  if (!parsed.ok) throw new Error(parsed.error);
  return compileFormat({ kind: 'text', tokens: parsed.tokens, omitEmptyValues });
}

describe('the format parser, as Envoy parses', () => {
  test('Envoy\'s default format renders as in Envoy\'s docs example, "-" for what is missing', () => {
    expect(text(ENVOY_DEFAULT_FORMAT)(entry())).toBe(
      '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28" "nsq2http" ' +
      '"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80"\n');
    expect(text(ENVOY_DEFAULT_FORMAT)(entry({ upstreamHost: null, requestHeader: () => undefined, responseHeader: null, responseCode: 0 })))
      .toBe('[2016-04-15T20:17:00.310Z] "- - HTTP/2" 0 - 154 0 226 - "-" "-" "-" "-" "-"\n');
  });

  test('%% is one %, text around operators is kept, an empty format is one empty line piece', () => {
    expect(text('100%% of %PROTOCOL%!')(entry())).toBe('100% of HTTP/2!');
    expect(parseFormat('')).toEqual({ ok: true, tokens: [{ kind: 'text', text: '' }] });
  });

  test('%REQ(X?Y):Z%: the alternative header when the first is missing, cut to Z characters', () => {
    expect(text('%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%')(entry())).toBe('/api/v1/locations');
    expect(text('%REQ(USER-AGENT):3%')(entry())).toBe('nsq');
    expect(text('%RESP(:STATUS)% %TRAILER(GRPC-STATUS)%')(entry())).toBe('204 -');
  });

  test('omit_empty_values leaves nothing where a value is missing', () => {
    expect(text('[%ROUTE_NAME%][%REQ(NOPE)%]', true)(entry())).toBe('[][]');
    expect(text('[%ROUTE_NAME%][%REQ(NOPE)%]')(entry())).toBe('[-][-]');
  });

  test('addresses with and without port (IPv6 bracketed), ports alone', () => {
    expect(text('%DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_PORT%')(entry())).toBe('[::1]:10000 ::1 10000');
    expect(text('%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_DIRECT_REMOTE_ADDRESS%')(entry())).toBe('10.0.35.28:0 127.0.0.1:5000');
  });

  test('durations are whole milliseconds; response flags in Envoy\'s order', () => {
    expect(text('%DURATION% %REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION%')(entry())).toBe('226 3 120 106');
    const flags = bitOf('URX') | bitOf('UF');
    expect(shortFlags(flags)).toBe('UF,URX');
    expect(longFlags(flags)).toBe('UpstreamConnectionFailure,UpstreamRetryLimitExceeded');
    expect(text('%RESPONSE_FLAGS%')(entry({ responseFlags: flags }))).toBe('UF,URX');
  });

  test('details have their spaces replaced unless ALLOW_WHITESPACES', () => {
    const e = entry({ responseCodeDetails: 'a b' });
    expect(text('%RESPONSE_CODE_DETAILS% %RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)%')(e)).toBe('a_b a b');
  });

  test.each([
    ['%NOT_A_THING%', 'Not supported field in StreamInfo: NOT_A_THING (command operator %NOT_A_THING% is not supported by sidemirror)'],
    ['%UPSTREAM_LOCAL_ADDRESS%', 'Not supported field in StreamInfo: UPSTREAM_LOCAL_ADDRESS (command operator %UPSTREAM_LOCAL_ADDRESS% is not supported by sidemirror)'],
    ['a %req(x)% b', 'Incorrect configuration: a %req(x)% b. Couldn\'t find valid command at position 2'],
    ['50% off', 'Incorrect configuration: 50% off. Couldn\'t find valid command at position 2'],
    ['%PROTOCOL(X)%', 'PROTOCOL does not take any parameters or length'],
    ['%REQ%', 'REQ requires parameters'],
    ['%START_TIME:10%', 'START_TIME does not allow length to be specified.'],
    ['%REQ(A?B?C)%', 'More than 1 alternative header specified in token: A?B?C'],
    ['%START_TIME(%Y%n)%', 'Invalid header configuration. Format string contains newline.'],
    ['%SHADOW_CLUSTER%', 'Not supported field in StreamInfo: SHADOW_CLUSTER (command operator %SHADOW_CLUSTER% is not supported by sidemirror outside sidemirror.access_loggers.shadow)'],
  ])('%s is refused: %s', (format, error) => {
    expect(parseFormat(format)).toEqual({ ok: false, error });
  });

  test('the shadow format parses in a shadow logger and names cluster, outcome and reason', () => {
    const line = text(SHADOW_DEFAULT_FORMAT, false, true)(entry({
      shadow: { cluster: 'mirror', outcome: 'failed', reason: 'connect_failure', policy: null }, responseCode: 0, durationMs: 3,
    }));
    expect(line).toBe('[2016-04-15T20:17:00.310Z] shadow "POST /api/v1/locations HTTP/2" 0 failed connect_failure 3 ' +
      '"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "mirror" "10.0.2.1:80" "-"\n');
  });
});

describe('%START_TIME(...)%', () => {
  test.each([
    ['', '2016-04-15T20:17:00.310Z'],
    ['%Y-%m-%dT%H:%M:%S.%3fZ', '2016-04-15T20:17:00.310Z'],
    ['%s.%3f', '1460751420.310'],
    ['%s.%6f', '1460751420.310123'],
    ['%Y/%m/%dT%H:%M:%S%z %s', '2016/04/15T20:17:00+0000 1460751420'],
    ['%E3S|%F %T|%a %b %e|%j', '00.310|2016-04-15 20:17:00|Fri Apr 15|106'],
  ])('%s', (format, expected) => {
    expect(timeFormatter(format)(T0)).toBe(expected);
  });
});

describe('JSON formats', () => {
  const parse = (s: string) => {
    const p = parseFormat(s);
    if (!p.ok) throw new Error(p.error);
    return { kind: 'template' as const, tokens: p.tokens };
  };
  const format = (typed: boolean, omitEmptyValues: boolean): LogFormat => ({
    kind: 'json', typed, omitEmptyValues,
    root: { kind: 'object', fields: [
      ['status', parse('%RESPONSE_CODE%')],
      ['request', { kind: 'object', fields: [['path', parse('%REQ(:PATH)%')], ['method', parse('%REQ(:METHOD)%')]] }],
      ['missing', parse('%REQ(X-NOPE)%')],
      ['mixed', parse('code=%RESPONSE_CODE% route=%ROUTE_NAME%')],
      ['list', { kind: 'list', items: [parse('%BYTES_RECEIVED%'), { kind: 'constant', value: true }] }],
      ['answer', { kind: 'constant', value: 42 }],
      ['empty', { kind: 'object', fields: [['x', parse('%ROUTE_NAME%')]] }],
    ] },
  });

  test('typed: keys sorted, numbers stay numbers, a missing value is null, mixed values are strings', () => {
    const line = compileFormat(format(true, false))(entry());
    expect(line.endsWith('}\n')).toBe(true);
    expect(line).toBe('{"answer":42,"empty":{"x":null},"list":[154,true],"missing":null,"mixed":"code=204 route=-",' +
      '"request":{"method":"POST","path":"/api/v1/locations"},"status":204}\n');
  });

  test('omit_empty_values drops missing values and objects left empty', () => {
    expect(JSON.parse(compileFormat(format(true, true))(entry()))).toEqual({
      answer: 42, list: [154, true], mixed: 'code=204 route=', request: { method: 'POST', path: '/api/v1/locations' }, status: 204,
    });
  });

  test('the deprecated untyped json_format renders every value as a string, "-" when missing', () => {
    const v = JSON.parse(compileFormat(format(false, false))(entry()));
    expect(v.status).toBe('204');
    expect(v.missing).toBe('-');
    expect(v.list).toEqual(['154', true]);
  });
});
