// The worker's own config (Kafka Connect's WorkerConfig): where Kafka and the schema registry are
// and how to authenticate to them, where and how securely the REST API listens, and the
// worker-wide task settings. `producer.*`, `consumer.*` and `admin.*` keys are not declared: they
// pass through to every Kafka client of that kind (`ParsedConfig.withPrefix`), security keys
// included (checked here with the worker-level ones), and a connector's `*.override.*` keys win
// over them. `allowed.paths` bounds the files connectors may touch, and Kafka's KIP-993 key
// `config.providers.file.param.allowed.paths` the files `${file:...}` in connector configs may read.
import { AllowedDirectories } from '../allowed-paths.js';
import {
  isSecurityKey,
  kafkaSecurityConfigKeys,
  kafkaSecurityProblems,
  tlsConfigKeys,
  tlsProblems,
} from '../kafka-security.js';
import {
  connectorConfigProviders,
  loadConfigDocument,
  parseWithVariables,
  resolveVariables,
  type ConfigProvider,
  type VariableOptions,
} from './config-providers.js';
import { defineConfig, type ConfigProblem, type ConfigSpec, type ParsedConfig } from './config-spec.js';
import { usesAvroConverter } from './connector-config.js';

const KAFKA = 'Kafka';
const REGISTRY = 'Schema Registry';
const REST = 'REST API';
const TASKS = 'Tasks';
const FILES = 'File access';

/** The worker key listing what connectors may read and write. */
export const ALLOWED_PATHS = 'allowed.paths';
/** Kafka's KIP-993 key: what `${file:...}` references in connector configs may read. */
export const FILE_PROVIDER_ALLOWED_PATHS = 'config.providers.file.param.allowed.paths';

/** `http(s)://host:port`, `http(s)://[::1]:port`, or `http(s)://:port` (all interfaces, as Kafka Connect). */
const LISTENER = /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]*):(\d{1,5})\/?$/;

