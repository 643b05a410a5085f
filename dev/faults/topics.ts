// Kafka access for the fault harness: its own clients (short timeouts, so a frozen broker makes a
// call fail in seconds instead of hanging the harness), topic set-up, and reading a topic back to
// its end, which is where every verdict starts.
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin, type ITopicConfig } from 'kafkajs';
import type { TopicRecord } from './verdict.js';

export function harnessKafka(bootstrap: string, clientId = 'infer-connect-faults'): Kafka {
  return new Kafka({
    clientId,
    brokers: [bootstrap],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
    requestTimeout: 5000,
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
  });
}

/** Runs `fn` with a connected admin client and disconnects it afterwards. */
export async function withAdmin<T>(kafka: Kafka, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

export async function createTopics(kafka: Kafka, topics: ITopicConfig[]): Promise<void> {
  await withAdmin(kafka, async (admin) => {
    const created = await admin.createTopics({ topics, waitForLeaders: true });
    if (!created) throw new Error(`topics ${topics.map((t) => t.topic).join(', ')} already exist`);
  });
}

export async function topicExists(kafka: Kafka, topic: string): Promise<boolean> {
  return withAdmin(kafka, async (admin) => (await admin.listTopics()).includes(topic));
}

/** High watermark per partition; an empty map when the topic does not exist. */
export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) out.set(p.partition, Number(p.high));
  } catch (error) {
    if (!/does not host this topic-partition|UNKNOWN_TOPIC|not found/i.test((error as Error).message))
      throw error;
  }
  return out;
}

/** The group's committed offset (next offset to read; -1 when none) per partition of `topic`. */
export async function committedOffsets(
  admin: Admin,
  groupId: string,
  topic: string,
): Promise<Map<number, number>> {
  const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((entry?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
}

const headerText = (headers: Record<string, unknown> | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined && first !== null)
      out[name] = Buffer.isBuffer(first) ? first.toString('utf8') : String(first);
  }
  return out;
};

export interface ReadResult {
  records: TopicRecord[];
  partitions: number;
  /** False when the reader gave up before reaching the end (e.g. a transaction left open). */
  complete: boolean;
}

/**
 * Reads every record of `topic` from the start up to the end offsets it has when the read starts.
 * With `readCommitted`, records of aborted or still open transactions are skipped, as a
 * `read_committed` consumer sees them; the read is complete once each partition's consumed
 * position (control records included) reached its end, or incomplete after `timeoutMs`.
 */
export async function readTopic(
  kafka: Kafka,
  topic: string,
  options: { readCommitted: boolean; timeoutMs: number },
): Promise<ReadResult> {
  const ends = await withAdmin(kafka, (admin) => endOffsets(admin, topic));
  const records: TopicRecord[] = [];
  const position = new Map<number, number>();
  const unfinished = () => [...ends].filter(([p, end]) => end > 0 && (position.get(p) ?? -1) < end - 1);
  if (ends.size === 0 || unfinished().length === 0) return { records, partitions: ends.size, complete: true };

  const consumer = kafka.consumer({
    groupId: `faults-reader-${randomBytes(6).toString('hex')}`,
    readUncommitted: !options.readCommitted,
    maxWaitTimeInMs: 100,
    allowAutoTopicCreation: false,
  });
  const advance = (partition: number, offset: number) =>
    position.set(partition, Math.max(position.get(partition) ?? -1, offset));
  // Batches made only of control records or aborted data reach no handler, but this event.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) =>
    advance(payload.partition, Number(payload.lastOffset)),
  );
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          const offset = Number(message.offset);
          if (offset >= (ends.get(batch.partition) ?? 0)) continue;
          records.push({
            partition: batch.partition,
            offset,
            id: message.key ? message.key.toString('utf8') : null,
            headers: headerText(message.headers),
          });
        }
      },
    });
    const deadline = Date.now() + options.timeoutMs;
    while (unfinished().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return { records: dedupe(records), partitions: ends.size, complete: unfinished().length === 0 };
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}

/** A rebalance can hand the reader a batch twice; one record per (partition, offset) is kept. */
function dedupe(records: TopicRecord[]): TopicRecord[] {
  const seen = new Set<string>();
  return records
    .filter((r) => {
      const key = `${r.partition}@${r.offset}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.partition - b.partition || a.offset - b.offset);
}
