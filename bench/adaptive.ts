// Scenario `adaptive` of `npm run bench -- --only adaptive`: `max.in.flight.requests` fixed at
// 1, 4, 16, 64 versus `auto`, against a model server whose capacity is capped.
//
// The capped server is a PRIVATE instance of dev/model-server/server.py (free loopback ports,
// started and stopped here), never the shared stack's: the cap would break everyone else's tests.
// Its faults: `max_concurrent` Predicts execute, each for `latency_ms`, `queue_limit` more wait,
// and any other is answered UNAVAILABLE "queue full" at once, as TF Serving's batching does. So
// its capacity is max_concurrent x batch.max.records / latency_ms records/s, whatever the client
// does, and a client that keeps more than max_concurrent + queue_limit requests out is refused.
//
// Per config, two workers (children, as users run them), one after the other:
//   1. throughput: drains a shared census backlog; after a warm-up, `measureSeconds` of sent
//      records (the worker's /metrics), Predicts and UNAVAILABLE answers (the server's /stats),
//      overload answers (the connector's infer_connect_inference_overload_answers_total), the
//      adaptive limit (infer_connect_inference_concurrency_limit, sampled every 250 ms) and the
//      Predict p99 (upper bound of its histogram bucket).
//   2. latency: a fresh worker on an empty topic fed by a paced producer at 50% of the server's
//      capacity for `probeSeconds`: end-to-end p50/p99 (output append time - input creation time).
// Numbers are reported, not asserted.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { paths } from '../dev/stack.js';
import { createTopic, fillCensusTopic, repoRoot } from './lib.js';
import { summarize, type LatencySummary } from './model-server.js';
import { readOutputTopic, recordKey } from './output-topic.js';
import { PacedProducer } from './paced-producer.js';
import { startWorkerProcess, type ProcessUnderTest } from './process-under-test.js';

/** The capped server: what the table's header states. */
export const CAPACITY = { maxConcurrent: 4, queueLimit: 4, latencyMs: 50 } as const;
const BATCH = 64;
const LIMITS: ReadonlyArray<number | 'auto'> = [1, 4, 16, 64, 'auto'];

export interface AdaptiveOptions {
  quick: boolean;
  partitions: number;
  workDir: string;
  nodeFlags: readonly string[];
  newTopicName: (what: string) => string;
  log: (message: string) => void;
  /** Extra connector config (`--set`). */
  connectorOverrides: Record<string, string>;
}

export interface AdaptiveRow {
  maxInFlight: number | 'auto';
  recordsPerSecond: number;
  predictsPerSecond: number;
  /** UNAVAILABLE answers counted by the model server over the measured window. */
  serverOverloads: number;
  /** The connector's infer_connect_inference_overload_answers_total over the same window. */
  connectorOverloads: number;
  /** Upper bound (histogram bucket) of the Predict p99 in seconds over the window. */
  predictP99Seconds: number | undefined;
  /** End-to-end latency at 50% of the server's capacity (ms). */
  latencyAt50: LatencySummary | undefined;
  /** auto only: the limit at the end of the window and its mean over it. */
  finalLimit?: number;
  meanLimit?: number;
  /** Records the runtime skipped (dead-lettered): should be 0. */
  skipped: number;
}

export interface AdaptiveResult {
  capacity: typeof CAPACITY & { batchMaxRecords: number; recordsPerSecond: number };
  measureSeconds: number;
  rows: AdaptiveRow[];
}

// ------------------------------------------------------------------ the private model server

interface PrivateModelServer {
  target: string;
  control: string;
  stop(): Promise<void>;
}

