import * as protobuf from 'protobufjs';
import { toProto3JSON } from 'proto3-json-serializer';
import { messageType } from '../../src/config/proto';
import { REDACTED, isSensitive, redactJson, redactedProto3Json } from '../../src/config/redact';

// The redactor's rules (Envoy's MessageUtil::redact, on proto3 JSON), on our real types and on a
// small schema made for the cases our protos do not have yet (a sensitive message, map, bytes,
// repeated string, number).

const MIRROR = 'sidemirror.filters.http.mirror.v1.Mirror';
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const T = 'type.googleapis.com/';

const base = new protobuf.Root();
for (const f of ['any', 'duration', 'struct']) base.addJSON((protobuf.common as unknown as Record<string, protobuf.INamespace>)[`google/protobuf/${f}.proto`]!.nested!);
const schema = protobuf.parse(`
syntax = "proto3";
package t;
import "google/protobuf/any.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/struct.proto";
message Inner { string name = 1; uint32 n = 2; bytes blob = 3; google.protobuf.Duration d = 4; }
message Outer {
  string plain = 1;
  string token = 2 [(udpa.annotations.sensitive) = true];
  Inner open = 3;
  Inner closed = 4 [(udpa.annotations.sensitive) = true];
  map<string, string> headers = 5 [(udpa.annotations.sensitive) = true];
  map<string, Inner> inners = 6;
  repeated string keys = 7 [(udpa.annotations.sensitive) = true];
  uint32 pin = 8 [(udpa.annotations.sensitive) = true];
  google.protobuf.Struct meta = 9 [(udpa.annotations.sensitive) = true];
  google.protobuf.Any any = 10 [(udpa.annotations.sensitive) = true];
}
`, base, { keepCase: true }).root;
const Outer = schema.lookupType('t.Outer');

test('our protos mark the Redis password and username sensitive, and nothing else of the mirror filter', () => {
  const conn = messageType('sidemirror.filters.http.mirror.v1.RedisConnection');
  expect(conn.fieldsArray.filter(isSensitive).map((f) => f.name).sort()).toEqual(['password', 'username']);
  for (const name of ['RedisServer', 'RedisCluster', 'RedisTls', 'MirrorPolicy', 'Limit']) {
    expect(messageType(`sidemirror.filters.http.mirror.v1.${name}`).fieldsArray.filter(isSensitive)).toEqual([]);
  }
});

test('Envoy\'s rules: strings and bytes → "[redacted]", other scalars cleared, inside sensitive messages too; map values only', () => {
  const json = {
    plain: 'shown', token: 't0ken',
    open: { name: 'n', n: 3 },
    closed: { name: 'c', n: 4, blob: 'YmxvYg==', d: '5s' },
    headers: { authorization: 'Bearer x', 'x-b': 'y' },
    inners: { a: { name: 'kept', n: 1 } },
    keys: ['k1', 'k2'],
    pin: 1234,
    meta: { user: 'u', nested: { n: 1, list: ['a', true] } },
    unknown_key: 'copied as it is',
  };
  expect(redactJson(Outer, json)).toEqual({
    plain: 'shown', token: REDACTED,
    open: { name: 'n', n: 3 },
    closed: { name: REDACTED, blob: REDACTED },
    headers: { authorization: REDACTED, 'x-b': REDACTED },
    inners: { a: { name: 'kept', n: 1 } },
    keys: [REDACTED, REDACTED],
    meta: { user: REDACTED, nested: { n: null, list: [REDACTED, null] } },
    unknown_key: 'copied as it is',
  });
  // The input is not changed.
  expect(json.token).toBe('t0ken');
});

test('an Any is opened by its @type: a Mirror inside an HCM inside a listener filter', () => {
  const listener = messageType('envoy.config.listener.v3.Listener');
  const mirror = { '@type': T + MIRROR, redis: { main: { server: { host: '127.0.0.1', port: 6379 }, password: 'pw-1', username: 'u-1', database: 2 } } };
  const json = {
    name: 'l',
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': T + HCM, stat_prefix: 's', http_filters: [{ name: 'm', typed_config: mirror }] } }] }],
  };
  const out = JSON.stringify(redactJson(listener, json));
  expect(out).not.toContain('pw-1');
  expect(out).not.toContain('u-1');
  expect(out).toContain('"password":"[redacted]","username":"[redacted]","database":2');
  expect(out).toContain('"host":"127.0.0.1"');
});

test('a sensitive Any is redacted inside, by its own type', () => {
  const any = { '@type': T + MIRROR, redis: { r: { server: { host: 'h', port: 1 }, password_file: '/etc/pw' } } };
  expect(redactJson(Outer, { any })).toEqual({ any: { '@type': T + MIRROR, redis: { r: { server: { host: REDACTED }, password_file: REDACTED } } } });
});

test('redactedProto3Json: a decoded message, as the admin servers print it', () => {
  const type = messageType(MIRROR);
  const msg = type.fromObject({ redis: { main: { server: { host: 'h', port: 1 }, password: 'pw-2' }, other: { server: { host: 'h2' }, password_env: 'REDIS_PW' } } });
  expect(toProto3JSON(msg)).toMatchObject({ redis: { main: { password: 'pw-2' } } });
  expect(redactedProto3Json(msg)).toEqual({
    redis: { main: { server: { host: 'h', port: 1 }, password: REDACTED }, other: { server: { host: 'h2' }, password_env: 'REDIS_PW' } },
  });
});

test('a map key like __proto__ stays an own key', () => {
  const out = redactJson(Outer, JSON.parse('{"headers":{"__proto__":"v"}}')) as { headers: Record<string, unknown> };
  expect(Object.keys(out.headers)).toEqual(['__proto__']);
  expect(Object.getOwnPropertyDescriptor(out.headers, '__proto__')?.value).toBe(REDACTED);
});
