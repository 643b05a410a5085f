// Composes a standalone worker from a parsed worker config: logger, metrics registry (with the
// default process metrics), Kafka client, worker and REST server. The CLI and the integration
// tests build workers through this one function, so tests run what users run.
//
// Security material (PEM files, the REST users file) is read here, when the worker is built: a
// file that cannot be read or does not hold what its key says fails the start with every such
// problem listed (CONFIG_INVALID). The startup log says how each connection is secured, never with
// a password, a JAAS config or key material.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { ConfigProblem, ParsedConfig } from './config/config-spec.js';
import { CLIENT_KINDS, clientSecurity, isHttpsListener, workerFileAccess } from './config/worker-config.js';
import type { HttpRegistryOptions } from './converters/schema-registry.js';
import { errorMessage } from './error-catalogue.js';
import { ConnectError } from './errors.js';
import { createKafka, describeKafkaClients, type OverridePolicy } from './kafka-clients.js';
import { isSecurityKey, loadTls, type TlsMaterial } from './kafka-security.js';
import { createLogger, withRedaction } from './logger.js';
import type { PluginRegistry } from './plugin-registry.js';
import { createRestServer, loadBasicAuthUsers, type RestServerOptions } from './rest-server.js';
import { SecretRedactor, secretsOf, WORKER_SCOPE } from './secret-redaction.js';
import { Worker } from './worker.js';

export function createStandaloneWorker(
  workerConfig: ParsedConfig,
  plugins: PluginRegistry,
  options: { logger?: Logger; workerId?: string } = {},
) {
  const secrets = new SecretRedactor();
  secrets.set(WORKER_SCOPE, secretsOf(workerConfig));
  const logger = withRedaction(
    options.logger ?? createLogger(workerConfig.getString('log.level')),
    secrets.redactJsonLine,
  );
  const files = workerFileAccess(workerConfig);
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry });
  const workerId = options.workerId ?? `${hostname()}:${process.pid}`;
  const values = workerConfig.originals;
  const security = Object.fromEntries(CLIENT_KINDS.map((kind) => [kind, clientSecurity(values, kind)]));
  const kafka = createKafka({
    brokers: workerConfig.getList('bootstrap.servers'),
    clientId: workerConfig.getString('client.id'),
    logger,
    security: Object.fromEntries(CLIENT_KINDS.map((kind) => [kind, security[kind]!.props])),
    keyName: (kind, key) => security[kind]!.name(key),
    overridePolicy: workerConfig.getString('connector.client.config.override.policy') as OverridePolicy,
  });
  const registry = schemaRegistryOptions(workerConfig);
  const worker = new Worker({
    workerId,
    kafka,
    plugins,
    metricsRegistry,
    logger,
    // The registry client takes these options as they are (CachedSchemaRegistry accepts a URL or
    // HttpRegistryOptions); WorkerOptions still types the field as a URL string.
    schemaRegistryUrl: registry,
    offsetStoreFile: workerConfig.getString('offset.storage.file.filename'),
    topicTracking: {
      enable: workerConfig.getBoolean('topic.tracking.enable'),
      allowReset: workerConfig.getBoolean('topic.tracking.allow.reset'),
    },
    allowedPaths: files.paths,
    configProviders: files.providers,
    secrets,
    settings: {
      workerId,
      offsetFlushIntervalMs: workerConfig.getNumber('offset.flush.interval.ms'),
      partitionsConcurrency: workerConfig.getNumber('consumer.partitions.concurrency'),
      shutdownTimeoutMs: workerConfig.getNumber('task.shutdown.graceful.timeout.ms'),
      maxRecordsPerCall: workerConfig.getNumber('consumer.max.poll.records'),
      consumerOverrides: clientOverrides(workerConfig, 'consumer.'),
      producerOverrides: clientOverrides(workerConfig, 'producer.'),
    },
  });
  const restSecurity = restSecurityOptions(workerConfig);
  const rest = createRestServer({
    herder: worker,
    metrics: metricsRegistry,
    logger,
    listeners: workerConfig.getString('listeners'),
    redact: secrets.redact,
    ...restSecurity,
  });
  logger.info(
    {
      kafka: describeKafkaClients(kafka),
      schemaRegistry: registry && {
        url: new URL(registry.url).origin,
        auth: registry.auth === undefined ? 'none' : 'basic',
        ...(registry.tls
          ? { trust: registry.tls.ca ? 'schema.registry.ssl.truststore' : 'the system CAs' }
          : {}),
      },
      rest: {
        listeners: workerConfig.getString('listeners'),
        auth: restSecurity.basicAuth ? `basic (${restSecurity.basicAuth.users.size} users)` : 'none',
        ...(restSecurity.tls ? { clientAuthentication: restSecurity.tls.clientAuthentication } : {}),
      },
      files: {
        'allowed.paths': files.paths.directories,
        'config.providers.file.param.allowed.paths': workerConfig.getList(
          'config.providers.file.param.allowed.paths',
        ),
      },
    },
    'worker security',
  );
  return { worker, rest, logger, metricsRegistry, kafka };
}

