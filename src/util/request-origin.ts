import type { IncomingMessage } from 'node:http';
import * as os from 'node:os';

// An admin port on loopback is still reachable from any web page the operator's browser opens:
// a cross-site form POST (CSRF) or a DNS-rebound name pointing at 127.0.0.1 both arrive with
// the browser's own headers. A state change is therefore taken only when Host names this server
// (a loopback name or the bound address, with the bound port), Origin — when the browser sends
// one — is this server too, and Sec-Fetch-Site is not cross-site. curl and scripts send a Host
// that matches and no Origin, so they are unaffected.

/** Methods that change state; GET and HEAD never do on our admin servers. */
export function isStateChanging(method: string | undefined): boolean {
  return method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS';
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** The host names (lower case, IPv6 in brackets) that refer to a server bound at `address`. */
export function ownHostNames(address: string): ReadonlySet<string> {
  const names = new Set(LOOPBACK_NAMES);
  if (WILDCARDS.has(address)) {
    // Bound to every interface: any of this machine's addresses (and its name) is this server.
    names.add(os.hostname().toLowerCase());
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list ?? []) names.add(bracket(a.address.toLowerCase()));
    }
  } else {
    names.add(bracket(address.toLowerCase()));
  }
  return names;
}

function bracket(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Splits `host[:port]` (IPv6 in brackets); a missing port is the scheme's default. */
function splitAuthority(authority: string, defaultPort: number): { host: string; port: number } | null {
  const m = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority.trim().toLowerCase());
  if (!m) return null;
  return { host: m[1]!, port: m[2] === undefined ? defaultPort : Number(m[2]) };
}

function isOwn(authority: string, defaultPort: number, names: ReadonlySet<string>, port: number): boolean {
  const a = splitAuthority(authority, defaultPort);
  return a !== null && a.port === port && names.has(a.host);
}

/**
 * Why a request must not reach this server, or null when it may: Host (and Origin, when present)
 * must name this server at its bound port; `Sec-Fetch-Site: cross-site` is refused outright.
 */
export function foreignRequestReason(req: IncomingMessage, names: ReadonlySet<string>, port: number): string | null {
  const host = req.headers.host;
  if (host === undefined || !isOwn(host, 80, names, port)) return `Host "${host ?? ''}" is not this admin server`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const m = /^(https?):\/\/(.+)$/i.exec(origin);
    if (!m || !isOwn(m[2]!, m[1]!.toLowerCase() === 'https' ? 443 : 80, names, port)) return `Origin "${origin}" is not this admin server`;
  }
  if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site request (Sec-Fetch-Site)';
  return null;
}

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h);
}
