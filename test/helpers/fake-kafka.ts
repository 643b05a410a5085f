// An in-memory stand-in for the parts of a kafkajs `Kafka` that the task runners use, for unit
// tests of the runners: the test drives the consumer (group joins, batches), scripts producer
// failures, and reads what was produced and committed. It behaves like kafkajs where the runners
// depend on it: pause/resume/seek throw before `run()` like kafkajs' "Consumer group was not
// initialized", transactions commit or abort as a unit.
import { EventEmitter } from 'node:events';
import type { EachBatchPayload, KafkaMessage, Message, ProducerBatch } from 'kafkajs';

export interface Produced {
  topic: string;
  message: Message;
  transactionalId?: string;
}

type Failure = Error | ((batch: ProducerBatch) => Error | undefined);

export class FakeProducer {
  connected = false;
  readonly sent: Produced[] = [];
  /** Errors thrown by the next sendBatch calls, in order (a function may inspect the batch). */
  readonly failures: Failure[] = [];
  sendCalls = 0;

  constructor(
    private readonly kafka: FakeKafka,
    readonly transactionalId?: string,
  ) {}

  async connect(): Promise<void> {
    this.connected = true;
    if (this.transactionalId) this.kafka.fence(this);
  }

  async disconnect(): Promise<void> {
    this.connected = false;
  }

  async sendBatch(batch: ProducerBatch, into: Produced[] = this.sent): Promise<unknown[]> {
    this.sendCalls++;
    const failure = this.failures.shift();
    const error = typeof failure === 'function' ? failure(batch) : failure;
    if (error) throw error;
    if (this.transactionalId && this.kafka.fenced.has(this)) {
      throw Object.assign(new Error('producer fenced'), {
        name: 'KafkaJSProtocolError',
        type: 'INVALID_PRODUCER_EPOCH',
        retriable: false,
      });
    }
    for (const { topic, messages } of batch.topicMessages ?? []) {
      for (const message of messages) into.push({ topic, message, transactionalId: this.transactionalId });
    }
    return [];
  }

  async transaction() {
    const pending: Produced[] = [];
    const offsets: Array<{ topic: string; partition: number; offset: string }> = [];
    return {
      sendBatch: (batch: ProducerBatch) => this.sendBatch(batch, pending),
      sendOffsets: async (o: {
        topics: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>;
      }) => {
        for (const t of o.topics) for (const p of t.partitions) offsets.push({ topic: t.topic, ...p });
      },
      commit: async () => {
        if (this.kafka.fenced.has(this)) {
          throw Object.assign(new Error('producer fenced'), {
            name: 'KafkaJSProtocolError',
            type: 'INVALID_PRODUCER_EPOCH',
            retriable: false,
          });
        }
        this.sent.push(...pending);
        for (const o of offsets) this.kafka.committed.set(`${o.topic}:${o.partition}`, o.offset);
      },
      abort: async () => {
        this.kafka.aborted++;
      },
      isActive: () => true,
    };
  }
}

export class FakeConsumer extends EventEmitter {
  readonly events = { GROUP_JOIN: 'group-join', COMMIT_OFFSETS: 'commit', CRASH: 'crash' };
  running = false;
  eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  readonly paused = new Set<string>();
  readonly seeks: Array<{ topic: string; partition: number; offset: string }> = [];
  readonly commits: Array<{ topic: string; partition: number; offset: string }> = [];
  /** While true, pause/resume/seek throw as kafkajs does while it rebuilds its group. */
  rebuilding = false;
  disconnected = false;

  constructor(private readonly kafka: FakeKafka) {
    super();
  }

  async connect(): Promise<void> {}
  async subscribe(): Promise<void> {}
  async run(options: { eachBatch: (payload: EachBatchPayload) => Promise<void> }): Promise<void> {
    this.eachBatch = options.eachBatch;
    this.running = true;
    this.kafka.consumerRunning();
  }
  async disconnect(): Promise<void> {
    this.disconnected = true;
  }

  private guard(): void {
    if (!this.running || this.rebuilding) {
      throw new Error('Consumer group was not initialized, consumer#run must be called first');
    }
  }

  pause(list: Array<{ topic: string; partitions?: number[] }>): void {
    this.guard();
    for (const { topic, partitions } of list)
      for (const p of partitions ?? []) this.paused.add(`${topic}:${p}`);
  }

  resume(list: Array<{ topic: string; partitions?: number[] }>): void {
    this.guard();
    for (const { topic, partitions } of list)
      for (const p of partitions ?? []) this.paused.delete(`${topic}:${p}`);
  }

  seek(seek: { topic: string; partition: number; offset: string }): void {
    this.guard();
    this.seeks.push(seek);
  }

  async commitOffsets(list: Array<{ topic: string; partition: number; offset: string }>): Promise<void> {
    for (const c of list) {
      this.commits.push(c);
      this.kafka.committed.set(`${c.topic}:${c.partition}`, c.offset);
    }
  }

