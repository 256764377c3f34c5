import { BlockList, SocketAddress, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { CidrRange, InternalAddressConfig } from '../config/model';

// Which downstream addresses Envoy counts as internal, and the address helpers its header rules
// use (Network::Utility::isInternalAddress, isLoopbackAddress, the node's own address).

/** Decides whether an IP address (as Node prints it) is internal. */
export type InternalAddressMatcher = (address: string) => boolean;

const NONE_INTERNAL: InternalAddressMatcher = () => false;

/**
 * Envoy's list when internal_address_config is present without cidr_ranges: RFC 1918, the
 * canonical loopback addresses only (127.0.0.1 and ::1, not all of 127.0.0.0/8) and fd00::/8.
 */
const ENVOY_BUILT_IN: readonly CidrRange[] = [
  { addressPrefix: '10.0.0.0', prefixLen: 8 },
  { addressPrefix: '172.16.0.0', prefixLen: 12 },
  { addressPrefix: '192.168.0.0', prefixLen: 16 },
  { addressPrefix: '127.0.0.1', prefixLen: 32 },
  { addressPrefix: 'fd00::', prefixLen: 8 },
  { addressPrefix: '::1', prefixLen: 128 },
];

/**
 * The matcher for one connection manager. No config: nothing is internal (Envoy since 1.33,
 * when the explicit_internal_address_config guard flipped; the guard was removed in 1.36). A
 * config without cidr_ranges: Envoy's built-in list. Otherwise exactly the ranges given.
 */
export function internalAddressMatcher(config: InternalAddressConfig | null): InternalAddressMatcher {
  if (config === null) return NONE_INTERNAL;
  const ranges = config.cidrRanges.length > 0 ? config.cidrRanges : ENVOY_BUILT_IN;
  // One list per family: a BlockList would match an IPv4-mapped IPv6 address against IPv4
  // ranges, which Envoy's CidrRange does not.
  const v4 = new BlockList();
  const v6 = new BlockList();
  for (const r of ranges) {
    if (isIP(r.addressPrefix) === 4) v4.addSubnet(r.addressPrefix, r.prefixLen, 'ipv4');
    else if (isIP(r.addressPrefix) === 6) v6.addSubnet(r.addressPrefix, r.prefixLen, 'ipv6');
  }
  return (address) => {
    const family = isIP(address);
    return family === 4 ? v4.check(address, 'ipv4') : family === 6 ? v6.check(address, 'ipv6') : false;
  };
}

/** Envoy's isLoopbackAddress: the canonical addresses only. */
export function isLoopbackAddress(address: string): boolean {
  return address === '127.0.0.1' || address === '::1';
}

/** An address as Envoy prints it (addressAsString): IPv6 compressed and lowercased. */
export function canonicalAddress(address: string): string {
  const family = isIP(address);
  if (family !== 6) return address;
  try {
    return new SocketAddress({ address, family: 'ipv6' }).address;
  } catch {
    return address;
  }
}

let node: string | null = null;

/**
 * This node's address, as Envoy's local_info has it: the first non-loopback IPv4 interface
 * address, else 127.0.0.1. Read once, as Envoy does at start-up.
 */
export function nodeAddress(): string {
  if (node !== null) return node;
  node = '127.0.0.1';
  for (const list of Object.values(networkInterfaces())) {
    const found = list?.find((a) => a.family === 'IPv4' && !a.internal && !isLoopbackAddress(a.address));
    if (found) {
      node = found.address;
      break;
    }
  }
  return node;
}
