// The census example end to end against the real stack: Kafka, the schema registry and the model
// server. Records are produced as Confluent-framed Avro, scored by a TFServingInference task in a
// real worker, and read back with a plain @kafkajs/confluent-schema-registry client.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import avro from 'avsc';
import { expect } from 'chai';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type { IHeaders } from 'kafkajs';
import { builtinPlugins } from '../../connectors/index.js';
import { tfServingInferencePlugin } from '../../connectors/tf-serving/index.js';
import { parseCsvLine } from '../../connectors/file/csv.js';
import {
  modelServerControl,
  modelServerTarget,
  registryUrl,
  testKafka,
  uniqueName,
} from '../helpers/stack.js';
import { startTestWorker, waitFor } from '../helpers/worker.js';

const censusText = readFileSync(new URL('../../schemas/census.avsc', import.meta.url), 'utf8');
const censusSchema = JSON.parse(censusText) as {
  fields: Array<{ name: string; type: unknown; default?: unknown }>;
};
const censusType = avro.Type.forSchema(censusSchema as avro.Schema);
const exampleConfig = (
  JSON.parse(readFileSync(new URL('../../config/census-inference.json', import.meta.url), 'utf8')) as {
    config: Record<string, string>;
  }
).config;

/** The built-ins, with the inference plugin whether or not connectors/index.ts registers it yet. */
const plugins = builtinPlugins.includes(tfServingInferencePlugin)
  ? builtinPlugins
  : [...builtinPlugins, tfServingInferencePlugin];

type CensusRow = Record<string, string | number | null>;

