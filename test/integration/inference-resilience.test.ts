// How the inference connector behaves when the model server misbehaves, against the real stack:
// an outage and a stall mid-stream (fault knobs of the dev model server), a rate limit, and models
// that do not exist. Uses the `null` model (score = age + version - 1), which costs nothing to run.
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { builtinPlugins } from '../../connectors/index.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { METRIC_NAMES } from '../../connectors/tf-serving/metrics.js';
import {
  modelServerControl,
  modelServerTarget,
  registryUrl,
  testKafka,
  uniqueName,
} from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const personSchema = {
  type: 'record',
  name: 'Person',
  namespace: 'io.inferconnect.test',
  fields: [
    { name: 'id', type: 'string' },
    { name: 'age', type: 'long' },
  ],
};
const personType = avro.Type.forSchema(personSchema as avro.Schema);
const registry = new SchemaRegistry({ host: registryUrl });
/** The built-ins, with the inference plugin whether or not connectors/index.ts registers it yet. */
const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function control(path: string, body?: object): Promise<Record<string, unknown>> {
  const response = await fetch(`${modelServerControl}${path}`, {
    method: body === undefined && path === '/stats' ? 'GET' : 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as Record<string, unknown>;
}

async function admin<T>(
  fn: (a: ReturnType<ReturnType<typeof testKafka>['admin']>) => Promise<T>,
): Promise<T> {
  const a = testKafka().admin();
  await a.connect();
  try {
    return await fn(a);
  } finally {
    await a.disconnect();
  }
}

async function createTopic(topic: string, numPartitions: number): Promise<number> {
  await admin((a) =>
    a.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }], waitForLeaders: true }),
  );
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: JSON.stringify(personSchema) },
    { subject: `${topic}-value` },
  );
  return id;
}

const frame = (id: number, value: object): Buffer => {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, personType.toBuffer(value)]);
};

async function messageCount(topic: string): Promise<number> {
  return admin(async (a) => {
    if (!(await a.listTopics()).includes(topic)) return 0;
    const offsets = await a.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  });
}

/** Collects the keys written to `topic` while the test runs. */
async function collectKeys(topic: string) {
  await waitFor(
    async () => (await admin((a) => a.listTopics())).includes(topic) || undefined,
    30_000,
    `topic ${topic}`,
  );
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const keys: string[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void keys.push(message.key?.toString() ?? '') });
  return { keys, stop: () => consumer.disconnect() };
}

function faultConfig(input: string): Record<string, unknown> {
  return {
    'connector.class': 'TFServingInference',
    topics: input,
    'output.topic': `${input}-scored`,
    'key.converter': 'string',
    'tfserving.target': modelServerTarget,
    'tfserving.model.name': 'null',
    'tfserving.deadline.ms': 2000,
    'batch.max.records': 64,
    'breaker.volume.threshold': 4,
    'breaker.reset.timeout.ms': 3000,
    'breaker.rolling.window.ms': 10000,
    'errors.tolerance': 'all',
    'errors.retry.delay.max.ms': 4000,
    'errors.deadletterqueue.topic.name': `${input}-dlq`,
    'errors.deadletterqueue.topic.replication.factor': 1,
    'errors.deadletterqueue.context.headers.enable': true,
  };
}

interface Observations {
  produced: string[];
  breakerStates: Set<string>;
  sawPausedPartitions: boolean;
  rssBaselineMb: number;
  rssPeakMb: number;
}

/**
 * Streams records for ~30 s into a 3-partition topic while a connector scores them; `fault` starts
 * 4 s in and `clear` (if any) 20 s later. Watches the task's status and this process's RSS.
 */
