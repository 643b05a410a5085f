// Runs a sink or processor task: consumes its topics in the group `connect-<name>`, runs each
// chunk of records through the record pipeline (runtime/record-pipeline.ts), delivers outputs and
// dead letters (runtime/delivery.ts), and only then resolves the consumed offsets (at-least-once:
// an offset is committed only after everything derived from it is acknowledged; exactly-once:
// outputs, dead letters and the offset commit go in one transaction).
//
// Records of one partition are handled strictly in order, one chunk at a time, so the output keeps
// each input partition's order; partitions run concurrently up to `partitionsConcurrency`.
// Transient failures are retried (runtime/retry-operator.ts) until `errors.retry.timeout`; then
// the partition is paused and rewound to its first undelivered record (runtime/partition-pauses.ts)
// and redelivered later, never dead-lettered. Bad records go to the DLQ under
// errors.tolerance=all; anything else fails the task.
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { ProcessorPlugin, ProcessorTask, SinkPlugin, SinkTask, TaskContext } from './api.js';
import { backoffDelay, interruptibleSleep } from './backoff.js';
import { DeadLetterQueue, type DeadLetter } from './dead-letter-queue.js';
import { Delivery, type OutputMessage } from './delivery.js';
import { ConnectError, FatalError, outcomeOf, RetriableError, traceOf, type Stage } from './errors.js';
import type { ObservedState } from './herder.js';
import { topicsPattern } from './config/connector-config.js';
import { ensureTopic, kafkaClientOverrides, kafkaFor } from './kafka-clients.js';
import { PartitionPauses } from './partition-pauses.js';
import { RecordPipeline, type Failure } from './record-pipeline.js';
import { retryTransient } from './retry-operator.js';
import { ShutdownSteps } from './shutdown-steps.js';
import { taskLabels, type RunnerDependencies, type TaskRunner } from './task-runner.js';
import { createTransformChain } from './transforms/index.js';

const HEARTBEAT_DURING_WORK_MS = 3_000;
/** How often the lag of partitions paused for redelivery is read from the broker. */
const PAUSED_LAG_REFRESH_MS = 5_000;

type ChunkOutcome =
  | { kind: 'done' }
  | { kind: 'redeliver'; delayMs: number; error: Error }
  | { kind: 'failed'; error: Error; resolvedUpTo: string | undefined }
  | { kind: 'stopped' };

export class ConsumerTaskRunner implements TaskRunner {
  readonly taskId: number;
  private observed: ObservedState = 'UNASSIGNED';
  private failureTrace: string | undefined;
  private readonly abort = new AbortController();
  private readonly labels;
  private readonly groupId: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  private task: ProcessorTask | SinkTask | undefined;
  private consumer: Consumer | undefined;
  private readonly delivery: Delivery;
  private readonly pauses: PartitionPauses;
  private readonly pipeline: RecordPipeline;
  private dlq: DeadLetterQueue | undefined;
  private stopping: Promise<void> | undefined;
  private consuming: Promise<void> | undefined;
  private starting: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private readonly redeliveryAttempts = new Map<string, number>();
  private readonly outputPartitions = new Map<string, number>();
  private readonly lagSeries = new Set<string>();
  private readonly tolerateAll: boolean;
  private readonly retryTimeoutMs: number;
  private readonly retryDelayMaxMs: number;
  private readonly logErrors: boolean;
  private readonly logMessages: boolean;
  /** processing.guarantee=exactly_once: outputs, dead letters and offsets in one transaction. */
  private readonly exactlyOnce: boolean;
  private readonly partitionByInput: boolean;
  private readonly consumerOverrides: Record<string, unknown>;
  /** The worker's Kafka with this connector's client overrides (security included) applied. */
  private readonly kafka: RunnerDependencies['kafka'];

