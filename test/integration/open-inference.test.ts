// OpenInference end to end against the real stack (Kafka, the schema registry) and a real Open
// Inference Protocol server no one here wrote: Seldon MLServer from PyPI serving the census
// scikit-learn Pipeline (dev/mlserver.ts starts it on demand on 127.0.0.1:8510). Records are
// produced as Confluent-framed Avro, scored by an OpenInference task in a real worker, and read
// back from the topics; every guarantee is checked from the topics themselves.
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { builtinPlugins } from '../../connectors/index.js';
import { openInferencePlugin } from '../../connectors/open-inference/index.js';
import { readCensusRows, type CensusRow } from '../../dev/census.js';
import { mlserverEndpoints, startMlserver, stopMlserver, type CensusModel } from '../../dev/mlserver.js';
import {
  createTopic,
  messageCount,
  producePartitions,
  readTopic,
  TopicReader,
  type Consumed,
  type Produced,
} from '../helpers/kafka-topics.js';
import { registryUrl, uniqueName } from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const censusText = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const censusType = avro.Type.forSchema(JSON.parse(censusText) as avro.Schema);
const exampleConfig = (
  JSON.parse(readFileSync(new URL('../../config/census-open-inference.json', import.meta.url), 'utf8')) as {
    config: Record<string, string>;
  }
).config;

/** The built-ins, with OpenInference whether or not connectors/index.ts registers it yet. */
const plugins = builtinPlugins.includes(openInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, openInferencePlugin];

const frame = (id: number, body: Buffer): Buffer => {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
};

const header = (m: Consumed, name: string) => m.headers[`__connect.errors.${name}`]?.toString();

/** A topic of `partitions` partitions holding `rows` as census Avro records keyed by their index. */
async function censusTopic(
  prefix: string,
  rows: readonly CensusRow[],
  partitions: number,
): Promise<{ input: string; schemaId: number; produce(from: number, to: number): Promise<void> }> {
  const input = uniqueName(prefix);
  await createTopic(input, partitions);
  const registry = new SchemaRegistry({ host: registryUrl });
  const { id } = await registry.register(
    { type: SchemaType.AVRO, schema: censusText },
    { subject: `${input}-value` },
  );
  const produce = async (from: number, to: number) => {
    const byPartition: Produced[][] = Array.from({ length: partitions }, () => []);
    for (let i = from; i < to; i++)
      byPartition[i % partitions]!.push({
        key: String(i),
        value: frame(id, censusType.toBuffer(rows[i])),
        headers: {},
        timestamp: String(Date.now()),
      });
    await producePartitions(input, byPartition);
  };
  return { input, schemaId: id, produce };
}

function connectorConfig(input: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...exampleConfig,
    topics: input,
    'output.topic': `${input}-scored`,
    'errors.deadletterqueue.topic.name': `${input}-dlq`,
    'oip.target': mlserverEndpoints.target,
    'key.converter': 'string',
    ...extra,
  };
}

