// Runs a source task: polls it, converts and produces its records, and stores each source
// partition's offset once Kafka acknowledged the records up to it (at-least-once: after a crash
// the task resumes from the last stored offset, so records since then may be produced twice).
//
// Failures follow the three outcomes of runtime/errors.ts. Transient ones (a poll, a schema
// registry blip while encoding, a produce the broker may accept later) are retried by the shared
// retry operator; when one outlasts errors.retry.timeout the runner holds the batch, waits, and
// tries again (a source's "pause and redeliver"): nothing is lost and no offset moves past it.
// Bad records go to the dead-letter queue with errors.tolerance=all. Anything else, including a
// failure to store offsets, fails the task with its cause as the trace.
import { Partitioners, type Message, type Producer } from 'kafkajs';
import type {
  SourceOffset,
  SourcePlugin,
  SourceRecord,
  SourceRecordFailure,
  SourceTask,
  SourceTaskContext,
} from './api.js';
import { backoffDelay, interruptibleSleep } from './backoff.js';
import { DeadLetterQueue, type DeadLetter } from './dead-letter-queue.js';
import { ConnectError, outcomeOf, traceOf } from './errors.js';
import type { ObservedState } from './herder.js';
import { ensureTopic, kafkaClientOverrides, kafkaFor, sendInRequests } from './kafka-clients.js';
import { classifyProducerError } from './kafka-errors.js';
import { partitionKey, type FileOffsetStore } from './offset-store.js';
import { retryTransient, type RetryOptions } from './retry-operator.js';
import { ShutdownSteps } from './shutdown-steps.js';
import { taskLabels, type RunnerDependencies, type TaskRunner } from './task-runner.js';
import { createTransformChain, TransformError, type TransformChain } from './transforms/index.js';

const IDLE_POLL_DELAY_MS = 200;

/** What `retrying` returns when the task was stopped before the work succeeded. */
const STOPPED = Symbol('stopped');

type Produced = { topic: string; message: Message };

export class SourceTaskRunner implements TaskRunner {
  readonly taskId: number;
  private observed: ObservedState = 'UNASSIGNED';
  private failureTrace: string | undefined;
  private readonly abort = new AbortController();
  private readonly labels;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<boolean>;
  private readonly retryTimeoutMs: number;
  private readonly maxDelayMs: number;
  private kafka: RunnerDependencies['kafka'] | undefined;
  private task: SourceTask | undefined;
  private producer: Producer | undefined;
  private dlq: DeadLetterQueue | undefined;
  private starting: Promise<void> | undefined;
  private loop: Promise<void> | undefined;
  /** An error the poll loop hit after stop was requested: reported by stop, not a task failure. */
  private loopErrorWhileStopping: unknown;
  private stopping: Promise<void> | undefined;
  private userPaused = false;
  private wakeUp: (() => void) | undefined;
  private readonly knownTopics = new Set<string>();
  /** Offsets Kafka acknowledged and the store does not have yet. */
  private readonly acknowledged = new Map<string, SourceOffset>();
  /** Set once stop stored the offsets: a poll loop still running after its deadline stores nothing. */
  private offsetsClosed = false;
  private lastFlush = 0;
  private finished = false;
  /** What is being retried right now, for `/status`. */
  private retryingWhat: string | undefined;
  /** The connector's Single Message Transforms, applied to each polled record before the converters. */
  private transforms: TransformChain | undefined;

  constructor(
    private readonly deps: RunnerDependencies & { plugin: SourcePlugin; offsets: FileOffsetStore },
  ) {
    this.taskId = deps.taskId;
    this.labels = taskLabels(deps.connectorName, deps.taskId);
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? interruptibleSleep;
    this.retryTimeoutMs = deps.config.getNumber('errors.retry.timeout');
    this.maxDelayMs = deps.config.getNumber('errors.retry.delay.max.ms');
  }

  get state(): ObservedState {
    return this.observed;
  }

  get trace(): string | undefined {
    return this.failureTrace;
  }

  details(): Record<string, unknown> {
    return {
      finished: this.finished,
      ...(this.retryingWhat ? { retrying: this.retryingWhat } : {}),
      ...(this.dlq ? { dead_letters: { topic: this.dlq.topic, recent: this.dlq.recent() } } : {}),
      ...(this.task?.describe?.() ?? {}),
    };
  }

