// Runs a sink or processor task: consumes its topics in the group `connect-<name>`, converts,
// calls the task, writes outputs and dead letters, and only then resolves the consumed offsets
// (at-least-once: an offset is committed only after everything derived from it is acknowledged).
//
// Records of one partition are handled strictly in order, one chunk at a time, so the output keeps
// each input partition's order; partitions run concurrently up to `partitionsConcurrency`.
// Transient failures are retried with capped exponential backoff until `errors.retry.timeout`;
// then the partition is paused, rewound to the first unfinished offset and resumed later, so the
// records are redelivered instead of dead-lettered.
import {
  Partitioners,
  type Consumer,
  type EachBatchPayload,
  type IHeaders,
  type KafkaMessage,
  type Message,
  type Producer,
} from 'kafkajs';
import type {
  ConnectRecord,
  OutputRecord,
  ProcessorPlugin,
  ProcessorTask,
  SinkPlugin,
  SinkTask,
  TaskContext,
} from './api.js';
import { backoffDelay, interruptibleSleep } from './backoff.js';
import { DeadLetterQueue, type DeadLetter } from './dead-letter-queue.js';
import { ConnectError, FatalError, outcomeOf, RetriableError, traceOf, type Stage } from './errors.js';
import type { ObservedState } from './herder.js';
import { topicsPattern } from './config/connector-config.js';
import { ensureTopic, kafkaClientOverrides, sendInRequests } from './kafka-clients.js';
import { taskLabels, type RunnerDependencies, type TaskRunner } from './task-runner.js';

const HEARTBEAT_DURING_WORK_MS = 3_000;

type ChunkOutcome =
  | { kind: 'done' }
  | { kind: 'redeliver'; delayMs: number; error: Error }
  | { kind: 'failed'; error: Error; resolvedUpTo: string | undefined }
  | { kind: 'stopped' };

interface Failure {
  index: number;
  error: Error;
  stage: Stage;
  className: string;
}

export class ConsumerTaskRunner implements TaskRunner {
  readonly taskId: number;
  private observed: ObservedState = 'UNASSIGNED';
  private failureTrace: string | undefined;
  private readonly abort = new AbortController();
  private readonly labels;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  private task: ProcessorTask | SinkTask | undefined;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private dlq: DeadLetterQueue | undefined;
  private userPaused = false;
  private stopping: Promise<void> | undefined;
  private consuming: Promise<void> | undefined;
  private readonly assigned = new Map<string, number[]>();
  /** Partitions paused until a transient failure clears, with their resume timers. */
  private readonly redeliveryPauses = new Map<string, NodeJS.Timeout>();
  private readonly redeliveryAttempts = new Map<string, number>();
  private readonly outputPartitions = new Map<string, number>();
  private readonly tolerateAll: boolean;
  private readonly retryTimeoutMs: number;
  private readonly retryDelayMaxMs: number;
  private readonly logErrors: boolean;
  private readonly logMessages: boolean;
  /** processing.guarantee=exactly_once: outputs, dead letters and offsets in one transaction. */
  private readonly exactlyOnce: boolean;
  private readonly partitionByInput: boolean;
  /** Transactions of one producer cannot overlap: partitions take turns to deliver. */
  private transactionTurn: Promise<void> = Promise.resolve();

  constructor(private readonly deps: RunnerDependencies & { plugin: SinkPlugin | ProcessorPlugin }) {
    this.taskId = deps.taskId;
    this.labels = taskLabels(deps.connectorName, deps.taskId);
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? interruptibleSleep;
    const config = deps.config;
    this.tolerateAll = config.getString('errors.tolerance') === 'all';
    this.retryTimeoutMs = config.getNumber('errors.retry.timeout');
    this.retryDelayMaxMs = config.getNumber('errors.retry.delay.max.ms');
    this.logErrors = config.getBoolean('errors.log.enable');
    this.logMessages = config.getBoolean('errors.log.include.messages');
    this.exactlyOnce =
      deps.plugin.kind === 'processor' && config.getString('processing.guarantee') === 'exactly_once';
    this.partitionByInput =
      deps.plugin.kind === 'processor' && config.getString('output.partitioning') === 'input';
  }

  get state(): ObservedState {
    return this.observed;
  }

