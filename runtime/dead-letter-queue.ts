// The dead-letter queue: bad records, byte for byte as they were consumed, with Kafka Connect's
// `__connect.errors.*` context headers so existing DLQ tooling (and replays) work unchanged.
// `send` resolves only once Kafka acknowledged every dead letter; the caller commits the
// consumed offsets after that, never before (a failed DLQ write must not advance the offset).
// The exception headers pass through `redact` (the worker's SecretRedactor): a record that failed
// because of a secret config value must not carry that value into the topic.
import type { IHeaders, Producer } from 'kafkajs';
import { ConnectError, RetriableError, type Stage } from './errors.js';
import { classifyProducerError } from './kafka-errors.js';
import { sendInRequests } from './kafka-clients.js';
import type { RuntimeMetrics, TaskLabels } from './task-metrics.js';

export const ERROR_HEADER_PREFIX = '__connect.errors.';

/** One record that failed, with what is known about where it came from. */
export interface DeadLetter {
  /** Where the record was read; absent for a source record that never reached Kafka. */
  origin?: { topic: string; partition: number; offset: string };
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders;
  timestamp?: string;
  stage: Stage;
  /** The class (converter, connector) that ran the failing stage. */
  className: string;
  error: Error;
}

export interface DeadLetterQueueOptions {
  topic: string;
  contextHeaders: boolean;
  /** Bytes per produce request at most (below the DLQ topic's `max.message.bytes`). */
  maxRequestBytes?: number;
  connectorName: string;
  taskId: number;
  metrics: RuntimeMetrics;
  labels: TaskLabels;
  /** Hides known secrets in the exception message, stack trace and context headers. */
  redact?: (text: string) => string;
  /** How many recent dead letters `recent()` keeps (default 10), for `/status` and the status page. */
  recentMax?: number;
  now?: () => number;
}

/** What `/status` shows of a recent dead letter: where it came from and why, never its bytes. */
export interface RecentDeadLetter {
  /** Epoch ms when it was written (with exactly_once: sent in its transaction). */
  at: number;
  origin?: { topic: string; partition: number; offset: string };
  stage: Stage;
  code?: string;
  message: string;
}

export class DeadLetterQueue {
  private readonly recentLetters: RecentDeadLetter[] = [];

  constructor(private readonly options: DeadLetterQueueOptions) {}

  /** The last dead letters written, oldest first (at most `recentMax`). */
  recent(): readonly RecentDeadLetter[] {
    return this.recentLetters;
  }

  get topic(): string {
    return this.options.topic;
  }

  /**
   * Writes `letters` through `via` (the task's producer, or the transaction of an exactly_once
   * chunk), split into requests under the broker's size limit. A failure is classified like any
   * produce failure (retriable, or fatal: e.g. not authorized, or a letter too large for the DLQ
   * topic) and the consumed offsets stay uncommitted.
   */
  async send(letters: readonly DeadLetter[], via: Pick<Producer, 'sendBatch'>): Promise<void> {
    if (letters.length === 0) return;
    const { topic, metrics, labels } = this.options;
    metrics.dlqProduceRequests.inc(labels, letters.length);
    try {
      await sendInRequests(
        via,
        letters.map((letter) => ({
          topic,
          message: {
            key: letter.key,
            value: letter.value,
            timestamp: letter.timestamp,
            headers: this.headersFor(letter),
          },
        })),
        this.options.maxRequestBytes,
      );
      this.remember(letters);
    } catch (cause) {
      metrics.dlqProduceFailures.inc(labels, letters.length);
      const classified = classifyProducerError(cause, { topics: [topic], dlq: true });
      // A deleted DLQ topic is created again by the caller before the retry; fatal errors end the task.
      if (!classified.retriable || classified.code === 'KAFKA_TOPIC_MISSING') throw classified;
      throw new RetriableError(
        'DLQ_PRODUCE_FAILED',
        `writing ${letters.length} record(s) to the dead-letter topic "${topic}" failed: ${classified.message}; ` +
          'the consumed offsets stay uncommitted and the records will be redelivered',
        { cause: classified, stage: 'KAFKA_PRODUCE' },
      );
    }
  }

  private remember(letters: readonly DeadLetter[]): void {
    const max = this.options.recentMax ?? 10;
    const redact = this.options.redact ?? ((text: string) => text);
    const at = (this.options.now ?? Date.now)();
    for (const letter of letters.slice(-max)) {
      this.recentLetters.push({
        at,
        ...(letter.origin ? { origin: letter.origin } : {}),
        stage: letter.stage,
        ...(letter.error instanceof ConnectError ? { code: letter.error.code } : {}),
        message: redact(letter.error.message),
      });
    }
    if (this.recentLetters.length > max) this.recentLetters.splice(0, this.recentLetters.length - max);
  }

  private headersFor(letter: DeadLetter): IHeaders {
    const headers: IHeaders = { ...(letter.headers ?? {}) };
    if (!this.options.contextHeaders) return headers;
    const redact = this.options.redact ?? ((text: string) => text);
    const put = (name: string, value: string | number | undefined) => {
      if (value !== undefined) headers[ERROR_HEADER_PREFIX + name] = String(value);
    };
    const putText = (name: string, value: string | number | undefined) =>
      put(name, value === undefined ? undefined : redact(String(value)));
    const error = letter.error;
    if (letter.origin) {
      put('topic', letter.origin.topic);
      put('partition', letter.origin.partition);
      put('offset', letter.origin.offset);
    }
    put('connector.name', this.options.connectorName);
    put('task.id', this.options.taskId);
    put('stage', letter.stage);
    put('class.name', letter.className);
    put('exception.class.name', error.name);
    putText('exception.message', error.message);
    putText('exception.stacktrace', error.stack ?? error.message);
    if (error instanceof ConnectError) {
      put('error.code', error.code);
      for (const [key, value] of Object.entries(error.context)) putText(key, value);
    }
    return headers;
  }
}