describe('OpenInference against Seldon MLServer (census scikit-learn pipeline)', function () {
  this.timeout(300_000);
  const registry = new SchemaRegistry({ host: registryUrl });
  let model: CensusModel;

  before(async function () {
    this.timeout(900_000); // the first run creates MLServer's virtualenv and trains the model
    model = await startMlserver();
  });

  // Every test leaves MLServer running for the next one (the server-down test restarts it).
  afterEach(async function () {
    this.timeout(180_000);
    await startMlserver();
  });

  it("scores the whole test split exactly once, in order per partition, at the model's own test accuracy", async () => {
    const rows = readCensusRows('test');
    expect(rows).to.have.length(16_281);
    const topic = await censusTopic('oip-census', rows, 3);
    await topic.produce(0, rows.length);

    const worker = await startTestWorker({}, plugins);
    try {
      const started = Date.now();
      await worker.worker.putConnectorConfig('oip-census', connectorConfig(topic.input), false);
      const scored = await readTopic(`${topic.input}-scored`, rows.length, 240_000);
      const seconds = (Date.now() - started) / 1000;
      await new Promise((resolve) => setTimeout(resolve, 2000));

      expect(await messageCount(`${topic.input}-scored`)).to.equal(rows.length);
      expect(new Set(scored.map((m) => m.key)).size).to.equal(rows.length);
      expect(await messageCount(`${topic.input}-dlq`)).to.equal(0);
      for (const partition of [0, 1, 2]) {
        const keys = scored.filter((m) => m.partition === partition).map((m) => Number(m.key));
        expect(keys.every((k) => k % 3 === partition)).to.equal(true);
        expect(keys).to.deep.equal([...keys].sort((a, b) => a - b));
      }

      let correct = 0;
      for (const message of scored) {
        const value = (await registry.decode(message.value!)) as CensusRow & { predicted_class: string };
        if (value.predicted_class === rows[Number(message.key)]!.income) correct++;
      }
      const first = (await registry.decode(scored[0]!.value!)) as Record<string, unknown>;
      expect(first).to.include({ model_name: 'census', model_version: 1 });
      expect(first.probability).to.be.within(0, 1);
      expect(first.predicted_class).to.be.oneOf(['<=50K', '>50K']);
      const accuracy = correct / rows.length;
      console.log(
        `      records=${rows.length} scored=${scored.length} dead_letters=0 accuracy=${accuracy.toFixed(4)} ` +
          `model_accuracy=${model.accuracy.toFixed(4)} records_per_sec=${Math.round(rows.length / seconds)}`,
      );
      // The same Pipeline on the same rows: the scored topic reproduces the offline accuracy.
      expect(
        Math.abs(accuracy - model.accuracy),
        `accuracy ${accuracy} vs the model's ${model.accuracy}`,
      ).to.be.below(0.0001);

      // The derived output schema names the model's outputs, typed from ModelMetadata.
      const latest = (await (
        await fetch(`${registryUrl}/subjects/${topic.input}-scored-value/versions/latest`)
      ).json()) as {
        schema: string;
      };
      const fields = (JSON.parse(latest.schema) as { fields: Array<{ name: string; type: unknown }> }).fields;
      expect(fields.find((f) => f.name === 'probability')!.type).to.deep.equal(['null', 'double']);
      expect(fields.find((f) => f.name === 'predicted_class')!.type).to.deep.equal(['null', 'string']);
    } finally {
      await worker.stop();
    }
  });

  it('bisects a batch MLServer refuses (INVALID_ARGUMENT for one out-of-range age, inputs sent raw): only that record is dead-lettered, the other 511 are scored', async () => {
    const rows = readCensusRows('test').slice(0, 512);
    // A valid Avro record the model server refuses: its runtime rejects ages outside [0, 150].
    const poisoned = rows.map((row, i) => (i === 300 ? { ...row, age: 200 } : row));
    const topic = await censusTopic('oip-poison', poisoned, 1);
    await topic.produce(0, poisoned.length);

    const worker = await startTestWorker({}, plugins);
    try {
      // Inputs as raw_input_contents here (typed contents in the other tests): MLServer reads both.
      await worker.worker.putConnectorConfig(
        'oip-poison',
        connectorConfig(topic.input, { 'oip.raw.input.contents': true }),
        false,
      );
      const dlq = await readTopic(`${topic.input}-dlq`, 1);
      const scored = await readTopic(`${topic.input}-scored`, 511);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(await messageCount(`${topic.input}-scored`)).to.equal(511);
      expect(await messageCount(`${topic.input}-dlq`)).to.equal(1);
      expect(scored.map((m) => m.key)).to.deep.equal(
        rows.map((_, i) => String(i)).filter((k) => k !== '300'),
      );
      const [letter] = dlq;
      expect(letter!.key).to.equal('300');
      expect(header(letter!, 'error.code')).to.equal('MODEL_INVALID_ARGUMENT');
      expect(header(letter!, 'exception.message')).to.contain('age out of range');
      expect(header(letter!, 'model.name')).to.equal('census');
      expect(header(letter!, 'stage')).to.equal('TASK_PROCESS');
      // The raw bytes as they were consumed.
      expect((censusType.fromBuffer(letter!.value!.subarray(5)) as CensusRow).age).to.equal(200);
    } finally {
      await worker.stop();
    }
  });

  it('fails the task at start with MODEL_NOT_FOUND for a model or version MLServer does not have, scoring and dead-lettering nothing', async () => {
    const rows = readCensusRows('test').slice(0, 10);
    const topic = await censusTopic('oip-missing', rows, 1);
    await topic.produce(0, rows.length);
    const cases = [
      {
        name: 'oip-missing-model',
        config: { 'oip.model.name': 'no-such-model' },
        expect: /no-such-model.*NOT_FOUND/s,
      },
      {
        name: 'oip-missing-version',
        config: { 'oip.model.version': '7' },
        expect: /version "7".*NOT_FOUND/s,
      },
    ];
    const worker = await startTestWorker({}, plugins);
    try {
      for (const c of cases) {
        await worker.worker.putConnectorConfig(
          c.name,
          {
            ...connectorConfig(topic.input),
            'output.topic': `${topic.input}-${c.name}`,
            'errors.deadletterqueue.topic.name': `${topic.input}-${c.name}-dlq`,
            ...c.config,
          },
          false,
        );
      }
      for (const c of cases) {
        const trace = await waitFor(
          () => {
            const task = worker.worker.connectorStatus(c.name).tasks[0];
            return task?.state === 'FAILED' ? task.trace : undefined;
          },
          60_000,
          `${c.name} to fail`,
        );
        // Not TASK_START_FAILED: the start-up retries (oip.startup.timeout.ms) are for a server
        // that is not up yet, not for one that answered that it lacks the model.
        expect(trace, c.name).to.contain('MODEL_NOT_FOUND').and.match(c.expect);
        expect(await messageCount(`${topic.input}-${c.name}`), `${c.name} output`).to.equal(0);
        expect(await messageCount(`${topic.input}-${c.name}-dlq`), `${c.name} DLQ`).to.equal(0);
      }
    } finally {
      await worker.stop();
    }
  });

  it('when MLServer is down as the task starts, the task waits for it (oip.startup.timeout.ms) and then scores everything once', async () => {
    const rows = readCensusRows('test').slice(0, 500);
    const topic = await censusTopic('oip-late', rows, 1);
    await topic.produce(0, rows.length);
    expect(await stopMlserver()).to.equal('stopped');

    const worker = await startTestWorker({}, plugins);
    try {
      // The task's start (and so this call) waits for the model server, retrying with backoff.
      const starting = worker.worker.putConnectorConfig(
        'oip-late',
        connectorConfig(topic.input, { 'oip.startup.timeout.ms': 120_000 }),
        false,
      );
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(await messageCount(`${topic.input}-scored`)).to.equal(0);

      await startMlserver();
      await starting;
      const scored = await readTopic(`${topic.input}-scored`, rows.length, 120_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(worker.worker.connectorStatus('oip-late').tasks[0]?.state).to.equal('RUNNING');
      expect(scored.map((m) => m.key)).to.deep.equal(rows.map((_, i) => String(i)));
      expect(await messageCount(`${topic.input}-scored`)).to.equal(rows.length);
      expect(await messageCount(`${topic.input}-dlq`)).to.equal(0);
    } finally {
      await worker.stop();
    }
  });

  it('when MLServer stops mid-stream, records wait and retry, and after it is back every record is scored exactly once, none dead-lettered', async () => {
    const rows = readCensusRows('test').slice(0, 3000);
    const topic = await censusTopic('oip-down', rows, 2);
    await topic.produce(0, 1000);

    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig(
        'oip-down',
        connectorConfig(topic.input, {
          'breaker.volume.threshold': 4,
          'breaker.reset.timeout.ms': 2000,
          'breaker.rolling.window.ms': 10000,
          'oip.deadline.ms': 2000,
        }),
        false,
      );
      const reader = await TopicReader.start(`${topic.input}-scored`);
      await reader.waitFor(1000, 60_000);

      // MLServer goes away (SIGTERM to its process group, as `stack down` does); records keep coming.
      expect(await stopMlserver()).to.equal('stopped');
      await topic.produce(1000, rows.length);
      // While it is down nothing more is scored, and nothing is dead-lettered.
      await new Promise((resolve) => setTimeout(resolve, 5000));
      expect(reader.records.length).to.equal(1000);
      expect(await messageCount(`${topic.input}-dlq`)).to.equal(0);
      const status = await waitFor(
        async () => {
          const answer = (await (await fetch(`${worker.url}/connectors/oip-down/status`)).json()) as {
            tasks: Array<{ state: string }>;
          };
          return answer.tasks[0]?.state;
        },
        10_000,
        'the task status',
      );
      expect(status).to.equal('RUNNING');

      await startMlserver();
      await reader.waitFor(rows.length, 180_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(await messageCount(`${topic.input}-scored`)).to.equal(rows.length);
      expect(new Set(reader.records.map((m) => m.key)).size).to.equal(rows.length);
      expect(await messageCount(`${topic.input}-dlq`)).to.equal(0);
      await reader.stop();
    } finally {
      await worker.stop();
    }
  });
});
