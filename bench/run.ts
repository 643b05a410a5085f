// `npm run bench`: the runtime and the TFServingInference connector against a plain kafkajs
// consume -> produce loop, on the real local stack (started if it is not running; never stopped).
//
//   npm run bench -- [--quick] [--json] [--profile] [--only a,b,c,...] [--batch-sizes 1,64,256]
//
// Scenarios (census records, Avro, as bench/lib.ts writes them; every input topic has the same
// partitions and record shape):
//   a  plain kafkajs consume -> produce of the same records (the client stack's ceiling)
//   b  the runtime's PassThrough processor (Avro decode + encode, no model)
//   c  TFServingInference, `null` model (age -> score), at each batch.max.records
//   d  the seed project's pattern: one Predict per record, one in flight
//   e  TFServingInference, `census` model, at the best batch size of c
//   f  end-to-end latency of c (best batch size) at 25%, 50%, 75% of its own maximum rate
//   g  a full backlog while the model server stalls, then recovers: memory, nothing lost
//
// The pipeline under test always runs as a child process (bench/process-under-test.ts). Each of
// a-e drains a backlog (records/s from the first record read to the last output appended), and
// its last run then takes a paced probe at 50% of that rate for the end-to-end latency. Numbers
// are reported, not asserted: the machine is shared and noisy, so compare ratios from one run.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import { up } from '../dev/stack.js';
import { silenceKafkajsTimerWarnings } from '../runtime/node-warnings.js';
import { renderChart } from './chart.js';
import { formatTopSelfTime, topSelfTime } from './cpu-profile.js';
import { createTopic, endOffsetTotal, fillCensusTopic, median, repoRoot, runId } from './lib.js';
import {
  counterDelta,
  measurePredictLatency,
  modelServerCounters,
  modelServerTarget,
  stallModelServer,
  summarize,
  type LatencySummary,
  type ModelServerCounters,
} from './model-server.js';
import { readOutputTopic, recordKey } from './output-topic.js';
import { PacedProducer } from './paced-producer.js';
import {
  startPlainProcess,
  startWorkerProcess,
  type Progress,
  type ProcessUnderTest,
} from './process-under-test.js';
import { renderReport, type BenchResults, type LatencyAtLoad, type ScenarioResult } from './report.js';

silenceKafkajsTimerWarnings();

const SCENARIOS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'] as const;
type ScenarioId = (typeof SCENARIOS)[number];
const BATCH_MAX_WAIT_MS = 5;
const resultsDir = join(repoRoot, 'bench/results');
const profileDir = join(resultsDir, 'profiles');

interface Plan {
  quick: boolean;
  /** Backlog records of a, b, c (batch >= 64), e and g; slower configs get fewer (recordsFor). */
  records: number;
  runs: number;
  partitions: number;
  batchSizes: number[];
  only: Set<ScenarioId>;
  stallSeconds: number;
  probeSeconds: number;
  pacedSeconds: number;
  predictCalls: number;
  profile: boolean;
  maxPollRecords: number | undefined;
}