function testSplit(): CensusRow[] {
  const lines = readFileSync(new URL('../../data/census/adult.test.csv', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const header = parseCsvLine(lines[0]!);
  const numeric = new Set(censusSchema.fields.filter((f) => f.type === 'long').map((f) => f.name));
  return lines.slice(1).map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      header.map((name, i) => [name, numeric.has(name) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

const frame = (id: number, body: Buffer): Buffer => {
  const header = Buffer.alloc(5);
  header.writeInt32BE(id, 1);
  return Buffer.concat([header, body]);
};

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

async function produce(
  topic: string,
  messages: Array<{ key: string; value: Buffer; partition?: number; headers?: IHeaders }>,
): Promise<void> {
  const producer = testKafka().producer();
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 2000) {
      await producer.send({ topic, messages: messages.slice(i, i + 2000) });
    }
  } finally {
    await producer.disconnect();
  }
}

interface Consumed {
  partition: number;
  key: string;
  value: Buffer | null;
  headers: IHeaders;
}

/** Reads `topic` from the start until `count` records arrived (or fails after `timeoutMs`). */
async function readTopic(topic: string, count: number, timeoutMs = 60_000): Promise<Consumed[]> {
  // The task creates its output and dead-letter topics as it starts.
  await waitFor(async () => (await topicExists(topic)) || undefined, 30_000, `topic ${topic} to exist`);
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const out: Consumed[] = [];
  await consumer.run({
    eachMessage: async ({ partition, message }) =>
      void out.push({
        partition,
        key: message.key?.toString() ?? '',
        value: message.value,
        headers: message.headers ?? {},
      }),
  });
  try {
    await waitFor(() => out.length >= count, timeoutMs, `${count} records on ${topic} (have ${out.length})`);
    return out;
  } finally {
    await consumer.disconnect();
  }
}

async function topicExists(topic: string): Promise<boolean> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
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

function connectorConfig(input: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...exampleConfig,
    topics: input,
    'output.topic': `${input}-scored`,
    'errors.deadletterqueue.topic.name': `${input}-dlq`,
    'tfserving.target': modelServerTarget,
    'key.converter': 'string',
    ...extra,
  };
}

const header = (m: Consumed, name: string) => m.headers[`__connect.errors.${name}`]?.toString();

describe('census inference end to end', function () {
  this.timeout(180_000);
  const registry = new SchemaRegistry({ host: registryUrl });

  afterEach(async () => {
    await fetch(`${modelServerControl}/reset`, { method: 'POST' });
  });

  it("scores the whole test split exactly once, in order per partition, at the model's own accuracy", async function () {
    this.timeout(240_000);
    const rows = testSplit();
    expect(rows).to.have.length(16_281);
    const input = uniqueName('census-split');
    await createTopic(input, 3);
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: censusText },
      { subject: `${input}-value` },
    );
    await produce(
      input,
      rows.map((row, i) => ({
        key: String(i),
        value: frame(id, censusType.toBuffer(row)),
        partition: i % 3,
      })),
    );

    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig('census-split', connectorConfig(input), false);
      const scored = await readTopic(`${input}-scored`, rows.length, 150_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));

      // Exactly once: every key once, nothing more.
      expect(scored).to.have.length(rows.length);
      expect(new Set(scored.map((m) => m.key)).size).to.equal(rows.length);
      expect(await messageCount(`${input}-dlq`)).to.equal(0);
      // In order per partition: each output partition holds its input partition's keys ascending.
      for (const partition of [0, 1, 2]) {
        const keys = scored.filter((m) => m.partition === partition).map((m) => Number(m.key));
        expect(keys.every((k) => k % 3 === partition)).to.equal(true);
        expect(keys).to.deep.equal([...keys].sort((a, b) => a - b));
      }

      // Decodable by a plain Confluent client, with the model's outputs and metadata.
      let correct = 0;
      for (const message of scored) {
        const value = (await registry.decode(message.value!)) as CensusRow & {
          predicted_class: string;
          probability: number;
        };
        if (value.predicted_class === rows[Number(message.key)]!.income) correct++;
      }
      const first = (await registry.decode(scored[0]!.value!)) as Record<string, unknown>;
      expect(first).to.include({ model_name: 'census', model_version: 1 });
      expect(first.probability).to.be.within(0, 1);
      expect(first.scored_at).to.be.a('number');
      const accuracy = correct / rows.length;
      const offline = (
        JSON.parse(
          readFileSync(
            join(homedir(), '.cache/infer-connect/models/census/1/assets.extra/metrics.json'),
            'utf8',
          ),
        ) as { accuracy: number }
      ).accuracy;
      expect(Math.abs(accuracy - offline), `accuracy ${accuracy} vs offline ${offline}`).to.be.below(0.001);

      // The output schema is registered under <output topic>-value.
      const latest = (await (
        await fetch(`${registryUrl}/subjects/${input}-scored-value/versions/latest`)
      ).json()) as { schema: string };
      const outputSchema = JSON.parse(latest.schema) as { fields: Array<{ name: string; type: unknown }> };
      expect(outputSchema.fields.map((f) => f.name)).to.include.members([
        'income',
        'predicted_class',
        'probability',
        'model_name',
        'model_version',
        'scored_at',
      ]);
      expect(outputSchema.fields.find((f) => f.name === 'scored_at')!.type).to.deep.equal([
        'null',
        { type: 'long', logicalType: 'timestamp-millis' },
      ]);
    } finally {
      await worker.stop();
    }
  });

  it('sends only the record with a null or mistyped feature to the DLQ, with headers naming the field; the other 255 of each batch are scored', async () => {
    const rows = testSplit().slice(0, 512);
    const input = uniqueName('census-poison');
    await createTopic(input, 1);
    const { id } = await registry.register(
      { type: SchemaType.AVRO, schema: censusText },
      { subject: `${input}-value` },
    );
    // Producers that wrote the same records with looser schemas: a nullable age, and an age that
    // may be a string. Both can feed the model in general, so only the bad values fail.
    const looser = (ageType: unknown) =>
      JSON.stringify({
        ...censusSchema,
        fields: censusSchema.fields.map((f) => (f.name === 'age' ? { name: 'age', type: ageType } : f)),
      });
    const nullable = await registry.register(
      { type: SchemaType.AVRO, schema: looser(['null', 'long']) },
      { subject: `${input}-nullable-value` },
    );
    const either = await registry.register(
      { type: SchemaType.AVRO, schema: looser(['long', 'string']) },
      { subject: `${input}-either-value` },
    );
    const nullableType = avro.Type.forSchema(JSON.parse(looser(['null', 'long'])) as avro.Schema);
    const eitherType = avro.Type.forSchema(JSON.parse(looser(['long', 'string'])) as avro.Schema, {
      wrapUnions: false,
    });
    const messages = rows.map((row, i) => {
      if (i === 100)
        return { key: String(i), value: frame(nullable.id, nullableType.toBuffer({ ...row, age: null })) };
      if (i === 356)
        return { key: String(i), value: frame(either.id, eitherType.toBuffer({ ...row, age: 'forty' })) };
      if (i === 101) return { key: String(i), value: frame(nullable.id, nullableType.toBuffer(row)) };
      return { key: String(i), value: frame(id, censusType.toBuffer(row)) };
    });
    await produce(input, messages);

    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig('census-poison', connectorConfig(input), false);
      const dlq = await readTopic(`${input}-dlq`, 2);
      const scored = await readTopic(`${input}-scored`, 510);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      expect(await messageCount(`${input}-scored`)).to.equal(510);
      expect(await messageCount(`${input}-dlq`)).to.equal(2);
      expect(scored.map((m) => m.key)).to.deep.equal(
        rows.map((_, i) => String(i)).filter((k) => k !== '100' && k !== '356'),
      );
      expect(dlq.map((m) => m.key)).to.deep.equal(['100', '356']);
      const [missing, mistyped] = dlq;
      expect(header(missing!, 'error.code')).to.equal('MODEL_INPUT_MISSING');
      expect(header(mistyped!, 'error.code')).to.equal('MODEL_INPUT_TYPE_MISMATCH');
      for (const letter of dlq) {
        expect(header(letter, 'field')).to.equal('age');
        expect(header(letter, 'tensor')).to.equal('age');
        expect(header(letter, 'model.name')).to.equal('census');
        expect(header(letter, 'model.signature')).to.equal('serving_default');
        expect(header(letter, 'stage')).to.equal('TASK_PROCESS');
        expect(header(letter, 'exception.message')).to.contain('"age"');
        expect(Buffer.compare(letter.value!, messages[Number(letter.key)]!.value)).to.equal(0);
      }
      expect(header(mistyped!, 'exception.message')).to.contain('"forty"');
    } finally {
      await worker.stop();
    }
  });

  it('registers a new output schema when the input schema gains an optional field mid-stream, losing nothing', async () => {
    const rows = testSplit().slice(0, 600);
    const input = uniqueName('census-evolve');
    await createTopic(input, 1);
    const v1 = await registry.register(
      { type: SchemaType.AVRO, schema: censusText },
      { subject: `${input}-value` },
    );
    const v2Schema = {
      ...censusSchema,
      fields: [...censusSchema.fields, { name: 'source', type: ['null', 'string'], default: null }],
    };
    const worker = await startTestWorker({}, plugins);
    try {
      await worker.worker.putConnectorConfig('census-evolve', connectorConfig(input), false);
      await produce(
        input,
        rows
          .slice(0, 300)
          .map((row, i) => ({ key: String(i), value: frame(v1.id, censusType.toBuffer(row)) })),
      );
      await readTopic(`${input}-scored`, 300);
      const v2 = await registry.register(
        { type: SchemaType.AVRO, schema: JSON.stringify(v2Schema) },
        { subject: `${input}-value` },
      );
      expect(v2.id).to.not.equal(v1.id);
      const v2Type = avro.Type.forSchema(v2Schema as avro.Schema);
      await produce(
        input,
        rows.slice(300).map((row, i) => ({
          key: String(300 + i),
          value: frame(v2.id, v2Type.toBuffer({ ...row, source: 'kiosk' })),
        })),
      );
      const scored = await readTopic(`${input}-scored`, 600);
      expect(scored.map((m) => m.key)).to.deep.equal(rows.map((_, i) => String(i)));
      const before = (await registry.decode(scored[299]!.value!)) as Record<string, unknown>;
      const after = (await registry.decode(scored[300]!.value!)) as Record<string, unknown>;
      expect(before).to.not.have.property('source');
      expect(after).to.include({ source: 'kiosk' });
      expect(after.predicted_class).to.be.oneOf(['<=50K', '>50K']);
      expect(scored[300]!.value!.readInt32BE(1)).to.not.equal(scored[299]!.value!.readInt32BE(1));
      const versions = (await (
        await fetch(`${registryUrl}/subjects/${input}-scored-value/versions`)
      ).json()) as number[];
      expect(versions).to.have.length(2);
      expect(await messageCount(`${input}-dlq`)).to.equal(0);
    } finally {
      await worker.stop();
    }
  });
});
