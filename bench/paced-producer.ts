// An open-loop producer for the latency scenarios: writes census records at a fixed rate, each
// stamped (timestamp and key) with the moment it is created, while the worker runs. Open loop: it
// never waits for the worker, so queueing in the pipeline shows up as latency.
import { setTimeout as sleep } from 'node:timers/promises';
import { Partitioners, type Message, type Producer } from 'kafkajs';
import { encodedCensusValues, kafka } from './lib.js';
import { recordKey } from './output-topic.js';

const TICK_MS = 10;
const MAX_OUTSTANDING_SENDS = 64;
// A late tick at 100k+ records/s owes many records: split them so that no partition's batch
// nears the broker's 1 MB message.max.bytes (census records are about 150 bytes).
const MAX_MESSAGES_PER_SEND = 2_000;

export class PacedProducer {
  private constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly values: Buffer[],
  ) {}

  static async open(topic: string): Promise<PacedProducer> {
    const values = await encodedCensusValues(topic);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    return new PacedProducer(producer, topic, values);
  }

  /**
   * Writes `ratePerSecond` records per second for `seconds`, keyed `<tag>:<ms>:<seq>`; resolves
   * with how many were written (all acknowledged) once the last send is acknowledged.
   */
  async run(tag: string, ratePerSecond: number, seconds: number): Promise<number> {
    const key = recordKey(tag);
    const outstanding = new Set<Promise<unknown>>();
    const started = performance.now();
    const total = Math.max(1, Math.round(ratePerSecond * seconds));
    let produced = 0;
    while (produced < total) {
      const due =
        Math.min(total, Math.floor((ratePerSecond * (performance.now() - started)) / 1000)) - produced;
      if (due > 0) {
        const now = Date.now();
        const messages: Message[] = [];
        for (let i = 0; i < Math.min(due, MAX_MESSAGES_PER_SEND); i++, produced++) {
          messages.push({
            key: key(produced, now),
            value: this.values[produced % this.values.length]!,
            timestamp: String(now),
          });
        }
        const send = this.producer.send({ topic: this.topic, messages });
        outstanding.add(send);
        void send.finally(() => outstanding.delete(send)).catch(() => undefined);
        if (outstanding.size >= MAX_OUTSTANDING_SENDS) await Promise.race(outstanding);
        if (due > MAX_MESSAGES_PER_SEND) continue;
      }
      await sleep(TICK_MS);
    }
    await Promise.all(outstanding);
    return produced;
  }

  async close(): Promise<void> {
    await this.producer.disconnect();
  }
}
