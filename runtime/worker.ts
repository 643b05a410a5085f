// A worker runs connectors and their tasks (Kafka Connect's Worker and StandaloneHerder in one).
// It answers the REST API through the Herder interface and owns the Kafka clients, converters,
// offsets and metrics its tasks share. Each connector's target state and tasks live in a
// ConnectorLifecycle (runtime/connector-lifecycle.ts, with the transition table).
//
// Every change to one connector (REST-driven or internal) runs in that connector's serial queue,
// so changes apply in the order they arrived and never interleave: after DELETE resolves no runner
// of the connector runs, and a change queued behind it answers 404. Reads are not queued.
//
// Files and secrets: connector configs are validated against the worker's `allowed.paths` and
// resolved with its connector config providers; each connector's secret values go to the worker's
// SecretRedactor, which hides them in the worker's logs, in every trace, task detail, offset and
// error the worker answers, and (through the guarded plugin) in the errors its tasks raise.
import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { AllowedDirectories, type AllowedPaths } from './allowed-paths.js';
import type { ConnectorPlugin } from './api.js';
import { connectorConfigProviders, type ConfigProvider } from './config/config-providers.js';
import { maskSecrets, type ConfigProblem, type ParsedConfig } from './config/config-spec.js';
import { checkConnectorConfig, connectorSpecFor, topicsPattern } from './config/connector-config.js';
import {
  addProblems,
  describeSpec,
  validationReport,
  type ConfigInfos,
  type ConfigKeyInfo,
} from './config/validation-report.js';
import { converterName } from './config/connector-config.js';
import { ConnectorConverters } from './converters/connector-converters.js';
import type { Converter } from './converters/converter.js';
import { CachedSchemaRegistry, type HttpRegistryOptions } from './converters/schema-registry.js';
import { connectorOverrideProblems } from './kafka-clients.js';
import {
  ConnectorLifecycle,
  taskState,
  type Sleep,
  type TaskStopFailure,
  type TaskView,
} from './connector-lifecycle.js';
import { ConsumerTaskRunner } from './consumer-task-runner.js';
import { interruptibleSleep } from './backoff.js';
import { ActiveTopics, trackingKafka } from './active-topics.js';
import { builtinNonConnectorPlugins } from './listed-plugins.js';
import { connectorLoggerName, log4jLevel, LoggerLevels, type LoggerLevel } from './logger-levels.js';
import { errorMessage } from './error-catalogue.js';
import { KeyedSerialQueue } from './keyed-serial-queue.js';
import {
  HerderError,
  notFound,
  type ConnectorInfo,
  type ConnectorOffsets,
  type ConnectorStateInfo,
  type Herder,
  type PluginInfo,
  type TaskInfo,
  type TaskStateInfo,
} from './herder.js';
import { guardPlugin } from './guarded-plugin.js';
import { withRedaction } from './logger.js';
import { FileOffsetStore } from './offset-store.js';
import type { PluginRegistry } from './plugin-registry.js';
import { SecretRedactor, secretsOf } from './secret-redaction.js';
import { SourceTaskRunner } from './source-task-runner.js';
import { RuntimeMetrics } from './task-metrics.js';
import { taskLabels, type RunnerDependencies, type RunnerSettings, type TaskRunner } from './task-runner.js';
import { transformConfigProblems } from './transforms/index.js';

export const VERSION = '0.1.0';

interface ConnectorEntry {
  name: string;
  plugin: ConnectorPlugin;
  /** `plugin` as its runners get it: file checks before each task, secrets hidden in its errors. */
  guarded: ConnectorPlugin;
  /** The config as submitted (variables unresolved): what REST shows, secrets masked. */
  submitted: Record<string, string>;
  config: ParsedConfig;
  lifecycle: ConnectorLifecycle;
  /** Every task id that had a runner: the metric series to drop when the connector is deleted. */
  metricTaskIds: Set<number>;
}

/**
 * Everything a task runner needs, composed by the worker for one task. `redact` hides the worker's
 * known secrets: give it to the task's DeadLetterQueue (its `redact` option).
 */
export type RunnerFactoryInput = RunnerDependencies & {
  offsets: FileOffsetStore;
  redact: (text: string) => string;
};
export type RunnerFactory = (deps: RunnerFactoryInput) => TaskRunner;

