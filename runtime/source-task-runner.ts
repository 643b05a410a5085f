// Runs a source task: polls it, converts and produces its records, and stores each source
// partition's offset once Kafka acknowledged the records up to it (at-least-once: after a crash
// the task resumes from the last stored offset, so records since then may be produced twice).
import { Partitioners, type Message, type Producer } from 'kafkajs';
import type {
  SourceRecord,
  SourceRecordFailure,
  SourceTask,
  SourcePlugin,
  SourceTaskContext,
} from './api.js';
import { backoffDelay, interruptibleSleep } from './backoff.js';
import { DeadLetterQueue, type DeadLetter } from './dead-letter-queue.js';
import { ConnectError, outcomeOf, RetriableError, traceOf } from './errors.js';
import type { ObservedState } from './herder.js';
import { ensureTopic, kafkaClientOverrides, sendInRequests } from './kafka-clients.js';
import { partitionKey, type FileOffsetStore } from './offset-store.js';
import { taskLabels, type RunnerDependencies, type TaskRunner } from './task-runner.js';
import type { SourceOffset } from './api.js';

const IDLE_POLL_DELAY_MS = 200;

export class SourceTaskRunner implements TaskRunner {
  readonly taskId: number;
  private observed: ObservedState = 'UNASSIGNED';
  private failureTrace: string | undefined;
  private readonly abort = new AbortController();
  private readonly labels;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  private task: SourceTask | undefined;
  private producer: Producer | undefined;
  private dlq: DeadLetterQueue | undefined;
  private loop: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private userPaused = false;
  private wakeUp: (() => void) | undefined;
  private readonly knownTopics = new Set<string>();
  private readonly acknowledged = new Map<string, SourceOffset>();
  private lastFlush = 0;
  private finished = false;

  constructor(
    private readonly deps: RunnerDependencies & { plugin: SourcePlugin; offsets: FileOffsetStore },
  ) {
    this.taskId = deps.taskId;
    this.labels = taskLabels(deps.connectorName, deps.taskId);
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? interruptibleSleep;
  }

  get state(): ObservedState {
    return this.observed;
  }

  get trace(): string | undefined {
    return this.failureTrace;
  }

  details(): Record<string, unknown> {
    return { finished: this.finished, ...(this.task?.describe?.() ?? {}) };
  }