async function startPrivateModelServer(log: (m: string) => void): Promise<PrivateModelServer> {
  const child: ChildProcess = spawn(
    paths.venvPython,
    [
      join(repoRoot, 'dev', 'model-server', 'server.py'),
      '--port',
      '0',
      '--control-port',
      '0',
      '--model-base',
      paths.modelBase,
      // Enough threads that every refused request is answered at once, not queued by gRPC itself.
      '--workers',
      '128',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ports = await new Promise<{ grpc: string; control: string }>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`the private model server did not start:\n${text}`)),
      180_000,
    );
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      text = (text + chunk).slice(-20_000);
      const match = /serving grpc=127\.0\.0\.1:(\d+) control=127\.0\.0\.1:(\d+)/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve({ grpc: match[1]!, control: match[2]! });
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the private model server exited:\n${text}`));
    });
  });
  log(`adaptive: private model server on 127.0.0.1:${ports.grpc} (control ${ports.control})`);
  return {
    target: `127.0.0.1:${ports.grpc}`,
    control: `http://127.0.0.1:${ports.control}`,
    async stop() {
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(20_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

async function controlCall(server: PrivateModelServer, path: string, body?: unknown): Promise<unknown> {
  const response = await fetch(`${server.control}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok)
    throw new Error(`model server control ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
}

async function serverCounters(server: PrivateModelServer): Promise<{ predicts: number; overloads: number }> {
  const stats = (await controlCall(server, '/stats')) as {
    requests?: Record<string, number>;
    errors?: Record<string, number>;
  };
  return { predicts: stats.requests?.['Predict'] ?? 0, overloads: stats.errors?.['UNAVAILABLE'] ?? 0 };
}

// ------------------------------------------------------------------ the worker's own metrics

interface WorkerMetrics {
  sent: number;
  skipped: number;
  overloads: number;
  limit: number | undefined;
  /** Predict duration histogram: cumulative bucket counts by upper bound. */
  buckets: Map<number, number>;
}

/** The worker's /metrics (its REST listener, read from the worker config the bench wrote). */
async function workerMetrics(child: ProcessUnderTest, dir: string, name: string): Promise<WorkerMetrics> {
  const worker = JSON.parse(readFileSync(join(dir, `${name}.worker.json`), 'utf8')) as { listeners: string };
  const text = await (
    await fetch(`${worker.listeners}/metrics`, { signal: AbortSignal.timeout(5_000) })
  ).text();
  await child.progress(); // fails fast when the worker died
  const families = parsePrometheusTextFormat(text);
  const total = (metric: string) =>
    families.find((f) => f.name === metric)?.metrics.reduce((s, m) => s + Number(m.value ?? 0), 0) ?? 0;
  const limitFamily = families.find((f) => f.name === 'infer_connect_inference_concurrency_limit');
  const buckets = new Map<number, number>();
  for (const line of text.split('\n')) {
    const match = /^infer_connect_inference_request_duration_seconds_bucket\{.*le="([^"]+)".*\} (\S+)$/.exec(
      line,
    );
    if (match) {
      const le = match[1] === '+Inf' ? Infinity : Number(match[1]);
      buckets.set(le, (buckets.get(le) ?? 0) + Number(match[2]));
    }
  }
  return {
    sent: total('kafka_connect_sink_task_sink_record_send_total'),
    skipped: total('kafka_connect_task_error_total_records_skipped'),
    overloads: total('infer_connect_inference_overload_answers_total'),
    limit: limitFamily?.metrics[0] ? Number(limitFamily.metrics[0].value) : undefined,
    buckets,
  };
}

/** Upper bound of the bucket holding the p99 of the observations between two readings. */
function p99Bound(before: Map<number, number>, after: Map<number, number>): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const count = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (count === 0) return undefined;
  for (const le of bounds) if ((after.get(le) ?? 0) - (before.get(le) ?? 0) >= 0.99 * count) return le;
  return Infinity;
}

// ------------------------------------------------------------------------------- the runs

