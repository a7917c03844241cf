// The operator's page. The ADMIN_TOKEN is kept in sessionStorage (this tab only) and sent
// as a bearer header; the page never writes it anywhere else.

import uPlot from './vendor/uplot/uPlot.esm.js';
import { call, el, explain, fill, points, say, when } from './common.js';

const $ = (id) => document.getElementById(id);
const TOKEN = 'gophermart-admin-token';
const TAIL_KEEP = 200;

let token = sessionStorage.getItem(TOKEN);
let chart = null;
const tail = { after: 0, seen: 0, timer: null, running: false };
const campaignIds = new Set();

/** A call to the operator's API with the bearer token. */
function admin(method, path, options = {}) {
  return call(method, path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
}

/** A `401` means the token is wrong (or was changed on the server): ask for it again. */
function refused(answer) {
  if (answer.status === 401 || answer.status === 403) {
    lock(answer.status === 401 ? 'The service did not accept this token.' : explain(answer));
    return true;
  }
  return false;
}

// ---- the token ----

function lock(message = '') {
  token = null;
  sessionStorage.removeItem(TOKEN);
  stopTail();
  $('unlocked').classList.add('hidden');
  $('locked').classList.remove('hidden');
  $('forget').classList.add('hidden');
  $('who').textContent = '';
  say($('token-message'), message, message ? 'error' : 'ok');
}

async function unlock() {
  const answer = await admin('GET', '/api/admin/stats/summary');
  if (refused(answer)) return;
  if (answer.status !== 200) {
    say($('token-message'), explain(answer), 'error');
    return;
  }
  sessionStorage.setItem(TOKEN, token);
  $('locked').classList.add('hidden');
  $('unlocked').classList.remove('hidden');
  $('forget').classList.remove('hidden');
  $('who').textContent = 'Operator';
  showSummary(answer.data);
  await Promise.all([showRange(), loadRewards(), runAudit()]);
  startTail();
}

$('token-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  await unlock();
});

$('forget').addEventListener('click', () => {
  lock();
  $('token').focus();
});

// ---- summary ----

const FIGURES = [
  ['users', 'Shoppers', (s) => s.users],
  ['outstanding', 'Points owed', (s) => points(s.points_outstanding)],
  ['accrued', 'Points accrued', (s) => points(s.points_accrued)],
  ['withdrawn', 'Points withdrawn', (s) => points(s.points_withdrawn)],
  ['redeemed', 'Points redeemed', (s) => points(s.points_redeemed)],
  ['refunded', 'Points refunded', (s) => points(s.points_refunded)],
  ['orders-processed', 'Orders processed', (s) => s.orders.PROCESSED ?? 0],
  ['orders-invalid', 'Orders invalid', (s) => s.orders.INVALID ?? 0],
  ['accrual-backlog', 'Orders in progress', (s) => s.accrual_backlog],
  ['redemptions', 'Redemptions', (s) => Object.values(s.redemptions || {}).reduce((a, b) => a + b, 0)],
  ['fulfilment-backlog', 'Awaiting the warehouse', (s) => s.fulfilment_backlog],
  ['coupons-issued', 'Coupons issued', (s) => s.coupons.issued],
  ['coupons-redeemed', 'Coupons used', (s) => s.coupons.redeemed],
  ['events-unpublished', 'Events not yet relayed', (s) => s.events_unpublished],
];

function showSummary(summary) {
  fill($('summary'), FIGURES.map(([key, label, value]) =>
    el('div', {}, el('dt', {}, label), el('dd', { 'data-figure': key }, String(value(summary))))));
}

async function loadSummary() {
  const answer = await admin('GET', '/api/admin/stats/summary');
  if (refused(answer)) return;
  if (answer.status === 200) showSummary(answer.data);
}

$('summary-refresh').addEventListener('click', loadSummary);

// ---- the daily chart and the top shoppers ----

function day(date) {
  return date.toISOString().slice(0, 10);
}

function defaultRange() {
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86400000);
  $('range-from').value = day(from);
  $('range-to').value = day(to);
}

async function showRange() {
  const from = $('range-from').value;
  const to = $('range-to').value;
  const message = $('range-message');
  const query = `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`;
  const [daily, top] = await Promise.all([
    admin('GET', `/api/admin/stats/daily?${query}`),
    admin('GET', `/api/admin/stats/top?${query}&limit=10`),
  ]);
  if (refused(daily) || refused(top)) return;
  if (daily.status !== 200) {
    say(message, explain(daily, { 400: 'Choose a range of at most 366 days, the first day not after the last' }), 'error');
    return;
  }
  say(message, '');
  drawChart(daily.data);
  const shoppers = top.status === 200 ? top.data : [];
  fill($('top'), shoppers.length
    ? shoppers.map((row) => el('tr', {}, el('td', {}, row.login), el('td', { class: 'num' }, row.user), el('td', { class: 'num' }, points(row.accrued))))
    : el('tr', {}, el('td', { colspan: 3, class: 'empty' }, 'No points accrued in this range.')));
}

