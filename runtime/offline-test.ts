// `infer-connect test <connector.json> --input records.jsonl [--expect expected.jsonl]`: runs one
// task of a processor or sink connector on recorded inputs, without Kafka, against whatever the
// connector itself calls (the configured model server), and prints what a deployment would do
// with each record: its output records, its dead-letter decision, or the task failure.
//
// What runs is what a worker runs, minus Kafka: the config is checked as `standalone` checks it
// (with --worker: file paths, `${file:...}` references and the avro converter's registry key
// too), the task is created through the same guard (allowed.paths, secrets hidden), and each
// chunk goes through the worker's RecordPipeline: the recorded keys and values are encoded with
// the connector's own converters (Avro against an in-memory registry holding --value-schema, so
// the task gets a SchemaRef with an id and a parsed type exactly as from a topic), decoded again,
// handed to the task in chunks of consumer.max.poll.records, and its outputs encoded with the
// output converters and decoded back for printing (runtime/offline-test-task.ts). errors.tolerance
// decides as in the consumer task runner: `all` dead-letters each bad record; `none` writes what
// came before the first bad record, fails the task on it, and nothing after it is processed.
// Transient failures are retried on the runtime's backoff for at most --timeout-ms per chunk
// (errors.retry.timeout is not used: a worker would pause and redeliver for ever, a test must end).
// Input lines: runtime/offline-test-input.ts; outcomes and --expect: runtime/offline-test-report.ts.
//
// Not reproduced offline: the schema registry's compatibility check of the output subject (and,
// with auto.register.schemas=false, whether it holds the output schema), use.latest.version (the
// in-memory registry holds only this run's schemas), the output topic's max.message.bytes,
// partitioning, exactly_once, and more than one task.
import { readFileSync } from 'node:fs';
import type { KafkaMessage } from 'kafkajs';
import type { Type as AvroType } from 'avsc';
import type { ConnectorPlugin, ProcessorPlugin, SinkPlugin } from './api.js';
import type { ParsedConfig } from './config/config-spec.js';
import {
  checkConnectorConfig,
  connectorConverters,
  readConnectorConfigFile,
} from './config/connector-config.js';
import { formatProblems } from './config/validation-report.js';
import { readWorkerConfigFile, schemaRegistryProblem, workerFileAccess } from './config/worker-config.js';
import { ConnectorConverters } from './converters/connector-converters.js';
import {
  CachedSchemaRegistry,
  createConverter,
  InMemoryRegistry,
  parseAvroSchema,
  type Converter,
  type ConverterName,
} from './converters/index.js';
import { bytesOf, parseTestInputs, type InputFormat, type TestInput } from './offline-test-input.js';
import {
  compareWithExpected,
  isBlocking,
  jsonLine,
  parseExpected,
  renderPretty,
  summarize,
} from './offline-test-report.js';
import { runTaskOffline, type OfflineTaskIo } from './offline-test-task.js';
import { PLUGIN_PATH, pluginRegistryWith } from './plugin-loader.js';

export interface OfflineTestOptions {
  connectorFile: string;
  input: string;
  inputFormat: InputFormat;
  /** Writer schema (.avsc) of the recorded values, for value.converter=avro. */
  valueSchema?: string;
  /** Writer schema (.avsc) of the recorded keys, for key.converter=avro. */
  keySchema?: string;
  worker?: string;
  expect?: string;
  /** Numbers match when they differ by at most this × max(1, |expected|). */
  floatTolerance: number;
  /** Top-level output value fields left out of the comparison (e.g. scored_at). */
  ignoreFields: string[];
  outputFormat: 'json' | 'pretty';
  /** How long a chunk's transient failures are retried before its records are reported. */
  timeoutMs: number;
  /** Level of the connector's log lines (on stderr). */
  logLevel: string;
}

