// Records/s of the runtime's pass-through processor (Avro decode + re-encode, at-least-once
// commits) against plain kafkajs consume -> produce of the same records, same machine, same run.
//
//   npx tsx bench/runtime-throughput.ts [--records 100000] [--runs 3] [--partitions 4]
//
// Prints one line per run and the medians with their ratio; no assertions (the machine is shared
// and noisy: compare ratios from one run, not absolute numbers across runs).
import { createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import type { Counter } from 'prom-client';
import { builtinPlugins } from '../connectors/index.js';
import { parseWorkerConfig } from '../runtime/config/worker-config.js';
import { createLogger } from '../runtime/logger.js';
import { PluginRegistry } from '../runtime/plugin-registry.js';
import { createStandaloneWorker } from '../runtime/standalone.js';
import {
  createTopic,
  fillCensusTopic,
  fmt,
  kafkaBootstrap,
  median,
  plainKafkajsPassThrough,
  registryUrl,
  runId,
} from './lib.js';

async function counterTotal(counter: Counter, connector: string): Promise<number> {
  const { values } = await counter.get();
  return values.filter((v) => v.labels.connector === connector).reduce((sum, v) => sum + v.value, 0);
}

/** Scenario b: the PassThrough processor in a standalone worker. Resolves with records/s. */
export async function runtimePassThrough(
  input: string,
  output: string,
  count: number,
  extraConfig: Record<string, unknown> = {},
  workerOverrides: Record<string, unknown> = {},
): Promise<number> {
  const { config } = parseWorkerConfig({
    'bootstrap.servers': kafkaBootstrap,
    'schema.registry.url': registryUrl,
    listeners: 'http://127.0.0.1:0',
    'offset.storage.file.filename': join(tmpdir(), `bench-offsets-${runId()}.json`),
    'log.level': 'warn',
    ...workerOverrides,
  });
  const parts = createStandaloneWorker(config!, PluginRegistry.of(builtinPlugins), {
    logger: createLogger(
      'warn',
      createWriteStream(join(tmpdir(), 'infer-connect-bench.log'), { flags: 'a' }),
    ),
  });
  await parts.worker.start();
  const name = `bench-passthrough-${runId()}`;
  await parts.worker.putConnectorConfig(
    name,
    {
      'connector.class': 'PassThrough',
      topics: input,
      'output.topic': output,
      'key.converter': 'bytes',
      'value.converter': 'avro',
      ...extraConfig,
    },
    false,
  );
  const read = parts.metricsRegistry.getSingleMetric(
    'kafka_connect_sink_task_sink_record_read_total',
  ) as Counter;
  const sent = parts.metricsRegistry.getSingleMetric(
    'kafka_connect_sink_task_sink_record_send_total',
  ) as Counter;
  while ((await counterTotal(read, name)) === 0) await sleep(5);
  const started = performance.now();
  while ((await counterTotal(sent, name)) < count) await sleep(10);
  const seconds = (performance.now() - started) / 1000;
  await parts.worker.stop();
  await parts.rest.close();
  return count / seconds;
}

async function main(): Promise<void> {
  const options = new Command()
    .option('--records <n>', 'records per run', '100000')
    .option('--runs <n>', 'runs per scenario', '3')
    .option('--partitions <n>', 'input partitions', '4')
    .option('--max-poll-records <n>', "the worker's consumer.max.poll.records (records per task call)")
    .parse()
    .opts<{ records: string; runs: string; partitions: string; maxPollRecords?: string }>();
  const workerOverrides = options.maxPollRecords
    ? { 'consumer.max.poll.records': options.maxPollRecords }
    : {};
  const count = Number(options.records);
  const partitions = Number(options.partitions);
  const input = `bench-census-${runId()}`;
  process.stdout.write(`filling ${input} with ${fmt(count)} census records in ${partitions} partitions...\n`);
  await fillCensusTopic(input, count, partitions);

  const plain: number[] = [];
  const runtime: number[] = [];
  for (let run = 1; run <= Number(options.runs); run++) {
    const outA = `${input}-plain-${run}`;
    const outB = `${input}-runtime-${run}`;
    await createTopic(outA, partitions);
    await createTopic(outB, partitions);
    plain.push(await plainKafkajsPassThrough(input, outA, count));
    runtime.push(await runtimePassThrough(input, outB, count, {}, workerOverrides));
    process.stdout.write(
      `run ${run}: plain kafkajs ${fmt(plain.at(-1)!)} records/s, runtime PassThrough ${fmt(runtime.at(-1)!)} records/s\n`,
    );
  }
  const a = median(plain);
  const b = median(runtime);
  process.stdout.write(
    `\nmedian of ${options.runs}: a) plain kafkajs ${fmt(a)} records/s   b) runtime PassThrough ${fmt(b)} records/s   b/a = ${(b / a).toFixed(2)}\n`,
  );
}

if (process.argv[1] === import.meta.filename) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack}\n`);
      process.exit(1);
    },
  );
}
