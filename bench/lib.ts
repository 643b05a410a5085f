// Shared pieces of the benchmarks: census records as Confluent-framed Avro on a fresh topic, a
// plain kafkajs consume -> produce baseline, and timing helpers. Everything targets the local
// stack on loopback and stops by itself.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { Kafka, logLevel, Partitioners, type Message } from 'kafkajs';
import { readCensusRows, type CensusRow } from '../dev/census.js';

export const repoRoot = resolve(import.meta.dirname, '..');
export const kafkaBootstrap = process.env.INFER_CONNECT_KAFKA ?? '127.0.0.1:9092';
export const registryUrl = process.env.INFER_CONNECT_REGISTRY ?? 'http://127.0.0.1:8081/apis/ccompat/v7';

export const kafka = new Kafka({
  clientId: 'infer-connect-bench',
  brokers: [kafkaBootstrap],
  logLevel: logLevel.NOTHING,
});
const patchedKafka = kafka;
const patchedPartitioners = Partitioners;

/** kafkajs 2.2.4 without patches/ (the `kafkajs-stock` dev dependency). */
async function stockKafkajs(): Promise<{ kafka: Kafka; Partitioners: typeof Partitioners }> {
  const stock = (await import('kafkajs-stock')) as unknown as { default: typeof import('kafkajs') };
  const { Kafka: StockKafka, Partitioners: stockPartitioners, logLevel: stockLogLevel } = stock.default;
  return {
    kafka: new StockKafka({
      clientId: 'infer-connect-bench-stock',
      brokers: [kafkaBootstrap],
      logLevel: stockLogLevel.NOTHING,
    }),
    Partitioners: stockPartitioners,
  };
}

export function censusRows(): CensusRow[] {
  return readCensusRows('test');
}

export const runId = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;

/** How `fillCensusTopic` keys its records; the default is `row-<i>`. */
export type RecordKey = (index: number, timestampMs: number) => string;

/**
 * Census rows as Confluent-framed Avro values, registered under `<topic>-value`. The rows cycle
 * through the census test split, so any count of records has the same shape.
 */
export async function encodedCensusValues(topic: string): Promise<Buffer[]> {
  const registry = new SchemaRegistry({ host: registryUrl });
  const schema = readFileSync(join(repoRoot, 'schemas/census.avsc'), 'utf8');
  const { id } = await registry.register({ type: SchemaType.AVRO, schema }, { subject: `${topic}-value` });
  return Promise.all(censusRows().map((row) => registry.encode(id, row)));
}

/** Creates `topic` with `partitions` and fills it with `count` census records (Avro, registered). */
export async function fillCensusTopic(
  topic: string,
  count: number,
  partitions: number,
  key: RecordKey = (i) => `row-${i}`,
): Promise<void> {
  await createTopic(topic, partitions);
  const encoded = await encodedCensusValues(topic);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const chunk = 5_000;
  for (let start = 0; start < count; start += chunk) {
    const messages: Message[] = [];
    for (let i = start; i < Math.min(count, start + chunk); i++) {
      const now = Date.now();
      messages.push({ key: key(i, now), value: encoded[i % encoded.length]!, timestamp: String(now) });
    }
    await producer.send({ topic, messages });
  }
  await producer.disconnect();
}

/**
 * Creates `topic`. With `logAppendTime` the broker stamps each record with its append time
 * (`message.timestamp.type=LogAppendTime`), which is how the benchmarks time outputs: the
 * producer's own timestamp (the input record's, kept by the connector) is replaced.
 */
export async function createTopic(
  topic: string,
  partitions: number,
  options: { logAppendTime?: boolean } = {},
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      {
        topic,
        numPartitions: partitions,
        ...(options.logAppendTime
          ? { configEntries: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }] }
          : {}),
      },
    ],
    waitForLeaders: true,
  });
  await admin.disconnect();
}

/** Sum of the end offsets of `topic` (its record count when nothing was deleted); 0 if it is missing. */
export async function endOffsetTotal(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
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

/** A running plain kafkajs consume -> produce loop (scenario a); see startPlainPassThrough. */
export interface PlainPassThrough {
  /** Records fetched and records whose copy Kafka acknowledged, so far. */
  readonly read: number;
  readonly sent: number;
  /** Resolves when the first batch arrived; rejects if the consumer crashes. */
  readonly firstBatch: Promise<number>;
  /** Called with the seconds each batch took (fetched -> copy acknowledged). */
  onBatch?: (seconds: number) => void;
  stop(): Promise<void>;
}

/**
 * Scenario a: plain kafkajs consume -> produce of the same bytes to the same partition number,
 * resolving each batch's offsets only after its copy is acknowledged (the delivery guarantee the
 * runtime gives), 4 partitions at a time like the worker. Runs until stopped.
 *
 * `client: 'stock'` runs it on kafkajs 2.2.4 as published (the `kafkajs-stock` alias, which
 * patches/ does not touch): what a user of plain kafkajs runs.
 */
export async function startPlainPassThrough(
  inputs: string[],
  output: string,
  client: 'patched' | 'stock' = 'patched',
): Promise<PlainPassThrough> {
  const { kafka, Partitioners } =
    client === 'stock' ? await stockKafkajs() : { kafka: patchedKafka, Partitioners: patchedPartitioners };
  const consumer = kafka.consumer({
    groupId: `bench-plain-${runId()}`,
    // kafkajs's and Kafka's default, as the worker under test uses.
    maxBytesPerPartition: 1024 * 1024,
    maxWaitTimeInMs: 100,
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await Promise.all([consumer.connect(), producer.connect()]);
  for (const topic of inputs) await consumer.subscribe({ topic, fromBeginning: true });
  const state = { read: 0, sent: 0 };
  let markFirst: (at: number) => void = () => {};
  let crashed: (error: Error) => void = () => {};
  const firstBatch = new Promise<number>((resolveFirst, reject) => {
    markFirst = resolveFirst;
    crashed = reject;
  });
  consumer.on(consumer.events.CRASH, (event) => crashed(event.payload.error));
  await consumer.run({
    partitionsConsumedConcurrently: 4,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const started = performance.now();
      if (state.read === 0) markFirst(started);
      state.read += batch.messages.length;
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
      state.sent += batch.messages.length;
      handle.onBatch?.((performance.now() - started) / 1000);
    },
  });
  const handle: PlainPassThrough = {
    get read() {
      return state.read;
    },
    get sent() {
      return state.sent;
    },
    firstBatch,
    async stop() {
      await consumer.disconnect();
      await producer.disconnect();
    },
  };
  return handle;
}

/** Scenario a, in process: copies `count` records from `input` to `output`; resolves with records/s. */
export async function plainKafkajsPassThrough(input: string, output: string, count: number): Promise<number> {
  const pipe = await startPlainPassThrough([input], output);
  const started = await pipe.firstBatch;
  while (pipe.sent < count) await sleep(5);
  const seconds = (performance.now() - started) / 1000;
  await pipe.stop();
  return count / seconds;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
