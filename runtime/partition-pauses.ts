// Which input partitions of a consumer task are paused, and why. Two reasons exist and never
// undo each other: the user paused the connector (all partitions), or a transient failure
// outlasted `errors.retry.timeout` on one partition, which then waits for its redelivery time.
// A partition is fetched only when neither applies.
//
// Every change is applied to kafkajs per partition (never per topic: a topic-wide pause followed
// by a partition resume would un-pause that partition for good), only for partitions the consumer
// owns in the current generation, and never throws: kafkajs' pause/resume/seek throw while the
// consumer has not joined its group yet or is rebuilding it, and the desired state is applied
// again on every group join.
import type { Consumer } from 'kafkajs';
import type { Logger } from 'pino';

export type TopicPartition = `${string}:${number}`;

export const tp = (topic: string, partition: number): TopicPartition => `${topic}:${partition}`;

function split(key: TopicPartition): { topic: string; partition: number } {
  const at = key.lastIndexOf(':');
  return { topic: key.slice(0, at), partition: Number(key.slice(at + 1)) };
}

interface Redelivery {
  /** First offset not yet delivered: where consumption resumes. */
  offset: string;
  timer: NodeJS.Timeout;
}

export interface PartitionPausesOptions {
  logger: Logger;
  /** Called whenever the number of partitions paused for redelivery changes. */
  onCountChange?: (count: number) => void;
  setTimer?: (fn: () => void, ms: number) => NodeJS.Timeout;
  clearTimer?: (timer: NodeJS.Timeout) => void;
}

export class PartitionPauses {
  private consumer: Pick<Consumer, 'pause' | 'resume' | 'seek'> | undefined;
  private userPaused = false;
  private stopped = false;
  private readonly assigned = new Set<TopicPartition>();
  private readonly redeliveries = new Map<TopicPartition, Redelivery>();
  private readonly setTimer: (fn: () => void, ms: number) => NodeJS.Timeout;
  private readonly clearTimer: (timer: NodeJS.Timeout) => void;

  constructor(private readonly options: PartitionPausesOptions) {
    this.setTimer = options.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = options.clearTimer ?? ((timer) => clearTimeout(timer));
  }

  /** The consumer to drive, once created (before it has joined its group). */
  attach(consumer: Pick<Consumer, 'pause' | 'resume' | 'seek'>): void {
    this.consumer = consumer;
  }

  get paused(): boolean {
    return this.userPaused;
  }

  /** Partitions waiting for redelivery, as `topic:partition`. */
  waiting(): TopicPartition[] {
    return [...this.redeliveries.keys()];
  }

  /** The offset a waiting partition resumes at. */
  resumeOffset(topic: string, partition: number): string | undefined {
    return this.redeliveries.get(tp(topic, partition))?.offset;
  }

  isAssigned(topic: string, partition: number): boolean {
    return this.assigned.has(tp(topic, partition));
  }

  /**
   * A new generation of the group: `assignment` is what this consumer owns now. Redeliveries of
   * partitions that moved away are dropped (the new owner starts from the committed offset, which
   * never passed the first undelivered record), and the desired pause state is applied again.
   */
  onAssignment(assignment: Record<string, number[]>): void {
    const next = new Set<TopicPartition>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) next.add(tp(topic, partition));
    }
    const lost = [...this.redeliveries.keys()].filter((key) => !next.has(key));
    for (const key of lost) this.dropRedelivery(key);
    this.assigned.clear();
    for (const key of next) this.assigned.add(key);
    // The consumer starts a new generation at the committed offsets, so a redelivery seek is
    // not needed again; kept partitions stay paused until their timer fires.
    this.applyAll();
  }

  pauseAll(): void {
    this.userPaused = true;
    this.applyAll();
  }

  resumeAll(): void {
    this.userPaused = false;
    this.applyAll();
  }

  /**
   * Pauses one partition until `delayMs` passed, rewound to `offset` (its first undelivered
   * record), then lets it be fetched again unless the user paused the connector meanwhile.
   */
  pauseForRedelivery(topic: string, partition: number, offset: string, delayMs: number): void {
    if (this.stopped) return;
    const key = tp(topic, partition);
    const previous = this.redeliveries.get(key);
    if (previous) this.clearTimer(previous.timer);
    const timer = this.setTimer(() => this.endRedelivery(key), delayMs);
    this.redeliveries.set(key, { offset, timer });
    this.options.onCountChange?.(this.redeliveries.size);
    this.safely('pause', () => this.consumer?.pause([{ topic, partitions: [partition] }]));
    this.safely('seek', () => this.consumer?.seek({ topic, partition, offset }));
  }

  /** Clears every timer; nothing is resumed afterwards. Idempotent. */
  stop(): void {
    this.stopped = true;
    for (const { timer } of this.redeliveries.values()) this.clearTimer(timer);
    this.redeliveries.clear();
    this.options.onCountChange?.(0);
  }

  private endRedelivery(key: TopicPartition): void {
    if (!this.redeliveries.delete(key)) return;
    this.options.onCountChange?.(this.redeliveries.size);
    if (this.stopped) return;
    this.apply(key);
  }

  private dropRedelivery(key: TopicPartition): void {
    const entry = this.redeliveries.get(key);
    if (!entry) return;
    this.clearTimer(entry.timer);
    this.redeliveries.delete(key);
    this.options.onCountChange?.(this.redeliveries.size);
    // kafkajs keeps a partition's pause flag across generations: clear it, so the partition is
    // not stuck paused if it comes back to this consumer later.
    const { topic, partition } = split(key);
    this.safely('resume', () => this.consumer?.resume([{ topic, partitions: [partition] }]));
  }

  private applyAll(): void {
    for (const key of this.assigned) this.apply(key);
  }

  private apply(key: TopicPartition): void {
    if (!this.assigned.has(key)) return;
    const { topic, partition } = split(key);
    const pause = this.userPaused || this.redeliveries.has(key);
    if (pause) this.safely('pause', () => this.consumer?.pause([{ topic, partitions: [partition] }]));
    else this.safely('resume', () => this.consumer?.resume([{ topic, partitions: [partition] }]));
  }

  private safely(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      // The consumer is not in a group right now; the state is applied again on the next join.
      this.options.logger.debug({ err: error, what }, 'consumer not ready; pause state applied on next join');
    }
  }
}