export function parseListener(listener: string): { host: string; port: number } | undefined {
  const match = LISTENER.exec(listener.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  const host = match[1]!.replace(/^\[|\]$/g, '');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

export const isHttpsListener = (listener: string): boolean => /^https:/i.test(listener.trim());

/** The client kinds whose worker-level keys (`consumer.security.protocol`...) override the unprefixed ones. */
export const CLIENT_KINDS = ['consumer', 'producer', 'admin'] as const;

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
      const outOfRange = servers.filter(
        (s) => !bad.includes(s) && !(Number(s.slice(s.lastIndexOf(':') + 1)) <= 65535),
      );
      const problems = [
        ...(bad.length > 0 ? [`"${bad.join(', ')}" must have the form host:port`] : []),
        ...(outOfRange.length > 0 ? [`"${outOfRange.join(', ')}" must have a port from 0 to 65535`] : []),
      ];
      return problems.length > 0 ? problems.join('; ') : undefined;
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
  ...kafkaSecurityConfigKeys(KAFKA),
  {
    name: 'connector.client.config.override.policy',
    type: 'string',
    default: 'All',
    validValues: ['None', 'Principal', 'All'],
    importance: 'medium',
    group: KAFKA,
    documentation:
      "Which `consumer.override.*`, `producer.override.*` and `admin.override.*` keys connectors may set (Kafka Connect's key and default): `All`; `Principal` (only `security.protocol`, `sasl.mechanism` and `sasl.jaas.config`, so each connector can use its own credentials); `None`.",
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
    name: 'basic.auth.credentials.source',
    type: 'string',
    default: null,
    validValues: ['USER_INFO', 'URL'],
    importance: 'medium',
    group: REGISTRY,
    documentation:
      "Where the registry's basic-auth credentials come from (Confluent clients' key): `USER_INFO` reads " +
      '`schema.registry.basic.auth.user.info`; `URL` reads the `user:password@` part of `schema.registry.url`. ' +
      'Unset: `USER_INFO` when the user info is set, else `URL`.',
  },
  {
    name: 'schema.registry.basic.auth.user.info',
    type: 'password',
    default: null,
    importance: 'medium',
    group: REGISTRY,
    documentation:
      'Basic-auth credentials for the schema registry, as `<user>:<password>` (for Confluent Cloud, the registry ' +
      'API key and secret). Unset: no authentication.',
    validate: (value) => (String(value).includes(':') ? undefined : 'must have the form <user>:<password>'),
  },
  {
    name: 'basic.auth.user.info',
    type: 'password',
    default: null,
    importance: 'low',
    group: REGISTRY,
    documentation:
      "The same as `schema.registry.basic.auth.user.info`, under the name Confluent's client snippets use; set one of the two.",
    validate: (value) => (String(value).includes(':') ? undefined : 'must have the form <user>:<password>'),
  },
  ...tlsConfigKeys('schema.registry.', REGISTRY, 'client', 'the schema registry'),
  {
    name: 'listeners',
    type: 'string',
    default: 'http://127.0.0.1:8083',
    importance: 'high',
    group: REST,
    documentation:
      'Where the REST API listens: one `http://host:port` or `https://host:port` URL (Kafka Connect accepts a list; ' +
      'infer-connect serves one listener). The default accepts local connections only; `http://0.0.0.0:8083` ' +
      'accepts all: turn on `rest.basic.auth.*` (and HTTPS) before listening beyond loopback. An `https://` listener ' +
      'needs `listeners.https.ssl.keystore.*` (unlike Kafka Connect, the unprefixed `ssl.*` keys are for Kafka only). ' +
      'Port 0 picks a free port.',
    validate: (value) =>
      parseListener(String(value))
        ? undefined
        : `"${String(value)}" must have the form http://host:port or https://host:port, e.g. http://127.0.0.1:8083`,
  },
  ...tlsConfigKeys('listeners.https.', REST, 'server', 'REST clients'),
  {
    name: 'rest.basic.auth.jaas.file',
    type: 'string',
    default: null,
    importance: 'high',
    group: REST,
    documentation:
      "HTTP basic auth with the credentials of Kafka Connect's BasicAuthSecurityRestExtension: the JAAS file its " +
      'worker reads (`-Djava.security.auth.login.config`), whose `KafkaConnect { ...PropertyFileLoginModule required ' +
      'file="/path/users.properties"; };` entry names the users file. Every request then needs a user of that file ' +
      '(`/health` and `/metrics` too, as in Kafka Connect); others get 401. Read when the worker starts.',
  },
  {
    name: 'rest.basic.auth.users.file',
    type: 'string',
    default: null,
    importance: 'high',
    group: REST,
    documentation:
      'HTTP basic auth from the users file directly: a Java properties file of `<user>: <password>` lines (the file ' +
      "Kafka Connect's PropertyFileLoginModule reads). Set this or `rest.basic.auth.jaas.file`, not both. Read when " +
      'the worker starts; an empty file is refused (Kafka Connect would let everyone in).',
  },
  {
    name: 'rest.request.body.max.bytes',
    type: 'int',
    default: 1048576,
    min: 1024,
    importance: 'low',
    group: REST,
    documentation: 'Largest REST request body accepted; a larger one answers 413 without being read.',
  },
  {
    name: 'access.control.allow.origin',
    type: 'string',
    default: '',
    importance: 'low',
    group: REST,
    documentation:
      'CORS, as in Kafka Connect: the origins browsers may call the REST API from (comma-separated, or `*`). Empty: ' +
      'no CORS headers, so browsers on other origins cannot read answers.',
  },
  {
    name: 'access.control.allow.methods',
    type: 'string',
    default: '',
    importance: 'low',
    group: REST,
    documentation:
      "CORS: the methods allowed from those origins (comma-separated). Empty: `GET,POST,HEAD` (Jetty's default, as " +
      'in Kafka Connect).',
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
    name: 'topic.tracking.enable',
    type: 'boolean',
    default: true,
    importance: 'low',
    group: TASKS,
    documentation:
      'Track the topics each connector consumes from and produces to (KIP-558), answered by ' +
      '`GET /connectors/{name}/topics`. As in Kafka Connect; with false that path answers 403.',
  },
  {
    name: 'topic.tracking.allow.reset',
    type: 'boolean',
    default: true,
    importance: 'low',
    group: TASKS,
    documentation:
      "Whether `PUT /connectors/{name}/topics/reset` may clear a connector's tracked topics; with false it answers 403.",
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
    name: ALLOWED_PATHS,
    type: 'list',
    default: [],
    importance: 'high',
    group: FILES,
    documentation:
      'The directories (or single files) connectors may read and write, comma-separated: the `file` and ' +
      '`value.schema.file` of FileSource, the `file` of FileSink, and every key a plugin declares as a path. ' +
      "The name and form of Kafka's KIP-993 `allowed.paths`. Relative entries are relative to the worker's " +
      'working directory. Paths are judged by where they really lead: symbolic links are resolved and `..` ' +
      'followed, so neither can leave an allowed directory. A path outside is a problem of its connector key ' +
      'when the config is validated (`PUT /connector-plugins/{plugin}/config/validate`, ' +
      '`infer-connect validate --worker`) or submitted, and is checked again when each task starts. Empty (the ' +
      'default): connectors may touch no file. The worker refuses entries that reach its own files (the offsets ' +
      'file, REST users and JAAS files, `*ssl.keystore.location` keys, files its `${file:...}` references read): a ' +
      'FileSource could publish them, a FileSink overwrite them.',
  },
  {
    name: FILE_PROVIDER_ALLOWED_PATHS,
    type: 'list',
    default: [],
    importance: 'medium',
    group: FILES,
    documentation:
      "The directories (or files) `${file:...}` references in connector configs may read (Kafka's KIP-993 key " +
      'for its FileConfigProvider, same form as `allowed.paths`). Empty (the default, unlike Kafka where unset ' +
      'means any file): connector configs may not reference files, so a REST client cannot make the worker read ' +
      'a key of any file it can read. The worker config itself may reference any file.',
  },
  {
    name: 'plugin.path',
    type: 'list',
    default: [],
    importance: 'low',
    group: 'Plugins',
    documentation:
      "Kafka Connect's key: connector plugins to load besides the built-in ones, comma-separated. An entry that " +
      'is absolute or starts with `.` is a folder (relative to the working directory): a package folder (with a ' +
      'package.json, or an index.js/index.mjs/index.ts), or a folder of such package folders. Any other entry is ' +
      'an npm package name, looked up in node_modules from the working directory upwards. Each package module ' +
      '(package.json "exports" or "main", else index.*) must `export default` a plugin definition or an array ' +
      'of them, importing the contract from `infer-connect/api` (docs/writing-a-connector.md). They are loaded ' +
      'when the worker starts and validated like the built-ins: a module that fails to load, an export that is ' +
      'not a plugin definition, or a name or alias already taken refuses the start and names the file. Loaded ' +
      'plugins are listed by `GET /connector-plugins` and `infer-connect plugins`. Empty (the default): only ' +
      'the built-in plugins.',
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
  const { config, problems, given } = parseWithVariables(workerSpec, raw, options);
  const values =
    options.resolveVariables === false ? given : resolveVariables(given, options.providers).values;
  // Keys with a problem already (an unresolved reference, a bad type) are not reported twice.
  const reported = new Set(problems.map((p) => p.key));
  const seen = new Set<string>();
  for (const problem of [...securityProblems(values), ...ownFileProblems(given, values)]) {
    const id = `${problem.key}\u0000${problem.message}`;
    if (reported.has(problem.key) || seen.has(id)) continue;
    seen.add(id);
    problems.push(problem);
  }
  return { config: problems.length === 0 ? config : undefined, problems };
}

const withPrefix = (values: Readonly<Record<string, string>>, prefix: string): Record<string, string> =>
  Object.fromEntries(
    Object.entries(values)
      .filter(([key]) => key.startsWith(prefix))
      .map(([key, value]) => [key.slice(prefix.length), value]),
  );

const securityOf = (values: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(values).filter(([key]) => isSecurityKey(key)));

/**
 * Kafka client security for one kind of client: the worker's keys with that kind's prefixed ones on
 * top, and how to name each key in messages (as the user wrote it).
 */
export function clientSecurity(
  values: Readonly<Record<string, string>>,
  kind: (typeof CLIENT_KINDS)[number],
): { props: Record<string, string>; name: (key: string) => string } {
  const prefixed = securityOf(withPrefix(values, `${kind}.`));
  return {
    props: { ...securityOf(values), ...prefixed },
    name: (key) => (key in prefixed ? `${kind}.${key}` : key),
  };
}

/** The checks that span several keys: Kafka security per client kind, the registry, the REST listener. */
function securityProblems(values: Readonly<Record<string, string>>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const kind of CLIENT_KINDS) {
    const { props, name } = clientSecurity(values, kind);
    problems.push(...kafkaSecurityProblems(props, name));
  }

  const registryTls = Object.fromEntries(
    Object.entries(withPrefix(values, 'schema.registry.')).filter(([key]) => key.startsWith('ssl.')),
  );
  problems.push(...tlsProblems(registryTls, (key) => `schema.registry.${key}`, 'client'));
  const registryUrl = values['schema.registry.url'] ?? '';
  const firstTlsKey = Object.keys(registryTls)[0];
  if (firstTlsKey && /^http:/i.test(registryUrl))
    problems.push({
      key: `schema.registry.${firstTlsKey}`,
      message: 'is set but schema.registry.url is http://: use an https:// URL',
    });
  const source = values['basic.auth.credentials.source']?.trim();
  const prefixedInfo = values['schema.registry.basic.auth.user.info'];
  const userInfo = prefixedInfo ?? values['basic.auth.user.info'];
  if (prefixedInfo !== undefined && values['basic.auth.user.info'] !== undefined)
    problems.push({
      key: 'basic.auth.user.info',
      message: 'and schema.registry.basic.auth.user.info are both set: keep one',
    });
  if (source === 'USER_INFO' && userInfo === undefined)
    problems.push({
      key: 'basic.auth.credentials.source',
      message:
        'is USER_INFO but schema.registry.basic.auth.user.info is not set: set it to <user>:<password>',
    });
  if (source === 'URL' && userInfo !== undefined)
    problems.push({
      key: 'basic.auth.credentials.source',
      message:
        'is URL, so the user info set is not used: set basic.auth.credentials.source=USER_INFO (or put the credentials in the URL and remove the user info)',
    });

  const listener = values['listeners'] ?? '';
  const restTls = withPrefix(values, 'listeners.https.');
  if (isHttpsListener(listener)) {
    problems.push(...tlsProblems(restTls, (key) => `listeners.https.${key}`, 'server'));
    if (!['ssl.keystore.location', 'ssl.keystore.key'].some((key) => restTls[key]?.trim()))
      problems.push({
        key: 'listeners',
        message:
          'is https:// but has no server certificate: set listeners.https.ssl.keystore.location (a PEM file with the key and certificate chain) or listeners.https.ssl.keystore.key and .certificate.chain; without them it must have the form http://host:port',
      });
  } else if (Object.keys(restTls).length > 0)
    problems.push({
      key: `listeners.https.${Object.keys(restTls)[0]}`,
      message:
        'is set but listeners is not an https:// URL: use https://host:port, or remove the listeners.https.* keys',
    });
  if (values['rest.basic.auth.jaas.file']?.trim() && values['rest.basic.auth.users.file']?.trim())
    problems.push({
      key: 'rest.basic.auth.users.file',
      message: 'and rest.basic.auth.jaas.file are both set: keep one',
    });
  if (values['access.control.allow.methods']?.trim() && !values['access.control.allow.origin']?.trim())
    problems.push({
      key: 'access.control.allow.methods',
      message: 'has no effect without access.control.allow.origin: set the origins too, or remove it',
    });
  return problems;
}

/** Worker keys naming files a connector must never read or write: state, credentials, keys. */
const OWN_FILE_KEYS = [
  'offset.storage.file.filename',
  'rest.basic.auth.jaas.file',
  'rest.basic.auth.users.file',
];
const FILE_REFERENCE = /\$\{file:([^}:]*):[^}]*\}/g;

