import { CLUSTER_TYPE } from '../../src/config/resources';
import { NodeStatusRegistry } from '../../src/control-plane/server/node-status';

// Node ids come from clients: the ACK/NACK view keeps gone nodes, but only so many.

test('the longest-disconnected nodes are forgotten past the cap; connected ones never are', () => {
  const reg = new NodeStatusRegistry(() => new Date(0), 2);
  const node = (id: string) => ({ id, cluster: 'c' });
  reg.streamOpened(node('live'));
  for (const id of ['a', 'b', 'c']) {
    reg.streamOpened(node(id));
    reg.nacked(node(id), CLUSTER_TYPE, '1', '1', `bad ${id}`);
    reg.streamClosed(node(id));
  }
  expect(Object.keys(reg.toJSON()).sort()).toEqual(['b', 'c', 'live']);
  expect(reg.lastNack('c', CLUSTER_TYPE)?.error).toBe('bad c');
  // A node that reconnects is no longer a candidate for forgetting.
  reg.streamOpened(node('b'));
  reg.streamOpened(node('d'));
  reg.streamClosed(node('d'));
  expect(Object.keys(reg.toJSON()).sort()).toEqual(['b', 'c', 'd', 'live']);
});

test('records are capped in bytes too: large disconnected records are forgotten first, and counted', () => {
  let forgotten = 0;
  const reg = new NodeStatusRegistry(() => new Date(0), { maxRecordBytes: 64 * 1024, onForget: (n) => { forgotten += n; } });
  const node = (id: string) => ({ id, cluster: 'c' });
  reg.streamOpened(node('live'));
  reg.nacked(node('live'), CLUSTER_TYPE, '1', '1', 'x'.repeat(4096));
  for (let i = 0; i < 50; i++) {
    reg.streamOpened(node(`gone-${i}`));
    reg.nacked(node(`gone-${i}`), CLUSTER_TYPE, '1', '1', 'y'.repeat(4096));
    reg.streamClosed(node(`gone-${i}`));
  }
  expect(reg.recordBytes).toBeLessThanOrEqual(64 * 1024);
  const kept = Object.keys(reg.toJSON());
  expect(kept).toContain('live');
  expect(kept).toContain('gone-49');
  expect(kept).not.toContain('gone-0');
  expect(forgotten).toBe(51 - kept.length);
});
