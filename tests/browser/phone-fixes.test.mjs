// Every kind of fix the console offers for the seed's errors, completed on a phone (390 px wide):
// for each error of the demo tenant (too few seats, conflicting plans, a missing prerequisite, a
// product not available in the user's country, a shared proxy address), the fixes Diagnosis
// offers are read, then each is applied from a user's Diagnosis page on a fresh demo tenant
// (`licensd demo`, started here: a fix such as buying seats clears every user of its kind, and the
// missing prerequisite has one user), checking at every step that the page never scrolls
// sideways and, at the end, that the error is gone from Diagnosis and from the user's page.
// Run through run.sh (LICENSD_DEMO_BINARY, LICENSD_TOKEN).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchChromium, sidewaysScroll, submitToken } from './support.mjs';

const binary = process.env.LICENSD_DEMO_BINARY;
const token = process.env.LICENSD_TOKEN;
const screenshots = process.env.SCREENSHOT_DIR ?? 'screenshots';
if (!binary || !token) {
  throw new Error('LICENSD_DEMO_BINARY or LICENSD_TOKEN is not set: run tests/browser/run.sh');
}

/** The seed's errors: each kind's Diagnosis section, and how to find a user who has it. */
const ERROR_KINDS = [
  'CountViolation',
  'MutuallyExclusiveViolation',
  'DependencyViolation',
  'ProhibitedInUsageLocationViolation',
  'UniquenessViolation',
];

let browser;
const servers = [];
const browserErrors = [];

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const server of servers) {
    server.process.kill('SIGTERM');
    rmSync(server.directory, { recursive: true, force: true });
  }
});

/** Starts `licensd demo` on a free loopback port in a fresh directory; resolves to its base URL. */
function startDemo() {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'licensd-phone-'));
  const child = spawn(binary, ['demo', '--listen', '127.0.0.1:0', '--data-dir', directory], {
    env: { ...process.env, LICENSD_BOOTSTRAP_TOKEN: token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push({ process: child, directory });
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`licensd demo did not start:\n${log}`)), 60_000);
    const read = (chunk) => {
      log += chunk.toString();
      const found = log.match(/licensd is serving address=(127\.[0-9.]+:\d+)/);
      if (found) {
        clearTimeout(timer);
        resolve(`http://${found[1]}`);
      }
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('exit', (code) => reject(new Error(`licensd demo exited (${code}):\n${log}`)));
  });
}

/** A phone (390 × 844) signed in to a fresh demo tenant through the sign-in page. */
async function phoneOnFreshTenant() {
  const base = await startDemo();
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await phone.newPage();
  page.setDefaultTimeout(20_000);
  page.on('dialog', (dialog) => dialog.accept());
  page.on('pageerror', (error) => browserErrors.push(`${page.url()}: ${error.message}`));
  const sideways = async (step) => {
    const extra = await sidewaysScroll(page);
    assert.equal(extra, 0, `${step}: the page scrolls sideways by ${extra} px on a 390 px phone`);
  };
  await page.goto(`${base}/`);
  await page.waitForURL(/\/login/);
  await sideways('sign-in');
  await submitToken(page, token);
  await page.getByRole('heading', { name: 'Licenses overview' }).waitFor();
  await sideways('overview');
  return { base, phone, page, sideways };
}

/** Opens, from the users in error filtered by `kind`, the first such user's Diagnosis. */
async function openDiagnosis(session, kind) {
  const { base, page, sideways } = session;
  await page.goto(`${base}/users?filter=errors&kind=${kind}`);
  await sideways(`users in error (${kind})`);
  const user = page.locator('#list-results a[href^="/users/"]').first();
  const name = (await user.innerText()).trim();
  await user.click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  await sideways(`${name}'s page`);
  await page.getByRole('link', { name: /^Diagnosis/ }).first().click();
  await page.getByRole('heading', { name: /Diagnosis/, level: 1 }).waitFor();
  await sideways(`${name}'s Diagnosis`);
  return name;
}

