// Kafka clients for the worker and its tasks. Connector configs carry Kafka Connect's Java client
// property names (`consumer.override.session.timeout.ms`, worker `producer.*`); the ones kafkajs
// has an equivalent for are translated here, the others are refused with a clear message.
import {
  Kafka,
  logLevel as kafkaLogLevel,
  type KafkaConfig,
  type logCreator,
  type Message,
  type Producer,
} from 'kafkajs';
import type { Logger } from 'pino';
import { FatalError } from './errors.js';
import type { Logger as PinoLogger } from 'pino';

type Translation = [option: string, parse: (value: string) => unknown];
const integer = (value: string) => Number.parseInt(value, 10);
const bool = (value: string) => value.trim().toLowerCase() === 'true';

const CONSUMER_PROPERTIES: Record<string, Translation> = {
  'session.timeout.ms': ['sessionTimeout', integer],
  'heartbeat.interval.ms': ['heartbeatInterval', integer],
  'rebalance.timeout.ms': ['rebalanceTimeout', integer],
  'max.poll.interval.ms': ['rebalanceTimeout', integer],
  'max.partition.fetch.bytes': ['maxBytesPerPartition', integer],
  'fetch.max.bytes': ['maxBytes', integer],
  'fetch.min.bytes': ['minBytes', integer],
  'fetch.max.wait.ms': ['maxWaitTimeInMs', integer],
  'isolation.level': ['readUncommitted', (v) => v === 'read_uncommitted'],
  'auto.offset.reset': ['fromBeginning', (v) => v !== 'latest'],
};

const PRODUCER_PROPERTIES: Record<string, Translation> = {
  'enable.idempotence': ['idempotent', bool],
  'max.in.flight.requests.per.connection': ['maxInFlightRequests', integer],
  'transaction.timeout.ms': ['transactionTimeout', integer],
  acks: ['acks', (v) => (v === 'all' ? -1 : integer(v))],
};

/** Translates Java client property names to kafkajs options; unknown names are a config error. */
export function kafkaClientOverrides(properties: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(properties)) {
    const translation = CONSUMER_PROPERTIES[name] ?? PRODUCER_PROPERTIES[name];
    if (!translation) unknown.push(name);
    else out[translation[0]] = translation[1](value);
  }
  if (unknown.length > 0) {
    throw new FatalError(
      'CONFIG_INVALID',
      `unsupported Kafka client override(s): ${unknown.join(', ')}; supported: ` +
        [...Object.keys(CONSUMER_PROPERTIES), ...Object.keys(PRODUCER_PROPERTIES)].join(', '),
      { stage: 'CONFIG' },
    );
  }
  return out;
}

/** Routes kafkajs' own logging into the worker's logger, one level down (kafkajs is chatty). */
function pinoLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      if (level === kafkaLogLevel.ERROR) logger.warn({ kafkajs: extra }, message);
      else if (level === kafkaLogLevel.WARN) logger.info({ kafkajs: extra }, message);
      else logger.debug({ kafkajs: extra }, message);
    };
}

export function createKafka(options: { brokers: string[]; clientId: string; logger: Logger }): Kafka {
  const config: KafkaConfig = {
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: kafkaLogLevel.WARN,
    logCreator: pinoLogCreator(options.logger.child({ component: 'kafkajs' })),
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 10_000 },
  };
  return new Kafka(config);
}

/** Bytes of record data per produce request, well under the broker's default 1 MB limit per batch. */
export const MAX_REQUEST_BYTES = 512 * 1024;

/** Bytes a record takes in a request, a little more than its key, value and headers. */
export const recordSize = (m: Message): number => {
  let size = 64;
  if (m.key) size += m.key.length;
  if (m.value) size += m.value.length;
  if (m.headers) {
    for (const [k, v] of Object.entries(m.headers)) {
      size += k.length;
      for (const item of Array.isArray(v) ? v : [v]) {
        if (item !== undefined) size += typeof item === 'string' ? Buffer.byteLength(item) : item.length;
      }
    }
  }
  return size;
};

/**
 * Produces `messages` in order, in as few requests as fit `maxRequestBytes` each (kafkajs does
 * not split a request that exceeds the broker's message.max.bytes; it fails it whole). Each
 * request is acknowledged before the next is sent, so a failure leaves a prefix written.
 */
export async function sendInRequests(
  producer: Pick<Producer, 'sendBatch'>,
  messages: ReadonlyArray<{ topic: string; message: Message }>,
  maxRequestBytes = MAX_REQUEST_BYTES,
): Promise<void> {
  let start = 0;
  while (start < messages.length) {
    let end = start;
    let bytes = 0;
    while (end < messages.length) {
      const size = recordSize(messages[end]!.message);
      if (end > start && bytes + size > maxRequestBytes) break;
      bytes += size;
      end++;
    }
    const byTopic = new Map<string, Message[]>();
    for (let i = start; i < end; i++) {
      const { topic, message } = messages[i]!;
      let list = byTopic.get(topic);
      if (!list) byTopic.set(topic, (list = []));
      list.push(message);
    }
    await producer.sendBatch({
      topicMessages: [...byTopic].map(([topic, list]) => ({ topic, messages: list })),
    });
    start = end;
  }
}

/**
 * Creates `topic` if it does not exist (the DLQ, a processor's output, a source's topic), the way
 * Kafka Connect creates its DLQ. A replication factor of -1 means the broker's default.
 */
export async function ensureTopic(
  kafka: Kafka,
  logger: PinoLogger,
  topic: string,
  options: { numPartitions: number; replicationFactor: number },
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if ((await admin.listTopics()).includes(topic)) return;
    await admin.createTopics({ topics: [{ topic, ...options }], waitForLeaders: true });
    logger.info({ topic, ...options }, 'created topic');
  } catch (cause) {
    throw new FatalError(
      'TOPIC_CREATE_FAILED',
      `could not create topic "${topic}": ${(cause as Error).message}`,
      {
        cause,
        stage: 'TASK_START',
      },
    );
  } finally {
    await admin.disconnect();
  }
}
