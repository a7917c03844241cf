// The shopper's page. The sign-in token lives only in the HttpOnly cookie the API sets;
// this script never sees it. Whether we are signed in is what GET /api/user/balance says.

import { Poller, badge, call, el, explain, fill, newKey, points, say, when } from './common.js';

const $ = (id) => document.getElementById(id);

const FINAL_ORDER = new Set(['PROCESSED', 'INVALID']);
const FINAL_REDEMPTION = new Set(['DELIVERED', 'CANCELLED']);
const HISTORY_PAGE = 10;

const KINDS = {
  accrual: 'Points for an order',
  withdrawal: 'Paid for an order',
  redemption: 'Reward redeemed',
  refund: 'Reward refunded',
  coupon: 'Coupon bought',
};

const state = {
  historyBefore: [], // ids the pages shown so far started before; empty: the newest page
  historyNext: null, // the id to ask for the next older page, null when there is none
};

const ordersPoller = new Poller(loadOrders, 1000);
const redemptionsPoller = new Poller(loadRedemptions, 1000);

// ---- signing in and out ----

function showSignedOut() {
  ordersPoller.stop();
  redemptionsPoller.stop();
  $('loading').classList.add('hidden');
  $('signed-in').classList.add('hidden');
  $('signed-out').classList.remove('hidden');
  $('sign-out').classList.add('hidden');
  $('who').textContent = '';
}

function showSignedIn() {
  $('loading').classList.add('hidden');
  $('signed-out').classList.add('hidden');
  $('signed-in').classList.remove('hidden');
  $('sign-out').classList.remove('hidden');
  const login = sessionStorage.getItem('login');
  $('who').textContent = login ? `Signed in as ${login}` : 'Signed in';
}

/** Any answer 401 means the cookie is gone or expired: back to the sign-in form. */
function signedOutBy(answer) {
  if (answer.status === 401) {
    showSignedOut();
    return true;
  }
  return false;
}

async function start() {
  const answer = await call('GET', '/api/user/balance');
  if (answer.status === 200) {
    showSignedIn();
    showBalance(answer.data);
    await loadAll();
  } else {
    showSignedOut();
    if (answer.status !== 401) say($('sign-in-message'), explain(answer), 'error');
  }
}

$('sign-in-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const action = event.submitter && event.submitter.value === 'register' ? 'register' : 'login';
  const login = $('login').value;
  const password = $('password').value;
  const message = $('sign-in-message');
  say(message, action === 'register' ? 'Creating your account…' : 'Signing in…');
  const answer = await call('POST', `/api/user/${action}`, { body: { login, password } });
  if (answer.status === 200) {
    sessionStorage.setItem('login', login);
    $('password').value = '';
    say(message, '');
    await start();
    return;
  }
  const reasons = {
    400: 'Enter a login and a password',
    401: 'Wrong login or password.',
    409: 'That login is taken: choose another, or sign in.',
  };
  say(message, explain(answer, reasons), 'error');
});

$('sign-out').addEventListener('click', async () => {
  await call('POST', '/api/user/logout');
  sessionStorage.removeItem('login');
  showSignedOut();
  $('login').focus();
});

// ---- everything a signed-in shopper sees ----

async function loadAll() {
  await loadRewards();
  await Promise.all([loadOrders(), loadHistory(), loadRedemptions(), loadCoupons()]);
}

function showBalance(balance) {
  $('balance-current').textContent = points(balance.current);
  $('balance-withdrawn').textContent = points(balance.withdrawn);
}

async function loadBalance() {
  const answer = await call('GET', '/api/user/balance');
  if (signedOutBy(answer)) return;
  if (answer.status === 200) showBalance(answer.data);
}

/** Reloads what a change of points touches: balance and the statement's newest page. */
async function pointsChanged() {
  await loadBalance();
  if (state.historyBefore.length === 0) await loadHistory();
}

// ---- orders ----

let lastOrders = '';

async function loadOrders() {
  const answer = await call('GET', '/api/user/orders');
  if (signedOutBy(answer)) return;
  const orders = answer.status === 200 ? answer.data : [];
  const rows = orders.map((order) =>
    el('tr', { 'data-order': order.number },
      el('td', { class: 'mono' }, order.number),
      el('td', {}, badge(order.status)),
      el('td', { class: 'num' }, order.accrual !== undefined ? points(order.accrual) : '—'),
      el('td', { class: 'hide-narrow' }, when(order.uploaded_at))));
  fill($('orders'), rows.length ? rows : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, 'No orders yet.')));
  // Points arrive with the final status: refresh the balance when anything moved.
  const summary = orders.map((order) => `${order.number}:${order.status}`).join(',');
  if (lastOrders && summary !== lastOrders) await pointsChanged();
  lastOrders = summary;
  if (orders.some((order) => !FINAL_ORDER.has(order.status))) ordersPoller.kick();
}

