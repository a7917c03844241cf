// The operator's page and the API docs page.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  ADMIN_TOKEN, BASE, admin, keepScreenshot, launch, openPage, orderNumber, teachOrder, unique, withScreenshot,
} from './support.js';

const WAIT = { timeout: 20_000 };

/** Registers a shopper over the API and has one order processed; returns its login. */
async function busyShopper() {
  const login = unique('api-shopper-');
  const register = await fetch(`${BASE}/api/user/register`, {
    method: 'POST',
    body: JSON.stringify({ login, password: 'secret password' }),
  });
  assert.equal(register.status, 200);
  const token = register.headers.get('authorization');
  const number = orderNumber();
  await teachOrder(number, 2000);
  const upload = await fetch(`${BASE}/api/user/orders`, {
    method: 'POST',
    headers: { Authorization: token, 'Content-Type': 'text/plain' },
    body: number,
  });
  assert.equal(upload.status, 202);
  return login;
}

describe('the operator page', () => {
  let browser;
  let page;

  before(async () => {
    browser = await launch();
    page = await openPage(browser);
  });

  after(async () => {
    await browser?.close();
  });

  const figure = (key) => page.locator(`[data-figure="${key}"]`).textContent();

  it('refuses a wrong token and keeps the right one for the tab only', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.goto(`${BASE}/admin`);
      await page.getByLabel('ADMIN_TOKEN').fill('not-the-operator-token');
      await page.getByRole('button', { name: 'Open' }).click();
      await page.waitForFunction(() => document.getElementById('token-message').textContent === 'The service did not accept this token.', null, WAIT);
      assert.ok(await page.locator('#unlocked').isHidden());

      await page.getByLabel('ADMIN_TOKEN').fill(ADMIN_TOKEN);
      await page.getByRole('button', { name: 'Open' }).click();
      await page.locator('#unlocked').waitFor({ state: 'visible', ...WAIT });
      const storage = await page.evaluate(() => ({ local: Object.keys(localStorage), cookie: document.cookie }));
      assert.deepEqual(storage, { local: [], cookie: '' });
    });
  });

  it('shows the summary, the chart, the audit, and follows the event feed', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.locator('[data-figure="users"]').waitFor(WAIT);
      await page.locator('#chart canvas').waitFor(WAIT);
      await page.waitForFunction(() => /balances match the ledger/.test(document.getElementById('audit').textContent), null, WAIT);
      const users = Number(await figure('users'));
      const accrued = Number((await figure('accrued')).replaceAll(',', ''));
      const events = Number(await page.locator('#tail-count').textContent());

      const login = await busyShopper();
      // The tail picks the new events up and the summary follows, without a reload.
      await page.waitForFunction((n) => Number(document.getElementById('tail-count').textContent) > n, events, WAIT);
      await page.locator('#events li', { hasText: 'user.registered' }).first().waitFor(WAIT);
      await page.waitForFunction((n) => Number(document.querySelector('[data-figure="users"]').textContent) === n + 1, users, WAIT);
      // The new shopper's order is credited: 5 % of 2000.
      await page.waitForFunction(
        (n) => Number(document.querySelector('[data-figure="accrued"]').textContent.replaceAll(',', '')) === n + 100,
        accrued,
        WAIT,
      );

      // The chart and the top shoppers for the range, asked again.
      await page.getByRole('button', { name: 'Show' }).click();
      await page.locator('#top tr', { hasText: login }).waitFor(WAIT);
      assert.equal(await page.locator('#chart canvas').count() > 0, true);

      await page.locator('#range-from').fill('2026-01-10');
      await page.locator('#range-to').fill('2026-01-01');
      await page.getByRole('button', { name: 'Show' }).click();
      await page.waitForFunction(() => document.getElementById('range-message').textContent.startsWith('Choose a range'), null, WAIT);
    });
  });

  it('creates, restocks and withdraws a reward', async (t) => {
    await withScreenshot(t, page, async () => {
      const sku = unique('mug-');
      await page.locator('#reward-sku').fill(sku);
      await page.locator('#reward-title').fill('Gopher mug');
      await page.locator('#reward-price').fill('250');
      await page.locator('#reward-stock').fill('3');
      await page.locator('#reward-form').getByRole('button', { name: 'Create' }).click();
      const row = page.locator(`#rewards tr[data-sku="${sku}"]`);
      await row.waitFor(WAIT);
      await row.getByRole('button', { name: 'Add' }).click();
      await page.waitForFunction((s) => document.querySelector(`#rewards tr[data-sku="${s}"] td:nth-child(4)`)?.textContent === '13', sku, WAIT);
      await row.getByRole('button', { name: 'Withdraw from offer' }).click();
      await page.waitForFunction((s) => document.querySelector(`#rewards tr[data-sku="${s}"] td:nth-child(5)`)?.textContent === 'no', sku, WAIT);
      const all = await admin('GET', '/api/admin/rewards');
      const mine = all.find((reward) => reward.sku === sku);
      assert.equal(mine.active, false);
      assert.equal(mine.stock, 13);
    });
  });

  it('creates a campaign and lists it with its figures', async (t) => {
    await withScreenshot(t, page, async () => {
      const id = unique('autumn-');
      await page.locator('#campaign-id').fill(id);
      await page.locator('#campaign-title').fill('Autumn savings');
      await page.locator('#campaign-kind').selectOption('percent');
      await page.locator('#campaign-value').fill('15');
      await page.locator('#campaign-quantity').fill('50');
      await page.locator('#campaign-prefix').fill('AUTUMN');
      await page.locator('#campaign-form').getByRole('button', { name: 'Create' }).click();
      await page.waitForFunction((c) => document.getElementById('campaigns-message').textContent === `Campaign ${c} created with 50 codes.`, id, WAIT);
      await page.locator(`#campaigns tr[data-campaign="${id}"]`).waitFor(WAIT);
      const campaign = await admin('GET', `/api/admin/campaigns/${id}`);
      assert.equal(campaign.kind, 'percent');
      assert.equal(campaign.remaining, 50);
      await page.locator('#events li', { hasText: 'campaign.created' }).first().waitFor(WAIT);

      // The range back to the last fortnight, the audit run again, for the picture.
      const today = new Date();
      await page.locator('#range-from').fill(new Date(today.getTime() - 13 * 86400000).toISOString().slice(0, 10));
      await page.locator('#range-to').fill(today.toISOString().slice(0, 10));
      await page.getByRole('button', { name: 'Show' }).click();
      await page.waitForFunction(() => document.getElementById('range-message').textContent === '', null, WAIT);
      await page.getByRole('button', { name: 'Run the audit' }).click();
      await page.waitForFunction(() => /^All [1-9]\d* balances match the ledger/.test(document.getElementById('audit').textContent), null, WAIT);
      await page.evaluate(() => window.scrollTo(0, 0));
      await keepScreenshot(page, 'operator.png');
      assert.deepEqual(page.problems, []);
    });
  });

  it('forgets the token', async (t) => {
    await withScreenshot(t, page, async () => {
      await page.getByRole('button', { name: 'Forget token' }).click();
      await page.locator('#locked').waitFor({ state: 'visible', ...WAIT });
      await page.reload();
      await page.locator('#locked').waitFor({ state: 'visible', ...WAIT });
      assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), []);
    });
  });
});