/**
 * `allowed.paths` must not reach the worker's own files (its offsets, REST users, private keys,
 * the files its `${file:...}` references read): a FileSink could overwrite them, a FileSource
 * publish them to a topic.
 */
function ownFileProblems(
  given: Readonly<Record<string, string>>,
  values: Readonly<Record<string, string>>,
): ConfigProblem[] {
  const entries = (values[ALLOWED_PATHS] ?? '').split(',').filter((e) => e.trim() !== '');
  if (entries.length === 0) return [];
  const allowed = new AllowedDirectories(entries);
  const own: Array<{ what: string; path: string }> = [];
  for (const [key, value] of Object.entries(values)) {
    if ((OWN_FILE_KEYS.includes(key) || key.endsWith('ssl.keystore.location')) && value.trim() !== '')
      own.push({ what: key, path: value.trim() });
  }
  for (const [key, text] of Object.entries(given))
    for (const match of text.matchAll(FILE_REFERENCE))
      own.push({ what: `the file of the \${file:...} reference in ${key}`, path: match[1]! });
  return own
    .filter(({ path }) => allowed.problem(path) === undefined)
    .map(({ what, path }) => ({
      key: ALLOWED_PATHS,
      message: `reaches ${what} (${path}), which connectors could then read or overwrite: keep the worker's own files out of ${ALLOWED_PATHS} (list narrower directories, or single files)`,
    }));
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

/**
 * What connectors may touch on this worker: `paths` (from `allowed.paths`) for their files, and
 * the config providers for their configs (`${file:...}` bounded by
 * `config.providers.file.param.allowed.paths`). Entries are resolved once, now.
 */
export function workerFileAccess(
  worker: ParsedConfig,
  cwd: string = process.cwd(),
): { paths: AllowedDirectories; providers: ConfigProvider[] } {
  const paths = new AllowedDirectories(worker.getList(ALLOWED_PATHS), { key: ALLOWED_PATHS, cwd });
  const files = new AllowedDirectories(worker.getList(FILE_PROVIDER_ALLOWED_PATHS), {
    key: FILE_PROVIDER_ALLOWED_PATHS,
    subject: 'connector configs may reference no file',
    cwd,
  });
  return { paths, providers: connectorConfigProviders(files) };
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