/** The runners of the runtime: a source task runner, or a consumer runner for sinks and processors. */
export const createTaskRunner: RunnerFactory = (deps) => {
  const { plugin } = deps;
  if (plugin.kind === 'source') return new SourceTaskRunner({ ...deps, plugin });
  return new ConsumerTaskRunner({ ...deps, plugin });
};

/** What `Worker.stop()` reports: `clean` only when every task drained before the deadline. */
export interface WorkerStopSummary {
  clean: boolean;
  failures: TaskStopFailure[];
}

export interface WorkerOptions {
  workerId: string;
  kafka: Kafka;
  plugins: PluginRegistry;
  metricsRegistry: Registry;
  logger: Logger;
  settings: RunnerSettings;
  /** The registry's URL, or its URL with basic auth and TLS settings. */
  schemaRegistryUrl: string | HttpRegistryOptions | undefined;
  offsetStoreFile: string;
  /** Builds each task's runner (tests inject fakes); `createTaskRunner` by default. */
  runnerFactory?: RunnerFactory;
  /** The clock of stop deadlines; `interruptibleSleep` by default (tests inject a fake). */
  sleep?: Sleep;
  /** What connectors may read and write (`allowed.paths`); default: no file. */
  allowedPaths?: AllowedPaths;
  /** The providers of `${...}` references in connector configs; default: `env`, and `file` for no file. */
  configProviders?: readonly ConfigProvider[];
  /**
   * The secrets to hide, shared with whatever else logs or answers for this worker (the REST
   * server, the Kafka client's logger); default: the worker's own.
   */
  secrets?: SecretRedactor;
  /**
   * Kafka Connect's `topic.tracking.enable` and `topic.tracking.allow.reset` (KIP-558); default
   * both true, as in Kafka Connect.
   */
  topicTracking?: { enable: boolean; allowReset: boolean };
  /**
   * What `GET /connector-plugins?connectorsOnly=false` lists besides the connectors; default the
   * runtime's transforms, predicates and converters (runtime/listed-plugins.ts).
   */
  otherPlugins?: () => readonly PluginInfo[];
  /** The clock of `last_modified` in log levels; `Date.now` by default. */
  now?: () => number;
}

