// What every browser test file needs: Debian's Chromium launched headless, the sign-in page
// filled in, and the checks every page must pass (no sideways page scroll, no axe-core
// violation). Not a test file itself: run.sh names the test files.

import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = require.resolve('axe-core/axe.min.js');

/** Headless Chromium (CHROMIUM, default /usr/bin/chromium). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

/** Fills the sign-in page with `token` and signs in (the page is on `/login`). */
export async function submitToken(page, token) {
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/** How many pixels the page scrolls sideways (0 when it fits). */
export function sidewaysScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** The page's problems as `label: ...`: a sideways scroll, and axe-core's violations (the
 * page's context must bypass the Content-Security-Policy, which rightly refuses the injected
 * axe script). */
export async function pageProblems(page, label) {
  await page.waitForLoadState('load');
  const problems = [];
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  if (widths.scroll > widths.client) problems.push(`${label}: the page scrolls sideways (${widths.scroll} px > ${widths.client} px)`);
  await page.addScriptTag({ path: axeSource });
  const violations = await page.evaluate(async () => {
    const results = await window.axe.run(document);
    return results.violations.map((violation) => `${violation.id} (${violation.impact}): ${violation.nodes.length} × ${violation.nodes[0]?.target}`);
  });
  for (const violation of violations) problems.push(`${label}: ${violation}`);
  return problems;
}