const started = Date.now();
function log(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${message}\n`);
}

const positiveInt = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};
const intList = (value: string) => value.split(',').map((v) => positiveInt(v.trim()));

function parsePlan(): Plan & { json: boolean } {
  const options = new Command('bench')
    .description('benchmark the runtime and TFServingInference on the local stack')
    .option('--quick', 'reduced set: fewer records, 1 run, c at 1/64/256, shorter stall (under 3 minutes)')
    .option('--json', 'print the results as JSON on the last line of stdout')
    .option('--profile', 'write V8 CPU profiles of the b and c workers to bench/results/profiles')
    .option('--only <scenarios>', 'comma-separated subset of a,b,c,d,e,f,g')
    .option('--batch-sizes <list>', 'batch.max.records values of scenario c', intList)
    .option('--records <n>', 'backlog records per run (default 100000, --quick 20000)', positiveInt)
    .option('--runs <n>', 'runs per scenario, median reported (default 3, --quick 1)', positiveInt)
    .option('--partitions <n>', 'partitions of every topic', positiveInt, 4)
    .option('--stall-seconds <n>', 'model server stall of scenario g (default 60, --quick 20)', positiveInt)
    .option('--max-poll-records <n>', "the worker's consumer.max.poll.records (default: the worker's)", positiveInt)
    .parse()
    .opts<{
      quick?: boolean;
      json?: boolean;
      profile?: boolean;
      only?: string;
      batchSizes?: number[];
      records?: number;
      runs?: number;
      partitions: number;
      stallSeconds?: number;
      maxPollRecords?: number;
    }>();
  const quick = Boolean(options.quick);
  const only = new Set<ScenarioId>();
  for (const id of (options.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim())) {
    if (!(SCENARIOS as readonly string[]).includes(id)) {
      throw new InvalidArgumentError(`--only: unknown scenario "${id}"; use some of ${SCENARIOS.join(',')}`);
    }
    only.add(id as ScenarioId);
  }
  return {
    quick,
    json: Boolean(options.json),
    records: options.records ?? (quick ? 20_000 : 100_000),
    runs: options.runs ?? (quick ? 1 : 3),
    partitions: options.partitions,
    batchSizes: options.batchSizes ?? (quick ? [1, 64, 256] : [1, 16, 64, 256, 1024]),
    only,
    stallSeconds: options.stallSeconds ?? (quick ? 20 : 60),
    probeSeconds: quick ? 4 : 6,
    pacedSeconds: quick ? 5 : 10,
    predictCalls: quick ? 200 : 400,
    profile: Boolean(options.profile),
    maxPollRecords: options.maxPollRecords,
  };
}

// ------------------------------------------------------------------------------ topics

const prefix = `bench-${runId()}`;
const workDir = join(tmpdir(), prefix);
let topicSeq = 0;
const newTopicName = (what: string) => `${prefix}-${what}-${++topicSeq}`;

/** One backlog topic per record count, filled once and drained by every run that needs that count. */
const backlogs = new Map<number, Promise<string>>();
function backlogTopic(plan: Plan, count: number): Promise<string> {
  let topic = backlogs.get(count);
  if (!topic) {
    const name = newTopicName(`backlog${count}`);
    log(`filling ${name} with ${count.toLocaleString('en-US')} census records`);
    topic = fillCensusTopic(name, count, plan.partitions, recordKey('b')).then(() => name);
    backlogs.set(count, topic);
  }
  return topic;
}

// ------------------------------------------------------------------------------ pipelines

/** What runs in the child: scenario a's plain loop, or a worker with one connector. */
type Pipeline =
  | { kind: 'plain' }
  | { kind: 'worker'; connector: Record<string, unknown>; profile?: string | undefined };

function passThrough(): Pipeline {
  return { kind: 'worker', connector: { 'connector.class': 'PassThrough' } };
}

function inference(model: string, batchSize: number, maxInFlight = 4, maxWaitMs = BATCH_MAX_WAIT_MS): Pipeline {
  return {
    kind: 'worker',
    connector: {
      'connector.class': 'TFServingInference',
      'tfserving.target': modelServerTarget,
      'tfserving.model.name': model,
      'tfserving.deadline.ms': 5000,
      'batch.max.records': batchSize,
      'batch.max.wait.ms': maxWaitMs,
      'max.in.flight.requests': maxInFlight,
    },
  };
}

async function startPipeline(
  plan: Plan,
  pipeline: Pipeline,
  name: string,
  inputs: string[],
  output: string,
): Promise<ProcessUnderTest> {
  if (pipeline.kind === 'plain') return startPlainProcess({ name, inputs, output, dir: workDir });
  return startWorkerProcess({
    name,
    dir: workDir,
    config: {
      'tasks.max': '1',
      topics: inputs.join(','),
      'output.topic': output,
      'key.converter': 'bytes',
      'value.converter': 'avro',
      'errors.tolerance': 'all',
      'errors.deadletterqueue.topic.name': `${output}-dlq`,
      'errors.deadletterqueue.topic.replication.factor': '1',
      'errors.deadletterqueue.context.headers.enable': 'true',
      ...pipeline.connector,
    },
    worker: plan.maxPollRecords ? { 'consumer.max.poll.records': plan.maxPollRecords } : {},
    ...(pipeline.profile ? { profile: { dir: profileDir, name: pipeline.profile } } : {}),
  });
}

/** Polls the child until `done(progress)` or `timeoutMs`; fast at first, to catch the first read. */
async function pollUntil(
  child: ProcessUnderTest,
  done: (p: Progress) => boolean,
  timeoutMs: number,
  what: string,
  onPoll?: (p: Progress, at: number) => void,
): Promise<Progress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await child.progress();
    onPoll?.(progress, Date.now());
    if (done(progress)) return progress;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (${JSON.stringify(progress)})`);
    }
    await sleep(progress.read === 0 ? 20 : 200);
  }
}

