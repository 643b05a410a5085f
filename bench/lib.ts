// Shared pieces of the benchmarks: census records as Confluent-framed Avro on a fresh topic, a
// plain kafkajs consume -> produce baseline, and timing helpers. Everything targets the local
// stack on loopback and stops by itself.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { parseCsvLine } from '../connectors/file/csv.js';

export const repoRoot = resolve(import.meta.dirname, '..');
export const kafkaBootstrap = process.env.INFER_CONNECT_KAFKA ?? '127.0.0.1:9092';
export const registryUrl = process.env.INFER_CONNECT_REGISTRY ?? 'http://127.0.0.1:8081/apis/ccompat/v7';

export const kafka = new Kafka({
  clientId: 'infer-connect-bench',
  brokers: [kafkaBootstrap],
  logLevel: logLevel.NOTHING,
});

const integerColumns = new Set([
  'age',
  'fnlwgt',
  'education_num',
  'capital_gain',
  'capital_loss',
  'hours_per_week',
]);

export function censusRows(): Array<Record<string, string | number>> {
  const [header, ...lines] = readFileSync(join(repoRoot, 'data/census/adult.test.csv'), 'utf8')
    .trimEnd()
    .split('\n');
  const columns = parseCsvLine(header!);
  return lines.map((line) => {
    const cells = parseCsvLine(line);
    return Object.fromEntries(
      columns.map((c, i) => [c, integerColumns.has(c) ? Number(cells[i]) : cells[i]!]),
    );
  });
}

export const runId = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** Creates `topic` with `partitions` and fills it with `count` census records (Avro, registered). */
export async function fillCensusTopic(topic: string, count: number, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();
  const registry = new SchemaRegistry({ host: registryUrl });
  const schema = readFileSync(join(repoRoot, 'schemas/census.avsc'), 'utf8');
  const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject: `${topic}-value` });
  const rows = censusRows();
  const encoded = await Promise.all(rows.map((row) => registry.encode(id, row)));
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const chunk = 5_000;
  for (let start = 0; start < count; start += chunk) {
    const messages: Message[] = [];
    for (let i = start; i < Math.min(count, start + chunk); i++) {
      messages.push({ key: `row-${i}`, value: encoded[i % encoded.length]!, timestamp: String(Date.now()) });
    }
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

export async function createTopic(topic: string, partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  await admin.disconnect();
}

/** Sum of the committed offsets of `groupId` on `topic`. */
export async function committed(groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return (offsets?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Scenario a: plain kafkajs consume -> produce of the same bytes, committing after each batch is
 * acknowledged (the same delivery guarantee the runtime gives). Resolves with records/s.
 */
export async function plainKafkajsPassThrough(input: string, output: string, count: number): Promise<number> {
  const consumer = kafka.consumer({
    groupId: `bench-plain-${runId()}`,
    maxBytesPerPartition: 4 * 1024 * 1024,
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await Promise.all([consumer.connect(), producer.connect()]);
  await consumer.subscribe({ topic: input, fromBeginning: true });
  let done = 0;
  let started = 0;
  let markFinished = () => {};
  const finishedSignal = new Promise<void>((r) => (markFinished = r));
  const finished = new Promise<void>((resolveDone, reject) => {
    consumer.on(consumer.events.CRASH, (event) => reject(event.payload.error));
    const keepAlive = setInterval(() => undefined, 1000);
    void finishedSignal.then(() => clearInterval(keepAlive));
    void consumer.run({
      partitionsConsumedConcurrently: 4,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset }) => {
        if (started === 0) started = performance.now();
        // Stay under the broker's 1 MB max message size per produce request.
        for (let i = 0; i < batch.messages.length; i += 2_000) {
          await producer.send({
            topic: output,
            messages: batch.messages
              .slice(i, i + 2_000)
              .map((m) => ({ key: m.key, value: m.value, headers: m.headers, partition: batch.partition })),
          });
        }
        resolveOffset(batch.lastOffset());
        done += batch.messages.length;
        if (done >= count) {
          resolveDone();
          markFinished();
        }
      },
    });
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await Promise.all([consumer.disconnect(), producer.disconnect()]);
  return count / seconds;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
