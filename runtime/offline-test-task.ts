// The task side of `infer-connect test` (runtime/offline-test.ts): task 0 of a processor or sink
// connector, created through the worker's guard, fed the encoded input records in chunks through
// the worker's RecordPipeline, with transient failures retried for at most --timeout-ms per chunk
// and bad records decided by errors.tolerance as the consumer task runner decides them.
import type { KafkaMessage } from 'kafkajs';
import { Registry } from 'prom-client';
import { AllowedDirectories, type AllowedPaths } from './allowed-paths.js';
import type { ProcessorPlugin, ProcessorTask, SinkPlugin, SinkTask, TaskContext } from './api.js';
import { interruptibleSleep } from './backoff.js';
import type { ParsedConfig } from './config/config-spec.js';
import { connectorSpecFor } from './config/connector-config.js';
import { workerFileAccess } from './config/worker-config.js';
import type { Converter } from './converters/index.js';
import { ConnectError } from './errors.js';
import { guardPlugin } from './guarded-plugin.js';
import { createLogger, withRedaction } from './logger.js';
import type { TestInput } from './offline-test-input.js';
import { failureInfo, printable, type Outcome, type PrintedOutput } from './offline-test-report.js';
import { RecordPipeline, type ChunkResult } from './record-pipeline.js';
import { retryTransient } from './retry-operator.js';
import { SecretRedactor, secretsOf, WORKER_SCOPE } from './secret-redaction.js';

/** The worker's default `consumer.max.poll.records`, used without a worker config. */
const DEFAULT_MAX_RECORDS_PER_CALL = 500;

/** What one offline task run needs: the checked connector, its worker if given, the encoded inputs. */
export interface OfflineTaskRun {
  plugin: ProcessorPlugin | SinkPlugin;
  config: ParsedConfig;
  name: string;
  worker: ParsedConfig | undefined;
  inputs: readonly TestInput[];
  /** The consumed record of each input, as a producer with the connector's converters wrote it. */
  messages: readonly KafkaMessage[];
  /** The task's converters (built as the worker builds them). */
  keyConverter: Converter;
  valueConverter: Converter;
  /** How long a chunk's transient failures are retried before its records are reported. */
  timeoutMs: number;
  /** Level of the connector's log lines. */
  logLevel: string;
}

export interface OfflineTaskIo {
  stderr: (text: string) => void;
  now?: () => number;
  sleep?: (ms: number, signal: AbortSignal) => Promise<boolean>;
  /** Where the connector's log lines go; default stderr. */
  logDestination?: NodeJS.WritableStream;
}

/** One call's worth of consecutive inputs of one topic-partition. */
interface Chunk {
  topic: string;
  partition: number;
  /** Positions in the inputs. */
  positions: number[];
}

function chunksOf(inputs: readonly TestInput[], size: number): Chunk[] {
  const chunks: Chunk[] = [];
  inputs.forEach((input, position) => {
    const last = chunks.at(-1);
    if (
      last &&
      last.topic === input.topic &&
      last.partition === input.partition &&
      last.positions.length < size
    )
      last.positions.push(position);
    else chunks.push({ topic: input.topic, partition: input.partition, positions: [position] });
  });
  return chunks;
}

/**
 * Creates and starts task 0, runs every chunk through the record pipeline and stops the task.
 * Resolves one outcome per input, in input order, and whether the task failed to stop.
 */
