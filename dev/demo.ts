// `npm run demo`: starts the local stack if needed, ensures the census model, then runs a
// standalone worker with the configs in config/ (FileSource -> census topic -> TFServingInference ->
// census-scored), shows live progress, and ends with one summary line computed from the scored
// topic itself:
//
//   records=<n> scored=<n> dead_letters=<n> accuracy=<a> records_per_sec=<r>
//
// Each run starts from scratch: the demo topics, the connector's consumer group and the worker's
// source offsets file are removed first, so the whole test split is streamed again.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { SingleBar, Presets } from 'cli-progress';
import { Kafka, logLevel } from 'kafkajs';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { silenceKafkajsTimerWarnings } from '../runtime/node-warnings.js';
import { cacheDir, repoRoot, up } from './stack.js';

silenceKafkajsTimerWarnings();

const workerConfigFile = join(repoRoot, 'config', 'worker.json');
const sourceConfigFile = join(repoRoot, 'config', 'census-file-source.json');
const inferenceConfigFile = join(repoRoot, 'config', 'census-inference.json');
const TIMEOUT_MS = 10 * 60_000;

interface ConnectorFile {
  name: string;
  config: Record<string, string>;
}
const readJson = <T>(file: string) => JSON.parse(readFileSync(file, 'utf8')) as T;

async function resetDemoState(kafka: Kafka, topics: string[], groups: string[], offsetsFile: string) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    const stale = topics.filter((t) => existing.includes(t));
    if (stale.length > 0) await admin.deleteTopics({ topics: stale, timeout: 30_000 });
    const { groups: known } = await admin.listGroups();
    const staleGroups = groups.filter((g) => known.some((k) => k.groupId === g));
    if (staleGroups.length > 0) await admin.deleteGroups(staleGroups);
    // Topic deletion is asynchronous in Kafka: wait until the names are free again.
    for (let i = 0; i < 60 && (await admin.listTopics()).some((t) => stale.includes(t)); i++)
      await sleep(500);
  } finally {
    await admin.disconnect();
  }
  rmSync(offsetsFile, { force: true });
}

interface Progress {
  processed: number;
  read: number;
  breaker: string;
}