export async function adaptiveConcurrency(options: AdaptiveOptions): Promise<AdaptiveResult> {
  const { log } = options;
  const warmupSeconds = options.quick ? 4 : 6;
  const measureSeconds = options.quick ? 15 : 30;
  const probeSeconds = options.quick ? 5 : 10;
  const capacityPerSecond = (CAPACITY.maxConcurrent * BATCH * 1000) / CAPACITY.latencyMs;
  const server = await startPrivateModelServer(log);
  try {
    await controlCall(server, '/faults', {
      max_concurrent: CAPACITY.maxConcurrent,
      queue_limit: CAPACITY.queueLimit,
      latency_ms: CAPACITY.latencyMs,
    });
    const backlogRecords = Math.ceil(capacityPerSecond * (warmupSeconds + measureSeconds + 10) * 1.5);
    const backlog = options.newTopicName('adaptive-backlog');
    log(`adaptive: filling ${backlog} with ${backlogRecords.toLocaleString('en-US')} census records`);
    await fillCensusTopic(backlog, backlogRecords, options.partitions, recordKey('b'));

    const connector = (maxInFlight: number | 'auto', input: string, output: string) => ({
      'tasks.max': '1',
      topics: input,
      'output.topic': output,
      'key.converter': 'bytes',
      'value.converter': 'avro',
      'errors.tolerance': 'all',
      'errors.deadletterqueue.topic.name': `${output}-dlq`,
      'errors.deadletterqueue.topic.replication.factor': '1',
      'connector.class': 'TFServingInference',
      'tfserving.target': server.target,
      'tfserving.model.name': 'null',
      'tfserving.deadline.ms': 5000,
      'batch.max.records': BATCH,
      'batch.max.wait.ms': 5,
      'max.in.flight.requests': String(maxInFlight),
      ...options.connectorOverrides,
    });

    const rows: AdaptiveRow[] = [];
    for (const maxInFlight of LIMITS) {
      const label = `adaptive-${maxInFlight}`;
      // 1. throughput on the backlog
      const output = options.newTopicName(`${label}-out`);
      await createTopic(output, options.partitions);
      const name = `${label}-drain`;
      const child = await startWorkerProcess({
        name,
        dir: options.workDir,
        config: connector(maxInFlight, backlog, output),
        nodeFlags: options.nodeFlags,
      });
      let row: AdaptiveRow;
      try {
        while ((await child.progress()).read === 0) await sleep(100);
        await sleep(warmupSeconds * 1000);
        const before = await workerMetrics(child, options.workDir, name);
        const serverBefore = await serverCounters(server);
        const startedAt = performance.now();
        const limits: number[] = [];
        let last = before;
        while (performance.now() - startedAt < measureSeconds * 1000) {
          await sleep(250);
          last = await workerMetrics(child, options.workDir, name);
          if (last.limit !== undefined) limits.push(last.limit);
        }
        const seconds = (performance.now() - startedAt) / 1000;
        const serverAfter = await serverCounters(server);
        row = {
          maxInFlight,
          recordsPerSecond: (last.sent - before.sent) / seconds,
          predictsPerSecond: (serverAfter.predicts - serverBefore.predicts) / seconds,
          serverOverloads: serverAfter.overloads - serverBefore.overloads,
          connectorOverloads: last.overloads - before.overloads,
          predictP99Seconds: p99Bound(before.buckets, last.buckets),
          latencyAt50: undefined,
          skipped: last.skipped,
          ...(maxInFlight === 'auto' && limits.length > 0
            ? { finalLimit: limits.at(-1)!, meanLimit: limits.reduce((s, l) => s + l, 0) / limits.length }
            : {}),
        };
      } finally {
        await child.stop(15_000);
      }
      log(
        `adaptive: ${maxInFlight}: ${Math.round(row.recordsPerSecond).toLocaleString('en-US')} records/s, ` +
          `${row.serverOverloads} UNAVAILABLE (connector counted ${row.connectorOverloads})` +
          (row.meanLimit !== undefined
            ? `, limit mean ${row.meanLimit.toFixed(1)} final ${row.finalLimit}`
            : ''),
      );

      // 2. end-to-end latency at 50% of the server's capacity
      const probeInput = options.newTopicName(`${label}-probe`);
      const probeOutput = options.newTopicName(`${label}-probe-out`);
      await createTopic(probeInput, options.partitions);
      await createTopic(probeOutput, options.partitions, { logAppendTime: true });
      const probeName = `${label}-probe`;
      const prober = await startWorkerProcess({
        name: probeName,
        dir: options.workDir,
        config: connector(maxInFlight, probeInput, probeOutput),
        nodeFlags: options.nodeFlags,
      });
      try {
        const producer = await PacedProducer.open(probeInput);
        let written: number;
        try {
          written = await producer.run('p', capacityPerSecond / 2, probeSeconds);
        } finally {
          await producer.close();
        }
        const deadline = Date.now() + 60_000;
        for (;;) {
          const m = await workerMetrics(prober, options.workDir, probeName);
          if (m.sent + m.skipped >= written || Date.now() > deadline) break;
          await sleep(200);
        }
      } finally {
        await prober.stop(15_000);
      }
      row.latencyAt50 = summarize(
        (await readOutputTopic(probeOutput, new Set(['p']))).get('p')?.latenciesMs ?? [],
      );
      rows.push(row);
    }
    return {
      capacity: { ...CAPACITY, batchMaxRecords: BATCH, recordsPerSecond: capacityPerSecond },
      measureSeconds,
      rows,
    };
  } finally {
    await server.stop();
  }
}

