// The HCM fields that steer request validation decode to the model, and the ones sidemirror
// does not support are refused by their field path, from YAML/JSON and from protobuf binary.
import { loadBootstrapText } from '../../src/config/load';
import type { HttpConnectionManager } from '../../src/config/model';
import { decodeHttpConnectionManager } from '../../src/config/decode/listener';
import { ConfigError, IssueCollector } from '../../src/config/errors';
import { plain } from '../../src/config/decode/common';
import { typeForUrl } from '../../src/config/proto';
import { bootstrap, cluster, listener, route, routeConfig } from '../harness/bootstrap';
import { hcmOf } from '../harness/model';

const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const HCM_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function hcmWith(fields: Record<string, unknown>): HttpConnectionManager {
  return hcmOf(loadBootstrapText(bootstrap({ listeners: [listener(routeConfig([route('/', 'c')]), { hcm: fields })], clusters: [cluster('c', [8080])] })).bootstrap.listeners[0]!.filterChains[0]);
}

function issuesWith(fields: Record<string, unknown>): Array<{ path: string; message: string }> {
  try {
    hcmWith(fields);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues.map((i) => ({ path: i.path, message: i.message }));
  }
  throw new Error('accepted');
}

test('defaults: Envoy\'s (absolute URLs on, HTTP/1.0 off, no normalization, escaped slashes kept)', () => {
  const h = hcmWith({});
  expect(h.http1).toEqual({ allowAbsoluteUrl: true, acceptHttp10: false, defaultHostForHttp10: '' });
  expect([h.normalizePath, h.mergeSlashes, h.pathWithEscapedSlashesAction]).toEqual([false, false, 'KEEP_UNCHANGED']);
});

test('every supported field decodes', () => {
  const h = hcmWith({
    normalize_path: true,
    merge_slashes: true,
    path_with_escaped_slashes_action: 'UNESCAPE_AND_REDIRECT',
    http_protocol_options: { allow_absolute_url: false, accept_http_10: true, default_host_for_http_10: 'legacy.local' },
  });
  expect(h.http1).toEqual({ allowAbsoluteUrl: false, acceptHttp10: true, defaultHostForHttp10: 'legacy.local' });
  expect([h.normalizePath, h.mergeSlashes, h.pathWithEscapedSlashesAction]).toEqual([true, true, 'UNESCAPE_AND_REDIRECT']);
  expect(hcmWith({ path_with_escaped_slashes_action: 'IMPLEMENTATION_SPECIFIC_DEFAULT' }).pathWithEscapedSlashesAction).toBe('KEEP_UNCHANGED');
});

test('path_normalization_options and downstream enable_trailers are refused by path', () => {
  expect(issuesWith({ path_normalization_options: { forwarding_transformation: {} } })).toEqual([
    { path: `${HCM}.path_normalization_options`, message: expect.stringMatching(/not supported by sidemirror/) },
  ]);
  expect(issuesWith({ http_protocol_options: { enable_trailers: true } })).toEqual([
    { path: `${HCM}.http_protocol_options.enable_trailers`, message: expect.stringMatching(/not supported by sidemirror/) },
  ]);
  expect(issuesWith({ path_with_escaped_slashes_action: 'UNESCAPE_ALL' })[0]!.path).toBe(`${HCM}.path_with_escaped_slashes_action`);
});

test('from protobuf binary (xDS): the same fields act and the same refusals hold', () => {
  const type = typeForUrl(HCM_URL)!;
  const decode = (fields: Record<string, unknown>): { hcm: HttpConnectionManager; issues: IssueCollector } => {
    const bytes = type.encode(type.fromObject({ stat_prefix: 'x', route_config: { name: 'r' }, http_filters: [{ name: 'envoy.filters.http.router' }], ...fields })).finish();
    const issues = new IssueCollector();
    return { hcm: decodeHttpConnectionManager(plain(type, type.decode(bytes)), { path: 'hcm', issues }), issues };
  };
  const ok = decode({ normalize_path: { value: true }, merge_slashes: true, path_with_escaped_slashes_action: 2, http_protocol_options: { accept_http_10: true } });
  expect(ok.issues.issues).toEqual([]);
  expect([ok.hcm.normalizePath, ok.hcm.mergeSlashes, ok.hcm.pathWithEscapedSlashesAction, ok.hcm.http1.acceptHttp10]).toEqual([true, true, 'REJECT_REQUEST', true]);
  const refused = decode({ path_normalization_options: { forwarding_transformation: {} }, path_with_escaped_slashes_action: 9 });
  expect(refused.issues.issues.map((i) => i.path).sort()).toEqual(['hcm.path_normalization_options', 'hcm.path_with_escaped_slashes_action']);
});