  constructor(private readonly deps: RunnerDependencies & { plugin: SinkPlugin | ProcessorPlugin }) {
    this.taskId = deps.taskId;
    this.labels = taskLabels(deps.connectorName, deps.taskId);
    this.groupId = `connect-${deps.connectorName}`;
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
    const producerProperties = {
      ...deps.settings.producerOverrides,
      ...config.withPrefix('producer.override.'),
    };
    const consumerProperties = {
      ...deps.settings.consumerOverrides,
      ...config.withPrefix('consumer.override.'),
    };
    if (this.exactlyOnce) exactlyOnceProblems(producerProperties, consumerProperties);
    this.consumerOverrides = kafkaClientOverrides(consumerProperties);
    this.kafka = kafkaFor(deps.kafka, config);
    this.delivery = new Delivery({
      kafka: this.kafka,
      groupId: this.groupId,
      connectorName: deps.connectorName,
      exactlyOnce: this.exactlyOnce,
      producerConfig: kafkaClientOverrides(producerProperties),
      logger: deps.logger,
      recreateTopic: (topic) => this.recreateTopic(topic),
      onOffsetsCommitted: () => deps.metrics.offsetCommitCompletion.inc(this.labels),
    });
    this.pauses = new PartitionPauses({
      logger: deps.logger,
      onCountChange: (count) => deps.metrics.pausedPartitions.set(this.labels, count),
    });
    this.pipeline = new RecordPipeline({
      plugin: deps.plugin,
      task: () => this.task!,
      keyConverter: deps.keyConverter,
      valueConverter: deps.valueConverter,
      now: this.now,
      partitionFor: (topic, inputPartition) => this.partitionFor(topic, inputPartition),
      fits: (topic, message) => this.delivery.fits(topic, message),
      maxRecordBytes: config.getNumber('max.record.bytes'),
      transforms: createTransformChain(config.originals),
    });
  }

  get state(): ObservedState {
    return this.observed;
  }

  get trace(): string | undefined {
    return this.failureTrace;
  }

  details(): Record<string, unknown> {
    return {
      paused_partitions: this.pauses.waiting(),
      ...(this.dlq ? { dead_letters: { topic: this.dlq.topic, recent: this.dlq.recent() } } : {}),
      ...(this.task?.describe?.() ?? {}),
    };
  }

  start(): Promise<void> {
    this.starting ??= this.startTask();
    return this.starting;
  }

  /** Never throws: the desired state is recorded and applied to the consumer whenever it can be. */
  async pause(): Promise<void> {
    this.pauses.pauseAll();
    if (this.observed === 'RUNNING') this.setState('PAUSED');
  }

  async resume(): Promise<void> {
    this.pauses.resumeAll();
    if (this.observed === 'PAUSED') this.setState('RUNNING');
  }

