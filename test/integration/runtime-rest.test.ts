import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { expect } from 'chai';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const cli = resolve(import.meta.dirname, '../../bin/infer-connect.js');

async function call(base: string, method: string, path: string, body?: unknown, raw?: string) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body !== undefined || raw !== undefined ? { 'content-type': 'application/json' } : {},
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  // Test assertions walk arbitrary response shapes; chai checks them at run time.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: response.status, json: json as any, text };
}

describe('the REST API of a running worker', function () {
  this.timeout(120_000);
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let base: string;
  const input = uniqueName('rest-in');
  const name = uniqueName('rest');
  const RECORDS = 500;

  before(async () => {
    const kafka = testKafka();
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: input, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: input,
      messages: Array.from({ length: RECORDS }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
    });
    await producer.disconnect();
    worker = await startTestWorker();
    base = worker.url;
  });
  after(() => worker?.stop());

  const config = () => ({
    'connector.class': 'PassThrough',
    topics: input,
    'output.topic': `${input}-out`,
    'key.converter': 'string',
    'value.converter': 'string',
    'tasks.max': '2',
  });

  it('answers GET / and GET /health', async () => {
    const root = await call(base, 'GET', '/');
    expect(root.status).to.equal(200);
    expect(root.json).to.have.keys('version', 'commit', 'kafka_cluster_id');
    expect(String(root.json.kafka_cluster_id)).to.not.equal('');
    const health = await call(base, 'GET', '/health');
    expect(health.status).to.equal(200);
    expect(health.json.status).to.equal('healthy');
  });

  it('lists plugins and their config, and validates configs in Kafka Connect shape', async () => {
    const plugins = await call(base, 'GET', '/connector-plugins');
    expect(plugins.json.map((p: { class: string }) => p.class)).to.include.members([
      'FileSource',
      'FileSink',
      'PassThrough',
    ]);
    const keys = await call(base, 'GET', '/connector-plugins/PassThrough/config');
    expect(keys.json.map((k: { name: string }) => k.name)).to.include.members([
      'topics',
      'output.topic',
      'errors.tolerance',
    ]);
    const valid = await call(base, 'PUT', '/connector-plugins/PassThrough/config/validate', {
      ...config(),
      name,
    });
    expect(valid.status).to.equal(200);
    expect(valid.json.error_count).to.equal(0);
    const invalid = await call(base, 'PUT', '/connector-plugins/PassThrough/config/validate', {
      'connector.class': 'PassThrough',
      topics: input,
      'topics.regex': 'x.*',
    });
    expect(invalid.status).to.equal(200);
    expect(invalid.json.error_count).to.be.greaterThan(0);
    const withErrors = (invalid.json.configs as Array<{ value: { name: string; errors: string[] } }>)
      .filter((c) => c.value.errors.length > 0)
      .map((c) => c.value.name);
    expect(withErrors).to.include('output.topic');
    expect(withErrors.some((k) => k === 'topics' || k === 'topics.regex')).to.equal(true);
    expect((await call(base, 'GET', '/connector-plugins/NoSuchPlugin/config')).status).to.equal(404);
  });

  it('creates a connector (201), refuses a clash (409) and bad bodies (400), never 500', async () => {
    const created = await call(base, 'POST', '/connectors', { name, config: config() });
    expect(created.status).to.equal(201);
    expect(created.json).to.include({ name, type: 'processor' });
    expect(created.json.tasks).to.deep.equal([
      { connector: name, task: 0 },
      { connector: name, task: 1 },
    ]);
    expect((await call(base, 'POST', '/connectors', { name, config: config() })).status).to.equal(409);
    const badJson = await call(base, 'POST', '/connectors', undefined, '{"name": ');
    expect(badJson.status).to.equal(400);
    expect(badJson.json).to.have.keys('error_code', 'message');
    expect((await call(base, 'POST', '/connectors', { config: config() })).status).to.equal(400);
    const unknownPlugin = await call(base, 'POST', '/connectors', {
      name: 'x',
      config: { 'connector.class': 'Nope', topics: 't' },
    });
    expect(unknownPlugin.status).to.equal(400);
    expect(unknownPlugin.json.message).to.contain('Nope');
    const invalid = await call(base, 'POST', '/connectors', {
      name: 'y',
      config: { 'connector.class': 'PassThrough', topics: input, 'tasks.max': 'many' },
    });
    expect(invalid.status).to.equal(400);
    expect(invalid.json.message).to.contain('tasks.max').and.contain('output.topic');
  });

  it('reports status, config, tasks and offsets, and 404s unknown names', async () => {
    await waitFor(
      async () => {
        const s = await call(base, 'GET', `/connectors/${name}/status`);
        return (
          s.json.tasks?.length === 2 && s.json.tasks.every((t: { state: string }) => t.state === 'RUNNING')
        );
      },
      30_000,
      'both tasks RUNNING',
    );
    const list = await call(base, 'GET', '/connectors');
    expect(list.json).to.include(name);
    const expanded = await call(base, 'GET', '/connectors?expand=status&expand=info');
    expect(expanded.json[name as never]).to.have.keys('status', 'info');
    expect((await call(base, 'GET', `/connectors/${name}`)).json.name).to.equal(name);
    expect((await call(base, 'GET', `/connectors/${name}/config`)).json['output.topic']).to.equal(
      `${input}-out`,
    );
    expect((await call(base, 'GET', `/connectors/${name}/tasks`)).json).to.have.length(2);
    expect((await call(base, 'GET', `/connectors/${name}/tasks/1/status`)).json.state).to.equal('RUNNING');
    expect((await call(base, 'GET', `/connectors/${name}/tasks/7/status`)).status).to.equal(404);
    expect((await call(base, 'GET', '/connectors/nope')).status).to.equal(404);
    expect((await call(base, 'GET', '/connectors/nope/status')).status).to.equal(404);
    expect((await call(base, 'GET', '/no/such/route')).status).to.equal(404);

    const offsets = await waitFor(
      async () => {
        const o = await call(base, 'GET', `/connectors/${name}/offsets`);
        const total = (o.json.offsets as Array<{ offset: { kafka_offset: number } }>).reduce(
          (sum, x) => sum + x.offset.kafka_offset,
          0,
        );
        return total === RECORDS ? o : undefined;
      },
      30_000,
      'committed offsets covering every record',
    );
    expect(offsets.json.offsets).to.have.length(2);
  });

  it('exposes metrics whose counters equal the records processed', async () => {
    const response = await fetch(`${base}/metrics`);
    expect(response.headers.get('content-type')).to.contain('text/plain');
    const families = parsePrometheusTextFormat(await response.text());
    const sum = (metric: string) =>
      families
        .find((f) => f.name === metric)!
        .metrics.filter((m) => m.labels?.connector === name)
        .reduce((s, m) => s + Number(m.value), 0);
    expect(sum('kafka_connect_sink_task_sink_record_read_total')).to.equal(RECORDS);
    expect(sum('kafka_connect_sink_task_sink_record_send_total')).to.equal(RECORDS);
    expect(sum('kafka_connect_task_error_total_record_errors')).to.equal(0);
    expect(families.some((f) => f.name === 'process_cpu_seconds_total')).to.equal(true);
    const lag = families.find((f) => f.name === 'infer_connect_consumer_lag')!;
    expect(
      lag.metrics.filter((m) => m.labels?.connector === name).every((m) => Number(m.value) === 0),
    ).to.equal(true);
  });

  it('pauses, resumes, restarts, stops, alters and resets offsets, patches config and deletes', async () => {
    expect((await call(base, 'PUT', `/connectors/${name}/pause`)).status).to.equal(202);
    expect((await call(base, 'GET', `/connectors/${name}/status`)).json.connector.state).to.equal('PAUSED');
    expect((await call(base, 'PUT', `/connectors/${name}/resume`)).status).to.equal(202);
    expect((await call(base, 'GET', `/connectors/${name}/status`)).json.connector.state).to.equal('RUNNING');
    expect((await call(base, 'POST', `/connectors/${name}/tasks/0/restart`)).status).to.equal(204);
    const restarted = await call(
      base,
      'POST',
      `/connectors/${name}/restart?includeTasks=true&onlyFailed=false`,
    );
    expect(restarted.status).to.equal(202);
    expect((await call(base, 'PATCH', `/connectors/${name}/offsets`, { offsets: [] })).status).to.equal(409);
    expect((await call(base, 'PUT', `/connectors/${name}/stop`)).status).to.equal(204);
    expect((await call(base, 'GET', `/connectors/${name}/status`)).json.connector.state).to.equal('STOPPED');
    const altered = await call(base, 'PATCH', `/connectors/${name}/offsets`, {
      offsets: [{ partition: { kafka_topic: input, kafka_partition: 0 }, offset: { kafka_offset: 5 } }],
    });
    expect(altered.status).to.equal(200);
    const after = await call(base, 'GET', `/connectors/${name}/offsets`);
    expect(after.json.offsets).to.deep.include({
      partition: { kafka_topic: input, kafka_partition: 0 },
      offset: { kafka_offset: 5 },
    });
    expect((await call(base, 'DELETE', `/connectors/${name}/offsets`)).status).to.equal(200);
    expect((await call(base, 'GET', `/connectors/${name}/offsets`)).json.offsets).to.deep.equal([]);
    const patched = await call(base, 'PATCH', `/connectors/${name}/config`, { 'tasks.max': '1' });
    expect(patched.status).to.equal(200);
    expect(
      (await call(base, 'PUT', `/connectors/${name}/config`, { ...config(), 'tasks.max': '1' })).status,
    ).to.equal(200);
    expect((await call(base, 'DELETE', `/connectors/${name}`)).status).to.equal(204);
    expect((await call(base, 'GET', `/connectors/${name}`)).status).to.equal(404);
  });
});

