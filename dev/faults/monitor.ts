// Watches one case from outside while it runs: every `intervalMs` it reads the connector group's
// committed offsets (recording any decrease), the input's end offsets (to know when the worker has
// caught up) and the summed end offsets of the output and DLQ topics (to see output flowing).
// A poll that fails (a frozen or restarting broker) is skipped; the next one starts afresh.
import type { Admin, Kafka } from 'kafkajs';
import { committedOffsets, endOffsets } from './topics.js';
import { regressionsBetween, type OffsetRegression } from './verdict.js';

export interface Sample {
  at: number;
  committed: Map<number, number>;
  inputEnd: Map<number, number>;
  /** Sum of the end offsets of the output and DLQ topics. */
  flow: number;
}

const sum = (m: ReadonlyMap<number, number>) => [...m.values()].reduce((a, b) => a + Math.max(0, b), 0);

export class CaseMonitor {
  readonly samples: Sample[] = [];
  readonly regressions: OffsetRegression[] = [];
  private lastCommitted = new Map<number, number>();
  private running = false;
  private loop: Promise<void> | undefined;
  private admin: Admin | undefined;
  private readonly admins = new Set<Admin>();

  constructor(
    private readonly kafka: Kafka,
    private readonly options: {
      groupId: string;
      inputTopic: string;
      flowTopics: readonly string[];
      intervalMs?: number;
      pollTimeoutMs?: number;
    },
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    // Every admin ever created: one whose connect outlived its poll's timeout may still be open.
    const admins = [...this.admins];
    this.admins.clear();
    this.admin = undefined;
    await Promise.all(admins.map((admin) => admin.disconnect().catch(() => undefined)));
  }

  /** One poll now (also used for the final committed offsets); undefined when it failed. */
  async poll(): Promise<Sample | undefined> {
    const timeoutMs = this.options.pollTimeoutMs ?? 4000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const sample = await Promise.race([
        this.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`poll timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      this.record(sample);
      return sample;
    } catch {
      // A fresh admin next time: kafkajs' may be stuck on a connection to a dead broker.
      const admin = this.admin;
      this.admin = undefined;
      if (admin) {
        this.admins.delete(admin);
        void admin.disconnect().catch(() => undefined);
      }
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  latest(): Sample | undefined {
    return this.samples.at(-1);
  }

  /** True when the group has committed every input record (per partition). */
  caughtUp(sample = this.latest()): boolean {
    if (!sample || sample.inputEnd.size === 0) return false;
    return [...sample.inputEnd].every(([p, end]) => (sample.committed.get(p) ?? -1) >= end || end === 0);
  }

  /**
   * Seconds from `faultEnd` until every input partition's committed offset moved past where it
   * was at `faultEnd` (the last sample at or before it): the whole stream flows again, not just
   * one partition. Undefined when some partition never moved.
   */
  recoverySeconds(faultEnd: number): number | undefined {
    const before = this.samples.filter((s) => s.at <= faultEnd).at(-1);
    const after = this.samples.filter((s) => s.at > faultEnd);
    const partitions = new Set([...(before?.inputEnd.keys() ?? []), ...(after[0]?.inputEnd.keys() ?? [])]);
    if (partitions.size === 0) return undefined;
    let latest = faultEnd;
    for (const p of partitions) {
      const base = before?.committed.get(p) ?? -1;
      const moved = after.find((s) => (s.committed.get(p) ?? -1) > base);
      if (!moved) return undefined;
      latest = Math.max(latest, moved.at);
    }
    return (latest - faultEnd) / 1000;
  }

  private async run(): Promise<void> {
    const interval = this.options.intervalMs ?? 500;
    while (this.running) {
      const started = Date.now();
      await this.poll();
      const wait = interval - (Date.now() - started);
      if (wait > 0 && this.running) await new Promise((r) => setTimeout(r, wait));
    }
  }

  private async read(): Promise<Sample> {
    let admin = this.admin;
    if (!admin) {
      const fresh = this.kafka.admin();
      this.admins.add(fresh);
      await fresh.connect();
      // A connect that outlived its poll may finish after a newer one: keep the first, stop() closes both.
      admin = this.admin ??= fresh;
    }
    const committed = await committedOffsets(admin, this.options.groupId, this.options.inputTopic);
    const inputEnd = await endOffsets(admin, this.options.inputTopic);
    let flow = 0;
    for (const topic of this.options.flowTopics) flow += sum(await endOffsets(admin, topic));
    return { at: Date.now(), committed, inputEnd, flow };
  }

  private record(sample: Sample): void {
    this.samples.push(sample);
    this.regressions.push(...regressionsBetween(this.lastCommitted, sample.committed, sample.at));
    // Compared with the last value seen per partition: one decrease is one regression.
    for (const [p, offset] of sample.committed) this.lastCommitted.set(p, offset);
  }
}
