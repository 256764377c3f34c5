import Redis from 'ioredis';
import { FleetPublisher, type FleetRedis, MAX_DOCUMENT_BYTES, MAX_READ_BYTES, readFleet } from '../../src/compare/fleet';
import { silentLogger } from '../../src/log/logger';
import { startRedis } from '../harness/redis';

// A fleet read against a real Redis that other writers share: what it reads is bounded per
// document and in all, whatever they put under the policy's keys.

jest.setTimeout(60_000);

const options = { keyPrefix: 'sidemirror:compare:', intervalMs: 60_000, nodeId: 'me' };
const counts = { outcomes: { diff: 2 }, endpoints: [{ name: 'GET /o', total: 2, diffs: 2, noise_only: 0, fields: [{ path: 'body.total:changed', diffs: 2, noise: 0 }] }] };

// Proves: a published document past MAX_DOCUMENT_BYTES is not read, documents past
// MAX_READ_BYTES in all are not read, both counted as unread; the well-formed ones are summed.
test('a fleet read is bounded per document and in total', async () => {
  const server = await startRedis();
  const redis = new Redis({ host: '127.0.0.1', port: server.port, lazyConnect: true });
  try {
    await redis.connect();
    await new FleetPublisher(redis as unknown as FleetRedis, options, 'p', () => counts, silentLogger()).publish();
    const now = Date.now();
    const base = 'sidemirror:compare:{p}';
    // One huge document, then padded documents that fit alone but not all together.
    await redis.set(`${base}:node:huge`, 'x'.repeat(MAX_DOCUMENT_BYTES + 1));
    await redis.zadd(`${base}:nodes`, now, 'huge');
    const padded = JSON.stringify({ ...counts, pad: 'y'.repeat(MAX_DOCUMENT_BYTES - 200) });
    const many = Math.ceil(MAX_READ_BYTES / padded.length) + 2;
    for (let i = 0; i < many; i++) {
      await redis.set(`${base}:node:pad${i}`, padded);
      await redis.zadd(`${base}:nodes`, now + 1 + i, `pad${i}`);
    }
    const r = await readFleet(redis as unknown as FleetRedis, options, 'p');
    // Read in score order: ours, then the pads while they fit beside it.
    const pads = Math.floor((MAX_READ_BYTES - JSON.stringify(counts).length) / padded.length);
    expect(pads).toBeLessThan(many);
    expect([r.nodes, r.unread]).toEqual([1 + pads, 1 + many - pads]);
    expect(r.counts.outcomes.diff).toBe(2 * r.nodes);
  } finally {
    redis.disconnect();
    await server.stop();
  }
});
