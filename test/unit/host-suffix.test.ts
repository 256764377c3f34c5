import { portStart, shadowHost } from '../../src/shadow/host-suffix';

// Envoy's shadowAppendedHost: `-shadow` before the port when there is one, else at the end.
// HeaderUtility::getPortStart takes the last ':' unless a ']' follows it (IPv6 literal, no port).
describe('shadowHost', () => {
  test.each([
    ['localhost:10000', 'localhost-shadow:10000'],
    ['example.com', 'example.com-shadow'],
    ['127.0.0.1:8080', '127.0.0.1-shadow:8080'],
    ['127.0.0.1', '127.0.0.1-shadow'],
    ['[::1]:8080', '[::1]-shadow:8080'],
    ['[::1]', '[::1]-shadow'],
    ['cluster1', 'cluster1-shadow'],
  ])('%s → %s', (host, expected) => {
    expect(shadowHost(host)).toBe(expected);
  });
});

describe('portStart', () => {
  test.each([
    ['localhost:10000', 9],
    ['example.com', -1],
    ['[::1]:8080', 5],
    ['[::1]', -1],
  ])('%s → %d', (host, expected) => {
    expect(portStart(host)).toBe(expected);
  });
});