interface RunMeasurement {
  records: number;
  recordsPerSecond: number;
  seconds: number;
  peakRssMb: number;
  cpuSecondsPer100k: number;
  modelServer: ModelServerCounters;
  skipped: number;
  duplicates: number;
  lost: number;
  exitCode: number | null;
  probe?: LatencyAtLoad;
}

/**
 * One run: the child drains a backlog of `count` records; with `probeRate`, a paced producer then
 * writes to a second input topic at that rate for `plan.probeSeconds` and the outputs give the
 * end-to-end latency. Records/s = backlog records / (last backlog output appended - first record read).
 */
async function measureRun(
  plan: Plan,
  pipeline: Pipeline,
  label: string,
  count: number,
  probe?: { fraction: number; earlierRates: number[] },
): Promise<RunMeasurement> {
  const backlog = await backlogTopic(plan, count);
  const output = newTopicName(`${label}-out`);
  const probeTopic = newTopicName(`${label}-probe`);
  await createTopic(output, plan.partitions, { logAppendTime: true });
  await createTopic(probeTopic, plan.partitions);
  const before = await modelServerCounters();
  const child = await startPipeline(plan, pipeline, label, [backlog, probeTopic], output);
  let stopped = false;
  try {
    let lastPollAt = Date.now();
    let firstReadAt = 0;
    let cpuAtFirstRead = 0;
    const finished = await pollUntil(
      child,
      (p) => p.sent + p.skipped >= count,
      Math.max(300_000, count * 20),
      `${label} to drain ${count} records`,
      (p, at) => {
        if (firstReadAt === 0 && p.read > 0) {
          // The first read happened between the previous poll and this one.
          firstReadAt = (lastPollAt + at) / 2;
          cpuAtFirstRead = child.sample().cpuSeconds;
        }
        lastPollAt = at;
      },
    );
    const drained = child.sample();
    const modelServer = counterDelta(before, await modelServerCounters());
    let probed = 0;
    let probeRate: { fraction: number; ratePerSecond: number } | undefined;
    if (probe) {
      // This run's rate as the polls saw it (exact numbers come from the output topic later).
      const estimate = count / ((Date.now() - firstReadAt) / 1000);
      probeRate = {
        fraction: probe.fraction,
        ratePerSecond: probe.fraction * median([...probe.earlierRates, estimate]),
      };
      const producer = await PacedProducer.open(probeTopic);
      try {
        probed = await producer.run('p', probeRate.ratePerSecond, plan.probeSeconds);
      } finally {
        await producer.close();
      }
      await pollUntil(child, (p) => p.sent + p.skipped >= count + probed, 120_000, `${label} probe`);
    }
    const exitCode = await child.stop();
    stopped = true;
    const tags = await readOutputTopic(output, new Set(['p']));
    const b = tags.get('b');
    if (!b) throw new Error(`${label}: no backlog records in ${output}`);
    const seconds = (b.lastAppendMs - firstReadAt) / 1000;
    const p = tags.get('p');
    const latency = p ? summarize(p.latenciesMs) : undefined;
    return {
      records: count,
      recordsPerSecond: count / seconds,
      seconds,
      peakRssMb: drained.peakRssMb,
      cpuSecondsPer100k: ((drained.cpuSeconds - cpuAtFirstRead) / count) * 100_000,
      modelServer,
      skipped: finished.skipped,
      duplicates: b.count - b.unique,
      lost: count - b.unique,
      exitCode,
      ...(probeRate && latency
        ? {
            probe: {
              loadFraction: probeRate.fraction,
              ratePerSecond: probeRate.ratePerSecond,
              records: probed,
              latencyMs: latency,
            },
          }
        : {}),
    };
  } finally {
    if (!stopped) await child.stop(10_000);
  }
}