$('order-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const number = $('order-number').value.trim();
  const message = $('order-message');
  const answer = await call('POST', '/api/user/orders', { body: number, json: false });
  if (signedOutBy(answer)) return;
  const reasons = {
    200: 'You have added this order already.',
    202: 'Order added: its points are on their way.',
    400: 'Enter an order number',
    409: 'This order number belongs to another shopper.',
    422: 'That is not a valid order number (digits, with a correct check digit)',
  };
  if (answer.status === 202 || answer.status === 200) {
    say(message, reasons[answer.status]);
    $('order-number').value = '';
    await loadOrders();
  } else {
    say(message, explain(answer, reasons), 'error');
  }
});

// ---- withdrawals ----

$('withdraw-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('withdraw-message');
  const order = $('withdraw-order').value.trim();
  const text = $('withdraw-sum').value.trim().replace(',', '.');
  const sum = Number(text);
  if (!text || !Number.isFinite(sum)) {
    say(message, 'Enter the points to spend as a number, like 150 or 99.5.', 'error');
    return;
  }
  const answer = await call('POST', '/api/user/balance/withdraw', { body: { order, sum } });
  if (signedOutBy(answer)) return;
  if (answer.status === 200) {
    say(message, `Done: ${points(sum)} points paid for order ${order}.`);
    $('withdraw-order').value = '';
    $('withdraw-sum').value = '';
    await pointsChanged();
    return;
  }
  const reasons = {
    402: 'Not enough points for that.',
    409: 'This order number was already paid for with a different amount.',
    422: 'That is not a valid order number (digits, with a correct check digit)',
    400: 'Check the amount: more than 0, at most 2 decimals',
  };
  say(message, explain(answer, reasons), 'error');
});

// ---- the statement ----

async function loadHistory() {
  const before = state.historyBefore[state.historyBefore.length - 1];
  const query = before ? `?limit=${HISTORY_PAGE}&before=${before}` : `?limit=${HISTORY_PAGE}`;
  const answer = await call('GET', `/api/user/history${query}`);
  if (signedOutBy(answer)) return;
  const entries = answer.status === 200 ? answer.data : [];
  const rows = entries.map((entry) =>
    el('tr', { 'data-entry': entry.id, 'data-kind': entry.kind },
      el('td', {}, when(entry.at)),
      el('td', {}, KINDS[entry.kind] || entry.kind),
      el('td', { class: 'mono hide-narrow' }, entry.reference || ''),
      el('td', { class: 'num' }, (entry.amount > 0 ? '+' : '') + points(entry.amount)),
      el('td', { class: 'num' }, points(entry.balance))));
  fill($('history'), rows.length ? rows : el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'Nothing here yet.')));
  state.historyNext = entries.length === HISTORY_PAGE ? entries[entries.length - 1].id : null;
  $('history-older').disabled = state.historyNext === null;
  $('history-newest').disabled = state.historyBefore.length === 0;
}

$('history-older').addEventListener('click', async () => {
  if (state.historyNext === null) return;
  state.historyBefore.push(state.historyNext);
  await loadHistory();
});

$('history-newest').addEventListener('click', async () => {
  state.historyBefore = [];
  await loadHistory();
});

// ---- rewards and their delivery ----

async function loadRewards() {
  const answer = await call('GET', '/api/rewards');
  if (signedOutBy(answer)) return;
  const rewards = answer.status === 200 ? answer.data : [];
  for (const reward of rewards) titles.set(reward.sku, reward.title);
  const select = $('redeem-reward');
  const chosen = select.value;
  fill(select, rewards.map((reward) =>
    el('option', { value: reward.sku, selected: reward.sku === chosen },
      `${reward.title} — ${points(reward.price)} points`)));
  $('redeem').disabled = rewards.length === 0;
  fill($('rewards'), rewards.length
    ? rewards.map((reward) => el('tr', { 'data-sku': reward.sku },
      el('td', {}, reward.title),
      el('td', { class: 'num' }, points(reward.price)),
      el('td', { class: 'num' }, reward.stock)))
    : el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'No rewards on offer right now.')));
}

const titles = new Map(); // sku → title, of the rewards seen on offer