  /** Resolves once the task runs, or has FAILED and released what it had opened; never rejects. */
  async start(): Promise<void> {
    this.starting ??= this.open();
    await this.starting;
    if (this.observed === 'FAILED') await this.stopping?.catch(() => undefined);
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

  /**
   * Idempotent. Stops polling, stores the acknowledged offsets, stops the task and closes the
   * producer, all within one deadline (`task.shutdown.graceful.timeout.ms`). Every step runs even
   * when an earlier one failed; then it resolves if all went cleanly, and otherwise rejects with
   * TASK_STOP_FAILED listing the steps that failed or outlasted the deadline.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown('STOPPED');
    return this.stopping;
  }

  // -------------------------------------------------------------------------------------------
  // Start and the poll loop

  private async open(): Promise<void> {
    const { deps } = this;
    const signal = this.abort.signal;
    if (signal.aborted) return; // stopped before it started: nothing to open
    try {
      const context: SourceTaskContext = {
        connectorName: deps.connectorName,
        taskId: deps.taskId,
        config: deps.config,
        logger: deps.logger,
        metrics: deps.registry,
        metricLabels: this.labels,
        signal,
        now: this.now,
        offsetFor: (partition) => deps.offsets.get(deps.connectorName, partition),
      };
      // The worker's Kafka with this connector's client overrides (security included) applied.
      this.kafka = kafkaFor(deps.kafka, deps.config);
      this.transforms = createTransformChain(deps.config.originals);
      this.task = deps.plugin.createTask(context);
      await this.task.start?.();
      if (signal.aborted) return;
      this.producer = this.kafka.producer({
        createPartitioner: Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
        ...kafkaClientOverrides({
          ...deps.settings.producerOverrides,
          ...deps.config.withPrefix('producer.override.'),
        }),
      });
      await this.producer.connect();
      if (signal.aborted) return;
      const dlqTopic = deps.config.getOptionalString('errors.deadletterqueue.topic.name');
      if (dlqTopic) {
        await this.ensureTopic(
          dlqTopic,
          deps.config.getNumber('errors.deadletterqueue.topic.replication.factor'),
        );
        this.dlq = new DeadLetterQueue({
          topic: dlqTopic,
          contextHeaders: deps.config.getBoolean('errors.deadletterqueue.context.headers.enable'),
          connectorName: deps.connectorName,
          taskId: deps.taskId,
          metrics: deps.metrics,
          labels: this.labels,
          ...(deps.redact ? { redact: deps.redact } : {}),
          now: this.now,
        });
      }
      if (signal.aborted) return;
      this.lastFlush = this.now();
      this.setState(this.userPaused ? 'PAUSED' : 'RUNNING');
      this.loop = this.run();
    } catch (error) {
      // A stop that interrupted the start reports its own steps; this is not a task failure.
      if (!signal.aborted) this.fail(error);
    }
  }

  /** The poll loop; never rejects (a failure fails the task, or is reported by a stop in progress). */
  private async run(): Promise<void> {
    try {
      await this.pollUntilStopped();
    } catch (error) {
      if (this.stopping && this.observed !== 'FAILED') this.loopErrorWhileStopping = error;
      else this.fail(error);
    }
  }

  private async pollUntilStopped(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      if (this.userPaused) {
        await this.untilResumedOrStopped();
        continue;
      }
      const polled = await this.retrying('polling the task', () => this.task!.poll());
      if (polled === STOPPED) return;
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
      if ((await this.write(polled)) === STOPPED) return;
      this.flushOffsets(false);
    }
  }

