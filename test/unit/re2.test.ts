import { ConfigError, type ConfigIssue } from '../../src/config/errors';
import { loadBootstrapText } from '../../src/config/load';
import { ROUTE_TYPE, decodeResource, resourceMessageType } from '../../src/config/resources';
import { DEFAULT_MAX_PROGRAM_SIZE, RE2_MAX_MEM_PROGRAM_SIZE, type Re2Options, compileRe2, expansionBound, compileRe2Rewrite, parseSubstitution } from '../../src/util/re2';
import { compileStringMatcher } from '../../src/router/matchers';
import { bootstrap, cluster, listener, routeConfig } from '../harness/bootstrap';

// The RE2 module (src/util/re2.ts) and how the config decoder uses it: RE2's syntax and
// refusals, Envoy's program-size ceiling, RE2::GlobalReplace substitution, and linear time.

const LIMIT = { maxProgramSize: DEFAULT_MAX_PROGRAM_SIZE };

function compiled(pattern: string): NonNullable<Extract<ReturnType<typeof compileRe2>, { ok: true }>['re']> {
  const r = compileRe2(pattern, LIMIT);
  if (!r.ok) throw new Error(r.error);
  return r.re;
}

function refusal(pattern: string, maxProgramSize = DEFAULT_MAX_PROGRAM_SIZE, limitSource: Re2Options['limitSource'] = 'error_level'): string {
  const r = compileRe2(pattern, { maxProgramSize, limitSource });
  if (r.ok) throw new Error(`RE2 accepted ${pattern}`);
  return r.error;
}

function rewrite(pattern: string, substitution: string, input: string): string {
  const r = compileRe2Rewrite(pattern, substitution, LIMIT);
  if (!r.ok) throw new Error(r.error);
  return r.rewrite.replaceAll(input);
}

describe('compileRe2: RE2 syntax', () => {
  test('RE2 refuses backreferences, lookahead, lookbehind and possessive quantifiers', () => {
    expect(refusal('(a)\\1')).toMatch(/invalid escape sequence: `\\1`/);
    expect(refusal('foo(?=bar)')).toMatch(/invalid or unsupported Perl syntax: `\(\?=`/);
    expect(refusal('foo(?!bar)')).toMatch(/invalid or unsupported Perl syntax: `\(\?!`/);
    expect(refusal('(?<=foo)bar')).toMatch(/invalid named capture/);
    expect(refusal('(?<!foo)bar')).toMatch(/invalid named capture/);
    expect(refusal('a*+')).toMatch(/invalid nested repetition operator/);
    expect(refusal('a{1001}')).toMatch(/invalid repeat count/);
    expect(refusal('(')).toMatch(/missing closing \)/);
  });

  test('RE2 syntax that JavaScript lacks: (?P<name>), \\Q…\\E, POSIX classes, inline flags', () => {
    expect(compiled('(?P<id>[0-9]+)').fullMatch('42')).toBe(true);
    expect(compiled('\\Qa.b\\E').fullMatch('a.b')).toBe(true);
    expect(compiled('\\Qa.b\\E').fullMatch('axb')).toBe(false);
    expect(compiled('[[:digit:]]+').fullMatch('123')).toBe(true);
    expect(compiled('(?i)/API/v1').fullMatch('/api/V1')).toBe(true);
  });

  test('fullMatch is the whole string, search is anywhere (RE2::FullMatch and PartialMatch)', () => {
    const re = compiled('/re/[0-9]+');
    expect(re.fullMatch('/re/123')).toBe(true);
    expect(re.fullMatch('/re/123x')).toBe(false);
    expect(re.fullMatch('/x/re/1')).toBe(false);
    expect(re.search('/x/re/1')).toBe(true);
    // The literal-prefix shortcut keeps RE2's answers.
    expect(compiled('a|ab').fullMatch('ab')).toBe(true);
    expect(compiled('abc*').fullMatch('ab')).toBe(true);
    expect(compiled('abc*').fullMatch('a')).toBe(false);
    expect(compiled('ab(?i)c').fullMatch('abC')).toBe(true);
    expect(compiled('ab(?i)c').fullMatch('AbC')).toBe(false);
    // An alternation is matched whole, not as "^a|b$".
    expect(compiled('a|b').fullMatch('ab')).toBe(false);
    expect(compiled('a|b').fullMatch('b')).toBe(true);
  });

  test('(a+)+b on 30 000 characters takes milliseconds: matching is linear in the input', () => {
    const re = compiled('/(a+)+b');
    const input = `/${'a'.repeat(30_000)}`;
    const started = process.hrtime.bigint();
    expect(re.fullMatch(input)).toBe(false);
    expect(re.search(input)).toBe(false);
    expect(re.fullMatch(`${input}b`)).toBe(true);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    expect(ms).toBeLessThan(500);
  });
});