describe('the API docs page', () => {
  it('renders the API document with the vendored Swagger UI and no CSP violation', async (t) => {
    const browser = await launch();
    try {
      const page = await openPage(browser);
      await withScreenshot(t, page, async () => {
        const requests = [];
        page.on('request', (request) => requests.push(request.url()));
        const served = await fetch(`${BASE}/api/openapi.json`);
        assert.equal(served.status, 200);
        assert.equal((await served.json()).openapi, '3.1.0');
        await page.goto(`${BASE}/docs`);
        await page.locator('#swagger-ui .swagger-ui .opblock-summary').first().click(WAIT);
        await page.locator('.opblock-body .responses-wrapper').first().waitFor(WAIT);
        // The service's own operations, by their ids.
        await page.locator('#operations-account-getBalance').waitFor(WAIT);
        await page.locator('#operations-shop-useCoupon').waitFor(WAIT);
        // The schemas are listed open; one of them unfolded shows its properties.
        const schemas = page.locator('section.models');
        await schemas.getByText('Balance', { exact: true }).click(WAIT);
        await schemas.getByText('withdrawn').first().waitFor(WAIT);
        assert.ok(requests.includes(`${BASE}/api/openapi.json`), requests.join(' '));
        assert.deepEqual(requests.filter((url) => !url.startsWith(`${BASE}/`) && !url.startsWith('data:')), []);
        assert.deepEqual(page.problems, []);
      });
    } finally {
      await browser.close();
    }
  });
});