  /** Idempotent and bounded; rejects (after every step ran) when the drain was not clean. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown(this.observed === 'FAILED' ? 'FAILED' : 'STOPPED');
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------

  private async startTask(): Promise<void> {
    try {
      this.task = this.createTask();
      await this.task.start?.();
      await this.startDelivery();
      this.setState(this.pauses.paused ? 'PAUSED' : 'RUNNING');
    } catch (error) {
      this.failWith(error);
      return;
    }
    // Consuming starts in the background: like a Kafka Connect sink, the task waits (RUNNING)
    // for input topics that do not exist yet instead of failing or blocking the caller.
    this.consuming = this.startConsumer().catch((error: unknown) => {
      if (!this.abort.signal.aborted) this.failWith(error);
    });
  }

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

  private async startDelivery(): Promise<void> {
    const config = this.deps.config;
    await this.delivery.start();
    const dlqTopic = config.getOptionalString('errors.deadletterqueue.topic.name');
    if (dlqTopic) {
      await this.ensureTopic(
        dlqTopic,
        1,
        config.getNumber('errors.deadletterqueue.topic.replication.factor'),
      );
      await this.withAdmin((admin) => this.delivery.loadLimits(admin, [dlqTopic]));
      this.dlq = new DeadLetterQueue({
        topic: dlqTopic,
        contextHeaders: config.getBoolean('errors.deadletterqueue.context.headers.enable'),
        connectorName: this.deps.connectorName,
        taskId: this.deps.taskId,
        metrics: this.deps.metrics,
        labels: this.labels,
        ...(this.deps.redact ? { redact: this.deps.redact } : {}),
        now: this.now,
      });
      this.delivery.attachDeadLetterQueue(this.dlq);
    }
  }

  private async startConsumer(): Promise<void> {
    const { deps } = this;
    const config = deps.config;
    const inputs = await this.waitForInputTopics();
    if (inputs === undefined) return;
    if (deps.plugin.kind === 'processor') {
      const output = config.getString('output.topic');
      const partitions = await this.partitionCount(inputs[0]);
      await this.ensureTopic(output, partitions ?? 1, -1);
      const outputPartitions = await this.knownPartitionCount(output);
      if (outputPartitions === undefined) return; // stopped while waiting
      this.outputPartitions.set(output, outputPartitions);
      await this.withAdmin((admin) => this.delivery.loadLimits(admin, [output]));
    }
    if (this.abort.signal.aborted) return;

    const consumer = this.kafka.consumer({
      groupId: this.groupId,
      sessionTimeout: 30_000,
      rebalanceTimeout: 60_000,
      heartbeatInterval: 3_000,
      // Kafka's own default: a larger fetch buys little throughput and costs memory while a
      // paused backlog waits (bench scenario g).
      maxBytesPerPartition: 1024 * 1024,
      maxWaitTimeInMs: 100,
      allowAutoTopicCreation: false,
      ...this.consumerOverrides,
    });
    this.consumer = consumer;
    this.pauses.attach(consumer);
    const { GROUP_JOIN, COMMIT_OFFSETS, CRASH } = consumer.events;
    consumer.on(GROUP_JOIN, (event) => this.onAssignment(event.payload.memberAssignment));
    consumer.on(COMMIT_OFFSETS, () => deps.metrics.offsetCommitCompletion.inc(this.labels));
    consumer.on(CRASH, (event) => {
      if (!event.payload.restart && !this.abort.signal.aborted)
        this.failWith(event.payload.error, 'KAFKA_CONSUME');
    });
    await consumer.connect();
    const pattern = topicsPattern(config);
    await consumer.subscribe({
      topics: pattern ? [pattern] : config.getList('topics'),
      fromBeginning: (this.consumerOverrides as { fromBeginning?: boolean }).fromBeginning ?? true,
    });
    if (this.abort.signal.aborted) return;
    await consumer.run({
      // With exactly_once the offsets are committed inside each transaction instead.
      autoCommit: !this.exactlyOnce,
      autoCommitInterval: deps.settings.offsetFlushIntervalMs,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: deps.settings.partitionsConcurrency,
      eachBatch: (payload) => this.handleBatch(payload),
    });
  }

  /** A new group generation: what this task owns now. */
  private onAssignment(assignment: Record<string, number[]>): void {
    this.pauses.onAssignment(assignment);
    this.delivery.onAssignment(assignment);
    for (const key of [...this.redeliveryAttempts.keys()]) {
      const [topic, partition] = splitKey(key);
      if (!this.pauses.isAssigned(topic, partition)) this.redeliveryAttempts.delete(key);
    }
    // Lag series of partitions that moved to another task would otherwise freeze at their last value.
    for (const key of [...this.lagSeries]) {
      const [topic, partition] = splitKey(key);
      if (this.pauses.isAssigned(topic, partition)) continue;
      this.deps.metrics.consumerLag.remove({ ...this.labels, topic, partition: String(partition) });
      this.lagSeries.delete(key);
    }
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
      const existing = await this.withAdmin((admin) => admin.listTopics());
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
    try {
      return await this.withAdmin(async (admin) => {
        const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
        return metadata.topics[0]?.partitions.length;
      });
    } catch {
      return undefined;
    }
  }

  /**
   * The partition count of `topic` once the broker reports at least one partition. Right after a
   * topic is created its metadata can list none yet; output.partitioning=input must not fall back
   * to the key partitioner (or to one partition) then, or records land in the wrong partitions.
   */
  private async knownPartitionCount(topic: string): Promise<number | undefined> {
    for (let attempt = 1; ; attempt++) {
      const count = await this.partitionCount(topic);
      if (count !== undefined && count > 0) return count;
      if (attempt >= 60) {
        throw new RetriableError(
          'KAFKA_TOPIC_MISSING',
          `the broker reports no partitions for ${topic} after ${attempt} attempts; the task will be restarted`,
          { stage: 'TASK_START' },
        );
      }
      if (!(await this.sleep(500, this.abort.signal))) return undefined;
    }
  }

  private ensureTopic(topic: string, numPartitions: number, replicationFactor: number): Promise<void> {
    return ensureTopic(this.kafka, this.deps.logger, topic, { numPartitions, replicationFactor });
  }

  /** A write found `topic` deleted: create it again the way the task created it at start. */
  private async recreateTopic(topic: string): Promise<void> {
    const config = this.deps.config;
    this.delivery.forgetLimits(topic);
    if (topic === this.dlq?.topic) {
      await this.ensureTopic(topic, 1, config.getNumber('errors.deadletterqueue.topic.replication.factor'));
    } else if (this.deps.plugin.kind === 'processor' && topic === config.getString('output.topic')) {
      await this.ensureTopic(topic, this.outputPartitions.get(topic) ?? 1, -1);
    } else return;
    this.deps.logger.warn({ topic }, 'a topic the task writes to was deleted; created it again');
    await this.withAdmin((admin) => this.delivery.loadLimits(admin, [topic]));
  }