export class Worker implements Herder {
  readonly workerId: string;
  readonly metrics: RuntimeMetrics;
  private readonly connectors = new Map<string, ConnectorEntry>();
  private readonly queue = new KeyedSerialQueue();
  private readonly offsets: FileOffsetStore;
  private readonly schemaRegistry: CachedSchemaRegistry | undefined;
  /** Builds each task's converters; owns the connectors' own registry clients. */
  private readonly converters: ConnectorConverters;
  private readonly runnerFactory: RunnerFactory;
  private readonly sleep: Sleep;
  private readonly logger: Logger;
  private readonly secrets: SecretRedactor;
  private readonly paths: AllowedPaths;
  private readonly providers: readonly ConfigProvider[];
  private readonly activeTopics = new ActiveTopics();
  private readonly loggers: LoggerLevels;
  private clusterId = '';
  private started = false;
  private stopping: Promise<WorkerStopSummary> | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId;
    this.secrets = options.secrets ?? new SecretRedactor();
    this.logger = withRedaction(options.logger, this.secrets.redactJsonLine);
    this.paths = options.allowedPaths ?? new AllowedDirectories([]);
    this.providers = options.configProviders ?? connectorConfigProviders(new AllowedDirectories([]));
    this.metrics = new RuntimeMetrics(options.metricsRegistry);
    this.offsets = new FileOffsetStore(options.offsetStoreFile, { onWarning: (m) => this.logger.warn(m) });
    this.schemaRegistry = options.schemaRegistryUrl
      ? new CachedSchemaRegistry(options.schemaRegistryUrl)
      : undefined;
    this.converters = new ConnectorConverters(this.schemaRegistry);
    this.runnerFactory = options.runnerFactory ?? createTaskRunner;
    this.sleep = options.sleep ?? interruptibleSleep;
    this.loggers = new LoggerLevels(this.logger, options.now);
  }

  async start(): Promise<void> {
    const admin = this.options.kafka.admin();
    await admin.connect();
    try {
      this.clusterId = (await admin.describeCluster()).clusterId;
    } finally {
      await admin.disconnect();
    }
    this.started = true;
  }

  /**
   * Stops every task of every connector at once under one deadline,
   * `task.shutdown.graceful.timeout.ms` for all of them together, and reports which tasks did not
   * drain (their stop rejected or outlived the deadline). Idempotent; never throws; resolves by
   * the deadline. Once called, changes to connectors answer 409 WORKER_STOPPING and no new task
   * starts; reads still answer.
   */
  stop(): Promise<WorkerStopSummary> {
    this.stopping ??= this.drainTasks();
    return this.stopping;
  }

  private async drainTasks(): Promise<WorkerStopSummary> {
    const { settings } = this.options;
    const logger = this.logger;
    const ms = settings.shutdownTimeoutMs;
    const abort = new AbortController();
    const deadline = { reached: this.sleep(ms, abort.signal), ms };
    try {
      const entries = [...this.connectors.values()];
      const failures = (await Promise.all(entries.map((e) => e.lifecycle.shutdown(deadline)))).flat();
      if (failures.length > 0) logger.error({ failures }, 'some tasks did not drain');
      else logger.info({ connectors: entries.length }, 'every task drained');
      return { clean: failures.length === 0, failures };
    } finally {
      abort.abort();
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Herder: reads

  async serverInfo() {
    return { version: VERSION, commit: 'unknown', kafka_cluster_id: this.clusterId };
  }

  health() {
    if (this.stopping) return { status: 'unhealthy' as const, message: 'Worker is shutting down' };
    if (!this.started) return { status: 'starting' as const, message: 'Worker is still starting up' };
    return {
      status: 'healthy' as const,
      message: 'Worker has completed startup and is ready to handle requests.',
    };
  }

  connectorNames(): string[] {
    return [...this.connectors.keys()].sort();
  }

  connectorInfo(name: string): ConnectorInfo {
    const entry = this.entry(name);
    return {
      name,
      config: this.maskedConfig(entry),
      tasks: this.taskIds(entry).map((task) => ({ connector: name, task })),
      type: entry.plugin.kind,
    };
  }

  connectorConfig(name: string): Record<string, string> {
    return this.maskedConfig(this.entry(name));
  }

  connectorStatus(name: string): ConnectorStateInfo {
    const entry = this.entry(name);
    const { lifecycle } = entry;
    return {
      name,
      connector: {
        state: lifecycle.state,
        worker_id: this.workerId,
        version: entry.plugin.version,
        ...(lifecycle.failure !== undefined ? { trace: this.secrets.redact(lifecycle.failure) } : {}),
      },
      tasks: lifecycle.tasks().map((task) => this.taskStatusOf(entry, task)),
      type: entry.plugin.kind,
    };
  }

  taskConfigs(name: string): TaskInfo[] {
    const entry = this.entry(name);
    return this.taskIds(entry).map((task) => ({
      id: { connector: name, task },
      // Kafka Connect adds the task's class; here the plugin that creates the task.
      config: { ...this.maskedConfig(entry), 'task.class': entry.plugin.name, 'task.id': String(task) },
    }));
  }

  taskStatus(name: string, task: number): TaskStateInfo {
    const entry = this.entry(name);
    const found = entry.lifecycle.tasks().find((t) => t.taskId === task);
    if (!found) throw taskNotFound(name, task);
    return this.taskStatusOf(entry, found);
  }

  plugins(connectorsOnly = true): PluginInfo[] {
    const connectors = this.options.plugins
      .list()
      .map((p): PluginInfo => ({ class: p.name, type: p.kind, version: p.version }));
    if (connectorsOnly) return connectors;
    return [...connectors, ...(this.options.otherPlugins?.() ?? builtinNonConnectorPlugins(VERSION))];
  }

  connectorActiveTopics(name: string): { topics: string[] } {
    this.requireTopicTracking(false);
    return { topics: this.activeTopics.topics(name) };
  }

  resetConnectorActiveTopics(name: string): void {
    this.requireTopicTracking(true);
    this.activeTopics.reset(name);
  }

  loggerLevels(): Record<string, LoggerLevel> {
    return this.loggers.levels();
  }

  loggerLevel(name: string): LoggerLevel {
    const level = this.loggers.level(name);
    if (!level) throw new HerderError(404, 'LOGGER_NOT_FOUND', errorMessage('LOGGER_NOT_FOUND', { name }));
    return level;
  }

  setLoggerLevel(namespace: string, level: string): string[] {
    const log4j = log4jLevel(level);
    if (!log4j)
      throw new HerderError(
        400,
        'LOG_LEVEL_INVALID',
        errorMessage('LOG_LEVEL_INVALID', {
          details: `Invalid log level '${level}': use one of OFF, FATAL, ERROR, WARN, INFO, DEBUG, TRACE`,
        }),
      );
    const changed = this.loggers.setLevel(namespace, log4j);
    this.logger.info({ logger: namespace, level: log4j, changed }, 'log level changed');
    return changed;
  }

  private requireTopicTracking(reset: boolean): void {
    const tracking = this.options.topicTracking ?? { enable: true, allowReset: true };
    const details = !tracking.enable
      ? 'Topic tracking is disabled.'
      : reset && !tracking.allowReset
        ? 'Topic tracking reset is disabled.'
        : undefined;
    if (details)
      throw new HerderError(
        403,
        'TOPIC_TRACKING_DISABLED',
        errorMessage('TOPIC_TRACKING_DISABLED', { details }),
      );
  }

  pluginConfig(plugin: string): ConfigKeyInfo[] {
    return describeSpec(connectorSpecFor(this.plugin(plugin)));
  }

  validateConfig(plugin: string, config: Record<string, unknown>): ConfigInfos {
    const found = this.plugin(plugin);
    const report = validationReport(found.name, connectorSpecFor(found), config, {
      providers: this.providers,
      paths: this.paths,
    });
    const valid = (key: string) =>
      report.configs.find((c) => c.value.name === key && c.value.errors.length === 0)?.value.value;
    return addProblems(report, [...this.schemaRegistryProblems(valid), ...transformConfigProblems(config)]);
  }

  // ---------------------------------------------------------------------------------------------
  // Herder: changes (each in its connector's serial queue)

  putConnectorConfig(
    name: string,
    config: Record<string, unknown>,
    allowReplace: boolean,
  ): Promise<{ created: boolean; info: ConnectorInfo }> {
    return this.serially(name, 'update', () => this.applyConfig(name, config, allowReplace));
  }

  patchConnectorConfig(name: string, patch: Record<string, unknown>): Promise<ConnectorInfo> {
    return this.serially(name, 'update', async () => {
      const merged: Record<string, unknown> = { ...this.entry(name).submitted };
      for (const [key, value] of Object.entries(patch)) {
        if (value === null) delete merged[key];
        else merged[key] = value;
      }
      return (await this.applyConfig(name, merged, true)).info;
    });
  }

  deleteConnector(name: string): Promise<void> {
    return this.serially(name, 'delete', async () => {
      const entry = this.entry(name);
      await entry.lifecycle.remove();
      this.connectors.delete(name);
      this.secrets.forget(name);
      this.activeTopics.reset(name);
      this.loggers.forget(connectorLoggerName(name));
      for (const id of entry.metricTaskIds) this.metrics.forget(taskLabels(name, id));
      this.logger.info({ connector: name }, 'connector deleted');
    });
  }

  restartConnector(
    name: string,
    options: { includeTasks: boolean; onlyFailed: boolean },
  ): Promise<ConnectorStateInfo> {
    return this.serially(name, 'restart', async () => {
      await this.entry(name).lifecycle.restart(options);
      return this.connectorStatus(name);
    });
  }

  restartTask(name: string, task: number): Promise<void> {
    return this.serially(name, 'restart', async () => {
      if (!(await this.entry(name).lifecycle.restartTask(task))) throw taskNotFound(name, task);
    });
  }

  pauseConnector(name: string): Promise<void> {
    return this.serially(name, 'pause', () => this.entry(name).lifecycle.pause());
  }

  resumeConnector(name: string): Promise<void> {
    return this.serially(name, 'resume', () => this.entry(name).lifecycle.resume());
  }

  stopConnector(name: string): Promise<void> {
    return this.serially(name, 'stop', () => this.entry(name).lifecycle.stop());
  }

  /** Secrets in partitions and offsets (a source file named by a `${env:...}` value) are hidden. */
  async connectorOffsets(name: string): Promise<ConnectorOffsets> {
    return this.secrets.redactValue(await this.readOffsets(name));
  }

  private async readOffsets(name: string): Promise<ConnectorOffsets> {
    const entry = this.entry(name);
    if (entry.plugin.kind === 'source') {
      return {
        offsets: this.offsets.all(name).map(({ partition, offset }) => ({ partition, offset })),
      };
    }
    return this.withAdmin(async (admin) => {
      // Only topics that exist: the broker refuses an offset fetch naming one that does not
      // ("This server does not host this topic-partition"), and a group that never committed
      // on a topic has no offsets there, which Kafka Connect answers as `{"offsets": []}`.
      const existing = new Set(await admin.listTopics());
      const topics = (await this.consumedTopics(admin, entry)).filter((t) => existing.has(t));
      if (topics.length === 0) return { offsets: [] };
      const fetched = await admin.fetchOffsets({ groupId: `connect-${name}`, topics });
      return {
        offsets: fetched.flatMap(({ topic, partitions }) =>
          partitions
            .filter((p) => Number(p.offset) >= 0)
            .map((p) => ({
              partition: { kafka_topic: topic, kafka_partition: p.partition },
              offset: { kafka_offset: Number(p.offset) },
            })),
        ),
      };
    });
  }

  alterConnectorOffsets(name: string, body: ConnectorOffsets): Promise<string> {
    return this.serially(name, 'offsets change', () => this.alterOffsets(name, body));
  }

  resetConnectorOffsets(name: string): Promise<string> {
    return this.serially(name, 'offsets reset', () => this.resetOffsets(name));
  }

  // ---------------------------------------------------------------------------------------------

  private async alterOffsets(name: string, body: ConnectorOffsets): Promise<string> {
    const entry = this.requireStopped(name);
    if (!body || !Array.isArray(body.offsets)) {
      throw new HerderError(
        400,
        'BAD_REQUEST_BODY',
        'The request body must be {"offsets": [{"partition": {...}, "offset": {...}}]}',
      );
    }
    if (entry.plugin.kind === 'source') {
      this.offsets.replace(
        name,
        body.offsets.map(({ partition, offset }) => ({
          partition: partition as Record<string, string | number>,
          offset: offset as Record<string, string | number> | null,
        })),
      );
      return 'The offsets for this connector have been altered successfully';
    }
    const byTopic = new Map<string, Array<{ partition: number; offset: string }>>();
    for (const { partition, offset } of body.offsets) {
      const topic = partition.kafka_topic;
      const number = partition.kafka_partition;
      const value = offset?.kafka_offset;
      if (
        typeof topic !== 'string' ||
        typeof number !== 'number' ||
        (offset !== null && typeof value !== 'number')
      ) {
        throw new HerderError(
          400,
          'BAD_REQUEST_BODY',
          'Each sink offset needs {"partition": {"kafka_topic": string, "kafka_partition": number}, "offset": {"kafka_offset": number} | null}',
        );
      }
      const list = byTopic.get(topic) ?? [];
      list.push({ partition: number, offset: offset === null ? '-1' : String(value) });
      byTopic.set(topic, list);
    }
    await this.withAdmin(async (admin) => {
      for (const [topic, partitions] of byTopic) {
        await admin.setOffsets({ groupId: `connect-${name}`, topic, partitions });
      }
    });
    return 'The offsets for this connector have been altered successfully';
  }

  private async resetOffsets(name: string): Promise<string> {
    const entry = this.requireStopped(name);
    if (entry.plugin.kind === 'source') this.offsets.reset(name);
    else {
      await this.withAdmin(async (admin) => {
        const groups = await admin.listGroups();
        if (groups.groups.some((g) => g.groupId === `connect-${name}`))
          await admin.deleteGroups([`connect-${name}`]);
      });
    }
    return 'The offsets for this connector have been reset successfully';
  }

  // ---------------------------------------------------------------------------------------------

  /**
   * Validates a submitted config: every problem at once, one `key: message` line each, as Kafka
   * Connect's "Connector configuration is invalid" answer (400). `name` (from the REST path or
   * body) wins over the config's own `name`; the REST layer refuses a mismatch first.
   */
  private parse(name: string, config: Record<string, unknown>) {
    const {
      plugin,
      config: parsed,
      problems,
      values,
    } = checkConnectorConfig(this.options.plugins, config, {
      name,
      providers: this.providers,
      paths: this.paths,
    });
    // From the keys that parsed, so a config with other problems still hears about this one.
    if (plugin) problems.push(...this.schemaRegistryProblems((key) => values.get(key)));
    // Kafka Connect refuses client overrides the worker's override policy forbids at create time.
    if (parsed) problems.push(...connectorOverrideProblems(this.options.kafka, parsed));
    if (!plugin || !parsed || problems.length > 0) {
      throw new HerderError(
        400,
        'CONFIG_INVALID',
        `Connector configuration is invalid and contains the following ${problems.length} error(s):\n` +
          problems.map((p) => `${p.key}: ${p.message}`).join('\n') +
          '\nYou can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`',
      );
    }
    const submitted: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...config, name }))
      if (v !== null && v !== undefined) submitted[k] = String(v);
    return { plugin, parsed, submitted };
  }

  /**
   * The avro converter needs the worker's schema registry: refused when the connector is
   * submitted or validated, rather than failing each task at start. `converter` reads the
   * (valid) value of `key.converter` / `value.converter`.
   */
  private schemaRegistryProblems(converter: (key: string) => unknown): ConfigProblem[] {
    if (this.schemaRegistry) return [];
    // An avro converter with its own `<key>.schema.registry.url` does not need the worker's.
    return ['key.converter', 'value.converter']
      .filter(
        (key) =>
          typeof converter(key) === 'string' &&
          converterName(converter(key) as string) === 'avro' &&
          !converter(`${key}.schema.registry.url`),
      )
      .map((key) => ({
        key,
        message:
          'is avro, which needs a schema registry, but this worker has no schema.registry.url: set it in the ' +
          `worker config or set ${key}.schema.registry.url, or choose json, string or bytes`,
      }));
  }

  private plugin(name: string): ConnectorPlugin {
    const plugin = this.options.plugins.find(name);
    if (!plugin)
      throw new HerderError(404, 'PLUGIN_NOT_FOUND', this.options.plugins.unknownPluginMessage(name));
    return plugin;
  }

  private entry(name: string): ConnectorEntry {
    const entry = this.connectors.get(name);
    if (!entry) throw notFound(name);
    return entry;
  }

  private requireStopped(name: string): ConnectorEntry {
    const entry = this.entry(name);
    if (entry.lifecycle.target !== 'STOPPED') {
      throw new HerderError(
        409,
        'CONNECTOR_NOT_STOPPED',
        `Connectors must be in the STOPPED state before their offsets can be modified. Stop it first with PUT /connectors/${name}/stop`,
      );
    }
    return entry;
  }

  /** Creates the connector, or replaces its config and its tasks (in its connector's queue). */
  private async applyConfig(
    name: string,
    config: Record<string, unknown>,
    allowReplace: boolean,
  ): Promise<{ created: boolean; info: ConnectorInfo }> {
    const existing = this.connectors.get(name);
    if (existing && !allowReplace)
      throw new HerderError(409, 'CONNECTOR_EXISTS', `Connector ${name} already exists`);
    const { plugin, parsed, submitted } = this.parse(name, config);
    const secrets = secretsOf(parsed, {
      spec: connectorSpecFor(plugin),
      directories: this.paths.directories,
    });
    if (existing) {
      // The old tasks may still log while they stop: hide both configs' secrets until they have.
      this.secrets.set(name, [...this.secrets.of(name), ...secrets]);
      existing.plugin = plugin;
      existing.guarded = this.guard(plugin);
      existing.config = parsed;
      existing.submitted = submitted;
      this.logger.info({ connector: name, config: this.maskedConfig(existing) }, 'connector updated');
      try {
        await existing.lifecycle.reconfigure();
      } finally {
        this.secrets.set(name, secrets);
      }
    } else {
      this.secrets.set(name, secrets);
      const entry = this.newEntry(name, plugin, parsed, submitted);
      this.connectors.set(name, entry);
      this.logger.info({ connector: name, config: this.maskedConfig(entry) }, 'connector created');
      await entry.lifecycle.start();
    }
    return { created: !existing, info: this.connectorInfo(name) };
  }

  /**
   * Runs a change to connector `name` after the changes queued before it; refused once stopping.
   * A failure's message has every known secret hidden before it can reach an answer.
   */
  private serially<T>(name: string, action: string, change: () => Promise<T>): Promise<T> {
    if (this.stopping) return Promise.reject(workerStopping(name, action));
    return this.queue.run(name, async () => {
      if (this.stopping) throw workerStopping(name, action);
      try {
        return await change();
      } catch (error) {
        throw this.secrets.redactError(error);
      }
    });
  }

  private guard(plugin: ConnectorPlugin): ConnectorPlugin {
    return guardPlugin(plugin, { paths: this.paths, secrets: this.secrets });
  }

  private newEntry(
    name: string,
    plugin: ConnectorPlugin,
    config: ParsedConfig,
    submitted: Record<string, string>,
  ): ConnectorEntry {
    const entry: ConnectorEntry = {
      name,
      plugin,
      guarded: this.guard(plugin),
      config,
      submitted,
      metricTaskIds: new Set(),
      lifecycle: new ConnectorLifecycle({
        connector: name,
        taskCount: () => entry.config.getNumber('tasks.max'),
        createRunner: (taskId) => this.createRunner(entry, taskId),
        onTaskFailed: (taskId) => this.metrics.setStatus(taskLabels(name, taskId), 'FAILED'),
        logger: this.logger,
        stopTimeoutMs: this.options.settings.shutdownTimeoutMs,
        sleep: this.sleep,
      }),
    };
    return entry;
  }

  private maskedConfig(entry: ConnectorEntry): Record<string, string> {
    return maskSecrets(connectorSpecFor(entry.plugin), entry.submitted);
  }

  /** The tasks that exist (none while STOPPED, nor while PAUSED after a stop), as Kafka Connect lists them. */
  private taskIds(entry: ConnectorEntry): number[] {
    return entry.lifecycle.tasks().map((task) => task.taskId);
  }

  /** The task's state, its trace and details with every known secret hidden. */
  private taskStatusOf(entry: ConnectorEntry, task: TaskView): TaskStateInfo {
    const { runner } = task;
    const details = this.secrets.redactValue(runner.details());
    const failure = task.failure ?? runner.trace;
    const trace = failure === undefined ? undefined : this.secrets.redact(failure);
    return {
      id: task.taskId,
      state: taskState(task),
      worker_id: this.workerId,
      version: entry.plugin.version,
      ...(trace ? { trace } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    };
  }

  /** A runner for one task of `entry`'s current config; refused once the worker is stopping. */
  private createRunner(entry: ConnectorEntry, taskId: number): TaskRunner {
    if (this.stopping) throw workerStopping(entry.name, 'task start');
    const { options } = this;
    const labels = taskLabels(entry.name, taskId);
    entry.metricTaskIds.add(taskId);
    this.metrics.initTask(labels);
    this.metrics.setStatus(labels, 'UNASSIGNED');
    const dlqKey = 'errors.deadletterqueue.topic.name';
    const dlqTopic = entry.config.has(dlqKey) ? entry.config.getOptionalString(dlqKey) : undefined;
    return this.runnerFactory({
      kafka: trackingKafka(
        options.kafka,
        (topic) => this.activeTopics.record(entry.name, topic),
        (topic) => topic === dlqTopic,
      ),
      connectorName: entry.name,
      taskId,
      plugin: entry.guarded,
      config: entry.config,
      settings: options.settings,
      keyConverter: this.converter(entry.config, 'key'),
      valueConverter: this.converter(entry.config, 'value'),
      metrics: this.metrics,
      registry: options.metricsRegistry,
      logger: this.loggers.child(connectorLoggerName(entry.name), { connector: entry.name, task: taskId }),
      offsets: this.offsets,
      redact: this.secrets.redact,
    });
  }

  private converter(config: ParsedConfig, which: 'key' | 'value'): Converter {
    return this.converters.create(config, which);
  }

  private async consumedTopics(admin: Admin, entry: ConnectorEntry): Promise<string[]> {
    const topics = entry.config.getList('topics');
    if (topics.length > 0) return topics;
    const pattern = topicsPattern(entry.config)!;
    return (await admin.listTopics()).filter((t) => pattern.test(t));
  }

  private async withAdmin<T>(fn: (admin: Admin) => Promise<T>): Promise<T> {
    const admin = this.options.kafka.admin();
    await admin.connect();
    try {
      return await fn(admin);
    } finally {
      await admin.disconnect();
    }
  }
}

const taskNotFound = (name: string, task: number) =>
  new HerderError(404, 'TASK_NOT_FOUND', `Task ${name}-${task} not found`);

const workerStopping = (name: string, action: string) =>
  new HerderError(409, 'WORKER_STOPPING', errorMessage('WORKER_STOPPING', { action, name }));