  join(assignment: Record<string, number[]>): void {
    this.emit('group-join', { payload: { memberAssignment: assignment } });
  }

  /** Delivers one batch the way kafkajs' eachBatch does and returns the offsets it resolved. */
  async deliver(
    topic: string,
    partition: number,
    messages: Array<{ offset: number; key?: string; value: string | Buffer }>,
    highWatermark = messages[messages.length - 1]!.offset + 1,
  ): Promise<string[]> {
    const resolved: string[] = [];
    const batch = {
      topic,
      partition,
      highWatermark: String(highWatermark),
      messages: messages.map((m): KafkaMessage => ({
        offset: String(m.offset),
        key: m.key === undefined ? null : Buffer.from(m.key),
        value: typeof m.value === 'string' ? Buffer.from(m.value) : m.value,
        timestamp: '1700000000000',
        attributes: 0,
        headers: {},
      })),
    };
    await this.eachBatch!({
      batch,
      resolveOffset: (offset: string) => void resolved.push(offset),
      heartbeat: async () => {},
      isRunning: () => true,
      isStale: () => false,
      commitOffsetsIfNecessary: async () => {
        const last = resolved[resolved.length - 1];
        if (last !== undefined)
          await this.commitOffsets([{ topic, partition, offset: String(Number(last) + 1) }]);
      },
      commitOffsets: async () => {},
      uncommittedOffsets: () => ({ topics: [] }),
      pause: () => () => {},
    } as unknown as EachBatchPayload);
    return resolved;
  }
}

export class FakeKafka {
  readonly producers: FakeProducer[] = [];
  readonly consumers: FakeConsumer[] = [];
  readonly committed = new Map<string, string>();
  readonly topics = new Map<string, { partitions: number; maxMessageBytes?: number }>();
  readonly fenced = new Set<FakeProducer>();
  aborted = 0;
  /** Errors thrown by the next admin.fetchOffsets calls, in order. */
  readonly adminFailures: Error[] = [];
  /** Failures for the next producers created, e.g. a connect that fails. */
  private runWaiters: Array<() => void> = [];

  fence(newer: FakeProducer): void {
    for (const p of this.producers) {
      if (p !== newer && p.transactionalId === newer.transactionalId) this.fenced.add(p);
    }
  }

  producer(options: { transactionalId?: string } = {}): FakeProducer {
    const producer = new FakeProducer(this, options.transactionalId);
    this.producers.push(producer);
    return producer;
  }

  consumer(): FakeConsumer {
    const consumer = new FakeConsumer(this);
    this.consumers.push(consumer);
    return consumer;
  }

  consumerRunning(): void {
    for (const waiter of this.runWaiters.splice(0)) waiter();
  }

  /** Resolves once a consumer of this fake has called run(). */
  untilRunning(): Promise<FakeConsumer> {
    const running = this.consumers.find((c) => c.running);
    if (running) return Promise.resolve(running);
    return new Promise((resolve) =>
      this.runWaiters.push(() => resolve(this.consumers.find((c) => c.running)!)),
    );
  }

  admin() {
    return {
      connect: async () => {},
      disconnect: async () => {},
      listTopics: async () => [...this.topics.keys()],
      createTopics: async ({ topics }: { topics: Array<{ topic: string; numPartitions: number }> }) => {
        for (const t of topics) this.topics.set(t.topic, { partitions: Math.max(1, t.numPartitions) });
        return true;
      },
      fetchTopicMetadata: async ({ topics }: { topics: string[] }) => ({
        topics: topics.map((name) => ({
          name,
          partitions: Array.from({ length: this.topics.get(name)?.partitions ?? 0 }, (_, i) => ({
            partitionId: i,
          })),
        })),
      }),
      describeConfigs: async ({ resources }: { resources: Array<{ name: string }> }) => ({
        resources: resources.map(({ name }) => ({
          resourceName: name,
          configEntries: [
            {
              configName: 'max.message.bytes',
              configValue: String(this.topics.get(name)?.maxMessageBytes ?? 1_048_588),
            },
          ],
        })),
      }),
      fetchOffsets: async ({ topics }: { topics: string[] }) => {
        const failure = this.adminFailures.shift();
        if (failure) throw failure;
        return topics.map((topic) => ({
          topic,
          partitions: Array.from({ length: this.topics.get(topic)?.partitions ?? 0 }, (_, partition) => ({
            partition,
            offset: this.committed.get(`${topic}:${partition}`) ?? '-1',
          })),
        }));
      },
      fetchTopicOffsets: async (topic: string) =>
        Array.from({ length: this.topics.get(topic)?.partitions ?? 0 }, (_, partition) => ({
          partition,
          high: '1000',
          low: '0',
          offset: '1000',
        })),
    };
  }
}
