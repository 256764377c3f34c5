import type { Duplex } from 'node:stream';
import { DELAYED_CLOSE_MS } from './early-response';

// The bytes of an upgraded stream, both ways, once the upstream switched protocols.

/**
 * Joins two sockets until both have closed, then calls `done` once. Each direction is a pipe, so
 * a slow reader on either side stops the other side's reads (no unbounded buffering). A side that
 * ends cleanly has its end passed on after its last bytes, and the other side gets
 * `lingerMs` to finish before it is closed too; a side that is reset or fails takes the other
 * down at once. Neither socket outlives the other for longer than the linger.
 */
export function splice(a: Duplex, b: Duplex, done: () => void, lingerMs = DELAYED_CLOSE_MS): void {
  let open = 2;
  const closed = (): void => {
    if (--open === 0) done();
  };
  join(a, b, lingerMs);
  join(b, a, lingerMs);
  a.once('close', closed);
  b.once('close', closed);
}

function join(from: Duplex, to: Duplex, lingerMs: number): void {
  from.pipe(to);
  from.once('close', () => {
    if (to.destroyed) return;
    // pipe() ended `to` when `from` ended cleanly: its buffered bytes still go out, bounded.
    if (!to.writableEnded) {
      to.destroy();
      return;
    }
    const timer = setTimeout(() => to.destroy(), lingerMs);
    timer.unref();
    to.once('close', () => clearTimeout(timer));
  });
}
