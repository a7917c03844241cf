// Helpers shared by the shopper's and the operator's page: calling the API of this
// origin, building elements without innerHTML, and formatting.

/** An answer of the API: status, and the body as JSON (when it is JSON) or text. */
export async function call(method, path, { body, headers = {}, json = true } = {}) {
  const init = { method, headers: { ...headers }, credentials: 'same-origin' };
  if (body !== undefined) {
    if (json) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    } else {
      init.headers['Content-Type'] = 'text/plain';
      init.body = body;
    }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    return { status: 0, data: null, text: 'the service cannot be reached' };
  }
  const text = await response.text();
  let data = null;
  if (text && (response.headers.get('Content-Type') || '').includes('application/json')) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  return { status: response.status, data, text: text.trim() };
}

/** An element with attributes and children (strings become text nodes). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the children of `node`. */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined));
}

/** A status badge of fixed width. */
export function badge(status) {
  return el('span', { class: `badge s-${status}`, 'data-status': status }, status);
}

const numbers = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

/** Points as people read them: 1 234.5 */
export function points(value) {
  return numbers.format(Number(value));
}

/** A time as people read it, in their own zone. */
export function when(text) {
  if (!text) return '';
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? text : time.toLocaleString();
}

/** Shows `text` in a message line, as an error or as a confirmation. */
export function say(node, text, kind = 'ok') {
  node.textContent = text;
  node.classList.toggle('error', kind === 'error');
  node.classList.toggle('ok', kind === 'ok');
}

/** What an answer means, in words: `reasons` by status, else the service's own reason. */
export function explain(answer, reasons = {}) {
  const reason = answer.text ? ` (${answer.text})` : '';
  if (reasons[answer.status]) return `${reasons[answer.status].replace(/\.$/, '')}${reason}.`;
  switch (answer.status) {
    case 0: return 'The service cannot be reached. Try again in a moment.';
    case 400: return `The request was not accepted${reason}.`;
    case 401: return 'You are not signed in.';
    case 403: return `Refused${reason}.`;
    case 408: return 'The request took too long. Try again.';
    case 413: return 'The request is too large.';
    case 429: return 'Too many requests just now. Wait a little and try again.';
    case 503: return 'The service is busy. Try again in a moment.';
    default: return `Something went wrong (${answer.status})${reason}.`;
  }
}

/** A fresh idempotency key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Runs `work` every `ms` while `wanted()` holds; one timer at a time per poller. */
export class Poller {
  constructor(work, ms) {
    this.work = work;
    this.ms = ms;
    this.timer = null;
  }

  /** Schedules the next run unless one is scheduled. */
  kick() {
    if (this.timer !== null) return;
    this.timer = setTimeout(async () => {
      this.timer = null;
      await this.work();
    }, this.ms);
  }

  stop() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
