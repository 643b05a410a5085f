// The config every connector gets from the runtime (Kafka Connect's ConnectorConfig and
// SinkConnectorConfig), merged with its plugin's own spec. The runtime reads these keys; the
// connector reads its own. `consumer.override.*` and `producer.override.*` keys are not declared:
// they pass through to the task's Kafka clients (`ParsedConfig.withPrefix`), as do
// `key.converter.*` / `value.converter.*` keys for the converters.
import type { ConnectorPlugin, PluginKind } from '../api.js';
import type { ConverterName } from '../converters/converter.js';
import { tlsConfigKeys, tlsProblems } from '../kafka-security.js';
import { loadConfigDocument, parseWithVariables, type VariableOptions } from './config-providers.js';
// Transforms (helper E): the transforms/predicates keys are checked with every other problem.
import { transformConfigProblems } from '../transforms/index.js';
import { nestedQuantifier } from '../transforms/java-regex.js';
import {
  defineConfig,
  mergeSpecs,
  type ConfigKey,
  type ConfigProblem,
  type ConfigSpec,
  type ConfigValue,
  type CrossKeyRule,
  type ParsedConfig,
} from './config-spec.js';

export const CONVERTER_NAMES: readonly ConverterName[] = ['avro', 'json', 'string', 'bytes'];

/** Kafka Connect's (and Confluent's) converter classes, accepted as aliases of ours. */
export const CONVERTER_CLASSES: Readonly<Record<string, ConverterName>> = {
  'io.confluent.connect.avro.AvroConverter': 'avro',
  'org.apache.kafka.connect.json.JsonConverter': 'json',
  'org.apache.kafka.connect.storage.StringConverter': 'string',
  'org.apache.kafka.connect.converters.ByteArrayConverter': 'bytes',
};

/** Our converter name for a valid `key.converter` / `value.converter` value (a name or a class). */
export function converterName(value: string): ConverterName {
  return CONVERTER_CLASSES[value] ?? (value as ConverterName);
}

const SUBJECT_STRATEGIES = ['TopicNameStrategy', 'RecordNameStrategy', 'TopicRecordNameStrategy'] as const;
const STRATEGY_PACKAGE = 'io.confluent.kafka.serializers.subject.';

/** The short name of a valid `*.subject.name.strategy` value (a class name or its short name). */
export function subjectNameStrategy(value: string): (typeof SUBJECT_STRATEGIES)[number] {
  return value.trim().replace(STRATEGY_PACKAGE, '') as (typeof SUBJECT_STRATEGIES)[number];
}

const COMMON = 'Common';
const CONVERTERS = 'Converters';
const ERRORS = 'Error Handling';
const PROCESSING = 'Processing';

/** Kafka's legal topic names (kafka.common.Topic): 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`. */
export function topicNameProblem(topic: string): string | undefined {
  if (topic === '') return 'must not be empty';
  if (topic === '.' || topic === '..') return `"${topic}" is not a legal topic name`;
  if (topic.length > 249) return `"${topic.slice(0, 20)}..." is longer than Kafka's 249 characters`;
  if (!/^[a-zA-Z0-9._-]+$/.test(topic))
    return `"${topic}" is not a legal topic name; use only letters, digits, ".", "_" and "-"`;
  return undefined;
}

/**
 * `topics.regex` as the runtime must apply it: Kafka Connect matches the whole topic name
 * (Java's `Pattern.matches`), so `orders` does not match `orders-dlq`.
 */
export function topicsPattern(config: ParsedConfig): RegExp | undefined {
  const source = config.getOptionalString('topics.regex');
  return source === undefined ? undefined : wholeTopicPattern(source);
}

const wholeTopicPattern = (source: string): RegExp => new RegExp(`^(?:${source})$`);

const str = (values: ReadonlyMap<string, ConfigValue>, name: string): string => {
  const v = values.get(name);
  return typeof v === 'string' ? v : '';
};
const list = (values: ReadonlyMap<string, ConfigValue>, name: string): string[] => {
  const v = values.get(name);
  return Array.isArray(v) ? v : [];
};

const DLQ_TOPIC = 'errors.deadletterqueue.topic.name';

