// A worker runs connectors and their tasks (Kafka Connect's Worker and StandaloneHerder in one).
// It keeps each connector's desired state (RUNNING, PAUSED, STOPPED) apart from what its tasks
// report (RUNNING, PAUSED, FAILED...), answers the REST API through the Herder interface, and owns
// the Kafka clients, converters, offsets and metrics its tasks share.
import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConnectorPlugin } from './api.js';
import { maskSecrets, type ParsedConfig } from './config/config-spec.js';
import { connectorSpecFor, parseConnectorConfig, topicsPattern } from './config/connector-config.js';
import {
  describeSpec,
  validationReport,
  type ConfigInfos,
  type ConfigKeyInfo,
} from './config/validation-report.js';
import { createConverter } from './converters/index.js';
import type { Converter, ConverterName } from './converters/converter.js';
import { CachedSchemaRegistry } from './converters/schema-registry.js';
import { ConsumerTaskRunner } from './consumer-task-runner.js';
import { traceOf } from './errors.js';
import {
  HerderError,
  notFound,
  type ConnectorInfo,
  type ConnectorOffsets,
  type ConnectorStateInfo,
  type Herder,
  type ObservedState,
  type PluginInfo,
  type TargetState,
  type TaskInfo,
  type TaskStateInfo,
} from './herder.js';
import { FileOffsetStore } from './offset-store.js';
import type { PluginRegistry } from './plugin-registry.js';
import { SourceTaskRunner } from './source-task-runner.js';
import { RuntimeMetrics } from './task-metrics.js';
import { taskLabels, type RunnerSettings, type TaskRunner } from './task-runner.js';

export const VERSION = '0.1.0';

interface ConnectorEntry {
  name: string;
  plugin: ConnectorPlugin;
  /** The config as submitted (variables unresolved): what REST shows, secrets masked. */
  submitted: Record<string, string>;
  config: ParsedConfig;
  target: TargetState;
  runners: TaskRunner[];
  failure?: string;
}

export interface WorkerOptions {
  workerId: string;
  kafka: Kafka;
  plugins: PluginRegistry;
  metricsRegistry: Registry;
  logger: Logger;
  settings: RunnerSettings;
  schemaRegistryUrl: string | undefined;
  offsetStoreFile: string;
}

export class Worker implements Herder {
  readonly workerId: string;
  readonly metrics: RuntimeMetrics;
  private readonly connectors = new Map<string, ConnectorEntry>();
  private readonly offsets: FileOffsetStore;
  private readonly schemaRegistry: CachedSchemaRegistry | undefined;
  private clusterId = '';
  private started = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.workerId = options.workerId;
    this.metrics = new RuntimeMetrics(options.metricsRegistry);
    this.offsets = new FileOffsetStore(options.offsetStoreFile);
    this.schemaRegistry = options.schemaRegistryUrl
      ? new CachedSchemaRegistry(options.schemaRegistryUrl)
      : undefined;
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