  private async withAdmin<T>(fn: (admin: ReturnType<RunnerDependencies['kafka']['admin']>) => Promise<T>) {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  private partitionFor(topic: string, inputPartition: number): number | undefined {
    if (!this.partitionByInput) return undefined;
    const count = this.outputPartitions.get(topic);
    return count ? inputPartition % count : undefined;
  }

  // -------------------------------------------------------------------------------------------
  // The hot path

  private async handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = payload;
    const { topic, partition } = batch;
    let messages = batch.messages;
    if (messages.length === 0) return;
    this.setLag(topic, partition, Number(batch.highWatermark) - Number(messages[0]!.offset));

    if (this.exactlyOnce) {
      // Own the partition before touching its records: this fences any older owner, whose
      // committed records are then skipped.
      let committed: string | undefined;
      try {
        committed = await this.delivery.claim(topic, partition);
      } catch (error) {
        if (outcomeOf(error) === 'retry') {
          this.redeliver(
            topic,
            partition,
            messages[0]!.offset,
            backoffDelay(1, this.retryDelayMaxMs),
            error as Error,
          );
        } else this.failWith(error, 'KAFKA_PRODUCE');
        return;
      }
      if (committed !== undefined && BigInt(committed) > BigInt(messages[0]!.offset)) {
        const from = BigInt(committed);
        messages = messages.filter((m) => BigInt(m.offset) >= from);
        resolveOffset((from - 1n).toString());
        if (messages.length === 0) return;
      }
    }

    const size = this.deps.settings.maxRecordsPerCall;
    for (let start = 0; start < messages.length; start += size) {
      if (!isRunning() || isStale() || this.abort.signal.aborted || this.observed === 'FAILED') return;
      const chunk = messages.slice(start, start + size);
      const outcome = await this.processChunk(topic, partition, chunk, heartbeat);
      switch (outcome.kind) {
        case 'done': {
          const last = chunk[chunk.length - 1]!.offset;
          resolveOffset(last);
          this.redeliveryAttempts.delete(`${topic}:${partition}`);
          this.setLag(topic, partition, Number(batch.highWatermark) - Number(last) - 1);
          if (!this.exactlyOnce) await commitOffsetsIfNecessary().catch(() => undefined);
          break;
        }
        case 'redeliver':
          this.redeliver(topic, partition, chunk[0]!.offset, outcome.delayMs, outcome.error);
          return;
        case 'failed':
          if (outcome.resolvedUpTo !== undefined && !this.exactlyOnce) {
            resolveOffset(outcome.resolvedUpTo);
            await this.consumer!.commitOffsets([
              { topic, partition, offset: (BigInt(outcome.resolvedUpTo) + 1n).toString() },
            ]).catch((error: unknown) =>
              this.deps.logger.warn({ err: error }, 'committing the offsets before the failed record failed'),
            );
          }
          this.failWith(outcome.error, (outcome.error as ConnectError).stage ?? 'TASK_PROCESS');
          return;
        case 'stopped':
          return;
      }
    }
  }

