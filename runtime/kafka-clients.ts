// Kafka clients for the worker and its tasks. Connector configs carry Kafka Connect's Java client
// property names (`consumer.override.session.timeout.ms`, worker `producer.*`); the ones kafkajs
// has an equivalent for are translated here, the others are refused with a clear message.
import { Kafka, logLevel as kafkaLogLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import type { Logger } from 'pino';
import { FatalError } from './errors.js';

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
