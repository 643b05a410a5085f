// The status page's script: every 2 s it reads this worker's REST API and draws each connector,
// its tasks (state, trace, records in/out per second, consumer lag per partition, breaker and
// rate-limiter queue of inference tasks, dead letters), with buttons that call the same API.
//
// Contracts it relies on: Kafka Connect's `GET /connectors?expand=status&expand=info` shape, the
// task `details` infer-connect adds to it (`breaker`, `rate_limiter`, `paused_partitions`,
// `dead_letters.recent`), and the metric names of docs/metrics.md. Anything missing is shown as
// "—", never guessed. All text goes in through textContent, never as HTML.
/* global document, window, fetch, setTimeout, clearTimeout */
import { byTask, parseMetricsText } from './metrics-text.js';

const REFRESH_MS = 2000;

const METRIC = {
  sinkRead: 'kafka_connect_sink_task_sink_record_read_total',
  sinkSend: 'kafka_connect_sink_task_sink_record_send_total',
  sourcePoll: 'kafka_connect_source_task_source_record_poll_total',
  sourceWrite: 'kafka_connect_source_task_source_record_write_total',
  dlqRequests: 'kafka_connect_task_error_deadletterqueue_produce_requests',
  dlqFailures: 'kafka_connect_task_error_deadletterqueue_produce_failures',
  skipped: 'kafka_connect_task_error_total_records_skipped',
  lag: 'infer_connect_consumer_lag',
  breaker: 'infer_connect_breaker_state',
  queue: 'infer_connect_rate_limiter_queue_depth',
  inFlight: 'infer_connect_inference_in_flight_requests',
};
const BREAKER_NAMES = ['closed', 'half-open', 'open'];

/** What each button asks of the REST API (Kafka Connect's paths). */
const ACTIONS = [
  { action: 'pause', label: 'Pause', method: 'PUT', path: 'pause', done: 'pause requested' },
  { action: 'resume', label: 'Resume', method: 'PUT', path: 'resume', done: 'resume requested' },
  {
    action: 'restart',
    label: 'Restart',
    method: 'POST',
    path: 'restart?includeTasks=true&onlyFailed=false',
    done: 'restart with all tasks requested',
  },
  { action: 'stop', label: 'Stop', method: 'PUT', path: 'stop', done: 'stop requested' },
];

const numbers = new Intl.NumberFormat('en');
const api = (path) => new URL(`../${path}`, document.baseURI);
const $ = (id) => document.getElementById(id);

/** Builds an element: `h('p', { class: 'x' }, 'text', child)`. Strings become text nodes. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.filter((child) => child !== undefined && child !== null));
  return element;
}

/**
 * Puts `element` right after `previous` (first in `parent` when undefined) unless it is already
 * there: moving a node would take the keyboard focus away from a button inside it.
 */
function place(parent, previous, element) {
  const there = previous ? previous.nextElementSibling : parent.firstElementChild;
  if (there !== element) {
    if (previous) previous.after(element);
    else parent.prepend(element);
  }
  return element;
}

/** A state as text in a badge; the colour comes from `data-state` and only repeats the text. */
const stateBadge = (state) => h('span', { class: 'state', 'data-state': state }, state);

const formatCount = (value) => (value === undefined ? '—' : numbers.format(value));

function formatRate(value) {
  if (value === undefined) return '—';
  return `${value < 10 ? value.toFixed(1) : numbers.format(Math.round(value))}/s`;
}

// ------------------------------------------------------------------------------- fetching

async function getJson(path) {
  const response = await fetch(api(path), { headers: { accept: 'application/json' } });
  const body = await response.json().catch(() => undefined);
  if (!response.ok && path !== 'health') throw new Error(errorText(path, response, body));
  return body;
}

async function getText(path) {
  const response = await fetch(api(path));
  if (!response.ok) throw new Error(errorText(path, response, undefined));
  return response.text();
}

function errorText(path, response, body) {
  const message = body && typeof body.message === 'string' ? `: ${body.message}` : '';
  return `GET /${path.split('?')[0]} answered ${response.status}${message}`;
}

// ------------------------------------------------------------------------------- rendering

/** Totals of the previous refresh, for rates: `{ at, totals: Map<'name/task', {in, out}> }`. */
let previous;
/** One persistent view per connector (keeps buttons, focus and open traces across refreshes). */
const views = new Map();

function counter(index, name, key) {
  const samples = index.get(name)?.get(key);
  if (!samples || samples.length === 0) return undefined;
  return samples.reduce((sum, sample) => sum + sample.value, 0);
}