// ------------------------------------------------------------------------------- the table

export function renderAdaptiveTable(result: AdaptiveResult): string {
  const { capacity } = result;
  const int = (n: number | undefined) =>
    n === undefined || !Number.isFinite(n) ? '-' : Math.round(n).toLocaleString('en-US');
  const header = [
    'max.in.flight.requests',
    'records/s',
    'Predicts/s',
    'UNAVAILABLE (server)',
    'overload answers (connector)',
    'Predict p99 (bucket)',
    'p50 / p99 ms at 50%',
    'limit mean / final',
  ];
  const rows = result.rows.map((r) => [
    String(r.maxInFlight),
    int(r.recordsPerSecond),
    int(r.predictsPerSecond),
    int(r.serverOverloads),
    int(r.connectorOverloads),
    r.predictP99Seconds === undefined ? '-' : `<= ${r.predictP99Seconds * 1000} ms`,
    r.latencyAt50 ? `${int(r.latencyAt50.p50)} / ${int(r.latencyAt50.p99)}` : '-',
    r.meanLimit !== undefined ? `${r.meanLimit.toFixed(1)} / ${r.finalLimit}` : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  const best = result.rows
    .filter((r) => r.maxInFlight !== 'auto')
    .reduce<AdaptiveRow | undefined>(
      (b, r) => (b === undefined || r.recordsPerSecond > b.recordsPerSecond ? r : b),
      undefined,
    );
  const auto = result.rows.find((r) => r.maxInFlight === 'auto');
  const verdict =
    best && auto
      ? [
          `auto / best fixed (${best.maxInFlight}): ${(auto.recordsPerSecond / best.recordsPerSecond).toFixed(2)} (aim >= 0.90)`,
          `overload answers: auto ${auto.serverOverloads}; fixed at or above the best: ${result.rows
            .filter((r) => r.maxInFlight !== 'auto' && r.maxInFlight >= Number(best.maxInFlight))
            .map((r) => `${r.maxInFlight}: ${r.serverOverloads}`)
            .join(', ')} (aim: auto fewer than each)`,
        ]
      : [];
  return [
    `### Adaptive concurrency (model server capped: ${capacity.maxConcurrent} executing x ${capacity.latencyMs} ms, ` +
      `${capacity.queueLimit} queued, then UNAVAILABLE; batch.max.records ${capacity.batchMaxRecords}: ` +
      `capacity ${int(capacity.recordsPerSecond)} records/s; ${result.measureSeconds} s measured per row)`,
    '',
    line(header),
    `|${widths.map((w) => `${'-'.repeat(w + 1)}:`).join('|')}|`,
    ...rows.map(line),
    '',
    ...verdict,
  ].join('\n');
}