  get trace(): string | undefined {
    return this.failureTrace;
  }

  details(): Record<string, unknown> {
    return {
      paused_partitions: [...this.redeliveryPauses.keys()],
      ...(this.task?.describe?.() ?? {}),
    };
  }

  async start(): Promise<void> {
    try {
      this.task = this.createTask();
      await this.task.start?.();
      await this.startProducer();
      this.setState(this.userPaused ? 'PAUSED' : 'RUNNING');
    } catch (error) {
      await this.failWith(error, 'TASK_START');
      return;
    }
    // Consuming starts in the background: like a Kafka Connect sink, the task waits (RUNNING)
    // for input topics that do not exist yet instead of failing or blocking the caller.
    this.consuming = this.startConsumer().catch((error: unknown) => {
      void this.failWith(error, 'KAFKA_CONSUME');
    });
  }

  async pause(): Promise<void> {
    this.userPaused = true;
    if (this.observed !== 'RUNNING') return;
    this.consumer?.pause(this.subscribedTopics().map((topic) => ({ topic })));
    this.setState('PAUSED');
  }

  async resume(): Promise<void> {
    this.userPaused = false;
    if (this.observed !== 'PAUSED') return;
    this.consumer?.resume(this.subscribedTopics().map((topic) => ({ topic })));
    this.setState('RUNNING');
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown(this.observed === 'FAILED' ? 'FAILED' : 'STOPPED');
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------

  private createTask(): ProcessorTask | SinkTask {
    const { deps } = this;
    const context: TaskContext = {
      connectorName: deps.connectorName,
      taskId: deps.taskId,
      config: deps.config,
      logger: deps.logger,
      metrics: deps.registry,
      metricLabels: this.labels,
      signal: this.abort.signal,
      now: this.now,
    };
    return deps.plugin.createTask(context);
  }

  private async startProducer(): Promise<void> {
    const { deps } = this;
    const config = deps.config;
    const producerOverrides = kafkaClientOverrides({
      ...deps.settings.producerOverrides,
      ...config.withPrefix('producer.override.'),
    });
    this.producer = deps.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      ...producerOverrides,
      // One transactional id per task: a restarted task fences its predecessor's open transaction.
      ...(this.exactlyOnce
        ? {
            transactionalId: `connect-${deps.connectorName}-${deps.taskId}`,
            idempotent: true,
            maxInFlightRequests: 1,
          }
        : {}),
    });
    await this.producer.connect();