/** `plan.runs` runs of one config; the last one also probes latency at 50% of the median rate. */
async function scenario(
  plan: Plan,
  id: string,
  title: string,
  pipeline: Pipeline,
  count: number,
  config: Record<string, unknown>,
): Promise<ScenarioResult> {
  const runs: RunMeasurement[] = [];
  for (let run = 1; run <= plan.runs; run++) {
    // The last run also probes the latency at 50% of the median rate (this run's included).
    const probe =
      run === plan.runs ? { fraction: 0.5, earlierRates: runs.map((r) => r.recordsPerSecond) } : undefined;
    const profiled =
      pipeline.kind === 'worker' && plan.profile && run === 1 ? { ...pipeline, profile: id } : pipeline;
    log(`${id}: ${title}, run ${run}/${plan.runs}, ${count.toLocaleString('en-US')} records`);
    const measured = await measureRun(plan, profiled, `${id}-r${run}`, count, probe);
    runs.push(measured);
    log(
      `${id}: ${Math.round(measured.recordsPerSecond).toLocaleString('en-US')} records/s, ` +
        `peak RSS ${measured.peakRssMb.toFixed(0)} MB, ${measured.cpuSecondsPer100k.toFixed(1)} CPU s/100k` +
        (measured.probe
          ? `, latency at ${Math.round(measured.probe.ratePerSecond).toLocaleString('en-US')} records/s: ` +
            `p50 ${measured.probe.latencyMs.p50.toFixed(0)} ms, p99 ${measured.probe.latencyMs.p99.toFixed(0)} ms`
          : ''),
    );
  }
  const probe = runs.at(-1)!.probe;
  return summarizeScenario(id, title, config, runs, probe);
}

function summarizeScenario(
  id: string,
  title: string,
  config: Record<string, unknown>,
  runs: RunMeasurement[],
  probe: LatencyAtLoad | undefined,
): ScenarioResult {
  const mid = (pick: (r: RunMeasurement) => number) => median(runs.map(pick));
  return {
    id,
    title,
    config,
    recordsPerSecond: mid((r) => r.recordsPerSecond),
    peakRssMb: Math.max(...runs.map((r) => r.peakRssMb)),
    cpuSecondsPer100k: mid((r) => r.cpuSecondsPer100k),
    modelServer: {
      predictsPerRun: mid((r) => r.modelServer.predicts),
      instancesPerRun: mid((r) => r.modelServer.instances),
      errors: runs.reduce<Record<string, number>>((all, r) => {
        for (const [code, n] of Object.entries(r.modelServer.errors)) all[code] = (all[code] ?? 0) + n;
        return all;
      }, {}),
    },
    latencyAt50: probe,
    skipped: runs.reduce((s, r) => s + r.skipped, 0),
    lost: runs.reduce((s, r) => s + Math.max(0, r.lost), 0),
    duplicates: runs.reduce((s, r) => s + r.duplicates, 0),
    runs: runs.map(({ probe: _probe, ...run }) => run),
  };
}

/** Records per run: configs that are slow by design drain a smaller backlog in a similar time. */
function recordsFor(plan: Plan, batchSize: number): number {
  if (batchSize === 1) return Math.max(2_000, Math.round(plan.records / 10));
  if (batchSize < 64) return Math.max(5_000, Math.round(plan.records / 4));
  return plan.records;
}

