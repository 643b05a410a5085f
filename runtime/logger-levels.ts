// Log levels changed at runtime through the REST API (Kafka Connect's KIP-495 `/admin/loggers`),
// over the worker's pino loggers. Namespaces are dotted like Kafka Connect's logger names:
//
// - `root`: the worker's own logger and, when set, every logger below it (as setting Log4j's root
//   logger through Connect sets every logger);
// - `connectors.<name>`: the loggers of connector <name>'s tasks (`connectors` sets all of them).
//
// Setting a namespace sets it and every known namespace below it, and answers the names whose
// level changed (Kafka Connect's answer for `scope=worker`); a task logger created later takes the level of its closest
// namespace that was set. `last_modified` is the epoch ms of the last REST change, null before one.
import type { Logger } from 'pino';

export const ROOT_LOGGER = 'root';
export const CONNECTORS_LOGGER = 'connectors';

/** Log4j's level names as Kafka Connect answers and accepts them (case-insensitive), with pino's equivalents. */
const PINO_LEVELS: Readonly<Record<string, string>> = {
  OFF: 'silent',
  FATAL: 'fatal',
  ERROR: 'error',
  WARN: 'warn',
  INFO: 'info',
  DEBUG: 'debug',
  TRACE: 'trace',
};
const LOG4J_LEVELS = Object.fromEntries(Object.entries(PINO_LEVELS).map(([log4j, p]) => [p, log4j]));

export interface LoggerLevel {
  level: string;
  last_modified: number | null;
}

/** The Log4j name of `level` (`debug`, `DEBUG`), or undefined when it is none of them. */
export function log4jLevel(level: string): string | undefined {
  const upper = level.toUpperCase();
  return upper in PINO_LEVELS ? upper : undefined;
}

export const connectorLoggerName = (connector: string) => `${CONNECTORS_LOGGER}.${connector}`;

const isWithin = (name: string, namespace: string) =>
  namespace === ROOT_LOGGER || name === namespace || name.startsWith(`${namespace}.`);

export class LoggerLevels {
  /** Live task loggers by namespace; removed when their connector is deleted. */
  private readonly children = new Map<string, Set<Logger>>();
  /** Namespaces set through `setLevel`, with when. */
  private readonly set = new Map<string, LoggerLevel>();

  constructor(
    private readonly root: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A child of the root logger under `namespace`, at the level of its closest namespace that was set. */
  child(namespace: string, bindings: Record<string, unknown>): Logger {
    const child = this.root.child(bindings);
    const level = this.effective(namespace);
    child.level = PINO_LEVELS[level.level]!;
    const loggers = this.children.get(namespace) ?? new Set<Logger>();
    loggers.add(child);
    this.children.set(namespace, loggers);
    return child;
  }

  /** Drops the loggers of `namespace` (a deleted connector); a level set for it stays. */
  forget(namespace: string): void {
    this.children.delete(namespace);
  }

  /** Every known logger (root, each namespace with loggers, each namespace set) and its level, sorted. */
  levels(): Record<string, LoggerLevel> {
    const names = new Set([ROOT_LOGGER, ...this.children.keys(), ...this.set.keys()]);
    return Object.fromEntries([...names].sort().map((name) => [name, this.effective(name)]));
  }

  /** The level of a known logger, undefined for a name that is not known. */
  level(name: string): LoggerLevel | undefined {
    return name === ROOT_LOGGER || this.children.has(name) || this.set.has(name)
      ? this.effective(name)
      : undefined;
  }

  /**
   * Sets `namespace` and every known namespace below it to `level` (a Log4j name, already checked
   * with `log4jLevel`) and returns the names whose level changed, sorted (Kafka Connect answers
   * only those: setting a logger to the level it has changes nothing and answers `[]`).
   */
  setLevel(namespace: string, level: string): string[] {
    const entry = { level, last_modified: this.now() };
    const within = new Set([namespace]);
    for (const name of [...this.children.keys(), ...this.set.keys()]) {
      if (isWithin(name, namespace)) within.add(name);
    }
    if (namespace !== ROOT_LOGGER) within.delete(ROOT_LOGGER);
    const changed = [...within].filter((name) => this.effective(name).level !== level);
    for (const name of changed) {
      this.set.set(name, entry);
      for (const logger of this.children.get(name) ?? []) logger.level = PINO_LEVELS[level]!;
    }
    if (namespace === ROOT_LOGGER && changed.includes(ROOT_LOGGER)) this.root.level = PINO_LEVELS[level]!;
    return changed.sort();
  }

  private effective(name: string): LoggerLevel {
    for (let current = name; ;) {
      const found = this.set.get(current);
      if (found) return found;
      const dot = current.lastIndexOf('.');
      if (dot < 0) break;
      current = current.slice(0, dot);
    }
    return (
      this.set.get(ROOT_LOGGER) ?? { level: LOG4J_LEVELS[this.root.level] ?? 'INFO', last_modified: null }
    );
  }
}