export interface OfflineTestIo extends OfflineTaskIo {
  stdout: (text: string) => void;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;

/**
 * The options from the command line's strings (commander's camel-cased option names), or what is
 * wrong with one of them.
 */
export function offlineTestOptions(
  connectorFile: string,
  raw: Readonly<Record<string, string | undefined>>,
): OfflineTestOptions | { error: string } {
  const problems: string[] = [];
  const number = (name: string, value: string | undefined): number => {
    const n = Number(value);
    if (value === undefined || value.trim() === '' || !Number.isFinite(n) || n < 0)
      problems.push(`--${name} must be a non-negative number, not "${value}"`);
    return n;
  };
  const oneOf = <T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T => {
    if (!allowed.includes(value as T))
      problems.push(`--${name} must be one of ${allowed.join(', ')}, not "${value}"`);
    return value as T;
  };
  const options: OfflineTestOptions = {
    connectorFile,
    input: raw['input'] ?? '',
    inputFormat: oneOf('input-format', raw['inputFormat'] ?? 'values', ['values', 'records'] as const),
    valueSchema: raw['valueSchema'],
    keySchema: raw['keySchema'],
    worker: raw['worker'],
    expect: raw['expect'],
    floatTolerance: number('float-tolerance', raw['floatTolerance'] ?? '1e-6'),
    ignoreFields: (raw['ignoreFields'] ?? '')
      .split(',')
      .map((f) => f.trim())
      .filter((f) => f !== ''),
    outputFormat: oneOf('output-format', raw['outputFormat'] ?? 'pretty', ['json', 'pretty'] as const),
    timeoutMs: number('timeout-ms', raw['timeoutMs'] ?? '30000'),
    logLevel: oneOf('log-level', raw['logLevel'] ?? 'warn', LOG_LEVELS),
  };
  if (options.input === '') problems.push('--input <file> is required');
  return problems.length > 0 ? { error: problems.join('\n') } : options;
}

interface Loaded {
  plugin: ProcessorPlugin | SinkPlugin;
  config: ParsedConfig;
  name: string;
  worker: ParsedConfig | undefined;
}

/** Runs the test; resolves the exit code (0: ran and, with --expect, matched; 1: anything else). */
export async function runOfflineTest(
  builtins: readonly ConnectorPlugin[],
  options: OfflineTestOptions,
  io: OfflineTestIo,
): Promise<number> {
  const loaded = await loadConnector(builtins, options, io);
  if (!loaded) return 1;

  let expected: ReturnType<typeof parseExpected> | undefined;
  if (options.expect !== undefined) {
    const text = readText(options.expect, 'expected file', io);
    if (text === undefined) return 1;
    expected = parseExpected(text, options.expect);
    if (expected.problems.length > 0) {
      io.stderr(
        `${options.expect}: ${expected.problems.length} problem(s)\n  ${expected.problems.join('\n  ')}\n`,
      );
      return 1;
    }
  }

  const now = io.now ?? Date.now;
  const prepared = await prepareInputs(loaded, options, io, now());
  if (!prepared) return 1;

  const run = await runTaskOffline(
    { ...loaded, ...prepared, timeoutMs: options.timeoutMs, logLevel: options.logLevel },
    io,
  );
  if (expected) {
    const { differing, report } = compareWithExpected(run.outcomes, expected.byLine, {
      tolerance: options.floatTolerance,
      ignoreFields: options.ignoreFields,
      expectedSource: options.expect!,
      inputSource: options.input,
    });
    io.stdout(report);
    return differing > 0 || run.stopFailed ? 1 : 0;
  }
  if (options.outputFormat === 'json') {
    io.stdout(run.outcomes.map((o) => `${jsonLine(o)}\n`).join(''));
    io.stderr(`${summarize(run.outcomes)}\n`);
  } else io.stdout(renderPretty(run.outcomes));
  return run.outcomes.some(isBlocking) || run.stopFailed ? 1 : 0;
}

/** The connector config checked as `standalone` checks it (plus `validate`'s checks without a worker). */
async function loadConnector(
  builtins: readonly ConnectorPlugin[],
  options: OfflineTestOptions,
  io: OfflineTestIo,
): Promise<Loaded | undefined> {
  let worker: ParsedConfig | undefined;
  if (options.worker !== undefined) {
    const read = readWorkerConfigFile(options.worker);
    if (!read.config) {
      io.stderr(`${options.worker}: ${read.problems.length} problem(s)\n${formatProblems(read.problems)}\n`);
      return undefined;
    }
    worker = read.config;
  }
  const file = options.connectorFile;
  const plugins = await pluginRegistryWith(builtins, worker ? worker.getList(PLUGIN_PATH) : []);
  const read = readConnectorConfigFile(file);
  if ('error' in read) {
    io.stderr(`${file}: ${read.error}\n`);
    return undefined;
  }
  const { plugin, config, problems } = checkConnectorConfig(plugins, read.config, {
    name: read.name,
    ...(worker ? workerFileAccess(worker) : {}),
  });
  const registry = worker && config ? schemaRegistryProblem(worker, config) : undefined;
  if (registry) problems.push(registry);
  if (!plugin || !config || problems.length > 0) {
    io.stderr(`${file}: ${problems.length} problem(s)\n${formatProblems(problems)}\n`);
    return undefined;
  }
  if (plugin.kind === 'source') {
    io.stderr(
      `${file}: ${plugin.name} is a source connector; \`test\` runs processor and sink connectors on recorded ` +
        'input records (a source reads its own input: run it with `standalone` against a test topic)\n',
    );
    return undefined;
  }
  if (!worker)
    io.stderr(
      'without --worker: file paths are not checked against allowed.paths (the task may touch no file), and ' +
        '${file:...} references and the schema registry of the avro converter are not checked\n',
    );
  return { plugin, config, name: read.name, worker };
}

interface PreparedInputs {
  inputs: TestInput[];
  /** The consumed record of each input, as a producer with the connector's converters wrote it. */
  messages: KafkaMessage[];
  keyConverter: Converter;
  valueConverter: Converter;
}

/** Reads the input file and encodes each record with the connector's converters. */
async function prepareInputs(
  loaded: Loaded,
  options: OfflineTestOptions,
  io: OfflineTestIo,
  now: number,
): Promise<PreparedInputs | undefined> {
  const { config } = loaded;
  const names = connectorConverters(config);
  const problems: string[] = [];
  const keyType = schemaOption('key', names.key, options.keySchema, problems);
  const valueType = schemaOption('value', names.value, options.valueSchema, problems);
  const text = readText(options.input, 'input file', io);
  if (text === undefined) return undefined;
  const parsed = parseTestInputs(text, { format: options.inputFormat, config, now });
  problems.push(...parsed.problems);
  if (names.value === 'avro' && options.valueSchema === undefined)
    problems.unshift(
      'value.converter=avro: give the writer schema of the recorded values with --value-schema <schema.avsc>',
    );
  if (names.key === 'avro' && options.keySchema === undefined && parsed.inputs.some((i) => i.key !== null))
    problems.unshift(
      'key.converter=avro: give the writer schema of the recorded keys with --key-schema <schema.avsc>',
    );
  if (problems.length > 0) {
    io.stderr(`${options.input}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}\n`);
    return undefined;
  }

  // One in-memory registry: the recorded schemas get ids there, and so do the output schemas. The
  // task's converters are built from the config as the worker builds them (a converter's own
  // schema.registry.url is answered by the same in-memory registry); the recorded inputs are
  // written by a "producer" with the same settings, except that an avro producer registers its
  // schema under <topic>-value whatever auto.register.schemas and the subject strategy say.
  const registry = new OfflineRegistry();
  const converters = new ConnectorConverters(registry, undefined, () => registry);
  let keyConverter: Converter;
  let valueConverter: Converter;
  let keyProducer: Converter;
  let valueProducer: Converter;
  try {
    keyConverter = converters.create(config, 'key');
    valueConverter = converters.create(config, 'value');
    keyProducer =
      names.key === 'avro'
        ? createConverter('avro', { isKey: true, registry })
        : converters.create(config, 'key');
    valueProducer =
      names.value === 'avro'
        ? createConverter('avro', { isKey: false, registry })
        : converters.create(config, 'value');
  } catch (error) {
    io.stderr(`${options.connectorFile}: ${(error as Error).message}\n`);
    return undefined;
  }
  for (const topic of new Set(parsed.inputs.map((i) => i.topic))) {
    if (keyType) await keyProducer.prepareEncode?.(topic, keyType);
    if (valueType) await valueProducer.prepareEncode?.(topic, valueType);
  }
  const messages: KafkaMessage[] = [];
  for (const input of parsed.inputs) {
    const key = encodeRecorded(input, 'key', input.key, names.key, keyProducer, keyType, problems);
    const value = encodeRecorded(
      input,
      'value',
      input.value,
      names.value,
      valueProducer,
      valueType,
      problems,
    );
    messages.push({
      key,
      value,
      offset: input.offset,
      timestamp: input.timestamp,
      headers: input.headers,
      attributes: 0,
      size: 0,
    } as unknown as KafkaMessage);
  }
  if (problems.length > 0) {
    io.stderr(`${options.input}: ${problems.length} problem(s)\n  ${problems.join('\n  ')}\n`);
    return undefined;
  }
  return { inputs: parsed.inputs, messages, keyConverter, valueConverter };
}

/**
 * The schema registry of a test run: in memory, empty at start. A lookup (a converter with
 * auto.register.schemas=false) finds any schema, registering it: whether the real registry holds
 * it cannot be known offline, like its compatibility check.
 */
class OfflineRegistry extends CachedSchemaRegistry {
  constructor() {
    super(new InMemoryRegistry());
  }

