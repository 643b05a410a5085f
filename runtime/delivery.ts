// Delivery of a consumer task's results: outputs and dead letters are written and acknowledged
// before the consumed offsets move (at-least-once), or written together with the consumed offsets
// in one Kafka transaction (exactly-once).
//
// Exactly-once uses one transactional producer per input partition, with the transactional id
// `connect-<connector>-<topic>-<partition>` (the scheme Kafka Streams used before KIP-447, which
// kafkajs 2.2.4 does not speak). Whoever owns a partition initializes its producer before reading
// the partition's committed offset; that fences every older owner (a worker that froze, a replica
// of the same config) whose open transaction is then aborted by the broker, so a record's output
// and its offset commit become visible once, whichever worker wrote them.
import {
  Partitioners,
  type Admin,
  type Kafka,
  type Message,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import type { Logger } from 'pino';
import type { DeadLetter, DeadLetterQueue } from './dead-letter-queue.js';
import { ConnectError, RetriableError } from './errors.js';
import { classifyProducerError } from './kafka-errors.js';
import { MAX_REQUEST_BYTES, recordSize, sendInRequests } from './kafka-clients.js';
import { tp, type TopicPartition } from './partition-pauses.js';

export interface OutputMessage {
  /** Position of the input record in its chunk. */
  index: number;
  topic: string;
  message: Message;
}

export interface DeliveryOptions {
  kafka: Kafka;
  groupId: string;
  connectorName: string;
  exactlyOnce: boolean;
  /** kafkajs producer options (overrides translated from Kafka's property names). */
  producerConfig: ProducerConfig;
  logger: Logger;
  /** Creates a topic again when a write finds it deleted (outputs, DLQ); throws FatalError when it cannot. */
  recreateTopic: (topic: string) => Promise<void>;
  onOffsetsCommitted?: () => void;
}

/** kafkajs' ConfigResourceTypes.TOPIC (a TypeScript enum: not importable by name from its CommonJS build). */
const TOPIC_RESOURCE = 2;
/** Kafka's default `max.message.bytes`, used until a topic's own value is known. */
const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588;
/** A record batch's fixed header (magic v2), counted once per one-record batch. */
const BATCH_OVERHEAD_BYTES = 61;

export class Delivery {
  private shared: Producer | undefined;
  private dlq: DeadLetterQueue | undefined;
  /** exactly_once: the producer of each input partition this task owns. */
  private readonly partitionProducers = new Map<TopicPartition, Producer>();
  /** exactly_once: partitions whose producer must be (re)initialized before their next write. */
  private readonly unclaimed = new Set<TopicPartition>();
  private readonly maxMessageBytes = new Map<string, number>();

  constructor(private readonly options: DeliveryOptions) {}

  /** The producer every non-transactional write uses (at-least-once; source-like helpers). */
  async start(): Promise<Producer | undefined> {
    if (this.options.exactlyOnce) return undefined;
    this.shared = this.createProducer();
    await this.shared.connect();
    return this.shared;
  }

  attachDeadLetterQueue(dlq: DeadLetterQueue): void {
    this.dlq = dlq;
  }

  /**
   * The largest record `topic` accepts (its `max.message.bytes`), read once per topic. Records
   * above it are bad records, found before anything is sent, so one of them never makes the
   * broker refuse a request full of good ones.
   */
  async loadLimits(admin: Admin, topics: readonly string[]): Promise<void> {
    const wanted = topics.filter((t) => !this.maxMessageBytes.has(t));
    if (wanted.length === 0) return;
    try {
      const described = await admin.describeConfigs({
        includeSynonyms: false,
        resources: wanted.map((name) => ({
          type: TOPIC_RESOURCE,
          name,
          configNames: ['max.message.bytes'],
        })),
      });
      for (const resource of described.resources) {
        const entry = resource.configEntries.find((e) => e.configName === 'max.message.bytes');
        const value = Number(entry?.configValue);
        if (Number.isFinite(value) && value > 0) this.maxMessageBytes.set(resource.resourceName, value);
      }
    } catch (error) {
      this.options.logger.debug(
        { err: error, topics: wanted },
        'could not read max.message.bytes; using the default',
      );
    }
  }

  forgetLimits(topic: string): void {
    this.maxMessageBytes.delete(topic);
  }

  /** Whether `message` fits `topic` (one record in its own batch). */
  fits(topic: string, message: Message): { fits: boolean; size: number; limit: number } {
    const limit = this.maxMessageBytes.get(topic) ?? DEFAULT_MAX_MESSAGE_BYTES;
    const size = recordSize(message) + BATCH_OVERHEAD_BYTES;
    return { fits: size <= limit, size, limit };
  }

  /** The largest request that keeps every batch under the topics' limits. */
  private requestBytes(topics: Iterable<string>): number {
    let bytes = MAX_REQUEST_BYTES;
    for (const topic of topics) {
      const limit = this.maxMessageBytes.get(topic);
      if (limit !== undefined) bytes = Math.min(bytes, limit - BATCH_OVERHEAD_BYTES);
    }
    return Math.max(1, bytes);
  }

  /**
   * A new group generation. exactly_once: producers of partitions this task lost are closed, and
   * every partition it owns is claimed again before its next write (another member may have
   * owned it in between, e.g. after this worker was dropped from the group during a freeze).
   */
  onAssignment(assignment: Record<string, number[]>): void {
    if (!this.options.exactlyOnce) return;
    const owned = new Set<TopicPartition>();
    for (const [topic, partitions] of Object.entries(assignment)) {
      for (const partition of partitions) owned.add(tp(topic, partition));
    }
    for (const key of [...this.partitionProducers.keys()]) {
      this.unclaimed.add(key);
      if (!owned.has(key)) void this.closePartitionProducer(key);
    }
  }

  /**
   * exactly_once: makes this task the owner of `topic`-`partition` (initializing its transactional
   * producer fences older owners) and returns the group's committed offset read after that, so
   * records a fenced owner already committed are skipped. Undefined: nothing to skip.
   */
  async claim(topic: string, partition: number): Promise<string | undefined> {
    if (!this.options.exactlyOnce) return undefined;
    const key = tp(topic, partition);
    if (this.partitionProducers.has(key) && !this.unclaimed.has(key)) return undefined;
    await this.closePartitionProducer(key);
    const producer = this.createProducer(`connect-${this.options.connectorName}-${topic}-${partition}`);
    try {
      await producer.connect();
      // kafkajs 2.2.4 initializes a transactional producer's id (InitProducerId with its
      // transactional.id, which fences older owners and waits out a transaction of theirs that is
      // still completing) only at its first transaction(), not at connect(). Open and abort an
      // empty one now (kafkajs sends no EndTxn for it), so the committed offset read below already
      // includes whatever a fenced owner committed; read before, it could miss a commit that was
      // completing and the chunk would be scored and written twice.
      const fence = await producer.transaction();
      await fence.abort();
    } catch (error) {
      await producer.disconnect().catch(() => undefined);
      throw classifyProducerError(error, { topics: [topic] });
    }
    this.partitionProducers.set(key, producer);
    const admin = this.options.kafka.admin();
    try {
      await admin.connect();
      const [fetched] = await admin.fetchOffsets({ groupId: this.options.groupId, topics: [topic] });
      const offset = fetched?.partitions.find((p) => p.partition === partition)?.offset;
      // Claimed only once the committed offset is known: a failure here claims again next time.
      this.unclaimed.delete(key);
      return offset !== undefined && Number(offset) >= 0 ? offset : undefined;
    } catch (error) {
      // A coordinator moving or not found yet (a broker restart, a freeze) is transient like any
      // Kafka error kafkajs marks retriable; the partition is redelivered and claimed again.
      this.unclaimed.add(key);
      throw classifyProducerError(error, { topics: [topic], stage: 'KAFKA_CONSUME' });
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  /**
   * Writes one chunk's outputs and dead letters. At-least-once: both are acknowledged when this
   * resolves; the caller then resolves the offsets. Exactly-once: both, plus the consumed offset up
   * to `commitUpTo`, in one transaction of the partition's producer; on failure it is aborted.
   * Throws the classified error (RetriableError, FatalError...).
   */
  async deliver(
    input: { topic: string; partition: number },
    outputs: readonly OutputMessage[],
    letters: readonly DeadLetter[],
    commitUpTo: string | undefined,
  ): Promise<void> {
    if (!this.options.exactlyOnce) {
      await this.write(this.shared!, outputs);
      if (letters.length > 0 && this.dlq) {
        try {
          await this.dlq.send(letters, this.shared!);
        } catch (error) {
          throw await this.recover(error as ConnectError, [this.dlq.topic]);
        }
      }
      return;
    }
    const key = tp(input.topic, input.partition);
    const producer = this.partitionProducers.get(key);
    if (!producer || this.unclaimed.has(key)) {
      throw new RetriableError(
        'KAFKA_PRODUCER_FENCED',
        `${input.topic}-${input.partition} is not claimed by this task in the current group generation; ` +
          'its records are redelivered',
        { stage: 'KAFKA_PRODUCE' },
      );
    }
    let transaction;
    try {
      transaction = await producer.transaction();
    } catch (error) {
      throw await this.onFailure(error, key, outputs);
    }
    try {
      await sendInRequests(transaction, outputs, this.requestBytes(new Set(outputs.map((o) => o.topic))));
      if (letters.length > 0 && this.dlq) await this.dlq.send(letters, transaction);
      if (commitUpTo !== undefined) {
        await transaction.sendOffsets({
          consumerGroupId: this.options.groupId,
          topics: [
            {
              topic: input.topic,
              partitions: [{ partition: input.partition, offset: (BigInt(commitUpTo) + 1n).toString() }],
            },
          ],
        });
      }
      await transaction.commit();
      if (commitUpTo !== undefined) this.options.onOffsetsCommitted?.();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw await this.onFailure(error, key, outputs);
    }
  }

  async stop(): Promise<void> {
    const producers = [this.shared, ...this.partitionProducers.values()].filter(
      (p): p is Producer => p !== undefined,
    );
    this.partitionProducers.clear();
    this.shared = undefined;
    const results = await Promise.allSettled(producers.map((p) => p.disconnect()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  private async write(producer: Producer, outputs: readonly OutputMessage[]): Promise<void> {
    if (outputs.length === 0) return;
    const topics = new Set(outputs.map((o) => o.topic));
    try {
      await sendInRequests(producer, outputs, this.requestBytes(topics));
    } catch (error) {
      throw await this.recover(classifyProducerError(error, { topics: [...topics] }), [...topics]);
    }
  }

  private async onFailure(
    error: unknown,
    key: TopicPartition,
    outputs: readonly OutputMessage[],
  ): Promise<ConnectError> {
    const topics = [...new Set(outputs.map((o) => o.topic))];
    if (this.dlq) topics.push(this.dlq.topic);
    const classified = classifyProducerError(error, { topics });
    // A fenced producer is useless; any transactional failure leaves its state unknown. Claim the
    // partition again (a new producer, a fresh committed offset) before the redelivery.
    if (classified.retriable) this.unclaimed.add(key);
    return this.recover(classified, topics);
  }

  /** Recreates deleted topics before the retry; refreshes limits after a size refusal. */
  private async recover(error: ConnectError, topics: string[]): Promise<ConnectError> {
    if (error.code === 'KAFKA_TOPIC_MISSING') {
      for (const topic of topics) await this.options.recreateTopic(topic);
    }
    if (error.code === 'KAFKA_RECORD_TOO_LARGE') {
      // The size check before sending missed it (the limit changed, or the broker's is lower):
      // forget the limits so they are read again, and redeliver instead of failing a whole chunk.
      for (const topic of topics) this.forgetLimits(topic);
      return new RetriableError('KAFKA_PRODUCE_FAILED', `${error.message}; the topic limits are read again`, {
        cause: error,
        stage: 'KAFKA_PRODUCE',
      });
    }
    return error;
  }

  private createProducer(transactionalId?: string): Producer {
    return this.options.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      ...this.options.producerConfig,
      ...(transactionalId ? { transactionalId, idempotent: true, maxInFlightRequests: 1 } : {}),
    });
  }

  private async closePartitionProducer(key: TopicPartition): Promise<void> {
    const producer = this.partitionProducers.get(key);
    if (!producer) return;
    this.partitionProducers.delete(key);
    await producer.disconnect().catch((error: unknown) => {
      this.options.logger.debug({ err: error, partition: key }, 'closing a partition producer failed');
    });
  }
}
