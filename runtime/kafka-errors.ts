// How a failed Kafka produce is handled, decided from the broker's error code the way Kafka
// Connect decides it: a record too large for its topic is a bad record (dead letter), an
// authorization failure or a request the broker will never accept is fatal, a fenced
// transactional producer lost its partition to another worker, and only retriable errors retry.
// kafkajs wraps the broker's error (a KafkaJSProtocolError with a `type`) in its own retry errors;
// the table below is keyed by that type, and anything kafkajs itself marks retriable retries.
import { ConnectError, FatalError, RecordError, RetriableError, type Stage } from './errors.js';

export type ProduceFailure = 'retry' | 'record-too-large' | 'topic-missing' | 'fenced' | 'fatal';

/** Broker error types (kafkajs `type`, Kafka's `Errors` names) that are not plain retries. */
const BY_TYPE: Record<string, ProduceFailure> = {
  MESSAGE_TOO_LARGE: 'record-too-large',
  RECORD_LIST_TOO_LARGE: 'record-too-large',
  INVALID_RECORD: 'record-too-large',
  UNKNOWN_TOPIC_OR_PARTITION: 'topic-missing',
  UNKNOWN_TOPIC_ID: 'topic-missing',
  INVALID_PRODUCER_EPOCH: 'fenced',
  PRODUCER_FENCED: 'fenced',
  INVALID_PRODUCER_ID_MAPPING: 'fenced',
  TOPIC_AUTHORIZATION_FAILED: 'fatal',
  CLUSTER_AUTHORIZATION_FAILED: 'fatal',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'fatal',
  GROUP_AUTHORIZATION_FAILED: 'fatal',
  SASL_AUTHENTICATION_FAILED: 'fatal',
  INVALID_TOPIC_EXCEPTION: 'fatal',
  INVALID_REQUIRED_ACKS: 'fatal',
  POLICY_VIOLATION: 'fatal',
  UNSUPPORTED_FOR_MESSAGE_FORMAT: 'fatal',
  UNSUPPORTED_VERSION: 'fatal',
};

/** kafkajs error classes that say nothing about the broker and are always transient. */
const TRANSIENT_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSGroupCoordinatorNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
]);

interface KafkaJsLike {
  name?: string;
  type?: string;
  retriable?: boolean;
  cause?: unknown;
  originalError?: unknown;
}

/** The broker error type inside a (possibly wrapped) kafkajs error, if any. */
function brokerType(error: unknown): string | undefined {
  let current = error as KafkaJsLike | undefined;
  for (let depth = 0; current && depth < 6; depth++) {
    if (typeof current.type === 'string' && current.type in BY_TYPE) return current.type;
    current = (current.cause ?? current.originalError) as KafkaJsLike | undefined;
  }
  return undefined;
}

function innermostRetriable(error: unknown): boolean {
  let current = error as KafkaJsLike | undefined;
  let last = current;
  for (let depth = 0; current && depth < 6; depth++) {
    if (current.name && TRANSIENT_NAMES.has(current.name)) return true;
    last = current;
    current = (current.cause ?? current.originalError) as KafkaJsLike | undefined;
  }
  // KafkaJSNumberOfRetriesExceeded is itself "non retriable" (kafkajs gave up); what counts is
  // whether the error it gave up on was retriable.
  return last?.retriable === true;
}

/** What kind of failure a kafkajs produce error is. */
export function produceFailureOf(error: unknown): ProduceFailure {
  if (error instanceof ConnectError) {
    return error.retriable ? 'retry' : error instanceof RecordError ? 'record-too-large' : 'fatal';
  }
  const type = brokerType(error);
  if (type) return BY_TYPE[type]!;
  return innermostRetriable(error) ? 'retry' : 'fatal';
}

/**
 * Turns a kafkajs produce error into the runtime's error hierarchy. `topics` names what was being
 * written, for the message; `dlq` marks a write to the dead-letter topic.
 */
export function classifyProducerError(
  error: unknown,
  context: { topics: readonly string[]; dlq?: boolean; stage?: Stage } = { topics: [] },
): ConnectError {
  if (error instanceof ConnectError) return error;
  const stage = context.stage ?? 'KAFKA_PRODUCE';
  const what = context.topics.length > 0 ? context.topics.join(', ') : 'Kafka';
  const details = (error as Error)?.message ?? String(error);
  const type = brokerType(error);
  switch (produceFailureOf(error)) {
    case 'record-too-large':
      if (context.dlq) {
        return new FatalError(
          'DLQ_RECORD_TOO_LARGE',
          `a dead letter is too large for the dead-letter topic ${what} (${type}): ${details}; ` +
            `raise the topic's max.message.bytes to at least the input topic's`,
          { cause: error, stage, context: { 'kafka.error': type } },
        );
      }
      return new RecordError(
        'KAFKA_RECORD_TOO_LARGE',
        `the broker refused a record for ${what} (${type}): ${details}; the record is larger than the topic's ` +
          'max.message.bytes (or invalid for it)',
        { cause: error, stage, context: { 'kafka.error': type } },
      );
    case 'fatal':
      return new FatalError(
        type && type.endsWith('AUTHORIZATION_FAILED')
          ? 'KAFKA_AUTHORIZATION_FAILED'
          : 'KAFKA_PRODUCE_REJECTED',
        `writing to ${what} failed and retrying cannot help (${type ?? (error as Error)?.name ?? 'error'}): ${details}`,
        { cause: error, stage, context: type ? { 'kafka.error': type } : {} },
      );
    case 'fenced':
      return new RetriableError(
        'KAFKA_PRODUCER_FENCED',
        `the transactional producer writing to ${what} was fenced by a newer one (${type}): ${details}; ` +
          'the partition moved to another task, which takes over its uncommitted records',
        { cause: error, stage, context: { 'kafka.error': type } },
      );
    case 'topic-missing':
      return new RetriableError(
        'KAFKA_TOPIC_MISSING',
        `the topic ${what} does not exist (${type}): ${details}`,
        { cause: error, stage, context: { 'kafka.error': type } },
      );
    case 'retry':
      return new RetriableError(
        context.dlq ? 'DLQ_PRODUCE_FAILED' : 'KAFKA_PRODUCE_FAILED',
        `writing to ${what} failed: ${details}`,
        { cause: error, stage },
      );
  }
}
