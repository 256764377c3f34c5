import { Pool } from 'undici';
import { HTTP2_DEFAULTS } from '../../src/config/decode/http2';
import { Http1Pool } from '../../src/upstream/h1/pool';
import { type PoolOptions, defaultPoolFactory } from '../../src/upstream/pool-factory';
import { processCodec } from '../../src/util/native-http';

// Which pool an HTTP/1.1 endpoint gets: the raw one with the fast codec (the default), undici's
// with SIDEMIRROR_HTTP1_CODEC=node. CI runs the suite both ways, so each run checks its own side.

const options = (tls: PoolOptions['tls'] = null): PoolOptions => ({
  connectTimeoutMs: 1000, maxConnections: 8, keepAliveTimeoutMs: 1000, maxRequestsPerConnection: 0, protocol: 'http1', http2: HTTP2_DEFAULTS, tls,
});

test('HTTP/1.1 endpoints, plaintext and TLS, get the pool of the process\'s codec', async () => {
  const fast = processCodec().codec === 'fast';
  for (const [origin, tls] of [['http://127.0.0.1:9', null], ['https://127.0.0.1:9', () => ({})]] as const) {
    const pool = defaultPoolFactory(origin, options(tls));
    expect(pool instanceof Http1Pool).toBe(fast);
    expect(pool instanceof Pool).toBe(!fast);
    await pool.destroy();
  }
});