  /** One chunk: pipeline and delivery, retried as a unit while failures are transient. */
  private async processChunk(
    topic: string,
    partition: number,
    chunk: KafkaMessage[],
    heartbeat: () => Promise<void>,
  ): Promise<ChunkOutcome> {
    const { metrics, logger } = this.deps;
    metrics.sinkRecordRead.inc(this.labels, chunk.length);
    let result;
    try {
      result = await retryTransient(
        async () => {
          const started = this.now();
          // A slow model (rate limit, stall until the deadline) must not cost the group
          // membership: keep heartbeating while the attempt runs.
          const beat = setInterval(() => void heartbeat().catch(() => undefined), HEARTBEAT_DURING_WORK_MS);
          try {
            return await this.attemptChunk(topic, partition, chunk);
          } finally {
            clearInterval(beat);
            metrics.putBatchTime.observe(this.labels, (this.now() - started) / 1000);
          }
        },
        {
          retryTimeoutMs: this.retryTimeoutMs,
          maxDelayMs: this.retryDelayMaxMs,
          now: this.now,
          sleep: this.sleep,
          signal: this.abort.signal,
          whileWaiting: heartbeat,
          onRetry: (error, attempt, delayMs) => {
            metrics.recordErrors.inc(this.labels);
            metrics.lastErrorTimestamp.set(this.labels, this.now());
            metrics.retries.inc(this.labels);
            logger.debug({ err: error, attempt, delayMs, topic, partition }, 'transient failure; retrying');
          },
        },
      );
    } catch (error) {
      return { kind: 'failed', error: error as Error, resolvedUpTo: undefined };
    }
    switch (result.kind) {
      case 'ok':
        return result.value;
      case 'stopped':
        return { kind: 'stopped' };
      case 'gave-up': {
        metrics.recordErrors.inc(this.labels);
        metrics.lastErrorTimestamp.set(this.labels, this.now());
        const key = `${topic}:${partition}`;
        // A known retry time (a circuit breaker's half-open) beats a growing backoff: waiting
        // longer only delays the recovery after the dependency is back. Such waits do not count
        // towards the partition's backoff either.
        const retryAfter = (result.error as { retryAfterMs?: number }).retryAfterMs;
        const redeliveries = (this.redeliveryAttempts.get(key) ?? 0) + (retryAfter === undefined ? 1 : 0);
        this.redeliveryAttempts.set(key, redeliveries);
        return {
          kind: 'redeliver',
          delayMs:
            retryAfter !== undefined
              ? Math.max(100, retryAfter)
              : Math.max(backoffDelay(redeliveries, this.retryDelayMaxMs), result.nextDelayMs),
          error: result.error,
        };
      }
    }
  }

