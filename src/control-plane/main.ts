import { type Logger, createLogger } from '../log/logger';
import type { BearerToken } from '../util/bearer-token';
import { isLoopbackHost } from '../util/request-origin';
import { type AdminApi, startAdminApi } from './admin-api';
import { DEFAULT_MAX_MESSAGE_BYTES } from './cache/message-size';
import { SnapshotCache } from './cache/snapshot-cache';
import { ControlPlaneMetrics } from './metrics';
import { AdsServer } from './server/ads-server';
import { NodeStatusRegistry } from './server/node-status';
import type { XdsTlsFiles } from './server/xds-tls';
import { ResourceApplier } from './sources/apply';
import { FileSource } from './sources/file-source';

// The control plane's composition root: cache, sources, gRPC server and admin API, wired here and
// nowhere else. Everything is started and stopped through the returned handle.

import type { HostPort } from '../util/host-port';

export { type HostPort, parseHostPort } from '../util/host-port';

export interface ControlPlaneOptions {
  /** A watched resources file (YAML/JSON); an invalid edit keeps the previous snapshot. */
  readonly resourcesFile?: string;
  /** Initial resources as text, when there is no file (tests, PUT-only setups). */
  readonly initialText?: string;
  /** gRPC (xDS) address; port 0 picks a free port. */
  readonly listen: HostPort;
  /** HTTP admin address; no admin API when omitted. */
  readonly admin?: HostPort;
  readonly logger?: Logger;
  /** Debounce of file change events (ms); 100 by default. */
  readonly watchDebounceMs?: number;
  /** Bearer token for the admin API; without it the admin address must be loopback. */
  readonly adminToken?: BearerToken;
  /** Bearer token every xDS stream must present (`authorization` metadata); none: xDS is open. */
  readonly xdsToken?: BearerToken;
  /** Largest gRPC message either way and largest PUT /snapshot body; 4 MiB (grpc-js's default) by default. */
  readonly maxMessageBytes?: number;
  /**
   * Serve xDS over TLS with this certificate and key (--tls-cert, --tls-key); with a client CA
   * (--client-ca) every client must present a certificate it verifies. Plaintext without.
   * The admin API is not affected.
   */
  readonly xdsTls?: XdsTlsFiles;
}

export interface ControlPlane {
  /** The bound gRPC port. */
  readonly port: number;
  /** The bound admin port, or null without an admin API. */
  readonly adminPort: number | null;
  readonly cache: SnapshotCache;
  readonly status: NodeStatusRegistry;
  readonly metrics: ControlPlaneMetrics;
  /** Replaces the resources from text; returns the new version or throws ConfigError (previous kept). */
  setResourcesText(text: string): string;
  /** Graceful: stops watching, ends streams, closes the gRPC server and the admin API. Idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the control plane. Rejects with ConfigError when the initial resources are unreadable,
 * invalid or inconsistent (nothing is left listening), so a CLI can exit non-zero.
 */
export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  if (o.resourcesFile !== undefined && o.initialText !== undefined) {
    throw new TypeError('startControlPlane: give resourcesFile or initialText, not both');
  }
  if (o.admin && !o.adminToken && !isLoopbackHost(o.admin.host)) {
    throw new Error(`--admin ${o.admin.host}:${o.admin.port} is not a loopback address; without --admin-token-file the admin API binds loopback only`);
  }
  const logger = (o.logger ?? createLogger()).child({ component: 'control-plane' });
  const maxMessageBytes = o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const cache = new SnapshotCache(maxMessageBytes);
  const metrics = new ControlPlaneMetrics();
  const status = new NodeStatusRegistry(undefined, { onForget: (n) => metrics.nodeRecordsForgotten.inc(n) });
  const applier = new ResourceApplier(cache, logger);

  // Resources first: a bad initial config must fail before any port is bound.
  let fileSource: FileSource | null = null;
  if (o.resourcesFile !== undefined) {
    fileSource = new FileSource(o.resourcesFile, applier, logger, o.watchDebounceMs);
    fileSource.start();
  } else if (o.initialText !== undefined) {
    const result = applier.apply(o.initialText, 'initial resources');
    if (!result.ok) throw result.error;
  }

  let closing = false;
  const ads = new AdsServer({ cache, status, metrics, logger, token: o.xdsToken ?? null, maxMessageBytes, tls: o.xdsTls });
  let admin: AdminApi | null = null;
  let port: number;
  try {
    port = await ads.listen(o.listen.host, o.listen.port);
    if (o.admin) {
      admin = await startAdminApi(o.admin.host, o.admin.port,
        { cache, status, metrics, applier, logger, ready: () => !closing, token: o.adminToken ?? null, maxBodyBytes: maxMessageBytes });
    }
  } catch (err) {
    fileSource?.close();
    await ads.close(0);
    throw err;
  }
  const transport = !o.xdsTls ? 'plaintext' : o.xdsTls.clientCaFile !== undefined ? 'mtls' : 'tls';
  logger.info({ grpc: `${o.listen.host}:${port}`, transport, admin: admin ? `${o.admin!.host}:${admin.port}` : null, version: cache.version, max_message_bytes: maxMessageBytes }, 'control plane listening');
  if (!o.xdsToken && o.xdsTls?.clientCaFile === undefined) {
    logger.warn({ grpc: `${o.listen.host}:${port}` }, 'xDS is unauthenticated: any client that reaches this port gets any node\'s config (use --xds-token-file or --client-ca)');
  }
  if (admin && !o.adminToken) logger.warn({ admin: `${o.admin!.host}:${admin.port}` }, 'admin API is unauthenticated and bound to loopback only (use --admin-token-file to require a token)');

  let closed: Promise<void> | null = null;
  return {
    port,
    adminPort: admin?.port ?? null,
    cache,
    status,
    metrics,
    setResourcesText(text: string): string {
      const result = applier.apply(text, 'setResourcesText');
      if (!result.ok) throw result.error;
      return result.version;
    },
    close(): Promise<void> {
      closed ??= (async () => {
        closing = true;
        fileSource?.close();
        await ads.close();
        await admin?.close();
        logger.info('control plane stopped');
      })();
      return closed;
    },
  };
}
