// The inference connector while the model changes under it, against a real model server process
// executing real SavedModels: a new latest version (or a moved version label) with another
// signature appears while records stream through a real worker, Kafka and schema registry.
//
// The shared stack's model server must stay as it is, so this file starts its own instance of
// dev/model-server/server.py on free ports, over a temporary model base built from the cached dev
// models, polling that base every second (--poll-seconds) as TF Serving polls its file system:
// copying a SavedModel in as a new version directory is how a new version appears. The models:
// `null` (age -> score = age), `census` (the 14 census columns -> probability, predicted_class)
// and `image` (image_bytes -> top_k_*), all fed from census records, which carry every census
// column but no image.
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { builtinPlugins } from '../../connectors/index.js';
import { parseCsvLine } from '../../connectors/file/csv.js';
import { TFServingClient } from '../../connectors/tf-serving/grpc-client.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { encodeTensor } from '../../connectors/tf-serving/tensor-codec.js';
import { registryUrl, testKafka, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const repoRoot = join(import.meta.dirname, '..', '..');
const cacheDir = process.env.INFER_CONNECT_CACHE ?? join(homedir(), '.cache', 'infer-connect');
const cachedModels = join(cacheDir, 'models');
const python = join(cacheDir, 'venv', 'bin', 'python');

const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];

const censusText = readFileSync(join(repoRoot, 'schemas', 'census.avsc'), 'utf8');
const censusType = avro.Type.forSchema(JSON.parse(censusText) as avro.Schema);
const registry = new SchemaRegistry({ host: registryUrl });