function drawChart(rows) {
  const data = [
    rows.map((row) => Date.parse(`${row.day}T00:00:00Z`) / 1000),
    rows.map((row) => Number(row.accrued)),
    rows.map((row) => Number(row.withdrawn)),
    rows.map((row) => Number(row.redeemed)),
  ];
  const box = $('chart');
  const width = Math.max(280, box.clientWidth);
  if (chart) {
    chart.setData(data);
    return;
  }
  const opts = {
    width,
    height: 300,
    scales: { x: { time: true } },
    series: [
      { label: 'Day', value: (u, ts) => (ts == null ? '' : new Date(ts * 1000).toISOString().slice(0, 10)) },
      { label: 'Accrued', stroke: '#1a7f37', fill: 'rgba(26,127,55,0.12)', width: 2, points: { show: true } },
      { label: 'Withdrawn', stroke: '#1f6feb', width: 2, points: { show: true } },
      { label: 'Redeemed', stroke: '#bf3989', width: 2, points: { show: true } },
    ],
    axes: [{}, { size: 60 }],
  };
  chart = new uPlot(opts, data, box);
}

window.addEventListener('resize', () => {
  if (chart) chart.setSize({ width: Math.max(280, $('chart').clientWidth), height: 300 });
});

$('range-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  await showRange();
});

// ---- audit ----

async function runAudit() {
  const answer = await admin('GET', '/api/admin/audit');
  if (refused(answer)) return;
  const node = $('audit');
  if (answer.status !== 200) {
    say(node, explain(answer), 'error');
    return;
  }
  const { accounts, mismatched, negative } = answer.data;
  if (mismatched.length === 0 && negative.length === 0) {
    say(node, `All ${accounts} balances match the ledger; none is negative.`);
  } else {
    say(node, `${accounts} accounts: ${mismatched.length} do not match the ledger, ${negative.length} are negative.`, 'error');
  }
}

$('audit-run').addEventListener('click', runAudit);

// ---- rewards ----

async function loadRewards() {
  const answer = await admin('GET', '/api/admin/rewards');
  if (refused(answer)) return;
  const rewards = answer.status === 200 && Array.isArray(answer.data) ? answer.data : [];
  fill($('rewards'), rewards.length
    ? rewards.map(rewardRow)
    : el('tr', {}, el('td', { colspan: 7, class: 'empty' }, 'No rewards yet.')));
}

function rewardRow(reward) {
  const amount = el('input', { type: 'number', min: 1, step: 1, value: 10, 'aria-label': `Units to add to ${reward.sku}` });
  return el('tr', { 'data-sku': reward.sku },
    el('td', { class: 'mono' }, reward.sku),
    el('td', {}, reward.title),
    el('td', { class: 'num' }, points(reward.price)),
    el('td', { class: 'num' }, reward.stock),
    el('td', {}, reward.active ? 'yes' : 'no'),
    el('td', {}, el('form', {
      class: 'inline',
      onsubmit: (event) => {
        event.preventDefault();
        changeReward(reward.sku, { stock_delta: Number(amount.value) });
      },
    }, amount, el('button', { type: 'submit', class: 'secondary' }, 'Add'))),
    el('td', {}, el('button', {
      type: 'button',
      class: reward.active ? 'danger' : 'secondary',
      onclick: () => changeReward(reward.sku, { active: !reward.active }),
    }, reward.active ? 'Withdraw from offer' : 'Offer again')));
}

async function changeReward(sku, change) {
  const answer = await admin('PATCH', `/api/admin/rewards/${encodeURIComponent(sku)}`, { body: change });
  if (refused(answer)) return;
  const message = $('rewards-message');
  if (answer.status === 200) say(message, `Reward ${sku} changed.`);
  else say(message, explain(answer, { 404: 'No such reward', 409: 'Stock cannot go below zero' }), 'error');
  await loadRewards();
}

$('reward-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = {
    sku: $('reward-sku').value.trim(),
    title: $('reward-title').value.trim(),
    price: Number($('reward-price').value.replace(',', '.')),
    stock: Number($('reward-stock').value),
  };
  const answer = await admin('POST', '/api/admin/rewards', { body });
  if (refused(answer)) return;
  const message = $('rewards-message');
  if (answer.status === 201) {
    say(message, `Reward ${body.sku} created.`);
    event.target.reset();
  } else {
    say(message, explain(answer, { 409: 'A reward with this sku exists already' }), 'error');
  }
  await loadRewards();
});

// ---- campaigns ----

