// An in-memory Herder for REST tests: a map of connectors with desired and observed states, two
// plugins, and offsets that can only be changed while a connector is STOPPED. It throws the same
// HerderErrors a real worker does for unknown names, name clashes and bad configs.
import { HerderError, notFound } from '../../runtime/herder.js';
import type {
  ConnectorInfo,
  ConnectorOffsets,
  ConnectorStateInfo,
  Herder,
  ObservedState,
  PluginInfo,
  TargetState,
  TaskInfo,
  TaskStateInfo,
} from '../../runtime/herder.js';
import type { ConfigInfos, ConfigKeyInfo } from '../../runtime/config/validation-report.js';
import type { PluginKind } from '../../runtime/api.js';
import { pino } from 'pino';
import { ActiveTopics } from '../../runtime/active-topics.js';
import { log4jLevel, LoggerLevels, type LoggerLevel } from '../../runtime/logger-levels.js';

interface FakeConnector {
  config: Record<string, string>;
  target: TargetState;
  connectorState: ObservedState;
  taskStates: ObservedState[];
  offsets: ConnectorOffsets;
}

const keyInfo = (name: string, required: boolean, documentation: string): ConfigKeyInfo => ({
  name,
  type: 'STRING',
  required,
  default_value: required ? null : '',
  importance: 'HIGH',
  documentation,
  group: 'Common',
  width: 'NONE',
  display_name: name,
  dependents: [],
  order: -1,
});

const PLUGINS: Array<PluginInfo & { keys: ConfigKeyInfo[] }> = [
  {
    class: 'FileSource',
    type: 'source',
    version: '0.1.0',
    keys: [keyInfo('file', true, 'The file to read.'), keyInfo('topic', true, 'The topic to write.')],
  },
  {
    class: 'FileSink',
    type: 'sink',
    version: '0.1.0',
    keys: [keyInfo('file', true, 'The file to write.'), keyInfo('topics', true, 'The topics to read.')],
  },
];

export class FakeHerder implements Herder {
  readonly workerId = '127.0.0.1:8083';
  healthStatus: 'healthy' | 'starting' | 'unhealthy' = 'healthy';
  /** Set to make every call throw this (to test the 500 path). */
  failWith: Error | undefined;
  readonly connectors = new Map<string, FakeConnector>();

  async serverInfo() {
    this.maybeFail();
    return { version: '0.1.0', commit: 'abc123', kafka_cluster_id: 'cluster-1' };
  }

  health() {
    const messages = {
      healthy: 'Worker has completed startup and is ready to handle requests.',
      starting: 'Worker is still starting up.',
      unhealthy: 'Worker was unable to handle this request and may be unable to handle other requests.',
    };
    return { status: this.healthStatus, message: messages[this.healthStatus] };
  }

  connectorNames(): string[] {
    this.maybeFail();
    return [...this.connectors.keys()];
  }

  connectorInfo(name: string): ConnectorInfo {
    const connector = this.get(name);
    return {
      name,
      config: { ...connector.config },
      tasks: connector.taskStates.map((_, task) => ({ connector: name, task })),
      type: this.kindOf(connector.config),
    };
  }

  connectorStatus(name: string): ConnectorStateInfo {
    const connector = this.get(name);
    return {
      name,
      connector: { state: connector.connectorState, worker_id: this.workerId, version: '0.1.0' },
      tasks: connector.taskStates.map((_, task) => this.taskStatus(name, task)),
      type: this.kindOf(connector.config),
    };
  }

  connectorConfig(name: string): Record<string, string> {
    return { ...this.get(name).config };
  }

  taskConfigs(name: string): TaskInfo[] {
    const connector = this.get(name);
    return connector.taskStates.map((_, task) => ({
      id: { connector: name, task },
      config: { ...connector.config, 'task.id': String(task) },
    }));
  }