// ------------------------------------------------------------------------------ f and g

async function latencyUnderLoad(
  plan: Plan,
  batchSize: number,
  maxRate: number,
): Promise<{ phases: LatencyAtLoad[]; peakRssMb: number }> {
  const label = `f-b${batchSize}`;
  const warmup = 2_000;
  const backlog = await backlogTopic(plan, warmup);
  const input = newTopicName(`${label}-in`);
  const output = newTopicName(`${label}-out`);
  await createTopic(input, plan.partitions);
  await createTopic(output, plan.partitions, { logAppendTime: true });
  const child = await startPipeline(plan, inference('null', batchSize), label, [backlog, input], output);
  const producer = await PacedProducer.open(input);
  const phases: Array<{ fraction: number; tag: string; rate: number; records: number }> = [];
  try {
    let expected = warmup;
    await pollUntil(child, (p) => p.sent + p.skipped >= expected, 120_000, `${label} warm-up`);
    for (const fraction of [0.25, 0.5, 0.75]) {
      const tag = `f${Math.round(fraction * 100)}`;
      const rate = fraction * maxRate;
      log(`f: ${Math.round(rate).toLocaleString('en-US')} records/s (${tag}%) for ${plan.pacedSeconds} s`);
      const records = await producer.run(tag, rate, plan.pacedSeconds);
      expected += records;
      phases.push({ fraction, tag, rate, records });
      await pollUntil(child, (p) => p.sent + p.skipped >= expected, 120_000, `${label} ${tag} to drain`);
      await sleep(500);
    }
  } finally {
    await producer.close();
  }
  const peakRssMb = child.sample().peakRssMb;
  await child.stop();
  const tags = await readOutputTopic(output, new Set(phases.map((p) => p.tag)));
  return {
    peakRssMb,
    phases: phases.map(({ fraction, tag, rate, records }) => ({
      loadFraction: fraction,
      ratePerSecond: rate,
      records,
      latencyMs: summarize(tags.get(tag)?.latenciesMs ?? []) ?? { p50: NaN, p99: NaN, max: NaN, count: 0 },
    })),
  };
}

export interface StallResult {
  stallSeconds: number;
  records: number;
  peakRssDuringStallMb: number;
  peakRssMb: number;
  recoverySeconds: number;
  lost: number;
  duplicates: number;
  deadLettered: number;
  skipped: number;
  recordErrors: number;
  modelServer: ModelServerCounters;
  latencyMs: LatencySummary | undefined;
}

async function memoryUnderStall(plan: Plan, batchSize: number): Promise<StallResult> {
  const label = `g-b${batchSize}`;
  const count = plan.records;
  const input = newTopicName(`${label}-in`);
  const output = newTopicName(`${label}-out`);
  log(`g: filling ${input} with ${count.toLocaleString('en-US')} records`);
  await fillCensusTopic(input, count, plan.partitions, recordKey('g'));
  await createTopic(output, plan.partitions, { logAppendTime: true });
  const before = await modelServerCounters();
  log(`g: model server stalls for ${plan.stallSeconds} s; worker starts on the full backlog`);
  await stallModelServer(plan.stallSeconds);
  const stallEnds = Date.now() + plan.stallSeconds * 1000;
  let child: ProcessUnderTest | undefined;
  try {
    child = await startPipeline(plan, inference('null', batchSize), label, [input], output);
    let maxRss = 0;
    while (Date.now() < stallEnds) {
      maxRss = Math.max(maxRss, child.sample().rssMb);
      await child.progress(); // fails fast if the worker died
      await sleep(250);
    }
    const duringStall = Math.max(maxRss, child.sample().peakRssMb);
    log(`g: stall over (peak RSS so far ${duringStall.toFixed(0)} MB); waiting for the backlog to drain`);
    const progress = await pollUntil(
      child,
      (p) => p.sent + p.skipped >= count,
      240_000,
      `${label} to recover and drain`,
    );
    const recoverySeconds = (Date.now() - stallEnds) / 1000;
    const peakRssMb = child.sample().peakRssMb;
    const modelServer = counterDelta(before, await modelServerCounters());
    await child.stop();
    child = undefined;
    const tags = await readOutputTopic(output, new Set(['g']));
    const g = tags.get('g');
    return {
      stallSeconds: plan.stallSeconds,
      records: count,
      peakRssDuringStallMb: duringStall,
      peakRssMb,
      recoverySeconds,
      lost: count - (g?.unique ?? 0),
      duplicates: (g?.count ?? 0) - (g?.unique ?? 0),
      deadLettered: await endOffsetTotal(`${output}-dlq`),
      skipped: progress.skipped,
      recordErrors: progress.recordErrors,
      modelServer,
      latencyMs: g ? summarize(g.latenciesMs) : undefined,
    };
  } finally {
    await child?.stop(10_000);
    await stallModelServer(0);
  }
}