async function loadCampaigns() {
  const ids = [...campaignIds].sort();
  const answers = await Promise.all(ids.map((id) => admin('GET', `/api/admin/campaigns/${encodeURIComponent(id)}`)));
  const rows = answers.filter((answer) => answer.status === 200).map(({ data: c }) =>
    el('tr', { 'data-campaign': c.id },
      el('td', { class: 'mono' }, c.id),
      el('td', {}, c.title),
      el('td', {}, c.kind === 'percent' ? `${points(c.value)} %` : `${points(c.value)} off`),
      el('td', { class: 'num' }, c.quantity),
      el('td', { class: 'num', 'data-figure': 'issued' }, c.issued),
      el('td', { class: 'num' }, c.redeemed),
      el('td', { class: 'num' }, c.remaining),
      el('td', { class: 'hide-narrow' }, c.ends_at ? when(c.ends_at) : 'no end')));
  fill($('campaigns'), rows.length ? rows : el('tr', {}, el('td', { colspan: 8, class: 'empty' }, 'No campaigns yet.')));
}

function isoOrNothing(value) {
  return value ? new Date(value).toISOString() : undefined;
}

$('campaign-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const decimal = (id) => Number($(id).value.replace(',', '.') || '0');
  const body = {
    id: $('campaign-id').value.trim(),
    title: $('campaign-title').value.trim(),
    kind: $('campaign-kind').value,
    value: decimal('campaign-value'),
    quantity: Number($('campaign-quantity').value),
    per_user: Number($('campaign-per-user').value),
    price: decimal('campaign-price'),
    min_order: decimal('campaign-min-order'),
    prefix: $('campaign-prefix').value.trim().toUpperCase(),
    starts_at: isoOrNothing($('campaign-starts').value),
    ends_at: isoOrNothing($('campaign-ends').value),
  };
  const message = $('campaigns-message');
  say(message, 'Generating the codes…');
  const answer = await admin('POST', '/api/admin/campaigns', { body });
  if (refused(answer)) return;
  if (answer.status === 201) {
    say(message, `Campaign ${body.id} created with ${body.quantity} codes.`);
    campaignIds.add(body.id);
    event.target.reset();
    await loadCampaigns();
  } else {
    say(message, explain(answer, { 409: 'A campaign with this id exists already' }), 'error');
  }
});

// ---- the event tail ----

function eventLine(event) {
  const data = JSON.stringify(event.data);
  return el('li', { 'data-seq': event.seq, title: `${event.at} ${data}` },
    el('span', { class: 'seq' }, `#${event.seq}`),
    el('span', { class: 'type' }, event.type),
    el('span', { class: 'user' }, event.user != null ? `user ${event.user}` : ''),
    data);
}

let refreshTimer = null;

/** After events arrive, refreshes what they touch, at most once a second. */
function refreshSoon(types) {
  if (types.has('campaign.created') || types.has('coupon.issued') || types.has('coupon.redeemed')) refreshSoon.campaigns = true;
  if (types.has('reward.changed') || types.has('redemption.requested')) refreshSoon.rewards = true;
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    const work = [loadSummary()];
    if (refreshSoon.campaigns) work.push(loadCampaigns());
    if (refreshSoon.rewards) work.push(loadRewards());
    refreshSoon.campaigns = false;
    refreshSoon.rewards = false;
    await Promise.all(work);
  }, 1000);
}

async function pollTail() {
  tail.timer = null;
  if (!tail.running) return;
  let more = true;
  const types = new Set();
  while (more && tail.running) {
    const answer = await admin('GET', `/api/admin/events?after=${tail.after}&limit=1000`);
    if (refused(answer)) return;
    if (answer.status !== 200 || !Array.isArray(answer.data)) break;
    const events = answer.data;
    for (const event of events) {
      types.add(event.type);
      if (event.type === 'campaign.created' && event.data && event.data.id) campaignIds.add(event.data.id);
    }
    tail.after = events[events.length - 1].seq;
    tail.seen += events.length;
    const list = $('events');
    list.prepend(...events.slice(-TAIL_KEEP).reverse().map(eventLine));
    while (list.children.length > TAIL_KEEP) list.lastElementChild.remove();
    $('tail-count').textContent = String(tail.seen);
    more = events.length === 1000;
  }
  if (types.size) refreshSoon(types);
  if (tail.running) tail.timer = setTimeout(pollTail, 1000);
}

function startTail() {
  if (tail.running) return;
  tail.running = true;
  tail.after = 0;
  tail.seen = 0;
  fill($('events'));
  campaignIds.clear();
  pollTail().then(loadCampaigns);
}

function stopTail() {
  tail.running = false;
  if (tail.timer !== null) clearTimeout(tail.timer);
  tail.timer = null;
}

defaultRange();
if (token) unlock();