function converterKeys(which: 'key' | 'value', defaultConverter: ConverterName, why: string): ConfigKey[] {
  const p = `${which}.converter.`;
  const avroOnly = 'Read by the avro converter only.';
  return [
    {
      name: `${which}.converter`,
      type: 'string',
      default: defaultConverter,
      validValues: [...CONVERTER_NAMES, ...Object.keys(CONVERTER_CLASSES)],
      importance: 'low',
      group: CONVERTERS,
      dependents: [`${p}schemas.enable`, `${p}schema.registry.url`],
      documentation:
        `How record ${which}s are read from and written to Kafka. ${why} ` +
        "`avro` uses the Confluent framing (magic byte 0 and a 4-byte schema id) and needs a schema registry (the worker's " +
        `\`schema.registry.url\`, or \`${p}schema.registry.url\`); \`json\` is UTF-8 JSON; \`string\` is UTF-8 text; \`bytes\` passes bytes through. ` +
        "Kafka Connect's class names are accepted for the same converters: `io.confluent.connect.avro.AvroConverter`, " +
        '`org.apache.kafka.connect.json.JsonConverter`, `org.apache.kafka.connect.storage.StringConverter`, ' +
        '`org.apache.kafka.connect.converters.ByteArrayConverter`; other converters (Protobuf, JSON Schema) are refused.',
    },
    {
      name: `${p}schemas.enable`,
      type: 'boolean',
      default: false,
      importance: 'low',
      group: CONVERTERS,
      dependents: [`${p}decimal.format`],
      documentation:
        `With the json converter: whether ${which}s use Kafka Connect's \`{"schema": ..., "payload": ...}\` ` +
        "envelope. Its Connect schema becomes the record's schema (mapped to Avro as Confluent's AvroConverter maps it, " +
        'with a process-local negative schema id), and a record written with a schema carries its Connect schema. ' +
        "Unset: true when the converter is given as `org.apache.kafka.connect.json.JsonConverter` (Kafka Connect's " +
        'default), false for `json` (plain JSON is what producers outside Kafka Connect write).',
    },
    {
      name: `${p}decimal.format`,
      type: 'string',
      default: 'BASE64',
      validValues: ['BASE64', 'NUMERIC'],
      importance: 'low',
      group: CONVERTERS,
      documentation:
        "With the json converter: how Decimals are written (Kafka Connect's JsonConverter key): `BASE64`, the " +
        "unscaled value's two's-complement bytes in base64, or `NUMERIC`, a JSON number. Both are read.",
    },
    {
      name: `${p}schema.registry.url`,
      type: 'string',
      default: null,
      importance: 'medium',
      group: CONVERTERS,
      documentation:
        `This connector's own schema registry for its ${which}s (Confluent's converter key), with its own client and cache; ` +
        `unset: the worker's \`schema.registry.url\`. One URL (a comma-separated list is refused). ${avroOnly}`,
      validate: (value) => registryUrlProblem(String(value)),
    },
    {
      name: `${p}basic.auth.credentials.source`,
      type: 'string',
      default: null,
      validValues: ['USER_INFO', 'URL'],
      importance: 'medium',
      group: CONVERTERS,
      documentation:
        `Where the credentials for \`${p}schema.registry.url\` come from: \`USER_INFO\` reads \`${p}basic.auth.user.info\`; ` +
        '`URL` the `user:password@` part of the URL. Unset: USER_INFO when the user info is set, else URL. ' +
        'SASL_INHERIT and bearer tokens are not supported.',
    },
    {
      name: `${p}basic.auth.user.info`,
      type: 'password',
      default: null,
      importance: 'medium',
      group: CONVERTERS,
      documentation: `Basic-auth credentials for \`${p}schema.registry.url\`, as \`<user>:<password>\`.`,
      validate: (value) => (String(value).includes(':') ? undefined : 'must have the form <user>:<password>'),
    },
    {
      name: `${p}schema.registry.basic.auth.user.info`,
      type: 'password',
      default: null,
      importance: 'low',
      group: CONVERTERS,
      documentation: `The same as \`${p}basic.auth.user.info\` (Confluent's older name); set one of the two.`,
      validate: (value) => (String(value).includes(':') ? undefined : 'must have the form <user>:<password>'),
    },
    ...tlsConfigKeys(`${p}schema.registry.`, CONVERTERS, 'client', `${p}schema.registry.url`).map(
      (key): ConfigKey => (key.name.endsWith('.location') ? { ...key, filePath: 'read' } : key),
    ),
    ...[`${p}schema.registry.ssl.truststore.password`, `${p}schema.registry.ssl.keystore.password`].map(
      (name): ConfigKey => ({
        name,
        type: 'password',
        default: null,
        importance: 'low',
        group: CONVERTERS,
        documentation:
          'Refused: the registry client reads PEM stores, which have no store password (the key pass phrase is ' +
          '`ssl.key.password`); declared so that a config copied from a JKS setup is told how to convert.',
      }),
    ),
    {
      name: `${p}auto.register.schemas`,
      type: 'boolean',
      default: true,
      importance: 'low',
      group: CONVERTERS,
      documentation:
        `Whether writing registers a ${which} schema the subject does not hold yet (Confluent's key). false: the ` +
        'schema must already be registered; records written with one that is not are bad records. ' +
        avroOnly,
    },
    {
      name: `${p}use.latest.version`,
      type: 'boolean',
      default: false,
      importance: 'low',
      group: CONVERTERS,
      dependents: [`${p}latest.compatibility.strict`],
      documentation:
        `With \`${p}auto.register.schemas=false\`: write ${which}s with the latest version of their subject (fetched ` +
        "once per subject) instead of the record's own schema, as Confluent's serializer does. " +
        avroOnly,
    },
    {
      name: `${p}latest.compatibility.strict`,
      type: 'boolean',
      default: true,
      importance: 'low',
      group: CONVERTERS,
      documentation:
        `With \`${p}use.latest.version=true\`: refuse (the records become bad records) a latest version that cannot ` +
        "read the record's own schema; false writes the values with it as they are. " +
        avroOnly,
    },
    {
      name: `${p}${which}.subject.name.strategy`,
      type: 'string',
      default: `${STRATEGY_PACKAGE}TopicNameStrategy`,
      importance: 'low',
      group: CONVERTERS,
      documentation:
        `The subject ${which} schemas are registered under: \`TopicNameStrategy\` (\`<topic>-${which}\`), ` +
        "`RecordNameStrategy` (the record's full name) or `TopicRecordNameStrategy` (`<topic>-<full name>`), as " +
        `Confluent's class names (\`${STRATEGY_PACKAGE}...\`) or short. ${avroOnly}`,
      validate: (value) =>
        (SUBJECT_STRATEGIES as readonly string[]).includes(subjectNameStrategy(String(value)))
          ? undefined
          : `"${String(value)}" is not a supported strategy: use ${SUBJECT_STRATEGIES.map((s) => STRATEGY_PACKAGE + s).join(', ')}`,
    },
    ...unsupportedConverterKeys(p),
  ];
}

