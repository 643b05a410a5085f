// The worker's own config (Kafka Connect's WorkerConfig): where Kafka and the schema registry are,
// where the REST API listens, and the worker-wide task settings. `producer.*`, `consumer.*` and
// `admin.*` keys are not declared: they pass through to every Kafka client of that kind
// (`ParsedConfig.withPrefix`), and a connector's `*.override.*` keys win over them.
import { loadConfigDocument, parseWithVariables, type VariableOptions } from './config-providers.js';
import { defineConfig, type ConfigProblem, type ConfigSpec, type ParsedConfig } from './config-spec.js';
import { usesAvroConverter } from './connector-config.js';

const KAFKA = 'Kafka';
const REGISTRY = 'Schema Registry';
const REST = 'REST API';
const TASKS = 'Tasks';

/** `http://host:port`, `http://[::1]:port`, or `http://:port` (all interfaces, as Kafka Connect). */
const LISTENER = /^http:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]*):(\d{1,5})\/?$/;

export function parseListener(listener: string): { host: string; port: number } | undefined {
  const match = LISTENER.exec(listener.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  const host = match[1]!.replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export const workerSpec: ConfigSpec = defineConfig([
  {
    name: 'bootstrap.servers',
    type: 'list',
    importance: 'high',
    group: KAFKA,
    documentation:
      'Comma-separated `host:port` pairs of Kafka brokers used to discover the cluster, e.g. `localhost:9092`.',
    validate: (value) => {
      const servers = value as string[];
      if (servers.length === 0) return 'must name at least one broker, e.g. localhost:9092';
      const bad = servers.filter(
        (s) => !/^[^\s:/]+:\d{1,5}$/.test(s) && !/^\[[0-9a-fA-F:.]+\]:\d{1,5}$/.test(s),
      );
      return bad.length > 0 ? `"${bad.join(', ')}" must have the form host:port` : undefined;
    },
  },
  {
    name: 'group.id',
    type: 'string',
    default: 'infer-connect',
    importance: 'high',
    group: KAFKA,
    documentation:
      'Identifies the cluster of workers this worker joins in distributed mode. Connectors do not consume in this ' +
      'group: their tasks use `connect-<connector name>`.',
    validate: (value) => (String(value).trim() === '' ? 'must not be empty' : undefined),
  },
  {
    name: 'client.id',
    type: 'string',
    default: 'infer-connect',
    importance: 'low',
    group: KAFKA,
    documentation:
      'Prefix of the `client.id` of every Kafka client the worker creates (followed by the connector and task), ' +
      'so broker logs, metrics and quotas can tell them apart.',
  },
  {
    name: 'schema.registry.url',
    type: 'string',
    default: '',
    importance: 'high',
    group: REGISTRY,
    documentation:
      'Base URL of a Confluent-compatible schema registry, e.g. `http://localhost:8081`. Required by connectors that ' +
      'use the `avro` key or value converter: the worker refuses to start such a connector while this is empty.',
    validate: (value) => {
      const url = String(value);
      if (url === '') return undefined;
      try {
        const parsed = new URL(url);
        if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
          return `must be an http or https URL, got "${url}"`;
        return undefined;
      } catch {
        return `must be a URL such as http://localhost:8081, got "${url}"`;
      }
    },
  },
  {
    name: 'schema.registry.basic.auth.user.info',
    type: 'password',
    default: null,
    importance: 'medium',
    group: REGISTRY,
    documentation:
      'Basic-auth credentials for the schema registry, as `<user>:<password>`. Unset: no authentication.',
    validate: (value) => (String(value).includes(':') ? undefined : 'must have the form <user>:<password>'),
  },
  {
    name: 'listeners',
    type: 'string',
    default: 'http://127.0.0.1:8083',
    importance: 'high',
    group: REST,
    documentation:
      'Where the REST API listens: one `http://host:port` URL (Kafka Connect accepts a list; infer-connect serves ' +
      'one plain-HTTP listener). The default accepts local connections only; `http://0.0.0.0:8083` accepts all. ' +
      'Port 0 picks a free port.',
    validate: (value) =>
      parseListener(String(value))
        ? undefined
        : `"${String(value)}" must have the form http://host:port, e.g. http://127.0.0.1:8083`,
  },
  {
    name: 'offset.storage.file.filename',
    type: 'string',
    default: '/tmp/connect.offsets',
    importance: 'medium',
    group: TASKS,
    documentation:
      "File where a standalone worker keeps source connectors' offsets (Kafka Connect's sample default). /tmp may " +
      'be emptied at reboot, after which sources start over (duplicates, never loss): set a durable path in ' +
      'production, one per worker. Sink and processor offsets live in Kafka.',
    validate: (value) => (String(value).trim() === '' ? 'must be a file path' : undefined),
  },
  {
    name: 'offset.flush.interval.ms',
    type: 'long',
    default: 10000,
    min: 1,
    importance: 'low',
    group: TASKS,
    documentation:
      'How often (ms) acknowledged offsets are committed: consumer offsets of sinks and processors, and the source ' +
      'offset file. A crash redelivers at most this much work.',
  },
  {
    name: 'task.shutdown.graceful.timeout.ms',
    type: 'long',
    default: 10000,
    min: 0,
    importance: 'low',
    group: TASKS,
    documentation:
      'How long (ms) stopping a task may take to finish in-flight work, flush and commit before it is abandoned; ' +
      'uncommitted records are then redelivered after the restart.',
  },
  {
    name: 'consumer.partitions.concurrency',
    type: 'int',
    default: 4,
    min: 1,
    importance: 'medium',
    group: TASKS,
    documentation:
      'How many of its partitions a sink or processor task handles at once. Each partition is still handled in ' +
      'order; more concurrency keeps a slow model server busier.',
  },
  {
    name: 'consumer.max.poll.records',
    type: 'int',
    default: 500,
    min: 1,
    importance: 'low',
    group: TASKS,
    documentation:
      "Most records handed to one call of a sink or processor task (Kafka Connect's worker-level consumer setting, " +
      'same default); a larger fetch is split into calls of this size. Larger calls mean larger model batches.',
  },
  {
    name: 'log.level',
    type: 'string',
    default: 'info',
    validValues: ['trace', 'debug', 'info', 'warn', 'error'],
    importance: 'low',
    group: 'Logging',
    documentation: 'Level of the JSON log lines written to stdout.',
  },
]);

/** Validates a flat worker config after resolving `${env:...}`/`${file:...}` references. */
export function parseWorkerConfig(
  raw: Readonly<Record<string, unknown>>,
  options: VariableOptions = {},
): { config: ParsedConfig | undefined; problems: ConfigProblem[] } {
  const { config, problems } = parseWithVariables(workerSpec, raw, options);
  return { config, problems };
}

/** The key of problems with a config file as a whole (unreadable, bad JSON, not an object). */
export const FILE_PROBLEM_KEY = '(file)';

/**
 * Reads and validates a worker config file (a flat JSON object, or Java `.properties`). A file
 * that cannot be read or parsed is one problem against FILE_PROBLEM_KEY (bad JSON with its line
 * and column), so callers print every kind of failure the same way.
 */
export function readWorkerConfigFile(
  path: string,
  options: VariableOptions = {},
): { config: ParsedConfig | undefined; problems: ConfigProblem[] } {
  const loaded = loadConfigDocument(path);
  if ('error' in loaded)
    return { config: undefined, problems: [{ key: FILE_PROBLEM_KEY, message: loaded.error }] };
  const { document } = loaded;
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    return {
      config: undefined,
      problems: [{ key: FILE_PROBLEM_KEY, message: 'a worker config must be a JSON object of config keys' }],
    };
  }
  return parseWorkerConfig(document as Record<string, unknown>, options);
}

/** Where the REST API listens, from a parsed worker config. */
export function restListener(worker: ParsedConfig): { host: string; port: number } {
  return parseListener(worker.getString('listeners'))!;
}

/**
 * The check the worker makes before starting a connector: the avro converter needs
 * `schema.registry.url`. Returns the problem to report (against `schema.registry.url`), if any.
 */
export function schemaRegistryProblem(
  worker: ParsedConfig,
  connector: ParsedConfig,
): ConfigProblem | undefined {
  if (!usesAvroConverter(connector) || worker.getOptionalString('schema.registry.url') !== undefined)
    return undefined;
  return {
    key: 'schema.registry.url',
    message:
      'is required because this connector uses the avro converter: set it in the worker config, or choose another ' +
      'key.converter/value.converter for the connector',
  };
}
