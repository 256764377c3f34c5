import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CompareReport } from '../../src/compare/report-types';
import { Chromium, type Page, findChromium, pngSize } from '../harness/chromium';
import { type RunningAdmin, filledRegistry, request, startCompareAdmin } from '../harness/compare-admin';

// The comparison report page in a real headless Chromium: the field tree and the highlighted
// sample are in the DOM, the CSP lets our script and style run and nothing else, "mark as noise"
// turns a field's verdict to noise on the page and in the JSON, and "unmark" turns it back.

jest.setTimeout(90_000);

const executable = findChromium();

describe('the comparison report page in Chromium', () => {
  let admin: RunningAdmin;
  let browser: Chromium;
  let page: Page;
  let dir: string;

  beforeAll(async () => {
    // A missing browser fails the suite, as a missing Redis does: scripts/test-deps.sh installs it.
    if (executable === null) throw new Error('no Chromium found: run scripts/test-deps.sh (apt-get install -y --no-install-recommends chromium), or set CHROMIUM');
    admin = await startCompareAdmin(filledRegistry());
    browser = await Chromium.launch({ executable: executable!, width: 1400, height: 1000 });
    page = await browser.newPage();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sidemirror-compare-page-'));
  });

  afterAll(async () => {
    await browser?.close();
    await admin?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const field = (p: string): string => `section[data-policy="shop"] .field[data-path="${p}"]`;
  const verdictOf = (p: string): Promise<string | null> => page.evaluate(`document.querySelector(${JSON.stringify(field(p))})?.querySelector('.verdict')?.textContent ?? null`);
  const jsonVerdict = async (p: string): Promise<string | undefined> => {
    const report = JSON.parse((await request(admin.port, 'GET', '/mirror/compare?format=json')).body) as CompareReport;
    return report.policies.find((x) => x.name === 'shop')!.endpoints[0]!.fields.find((f) => f.path === p)?.verdict;
  };

  test('the field tree and the highlighted sample are in the DOM; only our script ran', async () => {
    await page.goto(`${admin.base}/mirror/compare?policy=shop&endpoint=GET%20%2Fcart&field=body.total%3Achanged`);
    expect(await page.evaluate('document.documentElement.getAttribute("data-script")')).toBe('on');
    expect(await page.evaluate('window.__pwned ?? null')).toBeNull();
    // The style ran too (nonce): verdicts are upper-cased by CSS.
    expect(await page.evaluate(`getComputedStyle(document.querySelector('.verdict')).textTransform`)).toBe('uppercase');
    expect(page.messages.filter((m) => /Content Security Policy/i.test(m))).toEqual([]);

    expect(await page.evaluate(`document.querySelector('section[data-policy="shop"] .summary').textContent`)).toContain('8 differing of 20 compared');
    // Tree: body > total, body > ts, header > date.
    const tree = await page.evaluate<string[]>(`[...document.querySelectorAll('section[data-policy="shop"] ul.tree .field')].map((f) => {
      const segs = []; let li = f.closest('li');
      while (li) { segs.unshift(li.querySelector(':scope > .seg').textContent); li = li.parentElement.closest('li'); }
      return segs.join('/') + ' ' + f.dataset.path;
    })`);
    expect(tree).toEqual(['body/total body.total:changed', 'body/ts body.ts:changed', 'header/date header.date:changed']);
    expect(await verdictOf('body.total:changed')).toBe('diff');
    expect(await verdictOf('body.ts:changed')).toBe('noise');
    expect(await page.evaluate(`document.querySelector(${JSON.stringify(field('body.total:changed'))}).className`)).toContain('band-neutral'); // 8 of 20: 40 %

    // The sample: request line, both sides, the changed value marked on each side.
    expect(await page.evaluate(`document.querySelector('#sample .request-line').textContent`)).toMatch(/^GET \/cart\?id=\d+$/);
    const marked = await page.evaluate<Array<string | null>>(`['primary', 'candidate'].map((side) =>
      document.querySelector('#sample .side-' + side + ' .diff-changed[data-exact-path="body.total"]')?.textContent ?? null)`);
    expect(marked).toEqual(['"total": 10', '"total": 12']);
    expect(await page.evaluate(`document.querySelectorAll('#sample .side-reference').length`)).toBe(1);
    expect(await page.evaluate(`document.querySelector('#sample table.differences tr.diff-changed[data-exact-path="body.total"]').textContent`)).toContain('1012');
    // The hostile header value is shown as text.
    expect(await page.evaluate(`[...document.querySelectorAll('#sample .side-primary table.headers td')].some((td) => td.textContent.startsWith('<script>'))`)).toBe(true);
  });

  test('a screenshot of the page is a PNG of non-trivial size', async () => {
    const png = await page.screenshot({ fullPage: true });
    const file = path.join(dir, 'compare.png');
    fs.writeFileSync(file, png);
    const size = pngSize(fs.readFileSync(file));
    expect(size).not.toBeNull();
    expect(size!.width).toBeGreaterThanOrEqual(1000);
    expect(size!.height).toBeGreaterThanOrEqual(800);
    expect(png.length).toBeGreaterThan(20_000);
    // COMPARE_SCREENSHOT=/some/file.png keeps a copy to look at.
    if (process.env.COMPARE_SCREENSHOT) fs.copyFileSync(file, process.env.COMPARE_SCREENSHOT);
  });

  test('"mark as noise" turns the diff field to noise (page and JSON); "unmark" turns it back', async () => {
    await page.waitForLoad(() => page.click(`${field('body.total:changed')} button.mark-noise`));
    expect(await verdictOf('body.total:changed')).toBe('noise');
    expect(await page.evaluate(`document.querySelector(${JSON.stringify(field('body.total:changed'))} + ' .reason').textContent`)).toBe('ignored (runtime)');
    expect(await page.evaluate(`document.querySelector('section[data-policy="shop"] .rules li[data-rule="body.total"]')?.textContent ?? null`)).toContain('marked at run time');
    expect(await jsonVerdict('body.total:changed')).toBe('noise');
    // The reload kept the sample in view.
    expect(await page.evaluate(`document.querySelectorAll('#sample').length`)).toBe(1);

    await page.waitForLoad(() => page.click(`section[data-policy="shop"] .rules li[data-rule="body.total"] button.unmark`));
    expect(await verdictOf('body.total:changed')).toBe('diff');
    expect(await jsonVerdict('body.total:changed')).toBe('diff');
    expect(await page.evaluate(`document.querySelectorAll('section[data-policy="shop"] .rules li[data-rule]').length`)).toBe(0);
  });

  test('without script the page still works: the form posts natively and the server sends the browser back', async () => {
    const plain = await browser.newPage();
    await plain.send('Emulation.setScriptExecutionDisabled', { value: true });
    await plain.goto(`${admin.base}/mirror/compare?policy=shop&endpoint=GET%20%2Fcart&field=body.total%3Achanged`);
    expect(await plain.evaluate('document.documentElement.getAttribute("data-script")')).toBeNull();
    await plain.waitForLoad(() => plain.click(`${field('body.ts:changed')} button.mark-noise`));
    expect(await plain.evaluate('location.pathname + location.search')).toBe('/mirror/compare?policy=shop&endpoint=GET+%2Fcart&field=body.total%3Achanged');
    expect(await plain.evaluate(`document.querySelector('section[data-policy="shop"] .rules li[data-rule="body.ts"]') !== null`)).toBe(true);
    await plain.waitForLoad(() => plain.click(`section[data-policy="shop"] .rules li[data-rule="body.ts"] button.unmark`));
    expect(await jsonVerdict('body.ts:changed')).toBe('noise');
    expect(await plain.evaluate(`document.querySelectorAll('section[data-policy="shop"] .rules li[data-rule]').length`)).toBe(0);
  });
});