  private untilResumedOrStopped(): Promise<void> {
    const signal = this.abort.signal;
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        this.wakeUp = undefined;
        resolve();
      };
      this.wakeUp = done;
      signal.addEventListener('abort', done, { once: true });
      if (!this.userPaused || signal.aborted) done();
    });
  }

  // -------------------------------------------------------------------------------------------
  // Converting and producing one poll

  /**
   * Produces one poll's records and dead letters, then marks their offsets acknowledged. Returns
   * STOPPED (acknowledging nothing) when a stop came while it was retrying; throws for a fatal
   * error or, with errors.tolerance=none, the first bad record (after writing those before it).
   */
  private async write(polled: Array<SourceRecord | SourceRecordFailure>): Promise<void | typeof STOPPED> {
    const { deps } = this;
    const tolerateAll = deps.config.getString('errors.tolerance') === 'all';
    const messages: Produced[] = [];
    const letters: DeadLetter[] = [];
    let firstBad: { error: Error; index: number } | undefined;

    for (const [index, item] of polled.entries()) {
      if ('error' in item) {
        if (!tolerateAll) {
          firstBad = { error: item.error, index };
          break;
        }
        letters.push({
          key: null,
          value: item.raw,
          stage: 'TASK_POLL',
          className: deps.plugin.name,
          error: item.error,
        });
        continue;
      }
      // Kafka Connect's WorkerSourceTask: transforms, then converters. A dropped record (Filter)
      // is not produced, and its source offset is acknowledged with the poll's.
      let record: SourceRecord | null;
      try {
        record = this.transform(item);
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        if (!tolerateAll) {
          firstBad = { error: error as Error, index };
          break;
        }
        letters.push({
          key: null,
          value: Buffer.from(JSON.stringify(item.value) ?? 'null'),
          stage: 'TRANSFORMATION',
          className: error instanceof TransformError ? error.className : 'Transformation',
          error: error as Error,
        });
        continue;
      }
      if (record === null) continue;
      let converted: Produced | typeof STOPPED;
      try {
        converted = await this.retrying('encoding a source record', () => this.convert(record));
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        if (!tolerateAll) {
          firstBad = { error: error as Error, index };
          break;
        }
        letters.push({
          key: null,
          value: Buffer.from(JSON.stringify(item.value)),
          stage: 'VALUE_CONVERTER',
          className: this.deps.valueConverter.className ?? 'ValueConverter',
          error: error as Error,
        });
        continue;
      }
      if (converted === STOPPED) return STOPPED;
      messages.push(converted);
    }

    if ((await this.produceAll(messages, letters, tolerateAll)) === STOPPED) return STOPPED;
    if (letters.length > 0 && this.dlq) {
      const dlq = this.dlq;
      const writeLetters = async () => {
        await this.ensureTopic(
          dlq.topic,
          this.deps.config.getNumber('errors.deadletterqueue.topic.replication.factor'),
        );
        await this.sendOrForgetTopics([dlq.topic], () => dlq.send(letters, this.producer!));
      };
      if ((await this.retrying('writing dead letters', writeLetters)) === STOPPED) return STOPPED;
    }

    const written = firstBad ? polled.slice(0, firstBad.index) : polled;
    for (const item of written) this.acknowledged.set(partitionKey(item.sourcePartition), item.sourceOffset);
    const producedCount = messages.length - letters.filter((l) => l.stage === 'KAFKA_PRODUCE').length;
    deps.metrics.sourceRecordWrite.inc(this.labels, producedCount);
    if (letters.length > 0) {
      deps.metrics.recordErrors.inc(this.labels, letters.length);
      deps.metrics.recordsSkipped.inc(this.labels, letters.length);
      deps.metrics.lastErrorTimestamp.set(this.labels, this.now());
      for (const letter of letters) deps.logger.warn({ err: letter.error }, 'source record skipped');
    }
    if (firstBad) {
      throw new ConnectError(
        (firstBad.error as ConnectError).code ?? 'SOURCE_RECORD_MALFORMED',
        `source record failed and errors.tolerance=none: ${firstBad.error.message}. ` +
          'Fix the input (or set errors.tolerance=all), then restart the task; it resumes at this record',
        { cause: firstBad.error, stage: 'TASK_POLL' },
      );
    }
  }

  /** The record after the transform chain (null: dropped); throws TransformError for one it cannot handle. */
  private transform(item: SourceRecord): SourceRecord | null {
    const chain = this.transforms;
    if (chain === undefined || chain.aliases.length === 0) return item;
    const headers: Record<string, Buffer | undefined> = {};
    for (const [name, value] of Object.entries(item.headers ?? {}))
      headers[name] = typeof value === 'string' ? Buffer.from(value) : value;
    const out = chain.apply({
      topic: item.topic,
      partition: null,
      timestamp: item.timestamp ?? null,
      key: item.key,
      keySchema: undefined,
      value: item.value,
      valueSchema: item.valueSchema,
      headers,
    });
    if (out === null) return null;
    const outHeaders: Record<string, Buffer> = {};
    for (const [name, value] of Object.entries(out.headers))
      if (value !== undefined) outHeaders[name] = value;
    const keyChanged = out.key !== item.key;
    return {
      ...item,
      topic: out.topic,
      ...(out.timestamp !== null ? { timestamp: out.timestamp } : {}),
      key: out.key,
      // A transform that changed the key (ValueToKey, HoistField$Key...) wins over the raw bytes.
      ...(keyChanged ? { rawKey: undefined } : {}),
      value: out.value,
      valueSchema: out.valueSchema,
      headers: outHeaders,
    };
  }

  /** Encodes one record. RetriableError: the registry is unreachable; RecordError: the value does not fit. */
  private async convert(item: SourceRecord): Promise<Produced> {
    const { keyConverter, valueConverter } = this.deps;
    await this.ensureTopic(item.topic, -1);
    await valueConverter.prepareEncode?.(item.topic, item.valueSchema);
    const key =
      item.rawKey !== undefined ? item.rawKey : keyConverter.fromConnect(item.topic, item.key ?? null);
    const value = valueConverter.fromConnect(item.topic, item.value, item.valueSchema);
    return {
      topic: item.topic,
      message: { key, value, timestamp: item.timestamp ?? String(this.now()), headers: item.headers },
    };
  }

  /**
   * Produces `messages`, retrying transient failures. When the broker refuses a record (too large)
   * and errors.tolerance=all, the messages are sent one by one and the refused ones become dead
   * letters (appended to `letters`); with errors.tolerance=none the refusal fails the task.
   */
  private async produceAll(
    messages: Produced[],
    letters: DeadLetter[],
    tolerateAll: boolean,
  ): Promise<void | typeof STOPPED> {
    if (messages.length === 0) return;
    try {
      return await this.retrying('producing source records', () => this.produce(messages));
    } catch (error) {
      if (outcomeOf(error) !== 'fail-record' || !tolerateAll) throw error;
      if (messages.length === 1) {
        letters.push(producerLetter(messages[0]!, error));
        return;
      }
    }
    // Find the refused record(s): kafkajs fails a whole request for one record too large.
    for (const one of messages) {
      try {
        if ((await this.retrying('producing a source record', () => this.produce([one]))) === STOPPED) {
          return STOPPED;
        }
      } catch (error) {
        if (outcomeOf(error) !== 'fail-record') throw error;
        letters.push(producerLetter(one, error));
      }
    }
  }

  private async produce(messages: readonly Produced[]): Promise<void> {
    const topics = [...new Set(messages.map((m) => m.topic))];
    for (const topic of topics) await this.ensureTopic(topic, -1);
    await this.sendOrForgetTopics(topics, async () => {
      try {
        await sendInRequests(this.producer!, messages);
      } catch (error) {
        throw classifyProducerError(error, { topics });
      }
    });
  }

  /** Runs `send`; when the broker says a topic is gone, forgets it was created so the retry creates it again. */
  private async sendOrForgetTopics(topics: readonly string[], send: () => Promise<void>): Promise<void> {
    try {
      await send();
    } catch (error) {
      if ((error as ConnectError).code === 'KAFKA_TOPIC_MISSING')
        for (const t of topics) this.knownTopics.delete(t);
      throw error;
    }
  }

  /**
   * Runs `work` until it succeeds, retrying transient failures with the shared retry operator.
   * When a failure outlasts errors.retry.timeout, waits (longer after each such round, up to
   * errors.retry.delay.max.ms) and starts a new round with the same work: a source has nowhere to
   * redeliver from, so it holds what it polled. Returns STOPPED when the task is stopped first;
   * rethrows errors that are not transient.
   */
  private async retrying<T>(what: string, work: () => Promise<T>): Promise<T | typeof STOPPED> {
    const { logger, metrics } = this.deps;
    const { retryTimeoutMs, maxDelayMs } = this;
    const options: RetryOptions = {
      retryTimeoutMs,
      maxDelayMs,
      now: this.now,
      sleep: this.sleep,
      signal: this.abort.signal,
      onRetry: (error, attempt, delayMs) => {
        this.retryingWhat = what;
        metrics.retries.inc(this.labels);
        logger.warn({ err: error, attempt, delayMs }, `${what} failed; retrying`);
      },
    };
    try {
      for (let attemptsSoFar = 0; ;) {
        const result = await retryTransient(work, options);
        if (result.kind === 'ok') return result.value;
        if (result.kind === 'stopped') return STOPPED;
        attemptsSoFar += result.attempts;
        const delayMs = Math.max(result.nextDelayMs, backoffDelay(attemptsSoFar, maxDelayMs));
        this.retryingWhat = what;
        metrics.retries.inc(this.labels);
        logger.warn(
          { err: result.error, attempts: attemptsSoFar, delayMs },
          `${what} kept failing for errors.retry.timeout; holding the polled records and trying again`,
        );
        if (!(await this.sleep(delayMs, this.abort.signal)) || this.abort.signal.aborted) return STOPPED;
      }
    } finally {
      this.retryingWhat = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Offsets, topics, state

  /** Stores the acknowledged offsets (every offset.flush.interval.ms, or now when `force`). Throws on a store failure. */
  private flushOffsets(force: boolean): void {
    if (this.offsetsClosed) return;
    const interval = this.deps.settings.offsetFlushIntervalMs;
    if (!force && this.now() - this.lastFlush < interval) return;
    this.lastFlush = this.now();
    if (this.acknowledged.size === 0) return;
    this.deps.offsets.commit(this.deps.connectorName, this.acknowledged);
    this.acknowledged.clear();
  }

  private async ensureTopic(topic: string, replicationFactor: number): Promise<void> {
    if (this.knownTopics.has(topic)) return;
    await ensureTopic(this.kafka ?? this.deps.kafka, this.deps.logger, topic, {
      numPartitions: 1,
      replicationFactor,
    });
    this.knownTopics.add(topic);
  }

  private setState(state: ObservedState): void {
    this.observed = state;
    this.deps.metrics.setStatus(this.labels, state);
    this.deps.onStateChange?.(state);
  }

  /** Marks the task FAILED and starts releasing it; `start` and `stop` wait for that release. */
  private fail(error: unknown): void {
    if (this.observed === 'FAILED') return;
    this.failureTrace = traceOf(error);
    this.deps.logger.error({ err: error }, 'task failed');
    this.setState('FAILED');
    this.stopping ??= this.shutdown('FAILED');
    // The release of a failed task is awaited by start() and stop(); a failed step is logged there.
    this.stopping.catch(() => undefined);
  }

  private async shutdown(finalState: 'STOPPED' | 'FAILED'): Promise<void> {
    this.abort.abort();
    this.wakeUp?.();
    const steps = new ShutdownSteps({
      timeoutMs: this.deps.settings.shutdownTimeoutMs,
      sleep: this.sleep,
      logger: this.deps.logger,
    });
    await steps.step('finishing the task start', this.starting && (() => this.starting));
    await steps.step(
      'leaving the poll loop',
      this.loop &&
        (async () => {
          await this.loop;
          if (this.loopErrorWhileStopping !== undefined) throw this.loopErrorWhileStopping;
        }),
    );
    await steps.step('storing source offsets', () => this.flushOffsets(true));
    this.offsetsClosed = true;
    await steps.step('stopping the task', this.task?.stop && (() => this.task!.stop!()));
    await steps.step('closing the producer', this.producer && (() => this.producer!.disconnect()));
    if (finalState === 'STOPPED' && this.observed !== 'FAILED') this.setState('STOPPED');
    steps.finish(`Task ${this.taskId} of connector ${this.deps.connectorName}`);
  }
}

/** A record the broker refused (too large for the topic), as a dead letter with its encoded bytes. */
function producerLetter(produced: Produced, error: unknown): DeadLetter {
  const bytes = (v: Buffer | string | null | undefined): Buffer | null =>
    v === null || v === undefined ? null : typeof v === 'string' ? Buffer.from(v) : v;
  return {
    key: bytes(produced.message.key),
    value: bytes(produced.message.value),
    stage: 'KAFKA_PRODUCE',
    className: 'KafkaProducer',
    error: error as Error,
  };
}
