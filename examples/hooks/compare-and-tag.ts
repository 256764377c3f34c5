// A sample sidemirror mirror-hook module (after OpenResty Edge's mirror hook example).
//
//   beforeMirror   skips requests that carry an `x-no-mirror` header
//   mirrorRewrite  tags the shadow request with `x-mirror-rewritten: 1`
//   afterMirror    (sync mode) reports the shadow's status and the start of its body in headers
//                  of the primary's response: x-mirror-status, x-mirror-body
//
// Self-contained on purpose: copy it anywhere and point a policy's `hooks.module` at it. It is
// transpiled on load (syntax only), so these local types are documentation, not a contract.
// Header names arrive lowercase.

interface HookRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** null when the policy does not buffer the body */
  body: Buffer | null;
}

interface HookContext {
  readonly policy: string;
  readonly cluster: string;
  readonly mode: 'async' | 'sync';
  readonly request: Readonly<HookRequest>;
  readonly vars: Record<string, unknown>;
}

interface HookResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: Buffer;
  readonly truncated: boolean;
  readonly durationMs: number;
}

const BODY_PREVIEW_BYTES = 64;

/** Return false to skip this mirror; true or nothing to send it. */
export function beforeMirror(ctx: HookContext): boolean {
  return ctx.request.headers['x-no-mirror'] === undefined;
}

/** Edit the shadow request in place (or return a new one); return false to skip. */
export function mirrorRewrite(_ctx: HookContext, req: HookRequest): HookRequest {
  req.headers['x-mirror-rewritten'] = '1';
  return req;
}

/** Headers to add to the primary's response (used in sync mode only). */
export function afterMirror(_ctx: HookContext, res: HookResponse): Record<string, string> {
  return {
    'x-mirror-status': String(res.status),
    'x-mirror-body': headerSafe(res.body.subarray(0, BODY_PREVIEW_BYTES)),
  };
}

/** Printable ASCII kept, every other byte (controls, CR/LF, non-ASCII) as '.'; ends trimmed. */
function headerSafe(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : '.';
  return s.trim();
}