/** The fixes Diagnosis offers for the first problem of `kind` (Reprocess changes nothing by itself). */
async function fixesOffered(page, kind) {
  const buttons = page.locator(`section.problem[data-error="${kind}"]`).first().locator('button[data-fix]');
  const kinds = [];
  for (let index = 0; index < (await buttons.count()); index += 1) {
    const fix = await buttons.nth(index).getAttribute('data-fix');
    if (fix !== 'Reprocess' && !kinds.includes(fix)) kinds.push(fix);
  }
  return kinds;
}

/** Applies `fix` for the user's error of `kind` from Diagnosis; waits until the error is gone. */
async function applyFix(session, kind, fix) {
  const { base, page, sideways } = session;
  const name = await openDiagnosis(session, kind);
  const userUrl = page.url().replace(/\/diagnosis$/, '');
  const problem = page.locator(`section.problem[data-error="${kind}"]`);
  const button = problem.first().locator(`button[data-fix="${fix}"]`).first();
  await button.scrollIntoViewIfNeeded();
  const box = await button.boundingBox();
  assert.ok(box.x >= 0 && box.x + box.width <= 390, `${name} ${fix}: the Apply button is at ${box.x}-${box.x + box.width} px, off a 390 px screen`);
  await button.click();
  await page.getByText('The fix was applied.').waitFor();
  await sideways(`${name} ${fix}: the result`);
  // The page reloads itself once processing is over (counted as still there meanwhile).
  const deadline = Date.now() + 30_000;
  while ((await problem.count().catch(() => 1)) > 0) {
    assert.ok(Date.now() < deadline, `${name}: the ${kind} error clears after ${fix}, without a reload`);
    await page.waitForTimeout(200);
  }
  await sideways(`${name} ${fix}: fixed`);
  await page.goto(userUrl);
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  assert.equal(await page.locator(`tr[data-error="${kind}"]`).count(), 0, `${name}'s page still shows ${kind} after ${fix}`);
  await sideways(`${name}'s page after ${fix}`);
  assert.ok(base);
}

test('on a phone, every kind of fix the console offers for the seed errors is completed, never scrolling sideways', async (t) => {
  // The fixes offered for each error, read on a first tenant.
  const first = await phoneOnFreshTenant();
  const offered = new Map();
  for (const kind of ERROR_KINDS) {
    await openDiagnosis(first, kind);
    const fixes = await fixesOffered(first.page, kind);
    assert.ok(fixes.length > 0, `Diagnosis offers a fix for ${kind}`);
    offered.set(kind, fixes);
  }
  // The seed's fixes, as the issue names them, are among those offered.
  assert.ok(offered.get('CountViolation').includes('BuySeats'));
  assert.ok(offered.get('MutuallyExclusiveViolation').some((fix) => fix.startsWith('DisableConflictingPlans')));
  assert.ok(offered.get('DependencyViolation').includes('KeepPrerequisiteDirectly'));
  assert.ok(offered.get('DependencyViolation').includes('DisableDependentPlan'));
  assert.ok(offered.get('ProhibitedInUsageLocationViolation').includes('SetUsageLocation'));
  assert.ok(offered.get('UniquenessViolation').some((fix) => fix.startsWith('RemoveProxyAddress')));
  // Round r applies each error's r-th fix, on a fresh tenant (the first round on the first one).
  const rounds = Math.max(...[...offered.values()].map((fixes) => fixes.length));
  const completed = [];
  for (let round = 0; round < rounds; round += 1) {
    const session = round === 0 ? first : await phoneOnFreshTenant();
    try {
      for (const kind of ERROR_KINDS) {
        const fix = offered.get(kind)[round];
        if (!fix) continue;
        await applyFix(session, kind, fix);
        completed.push(`${kind}: ${fix}`);
      }
      if (round === 0) await session.page.screenshot({ path: path.join(screenshots, 'phone-every-fix.png'), fullPage: false });
    } finally {
      await session.phone.close();
    }
  }
  const expected = [...offered].flatMap(([kind, fixes]) => fixes.map((fix) => `${kind}: ${fix}`));
  t.diagnostic(`completed at 390 px: ${completed.join('; ')}`);
  assert.deepEqual(completed.sort(), expected.sort());
  assert.deepEqual(browserErrors, []);
});