  taskStatus(name: string, task: number): TaskStateInfo {
    const state = this.get(name).taskStates[task];
    if (state === undefined) throw new HerderError(404, 'TASK_NOT_FOUND', `Task ${name}-${task} not found`);
    return {
      id: task,
      state,
      worker_id: this.workerId,
      version: '0.1.0',
      ...(state === 'FAILED' ? { trace: 'Error: boom\n    at fake' } : {}),
    };
  }

  async putConnectorConfig(name: string, config: Record<string, unknown>, allowReplace: boolean) {
    const existing = this.connectors.get(name);
    if (existing !== undefined && !allowReplace) {
      throw new HerderError(409, 'CONNECTOR_EXISTS', `Connector ${name} already exists`);
    }
    const parsed = this.checkConfig(config);
    const tasks = Number(parsed['tasks.max'] ?? '1');
    this.connectors.set(name, {
      config: parsed,
      target: existing?.target ?? 'RUNNING',
      connectorState: existing?.connectorState ?? 'RUNNING',
      taskStates: Array.from({ length: tasks }, () => existing?.connectorState ?? 'RUNNING'),
      offsets: existing?.offsets ?? { offsets: [] },
    });
    return { created: existing === undefined, info: this.connectorInfo(name) };
  }

  async patchConnectorConfig(name: string, patch: Record<string, unknown>): Promise<ConnectorInfo> {
    const merged: Record<string, unknown> = { ...this.get(name).config };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    return (await this.putConnectorConfig(name, merged, true)).info;
  }

  async deleteConnector(name: string): Promise<void> {
    this.get(name);
    this.connectors.delete(name);
  }

  async restartConnector(name: string, options: { includeTasks: boolean; onlyFailed: boolean }) {
    const connector = this.get(name);
    const restarting = (state: ObservedState) => !options.onlyFailed || state === 'FAILED';
    if (restarting(connector.connectorState)) connector.connectorState = 'RESTARTING';
    if (options.includeTasks) {
      connector.taskStates = connector.taskStates.map((s) => (restarting(s) ? 'RESTARTING' : s));
    }
    return this.connectorStatus(name);
  }

  async restartTask(name: string, task: number): Promise<void> {
    this.taskStatus(name, task);
    this.get(name).taskStates[task] = 'RUNNING';
  }

  async pauseConnector(name: string) {
    this.setTarget(name, 'PAUSED');
  }

  async resumeConnector(name: string) {
    this.setTarget(name, 'RUNNING');
  }

  async stopConnector(name: string) {
    this.setTarget(name, 'STOPPED');
  }

  async connectorOffsets(name: string): Promise<ConnectorOffsets> {
    return structuredClone(this.get(name).offsets);
  }

  async alterConnectorOffsets(name: string, offsets: ConnectorOffsets): Promise<string> {
    const connector = this.stopped(name);
    connector.offsets = structuredClone(offsets);
    return 'The offsets for this connector have been altered successfully';
  }

  async resetConnectorOffsets(name: string): Promise<string> {
    this.stopped(name).offsets = { offsets: [] };
    return 'The offsets for this connector have been reset successfully';
  }

  plugins(connectorsOnly = true): PluginInfo[] {
    const connectors = PLUGINS.map(({ class: cls, type, version }) => ({ class: cls, type, version }));
    return connectorsOnly ? connectors : [...connectors, ...this.otherPlugins];
  }

  // --- active topics and log levels (KIP-558, KIP-495): the runtime's own bookkeeping classes ---
  /** What `connectorsOnly=false` lists besides the connectors. */
  otherPlugins: PluginInfo[] = [];
  readonly activeTopics = new ActiveTopics();
  topicTracking = { enable: true, allowReset: true };
  readonly loggers = new LoggerLevels(
    pino({ level: 'info' }, { write: () => undefined }),
    () => 1700000000000,
  );