/**
 * Confluent converter keys this runtime does not implement: declared so that a config copied
 * from Kafka Connect that relies on one is refused by name instead of run differently. A value
 * equal to Confluent's default (`accepts`) changes nothing and is accepted.
 */
function unsupportedConverterKeys(p: string): ConfigKey[] {
  const refused: Array<{ key: string; accepts?: string; why: string }> = [
    { key: 'use.latest.with.metadata', why: "writing always uses the record's own schema" },
    { key: 'use.schema.id', accepts: '-1', why: "writing always uses the record's own schema" },
    { key: 'normalize.schemas', accepts: 'false', why: 'schemas are registered as written' },
    { key: 'bearer.auth.credentials.source', why: 'bearer-token auth is not supported; use basic auth' },
    { key: 'bearer.auth.token', why: 'bearer-token auth is not supported; use basic auth' },
    { key: 'context.name.strategy', why: 'schema contexts are not supported' },
    { key: 'connect.meta.data', accepts: 'true', why: 'Connect metadata is always kept' },
    {
      key: 'enhanced.avro.schema.support',
      accepts: 'false',
      why: 'enum symbols and defaults are not carried',
    },
    {
      key: 'schemas.cache.size',
      why: 'the runtime sizes its schema caches: registry schemas per process, up to 10000 JSON envelope schemas',
    },
  ];
  return refused.map(({ key, accepts, why }) => ({
    name: `${p}${key}`,
    type: key === 'bearer.auth.token' ? 'password' : 'string',
    default: null,
    importance: 'low',
    group: CONVERTERS,
    documentation:
      `Not supported (${why}): ` +
      (accepts === undefined
        ? 'refused when set.'
        : `only \`${accepts}\`, Confluent's default, is accepted.`),
    validate: (value) =>
      accepts !== undefined && String(value).trim().toLowerCase() === accepts
        ? undefined
        : `is not supported by this runtime (${why})` +
          (accepts === undefined ? ': remove it' : `: remove it or set it to ${accepts}`),
  }));
}

function registryUrlProblem(url: string): string | undefined {
  if (url.includes(','))
    return 'lists several URLs; this runtime takes one schema registry URL per converter: keep one';
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'http:' || parsed.protocol === 'https:') return undefined;
  } catch {
    // reported below
  }
  return `must be an http or https URL such as http://localhost:8081, got "${url}"`;
}