function render(connectors, metricsText, health) {
  const index = byTask(parseMetricsText(metricsText));
  const now = Date.now();
  const totals = new Map();
  const seconds = previous ? (now - previous.at) / 1000 : 0;

  const main = $('connectors');
  const names = Object.keys(connectors).sort();
  for (const [name, view] of views) {
    if (!names.includes(name)) {
      view.section.remove();
      views.delete(name);
    }
  }
  let workerId;
  let previousSection = $('no-connectors');
  for (const name of names) {
    const { status, info } = connectors[name];
    let view = views.get(name);
    if (!view) {
      view = createConnectorView(name);
      views.set(name, view);
    }
    previousSection = place(main, previousSection, view.section);
    const kind = status?.type ?? info?.type ?? 'unknown';
    const connectorClass = info?.config?.['connector.class'] ?? '';
    view.meta.textContent = connectorClass ? `${kind} · ${connectorClass}` : kind;
    view.state.replaceChildren(stateBadge(status?.connector?.state ?? 'UNKNOWN'));
    setTrace(view.section, view.connectorTrace, 'connector', status?.connector?.trace);
    workerId ??= status?.connector?.worker_id;

    const tasks = status?.tasks ?? [];
    view.noTasks.hidden = tasks.length > 0;
    const seen = new Set();
    let previousTask;
    for (const task of tasks) {
      const key = `${name}/${task.id}`;
      seen.add(String(task.id));
      let taskView = view.tasks.get(String(task.id));
      if (!taskView) {
        taskView = createTaskView(name, task.id);
        view.tasks.set(String(task.id), taskView);
      }
      previousTask = place(view.taskList, previousTask, taskView.article);
      const source = kind === 'source';
      const total = {
        in: counter(index, source ? METRIC.sourcePoll : METRIC.sinkRead, key),
        out: counter(index, source ? METRIC.sourceWrite : METRIC.sinkSend, key),
      };
      totals.set(key, total);
      const before = previous?.totals.get(key);
      const rate = (field) => {
        const delta = total[field] - before?.[field];
        return before && seconds > 0 && delta >= 0 ? delta / seconds : undefined;
      };
      renderTask(taskView, task, {
        kind,
        dlqTopic: info?.config?.['errors.deadletterqueue.topic.name'],
        total,
        rates: { in: rate('in'), out: rate('out') },
        index,
        key,
      });
    }
    for (const [id, taskView] of view.tasks) {
      if (!seen.has(id)) {
        taskView.article.remove();
        view.tasks.delete(id);
      }
    }
  }
  previous = { at: now, totals };

  $('no-connectors').hidden = names.length > 0;
  main.setAttribute('aria-busy', 'false');
  $('worker-id').textContent = workerId ?? '—';
  $('worker-health').replaceChildren(
    health ? h('span', { class: 'state', 'data-state': health.status }, health.status) : '—',
    health?.message ? ` ${health.message}` : '',
  );
  $('updated').textContent = new Date(now).toLocaleTimeString();
}

function createConnectorView(name) {
  const headingId = `connector-${Math.random().toString(36).slice(2)}`;
  const meta = h('p', { class: 'meta' });
  const state = h('span');
  const buttons = ACTIONS.map((spec) => {
    const button = h(
      'button',
      { type: 'button', 'data-action': spec.action, 'aria-label': `${spec.label} connector ${name}` },
      spec.label,
    );
    button.addEventListener('click', () => void runAction(button, name, spec));
    return button;
  });
  const connectorTrace = { element: undefined };
  const taskList = h('div', { class: 'tasks' });
  const noTasks = h('p', { class: 'muted' }, 'No tasks (a stopped connector has none).');
  const section = h(
    'section',
    { class: 'connector', 'aria-labelledby': headingId, 'data-connector': name },
    h(
      'div',
      { class: 'connector-head' },
      h('div', {}, h('h2', { id: headingId }, name), meta),
      h('p', { class: 'connector-state' }, 'Connector: ', state),
      h(
        'div',
        { class: 'actions', role: 'group', 'aria-label': `Actions for connector ${name}` },
        ...buttons,
      ),
    ),
    taskList,
    noTasks,
  );
  return { section, meta, state, connectorTrace, taskList, noTasks, tasks: new Map() };
}

function createTaskView(connector, id) {
  const headingId = `task-${Math.random().toString(36).slice(2)}`;
  const body = h('div', { class: 'task-body' });
  const heading = h('h3', { id: headingId });
  const article = h(
    'article',
    { class: 'task', 'aria-labelledby': headingId, 'data-task': `${connector}/${id}` },
    heading,
    body,
  );
  return { article, heading, body, trace: { element: undefined } };
}

