// Dynamic and nested groups in the web console (issue 17), in real headless Chromium against the
// demo tenant (run through run.sh after console.test.mjs, on the same server: the demo's users
// have departments — 131-150 Engineering). The tests run in order: a dynamic group created with
// a rule checked as it is typed and a preview of who joins and their licenses; its pages (no
// members by hand); its rule edited, paused and resumed after previews, the change in Activity;
// a user's directory attributes edited after a preview of the groups and licenses they move, and
// why they are in each group; nesting with a cycle refused and transitive licensing switched on
// after a preview, the path on the user's page; the dynamic group converted to static and made
// dynamic again, each previewed; then every new page at desktop and 390 px width without
// sideways scroll and with no axe-core violation.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { launchChromium, pageProblems, sidewaysScroll, submitToken } from './support.mjs';


const base = process.env.LICENSD_URL;
const token = process.env.LICENSD_TOKEN;
const screenshots = process.env.SCREENSHOT_DIR ?? 'screenshots';
if (!base || !token) {
  throw new Error('LICENSD_URL or LICENSD_TOKEN is not set: run tests/browser/run.sh');
}

let browser;
let context;
let page;
const dialogs = [];
const browserErrors = [];
/** Addresses of the pages this file adds, filled as the tests find them. */
const pages = { groupsNew: '/groups/new', groups: '/groups' };

before(async () => {
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.accept();
  });
  page.on('console', (message) => {
    // A refused change or an invalid rule is answered 422 with the reason shown: expected.
    const expectedRefusal = /status of 422/.test(message.text());
    if (message.type() === 'error' && !expectedRefusal) browserErrors.push(`${page.url()}: ${message.text()}`);
  });
  page.on('pageerror', (error) => browserErrors.push(`${page.url()}: ${error.message}`));
  await page.goto(`${base}/login`);
  await submitToken(page, token);
  await page.waitForURL((url) => !url.pathname.startsWith('/login'));
});

after(async () => {
  await browser?.close();
});

async function screenshot(name) {
  await page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });
}

