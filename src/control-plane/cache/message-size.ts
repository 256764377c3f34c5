import { type ConfigIssue, ConfigError } from '../../config/errors';
import { DEFAULT_MAX_XDS_MESSAGE_BYTES, TYPE_ORDER, TYPE_SHORT, type ResourceTypeUrl } from '../../config/resources';
import type { NodeOverride, ResourceMap, ResourceSet } from '../resources-file';

// A DiscoveryResponse carries every resource of its type a node gets, in one gRPC message. A
// sidecar refuses a message over its receive limit (grpc-js: 4 MiB by default) and reconnects,
// so a snapshot that would need a bigger message must be refused here, before anyone is sent it.

/** grpc-js's default max_receive_message_length, the limit a sidecar applies unless told otherwise. */
export const DEFAULT_MAX_MESSAGE_BYTES = DEFAULT_MAX_XDS_MESSAGE_BYTES;

/** version_info, nonce, type_url and control_plane: a few short strings, bounded generously. */
const RESPONSE_OVERHEAD = 1024;

/** A resource set refused because some node's response would exceed the message limit. */
export class SnapshotTooLargeError extends ConfigError {}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes += 1;
  }
  return bytes;
}

/** A length-delimited field: tag, length, payload. */
function fieldBytes(payload: number): number {
  return 1 + varintBytes(payload) + payload;
}

/** One resource as it sits in DiscoveryResponse.resources: an Any with type_url and value. */
function resourceBytes(typeUrl: string, value: number): number {
  return fieldBytes(fieldBytes(typeUrl.length) + fieldBytes(value));
}

function typeBytes(map: ResourceMap, type: ResourceTypeUrl): number {
  let n = 0;
  for (const e of map.get(type)?.values() ?? []) n += resourceBytes(type, e.bytes.length);
  return n;
}

/** How many bytes an override adds to the base's response of `type`: exact, and counting only growth. */
function overrideDelta(base: ResourceMap, o: NodeOverride, type: ResourceTypeUrl): { exact: number; growth: number } {
  let exact = 0;
  let growth = 0;
  const baseByName = base.get(type);
  for (const e of o.resources.get(type)?.values() ?? []) {
    const replaced = baseByName?.get(e.name);
    const d = resourceBytes(type, e.bytes.length) - (replaced ? resourceBytes(type, replaced.bytes.length) : 0);
    exact += d;
    growth += Math.max(0, d);
  }
  return { exact, growth };
}

/**
 * Checks that every response any node could be sent fits in `limit` bytes, in time linear in the
 * set: exactly for the base and each override alone; for a node matching a cluster override and
 * an id override, against an upper bound (base + the largest growth of each kind), which errs on
 * the side of refusing. Throws SnapshotTooLargeError naming the type, the size and the limit.
 */
export function checkMessageSizes(set: ResourceSet, limit: number): void {
  const issues: ConfigIssue[] = [];
  const over = (bytes: number): boolean => bytes + RESPONSE_OVERHEAD > limit;
  const says = (type: ResourceTypeUrl, bytes: number, who: string): string =>
    `the ${TYPE_SHORT[type].toUpperCase()} response ${who} would be ${bytes + RESPONSE_OVERHEAD} bytes, over the limit of ${limit} bytes (--max-message-bytes)`;
  for (const type of TYPE_ORDER) {
    const base = typeBytes(set.base, type);
    if (over(base)) issues.push({ path: 'resources', message: says(type, base, 'for every node') });
    let clusterMax: { growth: number; o: NodeOverride } | null = null;
    let idMax: { growth: number; o: NodeOverride } | null = null;
    for (const o of set.overrides) {
      const d = overrideDelta(set.base, o, type);
      if (!over(base) && over(base + d.exact)) {
        issues.push({ path: o.path, message: says(type, base + d.exact, `for nodes with ${o.match.kind} "${o.match.value}"`) });
      }
      if (o.match.kind === 'cluster' && d.growth > (clusterMax?.growth ?? 0)) clusterMax = { growth: d.growth, o };
      if (o.match.kind === 'id' && d.growth > (idMax?.growth ?? 0)) idMax = { growth: d.growth, o };
    }
    if (clusterMax && idMax && issues.length === 0) {
      const bound = base + clusterMax.growth + idMax.growth;
      if (over(bound)) {
        const who = `for a node matching both ${clusterMax.o.path} and ${idMax.o.path}`;
        issues.push({ path: idMax.o.path, message: says(type, bound, who).replace('would be', 'could be up to') });
      }
    }
  }
  if (issues.length > 0) throw new SnapshotTooLargeError(issues);
}