/**
 * Worker-level Kafka client properties (`consumer.session.timeout.ms`, `producer.acks`), as in
 * Kafka Connect's worker config, minus the worker's own keys that share the prefix and the
 * security keys (those are applied per client kind by `createKafka`).
 */
function clientOverrides(config: ParsedConfig, prefix: string): Record<string, string> {
  const own = new Set(['partitions.concurrency', 'max.poll.records']);
  return Object.fromEntries(
    Object.entries(config.withPrefix(prefix)).filter(([key]) => !own.has(key) && !isSecurityKey(key)),
  );
}

function refuse(source: string, problems: ConfigProblem[]): never {
  throw new ConnectError(
    'CONFIG_INVALID',
    errorMessage('CONFIG_INVALID', {
      source,
      details: problems.map((p) => `${p.key}: ${p.message}`).join('; '),
    }),
    { stage: 'CONFIG' },
  );
}

/** The registry client's options: URL, basic auth by `basic.auth.credentials.source`, TLS from `schema.registry.ssl.*`. */
export function schemaRegistryOptions(config: ParsedConfig): HttpRegistryOptions | undefined {
  const url = config.getOptionalString('schema.registry.url');
  if (url === undefined) return undefined;
  const userInfo =
    config.getOptionalString('schema.registry.basic.auth.user.info') ??
    config.getOptionalString('basic.auth.user.info');
  const source =
    config.getOptionalString('basic.auth.credentials.source') ?? (userInfo ? 'USER_INFO' : 'URL');
  const options: HttpRegistryOptions = { url };
  if (source === 'USER_INFO' && userInfo !== undefined) options.auth = userInfo;
  if (url.startsWith('https:')) {
    const props = Object.fromEntries(
      Object.entries(config.withPrefix('schema.registry.')).filter(([key]) => key.startsWith('ssl.')),
    );
    const tls = loadTls(props, (key) => `schema.registry.${key}`, 'client');
    if (!tls.material) refuse('of the schema registry client', tls.problems);
    options.tls = tls.material;
  }
  return options;
}

/** The REST server's HTTPS material, basic-auth users, body limit and CORS, from the worker config. */
export function restSecurityOptions(
  config: ParsedConfig,
): Pick<RestServerOptions, 'tls' | 'basicAuth' | 'cors' | 'bodyLimit'> {
  const out: Pick<RestServerOptions, 'tls' | 'basicAuth' | 'cors' | 'bodyLimit'> = {
    bodyLimit: config.getNumber('rest.request.body.max.bytes'),
  };
  if (isHttpsListener(config.getString('listeners'))) {
    const props = config.withPrefix('listeners.https.');
    const loaded = loadTls(props, (key) => `listeners.https.${key}`, 'server');
    if (!loaded.material) refuse('of the REST listener', loaded.problems);
    const clientAuthentication = (props['ssl.client.authentication'] ?? 'none').trim().toLowerCase();
    out.tls = { ...(loaded.material as TlsMaterial), clientAuthentication: clientAuthentication as 'none' };
  }
  const jaasFile = config.getOptionalString('rest.basic.auth.jaas.file');
  const usersFile = config.getOptionalString('rest.basic.auth.users.file');
  if (jaasFile) out.basicAuth = { users: loadBasicAuthUsers({ jaasFile }) };
  else if (usersFile) out.basicAuth = { users: loadBasicAuthUsers({ usersFile }) };
  const list = (key: string) =>
    config
      .getString(key)
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
  const origins = list('access.control.allow.origin');
  if (origins.length > 0) out.cors = { origins, methods: list('access.control.allow.methods') };
  return out;
}