export async function runTaskOffline(
  run: OfflineTaskRun,
  io: OfflineTaskIo,
): Promise<{ outcomes: Outcome[]; stopFailed: boolean }> {
  const { plugin, config, name, worker, inputs, messages, keyConverter, valueConverter } = run;
  const now = io.now ?? Date.now;
  const sleep = io.sleep ?? interruptibleSleep;
  const paths: AllowedPaths = worker ? workerFileAccess(worker).paths : new AllowedDirectories([]);
  const secrets = new SecretRedactor();
  if (worker) secrets.set(WORKER_SCOPE, secretsOf(worker));
  secrets.set(name, secretsOf(config, { spec: connectorSpecFor(plugin), directories: paths.directories }));
  const logger = withRedaction(
    createLogger(run.logLevel, io.logDestination ?? process.stderr),
    secrets.redactJsonLine,
  ).child({ connector: name, task: 0 });
  const guarded = guardPlugin(plugin, { paths, secrets }) as ProcessorPlugin | SinkPlugin;
  const abort = new AbortController();
  const context: TaskContext = {
    connectorName: name,
    taskId: 0,
    config,
    logger,
    metrics: new Registry(),
    metricLabels: { connector: name, task: '0' },
    signal: abort.signal,
    now,
  };
  const outcomes = new Array<Outcome | undefined>(inputs.length);
  const fill = (make: (line: number) => Outcome) =>
    inputs.forEach((input, i) => {
      outcomes[i] ??= make(input.line);
    });

  let task: ProcessorTask | SinkTask | undefined;
  try {
    task = (guarded.createTask as (context: TaskContext) => ProcessorTask | SinkTask)(context);
    await task.start?.();
  } catch (error) {
    const failure = { ...failureInfo(error as Error, secrets.redact) };
    failure.stage ??= 'TASK_START';
    fill((line) => ({ line, task_failed: failure }));
    return { outcomes: outcomes as Outcome[], stopFailed: await stopTask(task, abort, io, secrets) };
  }

  const started = task;
  const pipeline = new RecordPipeline({
    plugin: guarded,
    task: () => started,
    keyConverter,
    valueConverter,
    now,
    partitionFor: () => undefined,
    maxRecordBytes: config.getNumber('max.record.bytes'),
    fits: () => ({ fits: true, size: 0, limit: Number.POSITIVE_INFINITY }),
  });
  const tolerateAll = config.getString('errors.tolerance') === 'all';
  const dlqTopic = config.getOptionalString('errors.deadletterqueue.topic.name') || null;
  const size = worker ? worker.getNumber('consumer.max.poll.records') : DEFAULT_MAX_RECORDS_PER_CALL;

  for (const chunk of chunksOf(inputs, size)) {
    const chunkMessages = chunk.positions.map((p) => messages[p]!);
    const lines = chunk.positions.map((p) => inputs[p]!.line);
    const span = lines.length === 1 ? `line ${lines[0]}` : `lines ${lines[0]}-${lines.at(-1)}`;
    let result;
    try {
      result = await retryTransient(() => pipeline.run(chunk.topic, chunk.partition, chunkMessages), {
        retryTimeoutMs: run.timeoutMs,
        maxDelayMs: config.getNumber('errors.retry.delay.max.ms'),
        now,
        sleep,
        signal: abort.signal,
        onRetry: (error, attempt, delayMs) =>
          logger.warn({ err: error, attempt, delayMs, lines: span }, 'transient failure; retrying'),
      });
    } catch (error) {
      const failure = failureInfo(error as Error, secrets.redact);
      for (const p of chunk.positions) outcomes[p] = { line: inputs[p]!.line, task_failed: failure };
      fill((line) => ({ line, not_processed: `the task failed at ${span}` }));
      break;
    }
    if (result.kind !== 'ok') {
      const error = result.kind === 'gave-up' ? result.error : new Error('stopped');
      const attempts = result.kind === 'gave-up' ? result.attempts : 0;
      const failure = { ...failureInfo(error, secrets.redact), attempts };
      for (const p of chunk.positions) outcomes[p] = { line: inputs[p]!.line, retry_timeout: failure };
      fill((line) => ({
        line,
        not_processed: `a transient failure at ${span} outlasted --timeout-ms ${run.timeoutMs}`,
      }));
      break;
    }
    const failedAt = await recordOutcomes(chunk, result.value, {
      inputs,
      outcomes,
      tolerateAll,
      dlqTopic,
      kind: plugin.kind,
      keyConverter,
      valueConverter,
      redact: secrets.redact,
    });
    if (failedAt !== undefined) {
      fill((line) => ({ line, not_processed: `the task failed at line ${failedAt}` }));
      break;
    }
  }
  return { outcomes: outcomes as Outcome[], stopFailed: await stopTask(task, abort, io, secrets) };
}

