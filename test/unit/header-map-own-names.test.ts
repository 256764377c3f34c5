import { applyHeadersToAdd, headerFormatter, mapFromRaw } from '../../src/http/headers';

// Header names are client data and plain objects hold them: a name that is also a member of
// Object.prototype must be an ordinary header, never the prototype's member (review finding 7).

test('mapFromRaw keeps __proto__, constructor and toString as headers', () => {
  const m = mapFromRaw(['__proto__', 'p1', 'Constructor', 'c1', 'toString', 't', '__proto__', 'p2', 'constructor', 'c2', 'host', 'h']);
  expect(Object.getPrototypeOf(m)).toBe(Object.prototype);
  expect(Object.entries(m)).toEqual([['__proto__', ['p1', 'p2']], ['constructor', ['c1', 'c2']], ['tostring', 't'], ['host', 'h']]);
  expect(JSON.parse(JSON.stringify(m))).toEqual(JSON.parse('{"__proto__":["p1","p2"],"constructor":["c1","c2"],"tostring":"t","host":"h"}'));
});

test('header edits and formatters read only own headers', () => {
  const m = mapFromRaw(['host', 'h']);
  const add = (key: string, appendAction: 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS') =>
    ({ key, value: 'v', appendAction, keepEmptyValue: false });
  applyHeadersToAdd(m, [add('constructor', 'APPEND_IF_EXISTS_OR_ADD'), add('__proto__', 'ADD_IF_ABSENT'), add('valueof', 'OVERWRITE_IF_EXISTS')], (v) => v);
  expect(Object.entries(m)).toEqual([['host', 'h'], ['constructor', 'v'], ['__proto__', 'v']]);
  const format = headerFormatter({ remoteAddress: '1.2.3.4', localAddress: '5.6.7.8', scheme: 'http' }, mapFromRaw([]), 'node');
  expect(format('[%REQ(constructor)%]')).toBe('[]');
});