    const dlqTopic = config.getOptionalString('errors.deadletterqueue.topic.name');
    if (dlqTopic) {
      await this.ensureTopic(
        dlqTopic,
        1,
        config.getNumber('errors.deadletterqueue.topic.replication.factor'),
      );
      this.dlq = new DeadLetterQueue({
        topic: dlqTopic,
        producer: this.producer,
        contextHeaders: config.getBoolean('errors.deadletterqueue.context.headers.enable'),
        connectorName: deps.connectorName,
        taskId: deps.taskId,
        metrics: deps.metrics,
        labels: this.labels,
      });
    }
  }

  private async startConsumer(): Promise<void> {
    const { deps } = this;
    const config = deps.config;
    const groupId = `connect-${deps.connectorName}`;
    const consumerOverrides = kafkaClientOverrides({
      ...deps.settings.consumerOverrides,
      ...config.withPrefix('consumer.override.'),
    });
    const inputs = await this.waitForInputTopics();
    if (inputs === undefined) return;
    if (deps.plugin.kind === 'processor') {
      const output = config.getString('output.topic');
      const partitions = await this.partitionCount(inputs[0]);
      await this.ensureTopic(output, partitions ?? 1, -1);
      this.outputPartitions.set(output, (await this.partitionCount(output)) ?? 1);
    }
    if (this.abort.signal.aborted) return;

    this.consumer = deps.kafka.consumer({
      groupId,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      // Kafka's own default: a larger fetch buys little throughput and costs memory while a
      // paused backlog waits (bench scenario g).
      maxBytesPerPartition: 1024 * 1024,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      ...consumerOverrides,
    });
    const { GROUP_JOIN, COMMIT_OFFSETS, CRASH } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (event) => {
      this.assigned.clear();
      for (const [topic, partitions] of Object.entries(event.payload.memberAssignment)) {
        this.assigned.set(topic, partitions);
      }
      if (this.userPaused) this.consumer?.pause(this.subscribedTopics().map((topic) => ({ topic })));
    });
    this.consumer.on(COMMIT_OFFSETS, () => deps.metrics.offsetCommitCompletion.inc(this.labels));
    this.consumer.on(CRASH, (event) => {
      if (!event.payload.restart) void this.failWith(event.payload.error, 'KAFKA_CONSUME');
    });
    await this.consumer.connect();
    const pattern = topicsPattern(config);
    await this.consumer.subscribe({
      topics: pattern ? [pattern] : config.getList('topics'),
      fromBeginning: (consumerOverrides as { fromBeginning?: boolean }).fromBeginning ?? true,
    });
    await this.consumer.run({
      // With exactly_once the offsets are committed inside each transaction instead.
      autoCommit: !this.exactlyOnce,
      autoCommitInterval: deps.settings.offsetFlushIntervalMs,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: deps.settings.partitionsConcurrency,
      eachBatch: (payload) => this.handleBatch(payload),
    });
  }

  /**
   * The input topics once they exist (for `topics.regex`: once one matches), or undefined when
   * the task was stopped while waiting.
   */
  private async waitForInputTopics(): Promise<string[] | undefined> {
    const wanted = this.deps.config.getList('topics');
    const pattern = topicsPattern(this.deps.config);
    let logged = false;
    for (;;) {
      const admin = this.deps.kafka.admin();
      await admin.connect();
      let existing: string[];
      try {
        existing = await admin.listTopics();
      } finally {
        await admin.disconnect();
      }
      const found = pattern
        ? existing.filter((t) => pattern.test(t))
        : wanted.filter((t) => existing.includes(t));
      if (pattern ? found.length > 0 : found.length === wanted.length) return found;
      if (!logged) {
        this.deps.logger.info(
          { missing: pattern ? String(pattern) : wanted.filter((t) => !existing.includes(t)) },
          'waiting for input topics to be created',
        );
        logged = true;
      }
      if (!(await this.sleep(1_000, this.abort.signal))) return undefined;
    }
  }

  private async partitionCount(topic: string | undefined): Promise<number | undefined> {
    if (!topic) return undefined;
    const admin = this.deps.kafka.admin();
    await admin.connect();
    try {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      return metadata.topics[0]?.partitions.length;
    } catch {
      return undefined;
    } finally {
      await admin.disconnect();
    }
  }

  private ensureTopic(topic: string, numPartitions: number, replicationFactor: number): Promise<void> {
    return ensureTopic(this.deps.kafka, this.deps.logger, topic, { numPartitions, replicationFactor });
  }

  private subscribedTopics(): string[] {
    const fromAssignment = [...this.assigned.keys()];
    return fromAssignment.length > 0 ? fromAssignment : this.deps.config.getList('topics');
  }

  // -------------------------------------------------------------------------------------------
  // The hot path

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = payload;
    const { topic, partition } = batch;
    const size = this.deps.settings.maxRecordsPerCall;
    for (let start = 0; start < batch.messages.length; start += size) {
      if (!isRunning() || isStale() || this.abort.signal.aborted || this.observed === 'FAILED') return;
      const chunk = batch.messages.slice(start, start + size);
      const outcome = await this.processChunk(topic, partition, chunk, heartbeat);
      switch (outcome.kind) {
        case 'done': {
          const last = chunk[chunk.length - 1]!.offset;
          resolveOffset(last);
          this.redeliveryAttempts.delete(`${topic}:${partition}`);
          const lag = Number(batch.highWatermark) - Number(last) - 1;
          this.deps.metrics.consumerLag.set(
            { ...this.labels, topic, partition: String(partition) },
            Math.max(0, lag),
          );
          await commitOffsetsIfNecessary();
          break;
        }
        case 'redeliver':
          this.pauseForRedelivery(topic, partition, chunk[0]!.offset, outcome.delayMs, outcome.error);
          return;
        case 'failed':
          if (outcome.resolvedUpTo !== undefined && !this.exactlyOnce) {
            resolveOffset(outcome.resolvedUpTo);
            await this.consumer!.commitOffsets([
              { topic, partition, offset: (BigInt(outcome.resolvedUpTo) + 1n).toString() },
            ]);
          }
          void this.failWith(outcome.error, (outcome.error as ConnectError).stage ?? 'TASK_PROCESS');
          return;
        case 'stopped':
          return;
      }
    }
  }

  /** Converts, calls the task, writes outputs and dead letters: all or nothing, retried as a unit. */
  private async processChunk(
    topic: string,
    partition: number,
    chunk: KafkaMessage[],
    heartbeat: () => Promise<void>,
  ): Promise<ChunkOutcome> {
    const { metrics } = this.deps;
    metrics.sinkRecordRead.inc(this.labels, chunk.length);
    const deadline = this.retryTimeoutMs < 0 ? Infinity : this.now() + this.retryTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      const started = this.now();
      // A slow model (rate limit, stall until the deadline) must not cost the group membership:
      // keep heartbeating while the attempt runs.
      const beat = setInterval(() => void heartbeat().catch(() => undefined), HEARTBEAT_DURING_WORK_MS);
      try {
        const outcome = await this.attemptChunk(topic, partition, chunk);
        metrics.putBatchTime.observe(this.labels, (this.now() - started) / 1000);
        return outcome;
      } catch (error) {
        if (outcomeOf(error) !== 'retry') {
          return { kind: 'failed', error: error as Error, resolvedUpTo: undefined };
        }
        metrics.recordErrors.inc(this.labels);
        metrics.lastErrorTimestamp.set(this.labels, this.now());
        const delayMs = Math.max(
          backoffDelay(attempt, this.retryDelayMaxMs),
          (error as RetriableError).retryAfterMs ?? 0,
        );
        if (this.now() + delayMs > deadline) {
          const key = `${topic}:${partition}`;
          const redeliveries = (this.redeliveryAttempts.get(key) ?? 0) + 1;
          this.redeliveryAttempts.set(key, redeliveries);
          // A known retry time (a circuit breaker's half-open) beats a growing backoff: waiting
          // longer only delays the recovery after the dependency is back.
          const retryAfter = (error as RetriableError).retryAfterMs;
          return {
            kind: 'redeliver',
            delayMs:
              retryAfter !== undefined
                ? Math.max(100, retryAfter)
                : Math.max(backoffDelay(redeliveries, this.retryDelayMaxMs), delayMs),
            error: error as Error,
          };
        }
        metrics.retries.inc(this.labels);
        this.deps.logger.debug(
          { err: error, attempt, delayMs, topic, partition },
          'transient failure; retrying',
        );
        if (!(await this.sleepWithHeartbeat(delayMs, heartbeat))) return { kind: 'stopped' };
      } finally {
        clearInterval(beat);
      }
    }
  }

  private async attemptChunk(topic: string, partition: number, chunk: KafkaMessage[]): Promise<ChunkOutcome> {
    const { keyConverter, valueConverter, plugin } = this.deps;
    await Promise.all([
      keyConverter.prepare?.(chunk.map((m) => m.key)),
      valueConverter.prepare?.(chunk.map((m) => m.value)),
    ]);

    const failures: Failure[] = [];
    const records: ConnectRecord[] = [];
    const recordIndex: number[] = [];
    for (let i = 0; i < chunk.length; i++) {
      const message = chunk[i]!;
      let stage: Stage = 'KEY_CONVERTER';
      try {
        const key = keyConverter.toConnect(topic, message.key);
        stage = 'VALUE_CONVERTER';
        const value = valueConverter.toConnect(topic, message.value);
        // One object shape for every record (no conditional spreads): the hot path stays monomorphic.
        records.push({
          topic,
          partition,
          offset: message.offset,
          timestamp: message.timestamp,
          key: key.value,
          value: value.value,
          keySchema: key.schema,
          valueSchema: value.schema,
          headers: message.headers as Record<string, Buffer | undefined>,
          rawKey: message.key,
          rawValue: message.value,
        });
        recordIndex.push(i);
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        failures.push({ index: i, error: error as Error, stage, className: converterClassName(stage) });
      }
    }

    const outputsByIndex = new Map<number, OutputRecord[]>();
    if (records.length > 0) {
      if (plugin.kind === 'processor') {
        const results = await (this.task as ProcessorTask).process(records);
        expectResults(results, records.length, plugin.name);
        results.forEach((result, j) => {
          const index = recordIndex[j]!;
          if (result instanceof Error) {
            if (outcomeOf(result) !== 'fail-record') throw result;
            failures.push({ index, error: result, stage: 'TASK_PROCESS', className: plugin.name });
          } else outputsByIndex.set(index, result);
        });
      } else {
        const sink = this.task as SinkTask;
        const results = await sink.put(records);
        if (results) {
          expectResults(results, records.length, plugin.name);
          results.forEach((result, j) => {
            if (result === undefined) return;
            if (outcomeOf(result) !== 'fail-record') throw result;
            failures.push({
              index: recordIndex[j]!,
              error: result,
              stage: 'TASK_PUT',
              className: plugin.name,
            });
          });
        }
        await sink.flush?.();
      }
    }

    const encoded = await this.encodeOutputs(partition, outputsByIndex, failures);
    if (failures.length > 1) failures.sort((a, b) => a.index - b.index);

    // errors.tolerance=none: everything before the first bad record is written and committed,
    // then the task fails on it, so a restart after the fix resumes at exactly that record.
    let firstBad: Failure | undefined;
    if (failures.length > 0 && !this.tolerateAll) firstBad = failures[0];
    const cutoff = firstBad ? firstBad.index : chunk.length;
    const messages = firstBad ? encoded.filter((m) => m.index < cutoff) : encoded;
    const letters = firstBad
      ? []
      : failures.map((f) => this.deadLetter(topic, partition, chunk[f.index]!, f));

    const commitUpTo = cutoff > 0 ? chunk[cutoff - 1]!.offset : undefined;
    await this.deliver(topic, partition, messages, letters, commitUpTo);
    if (letters.length > 0) this.countSkipped(failures, topic, partition, chunk);
    this.deps.metrics.sinkRecordSend.inc(this.labels, plugin.kind === 'processor' ? messages.length : cutoff);

    if (firstBad) {
      this.countSkipped([firstBad], topic, partition, chunk);
      const resolvedUpTo = cutoff > 0 ? chunk[cutoff - 1]!.offset : undefined;
      const error = new ConnectError(
        (firstBad.error as ConnectError).code ?? 'TASK_PROCESS_FAILED',
        `record ${topic}-${partition}@${chunk[cutoff]!.offset} failed in stage ${firstBad.stage} and errors.tolerance=none: ` +
          `${firstBad.error.message}. Fix the cause (or set errors.tolerance=all with a dead-letter topic), then restart the task`,
        { cause: firstBad.error, stage: firstBad.stage },
      );
      return { kind: 'failed', error, resolvedUpTo };
    }
    return { kind: 'done' };
  }

  private async encodeOutputs(
    inputPartition: number,
    outputsByIndex: Map<number, OutputRecord[]>,
    failures: Failure[],
  ): Promise<Array<{ index: number; topic: string; message: Message }>> {
    if (outputsByIndex.size === 0) return [];
    const { keyConverter, valueConverter } = this.deps;
    if (valueConverter.prepareEncode) {
      // Each distinct (topic, schema) once; outputs nearly always repeat the previous one's.
      const prepared = new Map<string, Set<unknown>>();
      let lastTopic: string | undefined;
      let lastSchema: unknown;
      for (const outputs of outputsByIndex.values()) {
        for (const output of outputs) {
          const schema = output.valueSchema;
          if (output.topic === lastTopic && schema === lastSchema) continue;
          lastTopic = output.topic;
          lastSchema = schema;
          let schemas = prepared.get(output.topic);
          if (!schemas) prepared.set(output.topic, (schemas = new Set()));
          if (schemas.has(schema)) continue;
          schemas.add(schema);
          await valueConverter.prepareEncode(output.topic, schema);
        }
      }
    }
    const now = String(this.now());
    const out: Array<{ index: number; topic: string; message: Message }> = [];
    // outputsByIndex is filled in input order except after a failed record; sort only then.
    let ordered = true;
    let previousIndex = -1;
    for (const [index, outputs] of outputsByIndex) {
      if (index < previousIndex) ordered = false;
      previousIndex = index;
      let stage: Stage = 'KEY_CONVERTER';
      try {
        for (const output of outputs) {
          stage = 'KEY_CONVERTER';
          const key =
            output.rawKey !== undefined
              ? output.rawKey
              : keyConverter.fromConnect(output.topic, output.key ?? null);
          stage = 'VALUE_CONVERTER';
          const value = valueConverter.fromConnect(output.topic, output.value, output.valueSchema);
          out.push({
            index,
            topic: output.topic,
            message: {
              key,
              value,
              timestamp: output.timestamp ?? now,
              headers: output.headers as IHeaders | undefined,
              partition: this.partitionFor(output.topic, inputPartition),
            },
          });
        }
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        failures.push({ index, error: error as Error, stage, className: converterClassName(stage) });
      }
    }
    if (!ordered) out.sort((a, b) => a.index - b.index);
    return out;
  }

  private partitionFor(topic: string, inputPartition: number): number | undefined {
    if (!this.partitionByInput) return undefined;
    const count = this.outputPartitions.get(topic);
    return count ? inputPartition % count : undefined;
  }

  /**
   * Writes a chunk's outputs and dead letters. At-least-once: both are acknowledged before the
   * caller resolves the offsets. Exactly-once: both and the consumed offset up to `commitUpTo` go
   * in one transaction; a failed transaction is aborted and the chunk redelivered.
   */
  private async deliver(
    topic: string,
    partition: number,
    messages: ReadonlyArray<{ topic: string; message: Message }>,
    letters: DeadLetter[],
    commitUpTo: string | undefined,
  ): Promise<void> {
    if (!this.exactlyOnce) {
      await this.send(messages);
      if (letters.length > 0 && this.dlq) await this.dlq.send(letters);
      return;
    }
    const previous = this.transactionTurn;
    let done!: () => void;
    this.transactionTurn = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      const transaction = await this.producer!.transaction();
      try {
        await sendInRequests(transaction, messages);
        if (letters.length > 0 && this.dlq) await this.dlq.send(letters, transaction);
        if (commitUpTo !== undefined) {
          await transaction.sendOffsets({
            consumerGroupId: `connect-${this.deps.connectorName}`,
            topics: [{ topic, partitions: [{ partition, offset: (BigInt(commitUpTo) + 1n).toString() }] }],
          });
        }
        await transaction.commit();
        if (commitUpTo !== undefined) this.deps.metrics.offsetCommitCompletion.inc(this.labels);
      } catch (cause) {
        await transaction.abort().catch(() => undefined);
        throw new RetriableError(
          'KAFKA_PRODUCE_FAILED',
          `the transaction writing the results of ${topic}-${partition} failed and was aborted: ${(cause as Error).message}; ` +
            'the records will be redelivered',
          { cause, stage: 'KAFKA_PRODUCE' },
        );
      }
    } finally {
      done();
    }
  }

  private async send(messages: ReadonlyArray<{ topic: string; message: Message }>): Promise<void> {
    try {
      await sendInRequests(this.producer!, messages);
    } catch (cause) {
      throw new RetriableError(
        'KAFKA_PRODUCE_FAILED',
        `producing to ${[...new Set(messages.map((m) => m.topic))].join(', ')} failed: ${(cause as Error).message}`,
        { cause, stage: 'KAFKA_PRODUCE' },
      );
    }
  }

  private deadLetter(topic: string, partition: number, message: KafkaMessage, failure: Failure): DeadLetter {
    return {
      origin: { topic, partition, offset: message.offset },
      key: message.key,
      value: message.value,
      headers: message.headers,
      timestamp: message.timestamp,
      stage: failure.stage,
      className: failure.className,
      error: failure.error,
    };
  }

  private countSkipped(failures: Failure[], topic: string, partition: number, chunk: KafkaMessage[]): void {
    const { metrics, logger } = this.deps;
    metrics.recordErrors.inc(this.labels, failures.length);
    metrics.recordFailures.inc(this.labels, failures.length);
    if (this.tolerateAll) metrics.recordsSkipped.inc(this.labels, failures.length);
    metrics.lastErrorTimestamp.set(this.labels, this.now());
    if (!this.logErrors) return;
    for (const f of failures) {
      const message = chunk[f.index]!;
      metrics.errorsLogged.inc(this.labels);
      logger.error(
        {
          err: f.error,
          stage: f.stage,
          topic,
          partition,
          offset: message.offset,
          ...(this.logMessages
            ? { key: message.key?.toString('base64'), value: message.value?.toString('base64') }
            : {}),
        },
        'error processing record',
      );
    }
  }

  private pauseForRedelivery(
    topic: string,
    partition: number,
    offset: string,
    delayMs: number,
    error: Error,
  ): void {
    const consumer = this.consumer;
    if (!consumer || this.abort.signal.aborted) return;
    const key = `${topic}:${partition}`;
    consumer.pause([{ topic, partitions: [partition] }]);
    consumer.seek({ topic, partition, offset });
    this.deps.metrics.pausedPartitions.set(this.labels, this.redeliveryPauses.size + 1);
    this.deps.logger.warn(
      { topic, partition, offset, delayMs, err: error },
      'transient failure outlasted errors.retry.timeout; partition paused, records will be redelivered',
    );
    clearTimeout(this.redeliveryPauses.get(key));
    this.redeliveryPauses.set(
      key,
      setTimeout(() => {
        this.redeliveryPauses.delete(key);
        this.deps.metrics.pausedPartitions.set(this.labels, this.redeliveryPauses.size);
        if (!this.userPaused && !this.abort.signal.aborted)
          consumer.resume([{ topic, partitions: [partition] }]);
      }, delayMs),
    );
  }

  private async sleepWithHeartbeat(ms: number, heartbeat: () => Promise<void>): Promise<boolean> {
    const slice = 2_000;
    for (let left = ms; left > 0; left -= slice) {
      if (!(await this.sleep(Math.min(slice, left), this.abort.signal))) return false;
      await heartbeat().catch(() => undefined);
    }
    return !this.abort.signal.aborted;
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  private setState(state: ObservedState): void {
    this.observed = state;
    this.deps.metrics.setStatus(this.labels, state);
    this.deps.onStateChange?.(state);
  }

  private async failWith(error: unknown, stage: Stage): Promise<void> {
    if (this.observed === 'FAILED') return;
    this.failureTrace = traceOf(error);
    this.deps.logger.error({ err: error, stage }, 'task failed');
    this.setState('FAILED');
    this.stopping ??= this.shutdown('FAILED');
    await this.stopping;
  }

  private async shutdown(finalState: ObservedState): Promise<void> {
    this.abort.abort();
    for (const timer of this.redeliveryPauses.values()) clearTimeout(timer);
    this.redeliveryPauses.clear();
    const errors: unknown[] = [];
    const step = async (what: string, fn: (() => Promise<unknown>) | undefined) => {
      if (!fn) return;
      try {
        await withTimeout(fn(), this.deps.settings.shutdownTimeoutMs, what);
      } catch (error) {
        errors.push(error);
      }
    };
    // Order matters: stop fetching (kafkajs finishes the batch in flight and commits what was
    // resolved), then let the task release its resources, then close the producer.
    // A consumer still connecting or joining its group (a slow coordinator, a rebalance) must not
    // hold the stop forever: wait for it as long as for any other step, then disconnect anyway.
    await step('starting the consumer', this.consuming && (() => this.consuming!));
    await step('stopping the consumer', this.consumer && (() => this.consumer!.disconnect()));
    await step('stopping the task', this.task?.stop && (() => this.task!.stop!()));
    await step('closing the producer', this.producer && (() => this.producer!.disconnect()));
    if (finalState !== 'FAILED') this.setState('STOPPED');
    if (errors.length > 0) {
      this.deps.logger.warn({ errors: errors.map((e) => (e as Error).message) }, 'task stopped with errors');
    }
  }
}

function expectResults(results: unknown[], expected: number, plugin: string): void {
  if (!Array.isArray(results) || results.length !== expected) {
    throw new FatalError(
      'TASK_CONTRACT_VIOLATED',
      `connector ${plugin} returned ${Array.isArray(results) ? results.length : typeof results} results for ${expected} records; ` +
        'a task must return exactly one result per record, by position',
    );
  }
}

function converterClassName(stage: Stage): string {
  return stage === 'KEY_CONVERTER' ? 'KeyConverter' : 'ValueConverter';
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new ConnectError('TASK_STOP_TIMEOUT', `${what} took longer than ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
