// Reads what a scenario wrote. Every input record the bench produces is keyed
// `<tag>:<epoch ms>:<seq>` (tag `b` for a backlog, `p` for a latency probe, `f25` ... for the
// paced phases), and every output topic is created with LogAppendTime, so each output record
// carries its input's creation time (in the key) and its own append time (the broker's stamp).
import { kafka, runId, endOffsetTotal } from './lib.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const recordKey = (tag: string) => (seq: number, timestampMs: number) =>
  `${tag}:${timestampMs}:${seq}`;

/** The outputs of one tag. */
export interface TagStats {
  count: number;
  /** Distinct keys: count - unique are duplicates (at-least-once redeliveries). */
  unique: number;
  firstAppendMs: number;
  lastAppendMs: number;
  /** Output append time - input creation time, ms; only for the tags asked for. */
  latenciesMs: number[];
  /** Every append time, ascending. */
  appendTimesMs: Float64Array;
}

/**
 * Reads `topic` from the beginning up to its end offsets at call time and groups the records by
 * key tag. `latencyTags` are the tags whose per-record latencies are kept.
 */
export async function readOutputTopic(
  topic: string,
  latencyTags: ReadonlySet<string>,
  timeoutMs = 120_000,
): Promise<Map<string, TagStats>> {
  const expected = await endOffsetTotal(topic);
  const byTag = new Map<
    string,
    Omit<TagStats, 'appendTimesMs'> & { keys: Set<string>; appended: number[] }
  >();
  if (expected === 0) return new Map();
  // A short fetch wait: disconnect() waits for the fetch in flight, which would otherwise idle 5 s.
  const consumer = kafka.consumer({
    groupId: `bench-reader-${runId()}`,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  await consumer.run({
    partitionsConsumedConcurrently: 4,
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        const key = message.key?.toString('latin1') ?? '';
        const first = key.indexOf(':');
        const second = key.indexOf(':', first + 1);
        const tag = first > 0 && second > first ? key.slice(0, first) : 'other';
        let stats = byTag.get(tag);
        if (!stats) {
          stats = {
            count: 0,
            unique: 0,
            firstAppendMs: Infinity,
            lastAppendMs: -Infinity,
            latenciesMs: [],
            appended: [],
            keys: new Set(),
          };
          byTag.set(tag, stats);
        }
        const appended = Number(message.timestamp);
        stats.count++;
        stats.keys.add(key);
        stats.appended.push(appended);
        if (appended < stats.firstAppendMs) stats.firstAppendMs = appended;
        if (appended > stats.lastAppendMs) stats.lastAppendMs = appended;
        if (latencyTags.has(tag)) stats.latenciesMs.push(appended - Number(key.slice(first + 1, second)));
      }
      seen += batch.messages.length;
    },
  });
  const deadline = Date.now() + timeoutMs;
  while (seen < expected && Date.now() < deadline) await sleep(50);
  await consumer.disconnect();
  if (seen < expected) throw new Error(`read only ${seen} of ${expected} records of ${topic} in time`);
  return new Map(
    [...byTag].map(
      ([tag, { keys, appended, ...stats }]) =>
        [tag, { ...stats, unique: keys.size, appendTimesMs: Float64Array.from(appended).sort() }] as const,
    ),
  );
}
