import * as grpc from '@grpc/grpc-js';
import type { HealthImplementation } from 'grpc-health-check';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, type ResourceTypeUrl, isWildcardType } from '../../config/resources';
import type { Logger } from '../../log/logger';
import type { BearerToken } from '../../util/bearer-token';
import { type NodeKey, nodeKeyString } from '../cache/node-resources';
import type { SnapshotCache } from '../cache/snapshot-cache';
import type { ControlPlaneMetrics } from '../metrics';
import { discoveryResponse, readDiscoveryRequest, serviceDefinition } from './codec';
import { ADS_SERVICE, addIntrospection } from './introspection';
import type { NodeStatusRegistry } from './node-status';
import { type XdsTlsFiles, XdsTlsFront } from './xds-tls';
import { StreamError, XdsStream } from './xds-stream';

// The gRPC face of the control plane: ADS and the four per-type services on one grpc-js server,
// each stream driven by an XdsStream, every open stream pushed to when the cache changes. With
// TLS files the port is a TLS listener of ours (xds-tls.ts) feeding grpc-js its connections.
// Delta xDS is not implemented yet (DESIGN §4) and answers UNIMPLEMENTED.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Plain = Record<string, any>;
type Duplex = grpc.ServerDuplexStream<Plain, Plain>;

/** Per-type services: service name, the suffix of its method names, and the type it serves. */
const PER_TYPE_SERVICES: ReadonlyArray<[string, string, ResourceTypeUrl]> = [
  ['envoy.service.listener.v3.ListenerDiscoveryService', 'Listeners', LISTENER_TYPE],
  ['envoy.service.route.v3.RouteDiscoveryService', 'Routes', ROUTE_TYPE],
  ['envoy.service.cluster.v3.ClusterDiscoveryService', 'Clusters', CLUSTER_TYPE],
  ['envoy.service.endpoint.v3.EndpointDiscoveryService', 'Endpoints', ENDPOINT_TYPE],
];

export interface AdsServerOptions {
  readonly cache: SnapshotCache;
  readonly status: NodeStatusRegistry;
  readonly metrics: ControlPlaneMetrics;
  readonly logger: Logger;
  /** When set, each stream and fetch must carry `authorization: Bearer <token>` metadata. */
  readonly token: BearerToken | null;
  /** grpc max receive and send message length (bytes). */
  readonly maxMessageBytes: number;
  /** Serve xDS over TLS (mutual with a client CA); plaintext without. */
  readonly tls?: XdsTlsFiles;
}

export class AdsServer {
  private readonly server: grpc.Server;
  private readonly streams = new Map<Duplex, XdsStream>();
  /** Open streams per node key, so the cache can forget a node once its last stream is gone. */
  private readonly perNode = new Map<string, number>();
  private readonly health: HealthImplementation;
  private readonly unwatch: () => void;
  private tlsFront: XdsTlsFront | null = null;