/** A labelled value; `field` names it for scripts and tests (`data-field`). */
function item(label, field, ...value) {
  return h('div', {}, h('dt', {}, label), h('dd', { 'data-field': field }, ...value));
}

function renderTask(view, task, { kind, dlqTopic, total, rates, index, key }) {
  view.heading.replaceChildren(`Task ${task.id} `, stateBadge(task.state));
  const details = task.details ?? {};
  const list = h('dl', { class: 'figures' });
  list.append(
    item('Records in', 'records-in-rate', formatRate(rates.in)),
    item('Records out', 'records-out-rate', formatRate(rates.out)),
    item('Total in', 'records-in-total', formatCount(total.in)),
    item('Total out', 'records-out-total', formatCount(total.out)),
  );

  const lags = (index.get(METRIC.lag)?.get(key) ?? [])
    .slice()
    .sort((a, b) =>
      a.labels.topic === b.labels.topic
        ? Number(a.labels.partition) - Number(b.labels.partition)
        : a.labels.topic.localeCompare(b.labels.topic),
    );
  if (kind !== 'source') {
    const lagTotal = lags.length > 0 ? lags.reduce((sum, s) => sum + s.value, 0) : undefined;
    list.append(item('Consumer lag', 'lag-total', formatCount(lagTotal)));
    const paused = details.paused_partitions;
    if (Array.isArray(paused) && paused.length > 0)
      list.append(item('Paused partitions', 'paused-partitions', formatCount(paused.length)));
  }

  const breaker = breakerText(details.breaker, counter(index, METRIC.breaker, key));
  if (breaker) list.append(item('Breaker', 'breaker', breaker));
  const limiter = limiterText(
    details.rate_limiter,
    counter(index, METRIC.queue, key),
    counter(index, METRIC.inFlight, key),
  );
  if (limiter) list.append(item('Rate limiter queue', 'rate-limiter', limiter));

  const sent = counter(index, METRIC.dlqRequests, key);
  const failed = counter(index, METRIC.dlqFailures, key);
  if (dlqTopic) {
    const failures = failed ? ` (${formatCount(failed)} failed writes)` : '';
    list.append(item('Dead letters', 'dead-letters', `${formatCount(sent)}${failures} to ${dlqTopic}`));
  } else {
    const skipped = counter(index, METRIC.skipped, key);
    list.append(item('Dead letters', 'dead-letters', skipped ? `none (${skipped} skipped)` : 'no topic'));
  }

  const parts = [list];
  if (lags.length > 0) parts.push(lagTable(task.id, lags));
  if (dlqTopic) parts.push(deadLetterReasons(details.dead_letters, dlqTopic, sent));
  view.body.replaceChildren(...parts.filter(Boolean));
  setTrace(view.article, view.trace, `task ${task.id}`, task.trace);
}

function breakerText(breaker, gauge) {
  if (breaker && typeof breaker.state === 'string') {
    const parts = [breaker.state];
    if (breaker.state !== 'closed' && breaker.retry_after_ms > 0)
      parts.push(`retry in ${Math.ceil(breaker.retry_after_ms / 1000)} s`);
    if (breaker.short_circuited > 0) parts.push(`${formatCount(breaker.short_circuited)} refused`);
    return parts.join(', ');
  }
  return gauge === undefined ? undefined : (BREAKER_NAMES[gauge] ?? String(gauge));
}

function limiterText(limiter, queued, inFlight) {
  if (limiter && typeof limiter.queued === 'number') {
    const rate = limiter.requests_per_second > 0 ? `${limiter.requests_per_second} req/s` : 'no rate limit';
    return `${limiter.queued} of ${limiter.queue_max} queued, ${limiter.in_flight} in flight, ${rate}`;
  }
  if (queued === undefined) return undefined;
  return `${queued} queued${inFlight === undefined ? '' : `, ${inFlight} in flight`}`;
}

function lagTable(taskId, lags) {
  return h(
    'table',
    { class: 'lag' },
    h('caption', {}, `Consumer lag per partition, task ${taskId}`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Topic'),
        h('th', { scope: 'col' }, 'Partition'),
        h('th', { scope: 'col' }, 'Lag'),
      ),
    ),
    h(
      'tbody',
      {},
      ...lags.map((sample) =>
        h(
          'tr',
          {},
          h('td', {}, sample.labels.topic),
          h('td', {}, sample.labels.partition),
          h('td', { 'data-field': 'lag' }, formatCount(sample.value)),
        ),
      ),
    ),
  );
}

