// The dead-letter queue: bad records, byte for byte as they were consumed, with Kafka Connect's
// `__connect.errors.*` context headers so existing DLQ tooling (and replays) work unchanged.
// `send` resolves only once Kafka acknowledged every dead letter; the caller commits the
// consumed offsets after that, never before (a failed DLQ write must not advance the offset).
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
}

export class DeadLetterQueue {
  constructor(private readonly options: DeadLetterQueueOptions) {}

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

  private headersFor(letter: DeadLetter): IHeaders {
    const headers: IHeaders = { ...(letter.headers ?? {}) };
    if (!this.options.contextHeaders) return headers;
    const put = (name: string, value: string | number | undefined) => {
      if (value !== undefined) headers[ERROR_HEADER_PREFIX + name] = String(value);
    };
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
    put('exception.message', error.message);
    put('exception.stacktrace', error.stack ?? error.message);
    if (error instanceof ConnectError) {
      put('error.code', error.code);
      for (const [key, value] of Object.entries(error.context)) put(key, value);
    }
    return headers;
  }
}
