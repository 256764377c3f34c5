import type { Socket } from 'node:net';

/** What a look at the first bytes of a connection decided, or that it needs more. */
export type PrefixVerdict<T> = { readonly done: false } | { readonly done: true; readonly value: T };

/**
 * Reads the first bytes of a connection until `decide` has its answer, then puts them back
 * (unshift) for whoever reads the connection next (a TLS socket, an HTTP codec). Bounded in
 * bytes and time; on either bound, on EOF or on an error it resolves with `onLimit()`'s value,
 * or null when the socket is gone. It resolves after the 'data' handler has returned: an HTTP/2
 * session made on the socket from inside that handler would lose the bytes put back.
 */
export function readPrefix<T>(
  socket: Socket,
  decide: (seen: Buffer) => PrefixVerdict<T>,
  limits: { readonly maxBytes: number; readonly timeoutMs: number },
  onLimit: (reason: 'bytes' | 'timeout' | 'end') => T,
): Promise<T | null> {
  return new Promise((resolve) => {
    let seen: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (value: T | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onClose);
      socket.pause();
      if (seen.length > 0 && !socket.destroyed) socket.unshift(seen);
      resolve(value);
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const verdict = decide(seen);
      if (verdict.done) finish(verdict.value);
      else if (seen.length >= limits.maxBytes) finish(onLimit('bytes'));
    };
    const onEnd = (): void => finish(onLimit('end'));
    const onClose = (): void => finish(null);
    const timer = setTimeout(() => finish(onLimit('timeout')), limits.timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}

/** RFC 9113 §3.4: what an HTTP/2 client sends first over cleartext (prior knowledge). */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Envoy's AUTO codec on plaintext: HTTP/2 when the bytes are the connection preface, HTTP/1
 * as soon as they differ from it. A prefix of the preface waits for more.
 */
export function sniffHttp2Preface(seen: Buffer): PrefixVerdict<'HTTP/2' | 'HTTP/1.1'> {
  const n = Math.min(seen.length, H2_PREFACE.length);
  if (seen.compare(H2_PREFACE, 0, n, 0, n) !== 0) return { done: true, value: 'HTTP/1.1' };
  return n === H2_PREFACE.length ? { done: true, value: 'HTTP/2' } : { done: false };
}