/** Cross-key checks of one converter's registry settings: credentials and TLS. */
function converterRegistryRules(which: 'key' | 'value'): CrossKeyRule[] {
  const p = `${which}.converter.`;
  const sslKeys = [
    ...tlsConfigKeys(`${p}schema.registry.`, CONVERTERS, 'client', '').map((k) => k.name),
    `${p}schema.registry.ssl.truststore.password`,
    `${p}schema.registry.ssl.keystore.password`,
  ];
  const set = (values: ReadonlyMap<string, ConfigValue>, key: string) => {
    const v = values.get(key);
    return v !== undefined && v !== null && v !== '';
  };
  return [
    rule([`${p}use.latest.version`, `${p}auto.register.schemas`], (values) =>
      values.get(`${p}use.latest.version`) === true && values.get(`${p}auto.register.schemas`) === true
        ? `is true but ${p}auto.register.schemas is true too, which registers the record's own schema instead ` +
          `(as in Confluent's converter): set ${p}auto.register.schemas=false`
        : undefined,
    ),
    rule(
      [
        `${p}basic.auth.credentials.source`,
        `${p}basic.auth.user.info`,
        `${p}schema.registry.basic.auth.user.info`,
      ],
      (values) => {
        const source = str(values, `${p}basic.auth.credentials.source`);
        const info =
          set(values, `${p}basic.auth.user.info`) || set(values, `${p}schema.registry.basic.auth.user.info`);
        if (
          set(values, `${p}basic.auth.user.info`) &&
          set(values, `${p}schema.registry.basic.auth.user.info`)
        )
          return `${p}basic.auth.user.info and ${p}schema.registry.basic.auth.user.info are both set: keep one`;
        if (source === 'USER_INFO' && !info)
          return `is USER_INFO but ${p}basic.auth.user.info is not set: set it to <user>:<password>`;
        if (source === 'URL' && info)
          return `is URL, so the user info set is not used: set it to USER_INFO (or put the credentials in the URL and remove the user info)`;
        return undefined;
      },
    ),
    rule([...sslKeys, `${p}schema.registry.url`], (values) => {
      const props: Record<string, string> = {};
      for (const key of sslKeys) {
        const v = values.get(key);
        // Defaults are not "set": only what the user wrote (a default PEM type is fine either way).
        if (
          v !== undefined &&
          v !== null &&
          v !== '' &&
          !(key.endsWith('.type') && v === 'PEM') &&
          !(key.endsWith('identification.algorithm') && v === 'https')
        )
          props[key.slice(`${p}schema.registry.`.length)] = String(v);
      }
      const problems = tlsProblems(props, (key) => `${p}schema.registry.${key}`, 'client');
      const url = str(values, `${p}schema.registry.url`);
      const first = Object.keys(props)[0];
      if (first !== undefined && url === '')
        problems.push({
          key: `${p}schema.registry.${first}`,
          message: `is set but ${p}schema.registry.url is not: the worker's registry uses the worker's schema.registry.ssl.* keys`,
        });
      else if (first !== undefined && /^http:/i.test(url))
        problems.push({
          key: `${p}schema.registry.${first}`,
          message: `is set but ${p}schema.registry.url is http://: use an https:// URL`,
        });
      return problems.length === 0 ? undefined : problems.map((pr) => `${pr.key} ${pr.message}`).join('; ');
    }),
  ];
}

/** Bytes of UTF-8 a connector name may take: percent-encoded, it stays well inside a REST path. */
export const MAX_CONNECTOR_NAME_BYTES = 200;

/**
 * Why `name` cannot name a connector, or undefined. A name must round-trip through the REST paths
 * (`/connectors/{name}/...`) and make valid group and transactional ids (`connect-<name>`).
 */