async function streamThroughFault(
  name: string,
  fault: object,
  clear: object | undefined,
): Promise<Observations & { scored: string[]; dlq: number }> {
  const input = uniqueName(name);
  const schemaId = await createTopic(input, 3);
  const worker = await startTestWorker({}, plugins);
  const producer = testKafka().producer();
  await producer.connect();
  const observations: Observations = {
    produced: [],
    breakerStates: new Set(),
    sawPausedPartitions: false,
    rssBaselineMb: 0,
    rssPeakMb: 0,
  };
  let watching = true;
  const rss: Array<{ at: number; mb: number }> = [];
  const started = Date.now();
  const watcher = (async () => {
    while (watching) {
      const details = (
        worker.worker.connectorNames().includes(name)
          ? worker.worker.connectorStatus(name).tasks[0]?.details
          : undefined
      ) as { breaker?: { state: string }; paused_partitions?: string[] } | undefined;
      if (details?.breaker) observations.breakerStates.add(details.breaker.state);
      if ((details?.paused_partitions?.length ?? 0) > 0) observations.sawPausedPartitions = true;
      rss.push({ at: Date.now() - started, mb: process.memoryUsage().rss / 2 ** 20 });
      await sleep(100);
    }
  })();
  const output = { keys: [] as string[], stop: async () => undefined as unknown };
  try {
    await worker.worker.putConnectorConfig(name, faultConfig(input), false);
    const collected = await collectKeys(`${input}-scored`);
    output.keys = collected.keys;
    output.stop = collected.stop;
    let faulted = false;
    let cleared = false;
    for (let tick = 0; Date.now() - started < 30_000; tick++) {
      const elapsed = Date.now() - started;
      if (!faulted && elapsed >= 4_000) {
        await control('/faults', fault);
        faulted = true;
      }
      if (faulted && !cleared && clear !== undefined && elapsed >= 24_000) {
        await control('/faults', clear);
        cleared = true;
      }
      const messages = Array.from({ length: 30 }, (_, i) => {
        const key = `${tick}-${i}`;
        observations.produced.push(key);
        return { key, value: frame(schemaId, { id: key, age: tick }), partition: i % 3 };
      });
      await producer.send({ topic: input, messages });
      await sleep(250);
    }
    if (clear !== undefined && !cleared) await control('/faults', clear);
    await waitFor(
      () => output.keys.length >= observations.produced.length,
      90_000,
      `all ${observations.produced.length} records scored (have ${output.keys.length})`,
    );
    await sleep(1000);
    const baseline = rss.filter((s) => s.at < 4_000).map((s) => s.mb);
    observations.rssBaselineMb = Math.max(...baseline);
    observations.rssPeakMb = Math.max(...rss.map((s) => s.mb));
    return { ...observations, scored: [...output.keys], dlq: await messageCount(`${input}-dlq`) };
  } finally {
    watching = false;
    await watcher;
    await output.stop();
    await producer.disconnect();
    await worker.stop();
  }
}

