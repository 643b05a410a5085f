// Topic helpers for integration tests against the real broker: create, produce per partition with
// the offsets Kafka gave, read everything back, and count what a topic holds.
import type { IHeaders } from 'kafkajs';
import { testKafka, uniqueName } from './stack.js';
import { waitFor } from './worker.js';

export async function createTopic(topic: string, numPartitions: number): Promise<void> {
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

export interface Produced {
  key: string;
  value: Buffer;
  headers: Record<string, string>;
  timestamp: string;
}

/**
 * Writes each partition's messages in order, one request per partition, and returns the offset
 * Kafka gave each message, by key.
 */
export async function producePartitions(
  topic: string,
  partitions: ReadonlyArray<readonly Produced[]>,
): Promise<Map<string, { partition: number; offset: string }>> {
  const producer = testKafka().producer();
  await producer.connect();
  const where = new Map<string, { partition: number; offset: string }>();
  try {
    for (let partition = 0; partition < partitions.length; partition++) {
      const messages = partitions[partition]!;
      if (messages.length === 0) continue;
      const [meta] = await producer.send({
        topic,
        messages: messages.map((m) => ({ ...m, partition })),
      });
      const base = BigInt(meta!.baseOffset ?? '0');
      messages.forEach((m, i) => where.set(m.key, { partition, offset: String(base + BigInt(i)) }));
    }
  } finally {
    await producer.disconnect();
  }
  return where;
}

export interface Consumed {
  partition: number;
  offset: string;
  key: string;
  value: Buffer | null;
  headers: IHeaders;
  timestamp: string;
}

export async function topicExists(topic: string): Promise<boolean> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).includes(topic);
  } finally {
    await admin.disconnect();
  }
}

/** A consumer reading `topic` from the start into `records`, in its own group. */
export class TopicReader {
  readonly records: Consumed[] = [];

  private constructor(
    readonly topic: string,
    private readonly consumer: ReturnType<ReturnType<typeof testKafka>['consumer']>,
  ) {}

  /** Resolves once the reader has joined its group, so what is written next is read promptly. */
  static async start(topic: string): Promise<TopicReader> {
    await waitFor(async () => (await topicExists(topic)) || undefined, 30_000, `topic ${topic} to exist`);
    const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
    const reader = new TopicReader(topic, consumer);
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => void (joined = true));
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) =>
        void reader.records.push({
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? '',
          value: message.value,
          headers: message.headers ?? {},
          timestamp: message.timestamp,
        }),
    });
    await waitFor(() => joined, 30_000, `a reader of ${topic} to join its group`);
    return reader;
  }

  /** Waits until `count` records arrived (or fails after `timeoutMs`). */
  async waitFor(count: number, timeoutMs = 60_000): Promise<Consumed[]> {
    await waitFor(
      () => this.records.length >= count,
      timeoutMs,
      `${count} records on ${this.topic} (have ${this.records.length})`,
    );
    return this.records;
  }

  async stop(): Promise<void> {
    await this.consumer.disconnect();
  }
}

/** Reads `topic` from the start until `count` records arrived (or fails after `timeoutMs`). */
export async function readTopic(topic: string, count: number, timeoutMs = 60_000): Promise<Consumed[]> {
  const reader = await TopicReader.start(topic);
  try {
    return await reader.waitFor(count, timeoutMs);
  } finally {
    await reader.stop();
  }
}

/** How many records `topic` holds (0 when it does not exist). */
export async function messageCount(topic: string): Promise<number> {
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