  connectorActiveTopics(name: string): { topics: string[] } {
    if (!this.topicTracking.enable)
      throw new HerderError(403, 'TOPIC_TRACKING_DISABLED', 'Topic tracking is disabled.');
    return { topics: this.activeTopics.topics(name) };
  }

  resetConnectorActiveTopics(name: string): void {
    if (!this.topicTracking.enable)
      throw new HerderError(403, 'TOPIC_TRACKING_DISABLED', 'Topic tracking is disabled.');
    if (!this.topicTracking.allowReset)
      throw new HerderError(403, 'TOPIC_TRACKING_DISABLED', 'Topic tracking reset is disabled.');
    this.activeTopics.reset(name);
  }

  loggerLevels(): Record<string, LoggerLevel> {
    return this.loggers.levels();
  }

  loggerLevel(name: string): LoggerLevel {
    const level = this.loggers.level(name);
    if (!level) throw new HerderError(404, 'LOGGER_NOT_FOUND', `Logger ${name} not found.`);
    return level;
  }

  setLoggerLevel(namespace: string, level: string): string[] {
    const log4j = log4jLevel(level);
    if (!log4j) throw new HerderError(400, 'LOG_LEVEL_INVALID', `Invalid log level '${level}'`);
    return this.loggers.setLevel(namespace, log4j);
  }
  // --- end active topics and log levels ---

  pluginConfig(plugin: string): ConfigKeyInfo[] {
    const found = PLUGINS.find((p) => p.class === plugin);
    if (found === undefined) throw new HerderError(404, 'PLUGIN_NOT_FOUND', `Unknown plugin ${plugin}.`);
    return found.keys;
  }

  validateConfig(plugin: string, config: Record<string, unknown>): ConfigInfos {
    const found = PLUGINS.find((p) => p.class === plugin);
    if (found === undefined) {
      throw new HerderError(
        400,
        'PLUGIN_NOT_FOUND',
        `Failed to find any plugin whose name matches ${plugin}`,
      );
    }
    const configs = found.keys.map((definition) => {
      const value = config[definition.name];
      const errors =
        definition.required && value === undefined
          ? [`Missing required configuration "${definition.name}" which has no default value.`]
          : [];
      return {
        definition,
        value: {
          name: definition.name,
          value: value === undefined ? null : String(value),
          recommended_values: [],
          errors,
          visible: true,
        },
      };
    });
    return {
      name: plugin,
      error_count: configs.reduce((n, c) => n + c.value.errors.length, 0),
      groups: ['Common'],
      configs,
    };
  }

  private maybeFail(): void {
    if (this.failWith !== undefined) throw this.failWith;
  }

  private get(name: string): FakeConnector {
    this.maybeFail();
    const connector = this.connectors.get(name);
    if (connector === undefined) throw notFound(name);
    return connector;
  }

  private stopped(name: string): FakeConnector {
    const connector = this.get(name);
    if (connector.target !== 'STOPPED') {
      throw new HerderError(
        409,
        'CONNECTOR_NOT_STOPPED',
        `Connectors must be in the STOPPED state before their offsets can be modified. Stop ${name} first.`,
      );
    }
    return connector;
  }

  private setTarget(name: string, target: TargetState): void {
    const connector = this.get(name);
    connector.target = target;
    connector.connectorState = target;
    connector.taskStates = connector.taskStates.map(() => target);
  }

  private kindOf(config: Record<string, string>): PluginKind {
    return (PLUGINS.find((p) => p.class === config['connector.class'])?.type ?? 'source') as PluginKind;
  }

  private checkConfig(config: Record<string, unknown>): Record<string, string> {
    const cls = config['connector.class'];
    if (typeof cls !== 'string') {
      throw new HerderError(400, 'CONFIG_INVALID', 'Connector config is missing "connector.class"');
    }
    if (!PLUGINS.some((p) => p.class === cls)) {
      throw new HerderError(400, 'CONFIG_INVALID', `Failed to find any plugin whose name matches ${cls}`);
    }
    return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, String(v)]));
  }
}