/** The census test split's first `count` rows, typed as schemas/census.avsc has them. */
function censusRows(count: number): Array<Record<string, string | number>> {
  const lines = readFileSync(join(repoRoot, 'data', 'census', 'adult.test.csv'), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const header = parseCsvLine(lines[0]!);
  const longs = new Set(
    (JSON.parse(censusText) as { fields: Array<{ name: string; type: unknown }> }).fields
      .filter((f) => f.type === 'long')
      .map((f) => f.name),
  );
  return lines.slice(1, count + 1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, longs.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

// ------------------------------------------------------------------ our own model server

interface OwnModelServer {
  target: string;
  control: string;
  base: string;
  log: string[];
  /** Copies a cached model version into the base as `model/version`, renamed into place whole. */
  addVersion(model: string, version: number, from: { model: string; version: number }): void;
  postControl(path: string, body: object): Promise<unknown>;
  stop(): Promise<void>;
}

async function startOwnModelServer(labels: string): Promise<OwnModelServer> {
  const base = mkdtempSync(join(tmpdir(), 'infer-connect-models-'));
  const addVersion: OwnModelServer['addVersion'] = (model, version, from) => {
    const staging = join(base, model, `.staging-${version}`);
    cpSync(join(cachedModels, from.model, String(from.version)), staging, { recursive: true });
    renameSync(staging, join(base, model, String(version)));
  };
  addVersion('scorer', 1, { model: 'null', version: 1 });
  addVersion('fragile', 1, { model: 'null', version: 1 });
  addVersion('labelled', 1, { model: 'null', version: 1 });
  addVersion('labelled', 2, { model: 'census', version: 1 });
  const child: ChildProcess = spawn(
    python,
    [
      join(repoRoot, 'dev', 'model-server', 'server.py'),
      '--port',
      '0',
      '--control-port',
      '0',
      '--model-base',
      base,
      '--version-labels',
      labels,
      '--poll-seconds',
      '1',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', PYTHONUNBUFFERED: '1' },
    },
  );
  const log: string[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ports = new Promise<[number, number]>((resolve, reject) => {
    let pending = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        const match = /serving grpc=127\.0\.0\.1:(\d+) control=127\.0\.0\.1:(\d+)/.exec(line);
        if (match) resolve([Number(match[1]), Number(match[2])]);
      }
    });
    child.once('exit', (code) =>
      reject(new Error(`model server exited (${code}):\n${log.slice(-20).join('\n')}`)),
    );
  });
  const [grpcPort, controlPort] = await Promise.race([
    ports,
    sleep(180_000).then(() => {
      throw new Error(`model server did not start:\n${log.slice(-20).join('\n')}`);
    }),
  ]);
  const control = `http://127.0.0.1:${controlPort}`;
  return {
    target: `127.0.0.1:${grpcPort}`,
    control,
    base,
    log,
    addVersion,
    async postControl(path, body) {
      const response = await fetch(`${control}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`POST ${path}: HTTP ${response.status} ${await response.text()}`);
      return response.json();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}

async function servedVersions(server: OwnModelServer, model: string): Promise<number[]> {
  const health = (await (await fetch(`${server.control}/health`)).json()) as {
    models: Record<string, number[]>;
  };
  return health.models[model] ?? [];
}

// -------------------------------------------------------------------------- Kafka plumbing

async function createCensusTopic(topic: string): Promise<number> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: 2, replicationFactor: 1 }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: censusText },
    { subject: `${topic}-value` },
  );
  return id;
}

async function messageCount(topic: string): Promise<number> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

interface Scored {
  key: string;
  partition: number;
  value: Record<string, unknown>;
}

/** Reads `topic` from the start, decoding each record with the registry, until stopped. */
async function collect(topic: string) {
  await waitFor(async () => (await messageCount(topic)) > 0 || undefined, 60_000, `records on ${topic}`);
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const records: Scored[] = [];
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      records.push({
        key: message.key!.toString(),
        partition,
        value: (await registry.decode(message.value!)) as Record<string, unknown>,
      });
    },
  });
  return { records, stop: () => consumer.disconnect() };
}

/** Produces census rows, 20 every 100 ms over 2 partitions, keyed by their index, until stopped. */
function streamCensus(topic: string, schemaId: number) {
  const rows = censusRows(4000);
  const produced: string[] = [];
  let running = true;
  const done = (async () => {
    const producer = testKafka().producer();
    await producer.connect();
    try {
      while (running) {
        const messages = Array.from({ length: 20 }, () => {
          const i = produced.length;
          produced.push(String(i));
          const header = Buffer.alloc(5);
          header.writeInt32BE(schemaId, 1);
          return {
            key: String(i),
            partition: i % 2,
            value: Buffer.concat([header, censusType.toBuffer(rows[i % rows.length])]),
          };
        });
        await producer.send({ topic, messages });
        await sleep(100);
      }
    } finally {
      await producer.disconnect();
    }
  })();
  return {
    produced,
    async stop() {
      running = false;
      await done;
    },
  };
}

function connectorConfig(input: string, server: OwnModelServer, extra: Record<string, unknown>) {
  return {
    'connector.class': 'TFServingInference',
    topics: input,
    'output.topic': `${input}-scored`,
    'key.converter': 'string',
    'tfserving.target': server.target,
    'tfserving.deadline.ms': 5000,
    'output.metadata.fields': 'model.version',
    'batch.max.records': 32,
    'batch.max.wait.ms': 5,
    'max.in.flight.requests': 4,
    'errors.tolerance': 'all',
    'errors.retry.delay.max.ms': 2000,
    'errors.deadletterqueue.topic.name': `${input}-dlq`,
    'errors.deadletterqueue.topic.replication.factor': 1,
    'errors.deadletterqueue.context.headers.enable': true,
    ...extra,
  };
}

/**
 * Every produced record written exactly once; the ones scored by `before` carry its outputs only,
 * the ones scored by `after` its outputs only; per partition, `before` ends where `after` begins.
 */
function expectSwitchedOnce(
  scored: Scored[],
  produced: string[],
  before: { version: number; fields: string[] },
  after: { version: number; fields: string[] },
  others: string[],
) {
  expect(scored.length, 'nothing written twice').to.equal(produced.length);
  expect(new Set(scored.map((s) => s.key))).to.deep.equal(new Set(produced));
  const versions = scored.map((s) => s.value.model_version);
  expect(
    versions.filter((v) => v === before.version).length,
    `scored by ${before.version}`,
  ).to.be.greaterThan(0);
  expect(versions.filter((v) => v === after.version).length, `scored by ${after.version}`).to.be.greaterThan(
    0,
  );
  for (const s of scored) {
    const which = s.value.model_version === before.version ? before : after;
    expect([before.version, after.version]).to.include(s.value.model_version);
    for (const field of which.fields) expect(s.value[field], `${s.key}.${field}`).to.not.equal(null);
    for (const field of others.filter((f) => !which.fields.includes(f)))
      expect(s.value[field] ?? null, `${s.key}.${field}`).to.equal(null);
  }
  for (const partition of [0, 1]) {
    const sequence = scored.filter((s) => s.partition === partition).map((s) => s.value.model_version);
    const firstAfter = sequence.indexOf(after.version);
    expect(sequence.slice(firstAfter), `partition ${partition} stays on the new version`).to.not.include(
      before.version,
    );
  }
}

describe('inference connector while the model changes under it (own model server)', function () {
  this.timeout(300_000);
  let server: OwnModelServer;

  before(async function () {
    this.timeout(200_000);
    server = await startOwnModelServer('labelled:live=1');
  });

  after(async () => {
    await server?.stop();
  });

  it('follows a new latest version with another signature mid-stream: plan and output schema rebuilt, every record scored once, nothing dead-lettered', async () => {
    const input = uniqueName('model-change');
    const schemaId = await createCensusTopic(input);
    const worker = await startTestWorker({}, plugins);
    const stream = streamCensus(input, schemaId);
    let output: Awaited<ReturnType<typeof collect>> | undefined;
    try {
      await worker.worker.putConnectorConfig(
        'model-change',
        connectorConfig(input, server, { 'tfserving.model.name': 'scorer' }),
        false,
      );
      output = await collect(`${input}-scored`);
      const scored = output.records;
      await waitFor(() => scored.length >= 200, 60_000, '200 records scored by version 1');

      // A new version appears in the model base while records keep coming.
      server.addVersion('scorer', 2, { model: 'census', version: 1 });
      await waitFor(
        () => scored.some((s) => s.value.model_version === 2) || undefined,
        60_000,
        'a record scored by version 2',
      );
      const switchedAt = scored.length;
      await waitFor(() => scored.length >= switchedAt + 200, 60_000, '200 more records after the switch');
      await stream.stop();
      await waitFor(
        () => scored.length >= stream.produced.length,
        60_000,
        `all ${stream.produced.length} records scored (have ${scored.length})`,
      );
      await sleep(2000);

      expectSwitchedOnce(
        scored,
        stream.produced,
        { version: 1, fields: ['score'] },
        { version: 2, fields: ['probability', 'predicted_class'] },
        ['score', 'probability', 'predicted_class'],
      );
      expect(await messageCount(`${input}-dlq`), 'dead letters').to.equal(0);
      expect(worker.worker.connectorStatus('model-change').tasks[0]!.state).to.equal('RUNNING');
      const subjectVersions = (await (
        await fetch(`${registryUrl}/subjects/${input}-scored-value/versions`)
      ).json()) as number[];
      expect(subjectVersions, 'one output schema per signature').to.have.length(2);
      expect(server.log.join('\n')).to.contain('loaded model scorer version 2');
    } finally {
      await stream.stop();
      await output?.stop();
      await worker.stop();
    }
  });

  it('fails the task with MODEL_SIGNATURE_CHANGED naming the version and tensor when the new latest version cannot be fed from the records, dead-lettering nothing', async () => {
    const input = uniqueName('model-break');
    const schemaId = await createCensusTopic(input);
    const worker = await startTestWorker({}, plugins);
    const stream = streamCensus(input, schemaId);
    try {
      await worker.worker.putConnectorConfig(
        'model-break',
        connectorConfig(input, server, { 'tfserving.model.name': 'fragile' }),
        false,
      );
      await waitFor(async () => (await messageCount(`${input}-scored`)) >= 100, 60_000, '100 records scored');
      server.addVersion('fragile', 2, { model: 'image', version: 1 });
      const trace = await waitFor(
        () => {
          const task = worker.worker.connectorStatus('model-break').tasks[0];
          return task?.state === 'FAILED' ? task.trace : undefined;
        },
        60_000,
        'the task to fail',
      );
      await stream.stop();
      expect(trace)
        .to.contain('MODEL_SIGNATURE_CHANGED')
        .and.contain('now serves version 2')
        .and.contain('"image_bytes"')
        .and.contain('pin tfserving.model.version=1');
      const written = await messageCount(`${input}-scored`);
      await sleep(2000);
      expect(await messageCount(`${input}-dlq`), 'dead letters').to.equal(0);
      expect(await messageCount(`${input}-scored`), 'nothing written after the failure').to.equal(written);
      expect(await servedVersions(server, 'fragile')).to.deep.equal([1, 2]);
    } finally {
      await stream.stop();
      await worker.stop();
    }
  });

  it('follows a version label moved to a version with another signature mid-stream, every record scored once', async () => {
    const input = uniqueName('label-move');
    const schemaId = await createCensusTopic(input);
    const worker = await startTestWorker({}, plugins);
    const stream = streamCensus(input, schemaId);
    let output: Awaited<ReturnType<typeof collect>> | undefined;
    try {
      await worker.worker.putConnectorConfig(
        'label-move',
        connectorConfig(input, server, {
          'tfserving.model.name': 'labelled',
          'tfserving.model.version.label': 'live',
        }),
        false,
      );
      output = await collect(`${input}-scored`);
      const scored = output.records;
      await waitFor(() => scored.length >= 200, 60_000, '200 records scored by version 1');
      await server.postControl('/labels', { model: 'labelled', label: 'live', version: 2 });
      await waitFor(
        () => scored.some((s) => s.value.model_version === 2) || undefined,
        60_000,
        'a record scored by version 2',
      );
      const switchedAt = scored.length;
      await waitFor(() => scored.length >= switchedAt + 200, 60_000, '200 more records after the move');
      await stream.stop();
      await waitFor(
        () => scored.length >= stream.produced.length,
        60_000,
        `all ${stream.produced.length} records scored (have ${scored.length})`,
      );
      await sleep(2000);
      expectSwitchedOnce(
        scored,
        stream.produced,
        { version: 1, fields: ['score'] },
        { version: 2, fields: ['probability', 'predicted_class'] },
        ['score', 'probability', 'predicted_class'],
      );
      expect(await messageCount(`${input}-dlq`), 'dead letters').to.equal(0);
    } finally {
      await stream.stop();
      await output?.stop();
      await worker.stop();
    }
  });

  it('keeps the connection when the client pings every second through a call the server holds for 8 s (the dev server accepts keepalive pings)', async () => {
    const client = new TFServingClient({
      target: server.target,
      deadlineMs: 15_000,
      maxSendMessageBytes: 1 << 20,
      maxReceiveMessageBytes: 1 << 20,
      keepalive: { timeMs: 1000, timeoutMs: 5000 },
    });
    const request = {
      model: { name: 'scorer', version: 1 },
      inputs: { age: encodeTensor('DT_INT64', [1], [42]) },
    };
    try {
      await client.predict(request);
      await server.postControl('/faults', { latency_ms: 8000 });
      const result = await client.predict(request);
      expect(result.model.version).to.equal(1);
    } finally {
      await server.postControl('/reset', {});
      client.close();
    }
  });
});
