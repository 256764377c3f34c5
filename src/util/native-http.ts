import { createRequire } from 'node:module';

// Node's own llhttp binding, the parser node:http runs on. It is internal API (`_http_common`),
// so it is taken only on the Node range it was tested on, checked once, and anything else falls
// back to node:http (downstream) and undici (upstream) with one warning.

/** The Node versions the native parser path was tested on (package.json `engines` says the same). */
export const TESTED_NODE_RANGE = { major: 20, minMinor: 18 } as const;

/** The parts of Node's HTTPParser the fast path uses. */
export interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  finish(): number | Error | undefined;
  consume(handle: unknown): void;
  unconsume(): void;
  getCurrentBuffer(): Buffer;
  pause(): void;
  resume(): void;
  close(): void;
  free(): void;
  remove(): void;
  [slot: number]: unknown;
}

export interface NativeHttp {
  readonly HTTPParser: {
    new (): NativeParser;
    readonly REQUEST: number;
    readonly RESPONSE: number;
    readonly kOnMessageBegin: number;
    readonly kOnHeaders: number;
    readonly kOnHeadersComplete: number;
    readonly kOnBody: number;
    readonly kOnMessageComplete: number;
    readonly kOnExecute: number;
    readonly kOnTimeout: number;
    readonly kLenientNone: number;
  };
  /** Method names by llhttp's method index. */
  readonly methods: readonly string[];
}

export type Http1Codec = 'fast' | 'node';

export interface CodecChoice {
  readonly codec: Http1Codec;
  /** Why the fast codec is not in use, for the one warning (null: it is, or the user asked for node). */
  readonly fallbackReason: string | null;
}

let loaded: NativeHttp | null | undefined;

/** Node's HTTPParser when this Node has it in the shape the fast path was written for, else null. */
export function nativeHttp(): NativeHttp | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (!nodeInTestedRange(process.versions.node)) return null;
  try {
    const common = createRequire(__filename)('_http_common') as Partial<NativeHttp>;
    const P = common.HTTPParser;
    if (typeof P !== 'function' || !Array.isArray(common.methods)) return null;
    for (const slot of ['kOnHeadersComplete', 'kOnBody', 'kOnMessageComplete', 'kOnExecute', 'REQUEST', 'RESPONSE'] as const) {
      if (typeof P[slot] !== 'number') return null;
    }
    const probe = new P();
    for (const fn of ['initialize', 'execute', 'finish', 'consume', 'unconsume', 'close'] as const) {
      if (typeof probe[fn] !== 'function') return null;
    }
    loaded = common as NativeHttp;
  } catch {
    loaded = null;
  }
  return loaded;
}

export function nodeInTestedRange(version: string): boolean {
  const [major, minor] = version.split('.').map(Number);
  return major === TESTED_NODE_RANGE.major && (minor ?? 0) >= TESTED_NODE_RANGE.minMinor;
}

/**
 * Which HTTP/1.1 codec this process runs: the fast one (net.Server + the native parser, own
 * upstream pools) unless SIDEMIRROR_HTTP1_CODEC=node asks for node:http + undici, or the native
 * parser is not there.
 */
export function http1CodecChoice(env: NodeJS.ProcessEnv = process.env): CodecChoice {
  const asked = env.SIDEMIRROR_HTTP1_CODEC;
  if (asked === 'node') return { codec: 'node', fallbackReason: null };
  if (nativeHttp() !== null) return { codec: 'fast', fallbackReason: null };
  return { codec: 'node', fallbackReason: `Node ${process.versions.node} is outside the tested range ${TESTED_NODE_RANGE.major}.${TESTED_NODE_RANGE.minMinor}+ (or lacks _http_common's HTTPParser)` };
}

let chosen: CodecChoice | null = null;

/** The choice for this process, made once. */
export function processCodec(): CodecChoice {
  return (chosen ??= http1CodecChoice());
}