describe('infer-connect validate', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-validate-'));
  const broken: Array<[string, unknown, string[]]> = [
    [
      'both-topic-settings.json',
      {
        name: 'a',
        config: { 'connector.class': 'FileSink', topics: 'x', 'topics.regex': 'x.*', file: '/tmp/a' },
      },
      ['topics'],
    ],
    [
      'dlq-is-input.json',
      {
        name: 'b',
        config: {
          'connector.class': 'PassThrough',
          topics: 'in',
          'output.topic': 'out',
          'errors.tolerance': 'all',
          'errors.deadletterqueue.topic.name': 'in',
        },
      },
      ['errors.deadletterqueue.topic.name'],
    ],
    [
      'bad-values.json',
      { name: 'c', config: { 'connector.class': 'FileSource', 'tasks.max': 0, format: 'xml', topic: 't' } },
      ['tasks.max', 'format', 'file', 'value.schema.file'],
    ],
  ];

  for (const [file, content, keys] of broken) {
    it(`exits 1 on ${file} and names ${keys.join(', ')}`, () => {
      const path = join(dir, file);
      writeFileSync(path, JSON.stringify(content));
      const result = spawnSync(process.execPath, [cli, 'validate', path], { encoding: 'utf8' });
      expect(result.status).to.equal(1);
      for (const key of keys)
        expect(result.stderr).to.match(new RegExp(`^\\s+${key.replaceAll('.', '\\.')}: `, 'm'));
    });
  }

  it('exits 0 on every example config in config/', () => {
    for (const file of ['census-file-source.json', 'census-file-sink.json']) {
      const result = spawnSync(
        process.execPath,
        [cli, 'validate', resolve(import.meta.dirname, '../../config', file)],
        {
          encoding: 'utf8',
          cwd: resolve(import.meta.dirname, '../..'),
        },
      );
      expect(result.status, result.stderr).to.equal(0);
    }
  });
});