/** Reloads the page until `check` passes (background processing takes a moment). */
async function eventually(check, description) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await check();
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${description}: ${error.message}`);
      await page.waitForTimeout(250);
      await page.reload();
    }
  }
}

/** Opens a user's page by user principal name prefix (`user132`). */
async function openUser(name) {
  await page.goto(`${base}/users?search=${name}`);
  await page.locator('#list-results').getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  return new URL(page.url()).pathname;
}

/** Opens a group's page by its exact name. */
async function openGroup(name) {
  await page.goto(`${base}/groups?search=${encodeURIComponent(name)}`);
  await page.locator('#list-results').getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  return new URL(page.url()).pathname;
}

/** Fills the new group form and asks for its preview. */
async function newGroup({ name, rule, products = [] }) {
  await page.goto(`${base}/groups`);
  await page.getByRole('link', { name: 'New group' }).click();
  await page.getByRole('heading', { name: 'New group', level: 1 }).waitFor();
  await page.getByLabel('Group name').fill(name);
  if (rule !== undefined) {
    await page.getByRole('radio', { name: /Dynamic/ }).check();
    await page.getByLabel('Membership rule').fill(rule);
  }
  for (const product of products) {
    await page.getByRole('checkbox', { name: new RegExp(`^${product}`) }).check();
  }
  await page.getByRole('button', { name: 'Preview the effect' }).click();
}

test('a dynamic group: the rule is checked as it is typed, previewed (joiners, licenses, seats, errors), then created', async () => {
  await page.goto(`${base}/groups/new`);
  // An unfinished string: the parser's message appears next to the rule while typing, with the
  // character it points at marked.
  await page.getByLabel('Membership rule').fill('user.department -eq "Engineering');
  const error = page.getByTestId('rule-error');
  await error.waitFor();
  assert.match(await error.innerText(), /Invalid rule at character \d+:/);
  assert.equal(await error.locator('mark.rule-position').count(), 1);
  await page.getByLabel('Membership rule').fill('user.department -eq "Engineering"');
  await page.getByTestId('rule-valid').waitFor();
  assert.equal(await page.getByTestId('rule-error').count(), 0);

  // Submitted anyway with an invalid rule: refused next to the field, nothing created.
  await newGroup({ name: 'Engineering (dynamic)', rule: 'user.department -eq', products: ['Office 365 E3', 'Microsoft Workplace Analytics'] });
  await page.getByTestId('rule-error').waitFor();
  assert.match(await page.getByTestId('rule-error').innerText(), /Invalid rule at character 20/);
  assert.equal(await page.getByLabel('Group name').inputValue(), 'Engineering (dynamic)', 'the typed values stay');

  // A valid rule: the preview says who would join, the licenses they gain, seats and errors.
  await page.getByLabel('Membership rule').fill('user.department -eq "Engineering"');
  await page.getByRole('button', { name: 'Preview the effect' }).click();
  const preview = page.getByTestId('membership-preview');
  await preview.waitFor();
  assert.equal(await preview.locator('[data-field="joined"]').innerText(), '20');
  assert.match(await page.getByTestId('joined-users').innerText(), /user131@contoso\.com/);
  assert.match(await page.getByTestId('license-changes').innerText(), /gains .*Workplace Analytics/);
  assert.match(await preview.getByTestId('preview').innerText(), /Workplace Analytics: purchased 20 → 20, assigned \d+ → \d+/);
  assert.ok(Number(await preview.locator('[data-field="broken"]').innerText()) > 0, 'too few seats: new errors are predicted');
  await screenshot('group-new-dynamic-preview');
  // Nothing exists yet.
  await page.goto(`${base}/groups?search=Engineering%20(dynamic)`);
  assert.equal(await page.locator('#list-results').getByRole('link', { name: 'Engineering (dynamic)', exact: true }).count(), 0);

  await newGroup({ name: 'Engineering (dynamic)', rule: 'user.department -eq "Engineering"', products: ['Office 365 E3', 'Microsoft Workplace Analytics'] });
  await page.getByTestId('membership-preview').waitFor();
  await page.getByRole('button', { name: 'Create the group' }).click();
  await page.getByRole('heading', { name: 'Engineering (dynamic)', level: 1 }).waitFor();
  await page.getByText('The dynamic group was created').waitFor();
  assert.equal(await page.getByTestId('membership-kind').innerText(), 'Dynamic membership');
  pages.dynamicGroup = new URL(page.url()).pathname;
  await eventually(async () => {
    assert.match(await page.locator('p.subtitle').innerText(), /20 members/);
  }, 'the rule selected the 20 engineers');
  await page.getByRole('link', { name: 'Workplace Analytics' }).first().waitFor();
});

test("a dynamic group's members cannot be added or removed by hand: the page does not offer it", async () => {
  await page.goto(`${base}${pages.dynamicGroup}/members`);
  pages.dynamicMembers = `${pages.dynamicGroup}/members`;
  await page.getByTestId('dynamic-members').waitFor();
  assert.match(await page.getByTestId('dynamic-members').innerText(), /cannot be added or removed by hand/);
  assert.equal(await page.getByLabel(/Add a member/).count(), 0);
  assert.equal(await page.getByRole('button', { name: /^Remove/ }).count(), 0);
  assert.equal(await page.locator('#list-results tbody tr').count(), 20);
  // A static group still offers both.
  await openGroup('Analytics pilot');
  await page.getByRole('link', { name: /^Members \(/ }).click();
  await page.getByLabel(/Add a member/).waitFor();
  assert.ok((await page.getByRole('button', { name: /^Remove/ }).count()) > 0);
});

test('editing the rule, pausing and resuming it: each previewed, then saved, and audited', async () => {
  await page.goto(`${base}${pages.dynamicGroup}`);
  await page.getByRole('link', { name: 'Membership rule' }).click();
  pages.rule = new URL(page.url()).pathname;
  assert.equal(await page.getByTestId('current-rule').innerText(), 'user.department -eq "Engineering"');
  assert.match(await page.getByTestId('processing-state').innerText(), /On/);

  // One engineer fewer: the preview names who would leave and the license they would lose.
  const rule = 'user.department -eq "Engineering" -and user.userPrincipalName -ne "user131@contoso.com"';
  await page.getByLabel('Membership rule').fill(rule);
  await page.getByRole('button', { name: 'Preview the change' }).click();
  const preview = page.getByTestId('membership-preview');
  await preview.waitFor();
  assert.equal(await preview.locator('[data-field="joined"]').innerText(), '0');
  assert.equal(await preview.locator('[data-field="left"]').innerText(), '1');
  assert.match(await page.getByTestId('left-users').innerText(), /user131@contoso\.com/);
  await screenshot('group-rule-preview');
  // Still the old rule until saved.
  assert.equal(await page.getByTestId('current-rule').innerText(), 'user.department -eq "Engineering"');
  await page.getByRole('button', { name: 'Save the rule' }).click();
  await page.getByText('The membership rule was saved').waitFor();
  assert.equal(await page.getByTestId('current-rule').innerText(), rule);
  await eventually(async () => assert.match(await page.locator('p.subtitle').innerText(), /19 members/), 'user131 left');

  // Pause, previewed: nobody moves.
  await page.getByRole('button', { name: 'Preview pausing the rule' }).click();
  await page.getByTestId('membership-preview').waitFor();
  assert.equal(await page.getByTestId('membership-preview').locator('[data-field="left"]').innerText(), '0');
  await page.getByRole('button', { name: 'Save the rule' }).click();
  await page.getByText('The membership rule was saved').waitFor();
  assert.match(await page.getByTestId('processing-state').innerText(), /Paused/);
  assert.match(await page.locator('p.subtitle').innerText(), /rule paused/);
  // Resume.
  await page.getByRole('button', { name: 'Preview resuming the rule' }).click();
  await page.getByTestId('membership-preview').waitFor();
  await page.getByRole('button', { name: 'Save the rule' }).click();
  await page.getByText('The membership rule was saved').waitFor();
  assert.match(await page.getByTestId('processing-state').innerText(), /On/);

  // A rule the parser refuses is shown next to the field, and nothing changes.
  await page.getByLabel('Membership rule').fill('user.department -eq "Engineering" -and');
  await page.getByRole('button', { name: 'Preview the change' }).click();
  await page.getByTestId('rule-error').waitFor();
  assert.equal(await page.getByTestId('current-rule').innerText(), rule);

  // The rule changes are in Activity as "Update group", with the old and the new rule.
  await page.goto(`${base}/activity?activity=Update+group`);
  const changes = page.locator('main');
  await changes.getByText(/MembershipRule: /).first().waitFor();
  assert.match(await changes.innerText(), /MembershipRule: .*user\.department -eq .*Engineering.* → .*userPrincipalName -ne .*user131@contoso\.com/);
  assert.match(await changes.innerText(), /MembershipRuleProcessingState: .*On.* → .*Paused/);
});

test("a user's directory attributes are shown and edited; why the user is in each group", async () => {
  const user = await openUser('user132');
  pages.user = user;
  assert.equal(await page.getByLabel(/^Department/).inputValue(), 'Engineering');
  const row = page.getByTestId('user-groups').locator('tr[data-group="Engineering (dynamic)"]');
  assert.match(await row.innerText(), /Matched the group's rule user\.department -eq "Engineering"/);
  assert.match(await page.getByTestId('user-groups').locator('tr[data-group="Engineering - E3 + EMS"]').innerText(), /Direct member/);

  await page.getByLabel(/^Job title/).fill('Platform engineer');
  await page.getByText(/On-premises extension attributes \(0 set\)/).click();
  await page.getByLabel(/^Extension attribute 3/).fill('cost-center-42');
  // Previewed first: no rule reads these, so no group and no license moves.
  await page.getByRole('button', { name: 'Preview the change' }).click();
  const noMove = page.getByTestId('attributes-preview');
  await noMove.waitFor();
  assert.match(await noMove.getByTestId('group-changes').innerText(), /join and leave no dynamic group/);
  assert.equal(await page.getByLabel(/^Job title/).inputValue(), 'Platform engineer', 'the typed values stay');
  await page.getByRole('button', { name: 'Save attributes' }).click();
  await page.getByText('The directory attributes were saved').waitFor();
  assert.equal(await page.getByLabel(/^Job title/).inputValue(), 'Platform engineer');
  // Set extension attributes are shown unfolded.
  assert.match(await page.getByText(/On-premises extension attributes/).innerText(), /\(1 set\)/);
  assert.equal(await page.getByLabel(/^Extension attribute 3/).inputValue(), 'cost-center-42');

  // A value over Graph's limit is refused next to the attributes, and nothing changes.
  await page.getByLabel(/^Employee ID/).evaluate((input) => input.removeAttribute('maxlength'));
  await page.getByLabel(/^Employee ID/).fill('12345678901234567');
  await page.getByRole('button', { name: 'Preview the change' }).click();
  await page.getByRole('alert').filter({ hasText: /invalid employeeId: at most 16 characters/ }).waitFor();
  assert.equal(await page.getByLabel(/^Job title/).inputValue(), 'Platform engineer', 'nothing else changed');

  // Moving the user to another department takes them out of the dynamic group: the preview
  // says so before anything is saved.
  await page.goto(`${base}${user}`);
  await page.getByLabel(/^Department/).fill('Research');
  await page.getByRole('button', { name: 'Preview the change' }).click();
  const move = page.getByTestId('attributes-preview');
  await move.waitFor();
  assert.match(await move.getByTestId('group-changes').innerText(), /Leaves Engineering \(dynamic\)/);
  assert.match(await move.getByTestId('license-changes').innerText(), /^Loses .*Workplace Analytics\.$/);
  await screenshot('user-attributes-preview');
  assert.equal(await page.getByTestId('user-groups').locator('tr[data-group="Engineering (dynamic)"]').count(), 1, 'nothing saved yet');
  await page.getByRole('button', { name: 'Save attributes' }).click();
  await page.getByText('The directory attributes were saved').waitFor();
  await eventually(async () => {
    assert.equal(await page.getByTestId('user-groups').locator('tr[data-group="Engineering (dynamic)"]').count(), 0);
  }, 'user132 left the dynamic group');
});

test('nesting: a group added as a member after a preview, a cycle refused, transitive licensing and the path', async () => {
  // All Staff carries Office 365 E3; Platform has user121 and goes into All Staff.
  await newGroup({ name: 'All Staff', products: ['Office 365 E3'] });
  await page.getByTestId('membership-preview').waitFor();
  await page.getByRole('button', { name: 'Create the group' }).click();
  await page.getByText('The group was created').waitFor();
  const allStaff = new URL(page.url()).pathname;
  await newGroup({ name: 'Platform' });
  await page.getByRole('button', { name: 'Create the group' }).click();
  await page.getByText('The group was created').waitFor();
  const platform = new URL(page.url()).pathname;
  await page.goto(`${base}${platform}/members`);
  await page.getByLabel(/Add a member/).fill('user121@contoso.com');
  await page.getByRole('button', { name: 'Add member' }).click();
  await page.getByText('The member was added').waitFor();

  await page.goto(`${base}${allStaff}/nesting`);
  pages.nesting = `${allStaff}/nesting`;
  assert.match(await page.getByTestId('member-groups').innerText(), /No group is nested/);
  assert.match(await page.getByTestId('transitive-licensing').innerText(), /Off/);
  await page.getByLabel(/Add a group as a member/).fill('Platform');
  await page.getByRole('button', { name: 'Preview adding it' }).click();
  await page.getByTestId('preview').waitFor();
  await page.getByRole('button', { name: 'Add the group' }).click();
  await page.getByText('The group was added as a member').waitFor();
  assert.match(await page.getByTestId('member-groups').innerText(), /Platform/);
  assert.match(await page.getByTestId('users-through-nesting').innerText(), /1 users are members only through nested groups: they do not receive/);

  // The other way round would be a cycle: refused, saying why, nothing changed.
  await page.goto(`${base}${platform}/nesting`);
  assert.match(await page.getByTestId('member-of').innerText(), /All Staff Assigned — directly/);
  await page.getByLabel(/Add a group as a member/).fill('All Staff');
  await page.getByRole('button', { name: 'Preview adding it' }).click();
  const cycle = page.getByTestId('nesting-cycle');
  await cycle.waitFor();
  assert.match(await cycle.innerText(), /All Staff cannot become a member of Platform: Platform is already inside All Staff \(All Staff ⊃ Platform\)/);
  await screenshot('group-nesting-cycle');
  assert.match(await page.getByTestId('member-groups').innerText(), /No group is nested/);

  // Without transitive licensing user121 gets nothing from All Staff.
  const user = await openUser('user121');
  pages.nestedUser = user;
  const staffRow = page.getByTestId('user-groups').locator('tr[data-group="All Staff"]');
  assert.match(await staffRow.innerText(), /Through nesting, via Platform → All Staff/);
  assert.match(await staffRow.innerText(), /Not received: transitive licensing is off/);
  assert.match(await page.getByTestId('user-groups').locator('tr[data-group="Platform"]').innerText(), /Direct member/);

  // Transitive licensing on, previewed first: user121 would gain a license.
  await page.goto(`${base}${allStaff}/nesting`);
  await page.getByRole('button', { name: 'Preview turning it on' }).click();
  const preview = page.getByTestId('preview');
  await preview.waitFor();
  assert.ok(Number(await preview.locator('[data-field="changed"]').innerText()) >= 1);
  await screenshot('group-nesting-transitive-preview');
  await page.getByRole('button', { name: 'Turn transitive licensing on' }).click();
  await page.getByText('The transitive licensing setting was saved').waitFor();
  assert.match(await page.getByTestId('transitive-licensing').innerText(), /On/);
  assert.match(await page.getByTestId('users-through-nesting').innerText(), /they receive this group's products/);

  // The user's license state names the path it came through.
  await page.goto(`${base}${user}`);
  await eventually(async () => {
    const through = page.getByTestId('licensed-through');
    assert.equal(await through.innerText(), 'via Platform → All Staff');
  }, "user121's E3 names the path");
  assert.match(await page.getByTestId('user-groups').locator('tr[data-group="All Staff"]').innerText(), /Received/);
  await screenshot('user-nested-path');

  // Taking Platform out again.
  await page.goto(`${base}${allStaff}/nesting`);
  await page.getByRole('button', { name: 'Remove Platform from this group' }).click();
  await page.getByText('The nested group was removed').waitFor();
  assert.match(dialogs.at(-1), /Take Platform out of All Staff\? Its users lose the licenses/);
  assert.match(await page.getByTestId('member-groups').innerText(), /No group is nested/);
});

test('a dynamic group converted to static after a preview (nothing changes now), then made dynamic again', async () => {
  await page.goto(`${base}${pages.rule}`);
  const members = (await page.locator('p.subtitle').innerText()).match(/(\d+) members/)[1];
  await page.getByRole('button', { name: 'Preview converting to a static group' }).click();
  const convert = page.getByTestId('convert-to-static');
  await convert.waitFor();
  assert.match(await page.getByTestId('convert-effect').innerText(), new RegExp(`Nothing changes now\\. The ${members} current members stay, as assigned members`));
  assert.equal(await convert.locator('[data-field="left"]').innerText(), '0');
  await screenshot('group-convert-static-preview');
  assert.equal(await page.getByTestId('membership-kind').innerText(), 'Dynamic membership', 'nothing saved yet');
  await convert.getByRole('button', { name: 'Convert to static group' }).click();
  await page.getByText('The group is now an assigned (static) group').waitFor();
  assert.equal(await page.getByTestId('membership-kind').innerText(), 'Assigned membership');
  assert.match(await page.locator('p.subtitle').innerText(), new RegExp(`${members} members`));

  // Made dynamic again with the rule editor, previewed first.
  await page.goto(`${base}${pages.rule}`);
  await page.getByRole('heading', { name: 'Make it a dynamic group' }).waitFor();
  await page.getByLabel('Membership rule').fill('user.department -eq "Engineering"');
  await page.getByRole('button', { name: 'Preview the change' }).click();
  await page.getByTestId('membership-preview').waitFor();
  await page.getByRole('button', { name: 'Make dynamic' }).click();
  await page.getByText('The group is now a dynamic group').waitFor();
  assert.equal(await page.getByTestId('current-rule').innerText(), 'user.department -eq "Engineering"');
  assert.equal(await page.getByTestId('membership-kind').innerText(), 'Dynamic membership');
});

test('the new pages at desktop and 390 px wide: no horizontal page scroll, and axe-core finds no violation', async () => {
  const addresses = [
    pages.groups,
    pages.groupsNew,
    pages.dynamicGroup,
    pages.dynamicMembers,
    pages.rule,
    pages.nesting,
    pages.user,
    pages.nestedUser,
  ];
  assert.ok(addresses.every(Boolean), 'every page was found by the tests before');
  const problems = [];
  for (const viewport of [{ width: 1280, height: 900 }, { width: 390, height: 844 }]) {
    // axe is injected as a script, which the console's Content-Security-Policy refuses: this
    // context bypasses it.
    const checking = await browser.newContext({ viewport, bypassCSP: true });
    await checking.addCookies(await context.cookies());
    const checkPage = await checking.newPage();
    try {
      for (const address of addresses) {
        await checkPage.goto(`${base}${address}`);
        problems.push(...await pageProblems(checkPage, `${viewport.width} px ${address}`));
      }
      // A rule error and a preview, shown on a phone.
      if (viewport.width === 390) {
        await checkPage.goto(`${base}${pages.rule}`);
        await checkPage.getByLabel('Membership rule').fill('user.department -in ["Engineering", "Operations" -and user.country -eq "FR"');
        await checkPage.getByRole('button', { name: 'Preview the change' }).click();
        await checkPage.getByTestId('rule-error').waitFor();
        const widths = await sidewaysScroll(checkPage);
        if (widths > 0) problems.push(`390 px rule error: the page scrolls sideways by ${widths} px`);
        await checkPage.screenshot({ path: path.join(screenshots, 'phone-rule-error.png'), fullPage: true });
      }
    } finally {
      await checking.close();
    }
  }
  assert.deepEqual(problems, []);
});

test('no page reported a script error or a blocked resource', () => {
  assert.deepEqual(browserErrors, []);
});
