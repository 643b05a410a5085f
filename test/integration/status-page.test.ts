// The status page at /ui in a real browser: Debian's Chromium driven by playwright-core, against a
// real worker (basic auth on) running the census pipeline on the local stack: FileSource streams
// the census test split into a topic that TFServingInference scores (rate-limited, so the
// counters rise for a while), plus a second inference connector whose model does not exist.
// Screenshots go to test-results/status-page/.
//
// Chromium: /usr/bin/chromium from Debian's package; when it is missing, `before` installs it
// with apt-get (as root, as CI runs). Playwright's own browser download cannot work here.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { builtinPlugins } from '../../connectors/index.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import type { ConnectorStateInfo } from '../../runtime/herder.js';
import { modelServerTarget, registryUrl, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const repo = resolve(import.meta.dirname, '../..');
const artifacts = join(repo, 'test-results', 'status-page');
const CHROMIUM = '/usr/bin/chromium';
// The flags the machine notes give for a headless Chromium on a closed network, as root.
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];
const readJson = (path: string) =>
  (JSON.parse(readFileSync(join(repo, path), 'utf8')) as { config: Record<string, string> }).config;

/** Debian's Chromium, installed on demand (CI runs as root; elsewhere say how to get it). */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  const apt = (...args: string[]) =>
    execFileSync('apt-get', args, {
      stdio: 'inherit',
      timeout: 600_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  try {
    apt('update', '-qq');
    apt('install', '-y', '-qq', 'chromium');
  } catch (error) {
    throw new Error(
      `${CHROMIUM} is missing and installing it failed (${(error as Error).message}); ` +
        "install Debian's Chromium as root: apt-get update && apt-get install -y chromium",
    );
  }
  if (!existsSync(CHROMIUM)) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`);
}

/** Two census rows whose `age` is null, under a looser schema: the model refuses them (DLQ). */
async function producePoisonRecords(topic: string): Promise<void> {
  const census = JSON.parse(readFileSync(join(repo, 'schemas/census.avsc'), 'utf8')) as {
    fields: Array<{ name: string; type: unknown }>;
  };
  const nullableAge = {
    ...census,
    fields: census.fields.map((f) => (f.name === 'age' ? { name: 'age', type: ['null', 'long'] } : f)),
  };
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(nullableAge) },
    { subject: `${topic}-nullable-value` },
  );
  const type = avro.Type.forSchema(nullableAge as avro.Schema);
  const row = {
    age: null,
    workclass: 'Private',
    fnlwgt: 226802,
    education: '11th',
    education_num: 7,
    marital_status: 'Never-married',
    occupation: 'Machine-op-inspct',
    relationship: 'Own-child',
    race: 'Black',
    sex: 'Male',
    capital_gain: 0,
    capital_loss: 0,
    hours_per_week: 40,
    native_country: 'United-States',
    income: '<=50K',
  };
  // Confluent framing: magic byte 0, the schema id, then the Avro body.
  const framed = () => {
    const header = Buffer.alloc(5);
    header.writeInt32BE(id, 1);
    return Buffer.concat([header, type.toBuffer(row)]);
  };
  const producer = testKafka().producer();
  await producer.connect();
  try {
    await producer.send({
      topic,
      messages: [
        { key: 'poison-1', value: framed(), partition: 0 },
        { key: 'poison-2', value: framed(), partition: 0 },
      ],
    });
  } finally {
    await producer.disconnect();
  }
}

async function createTopic(topic: string, numPartitions: number): Promise<void> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
}

/** The `__connect.errors.*` headers of the first `count` records of a dead-letter topic. */
async function readDeadLetters(topic: string, count: number): Promise<Array<Record<string, string>>> {
  const consumer = testKafka().consumer({ groupId: uniqueName('ui-dlq-reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  const out: Array<Record<string, string>> = [];
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {}))
          if (name.startsWith('__connect.errors.'))
            headers[name.slice('__connect.errors.'.length)] = String(value);
        out.push(headers);
      },
    });
    await waitFor(() => out.length >= count, 30_000, `${count} dead letters on ${topic}`);
    return out.slice(0, count);
  } finally {
    await consumer.disconnect();
  }
}

/** The number in a page field such as "12,345" or "201/s" (NaN when it shows "—"). */
const numberIn = (text: string | null) => parseFloat((text ?? '').replace(/,/g, ''));

describe('the status page at /ui, in Chromium, on a worker running the census pipeline', function () {
  this.timeout(180_000);
  const user = 'operator';
  const password = randomBytes(12).toString('hex');
  const input = uniqueName('ui-census');
  // Connector names set consumer group ids (connect-<name>): unique, so no other run shares them.
  const run = randomBytes(2).toString('hex');
  const inference = `census-inference-${run}`;
  const missingModel = `census-missing-model-${run}`;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  let context: BrowserContext | undefined;
  let page: Page;
  let profile: string | undefined;
  const pageProblems: string[] = [];

  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const rest = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${worker!.url}${path}`, { headers: { authorization } });
    expect(response.status, `GET ${path}`).to.equal(200);
    return (await response.json()) as T;
  };
  const field = (task: string, name: string) => page.locator(`[data-task="${task}"] [data-field="${name}"]`);
  const screenshot = (name: string) =>
    page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });

  before(async function () {
    this.timeout(900_000); // a first apt-get install of Chromium takes minutes
    ensureChromium();
    mkdirSync(artifacts, { recursive: true });
    const secrets = mkdtempSync(join(tmpdir(), 'infer-connect-ui-users-'));
    const usersFile = join(secrets, 'users.properties');
    writeFileSync(usersFile, `${user}: ${password}\n`, { mode: 0o600 });

    await createTopic(input, 3);
    await producePoisonRecords(input);
    worker = await startTestWorker({ 'rest.basic.auth.users.file': usersFile }, plugins);
    const inferenceConfig = {
      ...readJson('config/census-inference.json'),
      topics: input,
      'output.topic': `${input}-scored`,
      'errors.deadletterqueue.topic.name': `${input}-dlq`,
      'tfserving.target': modelServerTarget,
      // About 200 records/s, so the 16,281 rows take over a minute and the counters visibly rise.
      'rate.limit.requests.per.second': '5',
      'batch.max.records': '40',
    };
    await worker.worker.putConnectorConfig(inference, inferenceConfig, false);
    await worker.worker.putConnectorConfig(
      missingModel,
      {
        ...inferenceConfig,
        'output.topic': `${input}-unscored`,
        'errors.deadletterqueue.topic.name': `${input}-unscored-dlq`,
        'tfserving.model.name': 'no-such-model',
      },
      false,
    );
    await worker.worker.putConnectorConfig(
      'census-file-source',
      {
        ...readJson('config/census-file-source.json'),
        file: join(repo, 'data/census/adult.test.csv'),
        'value.schema.file': join(repo, 'schemas/census.avsc'),
        topic: input,
        'errors.deadletterqueue.topic.name': `${input}-source-dlq`,
      },
      false,
    );

    profile = mkdtempSync(join(tmpdir(), 'infer-connect-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      httpCredentials: { username: user, password },
      viewport: { width: 1280, height: 1000 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(60_000);
    page.on('pageerror', (error) => pageProblems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error')
        pageProblems.push(`console error: ${message.text()} (${message.location().url})`);
    });
    await page.goto(`${worker.url}/ui`);
  });

  after(async function () {
    this.timeout(60_000);
    await context?.close().catch(() => undefined);
    if (profile) rmSync(profile, { recursive: true, force: true });
    await worker?.stop();
  });

  it('is served behind the REST API basic auth, at /ui/ with its own files only', async () => {
    const bare = await fetch(`${worker!.url}/ui/`);
    expect(bare.status).to.equal(401);
    expect(bare.headers.get('www-authenticate')).to.match(/^Basic realm=/);
    expect((await fetch(`${worker!.url}/ui/status-page.js`)).status).to.equal(401);

    const redirect = await fetch(`${worker!.url}/ui`, { headers: { authorization }, redirect: 'manual' });
    expect(redirect.status).to.equal(302);
    expect(redirect.headers.get('location')).to.equal('ui/');
    const html = await fetch(`${worker!.url}/ui/`, { headers: { authorization } });
    expect(html.status).to.equal(200);
    expect(html.headers.get('content-type')).to.equal('text/html; charset=utf-8');
    expect(html.headers.get('content-security-policy')).to.contain("frame-ancestors 'none'");
    expect(await html.text()).to.contain('<script type="module" src="status-page.js"></script>');
    expect(page.url()).to.equal(`${worker!.url}/ui/`);
  });

  it('shows the inference connector RUNNING, its records counters rising, lag per partition, breaker, rate limiter and dead letters', async () => {
    const task = `${inference}/0`;
    const section = page.locator(`[data-connector="${inference}"]`);
    await section.locator('.connector-state .state', { hasText: 'RUNNING' }).waitFor();
    await page.locator(`[data-task="${task}"] h3 .state`, { hasText: 'RUNNING' }).waitFor();

    const outTotal = async () => numberIn(await field(task, 'records-out-total').textContent());
    const first = await waitFor(
      async () => ((await outTotal()) > 0 ? outTotal() : undefined),
      60_000,
      'records out',
    );
    const second = await waitFor(
      async () => ((await outTotal()) > first ? outTotal() : undefined),
      60_000,
      `records out to rise above ${first}`,
    );
    expect(second).to.be.greaterThan(first);
    // A rate needs two refreshes; while the limiter lets ~200 records/s through it is above zero.
    await waitFor(
      async () => numberIn(await field(task, 'records-out-rate').textContent()) > 0,
      30_000,
      'a records-out rate above zero',
    );
    expect(await field(task, 'records-in-rate').textContent()).to.match(/^[\d.,]+\/s$/);

    // Lag per partition of the input topic: the metric's rows, one per partition.
    const lagRows = page.locator(`[data-task="${task}"] table.lag tbody tr`);
    await waitFor(async () => (await lagRows.count()) === 3, 30_000, 'three lag rows');
    expect(await lagRows.locator('td').first().textContent()).to.equal(input);
    expect(numberIn(await field(task, 'lag-total').textContent())).to.be.at.least(0);

    expect(await field(task, 'breaker').textContent()).to.equal('closed');
    expect(await field(task, 'rate-limiter').textContent()).to.match(
      /^\d+ of 16 queued, \d+ in flight, 5 req\/s$/,
    );

    // The two rows without an age went to the DLQ.
    await waitFor(
      async () => (await field(task, 'dead-letters').textContent())?.startsWith('2 to '),
      60_000,
      'two dead letters',
    );
    expect(await field(task, 'dead-letters').textContent()).to.equal(`2 to ${input}-dlq`);
    // Reasons: what the worker's task details report, or where to read them.
    const status = await rest<ConnectorStateInfo>(`/connectors/${inference}/status`);
    const reasons = field(task, 'dead-letter-reasons');
    if (status.tasks[0]?.details?.['dead_letters'] !== undefined)
      expect(await reasons.textContent()).to.contain('MODEL_INPUT_MISSING');
    else
      expect(await reasons.textContent()).to.equal(
        `This worker does not report dead-letter reasons; read the __connect.errors.* headers on ${input}-dlq.`,
      );

    // The source connector's counters are its poll/write totals.
    expect(
      numberIn(await field('census-file-source/0', 'records-out-total').textContent()),
    ).to.be.greaterThan(0);
    await screenshot('running');
  });

  it("shows a failed task's state and trace, and restarts it from its Restart button", async () => {
    const task = `${missingModel}/0`;
    await page.locator(`[data-task="${task}"] h3 .state`, { hasText: 'FAILED' }).waitFor();
    const trace = field(task, 'trace');
    await trace.waitFor();
    expect(await trace.isVisible()).to.equal(true);
    expect(await trace.textContent()).to.contain('MODEL_NOT_FOUND');
    expect(await trace.textContent()).to.contain('"no-such-model"');
    const rendered = await trace.textContent();
    const reported = (await rest<ConnectorStateInfo>(`/connectors/${missingModel}/status`)).tasks[0]?.trace;
    expect(rendered).to.equal(reported);
    await page.locator(`[data-task="${task}"]`).screenshot({ path: join(artifacts, 'failed-trace.png') });

    await page.getByRole('button', { name: `Restart connector ${missingModel}` }).click();
    await page
      .locator('#action-result', { hasText: `${missingModel}: restart with all tasks requested.` })
      .waitFor();
    // The model is still missing: the restarted task fails again, with the same cause.
    const after = await rest<ConnectorStateInfo>(`/connectors/${missingModel}/status`);
    expect(after.tasks[0]?.state).to.equal('FAILED');
    expect(after.tasks[0]?.trace).to.contain('MODEL_NOT_FOUND');
  });

  it('lists the last dead-letter reasons the worker reports (details.dead_letters.recent), newest first', async () => {
    // The two poison rows (a null age) were the first records of input partition 0: the worker
    // keeps their reasons in the task status, and the page lists them next to the DLQ count.
    const letters = await readDeadLetters(`${input}-dlq`, 2);
    const status = await rest<ConnectorStateInfo>(`/connectors/${inference}/status`);
    const reported = (
      status.tasks[0]?.details?.['dead_letters'] as { recent: Array<{ code?: string; message: string }> }
    ).recent;
    expect(reported.map((r) => r.code)).to.deep.equal(['MODEL_INPUT_MISSING', 'MODEL_INPUT_MISSING']);
    // What the status reports is what the DLQ headers carry.
    expect(reported.map((r) => r.message)).to.deep.equal(
      letters.map((headers) => headers['exception.message']),
    );
    const task = `${inference}/0`;
    const items = field(task, 'dead-letter-reasons').locator('li');
    await waitFor(async () => (await items.count()) === 2, 30_000, 'two dead-letter reasons');
    const texts = await items.allTextContents();
    expect(texts.map((t) => t.replace(/^.*? · (?=\S+\[\d+\]@)/, ''))).to.deep.equal(
      [...letters]
        .reverse()
        .map(
          (h) => `${input}[0]@${h['offset']} · TASK_PROCESS · MODEL_INPUT_MISSING ${h['exception.message']}`,
        ),
    );
    await page
      .locator(`[data-task="${task}"]`)
      .screenshot({ path: join(artifacts, 'dead-letter-reasons.png') });
  });

  it('pauses, resumes and stops a connector from its buttons (the REST API reports each state)', async () => {
    const stateOf = async () =>
      (await rest<ConnectorStateInfo>(`/connectors/${inference}/status`)).connector.state;
    const badge = page.locator(`[data-connector="${inference}"] .connector-state .state`);

    await page.getByRole('button', { name: `Pause connector ${inference}` }).click();
    await page.locator('#action-result', { hasText: `${inference}: pause requested.` }).waitFor();
    expect(await stateOf()).to.equal('PAUSED');
    const status = await rest<ConnectorStateInfo>(`/connectors/${inference}/status`);
    expect(status.tasks.map((t) => t.state)).to.deep.equal(['PAUSED']);
    await badge.filter({ hasText: 'PAUSED' }).waitFor();
    await page.locator(`[data-task="${inference}/0"] h3 .state`, { hasText: 'PAUSED' }).waitFor();
    await screenshot('paused');

    await page.getByRole('button', { name: `Resume connector ${inference}` }).click();
    await page.locator('#action-result', { hasText: `${inference}: resume requested.` }).waitFor();
    expect(await stateOf()).to.equal('RUNNING');
    await badge.filter({ hasText: 'RUNNING' }).waitFor();

    await page.getByRole('button', { name: `Stop connector ${inference}` }).click();
    await page.locator('#action-result', { hasText: `${inference}: stop requested.` }).waitFor();
    expect(await stateOf()).to.equal('STOPPED');
    await badge.filter({ hasText: 'STOPPED' }).waitFor();
    expect(await page.locator(`[data-task="${inference}/0"]`).count()).to.equal(0);
  });

  it('ran without a script error or a refused request in the browser', () => {
    expect(pageProblems).to.deep.equal([]);
  });
});