  async start(): Promise<void> {
    const { deps } = this;
    try {
      const context: SourceTaskContext = {
        connectorName: deps.connectorName,
        taskId: deps.taskId,
        config: deps.config,
        logger: deps.logger,
        metrics: deps.registry,
        metricLabels: this.labels,
        signal: this.abort.signal,
        now: this.now,
        offsetFor: (partition) => deps.offsets.get(deps.connectorName, partition),
      };
      this.task = deps.plugin.createTask(context);
      await this.task.start?.();
      this.producer = deps.kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
        ...kafkaClientOverrides({
          ...deps.settings.producerOverrides,
          ...deps.config.withPrefix('producer.override.'),
        }),
      });
      await this.producer.connect();
      const dlqTopic = deps.config.getOptionalString('errors.deadletterqueue.topic.name');
      if (dlqTopic) {
        await this.ensureTopic(
          dlqTopic,
          deps.config.getNumber('errors.deadletterqueue.topic.replication.factor'),
        );
        this.dlq = new DeadLetterQueue({
          topic: dlqTopic,
          producer: this.producer,
          contextHeaders: deps.config.getBoolean('errors.deadletterqueue.context.headers.enable'),
          connectorName: deps.connectorName,
          taskId: deps.taskId,
          metrics: deps.metrics,
          labels: this.labels,
        });
      }
      this.lastFlush = this.now();
      this.setState(this.userPaused ? 'PAUSED' : 'RUNNING');
      this.loop = this.run();
    } catch (error) {
      await this.fail(error);
    }
  }

  async pause(): Promise<void> {
    this.userPaused = true;
    if (this.observed === 'RUNNING') this.setState('PAUSED');
  }

  async resume(): Promise<void> {
    this.userPaused = false;
    if (this.observed === 'PAUSED') this.setState('RUNNING');
    this.wakeUp?.();
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (this.userPaused) {
        await new Promise<void>((resolve) => {
          this.wakeUp = resolve;
          signal.addEventListener('abort', () => resolve(), { once: true });
        });
        continue;
      }
      let polled: Array<SourceRecord | SourceRecordFailure> | null;
      try {
        polled = await this.task!.poll();
      } catch (error) {
        if (outcomeOf(error) === 'retry') {
          this.deps.metrics.retries.inc(this.labels);
          await this.sleep(backoffDelay(1, this.deps.config.getNumber('errors.retry.delay.max.ms')), signal);
          continue;
        }
        await this.fail(error);
        return;
      }
      if (polled === null) {
        this.finished = true;
        this.flushOffsets(true);
        return;
      }
      if (polled.length === 0) {
        this.flushOffsets(false);
        await this.sleep(IDLE_POLL_DELAY_MS, signal);
        continue;
      }
      this.deps.metrics.sourceRecordPoll.inc(this.labels, polled.length);
      try {
        await this.write(polled);
      } catch (error) {
        await this.fail(error);
        return;
      }
      this.flushOffsets(false);
    }
  }

  /** Produces one poll's records (retrying transient failures until stop) and records their offsets. */
  private async write(polled: Array<SourceRecord | SourceRecordFailure>): Promise<void> {
    const { deps } = this;
    const tolerateAll = deps.config.getString('errors.tolerance') === 'all';
    const messages: Array<{ topic: string; message: Message }> = [];
    const letters: DeadLetter[] = [];
    let firstBad: { error: Error; index: number } | undefined;

    for (const [index, item] of polled.entries()) {
      if ('error' in item) {
        firstBad ??= tolerateAll ? undefined : { error: item.error, index };
        if (firstBad) break;
        letters.push({
          key: null,
          value: item.raw,
          stage: 'TASK_POLL',
          className: deps.plugin.name,
          error: item.error,
        });
        continue;
      }
      try {
        await this.ensureTopic(item.topic, -1);
        await deps.valueConverter.prepareEncode?.(item.topic, item.valueSchema);
        const key =
          item.rawKey !== undefined
            ? item.rawKey
            : deps.keyConverter.fromConnect(item.topic, item.key ?? null);
        const value = deps.valueConverter.fromConnect(item.topic, item.value, item.valueSchema);
        messages.push({
          topic: item.topic,
          message: {
            key,
            value,
            timestamp: item.timestamp ?? String(this.now()),
            headers: item.headers,
          },
        });
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        firstBad ??= tolerateAll ? undefined : { error: error as Error, index };
        if (firstBad) break;
        letters.push({
          key: null,
          value: Buffer.from(JSON.stringify(item.value)),
          stage: 'VALUE_CONVERTER',
          className: 'ValueConverter',
          error: error as Error,
        });
      }
    }

    await this.sendWithRetry(messages, letters);
    const written = firstBad ? polled.slice(0, firstBad.index) : polled;
    for (const item of written) this.acknowledged.set(partitionKey(item.sourcePartition), item.sourceOffset);
    deps.metrics.sourceRecordWrite.inc(this.labels, messages.length);
    if (letters.length > 0) {
      deps.metrics.recordErrors.inc(this.labels, letters.length);
      deps.metrics.recordsSkipped.inc(this.labels, letters.length);
      deps.metrics.lastErrorTimestamp.set(this.labels, this.now());
      for (const letter of letters) deps.logger.warn({ err: letter.error }, 'source record skipped');
    }
    if (firstBad) {
      this.flushOffsets(true);
      throw new ConnectError(
        (firstBad.error as ConnectError).code ?? 'SOURCE_RECORD_MALFORMED',
        `source record failed and errors.tolerance=none: ${firstBad.error.message}. ` +
          'Fix the input (or set errors.tolerance=all), then restart the task; it resumes at this record',
        { cause: firstBad.error, stage: 'TASK_POLL' },
      );
    }
  }

  private async sendWithRetry(messages: Array<{ topic: string; message: Message }>, letters: DeadLetter[]) {
    const signal = this.abort.signal;
    for (let attempt = 1; ; attempt++) {
      try {
        await sendInRequests(this.producer!, messages);
        if (letters.length > 0) {
          if (this.dlq) await this.dlq.send(letters);
        }
        return;
      } catch (error) {
        this.deps.metrics.retries.inc(this.labels);
        const delay = backoffDelay(attempt, this.deps.config.getNumber('errors.retry.delay.max.ms'));
        this.deps.logger.warn({ err: error, attempt, delay }, 'producing source records failed; retrying');
        // A stop during the retry gives up on this poll: its offsets are not stored, so a restart re-reads it.
        if (!(await this.sleep(delay, signal))) {
          throw new RetriableError('KAFKA_PRODUCE_FAILED', 'stopped while retrying a failed produce', {
            cause: error,
          });
        }
      }
    }
  }

  private flushOffsets(force: boolean): void {
    const interval = this.deps.settings.offsetFlushIntervalMs;
    if (!force && this.now() - this.lastFlush < interval) return;
    this.lastFlush = this.now();
    if (this.acknowledged.size === 0) return;
    this.deps.offsets.commit(this.deps.connectorName, this.acknowledged);
    this.acknowledged.clear();
  }

  private async ensureTopic(topic: string, replicationFactor: number): Promise<void> {
    if (this.knownTopics.has(topic)) return;
    await ensureTopic(this.deps.kafka, this.deps.logger, topic, { numPartitions: 1, replicationFactor });
    this.knownTopics.add(topic);
  }

  private setState(state: ObservedState): void {
    this.observed = state;
    this.deps.metrics.setStatus(this.labels, state);
    this.deps.onStateChange?.(state);
  }

  private async fail(error: unknown): Promise<void> {
    if (this.observed === 'FAILED') return;
    this.failureTrace = traceOf(error);
    this.deps.logger.error({ err: error }, 'task failed');
    this.setState('FAILED');
    await this.release();
  }

  private async shutdown(): Promise<void> {
    this.abort.abort();
    this.wakeUp?.();
    await this.loop?.catch(() => undefined);
    if (this.observed !== 'FAILED') {
      await this.release();
      this.setState('STOPPED');
    }
  }

  private async release(): Promise<void> {
    this.abort.abort();
    try {
      this.flushOffsets(true);
    } catch (error) {
      this.deps.logger.error({ err: error }, 'storing source offsets failed');
    }
    await this.task
      ?.stop?.()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'task stop failed'));
    await this.producer?.disconnect().catch(() => undefined);
  }
}