describe('compileRe2: program size (Envoy re2.max_program_size)', () => {
  test('a program above the ceiling is refused with its size, as Envoy words it', () => {
    const size = compiled('/asdf/.*').programSize;
    expect(size).toBeGreaterThan(1);
    expect(refusal('/asdf/.*', 1)).toBe(
      `regex '/asdf/.*' RE2 program size of ${size} > max program size of 1 set for the error level threshold (runtime re2.max_program_size.error_level). Increase configured max program size if necessary.`,
    );
    expect(compileRe2('/asdf/.*', { maxProgramSize: size }).ok).toBe(true);
  });

  test('the default of 100 takes typical route regexes and refuses large ones', () => {
    for (const p of ['/re/[0-9]+', '^/api/v1/users/[0-9]+/orders/[a-f0-9-]{36}$', '/(v1|v2)/[^/]+/items', '[a-z]+\\.example\\.com']) {
      expect(compileRe2(p, LIMIT).ok).toBe(true);
    }
    expect(refusal('[a-z]{200}')).toMatch(/program size of \d+ > max program size of 100/);
    expect(refusal('^/user/(488/sms|h5/getJwt|captcha|version/getAIDrawTemplate|version/isMainLand|version/promotionTemplate|version/activityTemplate2).*'))
      .toMatch(/program size of \d+ > max program size of 100/);
  });

  test('the admin ceiling follows RE2\'s default memory budget (about 87 000 instructions)', () => {
    expect(RE2_MAX_MEM_PROGRAM_SIZE).toBe(87381);
    expect(compileRe2('[a-z]{1000}', { maxProgramSize: RE2_MAX_MEM_PROGRAM_SIZE }).ok).toBe(true);
    // RE2 refuses nested repeats beyond 1000, so a large program takes a long pattern.
    expect(refusal('([a-z]{100}){100}', RE2_MAX_MEM_PROGRAM_SIZE, 'max_mem')).toMatch(/invalid repeat count/);
    expect(refusal('[a-z]{1000}'.repeat(90), RE2_MAX_MEM_PROGRAM_SIZE, 'max_mem')).toMatch(/program size of \d+ > max program size of 87381 \(RE2's default memory budget\)/);
  });
});

describe('expansionBound: program size bounded from the text, before compiling', () => {
  test('never below the real program size; products of counted repetitions', () => {
    for (const p of ['cluster\\..*\\.upstream_rq_[0-9]{3}', '[a-z]{1000}', '((a{10}){10}){10}', '[^x]{5}[^y]{2,7}', 'x{3,}', 'abc|def']) {
      const r = compileRe2(p, { maxProgramSize: Infinity });
      expect(r.ok && expansionBound(p) >= r.re.programSize - 2).toBe(true);
    }
    expect(expansionBound('upstream_rq')).toBe(11);
    expect(expansionBound('a{2}b{3,4}')).toBe(10 * 3 * 5);
    expect(expansionBound('[^x]{1000}'.repeat(16))).toBe(Infinity);
  });
});

describe('compileRe2Rewrite: RE2::GlobalReplace with \\N references', () => {
  test('capture groups are referenced as \\1…\\9 and \\0 is the whole match', () => {
    expect(rewrite('^/rx/([0-9]+)/item$', '/items/\\1', '/rx/42/item')).toBe('/items/42');
    expect(rewrite('^/service/([^/]+)(/.*)$', '\\2/instance/\\1', '/service/foo/v1/api')).toBe('/v1/api/instance/foo');
    expect(rewrite('[0-9]+', '<\\0>', 'a12b345')).toBe('a<12>b<345>');
  });

  test('every non-overlapping match is replaced; empty matches as RE2 takes them', () => {
    // Envoy's documented example: rewrite every "/" pair.
    expect(rewrite('one', 'two', '/xxx/one/yyy/one/zzz')).toBe('/xxx/two/yyy/two/zzz');
    expect(rewrite('x*', '-', 'abc')).toBe('-a-b-c-');
    expect(rewrite('a*', '-', 'baaac')).toBe('-b-c-');
    expect(rewrite('nomatch', 'z', '/same')).toBe('/same');
    // Anchors see the whole input, not the rest after the previous match.
    expect(rewrite('^/a', '/b', '/a/a')).toBe('/b/a');
    expect(rewrite('\\ba', 'X', 'aa a')).toBe('Xa X');
  });

  test('"$" in a substitution is literal, and "\\\\" is one backslash', () => {
    expect(rewrite('^/(.*)$', '/$1/\\1', '/p')).toBe('/$1/p');
    expect(rewrite('b', '\\\\', 'abc')).toBe('a\\c');
  });

  test('an unmatched optional group is empty', () => {
    expect(rewrite('^/a(x)?/(.*)$', '/\\1-\\2', '/a/z')).toBe('/-z');
  });

  test('a substitution RE2 would refuse is an error', () => {
    expect(parseSubstitution('/\\2', 1)).toEqual({ ok: false, error: 'substitution refers to \\2, but the pattern has 1 capture group(s)' });
    expect(parseSubstitution('/\\n', 1).ok).toBe(false);
    expect(parseSubstitution('/end\\', 1).ok).toBe(false);
    expect(parseSubstitution('/\\1/\\0', 1)).toEqual({ ok: true, pieces: ['/', 1, '/', 0] });
  });
});

describe('compileStringMatcher: a regex string matcher is RE2 full match', () => {
  test('header and query values must match whole', () => {
    const m = compileStringMatcher({ kind: 'regex', value: 'v[0-9]+', ignoreCase: false });
    expect(m('v12')).toBe(true);
    expect(m('xv12')).toBe(false);
    expect(m('v12x')).toBe(false);
  });
});

// ---- the decoder: every config regex goes through RE2, errors by field path ----

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const HCM = 'static_resources.listeners[0].filter_chains[0].filters[0].typed_config';
const ROUTES = `${HCM}.route_config.virtual_hosts[0].routes`;

function withRoutes(routes: Json[], extra: Json = {}): string {
  return bootstrap({ listeners: [listener(routeConfig(routes))], clusters: [cluster('main', [8081])], extra });
}

function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    loadBootstrapText(text);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('the configuration was accepted');
}

const fwd = (match: Json, action: Json = {}): Json => ({ match, route: { cluster: 'main', ...action } });

describe('config regexes: RE2 refusals are errors naming the field', () => {
  test('every regex field, each error at its own path, all collected', () => {
    const issues = issuesOf(withRoutes([
      fwd({ safe_regex: { regex: '(a)\\1' } }),
      fwd({ prefix: '/', headers: [{ name: 'x-a', safe_regex_match: { regex: 'x(?=y)' } }] }),
      fwd({ prefix: '/', headers: [{ name: 'x-b', string_match: { safe_regex: { regex: '(?<!a)b' } } }] }),
      fwd({ prefix: '/', query_parameters: [{ name: 'q', string_match: { safe_regex: { regex: '(' } } }] }),
      fwd({ prefix: '/' }, { regex_rewrite: { pattern: { regex: '(?=x)' }, substitution: '/' } }),
      fwd({ prefix: '/' }, { regex_rewrite: { pattern: { regex: '^/(a)$' }, substitution: '/\\2' } }),
      fwd({ safe_regex: { regex: '' } }),
    ]));
    expect(issues.map((i) => i.path)).toEqual([
      `${ROUTES}[0].match.safe_regex.regex`,
      `${ROUTES}[1].match.headers[0].safe_regex_match.regex`,
      `${ROUTES}[2].match.headers[0].string_match.safe_regex.regex`,
      `${ROUTES}[3].match.query_parameters[0].string_match.safe_regex.regex`,
      `${ROUTES}[4].route.regex_rewrite.pattern.regex`,
      `${ROUTES}[5].route.regex_rewrite.substitution`,
      `${ROUTES}[6].match.safe_regex.regex`,
    ]);
    expect(issues[0]!.message).toMatch(/invalid escape sequence/);
    expect(issues[1]!.message).toMatch(/unsupported Perl syntax/);
    expect(issues[5]!.message).toMatch(/refers to \\2/);
    expect(issues[6]!.message).toBe('regex is required');
  });

  test('program size: default 100; google_re2.max_program_size replaces it; the runtime error level raises it', () => {
    const big = '[a-z]{120}';
    expect(issuesOf(withRoutes([fwd({ safe_regex: { regex: big } })]))).toEqual([
      { path: `${ROUTES}[0].match.safe_regex.regex`, message: expect.stringMatching(/RE2 program size of \d+ > max program size of 100 set for the error level threshold/) },
    ]);
    // The deprecated per-matcher field: when set, it alone decides (Envoy's rule).
    expect(() => loadBootstrapText(withRoutes([fwd({ safe_regex: { regex: big, google_re2: { max_program_size: 500 } } })]))).not.toThrow();
    expect(issuesOf(withRoutes([fwd({ safe_regex: { regex: '/asdf/.*', google_re2: { max_program_size: 1 } } })]))[0]!.message)
      .toMatch(/program size of \d+ > max program size of 1\. Increase/);
    // The bootstrap's runtime layer sets re2.max_program_size.error_level.
    const runtime = (n: number): Json => ({ layered_runtime: { layers: [{ name: 'static', static_layer: { re2: { max_program_size: { error_level: n } } } }] } });
    const loaded = loadBootstrapText(withRoutes([fwd({ safe_regex: { regex: big } })], runtime(1000)));
    const layer = loaded.bootstrap.runtime[0]!;
    expect(layer.kind === 'static' && layer.values.get('re2.max_program_size.error_level')).toBe('1000');
    expect(issuesOf(withRoutes([fwd({ safe_regex: { regex: '/asdf/.*' } })], runtime(2)))[0]!.message).toMatch(/> max program size of 2 set for the error level/);
  });

  test('an xDS RouteConfiguration takes the receiver\'s ceiling', () => {
    const type = resourceMessageType(ROUTE_TYPE);
    const message = type.fromObject({
      name: 'r',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { safe_regex: { regex: '[a-z]{120}' } }, route: { cluster: 'main' } }] }],
    });
    const strict = decodeResource(ROUTE_TYPE, message);
    expect(strict.ok).toBe(false);
    if (!strict.ok) expect(strict.issues[0]!.path).toBe('RouteConfiguration "r".virtual_hosts[0].routes[0].match.safe_regex.regex');
    expect(decodeResource(ROUTE_TYPE, message, { re2MaxProgramSize: 1000 }).ok).toBe(true);
  });
});