let redeemKey = null; // kept while the same request is retried, so it is charged once

$('redeem-form').addEventListener('input', () => { redeemKey = null; });

$('redeem-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const message = $('redeem-message');
  const body = {
    reward: $('redeem-reward').value,
    quantity: Number($('redeem-quantity').value),
    address: $('redeem-address').value.trim(),
  };
  redeemKey = redeemKey || newKey();
  const answer = await call('POST', '/api/user/redemptions', { body, headers: { 'Idempotency-Key': redeemKey } });
  if (signedOutBy(answer)) return;
  if (answer.status === 201) {
    redeemKey = null;
    say(message, `Redeemed: ${points(answer.data.points)} points. We will track the delivery below.`);
    await Promise.all([pointsChanged(), loadRewards(), loadRedemptions()]);
    return;
  }
  if (answer.status >= 400 && answer.status < 500) redeemKey = null;
  const reasons = {
    402: 'Not enough points for that.',
    404: 'That reward is no longer on offer.',
    409: 'Not enough in stock for that quantity.',
    400: 'Check the quantity (1 to 100) and the address',
    422: 'This request was already sent with other details; try again.',
    503: 'Rewards cannot be shipped right now.',
  };
  say(message, explain(answer, reasons), 'error');
});

async function loadRedemptions() {
  const answer = await call('GET', '/api/user/redemptions');
  if (signedOutBy(answer)) return;
  const redemptions = answer.status === 200 ? answer.data : [];
  fill($('redemptions'), redemptions.length
    ? redemptions.map((redemption) => el('tr', { 'data-redemption': redemption.id },
      el('td', {}, `${redemption.quantity} × ${titles.get(redemption.reward) || redemption.reward}`),
      el('td', {}, badge(redemption.status)),
      el('td', { class: 'mono hide-narrow' }, redemption.tracking || '—'),
      el('td', { class: 'num' }, points(redemption.points))))
    : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, 'Nothing redeemed yet.')));
  const cancelled = redemptions.some((r) => r.status === 'CANCELLED');
  if (cancelled) await loadBalance();
  if (redemptions.some((r) => !FINAL_REDEMPTION.has(r.status))) redemptionsPoller.kick();
}

// ---- coupons ----

function discount(offer) {
  return offer.kind === 'percent' ? `${points(offer.value)} %` : `${points(offer.value)} off`;
}

async function loadCoupons() {
  const [open, held] = await Promise.all([call('GET', '/api/campaigns'), call('GET', '/api/user/coupons')]);
  if (signedOutBy(open) || signedOutBy(held)) return;
  const campaigns = open.status === 200 ? open.data : [];
  fill($('campaigns'), campaigns.length
    ? campaigns.map((campaign) => el('tr', { 'data-campaign': campaign.id },
      el('td', {}, campaign.title),
      el('td', {}, discount(campaign)),
      el('td', { class: 'num' }, Number(campaign.price) > 0 ? points(campaign.price) : 'free'),
      el('td', { class: 'num hide-narrow' }, campaign.remaining),
      el('td', {}, el('button', {
        type: 'button',
        class: 'secondary',
        'aria-label': `Claim ${campaign.title}`,
        onclick: () => claim(campaign),
      }, 'Claim'))))
    : el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'No open offers right now.')));
  const coupons = held.status === 200 ? held.data : [];
  fill($('coupons'), coupons.length
    ? coupons.map((coupon) => el('tr', { 'data-code': coupon.code },
      el('td', { class: 'mono' }, coupon.code),
      el('td', {}, discount(coupon)),
      el('td', {}, badge(coupon.status)),
      el('td', { class: 'hide-narrow' }, coupon.ends_at ? when(coupon.ends_at) : 'no end')))
    : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, 'No coupons yet.')));
}

async function claim(campaign) {
  const message = $('coupon-message');
  const answer = await call('POST', '/api/user/coupons', {
    body: { campaign: campaign.id },
    headers: { 'Idempotency-Key': newKey() },
  });
  if (signedOutBy(answer)) return;
  if (answer.status === 201) {
    say(message, `Your coupon: ${answer.data.code}`);
    await Promise.all([loadCoupons(), pointsChanged()]);
    return;
  }
  const reasons = {
    402: 'Not enough points to buy this coupon.',
    404: 'This offer no longer exists.',
    409: 'You hold as many coupons of this offer as one shopper may.',
    410: 'This offer has ended or has no coupons left.',
  };
  say(message, explain(answer, reasons), 'error');
  await loadCoupons();
}

start();