describe('inference connector under model server faults', function () {
  this.timeout(120_000);

  afterEach(async () => {
    await control('/reset', {});
  });

  it('rides out 20 s of UNAVAILABLE mid-stream: breaker opens, partitions pause, nothing dead-lettered, everything scored once', async () => {
    const result = await streamThroughFault(
      'outage',
      { failure_rate: 1, failure_code: 'UNAVAILABLE' },
      { failure_rate: 0 },
    );
    expect(result.breakerStates).to.include('open');
    expect(result.sawPausedPartitions, 'partitions paused during the outage').to.equal(true);
    expect(result.dlq).to.equal(0);
    expect(result.scored.length).to.equal(result.produced.length);
    expect(new Set(result.scored)).to.deep.equal(new Set(result.produced));
    expect(
      result.rssPeakMb - result.rssBaselineMb,
      `RSS ${result.rssBaselineMb.toFixed(0)} MB before, peak ${result.rssPeakMb.toFixed(0)} MB`,
    ).to.be.below(150);
  });

  it('rides out a 20 s stall mid-stream the same way: deadlines fail fast, breaker opens, nothing lost', async () => {
    const result = await streamThroughFault('stall', { stall_seconds: 20 }, undefined);
    expect(result.breakerStates).to.include('open');
    expect(result.sawPausedPartitions).to.equal(true);
    expect(result.dlq).to.equal(0);
    expect(result.scored.length).to.equal(result.produced.length);
    expect(new Set(result.scored)).to.deep.equal(new Set(result.produced));
    expect(
      result.rssPeakMb - result.rssBaselineMb,
      `RSS ${result.rssBaselineMb.toFixed(0)} MB before, peak ${result.rssPeakMb.toFixed(0)} MB`,
    ).to.be.below(150);
  });

  it('never sends more than rate.limit.requests.per.second Predicts in any second', async () => {
    // The model server's counters are global: another client of the shared dev server would
    // pollute them. An attempt counts only when the server saw exactly our requests.
    for (let attempt = 1; ; attempt++) {
      const input = uniqueName('ratelimit');
      const schemaId = await createTopic(input, 1);
      const producer = testKafka().producer();
      await producer.connect();
      await producer.send({
        topic: input,
        messages: Array.from({ length: 400 }, (_, i) => ({
          key: String(i),
          value: frame(schemaId, { id: String(i), age: i }),
        })),
      });
      await producer.disconnect();
      const worker = await startTestWorker({}, plugins);
      try {
        await control('/reset', {});
        await worker.worker.putConnectorConfig(
          input,
          { ...faultConfig(input), 'rate.limit.requests.per.second': 5, 'batch.max.records': 10 },
          false,
        );
        const output = await collectKeys(`${input}-scored`);
        try {
          await waitFor(
            () => output.keys.length >= 400,
            60_000,
            `400 records scored (have ${output.keys.length})`,
          );
        } finally {
          await output.stop();
        }
        const stats = (await control('/stats')) as {
          requests: { Predict?: number };
          max_predict_per_second: number;
          predict_timestamps_ms: number[];
        };
        const ours = (await worker.metricsRegistry.getSingleMetric(METRIC_NAMES.requests)!.get()).values
          .filter((v) => v.labels.connector === input)
          .reduce((sum, v) => sum + v.value, 0);
        if (stats.requests.Predict !== ours && attempt < 3) continue;
        expect(stats.requests.Predict, 'only our requests reached the server').to.equal(ours);
        expect(ours).to.be.at.least(40);
        expect(stats.max_predict_per_second).to.be.at.most(5);
        const times = stats.predict_timestamps_ms;
        expect(times[times.length - 1]! - times[0]!, '40 requests at 5/s take at least 7 s').to.be.at.least(
          7_000,
        );
        return;
      } finally {
        await worker.stop();
      }
    }
  });

  it('fails the task with a clear trace for an unknown model, version, label or signature: no retry loop, no DLQ flood', async () => {
    const input = uniqueName('missing-model');
    const schemaId = await createTopic(input, 1);
    const producer = testKafka().producer();
    await producer.connect();
    await producer.send({
      topic: input,
      messages: Array.from({ length: 20 }, (_, i) => ({
        key: String(i),
        value: frame(schemaId, { id: String(i), age: i }),
      })),
    });
    await producer.disconnect();
    const cases: Array<{ name: string; config: Record<string, unknown>; expect: RegExp }> = [
      {
        name: 'no-model',
        config: { 'tfserving.model.name': 'nope' },
        expect: /MODEL_NOT_FOUND[\s\S]*Servable not found for request: Latest\(nope\)/,
      },
      {
        name: 'no-version',
        config: { 'tfserving.model.version': 9 },
        expect: /MODEL_NOT_FOUND[\s\S]*version 9[\s\S]*NOT_FOUND/,
      },
      {
        name: 'no-label',
        config: { 'tfserving.model.version.label': 'nightly' },
        expect: /version label "nightly"[\s\S]*Unrecognized servable version label/,
      },
      {
        name: 'no-signature',
        config: { 'tfserving.signature.name': 'classify' },
        expect: /MODEL_SIGNATURE_NOT_FOUND[\s\S]*no signature "classify"; it has: serving_default/,
      },
    ];
    const worker = await startTestWorker({}, plugins);
    try {
      for (const c of cases) {
        await worker.worker.putConnectorConfig(
          c.name,
          {
            ...faultConfig(input),
            'output.topic': `${input}-${c.name}`,
            'errors.deadletterqueue.topic.name': `${input}-${c.name}-dlq`,
            ...c.config,
          },
          false,
        );
      }
      const traces = await Promise.all(
        cases.map((c) =>
          waitFor(
            () => {
              const task = worker.worker.connectorStatus(c.name).tasks[0];
              return task?.state === 'FAILED' ? task.trace : undefined;
            },
            30_000,
            `${c.name} to fail`,
          ),
        ),
      );
      cases.forEach((c, i) => expect(traces[i], c.name).to.match(c.expect));
      const metadataCalls = ((await control('/stats')) as { requests: { GetModelMetadata?: number } })
        .requests.GetModelMetadata;
      await sleep(3000);
      for (const c of cases) {
        expect(worker.worker.connectorStatus(c.name).tasks[0]!.state, c.name).to.equal('FAILED');
        expect(await messageCount(`${input}-${c.name}-dlq`), `${c.name} DLQ`).to.equal(0);
        expect(await messageCount(`${input}-${c.name}`), `${c.name} output`).to.equal(0);
      }
      const later = ((await control('/stats')) as { requests: { GetModelMetadata?: number } }).requests
        .GetModelMetadata;
      // A retry loop would call again for every task; the counter is global, so another client of
      // the shared dev server may add a call or two.
      expect(later! - metadataCalls!, 'no retry loop against the model server').to.be.below(cases.length);
    } finally {
      await worker.stop();
    }
  });
});
