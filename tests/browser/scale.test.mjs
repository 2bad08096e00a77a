// The console on a generated tenant of 2,000 users (`licensd gen`, served by run.sh at
// LICENSD_LARGE_URL): counts in the thousands, long product names and part numbers, generated
// user names. Every page at 390 px and 1366 px wide: no sideways page scroll, no number, time,
// state or column heading broken inside a word by a wide column next to it, every count of
// 1,000 or more written with a thousands separator, and axe-core finds no violation.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchChromium, pageProblems, submitToken } from './support.mjs';


const base = process.env.LICENSD_LARGE_URL;
const token = process.env.LICENSD_TOKEN;
const screenshots = process.env.SCREENSHOT_DIR ?? 'screenshots';
if (!base || !token) {
  throw new Error('LICENSD_LARGE_URL or LICENSD_TOKEN is not set: run tests/browser/run.sh');
}

let browser;
let context;
let page;
const browserErrors = [];

before(async () => {
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (error) => browserErrors.push(`${page.url()}: ${error.message}`));
  await page.goto(`${base}/login`);
  await submitToken(page, token);
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
});

after(async () => {
  await browser?.close();
});

/** The first link of a list (its address). */
async function firstLink(address, selector) {
  await page.goto(`${base}${address}`);
  const href = await page.locator(selector).first().getAttribute('href');
  assert.ok(href, `a link on ${address}`);
  return href;
}

/** Every page of the console on the generated tenant, by address. */
async function everyPage() {
  const group = await firstLink('/groups?filter=errors', '#list-results tbody th a');
  // The user in error with the longest name: long headings must wrap on a phone.
  await page.goto(`${base}/users?filter=errors`);
  const users = await page.locator('#list-results tbody th a').evaluateAll((links) =>
    links.map((link) => ({ href: link.getAttribute('href'), length: link.textContent.length })));
  assert.ok(users.length > 0, 'the generated tenant has users in error');
  const user = users.sort((a, b) => b.length - a.length)[0].href;
  const product = await firstLink('/products', 'main tbody th a');
  const skuId = product.split('/').pop();
  return [
    '/',
    '/groups',
    '/groups?filter=errors',
    group,
    `${group}/members`,
    `${group}/errors`,
    '/users',
    '/users?filter=errors',
    user,
    `${user}/diagnosis`,
    '/products',
    product,
    `${product}?tab=groups`,
    '/advisor',
    '/activity',
    '/spend',
    `/spend/products/${skuId}`,
    '/spend/reclamation',
    '/alerts',
    '/notifications',
  ];
}

/** What else is wrong with the page as a reader sees it (beside `pageProblems`): words broken
 * across lines, counts without a thousands separator. */
async function problemsOf(target, label) {
  await target.waitForLoadState('load');
  const found = await target.evaluate(() => {
    const problems = [];
    // Words that must not break across lines: numbers, times, states and column headings.
    const unbreakable = document.querySelectorAll('td.number, th.number, thead th, td.state, time, .badge');
    for (const element of unbreakable) {
      const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const match of node.data.matchAll(/\S+/g)) {
          const range = document.createRange();
          range.setStart(node, match.index);
          range.setEnd(node, match.index + match[0].length);
          const lines = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
          if (lines.size > 1) problems.push(`"${match[0]}" is broken across lines in <${element.tagName.toLowerCase()} class="${element.className}">`);
        }
      }
    }
    // Counts of 1,000 or more carry a thousands separator (times, ids and codes aside).
    const main = document.querySelector('main');
    const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (node.parentElement.closest('time, code, script, style')) continue;
      const text = node.data.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, '');
      for (const match of text.matchAll(/(?<![\w.,])[1-9]\d{3,}(?![\w])/g)) {
        problems.push(`"${match[0]}" has no thousands separator (in "${node.data.trim().slice(0, 80)}")`);
      }
    }
    return problems;
  });
  return found.map((problem) => `${label}: ${problem}`);
}

for (const [width, height] of [[390, 844], [1366, 900]]) {
  test(`a 2,000-user tenant at ${width} px: no sideways scroll, no word broken inside, thousands separators, axe-core clean`, async () => {
    const pages = await everyPage();
    const viewer = await browser.newContext({ viewport: { width, height }, bypassCSP: true });
    await viewer.addCookies(await context.cookies());
    const viewerPage = await viewer.newPage();
    viewerPage.on('pageerror', (error) => browserErrors.push(`${viewerPage.url()}: ${error.message}`));
    const problems = [];
    try {
      for (const address of pages) {
        await viewerPage.goto(`${base}${address}`);
        problems.push(...await problemsOf(viewerPage, `${width} px ${address}`));
        problems.push(...await pageProblems(viewerPage, `${width} px ${address}`));
        if (address === '/') await viewerPage.screenshot({ path: path.join(screenshots, `large-overview-${width}.png`), fullPage: true });
      }
    } finally {
      await viewer.close();
    }
    if (problems.length > 0) console.log(problems.join('\n'));
    assert.deepEqual(problems, []);
  });
}

test('times show in the reader\'s own time zone, the UTC value on hover', async () => {
  // The demo tenant's activity (it has changes to show), read from Tokyo (UTC+9, no daylight
  // saving time).
  const demo = process.env.LICENSD_URL;
  assert.ok(demo, 'LICENSD_URL is set by run.sh');
  const tokyo = await browser.newContext({ viewport: { width: 1366, height: 900 }, timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
  const tokyoPage = await tokyo.newPage();
  try {
    await tokyoPage.goto(`${demo}/login?next=%2Fusers%3Fsearch%3Duser001`);
    await submitToken(tokyoPage, token);
    // A change, so that the activity has a time to show.
    await tokyoPage.locator('#list-results').getByRole('link', { name: 'user001', exact: true }).click();
    const reprocessed = tokyoPage.waitForResponse((response) => response.url().endsWith('/reprocess'));
    await tokyoPage.getByRole('button', { name: 'Reprocess', exact: true }).click();
    await reprocessed;
    await tokyoPage.waitForLoadState('networkidle');
    await tokyoPage.goto(`${demo}/activity`);
    const time = tokyoPage.locator('main time[datetime][data-local]').first();
    await time.waitFor();
    const iso = await time.getAttribute('datetime');
    assert.equal(await time.getAttribute('title'), iso);
    const at = new Date(iso);
    const tokyoHour = String((at.getUTCHours() + 9) % 24).padStart(2, '0');
    const minutes = String(at.getUTCMinutes()).padStart(2, '0');
    const shown = await time.innerText();
    assert.ok(shown.includes(`${tokyoHour}:${minutes}`), `${shown} shows Tokyo's time of ${iso}`);
    assert.doesNotMatch(shown, /UTC/);
  } finally {
    await tokyo.close();
  }
});

test('no page of the generated tenant reported a script error', () => {
  assert.deepEqual(browserErrors, []);
});
