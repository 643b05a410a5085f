// Loads the corpus data files (one JSON case per line) and builds the in-process worker the
// corpus tests send requests to. Values in a case may be generators, so a line stays short:
//   {"$repeat": "a", "times": 5000}  -> "aaaa..." (5,000 characters)
//   {"$concat": ["x", {"$repeat": ...}, "y"]} -> the parts joined
// and strings may name `{{tmp}}`, the test's temporary folder.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { builtinPlugins } from '../../connectors/index.js';
import { AllowedDirectories } from '../../runtime/allowed-paths.js';
import { connectorConfigProviders } from '../../runtime/config/config-providers.js';
import { PluginRegistry } from '../../runtime/plugin-registry.js';
import { createRestServer } from '../../runtime/rest-server.js';
import { Worker } from '../../runtime/worker.js';
import { FakeRunnerFactory } from '../helpers/fake-runner.js';

export const CORPUS_DIR = new URL('.', import.meta.url).pathname;

/** Every case of a `.jsonl` corpus file, generators expanded and `{{tmp}}` replaced. */
export function loadCorpus<T>(relativePath: string, tmp = ''): T[] {
  const text = readFileSync(join(CORPUS_DIR, relativePath), 'utf8');
  return text
    .split('\n')
    .map((line, index) => ({ line: line.trim(), number: index + 1 }))
    .filter(({ line }) => line !== '' && !line.startsWith('//'))
    .map(({ line, number }) => {
      try {
        return expand(JSON.parse(line), tmp) as T;
      } catch (error) {
        throw new Error(`${relativePath} line ${number}: ${(error as Error).message}`);
      }
    });
}

function expand(value: unknown, tmp: string): unknown {
  if (typeof value === 'string') return value.split('{{tmp}}').join(tmp);
  if (Array.isArray(value)) return value.map((v) => expand(v, tmp));
  if (value === null || typeof value !== 'object') return value;
  const object = value as Record<string, unknown>;
  if ('$repeat' in object) return String(object['$repeat']).repeat(Number(object['times']));
  if ('$concat' in object) return (object['$concat'] as unknown[]).map((v) => expand(v, tmp)).join('');
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, expand(v, tmp)]));
}

/** The corpus runs no Kafka: any use of the client is a bug the corpus found (it would answer 500). */
const noKafka = new Proxy({} as Kafka, {
  get: (_target, property) => {
    throw new Error(`the corpus worker has no Kafka client (kafka.${String(property)})`);
  },
});

/**
 * A real Worker (fake task runners, no Kafka, no schema registry) behind the real REST server,
 * listening on a free loopback port. `worker.start()` is not called: it needs Kafka. Its
 * connectors may use the file /tmp/x (the corpus's FileSink target), and `${file:...}` references
 * may name any file, so the corpus reaches the provider's own guards (regular files, size cap).
 */
export async function startCorpusWorker() {
  const dir = mkdtempSync(join(tmpdir(), 'infer-connect-corpus-'));
  const runners = new FakeRunnerFactory();
  const metricsRegistry = new Registry();
  const logger = pino({ level: 'silent' });
  const worker = new Worker({
    workerId: 'corpus-worker',
    kafka: noKafka,
    plugins: PluginRegistry.of(builtinPlugins),
    metricsRegistry,
    logger,
    settings: {
      workerId: 'corpus-worker',
      offsetFlushIntervalMs: 1_000,
      partitionsConcurrency: 1,
      shutdownTimeoutMs: 1_000,
      maxRecordsPerCall: 500,
      consumerOverrides: {},
      producerOverrides: {},
    },
    schemaRegistryUrl: undefined,
    offsetStoreFile: join(dir, 'offsets.json'),
    runnerFactory: runners.create,
    allowedPaths: new AllowedDirectories(['/tmp/x']),
    configProviders: connectorConfigProviders(
      new AllowedDirectories(['/'], { key: 'config.providers.file.param.allowed.paths' }),
    ),
  });
  const rest = createRestServer({
    herder: worker,
    metrics: metricsRegistry,
    logger,
    listeners: 'http://127.0.0.1:0',
  });
  const url = new URL(await rest.listen());
  return {
    worker,
    rest,
    runners,
    dir,
    host: url.hostname,
    port: Number(url.port),
    async close() {
      await worker.stop();
      await rest.close();
    },
  };
}
