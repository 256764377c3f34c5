// The one bound on body bytes that every shadow holds together, whatever its cluster.
import { type BufferHolder, ShadowBufferBudget } from '../../src/shadow/buffer-budget';

/** A holder whose bytes the test sets, as an upstream taking a shadow's body would change them. */
class Holder implements BufferHolder {
  constructor(public bytes = 0) {}
  heldBytes(): number {
    return this.bytes;
  }
}

test('holders for different clusters add up; the one whose growth passes the cap is refused', () => {
  const budget = new ShadowBufferBudget(1000);
  const a = new Holder(400);
  const b = new Holder(400);
  expect(budget.update(a, a.bytes)).toBe(true);
  expect(budget.update(b, b.bytes)).toBe(true);
  expect(budget.totalBytes).toBe(800);
  const c = new Holder(300);
  expect(budget.update(c, c.bytes)).toBe(false);
});

test('what an upstream took since the last report is re-read before refusing', () => {
  const budget = new ShadowBufferBudget(1000);
  const a = new Holder(900);
  budget.update(a, a.bytes);
  // 1. The upstream drained a, but a has not written since: its report is stale.
  a.bytes = 0;
  // 2. b's growth would pass the cap on the stale sum; the re-read sees there is room.
  const b = new Holder(500);
  expect(budget.update(b, b.bytes)).toBe(true);
  expect(budget.totalBytes).toBe(500);
});

test('a holder that ends no longer counts, and releasing twice changes nothing', () => {
  const budget = new ShadowBufferBudget(1000);
  const a = new Holder(700);
  budget.update(a, a.bytes);
  budget.release(a);
  budget.release(a);
  expect(budget.totalBytes).toBe(0);
  const b = new Holder(1000);
  expect(budget.update(b, b.bytes)).toBe(true);
});