/**
 * The last dead-letter reasons, from the task details' `dead_letters.recent` (newest last:
 * `{at, origin?: {topic, partition, offset}, stage, code?, message}`); when the worker does not
 * report them, says where they are instead.
 */
function deadLetterReasons(deadLetters, dlqTopic, sent) {
  const recent = Array.isArray(deadLetters?.recent) ? deadLetters.recent : undefined;
  if (!recent) {
    if (!sent) return undefined;
    return h(
      'p',
      { class: 'muted', 'data-field': 'dead-letter-reasons' },
      `This worker does not report dead-letter reasons; read the __connect.errors.* headers on ${dlqTopic}.`,
    );
  }
  if (recent.length === 0)
    return h('p', { class: 'muted', 'data-field': 'dead-letter-reasons' }, 'No dead letters.');
  return h(
    'div',
    { class: 'reasons' },
    h('h4', {}, 'Last dead-letter reasons'),
    h(
      'ol',
      { 'data-field': 'dead-letter-reasons', reversed: true },
      ...recent
        .slice()
        .reverse()
        .map((letter) => {
          const origin = letter.origin
            ? `${letter.origin.topic}[${letter.origin.partition}]@${letter.origin.offset}`
            : undefined;
          const when = typeof letter.at === 'number' ? new Date(letter.at).toLocaleTimeString() : undefined;
          const where = [when, origin, letter.stage].filter(Boolean).join(' · ');
          return h(
            'li',
            {},
            where ? h('span', { class: 'muted' }, `${where} · `) : undefined,
            letter.code ? h('code', {}, letter.code) : undefined,
            letter.code ? ' ' : undefined,
            String(letter.message ?? ''),
          );
        }),
    ),
  );
}

/**
 * Shows `trace` in a <details> of `container`, open when it first appears (a failure is news);
 * later refreshes only update its text, so a reader's open/closed choice stays.
 */
function setTrace(container, holder, what, trace) {
  if (!trace) {
    holder.element?.remove();
    holder.element = undefined;
    return;
  }
  if (!holder.element) {
    holder.pre = h('pre', { 'data-field': 'trace' });
    holder.element = h(
      'details',
      { class: 'trace', open: true },
      h('summary', {}, `Trace of ${what}`),
      holder.pre,
    );
  }
  if (container.lastElementChild !== holder.element) container.append(holder.element); // stays last
  if (holder.pre.textContent !== trace) holder.pre.textContent = trace;
}

// ------------------------------------------------------------------------------- actions

async function runAction(button, name, spec) {
  const result = $('action-result');
  button.disabled = true;
  try {
    const response = await fetch(api(`connectors/${encodeURIComponent(name)}/${spec.path}`), {
      method: spec.method,
    });
    if (response.ok) {
      result.textContent = `${name}: ${spec.done}.`;
    } else {
      const body = await response.json().catch(() => undefined);
      result.textContent = `${name}: ${spec.label.toLowerCase()} failed (${response.status})${
        body && typeof body.message === 'string' ? `: ${body.message}` : ''
      }`;
    }
  } catch (error) {
    result.textContent = `${name}: ${spec.label.toLowerCase()} failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
  refreshNow();
}

// ------------------------------------------------------------------------------- refresh loop

let timer;
let refreshing;

async function refresh() {
  const problem = $('refresh-error');
  try {
    const [connectors, metricsText, health] = await Promise.all([
      getJson('connectors?expand=status&expand=info'),
      getText('metrics'),
      getJson('health').catch(() => undefined),
    ]);
    render(connectors, metricsText, health);
    problem.hidden = true;
    problem.textContent = '';
  } catch (error) {
    problem.textContent = `Refresh failed: ${error.message}. Showing the last known state; retrying.`;
    problem.hidden = false;
  }
}

/** Refreshes now (once the one running, if any, ends), then every REFRESH_MS. */
function refreshNow() {
  clearTimeout(timer);
  refreshing = (refreshing ?? Promise.resolve()).then(refresh).finally(() => {
    clearTimeout(timer);
    timer = setTimeout(refreshNow, REFRESH_MS);
  });
}

async function showVersion() {
  const info = await getJson('').catch(() => undefined);
  const commit = info?.commit && info.commit !== 'unknown' ? ` (${info.commit})` : '';
  $('worker-version').textContent = info?.version ? `${info.version}${commit}` : '—';
}

window.addEventListener('DOMContentLoaded', () => {
  void showVersion();
  refreshNow();
});
