// What the worker sees of a running task, whatever its kind. A runner owns the task's Kafka
// clients, its retries and dead letters; the worker only drives the lifecycle.
import type { Kafka } from 'kafkajs';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConnectorPlugin } from './api.js';
import type { ParsedConfig } from './config/config-spec.js';
import type { Converter } from './converters/converter.js';
import type { ObservedState } from './herder.js';
import type { RuntimeMetrics } from './task-metrics.js';

export interface TaskRunner {
  readonly taskId: number;
  readonly state: ObservedState;
  /** The cause of a FAILED state, with its stack and causes. */
  readonly trace: string | undefined;
  /** Resolves once the task runs (or has FAILED: check `state`); never rejects. */
  start(): Promise<void>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Idempotent and bounded: stop fetching, finish in flight, flush, commit, close. */
  stop(): Promise<void>;
  details(): Record<string, unknown>;
}

/** Worker-level settings every runner needs. */
export interface RunnerSettings {
  workerId: string;
  offsetFlushIntervalMs: number;
  partitionsConcurrency: number;
  shutdownTimeoutMs: number;
  /** Records handed to one task call at most (a long fetch is split into chunks of this size). */
  maxRecordsPerCall: number;
  consumerOverrides: Record<string, string>;
  producerOverrides: Record<string, string>;
}

export interface RunnerDependencies {
  kafka: Kafka;
  connectorName: string;
  taskId: number;
  plugin: ConnectorPlugin;
  config: ParsedConfig;
  settings: RunnerSettings;
  keyConverter: Converter;
  valueConverter: Converter;
  metrics: RuntimeMetrics;
  registry: Registry;
  logger: Logger;
  /** Called on every observed-state change. */
  onStateChange?: (state: ObservedState) => void;
  /** Injected for tests: the clock and the interruptible sleep used by retries. */
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
  /** Hides the worker's known secrets (dead-letter headers and reasons). */
  redact?: (text: string) => string;
  /** Injected for tests: how often the lag of partitions paused for redelivery is read (default 5 s). */
  pausedLagRefreshMs?: number;
}

export function taskLabels(connectorName: string, taskId: number) {
  return { connector: connectorName, task: String(taskId) };
}
