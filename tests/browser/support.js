// What the browser tests share: the service under test, Chromium, the operator's API,
// the demo accrual emulator, and screenshots of failures.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with tests/browser/run.sh`);
  return value;
}

export const BASE = required('GOPHERMART_URL');
export const ACCRUAL = required('ACCRUAL_URL');
export const ADMIN_TOKEN = required('ADMIN_TOKEN');
export const ARTIFACTS = join(here, 'artifacts');
export const SCREENSHOTS = join(here, '..', '..', 'docs', 'screenshots');

/** Headless Chromium from Debian's package; the flags keep it off the network. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** A new tab that records console errors and CSP violations, in English and UTC. */
export async function openPage(browser, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (message) => {
    // An answer like 401 is logged by Chromium too; those are the pages' business.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      page.problems.push(message.text());
    }
  });
  page.on('pageerror', (error) => page.problems.push(String(error)));
  return page;
}

/** Runs `body`; on failure saves a screenshot of `page` named after the test. */
export async function withScreenshot(t, page, body) {
  try {
    await body();
  } catch (error) {
    mkdirSync(ARTIFACTS, { recursive: true });
    const name = t.name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 80);
    await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => {});
    throw error;
  }
}

/** Saves a screenshot for the README when SCREENSHOTS=1. */
export async function keepScreenshot(page, name) {
  if (process.env.SCREENSHOTS !== '1') return;
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, name), fullPage: true });
}

/** A call to the operator's API. */
export async function admin(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Teaches the demo accrual emulator an order worth 5 % of `price`. */
export async function teachOrder(number, price) {
  const post = async (path, body) => {
    const response = await fetch(ACCRUAL + path, { method: 'POST', body: JSON.stringify(body) });
    if (response.status >= 300 && response.status !== 409) {
      throw new Error(`${path}: ${response.status} ${await response.text()}`);
    }
  };
  await post('/api/goods', { match: 'Bork', reward: 5, reward_type: '%' });
  await post('/api/orders', { order: number, goods: [{ description: 'Чайник Bork', price }] });
}

/** A fresh random order number that passes the Luhn check. */
export function orderNumber() {
  let body = String(1 + Math.floor(Math.random() * 9));
  for (let i = 0; i < 14; i += 1) body += String(Math.floor(Math.random() * 10));
  for (let check = 0; check < 10; check += 1) {
    if (luhn(body + check)) return body + check;
  }
  throw new Error('unreachable');
}

function luhn(number) {
  let sum = 0;
  for (let i = 0; i < number.length; i += 1) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

/** A unique name for this run. */
export function unique(prefix) {
  return `${prefix}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