export function connectorNameProblem(name: string): string | undefined {
  if (name.trim() === '') return 'must not be empty';
  if (name !== name.trim()) return 'must not start or end with whitespace: remove it';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'must not contain control characters';
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_CONNECTOR_NAME_BYTES)
    return `is ${bytes} bytes long; at most ${MAX_CONNECTOR_NAME_BYTES} bytes (UTF-8) keep it usable in REST paths: choose a shorter name`;
  const reserved = [...new Set(name.match(/[/\\?#%]/g) ?? [])];
  if (reserved.length > 0)
    return `must not contain ${reserved.map((c) => `"${c}"`).join(', ')}: they change the meaning of a REST path (use letters, digits, ".", "_" or "-")`;
  if (name === '.' || name === '..') return 'must not be "." or "..": they are path segments, not names';
  return undefined;
}

const COMMON_KEYS: readonly ConfigKey[] = [
  {
    name: 'name',
    type: 'string',
    importance: 'high',
    group: COMMON,
    displayName: 'Connector name',
    documentation:
      'Globally unique name of the connector; sink and processor tasks consume in the group `connect-<name>`. ' +
      'Taken from the top-level "name" of a `{"name", "config"}` document when the config does not repeat it.',
    validate: (value) => connectorNameProblem(String(value)),
  },
  {
    name: 'connector.class',
    type: 'string',
    importance: 'high',
    group: COMMON,
    displayName: 'Connector class',
    documentation: 'The connector plugin: a name or alias listed by `GET /connector-plugins`.',
  },
  {
    name: 'tasks.max',
    type: 'int',
    default: 1,
    min: 1,
    importance: 'high',
    group: COMMON,
    displayName: 'Tasks max',
    documentation:
      'Maximum number of tasks for this connector. Sink and processor tasks share the consumer group, so ' +
      'Kafka spreads the input partitions across them; tasks beyond the partition count stay idle.',
  },
  ...converterKeys(
    'key',
    'string',
    'Defaults to `string` because keys are usually ids written as text, and a string key survives a round trip unchanged (use `bytes` for binary keys).',
  ),
  ...converterKeys('value', 'avro', 'Defaults to `avro`, the format of the scored streams.'),
];

const ERROR_KEYS: readonly ConfigKey[] = [
  {
    name: 'errors.tolerance',
    type: 'string',
    default: 'none',
    validValues: ['none', 'all'],
    importance: 'medium',
    group: ERRORS,
    displayName: 'Error tolerance',
    documentation:
      'What a bad record (undecodable, or refused by the connector) does: `none` fails the task; `all` skips it, ' +
      'writing it to the dead-letter queue when one is set. Transient errors are never skipped: they are retried.',
  },
  {
    name: 'errors.retry.timeout',
    type: 'long',
    default: 0,
    min: -1,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Retry timeout',
    documentation:
      'How long (ms) to retry a transient failure before pausing the partition and redelivering its records later; ' +
      '0 pauses at once, -1 retries forever.',
  },
  {
    name: 'errors.retry.delay.max.ms',
    type: 'long',
    default: 60000,
    min: 0,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Maximum retry delay',
    documentation: 'Cap (ms) of the exponential backoff between retries of a transient failure.',
  },
  {
    name: 'errors.log.enable',
    type: 'boolean',
    default: false,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Log errors',
    documentation:
      'Log every failed operation and bad record (topic, partition, offset and error) at warn level.',
  },
  {
    name: 'errors.log.include.messages',
    type: 'boolean',
    default: false,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Log error messages',
    documentation:
      'With `errors.log.enable`: include the record key and value in the log. They may hold personal data.',
  },
  {
    name: DLQ_TOPIC,
    type: 'string',
    default: '',
    importance: 'medium',
    group: ERRORS,
    displayName: 'Dead letter queue topic name',
    dependents: [
      'errors.deadletterqueue.topic.replication.factor',
      'errors.deadletterqueue.context.headers.enable',
    ],
    documentation:
      'Topic that receives bad records (original key, value bytes, headers and timestamp) when ' +
      '`errors.tolerance=all`; created when missing. Empty: no dead-letter queue, bad records are only skipped.',
    validate: (value) => (value === '' ? undefined : topicNameProblem(String(value))),
  },
  {
    name: 'errors.deadletterqueue.topic.replication.factor',
    type: 'int',
    default: 3,
    min: -1,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Dead letter queue topic replication factor',
    documentation:
      "Replication factor of the dead-letter topic when the runtime creates it (Kafka Connect's default, 3). " +
      "A single-broker development cluster needs 1; -1 uses the broker's `default.replication.factor`.",
    validate: (value) =>
      value === 0
        ? 'must be at least 1, or -1 for the broker default; a single-broker cluster needs 1'
        : undefined,
  },
  {
    name: 'errors.deadletterqueue.context.headers.enable',
    type: 'boolean',
    default: false,
    importance: 'medium',
    group: ERRORS,
    displayName: 'Dead letter queue context headers',
    documentation:
      "Add Kafka Connect's `__connect.errors.*` headers (origin topic, partition, offset, stage, exception, and " +
      'for inference errors the model, signature and gRPC status) to dead-letter records.',
  },
];

const INPUT_KEYS: readonly ConfigKey[] = [
  {
    name: 'topics',
    type: 'list',
    default: null,
    importance: 'high',
    group: COMMON,
    displayName: 'Topics',
    documentation: 'Comma-separated topics to consume. Set this or `topics.regex`, not both.',
    validate: (value) => {
      const problems = (value as string[]).map(topicNameProblem).filter((p) => p !== undefined);
      return problems.length > 0 ? problems.join('; ') : undefined;
    },
  },
  {
    name: 'topics.regex',
    type: 'string',
    default: null,
    importance: 'high',
    group: COMMON,
    displayName: 'Topics regex',
    documentation:
      'JavaScript regular expression matched against whole topic names; matching topics are consumed, including ' +
      'ones created later. Set this or `topics`, not both. Patterns with nested quantifiers such as `(a+)+` are ' +
      'refused: they can backtrack catastrophically.',
    validate: (value) => {
      try {
        new RegExp(String(value));
      } catch (error) {
        return `is not a valid regular expression: ${(error as Error).message}`;
      }
      // Transforms (helper E): the same guard as RegexRouter / TopicNameMatches patterns.
      const nested = nestedQuantifier(String(value));
      return nested === undefined
        ? undefined
        : `has a nested quantifier (${nested}), which can backtrack catastrophically; rewrite it without a quantified group that itself contains a quantifier`;
    },
  },
  {
    name: 'max.record.bytes',
    type: 'int',
    default: 8 * 1024 * 1024,
    min: 1,
    importance: 'low',
    group: COMMON,
    displayName: 'Largest record',
    documentation:
      'Consumed records whose key and value together take more bytes than this are bad records (stage ' +
      '`KAFKA_CONSUME`, code `RECORD_TOO_LARGE`): they go to the dead-letter queue with errors.tolerance=all ' +
      'without being decoded, so one oversized record cannot exhaust the worker. The default, 8 MiB, is far above ' +
      "Kafka's default `max.message.bytes` (1 MiB); raise it if your topics allow larger records.",
  },
];

const PROCESSOR_KEYS: readonly ConfigKey[] = [
  {
    name: 'output.topic',
    type: 'string',
    importance: 'high',
    group: PROCESSING,
    displayName: 'Output topic',
    documentation:
      'Topic the results are written to; created when missing, with as many partitions as the first input topic. ' +
      'Must not be an input topic or the dead-letter topic.',
    validate: (value) => topicNameProblem(String(value)),
  },
  {
    name: 'processing.guarantee',
    type: 'string',
    default: 'at_least_once',
    validValues: ['at_least_once', 'exactly_once'],
    importance: 'medium',
    group: PROCESSING,
    displayName: 'Processing guarantee',
    documentation:
      '`at_least_once` commits an input offset after its outputs and dead letters are acknowledged (a crash may ' +
      'write duplicates); `exactly_once` writes outputs, dead letters and the consumed offsets in one Kafka ' +
      'transaction per chunk (readers need `isolation.level=read_committed`), with one transactional producer per ' +
      'input partition (`transactional.id` `connect-<connector>-<topic>-<partition>`), so a task that takes a ' +
      'partition over fences its earlier owner, on this worker or another. Incompatible overrides (acks other ' +
      'than all, enable.idempotence=false, isolation.level=read_uncommitted) fail the task at start.',
  },
  {
    name: 'output.partitioning',
    type: 'string',
    default: 'input',
    validValues: ['input', 'key'],
    importance: 'low',
    group: PROCESSING,
    displayName: 'Output partitioning',
    documentation:
      '`input`: a result goes to the input partition modulo the output partition count, which keeps every input ' +
      "partition's order in the output; `key`: Kafka's default partitioning of the output key (murmur2 hash).",
  },
];

const rule = (keys: readonly string[], check: CrossKeyRule['check']): CrossKeyRule => ({ keys, check });

const DLQ_NEEDS_TOLERANCE = rule([DLQ_TOPIC, 'errors.tolerance'], (values) =>
  str(values, DLQ_TOPIC) !== '' && str(values, 'errors.tolerance') !== 'all'
    ? `dead letters are only written with errors.tolerance=all, which is "${str(values, 'errors.tolerance')}": ` +
      'set errors.tolerance=all or remove the DLQ topic'
    : undefined,
);

const INPUT_RULES: readonly CrossKeyRule[] = [
  rule(['topics', 'topics.regex'], (values) => {
    const hasTopics = list(values, 'topics').length > 0;
    const hasRegex = str(values, 'topics.regex') !== '';
    if (hasTopics && hasRegex) return 'both topics and topics.regex are set: keep exactly one of them';
    if (!hasTopics && !hasRegex)
      return 'is required: set topics (a comma-separated list) or topics.regex (a pattern), exactly one of them';
    return undefined;
  }),
  rule([DLQ_TOPIC, 'topics'], (values) =>
    list(values, 'topics').includes(str(values, DLQ_TOPIC))
      ? `"${str(values, DLQ_TOPIC)}" is also listed in topics, so dead letters would be consumed again: ` +
        'choose a DLQ topic that is not an input topic'
      : undefined,
  ),
  rule([DLQ_TOPIC, 'topics.regex'], (values) => {
    const dlq = str(values, DLQ_TOPIC);
    const regex = str(values, 'topics.regex');
    return dlq !== '' && regex !== '' && wholeTopicPattern(regex).test(dlq)
      ? `"${dlq}" matches topics.regex "${regex}", so dead letters would be consumed again: ` +
          'choose a DLQ topic the pattern does not match'
      : undefined;
  }),
];

const PROCESSOR_RULES: readonly CrossKeyRule[] = [
  rule(['output.topic', 'topics'], (values) =>
    list(values, 'topics').includes(str(values, 'output.topic'))
      ? `"${str(values, 'output.topic')}" is also listed in topics, so the connector would consume its own ` +
        'output: choose an output topic that is not an input topic'
      : undefined,
  ),
  rule(['output.topic', 'topics.regex'], (values) => {
    const output = str(values, 'output.topic');
    const regex = str(values, 'topics.regex');
    return regex !== '' && wholeTopicPattern(regex).test(output)
      ? `"${output}" matches topics.regex "${regex}", so the connector would consume its own output: ` +
          'choose an output topic the pattern does not match'
      : undefined;
  }),
  rule(['output.topic', DLQ_TOPIC], (values) =>
    str(values, 'output.topic') === str(values, DLQ_TOPIC)
      ? `"${str(values, 'output.topic')}" is also the dead-letter topic: results and bad records need different topics`
      : undefined,
  ),
];

/**
 * The runtime's keys for a kind of connector: name, class, tasks and converters for all;
 * errors.* for all (a source may dead-letter a malformed input); `topics`/`topics.regex` for
 * sinks and processors; output keys for processors. Sources name their topic in their own spec.
 */
export function commonConnectorSpec(kind: PluginKind): ConfigSpec {
  const keys = [...COMMON_KEYS];
  const rules: CrossKeyRule[] = [
    DLQ_NEEDS_TOLERANCE,
    ...converterRegistryRules('key'),
    ...converterRegistryRules('value'),
  ];
  if (kind !== 'source') {
    keys.splice(2, 0, ...INPUT_KEYS);
    rules.push(...INPUT_RULES);
  }
  if (kind === 'processor') {
    keys.push(...PROCESSOR_KEYS);
    rules.push(...PROCESSOR_RULES);
  }
  keys.push(...ERROR_KEYS);
  return defineConfig(keys, rules);
}

const specs = new WeakMap<ConnectorPlugin, ConfigSpec>();

/**
 * The full spec of `plugin`'s connectors: the common keys for its kind, then its own. A plugin
 * may redeclare a common key (e.g. to change a converter's default); its declaration wins.
 */
export function connectorSpecFor(plugin: ConnectorPlugin): ConfigSpec {
  let spec = specs.get(plugin);
  if (!spec) {
    const common = commonConnectorSpec(plugin.kind);
    const names = [plugin.name, ...(plugin.aliases ?? [])];
    const classRule = rule(['connector.class'], (values) =>
      names.includes(str(values, 'connector.class'))
        ? undefined
        : `"${str(values, 'connector.class')}" does not name the ${plugin.name} plugin; use one of: ${names.join(', ')}`,
    );
    spec = mergeSpecs(common, defineConfig([], [classRule]), plugin.config);
    specs.set(plugin, spec);
  }
  return spec;
}

export interface ConnectorParseOptions extends VariableOptions {
  /** The connector's name from outside the config (REST path, top-level "name"). */
  name?: string;
}

/**
 * Validates a flat connector config (values may be strings, JSON numbers or booleans) against
 * `connectorSpecFor(plugin)`, after resolving `${env:...}`/`${file:...}` references unless
 * `resolveVariables` is false. Reports every problem at once; `config` is set only when there
 * are none. Secret and resolved values stay out of the problems.
 */
export function parseConnectorConfig(
  plugin: ConnectorPlugin,
  raw: Readonly<Record<string, unknown>>,
  options: ConnectorParseOptions = {},
): { config: ParsedConfig | undefined; problems: ConfigProblem[]; values: ReadonlyMap<string, ConfigValue> } {
  const named = withName(raw, options.name);
  const parsed = parseWithVariables(connectorSpecFor(plugin), named.config, options);
  const { values } = parsed;
  const problems = [...parsed.problems, ...transformConfigProblems(named.config)];
  const config = problems.length === 0 ? parsed.config : undefined;
  return named.problem
    ? { config: undefined, problems: [named.problem, ...problems], values }
    : { config, problems, values };
}

/** How connector configs find their plugin (a PluginRegistry). */
export interface PluginLookup {
  find(nameOrAlias: string): ConnectorPlugin | undefined;
  /** Why `name` names no plugin (`""` when connector.class is missing), listing what is available. */
  unknownPluginMessage(name: string): string;
}

/**
 * Validates a connector config whose plugin its own `connector.class` names: against that plugin's
 * spec, or, when connector.class is missing or names no plugin, against the keys every connector
 * has (name, tasks.max, converters, errors.*), so one answer still lists every problem it can,
 * connector.class first. `config` is set only when there are no problems; `values` holds the
 * keys that parsed (defaults included), for checks that need a few of them whatever else failed.
 */
export function checkConnectorConfig(
  plugins: PluginLookup,
  raw: Readonly<Record<string, unknown>>,
  options: ConnectorParseOptions = {},
): {
  plugin: ConnectorPlugin | undefined;
  config: ParsedConfig | undefined;
  problems: ConfigProblem[];
  values: ReadonlyMap<string, ConfigValue>;
} {
  const given = raw['connector.class'];
  const className =
    typeof given === 'string'
      ? given
      : typeof given === 'number' || typeof given === 'boolean'
        ? String(given)
        : undefined;
  const plugin = className === undefined ? undefined : plugins.find(className);
  if (plugin) return { plugin, ...parseConnectorConfig(plugin, raw, options) };

  const named = withName(raw, options.name);
  const parsedCommon = parseWithVariables(commonConnectorSpec('source'), named.config, options);
  const common = parsedCommon.problems;
  // A value of the wrong JSON type (object, array) keeps its own problem; anything else names the plugins.
  const classProblem =
    given !== undefined && given !== null && className === undefined
      ? common.filter((p) => p.key === 'connector.class')
      : [{ key: 'connector.class', message: plugins.unknownPluginMessage(className ?? '') }];
  const others = common.filter((p) => p.key !== 'connector.class');
  return {
    plugin: undefined,
    config: undefined,
    problems: [
      ...classProblem,
      ...(named.problem ? [named.problem] : []),
      ...others,
      ...transformConfigProblems(named.config),
    ],
    values: parsedCommon.values,
  };
}

function withName(
  config: Readonly<Record<string, unknown>>,
  name: string | undefined,
): { config: Readonly<Record<string, unknown>>; problem?: ConfigProblem } {
  if (name === undefined) return { config };
  const inner = config['name'];
  if (inner === undefined || inner === null) return { config: { ...config, name } };
  if (inner === name) return { config };
  return {
    config: { ...config, name },
    problem: {
      key: 'name',
      message: `"${String(inner)}" does not match the connector name "${name}": remove it from the config or make them equal`,
    },
  };
}

export interface ConnectorDocument {
  /** The top-level name, or the config's `name` for a flat document. */
  name: string | undefined;
  /** The flat config, with `name` filled in from the top level when it was missing. */
  config: Record<string, unknown>;
  problems: ConfigProblem[];
}

/**
 * Accepts Kafka Connect's REST shape `{"name": "...", "config": {...}}` and the flat shape of its
 * standalone `.properties` files (`{"name": "...", "connector.class": "...", ...}`). Other
 * top-level keys of the REST shape (`tasks`, `type`) are ignored, as Kafka Connect does.
 */
export function connectorDocument(document: unknown): ConnectorDocument {
  if (!isPlainObject(document)) {
    return {
      name: undefined,
      config: {},
      problems: [
        {
          key: 'config',
          message: 'the document must be a JSON object like {"name": "...", "config": {...}}',
        },
      ],
    };
  }
  const wrapped = 'config' in document && !('connector.class' in document);
  if (!wrapped) {
    const name = document['name'];
    return { name: typeof name === 'string' ? name : undefined, config: { ...document }, problems: [] };
  }
  const config = document['config'];
  const name = document['name'];
  if (!isPlainObject(config))
    return {
      name: undefined,
      config: {},
      problems: [{ key: 'config', message: 'must be a JSON object of config keys' }],
    };
  if (name !== undefined && typeof name !== 'string')
    return {
      name: undefined,
      config,
      problems: [{ key: 'name', message: 'the top-level name must be a string' }],
    };
  const named = withName(config, name);
  return { name, config: { ...named.config }, problems: named.problem ? [named.problem] : [] };
}

/**
 * Reads a connector config file (JSON in either shape, or Java `.properties`). `error` says what
 * is wrong without repeating the path: unreadable, bad JSON (with line and column), the wrong
 * shape, or no connector name. The config itself is validated later, against its plugin.
 */
export function readConnectorConfigFile(
  path: string,
): { name: string; config: Record<string, unknown> } | { error: string } {
  const loaded = loadConfigDocument(path);
  if ('error' in loaded) return loaded;
  const document = connectorDocument(loaded.document);
  if (document.problems.length > 0)
    return { error: document.problems.map((p) => `${p.key}: ${p.message}`).join('; ') };
  if (document.name === undefined || document.name.trim() === '')
    return { error: 'no connector name: add "name" next to "config" (or to the flat config)' };
  return { name: document.name, config: document.config };
}

/** The converters a parsed connector config selects (class names as our names). */
export function connectorConverters(config: ParsedConfig): { key: ConverterName; value: ConverterName } {
  return {
    key: converterName(config.getString('key.converter')),
    value: converterName(config.getString('value.converter')),
  };
}

/**
 * Whether the connector needs the worker's `schema.registry.url`: a key or value converter is avro
 * without its own `*.converter.schema.registry.url`.
 */
export function usesAvroConverter(config: ParsedConfig): boolean {
  const { key, value } = connectorConverters(config);
  return (
    (key === 'avro' && !config.has('key.converter.schema.registry.url')) ||
    (value === 'avro' && !config.has('value.converter.schema.registry.url'))
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