  constructor(private readonly o: AdsServerOptions) {
    // One limit both ways: a NACK bigger than this is refused by grpc-js before we see it, and a
    // response bigger than a sidecar accepts is never written (the cache refuses such snapshots).
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': o.maxMessageBytes,
      'grpc.max_send_message_length': o.maxMessageBytes,
    });
    const deltaUnimplemented = (call: Duplex): void => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'delta xDS is not implemented; use the state-of-the-world methods' });
    };
    this.server.addService(serviceDefinition(ADS_SERVICE), {
      StreamAggregatedResources: (call: Duplex) => this.openStream(call, null),
      DeltaAggregatedResources: deltaUnimplemented,
    });
    for (const [service, suffix, type] of PER_TYPE_SERVICES) {
      this.server.addService(serviceDefinition(service), {
        [`Stream${suffix}`]: (call: Duplex) => this.openStream(call, type),
        [`Delta${suffix}`]: deltaUnimplemented,
        [`Fetch${suffix}`]: (call: grpc.ServerUnaryCall<Plain, Plain>, cb: grpc.sendUnaryData<Plain>) => this.fetch(call, cb, type),
      });
    }
    this.health = addIntrospection(this.server, [ADS_SERVICE, ...PER_TYPE_SERVICES.map(([s]) => s)]);
    // One cache change → every stream re-checks its types (in SDS, CDS, EDS, LDS, RDS order).
    this.unwatch = o.cache.watch(() => {
      for (const stream of this.streams.values()) stream.push();
    });
  }

  /** Binds host:port (port 0 picks a free one) and resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    if (this.o.tls) return this.listenTls(host, port, this.o.tls);
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(target, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** TLS is ours; what passed it reaches grpc-js as an already secured connection. */
  private listenTls(host: string, port: number, files: XdsTlsFiles): Promise<number> {
    const injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.tlsFront = new XdsTlsFront({
      files,
      logger: this.o.logger,
      onSecure: (socket) => injector.injectConnection(socket),
      onRefused: (reason) => this.o.metrics.tlsConnectionsRefused.inc({ reason }),
    });
    return this.tlsFront.listen(host, port);
  }

  /** Open xDS streams right now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Stops serving: health goes NOT_SERVING, streams end with OK, then the server shuts down (forced after graceMs). */
  close(graceMs = 2000): Promise<void> {
    this.unwatch();
    this.health.setStatus('', 'NOT_SERVING');
    for (const call of [...this.streams.keys()]) {
      if (!call.writableEnded) call.end();
      this.closeStream(call);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.server.forceShutdown(), graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        this.tlsFront?.close();
        resolve();
      });
    });
  }

  /** False (and the call refused with UNAUTHENTICATED) when a token is required and not presented. */
  private authenticated(call: Duplex | grpc.ServerUnaryCall<Plain, Plain>, refuse: (e: grpc.ServiceError) => void): boolean {
    if (!this.o.token) return true;
    const presented = call.metadata.get('authorization')[0];
    if (typeof presented === 'string' && this.o.token.matchesHeader(presented)) return true;
    this.o.metrics.streamsRefused.inc({ reason: 'unauthenticated' });
    // Debug only: a client retrying without a token must not fill the log.
    this.o.logger.debug({ peer: call.getPeer(), presented: presented !== undefined }, 'xDS call refused: no or wrong bearer token');
    const err = Object.assign(new Error('a valid bearer token is required (authorization metadata)'), {
      code: grpc.status.UNAUTHENTICATED, details: 'a valid bearer token is required (authorization metadata)', metadata: new grpc.Metadata(),
    });
    refuse(err);
    return false;
  }

  private openStream(call: Duplex, fixedType: ResourceTypeUrl | null): void {
    if (!this.authenticated(call, (e) => call.emit('error', e))) return;
    const stream = new XdsStream({
      ...this.o,
      fixedType,
      send: (response) => {
        if (!call.cancelled && !call.writableEnded) call.write(response);
      },
    });
    this.streams.set(call, stream);
    this.o.metrics.connectedStreams.inc();
    call.on('data', (raw: Plain) => {
      const known = stream.nodeKey;
      try {
        stream.handle(readDiscoveryRequest(raw));
      } catch (err) {
        // A bug must cost one stream, not the whole control plane.
        const code = err instanceof StreamError ? err.code : grpc.status.INTERNAL;
        const details = err instanceof Error ? err.message : String(err);
        this.o.logger.warn({ node: stream.nodeKey?.id, peer: call.getPeer(), code, error: details }, 'xDS stream ended with an error');
        call.emit('error', { code, details });
        // handle() may have learned the node before it threw: count it so closeStream's -1 balances.
        if (!known && stream.nodeKey && this.streams.has(call)) this.countNode(stream.nodeKey, +1);
        this.closeStream(call);
        return;
      }
      if (!known && stream.nodeKey && this.streams.has(call)) this.countNode(stream.nodeKey, +1);
    });
    // The client half-closed: finish our side too.
    call.on('end', () => {
      if (!call.writableEnded) call.end();
      this.closeStream(call);
    });
    call.on('cancelled', () => this.closeStream(call));
    call.on('close', () => this.closeStream(call));
  }

  private closeStream(call: Duplex): void {
    const stream = this.streams.get(call);
    if (!stream) return;
    this.streams.delete(call);
    this.o.metrics.connectedStreams.dec();
    stream.close();
    if (stream.nodeKey) this.countNode(stream.nodeKey, -1);
  }

  private countNode(node: NodeKey, delta: number): void {
    const key = nodeKeyString(node);
    const n = (this.perNode.get(key) ?? 0) + delta;
    if (n > 0) {
      this.perNode.set(key, n);
    } else {
      this.perNode.delete(key);
      this.o.cache.forget(node);
    }
  }

  /** Unary Fetch*: the node's current resources of the type (all of them when no names are given). */
  private fetch(call: grpc.ServerUnaryCall<Plain, Plain>, cb: grpc.sendUnaryData<Plain>, type: ResourceTypeUrl): void {
    if (!this.authenticated(call, (e) => cb(e))) return;
    const req = readDiscoveryRequest(call.request);
    if (!req.node) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: 'node is required' });
      return;
    }
    const snap = this.o.cache.snapshotFor(req.node).types.get(type)!;
    if (!this.perNode.has(nodeKeyString(req.node))) this.o.cache.forget(req.node); // a fetch holds no watch
    const wildcard = req.resourceNames.length === 0 || (isWildcardType(type) && req.resourceNames.includes('*'));
    const names = new Set(req.resourceNames);
    const bytes = [...snap.resources.values()].filter((e) => wildcard || names.has(e.name)).map((e) => e.bytes);
    cb(null, discoveryResponse(type, snap.version, '', bytes));
  }
}
