// Composes a standalone worker from a parsed worker config: logger, metrics registry (with the
// default process metrics), Kafka client, worker and REST server. The CLI and the integration
// tests build workers through this one function, so tests run what users run.
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { ParsedConfig } from './config/config-spec.js';
import { createKafka } from './kafka-clients.js';
import { createLogger } from './logger.js';
import type { PluginRegistry } from './plugin-registry.js';
import { createRestServer } from './rest-server.js';
import { Worker } from './worker.js';

export function createStandaloneWorker(
  workerConfig: ParsedConfig,
  plugins: PluginRegistry,
  options: { logger?: Logger; workerId?: string } = {},
) {
  const logger = options.logger ?? createLogger(workerConfig.getString('log.level'));
  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry });
  const workerId = options.workerId ?? `${hostname()}:${process.pid}`;
  const kafka = createKafka({
    brokers: workerConfig.getList('bootstrap.servers'),
    clientId: workerConfig.getString('client.id'),
    logger,
  });
  const worker = new Worker({
    workerId,
    kafka,
    plugins,
    metricsRegistry,
    logger,
    schemaRegistryUrl: workerConfig.getOptionalString('schema.registry.url'),
    offsetStoreFile: workerConfig.getString('offset.storage.file.filename'),
    settings: {
      workerId,
      offsetFlushIntervalMs: workerConfig.getNumber('offset.flush.interval.ms'),
      partitionsConcurrency: workerConfig.getNumber('consumer.partitions.concurrency'),
      shutdownTimeoutMs: workerConfig.getNumber('task.shutdown.graceful.timeout.ms'),
      maxRecordsPerCall: workerConfig.getNumber('consumer.max.poll.records'),
      consumerOverrides: clientOverrides(workerConfig, 'consumer.'),
      producerOverrides: clientOverrides(workerConfig, 'producer.'),
    },
  });
  const rest = createRestServer({
    herder: worker,
    metrics: metricsRegistry,
    logger,
    listeners: workerConfig.getString('listeners'),
  });
  return { worker, rest, logger, metricsRegistry, kafka };
}

/**
 * Worker-level Kafka client properties (`consumer.session.timeout.ms`, `producer.acks`), as in
 * Kafka Connect's worker config, minus the worker's own keys that share the prefix.
 */
function clientOverrides(config: ParsedConfig, prefix: string): Record<string, string> {
  const own = new Set(['partitions.concurrency', 'max.poll.records']);
  return Object.fromEntries(Object.entries(config.withPrefix(prefix)).filter(([key]) => !own.has(key)));
}
