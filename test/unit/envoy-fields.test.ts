import * as fs from 'node:fs';
import * as path from 'node:path';
import { ENVOY_UNDECLARED_FIELDS } from '../../src/config/envoy-fields';
import { envoyFieldTable, renderEnvoyFields } from '../../scripts/envoy-fields';

// The checked-in list of Envoy fields that proto/ leaves out must match Envoy's real protos
// (@grpc/grpc-js-xds, a devDependency, read only here and in the generator).

const REPO = path.resolve(__dirname, '../..');

describe('src/config/envoy-fields.ts', () => {
  const fresh = envoyFieldTable(REPO);

  test('matches what scripts/envoy-fields.ts generates from Envoy\'s protos (run npm run gen:envoy-fields)', () => {
    expect(ENVOY_UNDECLARED_FIELDS).toEqual(fresh);
    expect(fs.readFileSync(path.join(REPO, 'src/config/envoy-fields.ts'), 'utf8')).toBe(renderEnvoyFields(fresh));
  });

  test('names the fields a user of Envoy reaches for first', () => {
    expect(fresh['envoy.config.listener.v3.FilterChain']).toMatchObject({ use_proxy_proto: 4, transport_socket_connect_timeout: 9 });
    expect(fresh['envoy.config.listener.v3.FilterChainMatch']).toMatchObject({ destination_port: 8, prefix_ranges: 3 });
    expect(fresh['envoy.config.cluster.v3.Cluster']).toMatchObject({ cleanup_interval: 20, lb_subset_config: 22 });
    expect(fresh['envoy.config.cluster.v3.OutlierDetection']).toEqual({ monitors: 24 });
    expect(fresh['envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext']).toMatchObject({ session_ticket_keys: 4, ocsp_staple_policy: 8 });
    expect(fresh['envoy.extensions.transport_sockets.tls.v3.TlsCertificate']).toMatchObject({ pkcs12: 8, private_key_provider: 6 });
    expect(fresh['envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager']).toMatchObject({ tracing: 7 });
  });
});
