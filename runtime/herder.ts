// What the REST API (and the CLI) ask of a worker: Kafka Connect's "herder" role. The shapes are
// Kafka Connect's REST JSON, so existing tooling and scripts work unchanged.
import { ConnectError } from './errors.js';
import type { PluginKind } from './api.js';
import type { ConfigInfos, ConfigKeyInfo } from './config/validation-report.js';
import type { LoggerLevel } from './logger-levels.js';

/** Kafka Connect's connector/task states (observed state). */
export type ObservedState = 'UNASSIGNED' | 'RUNNING' | 'PAUSED' | 'STOPPED' | 'FAILED' | 'RESTARTING';
/** What the operator asked for (desired state). */
export type TargetState = 'RUNNING' | 'PAUSED' | 'STOPPED';

export interface ConnectorTaskId {
  connector: string;
  task: number;
}

export interface ConnectorInfo {
  name: string;
  config: Record<string, string>;
  tasks: ConnectorTaskId[];
  type: PluginKind;
}

export interface TaskStateInfo {
  id: number;
  state: ObservedState;
  worker_id: string;
  /** The version of the plugin running the task (Kafka Connect 4.1). */
  version: string;
  trace?: string;
  /** infer-connect extension: the task's own health (breaker state, paused partitions...). */
  details?: Record<string, unknown>;
}

export interface ConnectorStateInfo {
  name: string;
  connector: { state: ObservedState; worker_id: string; version: string; trace?: string };
  tasks: TaskStateInfo[];
  type: PluginKind;
}

export interface TaskInfo {
  id: ConnectorTaskId;
  config: Record<string, string>;
}

/** Kafka Connect's offsets shape: `{"offsets": [{"partition": {...}, "offset": {...}}]}`. */
export interface ConnectorOffsets {
  offsets: Array<{ partition: Record<string, unknown>; offset: Record<string, unknown> | null }>;
}

export interface PluginInfo {
  class: string;
  /** A connector's kind, or what else `GET /connector-plugins?connectorsOnly=false` lists. */
  type: PluginKind | 'transformation' | 'predicate' | 'converter' | 'header_converter';
  version: string;
}

export interface Herder {
  readonly workerId: string;
  /** Answers GET /: version, commit and the Kafka cluster id. */
  serverInfo(): Promise<{ version: string; commit: string; kafka_cluster_id: string }>;
  health(): { status: 'healthy' | 'starting' | 'unhealthy'; message: string };

  connectorNames(): string[];
  connectorInfo(name: string): ConnectorInfo;
  /** The connector's state is FAILED or its target state; `tasks` lists the tasks that exist. */
  connectorStatus(name: string): ConnectorStateInfo;
  connectorConfig(name: string): Record<string, string>;
  taskConfigs(name: string): TaskInfo[];
  taskStatus(name: string, task: number): TaskStateInfo;

  /** Creates or replaces; `allowReplace=false` (POST) answers 409 for an existing name. */
  putConnectorConfig(
    name: string,
    config: Record<string, unknown>,
    allowReplace: boolean,
  ): Promise<{ created: boolean; info: ConnectorInfo }>;
  /** Merges into the current config; a `null` value removes the key. */
  patchConnectorConfig(name: string, patch: Record<string, unknown>): Promise<ConnectorInfo>;
  deleteConnector(name: string): Promise<void>;

  // Changes to one connector apply one at a time, in the order they arrived; each resolves once
  // applied to every task. The target state (RUNNING, PAUSED, STOPPED) is recorded before it is
  // applied: a task that refuses it is reported FAILED in the status, the change still resolves.
  // A stopped connector has no tasks; pausing it keeps none (as Kafka Connect), resuming creates them.

  restartConnector(
    name: string,
    options: { includeTasks: boolean; onlyFailed: boolean },
  ): Promise<ConnectorStateInfo>;
  /** Replaces the task's runner in the connector's target state (paused if it is paused). */
  restartTask(name: string, task: number): Promise<void>;
  pauseConnector(name: string): Promise<void>;
  resumeConnector(name: string): Promise<void>;
  /** Stops and drops the connector's tasks (their offsets can then be changed). */
  stopConnector(name: string): Promise<void>;

  connectorOffsets(name: string): Promise<ConnectorOffsets>;
  /** Only when the connector is STOPPED (409 otherwise). Returns Kafka Connect's message. */
  alterConnectorOffsets(name: string, offsets: ConnectorOffsets): Promise<string>;
  resetConnectorOffsets(name: string): Promise<string>;

  /** The connector plugins; with `connectorsOnly=false` also transforms, predicates and converters. */
  plugins(connectorsOnly?: boolean): PluginInfo[];
  pluginConfig(plugin: string): ConfigKeyInfo[];
  validateConfig(plugin: string, config: Record<string, unknown>): ConfigInfos;

  // KIP-558 active topics: answered for any name, as Kafka Connect does (an unknown connector has none).
  /** 403 TOPIC_TRACKING_DISABLED when `topic.tracking.enable` is false. */
  connectorActiveTopics(name: string): { topics: string[] };
  /** 403 when `topic.tracking.enable` or `topic.tracking.allow.reset` is false. */
  resetConnectorActiveTopics(name: string): void;

  // KIP-495 log levels (runtime/logger-levels.ts names the loggers).
  loggerLevels(): Record<string, LoggerLevel>;
  /** 404 for a logger that is not known. */
  loggerLevel(name: string): LoggerLevel;
  /** `level` is a Log4j level name, any case (400 otherwise); returns the loggers it changed. */
  setLoggerLevel(namespace: string, level: string): string[];
}

/** An error the REST layer maps to an HTTP status with `{"error_code", "message"}`. */
export class HerderError extends ConnectError {
  constructor(
    readonly httpStatus: 400 | 403 | 404 | 409 | 500,
    code: string,
    message: string,
  ) {
    super(code, message);
  }
}

export const notFound = (name: string) =>
  new HerderError(404, 'CONNECTOR_NOT_FOUND', `Connector ${name} not found`);