  override lookup(subject: string, schema: AvroType | object): Promise<number> {
    return this.register(subject, schema);
  }
}

function schemaOption(
  which: 'key' | 'value',
  converter: ConverterName,
  file: string | undefined,
  problems: string[],
): AvroType | undefined {
  if (file === undefined) return undefined;
  if (converter !== 'avro') {
    problems.push(
      `--${which}-schema is for ${which}.converter=avro; this connector's ${which}.converter is ${converter}`,
    );
    return undefined;
  }
  try {
    return parseAvroSchema(readFileSync(file, 'utf8'));
  } catch (error) {
    problems.push(`--${which}-schema ${file}: not a readable Avro schema (${(error as Error).message})`);
    return undefined;
  }
}

/** The bytes a producer using the connector's converter would have written for a recorded key or value. */
function encodeRecorded(
  input: TestInput,
  which: 'key' | 'value',
  recorded: unknown,
  name: ConverterName,
  converter: Converter,
  type: AvroType | undefined,
  problems: string[],
): Buffer | null {
  try {
    let value = recorded;
    if (name === 'bytes') value = bytesOf(recorded);
    else if (name === 'avro' && type && recorded !== null)
      value = type.clone(recorded, { coerceBuffers: true });
    return converter.fromConnect(input.topic, value, type);
  } catch (error) {
    const cause = (error as Error).message;
    problems.push(
      `line ${input.line}: the ${which} cannot be written with ${which}.converter=${name}: ${cause}`,
    );
    return null;
  }
}

function readText(path: string, what: string, io: OfflineTestIo): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    io.stderr(`${path}: cannot read the ${what}: ${(error as Error).message}\n`);
    return undefined;
  }
}
