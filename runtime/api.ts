// The public contract between the runtime and connector plugins. Connectors import this module
// (and nothing else from runtime/): it says what a plugin declares, what a task receives, and what
// it must return. The runtime owns the plumbing around every task: consuming and committing
// offsets, converting bytes, producing, retries, the dead-letter queue and the standard metrics.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Type as AvroType } from 'avsc';
import type { AllowedPaths } from './allowed-paths.js';
import type { ConfigSpec, ParsedConfig } from './config/config-spec.js';

export type { AllowedPaths } from './allowed-paths.js';
export type { ConfigSpec, ConfigKey, ParsedConfig, ConfigType, Importance } from './config/config-spec.js';
export { defineConfig } from './config/config-spec.js';
export { topicNameProblem } from './config/connector-config.js';
export { ConnectError, RetriableError, RecordError, FatalError } from './errors.js';
export type { Stage } from './errors.js';
export type { Logger } from 'pino';

export type PluginKind = 'source' | 'sink' | 'processor';

/** A record's value (or key) with the schema it was written with, when the converter knows one. */
export interface SchemaRef {
  /** The registry id of the writer schema (Avro converter). */
  id: number;
  /** The parsed writer schema. */
  type: AvroType;
}

/** A consumed record after the key and value converters ran. */
export interface ConnectRecord {
  topic: string;
  partition: number;
  /** Kafka offset, as a decimal string (kafkajs' representation). */
  offset: string;
  /** Record timestamp in epoch milliseconds, as a decimal string. */
  timestamp: string;
  key: unknown;
  value: unknown;
  keySchema?: SchemaRef;
  valueSchema?: SchemaRef;
  headers: Record<string, Buffer | undefined>;
  /** The original bytes, e.g. to pass a key through unchanged. */
  rawKey: Buffer | null;
  rawValue: Buffer | null;
}

/** A record a source or processor task wants written to Kafka. */
export interface OutputRecord {
  topic: string;
  /** Converted with the key converter, unless `rawKey` is given (written verbatim). */
  key?: unknown;
  rawKey?: Buffer | null;
  value: unknown;
  /**
   * The Avro schema of `value` for the avro converter; it is registered under `<topic>-value`
   * once per distinct schema and the record is framed with the registered id.
   */
  valueSchema?: AvroType;
  headers?: Record<string, Buffer | string>;
  /** Epoch ms as a decimal string; defaults to the input record's timestamp, or now. */
  timestamp?: string;
}

export interface TaskContext {
  connectorName: string;
  taskId: number;
  config: ParsedConfig;
  /** Child logger labelled with connector and task. */
  logger: Logger;
  /** The worker's metrics registry; label task metrics with `metricLabels`. */
  metrics: Registry;
  metricLabels: { connector: string; task: string };
  /** Aborted when the task is asked to stop: every wait inside a task must honour it. */
  signal: AbortSignal;
  /** Injected clock (tests use a fake one). */
  now(): number;
  /**
   * The files this worker lets connectors read and write (its `allowed.paths`). Declare keys that
   * name files with `filePath` in the config spec (the runtime then refuses paths outside when the
   * config is validated and before the task is created), and open `paths.resolve(path, key)`
   * rather than the path as given; check files named at run time (by records) with it too.
   * Set by the worker for every task; absent only where no worker runs the task (unit tests):
   * then refuse to touch files.
   */
  paths?: AllowedPaths;
}

/**
 * A Kafka -> Kafka task. The runtime consumes `topics` in the group `connect-<name>`, decodes each
 * record, and calls `process` with records of one partition in offset order (calls for different
 * partitions may overlap, up to the worker's `consumer.partitions.concurrency`).
 */
export interface ProcessorTask {
  /** Called once before the first `process`. Throw FatalError for a config the task cannot run. */
  start?(): Promise<void>;
  /**
   * Returns one result per input record, by position: the records to write for it (possibly
   * none), or a RecordError when that record alone is bad (it goes to the dead-letter queue when
   * errors.tolerance=all). Throwing a RetriableError retries the whole call later (same records,
   * in order); throwing anything else fails the task.
   */
  process(records: readonly ConnectRecord[]): Promise<Array<OutputRecord[] | Error>>;
  /** Describes the task's own health for `/status` (e.g. circuit breaker state). */
  describe?(): Record<string, unknown>;
  /** Called once; in-flight `process` calls have settled by then. */
  stop?(): Promise<void>;
}

/** A Kafka -> external task. */
export interface SinkTask {
  start?(): Promise<void>;
  /** Same result contract as ProcessorTask.process, with `undefined` for a record written fine. */
  put(records: readonly ConnectRecord[]): Promise<Array<Error | undefined> | void>;
  /** Make everything `put` so far durable; called before offsets are committed. */
  flush?(): Promise<void>;
  describe?(): Record<string, unknown>;
  stop?(): Promise<void>;
}

/** Where a source record came from, and how far: stored by the runtime after Kafka acknowledged it. */
export type SourcePartition = Record<string, string | number>;
export type SourceOffset = Record<string, string | number>;

export interface SourceRecord extends OutputRecord {
  sourcePartition: SourcePartition;
  sourceOffset: SourceOffset;
}

/** A source record that could not be built (e.g. a malformed line), routed by errors.tolerance. */
export interface SourceRecordFailure {
  error: Error;
  /** The raw input, written as the dead-letter record's value. */
  raw: Buffer;
  sourcePartition: SourcePartition;
  sourceOffset: SourceOffset;
}

export interface SourceTaskContext extends TaskContext {
  /** The last committed offset for a source partition (after a restart), if any. */
  offsetFor(partition: SourcePartition): SourceOffset | undefined;
}

export interface SourceTask {
  start?(): Promise<void>;
  /**
   * Returns the next records (an empty array when there is nothing yet; the runtime polls again
   * after a short pause) or `null` when the source is finished for good.
   */
  poll(): Promise<Array<SourceRecord | SourceRecordFailure> | null>;
  describe?(): Record<string, unknown>;
  stop?(): Promise<void>;
}

interface PluginBase {
  /** The class name used in `connector.class`, e.g. `FileSource`. */
  name: string;
  /** Other accepted names, e.g. a fully qualified Java-style class name. */
  aliases?: readonly string[];
  version: string;
  description: string;
  config: ConfigSpec;
}

export interface SourcePlugin extends PluginBase {
  kind: 'source';
  createTask(context: SourceTaskContext): SourceTask;
}

export interface SinkPlugin extends PluginBase {
  kind: 'sink';
  createTask(context: TaskContext): SinkTask;
}

export interface ProcessorPlugin extends PluginBase {
  kind: 'processor';
  createTask(context: TaskContext): ProcessorTask;
}

export type ConnectorPlugin = SourcePlugin | SinkPlugin | ProcessorPlugin;