async function scrape(restUrl: string, connector: string): Promise<Progress | undefined> {
  try {
    const text = await (await fetch(`${restUrl}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const families = parsePrometheusTextFormat(text);
    const total = (name: string) =>
      families
        .find((f) => f.name === name)
        ?.metrics.filter((m) => m.labels?.connector === connector)
        .reduce((sum, m) => sum + Number(m.value ?? 0), 0) ?? 0;
    const breakerValue = families
      .find((f) => f.name === 'infer_connect_breaker_state')
      ?.metrics.find((m) => m.labels?.connector === connector)?.value;
    const breaker =
      breakerValue === undefined ? 'n/a' : (['closed', 'half-open', 'open'][Number(breakerValue)] ?? '?');
    return {
      read: total('kafka_connect_sink_task_sink_record_read_total'),
      processed:
        total('kafka_connect_sink_task_sink_record_send_total') +
        total('kafka_connect_task_error_total_records_skipped'),
      breaker,
    };
  } catch {
    return undefined;
  }
}

/** Reads a whole topic once (up to its current end) and returns the decoded values. */
async function readTopic(
  kafka: Kafka,
  topic: string,
  registry: SchemaRegistry | undefined,
): Promise<unknown[]> {
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic).catch(() => []);
  await admin.disconnect();
  const expected = ends.reduce((sum, p) => sum + Number(p.high), 0);
  if (expected === 0) return [];
  const consumer = kafka.consumer({ groupId: `demo-reader-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const values: unknown[] = [];
  await new Promise<void>((resolve, reject) => {
    consumer
      .run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages)
            values.push(registry && m.value ? await registry.decode(m.value) : m.value);
          if (values.length >= expected) resolve();
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  return values;
}

async function main(): Promise<void> {
  process.stderr.write(
    'starting the local stack (first run: downloads and model training take a few minutes)\n',
  );
  await up();
  const workerConfig = readJson<Record<string, string>>(workerConfigFile);
  const source = readJson<ConnectorFile>(sourceConfigFile);
  const inference = readJson<ConnectorFile>(inferenceConfigFile);
  const restUrl = workerConfig.listeners ?? 'http://127.0.0.1:8083';
  const kafka = new Kafka({
    clientId: 'infer-connect-demo',
    brokers: String(workerConfig['bootstrap.servers']).split(','),
    logLevel: logLevel.NOTHING,
  });
  const inputTopic = source.config.topic!;
  const scoredTopic = inference.config['output.topic']!;
  const dlqTopic = inference.config['errors.deadletterqueue.topic.name']!;
  const records = readFileSync(join(repoRoot, source.config.file!), 'utf8').trimEnd().split('\n').length - 1;

  await resetDemoState(
    kafka,
    [inputTopic, scoredTopic, dlqTopic, source.config['errors.deadletterqueue.topic.name']!],
    [`connect-${inference.name}`],
    String(workerConfig['offset.storage.file.filename']),
  );

  const logDir = join(cacheDir, 'run');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'demo-worker.log');
  const out = openSync(logFile, 'w');
  const worker = spawn(
    process.execPath,
    [
      join(repoRoot, 'bin', 'infer-connect.js'),
      'standalone',
      workerConfigFile,
      sourceConfigFile,
      inferenceConfigFile,
    ],
    { cwd: repoRoot, stdio: ['ignore', out, out] },
  );
  let exited: number | null | undefined;
  worker.on('exit', (code) => (exited = code));
  process.stderr.write(`worker started (pid ${worker.pid}, REST ${restUrl}, log ${logFile})\n`);

  const bar = new SingleBar(
    {
      format: 'scoring [{bar}] {value}/{total} records | {rate} records/s | breaker {breaker}',
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  bar.start(records, 0, { rate: 0, breaker: 'n/a' });
  const deadline = Date.now() + TIMEOUT_MS;
  let firstRead: number | undefined;
  let finishedAt = 0;
  for (;;) {
    if (exited !== undefined) {
      bar.stop();
      throw new Error(`the worker exited early (code ${exited}); see ${logFile}`);
    }
    if (Date.now() > deadline) {
      bar.stop();
      worker.kill('SIGTERM');
      throw new Error(`not every record was processed within ${TIMEOUT_MS / 60_000} minutes; see ${logFile}`);
    }
    const progress = await scrape(restUrl, inference.name);
    if (progress) {
      if (firstRead === undefined && progress.read > 0) firstRead = Date.now();
      const rate = firstRead ? progress.processed / Math.max(0.001, (Date.now() - firstRead) / 1000) : 0;
      bar.update(Math.min(records, progress.processed), {
        rate: Math.round(rate),
        breaker: progress.breaker,
      });
      if (progress.processed >= records) {
        finishedAt = Date.now();
        break;
      }
    }
    await sleep(250);
  }
  bar.stop();
  worker.kill('SIGTERM');
  await new Promise<void>((resolve) =>
    exited !== undefined ? resolve() : worker.once('exit', () => resolve()),
  );

  const registry = new SchemaRegistry({ host: String(workerConfig['schema.registry.url']) });
  const scored = (await readTopic(kafka, scoredTopic, registry)) as Array<{
    income: string;
    predicted_class: string;
  }>;
  const deadLetters = (await readTopic(kafka, dlqTopic, undefined)).length;
  const correct = scored.filter((r) => r.predicted_class === r.income).length;
  const seconds = (finishedAt - (firstRead ?? finishedAt)) / 1000;
  process.stdout.write(
    `records=${records} scored=${scored.length} dead_letters=${deadLetters} ` +
      `accuracy=${scored.length ? (correct / scored.length).toFixed(4) : 'n/a'} ` +
      `records_per_sec=${seconds > 0 ? Math.round(records / seconds) : 'n/a'}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`demo failed: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
