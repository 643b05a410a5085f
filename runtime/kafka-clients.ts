// Kafka clients for the worker and its tasks. Connector configs carry Kafka Connect's Java client
// property names (`consumer.override.session.timeout.ms`, worker `producer.*`); the ones kafkajs
// has an equivalent for are translated here, the others are refused with a clear message.
//
// Security (`security.protocol`, `sasl.*`, `ssl.*`, runtime/kafka-security.ts) lives on the
// kafkajs Kafka instance, not on a consumer or producer, while Kafka Connect lets the worker's
// `consumer.`/`producer.`/`admin.` keys and a connector's `*.override.*` keys differ per client
// kind. `createKafka` therefore returns a Kafka that routes each kind of client to a kafkajs
// instance with that kind's security, and `kafkaFor` derives a connector's own from it.
import {
  Kafka,
  logLevel as kafkaLogLevel,
  type Admin,
  type AdminConfig,
  type Consumer,
  type ConsumerConfig,
  type KafkaConfig,
  type logCreator,
  type Message,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import { isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { ConfigProblem } from './config/config-spec.js';
import { errorMessage } from './error-catalogue.js';
import { FatalError } from './errors.js';
import {
  describeKafkaSecurity,
  isSecurityKey,
  kafkaSecurityProblems,
  loadKafkaSecurity,
  PRINCIPAL_KEYS,
  type Properties,
} from './kafka-security.js';
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

/**
 * Translates Java client property names to kafkajs consumer/producer options; unknown names are a
 * config error. Security keys are skipped: they are applied to the Kafka instance (`kafkaFor`).
 */
export function kafkaClientOverrides(properties: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const [name, value] of Object.entries(properties)) {
    if (isSecurityKey(name)) continue;
    const translation = CONSUMER_PROPERTIES[name] ?? PRODUCER_PROPERTIES[name];
    if (!translation) unknown.push(name);
    else out[translation[0]] = translation[1](value);
  }
  if (unknown.length > 0) {
    throw new FatalError(
      'CONFIG_INVALID',
      `unsupported Kafka client override(s): ${unknown.join(', ')}; supported: ` +
        [...Object.keys(CONSUMER_PROPERTIES), ...Object.keys(PRODUCER_PROPERTIES)].join(', ') +
        ', security.protocol, sasl.mechanism, sasl.jaas.config and the ssl.* keys',
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

export type ClientKind = 'consumer' | 'producer' | 'admin';
const KINDS: readonly ClientKind[] = ['consumer', 'producer', 'admin'];

/** Kafka Connect's `connector.client.config.override.policy`. */
export type OverridePolicy = 'None' | 'Principal' | 'All';
export const OVERRIDE_POLICIES: readonly OverridePolicy[] = ['None', 'Principal', 'All'];

export interface KafkaClientSettings {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /**
   * Kafka security properties (Kafka's names, prefix removed) per client kind: the worker's
   * `security.protocol`/`sasl.*`/`ssl.*` merged with its `consumer.`, `producer.` or `admin.` ones.
   * Absent: PLAINTEXT.
   */
  security?: Partial<Record<ClientKind, Properties>>;
  /** Which `*.override.*` keys connectors may set (`kafkaFor`); All by default, as in Kafka Connect. */
  overridePolicy?: OverridePolicy;
  /** The key a problem with `kind`'s `key` is reported against, as the user wrote it (`consumer.ssl...`). */
  keyName?: (kind: ClientKind, key: string) => string;
}

/**
 * A Kafka whose consumers, producers and admins each connect with their kind's security. It
 * implements kafkajs' Kafka interface, so the worker and runners use it as they use kafkajs'.
 */
class RoutedKafka implements Kafka {
  private readonly byKind: Record<ClientKind, Kafka>;
  private readonly tlsByKind: Partial<Record<ClientKind, ConnectionOptions>> = {};
  /** Per kind, the TLS check of the first connect (later connects of that kind skip it). */
  private readonly tlsChecked = new Map<ClientKind, Promise<void>>();

  constructor(readonly settings: KafkaClientSettings & { security: Record<ClientKind, Properties> }) {
    const problems: ConfigProblem[] = [];
    // Kinds with the same settings share one kafkajs instance (and one read of their PEM files).
    const built = new Map<string, { kafka: Kafka; ssl?: ConnectionOptions }>();
    const byKind: Partial<Record<ClientKind, Kafka>> = {};
    const keyName = settings.keyName ?? ((kind: ClientKind, key: string) => `${kind}.${key}`);
    for (const kind of KINDS) {
      const props = settings.security[kind];
      const signature = JSON.stringify(Object.entries(props).sort());
      let entry = built.get(signature);
      if (!entry) {
        const loaded = loadKafkaSecurity(props, (key) => keyName(kind, key));
        problems.push(...loaded.problems);
        if (!loaded.options) continue;
        entry = { kafka: new Kafka({ ...baseConfig(settings), ...loaded.options }), ssl: loaded.options.ssl };
        built.set(signature, entry);
      }
      byKind[kind] = entry.kafka;
      if (entry.ssl) this.tlsByKind[kind] = entry.ssl;
    }
    if (problems.length > 0) {
      const unique = [...new Set(problems.map((p) => `${p.key}: ${p.message}`))];
      throw new FatalError(
        'CONFIG_INVALID',
        errorMessage('CONFIG_INVALID', { source: 'of the Kafka clients', details: unique.join('; ') }),
        { stage: 'CONFIG' },
      );
    }
    this.byKind = byKind as Record<ClientKind, Kafka>;
  }

  producer(config?: ProducerConfig): Producer {
    return this.explained('producer', this.byKind.producer.producer(config));
  }

  consumer(config: ConsumerConfig): Consumer {
    return this.explained('consumer', this.byKind.consumer.consumer(config));
  }

  admin(config?: AdminConfig): Admin {
    return this.explained('admin', this.byKind.admin.admin(config));
  }

  /**
   * Makes `client.connect()` fail fast and clearly when security is the cause: kafkajs retries
   * every connection error (an untrusted certificate too, 5 times over ~7 s), so the first
   * connect of each kind first makes one TLS handshake with a bootstrap broker and fails at once
   * when the certificate cannot be trusted; TLS and SASL failures kafkajs reports are explained.
   */
  private explained<T extends { connect(): Promise<void> }>(kind: ClientKind, client: T): T {
    const connect = client.connect.bind(client);
    const security = this.describe(kind);
    client.connect = async () => {
      try {
        await this.checkTls(kind);
        await connect();
      } catch (error) {
        throw explainKafkaFailure(error, security);
      }
    };
    return client;
  }

  private checkTls(kind: ClientKind): Promise<void> {
    const ssl = this.tlsByKind[kind];
    if (!ssl) return Promise.resolve();
    let check = this.tlsChecked.get(kind);
    if (!check) {
      check = tlsHandshakeFailure(this.settings.brokers, ssl).then((failure) => {
        if (failure) throw failure;
      });
      // A failed check is made again by the next connect (the broker or its certificate may change).
      check.catch(() => this.tlsChecked.delete(kind));
      this.tlsChecked.set(kind, check);
    }
    return check;
  }

  logger() {
    return this.byKind.admin.logger();
  }

  describe(kind: ClientKind): Record<string, string> {
    return describeKafkaSecurity(this.settings.security[kind]);
  }
}

function baseConfig(settings: KafkaClientSettings): KafkaConfig {
  return {
    clientId: settings.clientId,
    brokers: settings.brokers,
    logLevel: kafkaLogLevel.WARN,
    logCreator: pinoLogCreator(settings.logger.child({ component: 'kafkajs' })),
    retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 10_000 },
  };
}

/**
 * The worker's Kafka. Throws FatalError (CONFIG_INVALID, every problem listed) when the security
 * settings are wrong or their PEM files cannot be read.
 */
export function createKafka(settings: KafkaClientSettings): Kafka {
  const security = Object.fromEntries(KINDS.map((kind) => [kind, settings.security?.[kind] ?? {}])) as Record<
    ClientKind,
    Properties
  >;
  return new RoutedKafka({ ...settings, security });
}

/** What each kind of client of `kafka` connects with (for the startup log); empty for other Kafkas. */
export function describeKafkaClients(kafka: Kafka): Partial<Record<ClientKind, Record<string, string>>> {
  if (!(kafka instanceof RoutedKafka)) return {};
  return Object.fromEntries(KINDS.map((kind) => [kind, kafka.describe(kind)]));
}

/** A connector's `consumer.override.*`, `producer.override.*` and `admin.override.*` keys, prefix removed. */
function connectorOverrides(
  connector: Pick<ParsedConfigLike, 'withPrefix'>,
): Record<ClientKind, Record<string, string>> {
  return {
    consumer: connector.withPrefix('consumer.override.'),
    producer: connector.withPrefix('producer.override.'),
    admin: connector.withPrefix('admin.override.'),
  };
}

interface ParsedConfigLike {
  withPrefix(prefix: string): Record<string, string>;
}

/**
 * Problems with a connector's client overrides under the worker's policy and security (Kafka
 * Connect checks these when a connector is created): keys the policy forbids, security overrides
 * that do not make a valid client with the worker's settings, and admin overrides other than
 * security ones (kafkajs' admin has no tuning keys). Empty when `kafka` was not made by
 * `createKafka` and the connector has no security overrides.
 */
export function connectorOverrideProblems(kafka: Kafka, connector: ParsedConfigLike): ConfigProblem[] {
  const overrides = connectorOverrides(connector);
  const problems: ConfigProblem[] = [];
  const policy = kafka instanceof RoutedKafka ? (kafka.settings.overridePolicy ?? 'All') : 'All';
  for (const kind of KINDS) {
    const prefix = `${kind}.override.`;
    for (const key of Object.keys(overrides[kind])) {
      if (policy === 'None' || (policy === 'Principal' && !PRINCIPAL_KEYS.has(key)))
        problems.push({
          key: prefix + key,
          message: `is not allowed by the worker's connector.client.config.override.policy=${policy}${policy === 'Principal' ? ' (it allows security.protocol, sasl.mechanism and sasl.jaas.config)' : ''}`,
        });
      else if (kind === 'admin' && !isSecurityKey(key))
        problems.push({
          key: prefix + key,
          message: 'is not supported; admin overrides may set security keys only',
        });
    }
    const security = Object.keys(overrides[kind]).filter(isSecurityKey);
    if (security.length === 0) continue;
    if (!(kafka instanceof RoutedKafka)) {
      problems.push({
        key: prefix + security[0],
        message: "cannot be applied: this worker's Kafka has no security settings",
      });
      continue;
    }
    const merged = { ...kafka.settings.security[kind], ...pickSecurity(overrides[kind]) };
    problems.push(
      ...kafkaSecurityProblems(merged, (key) =>
        key in overrides[kind] ? prefix + key : `${kind}.${key} (worker)`,
      ),
    );
  }
  return problems;
}

const pickSecurity = (props: Record<string, string>) =>
  Object.fromEntries(Object.entries(props).filter(([key]) => isSecurityKey(key)));

/**
 * The Kafka a connector's task uses: `kafka` itself when the connector overrides no security key,
 * else one whose clients use the worker's security with the connector's `consumer.override.*`,
 * `producer.override.*` and `admin.override.*` security keys on top. Throws FatalError
 * (CONFIG_INVALID) when the overrides break the worker's override policy or do not make a valid
 * client; call it once per task, at start (it reads PEM files).
 */
export function kafkaFor(kafka: Kafka, connector: ParsedConfigLike): Kafka {
  const problems = connectorOverrideProblems(kafka, connector);
  if (problems.length > 0)
    throw new FatalError(
      'CONFIG_INVALID',
      errorMessage('CONFIG_INVALID', {
        source: "in the connector's client overrides",
        details: problems.map((p) => `${p.key}: ${p.message}`).join('; '),
      }),
      { stage: 'CONFIG' },
    );
  const overrides = connectorOverrides(connector);
  if (
    !(kafka instanceof RoutedKafka) ||
    KINDS.every((kind) => Object.keys(pickSecurity(overrides[kind])).length === 0)
  )
    return kafka;
  const security = Object.fromEntries(
    KINDS.map((kind) => [kind, { ...kafka.settings.security[kind], ...pickSecurity(overrides[kind]) }]),
  ) as Record<ClientKind, Properties>;
  return new RoutedKafka({ ...kafka.settings, security });
}

// ---------------------------------------------------------------------------------------------
// Connection failures caused by security settings

/** OpenSSL/Node codes of a TLS handshake that cannot succeed by retrying. */
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

interface KafkaJsFailure {
  name?: string;
  code?: string;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
}

/** The innermost kafkajs error that names a TLS or SASL failure, if any. */
function securityFailureOf(error: unknown): { kind: 'tls' | 'sasl'; error: KafkaJsFailure } | undefined {
  let current = error as KafkaJsFailure | undefined;
  for (let depth = 0; current && depth < 6; depth++) {
    if (current.name === 'KafkaJSSASLAuthenticationError') return { kind: 'sasl', error: current };
    if (current.code && (TLS_CODES.has(current.code) || current.code.startsWith('ERR_SSL_')))
      return { kind: 'tls', error: current };
    current = (current.cause ?? current.originalError) as KafkaJsFailure | undefined;
  }
  return undefined;
}

/** OpenSSL's alert messages carry a library trace (`40CD...:error:0A000412:SSL routines:...`): keep the reason. */
function tlsReason(error: KafkaJsFailure): string {
  const message = (error.message ?? '').replace(/^Connection error: /, '');
  if (!error.code?.startsWith('ERR_SSL_')) return message;
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(message)?.[1];
  return `the broker refused the handshake: ${reason ?? error.code.slice('ERR_SSL_'.length).replace(/_/g, ' ').toLowerCase()}`;
}

/** Why connecting failed, in the words of the settings that caused it; `error` itself otherwise. */
export function explainKafkaFailure(error: unknown, security: Record<string, string>): unknown {
  const failure = securityFailureOf(error);
  if (!failure) return error;
  const how = Object.entries(security)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
  if (failure.kind === 'sasl')
    return new FatalError(
      'KAFKA_AUTHENTICATION_FAILED',
      errorMessage('KAFKA_AUTHENTICATION_FAILED', { details: failure.error.message ?? '', how }),
      { cause: error, stage: 'TASK_START' },
    );
  const code = failure.error.code!;
  const hint =
    code === 'ERR_TLS_CERT_ALTNAME_INVALID'
      ? 'the broker certificate does not name the host in bootstrap.servers (or the address the broker advertises): connect by a name it holds, or set ssl.endpoint.identification.algorithm= (empty) to skip the name check'
      : code.startsWith('ERR_SSL_')
        ? 'the TLS handshake was refused: check that the listener speaks TLS (security.protocol) and, with mutual TLS, that ssl.keystore.* holds a certificate the broker trusts'
        : 'the broker certificate is not trusted: set ssl.truststore.location (or ssl.truststore.certificates) to the CA certificate that signed it, in PEM';
  return new FatalError(
    'KAFKA_TLS_FAILED',
    errorMessage('KAFKA_TLS_FAILED', { details: `${tlsReason(failure.error)} (${code})`, hint, how }),
    { cause: error, stage: 'TASK_START' },
  );
}

/**
 * One TLS handshake with each bootstrap broker in turn until one completes: the certificate error
 * of the first broker that refuses verification, or undefined when a handshake succeeds or no
 * broker answers (unreachable brokers are kafkajs' to retry). Takes a round trip, plus 250 ms
 * with TLS 1.3.
 */
async function tlsHandshakeFailure(
  brokers: readonly string[],
  ssl: ConnectionOptions,
): Promise<Error | undefined> {
  for (const broker of brokers) {
    const colon = broker.lastIndexOf(':');
    const host = broker.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(broker.slice(colon + 1));
    const outcome = await new Promise<'ok' | 'unreachable' | Error>((resolve) => {
      const socket = tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...ssl });
      const done = (result: 'ok' | 'unreachable' | Error) => {
        socket.destroy();
        resolve(result);
      };
      socket.setTimeout(3_000, () => done('unreachable'));
      // TLS 1.3 servers verify the client's certificate after the client's handshake completes
      // and answer a refusal with an alert: give that alert a moment to arrive.
      socket.once('secureConnect', () =>
        socket.getProtocol() === 'TLSv1.3' ? setTimeout(() => done('ok'), 250) : done('ok'),
      );
      socket.on('error', (error: NodeJS.ErrnoException) =>
        done(
          securityFailureOf(error)
            ? Object.assign(new Error(`Connection error: ${error.message}`), { code: error.code, broker })
            : 'unreachable',
        ),
      );
    });
    if (outcome === 'ok') return undefined;
    if (outcome instanceof Error) return outcome;
  }
  return undefined;
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