  /** Stops every connector's tasks concurrently; never throws, reports what failed. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const results = await Promise.allSettled([...this.connectors.values()].map((c) => this.stopTasks(c)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length > 0)
        this.options.logger.warn({ failed: failed.length }, 'some tasks did not stop cleanly');
    })();
    return this.stopping;
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
    const connectorState: ObservedState = entry.failure
      ? 'FAILED'
      : entry.target === 'RUNNING'
        ? 'RUNNING'
        : entry.target;
    return {
      name,
      connector: {
        state: connectorState,
        worker_id: this.workerId,
        ...(entry.failure ? { trace: entry.failure } : {}),
      },
      tasks: entry.runners.map((runner) => this.runnerStatus(runner)),
      type: entry.plugin.kind,
    };
  }

  taskConfigs(name: string): TaskInfo[] {
    const entry = this.entry(name);
    return this.taskIds(entry).map((task) => ({
      id: { connector: name, task },
      config: { ...this.maskedConfig(entry), 'task.id': String(task) },
    }));
  }

  taskStatus(name: string, task: number): TaskStateInfo {
    const runner = this.entry(name).runners.find((r) => r.taskId === task);
    if (!runner) throw new HerderError(404, 'TASK_NOT_FOUND', `Task ${name}-${task} not found`);
    return this.runnerStatus(runner);
  }

  plugins(): PluginInfo[] {
    return this.options.plugins.list().map((p) => ({ class: p.name, type: p.kind, version: p.version }));
  }

  pluginConfig(plugin: string): ConfigKeyInfo[] {
    return describeSpec(connectorSpecFor(this.plugin(plugin)));
  }

  validateConfig(plugin: string, config: Record<string, unknown>): ConfigInfos {
    const found = this.plugin(plugin);
    return validationReport(found.name, connectorSpecFor(found), config);
  }

  // ---------------------------------------------------------------------------------------------
  // Herder: changes

  async putConnectorConfig(
    name: string,
    config: Record<string, unknown>,
    allowReplace: boolean,
  ): Promise<{ created: boolean; info: ConnectorInfo }> {
    const existing = this.connectors.get(name);
    if (existing && !allowReplace)
      throw new HerderError(409, 'CONNECTOR_EXISTS', `Connector ${name} already exists`);
    const { plugin, parsed, submitted } = this.parse(name, config);
    if (existing) await this.stopTasks(existing);
    const entry: ConnectorEntry = {
      name,
      plugin,
      submitted,
      config: parsed,
      target: existing?.target ?? 'RUNNING',
      runners: [],
    };
    this.connectors.set(name, entry);
    this.options.logger.info(
      { connector: name, config: this.maskedConfig(entry) },
      existing ? 'connector updated' : 'connector created',
    );
    if (entry.target !== 'STOPPED') await this.startTasks(entry);
    return { created: !existing, info: this.connectorInfo(name) };
  }

  async patchConnectorConfig(name: string, patch: Record<string, unknown>): Promise<ConnectorInfo> {
    const entry = this.entry(name);
    const merged: Record<string, unknown> = { ...entry.submitted };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    return (await this.putConnectorConfig(name, merged, true)).info;
  }

  async deleteConnector(name: string): Promise<void> {
    const entry = this.entry(name);
    await this.stopTasks(entry);
    this.connectors.delete(name);
    for (const id of this.taskIds(entry)) this.metrics.forget(taskLabels(name, id));
    this.options.logger.info({ connector: name }, 'connector deleted');
  }

  async restartConnector(
    name: string,
    options: { includeTasks: boolean; onlyFailed: boolean },
  ): Promise<ConnectorStateInfo> {
    const entry = this.entry(name);
    if (!options.includeTasks) {
      // Kafka Connect restarts only the connector object here; ours holds no state beyond its
      // config, so this re-reads the config and clears a connector-level failure.
      if (!options.onlyFailed || entry.failure) entry.failure = undefined;
      return this.connectorStatus(name);
    }
    const restart = entry.runners
      .filter((r) => !options.onlyFailed || r.state === 'FAILED')
      .map((r) => r.taskId);
    await Promise.all(restart.map((id) => this.restartTask(name, id)));
    return this.connectorStatus(name);
  }

  async restartTask(name: string, task: number): Promise<void> {
    const entry = this.entry(name);
    const index = entry.runners.findIndex((r) => r.taskId === task);
    if (index === -1) throw new HerderError(404, 'TASK_NOT_FOUND', `Task ${name}-${task} not found`);
    await entry.runners[index]!.stop();
    const runner = this.createRunner(entry, task);
    entry.runners[index] = runner;
    await runner.start();
    if (entry.target === 'PAUSED') await runner.pause();
  }

  async pauseConnector(name: string): Promise<void> {
    const entry = this.entry(name);
    if (entry.target === 'STOPPED') await this.startTasks(entry);
    entry.target = 'PAUSED';
    await Promise.all(entry.runners.map((r) => r.pause()));
  }

  async resumeConnector(name: string): Promise<void> {
    const entry = this.entry(name);
    const wasStopped = entry.target === 'STOPPED';
    entry.target = 'RUNNING';
    if (wasStopped) await this.startTasks(entry);
    else await Promise.all(entry.runners.map((r) => r.resume()));
  }

  async stopConnector(name: string): Promise<void> {
    const entry = this.entry(name);
    entry.target = 'STOPPED';
    await this.stopTasks(entry);
    entry.runners = [];
  }

  async connectorOffsets(name: string): Promise<ConnectorOffsets> {
    const entry = this.entry(name);
    if (entry.plugin.kind === 'source') {
      return {
        offsets: this.offsets.all(name).map(({ partition, offset }) => ({ partition, offset })),
      };
    }
    return this.withAdmin(async (admin) => {
      const topics = await this.consumedTopics(admin, entry);
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

  async alterConnectorOffsets(name: string, body: ConnectorOffsets): Promise<string> {
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

  async resetConnectorOffsets(name: string): Promise<string> {
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

  private parse(name: string, config: Record<string, unknown>) {
    const className = config['connector.class'];
    if (typeof className !== 'string' || className === '') {
      throw new HerderError(
        400,
        'CONFIG_INVALID',
        `Connector config for ${name} is missing "connector.class"`,
      );
    }
    const plugin = this.options.plugins.find(className);
    if (!plugin)
      throw new HerderError(400, 'PLUGIN_NOT_FOUND', this.options.plugins.unknownPluginMessage(className));
    const withName = { ...config, name };
    const { config: parsed, problems } = parseConnectorConfig(plugin, withName);
    if (!parsed) {
      throw new HerderError(
        400,
        'CONFIG_INVALID',
        `Connector configuration is invalid and contains the following ${problems.length} error(s):\n` +
          problems.map((p) => `${p.key}: ${p.message}`).join('\n'),
      );
    }
    const submitted: Record<string, string> = {};
    for (const [k, v] of Object.entries(withName))
      if (v !== null && v !== undefined) submitted[k] = String(v);
    return { plugin, parsed, submitted };
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
    if (entry.target !== 'STOPPED') {
      throw new HerderError(
        409,
        'CONNECTOR_NOT_STOPPED',
        `Connectors must be in the STOPPED state before their offsets can be modified. Stop it first with PUT /connectors/${name}/stop`,
      );
    }
    return entry;
  }

  private maskedConfig(entry: ConnectorEntry): Record<string, string> {
    return maskSecrets(connectorSpecFor(entry.plugin), entry.submitted);
  }

  private taskIds(entry: ConnectorEntry): number[] {
    if (entry.target === 'STOPPED') return [];
    return Array.from({ length: entry.config.getNumber('tasks.max') }, (_, i) => i);
  }

  private runnerStatus(runner: TaskRunner): TaskStateInfo {
    const details = runner.details();
    return {
      id: runner.taskId,
      state: runner.state,
      worker_id: this.workerId,
      ...(runner.trace ? { trace: runner.trace } : {}),
      ...(Object.keys(details).length > 0 ? { details } : {}),
    };
  }

  private async startTasks(entry: ConnectorEntry): Promise<void> {
    entry.failure = undefined;
    try {
      entry.runners = this.taskIds(entry).map((id) => this.createRunner(entry, id));
    } catch (error) {
      entry.failure = traceOf(error);
      this.options.logger.error({ err: error, connector: entry.name }, 'connector failed to start');
      return;
    }
    await Promise.all(entry.runners.map((r) => r.start()));
    if (entry.target === 'PAUSED') await Promise.all(entry.runners.map((r) => r.pause()));
  }

  private async stopTasks(entry: ConnectorEntry): Promise<void> {
    await Promise.all(entry.runners.map((r) => r.stop()));
  }

  private createRunner(entry: ConnectorEntry, taskId: number): TaskRunner {
    const { options } = this;
    const labels = taskLabels(entry.name, taskId);
    this.metrics.initTask(labels);
    this.metrics.setStatus(labels, 'UNASSIGNED');
    const common = {
      kafka: options.kafka,
      connectorName: entry.name,
      taskId,
      config: entry.config,
      settings: options.settings,
      keyConverter: this.converter(entry.config, 'key'),
      valueConverter: this.converter(entry.config, 'value'),
      metrics: this.metrics,
      registry: options.metricsRegistry,
      logger: options.logger.child({ connector: entry.name, task: taskId }),
    };
    const plugin = entry.plugin;
    if (plugin.kind === 'source') return new SourceTaskRunner({ ...common, plugin, offsets: this.offsets });
    return new ConsumerTaskRunner({ ...common, plugin });
  }

  private converter(config: ParsedConfig, which: 'key' | 'value'): Converter {
    return createConverter(config.getString(`${which}.converter`) as ConverterName, {
      isKey: which === 'key',
      registry: this.schemaRegistry,
      schemasEnable: config.getBoolean(`${which}.converter.schemas.enable`),
    });
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