async function stopTask(
  task: ProcessorTask | SinkTask | undefined,
  abort: AbortController,
  io: OfflineTaskIo,
  secrets: SecretRedactor,
): Promise<boolean> {
  abort.abort();
  try {
    await task?.stop?.();
    return false;
  } catch (error) {
    io.stderr(`the task failed to stop: ${secrets.redact((error as Error).message)}\n`);
    return true;
  }
}

interface OutcomeContext {
  inputs: readonly TestInput[];
  outcomes: Array<Outcome | undefined>;
  tolerateAll: boolean;
  dlqTopic: string | null;
  kind: 'processor' | 'sink';
  keyConverter: Converter;
  valueConverter: Converter;
  redact: (text: string) => string;
}

/**
 * Fills the outcomes of one chunk's inputs as the consumer task runner decides them: with
 * errors.tolerance=none the first bad record fails the task (what came before it is written, what
 * follows is not processed). Returns the line the task failed at, if it did.
 */
async function recordOutcomes(
  chunk: Chunk,
  result: ChunkResult,
  ctx: OutcomeContext,
): Promise<number | undefined> {
  const { inputs, outcomes, redact } = ctx;
  const firstBad = !ctx.tolerateAll ? result.failures[0] : undefined;
  const cutoff = firstBad ? firstBad.index : chunk.positions.length;
  const written = result.outputs.filter((o) => o.index < cutoff);
  await Promise.all([
    ctx.keyConverter.prepare?.(written.map((o) => (o.message.key ?? null) as Buffer | null)),
    ctx.valueConverter.prepare?.(written.map((o) => (o.message.value ?? null) as Buffer | null)),
  ]);
  const printed = new Map<number, PrintedOutput[]>();
  for (const output of written) {
    const { message, topic } = output;
    const headers = Object.entries(message.headers ?? {});
    const entry: PrintedOutput = {
      topic,
      key: printable(ctx.keyConverter.toConnect(topic, (message.key ?? null) as Buffer | null).value),
      value: printable(ctx.valueConverter.toConnect(topic, (message.value ?? null) as Buffer | null).value),
      ...(headers.length > 0
        ? { headers: printable(Object.fromEntries(headers)) as Record<string, unknown> }
        : {}),
    };
    printed.set(output.index, [...(printed.get(output.index) ?? []), entry]);
  }
  const failures = new Map(result.failures.map((f) => [f.index, f]));
  for (let index = 0; index < chunk.positions.length; index++) {
    const position = chunk.positions[index]!;
    const line = inputs[position]!.line;
    const failure = failures.get(index);
    if (index > cutoff)
      outcomes[position] = {
        line,
        not_processed: `the task failed at line ${inputs[chunk.positions[cutoff]!]!.line}`,
      };
    else if (failure && index === cutoff) {
      outcomes[position] = {
        line,
        task_failed: {
          ...failureInfo(failure.error, redact),
          stage: failure.stage,
          message: redact(
            `failed in stage ${failure.stage} and errors.tolerance=none: ${failure.error.message}`,
          ),
        },
      };
    } else if (failure) {
      const context =
        failure.error instanceof ConnectError ? definedContext(failure.error.context, redact) : {};
      outcomes[position] = {
        line,
        dead_letter: {
          topic: ctx.dlqTopic,
          ...failureInfo(failure.error, redact),
          stage: failure.stage,
          class: failure.className,
          ...(Object.keys(context).length > 0 ? { context } : {}),
        },
      };
    } else if (ctx.kind === 'sink') outcomes[position] = { line, written: true };
    else outcomes[position] = { line, outputs: printed.get(index) ?? [] };
  }
  return firstBad ? inputs[chunk.positions[cutoff]!]!.line : undefined;
}

function definedContext(
  context: Record<string, string | number | undefined>,
  redact: (text: string) => string,
): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(context)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? redact(v) : v;
  }
  return out;
}