  private async attemptChunk(topic: string, partition: number, chunk: KafkaMessage[]): Promise<ChunkOutcome> {
    const { outputs, failures } = await this.pipeline.run(topic, partition, chunk);

    // errors.tolerance=none: everything before the first bad record is written and committed,
    // then the task fails on it, so a restart after the fix resumes at exactly that record.
    const firstBad = failures.length > 0 && !this.tolerateAll ? failures[0] : undefined;
    const cutoff = firstBad ? firstBad.index : chunk.length;
    const messages: OutputMessage[] = firstBad ? outputs.filter((m) => m.index < cutoff) : outputs;
    const letters = firstBad
      ? []
      : failures.map((f) => this.deadLetter(topic, partition, chunk[f.index]!, f));
    if (letters.length > 0 && !this.dlq) {
      // errors.tolerance=all without a DLQ topic: Kafka Connect logs and skips the record.
      letters.length = 0;
    }

    const commitUpTo = cutoff > 0 ? chunk[cutoff - 1]!.offset : undefined;
    await this.delivery.deliver({ topic, partition }, messages, letters, commitUpTo);
    if (failures.length > 0 && !firstBad) this.countSkipped(failures, topic, partition, chunk);
    this.deps.metrics.sinkRecordSend.inc(
      this.labels,
      this.deps.plugin.kind === 'processor' ? messages.length : cutoff,
    );

    if (firstBad) {
      this.countSkipped([firstBad], topic, partition, chunk);
      const error = new ConnectError(
        (firstBad.error as ConnectError).code ?? 'TASK_PROCESS_FAILED',
        `record ${topic}-${partition}@${chunk[cutoff]!.offset} failed in stage ${firstBad.stage} and errors.tolerance=none: ` +
          `${firstBad.error.message}. Fix the cause (or set errors.tolerance=all with a dead-letter topic), then restart the task`,
        { cause: firstBad.error, stage: firstBad.stage },
      );
      return { kind: 'failed', error, resolvedUpTo: commitUpTo };
    }
    return { kind: 'done' };
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

  private redeliver(topic: string, partition: number, offset: string, delayMs: number, error: Error): void {
    if (this.abort.signal.aborted) return;
    this.pauses.pauseForRedelivery(topic, partition, offset, delayMs);
    this.deps.logger.warn(
      { topic, partition, offset, delayMs, err: error },
      'transient failure outlasted errors.retry.timeout; partition paused, records will be redelivered',
    );
    this.scheduleLagRefresh();
  }

  private setLag(topic: string, partition: number, lag: number): void {
    this.lagSeries.add(`${topic}:${partition}`);
    this.deps.metrics.consumerLag.set(
      { ...this.labels, topic, partition: String(partition) },
      Math.max(0, lag),
    );
  }

  /**
   * While partitions wait for redelivery no batch arrives, so their lag is read from the broker
   * (high watermark minus the first undelivered offset): the gauge keeps moving during an outage.
   */
  private scheduleLagRefresh(): void {
    if (this.lagTimer || this.abort.signal.aborted) return;
    this.lagTimer = setTimeout(() => {
      this.lagTimer = undefined;
      void this.refreshPausedLag().finally(() => {
        if (this.pauses.waiting().length > 0) this.scheduleLagRefresh();
      });
    }, this.deps.pausedLagRefreshMs ?? PAUSED_LAG_REFRESH_MS);
    this.lagTimer.unref?.();
  }

  private async refreshPausedLag(): Promise<void> {
    const waiting = this.pauses.waiting().map(splitKey);
    if (waiting.length === 0 || this.abort.signal.aborted) return;
    try {
      await this.withAdmin(async (admin) => {
        for (const topic of new Set(waiting.map(([t]) => t))) {
          const offsets = await admin.fetchTopicOffsets(topic);
          for (const [t, partition] of waiting) {
            if (t !== topic) continue;
            const from = this.pauses.resumeOffset(topic, partition);
            const high = offsets.find((o) => o.partition === partition)?.high;
            if (from !== undefined && high !== undefined)
              this.setLag(topic, partition, Number(high) - Number(from));
          }
        }
      });
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'reading the lag of paused partitions failed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  private setState(state: ObservedState): void {
    this.observed = state;
    this.deps.metrics.setStatus(this.labels, state);
    this.deps.onStateChange?.(state);
  }

  /** Marks the task FAILED and releases it in the background; stop() waits for that release. */
  private failWith(error: unknown, stage?: Stage): void {
    if (this.observed === 'FAILED') return;
    this.failureTrace = traceOf(error);
    this.deps.logger.error({ err: error, stage }, 'task failed');
    this.setState('FAILED');
    this.stopping ??= this.shutdown('FAILED');
    this.stopping.catch(() => undefined);
  }

  private async shutdown(finalState: ObservedState): Promise<void> {
    this.abort.abort();
    this.pauses.stop();
    clearTimeout(this.lagTimer);
    const steps = new ShutdownSteps({
      timeoutMs: this.deps.settings.shutdownTimeoutMs,
      sleep: this.sleep,
      logger: this.deps.logger,
    });
    // Order matters: stop fetching (kafkajs finishes the batch in flight and commits what was
    // resolved), then let the task release its resources, then close the producers. A consumer
    // still connecting or joining its group must not hold the stop past the deadline.
    await steps.step('finishing the task start', this.starting && (() => this.starting));
    await steps.step('starting the consumer', this.consuming && (() => this.consuming));
    await steps.step('stopping the consumer', this.consumer && (() => this.consumer!.disconnect()));
    await steps.step('stopping the task', this.task?.stop && (() => this.task!.stop!()));
    await steps.step('closing the producers', () => this.delivery.stop());
    if (finalState !== 'FAILED' && this.observed !== 'FAILED') this.setState('STOPPED');
    steps.finish(`Task ${this.taskId} of connector ${this.deps.connectorName}`);
  }
}

function splitKey(key: string): [string, number] {
  const at = key.lastIndexOf(':');
  return [key.slice(0, at), Number(key.slice(at + 1))];
}

/**
 * exactly_once needs acks=all, idempotence and read_committed input: overrides that take any of
 * them away cannot be correct and are refused before the task starts.
 */
function exactlyOnceProblems(producer: Record<string, string>, consumer: Record<string, string>): void {
  const problems: string[] = [];
  const acks = producer['acks'];
  if (acks !== undefined && acks !== 'all' && acks !== '-1')
    problems.push(`producer acks=${acks} (exactly_once needs acks=all)`);
  if (producer['enable.idempotence']?.trim().toLowerCase() === 'false')
    problems.push('producer enable.idempotence=false (exactly_once needs the idempotent producer)');
  if (consumer['isolation.level'] === 'read_uncommitted')
    problems.push('consumer isolation.level=read_uncommitted (exactly_once reads committed input only)');
  if (problems.length > 0) {
    throw new FatalError(
      'CONFIG_INVALID',
      `processing.guarantee=exactly_once cannot be correct with ${problems.join(', ')}: remove these overrides ` +
        'or use processing.guarantee=at_least_once',
      { stage: 'CONFIG' },
    );
  }
}