// ------------------------------------------------------------------------------ main

function machine() {
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memTotalGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
    memFreeGiB: Number((freemem() / 2 ** 30).toFixed(1)),
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    node: process.version,
  };
}

async function main(): Promise<void> {
  const plan = parsePlan();
  mkdirSync(workDir, { recursive: true });
  if (plan.profile) mkdirSync(profileDir, { recursive: true });
  log('checking the local stack (starting what is not running)');
  await up();
  const results: BenchResults = {
    version: 1,
    startedAt: new Date(started).toISOString(),
    finishedAt: '',
    durationSeconds: 0,
    machine: machine(),
    options: {
      quick: plan.quick,
      records: plan.records,
      runs: plan.runs,
      partitions: plan.partitions,
      batchSizes: plan.batchSizes,
      batchMaxWaitMs: BATCH_MAX_WAIT_MS,
      stallSeconds: plan.stallSeconds,
      profile: plan.profile,
      scenarios: [...plan.only],
      maxPollRecords: plan.maxPollRecords ?? null,
    },
    scenarios: [],
    errors: [],
  };
  const attempt = async <T>(what: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (error) {
      log(`${what} failed: ${(error as Error).stack ?? String(error)}`);
      results.errors.push({ scenario: what, message: (error as Error).message });
      return undefined;
    }
  };
  const add = (result: ScenarioResult | undefined) => {
    if (result) results.scenarios.push(result);
    return result;
  };
  const run = plan.only;

  if (run.has('a'))
    await attempt('a', async () => add(await scenario(plan, 'a', 'plain kafkajs', { kind: 'plain' }, plan.records, {})));
  if (run.has('b'))
    await attempt('b', async () =>
      add(await scenario(plan, 'b', 'PassThrough', passThrough(), plan.records, { 'connector.class': 'PassThrough' })),
    );
  const cResults: ScenarioResult[] = [];
  if (run.has('c') || run.has('e') || run.has('f') || run.has('g')) {
    const sizes = run.has('c') ? plan.batchSizes : [];
    for (const batchSize of sizes) {
      const result = await attempt(`c${batchSize}`, async () =>
        add(
          await scenario(plan, `c${batchSize}`, `null model, batch ${batchSize}`, inference('null', batchSize), recordsFor(plan, batchSize), {
            model: 'null',
            'batch.max.records': batchSize,
            'batch.max.wait.ms': BATCH_MAX_WAIT_MS,
            'max.in.flight.requests': 4,
          }),
        ),
      );
      if (result) cResults.push(result);
    }
  }
  const bestC = cResults.reduce<ScenarioResult | undefined>(
    (best, r) => (best === undefined || r.recordsPerSecond > best.recordsPerSecond ? r : best),
    undefined,
  );
  const bestBatch = Number(bestC?.config['batch.max.records'] ?? 256);
  results.bestBatchSize = bestBatch;
  if (run.has('d'))
    await attempt('d', async () =>
      add(
        await scenario(plan, 'd', 'seed pattern: 1 record per Predict, 1 in flight', inference('null', 1, 1, 0), Math.max(1_000, Math.round(plan.records / 25)), {
          model: 'null',
          'batch.max.records': 1,
          'batch.max.wait.ms': 0,
          'max.in.flight.requests': 1,
        }),
      ),
    );
  if (run.has('e'))
    await attempt('e', async () =>
      add(
        await scenario(plan, 'e', `census model, batch ${bestBatch}`, inference('census', bestBatch), plan.records, {
          model: 'census',
          'batch.max.records': bestBatch,
          'batch.max.wait.ms': BATCH_MAX_WAIT_MS,
          'max.in.flight.requests': 4,
        }),
      ),
    );
  if (run.has('f')) {
    await attempt('f', async () => {
      log(`f: the model server's own Predict latency at batch ${bestBatch} (${plan.predictCalls} calls)`);
      const server = await measurePredictLatency(bestBatch, plan.predictCalls);
      const maxRate = bestC?.recordsPerSecond;
      if (maxRate === undefined) throw new Error('scenario f needs scenario c (its maximum rate)');
      const { phases, peakRssMb } = await latencyUnderLoad(plan, bestBatch, maxRate);
      results.latencyUnderLoad = {
        batchSize: bestBatch,
        maxRatePerSecond: maxRate,
        modelServerPredictMs: server,
        phases,
        peakRssMb,
      };
    });
  }
  if (run.has('g')) {
    await attempt('g', async () => {
      results.stall = await memoryUnderStall(plan, bestBatch);
    });
  }

  if (plan.profile) {
    results.profiles = [];
    for (const file of readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'))) {
      const summary = topSelfTime(join(profileDir, file), 15);
      const text = formatTopSelfTime(file, summary);
      writeFileSync(join(profileDir, file.replace(/\.cpuprofile$/, '.top15.md')), `${text}\n`);
      results.profiles.push({ file: join('bench/results/profiles', file), ...summary });
      process.stderr.write(`\n${text}\n`);
    }
  }

  results.finishedAt = new Date().toISOString();
  results.durationSeconds = Math.round((Date.now() - started) / 1000);
  const report = renderReport(results);
  process.stdout.write(`${report.text}\n`);
  results.ratios = report.ratios;
  results.targets = report.targets;

  mkdirSync(resultsDir, { recursive: true });
  const stamp = results.startedAt.replace(/[:.]/g, '-');
  const body = `${JSON.stringify(results, null, 2)}\n`;
  writeFileSync(join(resultsDir, `${stamp}.json`), body);
  // A partial or profiled run (profiling slows the worker) does not replace the latest results.
  const complete = run.size === SCENARIOS.length && !plan.profile && results.errors.length === 0;
  if (complete) {
    writeFileSync(join(resultsDir, 'latest.json'), body);
    const cPoints = cResults.map((r) => ({
      batchSize: Number(r.config['batch.max.records']),
      recordsPerSecond: Math.round(r.recordsPerSecond),
      p99Ms: r.latencyAt50?.latencyMs.p99,
    }));
    const references = results.scenarios
      .filter((s) => s.id === 'a' || s.id === 'b')
      .map((s) => ({ label: `${s.id}: ${s.title}`, recordsPerSecond: Math.round(s.recordsPerSecond) }));
    const svg = await renderChart({
      title: `TFServingInference (null model) vs batch size: ${results.machine.cpus} cores, ${plan.quick ? '--quick' : 'full run'}, ${results.startedAt.slice(0, 16)}`,
      points: cPoints,
      references,
    });
    writeFileSync(join(resultsDir, 'latest.svg'), svg);
  }
  log(
    `results: bench/results/${stamp}.json${complete ? ', bench/results/latest.json, bench/results/latest.svg' : ' (partial or profiled run: latest.* kept)'}`,
  );
  if (results.errors.length === 0) rmSync(workDir, { recursive: true, force: true });
  else log(`worker configs and logs kept in ${workDir}`);
  if (plan.json) process.stdout.write(`${JSON.stringify(results)}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
