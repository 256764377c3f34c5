import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import { exampleFile } from './greeter';

// The sidecar's config as it runs: envoy.yaml (h2c) or envoy-tls.yaml, with the ports the
// example was asked for and, for TLS, the generated certificate files, written to a work dir.

export interface Ports {
  /** The sidecar's listener. */
  readonly proxy: number;
  readonly admin: number;
  /** The primary Greeter. */
  readonly greeter: number;
  readonly mirror: number;
}

export interface PortOverrides {
  readonly proxy?: number;
  readonly admin?: number;
  /** The primary on this port, the mirror on the next. */
  readonly service?: number;
}

const LISTENER_PORT = ['static_resources', 'listeners', 0, 'address', 'socket_address', 'port_value'];
const ADMIN_PORT = ['admin', 'address', 'socket_address', 'port_value'];
const CERTIFICATE = ['static_resources', 'listeners', 0, 'filter_chains', 0, 'transport_socket', 'typed_config', 'common_tls_context', 'tls_certificates', 0];
const endpointPort = (cluster: number): Array<string | number> =>
  ['static_resources', 'clusters', cluster, 'load_assignment', 'endpoints', 0, 'lb_endpoints', 0, 'endpoint', 'address', 'socket_address', 'port_value'];

export function configSource(tls: boolean): string {
  return exampleFile(tls ? 'envoy-tls.yaml' : 'envoy.yaml');
}

/** Writes the config to `dir`/envoy.yaml; returns its path and the ports it uses. */
export function writeConfig(o: { tls: boolean; dir: string; ports: PortOverrides; certs?: { certFile: string; keyFile: string } }): { file: string; ports: Ports } {
  const doc = parseDocument(fs.readFileSync(configSource(o.tls), 'utf8'));
  const clusterIndex = (name: string): number => {
    const clusters = (doc.getIn(['static_resources', 'clusters']) as { items: unknown[] }).items;
    const i = clusters.findIndex((_c, n) => doc.getIn(['static_resources', 'clusters', n, 'name']) === name);
    if (i < 0) throw new Error(`${configSource(o.tls)} has no cluster named ${name}`);
    return i;
  };
  const greeter = endpointPort(clusterIndex('greeter'));
  const mirror = endpointPort(clusterIndex('greeter-mirror'));
  if (o.ports.proxy !== undefined) doc.setIn(LISTENER_PORT, o.ports.proxy);
  if (o.ports.admin !== undefined) doc.setIn(ADMIN_PORT, o.ports.admin);
  if (o.ports.service !== undefined) {
    doc.setIn(greeter, o.ports.service);
    doc.setIn(mirror, o.ports.service + 1);
  }
  if (o.tls) {
    if (!o.certs) throw new Error('the TLS config needs certificates');
    doc.setIn([...CERTIFICATE, 'certificate_chain', 'filename'], o.certs.certFile);
    doc.setIn([...CERTIFICATE, 'private_key', 'filename'], o.certs.keyFile);
  }
  const file = path.join(o.dir, 'envoy.yaml');
  fs.writeFileSync(file, doc.toString());
  const port = (p: Array<string | number>): number => Number(doc.getIn(p));
  return { file, ports: { proxy: port(LISTENER_PORT), admin: port(ADMIN_PORT), greeter: port(greeter), mirror: port(mirror) } };
}
