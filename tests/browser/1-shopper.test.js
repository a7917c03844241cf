// The shopper's page, clicked through as a shopper would: one tab, one account, in order.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  BASE, admin, keepScreenshot, launch, openPage, orderNumber, teachOrder, unique, withScreenshot,
} from './support.js';

const WAIT = { timeout: 20_000 };

describe('the shopper page', () => {
  let browser;
  let page;
  const login = unique('shopper-');
  const password = 'correct horse battery staple';
  const order = orderNumber();
  const sku = unique('kettle-');
  const campaign = unique('spring-');

  before(async () => {
    browser = await launch();
    page = await openPage(browser);
  });

  after(async () => {
    await browser?.close();
  });

  /** The text of an element, once it is visible. */
  async function text(selector) {
    await page.locator(selector).first().waitFor({ state: 'visible', ...WAIT });
    return (await page.locator(selector).first().textContent()).trim();
  }

  /** Waits until the element's text is `expected`. */
  async function waitForText(selector, expected) {
    await page.waitForFunction(
      ([sel, want]) => document.querySelector(sel)?.textContent.trim() === want,
      [selector, expected],
      WAIT,
    );
  }

  it('offers to sign in when there is no session, and signs up', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.goto(`${BASE}/`);
      await page.getByRole('heading', { name: 'Sign in or create an account' }).waitFor(WAIT);
      await page.getByLabel('Login').fill(login);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Create account' }).click();
      await page.locator('#signed-in').waitFor({ state: 'visible', ...WAIT });
      await waitForText('#balance-current', '0');
      assert.equal(await text('#who'), `Signed in as ${login}`);
      // The token lives only in the HttpOnly cookie: no script can read it.
      const stored = await page.evaluate(() => ({
        local: Object.keys(localStorage),
        session: Object.values(sessionStorage).join(' '),
        cookie: document.cookie,
      }));
      assert.deepEqual(stored.local, []);
      assert.ok(!stored.session.includes('.'), `no token in sessionStorage: ${stored.session}`);
      assert.equal(stored.cookie, '');
      const cookies = await page.context().cookies();
      const token = cookies.find((cookie) => cookie.name === 'token');
      assert.ok(token?.httpOnly, 'an HttpOnly token cookie');
      assert.equal(token.sameSite, 'Lax');
    });
  });

  it('shows an uploaded order move to PROCESSED with its points, without a reload', async (t) => {
    await withScreenshot(t, page, async () => {
      await teachOrder(order, 14599.5);
      // Record every status the order's badge shows, from the first one on.
      await page.evaluate((number) => {
        window.seenStatuses = [];
        const note = () => {
          const status = document.querySelector(`tr[data-order="${number}"] .badge`)?.dataset.status;
          if (status && window.seenStatuses.at(-1) !== status) window.seenStatuses.push(status);
        };
        new MutationObserver(note).observe(document.getElementById('orders'), { childList: true, subtree: true });
      }, order);
      await page.locator('#order-number').fill(order);
      await page.getByRole('button', { name: 'Add order' }).click();
      await waitForText('#order-message', 'Order added: its points are on their way.');
      await page.locator(`tr[data-order="${order}"] .badge[data-status="PROCESSED"]`).waitFor(WAIT);
      const seen = await page.evaluate(() => window.seenStatuses);
      assert.ok(seen.length >= 2 && seen[0] !== 'PROCESSED', `statuses seen: ${seen}`);
      assert.equal(seen.at(-1), 'PROCESSED');
      assert.equal(await text(`tr[data-order="${order}"] td.num`), '729.98');
      await waitForText('#balance-current', '729.98');
    });
  });

  it('explains refused withdrawals in words and makes a good one', async (t) => {
    await withScreenshot(t, page, async () => {
      const withdrawOrder = page.locator('#withdraw-order');
      const sum = page.locator('#withdraw-sum');
      const spend = page.getByRole('button', { name: 'Spend points' });

      await withdrawOrder.fill('12345');
      await sum.fill('10');
      await spend.click();
      await page.waitForFunction(() => document.getElementById('withdraw-message').textContent.startsWith('That is not a valid order number'), null, WAIT);

      const paid = orderNumber();
      await withdrawOrder.fill(paid);
      await sum.fill('100000');
      await spend.click();
      await page.waitForFunction(() => document.getElementById('withdraw-message').textContent.startsWith('Not enough points for that'), null, WAIT);

      await sum.fill('10.123');
      await spend.click();
      await page.waitForFunction(() => document.getElementById('withdraw-message').textContent.startsWith('Check the amount'), null, WAIT);
      assert.ok(await page.locator('#withdraw-message.error').isVisible());

      await sum.fill('700');
      await spend.click();
      await waitForText('#withdraw-message', `Done: 700 points paid for order ${paid}.`);
      await waitForText('#balance-current', '29.98');
      await waitForText('#balance-withdrawn', '700');
      assert.equal(await withdrawOrder.inputValue(), '');
    });
  });

  it('shows the statement, newest first', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.locator('#history tr[data-kind="withdrawal"]').waitFor(WAIT);
      const rows = await page.locator('#history tr').evaluateAll((trs) =>
        trs.map((tr) => [tr.dataset.kind, ...[...tr.cells].slice(3).map((td) => td.textContent)]));
      assert.deepEqual(rows, [
        ['withdrawal', '-700', '29.98'],
        ['accrual', '+729.98', '729.98'],
      ]);
      assert.ok(await page.getByRole('button', { name: 'Older' }).isDisabled());
    });
  });

  it('redeems a reward and tracks it until DELIVERED', async (t) => {
    await withScreenshot(t, page, async () => {
      await admin('POST', '/api/admin/rewards', { sku, title: 'Kettle descaler', price: 10, stock: 5 });
      await page.reload();
      await page.locator(`#rewards tr[data-sku="${sku}"]`).waitFor(WAIT);
      await page.locator('#redeem-reward').selectOption(sku);
      await page.locator('#redeem-quantity').fill('1');
      await page.locator('#redeem-address').fill('1 Main Street, Springfield');
      await page.getByRole('button', { name: 'Redeem' }).click();
      await page.waitForFunction(() => document.getElementById('redeem-message').textContent.startsWith('Redeemed: 10 points'), null, WAIT);
      await waitForText('#balance-current', '19.98');
      const row = page.locator('#redemptions tr[data-redemption]');
      await row.waitFor(WAIT);
      await row.locator('.badge[data-status="DELIVERED"]').waitFor({ timeout: 30_000 });
      assert.notEqual(await row.locator('td').nth(2).textContent(), '—', 'a tracking number');
      await waitForText(`#rewards tr[data-sku="${sku}"] td:nth-child(3)`, '4');

      await page.locator('#redeem-quantity').fill('2');
      await page.getByRole('button', { name: 'Redeem' }).click();
      await page.waitForFunction(() => document.getElementById('redeem-message').textContent.startsWith('Not enough points for that'), null, WAIT);
    });
  });

  it('claims a coupon of an open campaign, once', async (t) => {
    await withScreenshot(t, page, async () => {
      await admin('POST', '/api/admin/campaigns', {
        id: campaign, title: 'Spring kettle days', kind: 'fixed', value: 300, quantity: 5, per_user: 1, price: 0, min_order: 0, prefix: 'SPRING',
      });
      await page.reload();
      const claim = page.getByRole('button', { name: 'Claim Spring kettle days' });
      await claim.click();
      await page.waitForFunction(() => /^Your coupon: SPRING-\d{8}-[0-9A-Z]{10}$/.test(document.getElementById('coupon-message').textContent), null, WAIT);
      const code = (await text('#coupon-message')).replace('Your coupon: ', '');
      await page.locator(`#coupons tr[data-code="${code}"] .badge[data-status="ISSUED"]`).waitFor(WAIT);
      await page.evaluate(() => window.scrollTo(0, 0));
      await keepScreenshot(page, 'shopper.png');
      await claim.click();
      await page.waitForFunction(() => document.getElementById('coupon-message').textContent.startsWith('You hold as many coupons'), null, WAIT);
    });
  });

  it('fits a phone screen', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await page.locator('#signed-in').waitFor({ state: 'visible', ...WAIT });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
      await page.setViewportSize({ width: 1280, height: 900 });
    });
  });

  it('signs out, and signs back in with the keyboard alone', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.locator('#signed-out').waitFor({ state: 'visible', ...WAIT });
      await page.reload();
      await page.locator('#signed-out').waitFor({ state: 'visible', ...WAIT });
      assert.ok(!(await page.context().cookies()).some((cookie) => cookie.name === 'token'));

      await page.locator('#login').focus();
      await page.keyboard.type(login);
      await page.keyboard.press('Tab');
      await page.keyboard.type('wrong password');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.getElementById('sign-in-message').textContent.startsWith('Wrong login or password'), null, WAIT);
      await page.locator('#password').fill('');
      await page.locator('#password').focus();
      await page.keyboard.type(password);
      await page.keyboard.press('Enter');
      await page.locator('#signed-in').waitFor({ state: 'visible', ...WAIT });
      await waitForText('#balance-current', '19.98');
      // Focus is visible: the focused button draws an outline.
      await page.getByRole('button', { name: 'Add order' }).focus();
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Tab');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      assert.notEqual(outline, 'none');
      assert.deepEqual(page.problems, []);
    });
  });

  it('pages through a long statement', async (t) => {
    await withScreenshot(t, page, async () => {
      // Ten more entries, spent through the API with this tab's cookie.
      for (let i = 0; i < 10; i += 1) {
        const answer = await page.request.post(`${BASE}/api/user/balance/withdraw`, {
          data: { order: orderNumber(), sum: 0.5 },
        });
        assert.equal(answer.status(), 200);
      }
      await page.reload();
      const rows = () => page.locator('#history tr').evaluateAll((trs) =>
        trs.map((tr) => [tr.dataset.kind, tr.cells[4]?.textContent]));
      await waitForText('#balance-current', '14.98');
      await page.waitForFunction(() => document.querySelectorAll('#history tr[data-entry]').length === 10, null, WAIT);
      const first = await rows();
      assert.deepEqual(first[0], ['withdrawal', '14.98']);
      assert.deepEqual(first[9], ['withdrawal', '19.48']);
      await page.getByRole('button', { name: 'Older' }).click();
      await page.waitForFunction(() => document.querySelectorAll('#history tr[data-entry]').length === 3, null, WAIT);
      assert.deepEqual(await rows(), [
        ['redemption', '19.98'],
        ['withdrawal', '29.98'],
        ['accrual', '729.98'],
      ]);
      assert.ok(await page.getByRole('button', { name: 'Older' }).isDisabled());
      await page.getByRole('button', { name: 'Newest' }).click();
      await page.waitForFunction(() => document.querySelectorAll('#history tr[data-entry]').length === 10, null, WAIT);
      assert.deepEqual((await rows())[0], ['withdrawal', '14.98']);
    });
  });
});
